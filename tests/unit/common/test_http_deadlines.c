/* test_http_deadlines.c - unit tests for the deadlines http_conn.c keeps
 * in place of libmicrohttpd's idle timeout (which is off): a body that
 * stops coming and a reply that stops being taken are cut after
 * request_timeout, while a client that takes its reply slowly but
 * steadily is not. A client thread talks to a real server on this
 * thread's loop (test_http_fixture.h); request_timeout is 1 s. */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_http_fixture.h"

#define BIG (32u << 20) /* a reply no socket buffers hold */

typedef struct deadlines {
    hfix_t h;
    char *big;
    atomic_llong ended_ms; /* when the request left the server; 0: not yet */
    atomic_int started;
    loop_timer_t *watch;
} deadlines_t;

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_big(http_req_t *req, void *ud)
{
    deadlines_t *d = ud;
    atomic_store(&d->started, 1);
    http_reply(req, 200, "application/octet-stream", d->big, BIG);
}

static void s_body(http_req_t *req, void *ud)
{
    (void)ud;
    http_reply(req, 200, "text/plain", "ok", 2);
}

/* Notes when the request in flight is over (loop thread). */
static void s_watch(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    deadlines_t *d = ud;
    if (atomic_load(&d->started) && http_server_in_flight(d->h.srv) == 0 &&
        !atomic_load(&d->ended_ms))
        atomic_store(&d->ended_ms, s_now_ms());
}

static void s_setup(deadlines_t *d)
{
    http_config_t hc;
    http_config_defaults(&hc);
    hc.service = "unit";
    hc.request_timeout = 1;
    hc.body_timeout = 60;
    hfix_init(&d->h, &hc);
    d->big = calloc(1, BIG);
    cr_assert_not_null(d->big);
    cr_assert_eq(http_route(d->h.srv, "GET", "/big", 0, s_big, d), 0);
    cr_assert_eq(http_route(d->h.srv, "POST", "/body", 0, s_body, d), 0);
    d->watch = loop_add_timer(d->h.loop, 20, 20, s_watch, d);
    hfix_start(&d->h);
}

static void s_teardown(deadlines_t *d)
{
    loop_cancel_timer(d->h.loop, &d->watch);
    hfix_fini(&d->h);
    free(d->big);
}

/* A connection whose receive buffer is small (set before connecting, so
 * that the window stays small), with 10 s timeouts. */
static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int rcv = 8192;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void s_send(int fd, const char *s)
{
    cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* ---- a reply the client stops taking ---- */

typedef struct result {
    deadlines_t *d;
    long long sent_ms, waited_ms;
    size_t got;
    bool eof; /* the server ended the connection before the whole reply */
} result_t;

static void *s_stalled_reader(void *arg)
{
    result_t *r = arg;
    int fd = s_connect(r->d->h.port);
    r->sent_ms = s_now_ms();
    s_send(fd, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    while (!atomic_load(&r->d->ended_ms) && s_now_ms() - r->sent_ms < 10000)
        usleep(20000);
    r->waited_ms = atomic_load(&r->d->ended_ms) - r->sent_ms;
    /* What the server had queued still comes, then the end. */
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        r->got += (size_t)n;
    r->eof = n == 0 || n < 0;
    close(fd);
    return NULL;
}

Test(http_deadlines, a_reply_not_taken_is_cut_after_request_timeout, .timeout = 40)
{
    static deadlines_t d;
    s_setup(&d);
    result_t r = {.d = &d};
    hfix_run(&d.h, s_stalled_reader, &r);
    cr_assert(atomic_load(&d.ended_ms), "the stalled reply still holds its connection");
    cr_assert(r.waited_ms >= 900 && r.waited_ms <= 6000,
              "cut after %lld ms, request_timeout 1 s", r.waited_ms);
    cr_assert(r.eof && r.got < BIG, "got %zu bytes of %u", r.got, BIG);
    s_teardown(&d);
}

/* ---- a reply taken slowly but steadily ---- */

static void *s_slow_reader(void *arg)
{
    result_t *r = arg;
    int fd = s_connect(r->d->h.port);
    r->sent_ms = s_now_ms();
    s_send(fd, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[8192];
    /* 64 KiB every 100 ms for 3.5 s, three times request_timeout. */
    while (s_now_ms() - r->sent_ms < 3500 && !r->eof) {
        for (size_t part = 0; part < 65536 && !r->eof;) {
            ssize_t n = read(fd, buf, sizeof buf);
            r->eof = n <= 0;
            part += n > 0 ? (size_t)n : 0;
            r->got += n > 0 ? (size_t)n : 0;
        }
        usleep(100000);
    }
    /* The server may have cut it with megabytes still on their way. */
    r->waited_ms = atomic_load(&r->d->ended_ms);
    close(fd);
    return NULL;
}

Test(http_deadlines, a_reply_taken_slowly_is_not_cut, .timeout = 40)
{
    static deadlines_t d;
    s_setup(&d);
    result_t r = {.d = &d};
    hfix_run(&d.h, s_slow_reader, &r);
    cr_assert_not(r.eof, "cut after %zu bytes, though taken steadily", r.got);
    cr_assert_eq(r.waited_ms, 0, "the server ended the reply after %lld ms",
                 r.waited_ms - r.sent_ms);
    cr_assert_gt(r.got, 1u << 20, "only %zu bytes in 3.5 s", r.got);
    s_teardown(&d);
}

/* ---- a body that stops coming ---- */

static void *s_stalled_body(void *arg)
{
    result_t *r = arg;
    int fd = s_connect(r->d->h.port);
    r->sent_ms = s_now_ms();
    s_send(fd, "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf); /* waits: no answer, then the end */
    r->waited_ms = s_now_ms() - r->sent_ms;
    r->eof = n <= 0;
    close(fd);
    return NULL;
}

Test(http_deadlines, a_body_that_stops_is_cut_after_request_timeout, .timeout = 40)
{
    static deadlines_t d;
    s_setup(&d);
    result_t r = {.d = &d};
    hfix_run(&d.h, s_stalled_body, &r);
    cr_assert(r.eof, "the stalled body got an answer");
    cr_assert(r.waited_ms >= 900 && r.waited_ms <= 6000,
              "cut after %lld ms, request_timeout 1 s (body_timeout 60 s)", r.waited_ms);
    s_teardown(&d);
}
