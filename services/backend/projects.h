/* projects.h - the routes of /api/v1/projects: create, list, get, update,
 * delete, and the board. */
#ifndef VAPORA_BACKEND_PROJECTS_H
#define VAPORA_BACKEND_PROJECTS_H

#include "backend.h"

/* Adds the routes to the worker's HTTP server (loop thread, at set-up); b
 * outlives them. */
void projects_add_routes(backend_t *b);

#endif
