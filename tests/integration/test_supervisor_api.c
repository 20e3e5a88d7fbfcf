/* test_supervisor_api.c - the supervisor's admin API and vaporactl: their
 * errors (and those of --check and of a second supervisor), the worker
 * families of GET /metrics with their labels, and the log level set at run
 * time reaching every worker and the ones started later. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor_fixture.h"

/* ---- admin API and command-line errors ---- */

/* The admin API refuses unknown services and bad worker counts, and a
 * refused scale changes nothing. */
static void s_admin_api_errors(th_sv_t *sv)
{
    th_resp_t *r = sup_admin_post(sv, "/services/nope/scale", "{\"workers\":1}");
    th_assert_error(r, 404, "unknown_service", NULL);
    th_resp_free(&r);
    r = sup_admin_post(sv, "/services/nope/restart", NULL);
    th_assert_error(r, 404, "unknown_service", NULL);
    th_resp_free(&r);
    /* A name that is not UTF-8 is quoted, not a reason to crash. */
    r = sup_admin_post(sv, "/services/%ff/restart", NULL);
    th_assert_error(r, 404, "unknown_service", NULL);
    th_resp_free(&r);
    const char *bad[] = {"{\"workers\":-1}", "{\"workers\":\"x\"}", "{\"workers\":257}",
                         "{\"workers\":1.5}", "{\"count\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = sup_admin_post(sv, "/services/web/scale", bad[i]);
        cr_assert_eq(r->status, 400, "%s: %d %.300s", bad[i], r->status, r->body);
        th_assert_error(r, 400, "invalid_workers", NULL);
        th_resp_free(&r);
    }
    json_t *s = sup_service(sv, "web");
    cr_assert_eq(th_int(s, "desired"), 1, "a refused scale changed desired");
}

/* vaporactl exits 1 with the reason on an unknown service or an
 * unreachable supervisor, and shows the status, as text or JSON. */
static void s_vaporactl(th_sv_t *sv)
{
    char *out = NULL;
    int rc = sup_ctl(sv, NULL, &out, "scale", "nope", "2");
    cr_assert_eq(rc, 1, "vaporactl scale nope 2: exit %d: %s", rc, out);
    cr_assert(strstr(out, "nope") && strstr(out, "404"), "vaporactl said: %s", out);
    free(out);

    rc = sup_ctl(sv, NULL, &out, "restart", "a b", NULL);
    cr_assert_eq(rc, 1, "vaporactl restart 'a b': exit %d: %s", rc, out);
    cr_assert(strstr(out, "404"), "a name with a blank is sent encoded: %s", out);
    free(out);

    char unreachable[32];
    int port = th_free_port();
    cr_assert_gt(port, 0);
    snprintf(unreachable, sizeof unreachable, "127.0.0.1:%d", port);
    rc = sup_ctl(sv, unreachable, &out, "status", NULL, NULL);
    cr_assert_eq(rc, 1, "vaporactl -a %s status: exit %d: %s", unreachable, rc, out);
    cr_assert(strstr(out, "cannot reach"), "vaporactl said: %s", out);
    free(out);

    rc = sup_ctl(sv, NULL, &out, "status", NULL, NULL);
    cr_assert_eq(rc, 0, "vaporactl status: exit %d: %s", rc, out);
    cr_assert(strstr(out, "web") && strstr(out, "running"), "vaporactl status: %s",
              out);
    free(out);
    rc = sup_ctl(sv, NULL, &out, "--json", "status", NULL);
    cr_assert_eq(rc, 0, "vaporactl --json status: exit %d: %s", rc, out);
    json_t *j = json_loads(out, 0, NULL);
    bool listed = th_sv_find(j, "services", "web") != NULL;
    json_decref(j);
    cr_assert(listed, "vaporactl --json status: %s", out);
    free(out);
}

/* Runs vapora-supervisor -c config and, when check, --check; returns its
 * exit status, *out what it printed (caller frees). */
