/* test_curlm.c - unit tests for common/curlm.c: libcurl's multi-socket API
 * on our loop. Transfers go to a real HTTP server (test_http_fixture.h) on
 * the same loop, on loopback: one transfer, a kept-alive connection reused,
 * many at once under a connection cap, a refused connection, a timeout, a
 * handle added twice, and aborts of in-flight transfers (done() never runs,
 * no callback after the abort, the connection is closed). A guard timer
 * fails a test that would otherwise wait for ever. */
#define _GNU_SOURCE
#include "curlm.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "now.h"
#include "sbuf.h"
#include "test_http_fixture.h"

typedef struct cx cx_t;

/* One transfer. */
typedef struct xf {
    cx_t *cx;
    CURL *easy;
    sbuf_t body;
    int done_calls;
    CURLcode rc;
    long status;
    long connects; /* new connections it made */
    uint64_t ms;   /* from start to done */
    uint64_t started_ms;
} xf_t;

struct cx {
    hfix_t h;
    curlm_t *m;
    int expected; /* done() calls that end the loop */
    int finished;
    bool timed_out;
    loop_timer_t *guard;
    /* the server's side */
    http_req_t *held; /* a request left waiting */
    http_stream_t *st;
    int gone;       /* clients that left a waiting request or stream */
    xf_t *abort_me; /* the transfer /abort aborts */
    loop_timer_t *poll;
};

static cx_t C;

static size_t s_write(char *p, size_t size, size_t n, void *ud)
{
    xf_t *x = ud;
    sbuf_append(&x->body, p, size * n);
    return size * n;
}

static void s_done(CURL *easy, CURLcode rc, void *ud)
{
    xf_t *x = ud;
    cr_assert_eq(easy, x->easy);
    x->done_calls++;
    x->rc = rc;
    x->ms = now_ms() - x->started_ms;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &x->connects);
    curl_easy_cleanup(easy);
    x->easy = NULL;
    if (++x->cx->finished == x->cx->expected)
        loop_stop(x->cx->h.loop);
}

static void s_start(xf_t *x, const char *path, long timeout_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", C.h.port, path);
    memset(x, 0, sizeof *x);
    x->cx = &C;
    x->easy = curl_easy_init();
    cr_assert_not_null(x->easy);
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    if (timeout_ms)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    x->started_ms = now_ms();
    cr_assert_eq(curlm_add(C.m, x->easy, s_done, x), 0);
}

static void s_guard(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    cx_t *cx = ud;
    cx->guard = NULL;
    cx->timed_out = true;
    loop_stop(loop);
}

/* Runs the loop until `expected` transfers are done (or loop_stop), for at
 * most 5 s. */
static void s_run(int expected)
{
    C.expected = expected;
    C.finished = 0;
    C.guard = loop_add_timer(C.h.loop, 5000, 0, s_guard, &C);
    cr_assert_eq(loop_run(C.h.loop), 0);
    loop_cancel_timer(C.h.loop, &C.guard);
    cr_assert_not(C.timed_out, "the loop waited 5 s for nothing");
}

/* ---- the server ---- */

static void s_hello(http_req_t *req, void *ud)
{
    (void)ud;
    http_reply(req, 200, "text/plain", "hi there", 8);
}

static void s_gone(void *ud)
{
    cx_t *cx = ud;
    cx->gone++;
    if (cx->held) { /* it still gets its reply, which is dropped */
        http_reply(cx->held, 503, NULL, "", 0);
        cx->held = NULL;
    }
    loop_stop(cx->h.loop);
}

static void s_hang(http_req_t *req, void *ud)
{
    cx_t *cx = ud;
    cx->held = req;
    http_req_watch_gone(req, s_gone, cx);
}

static void s_stream(http_req_t *req, void *ud)
{
    cx_t *cx = ud;
    cx->st = http_reply_stream(req, 200, "text/plain", s_gone, cx);
    http_stream_write(cx->st, "first", 5);
}

/* The server holds the request; the abort (from its MHD callback, as a
 * service does when its own client leaves) closes curl's connection. */
