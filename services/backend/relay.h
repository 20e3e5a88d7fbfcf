/* relay.h - the routes of the other services that the web board reads
 * through the backend, so that the board has one origin (docs/web.md):
 *
 *   /api/v1/agents*, /api/v1/runs*, /api/v1/assignments/preview
 *       -> [backend] agents_url, with the caller's Authorization (the agents
 *          service checks the token by asking the backend); a run's live
 *          output (GET /api/v1/runs/{id}/stream, SSE) is streamed through as
 *          it arrives, never buffered whole;
 *   /api/v1/budgets, /api/v1/usage, /api/v1/providers
 *       -> [backend] router_url, for any signed-in user (checked here), with
 *          [backend] router_key as the router's caller key when set;
 *   /api/v1/supervisor/status
 *       -> [backend] supervisor_url + /status, owners only (checked here),
 *          with the token of DATA_DIR/admin-token when that file exists.
 *
 * DESIGN. Each relayed request is one hclient request on the worker's loop
 * (curl multi: no thread per request). Only the query arguments a route
 * knows are forwarded, re-encoded. The answer's status, Content-Type,
 * Location and Retry-After come back as they are; a service that does not
 * answer is 502 `upstream_unavailable` naming it. A client that leaves
 * stops the upstream request at once. At most RELAY_MAX_CALLS requests per
 * worker are relayed at once (503 `overloaded` beyond).
 *
 * Every function runs on the loop thread. */
#ifndef VAPORA_BACKEND_RELAY_H
#define VAPORA_BACKEND_RELAY_H

#include <stddef.h>

#include "backend.h"
#include "cfg.h"

typedef struct relay relay_t;

#define RELAY_MAX_CALLS 4096u
/* A stream whose client takes less than this falls behind and is cut. */
#define RELAY_MAX_PENDING (4u << 20)

/* Reads [backend] agents_url, router_url, router_key and supervisor_url
 * (default: http:// + [supervisor] admin) and makes the worker's curl
 * multi handle. NULL (err says why) on a malformed URL. b must outlive it. */
relay_t *relay_new(backend_t *b, const cfg_t *cfg, char *err, size_t errlen);
/* Stops the relayed requests still running (their clients get 503) and
 * frees the relay. Accepts NULL; sets *rp = NULL. */
void relay_destroy(relay_t **rp);
/* Adds the relayed routes to the worker's server. */
void relay_add_routes(relay_t *r);
/* The worker drains: open streams end (broken, so their clients reconnect
 * to another worker); plain requests finish. */
void relay_drain(relay_t *r);
/* Requests relayed right now. */
size_t relay_in_flight(const relay_t *r);

#endif