static int s_supervisor(const char *config, bool check, char **out)
{
    char *bin = th_bin_path("vapora-supervisor");
    const char *argv[] = {bin, "-c", config, check ? "--check" : NULL, NULL};
    int rc = th_run(argv, 5000, out);
    free(bin);
    return rc;
}

/* vapora-supervisor --check of text (in a temp file); as s_supervisor. */
static int s_check_text(const char *text, char **out)
{
    char *cfg = th_write_temp("check", ".conf", text);
    cr_assert_not_null(cfg);
    int rc = s_supervisor(cfg, true, out);
    unlink(cfg);
    free(cfg);
    return rc;
}

/* --check passes a valid config and refuses bad ones, giving the reason. */
static void s_check(th_sv_t *sv)
{
    char *out = NULL;
    int rc = s_supervisor(sv->proc->config, true, &out);
    cr_assert_eq(rc, 0, "--check of a valid config: exit %d: %s", rc, out);
    cr_assert(strstr(out, "configuration OK"), "%s", out);
    free(out);
    rc = s_check_text("[supervisor]\nadmin = 127.0.0.1:1\n\n"
                      "[service:web]\nlisten = nowhere\nworkers = 1\n",
                      &out);
    cr_assert_eq(rc, 1, "--check with listen = nowhere: exit %d: %s", rc, out);
    cr_assert(strstr(out, "listen") && strstr(out, "nowhere"),
              "--check does not give the reason: %s", out);
    free(out);
    static const struct {
        const char *text, *reason;
    } refused[] = {
        {"[service:web]\nlisten = 127.0.0.1:1\ncommand = /nonexistent/x\n",
         "/nonexistent/x is not an executable"},
        {"[program:p]\ncommand = no-such-program-anywhere\n",
         "no-such-program-anywhere is not an executable file on PATH"},
        {"[supervisor]\nadmin = 127.0.0.1:0\n", "admin"},
        {"[service:web]\nlisten = 127.0.0.1:1\ncommand = /bin/true\ncontrol = maybe\n",
         "control"},
        /* a setting the service itself refuses (vapora-llm-router --check) */
        {"[service:llm-router]\nlisten = 127.0.0.1:1\n\n[budget:x]\nlimit_usd = -5\n",
         "service llm-router: [budget:x] limit_usd"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        rc = s_check_text(refused[i].text, &out);
        cr_assert_eq(rc, 1, "--check of %s: exit %d: %s", refused[i].text, rc, out);
        cr_assert(strstr(out, refused[i].reason), "--check of %s: %s", refused[i].text,
                  out);
        free(out);
    }
}

/* A second supervisor on the same data_dir gives up and leaves the first
 * one's lock and control socket alone: twice, then a worker of the first
 * still gets replaced and connects. */
static void s_second_supervisor(th_sv_t *sv)
{
    char *out = NULL;
    for (int i = 0; i < 2; i++) {
        int rc = s_supervisor(sv->proc->config, false, &out);
        cr_assert_eq(rc, 1, "a second supervisor: exit %d: %s", rc, out);
        cr_assert(strstr(out, "another supervisor"), "%s", out);
        free(out);
    }
    pid_t first;
    cr_assert_eq(sup_pids(sup_service(sv, "web"), &first, 1), 1);
    cr_assert_eq(kill(first, SIGKILL), 0);
    long long until = th_now_ms() + 5000;
    pid_t now_pid = first;
    while (th_now_ms() < until) {
        json_t *ws = sup_service(sv, "web");
        if (sup_pids(ws, &now_pid, 1) == 1 && now_pid != first &&
            strcmp(sup_str(json_array_get(json_object_get(ws, "workers"), 0), "state"),
                   "running") == 0)
            break;
        th_sleep_ms(20);
    }
    cr_assert_neq(now_pid, first, "the killed worker was not replaced");
    th_assert_settled(sv, "web", 1, 5000);
}

Test(supervisor_api, errors_of_admin_api_vaporactl_and_check, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB("1"));
    th_assert_settled(sv, "web", 1, 5000);
    s_admin_api_errors(sv);
    s_vaporactl(sv);
    s_check(sv);
    s_second_supervisor(sv);
    char *out = NULL;
    int rc = sup_ctl(sv, NULL, &out, "stop", NULL, NULL);
    cr_assert_eq(rc, 0, "vaporactl stop: exit %d: %s", rc, out);
    cr_assert(strstr(out, "supervisor stopping"), "vaporactl stop: %s", out);
    free(out);
    rc = th_wait_exit(sv->proc, 5000);
    cr_assert_eq(rc, 0, "the supervisor exited with %d after vaporactl stop", rc);
}

