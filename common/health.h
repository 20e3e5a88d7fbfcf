/* health.h - GET /health of a worker: the dependency checks it runs, the
 * warnings it lists, and its answer.
 *
 * Healthy and without warnings, the answer is
 *   {"status":"healthy","service":S,"pid":P,"uptime_s":U,"version":V}
 * otherwise 503 (a check failing) with "reason", and 200 or 503 with a
 * "warnings" array. The healthy answer is formatted once per second of
 * uptime and sent as a reply the requests of that second share
 * (http_reply_shared): a /health costs no allocation and no formatting.
 * Loop thread only. */
#ifndef VAPORA_HEALTH_H
#define VAPORA_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"

typedef struct health health_t;

/* What a check returns (worker.h's WORKER_HEALTHY, ...). */
enum { HEALTH_OK = 0, HEALTH_DEGRADED = 1, HEALTH_UNHEALTHY = 2 };
/* A dependency check: HEALTH_OK, or HEALTH_DEGRADED / HEALTH_UNHEALTHY with
 * a one-line reason in buf. Runs on the loop thread for each /health
 * request: it must not block. */
typedef int (*health_check_fn)(void *ud, char *buf, size_t len);

/* The /health of service (copied) in this process; loop is borrowed and
 * must outlive it. Uptime counts from health_start. */
health_t *health_new(loop_t *loop, const char *service);
/* Accepts NULL; sets *hp = NULL. */
void health_destroy(health_t **hp);
/* Uptime (and the pid) count from now: the worker starts serving. */
void health_start(health_t *h);
/* Adds a check named name (copied); the first failing one gives the
 * reason, the worst result the status. */
void health_add_check(health_t *h, const char *name, health_check_fn fn, void *ud);
/* Adds a line (copied) to the "warnings" of every answer. */
void health_add_warning(health_t *h, const char *text);
/* Adds GET /health to srv, answered from h (which must outlive srv's
 * requests). */
void health_route(health_t *h, http_server_t *srv);

#endif
