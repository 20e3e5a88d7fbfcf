/* test_h1c.c - unit tests for common/h1c.c: the lean HTTP/1.1 client on
 * our loop, against a scripted server thread on loopback: a connection
 * kept and reused, one closed by "Connection: close", one the server closed
 * while it was kept (the request goes again on a new one), a refused
 * connect, a peer that never answers, one that closes without answering,
 * malformed and oversized answers, a big chunked body, an abort, and a
 * kept connection the server closes while idle. A guard timer fails a test
 * that would otherwise wait for ever. */
#define _GNU_SOURCE
#include "h1c.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef enum act {
    A_OK,            /* 200 with a Content-Length; the connection kept */
    A_CLOSE_HDR,     /* 200 with "Connection: close", then closes */
    A_OK_THEN_CLOSE, /* 200 kept-alive by its headers, then closes anyway */
    A_NOTHING,       /* closes without answering */
    A_SILENT,        /* never answers */
    A_MALFORMED,     /* a head with a folded header */
    A_BIG,           /* a 1 MiB body in 1000-byte chunks */
    A_COUNT,         /* 200 whose body is how many body bytes the request had */
    A_EARLY,         /* 401 kept-alive after the head, before reading the body */
} act_t;

#define SERVER_BUF (8u << 20)

static struct {
    int lfd, port;
    pthread_t th;
    atomic_int accepts, requests;
    _Atomic act_t act;
    atomic_bool stop;
    atomic_bool release; /* A_EARLY's server may read the rest now */
} S;

/* ---- the server ---- */

static size_t s_body_len; /* of the latest request */

static int s_read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    bool head_only = S.act == A_EARLY;
    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "content-length:");
        if (end && head_only)
            return 0;
        if (end && (!cl || len >= (size_t)(end + 4 - buf) + (size_t)atol(cl + 15))) {
            s_body_len = len - (size_t)(end + 4 - buf);
            return 0;
        }
    }
}

static void s_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

static void s_send_big(int fd)
{
    const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    s_send_all(fd, h, strlen(h));
    char chunk[1100];
    for (int i = 0; i < 1024; i++) {
        int n = snprintf(chunk, sizeof chunk, "3e8\r\n");
        memset(chunk + n, 'a' + i % 26, 1000);
        memcpy(chunk + n + 1000, "\r\n", 2);
        s_send_all(fd, chunk, (size_t)n + 1002);
    }
    s_send_all(fd, "0\r\n\r\n", 5);
}

/* Answers one request; false when the connection is to end. */
static bool s_answer(int fd)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    switch (S.act) {
    case A_OK: s_send_all(fd, ok, strlen(ok)); return true;
    case A_CLOSE_HDR: {
        const char *t =
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nby";
        s_send_all(fd, t, strlen(t));
        return false;
    }
    case A_OK_THEN_CLOSE: s_send_all(fd, ok, strlen(ok)); return false;
    case A_NOTHING: return false;
    case A_SILENT: sleep(2); return false;
    case A_MALFORMED: {
        const char *t =
            "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n";
        s_send_all(fd, t, strlen(t));
        return true;
    }
    case A_BIG: s_send_big(fd); return true;
    case A_EARLY: {
        const char *t = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno";
        s_send_all(fd, t, strlen(t));
        static char sink[4096];
        /* the client reads the answer with its body stuck, and decides */
        for (int i = 0; i < 500 && !S.release; i++)
            usleep(10 * 1000);
        while (recv(fd, sink, sizeof sink, 0) > 0) {
        } /* the rest of the body, until the client gives up on it */
        return false;
    }
    case A_COUNT: {
        char t[128];
        char n[32];
        snprintf(n, sizeof n, "%zu", s_body_len);
        snprintf(t, sizeof t, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(n), n);
        s_send_all(fd, t, strlen(t));
        return true;
    }
    }
    return false;
}

