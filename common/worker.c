/* worker.c - see worker.h.
 *
 * DESIGN. Signals are blocked and read from a signalfd on the loop, so no
 * work ever happens in a signal handler. A 50 ms probe timer keeps the loop
 * lag measurable even when idle; a 1 s tick folds the worst lag of the last
 * second into vapora_loop_lag_seconds and warns (at most every 10 s) when it
 * passes 100 ms: a starving loop.
 *
 * A worker with [nats] url takes connections (and says ready to the
 * supervisor) only once its NATS link is up, or after WORKER_NATS_WAIT_MS
 * at most: a replacement started by a rolling restart would otherwise
 * answer /health 503 "degraded" for the few milliseconds its first connect
 * takes, while the worker it replaces still serves healthy. A NATS that
 * stays away longer does not keep the service down: the worker then
 * serves, degraded, and reconnects in the background. Polled from a 10 ms
 * timer (natsc_connected is thread-safe): the wait is short and rare. */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "cpupin.h"
#include "health.h"
#include "log.h"
#include "metrics_http.h"
#include "net.h"
#include "alloc.h"
#include "now.h"
#include "sbuf.h"
#include "settings.h"
#include "sigfd.h"
#include "worker_args.h"

#define WORKER_LAG_WARN_NS (100ull * 1000000ull)
#define WORKER_LAG_WARN_EVERY_MS 10000
#define WORKER_DRAIN_QUIET_MS 200
#define WORKER_NATS_WAIT_MS 3000
#define WORKER_NATS_POLL_MS 10

struct worker {
    const worker_service_t *svc;
    char *section;
    cfg_t *cfg;
    loop_t *loop;
    pool_t *pool;
    metrics_t *metrics;
    http_server_t *http;
    int listen_fd;
    sigfd_t *signals;
    long shutdown_timeout;
    time_t started_wall;
    double lag_s; /* worst lag of the last full second */
    uint64_t last_lag_warn_ms;
    bool stopping;
    uint64_t drain_started_ms;
    bool forced;        /* stopping without waiting for running pool jobs */
    control_t *control; /* NULL when running alone */
    natsc_t *nats;      /* NULL when [nats] url is not set */
    health_t *health; /* GET /health: its checks and warnings */
    bool shared_listen; /* the supervisor's socket, shared with siblings */
    loop_timer_t *probe, *tick, *drain_check, *drain_deadline;
    loop_timer_t *nats_wait; /* until NATS is up, before taking connections */
    uint64_t nats_wait_until_ms;
    long threads; /* pool threads, for the ready line */
    bool live;    /* taking connections */
    int exit_status;
};

loop_t *worker_loop(worker_t *w)
{
    return w->loop;
}
pool_t *worker_pool(worker_t *w)
{
    return w->pool;
}
http_server_t *worker_http(worker_t *w)
{
    return w->http;
}
metrics_t *worker_metrics(worker_t *w)
{
    return w->metrics;
}
const cfg_t *worker_cfg(worker_t *w)
{
    return w->cfg;
}
const char *worker_section(worker_t *w)
{
    return w->section;
}
natsc_t *worker_nats(worker_t *w)
{
    return w->nats;
}
int worker_listen_fd(worker_t *w)
{
    return w->listen_fd;
}

void worker_add_warning(worker_t *w, const char *text)
{
    health_add_warning(w->health, text);
}

void worker_add_check(worker_t *w, const char *name, worker_check_fn fn, void *ud)
{
    health_add_check(w->health, name, fn, ud);
}
const char *worker_setting(worker_t *w, const char *key)
{
    return settings_get(w->cfg, w->section, key);
}

/* Reads a numeric runtime key into *out; logs and returns -EINVAL when bad. */
static int s_setting_long(worker_t *w, const char *key, long *out)
{
    char err[256];
    if (settings_get_long(w->cfg, w->section, key, out, err, sizeof err) < 0) {
        log_error("%s", err);
        return -EINVAL;
    }
    return 0;
}

