/* run_step.c - see run_step.h. */
#define _GNU_SOURCE
#include "run_step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "now.h"
#include "prompt.h"
#include "runlog.h"
#include "stats.h"

#define RUN_WRITE_TRIES 5      /* a backend write that finds it unreachable */
#define RUN_RECHECKS 3         /* conflicts resolved by reading the task again */
#define RUN_REREAD_MS 300      /* the wait before a re-read when another agent has it */

static const int64_t s_backoff_ms[] = {1000, 5000, 30000, 120000, 600000};

enum { CHECK_START, CHECK_FINISH, CHECK_REVERT };

static void s_set_error(run_t *r, const char *error)
{
    free(r->row.error);
    r->row.error = error ? xstrdup(error) : NULL;
}

/* ---- letting go ---- */

void run_step_free(run_t *r)
{
    list_remove(&r->link); /* a run is never freed where the lists still reach it */
    list_for_each_safe(it, nx, &r->watchers) {
        run_watcher_t *w = list_item(it, run_watcher_t, link);
        list_remove(it);
        w->fn(r, NULL, 0, w->ud);
    }
    loop_cancel_timer(r->a->loop, &r->again);
    loop_cancel_timer(r->a->loop, &r->store_again);
    json_decref(r->task);
    json_decref(r->blockers);
    free(r->excluded);
    free(r->cancel_reason);
    free(r->call_error);
    sbuf_free(&r->out);
    run_row_clear(&r->row);
    free(r);
}

static void s_let_go_of_msg(run_t *r, int how)
{
    agents_t *a = r->a;
    if (!r->msg)
        return;
    uint64_t n = jsq_deliveries(r->msg);
    size_t i = n > 0 ? (size_t)n - 1 : 0;
    if (i >= ARRAY_LEN(s_backoff_ms))
        i = ARRAY_LEN(s_backoff_ms) - 1;
    if (how == RELEASE_ACK)
        natsMsg_Ack(r->msg, NULL);
    else if (how == RELEASE_TERM)
        natsMsg_Term(r->msg, NULL);
    else
        natsMsg_NakWithDelay(r->msg, how == RELEASE_NAK ? 1000 : s_backoff_ms[i], NULL);
    natsMsg_Destroy(r->msg);
    r->msg = NULL;
    jsq_done(a->assign_q);
}

static void s_free_when_saved(run_t *r, bool saved)
{
    (void)saved;
    run_step_free(r);
}

void run_step_release(run_t *r, int how)
{
    agents_t *a = r->a;
    if (r->call)
        llm_cancel(a->curlm, &r->call);
    loop_cancel_timer(a->loop, &r->again); /* nothing of it runs on */
    loop_cancel_timer(a->loop, &r->store_again);
    list_remove(&r->link);
    s_let_go_of_msg(r, how);
    bool freed = r->slot_held;
    if (r->slot_held)
        slots_release(a->slots, r->agent->name);
    r->slot_held = false;
    r->final_save = false; /* its delivery is let go: nothing waits for the save */
    if (r->saving)
        r->on_saved = s_free_when_saved; /* a save still reads it */
    else
        run_step_free(r);
    if (freed) /* once per loop turn, not per run (main.c): a burst frees many */
        a->unpark_due = true;
}

/* ---- the end ---- */

/* Not saved (the pool stopped first, or the row is gone): the next
 * delivery records the end. */
static void s_final_saved(run_t *r, bool saved)
{
    if (!saved)
        run_step_release(r, RELEASE_NAK);
    else
        run_step_release(r, strcmp(r->row.state, RUN_DEAD) == 0 ? RELEASE_TERM : RELEASE_ACK);
}

static void s_count(agents_t *a, const run_row_t *w)
{
    if (strcmp(w->state, RUN_SUCCEEDED) == 0)
        a->stats.succeeded++;
    else if (strcmp(w->state, RUN_FAILED) == 0)
        a->stats.failed++;
    else if (strcmp(w->state, RUN_CANCELED) == 0)
        a->stats.canceled++;
    else if (strcmp(w->state, RUN_DEAD) == 0)
        a->stats.dead++;
    stats_run_state(a, w);
}

