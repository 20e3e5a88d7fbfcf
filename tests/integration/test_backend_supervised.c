/* test_backend_supervised.c - the backend under the real supervisor with
 * two workers: data and tokens survive a full restart, four clients create
 * 400 tasks with none lost or doubled, a task answered 201 is there after
 * its worker is killed right after the answer, and a worker's read cache
 * never outlives a write made through the other one. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fixture.h"
#include "supervisor_fixture.h"

/* =================================================================== */
/* 12. Persistence across a restart and 13. concurrency                 */
/* =================================================================== */

Test(backend_supervised, data_and_tokens_survive_a_full_restart, .timeout = 60,
     .fini = be_fini)
{
    th_sv_t *sv = be_sv_start(NULL, BE_SV("2"), 2);
    char *dir = th_keep(strdup(sv->data_dir));
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "durable");
    json_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = be_task(tok, p, th_fmt("durable-%d", i),
                       i == 2 ? "\"priority\":\"high\"" : NULL);
    t[1] = be_walk(tok, t[1], "in-progress", NULL);
    t[3] = be_patch(tok, t[3], "{\"assigned_role\":\"developer\",\"progress\":30}");
    be_user(tok, "mia", "member-pass-1", "member");
    json_t *before =
        be_api(200, "GET", th_fmt(BE_API "/tasks?project_id=%s", be_id(p)), tok, NULL);
    char *secret = th_keep(th_read_file(th_fmt("%s/jwt-secret", dir), NULL));
    cr_assert_not_null(secret, "no %s/jwt-secret", dir);

    be_disconnect();
    int rc = th_stop(sv->proc, SIGTERM, 20000);
    cr_assert_eq(rc, 0, "the supervisor exited with %d after SIGTERM", rc);
    th_sv_free(&sv);

    sv = be_sv_start(dir, BE_SV("2"), 2);
    /* The old token validates on every worker (new connections spread). */
    for (int i = 0; i < 12; i++) {
        be_disconnect();
        json_t *me = be_api(200, "GET", BE_API "/auth/me", tok, NULL);
        json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
        cr_assert_str_eq(th_str(mu, "username") ? th_str(mu, "username") : "", "admin");
    }
    be_login("admin", BE_PW);
    be_login("mia", "member-pass-1");
    json_t *pg = be_api(200, "GET", th_fmt(BE_API "/projects/%s", be_id(p)), tok, NULL);
    cr_assert(json_equal(pg, p), "project after the restart: %s, before %s",
              th_dump(pg), th_dump(p));
    json_t *after =
        be_api(200, "GET", th_fmt(BE_API "/tasks?project_id=%s", be_id(p)), tok, NULL);
    cr_assert(
        json_equal(json_object_get(after, "items"), json_object_get(before, "items")),
        "tasks after the restart: %s\nbefore: %s", th_dump(after), th_dump(before));
    for (int i = 0; i < 5; i++) {
        json_t *g = be_api(200, "GET", be_task_path(t[i]), tok, NULL);
        cr_assert(json_equal(g, t[i]), "task %d after the restart: %s, before %s", i,
                  th_dump(g), th_dump(t[i]));
    }
    char *secret2 = th_keep(th_read_file(th_fmt("%s/jwt-secret", dir), NULL));
    cr_assert_str_eq(secret2 ? secret2 : "", secret, "jwt-secret changed on a restart");
    /* And it still writes. */
    be_walk(tok, t[1], "review", NULL);
}

/* A client thread that creates n tasks, one connection each (until stop,
 * when it is set). */
typedef struct s_maker {
    int port, n;
    const char *path, *headers;
    atomic_bool *stop;
    int created;
    char **ids;
    char first_error[300];
    pthread_t th;
} s_maker_t;

