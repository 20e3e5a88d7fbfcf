/* routes.c - see routes.h. */
#define _GNU_SOURCE
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bus.h"
#include "choose.h"
#include "identity.h"
#include "parse.h"
#include "roles.h"
#include "run.h"
#include "runlog.h"
#include "utf8.h"
#include "vp_error.h"
#include "watch.h"

#define PAGE_MAX 500
#define PAGE_DEFAULT 50

/* ---- agents ---- */

static const char *s_status(const agents_t *a, unsigned in_flight, unsigned max)
{
    if (!a->assign_q || !jsq_ready(a->assign_q))
        return "offline"; /* no assignment can reach it now */
    return in_flight >= max ? "busy" : "ready";
}

static json_t *s_agent_json(agents_t *a, const agent_def_t *d)
{
    profile_totals_t t;
    profiles_totals(a->profiles, d->name, &t);
    unsigned in_flight = slots_in_flight(a->slots, d->name);
    char at[40] = "";
    if (t.last_run_at) {
        time_t s = (time_t)t.last_run_at;
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:f,s:f,s:I,s:o}", "name", d->name,
                     "role", d->role, "model", d->model, "status",
                     s_status(a, in_flight, d->max_concurrent), "in_flight",
                     (json_int_t)in_flight, "max_concurrent", (json_int_t)d->max_concurrent,
                     "success_rate", t.success_rate, "avg_latency_ms", t.avg_latency_ms,
                     "runs_total", (json_int_t)t.runs, "last_run_at",
                     at[0] ? json_string(at) : json_null());
}

static json_t *s_types_json(const agent_def_t *d)
{
    json_t *t = json_array();
    for (size_t i = 0; i < d->ntask_types; i++)
        json_array_append_new(t, json_string(d->task_types[i]));
    return t;
}

static void s_agents(http_req_t *req, void *ud)
{
    agents_t *a = ud;
    json_t *items = json_array();
    for (size_t i = 0; i < a->cfg->nagents; i++) {
        json_t *j = s_agent_json(a, &a->cfg->agents[i]);
        json_object_set_new(j, "task_types", s_types_json(&a->cfg->agents[i]));
        json_array_append_new(items, j);
    }
    http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

static void s_agent(http_req_t *req, void *ud)
{
    agents_t *a = ud;
    const agent_def_t *d = agents_config_find(a->cfg, http_req_param(req, "name"));
    if (!d) {
        http_reply_error(req, 404, "not_found", "no agent has that name");
        return;
    }
    json_t *j = s_agent_json(a, d);
    json_object_set_new(j, "task_types", s_types_json(d));
    json_object_set_new(j, "max_tokens", json_integer(d->max_tokens));
    json_object_set_new(j, "temperature", json_real(d->temperature));
    json_object_set_new(j, "profile", profiles_json(a->profiles, d->name, (int64_t)time(NULL)));
    http_reply_json(req, 200, j);
}

/* ---- runs: list and read (on the pool) ---- */

typedef struct page_job {
    agents_t *a;
    run_filter_t f;
    char task_id[64], agent[64], state[16];
    run_row_t *rows; /* room for f.limit */
    size_t n;
    bool more;
    int rc;
} page_job_t;

static bool s_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n < 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static bool s_state_ok(const char *s)
{
    static const char *const states[] = {RUN_QUEUED, RUN_RUNNING, RUN_SUCCEEDED,
                                         RUN_FAILED, RUN_CANCELED, RUN_DEAD};
    for (size_t i = 0; i < ARRAY_LEN(states); i++)
        if (strcmp(s, states[i]) == 0)
            return true;
    return false;
}

/* Reads the filters of GET /runs into j; false after replying 400. */
static bool s_filters(http_req_t *req, page_job_t *j)
{
    const char *task = http_req_query(req, "task_id"), *agent = http_req_query(req, "agent");
    const char *state = http_req_query(req, "state"), *lim = http_req_query(req, "limit");
    const char *cur = http_req_query(req, "cursor");
    long limit = PAGE_DEFAULT, after = 0;
    const char *bad = task && !s_id_ok(task)      ? "invalid_task_id"
                      : agent && !s_id_ok(agent)  ? "invalid_agent"
                      : state && !s_state_ok(state) ? "invalid_state"
                      : lim && parse_long(lim, 1, PAGE_MAX, &limit) < 0 ? "invalid_limit"
                      : cur && (strncmp(cur, "r", 1) != 0 ||
                                parse_long(cur + 1, 1, INT64_MAX / 2, &after) < 0)
                          ? "invalid_cursor"
                          : NULL;
    if (bad) {
        http_reply_error(req, 400, bad, "%s: not a valid value of this filter", bad + 8);
        return false;
    }
    snprintf(j->task_id, sizeof j->task_id, "%s", task ? task : "");
    snprintf(j->agent, sizeof j->agent, "%s", agent ? agent : "");
    snprintf(j->state, sizeof j->state, "%s", state ? state : "");
    j->f = (run_filter_t){.task_id = task ? j->task_id : NULL, .agent = agent ? j->agent : NULL,
                          .state = state ? j->state : NULL, .after = after, .limit = (int)limit};
    return true;
}

static void s_page_work(void *arg)
{
    page_job_t *j = arg;
    j->rc = adb_run_page(j->a->db, &j->f, j->rows, &j->n, &j->more);
}

static void s_page_done(http_req_t *req, void *arg, int status)
{
    page_job_t *j = arg;
    if (status < 0 || j->rc < 0) {
        http_reply_error(req, 503, "store_unavailable", "the runs could not be read");
    } else {
        json_t *items = json_array();
        for (size_t i = 0; i < j->n; i++)
            json_array_append_new(items, runlog_json(&j->rows[i], false));
        char next[32];
        snprintf(next, sizeof next, "r%lld", j->n ? (long long)j->rows[j->n - 1].seq : 0LL);
        http_reply_json(req, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor",
                                            j->more ? json_string(next) : json_null()));
    }
    for (size_t i = 0; i < j->n; i++)
        run_row_clear(&j->rows[i]);
    free(j->rows);
    free(j);
}