static void s_final(run_t *r)
{
    run_row_t *w = &r->row;
    w->finished_ms = now_wall_ms();
    s_count(r->a, w);
    runlog_event(r);
    bool failed = strcmp(w->state, RUN_FAILED) == 0 || strcmp(w->state, RUN_DEAD) == 0;
    exec_row_t e = {.success = false, .latency_ms = w->latency_ms, .cost_usd = w->cost_usd,
                    .at = w->finished_ms / 1000};
    snprintf(e.run_id, sizeof e.run_id, "%s", w->id);
    snprintf(e.agent, sizeof e.agent, "%s", w->agent);
    snprintf(e.task_type, sizeof e.task_type, "%s", w->task_type);
    runlog_final(r, failed && w->agent[0] ? &e : NULL, s_final_saved);
}

static void s_patch_revert(run_t *r);

void run_step_finish(run_t *r, const char *state, const char *error, bool revert)
{
    r->step = STEP_FINAL;
    snprintf(r->row.state, sizeof r->row.state, "%s", state);
    s_set_error(r, error);
    if (revert && r->moved) {
        r->step = STEP_REVERT;
        r->rechecks = 0;
        s_patch_revert(r);
        return;
    }
    s_final(r);
}

/* A run asked to stop (canceled, superseded) goes no further, nor to
 * another delivery (its row says canceled): it ends canceled, giving the
 * task back if it moved it (a superseded run only at the version it wrote:
 * s_revert_done). Whether it was asked. */
static bool s_stopped(run_t *r)
{
    if (!r->cancel)
        return false;
    run_step_finish(r, RUN_CANCELED, r->cancel_reason, true);
    return true;
}

/* A failure worth another delivery, or the last one. */
static void s_retry_later(run_t *r, const char *error)
{
    if (s_stopped(r))
        return;
    uint64_t n = r->msg ? jsq_deliveries(r->msg) : 0;
    bool last = n >= (uint64_t)r->a->cfg->max_deliveries;
    bool costly = r->agent && r->row.cost_usd >= r->agent->max_cost_usd;
    if (last || costly) {
        char why[600];
        snprintf(why, sizeof why, "%s (%s)", error,
                 costly ? "the run's cost limit is reached" : "no delivery left");
        run_step_finish(r, costly ? RUN_FAILED : RUN_DEAD, why, true);
        return;
    }
    snprintf(r->row.state, sizeof r->row.state, RUN_QUEUED);
    s_set_error(r, error);
    runlog_save(r);
    runlog_event(r);
    run_step_release(r, RELEASE_RETRY);
}

/* ---- reading the task again after a conflict ---- */

static void s_patch_start(run_t *r);
static void s_patch_finish(run_t *r);
static void s_blockers(run_t *r);

static const char *s_field(const json_t *t, const char *k)
{
    const char *v = json_string_value(json_object_get(t, k));
    return v ? v : "";
}

static bool s_ours(const run_t *r, const json_t *t)
{
    return strcmp(s_field(t, "status"), "in-progress") == 0 && r->agent &&
           strcmp(s_field(t, "assigned_agent"), r->agent->name) == 0;
}

static void s_go_on(run_t *r);

static void s_resume(run_t *r, int what)
{
    if (what == CHECK_START)
        s_go_on(r);
    else if (what == CHECK_FINISH)
        s_patch_finish(r);
    else
        s_patch_revert(r);
}

static void s_recheck(run_t *r, int what);

static void s_reread_fire(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop, (void)t;
    run_t *r = ud;
    r->again = NULL;
    s_recheck(r, CHECK_START);
}

/* The task is in-progress with another agent: an older run of it, which
 * this one supersedes, gives it back when its cancel reaches it. */
