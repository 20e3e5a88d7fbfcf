/* admin.c - see admin.h. */
#define _GNU_SOURCE
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin_auth.h"
#include "alloc.h"
#include "base.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "programs.h"
#include "reload.h"
#include "sbuf.h"
#include "spawn.h"
#include "workers.h"

/* A route, and whether it is open to a request without the token. */
typedef struct route {
    const char *method, *pattern;
    unsigned flags;
    http_handler_fn fn;
    bool open;
} route_t;

/* What a route's handler gets: the admin, and the route (for the guard). */
typedef struct guarded {
    sv_admin_t *admin;
    const route_t *route;
} guarded_t;

#define SV_ADMIN_ROUTES 8

struct sv_admin {
    sv_t *sv;
    int fd;
    metrics_t *metrics;
    http_server_t *http;
    char *token;
    guarded_t guarded[SV_ADMIN_ROUTES];
    uint64_t last_refusal_log_ms; /* refusals are logged once a second at most */
    unsigned refusals_unlogged;
};

static json_t *s_time_json(time_t t)
{
    if (t == 0)
        return json_null();
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *s_exit_json(int status)
{
    if (status < 0)
        return json_null();
    char how[96];
    spawn_describe_status(status, how, sizeof how);
    return json_string(how);
}

static json_t *s_worker_json(const sv_worker_t *w)
{
    json_t *j = json_pack(
        "{s:i,s:I,s:s,s:o,s:i,s:o,s:I,s:i,s:f,s:I,s:f,s:i,s:i,s:i}", "pid",
        (int)w->p.pid, "id", (json_int_t)w->id, "state", sv_state_name(w->p.state),
        "started_at", s_time_json(w->p.pid ? w->p.started_wall : 0), "restarts",
        (int)w->p.restarts, "last_exit", s_exit_json(w->p.last_status), "requests",
        (json_int_t)w->stats.requests, "in_flight", (int)w->stats.in_flight,
        "cpu_percent", w->cpu_percent, "rss_bytes", (json_int_t)w->stats.rss_bytes,
        "loop_lag_ms", w->stats.loop_lag_ms, "pool_queue", (int)w->stats.pool_queue,
        "pool_busy", (int)w->stats.pool_busy, "generation", (int)w->gen);
    if (w->p.state == SV_BACKOFF)
        json_object_set_new(j, "next_attempt_at", s_time_json(w->p.next_attempt_wall));
    json_object_set_new(j, "cpu", w->cpu >= 0 ? json_integer(w->cpu) : json_null());
    return j;
}

static json_t *s_service_json(sv_service_t *svc)
{
    json_t *ws = json_array();
    for (size_t i = 0; i < svc->nworkers; i++)
        json_array_append_new(ws, s_worker_json(svc->workers[i]));
    return json_pack("{s:s,s:s,s:i,s:o}", "name", svc->name, "listen", svc->listen,
                     "desired", (int)svc->desired, "workers", ws);
}

static json_t *s_program_json(const sv_program_t *pg)
{
    json_t *j = json_pack(
        "{s:s,s:i,s:s,s:o,s:i,s:o}", "name", pg->name, "pid", (int)pg->p.pid, "state",
        pg->p.state == SV_DRAINING ? "stopping" : sv_state_name(pg->p.state),
        "started_at", s_time_json(pg->p.pid ? pg->p.started_wall : 0), "restarts",
        (int)pg->p.restarts, "last_exit", s_exit_json(pg->p.last_status));
    if (pg->p.state == SV_BACKOFF)
        json_object_set_new(j, "next_attempt_at", s_time_json(pg->p.next_attempt_wall));
    return j;
}

static void s_status(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    json_t *svcs = json_array(), *progs = json_array();
    for (size_t i = 0; i < sv->nservices; i++)
        if (!sv->services[i]->removed)
            json_array_append_new(svcs, s_service_json(sv->services[i]));
    for (size_t i = 0; i < sv->nprograms; i++)
        json_array_append_new(progs, s_program_json(sv->programs[i]));
    http_reply_json(req, 200,
                    json_pack("{s:o,s:o,s:i,s:o,s:s}", "services", svcs, "programs",
                              progs, "pid", (int)getpid(), "started_at",
                              s_time_json(sv->started_wall), "state",
                              sv->phase == SV_PHASE_RUNNING ? "running" : "stopping"));
}

static bool s_refuse_when_stopping(sv_t *sv, http_req_t *req)
{
    if (sv->phase == SV_PHASE_RUNNING)
        return false;
    http_reply_error(req, 409, "shutting_down", "the supervisor is shutting down");
    return true;
}

/* The service a /services/{name}/... request acts on, or NULL after
 * replying 409 (shutting down) or 404 (no such service). */
static sv_service_t *s_target_service(sv_t *sv, http_req_t *req)
{
    if (s_refuse_when_stopping(sv, req))
        return NULL;
    const char *name = http_req_param(req, "name");
    sv_service_t *svc = sv_find_service(sv, name);
    if (!svc)
        http_reply_error(req, 404, "unknown_service", "no service named \"%s\"", name);
    return svc;
}

static void s_scale(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    sv_service_t *svc = s_target_service(sv, req);
    if (!svc)
        return;
    json_t *n = json_object_get(http_req_json(req), "workers");
    if (!json_is_integer(n) || json_integer_value(n) < 0 ||
        json_integer_value(n) > 256 || json_object_size(http_req_json(req)) != 1) {
        http_reply_error(req, 400, "invalid_workers",
                         "the body must be {\"workers\":N} with N a whole number "
                         "from 0 to 256");
        return;
    }
    sv_scale(sv, svc, (long)json_integer_value(n));
    http_reply_json(req, 200, s_service_json(svc));
}

static void s_restart(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    sv_service_t *svc = s_target_service(sv, req);
    if (!svc)
        return;
    sv_rolling_restart(sv, svc);
    http_reply_json(req, 202, s_service_json(svc));
}

static void s_log_level(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    sv_service_t *svc = s_target_service(sv, req);
    if (!svc)
        return;
    json_t *body = http_req_json(req);
    const char *level = json_string_value(json_object_get(body, "level"));
    int told = json_object_size(body) == 1 ? sv_set_log_level(sv, svc, level) : -EINVAL;
    if (told < 0) {
        http_reply_error(req, 400, "invalid_level",
                         "the body must be {\"level\":L} with L one of debug, info, "
                         "warn, error");
        return;
    }
    http_reply_json(req, 200,
                    json_pack("{s:s,s:s,s:i}", "service", svc->name, "level",
                              svc->log_level, "workers", told));
}

static void s_reload(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    if (s_refuse_when_stopping(sv, req))
        return;
    char err[512];
    if (sv_reload(sv, err, sizeof err) < 0) {
        log_error("POST /reload: configuration not reloaded: %s", err);
        http_reply_error(req, 422, "invalid_config",
                         "configuration not reloaded, nothing changed: %s", err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:b}", "reloaded", 1));
}

static void s_shutdown(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    http_reply_json(req, 202, json_pack("{s:b}", "stopping", 1));
    sv_shutdown(sv, "POST /shutdown");
}

static void s_health(http_req_t *req, void *ud)
{
    sv_t *sv = ((sv_admin_t *)ud)->sv;
    http_reply_json(req, 200,
                    json_pack("{s:s,s:s,s:i,s:I,s:s}", "status",
                              sv->phase == SV_PHASE_RUNNING ? "healthy" : "stopping",
                              "service", "supervisor", "pid", (int)getpid(), "uptime_s",
                              (json_int_t)(time(NULL) - sv->started_wall), "version",
                              VAPORA_VERSION));
}

/* ---- /metrics: the supervisor's own and every worker's figures ---- */

typedef double (*worker_value_fn)(const sv_worker_t *w);

static double s_up(const sv_worker_t *w)
{
    return w->p.state == SV_RUNNING;
}
static double s_restarts(const sv_worker_t *w)
{
    return w->p.restarts;
}
static double s_cpu(const sv_worker_t *w)
{
    return w->stats.cpu_seconds;
}
static double s_rss(const sv_worker_t *w)
{
    return (double)w->stats.rss_bytes;
}
static double s_lag(const sv_worker_t *w)
{
    return w->stats.loop_lag_ms / 1e3;
}
static double s_queue(const sv_worker_t *w)
{
    return w->stats.pool_queue;
}
static double s_busy(const sv_worker_t *w)
{
    return w->stats.pool_busy;
}
static double s_requests(const sv_worker_t *w)
{
    return (double)w->stats.requests;
}

static void s_worker_family(sv_t *sv, sbuf_t *out, const char *name, const char *type,
                            const char *help, worker_value_fn fn)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers; j++) {
            const sv_worker_t *w = svc->workers[j];
            /* worker is the slot's id: it keeps it across restarts, so its
             * counters go on (the pid is in /status). */
            char id[16];
            snprintf(id, sizeof id, "%u", w->id);
            sbuf_t l = {0};
            metrics_label(&l, "service", svc->name);
            metrics_label(&l, "worker", id);
            sbuf_printf(out, "%s{%s} %.17g\n", name, l.data, fn(w));
            sbuf_free(&l);
        }
    }
}

