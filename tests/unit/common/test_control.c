/* test_control.c - unit tests for common/control.c, the worker's end of
 * the control protocol, against a real ROUTER socket bound on ipc:// as
 * the supervisor binds it: the worker connects under its id only when
 * VAPORA_CONTROL is set, says ready, sends heartbeats whose stats parse
 * back, obeys drain and log_level, and ignores what it does not know. */
#define _GNU_SOURCE
#include "control.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "base.h"

typedef struct sup {
    void *ctx;
    void *router;
    char ep[96];
    loop_t *loop;
    int drains;
    char level[16];
    int levels;
} sup_t;

static void s_on_drain(void *ud)
{
    sup_t *s = ud;
    s->drains++;
    loop_stop(s->loop);
}

static void s_on_log_level(void *ud, const char *level)
{
    sup_t *s = ud;
    snprintf(s->level, sizeof s->level, "%s", level);
    s->levels++;
    loop_stop(s->loop);
}

static const control_ops_t s_ops = {s_on_drain, s_on_log_level};

/* The supervisor's end: a ROUTER on a fresh ipc:// path, and the worker's
 * environment pointing at it. */
static void s_bind(sup_t *s)
{
    snprintf(s->ep, sizeof s->ep, "ipc:///tmp/vapora-control-test-%d.ipc",
             (int)getpid());
    s->ctx = zmq_ctx_new();
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    int zero = 0, tmo = 5000;
    zmq_setsockopt(s->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->router, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    cr_assert_eq(zmq_bind(s->router, s->ep), 0, "%s", zmq_strerror(errno));
    setenv("VAPORA_CONTROL", s->ep, 1);
    setenv("VAPORA_WORKER_ID", "svc/7", 1);
    s->loop = loop_new();
}

static void s_unbind(sup_t *s)
{
    zmq_close(s->router);
    zmq_ctx_term(s->ctx);
    unlink(s->ep + strlen("ipc://"));
    loop_destroy(&s->loop);
}

/* Receives [id, json] at the supervisor; returns the parsed JSON (the
 * caller frees it) after checking the id. */
static json_t *s_recv(sup_t *s)
{
    char id[32], body[1024];
    int n = zmq_recv(s->router, id, sizeof id, 0);
    cr_assert_eq(n, 5, "id of %d bytes (%s)", n, zmq_strerror(errno));
    cr_assert_eq(memcmp(id, "svc/7", 5), 0);
    n = zmq_recv(s->router, body, sizeof body - 1, 0);
    cr_assert_gt(n, 0);
    body[n] = '\0';
    json_t *j = json_loads(body, 0, NULL);
    cr_assert_not_null(j, "%s", body);
    return j;
}

static void s_send(sup_t *s, const char *const *parts, size_t n)
{
    cr_assert_eq(zmq_send(s->router, "svc/7", 5, ZMQ_SNDMORE), 5);
    for (size_t i = 0; i < n; i++)
        cr_assert_geq(zmq_send(s->router, parts[i], strlen(parts[i]),
                               i + 1 < n ? ZMQ_SNDMORE : 0),
                      0);
}

Test(control, alone_without_vapora_control)
{
    unsetenv("VAPORA_CONTROL");
    loop_t *loop = loop_new();
    cr_assert_null(control_from_env(loop, &s_ops, NULL));
    setenv("VAPORA_CONTROL", "", 1);
    cr_assert_null(control_from_env(loop, &s_ops, NULL));
    setenv("VAPORA_CONTROL", "nonsense://x", 1);
    cr_assert_null(control_from_env(loop, &s_ops, NULL), "an endpoint zmq refuses");
    control_destroy(NULL);
    loop_destroy(&loop);
}

Test(control, ready_and_heartbeat_reach_the_supervisor, .timeout = 20)
{
    sup_t s = {0};
    s_bind(&s);
    control_t *c = control_from_env(s.loop, &s_ops, &s);
    cr_assert_not_null(c);
    cr_assert_eq(control_send_ready(c), 0);
    json_t *j = s_recv(&s);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "ready");
    json_decref(j);
    control_stats_t st = {.requests = 12345678901ull,
                          .in_flight = 3,
                          .loop_lag_ms = 1.5,
                          .pool_queue = 4,
                          .pool_busy = 2,
                          .cpu_seconds = 0.25,
                          .rss_bytes = 1ull << 33};
    cr_assert_eq(control_send_heartbeat(c, &st), 0);
    j = s_recv(&s);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "heartbeat");
    control_stats_t back;
    cr_assert_eq(control_stats_parse(json_object_get(j, "stats"), &back), 0);
    cr_assert_eq(back.requests, st.requests);
    cr_assert_eq(back.in_flight, 3);
    cr_assert_float_eq(back.loop_lag_ms, 1.5, 1e-9);
    cr_assert_eq(back.pool_queue, 4);
    cr_assert_eq(back.pool_busy, 2);
    cr_assert_float_eq(back.cpu_seconds, 0.25, 1e-9);
    cr_assert_eq(back.rss_bytes, st.rss_bytes);
    json_decref(j);
    control_destroy(&c);
    cr_assert_null(c);
    s_unbind(&s);
}

/* Commands reach the callbacks on the loop; a message without a type, an
 * unknown type, a log_level without a level and a two-frame message are
 * passed over, and the next command still arrives. */
Test(control, obeys_drain_and_log_level_and_ignores_the_rest, .timeout = 20)
{
    sup_t s = {0};
    s_bind(&s);
    control_t *c = control_from_env(s.loop, &s_ops, &s);
    cr_assert_not_null(c);
    cr_assert_eq(control_send_ready(c), 0); /* the router learns our id */
    json_decref(s_recv(&s));
    static const char *const junk[][2] = {
        {"{}", NULL},
        {"{\"type\":\"reboot\"}", NULL},
        {"{\"type\":\"log_level\"}", NULL},
        {"not json", NULL},
        {"{\"type\":\"drain\"}", "{\"type\":\"drain\"}"},
    };
    for (size_t i = 0; i < ARRAY_LEN(junk); i++)
        s_send(&s, junk[i], junk[i][1] ? 2 : 1);
    static const char *const level[] = {"{\"type\":\"log_level\",\"level\":\"debug\"}"};
    s_send(&s, level, 1);
    cr_assert_eq(loop_run(s.loop), 0); /* until a command; .timeout if none */
    cr_assert_eq(s.levels, 1);
    cr_assert_str_eq(s.level, "debug");
    cr_assert_eq(s.drains, 0, "nothing before it was a drain");
    static const char *const drain[] = {"{\"type\":\"drain\"}"};
    s_send(&s, drain, 1);
    cr_assert_eq(loop_run(s.loop), 0); /* until a command; .timeout if none */
    cr_assert_eq(s.drains, 1);
    control_destroy(&c);
    s_unbind(&s);
}

Test(control, stats_parse_wants_an_object)
{
    control_stats_t st;
    json_t *a = json_array();
    cr_assert_eq(control_stats_parse(a, &st), -EINVAL);
    cr_assert_eq(control_stats_parse(NULL, &st), -EINVAL);
    json_decref(a);
    json_t *empty = json_object();
    cr_assert_eq(control_stats_parse(empty, &st), 0);
    cr_assert_eq(st.requests, 0);
    json_decref(empty);
    control_stats_t z = {0};
    char *txt = control_stats_json(&z);
    cr_assert_not_null(strstr(txt, "\"requests\":0"), "%s", txt);
    free(txt);
}