static void s_hang_and_abort(http_req_t *req, void *ud)
{
    cx_t *cx = ud;
    s_hang(req, cx);
    curlm_abort(cx->m, cx->abort_me->easy);
    cx->abort_me->easy = NULL; /* curlm's now */
}

static void s_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&C, 0, sizeof C);
    hfix_init(&C.h, NULL);
    cr_assert_eq(http_route(C.h.srv, "GET", "/hello", 0, s_hello, &C), 0);
    cr_assert_eq(http_route(C.h.srv, "GET", "/hang", 0, s_hang, &C), 0);
    cr_assert_eq(http_route(C.h.srv, "GET", "/stream", 0, s_stream, &C), 0);
    cr_assert_eq(http_route(C.h.srv, "GET", "/abort", 0, s_hang_and_abort, &C), 0);
    hfix_start(&C.h);
    C.m = curlm_new(C.h.loop, 4, 4);
    cr_assert_not_null(C.m);
}

static void s_teardown(void)
{
    curlm_destroy(&C.m);
    cr_assert_null(C.m);
    hfix_fini(&C.h);
    curl_global_cleanup();
}

TestSuite(curlm, .init = s_setup, .fini = s_teardown, .timeout = 30);

/* ---- transfers ---- */

Test(curlm, a_transfer_completes_and_the_next_reuses_its_connection)
{
    static xf_t a, b;
    s_start(&a, "/hello", 0);
    s_run(1);
    cr_assert_eq(a.done_calls, 1);
    cr_assert_eq(a.rc, CURLE_OK, "%s", curl_easy_strerror(a.rc));
    cr_assert_eq(a.status, 200);
    cr_assert_eq(a.body.len, 8);
    cr_assert(memcmp(a.body.data, "hi there", 8) == 0);
    cr_assert_eq(a.connects, 1);
    /* The connection waits in curl's cache, its socket parked in our loop. */
    s_start(&b, "/hello", 0);
    s_run(1);
    cr_assert_eq(b.rc, CURLE_OK);
    cr_assert_eq(b.status, 200);
    cr_assert_eq(b.connects, 0, "a second connection was opened");
    sbuf_free(&a.body);
    sbuf_free(&b.body);
}

Test(curlm, many_transfers_at_once_share_four_connections)
{
    static xf_t x[24];
    for (int i = 0; i < 24; i++)
        s_start(&x[i], "/hello", 0);
    s_run(24);
    long connects = 0;
    for (int i = 0; i < 24; i++) {
        cr_assert_eq(x[i].done_calls, 1, "%d", i);
        cr_assert_eq(x[i].rc, CURLE_OK, "%d: %s", i, curl_easy_strerror(x[i].rc));
        cr_assert_eq(x[i].status, 200);
        cr_assert_eq(x[i].body.len, 8);
        connects += x[i].connects;
        sbuf_free(&x[i].body);
    }
    cr_assert_leq(connects, 4, "max_total is 4, %ld connections made", connects);
}

Test(curlm, a_refused_connection_ends_in_done_with_the_error)
{
    char err[128];
    int fd = net_listen("127.0.0.1:0", 1, false, err, sizeof err);
    cr_assert_geq(fd, 0, "%s", err);
    int port = net_local_port(fd);
    close(fd); /* nothing listens there now */
    static xf_t x;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    s_start(&x, "/hello", 0);
    curl_easy_setopt(x.easy, CURLOPT_URL, url); /* before the loop runs it */
    s_run(1);
    cr_assert_eq(x.done_calls, 1);
    cr_assert_eq(x.rc, CURLE_COULDNT_CONNECT, "%s", curl_easy_strerror(x.rc));
}

Test(curlm, a_transfer_times_out_on_our_timer)
{
    static xf_t x;
    s_start(&x, "/hang", 300);
    C.expected = 1;
    /* Ends on done() or, when curl closes the connection, on gone(). */
    C.guard = loop_add_timer(C.h.loop, 5000, 0, s_guard, &C);
    while (x.done_calls == 0 && !C.timed_out)
        cr_assert_eq(loop_run(C.h.loop), 0);
    loop_cancel_timer(C.h.loop, &C.guard);
    cr_assert_not(C.timed_out);
    cr_assert_eq(x.rc, CURLE_OPERATION_TIMEDOUT, "%s", curl_easy_strerror(x.rc));
    cr_assert_geq(x.ms, 290);
    cr_assert_lt(x.ms, 3000);
}

