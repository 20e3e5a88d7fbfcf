/* store_tasks.h - tasks, their dependencies (blocked_by) and the status
 * rules (rules.h) applied inside each write's transaction. A pool thread
 * or the writer; see store.h for errors and ownership. */
#ifndef VAPORA_STORE_TASKS_H
#define VAPORA_STORE_TASKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sbuf.h"
#include "store.h"

/* A new task, from validated fields. The strings and blocked_by are
 * borrowed for the call. */
typedef struct store_task_new {
    const char *project_id;
    const char *title;
    const char *description; /* NULL: "" */
    const char *type;        /* rules_is_type */
    const char *priority;    /* rules_is_priority */
    bool has_estimate;       /* false: estimated_hours is null */
    double estimated_hours;
    const json_t *blocked_by; /* an array of task ids, or NULL */
} store_task_new_t;

typedef struct store_task_filter {
    const char *project_id, *status, *priority, *assigned_role; /* NULL: any */
} store_task_filter_t;

/* Creates a task (status todo, version 1). VP_ENOTFOUND when the project
 * does not exist; VP_EINVALID invalid_blocked_by for unknown blockers.
 * *doc: the task's document (its JSON, as reads serve it; caller frees);
 * id: its id. */
int store_task_create(store_t *s, const store_task_new_t *t, char **doc,
                      char id[STORE_ID_MAX], store_err_t *e);
/* The task built from its columns (*out). */
int store_task_get(store_t *s, const char *id, json_t **out, store_err_t *e);
/* Reads serve each task's stored JSON: one task (*doc, caller frees), or
 * the tasks matching f after cursor position `after` (0: from the start),
 * at most limit, appended to items as a JSON array; *next is the position
 * of the last one when more may follow, else 0. */
int store_task_get_doc(store_t *s, const char *id, char **doc, store_err_t *e);
int store_task_page(store_t *s, const store_task_filter_t *f, int64_t after, int limit,
                    sbuf_t *items, int64_t *next, store_err_t *e);
/* Applies a validated patch under the status rules (see rules.h), in one
 * transaction. if_match < 0: no precondition (else VP_EPRECONDITION
 * version_mismatch when the task is at another version). A patch that
 * changes nothing answers the task as it is. *doc: the task's document. */
int store_task_update(store_t *s, const char *id, const json_t *patch,
                      int64_t if_match, char **doc, store_err_t *e);
/* An assignment: patch ({"assigned_role": ...}) is applied as an update,
 * with a new version and the task.assigned event even when the role is the
 * one the task has (a task may be assigned again: a new run). */
int store_task_assign(store_t *s, const char *id, const json_t *patch, char **doc,
                      store_err_t *e);
/* Deletes the task; the tasks it blocked lose it from blocked_by (a new
 * version each). */
int store_task_delete(store_t *s, const char *id, store_err_t *e);

#endif
