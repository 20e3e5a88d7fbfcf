/* test_runtime_services.c - the worker runtime (common/worker.c) as each
 * shipped service (backend, agents, llm-router) runs it: /health, /metrics
 * and a clean stop on SIGTERM; and its configuration: an unset variable,
 * an unknown key, JSON logs and the access log. Each test starts a real
 * worker binary on a free loopback port with its own config and talks to
 * it over TCP like a client would. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define BACKEND "vapora-backend"

/* ---- built-in endpoints and SIGTERM, for each shipped service ---- */

static const char *const s_metric_names[] = {
    "vapora_http_requests_total",
    "vapora_http_request_duration_seconds_bucket",
    "vapora_http_request_duration_seconds_sum",
    "vapora_http_request_duration_seconds_count",
    "vapora_loop_lag_seconds",
    "vapora_pool_queue_depth",
    "vapora_pool_busy_threads",
    "vapora_pool_rejected_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
};

/* Asserts the /health body of r: healthy, service, pid, version. */
static void s_assert_health(const th_resp_t *r, const char *service, pid_t pid)
{
    cr_assert_eq(r->status, 200, "GET /health: %d %.300s", r->status, r->body);
    th_assert_type(r, "application/json");
    const char *status = NULL, *svc = NULL, *version = NULL;
    json_int_t jpid = -1, uptime = -1;
    json_error_t e;
    int rc = json_unpack_ex(th_must_json(r), &e, 0, "{s:s,s:s,s:I,s:I,s:s}", "status",
                            &status, "service", &svc, "pid", &jpid, "uptime_s", &uptime,
                            "version", &version);
    cr_assert_eq(rc, 0, "health body (%s): %.300s", e.text, r->body);
    cr_assert_str_eq(status, "healthy");
    cr_assert_str_eq(svc, service);
    cr_assert_eq(jpid, (json_int_t)pid, "pid %lld, spawned %d", (long long)jpid,
                 (int)pid);
    cr_assert_str_eq(version, "0.1.0");
    cr_assert(uptime >= 0 && uptime < 60, "uptime_s %lld", (long long)uptime);
}

/* Asserts the /metrics text: every metric, and one /health 200 counted. */
static void s_assert_metrics(const th_resp_t *r, const char *service)
{
    cr_assert_eq(r->status, 200, "GET /metrics: %d %.300s", r->status, r->body);
    th_assert_type(r, "text/plain");
    for (size_t i = 0; i < sizeof s_metric_names / sizeof *s_metric_names; i++)
        cr_assert(th_metric_has(r->body, s_metric_names[i]), "no %s in:\n%.2000s",
                  s_metric_names[i], r->body);
    char svc[80];
    snprintf(svc, sizeof svc, "service=\"%s\"", service);
    const char *const labels[] = {svc, "route=\"/health\"", "status=\"200\"", NULL};
    double v = th_metric(r->body, "vapora_http_requests_total", labels);
    cr_assert_eq(v, 1.0, "vapora_http_requests_total{%s,/health,200} = %g in:\n%.2000s",
                 svc, v, r->body);
}

/* Starts a shipped service, checks /health and /metrics and that its log
 * says `said` at info (NULL: nothing to look for), stops it. */
static void s_check_service(const char *bin, const char *service, const char *extra,
                            const char *said)
{
    th_proc_t *p = th_must_start(bin, service, extra);
    if (said) { /* the worker sets up after it listens */
        th_log_wait(p, said, 5000);
        th_assert_log(p, said, "info");
    }
    th_conn_t *c = th_must_connect(p->port);
    th_resp_t *r = th_must_exchange(c, "GET", "/health", NULL, NULL);
    s_assert_health(r, service, p->pid);
    th_resp_free(&r);
    r = th_must_exchange(c, "GET", "/metrics", NULL, NULL);
    s_assert_metrics(r, service);
    th_resp_free(&r);
    th_conn_close(&c);
    int st = th_stop(p, SIGTERM, TH_EXIT_MS);
    char *log = th_log(p);
    cr_assert_eq(st, 0, "exit status %d after SIGTERM; log:\n%s", st, log);
    free(log);
    th_assert_log(p, "stopped cleanly", "info");
    th_proc_free(&p);
}

Test(services, backend_health_metrics_sigterm, .timeout = 30, .fini = th_cleanup)
{
    s_check_service("vapora-backend", "backend", NULL, NULL);
}

Test(services, agents_health_metrics_sigterm, .timeout = 30, .fini = th_cleanup)
{
    /* [agents] synchronous reaches the database it opens */
    s_check_service("vapora-agents", "agents", "[agents]\nsynchronous = full\n",
                    "agents.db: WAL, synchronous=full");
}

Test(services, llm_router_health_metrics_sigterm, .timeout = 30, .fini = th_cleanup)
{
    /* The router refuses to start without a provider to call. */
    char *data = th_tmp_path("rtdata", "");
    char *extra = NULL;
    cr_assert(asprintf(&extra,
                       "[supervisor]\ndata_dir = %s\n[provider:p]\nkind = openai\n"
                       "base_url = http://127.0.0.1:9/v1\nmodels = m\n"
                       "[router]\nsynchronous = full\n",
                       data) > 0);
    s_check_service("vapora-llm-router", "llm-router", extra,
                    "llm-router.db: WAL, synchronous=full");
    free(extra);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    cr_assert_eq(system(cmd), 0);
    free(data);
}

