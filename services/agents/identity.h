/* identity.h - who calls the agents API. The backend owns users and
 * tokens, so the agents service asks it: a bearer token is valid when the
 * backend's GET /api/v1/auth/me accepts it, and its role is the one the
 * backend answers (viewer reads, member acts, owner too). A verdict is
 * kept IDENTITY_TTL_MS, so a deleted user or a changed role takes effect
 * here within that time, and a burst of API calls costs one backend call.
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_IDENTITY_H
#define VAPORA_AGENTS_IDENTITY_H

#include <stdbool.h>

#include "config.h"
#include "curlm.h"
#include "http.h"
#include "loop.h"

#define IDENTITY_TTL_MS 2000

typedef struct identity identity_t;

enum { ROLE_NONE = -1, ROLE_VIEWER = 0, ROLE_MEMBER = 1, ROLE_OWNER = 2 };

identity_t *identity_new(loop_t *loop, curlm_t *m, const agents_config_t *cfg);
void identity_destroy(identity_t **ip);

/* Checks req's bearer token for at least min_role, then calls
 * fn(req, ud). Otherwise replies 401 (no or bad token), 403 (role too
 * low) or 503 (the backend cannot be asked), and fn is not called. */
typedef void (*identity_fn)(http_req_t *req, void *ud);
void identity_check(identity_t *id, http_req_t *req, int min_role, identity_fn fn, void *ud);

#endif
