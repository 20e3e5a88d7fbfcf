/* main.c - vapora-backend: REST API for projects, tasks and users.
 *
 * Wiring only: opens the store (migrations run here, at start-up, before
 * the first connection), loads the JWT secret (auth.c) and makes the first
 * users (bootstrap.c), opens the login throttle (logins.c) and the read cache
 * (cache.c), starts the events publisher (events.c) and the WebSocket relay
 * (live.c), and adds the routes (users.c, projects.c, tasks.c), the web
 * board's files (web.c) and the other services' routes it reads (relay.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "api.h"
#include "backend.h"
#include "bootstrap.h"
#include "events.h"
#include "file.h"
#include "live.h"
#include "log.h"
#include "now.h"
#include "projects.h"
#include "relay.h"
#include "sbuf.h"
#include "schema.h"
#include "settings.h"
#include "sqldb.h"
#include "store_outbox.h"
#include "tasks.h"
#include "users.h"
#include "web.h"

static backend_t s_backend;
static events_t *s_events;
static live_t *s_live;
static web_t *s_web;
static relay_t *s_relay;

/* Blocks until this process holds data_dir/backend-setup.lock; -1 (and a
 * warning) when it cannot be taken: set-up then goes on unserialised. */
static int s_setup_lock(const char *dir)
{
    char *path = xasprintf("%s/backend-setup.lock", dir);
    int fd = file_lock(path);
    if (fd < 0)
        log_err(-fd, "locking %s", path);
    free(path);
    return fd;
}

static void s_setup_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the lock */
}

static void s_cache_metrics(sbuf_t *out, void *ud)
{
    backend_t *b = ud;
    if (!b->cache)
        return;
    sbuf_puts(out,
              "# HELP vapora_backend_read_cache_total GET /tasks/{id} answered from "
              "the worker's cache (hit) or the database (miss).\n"
              "# TYPE vapora_backend_read_cache_total counter\n");
    sbuf_printf(out, "vapora_backend_read_cache_total{result=\"hit\"} %llu\n",
                (unsigned long long)rcache_hits(b->cache));
    sbuf_printf(out, "vapora_backend_read_cache_total{result=\"miss\"} %llu\n",
                (unsigned long long)rcache_misses(b->cache));
}

/* The writer's batches: writes / batches is the mean batch. */
static void s_writer_metrics(sbuf_t *out, void *ud)
{
    backend_t *b = ud;
    uint64_t batches, writes;
    store_writer_stats(b->store, &batches, &writes);
    metrics_write_sample(out, "vapora_backend_write_batches_total",
                         "Transactions the writer ran (group commits).", "counter",
                         "service=\"backend\"", (double)batches);
    metrics_write_sample(out, "vapora_backend_writes_total",
                         "Writes the writer ran, in those transactions.", "counter",
                         "service=\"backend\"", (double)writes);
}

/* GET /health: degraded while writes fail for lack of space, on any
 * worker (the flag is shared); it clears once a write commits again. */
static int s_storage_check(void *ud, char *buf, size_t len)
{
    backend_t *b = ud;
    uint64_t since = store_full_since(b->store);
    if (!since)
        return WORKER_HEALTHY;
    long long ago = ((long long)now_wall_ms() - (long long)since) / 1000;
    snprintf(buf, len, "the disk is full: writes fail (507 storage_full), for %lld s",
             ago > 0 ? ago : 0);
    return WORKER_DEGRADED;
}

/* The [backend] numbers: defaults and bounds. */
enum { N_TTL, N_ADDRESS_FREE, N_OUTBOX, N_CACHE, N_MAX_AGE, N_MAX_BYTES, N_COUNT };
static const struct {
    const char *key;
    long def, min, max;
} s_nums[N_COUNT] = {
    [N_TTL] = {"token_ttl", 3600, 1, 30L * 86400},
    [N_ADDRESS_FREE] = {"login_address_failures", LOGINS_ADDRESS_FREE, 0, 1000000},
    [N_OUTBOX] = {"outbox_max", 100000, 1, 10000000},
    [N_CACHE] = {"read_cache", 1024, 0, 1000000},
    [N_MAX_AGE] = {"events_max_age", EVENTS_MAX_AGE, 0, 100L * 365 * 86400},
    [N_MAX_BYTES] = {"events_max_bytes", EVENTS_MAX_BYTES, 0, 1L << 50},
};

/* Reads every [backend] number into n; false with the reason in err. */
static bool s_numbers(const cfg_t *cfg, long n[N_COUNT], char *err, size_t errlen)
{
    for (size_t i = 0; i < N_COUNT; i++)
        if (cfg_get_long(cfg, "backend", s_nums[i].key, s_nums[i].def, s_nums[i].min,
                         s_nums[i].max, &n[i], err, errlen) < 0)
            return false;
    return true;
}

/* Workers start together: one at a time creates the database (WAL switch,
 * migrations), the secret and the first admin. SQLite answers "locked" at
 * once, without its busy handler, to a WAL switch or a read snapshot
 * upgraded while another process writes. */
