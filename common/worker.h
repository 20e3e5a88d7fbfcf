/* worker.h - the process runtime every service binary shares.
 *
 * worker_main() parses the command line (-c CONFIG, -l ADDR), loads the
 * config, sets up logging, the loop, the blocking pool, metrics and the HTTP
 * server (with GET /health and GET /metrics), takes the listening socket
 * from a supervisor (LISTEN_FDS) or binds [service:NAME] listen itself, calls
 * the service's setup(), and runs the loop until SIGTERM/SIGINT. When
 * [nats] url is set it connects to NATS in the background (GET /health
 * says "degraded" while it is away) and takes connections, and says ready
 * to the supervisor, only once connected or after 3 s at most. On
 * SIGTERM/SIGINT it stops accepting, lets in-flight requests finish for up
 * to shutdown_timeout seconds, calls teardown(), closes everything and
 * returns the exit status (0 on a clean stop). It runs with umask 077.
 *
 * Runtime keys are read from [service:NAME] first, then [runtime]; their
 * defaults, bounds and checks are in settings.h. yield_after_us: see
 * loop_set_yield (0 never yields). */
#ifndef VAPORA_WORKER_H
#define VAPORA_WORKER_H

#include "cfg.h"
#include "health.h"
#include "http.h"
#include "loop.h"
#include "metrics.h"
#include "natsc.h"
#include "pool.h"

typedef struct worker worker_t;

typedef struct worker_service {
    const char *name;           /* "backend": section [service:backend] */
    const char *default_listen; /* used when the section has no listen */
    /* The sections the service declares (services/<name>/schema.c), or
     * NULL: with the shared ones (settings.h), what the worker warns about
     * unknown keys against. */
    const cfg_schema_table_t *schema;
    /* Adds routes and opens the service's resources; loop thread, before
     * the first connection. Returns 0, or -errno to exit with status 1. */
    int (*setup)(worker_t *w);
    /* Releases what setup() opened; in-flight requests are done. */
    void (*teardown)(worker_t *w);
    /* Optional, for work that is not an HTTP request (an agent's run):
     * drain() is called once when the worker starts to drain (take no new
     * work); the drain then also waits while busy() says so, up to
     * shutdown_timeout, before teardown(). Loop thread. */
    void (*drain)(worker_t *w);
    bool (*busy)(worker_t *w);
    /* NATS publishes written at once by the publishing thread (natsc.h). */
    bool nats_send_asap;
    /* Optional: whether cfg's settings of the service are valid (err says
     * why not), opening nothing. `--check -c FILE` runs it and exits 0 or
     * 2: the supervisor asks it before it accepts a reload. */
    bool (*check)(const cfg_t *cfg, char *err, size_t errlen);
} worker_service_t;

/* Runs the worker; returns the process exit status. */
int worker_main(int argc, char **argv, const worker_service_t *svc);

/* Accessors for setup()/handlers; all owned by the worker. */
loop_t *worker_loop(worker_t *w);
pool_t *worker_pool(worker_t *w);
http_server_t *worker_http(worker_t *w);
metrics_t *worker_metrics(worker_t *w);
const cfg_t *worker_cfg(worker_t *w);
/* "service:NAME", the section of this service. */
const char *worker_section(worker_t *w);

/* The NATS connection, or NULL when [nats] url is not set. Borrowed. */
natsc_t *worker_nats(worker_t *w);

/* A dependency check for GET /health: returns WORKER_HEALTHY, or
 * WORKER_DEGRADED / WORKER_UNHEALTHY with a one-line reason in buf. Runs on
 * the loop thread for each /health request: it must not block. */
enum {
    WORKER_HEALTHY = HEALTH_OK,
    WORKER_DEGRADED = HEALTH_DEGRADED,
    WORKER_UNHEALTHY = HEALTH_UNHEALTHY
};
typedef health_check_fn worker_check_fn;
/* Adds a check named name (copied). Then /health answers 503 with
 * "status":"degraded" or "unhealthy" and "reason":"<name>: <reason>" while
 * a check fails. The worker adds "nats" itself when [nats] url is set. */
void worker_add_check(worker_t *w, const char *name, worker_check_fn fn, void *ud);

/* Adds a line (copied) to the "warnings" array of every GET /health answer:
 * something an operator should know that does not make the worker
 * unhealthy (a risky setting, a part of the config left unused). Loop
 * thread, typically from setup(). */
void worker_add_warning(worker_t *w, const char *text);

/* The listening socket (borrowed; -1 before it is open), e.g. to learn the
 * address it is bound to with getsockname(). */
int worker_listen_fd(worker_t *w);

/* Reads a runtime key: [service:NAME] first, then [runtime] (settings.h). */
const char *worker_setting(worker_t *w, const char *key);

#endif
