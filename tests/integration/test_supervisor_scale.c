/* test_supervisor_scale.c - changing what the supervisor runs while it
 * serves: scaling with vaporactl and SIGHUP, a rolling restart, reloads
 * (to a broken command, of what workers read, of the worker count), a
 * service added back or renamed while its socket stays bound, and a
 * draining worker that still serves the connections it accepted. No
 * client request fails meanwhile. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor_fixture.h"

/* Waits until every worker of service is of generation gen (and the service
 * has settled on n workers). Returns whether that happened in time. */
static bool s_wait_generation(th_sv_t *sv, const char *service, unsigned n, int gen,
                              int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (th_sv_wait_settled(sv, service, n, 0)) {
            json_t *s = sup_service(sv, service);
            bool all = th_sv_count(s, "running") == n && th_sv_count(s, NULL) == n;
            size_t i;
            json_t *w;
            json_array_foreach(json_object_get(s, "workers"), i, w)
            {
                all &= th_int(w, "generation") == gen;
            }
            if (all)
                return true;
        }
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(20);
    }
}
/* ---- scaling: vaporactl, SIGHUP ---- */

/* The generation of the newest "rolling restart of <service> (generation N)"
 * line of the log, or 0. */
static int s_logged_generation(th_sv_t *sv, const char *service)
{
    char *log = th_log(sv->proc), needle[128];
    snprintf(needle, sizeof needle, "rolling restart of %s (generation ", service);
    int gen = 0;
    for (char *at = strstr(log, needle); at; at = strstr(at + 1, needle))
        gen = atoi(at + strlen(needle));
    free(log);
    return gen;
}

/* Writes tmpl (a config with workers = banana) and asks for a reload by
 * SIGHUP, POST /reload and vaporactl reload: each is refused, with the
 * reason. */
static void s_reload_refused(th_sv_t *sv, const char *tmpl)
{
    cr_assert_eq(th_sv_write_config(sv, tmpl), 0);
    cr_assert_eq(th_signal(sv->proc, SIGHUP), 0);
    cr_assert(th_log_wait(sv->proc, "SIGHUP: configuration not reloaded", 3000),
              "no 'not reloaded' log line after SIGHUP with workers = banana");
    char *log = th_log(sv->proc);
    char *line = strstr(log, "SIGHUP: configuration not reloaded");
    bool why = line && strstr(line, "banana") &&
               strstr(line, "banana") < strchrnul(line, '\n');
    cr_assert(why, "the log line does not give the reason: %.300s", line);
    free(log);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    th_assert_error(r, 422, "invalid_config", NULL);
    cr_assert(strstr(r->body, "banana"), "422 without the reason: %s", r->body);
    th_resp_free(&r);
    char *out = NULL;
    int rc = sup_ctl(sv, NULL, &out, "reload", NULL, NULL);
    cr_assert_eq(rc, 1, "vaporactl reload with an invalid config: exit %d: %s", rc,
                 out);
    free(out);
}

Test(supervisor_scale, vaporactl_and_sighup_scale_without_failed_requests,
     .timeout = 60, .fini = sup_fini)
{
    const char *tmpl_fmt = "shutdown_timeout = 3\n\n"
                           "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = %s\n"
                           "command = @TESTSVC@\n";
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, tmpl_fmt, "2");
    th_sv_t *sv = th_must_sv_start(tmpl);
    th_assert_settled(sv, "web", 2, 5000);
    /* Short requests on new connections, and pool requests that are in
     * flight most of the time: a worker killed instead of drained fails one. */
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 2);
    th_load_t *slow = sup_load(sv->ports[0], "/sleep?ms=50", 2, 0);
    th_sleep_ms(200);

    sup_ctl_scale(sv, 4);
    sup_ctl_scale(sv, 1);

    /* The config file says 3 now: SIGHUP. */
    snprintf(tmpl, sizeof tmpl, tmpl_fmt, "3");
    cr_assert_eq(th_sv_write_config(sv, tmpl), 0);
    cr_assert_eq(th_signal(sv->proc, SIGHUP), 0);
    cr_assert(th_log_wait(sv->proc, "configuration reloaded", 3000),
              "no reload log line after SIGHUP");
    th_assert_settled(sv, "web", 3, 8000);
    int gen = s_logged_generation(sv, "web");
    cr_assert(s_wait_generation(sv, "web", 3, gen, 8000),
              "web did not settle on 3 workers of generation %d", gen);
    pid_t before[8];
    size_t nbefore = sup_pids(sup_service(sv, "web"), before, 8);

    /* An invalid config changes nothing, by SIGHUP or by POST /reload. */
    snprintf(tmpl, sizeof tmpl, tmpl_fmt, "banana");
    s_reload_refused(sv, tmpl);
    th_sleep_ms(300); /* three ticks, in which nothing may change */
    json_t *s = sup_service(sv, "web");
    cr_assert_eq(th_int(s, "desired"), 3, "desired %lld after an invalid reload",
                 (long long)th_int(s, "desired"));
    pid_t after[8];
    size_t nafter = sup_pids(s, after, 8);
    cr_assert_eq(nafter, nbefore);
    for (size_t i = 0; i < nafter; i++)
        cr_assert(sup_has_pid(before, nbefore, after[i]),
                  "worker %d appeared after an invalid reload", (int)after[i]);
    cr_assert_eq(th_sv_count(s, "running"), 3);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "scaling 2 -> 4 -> 1 -> 3, GET /health");
    th_load_stop(&slow, 0, &st);
    sup_assert_clean(&st, "scaling 2 -> 4 -> 1 -> 3, GET /sleep?ms=50");
}

