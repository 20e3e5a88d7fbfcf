/* prompt.h - the user message an agent gets for a task: its title, type,
 * priority and description, and the results of the tasks it was blocked
 * by (each cut to PROMPT_BLOCKER_MAX bytes). Pure; any thread. */
#ifndef VAPORA_AGENTS_PROMPT_H
#define VAPORA_AGENTS_PROMPT_H

#include <jansson.h>

#define PROMPT_BLOCKER_MAX 8000

/* A new heap string. blockers: the blocking tasks' documents (may be NULL
 * or empty). */
char *prompt_user_message(const json_t *task, const json_t *blockers);

#endif
