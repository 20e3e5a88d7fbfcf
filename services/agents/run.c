/* run.c - see run.h. The assignment's way in: parsing, admission, the
 * choice of an agent and parking; the rest of a run is in run_step.c. */
#define _GNU_SOURCE
#include "run.h"

#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bus.h"
#include "choose.h"
#include "log.h"
#include "now.h"
#include "run_step.h"
#include "runlog.h"
#include "stats.h"
#include "vp_error.h"

#define RUN_ID_MAX 31

/* run_ + 24 hex of SHA-256("task_id:version"): one id per assignment. */
static void s_run_id(const char *task_id, int64_t version, char out[RUN_ID_MAX + 1])
{
    char key[128];
    int n = snprintf(key, sizeof key, "%s:%lld", task_id, (long long)version);
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, (size_t)n, (const uint8_t *)key);
    sha256_digest(&ctx, sizeof d, d);
    strcpy(out, "run_");
    for (int i = 0; i < 12; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", d[i]);
}

/* An id we put in SQL and URLs: 1-63 characters of [A-Za-z0-9._-]. */
static bool s_id_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= max &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* "2026-12-03T10:00:00.123Z" as unix ms; 0 when it is not that. */
static int64_t s_parse_at(const char *at)
{
    struct tm tm = {0};
    int ms = 0;
    if (!at || sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Checks an assignment message; NULL with a reason when it is not one. */
static json_t *s_parse(natsMsg *msg, const char **why)
{
    json_t *j = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    json_t *task = json_object_get(j, "data");
    const char *run_id = json_string_value(json_object_get(j, "run_id"));
    *why = !j ? "not JSON"
           : !s_id_ok(json_string_value(json_object_get(task, "id")), 63) ? "no task id"
           : !s_id_ok(json_string_value(json_object_get(task, "project_id")), 63)
               ? "no project id"
           : !json_is_integer(json_object_get(task, "version")) ? "no task version"
           : (json_object_get(j, "run_id") && !s_id_ok(run_id, RUN_ID_MAX)) ? "a bad run id"
                                                                             : NULL;
    if (*why) {
        json_decref(j);
        return NULL;
    }
    return j;
}

run_t *run_find(agents_t *a, const char *id)
{
    list_t *lists[] = {&a->runs, &a->parked};
    for (int l = 0; l < 2; l++)
        list_for_each(it, lists[l]) {
            run_t *r = list_item(it, run_t, link);
            if (strcmp(r->row.id, id) == 0)
                return r;
        }
    return NULL;
}

static run_t *s_new(agents_t *a, natsMsg *msg, json_t *ev)
{
    json_t *task = json_object_get(ev, "data");
    run_t *r = xcalloc(1, sizeof *r);
    r->a = a;
    r->msg = msg;
    r->task = json_incref(task);
    r->assigned_role = json_string_value(json_object_get(task, "assigned_role"));
    r->version = json_integer_value(json_object_get(task, "version"));
    r->assigned_ms = s_parse_at(json_string_value(json_object_get(ev, "at")));
    list_init(&r->watchers);
    list_init(&r->link);
    run_row_t *w = &r->row;
    const char *rid = json_string_value(json_object_get(ev, "run_id"));
    snprintf(w->task_id, sizeof w->task_id, "%s", json_string_value(json_object_get(task, "id")));
    snprintf(w->project_id, sizeof w->project_id, "%s",
             json_string_value(json_object_get(task, "project_id")));
    if (rid)
        snprintf(w->id, sizeof w->id, "%s", rid);
    else
        s_run_id(w->task_id, r->version, w->id);
    w->task_version = r->version;
    snprintf(w->role, sizeof w->role, "%s", r->assigned_role ? r->assigned_role : "");
    snprintf(w->state, sizeof w->state, RUN_QUEUED);
    w->created_ms = now_wall_ms();
    return r;
}

/* ---- admission (pool) ---- */

/* An agent that failed this task max_failures times in a row is out. */
static void s_exclude(const char *agent, long failures, void *ud)
{
    run_t *r = ud;
    const agents_config_t *c = r->a->cfg;
    for (size_t i = 0; i < c->nagents; i++)
        if (strcmp(c->agents[i].name, agent) == 0)
            r->excluded[i] = failures >= c->agents[i].max_failures;
}

static void s_admit_work(dbq_op_t *op, adb_t *db)
{
    run_t *r = container_of(op, run_t, admit);
    bool created;
    r->superseded = 0;
    r->newer = false;
    r->admit_rc = adb_run_admit(db, &r->admit_row, &created);
    /* Runs of older assignments of the task end; a newer one ends this. */
    if (r->admit_rc == 0 && !run_state_final(r->admit_row.state))
        r->admit_rc = adb_runs_supersede(db, &r->admit_row, &r->superseded, &r->newer);
    if (r->admit_rc == 0)
        adb_streaks(db, r->admit_row.task_id, s_exclude, r);
}

/* The pool's copy of the row (admit_row, made in s_admit) taken back
 * once the admission is done: loop thread both times. */
static void s_admit_take(run_t *r, bool ok)
{
    if (ok) { /* the row as the database holds it */
        run_row_clear(&r->row);
        r->row = r->admit_row;
    } else {
        run_row_clear(&r->admit_row);
    }
    r->admit_row = (run_row_t){0};
}

static void s_choose(run_t *r);
static void s_admit_done(dbq_op_t *op, int status);

/* Every worker hears that the task's older runs are superseded: the one
 * running one closes its call at once. */
static void s_tell_superseded(run_t *r)
{
    json_t *m = json_pack("{s:s,s:I}", "task_id", r->row.task_id, "version",
                          (json_int_t)r->row.task_version);
    if (!bus_publish(r->a->bus, BUS_SUPERSEDE, m))
        run_supersede(r->a, r->row.task_id, r->row.task_version);
    json_decref(m);
}

/* The row made or read back on the pool, from a copy (admit_row). */
static void s_admit(run_t *r)
{
    r->admit = (dbq_op_t){.work = s_admit_work, .done = s_admit_done};
    run_row_copy(&r->admit_row, &r->row);
    dbq_submit(&r->a->dbq, r->a->pool, r->a->db, &r->admit);
}

static void s_admit_again(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop, (void)t;
    run_t *r = ud;
    r->store_again = NULL;
    s_admit(r);
}

/* What the admitted row says: a duplicate of a finished run (acknowledged),
 * a run superseded or canceled meanwhile, an orphan past its last delivery
 * (dead), or work to do. A running row means its worker died (or stalled
 * past AckWait): this delivery takes over; the version checks keep one
 * effect. */
static void s_admitted(run_t *r)
{
    if (run_state_final(r->row.state)) {
        run_step_release(r, RELEASE_ACK); /* a duplicate of a finished assignment */
        return;
    }
    if (r->newer || r->cancel) { /* the newer run has the task: nothing to give back */
        r->displaced = r->newer;
        run_step_finish(r, RUN_CANCELED, r->newer ? RUN_SUPERSEDED : r->cancel_reason, false);
        return;
    }
    /* Past the last delivery: the last one's worker stopped mid-run. A run
     * that never started (naked at a drain or a stop) has its last try. */
    if (r->msg && jsq_deliveries(r->msg) > (uint64_t)r->a->cfg->max_deliveries &&
        strcmp(r->row.state, RUN_RUNNING) == 0) {
        run_step_reap(r);
        return;
    }
    r->t_admit = now_wall_ms();
    s_choose(r);
}

static void s_admit_done(dbq_op_t *op, int status)
{
    run_t *r = container_of(op, run_t, admit);
    s_admit_take(r, status == 0 && r->admit_rc == 0);
    if (status < 0) {
        log_warn("agents: run %s could not be admitted (stopping); it comes back later",
                 r->row.id);
        run_step_release(r, RELEASE_NAK);
        return;
    }
    if (r->admit_rc < 0) { /* not naked into max_deliver: the fault is ours */
        runlog_store_later(r, r->admit_rc, "its admission", s_admit_again);
        return;
    }
    stats_store(r, true);
    if (r->superseded)
        s_tell_superseded(r);
    s_admitted(r);
}

void run_assigned(agents_t *a, natsMsg *msg)
{
    const char *why;
    json_t *ev = s_parse(msg, &why);
    if (!ev) {
        log_warn("agents: dropping a vapora.tasks.assigned message: %s", why);
        natsMsg_Term(msg, NULL);
        natsMsg_Destroy(msg);
        jsq_done(a->assign_q);
        return;
    }
    run_t *r = s_new(a, msg, ev);
    r->t_recv = now_wall_ms();
    json_decref(ev);
    if (run_find(a, r->row.id)) { /* redelivered while we still run it */
        log_warn("agents: run %s came again (delivery %llu) while it runs here: left to it",
                 r->row.id, (unsigned long long)jsq_deliveries(msg));
        r->msg = NULL;
        natsMsg_Destroy(msg);
        jsq_done(a->assign_q);
        run_step_free(r);
        return;
    }
    a->stats.redeliveries += jsq_deliveries(msg) > 1;
    r->excluded = xcalloc(a->cfg->nagents ? a->cfg->nagents : 1, sizeof *r->excluded);
    r->step = STEP_ADMIT;
    list_push_back(&a->runs, &r->link);
    s_admit(r);
}

/* ---- choice ---- */

static void s_choose_task(const run_t *r, choose_task_t *t)
{
    *t = (choose_task_t){
        .title = json_string_value(json_object_get(r->task, "title")),
        .description = json_string_value(json_object_get(r->task, "description")),
        .type = json_string_value(json_object_get(r->task, "type")),
        .role = r->assigned_role};
}

/* Takes the first ranked agent with a free slot. Returns false when every
 * candidate is full; sets *none when there is no candidate at all. */
static bool s_take_agent(run_t *r, bool *none)
{
    agents_t *a = r->a;
    choose_task_t t;
    s_choose_task(r, &t);
    choice_t c;
    choose_rank(a, &t, r->excluded, &c);
    const agent_def_t *sticky = r->row.agent[0] ? agents_config_find(a->cfg, r->row.agent) : NULL;
    *none = c.n == 0;
    bool got = false;
    for (size_t i = 0; i < c.n && !got; i++) {
        if (sticky && c.defs[i] != sticky)
            continue; /* a retry keeps the agent its run started with */
        if (slots_acquire(a->slots, c.defs[i]->name, c.defs[i]->max_concurrent) == 0) {
            r->agent = c.defs[i];
            r->slot_held = true;
            snprintf(r->row.task_type, sizeof r->row.task_type, "%s", c.task_type);
            got = true;
        }
    }
    if (sticky && !got)
        *none = false; /* wait for that agent */
    choice_clear(&c);
    return got;
}

static void s_choose(run_t *r)
{
    bool none;
    if (s_take_agent(r, &none)) {
        run_step_begin(r);
        return;
    }
    if (none) {
        char why[160];
        snprintf(why, sizeof why, "no agent can take this task (%s%s)",
                 r->assigned_role ? "role " : "every candidate failed it too often",
                 r->assigned_role ? r->assigned_role : "");
        run_step_finish(r, RUN_FAILED, why, false);
        return;
    }
    r->step = STEP_PARKED; /* every candidate is busy: wait, not fail */
    list_remove(&r->link);
    list_push_back(&r->a->parked, &r->link);
}

void run_unpark(agents_t *a)
{
    if (a->stopping)
        return;
    const char *full[16];
    size_t nfull = 0;
    list_for_each_safe(it, nx, &a->parked) {
        run_t *r = list_item(it, run_t, link);
        if (r->cancel) {
            list_remove(&r->link);
            list_push_back(&a->runs, &r->link);
            run_step_finish(r, RUN_CANCELED, r->cancel_reason, false);
            continue;
        }
        /* Runs of one role wait for the same agents: once one of them
         * finds them all busy, the others of this pass need not ask. */
        bool busy = false;
        for (size_t i = 0; r->assigned_role && i < nfull && !busy; i++)
            busy = strcmp(full[i], r->assigned_role) == 0;
        bool none;
        if (busy || !s_take_agent(r, &none)) {
            if (!busy && r->assigned_role && nfull < ARRAY_LEN(full))
                full[nfull++] = r->assigned_role;
            continue;
        }
        list_remove(&r->link);
        list_push_back(&a->runs, &r->link);
        run_step_begin(r);
    }
}

void run_progress(agents_t *a)
{
    uint64_t now = loop_now_ms(a->loop);
    uint64_t every = (uint64_t)a->cfg->ack_wait_s * 1000 / 3;
    list_t *lists[] = {&a->runs, &a->parked};
    for (int l = 0; l < 2; l++)
        list_for_each(it, lists[l]) {
            run_t *r = list_item(it, run_t, link);
            if (r->msg && now - r->progress_ms >= every) {
                natsMsg_InProgress(r->msg, NULL);
                r->progress_ms = now;
            }
        }
}
