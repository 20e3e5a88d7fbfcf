/* test_supervisor_lifecycle.c - the supervisor's stop and its programs:
 * the admin API answers while stopping; SIGTERM drains in-flight requests
 * and leaves no process, socket or lock behind; shutdown_timeout bounds
 * stubborn workers and programs; programs (nats-server, a sleeper) are
 * restarted, backed off and stopped with their children, run with their
 * [program] environment (a reload that changes it restarts them), services
 * follow a NATS that comes late and restarts, and take connections only
 * once connected to it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "supervisor_fixture.h"

/* ---- SIGTERM ---- */

Test(supervisor_lifecycle, admin_api_answers_while_stopping, .timeout = 60,
     .fini = sup_fini)
{
    th_conn_t *c = NULL;
    th_sv_t *sv = sup_start_busy(&c);
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    th_sleep_ms(200);
    th_resp_t *r = NULL;
    int rc = th_request(sv->admin_port, "GET", "/status", sv->auth, NULL, &r);
    cr_assert_eq(rc, 0, "GET /status while stopping: %s", strerror(-rc));
    cr_assert_eq(r->status, 200);
    cr_assert(strstr(r->body, "\"state\":\"stopping\""), "%.300s", r->body);
    th_resp_free(&r);
    th_resp_t *x = NULL;
    cr_assert_eq(th_read_response(c, &x, TH_IO_MS), 0);
    cr_assert_eq(x->status, 200);
    th_resp_free(&x);
    cr_assert_eq(th_wait_exit(sv->proc, 8000), 0);
}

/* GET /health of a service, on a new connection: the status, and the body
 * in *body (caller frees). */
static int s_health(th_sv_t *sv, char **body)
{
    th_resp_t *r = NULL;
    int rc = th_request(sv->ports[0], "GET", "/health", NULL, NULL, &r);
    cr_assert_eq(rc, 0, "GET /health: %s", strerror(-rc));
    int status = r->status;
    *body = strdup(r->body ? r->body : "");
    th_resp_free(&r);
    return status;
}

/* Polls /health until it answers want; returns the last body (freed by the
 * caller) or fails the test after timeout_ms. */
static char *s_wait_health(th_sv_t *sv, int want, int timeout_ms)
{
    long long end = th_now_ms() + timeout_ms;
    char *body = NULL;
    int got = 0;
    while (th_now_ms() < end) {
        free(body);
        got = s_health(sv, &body);
        if (got == want)
            return body;
        th_sleep_ms(50);
    }
    cr_assert_fail("GET /health stayed %d (want %d): %s", got, want, body);
    return body;
}

/* Services cope with nats-server (a program) coming up late and dying: they
 * reconnect, and /health says "degraded" with the reason meanwhile. (Late:
 * after the 3 s a worker waits for NATS before it serves.) */
Test(supervisor_programs, services_follow_a_late_and_restarting_nats, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n" SUP_WEB(
        "1") "[program:nats]\ncommand = sh -c 'sleep 5; exec nats-server "
             "-a 127.0.0.1 -p @PORT2@'\n");
    th_assert_settled(sv, "web", 1, 10000);
    char *body = NULL;
    cr_assert_eq(s_health(sv, &body), 503, "%s", body);
    cr_assert(strstr(body, "\"status\":\"degraded\""), "%s", body);
    cr_assert(strstr(body, "\"reason\":\"nats: "), "%s", body);
    free(body);
    th_assert_log(sv->proc, "nats: not connected after 3000 ms; serving anyway",
                  "warn");
    free(s_wait_health(sv, 200, 15000)); /* nats-server came up: reconnected */

    json_t *pg = th_sv_find(sup_status(sv), "programs", "nats");
    cr_assert_not_null(pg);
    pid_t nats = (pid_t)th_int(pg, "pid");
    cr_assert_gt(nats, 0);
    cr_assert_eq(kill(nats, SIGKILL), 0);
    body = s_wait_health(sv, 503, 3000);
    cr_assert(strstr(body, "nats: disconnected"), "%s", body);
    free(body);
    free(s_wait_health(sv, 200, 15000)); /* restarted by the supervisor */
    pg = th_sv_find(sup_status(sv), "programs", "nats");
    cr_assert_geq(th_int(pg, "restarts"), 1);
}

/* Waits until every worker of web is of generation gen and n of them run;
 * fails the test after 20 s. */
