/* test_supervisor.c - integration tests of vapora-supervisor and vaporactl:
 * each test starts the real supervisor on loopback with its own config,
 * free ports and data_dir under $VAPORA_TEST_TMP, and drives it like an
 * operator would: its admin API, vaporactl, signals, kill -9 and SIGSTOP on
 * its workers, while a client (th_load_*) keeps using the services.
 *
 * DESIGN. Nothing that must happen is waited for by sleeping a fixed time
 * and hoping: every such wait polls /status (or the log, or /proc) against
 * a deadline, so a slow machine makes a test slower, not flaky, and a
 * broken supervisor fails a test instead of hanging it. (The few fixed
 * sleeps are windows in which something must *not* happen, or in which the
 * client warms up.) A client failure is a refused or reset
 * connection, a request without a whole response, or a status other than
 * 200; the client opens a new connection per request, so a server closing
 * an idle keep-alive connection while draining is never counted.
 *
 * kill -9 and SIGSTOP of a worker happen while the client is held between
 * two requests (th_load_hold): a request that a worker is serving at the
 * instant it is SIGKILLed is lost whatever a supervisor does; what these
 * tests check is that nothing else is.
 *
 * Every test has .fini = s_fini: the supervisor is stopped, every worker
 * and program pid it reported is SIGKILLed if still there (stopped ones are
 * continued first), client threads are joined. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "harness.h"

#define JSON_CT "Content-Type: application/json\r\n"

/* The last /status document of s_status(); freed by the next and by s_fini. */
static json_t *s_st;

static void s_fini(void)
{
    json_decref(s_st);
    s_st = NULL;
    th_cleanup();
}

/* ---- helpers ---- */

/* Starts a supervisor on tmpl (see th_sv_start); asserts. */
static th_sv_t *s_start(const char *tmpl)
{
    th_sv_t *sv = th_sv_start(tmpl);
    cr_assert_not_null(sv, "the supervisor did not start (its log is on stderr)");
    return sv;
}

/* GET /status, kept in s_st; asserts it answered. */
static json_t *s_status(th_sv_t *sv)
{
    json_decref(s_st);
    s_st = th_sv_status(sv);
    cr_assert_not_null(s_st, "GET /status failed");
    return s_st;
}

/* The service entry of a fresh /status; asserts it is listed. */
static json_t *s_service(th_sv_t *sv, const char *name)
{
    json_t *s = th_sv_find(s_status(sv), "services", name);
    cr_assert_not_null(s, "service %s not in /status", name);
    return s;
}

/* The program entry of a fresh /status; asserts it is listed. */
static json_t *s_program(th_sv_t *sv, const char *name)
{
    json_t *p = th_sv_find(s_status(sv), "programs", name);
    cr_assert_not_null(p, "program %s not in /status", name);
    return p;
}

static json_int_t s_int(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *s_str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "(null)";
}

/* The worker of svc whose slot id is id, or NULL. Borrowed. */
static json_t *s_worker(json_t *svc, json_int_t id)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
    {
        if (s_int(w, "id") == id)
            return w;
    }
    return NULL;
}

/* Fills pids[] with the worker pids of svc; returns how many (at most max). */
static size_t s_pids(json_t *svc, pid_t *pids, size_t max)
{
    size_t i, n = 0;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
    {
        if (n < max)
            pids[n++] = (pid_t)s_int(w, "pid");
    }
    return n;
}

static bool s_has_pid(const pid_t *pids, size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* Asserts that service settles on n running workers within timeout_ms;
 * on failure shows the last /status and the log. */
static void s_assert_settled(th_sv_t *sv, const char *service, unsigned n,
                             int timeout_ms)
{
    if (th_sv_wait_settled(sv, service, n, timeout_ms))
        return;
    char *st =
        json_dumps(th_sv_find(s_status(sv), "services", service), JSON_INDENT(1));
    char *log = th_log(sv->proc);
    cr_assert_fail("%s did not settle on %u running worker(s) in %d ms: %s\nlog:\n%s",
                   service, n, timeout_ms, st, log);
}

/* Waits until every worker of service is of generation gen (and the service
 * has settled on n workers). Returns whether that happened in time. */
static bool s_wait_generation(th_sv_t *sv, const char *service, unsigned n, int gen,
                              int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (th_sv_wait_settled(sv, service, n, 0)) {
            json_t *s = s_service(sv, service);
            bool all = th_sv_count(s, "running") == n && th_sv_count(s, NULL) == n;
            size_t i;
            json_t *w;
            json_array_foreach(json_object_get(s, "workers"), i, w)
            {
                all &= s_int(w, "generation") == gen;
            }
            if (all)
                return true;
        }
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(20);
    }
}

/* Asserts a load saw no failure and some successes. */
static void s_assert_clean(const th_load_stats_t *st, const char *what)
{
    cr_assert_eq(st->failed, 0, "%s: %ld of %ld request(s) failed; the first: %s", what,
                 st->failed, st->failed + st->ok, st->first_error);
    cr_assert_gt(st->ok, 0, "%s: the client made no successful request", what);
    cr_log_info("%s: %ld request(s) on %ld connection(s), none failed", what, st->ok,
                st->conns);
}

/* Starts a client on port: threads threads, one GET path per connection,
 * until stopped. */
static th_load_t *s_load(int port, const char *path, unsigned threads, int pause_ms)
{
    th_load_opts_t o = {.port = port,
                        .path = path,
                        .threads = threads,
                        .reqs_per_conn = 1,
                        .pause_ms = pause_ms};
    th_load_t *l = th_load_start(&o);
    cr_assert_not_null(l);
    return l;
}

/* Runs vaporactl -a <admin> args...; returns its exit status, *out its
 * output (caller frees). */
static int s_ctl(th_sv_t *sv, const char *addr, char **out, const char *a1,
                 const char *a2, const char *a3)
{
    char *bin = th_bin_path("vaporactl");
    const char *argv[] = {bin, "-a", addr ? addr : sv->admin, a1, a2, a3, NULL};
    int rc = th_run(argv, 10000, out);
    free(bin);
    return rc;
}

/* POST path with body (JSON) to the admin API; asserts a response. */
static th_resp_t *s_admin_post(th_sv_t *sv, const char *path, const char *body)
{
    th_resp_t *r = NULL;
    int rc = th_request(sv->admin_port, "POST", path, body ? JSON_CT : NULL, body, &r);
    cr_assert_eq(rc, 0, "POST %s: %s", path, strerror(-rc));
    return r;
}

/* Asserts r is {"error":{"code":code,...}} with status. */
static void s_assert_error(const th_resp_t *r, int status, const char *code)
{
    cr_assert_eq(r->status, status, "status %d, want %d: %.300s", r->status, status,
                 r->body);
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *got =
        json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    bool same = got && strcmp(got, code) == 0;
    json_decref(j);
    cr_assert(same, "error code in %.300s, want %s", r->body, code);
}

/* The delays (ms) of every log line that contains who and then "restart",
 * taken from the number after "in " (e.g. "restart 2 in 224 ms"). Returns
 * how many (at most max). */
