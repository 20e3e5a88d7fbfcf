/* test_agents_runs.c - the agents service end to end, under the
 * supervisor with real NATS, backend and router, the fake provider behind
 * the router: an assigned task ends in review with its result, the agent's
 * system prompt and the task reach the provider, and the events arrive in
 * order on NATS and on the backend's /ws. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agents_fixture.h"

/* Collects the subjects and types of vapora.> while a test runs. */
typedef struct seen {
    char events[64][64];
    int n;
    pthread_mutex_t mu;
} seen_t;

static void s_on_event(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud)
{
    (void)nc;
    (void)sub;
    seen_t *s = ud;
    json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *status =
        json_string_value(json_object_get(json_object_get(j, "data"), "status"));
    pthread_mutex_lock(&s->mu);
    if (type && s->n < 64)
        snprintf(s->events[s->n++], 64, "%s%s%s", type, status ? ":" : "",
                 status && strncmp(type, "task.", 5) == 0 ? status : "");
    pthread_mutex_unlock(&s->mu);
    json_decref(j);
    natsMsg_Destroy(m);
}

static int s_index(seen_t *s, const char *ev)
{
    pthread_mutex_lock(&s->mu);
    int at = -1;
    for (int i = 0; i < s->n && at < 0; i++)
        if (strcmp(s->events[i], ev) == 0)
            at = i;
    pthread_mutex_unlock(&s->mu);
    return at;
}