/* ---- built-in checks and metrics ---- */

static int s_check_nats(void *ud, char *buf, size_t len)
{
    worker_t *w = ud;
    if (natsc_connected(w->nats))
        return WORKER_HEALTHY;
    natsc_state(w->nats, buf, len);
    return WORKER_DEGRADED;
}

/* Connects to [nats] url, when set, in the background. */
static int s_open_nats(worker_t *w)
{
    const char *url = cfg_get(w->cfg, "nats", "url");
    if (!url || !*url)
        return 0;
    char name[96];
    snprintf(name, sizeof name, "vapora-%s-%d", w->svc->name, (int)getpid());
    w->nats = natsc_new(w->pool, url, name, w->svc->nats_send_asap);
    if (!w->nats)
        return -EINVAL;
    worker_add_check(w, "nats", s_check_nats, w);
    return 0;
}

static long s_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static double s_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void s_collect(sbuf_t *out, void *ud)
{
    worker_t *w = ud;
    sbuf_t l = {0};
    metrics_label(&l, "service", w->svc->name);
    pool_stats_t ps;
    pool_get_stats(w->pool, &ps);
    double cpu = s_cpu_seconds();
    metrics_write_sample(out, "vapora_loop_lag_seconds",
                         "Worst lateness of loop timers over the last second.", "gauge",
                         l.data, w->lag_s);
    metrics_write_sample(out, "vapora_http_in_flight",
                         "Requests received and not yet completed.", "gauge", l.data,
                         http_server_in_flight(w->http));
    metrics_write_sample(out, "vapora_pool_queue_depth",
                         "Jobs waiting for a pool thread.", "gauge", l.data, ps.queued);
    metrics_write_sample(out, "vapora_pool_busy_threads", "Pool threads running a job.",
                         "gauge", l.data, ps.busy);
    metrics_write_sample(out, "vapora_pool_rejected_total",
                         "Jobs refused because the pool queue was full.", "counter",
                         l.data, (double)ps.rejected);
    metrics_write_sample(out, "process_cpu_seconds_total",
                         "User and system CPU time of this process.", "counter", l.data,
                         cpu);
    metrics_write_sample(out, "process_resident_memory_bytes",
                         "Resident memory of this process.", "gauge", l.data,
                         (double)s_rss_bytes());
    metrics_write_sample(out, "process_start_time_seconds",
                         "Start time of this process since the Unix epoch.", "gauge",
                         l.data, (double)w->started_wall);
    sbuf_free(&l);
}

/* ---- timers ---- */

static void s_probe(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    UNUSED(ud);
}

static void s_heartbeat(worker_t *w)
{
    pool_stats_t ps;
    pool_get_stats(w->pool, &ps);
    control_stats_t st = {
        .requests = http_server_requests(w->http),
        .in_flight = http_server_in_flight(w->http),
        .loop_lag_ms = w->lag_s * 1e3,
        .pool_queue = ps.queued,
        .pool_busy = ps.busy,
        .cpu_seconds = s_cpu_seconds(),
        .rss_bytes = (uint64_t)s_rss_bytes(),
    };
    control_send_heartbeat(w->control, &st);
}

/* Every second: fold the loop lag, warn on starvation, send a heartbeat. */
static void s_tick(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    worker_t *w = ud;
    uint64_t lag = loop_take_max_lag(loop);
    w->lag_s = (double)lag / 1e9;
    if (w->control)
        s_heartbeat(w);
    uint64_t now = loop_now_ms(loop);
    if (lag > WORKER_LAG_WARN_NS &&
        (w->last_lag_warn_ms == 0 ||
         now - w->last_lag_warn_ms >= WORKER_LAG_WARN_EVERY_MS)) {
        w->last_lag_warn_ms = now;
        log_warn("event loop starved: timers fired %.0f ms late (threshold "
                 "100 ms); something blocks the loop thread",
                 (double)lag / 1e6);
    }
}