static void *s_maker_main(void *arg)
{
    s_maker_t *m = arg;
    m->ids = calloc((size_t)m->n, sizeof *m->ids);
    for (int i = 0; i < m->n && !(m->stop && atomic_load(m->stop)); i++) {
        char body[96], *resp = NULL;
        snprintf(body, sizeof body, "{\"title\":\"c-%d\",\"priority\":\"low\"}", i);
        int st =
            th_call(m->port, "POST", m->path, m->headers, body, &resp, 3 * TH_IO_MS);
        json_t *j = st == 201 && resp ? json_loads(resp, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id) {
            m->ids[m->created++] = strdup(id);
        } else if (!m->first_error[0]) {
            snprintf(m->first_error, sizeof m->first_error, "request %d: %d %.200s", i,
                     st, resp ? resp : "");
        }
        json_decref(j);
        free(resp);
    }
    return NULL;
}

/* Starts t client threads creating tasks in project p (at most n each,
 * until *stop). */
static void s_makers_start(s_maker_t *mk, int t, int n, const char *tok,
                           const json_t *p, atomic_bool *stop)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < t; i++) {
        mk[i] = (s_maker_t){.port = be_port(),
                            .n = n,
                            .path = th_fmt(BE_API "/projects/%s/tasks", be_id(p)),
                            .headers = be_headers(tok, NULL, true),
                            .stop = stop};
        cr_assert_eq(pthread_create(&mk[i].th, NULL, s_maker_main, &mk[i]), 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

Test(backend_supervised, four_clients_create_400_tasks_on_two_workers, .timeout = 60,
     .fini = be_fini)
{
    be_sv_start(NULL, BE_SV("2"), 2);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "busy");
    enum { T = 4, N = 100 };
    static s_maker_t mk[T];
    long long t0 = th_now_ms();
    s_makers_start(mk, T, N, tok, p, NULL);
    for (int i = 0; i < T; i++)
        pthread_join(mk[i].th, NULL);
    cr_log_info("%d tasks by %d clients in %lld ms", T * N, T, th_now_ms() - t0);
    const char *made[T * N];
    int nmade = 0;
    for (int i = 0; i < T; i++) {
        for (int k = 0; k < mk[i].created; k++)
            made[nmade++] = th_keep(mk[i].ids[k]);
        free(mk[i].ids);
    }
    for (int i = 0; i < T; i++)
        cr_assert_eq(mk[i].created, N,
                     "client %d created %d of %d; the first failure: %s", i,
                     mk[i].created, N, mk[i].first_error);

    json_t *l =
        be_api(200, "GET", th_fmt(BE_API "/tasks?limit=500&project_id=%s", be_id(p)),
               tok, NULL);
    json_t *items = json_object_get(l, "items");
    cr_assert_eq(json_array_size(items), (size_t)(T * N), "listed %zu tasks",
                 json_array_size(items));
    cr_assert(json_is_null(json_object_get(l, "next_cursor")), "next_cursor %s",
              th_dump(json_object_get(l, "next_cursor")));
    const char **seen = calloc(T * N, sizeof *seen);
    th_keep((char *)seen);
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o) seen[i] = be_id(o);
    be_assert_each_once(seen, json_array_size(items), made, nmade);
}

/* Waits until the backend runs two workers, neither of them one of gone;
 * fills pids with theirs and returns how many. */
static size_t s_new_workers(th_sv_t *sv, const pid_t gone[2], pid_t pids[2])
{
    long long end = th_now_ms() + 30000;
    for (;;) {
        json_t *st = th_sv_status(sv);
        json_t *svc = th_sv_find(st, "services", "backend");
        size_t n = svc ? sup_pids(svc, pids, 2) : 0;
        bool fresh = n == 2 && th_sv_count(svc, "running") == 2;
        for (size_t i = 0; i < n; i++)
            fresh = fresh && !sup_has_pid(gone, 2, pids[i]);
        json_decref(st);
        if (fresh)
            return n;
        cr_assert_lt(th_now_ms(), end, "the killed workers were not replaced");
        th_sleep_ms(50);
    }
}

/* An answer comes only after its write committed: while clients create
 * tasks on both workers (their writes in batches), every worker is killed
 * (SIGKILL) the moment an answer arrives; once the supervisor has started
 * them again, every task that was answered 201 is there. */