static void *s_server(void *arg)
{
    (void)arg;
    char *buf = malloc(SERVER_BUF);
    while (!S.stop) {
        int fd = accept(S.lfd, NULL, NULL);
        if (fd < 0)
            break;
        S.accepts++;
        struct timeval tv = {.tv_sec = 3};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (s_read_request(fd, buf, SERVER_BUF) == 0) {
            S.requests++;
            if (!s_answer(fd))
                break;
        }
        close(fd);
    }
    free(buf);
    return NULL;
}

static void s_server_start(void)
{
    memset(&S, 0, sizeof S);
    S.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(bind(S.lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
              listen(S.lfd, 16) == 0);
    getsockname(S.lfd, (struct sockaddr *)&a, &len);
    S.port = ntohs(a.sin_port);
    pthread_create(&S.th, NULL, s_server, NULL);
}

static void s_server_stop(void)
{
    S.stop = true;
    shutdown(S.lfd, SHUT_RDWR);
    pthread_join(S.th, NULL);
    close(S.lfd);
}

/* ---- the client ---- */

typedef struct call {
    h1c_req_t *req;
    int done;
    h1c_result_t res;
    int status;
    sbuf_t body;
    struct call *then;    /* started from this one's done */
    const char *req_body; /* the request's body; NULL: "{}" */
    size_t req_len;
    char head[128];
} call_t;

static struct {
    loop_t *loop;
    h1c_t *h;
    int pending;
    bool timed_out;
    loop_timer_t *guard;
} C;

static void s_start(call_t *c, long timeout_ms, size_t max_body, int port);

static void s_done(h1c_result_t res, int status, double ra, void *ud)
{
    (void)ra;
    call_t *c = ud;
    c->req = NULL;
    c->done++;
    c->res = res;
    c->status = status;
    if (c->then)
        s_start(c->then, 2000, 0, S.port);
    if (--C.pending == 0)
        loop_stop(C.loop);
}

static void s_start(call_t *c, long timeout_ms, size_t max_body, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!c->req_body) {
        c->req_body = "{}";
        c->req_len = 2;
    }
    snprintf(c->head, sizeof c->head,
             "POST /v1/x HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             c->req_len);
    h1c_opts_t o = {.addr = (struct sockaddr *)&a,
                    .addrlen = sizeof a,
                    .head = c->head,
                    .head_len = strlen(c->head),
                    .body = c->req_body,
                    .body_len = c->req_len,
                    .body_out = &c->body,
                    .max_body = max_body,
                    .timeout_ms = timeout_ms};
    C.pending++;
    c->req = h1c_start(C.h, &o, s_done, c);
    cr_assert_not_null(c->req);
}

static void s_on_guard(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    (void)ud;
    C.guard = NULL;
    C.timed_out = true;
    loop_stop(loop);
}

/* Runs the loop until every call started is done (or ms passed). */
static void s_run(uint64_t ms)
{
    C.timed_out = false;
    C.guard = loop_add_timer(C.loop, ms, 0, s_on_guard, NULL);
    loop_run(C.loop);
    loop_cancel_timer(C.loop, &C.guard);
}

static void s_setup(void)
{
    s_server_start();
    C.loop = loop_new();
    C.h = h1c_new(C.loop, 8, 60000);
    C.pending = 0;
}

static void s_teardown(void)
{
    h1c_destroy(&C.h);
    loop_destroy(&C.loop);
    s_server_stop();
}

static void s_one(call_t *c, act_t act, long timeout_ms, size_t max_body)
{
    S.act = act;
    s_start(c, timeout_ms, max_body, S.port);
    s_run(5000);
    cr_assert_not(C.timed_out, "no answer within 5 s");
    cr_assert_eq(c->done, 1);
}

TestSuite(h1c, .init = s_setup, .fini = s_teardown);

Test(h1c, a_kept_connection_carries_the_next_requests)
{
    for (int i = 0; i < 3; i++) {
        call_t c = {0};
        s_one(&c, A_OK, 2000, 0);
        cr_assert_eq(c.res, H1C_OK);
        cr_assert_eq(c.status, 200);
        cr_assert(c.body.len == 5 && memcmp(c.body.data, "hello", 5) == 0);
        sbuf_free(&c.body);
    }
    cr_assert_eq(S.accepts, 1);
    cr_assert_eq(h1c_reused(C.h), 2);
    cr_assert_eq(h1c_open(C.h), 1);
}

Test(h1c, connection_close_is_not_reused)
{
    call_t a = {0}, b = {0};
    s_one(&a, A_CLOSE_HDR, 2000, 0);
    cr_assert_eq(a.res, H1C_OK);
    cr_assert_eq(h1c_open(C.h), 0);
    s_one(&b, A_CLOSE_HDR, 2000, 0);
    cr_assert(b.res == H1C_OK && b.body.len == 2);
    cr_assert_eq(S.accepts, 2);
    cr_assert_eq(h1c_reused(C.h), 0);
    sbuf_free(&a.body);
    sbuf_free(&b.body);
}

Test(h1c, a_kept_connection_the_peer_closed_is_retried_once_on_a_new_one)
{
    /* b starts inside a's done(), before the loop can see the close */
    call_t a = {0}, b = {0};
    a.then = &b;
    S.act = A_OK_THEN_CLOSE;
    s_start(&a, 2000, 0, S.port);
    s_run(5000);
    cr_assert_not(C.timed_out);
    cr_assert_eq(a.res, H1C_OK);
    cr_assert_eq(b.done, 1);
    cr_assert_eq(b.res, H1C_OK, "b: %d", b.res);
    cr_assert(b.body.len == 5 && memcmp(b.body.data, "hello", 5) == 0);
    cr_assert_eq(S.accepts, 2);
    cr_assert_eq(S.requests, 2, "the dead connection carried nothing");
    sbuf_free(&a.body);
    sbuf_free(&b.body);
}

Test(h1c, failures_are_told_and_close_the_connection)
{
    call_t c = {0};
    s_one(&c, A_NOTHING, 2000, 0);
    cr_assert_eq(c.res, H1C_EMPTY);
    memset(&c, 0, sizeof c);
    s_one(&c, A_MALFORMED, 2000, 0);
    cr_assert_eq(c.res, H1C_MALFORMED);
    cr_assert_eq(h1c_open(C.h), 0);
    memset(&c, 0, sizeof c);
    s_one(&c, A_BIG, 2000, 4096);
    cr_assert_eq(c.res, H1C_TOO_BIG);
    cr_assert_eq(c.status, 200);
    cr_assert_eq(h1c_open(C.h), 0);
    sbuf_free(&c.body);
    memset(&c, 0, sizeof c);
    s_one(&c, A_SILENT, 200, 0);
    cr_assert_eq(c.res, H1C_TIMEOUT);
    cr_assert_eq(h1c_open(C.h), 0);
}

Test(h1c, a_refused_connect)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* a port nobody listens on */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    call_t c = {0};
    s_start(&c, 2000, 0, ntohs(a.sin_port));
    s_run(5000);
    close(fd);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.res, H1C_CONNECT);
    cr_assert_eq(h1c_open(C.h), 0);
}

