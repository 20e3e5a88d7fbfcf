/* store_projects.h - projects and their board. A pool thread or the
 * writer; see store.h for errors and ownership. */
#ifndef VAPORA_STORE_PROJECTS_H
#define VAPORA_STORE_PROJECTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Creates a project (desc NULL: ""). *out: the project. */
int store_project_create(store_t *s, const char *name, const char *desc, json_t **out,
                         store_err_t *e);
int store_project_get(store_t *s, const char *id, json_t **out, store_err_t *e);
/* Projects after cursor position `after` (0: from the start), at most limit;
 * *next is the position of the last one when more may follow, else 0. */
int store_project_list(store_t *s, int64_t after, int limit, json_t **items,
                       int64_t *next, store_err_t *e);
/* Applies name/description from patch (already validated). */
int store_project_update(store_t *s, const char *id, const json_t *patch, json_t **out,
                         store_err_t *e);
/* VP_ECONFLICT project_has_tasks unless cascade; a cascade deletes the
 * tasks too (a task.deleted event each). */
int store_project_delete(store_t *s, const char *id, bool cascade, store_err_t *e);
/* What a board leaves out unless asked (flags of store_project_board). */
enum {
    STORE_BOARD_ARCHIVED = 1u << 0, /* the archived column's tasks */
    STORE_BOARD_RESULTS = 1u << 1,  /* each task's result */
};
/* {"project_id","columns":[{"status","count","tasks":[…]}…]}: one column per
 * status in board order, each by priority then age; count is the column's
 * tasks, those left out too. Without STORE_BOARD_ARCHIVED the archived
 * column's tasks are left out; without STORE_BOARD_RESULTS each task has
 * "has_result" (true/false) instead of its "result". */
int store_project_board(store_t *s, const char *id, unsigned flags, json_t **out,
                        store_err_t *e);

#endif
