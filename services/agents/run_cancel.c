/* run_cancel.c - a run's end from outside its steps: a cancel (the API,
 * the task archived or deleted, a newer assignment superseding it), the
 * worker letting go of every run when it stops or drains, and the
 * watchers of a run's output. The declarations are in run.h.
 *
 * Loop thread only. */
#define _GNU_SOURCE
#include <string.h>

#include "alloc.h"
#include "run.h"
#include "run_step.h"

static bool s_match(const run_t *r, const char *id, const char *task_id)
{
    return id ? strcmp(r->row.id, id) == 0 : strcmp(r->row.task_id, task_id) == 0;
}

static bool s_cancel_one(run_t *r, const char *why)
{
    if (r->cancel || r->step == STEP_FINAL || r->step == STEP_REVERT)
        return false;
    r->cancel = true;
    r->cancel_reason = xstrdup(why);
    if (r->step == STEP_PARKED) {
        list_remove(&r->link);
        list_push_back(&r->a->runs, &r->link);
        run_step_finish(r, RUN_CANCELED, why, false);
    } else if (r->step == STEP_CALL) {
        llm_cancel(r->a->curlm, &r->call); /* the router sees the close at once */
        run_step_finish(r, RUN_CANCELED, why, true);
    }
    return true; /* other steps see r->cancel when their answer comes */
}

bool run_cancel(agents_t *a, const char *id, const char *task_id, const char *why)
{
    bool any = false;
    list_t *lists[] = {&a->runs, &a->parked};
    for (int l = 0; l < 2; l++)
        list_for_each_safe(it, nx, lists[l]) {
            run_t *r = list_item(it, run_t, link);
            if (s_match(r, id, task_id))
                any = s_cancel_one(r, why) || any;
        }
    return any;
}

void run_supersede(agents_t *a, const char *task_id, int64_t version)
{
    list_t *lists[] = {&a->runs, &a->parked};
    for (int l = 0; l < 2; l++)
        list_for_each_safe(it, nx, lists[l]) {
            run_t *r = list_item(it, run_t, link);
            if (strcmp(r->row.task_id, task_id) != 0 || r->row.task_version >= version)
                continue;
            r->displaced = true;
            s_cancel_one(r, RUN_SUPERSEDED);
        }
}

void run_abort_all(agents_t *a)
{
    a->stopping = true;
    list_t *lists[] = {&a->parked, &a->runs};
    for (int l = 0; l < 2; l++)
        list_for_each_safe(it, nx, lists[l])
            run_step_release(list_item(it, run_t, link), RELEASE_NAK);
}

void run_release_parked(agents_t *a)
{
    a->stopping = true; /* nothing new starts here */
    list_for_each_safe(it, nx, &a->parked)
        run_step_release(list_item(it, run_t, link), RELEASE_NAK);
}

void run_watch(run_t *r, run_watcher_t *w)
{
    list_push_back(&r->watchers, &w->link);
}

void run_unwatch(run_watcher_t *w)
{
    list_remove(&w->link);
}