static void s_reread_later(run_t *r)
{
    r->again = loop_add_timer(r->a->loop, RUN_REREAD_MS, 0, s_reread_fire, r);
}

/* Takes t (a reference) as the run's task; assigned_role points into it. */
static void s_set_task(run_t *r, json_t *t)
{
    json_decref(r->task);
    r->task = t;
    r->assigned_role = json_string_value(json_object_get(t, "assigned_role"));
}

/* The task was edited since its assignment (a run that waited for an
 * agent, say): the prompt is made from it as it is now, so a call started
 * from the assignment's copy is closed, to start again once it is ours. */
static void s_fresh_task(run_t *r, const json_t *t)
{
    s_set_task(r, json_deep_copy(t));
    llm_cancel(r->a->curlm, &r->call);
    r->call_done = false;
    sbuf_reset(&r->out);
}

/* A run asked to stop takes no task over: a superseded one leaves it to
 * the newer run; another gives it back if it holds it. Whether it did. */
static bool s_judge_stopping(run_t *r, int what)
{
    if (r->displaced && what == CHECK_REVERT)
        s_final(r);
    else if (r->displaced)
        run_step_finish(r, RUN_CANCELED, RUN_SUPERSEDED, false);
    else if (r->cancel && what != CHECK_REVERT)
        run_step_finish(r, RUN_CANCELED, r->cancel_reason, true);
    else
        return false;
    return true;
}

/* What the task says now decides: our result is there already; it is ours
 * still (go on with its version); it is still waiting for us (start again
 * with its version); or it moved on without us. */
static void s_judge(run_t *r, int what, const json_t *t)
{
    const json_t *res = json_object_get(t, "result");
    int64_t v = json_integer_value(json_object_get(t, "version"));
    bool again = ++r->rechecks <= RUN_RECHECKS;
    if (strcmp(s_field(res, "run_id"), r->row.id) == 0) {
        run_step_finish(r, RUN_SUCCEEDED, NULL, false);
    } else if (s_judge_stopping(r, what)) {
        return;
    } else if (what == CHECK_REVERT) {
        if (again && s_ours(r, t))
            r->version = v, s_resume(r, what);
        else
            s_final(r); /* it moved on: nothing to put back */
    } else if (again && s_ours(r, t) && what == CHECK_START && r->row.attempts == 1 &&
               !r->reread) {
        /* Never started before, yet the task is in-progress with our agent:
         * our own write whose answer was lost, or an older run of the same
         * agent that this one supersedes, about to give it back. */
        r->reread = true;
        s_reread_later(r);
    } else if (again && s_ours(r, t)) {
        r->version = v;
        r->moved = true;
        s_resume(r, what);
    } else if (again && what == CHECK_START && strcmp(s_field(t, "status"), "todo") == 0 &&
               strcmp(s_field(t, "assigned_role"), r->assigned_role ? r->assigned_role : "") ==
                   0) {
        r->version = v;
        s_fresh_task(r, t);
        s_patch_start(r);
    } else if (again && what == CHECK_START && strcmp(s_field(t, "status"), "in-progress") == 0) {
        s_reread_later(r); /* maybe a run this one supersedes, on its way out */
    } else {
        char why[160];
        snprintf(why, sizeof why, "the task changed meanwhile (now %s, version %lld)",
                 s_field(t, "status"), (long long)v);
        run_step_finish(r, RUN_CANCELED, why, false);
    }
}

static void s_recheck_done(int status, json_t *body, const char *err, void *ud)
{
    run_t *r = ud;
    int what = r->check_what;
    if (status == 404)
        run_step_finish(r, RUN_CANCELED, "the task was deleted", false);
    else if (status == 200)
        s_judge(r, what, body);
    else if (what == CHECK_REVERT)
        s_final(r);
    else
        s_retry_later(r, status ? "the backend refused to read the task" : err);
}

static void s_recheck(run_t *r, int what)
{
    r->check_what = what;
    kanban_get_task(r->a->kanban, r->row.task_id, s_recheck_done, r);
}