/* ---- rolling restart ---- */

/* Workers that take 300 ms to become ready (sh sleeps, then execs the
 * service in the same process, so LISTEN_PID still matches), so that
 * "the replacement is ready before the old one drains" is observable. */
#define SLOW_WEB(workers)                                                              \
    "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = " workers                    \
    "\ncommand = sh -c 'sleep 0.3; exec @TESTSVC@ -c $1'\n\n"

/* What a rolling restart of web looked like, polled until every worker is
 * of generation 1 (10 s at most): the fewest workers running and the most
 * starting at once, /status at the worst moment (the caller frees it), and
 * whether it finished with two running workers. */
typedef struct s_rolling {
    unsigned min_running, max_starting;
    char *worst;
    bool done;
} s_rolling_t;

static s_rolling_t s_watch_rolling_restart(th_sv_t *sv)
{
    long long deadline = th_now_ms() + 10000;
    s_rolling_t rr = {.min_running = 2};
    while (!rr.done && th_now_ms() < deadline) {
        json_t *s = sup_service(sv, "web");
        unsigned running = th_sv_count(s, "running"),
                 starting = th_sv_count(s, "starting");
        if (running < rr.min_running || starting > rr.max_starting) {
            free(rr.worst);
            rr.worst = json_dumps(s, JSON_INDENT(1));
            rr.min_running = running < rr.min_running ? running : rr.min_running;
            rr.max_starting = starting > rr.max_starting ? starting : rr.max_starting;
        }
        rr.done = th_sv_count(s, NULL) == 2 && running == 2;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), i, w)
        {
            rr.done &= th_int(w, "generation") == 1;
        }
        th_sleep_ms(10);
    }
    return rr;
}

Test(supervisor_scale, rolling_restart_replaces_every_worker_without_failed_requests,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SLOW_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    pid_t old[8];
    size_t nold = sup_pids(sup_service(sv, "web"), old, 8);
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 2);
    th_load_t *slow = sup_load(sv->ports[0], "/sleep?ms=50", 2, 0);
    th_sleep_ms(300);

    th_resp_t *r = sup_admin_post(sv, "/services/web/restart", NULL);
    cr_assert_eq(r->status, 202, "POST restart: %d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "\"name\":\"web\""), "%.300s", r->body);
    th_resp_free(&r);
    /* Until every worker is of generation 1: never fewer than 2 running,
     * never more than one starting. */
    s_rolling_t rr = s_watch_rolling_restart(sv);
    cr_assert(rr.min_running >= 2, "only %u worker(s) running during the restart: %s",
              rr.min_running, rr.worst);
    cr_assert(rr.max_starting <= 1, "%u workers starting at once: %s", rr.max_starting,
              rr.worst);
    free(rr.worst);
    char *dump = json_dumps(sup_service(sv, "web"), JSON_INDENT(1));
    cr_assert(rr.done, "the rolling restart did not finish in 10 s: %s", dump);
    free(dump);
    pid_t now[8];
    size_t nnow = sup_pids(sup_service(sv, "web"), now, 8);
    for (size_t i = 0; i < nnow; i++)
        cr_assert_not(sup_has_pid(old, nold, now[i]), "worker %d was not replaced",
                      (int)now[i]);
    for (size_t i = 0; i < nold; i++)
        cr_assert(sup_wait_gone(old[i], 3000), "old worker %d still exists",
                  (int)old[i]);
    th_sleep_ms(300);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "a rolling restart, GET /health");
    th_load_stop(&slow, 0, &st);
    sup_assert_clean(&st, "a rolling restart, GET /sleep?ms=50");
}