static size_t s_backoff_delays(const char *log, const char *who, long *out, size_t max)
{
    size_t n = 0;
    for (const char *l = log; l && *l && n < max;
         l = strchr(l, '\n'), l = l ? l + 1 : l) {
        const char *eol = strchrnul(l, '\n');
        char *line = strndup(l, (size_t)(eol - l));
        char *at = strstr(line, who);
        char *r = at ? strstr(at, "; restart") : NULL;
        char *in = r ? strstr(r, " in ") : NULL;
        if (in)
            out[n++] = strtol(in + 4, NULL, 10);
        free(line);
    }
    return n;
}

/* Asserts that delays grow as the restart policy says: from base ms, each
 * at least 1.5 times the one before (doubling, with up to 25 % jitter). */
static void s_assert_backoff(const long *d, size_t n, long base, const char *log)
{
    cr_assert_geq(n, 3, "only %zu backoff line(s) in the log:\n%s", n, log);
    cr_assert(d[0] >= base && d[0] <= base + base / 4 + 1,
              "first delay %ld ms, want %ld", d[0], base);
    for (size_t i = 1; i < n; i++)
        cr_assert(d[i] * 2 >= d[i - 1] * 3 && d[i] <= 30000 + 7500,
                  "delay %zu is %ld ms after %ld ms: not a growing backoff", i + 1,
                  d[i], d[i - 1]);
}

/* Waits until pid no longer exists; returns whether it happened in time. */
static bool s_wait_gone(pid_t pid, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    while (th_pid_remains(pid)) {
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(10);
    }
    return true;
}

/* Waits until pid has died: a zombie (its parent not having reaped it yet)
 * or gone. */
static bool s_wait_dead(pid_t pid, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        char st = th_pid_state(pid);
        if (st == 0 || st == 'Z' || st == 'X')
            return true;
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(2);
    }
}

/* CPUs this test may use: its affinity mask, capped by a cgroup CPU quota
 * (v2 cpu.max or v1 cfs_quota_us), rounded up - what workers = auto means. */
static unsigned s_cpus(void)
{
    cpu_set_t set;
    unsigned n =
        sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 0;
    if (n == 0)
        n = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    long long quota = -1, period = 0;
    char *cg = th_read_file("/proc/self/cgroup", NULL), *text = NULL;
    char *v2 = cg ? strstr(cg, "0::") : NULL;
    if (v2 && (v2 == cg || v2[-1] == '\n')) {
        char path[600];
        snprintf(path, sizeof path, "/sys/fs/cgroup%.*s/cpu.max",
                 (int)strcspn(v2 + 3, "\n"), v2 + 3);
        text = th_read_file(path, NULL);
        if (text && strncmp(text, "max", 3) != 0)
            sscanf(text, "%lld %lld", &quota, &period);
    }
    free(text);
    free(cg);
    if (quota < 0 &&
        (text = th_read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", NULL))) {
        quota = atoll(text);
        free(text);
        if ((text = th_read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", NULL)))
            period = atoll(text);
        free(text);
    }
    if (quota > 0 && period > 0 && (unsigned)((quota + period - 1) / period) < n)
        n = (unsigned)((quota + period - 1) / period);
    return n ? n : 1;
}

/* A service [service:web] on @PORT1@ running vapora-testsvc. */
#define WEB(workers)                                                                   \
    "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = " workers                    \
    "\ncommand = @TESTSVC@\n\n"

/* ---- workers = auto, and spreading connections ---- */

/* Checks that every worker of service counted requests, and that together
 * they counted want of them (heartbeats arrive every second). */
static void s_assert_spread(th_sv_t *sv, const char *service, long want)
{
    long long deadline = th_now_ms() + 4000;
    json_t *s = NULL;
    for (;;) {
        s = s_service(sv, service);
        long sum = 0;
        bool every = true;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), i, w)
        {
            sum += (long)s_int(w, "requests");
            every &= s_int(w, "requests") > 0;
        }
        if ((every && sum >= want) || th_now_ms() >= deadline) {
            char *dump = json_dumps(s, JSON_INDENT(1));
            cr_assert(every, "a worker of %s served no request: %s", service, dump);
            cr_assert_eq(sum, want,
                         "the workers of %s counted %ld requests, sent %ld: %s",
                         service, sum, want, dump);
            free(dump);
            return;
        }
        th_sleep_ms(100);
    }
}

Test(supervisor_workers, auto_is_one_worker_per_cpu_and_all_of_them_serve,
     .timeout = 60, .fini = s_fini)
{
    unsigned cpus = s_cpus();
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n"
                          "[service:backend]\nlisten = 127.0.0.1:@PORT1@\n"
                          "workers = auto\n\n"
                          "[service:agents]\nlisten = 127.0.0.1:@PORT2@\n"
                          "workers = auto\n");
    s_assert_settled(sv, "backend", cpus, 5000);
    s_assert_settled(sv, "agents", cpus, 5000);
    char *log = th_log(sv->proc);
    bool said = strstr(log, "service backend on") && strstr(log, "(auto)");
    cr_assert(said, "the log does not say backend runs an automatic count:\n%s", log);
    free(log);

    const char *names[] = {"backend", "agents"};
    for (int i = 0; i < 2; i++) {
        th_load_opts_t o = {.port = sv->ports[i],
                            .path = "/health",
                            .threads = 4,
                            .reqs_per_conn = 5,
                            .conns = 200};
        th_load_t *l = th_load_start(&o);
        th_load_stats_t st;
        th_load_stop(&l, 30000, &st);
        s_assert_clean(&st, names[i]);
        cr_assert_eq(st.ok, 1000, "%s: %ld of 1000 requests answered", names[i], st.ok);
    }
    for (int i = 0; i < 2; i++)
        s_assert_spread(sv, names[i], 1000);
}

/* ---- kill -9 ---- */

Test(supervisor_workers, killed_worker_is_replaced_and_clients_see_no_error,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" WEB("2"));
    s_assert_settled(sv, "web", 2, 5000);
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 2);
    th_sleep_ms(300);

    pid_t victim = (pid_t)s_int(s_worker(s_service(sv, "web"), 1), "pid");
    cr_assert_gt(victim, 0);
    th_load_hold(l);
    long long t0 = th_now_ms();
    cr_assert_eq(kill(victim, SIGKILL), 0);
    bool dead = s_wait_dead(victim, 1000);
    th_load_release(l);
    cr_assert(dead, "worker %d still runs after SIGKILL", (int)victim);

    json_t *w = NULL;
    long long replaced = -1;
    while (th_now_ms() - t0 < 3000) {
        json_t *s = s_service(sv, "web");
        w = s_worker(s, 1);
        if (w && s_int(w, "pid") > 0 && s_int(w, "pid") != victim &&
            th_sv_count(s, "running") == 2) {
            replaced = th_now_ms() - t0;
            break;
        }
        th_sleep_ms(10);
    }
    char *dump = json_dumps(s_st, JSON_INDENT(1));
    cr_assert_geq(replaced, 0, "worker 1 not replaced 3 s after kill -9: %s", dump);
    cr_assert_leq(replaced, 1000, "worker 1 replaced after %lld ms", replaced);
    cr_assert_eq(s_int(w, "restarts"), 1, "restarts of worker 1: %s", dump);
    cr_assert_str_eq(s_str(w, "last_exit"), "killed by SIGKILL", "%s", dump);
    free(dump);

    th_load_stats_t mid, st;
    th_load_get(l, &mid);
    while (th_now_ms() - t0 < 2000)
        th_sleep_ms(20);
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "kill -9 of a worker");
    cr_assert_gt(st.ok - mid.ok, 10, "only %ld request(s) after the replacement",
                 st.ok - mid.ok);
    cr_assert_not(th_pid_remains(victim), "the killed worker %d was not reaped",
                  (int)victim);
}