static void s_collect(sbuf_t *out, void *ud)
{
    sv_t *sv = ud;
    s_worker_family(sv, out, "vapora_worker_up", "gauge",
                    "1 when the worker is running and ready.", s_up);
    s_worker_family(sv, out, "vapora_worker_restarts_total", "counter",
                    "Times the worker's slot was restarted after an exit.", s_restarts);
    s_worker_family(sv, out, "vapora_worker_cpu_seconds_total", "counter",
                    "CPU time of the worker, from its last heartbeat.", s_cpu);
    s_worker_family(sv, out, "vapora_worker_rss_bytes", "gauge",
                    "Resident memory of the worker, from its last heartbeat.", s_rss);
    s_worker_family(sv, out, "vapora_worker_loop_lag_seconds", "gauge",
                    "Worst loop lag of the worker over its last second.", s_lag);
    s_worker_family(sv, out, "vapora_worker_pool_queue_depth", "gauge",
                    "Jobs waiting in the worker's blocking pool.", s_queue);
    s_worker_family(sv, out, "vapora_worker_pool_busy_threads", "gauge",
                    "Pool threads of the worker running a job.", s_busy);
    s_worker_family(sv, out, "vapora_worker_requests_total", "counter",
                    "HTTP requests the worker completed.", s_requests);
    sbuf_puts(out, "# HELP vapora_program_up 1 when the program runs.\n"
                   "# TYPE vapora_program_up gauge\n");
    for (size_t i = 0; i < sv->nprograms; i++) {
        sbuf_t l = {0};
        metrics_label(&l, "program", sv->programs[i]->name);
        sbuf_printf(out, "vapora_program_up{%s} %d\n", l.data,
                    sv->programs[i]->p.pid != 0);
        sbuf_free(&l);
    }
}

