/* test_zchan.c - unit tests for common/zchan.c: real ZeroMQ sockets
 * (ROUTER and DEALER over inproc://) driven by one loop. Whole multipart
 * messages reach the callback with the peer's id first; excess parts are
 * dropped; messages queued before zchan_new are dispatched by it, and
 * those that arrive before a send by the send; a callback that sends keeps
 * receiving; a callback may destroy its channel; a ROUTER refuses an
 * unknown peer. */
#define _GNU_SOURCE
#include "zchan.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "base.h"

typedef struct got {
    char text[8][64]; /* the message's parts after the id, joined by '|' */
    size_t n;
    size_t parts[8];
    size_t want;    /* stop the loop after this many messages */
    bool reply;     /* answer each message on the same socket */
    bool destroy;   /* destroy the channel from the first callback */
    zchan_t **self; /* the channel, for destroy */
} got_t;

typedef struct rig {
    void *ctx;
    loop_t *loop;
    zchan_t *router; /* bound at inproc://zchan */
    void *dealer;    /* plain socket, routing id "peer" */
    zchan_t *dealer_ch;
    got_t at_router, at_dealer;
} rig_t;

static void s_record(got_t *g, const zchan_msg_t *m, size_t first)
{
    if (g->n >= ARRAY_LEN(g->text))
        return;
    char *t = g->text[g->n];
    for (size_t i = first; i < m->n; i++) {
        size_t len = strlen(t);
        snprintf(t + len, sizeof g->text[0] - len, "%s%.*s", i > first ? "|" : "",
                 (int)m->lens[i], (const char *)m->parts[i]);
    }
    g->parts[g->n++] = m->n;
}

static void s_on_router(zchan_t *ch, const zchan_msg_t *m, void *ud)
{
    rig_t *r = ud;
    got_t *g = &r->at_router;
    cr_assert_geq(m->n, 1);
    cr_assert_eq(m->lens[0], 4, "the first part is the peer's id");
    cr_assert_eq(memcmp(m->parts[0], "peer", 4), 0);
    s_record(g, m, 1);
    if (g->reply) {
        const void *parts[2] = {"peer", "ack"};
        size_t lens[2] = {4, 3};
        cr_assert_eq(zchan_send(ch, parts, lens, 2), 0);
    }
    if (g->destroy)
        zchan_destroy(g->self);
    if (g->n == g->want)
        loop_stop(r->loop);
}

static void s_on_dealer(zchan_t *ch, const zchan_msg_t *m, void *ud)
{
    UNUSED(ch);
    rig_t *r = ud;
    s_record(&r->at_dealer, m, 0);
    if (r->at_dealer.n == r->at_dealer.want)
        loop_stop(r->loop);
}

/* Runs the loop until a callback stops it (the test's .timeout fails it
 * if none does). */
static void s_run(rig_t *r)
{
    cr_assert_eq(loop_run(r->loop), 0);
}

static void *s_socket(rig_t *r, int type)
{
    void *s = zmq_socket(r->ctx, type);
    cr_assert_not_null(s);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    return s;
}

/* A ROUTER under zchan (made by s_open_router) and a plain DEALER. */
static void s_setup(rig_t *r)
{
    r->ctx = zmq_ctx_new();
    r->loop = loop_new();
    cr_assert(r->ctx && r->loop);
    r->dealer = s_socket(r, ZMQ_DEALER);
    zmq_setsockopt(r->dealer, ZMQ_ROUTING_ID, "peer", 4);
}

static void s_open_router(rig_t *r)
{
    void *s = s_socket(r, ZMQ_ROUTER);
    int one = 1;
    zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    cr_assert_eq(zmq_bind(s, "inproc://zchan"), 0);
    r->router = zchan_new(r->loop, s, s_on_router, r);
    cr_assert_not_null(r->router);
}

/* The usual rig: the ROUTER under zchan, the plain DEALER connected. */
static void s_connected(rig_t *r)
{
    s_setup(r);
    s_open_router(r);
    cr_assert_eq(zmq_connect(r->dealer, "inproc://zchan"), 0);
}

static void s_dealer_send(rig_t *r, const char *const *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_geq(zmq_send(r->dealer, parts[i], strlen(parts[i]),
                               i + 1 < n ? ZMQ_SNDMORE : 0),
                      0);
}

/* Sends each of texts as a message of its own. */
static void s_dealer_send_each(rig_t *r, const char *const *texts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_dealer_send(r, &texts[i], 1);
}

static void s_teardown(rig_t *r)
{
    zchan_destroy(&r->router);
    zchan_destroy(&r->dealer_ch);
    if (r->dealer)
        zmq_close(r->dealer);
    zmq_ctx_term(r->ctx);
    loop_destroy(&r->loop);
}