/* ---- graceful stop ---- */

/* A drain ends when no request is in flight and none has started for
 * WORKER_DRAIN_QUIET_MS: a connection accepted just before the drain began
 * may still be carrying its first request. */
static void s_drain_check(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    worker_t *w = ud;
    uint64_t last = http_server_last_request_ms(w->http);
    if (last < w->drain_started_ms)
        last = w->drain_started_ms;
    if (http_server_in_flight(w->http) == 0 &&
        loop_now_ms(loop) - last >= WORKER_DRAIN_QUIET_MS &&
        !(w->svc->busy && w->svc->busy(w))) {
        log_info("drained: no request in flight; stopping");
        loop_stop(loop);
    }
}

static void s_drain_deadline(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    worker_t *w = ud;
    w->drain_deadline = NULL;
    log_warn("shutdown_timeout (%ld s) passed with %u request(s) in flight; "
             "stopping anyway",
             w->shutdown_timeout, http_server_in_flight(w->http));
    w->forced = true;
    loop_stop(loop);
}

static void s_begin_stop(worker_t *w, const char *why)
{
    if (!w->live) { /* still waiting for NATS: nothing to drain */
        log_info("%s before serving: stopping", why);
        loop_cancel_timer(w->loop, &w->nats_wait);
        w->stopping = true;
        loop_stop(w->loop);
        return;
    }
    if (w->stopping) {
        log_warn("%s again: stopping at once", why);
        w->forced = true;
        loop_stop(w->loop);
        return;
    }
    w->stopping = true;
    w->drain_started_ms = loop_now_ms(w->loop);
    log_info("%s: draining (up to %ld s)", why, w->shutdown_timeout);
    http_server_drain(w->http);
    if (w->svc->drain)
        w->svc->drain(w);
    /* Our copy of the socket: closing it refuses new connections when we
     * run alone; under a supervisor its copy keeps the socket open and the
     * other workers take them. */
    close(w->listen_fd);
    w->listen_fd = -1;
    w->drain_check = loop_add_timer(w->loop, 0, 10, s_drain_check, w);
    w->drain_deadline = loop_add_timer(w->loop, (uint64_t)w->shutdown_timeout * 1000, 0,
                                       s_drain_deadline, w);
}

static void s_on_signal(int signo, void *ud)
{
    worker_t *w = ud;
    if (signo == SIGTERM)
        s_begin_stop(w, "SIGTERM");
    else if (signo == SIGINT)
        s_begin_stop(w, "SIGINT");
}

/* ---- supervisor commands ---- */

static void s_on_drain(void *ud)
{
    worker_t *w = ud;
    if (!w->stopping) /* a repeated drain is not an order to stop at once */
        s_begin_stop(w, "drain requested by the supervisor");
}

static void s_on_log_level(void *ud, const char *level)
{
    UNUSED(ud);
    log_level_t lvl;
    if (log_parse_level(level, &lvl) < 0) {
        log_warn("control: unknown log level \"%s\"", level);
        return;
    }
    /* Said at the old level, so that a move to a quieter one is still seen. */
    log_info("log level set to %s", log_level_name(lvl));
    log_set_level(lvl);
}

/* ---- set-up ---- */

static void s_schema_warn(const char *msg, void *ud)
{
    UNUSED(ud);
    log_warn("%s", msg);
}

static int s_setup_logging(worker_t *w)
{
    log_level_t lvl = LOG_INFO;
    log_format_t fmt = LOG_FMT_LOGFMT;
    char err[256];
    /* Every runtime setting at once, as the supervisor checks them. */
    if (settings_check(w->cfg, w->section, err, sizeof err) < 0) {
        log_error("%s", err);
        return -EINVAL;
    }
    const char *v = worker_setting(w, "log_level");
    if (v)
        log_parse_level(v, &lvl); /* known good by now */
    v = worker_setting(w, "log_format");
    if (v)
        log_parse_format(v, &fmt);
    log_init(w->svc->name, lvl, fmt);
    return 0;
}