static void s_runs(http_req_t *req, void *ud)
{
    page_job_t *j = xcalloc(1, sizeof *j);
    j->a = ud;
    if (!s_filters(req, j)) {
        free(j);
        return;
    }
    j->rows = xcalloc((size_t)j->f.limit, sizeof *j->rows);
    if (http_req_run_blocking(req, j->a->pool, s_page_work, s_page_done, j) < 0) {
        free(j->rows);
        free(j);
    }
}

/* One run read on the pool, then an action with it on the loop. */
typedef struct one_job {
    agents_t *a;
    char id[32];
    run_row_t row;
    int rc;
    void (*then)(http_req_t *req, struct one_job *j);
} one_job_t;

static void s_one_work(void *arg)
{
    one_job_t *j = arg;
    j->rc = adb_run_get(j->a->db, j->id, &j->row);
}

static void s_one_done(http_req_t *req, void *arg, int status)
{
    one_job_t *j = arg;
    if (status < 0 || (j->rc < 0 && j->rc != VP_ENOTFOUND))
        http_reply_error(req, 503, "store_unavailable", "the run could not be read");
    else if (j->rc == VP_ENOTFOUND)
        http_reply_error(req, 404, "not_found", "no run has that id");
    else
        j->then(req, j);
    run_row_clear(&j->row);
    free(j);
}

/* Reads run {id}, then calls then(req, job) (the job is freed after). */
static void s_with_run(http_req_t *req, agents_t *a,
                       void (*then)(http_req_t *req, one_job_t *j))
{
    const char *id = http_req_param(req, "id");
    if (!s_id_ok(id) || strlen(id) >= 32) {
        http_reply_error(req, 404, "not_found", "no run has that id");
        return;
    }
    one_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->then = then;
    snprintf(j->id, sizeof j->id, "%s", id);
    if (http_req_run_blocking(req, a->pool, s_one_work, s_one_done, j) < 0)
        free(j);
}