static void s_wait_generation(th_sv_t *sv, json_int_t gen, unsigned n)
{
    long long end = th_now_ms() + 20000;
    for (;;) {
        json_t *web = sup_service(sv, "web");
        bool done = th_sv_count(web, NULL) == n && th_sv_count(web, "running") == n;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(web, "workers"), i, w) done &=
            th_int(w, "generation") == gen;
        if (done)
            return;
        cr_assert_lt(th_now_ms(), end, "web did not roll to generation %lld: %s",
                     (long long)gen, th_dump(web));
        th_sleep_ms(20);
    }
}

/* A worker takes connections only once its NATS link is up: through
 * rolling restarts and a reload, a client polling /health never sees 503
 * while nats-server runs. */
Test(supervisor_programs, rolling_restarts_with_nats_up_never_answer_503,
     .timeout = 120, .fini = sup_fini)
{
#define NATS_WEB(threads)                                                              \
    "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"               \
    "[runtime]\npool_threads = " threads "\n\n" SUP_WEB(                               \
        "2") "[program:nats]\ncommand = nats-server -a 127.0.0.1 -p @PORT2@\n"
    th_sv_t *sv = th_must_sv_start(NATS_WEB("4"));
    th_assert_settled(sv, "web", 2, 10000);
    free(s_wait_health(sv, 200, 10000));
    th_sleep_ms(500); /* both workers connected */
    th_load_t *l = sup_load(sv->ports[0], "/health", 2, 0);
    th_sleep_ms(300);
    for (json_int_t gen = 1; gen <= 6; gen++) {
        th_resp_t *r = NULL;
        if (gen % 2 == 0) { /* a reload that changes what workers read */
            cr_assert_eq(
                th_sv_write_config(sv, gen % 4 ? NATS_WEB("3") : NATS_WEB("4")), 0);
            r = sup_admin_post(sv, "/reload", NULL);
        } else {
            r = sup_admin_post(sv, "/services/web/restart", NULL);
        }
        cr_assert(r->status == 200 || r->status == 202, "%d %s", r->status, r->body);
        th_resp_free(&r);
        s_wait_generation(sv, gen, 2);
        th_sleep_ms(200);
    }
#undef NATS_WEB
    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "rolling restarts with NATS up, GET /health");
}

/* What a program starts goes with it: its whole process group is stopped. */
Test(supervisor_programs, stopping_a_program_stops_its_children, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv =
        th_must_sv_start("shutdown_timeout = 3\n\n"
                         "[program:parent]\ncommand = sh -c 'sleep 1003 & echo $! > "
                         "@DATA@/child.pid; wait'\n");
    char *path = NULL;
    size_t len = 0;
    char *text = NULL;
    for (int i = 0; i < 100 && !(text && len > 0); i++) {
        free(text);
        free(path);
        path = NULL;
        th_sleep_ms(50);
        if (asprintf(&path, "%s/child.pid", sv->data_dir) < 0)
            cr_assert_fail("asprintf");
        text = th_read_file(path, &len);
    }
    cr_assert(text && len > 0, "the program did not write its child's pid");
    pid_t child = (pid_t)atoi(text);
    free(text);
    free(path);
    cr_assert_gt(child, 0);
    th_track_pid(child);
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    cr_assert_eq(th_wait_exit(sv->proc, 8000), 0);
    cr_assert(sup_wait_gone(child, 3000), "the program's child %d outlived it",
              (int)child);
}

/* Whether sv's data_dir/name holds want within timeout_ms. */
static bool s_file_holds(const th_sv_t *sv, const char *name, const char *want,
                         int timeout_ms)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", sv->data_dir, name);
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        size_t len = 0;
        char *text = th_read_file(path, &len);
        bool ok = text && strcmp(text, want) == 0;
        free(text);
        if (ok)
            return true;
        th_sleep_ms(50);
    }
    return false;
}

/* The program writes its GREETING and the GOMAXPROCS entries execve gave
 * it (the supervisor's own is 8); "$$$$" is the shell's "$$". */
#define ENV_PROGRAM(greeting)                                                          \
    "[program:envp]\ncommand = sh -c 'echo \"$GREETING|$(tr \"\\\\0\" \"\\\\n\" "        \
    "< /proc/$$$$/environ | grep ^GOMAXPROCS=)\" >> @DATA@/env.log; exec sleep 1000'\n"  \
    "environment = GOMAXPROCS=1 'GREETING=" greeting "'\n"

/* A program runs with its [program] environment over the supervisor's
 * own, and a reload that changes it restarts the program with the new one. */
