/* roles.h - the twelve agent roles of VAPORA and what each does by
 * default: the task types an agent of the role claims when its section
 * names none.
 *
 * Roles: architect, developer, code-reviewer, tester, documenter, marketer,
 * presenter, devops, security, project-manager, decision-maker, monitor.
 * Pure data; any thread. */
#ifndef VAPORA_AGENTS_ROLES_H
#define VAPORA_AGENTS_ROLES_H

#include <stdbool.h>
#include <stddef.h>

#define ROLES_COUNT 12

/* The i-th role name (0 <= i < ROLES_COUNT), in the order above. */
const char *roles_name(size_t i);
/* True when name is one of the twelve roles. */
bool roles_valid(const char *name);
/* The default task types of role as a comma-separated list, or NULL when
 * the role is unknown. */
const char *roles_default_task_types(const char *role);

#endif
