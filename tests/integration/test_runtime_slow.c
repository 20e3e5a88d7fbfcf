/* test_runtime_slow.c - slow clients against the HTTP layer of the worker
 * runtime (common/http_conn.c, http_peers.c): a body trickled one byte at
 * a time is cut at body_timeout however busy it keeps the line, and one
 * client address holding many slow connections (bodies or headers) is held
 * to max_connections_per_ip while a client from another address (127.0.0.2:
 * loopback is the whole of 127/8) is still accepted and served. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define TESTSVC "vapora-testsvc"

/* ---- the body deadline ---- */

/* One body byte every 300 ms: never idle for request_timeout, but the
 * whole body cannot arrive within body_timeout. */
Test(http_slow, trickled_body_is_cut_at_body_timeout, .timeout = 30,
     .fini = th_cleanup)
{
    th_proc_t *p =
        th_must_start(TESTSVC, "testsvc", "request_timeout = 30\nbody_timeout = 2\n");
    th_conn_t *c = th_must_connect(p->port);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                       "Content-Length: 1000000\r\n\r\n{";
    long long t0 = th_now_ms();
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    bool closed = false;
    while (!closed && th_now_ms() - t0 < 12000) {
        th_sleep_ms(300);
        closed = th_peer_closed(c) || th_send_raw(c, " ", 1, TH_IO_MS) < 0;
    }
    long long cut = th_now_ms() - t0;
    cr_assert(closed, "a trickled body still holds its connection after %lld ms", cut);
    cr_assert(cut >= 1500 && cut <= 6000, "cut after %lld ms, body_timeout 2 s", cut);
    th_conn_close(&c);

    /* A body that arrives in time, in pieces, is served. */
    c = th_must_connect(p->port);
    head = "POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT "Content-Length: 9\r\n\r\n";
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    for (const char *b = "{\"a\":\"b\"}"; *b; b++) {
        th_sleep_ms(100);
        cr_assert_eq(th_send_raw(c, b, 1, TH_IO_MS), 0);
    }
    th_resp_t *r = NULL;
    cr_assert_eq(th_read_response(c, &r, TH_IO_MS), 0);
    cr_assert_eq(r->status, 200, "%d %.200s", r->status, r->body);
    th_resp_free(&r);
    th_conn_close(&c);
}

/* ---- one address at its limit, others served ---- */

/* GET /health from the local address src (e.g. "127.0.0.2") to
 * 127.0.0.1:port on a connection of its own; returns the status, or
 * -errno when no answer came within timeout_ms. */
static int s_health_from(const char *src, int port, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s: %s", src,
                 strerror(errno));
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc < 0 && errno == EINPROGRESS)
        rc = th__poll(fd, POLLOUT, deadline) > 0 ? 0 : -ETIMEDOUT;
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    if (rc == 0)
        rc = th__send(fd, req, sizeof req - 1, deadline);
    char buf[512];
    if (rc == 0)
        rc = th__recv(fd, buf, sizeof buf, deadline);
    close(fd);
    if (rc < 0)
        return rc;
    int status = 0;
    return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : -EPROTO;
}

/* Opens n connections from 127.0.0.1, each sending start (a request that
 * never ends), and waits (10 s at most) until all but held of them are
 * closed by the worker; returns how many were, and keeps the reply the
 * worker sent one of them in *refusal (kept). */
static int s_open_slow(int port, int n, int held, const char *start,
                       const char **refusal)
{
    th_conn_t **cs = th_keep(calloc((size_t)n, sizeof *cs));
    bool *closed = th_keep(calloc((size_t)n, sizeof *closed));
    for (int i = 0; i < n; i++) {
        cs[i] = th_must_connect(port);
        cr_assert_eq(th_send_raw(cs[i], start, strlen(start), TH_IO_MS), 0);
    }
    int nclosed = 0;
    *refusal = NULL;
    for (long long end = th_now_ms() + 10000; nclosed < n - held && th_now_ms() < end;) {
        th_sleep_ms(100);
        for (int i = 0; i < n; i++) {
            th_resp_t *r = NULL;
            if (closed[i])
                continue;
            if (!*refusal && th_read_response(cs[i], &r, 1) == 0) {
                *refusal = th_fmt("%d %s", r->status, r->body);
                th_resp_free(&r);
            }
            if (th_peer_closed(cs[i])) {
                closed[i] = true;
                nclosed++;
            }
        }
    }
    return nclosed; /* the others stay open until th_cleanup */
}

static void s_assert_held_to_limit(const char *start)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc",
                                 "max_connections = 64\nmax_connections_per_ip = 16\n"
                                 "request_timeout = 60\nbody_timeout = 60\n");
    const char *refusal = NULL;
    int closed = s_open_slow(p->port, 120, 16, start, &refusal);
    /* Another address is accepted and served, again and again (a generous
     * bound: not a speed test). */
    for (int i = 0; i < 5; i++) {
        int st = s_health_from("127.0.0.2", p->port, 8000);
        cr_assert_eq(st, 200, "GET /health from 127.0.0.2: %d (%s)", st,
                     st < 0 ? strerror(-st) : "status");
    }
    cr_assert_eq(120 - closed, 16, "127.0.0.1 holds %d connections, its limit 16",
                 120 - closed);
    cr_assert_not_null(refusal, "no answer to a refused connection");
    cr_assert(strstr(refusal, "503 ") == refusal &&
                  strstr(refusal, "\"too_many_connections\""),
              "refused with %s", refusal);
}

/* Slow bodies (Content-Length: 1000000, one byte sent) from one address. */
Test(http_slow, slow_bodies_from_one_address_leave_room_for_others, .timeout = 60,
     .fini = th_cleanup)
{
    s_assert_held_to_limit("POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                           "Content-Length: 1000000\r\n\r\n{");
}

/* Slow headers (slowloris) from one address. */
Test(http_slow, slow_headers_from_one_address_leave_room_for_others, .timeout = 60,
     .fini = th_cleanup)
{
    s_assert_held_to_limit("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a");
}