Test(curlm, a_handle_added_twice_is_refused_and_still_completes)
{
    static xf_t x;
    s_start(&x, "/hello", 0);
    cr_assert_eq(curlm_add(C.m, x.easy, s_done, &x), -EINVAL);
    s_run(1);
    cr_assert_eq(x.done_calls, 1);
    cr_assert_eq(x.rc, CURLE_OK);
    sbuf_free(&x.body);
}

/* ---- aborts ---- */

Test(curlm, an_aborted_transfer_never_reaches_done_and_closes_its_connection)
{
    static xf_t x;
    C.abort_me = &x;
    s_start(&x, "/abort", 0);
    s_run(1); /* ends on gone() */
    cr_assert_eq(C.gone, 1, "the server did not see the client leave");
    cr_assert_eq(x.done_calls, 0);
    cr_assert_null(x.easy);
}

/* Once "first" arrived: abort, and have the server send more. */
static void s_abort_after_first(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    xf_t *x = ud;
    if (x->body.len == 0)
        return;
    loop_cancel_timer(loop, &x->cx->poll);
    curlm_abort(x->cx->m, x->easy);
    x->easy = NULL;
    http_stream_write(x->cx->st, "second", 6);
}

Test(curlm, no_write_callback_after_an_abort)
{
    static xf_t x;
    s_start(&x, "/stream", 0);
    C.poll = loop_add_timer(C.h.loop, 1, 1, s_abort_after_first, &x);
    s_run(1); /* ends on the stream's gone() */
    cr_assert_null(C.poll);
    cr_assert_eq(C.gone, 1);
    cr_assert_eq(x.done_calls, 0);
    cr_assert_eq(x.body.len, 5, "got %zu bytes", x.body.len);
    cr_assert(memcmp(x.body.data, "first", 5) == 0);
    sbuf_free(&x.body);
}

Test(curlm, destroy_carries_out_queued_aborts)
{
    static xf_t x;
    s_start(&x, "/hang", 0);
    curlm_abort(C.m, x.easy); /* never run: freed by curlm_destroy (asan) */
    x.easy = NULL;
    curlm_destroy(&C.m);
    cr_assert_eq(x.done_calls, 0);
}

/* ---- easy handles given back ---- */

static void s_done_release(CURL *easy, CURLcode rc, void *ud)
{
    xf_t *x = ud;
    x->done_calls++;
    x->rc = rc;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
    curlm_easy_release(x->cx->m, easy);
    if (++x->cx->finished == x->cx->expected)
        loop_stop(x->cx->h.loop);
}

static CURL *s_start_spare(xf_t *x, bool head)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hello", C.h.port);
    memset(x, 0, sizeof *x);
    x->cx = &C;
    x->easy = curlm_easy(C.m);
    cr_assert_not_null(x->easy);
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    if (head)
        curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
    cr_assert_eq(curlm_add(C.m, x->easy, s_done_release, x), 0);
    return x->easy;
}

Test(curlm, a_handle_given_back_is_reused_with_none_of_its_last_options)
{
    static xf_t a, b;
    CURL *first = s_start_spare(&a, true); /* a HEAD: no body */
    s_run(1);
    cr_assert_eq(a.rc, CURLE_OK, "%s", curl_easy_strerror(a.rc));
    cr_assert_eq(a.body.len, 0);
    CURL *second = s_start_spare(&b, false);
    cr_assert_eq(second, first, "the handle given back was not reused");
    s_run(1);
    cr_assert_eq(b.rc, CURLE_OK, "%s", curl_easy_strerror(b.rc));
    cr_assert_eq(b.status, 200);
    cr_assert_eq(b.body.len, 8, "the last transfer's NOBODY was left on the handle");
    sbuf_free(&a.body);
    sbuf_free(&b.body);
}