/* ---- a service that cannot start ---- */

Test(supervisor_workers, crashing_service_backs_off_while_another_serves, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" WEB(
        "1") "[service:flappy]\nlisten = 127.0.0.1:@PORT2@\n"
             "workers = 1\ncommand = sh -c \"exit 3\"\n");
    long long t0 = th_now_ms();
    s_assert_settled(sv, "web", 1, 5000);
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 5);

    bool seen_backoff = false;
    json_int_t restarts = 0;
    char *backoff_dump = NULL;
    while (th_now_ms() - t0 < 2500) {
        json_t *w = s_worker(s_service(sv, "flappy"), 1);
        cr_assert_not_null(w, "flappy has no worker slot 1");
        restarts = s_int(w, "restarts");
        if (!seen_backoff && strcmp(s_str(w, "state"), "backoff") == 0) {
            seen_backoff = true;
            backoff_dump = json_dumps(w, 0);
            cr_assert_str_eq(s_str(w, "last_exit"), "exit status 3", "%s",
                             backoff_dump);
            const char *next = s_str(w, "next_attempt_at");
            cr_assert(strlen(next) == 20 && next[10] == 'T' && next[19] == 'Z',
                      "next_attempt_at: %s", backoff_dump);
            cr_assert_eq(s_int(w, "pid"), 0, "a worker in backoff has a pid: %s",
                         backoff_dump);
        }
        th_sleep_ms(50);
    }
    free(backoff_dump);
    cr_assert(seen_backoff, "flappy's worker was never seen in state backoff");
    cr_assert(restarts >= 3 && restarts <= 10,
              "flappy restarted %lld times in 2.5 s: want a few (backoff), not a storm",
              (long long)restarts);

    char *log = th_log(sv->proc);
    long d[32];
    size_t n = s_backoff_delays(log, "worker flappy/1 (pid", d, 32);
    s_assert_backoff(d, n, 100, log);
    free(log);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "web next to a crashing service");
    s_assert_settled(sv, "web", 1, 1000);
}

/* ---- the watchdog ---- */

Test(supervisor_workers, hung_worker_is_aborted_and_replaced, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\nwatchdog_timeout = 2\n\n" WEB("2"));
    s_assert_settled(sv, "web", 2, 5000);
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 5);
    pid_t victim = (pid_t)s_int(s_worker(s_service(sv, "web"), 1), "pid");
    cr_assert_gt(victim, 0);

    th_load_hold(l);
    long long t0 = th_now_ms();
    cr_assert_eq(kill(victim, SIGSTOP), 0); /* s_fini continues and kills it */
    th_load_release(l);

    long long gone = -1;
    while (th_now_ms() - t0 < 8000) {
        if (!th_pid_remains(victim)) {
            gone = th_now_ms() - t0;
            break;
        }
        th_sleep_ms(20);
    }
    char *log = th_log(sv->proc);
    cr_assert_geq(gone, 0, "the stopped worker %d still exists 8 s later; log:\n%s",
                  (int)victim, log);
    /* Silent for more than 2 s; its last heartbeat was at most 1 s before
     * it was stopped. */
    cr_assert(gone >= 1000 && gone <= 5000,
              "the hung worker was gone %lld ms after SIGSTOP, watchdog_timeout 2 s",
              gone);
    bool said = strstr(log, "no heartbeat") && strstr(log, "hung") &&
                strstr(log, "watchdog_timeout");
    cr_assert(said, "the log does not mention the watchdog:\n%s", log);
    free(log);

    s_assert_settled(sv, "web", 2, 2000);
    json_t *s = s_service(sv, "web");
    pid_t pids[8];
    size_t n = s_pids(s, pids, 8);
    cr_assert_not(s_has_pid(pids, n, victim));
    json_t *w = s_worker(s, 1);
    char *dump = json_dumps(s, JSON_INDENT(1));
    cr_assert_not_null(w, "slot 1 is gone: %s", dump);
    cr_assert_str_eq(s_str(w, "last_exit"), "killed by SIGABRT", "%s", dump);
    cr_assert_eq(s_int(w, "restarts"), 1, "%s", dump);
    free(dump);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "a hung worker next to a healthy one");
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

/* vaporactl scale web n; asserts it succeeded and the count followed. */
static void s_ctl_scale(th_sv_t *sv, unsigned n)
{
    char count[16], *out = NULL;
    snprintf(count, sizeof count, "%u", n);
    int rc = s_ctl(sv, NULL, &out, "scale", "web", count);
    cr_assert_eq(rc, 0, "vaporactl scale web %u: exit %d: %s", n, rc, out);
    char want[64];
    snprintf(want, sizeof want, "web: %u worker(s) desired", n);
    cr_assert(strstr(out, want), "vaporactl scale output: %s", out);
    free(out);
    s_assert_settled(sv, "web", n, 8000);
}

Test(supervisor_scale, vaporactl_and_sighup_scale_without_failed_requests,
     .timeout = 60, .fini = s_fini)
{
    const char *tmpl_fmt = "shutdown_timeout = 3\n\n"
                           "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = %s\n"
                           "command = @TESTSVC@\n";
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, tmpl_fmt, "2");
    th_sv_t *sv = s_start(tmpl);
    s_assert_settled(sv, "web", 2, 5000);
    /* Short requests on new connections, and pool requests that are in
     * flight most of the time: a worker killed instead of drained fails one. */
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 2);
    th_load_t *slow = s_load(sv->ports[0], "/sleep?ms=50", 2, 0);
    th_sleep_ms(200);

    s_ctl_scale(sv, 4);
    s_ctl_scale(sv, 1);

    /* The config file says 3 now: SIGHUP. */
    snprintf(tmpl, sizeof tmpl, tmpl_fmt, "3");
    cr_assert_eq(th_sv_write_config(sv, tmpl), 0);
    cr_assert_eq(th_signal(sv->proc, SIGHUP), 0);
    cr_assert(th_log_wait(sv->proc, "configuration reloaded", 3000),
              "no reload log line after SIGHUP");
    s_assert_settled(sv, "web", 3, 8000);
    int gen = s_logged_generation(sv, "web");
    cr_assert(s_wait_generation(sv, "web", 3, gen, 8000),
              "web did not settle on 3 workers of generation %d", gen);
    pid_t before[8];
    size_t nbefore = s_pids(s_service(sv, "web"), before, 8);

    /* An invalid config changes nothing, by SIGHUP or by POST /reload. */
    snprintf(tmpl, sizeof tmpl, tmpl_fmt, "banana");
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
    th_resp_t *r = s_admin_post(sv, "/reload", NULL);
    s_assert_error(r, 422, "invalid_config");
    cr_assert(strstr(r->body, "banana"), "422 without the reason: %s", r->body);
    th_resp_free(&r);
    char *out = NULL;
    int rc = s_ctl(sv, NULL, &out, "reload", NULL, NULL);
    cr_assert_eq(rc, 1, "vaporactl reload with an invalid config: exit %d: %s", rc,
                 out);
    free(out);

    th_sleep_ms(300); /* three ticks, in which nothing may change */
    json_t *s = s_service(sv, "web");
    cr_assert_eq(s_int(s, "desired"), 3, "desired %lld after an invalid reload",
                 (long long)s_int(s, "desired"));
    pid_t after[8];
    size_t nafter = s_pids(s, after, 8);
    cr_assert_eq(nafter, nbefore);
    for (size_t i = 0; i < nafter; i++)
        cr_assert(s_has_pid(before, nbefore, after[i]),
                  "worker %d appeared after an invalid reload", (int)after[i]);
    cr_assert_eq(th_sv_count(s, "running"), 3);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "scaling 2 -> 4 -> 1 -> 3, GET /health");
    th_load_stop(&slow, 0, &st);
    s_assert_clean(&st, "scaling 2 -> 4 -> 1 -> 3, GET /sleep?ms=50");
}