static void s_metrics(http_req_t *req, void *ud)
{
    sbuf_t out = {0};
    metrics_render(((sv_admin_t *)ud)->metrics, &out);
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    sbuf_free(&out);
}

/* ---- the guard: admin_auth.h says what it checks and why ---- */

static const route_t s_routes[SV_ADMIN_ROUTES] = {
    {"GET", "/health", 0, s_health, true},
    {"GET", "/status", 0, s_status, false},
    {"GET", "/metrics", 0, s_metrics, false},
    {"POST", "/services/{name}/scale", HTTP_JSON_BODY, s_scale, false},
    {"POST", "/services/{name}/restart", HTTP_JSON_OPTIONAL, s_restart, false},
    {"POST", "/services/{name}/log-level", HTTP_JSON_BODY, s_log_level, false},
    {"POST", "/reload", HTTP_JSON_OPTIONAL, s_reload, false},
    {"POST", "/shutdown", HTTP_JSON_OPTIONAL, s_shutdown, false},
};

/* Logs a refused request, once a second at most (a page in a browser may
 * try many times). */
static void s_log_refusal(sv_admin_t *a, http_req_t *req, const char *why)
{
    uint64_t now = loop_now_ms(a->sv->loop);
    if (a->last_refusal_log_ms && now - a->last_refusal_log_ms < 1000) {
        a->refusals_unlogged++;
        return;
    }
    const char *origin = http_req_header(req, "Origin");
    const char *host = http_req_header(req, "Host");
    char more[64] = "";
    if (a->refusals_unlogged)
        snprintf(more, sizeof more, "; %u more refused since the last such line",
                 a->refusals_unlogged);
    log_warn("admin API: refused %s %s: %s (Host %s, Origin %s)%s",
             http_req_method(req), http_req_path(req), why, host ? host : "none",
             origin ? origin : "none", more);
    a->last_refusal_log_ms = now;
    a->refusals_unlogged = 0;
}

