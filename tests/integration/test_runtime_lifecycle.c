/* test_runtime_lifecycle.c - the worker runtime's life (common/worker.c,
 * pool.c, loop.c): SIGTERM lets a pool request finish and closes the
 * listening socket, shutdown_timeout bounds a running job, NATS away is
 * "degraded", a full pool queue is 503 (and counted), and a blocked loop
 * logs starvation. build/tests/vapora-testsvc provides the pool sleep and
 * the loop block. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

#define TESTSVC "vapora-testsvc"

/* GET /metrics on a new connection; returns the response (200 asserted). */
static th_resp_t *s_metrics(const th_proc_t *p)
{
    th_resp_t *r = th_must_request(p->port, "GET", "/metrics", NULL, NULL);
    cr_assert_eq(r->status, 200, "GET /metrics: %d %.300s", r->status, r->body);
    return r;
}

/* ---- graceful stop ---- */

Test(lifecycle, sigterm_lets_pool_request_finish, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    th_conn_t *c = th_must_connect(p->port);
    long long t0 = th_now_ms();
    cr_assert_eq(th_send_request(c, "GET", "/sleep?ms=1500", NULL, NULL, 0), 0);
    th_sleep_ms(200);
    cr_assert_eq(th_signal(p, SIGTERM), 0);
    cr_assert(th_log_wait(p, "SIGTERM: draining", 2000), "no drain log line");

    /* Running alone, the worker closes its listening socket when it starts
     * draining: a new connection is refused rather than left hanging. */
    th_conn_t *late = th_connect(p->port, 500);
    cr_assert_null(late, "a connection made after SIGTERM was accepted");

    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 5000);
    long long took = th_now_ms() - t0;
    cr_assert_eq(rc, 0, "the in-flight request got no response: %s", strerror(-rc));
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    json_int_t ms = -1;
    cr_assert_eq(json_unpack(th_must_json(r), "{s:I}", "slept_ms", &ms), 0, "%.300s",
                 r->body);
    cr_assert_eq(ms, 1500);
    cr_assert_geq(took, 1400, "answered after %lld ms", took);
    const char *conn = th_resp_header(r, "Connection");
    cr_assert(conn && strcasecmp(conn, "close") == 0, "Connection: %s", conn);
    th_resp_free(&r);

    int st = th_wait_exit(p, TH_EXIT_MS);
    cr_assert_eq(st, 0, "exit status %d", st);
    th_assert_log(p, "drained: no request in flight", "info");
    th_assert_log(p, "stopped cleanly", "info");
}

Test(lifecycle, shutdown_timeout_bounds_a_running_pool_job, .timeout = 30,
     .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", "shutdown_timeout = 1\n");
    th_conn_t *c = th_must_connect(p->port);
    cr_assert_eq(th_send_request(c, "GET", "/sleep?ms=8000", NULL, NULL, 0), 0);
    th_sleep_ms(200);
    long long t0 = th_now_ms();
    cr_assert_eq(th_signal(p, SIGTERM), 0);
    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 5000);
    cr_assert_eq(rc, 0, "the waiting request got no response: %s", strerror(-rc));
    th_assert_error(r, 503, "shutting_down", NULL);
    th_resp_free(&r);
    int st = th_wait_exit(p, TH_EXIT_MS);
    long long took = th_now_ms() - t0;
    cr_assert_eq(st, 0, "exit status %d", st);
    cr_assert_lt(took, 4000, "stopping took %lld ms with shutdown_timeout = 1", took);
    th_assert_log(p, "abandoning 1 running pool job", "warn");
}

/* NATS configured but not there: the worker serves, /health says degraded
 * with the reason, and SIGTERM still stops it at once. */
Test(lifecycle, nats_away_is_degraded_not_down, .timeout = 30, .fini = th_cleanup)
{
    int nport = th_free_port(); /* nothing listens there */
    char extra[128];
    snprintf(extra, sizeof extra, "[nats]\nurl = nats://127.0.0.1:%d\n", nport);
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", extra);
    th_resp_t *r = th_must_request(p->port, "GET", "/health", NULL, NULL);
    cr_assert_eq(r->status, 503, "%d %.300s", r->status, r->body);
    th_assert_type(r, "application/json");
    json_t *j = th_must_json(r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "degraded");
    const char *reason = json_string_value(json_object_get(j, "reason"));
    cr_assert(reason && strncmp(reason, "nats: ", 6) == 0, "reason %s", reason);
    cr_assert_eq(json_integer_value(json_object_get(j, "pid")), p->pid);
    th_resp_free(&r);
    r = th_must_request(p->port, "GET", "/items/x", NULL, NULL);
    cr_assert_eq(r->status, 200, "other routes serve: %d", r->status);
    th_resp_free(&r);
    long long t0 = th_now_ms();
    cr_assert_eq(th_stop(p, SIGTERM, TH_EXIT_MS), 0);
    cr_assert_lt(th_now_ms() - t0, 3000, "stopping waited on NATS");
}

/* ---- pool overload ---- */

Test(lifecycle, full_pool_queue_is_503, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p =
        th_must_start(TESTSVC, "testsvc", "pool_threads = 1\npool_queue = 1\n");
    th_conn_t *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = th_must_connect(p->port);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(th_send_request(c[i], "GET", "/sleep?ms=500", NULL, NULL, 0), 0);
    int n200 = 0, n503 = 0;
    for (int i = 0; i < 3; i++) {
        th_resp_t *r = NULL;
        int rc = th_read_response(c[i], &r, TH_IO_MS);
        cr_assert_eq(rc, 0, "request %d: %s", i, strerror(-rc));
        if (r->status == 503) {
            th_assert_error(r, 503, "overloaded", NULL);
            n503++;
        } else {
            cr_assert_eq(r->status, 200, "request %d: %d %s", i, r->status, r->body);
            cr_assert_str_eq(r->body, "{\"slept_ms\":500}");
            n200++;
        }
        th_resp_free(&r);
        th_conn_close(&c[i]);
    }
    cr_assert_geq(n503, 1, "no 503 with 1 thread and a queue of 1");
    cr_assert_geq(n200, 1, "no request was served");
    th_resp_t *m = s_metrics(p);
    const char *const labels[] = {"service=\"testsvc\"", NULL};
    double rejected = th_metric(m->body, "vapora_pool_rejected_total", labels);
    cr_assert_eq(rejected, (double)n503, "rejected_total %g, 503s %d", rejected, n503);
    th_resp_free(&m);
    th_assert_serving(p->port);
}

/* ---- starvation warning ---- */

Test(lifecycle, blocked_loop_logs_starvation, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    long long t0 = th_now_ms();
    th_resp_t *r = th_must_request(p->port, "GET", "/block?ms=300", NULL, NULL);
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    cr_assert_geq(th_now_ms() - t0, 300);
    th_resp_free(&r);
    cr_assert(th_log_wait(p, "event loop starved", 3000),
              "no starvation warning 3 s after blocking the loop 300 ms");
    th_assert_log(p, "event loop starved", "warn");
    th_assert_serving(p->port);
}