static int s_http_config(worker_t *w, http_config_t *hc)
{
    long body, url, hdr, conns, tmo, per_ip, body_tmo;
    bool access = false;
    char err[256];
    http_config_defaults(hc);
    hc->service = w->svc->name;
    if (s_setting_long(w, "max_body_bytes", &body) ||
        s_setting_long(w, "max_url_bytes", &url) ||
        s_setting_long(w, "max_header_bytes", &hdr) ||
        s_setting_long(w, "max_connections", &conns) ||
        s_setting_long(w, "max_connections_per_ip", &per_ip) ||
        s_setting_long(w, "request_timeout", &tmo) ||
        s_setting_long(w, "body_timeout", &body_tmo))
        return -EINVAL;
    if (settings_get_access_log(w->cfg, w->section, &access, err, sizeof err) < 0) {
        log_error("%s", err);
        return -EINVAL;
    }
    hc->max_body = (size_t)body;
    hc->max_url = (size_t)url;
    hc->max_header = (size_t)hdr;
    hc->max_connections = (unsigned)conns;
    hc->request_timeout = (unsigned)tmo;
    hc->max_connections_per_ip = (unsigned)per_ip;
    hc->body_timeout = (unsigned)body_tmo;
    hc->access_log = access;
    return 0;
}

static int s_open_listen(worker_t *w, const char *listen_override)
{
    w->listen_fd = listen_override ? -1 : net_take_listen_fd();
    if (w->listen_fd >= 0) {
        log_info("serving on the listening socket handed over (fd %d)", w->listen_fd);
        w->shared_listen = true;
        return 0;
    }
    const char *addr = listen_override ? listen_override
                                       : cfg_get_str(w->cfg, w->section, "listen",
                                                     w->svc->default_listen);
    char err[256];
    w->listen_fd = net_listen(addr, 4096, true, err, sizeof err);
    if (w->listen_fd < 0) {
        log_error("%s", err);
        return w->listen_fd;
    }
    log_info("listening on %s", addr);
    return 0;
}

/* SIGHUP is taken too, and ignored: only the supervisor reloads. */
static int s_open_signals(worker_t *w)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    w->signals = sigfd_new(w->loop, sigs, ARRAY_LEN(sigs), s_on_signal, w);
    if (!w->signals) {
        int e = errno;
        log_err(e, "signalfd");
        return -e;
    }
    return 0;
}

/* Logging, then every setting the worker needs before its loop exists;
 * the unknown keys of the sections it knows are warned about. */
static int s_configure(worker_t *w, long *threads, long *queue, long *yield_us,
                       http_config_t *hc)
{
    if (s_setup_logging(w) < 0 || s_setting_long(w, "pool_threads", threads) < 0 ||
        s_setting_long(w, "pool_queue", queue) < 0 ||
        s_setting_long(w, "yield_after_us", yield_us) < 0 ||
        s_setting_long(w, "shutdown_timeout", &w->shutdown_timeout) < 0 ||
        s_http_config(w, hc) < 0)
        return -EINVAL;
    /* Only the keys: the sections of other services are not ours to know;
     * the supervisor warns about the whole file. */
    const cfg_schema_table_t *const tables[] = {&settings_schema, w->svc->schema};
    cfg_check_keys(w->cfg, tables, w->svc->schema ? 2 : 1, s_schema_warn, NULL);
    return 0;
}

/* Siblings sharing the supervisor's socket keep their connection counts
 * even (loadshare.h), through DATA_DIR/run/<section>.accept. */