/* ---- rolling restart ---- */

/* Workers that take 300 ms to become ready (sh sleeps, then execs the
 * service in the same process, so LISTEN_PID still matches), so that
 * "the replacement is ready before the old one drains" is observable. */
#define SLOW_WEB(workers)                                                              \
    "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = " workers                    \
    "\ncommand = sh -c 'sleep 0.3; exec @TESTSVC@ -c $1'\n\n"

Test(supervisor_scale, rolling_restart_replaces_every_worker_without_failed_requests,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" SLOW_WEB("2"));
    s_assert_settled(sv, "web", 2, 5000);
    pid_t old[8];
    size_t nold = s_pids(s_service(sv, "web"), old, 8);
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 2);
    th_load_t *slow = s_load(sv->ports[0], "/sleep?ms=50", 2, 0);
    th_sleep_ms(300);

    th_resp_t *r = s_admin_post(sv, "/services/web/restart", NULL);
    cr_assert_eq(r->status, 202, "POST restart: %d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "\"name\":\"web\""), "%.300s", r->body);
    th_resp_free(&r);
    /* Until every worker is of generation 1: never fewer than 2 running,
     * never more than one starting. */
    long long deadline = th_now_ms() + 10000;
    unsigned min_running = 2, max_starting = 0;
    bool done = false;
    char *worst = NULL;
    while (!done && th_now_ms() < deadline) {
        json_t *s = s_service(sv, "web");
        unsigned running = th_sv_count(s, "running"),
                 starting = th_sv_count(s, "starting");
        if (running < min_running || starting > max_starting) {
            free(worst);
            worst = json_dumps(s, JSON_INDENT(1));
            min_running = running < min_running ? running : min_running;
            max_starting = starting > max_starting ? starting : max_starting;
        }
        done = th_sv_count(s, NULL) == 2 && running == 2;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), i, w)
        {
            done &= s_int(w, "generation") == 1;
        }
        th_sleep_ms(10);
    }
    cr_assert(min_running >= 2, "only %u worker(s) running during the restart: %s",
              min_running, worst);
    cr_assert(max_starting <= 1, "%u workers starting at once: %s", max_starting,
              worst);
    free(worst);
    char *dump = json_dumps(s_service(sv, "web"), JSON_INDENT(1));
    cr_assert(done, "the rolling restart did not finish in 10 s: %s", dump);
    free(dump);
    pid_t now[8];
    size_t nnow = s_pids(s_service(sv, "web"), now, 8);
    for (size_t i = 0; i < nnow; i++)
        cr_assert_not(s_has_pid(old, nold, now[i]), "worker %d was not replaced",
                      (int)now[i]);
    for (size_t i = 0; i < nold; i++)
        cr_assert(s_wait_gone(old[i], 3000), "old worker %d still exists", (int)old[i]);
    th_sleep_ms(300);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "a rolling restart, GET /health");
    th_load_stop(&slow, 0, &st);
    s_assert_clean(&st, "a rolling restart, GET /sleep?ms=50");
}

/* A replacement that never becomes ready (crashing in backoff) holds the
 * rolling restart: the old workers keep serving. */
Test(supervisor_scale, reload_to_a_broken_command_keeps_the_old_workers_serving,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" WEB("2"));
    s_assert_settled(sv, "web", 2, 5000);
    pid_t old[8];
    size_t nold = s_pids(s_service(sv, "web"), old, 8);
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 5);

    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 3\n\n"
                                        "[service:web]\nlisten = 127.0.0.1:@PORT1@\n"
                                        "workers = 2\ncommand = sh -c \"exit 3\"\n"),
                 0);
    th_resp_t *r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "POST /reload: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    th_sleep_ms(2000); /* a few failed attempts of the replacement */

    json_t *s = s_service(sv, "web");
    char *dump = json_dumps(s, JSON_INDENT(1));
    for (size_t i = 0; i < nold; i++) {
        bool serving = false;
        size_t j;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), j, w)
        {
            serving |=
                s_int(w, "pid") == old[i] && strcmp(s_str(w, "state"), "running") == 0;
        }
        cr_assert(serving,
                  "old worker %d was drained for a replacement that never "
                  "became ready: %s",
                  (int)old[i], dump);
    }
    free(dump);
    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "a rolling restart onto a broken command");

    /* An old worker that dies meanwhile is not started again: neither with
     * the new command (a second crash loop) nor the old one (gone). */
    json_int_t old_gen = -1;
    size_t j;
    json_t *w;
    json_array_foreach(json_object_get(s, "workers"), j, w)
    {
        if (s_int(w, "pid") == old[0])
            old_gen = s_int(w, "generation");
    }
    cr_assert_eq(kill(old[0], SIGKILL), 0);
    th_sleep_ms(1500);
    s = s_service(sv, "web");
    dump = json_dumps(s, JSON_INDENT(1));
    size_t n = 0, old_left = 0;
    json_array_foreach(json_object_get(s, "workers"), j, w)
    {
        n++;
        if (s_int(w, "generation") == old_gen) {
            old_left++;
            cr_assert_eq(s_int(w, "pid"), old[1], "%s", dump);
            cr_assert_str_eq(s_str(w, "state"), "running", "%s", dump);
        }
    }
    cr_assert_eq(old_left, 1, "%s", dump);
    cr_assert_eq(n, 2, "one old worker and one replacement expected: %s", dump);
    free(dump);
}

/* Scaling through a reload applies the count alone: running workers stay. */
/* Workers read the file the supervisor validated last: a change to a
 * section they read replaces them; a broken file on SIGHUP is never read. */
