/* test_agents_faults.c - the agents service when things break: kill -9 of
 * the worker holding a run, nats-server restarted mid-run (one result
 * either way); the router's budget_exceeded (one failure, no retry storm);
 * a provider failing every time (bounded deliveries, dead, then retried
 * through the API once the provider is back); a cancel mid-stream (the
 * provider sees the connection close at once, the task is given back). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agents_fixture.h"

#define SLOW "{\"reply\":\"one two three four five six seven eight nine ten\"," \
             "\"chunk_delay_ms\":400}"

/* Kills the agents worker once the fake has had n calls and streams one. */
static void s_kill_at_call(ag_env_t *e, int n)
{
    long long end = th_now_ms() + 30000;
    while (th_now_ms() < end) {
        json_t *st = th_keep_json(th_fake_llm_stats(e->fake, "oai"));
        if (th_int(st, "requests") >= n && th_int(st, "active_streams") > 0) {
            pid_t pid = ag_pid(e, "services", "agents");
            cr_assert_gt(pid, 0);
            kill(pid, SIGKILL);
            return;
        }
        th_sleep_ms(20);
    }
    cr_assert_fail("call %d did not start", n);
}

/* The task keeps its version for a while: nothing writes a second result. */
static void s_assert_settled(ag_env_t *e, const json_t *t, int ms)
{
    json_int_t v = th_int(t, "version");
    th_sleep_ms(ms);
    json_t *now = th_be_call(e->be, "GET", th_fmt("/api/v1/tasks/%s", th_str(t, "id")),
                             e->tok, NULL, 200);
    cr_assert_eq(th_int(now, "version"), v, "the task changed again: %s", th_dump(now));
    json_t *runs = ag_get(e, th_fmt("/api/v1/runs?task_id=%s", th_str(t, "id")), 200);
    cr_assert_eq(json_array_size(json_object_get(runs, "items")), 1, "%s", th_dump(runs));
}

Test(agents_faults, kill_9_of_the_worker_holding_a_run_still_one_result, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW});
    json_t *t = ag_task(&e, "Write the parser", "Parse the config.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    pid_t pid = ag_pid(&e, "services", "agents");
    cr_assert_gt(pid, 0);
    kill(pid, SIGKILL);
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":0}");
    json_t *done = ag_wait_status(&e, t, "review", 60000);
    json_t *run = ag_wait_run(&e, t, "succeeded", 10000);
    cr_assert_eq(th_int(run, "attempts"), 2, "%s", th_dump(run));
    cr_assert_str_eq(th_str(json_object_get(done, "result"), "run_id"), th_str(run, "id"));
    s_assert_settled(&e, done, 7000); /* past another ack wait */
}

/* JetStream gives up on a message after max_deliver: the consumer keeps one
 * delivery more than max_deliveries, which only makes the run dead. */
Test(agents_faults, a_run_whose_every_delivery_ends_with_its_worker_is_dead, .timeout = 150,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW});
    json_t *t = ag_task(&e, "Write the planner", "Plan the work.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    for (int n = 1; n <= 3; n++) /* the fixture's max_deliveries */
        s_kill_at_call(&e, n);
    json_t *run = ag_wait_run(&e, t, "dead", 60000);
    cr_assert(strstr(th_str(run, "error"), "no delivery left"), "%s", th_dump(run));
    json_t *task = ag_wait_status(&e, t, "todo", 10000);
    cr_assert(json_is_null(json_object_get(task, "assigned_agent")), "%s", th_dump(task));
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "requests"), 3, "no call after the last delivery: %s",
                 th_dump(st));
    /* It can be retried through the API. */
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":0}");
    th_be_call(e.agents, "POST", th_fmt("/api/v1/runs/%s/retry", th_str(run, "id")), e.tok,
               NULL, 202);
    json_t *done = ag_wait_status(&e, t, "review", 30000);
    cr_assert_str_eq(th_str(json_object_get(done, "result"), "run_id"), th_str(run, "id"));
}

/* Canceled while no worker holds it (its worker died, its next delivery
 * not yet come): the cancel holds, the delivery only acknowledges it. */