/* An old worker that dies while its replacement crash-loops is not started
 * again: neither with the new command (a second crash loop) nor the old
 * one (gone). s is web's /status entry from before, old[0..1] its old
 * workers. */
static void s_old_worker_dying_stays_dead(th_sv_t *sv, json_t *s, const pid_t *old)
{
    json_int_t old_gen = -1;
    size_t j;
    json_t *w;
    json_array_foreach(json_object_get(s, "workers"), j, w)
    {
        if (th_int(w, "pid") == old[0])
            old_gen = th_int(w, "generation");
    }
    cr_assert_eq(kill(old[0], SIGKILL), 0);
    th_sleep_ms(1500);
    s = sup_service(sv, "web");
    char *dump = json_dumps(s, JSON_INDENT(1));
    size_t n = 0, old_left = 0;
    json_array_foreach(json_object_get(s, "workers"), j, w)
    {
        n++;
        if (th_int(w, "generation") == old_gen) {
            old_left++;
            cr_assert_eq(th_int(w, "pid"), old[1], "%s", dump);
            cr_assert_str_eq(sup_str(w, "state"), "running", "%s", dump);
        }
    }
    cr_assert_eq(old_left, 1, "%s", dump);
    cr_assert_eq(n, 2, "one old worker and one replacement expected: %s", dump);
    free(dump);
}

/* A replacement that never becomes ready (crashing in backoff) holds the
 * rolling restart: the old workers keep serving. */
Test(supervisor_scale, reload_to_a_broken_command_keeps_the_old_workers_serving,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    pid_t old[8];
    size_t nold = sup_pids(sup_service(sv, "web"), old, 8);
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 5);

    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 3\n\n"
                                        "[service:web]\nlisten = 127.0.0.1:@PORT1@\n"
                                        "workers = 2\ncommand = sh -c \"exit 3\"\n"),
                 0);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "POST /reload: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    th_sleep_ms(2000); /* a few failed attempts of the replacement */

    json_t *s = sup_service(sv, "web");
    char *dump = json_dumps(s, JSON_INDENT(1));
    for (size_t i = 0; i < nold; i++) {
        bool serving = false;
        size_t j;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), j, w)
        {
            serving |= th_int(w, "pid") == old[i] &&
                       strcmp(sup_str(w, "state"), "running") == 0;
        }
        cr_assert(serving,
                  "old worker %d was drained for a replacement that never "
                  "became ready: %s",
                  (int)old[i], dump);
    }
    free(dump);
    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "a rolling restart onto a broken command");

    s_old_worker_dying_stays_dead(sv, s, old);
}

/* Workers read the file the supervisor validated last: a change to a
 * section they read replaces them; a broken file on SIGHUP is never read. */
Test(supervisor_scale,
     reload_follows_what_workers_read_and_never_hands_out_a_broken_file, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start(SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    json_int_t gen =
        th_int(json_array_get(json_object_get(sup_service(sv, "web"), "workers"), 0),
               "generation");

    cr_assert_eq(th_sv_write_config(sv, SUP_WEB("2") "[runtime]\nlog_level = info\n"),
                 0);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "POST /reload: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    cr_assert(s_wait_generation(sv, "web", 2, (int)gen + 1, 10000),
              "a [runtime] change did not replace the workers");

    cr_assert_eq(th_sv_write_config(sv, SUP_WEB("2") "[runtime\nbroken\n"), 0);
    cr_assert_eq(th_signal(sv->proc, SIGHUP), 0);
    th_sleep_ms(300);
    pid_t pids[2];
    cr_assert_eq(sup_pids(sup_service(sv, "web"), pids, 2), 2);
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    th_sleep_ms(1500);
    th_assert_settled(sv, "web", 2, 5000);
    json_t *s = sup_service(sv, "web");
    char *dump = json_dumps(s, JSON_INDENT(1));
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(s, "workers"), i, w)
    {
        cr_assert_neq(th_int(w, "pid"), pids[0], "%s", dump);
        cr_assert_leq(th_int(w, "restarts"), 1, "the replacement crash-looped: %s",
                      dump);
    }
    free(dump);
    char *log = th_log(sv->proc);
    cr_assert(strstr(log, "configuration not reloaded"), "log:\n%s", log);
    free(log);
}

