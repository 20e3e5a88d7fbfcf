/* test_supervisor_workers.c - the supervisor's workers: workers = auto is
 * one per CPU and every one of them serves; a worker killed with -9 is
 * replaced with no client error; a service that cannot start backs off
 * while another serves; a hung worker is aborted by the watchdog and
 * replaced; cpu_affinity puts each worker's loop thread on a CPU of its
 * own, and a replacement on the same. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor_fixture.h"

/* Waits until pid's state (th_pid_state; '-' for a pid that is gone) is
 * one of states. */
static bool s_wait_state(pid_t pid, const char *states, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        char st = th_pid_state(pid);
        if (strchr(states, st ? st : '-'))
            return true;
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(2);
    }
}

/* Waits until pid has died: a zombie (its parent not having reaped it yet)
 * or gone. */
static bool s_wait_dead(pid_t pid, int timeout_ms)
{
    return s_wait_state(pid, "ZX-", timeout_ms);
}

/* The pid of the worker that answers /health on c. */
static long long s_pid_on(th_conn_t *c)
{
    th_resp_t *r = th_must_exchange(c, "GET", "/health", NULL, NULL);
    long long pid = th_int(th_must_json(r), "pid");
    th_resp_free(&r);
    return pid;
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

/* ---- workers = auto, and spreading connections ---- */

/* Checks that every worker of service counted requests, and that together
 * they counted want of them (heartbeats arrive every second). */
static void s_assert_spread(th_sv_t *sv, const char *service, long want)
{
    long long deadline = th_now_ms() + 4000;
    json_t *s = NULL;
    for (;;) {
        s = sup_service(sv, service);
        long sum = 0;
        bool every = true;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), i, w)
        {
            sum += (long)th_int(w, "requests");
            every &= th_int(w, "requests") > 0;
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
     .timeout = 60, .fini = sup_fini)
{
    unsigned cpus = s_cpus();
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n"
                                   "[service:backend]\nlisten = 127.0.0.1:@PORT1@\n"
                                   "workers = auto\n\n"
                                   "[service:agents]\nlisten = 127.0.0.1:@PORT2@\n"
                                   "workers = auto\n");
    th_assert_settled(sv, "backend", cpus, 5000);
    th_assert_settled(sv, "agents", cpus, 5000);
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
        sup_assert_clean(&st, names[i]);
        cr_assert_eq(st.ok, 1000, "%s: %ld of 1000 requests answered", names[i], st.ok);
    }
    for (int i = 0; i < 2; i++)
        s_assert_spread(sv, names[i], 1000);
}

/* A burst of connections, all kept open, is shared evenly by the workers.
 * The first worker awake used to drain the backlog alone (splits of 92/8
 * with 100 connections), and its clients saw a worker doing the work of
 * two while the other idled. */
Test(supervisor_workers, a_burst_of_connections_is_shared_evenly, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n"
                                   "[service:backend]\nlisten = 127.0.0.1:@PORT1@\n"
                                   "workers = 2\n");
    th_assert_settled(sv, "backend", 2, 5000);
    enum { N = 100 };
    th_conn_t *conns[N];
    for (int i = 0; i < N; i++) /* each lands in the backlog at once */
        conns[i] = th_connect(sv->ports[0], 5000);
    long long pids[2] = {0, 0};
    int count[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        long long pid = s_pid_on(conns[i]);
        int k = pids[0] == 0 || pids[0] == pid ? 0 : 1;
        cr_assert(k == 0 || pids[1] == 0 || pids[1] == pid, "a third worker: %lld", pid);
        pids[k] = pid;
        count[k]++;
    }
    for (int i = 0; i < N; i++)
        th_conn_close(&conns[i]);
    /* not exactly half: a worker the scheduler leaves waiting (the suite
     * runs two tests at once on two cores) gets its turn a little late */
    cr_assert(count[0] >= 25 && count[1] >= 25,
              "%d connections went to one worker and %d to the other", count[0],
              count[1]);
}

