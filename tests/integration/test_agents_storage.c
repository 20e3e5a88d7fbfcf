/* test_agents_storage.c - the agents service on a full disk (its database
 * on a small tmpfs of the test's own, the rest of the suite elsewhere).
 * Work that cannot be recorded waits for the space to come back, held: an
 * assignment is not naked until its deliveries run out (JetStream would
 * then never deliver it again), a run's end (one mid-call when the disk
 * fills) is acknowledged only once it
 * is on disk, and a result accepted meanwhile still teaches. Skipped, with
 * a warning, where a tmpfs cannot be mounted (not root). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "agents_fixture.h"
#include "backend_fixture.h"

#define DISK_BYTES (8u << 20)
#define TASKS 3
/* Longer than every delivery of an assignment naked at 1 s (the fixture's
 * max_deliveries is 3) and than the outcome consumer's 10. */
#define FULL_MS 13000

static void s_fini(void)
{
    ag_fini();
    be_fini(); /* the tmpfs */
}

/* The task in review with one result, of its one run, which succeeded. */
static void s_assert_one_result(ag_env_t *e, const json_t *t)
{
    json_t *done = ag_wait_status(e, t, "review", 30000);
    json_t *run = ag_wait_run(e, t, "succeeded", 10000);
    cr_assert_str_eq(th_str(json_object_get(done, "result"), "run_id"), th_str(run, "id"));
    json_t *runs = ag_get(e, th_fmt("/api/v1/runs?task_id=%s", th_str(t, "id")), 200);
    cr_assert_eq(json_array_size(json_object_get(runs, "items")), 1, "%s", th_dump(runs));
}

/* GET /health of the agents: its status; the body in *body (kept). */
static int s_health(ag_env_t *e, const char **body)
{
    th_resp_t *r = th_must_request(e->agents, "GET", "/health", NULL, NULL);
    int st = r->status;
    *body = th_fmt("%s", r->body);
    th_resp_free(&r);
    return st;
}

/* Polls run id until its outcome is want. */
static void s_wait_outcome(ag_env_t *e, const char *id, const char *want)
{
    json_t *run = NULL;
    long long end = th_now_ms() + 20000;
    do {
        run = ag_get(e, th_fmt("/api/v1/runs/%s", id), 200);
        const char *o = json_string_value(json_object_get(run, "outcome"));
        if (o && strcmp(o, want) == 0)
            return;
        th_sleep_ms(100);
    } while (th_now_ms() < end);
    cr_assert_fail("the run's outcome is not %s: %s", want, th_dump(run));
}

Test(agents_storage, a_full_disk_holds_the_work_until_space_returns, .timeout = 150,
     .fini = s_fini)
{
    const char *dir = be_small_disk(DISK_BYTES);
    if (!dir)
        cr_skip_test("no tmpfs: not root, or no mount namespaces");
    ag_env_t e = ag_start(&(ag_opts_t){.agents = th_fmt("database = %s/agents.db\n", dir)});
    /* A first result, while the disk has room. */
    json_t *first = ag_task(&e, "Write the parser", "Parse the config.");
    ag_assign(&e, first, "{\"role\":\"developer\"}");
    first = ag_wait_status(&e, first, "review", 30000);
    const char *first_run = th_str(json_object_get(first, "result"), "run_id");

    /* A run mid-call when the disk fills: its end cannot be saved. */
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":300}");
    json_t *mid = ag_task(&e, "Write the lexer", "Tokens first.");
    ag_assign(&e, mid, "{\"role\":\"developer\"}");
    ag_wait_streaming(&e);
    be_fill_disk(dir, 0);
    th_fake_llm_config(e.fake, "oai", "{\"chunk_delay_ms\":0}");
    /* Accepted while nothing can be written: it teaches once it can. */
    th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(first, "id")), e.tok,
               "{\"status\":\"done\"}", 200);
    json_t *t[TASKS];
    for (int i = 0; i < TASKS; i++) {
        t[i] = ag_task(&e, th_fmt("Write module %d", i), "With its tests.");
        ag_assign(&e, t[i], "{\"role\":\"developer\"}");
    }
    th_sleep_ms(FULL_MS);
    /* The API still answers what it holds; /health says why work waits. */
    ag_get(&e, th_fmt("/api/v1/runs/%s", first_run), 200);
    const char *body;
    cr_assert_eq(s_health(&e, &body), 503, "%s", body);
    cr_assert(strstr(body, "\"degraded\"") && strstr(body, "storage"), "%s", body);
    be_free_disk(dir);

    s_assert_one_result(&e, mid);
    for (int i = 0; i < TASKS; i++)
        s_assert_one_result(&e, t[i]);
    s_wait_outcome(&e, first_run, "accepted");
    cr_assert_eq(s_health(&e, &body), 200, "%s", body);
}
