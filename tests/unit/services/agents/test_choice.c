/* test_choice.c - unit tests for the agents service's choice of an agent:
 * roles.c, infer.c (task type from text) and score.c (the formula,
 * recency weights, ranking). */
#include "infer.h"
#include "roles.h"
#include "score.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

Test(roles, twelve_known_roles_with_default_task_types)
{
    for (size_t i = 0; i < ROLES_COUNT; i++) {
        cr_assert(roles_valid(roles_name(i)));
        cr_assert_not_null(roles_default_task_types(roles_name(i)));
    }
    cr_assert(roles_valid("monitor"));
    cr_assert_not(roles_valid("admin"));
    cr_assert_not(roles_valid(NULL));
    cr_assert_null(roles_name(ROLES_COUNT));
}

Test(infer, counts_words_phrases_and_plurals)
{
    cr_assert_eq(infer_count("Design the API; the APIs need a schema", "api"), 2);
    cr_assert_eq(infer_count("please do a code review and a code-review", "code-review"), 2);
    cr_assert_eq(infer_count("write tests, then test again", "test"), 2);
    cr_assert_eq(infer_count("capital", "api"), 0, "inside a word is not a match");
    cr_assert_eq(infer_count("", "api"), 0);
    cr_assert_eq(infer_count("api", ""), 0);
    cr_assert_eq(infer_count(NULL, "api"), 0);
}

Test(infer, the_most_mentioned_type_wins_and_ties_infer_nothing)
{
    const char *types[] = {"review", "code-review", "test", "documentation"};
    cr_assert_eq(infer_best("Write tests for the parser, test the edge cases", types, 4), 2);
    cr_assert_eq(infer_best("code review of the parser", types, 4), 1,
                 "the more specific phrase wins an equal count");
    cr_assert_eq(infer_best("test the documentation", types, 4), -1, "a tie");
    cr_assert_eq(infer_best("refactor the loop", types, 4), -1, "no match");
    const char *dup[] = {"test", "test"};
    cr_assert_eq(infer_best("a test", dup, 2), 0, "one type claimed twice is no tie");
}

Test(score, recency_weights_and_expertise)
{
    cr_assert_float_eq(score_weight(0), 3.0, 1e-9);
    cr_assert_float_eq(score_weight(6.9 * 86400), 3.0, 1e-9);
    cr_assert_float_eq(score_weight(14 * 86400), exp(-1), 1e-9);
    cr_assert_lt(score_weight(60 * 86400), 0.01);
    int64_t now = 100 * 86400;
    score_run_t runs[] = {{true, now - 86400}, {false, now - 30 * 86400}};
    double w_old = exp(-(30.0 - 7) / 7);
    cr_assert_float_eq(score_expertise(runs, 2, now), 3.0 / (3.0 + w_old), 1e-9);
    cr_assert_float_eq(score_expertise(runs, 0, now), 0, 1e-12);
    cr_assert_float_eq(score_confidence(10), 0.5, 1e-12);
    cr_assert_float_eq(score_confidence(40), 1.0, 1e-12);
}

Test(score, the_formula_and_its_terms)
{
    score_cand_t c = {.name = "a", .in_flight = 1, .max_concurrent = 2, .runs = 10,
                      .successes = 8, .type_runs = 5, .expertise = 0.6};
    cr_assert_eq(score_rank(&c, 1), 1);
    cr_assert_float_eq(c.load, 0.5, 1e-12);
    cr_assert_float_eq(c.base, 0.8 / 1.5, 1e-12);
    cr_assert_float_eq(c.confidence, 0.25, 1e-12);
    cr_assert_float_eq(c.total, 0.3 * 0.8 / 1.5 + 0.5 * 0.6 + 0.2 * 0.25, 1e-12);
}

Test(score, history_beats_load_and_full_agents_are_no_candidates)
{
    score_cand_t c[] = {
        {.name = "weak", .max_concurrent = 4, .runs = 20, .successes = 4,
         .type_runs = 20, .expertise = 0.2},
        {.name = "strong", .in_flight = 2, .max_concurrent = 4, .runs = 20,
         .successes = 19, .type_runs = 20, .expertise = 0.95},
        {.name = "busy", .in_flight = 2, .max_concurrent = 2, .runs = 50,
         .successes = 50, .type_runs = 50, .expertise = 1},
    };
    cr_assert_eq(score_rank(c, 3), 2);
    cr_assert_str_eq(c[0].name, "strong");
    cr_assert_str_eq(c[1].name, "weak");
    cr_assert_str_eq(c[2].name, "busy");
    cr_assert(c[2].full);
}

Test(score, without_history_least_loaded_then_least_recently_used)
{
    score_cand_t c[] = {
        {.name = "a", .in_flight = 1, .max_concurrent = 2, .last_used = 1},
        {.name = "b", .max_concurrent = 2, .last_used = 50},
        {.name = "c", .max_concurrent = 2, .last_used = 10},
    };
    cr_assert_eq(score_rank(c, 3), 3);
    cr_assert_str_eq(c[0].name, "c");
    cr_assert_str_eq(c[1].name, "b");
    cr_assert_str_eq(c[2].name, "a");
}