static void s_share_accepts(worker_t *w)
{
    if (!w->shared_listen)
        return;
    char *path = xasprintf("%s/run/%s.accept",
                           cfg_get_str(w->cfg, "supervisor", "data_dir", "data"), w->section);
    int rc = http_server_share_accepts(w->http, path);
    if (rc < 0)
        log_warn("%s: %s; connections are not balanced with the other workers", path,
                 strerror(-rc));
    free(path);
}

/* VAPORA_WORKER_CPU (the supervisor's cpu_affinity, cpupin.h): the loop
 * thread moves to that CPU, once every thread of the worker's own (pool,
 * service threads, libzmq's) has started with all of them. */
static void s_pin_loop(void)
{
    const char *v = getenv("VAPORA_WORKER_CPU");
    if (!v || !*v)
        return;
    int cpu = cpupin_self(v);
    if (cpu < 0)
        log_warn("cpu_affinity: cannot run the loop on CPU %s (%s); it runs on every CPU",
                 v, strerror(-cpu));
    else
        log_debug("cpu_affinity: the loop runs on CPU %d", cpu);
}

/* Serving: connections, the timers, and "ready" to the supervisor when
 * there is one. Returns 0 or -errno (logged). */
static int s_go_live(worker_t *w)
{
    s_share_accepts(w);
    int rc = http_server_start(w->http, w->listen_fd);
    if (rc < 0) {
        log_err(rc, "starting the HTTP server");
        return rc;
    }
    w->live = true;
    health_start(w->health);
    w->started_wall = time(NULL);
    w->probe = loop_add_timer(w->loop, 50, 50, s_probe, w);
    w->tick = loop_add_timer(w->loop, 1000, 1000, s_tick, w);
    static const control_ops_t ops = {s_on_drain, s_on_log_level};
    w->control = control_from_env(w->loop, &ops, w);
    s_pin_loop();
    if (w->control)
        control_send_ready(w->control);
    log_info("%s worker ready (pid %d, %ld pool threads, version %s)", w->svc->name,
             (int)getpid(), w->threads, VAPORA_VERSION);
    return 0;
}

/* Every WORKER_NATS_POLL_MS until NATS is up or the wait is over. */
static void s_nats_poll(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    worker_t *w = ud;
    bool up = natsc_connected(w->nats);
    if (!up && loop_now_ms(loop) < w->nats_wait_until_ms)
        return;
    loop_cancel_timer(loop, &w->nats_wait);
    if (!up)
        log_warn("nats: not connected after %d ms; serving anyway (degraded) and "
                 "reconnecting in the background",
                 WORKER_NATS_WAIT_MS);
    if (s_go_live(w) < 0) {
        w->exit_status = 1;
        loop_stop(loop);
    }
}

/* Goes live now, or once NATS is up (WORKER_NATS_WAIT_MS at most). */
static int s_go_live_with_nats(worker_t *w)
{
    if (!w->nats || natsc_connected(w->nats))
        return s_go_live(w);
    log_info("nats: waiting up to %d ms for the connection before serving",
             WORKER_NATS_WAIT_MS);
    w->nats_wait_until_ms = loop_now_ms(w->loop) + WORKER_NATS_WAIT_MS;
    w->nats_wait = loop_add_timer(w->loop, WORKER_NATS_POLL_MS, WORKER_NATS_POLL_MS,
                                  s_nats_poll, w);
    return 0;
}

static int s_start(worker_t *w, const char *listen_override)
{
    long threads, queue, yield_us;
    http_config_t hc;
    if (s_configure(w, &threads, &queue, &yield_us, &hc) < 0)
        return -EINVAL;
    w->loop = loop_new();
    if (!w->loop)
        return -errno;
    w->health = health_new(w->loop, w->svc->name);
    loop_set_yield(w->loop, (uint64_t)yield_us * 1000);
    if (s_open_signals(w) < 0 || s_open_listen(w, listen_override) < 0)
        return -EIO;
    w->pool = pool_new(w->loop, (unsigned)threads, (unsigned)queue);
    if (!w->pool) {
        log_err(errno, "starting %ld pool threads", threads);
        return -EIO;
    }
    if (s_open_nats(w) < 0)
        return -EINVAL;
    w->metrics = metrics_new();
    metrics_add_collector(w->metrics, s_collect, w);
    w->http = http_server_new(w->loop, w->metrics, &hc);
    health_route(w->health, w->http);
    metrics_http_route(w->http, w->metrics);
    if (w->svc->setup && w->svc->setup(w) < 0) {
        log_error("the %s service failed to set up", w->svc->name);
        return -EIO;
    }
    w->threads = threads;
    return s_go_live_with_nats(w);
}

