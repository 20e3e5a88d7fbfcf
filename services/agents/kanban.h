/* kanban.h - the agents service's client of the backend's REST API (it
 * never opens the backend's database): read a task, change it under
 * If-Match.
 *
 * It acts as the backend user [agents] backend_user (default "agents",
 * role member), whose password is [agents] backend_password or the file
 * DATA_DIR/agents-password the backend writes at its first start. It logs
 * in when first needed, again before the token expires, and once more on
 * a 401; calls made meanwhile wait for the token.
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_KANBAN_H
#define VAPORA_AGENTS_KANBAN_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "curlm.h"
#include "loop.h"

typedef struct kanban kanban_t;

/* The answer: status is the HTTP status, or 0 when the backend could not
 * be reached (err says why). body is the parsed JSON answer (borrowed), or
 * NULL. */
typedef void (*kanban_fn)(int status, json_t *body, const char *err, void *ud);

kanban_t *kanban_new(loop_t *loop, curlm_t *m, const agents_config_t *cfg);
/* Drops every call still waiting (their callbacks are not run). */
void kanban_destroy(kanban_t **kp);

/* GET /api/v1/tasks/{id}. */
void kanban_get_task(kanban_t *k, const char *id, kanban_fn fn, void *ud);
/* PATCH /api/v1/tasks/{id} with If-Match: version (patch is borrowed). */
void kanban_patch_task(kanban_t *k, const char *id, int64_t version, const json_t *patch,
                       kanban_fn fn, void *ud);
/* The same, for a caller that reads nothing of a 2xx answer: body is then
 * NULL (the task the backend sends back is not parsed); any other answer's
 * body comes as above. */
void kanban_patch_task_quiet(kanban_t *k, const char *id, int64_t version,
                             const json_t *patch, kanban_fn fn, void *ud);

#endif