Test(agents_faults, a_cancel_while_the_runs_worker_is_dead_holds, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW});
    json_t *t = ag_task(&e, "Write the checker", "Check the work.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    s_kill_at_call(&e, 1);
    json_t *run = ag_wait_run(&e, t, "running", 5000);
    json_t *c = th_be_call(e.agents, "POST",
                           th_fmt("/api/v1/runs/%s/cancel", th_str(run, "id")), e.tok, NULL,
                           202);
    cr_assert_str_eq(th_str(c, "state"), "canceled");
    ag_wait_status(&e, t, "todo", 10000);
    th_sleep_ms(8000); /* past the next delivery (ack_wait 5 s) */
    json_t *task = ag_wait_status(&e, t, "todo", 1000);
    cr_assert(json_is_null(json_object_get(task, "assigned_agent")), "%s", th_dump(task));
    ag_wait_run(&e, t, "canceled", 1000);
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "requests"), 1, "it ran again: %s", th_dump(st));
}

Test(agents_faults, nats_restarted_mid_run_still_one_result, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW});
    json_t *t = ag_task(&e, "Write the lexer", "Tokens first.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    pid_t nats = ag_pid(&e, "programs", "nats");
    cr_assert_gt(nats, 0);
    kill(nats, SIGKILL); /* the supervisor starts it again */
    json_t *done = ag_wait_status(&e, t, "review", 60000);
    ag_wait_run(&e, t, "succeeded", 20000);
    s_assert_settled(&e, done, 7000);
}

Test(agents_faults, budget_exceeded_fails_once_without_a_retry_storm, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .extra = th_fmt("%s[budget:developer]\nwindow = monthly\nlimit_usd = 0.0000001\n",
                        ag_agents())});
    json_t *t = ag_task(&e, "Refactor the store", "Split it.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *run = ag_wait_run(&e, t, "failed", 30000);
    cr_assert(strstr(th_str(run, "error"), "budget_exceeded"), "%s", th_dump(run));
    cr_assert_eq(th_int(run, "attempts"), 1);
    json_t *task = ag_wait_status(&e, t, "todo", 10000);
    cr_assert(json_is_null(json_object_get(task, "assigned_agent")), "%s", th_dump(task));
    th_sleep_ms(7000); /* past the ack wait: no redelivery */
    json_t *again = ag_get(&e, th_fmt("/api/v1/runs/%s", th_str(run, "id")), 200);
    cr_assert_eq(th_int(again, "attempts"), 1, "%s", th_dump(again));
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "requests"), 0, "the provider was asked: %s", th_dump(st));
}

Test(agents_faults, a_failing_provider_ends_dead_and_a_retry_works_once_it_is_back,
     .timeout = 180, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .fake = "{\"reply\":\"" AG_REPLY "\",\"fail_status\":500,\"fail_count\":-1}"});
    json_t *t = ag_task(&e, "Add caching", "A read cache.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *run = ag_wait_run(&e, t, "dead", 60000);
    cr_assert_eq(th_int(run, "attempts"), 3, "max_deliveries = 3: %s", th_dump(run));
    ag_wait_status(&e, t, "todo", 10000);
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "requests"), 3, "one call per delivery: %s", th_dump(st));
    /* The provider is back: a retry through the API runs it again. */
    th_fake_llm_config(e.fake, "oai", "{\"fail_count\":0}");
    json_t *r = th_be_call(e.agents, "POST", th_fmt("/api/v1/runs/%s/retry", th_str(run, "id")),
                           e.tok, NULL, 202);
    cr_assert_str_eq(th_str(r, "state"), "queued");
    json_t *done = ag_wait_status(&e, t, "review", 30000);
    cr_assert_str_eq(th_str(json_object_get(done, "result"), "run_id"), th_str(run, "id"));
    ag_wait_run(&e, t, "succeeded", 10000);
    /* A succeeded run is not retried. */
    th_be_call(e.agents, "POST", th_fmt("/api/v1/runs/%s/retry", th_str(run, "id")), e.tok,
               NULL, 409);
}

/* Only the latest run of a task is retried: an older failed one would
 * replace a newer result. A retry that cannot reach its task (deleted)
 * leaves the run as it was. */