Test(zchan, multipart_both_ways_with_the_peer_id, .timeout = 10)
{
    rig_t r = {0};
    s_connected(&r);
    r.dealer_ch = zchan_new(r.loop, r.dealer, s_on_dealer, &r);
    r.dealer = NULL; /* the channel owns it */
    cr_assert_not_null(r.dealer_ch);
    const void *parts[3] = {"a", "bc", "def"};
    size_t lens[3] = {1, 2, 3};
    cr_assert_eq(zchan_send(r.dealer_ch, parts, lens, 3), 0);
    r.at_router.want = 1;
    r.at_router.reply = true;
    r.at_dealer.want = 1;
    s_run(&r);
    cr_assert_eq(r.at_router.n, 1);
    cr_assert_eq(r.at_router.parts[0], 4, "id + 3 parts");
    cr_assert_str_eq(r.at_router.text[0], "a|bc|def");
    if (r.at_dealer.n == 0)
        s_run(&r);
    cr_assert_str_eq(r.at_dealer.text[0], "ack");
    s_teardown(&r);
}

Test(zchan, parts_beyond_the_maximum_are_dropped, .timeout = 10)
{
    rig_t r = {0};
    s_connected(&r);
    static const char *const ten[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    static const char *const next[] = {"next"};
    s_dealer_send(&r, ten, ARRAY_LEN(ten));
    s_dealer_send(&r, next, 1);
    r.at_router.want = 2;
    s_run(&r);
    cr_assert_eq(r.at_router.parts[0], ZCHAN_MAX_PARTS);
    cr_assert_str_eq(r.at_router.text[0], "0|1|2|3|4|5|6");
    cr_assert_str_eq(r.at_router.text[1], "next", "the stream stays in step");
    s_teardown(&r);
}

/* Messages already queued when the socket is wrapped: ZMQ_FD will not
 * signal them again, so zchan_new itself must dispatch them. */
Test(zchan, messages_queued_before_zchan_new_are_dispatched, .timeout = 10)
{
    rig_t r = {0};
    s_setup(&r);
    void *s = s_socket(&r, ZMQ_ROUTER);
    cr_assert_eq(zmq_bind(s, "inproc://zchan"), 0);
    cr_assert_eq(zmq_connect(r.dealer, "inproc://zchan"), 0);
    static const char *const one[] = {"early"};
    s_dealer_send(&r, one, 1);
    zmq_pollitem_t pi = {.socket = s, .events = ZMQ_POLLIN};
    cr_assert_eq(zmq_poll(&pi, 1, 5000), 1, "the message has arrived");
    r.at_router.want = 99; /* not stopping a loop that does not run */
    r.router = zchan_new(r.loop, s, s_on_router, &r);
    cr_assert_not_null(r.router);
    cr_assert_eq(r.at_router.n, 1, "dispatched inside zchan_new");
    cr_assert_str_eq(r.at_router.text[0], "early");
    s_teardown(&r);
}

/* Each message is answered from the callback: the sends consume the read
 * edge, and every message must still be dispatched, in order. */
Test(zchan, a_callback_that_sends_keeps_receiving, .timeout = 10)
{
    rig_t r = {0};
    s_connected(&r);
    static const char *const m[] = {"m1", "m2", "m3", "m4", "m5"};
    s_dealer_send_each(&r, m, ARRAY_LEN(m));
    r.at_router.want = ARRAY_LEN(m);
    r.at_router.reply = true;
    s_run(&r);
    for (size_t i = 0; i < ARRAY_LEN(m); i++)
        cr_assert_str_eq(r.at_router.text[i], m[i]);
    char buf[8];
    for (size_t i = 0; i < ARRAY_LEN(m); i++)
        cr_assert_eq(zmq_recv(r.dealer, buf, sizeof buf, 0), 3, "ack %zu", i);
    s_teardown(&r);
}

/* A send from outside the loop (a timer, a handler) may consume the read
 * edge of messages that arrived meanwhile: zchan_send dispatches them
 * before it returns, or they would wait for an edge that never comes. */
Test(zchan, a_send_dispatches_what_arrived_meanwhile, .timeout = 10)
{
    rig_t r = {0};
    s_connected(&r);
    static const char *const one[] = {"meanwhile"};
    s_dealer_send(&r, one, 1);
    usleep(100 * 1000); /* inproc: delivered long before */
    r.at_router.want = 99;
    const void *parts[2] = {"peer", "out"};
    size_t lens[2] = {4, 3};
    cr_assert_eq(zchan_send(r.router, parts, lens, 2), 0);
    cr_assert_eq(r.at_router.n, 1, "dispatched inside zchan_send");
    cr_assert_str_eq(r.at_router.text[0], "meanwhile");
    s_teardown(&r);
}

/* Destroyed from inside its callback with more messages waiting: the pump
 * stops there (ASan would see a use after free). */
Test(zchan, a_callback_may_destroy_its_channel, .timeout = 10)
{
    rig_t r = {0};
    s_connected(&r);
    static const char *const m[] = {"x", "y", "z"};
    s_dealer_send_each(&r, m, ARRAY_LEN(m));
    r.at_router.want = 1;
    r.at_router.destroy = true;
    r.at_router.self = &r.router;
    s_run(&r);
    cr_assert_null(r.router);
    cr_assert_eq(r.at_router.n, 1);
    s_teardown(&r);
}

Test(zchan, a_router_refuses_an_unknown_peer, .timeout = 10)
{
    rig_t r = {0};
    s_setup(&r);
    s_open_router(&r);
    const void *parts[2] = {"nobody", "hi"};
    size_t lens[2] = {6, 2};
    cr_assert_eq(zchan_send(r.router, parts, lens, 2), -EHOSTUNREACH);
    s_teardown(&r);
}