static void s_run_reply(http_req_t *req, one_job_t *j)
{
    run_t *live = run_find(j->a, j->row.id);
    const run_row_t *row = live ? &live->row : &j->row;
    json_t *body = runlog_json(row, true);
    if (live && live->out.len) /* a running run's output so far */
        json_object_set_new(body, "content", json_stringn(live->out.data, live->out.len));
    http_reply_json(req, 200, body);
}

static void s_run(http_req_t *req, void *ud)
{
    s_with_run(req, ud, s_run_reply);
}

/* ---- cancel and retry ---- */

typedef struct act_job {
    agents_t *a;
    http_req_t *req;
    run_row_t row;
    bool changed;
    int rc;
} act_job_t;

static void s_cancel_work(void *arg)
{
    act_job_t *j = arg;
    j->rc = adb_run_cancel(j->a->db, j->row.id, "canceled through the API", &j->changed);
}

/* A canceled run that had moved its task (it waited between two tries):
 * the task goes back to todo if it is still the run's. */
static void s_revert_patched(int status, json_t *body, const char *err, void *ud)
{
    (void)status;
    (void)body;
    (void)err;
    (void)ud;
}

static void s_revert_read(int status, json_t *task, const char *err, void *ud)
{
    (void)err;
    act_job_t *j = ud;
    const char *st = json_string_value(json_object_get(task, "status"));
    const char *ag = json_string_value(json_object_get(task, "assigned_agent"));
    if (status == 200 && st && ag && strcmp(st, "in-progress") == 0 &&
        strcmp(ag, j->row.agent) == 0) {
        json_t *p = json_pack("{s:s,s:n}", "status", "todo", "assigned_agent");
        kanban_patch_task(j->a->kanban, j->row.task_id,
                          json_integer_value(json_object_get(task, "version")), p,
                          s_revert_patched, NULL);
        json_decref(p);
    }
    run_row_clear(&j->row);
    free(j);
}

/* Every worker hears the cancel; the one running it aborts the call at
 * once. Sent once the row says canceled: a worker that admits the run
 * meanwhile either reads that or holds the run when this comes. */
static void s_cancel_tell(agents_t *a, const char *run_id)
{
    json_t *m = json_pack("{s:s,s:s}", "run_id", run_id, "reason", "canceled through the API");
    if (!bus_publish(a->bus, BUS_CANCEL, m))
        run_cancel(a, run_id, NULL, "canceled through the API");
    json_decref(m);
}

static void s_cancel_done(http_req_t *req, void *arg, int status)
{
    act_job_t *j = arg;
    if (status < 0 || j->rc < 0) {
        http_reply_error(req, 503, "store_unavailable", "the run could not be canceled");
    } else {
        s_cancel_tell(j->a, j->row.id);
        if (j->changed)
            snprintf(j->row.state, sizeof j->row.state, RUN_CANCELED);
        http_reply_json(req, 202, runlog_json(&j->row, false));
        if (j->changed && j->row.attempts > 0) {
            kanban_get_task(j->a->kanban, j->row.task_id, s_revert_read, j);
            return;
        }
    }
    run_row_clear(&j->row);
    free(j);
}

/* The run is not final: its row is marked canceled, so that a delivery
 * still to come only acknowledges it (a run between two tries, or whose
 * worker died with it), then every worker hears the cancel. A run that
 * had moved its task gives it back. */
static void s_cancel_run(http_req_t *req, one_job_t *one)
{
    agents_t *a = one->a;
    if (run_state_final(one->row.state)) {
        http_reply_error(req, 409, "run_finished", "the run is %s already", one->row.state);
        return;
    }
    act_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->row = one->row;
    one->row.error = one->row.content = NULL; /* moved to j */
    if (http_req_run_blocking(req, a->pool, s_cancel_work, s_cancel_done, j) < 0) {
        run_row_clear(&j->row);
        free(j);
    }
}