/* Connections that one worker took while its sibling could not (stopped
 * here; a busy loop when a burst comes) do not stay there: the loaded
 * worker closes some after their replies (Connection: close), and their
 * clients, connecting again, land on the sibling. Without it the split of
 * the first moment lasted as long as the connections (100/0 was seen under
 * wrk). */
Test(supervisor_workers, connections_taken_while_a_sibling_was_away_are_given_back,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    json_t *svc = sup_service(sv, "web");
    pid_t a = (pid_t)th_int(sup_worker(svc, 1), "pid"),
          b = (pid_t)th_int(sup_worker(svc, 2), "pid");
    cr_assert(a > 0 && b > 0);
    enum { N = 40 };
    th_conn_t *conns[N];
    cr_assert_eq(kill(b, SIGSTOP), 0);
    /* stopped, not on its way there: until then a connection may wake it
     * alone, and wait */
    cr_assert(s_wait_state(b, "T", 5000), "worker %d did not stop", (int)b);
    for (int i = 0; i < N; i++) {
        conns[i] = th_must_connect(sv->ports[0]);
        cr_assert_eq(s_pid_on(conns[i]), a, "connection %d: not the running worker", i);
    }
    cr_assert_eq(kill(b, SIGCONT), 0);
    int on_b = 0, closed = 0;
    for (long long t0 = th_now_ms(); on_b < N / 3 && th_now_ms() - t0 < 10000;) {
        for (int i = 0; i < N; i++) {
            th_resp_t *r = th_must_exchange(conns[i], "GET", "/items/7", NULL, NULL);
            const char *conn = th_resp_header(r, "Connection");
            bool close = conn && strcasecmp(conn, "close") == 0;
            th_resp_free(&r);
            if (!close)
                continue;
            closed++;
            th_conn_close(&conns[i]);
            conns[i] = th_must_connect(sv->ports[0]);
            on_b += s_pid_on(conns[i]) == b;
        }
        th_sleep_ms(5);
    }
    int count[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        long long pid = s_pid_on(conns[i]);
        cr_assert(pid == a || pid == b, "an answer from pid %lld", pid);
        count[pid == b]++;
        th_conn_close(&conns[i]);
    }
    cr_assert(count[1] >= N / 3,
              "after %d connections closed and made again, %d are on the worker that "
              "was stopped and %d on the other",
              closed, count[1], count[0]);
    cr_assert_leq(closed, 2 * N, "%d connections closed to move %d", closed, count[1]);
}

/* ---- kill -9 ---- */

Test(supervisor_workers, killed_worker_is_replaced_and_clients_see_no_error,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 2);
    th_sleep_ms(300);

    pid_t victim = (pid_t)th_int(sup_worker(sup_service(sv, "web"), 1), "pid");
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
        json_t *s = sup_service(sv, "web");
        w = sup_worker(s, 1);
        if (w && th_int(w, "pid") > 0 && th_int(w, "pid") != victim &&
            th_sv_count(s, "running") == 2) {
            replaced = th_now_ms() - t0;
            break;
        }
        th_sleep_ms(10);
    }
    char *dump = json_dumps(sup_last_status(), JSON_INDENT(1));
    cr_assert_geq(replaced, 0, "worker 1 not replaced 3 s after kill -9: %s", dump);
    cr_assert_leq(replaced, 1000, "worker 1 replaced after %lld ms", replaced);
    cr_assert_eq(th_int(w, "restarts"), 1, "restarts of worker 1: %s", dump);
    cr_assert_str_eq(sup_str(w, "last_exit"), "killed by SIGKILL", "%s", dump);
    free(dump);

    th_load_stats_t mid, st;
    th_load_get(l, &mid);
    while (th_now_ms() - t0 < 2000)
        th_sleep_ms(20);
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "kill -9 of a worker");
    cr_assert_gt(st.ok - mid.ok, 10, "only %ld request(s) after the replacement",
                 st.ok - mid.ok);
    cr_assert_not(th_pid_remains(victim), "the killed worker %d was not reaped",
                  (int)victim);
}

