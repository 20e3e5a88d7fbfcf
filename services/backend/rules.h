/* rules.h - the task rules, apart from any storage: status transitions,
 * read-only done tasks, blockers. Pure functions, any thread. */
#ifndef VAPORA_RULES_H
#define VAPORA_RULES_H

#include <stdbool.h>

/* Statuses in board order. */
extern const char *const rules_statuses[];
extern const unsigned rules_nstatuses;

bool rules_is_status(const char *s);
bool rules_is_type(const char *s);
bool rules_is_priority(const char *s);
/* Whether a task may move from one status to another (same status: true). */
bool rules_transition_ok(const char *from, const char *to);

/* Checks a change of a task in status `from`: to_status is the new status
 * or NULL when unchanged; other_fields says whether anything else changes;
 * blockers_done whether every blocked_by task (after the change) is done.
 * Returns NULL when allowed, else the error code and a sentence in msg:
 * invalid_transition for a status move the rules forbid (a done task may
 * only be archived), task_done for any other change of a done task, blocked
 * for in-progress while a blocker is not done. */
const char *rules_check_change(const char *from, const char *to_status,
                               bool other_fields, bool blockers_done, char *msg,
                               unsigned len);

#endif