/* A service removed and added back while its old worker still drains
 * gets the same socket (before: "Address already in use"). */
Test(supervisor_scale, service_added_back_while_its_old_worker_drains, .timeout = 60,
     .fini = sup_fini)
{
    th_conn_t *c = NULL;
    th_sv_t *sv = sup_start_busy(&c);
    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 5\n"), 0);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "removing web: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 5\n\n" SUP_WEB("1")), 0);
    r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "adding web back: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    cr_assert_eq(th_read_response(c, &r, 5000), 0);
    cr_assert_eq(r->status, 200, "the draining worker's request: %d", r->status);
    th_resp_free(&r);
    th_conn_close(&c);
    th_assert_settled(sv, "web", 1, 5000);
    cr_assert_eq(th_request(sv->ports[0], "GET", "/health", NULL, NULL, &r), 0);
    cr_assert_eq(r->status, 200);
    th_resp_free(&r);
}

/* Renaming a service keeps its address, bound all along; admin and
 * data_dir cannot move under a running supervisor. */
Test(supervisor_scale, renamed_service_keeps_its_socket, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start(SUP_WEB("1"));
    th_assert_settled(sv, "web", 1, 5000);
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 5);
    cr_assert_eq(th_sv_write_config(sv, "[service:site]\nlisten = 127.0.0.1:@PORT1@\n"
                                        "workers = 1\ncommand = @TESTSVC@\n"),
                 0);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "renaming web: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    th_assert_settled(sv, "site", 1, 5000);
    th_sleep_ms(300);
    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "renaming a service");

    cr_assert_eq(th_sv_write_config(sv, "[supervisor]\ndata_dir = /tmp/elsewhere\n\n"
                                        "[service:site]\nlisten = 127.0.0.1:@PORT1@\n"
                                        "workers = 1\ncommand = @TESTSVC@\n"),
                 0);
    r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 422, "moving data_dir: %d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "cannot change while running"), "%s", r->body);
    th_resp_free(&r);
}

/* Scaling through a reload applies the count alone: running workers stay. */
Test(supervisor_scale, reload_of_worker_count_keeps_running_workers, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start(SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    pid_t old[8];
    size_t nold = sup_pids(sup_service(sv, "web"), old, 8);
    cr_assert_eq(th_sv_write_config(sv, SUP_WEB("3")), 0);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "POST /reload: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    th_assert_settled(sv, "web", 3, 5000);
    pid_t now[8];
    size_t nnow = sup_pids(sup_service(sv, "web"), now, 8);
    for (size_t i = 0; i < nold; i++)
        cr_assert(sup_has_pid(now, nnow, old[i]), "worker %d was replaced",
                  (int)old[i]);
}

/* Connections accepted just before a scale-down still get their first
 * request served by the draining worker, when it comes within the drain's
 * quiet period (WORKER_DRAIN_QUIET_MS, 200 ms). One worker scaled to 0, so
 * every connection is on the worker that drains. */
Test(supervisor_scale, draining_worker_serves_connections_accepted_before,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start(SUP_WEB("1"));
    th_assert_settled(sv, "web", 1, 5000);
    th_conn_t *c[20];
    for (int i = 0; i < 20; i++) {
        c[i] = th_must_connect(sv->ports[0]);
    }
    th_sleep_ms(50); /* the worker has accepted them */
    th_resp_t *r = sup_admin_post(sv, "/services/web/scale", "{\"workers\":0}");
    cr_assert_eq(r->status, 200, "scale: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    th_sleep_ms(50); /* the drain has begun; the requests come shortly after */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(th_send_request(c[i], "GET", "/health", NULL, NULL, 0), 0);
    for (int i = 0; i < 20; i++) {
        th_resp_t *x = NULL;
        int rc = th_read_response(c[i], &x, TH_IO_MS);
        cr_assert_eq(rc, 0, "connection %d: no response (%s)", i, strerror(-rc));
        cr_assert_eq(x->status, 200, "connection %d: %d", i, x->status);
        th_resp_free(&x);
    }
    th_assert_settled(sv, "web", 0, 5000);
}