Test(supervisor_programs, a_program_runs_with_its_environment_and_reloads_it,
     .timeout = 60, .fini = sup_fini)
{
    cr_assert_eq(setenv("GOMAXPROCS", "8", 1), 0);
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" ENV_PROGRAM("hello world"));
    cr_assert(s_file_holds(sv, "env.log", "hello world|GOMAXPROCS=1\n", 10000),
              "the program did not run with its environment");
    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 3\n\n" ENV_PROGRAM("bye")), 0);
    cr_assert_eq(th_signal(sv->proc, SIGHUP), 0);
    cr_assert(s_file_holds(sv, "env.log", "hello world|GOMAXPROCS=1\nbye|GOMAXPROCS=1\n",
                           10000),
              "the reload did not restart the program with its new environment");
}

/* Sends SIGTERM to the supervisor while three 1.5 s requests are in flight
 * on web; asserts that each is answered in full. Returns when SIGTERM was
 * sent (th_now_ms()). */
static long long s_sigterm_with_requests_in_flight(th_sv_t *sv)
{
    th_conn_t *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = th_must_connect(sv->ports[0]);
        cr_assert_eq(th_send_request(c[i], "GET", "/sleep?ms=1500", NULL, NULL, 0), 0);
    }
    th_sleep_ms(300);
    long long t0 = th_now_ms();
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    for (int i = 0; i < 3; i++) {
        th_resp_t *r = NULL;
        int rc = th_read_response(c[i], &r, 5000);
        cr_assert_eq(rc, 0, "in-flight request %d got no response: %s", i,
                     strerror(-rc));
        cr_assert_eq(r->status, 200, "in-flight request %d: %d %.300s", i, r->status,
                     r->body);
        cr_assert_str_eq(r->body, "{\"slept_ms\":1500}");
        th_resp_free(&r);
        th_conn_close(&c[i]);
    }
    return t0;
}

/* Asserts that a stopped supervisor removed its control socket and left
 * its lock file unlocked (the file stays: see sv_stop). */
static void s_assert_run_dir_left_clean(const th_sv_t *sv)
{
    char path[600];
    snprintf(path, sizeof path, "%s/run/control.ipc", sv->data_dir);
    cr_assert_neq(access(path, F_OK), 0, "%s is still there", path);
    snprintf(path, sizeof path, "%s/run/supervisor.lock", sv->data_dir);
    int lock = open(path, O_RDWR | O_CLOEXEC);
    cr_assert_geq(lock, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(flock(lock, LOCK_EX | LOCK_NB), 0, "%s is still locked", path);
    close(lock);
}

Test(supervisor_lifecycle, sigterm_drains_in_flight_requests_and_leaves_nothing,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 4\n\n" SUP_WEB(
        "2") "[program:sleeper]\ncommand = sleep 1000\n");
    th_assert_settled(sv, "web", 2, 5000);
    json_t *st = sup_status(sv);
    pid_t pids[8];
    size_t n = sup_pids(th_sv_find(st, "services", "web"), pids, 6);
    json_t *pg = th_sv_find(st, "programs", "sleeper");
    cr_assert_not_null(pg);
    cr_assert_str_eq(sup_str(pg, "state"), "running");
    pids[n++] = (pid_t)th_int(pg, "pid");
    for (size_t i = 0; i < n; i++)
        cr_assert_gt(pids[i], 0);

    long long t0 = s_sigterm_with_requests_in_flight(sv);
    int rc = th_wait_exit(sv->proc, 4000 + 2000);
    long long took = th_now_ms() - t0;
    char *log = th_log(sv->proc);
    cr_assert_eq(rc, 0, "the supervisor exited with %d after SIGTERM; log:\n%s", rc,
                 log);
    cr_assert_geq(took, 1000,
                  "the supervisor exited %lld ms after SIGTERM, before "
                  "its workers' requests were done",
                  took);
    cr_assert(strstr(log, "supervisor stopped cleanly"), "log:\n%s", log);
    /* Programs stop after the services. */
    char *stop_prog = strstr(log, "stopping program sleeper");
    cr_assert_not_null(stop_prog, "log:\n%s", log);
    cr_assert_null(strstr(stop_prog, "draining worker"),
                   "a worker drained after the "
                   "programs were stopped:\n%s",
                   log);
    free(log);
    for (size_t i = 0; i < n; i++)
        cr_assert_not(th_pid_remains(pids[i]),
                      "pid %d (state %c) outlived the supervisor", (int)pids[i],
                      th_pid_state(pids[i]));

    s_assert_run_dir_left_clean(sv);
}