Test(h1c, a_big_chunked_body_arrives_whole)
{
    call_t c = {0};
    s_one(&c, A_BIG, 5000, 0);
    cr_assert_eq(c.res, H1C_OK);
    cr_assert_eq(c.body.len, 1024 * 1000);
    for (size_t i = 0; i < c.body.len; i += 1000)
        cr_assert_eq(c.body.data[i], 'a' + (int)(i / 1000) % 26);
    cr_assert_eq(h1c_open(C.h), 1);
    sbuf_free(&c.body);
}

static void s_on_abort(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    call_t *c = ud;
    h1c_abort(C.h, &c->req);
    loop_stop(loop);
}

Test(h1c, an_abort_ends_the_request_and_its_connection)
{
    call_t c = {0};
    S.act = A_SILENT;
    s_start(&c, 5000, 0, S.port);
    loop_add_timer(C.loop, 100, 0, s_on_abort, &c);
    s_run(5000);
    cr_assert_null(c.req);
    cr_assert_eq(c.done, 0, "done() never comes after an abort");
    cr_assert_eq(h1c_open(C.h), 0);
}

Test(h1c, a_kept_connection_closed_while_idle_is_dropped)
{
    call_t c = {0};
    s_one(&c, A_OK_THEN_CLOSE, 2000, 0);
    cr_assert_eq(c.res, H1C_OK);
    cr_assert_eq(h1c_open(C.h), 1);
    for (int i = 0; i < 50 && h1c_open(C.h); i++) {
        C.guard = loop_add_timer(C.loop, 20, 0, s_on_guard, NULL);
        loop_run(C.loop);
    }
    cr_assert_eq(h1c_open(C.h), 0);
    sbuf_free(&c.body);
}