static void s_cancel(http_req_t *req, void *ud)
{
    s_with_run(req, ud, s_cancel_run);
}

static void s_retry_work(void *arg)
{
    act_job_t *j = arg;
    j->rc = adb_run_requeue(j->a->db, j->row.id, &j->changed);
}

/* A retry that could not go out puts the run back as it was. */
typedef struct unqueue {
    dbq_op_t op;
    run_row_t was;
} unqueue_t;

static void s_unqueue_work(dbq_op_t *op, adb_t *db)
{
    adb_run_unqueue(db, &container_of(op, unqueue_t, op)->was);
}

static void s_unqueue_done(dbq_op_t *op, int status)
{
    (void)status;
    unqueue_t *u = container_of(op, unqueue_t, op);
    run_row_clear(&u->was);
    free(u);
}

static void s_unqueue(agents_t *a, const run_row_t *was)
{
    unqueue_t *u = xcalloc(1, sizeof *u);
    u->op = (dbq_op_t){.work = s_unqueue_work, .done = s_unqueue_done};
    run_row_copy(&u->was, was);
    dbq_submit(&a->dbq, a->pool, a->db, &u->op);
}

/* An assignment of task that names run_id. */
static natsStatus s_retry_publish(natsConnection *nc, json_t *task, const char *run_id)
{
    json_t *ev = json_pack("{s:s,s:O,s:O,s:O,s:s}", "type", "task.assigned", "id",
                           json_object_get(task, "id"), "project_id",
                           json_object_get(task, "project_id"), "data", task, "run_id",
                           run_id);
    char *txt = json_dumps(ev, JSON_COMPACT);
    natsStatus st = natsConnection_PublishString(nc, "vapora.tasks.assigned", txt);
    free(txt);
    json_decref(ev);
    return st;
}

/* The task as it is now goes out as a new assignment that names the run. */
static void s_retry_send(int status, json_t *task, const char *err, void *ud)
{
    (void)err;
    act_job_t *j = ud;
    http_req_t *req = j->req;
    natsc_t *n = worker_nats(j->a->w);
    natsConnection *nc = n ? natsc_conn(n) : NULL;
    natsStatus st = status == 200 && nc ? s_retry_publish(nc, task, j->row.id) : NATS_OK;
    if (status != 200 || !nc || st != NATS_OK) { /* it did not go out */
        s_unqueue(j->a, &j->row);
        if (status == 404)
            http_reply_error(req, 409, "task_gone", "the run's task was deleted");
        else if (st != NATS_OK)
            http_reply_error(req, 503, "unavailable", "the retry could not be sent (%s); retry",
                             natsStatus_GetText(st));
        else
            http_reply_error(req, 503, "unavailable",
                             "the backend or NATS cannot be reached; retry");
    } else {
        snprintf(j->row.state, sizeof j->row.state, RUN_QUEUED);
        free(j->row.error);
        j->row.error = NULL;
        http_reply_json(req, 202, runlog_json(&j->row, false));
    }
    run_row_clear(&j->row);
    free(j);
}

static void s_retry_done(http_req_t *req, void *arg, int status)
{
    act_job_t *j = arg;
    if (status < 0 || j->rc < 0 || !j->changed) {
        if (status < 0 || j->rc < 0)
            http_reply_error(req, 503, "store_unavailable", "the run could not be read");
        else
            http_reply_error(req, 409, "not_retriable",
                             "only a failed or dead run, the latest of its task, is retried");
        run_row_clear(&j->row);
        free(j);
        return;
    }
    j->req = req;
    kanban_get_task(j->a->kanban, j->row.task_id, s_retry_send, j);
}

static void s_retry_run(http_req_t *req, one_job_t *one)
{
    act_job_t *j = xcalloc(1, sizeof *j);
    j->a = one->a;
    j->row = one->row;
    one->row.error = one->row.content = NULL;
    if (http_req_run_blocking(req, j->a->pool, s_retry_work, s_retry_done, j) < 0) {
        run_row_clear(&j->row);
        free(j);
    }
}