/* ---- cpu_affinity ---- */

/* Cpus_allowed_list of thread tid of pid ("self", 0: this process). */
static void s_allowed(pid_t pid, pid_t tid, char *out, size_t len)
{
    char path[96];
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    else
        snprintf(path, sizeof path, "/proc/self/status");
    char *text = th_read_file(path, NULL);
    cr_assert_not_null(text, "%s: cannot read", path);
    const char *l = strstr(text, "Cpus_allowed_list:");
    cr_assert_not_null(l, "%s: no Cpus_allowed_list", path);
    l += strlen("Cpus_allowed_list:");
    l += strspn(l, " \t");
    snprintf(out, len, "%.*s", (int)strcspn(l, "\n"), l);
    free(text);
}

/* A thread of pid other than its main one (0: none). */
static pid_t s_other_thread(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: cannot list", path);
    pid_t tid = 0;
    for (struct dirent *e; !tid && (e = readdir(d));)
        if (atoi(e->d_name) > 0 && atoi(e->d_name) != pid)
            tid = (pid_t)atoi(e->d_name);
    closedir(d);
    return tid;
}

/* Asserts that worker w's loop thread (its main one) runs on the CPU the
 * status gives it, and another of its threads (a pool thread) on every
 * CPU (ours). Returns that CPU. */
static int s_assert_pinned(json_t *w)
{
    pid_t pid = (pid_t)th_int(w, "pid");
    json_t *cpu = json_object_get(w, "cpu");
    cr_assert(json_is_integer(cpu), "worker %d has no CPU in the status", (int)pid);
    char loop[64], want[64], ours[64], other[64];
    s_allowed(pid, pid, loop, sizeof loop);
    snprintf(want, sizeof want, "%lld", (long long)json_integer_value(cpu));
    cr_assert_str_eq(loop, want, "worker %d's loop runs on %s, not on CPU %s", (int)pid,
                     loop, want);
    s_allowed(0, 0, ours, sizeof ours);
    pid_t tid = s_other_thread(pid);
    cr_assert_gt(tid, 0, "worker %d has a single thread", (int)pid);
    s_allowed(pid, tid, other, sizeof other);
    cr_assert_str_eq(other, ours, "worker %d's pool thread runs on %s, not on %s",
                     (int)pid, other, ours);
    return (int)json_integer_value(cpu);
}

/* cpu_affinity = yes: each worker's loop thread on a CPU of its own while
 * there are enough (the other threads keep every CPU), and a worker
 * killed with -9 back on its CPU; no: every CPU, and no CPU in the status. */
Test(supervisor_workers, cpu_affinity_gives_each_loop_a_cpu_and_keeps_it,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv =
        th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB("2") "cpu_affinity = yes\n\n"
                         "[service:plain]\nlisten = 127.0.0.1:@PORT2@\nworkers = 1\n"
                         "command = @TESTSVC@\ncpu_affinity = no\n");
    th_assert_settled(sv, "web", 2, 5000);
    th_assert_settled(sv, "plain", 1, 5000);
    json_t *web = sup_service(sv, "web");
    int a = s_assert_pinned(sup_worker(web, 1));
    int b = s_assert_pinned(sup_worker(web, 2));
    if (s_cpus() >= 2)
        cr_assert_neq(a, b, "both loops on CPU %d", a);

    pid_t victim = (pid_t)th_int(sup_worker(web, 2), "pid");
    cr_assert_eq(kill(victim, SIGKILL), 0);
    cr_assert(s_wait_dead(victim, 2000), "worker %d still runs after SIGKILL",
              (int)victim);
    json_t *w = NULL;
    for (int i = 0; i < 300; i++, th_sleep_ms(10)) {
        web = sup_service(sv, "web");
        w = sup_worker(web, 2);
        if (w && th_int(w, "pid") > 0 && th_int(w, "pid") != victim &&
            th_sv_count(web, "running") == 2)
            break;
    }
    cr_assert_neq(th_int(w, "pid"), victim, "worker 2 was not replaced");
    cr_assert_eq(s_assert_pinned(w), b, "the replacement left CPU %d", b);

    json_t *plain = sup_worker(sup_service(sv, "plain"), 1);
    cr_assert(json_is_null(json_object_get(plain, "cpu")), "cpu_affinity = no has a CPU");
    pid_t pp = (pid_t)th_int(plain, "pid");
    char loop[64], ours[64];
    s_allowed(pp, pp, loop, sizeof loop);
    s_allowed(0, 0, ours, sizeof ours);
    cr_assert_str_eq(loop, ours, "cpu_affinity = no: the loop runs on %s", loop);
}