/* ---- configuration ---- */

Test(config, unset_variable_exits_2_naming_section_and_key, .timeout = 30,
     .fini = th_cleanup)
{
    unsetenv("SURELY_UNSET_VAR_XYZ");
    char *config = th_write_temp("unset", ".conf",
                                 "[runtime]\npool_threads = 2\n\n"
                                 "[service:backend]\n"
                                 "listen = ${SURELY_UNSET_VAR_XYZ}\n");
    cr_assert_not_null(config);
    char *bin = th_bin_path(BACKEND);
    th_proc_t *p = th_spawn(bin, config);
    free(bin);
    cr_assert_not_null(p);
    int st = th_wait_exit(p, TH_EXIT_MS);
    cr_assert_eq(st, 2, "exit status %d, want 2", st);
    th_assert_log(p, "SURELY_UNSET_VAR_XYZ", "error");
    char *line = th_log_line(p, "SURELY_UNSET_VAR_XYZ");
    bool names = strstr(line, "[service:backend]") && strstr(line, "listen");
    cr_assert(names, "the error does not name [service:backend] listen: %s", line);
    free(line);
}

/* synchronous (how a service's SQLite commits reach the disk) is normal or
 * full; another word stops the router and the agents at start, exit 1,
 * with a line that names the section, the key and the value. */
Test(config, a_synchronous_not_normal_or_full_stops_the_service, .timeout = 60,
     .fini = th_cleanup)
{
    static const struct {
        const char *bin, *service, *section;
    } svc[] = {{"vapora-llm-router", "llm-router", "router"},
               {"vapora-agents", "agents", "agents"}};
    for (size_t i = 0; i < sizeof svc / sizeof *svc; i++) {
        char *data = th_tmp_path("syncdata", "");
        char *text = NULL;
        cr_assert(asprintf(&text,
                           "[service:%s]\nlisten = 127.0.0.1:%d\n[supervisor]\n"
                           "data_dir = %s\n[provider:p]\nkind = openai\n"
                           "base_url = http://127.0.0.1:9/v1\nmodels = m\n"
                           "[%s]\nsynchronous = fsync\n",
                           svc[i].service, th_free_port(), data, svc[i].section) > 0);
        char *config = th_write_temp("sync", ".conf", text);
        char *bin = th_bin_path(svc[i].bin);
        th_proc_t *p = th_spawn(bin, config);
        cr_assert_not_null(p);
        int st = th_wait_exit(p, TH_EXIT_MS);
        char *log = th_log(p);
        cr_assert_eq(st, 1, "%s: exit status %d, want 1; log:\n%s", svc[i].bin, st,
                     log);
        char want[96];
        snprintf(want, sizeof want, "[%s] synchronous: ", svc[i].section);
        cr_assert(strstr(log, want) && strstr(log, "fsync") &&
                      strstr(log, "is not one of normal, full"),
                  "%s: the log does not name the key and the choices:\n%s", svc[i].bin,
                  log);
        free(log);
        free(bin);
        free(text);
        free(data);
    }
}

Test(config, unknown_key_warns_and_starts, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", "surely_unknown_key = 1\n");
    th_assert_log(p, "unknown key 'surely_unknown_key' in section [service:backend]",
                  "warn");
    th_assert_serving(p->port);
    int st = th_stop(p, SIGTERM, TH_EXIT_MS);
    cr_assert_eq(st, 0, "exit status %d", st);
}

/* log_format = json: every line of the worker's log is a JSON object with
 * time, level, service, pid and msg; access_log = true adds one line per
 * request. */
Test(config, json_logs_and_access_log, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p =
        th_must_start(BACKEND, "backend", "log_format = json\naccess_log = true\n");
    th_resp_t *r = th_must_request(p->port, "GET", "/health", NULL, NULL);
    cr_assert_eq(r->status, 200);
    th_resp_free(&r);
    r = th_must_request(p->port, "GET", "/nope", NULL, NULL);
    cr_assert_eq(r->status, 404);
    th_resp_free(&r);
    cr_assert(th_log_wait(p, "GET /nope 404", 3000),
              "no access-log line for GET /nope");
    char *log = th_log(p);
    int lines = 0, access = 0;
    for (char *l = strtok(log, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *j = json_loads(l, 0, NULL);
        cr_assert_not_null(j, "not a JSON log line: %s", l);
        cr_assert(json_is_string(json_object_get(j, "time")) &&
                      json_is_string(json_object_get(j, "level")) &&
                      json_is_integer(json_object_get(j, "pid")) &&
                      json_is_string(json_object_get(j, "msg")),
                  "missing fields: %s", l);
        cr_assert_str_eq(json_string_value(json_object_get(j, "service")), "backend");
        const char *msg = json_string_value(json_object_get(j, "msg"));
        access += strncmp(msg, "GET /health 200", 15) == 0 ||
                  strncmp(msg, "GET /nope 404", 13) == 0;
        json_decref(j);
        lines++;
    }
    free(log);
    cr_assert_geq(lines, 3);
    cr_assert_eq(access, 2, "want one access line per request, got %d", access);
}