Test(h1c, a_big_request_body_goes_out_whole)
{
    size_t n = 6u << 20; /* past what one sendmsg takes on loopback */
    char *big = malloc(n);
    memset(big, 'x', n);
    call_t c = {.req_body = big, .req_len = n};
    s_one(&c, A_COUNT, 10000, 0);
    cr_assert_eq(c.res, H1C_OK);
    char want[32];
    snprintf(want, sizeof want, "%zu", n);
    cr_assert(c.body.len == strlen(want) && memcmp(c.body.data, want, c.body.len) == 0,
              "the server got %.*s bytes", (int)c.body.len, c.body.data);
    sbuf_free(&c.body);
    free(big);
}

/* The last of the three numbers in a tcp_rmem-like file (16 MiB if none). */
static size_t s_sysctl_max(const char *path)
{
    unsigned long a, b, c = 16ul << 20;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &a, &b, &c) != 3)
            c = 16ul << 20;
        fclose(f);
    }
    return c;
}

Test(h1c, an_answer_before_the_whole_request_went_out_is_not_reused)
{
    /* the server answers after the head, reading none of the body: more
     * than the two sockets' buffers take (tcp_rmem and tcp_wmem at most) */
    size_t n = s_sysctl_max("/proc/sys/net/ipv4/tcp_rmem") +
               s_sysctl_max("/proc/sys/net/ipv4/tcp_wmem") + (4u << 20);
    char *big = malloc(n);
    memset(big, 'x', n);
    call_t c = {.req_body = big, .req_len = n};
    s_one(&c, A_EARLY, 10000, 0);
    unsigned open = h1c_open(C.h);
    S.release = true;
    cr_assert_eq(c.res, H1C_OK);
    cr_assert_eq(c.status, 401);
    cr_assert_eq(open, 0, "the peer still reads the rest: not kept");
    call_t d = {0};
    s_one(&d, A_OK, 2000, 0);
    cr_assert_eq(d.res, H1C_OK);
    cr_assert_eq(S.accepts, 2);
    sbuf_free(&c.body);
    sbuf_free(&d.body);
    free(big);
}

Test(h1c, a_connect_that_fails_at_once_is_told_through_done)
{
    call_t c = {0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "224.0.0.1", &a.sin_addr); /* ENETUNREACH, synchronously */
    h1c_opts_t o = {.addr = (struct sockaddr *)&a,
                    .addrlen = sizeof a,
                    .head = "x",
                    .head_len = 1,
                    .body_out = &c.body};
    C.pending++;
    c.req = h1c_start(C.h, &o, s_done, &c);
    cr_assert_not_null(c.req);
    cr_assert_eq(c.done, 0, "never inside h1c_start");
    s_run(5000);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.res, H1C_CONNECT);
    cr_assert_eq(h1c_open(C.h), 0);
}

Test(h1c, connections_kept_past_their_time_are_closed)
{
    h1c_destroy(&C.h);
    C.h = h1c_new(C.loop, 8, 200);
    call_t c = {0};
    s_one(&c, A_OK, 2000, 0);
    cr_assert_eq(h1c_open(C.h), 1);
    for (int i = 0; i < 20 && h1c_open(C.h); i++) { /* no request comes: the timer */
        C.guard = loop_add_timer(C.loop, 50, 0, s_on_guard, NULL);
        loop_run(C.loop);
    }
    cr_assert_eq(h1c_open(C.h), 0);
    sbuf_free(&c.body);
}