/* ---- backend writes that find the backend away are tried again ---- */

static void s_again_fire(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    run_t *r = ud;
    r->again = NULL;
    if (r->step == STEP_START)
        s_patch_start(r);
    else if (r->step == STEP_FINISH)
        s_patch_finish(r);
    else
        s_patch_revert(r);
}

/* Returns true when the write will be tried again later. */
static bool s_try_again(run_t *r)
{
    if (++r->tries > RUN_WRITE_TRIES)
        return false;
    r->again = loop_add_timer(r->a->loop, 200u << r->tries, 0, s_again_fire, r);
    return true;
}

/* ---- start: the task in-progress with our agent ---- */

/* A backend answer that is no verdict on the write: unreachable, 5xx, or
 * our own login refused. */
static bool s_transient(int status)
{
    return status == 0 || status >= 500 || status == 401 || status == 429;
}

static const char *s_backend_error(const json_t *body, const char *dflt)
{
    const char *m = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    return m ? m : dflt;
}

static void s_after_call(run_t *r);
static void s_call_start(run_t *r);

/* The task is ours: the call started beside the write answered already,
 * or goes on, or (a task with blockers) starts once their results are in. */
static void s_go_on(run_t *r)
{
    if (r->call_done)
        s_after_call(r);
    else if (r->call)
        r->step = STEP_CALL;
    else
        s_blockers(r);
}

static void s_start_done(int status, json_t *body, const char *err, void *ud)
{
    run_t *r = ud;
    if (status == 200) {
        r->t_start = now_wall_ms();
        r->moved = true;
        r->version = json_integer_value(json_object_get(body, "version"));
        s_set_task(r, json_incref(body));
    }
    const char *code = s_field(json_object_get(body, "error"), "code");
    /* A conflict is read again (the task may be ours still): the call
     * started beside the write waits for the verdict; anything else that is
     * not a 200 closes it. */
    if (r->cancel || (status != 200 && status != 412 && status != 409))
        llm_cancel(r->a->curlm, &r->call);
    if (r->cancel)
        run_step_finish(r, RUN_CANCELED, r->cancel_reason, true);
    else if (status == 200)
        s_go_on(r);
    else if (status == 404)
        run_step_finish(r, RUN_CANCELED, "the task was deleted", false);
    else if (status == 409 && strcmp(code, "blocked") == 0)
        run_step_finish(r, RUN_FAILED, "the task is blocked by tasks that are not done",
                        false);
    else if (status == 412 || status == 409)
        s_recheck(r, CHECK_START);
    else if (s_transient(status) && s_try_again(r))
        return;
    else if (s_transient(status))
        s_retry_later(r, status ? s_backend_error(body, "the backend failed") : err);
    else
        run_step_finish(r, RUN_FAILED, s_backend_error(body, "the backend refused the task"),
                        false);
}

static void s_patch_start(run_t *r)
{
    json_t *p = json_pack("{s:s,s:s}", "status", "in-progress", "assigned_agent",
                          r->agent->name);
    kanban_patch_task(r->a->kanban, r->row.task_id, r->version, p, s_start_done, r);
    json_decref(p);
}

void run_step_begin(run_t *r)
{
    run_row_t *w = &r->row;
    snprintf(w->agent, sizeof w->agent, "%s", r->agent->name);
    snprintf(w->role, sizeof w->role, "%s", r->agent->role);
    snprintf(w->model, sizeof w->model, "%s", r->agent->model);
    snprintf(w->state, sizeof w->state, RUN_RUNNING);
    w->attempts++;
    w->started_ms = now_wall_ms();
    s_set_error(r, NULL);
    sbuf_reset(&r->out);
    r->step = STEP_START;
    r->tries = r->rechecks = 0;
    r->a->stats.started++;
    stats_run_state(r->a, w);
    runlog_save(r);
    runlog_event(r);
    s_patch_start(r);
    /* A task blocked by none needs nothing more for its prompt: its call
     * starts beside the write that makes the task ours, and its answer is
     * used only once that write went through (else the call is closed). */
    if (json_array_size(json_object_get(r->task, "blocked_by")) == 0)
        s_call_start(r);
}

