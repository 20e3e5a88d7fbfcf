/* outcome.c - see outcome.h. */
#define _GNU_SOURCE
#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bus.h"
#include "log.h"
#include "run.h"
#include "vp_error.h"

typedef struct learn {
    pool_work_t work;
    agents_t *a;
    jsq_t *q;
    natsMsg *msg;
    char run_id[32];
    char task_id[64]; /* the task of the event: the run must be of it */
    bool accepted;
    int rc;
} learn_t;

#define OUTCOME_RETRY_MAX_MS 10000 /* the longest wait of an outcome not yet written */

/* Not acknowledged: the agents' database failed (a full disk) or the pool
 * was full; it comes again after 1 s, 2 s, ... up to OUTCOME_RETRY_MAX_MS,
 * as often as it takes (the consumer has no max_deliver). */
static void s_done_with(jsq_t *q, natsMsg *msg, bool ack)
{
    if (ack) {
        natsMsg_Ack(msg, NULL);
    } else {
        uint64_t n = jsq_deliveries(msg);
        int64_t ms = n < OUTCOME_RETRY_MAX_MS / 1000 ? (int64_t)(n ? n : 1) * 1000
                                                     : OUTCOME_RETRY_MAX_MS;
        natsMsg_NakWithDelay(msg, ms, NULL);
    }
    natsMsg_Destroy(msg);
    jsq_done(q);
}

static void s_learn_work(pool_work_t *w)
{
    learn_t *l = container_of(w, learn_t, work);
    run_row_t r = {0};
    bool changed = false;
    l->rc = adb_run_get(l->a->db, l->run_id, &r);
    if (l->rc == 0 && strcmp(r.task_id, l->task_id) != 0)
        l->rc = VP_ENOTFOUND; /* a result naming another task's run teaches nothing */
    if (l->rc == 0)
        l->rc = adb_run_set_outcome(l->a->db, l->run_id, l->accepted ? "accepted" : "rejected",
                                    &changed);
    if (l->rc == 0 && changed) {
        exec_row_t e = {.success = l->accepted, .latency_ms = r.latency_ms,
                        .cost_usd = r.cost_usd, .at = (int64_t)time(NULL)};
        snprintf(e.run_id, sizeof e.run_id, "%s", r.id);
        snprintf(e.agent, sizeof e.agent, "%s", r.agent);
        snprintf(e.task_type, sizeof e.task_type, "%s", r.task_type);
        bool added;
        l->rc = adb_exec_add(l->a->db, &e, r.task_id, &added);
    }
    run_row_clear(&r);
}

static void s_learn_done(pool_work_t *w, int status)
{
    learn_t *l = container_of(w, learn_t, work);
    /* An unknown run (not ours, or made by hand) is nothing to learn. */
    bool ok = status == 0 && (l->rc == 0 || l->rc == VP_ENOTFOUND);
    s_done_with(l->q, l->msg, ok);
    free(l);
}

static void s_learn(agents_t *a, jsq_t *q, natsMsg *msg, const char *task_id,
                    const char *run_id, bool accepted)
{
    learn_t *l = xcalloc(1, sizeof *l);
    *l = (learn_t){.a = a, .q = q, .msg = msg, .accepted = accepted};
    snprintf(l->run_id, sizeof l->run_id, "%s", run_id);
    snprintf(l->task_id, sizeof l->task_id, "%s", task_id);
    if (pool_submit(a->pool, &l->work, s_learn_work, s_learn_done) < 0) {
        free(l);
        s_done_with(q, msg, false);
    }
}

static void s_cancel_task(agents_t *a, const char *task_id, const char *why)
{
    json_t *m = json_pack("{s:s,s:s}", "task_id", task_id, "reason", why);
    if (!bus_publish(a->bus, BUS_CANCEL, m))
        run_cancel(a, NULL, task_id, why);
    json_decref(m);
}

/* Most task updates teach nothing and cancel nothing (one without a
 * result or an archive): a look for the few words
 * that matter spares parsing them. */
static bool s_may_matter(natsMsg *msg)
{
    const char *d = natsMsg_GetData(msg);
    size_t n = (size_t)natsMsg_GetDataLength(msg);
    return memmem(d, n, "\"task.deleted\"", 14) || memmem(d, n, "\"run_id\"", 8) ||
           memmem(d, n, "\"archived\"", 10);
}

void outcome_on_msg(agents_t *a, jsq_t *q, natsMsg *msg)
{
    if (!s_may_matter(msg)) {
        s_done_with(q, msg, true);
        return;
    }
    json_t *ev = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *id = json_string_value(json_object_get(ev, "id"));
    json_t *task = json_object_get(ev, "data");
    const char *status = json_string_value(json_object_get(task, "status"));
    const char *run_id =
        json_string_value(json_object_get(json_object_get(task, "result"), "run_id"));
    bool keep = false;
    if (type && id && strcmp(type, "task.deleted") == 0) {
        s_cancel_task(a, id, "the task was deleted");
    } else if (type && id && status && strcmp(type, "task.updated") == 0) {
        if (strcmp(status, "archived") == 0)
            s_cancel_task(a, id, "the task was archived");
        bool done = strcmp(status, "done") == 0;
        if (run_id && strlen(run_id) < 32 && strlen(id) < 64 &&
            (done || strcmp(status, "in-progress") == 0)) {
            s_learn(a, q, msg, id, run_id, done);
            keep = true;
        }
    }
    json_decref(ev);
    if (!keep)
        s_done_with(q, msg, true);
}