static int s_open(backend_t *b, const cfg_t *cfg, long token_ttl, long address_free)
{
    char err[512];
    sqldb_sync_t sync;
    if (sqldb_sync_setting(cfg, "backend", &sync, err, sizeof err) < 0) {
        log_error("backend: %s", err);
        return -EINVAL;
    }
    const char *db = cfg_get(cfg, "backend", "database");
    char *path = db && *db ? xstrdup(db) : xasprintf("%s/vapora.db", b->data_dir);
    int lock = s_setup_lock(b->data_dir);
    b->store = store_open(path, sync, err, sizeof err);
    free(path);
    if (b->store)
        b->auth = auth_new(cfg_get(cfg, "backend", "jwt_secret"), b->data_dir,
                           token_ttl, err, sizeof err);
    int rc = b->auth ? bootstrap_users(b->store, b->data_dir,
                                       cfg_get(cfg, "backend", "admin_password"),
                                       cfg_get(cfg, "backend", "agents_password"), err,
                                       sizeof err)
                     : -EIO;
    if (b->store)
        store_end(b->store);
    if (rc == 0)
        b->logins = logins_new(b->data_dir, (unsigned)address_free);
    s_setup_unlock(lock);
    if (rc < 0) {
        log_error("backend: %s", err);
        return -EIO;
    }
    return 0;
}

/* The writer's queue holds as many writes as the pool's (pool_queue): a
 * write beyond it is answered 503, whichever runs it. */
static int s_writer_setup(worker_t *w, backend_t *b)
{
    long queue;
    char err[256];
    if (settings_get_long(worker_cfg(w), worker_section(w), "pool_queue", &queue, err,
                          sizeof err) < 0) {
        log_error("%s", err);
        return -EINVAL;
    }
    store_set_queue_max(b->store, (size_t)queue);
    int rc = api_init(b);
    if (rc < 0)
        log_err(-rc, "backend: the writer's mailbox");
    return rc;
}

/* The web board: its files and the routes of the other services it reads
 * through this origin. */
static int s_add_board(backend_t *b, const cfg_t *cfg)
{
    char err[512];
    s_web = web_new(cfg_get_str(cfg, "backend", "web_root", "web"), err, sizeof err);
    s_relay = s_web ? relay_new(b, cfg, err, sizeof err) : NULL;
    if (!s_relay) {
        log_error("backend: %s", err);
        return -EINVAL;
    }
    relay_add_routes(s_relay);
    web_add_routes(s_web, worker_http(b->w));
    return 0;
}

static int s_setup(worker_t *w)
{
    backend_t *b = &s_backend;
    const cfg_t *cfg = worker_cfg(w);
    b->w = w;
    b->data_dir = xstrdup(cfg_get_str(cfg, "supervisor", "data_dir", "data"));
    if (mkdir(b->data_dir, 0755) < 0 && errno != EEXIST) {
        log_err(errno, "creating data_dir %s", b->data_dir);
        return -EIO;
    }
    long n[N_COUNT];
    char err[256];
    if (!s_numbers(cfg, n, err, sizeof err)) {
        log_error("%s", err);
        return -EINVAL;
    }
    if (s_open(b, cfg, n[N_TTL], n[N_ADDRESS_FREE]) < 0 || s_writer_setup(w, b) < 0)
        return -EIO;
    events_limits_t lim = {.max_age_s = n[N_MAX_AGE], .max_bytes = n[N_MAX_BYTES]};
    store_outbox_set_max(b->store, n[N_OUTBOX]);
    if (store_version_known(b->store))
        b->cache = rcache_new((size_t)n[N_CACHE]);
    metrics_add_collector(worker_metrics(w), s_cache_metrics, b);
    metrics_add_collector(worker_metrics(w), s_writer_metrics, b);
    worker_add_check(w, "storage", s_storage_check, b);
    s_events = events_new(b, &lim);
    s_live = live_new(b);
    users_add_routes(b);
    projects_add_routes(b);
    tasks_add_routes(b);
    return s_add_board(b, cfg);
}

static void s_teardown(worker_t *w)
{
    UNUSED(w);
    backend_t *b = &s_backend;
    relay_destroy(&s_relay);
    web_destroy(&s_web);
    live_destroy(&s_live);
    events_destroy(&s_events);
    /* The writes still queued commit; then their answers go out (they use
     * the auth state). */
    store_destroy(&b->store);
    api_fini(b);
    rcache_destroy(&b->cache);
    logins_destroy(&b->logins);
    auth_destroy(&b->auth);
    free(b->data_dir);
    b->data_dir = NULL;
}

/* A draining worker ends its relayed streams (a run's live output): their
 * clients reconnect to a sibling. */
static void s_drain(worker_t *w)
{
    UNUSED(w);
    if (s_relay)
        relay_drain(s_relay);
}

/* --check: the [backend] numbers are in their bounds, synchronous known. */
static bool s_check(const cfg_t *cfg, char *err, size_t errlen)
{
    long n[N_COUNT];
    sqldb_sync_t sync;
    return s_numbers(cfg, n, err, errlen) &&
           sqldb_sync_setting(cfg, "backend", &sync, err, errlen) == 0;
}

static const worker_service_t s_service = {
    .name = "backend",
    .default_listen = "0.0.0.0:8001",
    .schema = &backend_schema,
    .setup = s_setup,
    .teardown = s_teardown,
    .drain = s_drain,
    .check = s_check,
};

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &s_service);
}
