/* test_rules.c - unit tests for services/backend/rules.c: status
 * transitions, done tasks, blockers and their error codes. */
#include <criterion/criterion.h>
#include <string.h>

#include "rules.h"

Test(rules, transitions)
{
    cr_assert(rules_transition_ok("todo", "in-progress"));
    cr_assert(rules_transition_ok("in-progress", "review"));
    cr_assert(rules_transition_ok("review", "done"));
    cr_assert(rules_transition_ok("review", "in-progress"));
    cr_assert(rules_transition_ok("done", "archived"));
    cr_assert(rules_transition_ok("todo", "archived"));
    cr_assert(rules_transition_ok("todo", "todo"));
    cr_assert_not(rules_transition_ok("todo", "review"));
    cr_assert_not(rules_transition_ok("todo", "done"));
    cr_assert(rules_transition_ok("in-progress", "todo"), "a failed run gives its task back");
    cr_assert_not(rules_transition_ok("review", "todo"));
    cr_assert_not(rules_transition_ok("done", "in-progress"));
    cr_assert_not(rules_transition_ok("archived", "todo"));
}

Test(rules, done_tasks_blockers_and_codes)
{
    char msg[128];
    cr_assert_null(
        rules_check_change("done", "archived", false, true, msg, sizeof msg));
    cr_assert_str_eq(rules_check_change("done", NULL, true, true, msg, sizeof msg),
                     "task_done");
    cr_assert_str_eq(rules_check_change("done", "review", false, true, msg, sizeof msg),
                     "invalid_transition");
    cr_assert_str_eq(
        rules_check_change("done", "archived", true, true, msg, sizeof msg),
        "task_done");
    cr_assert_str_eq(rules_check_change("todo", "done", false, true, msg, sizeof msg),
                     "invalid_transition");
    cr_assert(strstr(msg, "todo") && strstr(msg, "done"), "%s", msg);
    cr_assert_str_eq(
        rules_check_change("todo", "in-progress", false, false, msg, sizeof msg),
        "blocked");
    cr_assert_null(
        rules_check_change("todo", "in-progress", true, true, msg, sizeof msg));
    cr_assert_null(rules_check_change("todo", NULL, true, false, msg, sizeof msg));
    cr_assert(rules_is_type("tech-debt") && !rules_is_type("chore"));
    cr_assert(rules_is_priority("low") && !rules_is_priority("urgent"));
    cr_assert(rules_is_status("archived") && !rules_is_status("blocked"));
}