/* shutdown_timeout bounds the whole stop: a worker that never finishes and a
 * program that ignores SIGTERM share it (programs get at least 1 s). */
Test(supervisor_lifecycle, shutdown_timeout_bounds_stubborn_workers_and_programs,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB(
        "1") "[program:stubborn]\ncommand = sh -c 'trap \"\" TERM; "
             "while :; do sleep 0.1; done'\n");
    th_assert_settled(sv, "web", 1, 5000);
    pid_t pids[2];
    cr_assert_eq(sup_pids(sup_service(sv, "web"), pids, 1), 1);
    pids[1] = (pid_t)th_int(sup_program(sv, "stubborn"), "pid");
    cr_assert_gt(pids[1], 0);
    cr_assert_eq(kill(pids[0], SIGSTOP), 0); /* cannot drain */
    long long t0 = th_now_ms();
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    int rc = th_wait_exit(sv->proc, 10000);
    long long took = th_now_ms() - t0;
    char *log = th_log(sv->proc);
    cr_assert_eq(rc, 0, "exit %d; log:\n%s", rc, log);
    /* 3 s, SIGKILL 0.5 s later, then 1 s for the program; before, each
     * had its own shutdown_timeout (over 7 s). */
    cr_assert_lt(took, 5500,
                 "stopping took %lld ms with shutdown_timeout = 3; log:\n%s", took,
                 log);
    free(log);
    for (int i = 0; i < 2; i++)
        cr_assert_not(th_pid_remains(pids[i]), "pid %d outlived the supervisor",
                      (int)pids[i]);
}

/* ---- programs ---- */

Test(supervisor_programs, killed_program_restarts_and_crashing_one_backs_off,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n"
                                   "[program:sleeper]\ncommand = sleep 1000\n\n"
                                   "[program:flappy]\ncommand = sh -c \"exit 7\"\n");
    long long t0 = th_now_ms();
    json_t *pg = sup_program(sv, "sleeper");
    pid_t victim = (pid_t)th_int(pg, "pid");
    cr_assert_gt(victim, 0, "sleeper does not run: %s", sup_str(pg, "state"));
    cr_assert_eq(kill(victim, SIGKILL), 0);
    long long t1 = th_now_ms();
    long long back = -1;
    while (th_now_ms() - t1 < 3000) {
        pg = sup_program(sv, "sleeper");
        if (th_int(pg, "pid") > 0 && th_int(pg, "pid") != victim &&
            strcmp(sup_str(pg, "state"), "running") == 0) {
            back = th_now_ms() - t1;
            break;
        }
        th_sleep_ms(10);
    }
    char *dump = json_dumps(pg, 0);
    cr_assert_geq(back, 0, "sleeper not restarted 3 s after kill -9: %s", dump);
    cr_assert_leq(back, 1000, "sleeper restarted after %lld ms", back);
    cr_assert_geq(th_int(pg, "restarts"), 1, "%s", dump);
    cr_assert_str_eq(sup_str(pg, "last_exit"), "killed by SIGKILL", "%s", dump);
    free(dump);
    cr_assert(sup_wait_gone(victim, 1000), "the killed program was not reaped");

    bool seen_backoff = false;
    json_int_t restarts = 0;
    while (th_now_ms() - t0 < 2500) {
        pg = sup_program(sv, "flappy");
        restarts = th_int(pg, "restarts");
        if (!seen_backoff && strcmp(sup_str(pg, "state"), "backoff") == 0) {
            seen_backoff = true;
            dump = json_dumps(pg, 0);
            cr_assert_str_eq(sup_str(pg, "last_exit"), "exit status 7", "%s", dump);
            cr_assert(json_is_string(json_object_get(pg, "next_attempt_at")), "%s",
                      dump);
            free(dump);
        }
        th_sleep_ms(50);
    }
    cr_assert(seen_backoff, "flappy was never seen in state backoff");
    cr_assert(restarts >= 3 && restarts <= 12,
              "flappy restarted %lld times in 2.5 s: want a few (backoff), not a storm",
              (long long)restarts);
    char *log = th_log(sv->proc);
    long d[32];
    size_t n = sup_backoff_delays(log, "program flappy (pid", d, 32);
    /* A program has no readiness: its first exit is replaced at once, then
     * the backoff starts at 100 ms. */
    cr_assert_geq(n, 4, "only %zu restart line(s) for flappy:\n%s", n, log);
    cr_assert_eq(d[0], 0, "first restart of flappy after %ld ms", d[0]);
    sup_assert_backoff(d + 1, n - 1, 100, log);
    free(log);
}