Test(supervisor_scale,
     reload_follows_what_workers_read_and_never_hands_out_a_broken_file, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start(WEB("2"));
    s_assert_settled(sv, "web", 2, 5000);
    json_int_t gen =
        s_int(json_array_get(json_object_get(s_service(sv, "web"), "workers"), 0),
              "generation");

    cr_assert_eq(th_sv_write_config(sv, WEB("2") "[runtime]\nlog_level = info\n"), 0);
    th_resp_t *r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "POST /reload: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    cr_assert(s_wait_generation(sv, "web", 2, (int)gen + 1, 10000),
              "a [runtime] change did not replace the workers");

    cr_assert_eq(th_sv_write_config(sv, WEB("2") "[runtime\nbroken\n"), 0);
    cr_assert_eq(th_signal(sv->proc, SIGHUP), 0);
    th_sleep_ms(300);
    pid_t pids[2];
    cr_assert_eq(s_pids(s_service(sv, "web"), pids, 2), 2);
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    th_sleep_ms(1500);
    s_assert_settled(sv, "web", 2, 5000);
    json_t *s = s_service(sv, "web");
    char *dump = json_dumps(s, JSON_INDENT(1));
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(s, "workers"), i, w)
    {
        cr_assert_neq(s_int(w, "pid"), pids[0], "%s", dump);
        cr_assert_leq(s_int(w, "restarts"), 1, "the replacement crash-looped: %s",
                      dump);
    }
    free(dump);
    char *log = th_log(sv->proc);
    cr_assert(strstr(log, "configuration not reloaded"), "log:\n%s", log);
    free(log);
}

/* A supervisor (shutdown_timeout 5 s) whose one web worker has a 1.5 s
 * request in flight on *c. */
static th_sv_t *s_start_busy(th_conn_t **c)
{
    th_sv_t *sv = s_start("shutdown_timeout = 5\n\n" WEB("1"));
    s_assert_settled(sv, "web", 1, 5000);
    *c = th_connect(sv->ports[0], TH_IO_MS);
    cr_assert_not_null(*c);
    cr_assert_eq(th_send_request(*c, "GET", "/sleep?ms=1500", NULL, NULL, 0), 0);
    th_sleep_ms(200);
    return sv;
}

/* A service removed and added back while its old worker still drains
 * gets the same socket (before: "Address already in use"). */
Test(supervisor_scale, service_added_back_while_its_old_worker_drains, .timeout = 60,
     .fini = s_fini)
{
    th_conn_t *c = NULL;
    th_sv_t *sv = s_start_busy(&c);
    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 5\n"), 0);
    th_resp_t *r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "removing web: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    cr_assert_eq(th_sv_write_config(sv, "shutdown_timeout = 5\n\n" WEB("1")), 0);
    r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "adding web back: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    cr_assert_eq(th_read_response(c, &r, 5000), 0);
    cr_assert_eq(r->status, 200, "the draining worker's request: %d", r->status);
    th_resp_free(&r);
    th_conn_close(&c);
    s_assert_settled(sv, "web", 1, 5000);
    cr_assert_eq(th_request(sv->ports[0], "GET", "/health", NULL, NULL, &r), 0);
    cr_assert_eq(r->status, 200);
    th_resp_free(&r);
}

/* Renaming a service keeps its address, bound all along; admin and
 * data_dir cannot move under a running supervisor. */
Test(supervisor_scale, renamed_service_keeps_its_socket, .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start(WEB("1"));
    s_assert_settled(sv, "web", 1, 5000);
    th_load_t *l = s_load(sv->ports[0], "/health", 1, 5);
    cr_assert_eq(th_sv_write_config(sv, "[service:site]\nlisten = 127.0.0.1:@PORT1@\n"
                                        "workers = 1\ncommand = @TESTSVC@\n"),
                 0);
    th_resp_t *r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "renaming web: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    s_assert_settled(sv, "site", 1, 5000);
    th_sleep_ms(300);
    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    s_assert_clean(&st, "renaming a service");

    cr_assert_eq(th_sv_write_config(sv, "[supervisor]\ndata_dir = /tmp/elsewhere\n\n"
                                        "[service:site]\nlisten = 127.0.0.1:@PORT1@\n"
                                        "workers = 1\ncommand = @TESTSVC@\n"),
                 0);
    r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 422, "moving data_dir: %d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "cannot change while running"), "%s", r->body);
    th_resp_free(&r);
}

Test(supervisor_scale, reload_of_worker_count_keeps_running_workers, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start(WEB("2"));
    s_assert_settled(sv, "web", 2, 5000);
    pid_t old[8];
    size_t nold = s_pids(s_service(sv, "web"), old, 8);
    cr_assert_eq(th_sv_write_config(sv, WEB("3")), 0);
    th_resp_t *r = s_admin_post(sv, "/reload", NULL);
    cr_assert_eq(r->status, 200, "POST /reload: %d %.300s", r->status, r->body);
    th_resp_free(&r);
    s_assert_settled(sv, "web", 3, 5000);
    pid_t now[8];
    size_t nnow = s_pids(s_service(sv, "web"), now, 8);
    for (size_t i = 0; i < nold; i++)
        cr_assert(s_has_pid(now, nnow, old[i]), "worker %d was replaced", (int)old[i]);
}

/* Connections accepted just before a scale-down still get their first
 * request served by the draining worker, when it comes within the drain's
 * quiet period (WORKER_DRAIN_QUIET_MS, 200 ms). One worker scaled to 0, so
 * every connection is on the worker that drains. */
Test(supervisor_scale, draining_worker_serves_connections_accepted_before,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start(WEB("1"));
    s_assert_settled(sv, "web", 1, 5000);
    th_conn_t *c[20];
    for (int i = 0; i < 20; i++) {
        c[i] = th_connect(sv->ports[0], TH_IO_MS);
        cr_assert_not_null(c[i]);
    }
    th_sleep_ms(50); /* the worker has accepted them */
    th_resp_t *r = s_admin_post(sv, "/services/web/scale", "{\"workers\":0}");
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
    s_assert_settled(sv, "web", 0, 5000);
}

/* ---- SIGTERM ---- */

