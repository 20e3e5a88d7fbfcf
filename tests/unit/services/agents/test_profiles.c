/* test_profiles.c - unit tests for services/agents/profiles.c: totals,
 * the last 100 runs per type, and the terms handed to the score. */
#include "profiles.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static exec_row_t s_exec(const char *agent, const char *type, bool ok, int64_t at)
{
    exec_row_t e = {.success = ok, .at = at, .latency_ms = 100, .cost_usd = 0.01};
    snprintf(e.agent, sizeof e.agent, "%s", agent);
    snprintf(e.task_type, sizeof e.task_type, "%s", type);
    return e;
}

Test(profiles, totals_types_and_the_last_hundred)
{
    profiles_t *p = profiles_new();
    int64_t now = 1000000;
    for (int i = 0; i < 150; i++) { /* 50 failures, then 100 successes */
        exec_row_t e = s_exec("dev", "feature", i >= 50, now - 10);
        profiles_add(p, &e);
    }
    exec_row_t b = s_exec("dev", "bugfix", false, now);
    profiles_add(p, &b);
    profile_totals_t t;
    profiles_totals(p, "dev", &t);
    cr_assert_eq(t.runs, 151);
    cr_assert_eq(t.successes, 100);
    cr_assert_float_eq(t.avg_latency_ms, 100, 1e-9);
    cr_assert_eq(t.last_run_at, now);
    score_cand_t c = {.name = "dev"};
    profiles_fill(p, "Feature", now, &c);
    cr_assert_eq(c.type_runs, 100, "only the last 100 runs of a type count");
    cr_assert_float_eq(c.expertise, 1.0, 1e-9, "the failures fell out of the window");
    profiles_fill(p, "bugfix", now, &c);
    cr_assert_eq(c.type_runs, 1);
    cr_assert_float_eq(c.expertise, 0, 1e-9);
    score_cand_t n = {.name = "new"};
    profiles_fill(p, "feature", now, &n);
    cr_assert_eq(n.runs + n.type_runs, 0);
    json_t *j = profiles_json(p, "dev", now);
    cr_assert_eq(json_array_size(j), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "task_type")),
                     "feature");
    cr_assert_float_eq(json_real_value(json_object_get(json_array_get(j, 0), "confidence")),
                       1.0, 1e-9);
    json_decref(j);
    profiles_totals(p, "nobody", &t);
    cr_assert_eq(t.runs, 0);
    profiles_destroy(&p);
    cr_assert_null(p);
}