/* ---- the blockers' results, for the prompt ---- */

static void s_call(run_t *r);

static void s_blocker_done(int status, json_t *body, const char *err, void *ud)
{
    (void)err;
    run_t *r = ud;
    if (status == 200)
        json_array_append(r->blockers, body);
    if (--r->pending == 0)
        s_call(r);
}

static void s_blockers(run_t *r)
{
    json_decref(r->blockers);
    r->blockers = json_array();
    const json_t *ids = json_object_get(r->task, "blocked_by");
    size_t n = json_array_size(ids);
    r->pending = (int)n;
    if (n == 0) {
        s_call(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (id)
            kanban_get_task(r->a->kanban, id, s_blocker_done, r);
        else
            s_blocker_done(0, NULL, "", r);
    }
}

/* ---- the call ---- */

/* The first byte of a first attempt's answer: the figure the product
 * promises (from the assignment), and how it was spent, for debugging. */
static void s_first_byte(run_t *r)
{
    int64_t now = now_wall_ms();
    stats_first_byte(r->a, r->row.role, now - r->assigned_ms);
    char start[32] = "not yet"; /* the call may start before the PATCH lands */
    if (r->t_start)
        snprintf(start, sizeof start, "%+lld", (long long)(r->t_start - r->assigned_ms));
    log_debug("run %s: received %+lld ms, admitted %+lld, in-progress %s, first byte %+lld "
              "(from the assignment)",
              r->row.id, (long long)(r->t_recv - r->assigned_ms),
              (long long)(r->t_admit - r->assigned_ms), start, (long long)(now - r->assigned_ms));
}

static void s_on_token(const char *text, size_t len, void *ud)
{
    run_t *r = ud;
    if (r->out.len == 0 && r->assigned_ms && r->row.attempts == 1)
        s_first_byte(r);
    sbuf_append(&r->out, text, len);
    list_for_each_safe(it, nx, &r->watchers) {
        run_watcher_t *w = list_item(it, run_watcher_t, link);
        w->fn(r, text, len, w->ud);
    }
}

static void s_record_call(run_t *r, const llm_result_t *res)
{
    run_row_t *w = &r->row;
    if (res->model && *res->model)
        snprintf(w->model, sizeof w->model, "%s", res->model);
    snprintf(w->provider, sizeof w->provider, "%s", res->provider ? res->provider : "");
    w->cost_usd += res->cost_usd;
    w->input_tokens += json_integer_value(json_object_get(res->usage, "prompt_tokens"));
    w->output_tokens += json_integer_value(json_object_get(res->usage, "completion_tokens"));
    w->latency_ms = (int64_t)(loop_now_ms(r->a->loop) - r->start_ms);
    free(w->content);
    w->content = xstrdup(res->content ? res->content : "");
}

/* What a call's end means, once the task is ours. */
static void s_after_call(run_t *r)
{
    if (s_stopped(r)) /* asked to stop while the call answered */
        return;
    if (r->call_ok) {
        r->step = STEP_FINISH;
        r->tries = r->rechecks = 0;
        s_patch_finish(r);
        return;
    }
    if (r->call_401 && !r->a->cfg->router_key[0]) {
        /* The router wrote its key after we looked (or changed it): read
         * it again, and try again. */
        free(r->a->router_key);
        r->a->router_key = NULL;
        s_retry_later(r, r->call_error);
        return;
    }
    if (r->call_retriable)
        s_retry_later(r, r->call_error);
    else
        run_step_finish(r, RUN_FAILED, r->call_error, true);
}

static void s_llm_done(const llm_result_t *res, void *ud)
{
    run_t *r = ud;
    r->call = NULL; /* llm.c frees it when this returns */
    s_record_call(r, res);
    r->call_done = true;
    r->call_ok = res->ok;
    r->call_retriable = res->retriable;
    r->call_401 = res->status == 401;
    free(r->call_error);
    r->call_error = res->ok ? NULL : xasprintf("%s: %s", res->error_code, res->error);
    if (r->step == STEP_CALL)
        s_after_call(r); /* else the write making the task ours goes on */
}

/* Starts the call (the step is the caller's). */
static void s_call_start(run_t *r)
{
    char *msg = prompt_user_message(r->task, r->blockers);
    llm_request_t rq = {.agent = r->agent, .router_key = r->a->router_key,
                        .task_type = r->row.task_type,
                        .user_message = msg, .timeout_ms = r->agent->run_timeout_s * 1000};
    r->call_done = false;
    r->start_ms = loop_now_ms(r->a->loop);
    r->call = llm_start(r->a->curlm, r->a->cfg, &rq, s_on_token, s_llm_done, r);
    free(msg);
}

static void s_call(run_t *r)
{
    if (s_stopped(r))
        return;
    r->step = STEP_CALL;
    s_call_start(r);
    if (!r->call)
        s_retry_later(r, "the call to the router could not be started");
}

/* ---- finish: the result on the task ---- */

static json_t *s_result(const run_t *r)
{
    const run_row_t *w = &r->row;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:I,s:I},s:f,s:I}", "run_id", w->id,
                     "agent", w->agent, "role", w->role, "model", w->model, "provider",
                     w->provider, "content", w->content ? w->content : "", "usage",
                     "input_tokens", (json_int_t)w->input_tokens, "output_tokens",
                     (json_int_t)w->output_tokens, "cost_usd", w->cost_usd, "latency_ms",
                     (json_int_t)w->latency_ms);
}

