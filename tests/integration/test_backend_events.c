/* test_backend_events.c - the backend's events, consumed from real NATS:
 * under the supervisor with two backend workers and nats-server as a
 * program, every change reaches JetStream stream VAPORA, and with
 * nats-server killed mid-way no write fails and the queued events arrive,
 * in order, once it is back; concurrent writers on both workers get every
 * event published once, in the order of their changes, and a small outbox
 * drops none while NATS keeps up; the stream keeps events for a bounded
 * time and size. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void s_fini(void)
{
    th_cleanup();
    nats_CloseAndWait(2000);
}

#define PW "events-test-password"

/* The suite's supervisor config, with more [backend] lines. */
#define SETUP_KEYS(keys)                                                               \
    "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"               \
    "[backend]\nadmin_password = " PW "\n" keys "\n"                                   \
    "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = 2\n\n"                   \
    "[program:nats]\ncommand = nats-server -js -a 127.0.0.1 -p @PORT2@ -sd "           \
    "@DATA@/nats\n"
#define SETUP SETUP_KEYS("")

static natsConnection *s_nats(th_sv_t *sv)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", sv->ports[1]);
    natsConnection *nc = NULL;
    for (int i = 0; i < 100 && natsConnection_ConnectTo(&nc, url) != NATS_OK; i++)
        th_sleep_ms(100);
    cr_assert_not_null(nc, "cannot connect to the test's nats-server");
    return nc;
}

/* A supervisor on SETUP, the admin's token and a new project. */
typedef struct s_env {
    th_sv_t *sv;
    const char *tok;
    json_t *project;
    const char *tasks; /* the project's tasks path */
} s_env_t;

static s_env_t s_setup_conf(const char *conf, const char *project_name)
{
    s_env_t e = {.sv = th_must_sv_start(conf)};
    e.tok = th_be_login(e.sv->ports[0], "admin", PW, 10000);
    e.project = th_be_call(e.sv->ports[0], "POST", "/api/v1/projects", e.tok,
                           th_fmt("{\"name\":\"%s\"}", project_name), 201);
    e.tasks = th_fmt("/api/v1/projects/%s/tasks", th_str(e.project, "id"));
    return e;
}

static s_env_t s_setup(const char *project_name)
{
    return s_setup_conf(SETUP, project_name);
}

/* Creates a task in the project (body: its JSON); returns it. */
static json_t *s_task(const s_env_t *e, const char *body)
{
    return th_be_call(e->sv->ports[0], "POST", e->tasks, e->tok, body, 201);
}

/* Reads every message of subject from the stream, from the start, until
 * want arrived or timeout_ms passed; returns them as a JSON array. */
static json_t *s_consume(natsConnection *nc, const char *subject, size_t want,
                         int timeout_ms)
{
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "VAPORA";
    so.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = NATS_ERR;
    long long end = th_now_ms() + timeout_ms;
    while (th_now_ms() < end &&
           (s = js_SubscribeSync(&sub, js, subject, NULL, &so, &jerr)) != NATS_OK)
        th_sleep_ms(100); /* the stream is made by the backend */
    cr_assert_eq(s, NATS_OK, "subscribe: %s (%d)", natsStatus_GetText(s), (int)jerr);
    json_t *got = json_array();
    while (json_array_size(got) < want && th_now_ms() < end) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 200) != NATS_OK)
            continue;
        json_t *ev =
            json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
        if (ev)
            json_array_append_new(got, ev);
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    return got;
}

/* Asserts ev is a type event of doc (the same id) in project p. */
static void s_assert_event(const json_t *ev, const char *type, const json_t *doc,
                           const json_t *p)
{
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), type);
    cr_assert(json_equal(json_object_get(ev, "id"), json_object_get(doc, "id")));
    cr_assert(json_equal(json_object_get(ev, "project_id"), json_object_get(p, "id")));
}

Test(backend_events, changes_reach_jetstream_with_the_documented_payload, .timeout = 60,
     .fini = s_fini)
{
    s_env_t e = s_setup("events");
    json_t *p = e.project;
    json_t *t = s_task(&e, "{\"title\":\"first\"}");
    natsConnection *nc = s_nats(e.sv);
    json_t *evs = s_consume(nc, "vapora.tasks.created", 1, 10000);
    cr_assert_eq(json_array_size(evs), 1, "no task.created event");
    json_t *ev = json_array_get(evs, 0);
    s_assert_event(ev, "task.created", t, p);
    cr_assert(json_equal(json_object_get(ev, "data"), t), "data is not the task");
    cr_assert(json_is_string(json_object_get(ev, "at")));
    json_decref(evs);
    evs = s_consume(nc, "vapora.projects.created", 1, 5000);
    cr_assert_eq(json_array_size(evs), 1, "no project.created event");
    json_decref(evs);
    natsConnection_Destroy(nc);
}