Test(agents_faults, a_retry_never_replaces_a_newer_run_nor_sticks_when_it_fails,
     .timeout = 120, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .fake = "{\"reply\":\"" AG_REPLY "\",\"fail_status\":400,\"fail_count\":1}"});
    json_t *t = ag_task(&e, "Add paging", "Cursor based.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *old = ag_wait_run(&e, t, "failed", 30000);
    ag_wait_status(&e, t, "todo", 10000);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *done = ag_wait_status(&e, t, "review", 30000);
    json_t *r = th_be_call(e.agents, "POST",
                           th_fmt("/api/v1/runs/%s/retry", th_str(old, "id")), e.tok, NULL,
                           409);
    cr_assert_str_eq(th_str(json_object_get(r, "error"), "code"), "not_retriable");
    th_sleep_ms(1000);
    json_t *now = ag_wait_status(&e, t, "review", 1000);
    cr_assert_eq(th_int(now, "version"), th_int(done, "version"), "%s", th_dump(now));

    th_fake_llm_config(e.fake, "oai", "{\"fail_count\":1}");
    json_t *gone = ag_task(&e, "Add sorting", NULL);
    ag_assign(&e, gone, "{\"role\":\"developer\"}");
    json_t *failed = ag_wait_run(&e, gone, "failed", 30000);
    th_be_call(e.be, "DELETE", th_fmt("/api/v1/tasks/%s", th_str(gone, "id")), e.tok, NULL,
               204);
    r = th_be_call(e.agents, "POST", th_fmt("/api/v1/runs/%s/retry", th_str(failed, "id")),
                   e.tok, NULL, 409);
    cr_assert_str_eq(th_str(json_object_get(r, "error"), "code"), "task_gone");
    th_sleep_ms(500);
    json_t *back = ag_get(&e, th_fmt("/api/v1/runs/%s", th_str(failed, "id")), 200);
    cr_assert_str_eq(th_str(back, "state"), "failed", "%s", th_dump(back));
}

/* Assigned again while its run streams (the task edited meanwhile): the
 * old run is canceled at once, without giving the task back, and the
 * result is the new run's, made from the task as it is now. */
static void s_supersede(const char *agents);

Test(agents_faults, a_new_assignment_supersedes_the_running_one, .timeout = 120,
     .fini = ag_fini)
{
    s_supersede(NULL); /* dev-a and dev-b: the new run goes to the other */
}

Test(agents_faults, a_new_assignment_supersedes_the_running_one_of_the_same_agent,
     .timeout = 120, .fini = ag_fini)
{
    s_supersede("[agent:dev]\nrole = developer\nmodel = gpt-a\nmax_concurrent = 4\n"
                "system_prompt = You are the developer.\n");
}

/* An assignment older than the task's latest one comes last (a delivery
 * late from JetStream; here the task as created, published by hand): its
 * run ends superseded at once, without a call, and the task stays. */
static void s_stale_assignment(ag_env_t *e, const json_t *created, const json_t *done)
{
    long long calls = th_int(th_keep_json(th_fake_llm_stats(e->fake, "oai")), "requests");
    json_t *ev = json_pack("{s:s,s:O,s:O,s:O}", "type", "task.assigned", "id",
                           json_object_get(created, "id"), "project_id",
                           json_object_get(created, "project_id"), "data", created);
    char *txt = json_dumps(ev, JSON_COMPACT);
    natsConnection *nc = ag_nats(e);
    cr_assert_eq(natsConnection_PublishString(nc, "vapora.tasks.assigned", txt), NATS_OK);
    natsConnection_FlushTimeout(nc, 2000);
    natsConnection_Destroy(nc);
    free(txt);
    json_decref(ev);
    json_t *stale = NULL;
    for (long long end = th_now_ms() + 10000; !stale && th_now_ms() < end; th_sleep_ms(50)) {
        json_t *runs = ag_get(e, th_fmt("/api/v1/runs?task_id=%s", th_str(created, "id")), 200);
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(runs, "items"), i, r)
            if (th_int(r, "task_version") == th_int(created, "version") &&
                strcmp(th_str(r, "state"), "canceled") == 0)
                stale = r;
    }
    cr_assert_not_null(stale, "the stale assignment's run did not end canceled");
    cr_assert(strstr(th_str(stale, "error"), "superseded"), "%s", th_dump(stale));
    cr_assert_eq(th_int(th_keep_json(th_fake_llm_stats(e->fake, "oai")), "requests"), calls);
    json_t *now = ag_wait_status(e, created, "review", 1000);
    cr_assert_eq(th_int(now, "version"), th_int(done, "version"), "%s", th_dump(now));
}

static void s_supersede(const char *agents)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW, .extra = agents});
    json_t *t = ag_task(&e, "Design the cache", "OLD DESCRIPTION");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    json_t *old = ag_wait_run(&e, t, "running", 5000);
    th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(t, "id")), e.tok,
               "{\"description\":\"NEW DESCRIPTION\"}", 200);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *c = ag_wait_run(&e, t, "canceled", 10000);
    cr_assert_str_eq(th_str(c, "id"), th_str(old, "id"));
    cr_assert(strstr(th_str(c, "error"), "superseded"), "%s", th_dump(c));
    json_t *done = ag_wait_status(&e, t, "review", 30000);
    json_t *run = ag_wait_run(&e, t, "succeeded", 10000);
    cr_assert_str_neq(th_str(run, "id"), th_str(old, "id"));
    cr_assert_str_eq(th_str(json_object_get(done, "result"), "run_id"), th_str(run, "id"));
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    const char *user = ag_last_message(&e, 1);
    cr_assert(strstr(user, "NEW DESCRIPTION"), "%s", user);
    cr_assert_geq(th_int(st, "aborted_streams"), 1, "the old call went on: %s", th_dump(st));
    s_stale_assignment(&e, t, done);
}

