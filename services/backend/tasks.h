/* tasks.h - the routes of tasks: create in a project, list with filters,
 * get (through the read cache), update under the status rules (If-Match),
 * delete, assign. */
#ifndef VAPORA_BACKEND_TASKS_H
#define VAPORA_BACKEND_TASKS_H

#include "backend.h"

/* Adds the routes to the worker's HTTP server (loop thread, at set-up); b
 * outlives them. */
void tasks_add_routes(backend_t *b);

#endif