Test(supervisor_lifecycle, admin_api_answers_while_stopping, .timeout = 60,
     .fini = s_fini)
{
    th_conn_t *c = NULL;
    th_sv_t *sv = s_start_busy(&c);
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    th_sleep_ms(200);
    th_resp_t *r = NULL;
    int rc = th_request(sv->admin_port, "GET", "/status", NULL, NULL, &r);
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
 * reconnect, and /health says "degraded" with the reason meanwhile. */
Test(supervisor_programs, services_follow_a_late_and_restarting_nats, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start("[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n" WEB(
        "1") "[program:nats]\ncommand = sh -c 'sleep 1; exec nats-server "
             "-a 127.0.0.1 -p @PORT2@'\n");
    s_assert_settled(sv, "web", 1, 5000);
    char *body = NULL;
    cr_assert_eq(s_health(sv, &body), 503, "%s", body);
    cr_assert(strstr(body, "\"status\":\"degraded\""), "%s", body);
    cr_assert(strstr(body, "\"reason\":\"nats: "), "%s", body);
    free(body);
    free(s_wait_health(sv, 200, 8000)); /* nats-server came up: reconnected */

    json_t *pg = th_sv_find(s_status(sv), "programs", "nats");
    cr_assert_not_null(pg);
    pid_t nats = (pid_t)s_int(pg, "pid");
    cr_assert_gt(nats, 0);
    cr_assert_eq(kill(nats, SIGKILL), 0);
    body = s_wait_health(sv, 503, 3000);
    cr_assert(strstr(body, "nats: disconnected"), "%s", body);
    free(body);
    free(s_wait_health(sv, 200, 8000)); /* restarted by the supervisor */
    pg = th_sv_find(s_status(sv), "programs", "nats");
    cr_assert_geq(s_int(pg, "restarts"), 1);
}

/* What a program starts goes with it: its whole process group is stopped. */
Test(supervisor_programs, stopping_a_program_stops_its_children, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n"
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
    cr_assert(s_wait_gone(child, 3000), "the program's child %d outlived it",
              (int)child);
}

Test(supervisor_lifecycle, sigterm_drains_in_flight_requests_and_leaves_nothing,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 4\n\n" WEB(
        "2") "[program:sleeper]\ncommand = sleep 1000\n");
    s_assert_settled(sv, "web", 2, 5000);
    json_t *st = s_status(sv);
    pid_t pids[8];
    size_t n = s_pids(th_sv_find(st, "services", "web"), pids, 6);
    json_t *pg = th_sv_find(st, "programs", "sleeper");
    cr_assert_not_null(pg);
    cr_assert_str_eq(s_str(pg, "state"), "running");
    pids[n++] = (pid_t)s_int(pg, "pid");
    for (size_t i = 0; i < n; i++)
        cr_assert_gt(pids[i], 0);

    th_conn_t *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = th_connect(sv->ports[0], TH_IO_MS);
        cr_assert_not_null(c[i]);
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

    char path[600];
    snprintf(path, sizeof path, "%s/run/control.ipc", sv->data_dir);
    cr_assert_neq(access(path, F_OK), 0, "%s is still there", path);
    /* The lock file stays (see sv_stop), released. */
    snprintf(path, sizeof path, "%s/run/supervisor.lock", sv->data_dir);
    int lock = open(path, O_RDWR | O_CLOEXEC);
    cr_assert_geq(lock, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(flock(lock, LOCK_EX | LOCK_NB), 0, "%s is still locked", path);
    close(lock);
}

/* shutdown_timeout bounds the whole stop: a worker that never finishes and a
 * program that ignores SIGTERM share it (programs get at least 1 s). */
Test(supervisor_lifecycle, shutdown_timeout_bounds_stubborn_workers_and_programs,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" WEB(
        "1") "[program:stubborn]\ncommand = sh -c 'trap \"\" TERM; "
             "while :; do sleep 0.1; done'\n");
    s_assert_settled(sv, "web", 1, 5000);
    pid_t pids[2];
    cr_assert_eq(s_pids(s_service(sv, "web"), pids, 1), 1);
    pids[1] = (pid_t)s_int(s_program(sv, "stubborn"), "pid");
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

/* ---- services that do not speak the control protocol ---- */

/* A plain HTTP server on fd 3 (LISTEN_FDS), no control channel: it answers
 * with its pid and how many arguments it got. */
static const char s_plain_py[] =
    "import http.server, os, socket, socketserver, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        b = ('{\"pid\":%d,\"args\":%d}' % (os.getpid(), len(sys.argv) - "
    "1)).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "srv = S(('127.0.0.1', 0), H, bind_and_activate=False)\n"
    "srv.socket = socket.socket(fileno=3)\n"
    "srv.serve_forever()\n";

Test(supervisor_generic, service_without_control_channel_is_supervised, .timeout = 60,
     .fini = s_fini)
{
    char *script = th_write_temp("plain", ".py", s_plain_py);
    cr_assert_not_null(script);
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl,
             "shutdown_timeout = 3\n\n[service:plain]\nlisten = 127.0.0.1:@PORT2@\n"
             "workers = 2\ncontrol = no\ncommand = python3 %s\n",
             script);
    th_sv_t *sv = s_start(tmpl);
    s_assert_settled(sv, "plain", 2, 5000);
    pid_t pids[2];
    cr_assert_eq(s_pids(s_service(sv, "plain"), pids, 2), 2);
    /* It serves through the supervisor's socket, given no -c. */
    th_resp_t *r = NULL;
    long long until = th_now_ms() + 5000;
    while (th_request(sv->ports[1], "GET", "/", NULL, NULL, &r) != 0 &&
           th_now_ms() < until) {
        th_resp_free(&r);
        th_sleep_ms(50);
    }
    cr_assert_not_null(r, "the plain service does not answer");
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "\"args\":0"), "%.300s", r->body);
    th_resp_free(&r);
    th_sleep_ms(1200); /* well past a heartbeat: no watchdog for it */
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    th_sleep_ms(500);
    s_assert_settled(sv, "plain", 2, 5000);
    pid_t now[2];
    cr_assert_eq(s_pids(s_service(sv, "plain"), now, 2), 2);
    cr_assert(!s_has_pid(now, 2, pids[0]) && s_has_pid(now, 2, pids[1]),
              "kill -9 of %d: workers now %d, %d", (int)pids[0], (int)now[0],
              (int)now[1]);
    char *log = th_log(sv->proc);
    cr_assert_null(strstr(log, "hung"), "log:\n%s", log);
    free(log);
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    cr_assert_eq(th_wait_exit(sv->proc, 8000), 0);
    unlink(script);
    free(script);
}

/* A worker that never says ready is hung after start_timeout. */
Test(supervisor_generic, worker_silent_at_start_is_aborted_after_start_timeout,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("[service:mute]\nlisten = 127.0.0.1:@PORT2@\nworkers = 1\n"
                          "start_timeout = 1\ncommand = sh -c 'exec sleep 1000'\n");
    long long until = th_now_ms() + 8000;
    bool seen = false;
    while (!seen && th_now_ms() < until) {
        char *log = th_log(sv->proc);
        seen = strstr(log, "did not say ready in 1 s (start_timeout)") != NULL;
        free(log);
        th_sleep_ms(100);
    }
    char *log = th_log(sv->proc);
    cr_assert(seen, "log:\n%s", log);
    free(log);
    until = th_now_ms() + 5000;
    while (s_int(json_array_get(json_object_get(s_service(sv, "mute"), "workers"), 0),
                 "restarts") < 1 &&
           th_now_ms() < until)
        th_sleep_ms(100);
    cr_assert_geq(
        s_int(json_array_get(json_object_get(s_service(sv, "mute"), "workers"), 0),
              "restarts"),
        1);
}

/* ---- programs ---- */

