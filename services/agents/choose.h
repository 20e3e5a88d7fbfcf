/* choose.h - which agent takes a task: the candidates (the task's role's
 * agents; else the agents claiming the task type inferred from its text;
 * else the default role's agents), ranked by score.h with what the
 * profiles and the shared slots say. Used by runs and by
 * POST /api/v1/assignments/preview, so a user sees why.
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_CHOOSE_H
#define VAPORA_AGENTS_CHOOSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "agents.h"
#include "score.h"

/* What the choice reads of a task. */
typedef struct choose_task {
    const char *title, *description;
    const char *type; /* the task's own type (feature, bugfix, ...) */
    const char *role; /* NULL: the platform chooses */
} choose_task_t;

typedef struct choice {
    char task_type[64];     /* inferred, or the task's own type */
    bool inferred;          /* from the text */
    const char *why;        /* how the candidates were found (static text) */
    score_cand_t *cands;    /* ranked, best first; free with choice_clear */
    const agent_def_t **defs; /* defs[i] is cands[i]'s agent */
    size_t n;
    size_t open;            /* cands[0..open) are not full */
} choice_t;

/* Ranks the candidates of t. excluded (may be NULL): per configured agent,
 * true when it may not take this task (it failed it max_failures times in a
 * row). */
void choose_rank(agents_t *a, const choose_task_t *t, const bool *excluded, choice_t *out);
void choice_clear(choice_t *c);

/* The choice as the preview answers it (new reference). */
json_t *choice_json(const choice_t *c);

#endif