Test(agents_faults, cancel_mid_stream_closes_the_call_at_once_and_gives_the_task_back,
     .timeout = 120, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW});
    json_t *t = ag_task(&e, "Write the docs", "All of them.");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    json_t *run = ag_wait_run(&e, t, "running", 5000);
    long long t0 = th_now_ms();
    th_be_call(e.agents, "POST", th_fmt("/api/v1/runs/%s/cancel", th_str(run, "id")), e.tok,
               NULL, 202);
    long long seen = -1;
    while (th_now_ms() - t0 < 5000 && seen < 0) {
        json_t *st = th_fake_llm_stats(e.fake, "oai");
        if (th_int(st, "aborted_streams") > 0)
            seen = th_now_ms() - t0;
        json_decref(st);
        if (seen < 0)
            th_sleep_ms(5);
    }
    cr_log_info("the provider saw the call close %lld ms after the cancel", seen);
    cr_assert(seen >= 0 && seen < 1000, "the provider saw the close after %lld ms", seen);
    json_t *task = ag_wait_status(&e, t, "todo", 10000);
    cr_assert(json_is_null(json_object_get(task, "assigned_agent")), "%s", th_dump(task));
    json_t *c = ag_wait_run(&e, t, "canceled", 5000);
    cr_assert_str_eq(th_str(c, "id"), th_str(run, "id"));
    th_be_call(e.agents, "POST", th_fmt("/api/v1/runs/%s/cancel", th_str(run, "id")), e.tok,
               NULL, 409);
}

Test(agents_faults, a_reload_of_the_agents_keeps_runs_and_history, .timeout = 180,
     .fini = ag_fini)
{
    ag_opts_t o = {.fake = SLOW};
    ag_env_t e = ag_start(&o);
    /* History first: one result accepted. */
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":0}");
    json_t *h = ag_task(&e, "Earlier work", NULL);
    ag_assign(&e, h, "{\"role\":\"developer\"}");
    h = ag_wait_status(&e, h, "review", 30000);
    const char *who = th_str(h, "assigned_agent");
    th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(h, "id")), e.tok,
               "{\"status\":\"done\"}", 200);
    long long end = th_now_ms() + 15000;
    while (th_int(ag_get(&e, th_fmt("/api/v1/agents/%s", who), 200), "runs_total") < 1 &&
           th_now_ms() < end)
        th_sleep_ms(200);

    /* A run in flight, then the agents' prompts change and the config is
     * reloaded: the old worker finishes its run, the new one takes over. */
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":400}");
    json_t *t = ag_task(&e, "Long work", NULL);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    o.extra = "[agent:dev-a]\nrole = developer\nmodel = gpt-a\n"
              "system_prompt = You are developer A, second edition.\n\n"
              "[agent:dev-b]\nrole = developer\nmodel = gpt-a\n"
              "system_prompt = You are developer B, second edition.\n";
    cr_assert_eq(th_sv_write_config(e.sv, ag_config(e.fake->port, &o)), 0);
    kill(e.sv->proc->pid, SIGHUP);
    json_t *done = ag_wait_status(&e, t, "review", 60000);
    json_t *run = ag_wait_run(&e, t, "succeeded", 10000);
    cr_assert_eq(th_int(run, "attempts"), 1, "the run was started again: %s", th_dump(run));
    cr_assert_str_eq(th_str(json_object_get(done, "result"), "run_id"), th_str(run, "id"));

    /* New runs get the new prompts; the history is still there. */
    th_assert_settled(e.sv, "agents", 1, 30000);
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":0}");
    json_t *n = ag_task(&e, "After the reload", NULL);
    ag_assign(&e, n, "{\"role\":\"developer\"}");
    ag_wait_status(&e, n, "review", 30000);
    const char *sys = ag_last_message(&e, 0);
    cr_assert(strstr(sys, "second edition"), "%s", sys);
    json_t *prof = ag_get(&e, th_fmt("/api/v1/agents/%s", who), 200);
    cr_assert_geq(th_int(prof, "runs_total"), 1, "the history was lost: %s", th_dump(prof));
}