Test(agents_runs, an_assigned_task_ends_in_review_with_its_result, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){0});
    static seen_t seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    natsConnection *nc = ag_nats(&e);
    natsSubscription *sub = NULL;
    cr_assert_eq(natsConnection_Subscribe(&sub, nc, "vapora.>", s_on_event, &seen), NATS_OK);
    int ws = th_ws_open(e.be, th_fmt("/ws?token=%s&project_id=%s", e.tok,
                                     th_str(e.project, "id")));
    json_t *t = ag_task(&e, "Add the login endpoint", "POST /login with a JSON body.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *done = ag_wait_status(&e, t, "review", 30000);

    /* The result names the run, the agent and what the provider said. */
    json_t *res = json_object_get(done, "result");
    cr_assert_str_eq(th_str(res, "content"), AG_REPLY, "%s", th_dump(done));
    const char *agent = th_str(res, "agent");
    cr_assert(strcmp(agent, "dev-a") == 0 || strcmp(agent, "dev-b") == 0, "%s", agent);
    cr_assert_str_eq(th_str(done, "assigned_agent"), agent);
    cr_assert_str_eq(th_str(res, "role"), "developer");
    cr_assert_eq(th_int(done, "progress"), 100);
    cr_assert_str_eq(th_str(res, "provider"), "oai");

    /* The provider got the agent's system prompt and the task. */
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    json_t *msgs = json_object_get(json_object_get(json_object_get(st, "last"), "body"),
                                   "messages");
    const char *sys = th_str(json_array_get(msgs, 0), "content");
    cr_assert_str_eq(sys, strcmp(agent, "dev-a") == 0
                              ? "You are developer A of a software team."
                              : "You are developer B of a software team.");
    const char *user = th_str(json_array_get(msgs, 1), "content");
    cr_assert(strstr(user, "Add the login endpoint") && strstr(user, "POST /login"), "%s",
              user);

    /* The run: succeeded, once, with its cost and output. */
    json_t *run = ag_wait_run(&e, t, "succeeded", 5000);
    cr_assert_str_eq(th_str(run, "id"), th_str(res, "run_id"));
    cr_assert_eq(th_int(run, "attempts"), 1);
    json_t *full = ag_get(&e, th_fmt("/api/v1/runs/%s", th_str(run, "id")), 200);
    cr_assert_str_eq(th_str(full, "content"), AG_REPLY);
    json_t *runs = ag_get(&e, th_fmt("/api/v1/runs?task_id=%s", th_str(t, "id")), 200);
    cr_assert_eq(json_array_size(json_object_get(runs, "items")), 1, "%s", th_dump(runs));

    /* Events in order, each source's own: the task's (the backend's
     * outbox: assigned, in-progress, review) and the run's (running, then
     * succeeded). Two publishers do not order each other's events. */
    long long end = th_now_ms() + 5000;
    while ((s_index(&seen, "agent.run.succeeded") < 0 ||
            s_index(&seen, "task.updated:review") < 0) &&
           th_now_ms() < end)
        th_sleep_ms(50);
    int assigned = s_index(&seen, "task.assigned:todo");
    int running = s_index(&seen, "agent.run.running");
    int progress = s_index(&seen, "task.updated:in-progress");
    int review = s_index(&seen, "task.updated:review");
    int succeeded = s_index(&seen, "agent.run.succeeded");
    cr_assert(assigned >= 0 && progress > assigned && review > progress && running >= 0 &&
                  succeeded > running,
              "order: assigned %d, running %d, in-progress %d, review %d, succeeded %d",
              assigned, running, progress, review, succeeded);

    /* The backend's /ws relays the run's events with the task's. */
    json_t *ev = th_keep_json(th_ws_wait_event(ws, "agent.run.succeeded", 10000));
    cr_assert_not_null(ev, "agent.run.succeeded did not reach /ws");
    cr_assert_str_eq(th_str(ev, "task_id"), th_str(t, "id"));
    cr_assert_str_eq(th_str(json_object_get(ev, "data"), "state"), "succeeded");
    close(ws);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

/* Polls run id until it has an outcome; returns it. */
static const char *s_outcome(ag_env_t *e, const char *id)
{
    long long end = th_now_ms() + 15000;
    do {
        json_t *run = ag_get(e, th_fmt("/api/v1/runs/%s", id), 200);
        const char *o = json_string_value(json_object_get(run, "outcome"));
        if (o)
            return o;
        th_sleep_ms(100);
    } while (th_now_ms() < end);
    cr_assert_fail("run %s got no outcome", id);
    return NULL;
}

/* A PATCH that clears the role, or sends the one the task has, starts no
 * run; a result naming another task's run teaches nothing about it. */
Test(agents_runs, only_an_assignment_starts_a_run_and_only_its_task_teaches,
     .timeout = 120, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){0});
    json_t *t = ag_task(&e, "Write the parser", "Parse the config.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    t = ag_wait_status(&e, t, "review", 30000);
    const char *run = th_str(json_object_get(t, "result"), "run_id");
    const char *path = th_fmt("/api/v1/tasks/%s", th_str(t, "id"));
    th_be_call(e.be, "PATCH", path, e.tok,
               "{\"assigned_role\":\"developer\",\"title\":\"The parser\"}", 200);
    th_be_call(e.be, "PATCH", path, e.tok, "{\"assigned_role\":null}", 200);
    json_t *other = ag_task(&e, "Unrelated", NULL);
    th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(other, "id")), e.tok,
               th_fmt("{\"status\":\"in-progress\",\"result\":{\"run_id\":\"%s\"}}", run),
               200);
    th_be_call(e.be, "PATCH", path, e.tok, "{\"status\":\"done\"}", 200);
    cr_assert_str_eq(s_outcome(&e, run), "accepted");
    json_t *runs = ag_get(&e, th_fmt("/api/v1/runs?task_id=%s", th_str(t, "id")), 200);
    cr_assert_eq(json_array_size(json_object_get(runs, "items")), 1, "%s", th_dump(runs));
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "requests"), 1, "%s", th_dump(st));
}

/* A task edited while its run waits for a free agent: the prompt is made
 * from the task as it is when the run starts, not as it was assigned. */
Test(agents_runs, a_task_edited_while_its_run_waits_is_done_as_edited, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .fake = "{\"reply\":\"one two three four five six\",\"chunk_delay_ms\":400}",
        .extra = "[agent:dev]\nrole = developer\nmodel = gpt-a\nmax_concurrent = 1\n"
                 "system_prompt = You are the developer.\n"});
    json_t *busy = ag_task(&e, "Keep the agent busy", NULL);
    ag_assign(&e, busy, "{\"role\":\"developer\"}");
    ag_wait_run(&e, busy, "running", 10000);
    json_t *t = ag_task(&e, "Write the guide", "OLD DESCRIPTION");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_run(&e, t, "queued", 10000);
    th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(t, "id")), e.tok,
               "{\"description\":\"NEW DESCRIPTION\"}", 200);
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":0}");
    ag_wait_status(&e, busy, "review", 30000);
    ag_wait_status(&e, t, "review", 30000);
    const char *user = ag_last_message(&e, 1);
    cr_assert(strstr(user, "NEW DESCRIPTION"), "%s", user);
}