/* ---- metrics ---- */

/* GET /metrics of the admin API once the web workers' request counters sum
 * to want (they arrive with the heartbeats; polled for 4 s); asserts they
 * do. The caller frees the response. */
static th_resp_t *s_metrics_counting(th_sv_t *sv, double want)
{
    long long deadline = th_now_ms() + 4000;
    th_resp_t *m = NULL;
    double total = 0;
    for (;;) {
        th_resp_free(&m);
        cr_assert_eq(th_request(sv->admin_port, "GET", "/metrics", sv->auth, NULL, &m),
                     0);
        cr_assert_eq(m->status, 200, "GET /metrics: %d", m->status);
        total = 0;
        for (int w = 1; w <= 2; w++) {
            char id[32];
            snprintf(id, sizeof id, "worker=\"%d\"", w);
            const char *const labels[] = {"service=\"web\"", id, NULL};
            double v = th_metric(m->body, "vapora_worker_requests_total", labels);
            total += v > 0 ? v : 0;
        }
        if (total >= want || th_now_ms() >= deadline)
            break;
        th_sleep_ms(100);
    }
    cr_assert_eq(total, want, "vapora_worker_requests_total sums to %g, sent %g:\n%s",
                 total, want, m->body);
    return m;
}

/* The label that names worker slot i of the service entry s (kept). */
static const char *s_worker_label(json_t *s, size_t i)
{
    return th_fmt(
        "worker=\"%lld\"",
        (long long)th_int(json_array_get(json_object_get(s, "workers"), i), "id"));
}

/* Asserts m has every worker family, typed, with a sample for each of the
 * two workers of s, and the program's; and no pid label. */
static void s_assert_families(const th_resp_t *m, json_t *s)
{
    static const struct {
        const char *name, *type;
    } fams[] = {
        {"vapora_worker_up", "gauge"},
        {"vapora_worker_restarts_total", "counter"},
        {"vapora_worker_cpu_seconds_total", "counter"},
        {"vapora_worker_rss_bytes", "gauge"},
        {"vapora_worker_loop_lag_seconds", "gauge"},
        {"vapora_worker_pool_queue_depth", "gauge"},
        {"vapora_worker_pool_busy_threads", "gauge"},
        {"vapora_worker_requests_total", "counter"},
    };
    const char *ct = th_resp_header(m, "Content-Type");
    cr_assert(ct && strncmp(ct, "text/plain", 10) == 0, "Content-Type %s", ct);
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++) {
        char type[128];
        snprintf(type, sizeof type, "# TYPE %s %s\n", fams[f].name, fams[f].type);
        cr_assert(strstr(m->body, type), "no '%.*s' in:\n%s", (int)strlen(type) - 1,
                  type, m->body);
        for (size_t w = 0; w < 2; w++) {
            const char *id = s_worker_label(s, w);
            const char *const labels[] = {"service=\"web\"", id, NULL};
            double v = th_metric(m->body, fams[f].name, labels);
            cr_assert_geq(v, 0, "no %s{service=\"web\",%s} in:\n%s", fams[f].name, id,
                          m->body);
            if (strcmp(fams[f].name, "vapora_worker_up") == 0)
                cr_assert_eq(v, 1, "%s{%s} = %g", fams[f].name, id, v);
            if (strcmp(fams[f].name, "vapora_worker_rss_bytes") == 0)
                cr_assert_gt(v, 0, "%s{%s} = %g", fams[f].name, id, v);
        }
    }
    const char *const prog[] = {"program=\"sleeper\"", NULL};
    cr_assert_eq(th_metric(m->body, "vapora_program_up", prog), 1, "\n%s", m->body);
    /* Only service and worker: a series that lives across restarts, so the
     * restart counter counts. */
    cr_assert_null(strstr(m->body, "pid=\""), "a pid label:\n%s", m->body);
}