/* ---- a service that cannot start ---- */

Test(supervisor_workers, crashing_service_backs_off_while_another_serves, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 3\n\n" SUP_WEB(
        "1") "[service:flappy]\nlisten = 127.0.0.1:@PORT2@\n"
             "workers = 1\ncommand = sh -c \"exit 3\"\n");
    long long t0 = th_now_ms();
    th_assert_settled(sv, "web", 1, 5000);
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 5);

    bool seen_backoff = false;
    json_int_t restarts = 0;
    char *backoff_dump = NULL;
    while (th_now_ms() - t0 < 2500) {
        json_t *w = sup_worker(sup_service(sv, "flappy"), 1);
        cr_assert_not_null(w, "flappy has no worker slot 1");
        restarts = th_int(w, "restarts");
        if (!seen_backoff && strcmp(sup_str(w, "state"), "backoff") == 0) {
            seen_backoff = true;
            backoff_dump = json_dumps(w, 0);
            cr_assert_str_eq(sup_str(w, "last_exit"), "exit status 3", "%s",
                             backoff_dump);
            const char *next = sup_str(w, "next_attempt_at");
            cr_assert(strlen(next) == 20 && next[10] == 'T' && next[19] == 'Z',
                      "next_attempt_at: %s", backoff_dump);
            cr_assert_eq(th_int(w, "pid"), 0, "a worker in backoff has a pid: %s",
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
    size_t n = sup_backoff_delays(log, "worker flappy/1 (pid", d, 32);
    sup_assert_backoff(d, n, 100, log);
    free(log);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "web next to a crashing service");
    th_assert_settled(sv, "web", 1, 1000);
}

/* ---- the watchdog ---- */

Test(supervisor_workers, hung_worker_is_aborted_and_replaced, .timeout = 60,
     .fini = sup_fini)
{
    th_sv_t *sv =
        th_must_sv_start("shutdown_timeout = 3\nwatchdog_timeout = 2\n\n" SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 5000);
    th_load_t *l = sup_load(sv->ports[0], "/health", 1, 5);
    pid_t victim = (pid_t)th_int(sup_worker(sup_service(sv, "web"), 1), "pid");
    cr_assert_gt(victim, 0);

    th_load_hold(l);
    long long t0 = th_now_ms();
    cr_assert_eq(kill(victim, SIGSTOP), 0); /* sup_fini continues and kills it */
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

    th_assert_settled(sv, "web", 2, 2000);
    json_t *s = sup_service(sv, "web");
    pid_t pids[8];
    size_t n = sup_pids(s, pids, 8);
    cr_assert_not(sup_has_pid(pids, n, victim));
    json_t *w = sup_worker(s, 1);
    char *dump = json_dumps(s, JSON_INDENT(1));
    cr_assert_not_null(w, "slot 1 is gone: %s", dump);
    cr_assert_str_eq(sup_str(w, "last_exit"), "killed by SIGABRT", "%s", dump);
    cr_assert_eq(th_int(w, "restarts"), 1, "%s", dump);
    free(dump);

    th_load_stats_t st;
    th_load_stop(&l, 0, &st);
    sup_assert_clean(&st, "a hung worker next to a healthy one");
}