static void s_retry(http_req_t *req, void *ud)
{
    s_with_run(req, ud, s_retry_run);
}

/* ---- the assignment preview ---- */

static const char *s_preview_invalid(const json_t *b, choose_task_t *t)
{
    static const char *const known[] = {"title", "description", "type", "role"};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < ARRAY_LEN(known); i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok)
            return "unknown_field";
    }
    json_t *title = json_object_get(b, "title"), *desc = json_object_get(b, "description");
    json_t *type = json_object_get(b, "type"), *role = json_object_get(b, "role");
    /* The backend's limits, in characters as it counts them. */
    if (!json_is_string(title) || json_string_length(title) == 0 ||
        utf8_chars(json_string_value(title)) > 500)
        return "invalid_title";
    if (desc && (!json_is_string(desc) || utf8_chars(json_string_value(desc)) > 100000))
        return "invalid_description";
    if (type && (!json_is_string(type) || json_string_length(type) > 63))
        return "invalid_type";
    if (role && !json_is_null(role) && !roles_valid(json_string_value(role)))
        return "invalid_role";
    *t = (choose_task_t){json_string_value(title), json_string_value(desc),
                         json_string_value(type), json_string_value(role)};
    return NULL;
}

static void s_preview(http_req_t *req, void *ud)
{
    agents_t *a = ud;
    const json_t *b = http_req_json(req);
    choose_task_t t;
    const char *bad = s_preview_invalid(b, &t);
    if (bad) {
        http_reply_error(req, 422, bad, "%s: see the preview's fields in docs/agents.md",
                         strcmp(bad, "unknown_field") ? bad + 8 : "a field is unknown");
        return;
    }
    choice_t c;
    choose_rank(a, &t, NULL, &c);
    http_reply_json(req, 200, choice_json(&c));
    choice_clear(&c);
}

/* ---- routes, each behind the caller's role ---- */

typedef struct guarded {
    agents_t *a;
    http_handler_fn fn;
    int min_role;
} guarded_t;

static guarded_t s_guards[16];
static size_t s_nguards;

static void s_authorized(http_req_t *req, void *ud)
{
    guarded_t *g = ud;
    g->fn(req, g->a);
}

static void s_guard(http_req_t *req, void *ud)
{
    guarded_t *g = ud;
    identity_check(g->a->identity, req, g->min_role, s_authorized, g);
}

static void s_route(agents_t *a, const char *method, const char *path, unsigned flags,
                    http_handler_fn fn, int min_role)
{
    VP_ASSERT(s_nguards < ARRAY_LEN(s_guards));
    guarded_t *g = &s_guards[s_nguards++];
    *g = (guarded_t){a, fn, min_role};
    http_route(worker_http(a->w), method, path, flags, s_guard, g);
}

static void s_stream(http_req_t *req, void *ud)
{
    watch_serve(ud, req, http_req_param(req, "id"));
}

void routes_add(agents_t *a)
{
    s_nguards = 0;
    s_route(a, "GET", "/api/v1/agents", 0, s_agents, ROLE_VIEWER);
    s_route(a, "GET", "/api/v1/agents/{name}", 0, s_agent, ROLE_VIEWER);
    s_route(a, "GET", "/api/v1/runs", 0, s_runs, ROLE_VIEWER);
    s_route(a, "GET", "/api/v1/runs/{id}", 0, s_run, ROLE_VIEWER);
    s_route(a, "GET", "/api/v1/runs/{id}/stream", 0, s_stream, ROLE_VIEWER);
    s_route(a, "POST", "/api/v1/runs/{id}/cancel", HTTP_JSON_OPTIONAL, s_cancel,
            ROLE_MEMBER);
    s_route(a, "POST", "/api/v1/runs/{id}/retry", HTTP_JSON_OPTIONAL, s_retry,
            ROLE_MEMBER);
    s_route(a, "POST", "/api/v1/assignments/preview", HTTP_JSON_BODY, s_preview,
            ROLE_VIEWER);
}
