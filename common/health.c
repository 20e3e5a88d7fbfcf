/* health.c - see health.h.
 *
 * DESIGN. A load balancer, the supervisor's probes and every benchmark
 * ask /health far more often than anything changes in its answer: the
 * uptime moves once a second and the checks rarely fail. So the healthy
 * answer's bytes are kept and formatted again only when the uptime's
 * second changes, and they go out through one shared libmicrohttpd
 * response (http_reply_shared): measured with callgrind, snprintf and the
 * response's allocations were over a third of the instructions a /health
 * cost in user space. The checks still run for every request: a failing
 * dependency shows in the next answer. */
#define _GNU_SOURCE
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "base.h"

#define HEALTH_REASON_LEN 320

typedef struct check {
    char *name;
    health_check_fn fn;
    void *ud;
} check_t;

struct health {
    loop_t *loop;
    char *service;
    int pid;
    uint64_t started_ms;
    check_t *checks;
    size_t nchecks;
    json_t *warnings; /* NULL: none */
    /* The healthy answer of second `up` of uptime, and its reply. */
    uint64_t up;
    char body[256];
    size_t len;
    http_shared_t *shared;
};

health_t *health_new(loop_t *loop, const char *service)
{
    health_t *h = xcalloc(1, sizeof *h);
    h->loop = loop;
    h->service = xstrdup(service);
    h->shared = http_shared_new();
    h->up = UINT64_MAX;
    health_start(h);
    return h;
}

void health_destroy(health_t **hp)
{
    health_t *h = hp ? *hp : NULL;
    if (!h)
        return;
    for (size_t i = 0; i < h->nchecks; i++)
        free(h->checks[i].name);
    free(h->checks);
    json_decref(h->warnings);
    http_shared_destroy(&h->shared);
    free(h->service);
    free(h);
    *hp = NULL;
}

void health_start(health_t *h)
{
    h->started_ms = loop_now_ms(h->loop);
    h->pid = (int)getpid();
    h->up = UINT64_MAX;
}

void health_add_check(health_t *h, const char *name, health_check_fn fn, void *ud)
{
    h->checks = xrealloc(h->checks, (h->nchecks + 1) * sizeof *h->checks);
    h->checks[h->nchecks++] = (check_t){xstrdup(name), fn, ud};
}

void health_add_warning(health_t *h, const char *text)
{
    if (!h->warnings)
        h->warnings = json_array();
    json_array_append_new(h->warnings, json_string(text));
}

/* Runs the checks; returns the worst result, with "name: reason" of the
 * first failing one in reason. */
static int s_run_checks(health_t *h, char *reason, size_t len)
{
    int worst = HEALTH_OK;
    for (size_t i = 0; i < h->nchecks; i++) {
        char buf[256] = "";
        int r = h->checks[i].fn(h->checks[i].ud, buf, sizeof buf);
        if (r > worst) {
            snprintf(reason, len, "%s: %s", h->checks[i].name, buf);
            worst = r;
        }
    }
    return worst;
}

/* The answer with a reason or warnings: rare, built each time. */
static void s_reply_full(health_t *h, http_req_t *req, int state, const char *reason,
                         uint64_t up)
{
    const char *st = state == HEALTH_OK         ? "healthy"
                     : state == HEALTH_DEGRADED ? "degraded"
                                                : "unhealthy";
    json_t *j = json_pack("{s:s,s:s,s:i,s:I,s:s}", "status", st, "service", h->service,
                          "pid", h->pid, "uptime_s", (json_int_t)up, "version",
                          VAPORA_VERSION);
    if (state != HEALTH_OK)
        json_object_set_new(j, "reason", json_string(reason));
    if (h->warnings)
        json_object_set(j, "warnings", h->warnings);
    http_reply_json(req, state == HEALTH_OK ? 200 : 503, j);
}

static void s_health(http_req_t *req, void *ud)
{
    health_t *h = ud;
    uint64_t up = (loop_now_ms(h->loop) - h->started_ms) / 1000;
    char reason[HEALTH_REASON_LEN];
    int state = h->nchecks ? s_run_checks(h, reason, sizeof reason) : HEALTH_OK;
    if (state != HEALTH_OK || h->warnings) {
        s_reply_full(h, req, state, reason, up);
        return;
    }
    if (up != h->up) {
        int n = snprintf(h->body, sizeof h->body,
                         "{\"status\":\"healthy\",\"service\":\"%s\",\"pid\":%d,"
                         "\"uptime_s\":%llu,\"version\":\"" VAPORA_VERSION "\"}",
                         h->service, h->pid, (unsigned long long)up);
        if (n < 0 || (size_t)n >= sizeof h->body) { /* a very long service name */
            s_reply_full(h, req, state, reason, up);
            return;
        }
        h->len = (size_t)n;
        h->up = up;
    }
    http_reply_shared(req, h->shared, 200, "application/json", h->body, h->len);
}

void health_route(health_t *h, http_server_t *srv)
{
    http_route(srv, "GET", "/health", 0, s_health, h);
}