static void s_finish_done(int status, json_t *body, const char *err, void *ud)
{
    run_t *r = ud;
    if (status == 200)
        run_step_finish(r, RUN_SUCCEEDED, NULL, false);
    else if (status == 404)
        run_step_finish(r, RUN_CANCELED, "the task was deleted", false);
    else if (status == 412 || status == 409)
        s_recheck(r, CHECK_FINISH);
    else if (s_transient(status) && s_try_again(r))
        return;
    else if (s_transient(status))
        s_retry_later(r, status ? s_backend_error(body, "the backend failed") : err);
    else
        run_step_finish(r, RUN_FAILED,
                        s_backend_error(body, "the backend refused the result"), true);
}

static void s_patch_finish(run_t *r)
{
    json_t *p = json_pack("{s:s,s:i,s:o}", "status", "review", "progress", 100, "result",
                          s_result(r));
    kanban_patch_task_quiet(r->a->kanban, r->row.task_id, r->version, p, s_finish_done, r);
    json_decref(p);
}

/* ---- a delivery past the last ---- */

void run_step_reap(run_t *r)
{
    r->agent = r->row.agent[0] ? agents_config_find(r->a->cfg, r->row.agent) : NULL;
    r->step = STEP_REVERT;
    r->rechecks = 0;
    snprintf(r->row.state, sizeof r->row.state, RUN_DEAD);
    s_set_error(r, "no delivery left: the worker of the last one stopped during the run "
                   "(a crash, a stop, or ack_wait passed)");
    s_recheck(r, CHECK_REVERT);
}

/* ---- revert: the task back to todo ---- */

static void s_revert_done(int status, json_t *body, const char *err, void *ud)
{
    (void)body;
    (void)err;
    run_t *r = ud;
    if (status == 412 && !r->displaced) /* displaced: the newer run has it now */
        s_recheck(r, CHECK_REVERT);
    else if (s_transient(status) && s_try_again(r))
        return;
    else
        s_final(r);
}

static void s_patch_revert(run_t *r)
{
    json_t *p = json_pack("{s:s,s:n}", "status", "todo", "assigned_agent");
    kanban_patch_task_quiet(r->a->kanban, r->row.task_id, r->version, p, s_revert_done, r);
    json_decref(p);
}