static void s_stop(worker_t *w)
{
    if (w->loop) {
        loop_cancel_timer(w->loop, &w->probe);
        loop_cancel_timer(w->loop, &w->tick);
        loop_cancel_timer(w->loop, &w->drain_check);
        loop_cancel_timer(w->loop, &w->drain_deadline);
        loop_cancel_timer(w->loop, &w->nats_wait);
    }
    if (w->forced && w->pool) {
        pool_stats_t ps;
        pool_get_stats(w->pool, &ps);
        if (ps.busy > 0) {
            /* Waiting for running jobs is what we were told not to do:
             * answer what waits with 503, and leave without joining. */
            log_warn("abandoning %u running pool job(s)", ps.busy);
            http_server_destroy(&w->http);
            log_info("stopped (forced)");
            _exit(0);
        }
    }
    /* Pool first: cancelled and finishing jobs reply to their requests,
     * which the HTTP server then flushes before closing. */
    pool_destroy(&w->pool);
    /* The service's own threads may use NATS: they stop first. */
    if (w->svc->teardown && w->http)
        w->svc->teardown(w);
    natsc_destroy(&w->nats); /* after the pool: its connect job is done */
    control_destroy(&w->control);
    http_server_destroy(&w->http);
    health_destroy(&w->health);
    metrics_destroy(&w->metrics);
    sigfd_destroy(&w->signals);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    loop_destroy(&w->loop);
    cfg_destroy(&w->cfg);
    free(w->section);
}

/* A worker may hold thousands of sockets (streams in and out): take the
 * whole file-descriptor allowance the system gives, not the soft part. */
static void s_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Loads the config into w; with check, only checks it. Returns -1 with
 * the exit status in *status when the worker is not to run. */
static int s_config(worker_t *w, const worker_args_t *a, int *status)
{
    char err[512];
    w->cfg = cfg_load(a->config, err, sizeof err);
    bool ok = w->cfg && (!a->check || !w->svc->check || w->svc->check(w->cfg, err, sizeof err));
    if (!ok && a->check) /* one line on stderr: the supervisor's reason */
        fprintf(stderr, "%s\n", err);
    else if (!ok)
        log_error("configuration: %s", err);
    if (ok && !a->check)
        return 0;
    cfg_destroy(&w->cfg);
    *status = ok ? 0 : 2;
    return -1;
}

int worker_main(int argc, char **argv, const worker_service_t *svc)
{
    s_raise_nofile();
    worker_args_t a;
    int status = 0;
    if (worker_args(argc, argv, &a, &status) < 0)
        return status;
    /* What a worker creates (its data_dir, databases, secrets, locks) is
     * its user's alone, also when it runs without a supervisor. */
    umask(077);
    log_init(svc->name, LOG_INFO, LOG_FMT_LOGFMT);
    worker_t w = {.svc = svc, .listen_fd = -1};
    if (s_config(&w, &a, &status) < 0)
        return status;
    w.section = xasprintf("service:%s", svc->name);
    if (s_start(&w, a.listen) < 0)
        status = 1;
    else if (loop_run(w.loop) < 0)
        status = 1;
    else
        status = w.exit_status;
    s_stop(&w);
    if (status == 0)
        log_info("stopped cleanly");
    return status;
}