/* Replies and returns false when req may not go on. */
static bool s_allowed(sv_admin_t *a, http_req_t *req, const route_t *r)
{
    const char *host = http_req_header(req, "Host");
    if (!sv_auth_host_ok(host, a->sv->cfg->admin)) {
        s_log_refusal(a, req, "foreign Host");
        http_reply_error(req, 403, "forbidden_host",
                         "the Host header must name this API (an IP address, "
                         "localhost or the host of [supervisor] admin)");
        return false;
    }
    if (!sv_auth_origin_ok(http_req_header(req, "Origin"), host)) {
        s_log_refusal(a, req, "foreign Origin");
        http_reply_error(req, 403, "forbidden_origin",
                         "requests from web pages of another origin are refused");
        return false;
    }
    const char *ct = http_req_header(req, "Content-Type");
    if (strcmp(r->method, "POST") == 0 && ct && !sv_auth_is_json(ct)) {
        s_log_refusal(a, req, "not JSON");
        http_reply_error(req, 415, "unsupported_media_type",
                         "a POST must be application/json, not %s", ct);
        return false;
    }
    if (r->open || sv_auth_bearer_ok(http_req_header(req, "Authorization"), a->token))
        return true;
    s_log_refusal(a, req, "no valid token");
    http_req_add_header(req, "WWW-Authenticate", "Bearer realm=\"vapora-admin\"");
    http_reply_error(req, 401, "unauthorized",
                     "the admin API needs \"Authorization: Bearer TOKEN\" with the "
                     "token in DATA_DIR/%s",
                     SV_AUTH_TOKEN_FILE);
    return false;
}

static void s_guard(http_req_t *req, void *ud)
{
    guarded_t *g = ud;
    if (s_allowed(g->admin, req, g->route))
        g->route->fn(req, g->admin);
}

/* Every route behind the guard (GET ones answer HEAD too). */
static void s_routes_add(sv_admin_t *a)
{
    for (size_t i = 0; i < SV_ADMIN_ROUTES; i++) {
        const route_t *r = &s_routes[i];
        a->guarded[i] = (guarded_t){a, r};
        http_route(a->http, r->method, r->pattern, r->flags, s_guard, &a->guarded[i]);
    }
}

/* Said at every start while admin is reachable from other hosts. */
static void s_warn_exposed(const char *admin)
{
    if (sv_auth_loopback(admin))
        return;
    log_warn("SECURITY: the admin API listens on %s, beyond this host: whoever "
             "reaches it with the token can stop, restart and reconfigure every "
             "service. Bind [supervisor] admin to 127.0.0.1 unless something in "
             "front (a container's loopback-only port) keeps others out",
             admin);
}

sv_admin_t *sv_admin_new(sv_t *sv, char *err, size_t errlen)
{
    sv_admin_t *a = xcalloc(1, sizeof *a);
    a->sv = sv;
    a->fd = -1;
    a->token = sv_auth_token_load(sv->cfg->data_dir, sv->cfg->admin_token, err, errlen);
    if (a->token)
        a->fd = net_listen(sv->cfg->admin, 128, false, err, errlen);
    if (a->fd < 0) {
        sv_admin_destroy(&a);
        return NULL;
    }
    a->metrics = metrics_new();
    metrics_add_collector(a->metrics, s_collect, sv);
    http_config_t hc;
    http_config_defaults(&hc);
    hc.service = "supervisor";
    hc.max_body = 64 * 1024;
    hc.max_connections = 256;
    a->http = http_server_new(sv->loop, a->metrics, &hc);
    s_routes_add(a);
    int rc = http_server_start(a->http, a->fd);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the admin API: %s", strerror(-rc));
        sv_admin_destroy(&a);
        return NULL;
    }
    log_info("admin API on http://%s", sv->cfg->admin);
    s_warn_exposed(sv->cfg->admin);
    return a;
}

void sv_admin_destroy(sv_admin_t **ap)
{
    sv_admin_t *a = ap ? *ap : NULL;
    if (!a)
        return;
    http_server_destroy(&a->http);
    metrics_destroy(&a->metrics);
    if (a->fd >= 0)
        close(a->fd);
    free(a->token);
    free(a);
    *ap = NULL;
}