Test(backend_events, nats_killed_mid_way_loses_no_write_and_no_event, .timeout = 60,
     .fini = s_fini)
{
    s_env_t e = s_setup("outage");
    s_task(&e, "{\"title\":\"t0\"}");
    json_t *st = th_sv_status(e.sv);
    json_t *pg = th_sv_find(st, "programs", "nats");
    cr_assert_not_null(pg);
    pid_t nats = (pid_t)json_integer_value(json_object_get(pg, "pid"));
    json_decref(st);
    cr_assert_eq(kill(nats, SIGKILL), 0);
    th_sleep_ms(100);
    for (int i = 1; i <= 5; i++) { /* writes succeed while NATS is away */
        char body[64];
        snprintf(body, sizeof body, "{\"title\":\"t%d\"}", i);
        s_task(&e, body);
    }
    natsConnection *nc = s_nats(e.sv); /* the supervisor restarted it */
    json_t *evs = s_consume(nc, "vapora.tasks.created", 6, 15000);
    cr_assert_eq(json_array_size(evs), 6, "got %zu of 6 task.created events",
                 json_array_size(evs));
    for (size_t i = 0; i < 6; i++) { /* in order, none twice */
        char want[8];
        snprintf(want, sizeof want, "t%zu", i);
        json_t *data = json_object_get(json_array_get(evs, i), "data");
        cr_assert_str_eq(json_string_value(json_object_get(data, "title")), want);
    }
    json_decref(evs);
    natsConnection_Destroy(nc);
}

/* A cascading project delete is every one of its deletes: a task.deleted
 * per task (one blocked by another among them), then project.deleted. */
Test(backend_events, a_cascade_delete_publishes_every_task_it_deletes, .timeout = 60,
     .fini = s_fini)
{
    s_env_t e = s_setup("doomed");
    json_t *p = e.project;
    json_t *t[3];
    for (int i = 0; i < 2; i++)
        t[i] = s_task(&e, "{\"title\":\"gone\"}");
    t[2] = s_task(&e, th_fmt("{\"title\":\"blocked\",\"blocked_by\":[\"%s\"]}",
                             th_str(t[0], "id")));
    const char *path = th_fmt("/api/v1/projects/%s?cascade=true", th_str(p, "id"));
    int st = th_call(e.sv->ports[0], "DELETE", path,
                     th_fmt("Authorization: Bearer %s\r\n", e.tok), NULL, NULL, 5000);
    cr_assert(st == 204 || st == 200, "DELETE %s: %d", path, st);
    natsConnection *nc = s_nats(e.sv);
    json_t *evs = s_consume(nc, "vapora.tasks.deleted", 3, 10000);
    cr_assert_eq(json_array_size(evs), 3, "task.deleted events: %zu",
                 json_array_size(evs));
    for (int i = 0; i < 3; i++)
        s_assert_event(json_array_get(evs, (size_t)i), "task.deleted", t[i], p);
    json_decref(evs);
    evs = s_consume(nc, "vapora.projects.deleted", 1, 5000);
    cr_assert_eq(json_array_size(evs), 1, "no project.deleted");
    json_decref(evs);
    natsConnection_Destroy(nc);
}

/* A client thread that PATCHes one task n times, each on a new connection
 * (so either worker answers), each time with a title of its own; it keeps
 * the version and title each answer shows. */
typedef struct s_patcher {
    int port, id, n;
    const char *path, *headers;
    int ok;
    int versions[64];
    char titles[64][32];
    char first_error[300];
    pthread_t th;
} s_patcher_t;

static void *s_patcher_main(void *arg)
{
    s_patcher_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        char body[64], *resp = NULL;
        snprintf(p->titles[p->ok], sizeof p->titles[p->ok], "w%d-%d", p->id, i);
        snprintf(body, sizeof body, "{\"title\":\"%s\"}", p->titles[p->ok]);
        int st =
            th_call(p->port, "PATCH", p->path, p->headers, body, &resp, 3 * TH_IO_MS);
        json_t *j = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
        if (j) {
            p->versions[p->ok++] =
                (int)json_integer_value(json_object_get(j, "version"));
        } else if (!p->first_error[0]) {
            snprintf(p->first_error, sizeof p->first_error, "PATCH %d: %d %.200s", i,
                     st, resp ? resp : "");
        }
        json_decref(j);
        free(resp);
    }
    return NULL;
}

/* Writers on both workers at once, their writes in batches: every change
 * has its event in the stream, once, in the order of the changes (the
 * task's versions 2, 3, ... in turn), and each event is the change its
 * answer showed. */