Test(backend_supervised, a_task_answered_201_is_there_after_a_kill_right_after,
     .timeout = 120, .fini = be_fini)
{
    th_sv_t *sv = be_sv_start(NULL, BE_SV("2"), 2);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "killed");
    enum { T = 4, N = 100000, ROUNDS = 2 };
    static s_maker_t mk[T];
    static atomic_bool stop;
    s_makers_start(mk, T, N, tok, p, &stop);
    const char *mine[ROUNDS];
    pid_t pids[2] = {0, 0};
    for (int r = 0; r < ROUNDS; r++) {
        pid_t gone[2] = {pids[0], pids[1]};
        size_t np = s_new_workers(sv, gone, pids);
        th_sleep_ms(300); /* the clients' writes are in flight */
        char *resp = NULL;
        int code = th_call(be_port(), "POST", mk[0].path, mk[0].headers,
                           "{\"title\":\"the last answer\"}", &resp, TH_IO_MS);
        for (size_t i = 0; i < np; i++)
            kill(pids[i], SIGKILL);
        cr_assert_eq(code, 201, "POST: %d %s", code, resp ? resp : "");
        json_t *j = th_keep_json(json_loads(resp, 0, NULL));
        free(resp);
        mine[r] = be_id(j);
    }
    atomic_store(&stop, true);
    int made = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(mk[i].th, NULL);
        made += mk[i].created;
    }
    pid_t now[2];
    s_new_workers(sv, pids, now);
    be_disconnect();
    for (int r = 0; r < ROUNDS; r++)
        be_api(200, "GET", th_fmt(BE_API "/tasks/%s", mine[r]), tok, NULL);
    for (int i = 0; i < T; i++) {
        for (int k = 0; k < mk[i].created; k++) {
            be_api(200, "GET", th_fmt(BE_API "/tasks/%s", mk[i].ids[k]), tok, NULL);
            free(mk[i].ids[k]);
        }
        free(mk[i].ids);
    }
    cr_log_info("%d tasks answered 201 by workers killed %d times: all there", made,
                ROUNDS);
    cr_assert_gt(made, 0, "the clients created nothing");
}

/* GETs path on a new connection (so either worker answers); returns the
 * task (kept). */
static json_t *s_get_fresh(const char *tok, const char *path)
{
    char *body = NULL;
    int st =
        th_call(be_port(), "GET", path, th_fmt("Authorization: Bearer %s\r\n", tok),
                NULL, &body, TH_IO_MS);
    cr_assert_eq(st, 200, "GET %s: %d %s", path, st, body ? body : "");
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    cr_assert_not_null(j);
    th_keep_json(j);
    return j;
}

/* Both workers cache what they read; a write through either one is seen
 * by the very next read on both, and the hits show in /metrics. */
Test(backend_supervised, cached_reads_never_outlive_a_write_on_either_worker,
     .timeout = 60, .fini = be_fini)
{
    be_sv_start(NULL, BE_SV("2"), 2);
    const char *tok = be_login("admin", BE_PW);
    json_t *t = be_task(tok, be_project(tok, "cached"), "round 0", NULL);
    const char *path = be_task_path(t);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 20; i++) {
            json_t *g = s_get_fresh(tok, path);
            cr_assert_eq(th_int(g, "version"), round + 1, "round %d read %d: %s", round,
                         i, th_dump(g));
            cr_assert_str_eq(th_str(g, "title"), th_fmt("round %d", round));
        }
        t = be_patch(tok, t, th_fmt("{\"title\":\"round %d\"}", round + 1));
    }
    char *m = NULL;
    double hits = 0;
    for (int i = 0; i < 10 && hits == 0; i++) {
        cr_assert_eq(th_call(be_port(), "GET", "/metrics", NULL, NULL, &m, TH_IO_MS),
                     200);
        const char *at = strstr(m, "vapora_backend_read_cache_total{result=\"hit\"} ");
        cr_assert_not_null(at, "no cache metrics: %.300s", m);
        hits = atof(at + strlen("vapora_backend_read_cache_total{result=\"hit\"} "));
        free(m);
    }
    cr_assert_gt(hits, 0, "no worker served a read from its cache");
}