Test(supervisor_api, metrics_has_every_worker_family_with_labels, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB(
        "2") "[program:sleeper]\ncommand = sleep 1000\n");
    th_assert_settled(sv, "web", 2, 5000);
    for (int i = 0; i < 20; i++) {
        th_resp_t *r = NULL;
        cr_assert_eq(th_request(sv->ports[0], "GET", "/health", NULL, NULL, &r), 0);
        cr_assert_eq(r->status, 200);
        th_resp_free(&r);
    }
    pid_t pids[2];
    json_t *s = sup_service(sv, "web");
    cr_assert_eq(sup_pids(s, pids, 2), 2);
    th_resp_t *m = s_metrics_counting(sv, 20);
    s_assert_families(m, s);
    th_resp_free(&m);

    const char *id = s_worker_label(s, 0);
    const char *const labels[] = {"service=\"web\"", id, NULL};
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    long long deadline = th_now_ms() + 5000;
    double restarts = 0;
    while (restarts < 1 && th_now_ms() < deadline) {
        th_sleep_ms(50);
        cr_assert_eq(th_request(sv->admin_port, "GET", "/metrics", sv->auth, NULL, &m),
                     0);
        restarts = th_metric(m->body, "vapora_worker_restarts_total", labels);
        th_resp_free(&m);
    }
    cr_assert_eq(restarts, 1, "vapora_worker_restarts_total{%s} = %g after a kill", id,
                 restarts);
}

/* ---- log level at run time ---- */

Test(supervisor_control, vaporactl_log_level_reaches_every_worker_and_new_ones,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv =
        th_must_sv_start("shutdown_timeout = 3\n\n"
                         "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = 2\n"
                         "command = @TESTSVC@\n");
    th_assert_settled(sv, "web", 2, 5000);
    char *out = NULL;
    int rc = sup_ctl(sv, NULL, &out, "log-level", "web", "debug");
    cr_assert_eq(rc, 0, "vaporactl log-level: exit %d: %s", rc, out);
    cr_assert(strstr(out, "log level of web set"), "output: %s", out);
    free(out);
    long long end = th_now_ms() + 3000;
    while (th_now_ms() < end && th_log_count(sv->proc, "log level set to debug") < 2)
        th_sleep_ms(20);
    cr_assert_eq(th_log_count(sv->proc, "log level set to debug"), 2,
                 "both workers did not report the new level");
    /* A worker started later is told too. */
    sup_ctl_scale(sv, 3);
    end = th_now_ms() + 3000;
    while (th_now_ms() < end && th_log_count(sv->proc, "log level set to debug") < 3)
        th_sleep_ms(20);
    cr_assert_eq(th_log_count(sv->proc, "log level set to debug"), 3);
    /* Bad input: a clear error and a non-zero exit. */
    rc = sup_ctl(sv, NULL, &out, "log-level", "web", "loud");
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "debug, info, warn, error"), "output: %s", out);
    free(out);
    th_resp_t *r =
        sup_admin_post(sv, "/services/nope/log-level", "{\"level\":\"info\"}");
    th_assert_error(r, 404, "unknown_service", NULL);
    th_resp_free(&r);
}
