/* users.h - the routes of POST /api/v1/auth/login, GET /api/v1/auth/me
 * and /api/v1/users. */
#ifndef VAPORA_BACKEND_USERS_H
#define VAPORA_BACKEND_USERS_H

#include "backend.h"

/* Adds the routes to the worker's HTTP server (loop thread, at set-up); b
 * outlives them. */
void users_add_routes(backend_t *b);

#endif
