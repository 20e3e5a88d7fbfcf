/* rules.c - see rules.h. */
#include "rules.h"

#include <stdio.h>
#include <string.h>

const char *const rules_statuses[] = {"todo", "in-progress", "review", "done",
                                      "archived"};
const unsigned rules_nstatuses = 5;

static bool s_in(const char *s, const char *const *set, unsigned n)
{
    for (unsigned i = 0; s && i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

bool rules_is_status(const char *s)
{
    return s_in(s, rules_statuses, rules_nstatuses);
}

bool rules_is_type(const char *s)
{
    static const char *const t[] = {"feature", "bugfix", "enhancement", "tech-debt"};
    return s_in(s, t, 4);
}

bool rules_is_priority(const char *s)
{
    static const char *const p[] = {"high", "medium", "low"};
    return s_in(s, p, 3);
}

bool rules_transition_ok(const char *from, const char *to)
{
    /* in-progress → todo: a run that failed or was canceled gives the task
     * back (and a person may too). */
    static const char *const allowed[][2] = {{"todo", "in-progress"},
                                             {"in-progress", "review"},
                                             {"in-progress", "todo"},
                                             {"review", "done"},
                                             {"review", "in-progress"}};
    if (strcmp(from, to) == 0 || strcmp(to, "archived") == 0)
        return true;
    for (unsigned i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strcmp(allowed[i][0], from) == 0 && strcmp(allowed[i][1], to) == 0)
            return true;
    return false;
}

const char *rules_check_change(const char *from, const char *to_status,
                               bool other_fields, bool blockers_done, char *msg,
                               unsigned len)
{
    bool moves = to_status && strcmp(to_status, from) != 0;
    if (moves && !rules_transition_ok(from, to_status)) {
        snprintf(msg, len, "a task cannot go from %s to %s", from, to_status);
        return "invalid_transition";
    }
    if (strcmp(from, "done") == 0 && other_fields) {
        snprintf(msg, len, "a done task is read-only; it can only be archived");
        return "task_done";
    }
    if (moves && strcmp(to_status, "in-progress") == 0 && !blockers_done) {
        snprintf(msg, len, "the task is blocked by tasks that are not done");
        return "blocked";
    }
    return NULL;
}
