/* watch.h - GET /api/v1/runs/{id}/stream: a run's output live, as
 * Server-Sent Events, whichever worker runs it:
 *   event: output   data: {"text": "..."}       (the output so far first)
 *   event: end      data: {"state": "...", "error": ...}
 * A run on this worker is followed directly; a run on another worker
 * through bus.h (the owner publishes what follows for as long as someone
 * asks, and everything so far on each ask, so a gap heals within
 * WATCH_RENEW_MS); a finished run sends its stored output and ends.
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_WATCH_H
#define VAPORA_AGENTS_WATCH_H

#include <jansson.h>

#include "agents.h"
#include "http.h"

#define WATCH_RENEW_MS 3000

typedef struct watch watch_t;

watch_t *watch_new(agents_t *a);
/* Ends every stream (the worker stops). */
void watch_destroy(watch_t **wp);

void watch_serve(agents_t *a, http_req_t *req, const char *run_id);
/* A bus message on BUS_WATCH or BUS_STREAM*. */
void watch_on_bus(agents_t *a, const char *subject, const json_t *msg);
/* Renews remote watches, expires leases, keeps idle streams alive. */
void watch_tick(agents_t *a);

#endif