Test(supervisor_programs, killed_program_restarts_and_crashing_one_backs_off,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n"
                          "[program:sleeper]\ncommand = sleep 1000\n\n"
                          "[program:flappy]\ncommand = sh -c \"exit 7\"\n");
    long long t0 = th_now_ms();
    json_t *pg = s_program(sv, "sleeper");
    pid_t victim = (pid_t)s_int(pg, "pid");
    cr_assert_gt(victim, 0, "sleeper does not run: %s", s_str(pg, "state"));
    cr_assert_eq(kill(victim, SIGKILL), 0);
    long long t1 = th_now_ms();
    long long back = -1;
    while (th_now_ms() - t1 < 3000) {
        pg = s_program(sv, "sleeper");
        if (s_int(pg, "pid") > 0 && s_int(pg, "pid") != victim &&
            strcmp(s_str(pg, "state"), "running") == 0) {
            back = th_now_ms() - t1;
            break;
        }
        th_sleep_ms(10);
    }
    char *dump = json_dumps(pg, 0);
    cr_assert_geq(back, 0, "sleeper not restarted 3 s after kill -9: %s", dump);
    cr_assert_leq(back, 1000, "sleeper restarted after %lld ms", back);
    cr_assert_geq(s_int(pg, "restarts"), 1, "%s", dump);
    cr_assert_str_eq(s_str(pg, "last_exit"), "killed by SIGKILL", "%s", dump);
    free(dump);
    cr_assert(s_wait_gone(victim, 1000), "the killed program was not reaped");

    bool seen_backoff = false;
    json_int_t restarts = 0;
    while (th_now_ms() - t0 < 2500) {
        pg = s_program(sv, "flappy");
        restarts = s_int(pg, "restarts");
        if (!seen_backoff && strcmp(s_str(pg, "state"), "backoff") == 0) {
            seen_backoff = true;
            dump = json_dumps(pg, 0);
            cr_assert_str_eq(s_str(pg, "last_exit"), "exit status 7", "%s", dump);
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
    size_t n = s_backoff_delays(log, "program flappy (pid", d, 32);
    /* A program has no readiness: its first exit is replaced at once, then
     * the backoff starts at 100 ms. */
    cr_assert_geq(n, 4, "only %zu restart line(s) for flappy:\n%s", n, log);
    cr_assert_eq(d[0], 0, "first restart of flappy after %ld ms", d[0]);
    s_assert_backoff(d + 1, n - 1, 100, log);
    free(log);
}

/* ---- admin API and command-line errors ---- */

Test(supervisor_api, errors_of_admin_api_vaporactl_and_check, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" WEB("1"));
    s_assert_settled(sv, "web", 1, 5000);

    th_resp_t *r = s_admin_post(sv, "/services/nope/scale", "{\"workers\":1}");
    s_assert_error(r, 404, "unknown_service");
    th_resp_free(&r);
    r = s_admin_post(sv, "/services/nope/restart", NULL);
    s_assert_error(r, 404, "unknown_service");
    th_resp_free(&r);
    /* A name that is not UTF-8 is quoted, not a reason to crash. */
    r = s_admin_post(sv, "/services/%ff/restart", NULL);
    s_assert_error(r, 404, "unknown_service");
    th_resp_free(&r);
    const char *bad[] = {"{\"workers\":-1}", "{\"workers\":\"x\"}", "{\"workers\":257}",
                         "{\"workers\":1.5}", "{\"count\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = s_admin_post(sv, "/services/web/scale", bad[i]);
        cr_assert_eq(r->status, 400, "%s: %d %.300s", bad[i], r->status, r->body);
        s_assert_error(r, 400, "invalid_workers");
        th_resp_free(&r);
    }
    json_t *s = s_service(sv, "web");
    cr_assert_eq(s_int(s, "desired"), 1, "a refused scale changed desired");

    char *out = NULL;
    int rc = s_ctl(sv, NULL, &out, "scale", "nope", "2");
    cr_assert_eq(rc, 1, "vaporactl scale nope 2: exit %d: %s", rc, out);
    cr_assert(strstr(out, "nope") && strstr(out, "404"), "vaporactl said: %s", out);
    free(out);

    rc = s_ctl(sv, NULL, &out, "restart", "a b", NULL);
    cr_assert_eq(rc, 1, "vaporactl restart 'a b': exit %d: %s", rc, out);
    cr_assert(strstr(out, "404"), "a name with a blank is sent encoded: %s", out);
    free(out);

    char unreachable[32];
    int port = th_free_port();
    cr_assert_gt(port, 0);
    snprintf(unreachable, sizeof unreachable, "127.0.0.1:%d", port);
    rc = s_ctl(sv, unreachable, &out, "status", NULL, NULL);
    cr_assert_eq(rc, 1, "vaporactl -a %s status: exit %d: %s", unreachable, rc, out);
    cr_assert(strstr(out, "cannot reach"), "vaporactl said: %s", out);
    free(out);

    rc = s_ctl(sv, NULL, &out, "status", NULL, NULL);
    cr_assert_eq(rc, 0, "vaporactl status: exit %d: %s", rc, out);
    cr_assert(strstr(out, "web") && strstr(out, "running"), "vaporactl status: %s",
              out);
    free(out);
    rc = s_ctl(sv, NULL, &out, "--json", "status", NULL);
    cr_assert_eq(rc, 0, "vaporactl --json status: exit %d: %s", rc, out);
    json_t *j = json_loads(out, 0, NULL);
    bool listed = th_sv_find(j, "services", "web") != NULL;
    json_decref(j);
    cr_assert(listed, "vaporactl --json status: %s", out);
    free(out);

    char *bin = th_bin_path("vapora-supervisor");
    const char *check[] = {bin, "-c", sv->proc->config, "--check", NULL};
    rc = th_run(check, 5000, &out);
    cr_assert_eq(rc, 0, "--check of a valid config: exit %d: %s", rc, out);
    cr_assert(strstr(out, "configuration OK"), "%s", out);
    free(out);
    char *badcfg = th_write_temp("badlisten", ".conf",
                                 "[supervisor]\nadmin = 127.0.0.1:1\n\n"
                                 "[service:web]\nlisten = nowhere\nworkers = 1\n");
    cr_assert_not_null(badcfg);
    check[2] = badcfg;
    rc = th_run(check, 5000, &out);
    unlink(badcfg);
    free(badcfg);
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
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char *cfg = th_write_temp("refused", ".conf", refused[i].text);
        cr_assert_not_null(cfg);
        check[2] = cfg;
        rc = th_run(check, 5000, &out);
        unlink(cfg);
        free(cfg);
        cr_assert_eq(rc, 1, "--check of %s: exit %d: %s", refused[i].text, rc, out);
        cr_assert(strstr(out, refused[i].reason), "--check of %s: %s", refused[i].text,
                  out);
        free(out);
    }

    /* A second supervisor on the same data_dir gives up and leaves the
     * first one's lock and control socket alone: twice, then a worker of
     * the first still gets replaced and connects. */
    const char *again[] = {bin, "-c", sv->proc->config, NULL};
    for (int i = 0; i < 2; i++) {
        rc = th_run(again, 5000, &out);
        cr_assert_eq(rc, 1, "a second supervisor: exit %d: %s", rc, out);
        cr_assert(strstr(out, "another supervisor"), "%s", out);
        free(out);
    }
    free(bin);
    pid_t first;
    cr_assert_eq(s_pids(s_service(sv, "web"), &first, 1), 1);
    cr_assert_eq(kill(first, SIGKILL), 0);
    long long until = th_now_ms() + 5000;
    pid_t now_pid = first;
    while (th_now_ms() < until) {
        json_t *ws = s_service(sv, "web");
        if (s_pids(ws, &now_pid, 1) == 1 && now_pid != first &&
            strcmp(s_str(json_array_get(json_object_get(ws, "workers"), 0), "state"),
                   "running") == 0)
            break;
        th_sleep_ms(20);
    }
    cr_assert_neq(now_pid, first, "the killed worker was not replaced");
    s_assert_settled(sv, "web", 1, 5000);

    rc = s_ctl(sv, NULL, &out, "stop", NULL, NULL);
    cr_assert_eq(rc, 0, "vaporactl stop: exit %d: %s", rc, out);
    cr_assert(strstr(out, "supervisor stopping"), "vaporactl stop: %s", out);
    free(out);
    rc = th_wait_exit(sv->proc, 5000);
    cr_assert_eq(rc, 0, "the supervisor exited with %d after vaporactl stop", rc);
}