Test(agents_faults, archiving_or_deleting_a_task_cancels_its_run, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){.fake = SLOW});
    json_t *a = ag_task(&e, "To archive", NULL);
    ag_assign(&e, a, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    json_t *run = ag_wait_run(&e, a, "running", 5000);
    th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(a, "id")), e.tok,
               "{\"status\":\"archived\"}", 200);
    json_t *c = ag_wait_run(&e, a, "canceled", 10000);
    cr_assert_str_eq(th_str(c, "id"), th_str(run, "id"));
    cr_assert(strstr(th_str(c, "error"), "archived"), "%s", th_dump(c));

    json_t *d = ag_task(&e, "To delete", NULL);
    ag_assign(&e, d, "{\"role\":\"developer\"}");
    ag_wait_run(&e, d, "running", 20000);
    ag_wait_streaming(&e);
    th_be_call(e.be, "DELETE", th_fmt("/api/v1/tasks/%s", th_str(d, "id")), e.tok, NULL, 204);
    c = ag_wait_run(&e, d, "canceled", 10000);
    cr_assert(strstr(th_str(c, "error"), "deleted"), "%s", th_dump(c));
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_geq(th_int(st, "aborted_streams"), 2, "the calls went on: %s", th_dump(st));
}

Test(agents_faults, an_agent_leaves_a_task_it_failed_too_often, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .agents = "max_failures = 1\n",
        .extra = "[agent:only]\nrole = developer\nmodel = gpt-a\n",
        .fake = "{\"reply\":\"x\",\"fail_status\":400,\"fail_count\":-1}"});
    json_t *t = ag_task(&e, "Hard task", NULL);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *first = ag_wait_run(&e, t, "failed", 30000);
    cr_assert_str_eq(th_str(first, "agent"), "only");
    ag_wait_status(&e, t, "todo", 10000);
    /* Assigned again: its only agent failed it once (max_failures = 1). */
    th_fake_llm_config(e.fake, "oai", "{\"fail_count\":0}");
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    long long end = th_now_ms() + 20000;
    json_t *second = NULL;
    while (!second && th_now_ms() < end) {
        json_t *runs = ag_get(&e, th_fmt("/api/v1/runs?task_id=%s&state=failed",
                                         th_str(t, "id")), 200);
        json_t *items = json_object_get(runs, "items");
        if (json_array_size(items) == 2)
            second = json_array_get(items, 1);
        else
            th_sleep_ms(100);
    }
    cr_assert_not_null(second, "the second assignment did not fail");
    cr_assert(strstr(th_str(second, "error"), "no agent can take"), "%s", th_dump(second));
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "requests"), 1, "the agent tried again: %s", th_dump(st));
}

/* A reload whose config a service would refuse at start (the agents' and
 * the router's own settings, which the supervisor does not know) is
 * refused whole, with the service's reason; the workers go on. */
Test(agents_faults, a_reload_a_service_would_refuse_changes_nothing, .timeout = 120,
     .fini = ag_fini)
{
    ag_opts_t o = {0};
    ag_env_t e = ag_start(&o);
    pid_t agents = ag_pid(&e, "services", "agents");
    pid_t router = ag_pid(&e, "services", "llm-router");
    const char *bad[][2] = {
        {"[agent:zz]\nrole = wizard\n", "wizard"},
        {"[budget:cheap]\nlimit_usd = -5\n", "limit_usd"},
    };
    for (size_t i = 0; i < 2; i++) {
        o.extra = th_fmt("%s%s", ag_agents(), bad[i][0]);
        cr_assert_eq(th_sv_write_config(e.sv, ag_config(e.fake->port, &o)), 0);
        th_resp_t *r = th_must_request(e.sv->admin_port, "POST", "/reload",
                                       th_fmt("%s" TH_JSON_CT, e.sv->auth), NULL);
        cr_assert_eq(r->status, 422, "%d %s", r->status, r->body);
        cr_assert(strstr(r->body, bad[i][1]), "422 without the reason: %s", r->body);
        th_resp_free(&r);
    }
    th_sleep_ms(1000);
    cr_assert_eq(ag_pid(&e, "services", "agents"), agents, "the agents were replaced");
    cr_assert_eq(ag_pid(&e, "services", "llm-router"), router, "the router was replaced");
    json_t *t = ag_task(&e, "Still working", NULL);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_status(&e, t, "review", 30000);
}
