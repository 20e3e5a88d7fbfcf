/* runlog.c - see runlog.h. */
#define _GNU_SOURCE
#include "runlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "now.h"
#include "stats.h"
#include "vp_error.h"

static void s_save_kick(run_t *r);

static void s_save_work(dbq_op_t *op, adb_t *db)
{
    run_save_t *j = container_of(op, run_save_t, op);
    j->rc = adb_run_save(db, &j->row);
    bool added;
    if (j->rc == 0 && j->has_exec)
        j->rc = adb_exec_add(db, &j->exec, j->row.task_id, &added);
}

static void s_again_fire(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop, (void)t;
    run_t *r = ud;
    r->store_again = NULL;
    s_save_kick(r);
}

void runlog_store_later(run_t *r, int rc, const char *what, loop_timer_fn again)
{
    stats_store(r, false);
    if (r->store_tries++ % 60 == 0)
        log_warn("agents: run %s: %s failed (%s): its delivery is held, and %s tried again "
                 "each second",
                 r->row.id, what, vp_strerror(rc), what);
    r->store_again = loop_add_timer(r->a->loop, RUNLOG_RETRY_MS, 0, again, r);
}

/* A run's delivery is acknowledged only once its end is on disk: a last
 * save that failed (not for the pool stopping) is tried again. Returns
 * whether it will be. */
static bool s_retry(run_t *r, int status, int rc)
{
    if (status < 0 || rc == 0 || rc == VP_ENOTFOUND || !r->final_save)
        return false; /* a row gone (the file replaced): the next delivery makes it */
    runlog_store_later(r, rc, "the save of its end", s_again_fire);
    return true;
}

static void s_save_done(dbq_op_t *op, int status)
{
    run_save_t *j = container_of(op, run_save_t, op);
    run_t *r = container_of(j, run_t, save);
    int rc = j->rc;
    if (status < 0)
        log_warn("agents: run %s could not be saved: the pool is stopping", j->row.id);
    run_row_clear(&j->row);
    r->saving = false;
    if (r->dirty) {
        s_save_kick(r);
        return;
    }
    bool saved = status == 0 && rc == 0;
    if (saved && r->final_save)
        stats_store(r, true);
    if (!saved && s_retry(r, status, rc))
        return;
    void (*cb)(run_t *, bool) = r->on_saved;
    r->on_saved = NULL;
    r->final_save = false;
    if (cb)
        cb(r, saved);
}

static void s_save_kick(run_t *r)
{
    if (r->saving) {
        r->dirty = true;
        return;
    }
    run_save_t *j = &r->save;
    *j = (run_save_t){.op = {.work = s_save_work, .done = s_save_done}};
    run_row_copy(&j->row, &r->row);
    if (r->on_saved && r->has_final_exec) {
        j->exec = r->final_exec;
        j->has_exec = true;
    }
    r->saving = true;
    r->dirty = false;
    dbq_submit(&r->a->dbq, r->a->pool, r->a->db, &j->op);
}

void runlog_save(run_t *r)
{
    s_save_kick(r);
}

void runlog_final(run_t *r, const exec_row_t *exec, void (*done)(run_t *r, bool saved))
{
    r->on_saved = done;
    r->final_save = true;
    r->has_final_exec = exec != NULL;
    if (exec)
        r->final_exec = *exec;
    s_save_kick(r);
}

static const char *s_iso(int64_t ms, char *buf, size_t len)
{
    if (!ms)
        return NULL;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return buf;
}

static json_t *s_str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *runlog_json(const run_row_t *w, bool content)
{
    char c[64], s[64], f[64];
    const char *created = s_iso(w->created_ms, c, sizeof c);
    const char *started = s_iso(w->started_ms, s, sizeof s);
    const char *finished = s_iso(w->finished_ms, f, sizeof f);
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:I,s:o,s:s,s:s,s:s,s:i,s:o,s:o,s:o,s:o,s:f,s:I,s:{s:I,s:I},s:o,s:o,s:o}",
        "id", w->id, "task_id", w->task_id, "project_id", w->project_id, "task_version",
        (json_int_t)w->task_version, "agent", s_str_or_null(w->agent), "role", w->role,
        "task_type", w->task_type, "state", w->state, "attempts", w->attempts, "model",
        s_str_or_null(w->model), "provider", s_str_or_null(w->provider), "outcome",
        s_str_or_null(w->outcome), "error", s_str_or_null(w->error), "cost_usd", w->cost_usd,
        "latency_ms", (json_int_t)w->latency_ms, "usage", "input_tokens",
        (json_int_t)w->input_tokens, "output_tokens", (json_int_t)w->output_tokens,
        "created_at", s_str_or_null(created), "started_at", s_str_or_null(started),
        "finished_at", s_str_or_null(finished));
    if (content)
        json_object_set_new(j, "content", s_str_or_null(w->content));
    return j;
}

void runlog_event(run_t *r)
{
    natsc_t *n = worker_nats(r->a->w);
    natsConnection *nc = n ? natsc_conn(n) : NULL;
    if (!nc)
        return;
    char at[40], subject[96], type[64];
    now_iso8601(at, sizeof at);
    snprintf(subject, sizeof subject, "vapora.agents.run.%s", r->row.state);
    snprintf(type, sizeof type, "agent.run.%s", r->row.state);
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s}", "type", type, "id", r->row.id,
                           "task_id", r->row.task_id, "project_id", r->row.project_id,
                           "data", runlog_json(&r->row, false), "at", at);
    char *txt = json_dumps(ev, JSON_COMPACT);
    natsStatus st = natsConnection_PublishString(nc, subject, txt);
    if (st != NATS_OK)
        log_warn("agents: publishing %s failed: %s", subject, natsStatus_GetText(st));
    free(txt);
    json_decref(ev);
}