/* ---- metrics ---- */

/* The value of the sample of name whose labels contain each of labels, or
 * -1 when there is none. */
static double s_sample(const char *text, const char *name, const char *const *labels)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        const char *eol = strchrnul(l, '\n');
        if (strncmp(l, name, n) != 0 || l[n] != '{')
            continue;
        char *line = strndup(l, (size_t)(eol - l));
        bool all = true;
        for (const char *const *f = labels; *f && all; f++)
            all = strstr(line, *f) != NULL;
        char *sp = strrchr(line, ' ');
        double v = all && sp ? strtod(sp + 1, NULL) : -1;
        free(line);
        if (all)
            return v;
    }
    return -1;
}

Test(supervisor_api, metrics_has_every_worker_family_with_labels, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n" WEB(
        "2") "[program:sleeper]\ncommand = sleep 1000\n");
    s_assert_settled(sv, "web", 2, 5000);
    for (int i = 0; i < 20; i++) {
        th_resp_t *r = NULL;
        cr_assert_eq(th_request(sv->ports[0], "GET", "/health", NULL, NULL, &r), 0);
        cr_assert_eq(r->status, 200);
        th_resp_free(&r);
    }
    pid_t pids[2];
    json_t *s = s_service(sv, "web");
    cr_assert_eq(s_pids(s, pids, 2), 2);

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
    /* Request counts arrive with the heartbeats: poll until all 20 are in. */
    long long deadline = th_now_ms() + 4000;
    th_resp_t *m = NULL;
    double total = 0;
    for (;;) {
        th_resp_free(&m);
        cr_assert_eq(th_request(sv->admin_port, "GET", "/metrics", NULL, NULL, &m), 0);
        cr_assert_eq(m->status, 200, "GET /metrics: %d", m->status);
        total = 0;
        for (int w = 1; w <= 2; w++) {
            char id[32];
            snprintf(id, sizeof id, "worker=\"%d\"", w);
            const char *const labels[] = {"service=\"web\"", id, NULL};
            double v = s_sample(m->body, "vapora_worker_requests_total", labels);
            total += v > 0 ? v : 0;
        }
        if (total >= 20 || th_now_ms() >= deadline)
            break;
        th_sleep_ms(100);
    }
    cr_assert_eq(total, 20, "vapora_worker_requests_total sums to %g, sent 20:\n%s",
                 total, m->body);
    const char *ct = th_resp_header(m, "Content-Type");
    cr_assert(ct && strncmp(ct, "text/plain", 10) == 0, "Content-Type %s", ct);
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++) {
        char type[128];
        snprintf(type, sizeof type, "# TYPE %s %s\n", fams[f].name, fams[f].type);
        cr_assert(strstr(m->body, type), "no '%.*s' in:\n%s", (int)strlen(type) - 1,
                  type, m->body);
        for (int w = 0; w < 2; w++) {
            char id[32];
            snprintf(id, sizeof id, "worker=\"%lld\"",
                     (long long)s_int(json_array_get(json_object_get(s, "workers"), w),
                                      "id"));
            const char *const labels[] = {"service=\"web\"", id, NULL};
            double v = s_sample(m->body, fams[f].name, labels);
            cr_assert_geq(v, 0, "no %s{service=\"web\",%s} in:\n%s", fams[f].name, id,
                          m->body);
            if (strcmp(fams[f].name, "vapora_worker_up") == 0)
                cr_assert_eq(v, 1, "%s{%s} = %g", fams[f].name, id, v);
            if (strcmp(fams[f].name, "vapora_worker_rss_bytes") == 0)
                cr_assert_gt(v, 0, "%s{%s} = %g", fams[f].name, id, v);
        }
    }
    const char *const prog[] = {"program=\"sleeper\"", NULL};
    cr_assert_eq(s_sample(m->body, "vapora_program_up", prog), 1, "\n%s", m->body);
    /* Only service and worker: a series that lives across restarts, so the
     * restart counter counts. */
    cr_assert_null(strstr(m->body, "pid=\""), "a pid label:\n%s", m->body);
    th_resp_free(&m);

    char id[32];
    snprintf(id, sizeof id, "worker=\"%lld\"",
             (long long)s_int(json_array_get(json_object_get(s, "workers"), 0), "id"));
    const char *const labels[] = {"service=\"web\"", id, NULL};
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    deadline = th_now_ms() + 5000;
    double restarts = 0;
    while (restarts < 1 && th_now_ms() < deadline) {
        th_sleep_ms(50);
        cr_assert_eq(th_request(sv->admin_port, "GET", "/metrics", NULL, NULL, &m), 0);
        restarts = s_sample(m->body, "vapora_worker_restarts_total", labels);
        th_resp_free(&m);
    }
    cr_assert_eq(restarts, 1, "vapora_worker_restarts_total{%s} = %g after a kill", id,
                 restarts);
}

/* ---- log level at run time ---- */

/* Counts the non-overlapping occurrences of needle in the supervisor's log
 * (its workers log there too). */
static int s_log_count(th_sv_t *sv, const char *needle)
{
    char *log = th_log(sv->proc);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(log);
    return n;
}

Test(supervisor_control, vaporactl_log_level_reaches_every_worker_and_new_ones,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = s_start("shutdown_timeout = 3\n\n"
                          "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = 2\n"
                          "command = @TESTSVC@\n");
    s_assert_settled(sv, "web", 2, 5000);
    char *out = NULL;
    int rc = s_ctl(sv, NULL, &out, "log-level", "web", "debug");
    cr_assert_eq(rc, 0, "vaporactl log-level: exit %d: %s", rc, out);
    cr_assert(strstr(out, "log level of web set"), "output: %s", out);
    free(out);
    long long end = th_now_ms() + 3000;
    while (th_now_ms() < end && s_log_count(sv, "log level set to debug") < 2)
        th_sleep_ms(20);
    cr_assert_eq(s_log_count(sv, "log level set to debug"), 2,
                 "both workers did not report the new level");
    /* A worker started later is told too. */
    s_ctl_scale(sv, 3);
    end = th_now_ms() + 3000;
    while (th_now_ms() < end && s_log_count(sv, "log level set to debug") < 3)
        th_sleep_ms(20);
    cr_assert_eq(s_log_count(sv, "log level set to debug"), 3);
    /* Bad input: a clear error and a non-zero exit. */
    rc = s_ctl(sv, NULL, &out, "log-level", "web", "loud");
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "debug, info, warn, error"), "output: %s", out);
    free(out);
    th_resp_t *r = s_admin_post(sv, "/services/nope/log-level", "{\"level\":\"info\"}");
    s_assert_error(r, 404, "unknown_service");
    th_resp_free(&r);
}