Test(backend_events, concurrent_writes_on_two_workers_publish_every_event_in_order,
     .timeout = 90, .fini = s_fini)
{
    enum { T = 4, N = 50 };
    s_env_t e = s_setup("contended");
    json_t *t = s_task(&e, "{\"title\":\"w\"}");
    static s_patcher_t pt[T];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < T; i++) {
        pt[i] = (s_patcher_t){
            .port = e.sv->ports[0],
            .id = i,
            .n = N,
            .path = th_fmt("/api/v1/tasks/%s", th_str(t, "id")),
            .headers = th_fmt("Authorization: Bearer %s\r\n" TH_JSON_CT, e.tok)};
        cr_assert_eq(pthread_create(&pt[i].th, NULL, s_patcher_main, &pt[i]), 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    const char *title_of[T * N + 2] = {0}; /* by version */
    for (int i = 0; i < T; i++) {
        pthread_join(pt[i].th, NULL);
        cr_assert_eq(pt[i].ok, N, "client %d: %d of %d answered; first failure: %s", i,
                     pt[i].ok, N, pt[i].first_error);
        for (int k = 0; k < N; k++) {
            int v = pt[i].versions[k];
            cr_assert(v >= 2 && v <= T * N + 1 && !title_of[v],
                      "version %d answered %s", v,
                      title_of[v] ? "twice" : "out of range");
            title_of[v] = pt[i].titles[k];
        }
    }
    natsConnection *nc = s_nats(e.sv);
    json_t *evs = s_consume(nc, "vapora.tasks.updated", T * N, 30000);
    cr_assert_eq(json_array_size(evs), (size_t)(T * N), "%zu task.updated events of %d",
                 json_array_size(evs), T * N);
    for (int k = 0; k < T * N; k++) {
        json_t *data = json_object_get(json_array_get(evs, (size_t)k), "data");
        cr_assert_eq(th_int(data, "version"), k + 2, "event %d is of version %lld", k,
                     (long long)th_int(data, "version"));
        cr_assert_str_eq(th_str(data, "title"), title_of[k + 2],
                         "event %d is not the change answered as version %d", k, k + 2);
    }
    json_decref(evs);
    natsConnection_Destroy(nc);
}

/* outbox_max bounds the events waiting for NATS, not those one worker
 * queued since it last looked at the outbox (the other worker's publisher
 * may have sent them all): writes made one at a time, on both workers (a
 * connection each), with the publisher keeping up, lose no event to a
 * small outbox. */
Test(backend_events, a_small_outbox_drops_nothing_while_nats_keeps_up, .timeout = 90,
     .fini = s_fini)
{
    enum { N = 300 };
    s_env_t e = s_setup_conf(SETUP_KEYS("outbox_max = 50\n"), "small");
    natsConnection *nc = s_nats(e.sv);
    json_t *evs = s_consume(nc, "vapora.projects.created", 1, 10000);
    cr_assert_eq(json_array_size(evs), 1, "the publisher is not up");
    json_decref(evs);
    for (int i = 0; i < N; i++)
        s_task(&e, "{\"title\":\"one at a time\"}"); /* kept by the harness */
    evs = s_consume(nc, "vapora.tasks.created", N, 30000);
    cr_assert_eq(json_array_size(evs), (size_t)N, "%zu task.created events of %d",
                 json_array_size(evs), N);
    json_decref(evs);
    natsConnection_Destroy(nc);
}

/* The limits of stream VAPORA. */
typedef struct s_limits {
    int64_t age; /* ns */
    int64_t bytes;
} s_limits_t;

/* The limits of stream VAPORA once its max_age is want_age (ns), polled for
 * up to timeout_ms (the backend makes and updates it). */
static s_limits_t s_stream_limits(natsConnection *nc, int64_t want_age, int timeout_ms)
{
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    s_limits_t got = {0, 0};
    long long end = th_now_ms() + timeout_ms;
    do {
        jsStreamInfo *si = NULL;
        if (js_GetStreamInfo(&si, js, "VAPORA", NULL, NULL) == NATS_OK) {
            got = (s_limits_t){si->Config->MaxAge, si->Config->MaxBytes};
            jsStreamInfo_Destroy(si);
        }
        if (got.age != want_age)
            th_sleep_ms(100);
    } while (got.age != want_age && th_now_ms() < end);
    jsCtx_Destroy(js);
    return got;
}

Test(backend_events, the_stream_keeps_events_for_a_bounded_time_and_size, .timeout = 60,
     .fini = s_fini)
{
    s_env_t e = s_setup("bounded");
    natsConnection *nc = s_nats(e.sv);
    /* Made with the defaults: 7 days, 1 GiB. */
    s_limits_t c = s_stream_limits(nc, 7LL * 86400 * 1000000000LL, 15000);
    cr_assert_eq(c.age, 7LL * 86400 * 1000000000LL, "max_age %lld ns",
                 (long long)c.age);
    cr_assert_eq(c.bytes, 1LL << 30, "max_bytes %lld", (long long)c.bytes);
    /* Other limits in the config: the stream that exists takes them when
     * the workers start again (a reload). */
    cr_assert_eq(th_sv_write_config(e.sv, SETUP_KEYS("events_max_age = 3600\n"
                                                     "events_max_bytes = 10485760\n")),
                 0);
    cr_assert_eq(th_signal(e.sv->proc, SIGHUP), 0);
    c = s_stream_limits(nc, 3600LL * 1000000000LL, 20000);
    cr_assert_eq(c.age, 3600LL * 1000000000LL, "max_age %lld ns after the reload",
                 (long long)c.age);
    cr_assert_eq(c.bytes, 10485760, "max_bytes %lld after the reload",
                 (long long)c.bytes);
    /* Events still flow. */
    s_task(&e, "{\"title\":\"after\"}");
    json_t *evs = s_consume(nc, "vapora.tasks.created", 1, 10000);
    cr_assert_eq(json_array_size(evs), 1);
    json_decref(evs);
    natsConnection_Destroy(nc);
}
