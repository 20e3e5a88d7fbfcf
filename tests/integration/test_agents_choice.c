/* test_agents_choice.c - how the agents service chooses: a task with no
 * role gets its type inferred from its text and goes to an agent that
 * claims it; the preview explains the choice term by term; after accepted
 * and sent-back results, the better agent wins. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "agents_fixture.h"

static json_t *s_preview(ag_env_t *e, const char *body)
{
    return th_be_call(e->agents, "POST", "/api/v1/assignments/preview", e->tok, body, 200);
}

Test(agents_choice, no_role_infers_the_type_and_the_preview_explains, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){0});
    json_t *p = s_preview(&e, "{\"title\":\"Design the storage schema\","
                              "\"description\":\"A design for the events table.\"}");
    cr_assert_str_eq(th_str(p, "task_type"), "design", "%s", th_dump(p));
    cr_assert(json_is_true(json_object_get(p, "inferred")));
    json_t *c0 = json_array_get(json_object_get(p, "candidates"), 0);
    cr_assert_str_eq(th_str(c0, "agent"), "arch", "%s", th_dump(p));
    json_t *terms = json_object_get(c0, "terms");
    cr_assert(json_is_number(json_object_get(terms, "base")) &&
                  json_is_number(json_object_get(terms, "expertise")) &&
                  json_is_number(json_object_get(terms, "confidence")),
              "%s", th_dump(c0));

    /* A tie (design once, architecture once) infers nothing: the task's own
     * type decides. */
    p = s_preview(&e, "{\"title\":\"Design the architecture\",\"type\":\"feature\"}");
    cr_assert_str_eq(th_str(p, "task_type"), "feature", "%s", th_dump(p));
    cr_assert(json_is_false(json_object_get(p, "inferred")));

    /* No match: the task's own type, and the default role's agents. */
    p = s_preview(&e, "{\"title\":\"Tidy up\",\"type\":\"bugfix\"}");
    cr_assert_str_eq(th_str(p, "task_type"), "bugfix", "%s", th_dump(p));
    cr_assert_str_eq(th_str(json_array_get(json_object_get(p, "candidates"), 0), "role"),
                     "developer", "%s", th_dump(p));

    /* Assigned to nobody: the architect does the design task. */
    json_t *t = ag_task(&e, "Design the storage schema", "A design for the events table.");
    ag_assign(&e, t, "{}");
    json_t *done = ag_wait_status(&e, t, "review", 30000);
    cr_assert_str_eq(th_str(done, "assigned_agent"), "arch", "%s", th_dump(done));
    json_t *run = ag_wait_run(&e, t, "succeeded", 5000);
    cr_assert_str_eq(th_str(run, "task_type"), "design");
    cr_assert_str_eq(th_str(run, "role"), "architect");
}

/* Assigns a developer task, waits for its review; returns the task. */
static json_t *s_one(ag_env_t *e, int i)
{
    json_t *t = ag_task(e, th_fmt("Implement endpoint %d", i), "A feature.");
    ag_assign(e, t, "{\"role\":\"developer\"}");
    return ag_wait_status(e, t, "review", 30000);
}

Test(agents_choice, after_accepted_and_sent_back_results_the_better_agent_wins,
     .timeout = 180, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){0});
    int a = 0, b = 0;
    for (int i = 0; i < 6; i++) {
        json_t *t = s_one(&e, i);
        bool is_a = strcmp(th_str(t, "assigned_agent"), "dev-a") == 0;
        /* dev-a's results are accepted, dev-b's sent back. */
        const char *to = is_a ? "{\"status\":\"done\"}" : "{\"status\":\"in-progress\"}";
        th_be_call(e.be, "PATCH", th_fmt("/api/v1/tasks/%s", th_str(t, "id")), e.tok, to,
                   200);
        if (is_a)
            a++;
        else
            b++;
    }
    cr_assert(a > 0 && b > 0, "without history the work is shared: a %d, b %d", a, b);
    /* The outcomes are learned (a consumer of the task events). */
    json_t *prof = NULL;
    long long end = th_now_ms() + 15000;
    do {
        th_sleep_ms(200);
        prof = ag_get(&e, "/api/v1/agents/dev-b", 200);
    } while (th_int(prof, "runs_total") < b && th_now_ms() < end);
    cr_assert_eq(th_int(prof, "runs_total"), b, "%s", th_dump(prof));
    cr_assert_float_eq(th_num(prof, "success_rate"), 0.0, 1e-9);
    json_t *pa = ag_get(&e, "/api/v1/agents/dev-a", 200);
    cr_assert_float_eq(th_num(pa, "success_rate"), 1.0, 1e-9, "%s", th_dump(pa));
    json_t *p = s_preview(&e, "{\"title\":\"Implement endpoint 9\",\"role\":\"developer\"}");
    cr_assert_str_eq(th_str(json_array_get(json_object_get(p, "candidates"), 0), "agent"),
                     "dev-a", "%s", th_dump(p));
    for (int i = 10; i < 13; i++)
        cr_assert_str_eq(th_str(s_one(&e, i), "assigned_agent"), "dev-a");
}
