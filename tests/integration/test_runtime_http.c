/* test_runtime_http.c - the HTTP layer of the worker runtime
 * (common/http.c): keep-alive, body, URL and header limits, ambiguous
 * framing, routing (404, 405 with Allow, path parameters), clients that
 * stall or trickle, and JSON bodies (echoed, malformed, of the wrong
 * type, empty). build/tests/vapora-testsvc adds the routes the shipped
 * services do not have (JSON echo, path parameters). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

#define BACKEND "vapora-backend"
#define TESTSVC "vapora-testsvc"

/* One request on a new connection; asserts it is refused with status and
 * code, and that the worker goes on serving. */
static void s_assert_refused(const th_proc_t *p, const char *method, const char *path,
                             const char *headers, const char *body, int status,
                             const char *code)
{
    th_resp_t *r = th_must_request(p->port, method, path, headers, body);
    th_assert_error(r, status, code, NULL);
    th_resp_free(&r);
    th_assert_serving(p->port);
}

/* Sends the raw request req on a new connection; asserts that an error
 * (status, code) is the answer within 3 s, whatever the request still
 * owes, and that the connection is then closed (what: the case). */
static void s_assert_answered_and_closed(const th_proc_t *p, const char *req,
                                         int status, const char *code, const char *what)
{
    th_assert_answered_and_closed(p->port, req, strlen(req), status, code, what);
}

/* ---- keep-alive ---- */

Test(http, keepalive_1000_requests_one_connection, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", NULL);
    th_conn_t *c = th_must_connect(p->port);
    int fd = th_conn_fd(c);
    for (int i = 0; i < 1000; i++) {
        th_resp_t *r = th_must_exchange(c, "GET", "/health", NULL, NULL);
        cr_assert_eq(r->status, 200, "request %d: %d %s", i, r->status, r->body);
        const char *conn = th_resp_header(r, "Connection");
        cr_assert(!conn || strcasecmp(conn, "close") != 0,
                  "request %d: Connection: close", i);
        th_resp_free(&r);
        cr_assert_eq(th_conn_fd(c), fd);
    }
    cr_assert_not(th_peer_closed(c), "the server closed the keep-alive connection");
    th_resp_t *r = th_must_exchange(c, "GET", "/metrics", NULL, NULL);
    const char *const labels[] = {"route=\"/health\"", "status=\"200\"", NULL};
    double v = th_metric(r->body, "vapora_http_requests_total", labels);
    cr_assert_eq(v, 1000.0, "/health 200 counted %g times", v);
    th_resp_free(&r);
    th_conn_close(&c);
}

/* ---- body limits ---- */

/* A JSON object of exactly n bytes: {"p":"aaa..."}. The caller frees it. */
static char *s_json_of_size(size_t n)
{
    cr_assert(n >= 8);
    char *s = malloc(n + 1);
    memcpy(s, "{\"p\":\"", 6);
    memset(s + 6, 'a', n - 8);
    memcpy(s + n - 2, "\"}", 3);
    return s;
}

Test(http, body_over_limit_by_content_length, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", "max_body_bytes = 1024\n");
    char *body = s_json_of_size(1024);
    th_resp_t *r = th_must_request(p->port, "POST", "/echo", TH_JSON_CT, body);
    cr_assert_eq(r->status, 200, "a body of exactly 1024 bytes: %d %.300s", r->status,
                 r->body);
    cr_assert_eq(r->body_len, 1024);
    th_resp_free(&r);
    free(body);

    body = s_json_of_size(1025);
    th_conn_t *c = th_must_connect(p->port);
    r = th_must_exchange(c, "POST", "/echo", TH_JSON_CT, body);
    free(body);
    th_assert_error(r, 413, "payload_too_large", NULL);
    th_resp_free(&r);
    cr_assert_eq(th_wait_closed(c, 3000), 0, "the connection stayed open after 413");
    th_conn_close(&c);
    th_assert_serving(p->port);
}

Test(http, body_over_limit_refused_before_body_is_sent, .timeout = 30,
     .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", "max_body_bytes = 1024\n");
    /* No body follows: the 413 must come from the headers alone. */
    s_assert_answered_and_closed(p,
                                 "POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                                 "Content-Length: 1048576\r\n\r\n",
                                 413, "payload_too_large", "1 MiB announced");
    th_assert_serving(p->port);
}

/* Requests whose framing is in doubt are answered at once and the
 * connection closed: what follows is never read as a request. */
Test(http, ambiguous_framing_is_refused_and_closed, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    static const struct {
        const char *head;
        int status;
        const char *code;
    } cases[] = {
        {"Content-Length: 2\r\nContent-Length: 5\r\n", 400, "bad_request"},
        {"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", 400, "bad_request"},
        {"Content-Length: 9223372036854775808\r\n", 413, "payload_too_large"},
        {"Transfer-Encoding: gzip\r\n", 400, "bad_request"},
        {"Transfer-Encoding: chunked, identity\r\n", 400, "bad_request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        s_assert_answered_and_closed(
            p,
            th_fmt("POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT "%s\r\n{}",
                   cases[i].head),
            cases[i].status, cases[i].code, th_fmt("case %zu", i));
    /* A request refused already (no route) with a body too large for us
     * gets its answer before the body, too. */
    s_assert_answered_and_closed(p,
                                 "POST /nope HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                                 "Content-Length: 100000000000\r\n\r\n",
                                 404, "not_found", "/nope");
    /* %00 would cut the path short once decoded. */
    th_resp_t *r = th_must_request(p->port, "GET", "/health%00.json", NULL, NULL);
    th_assert_error(r, 400, "bad_request", NULL);
    th_resp_free(&r);
    r = th_must_request(p->port, "GET", "/items/a%00b", NULL, NULL);
    th_assert_error(r, 400, "bad_request", NULL);
    th_resp_free(&r);
    th_assert_serving(p->port);
}

/* Sends body to POST /echo in chunks of chunk bytes on c. */
static void s_send_chunked(th_conn_t *c, const char *body, size_t chunk)
{
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                       "Transfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    for (size_t off = 0, len = strlen(body); off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        char size[32];
        snprintf(size, sizeof size, "%zx\r\n", n);
        cr_assert_eq(th_send_raw(c, size, strlen(size), TH_IO_MS), 0);
        cr_assert_eq(th_send_raw(c, body + off, n, TH_IO_MS), 0);
        cr_assert_eq(th_send_raw(c, "\r\n", 2, TH_IO_MS), 0);
    }
    cr_assert_eq(th_send_raw(c, "0\r\n\r\n", 5, TH_IO_MS), 0);
}

Test(http, chunked_body_over_limit, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", "max_body_bytes = 1024\n");
    th_conn_t *c = th_must_connect(p->port);
    char *body = s_json_of_size(1000); /* under the limit: echoed */
    s_send_chunked(c, body, 300);
    th_resp_t *r = NULL;
    cr_assert_eq(th_read_response(c, &r, TH_IO_MS), 0);
    cr_assert_eq(r->status, 200, "chunked 1000 bytes: %d %.300s", r->status, r->body);
    cr_assert_str_eq(r->body, body);
    th_resp_free(&r);
    free(body);

    body = s_json_of_size(4096);
    s_send_chunked(c, body, 512);
    free(body);
    cr_assert_eq(th_read_response(c, &r, TH_IO_MS), 0);
    th_assert_error(r, 413, "payload_too_large", NULL);
    th_resp_free(&r);
    th_conn_close(&c);

    /* One that keeps sending is cut off. */
    c = th_must_connect(p->port);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                       "Transfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    static char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 65536);
    memset(chunk + n, 'x', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    /* It is answered 413 at once, and what it still sends is dropped for
     * a bounded time and amount (the lingering close), then cut. */
    size_t sent = 0;
    while (sent < (64u << 20) &&
           th_send_raw(c, chunk, (size_t)n + 65536 + 2, TH_IO_MS) == 0)
        sent += 65536;
    cr_assert_lt(sent, 64u << 20, "64 MiB went into a 1 KiB limit");
    th_conn_close(&c);
    th_assert_serving(p->port);
}

/* ---- JSON bodies ---- */

Test(json, valid_object_is_echoed, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    const char *sent = "{\"name\":\"t\\u00e9st\",\"n\":42,\"list\":[1,2.5,null,true],"
                       "\"nested\":{\"a\":{\"b\":\"c\"}}}";
    th_resp_t *r =
        th_must_request(p->port, "POST", "/echo",
                        "Content-Type: application/json; charset=utf-8\r\n", sent);
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    th_assert_type(r, "application/json");
    json_t *want = json_loads(sent, 0, NULL);
    bool same = json_equal(want, th_must_json(r));
    json_decref(want);
    cr_assert(same, "echoed %s, sent %s", r->body, sent);
    th_resp_free(&r);
}

Test(json, malformed_is_400_invalid_json, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    s_assert_refused(p, "POST", "/echo", TH_JSON_CT, "{\"a\": ", 400, "invalid_json");
    /* Not an object. */
    s_assert_refused(p, "POST", "/echo", TH_JSON_CT, "[1,2]", 400, "invalid_json");
}

Test(json, wrong_content_type_is_415, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    s_assert_refused(p, "POST", "/echo", "Content-Type: text/plain\r\n", "{\"a\":1}",
                     415, "unsupported_media_type");
    /* No Content-Type. */
    s_assert_refused(p, "POST", "/echo", NULL, "{\"a\":1}", 415,
                     "unsupported_media_type");
}

Test(json, empty_body_is_400_missing_body, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    s_assert_refused(p, "POST", "/echo", TH_JSON_CT, "", 400, "missing_body");
}

/* ---- routing and request limits ---- */

Test(http, unknown_route_is_404, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", NULL);
    s_assert_refused(p, "GET", "/surely/not/a/route", NULL, NULL, 404, "not_found");
}

Test(http, wrong_method_is_405_with_allow, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", NULL);
    th_resp_t *r = th_must_request(p->port, "POST", "/health", NULL, "");
    th_assert_error(r, 405, "method_not_allowed", NULL);
    const char *allow = th_resp_header(r, "Allow");
    cr_assert_not_null(allow, "405 without an Allow header");
    cr_assert(strstr(allow, "GET"), "Allow: %s", allow);
    th_resp_free(&r);
    th_assert_serving(p->port);
}

/* "/health?pad=aaa..." of exactly n bytes. The caller frees it. */
static char *s_url_of_size(size_t n)
{
    const char *prefix = "/health?pad=";
    size_t pl = strlen(prefix);
    cr_assert(n > pl);
    char *s = malloc(n + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, 'a', n - pl);
    s[n] = '\0';
    return s;
}

Test(http, long_url_is_414, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", NULL);
    char *url = s_url_of_size(4096); /* max_url_bytes, query included */
    th_resp_t *r = th_must_request(p->port, "GET", url, NULL, NULL);
    free(url);
    cr_assert_eq(r->status, 200, "a URL of exactly 4096 bytes: %d %.300s", r->status,
                 r->body);
    th_resp_free(&r);
    url = s_url_of_size(5000);
    r = th_must_request(p->port, "GET", url, NULL, NULL);
    free(url);
    th_assert_error(r, 414, "uri_too_long", NULL);
    th_resp_free(&r);
    th_assert_serving(p->port);
}

/* A header line "X-Pad: aaa...\r\n" with n bytes of value (kept). */
static const char *s_pad_header(size_t n)
{
    char *hdr = th_keep(malloc(n + 16));
    memcpy(hdr, "X-Pad: ", 7);
    memset(hdr + 7, 'a', n);
    memcpy(hdr + 7 + n, "\r\n", 3);
    return hdr;
}

Test(http, huge_header_is_431, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", NULL);
    s_assert_refused(p, "GET", "/health", s_pad_header(10000), NULL, 431,
                     "headers_too_large");
}

Test(http, header_just_under_libmicrohttpd_memory_gets_json_431, .timeout = 30,
     .fini = th_cleanup)
{
    /* Between max_header_bytes and what libmicrohttpd can hold: our JSON 431,
     * never a silently dropped connection. */
    th_proc_t *p = th_must_start(BACKEND, "backend", NULL);
    s_assert_refused(p, "GET", "/health", s_pad_header(11000), NULL, 431,
                     "headers_too_large");
}

Test(http, raised_header_limit_is_honoured, .timeout = 30, .fini = th_cleanup)
{
    /* max_header_bytes above the default must not be capped silently by
     * libmicrohttpd's per-connection memory. */
    th_proc_t *p = th_must_start(BACKEND, "backend", "max_header_bytes = 24576\n");
    th_resp_t *r =
        th_must_request(p->port, "GET", "/health", s_pad_header(20000), NULL);
    cr_assert_eq(r->status, 200, "%d %.200s", r->status, r->body);
    th_resp_free(&r);
}

Test(http, path_parameter, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    th_resp_t *r = th_must_request(p->port, "GET", "/items/abc", NULL, NULL);
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    const char *id = NULL;
    json_t *j = th_must_json(r);
    cr_assert_eq(json_unpack(j, "{s:s}", "id", &id), 0, "%.300s", r->body);
    cr_assert_str_eq(id, "abc");
    cr_assert_eq(json_object_size(j), 1, "%.300s", r->body);
    th_resp_free(&r);
    r = th_must_request(p->port, "GET", "/items/abc/def", NULL, NULL);
    th_assert_error(r, 404, "not_found", NULL);
    th_resp_free(&r);
    /* A percent-decoded byte that is not UTF-8 is quoted as U+FFFD. */
    r = th_must_request(p->port, "GET", "/items/abc/%ff", NULL, NULL);
    th_assert_error(r, 404, "not_found", NULL);
    cr_assert(strstr(r->body, "\xef\xbf\xbd"), "%.300s", r->body);
    th_resp_free(&r);
    th_assert_serving(p->port);
}

/* ---- a client that stalls ---- */

Test(http, stalled_client_is_cut_and_others_served, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", "request_timeout = 1\n");
    th_conn_t *stalled = th_must_connect(p->port);
    const char *half = "GET /health HTTP/1.1\r\nHost: x\r\n"; /* no blank line */
    long long t0 = th_now_ms();
    cr_assert_eq(th_send_raw(stalled, half, strlen(half), TH_IO_MS), 0);
    th_sleep_ms(100);

    th_resp_t *r = th_must_request(p->port, "GET", "/health", NULL, NULL);
    long long served = th_now_ms() - t0;
    cr_assert_eq(r->status, 200);
    th_resp_free(&r);
    cr_assert_lt(served, 900, "the other client waited %lld ms", served);
    cr_assert_not(th_peer_closed(stalled), "the stalled connection closed too soon");

    int rc = th_wait_closed(stalled, 5000);
    long long cut = th_now_ms() - t0;
    cr_assert_eq(rc, 0, "the stalled connection is still open after %lld ms", cut);
    cr_assert(cut >= 800 && cut <= 4000, "cut after %lld ms, request_timeout 1 s", cut);
    th_conn_close(&stalled);
    th_assert_serving(p->port);
}

/* A client that keeps trickling header bytes (slowloris) is never idle
 * for request_timeout, yet must not hold its connection past it. */
Test(http, trickling_headers_are_cut_at_request_timeout, .timeout = 30,
     .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(BACKEND, "backend", "request_timeout = 2\n");
    th_conn_t *c = th_must_connect(p->port);
    const char *start = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    long long t0 = th_now_ms();
    cr_assert_eq(th_send_raw(c, start, strlen(start), TH_IO_MS), 0);
    bool closed = false;
    while (!closed && th_now_ms() - t0 < 8000) {
        th_sleep_ms(500);
        closed = th_peer_closed(c) || th_send_raw(c, "a", 1, TH_IO_MS) < 0;
    }
    long long cut = th_now_ms() - t0;
    cr_assert(closed, "a trickling client still holds its connection after %lld ms",
              cut);
    cr_assert(cut >= 1500 && cut <= 5000, "cut after %lld ms, request_timeout 2 s",
              cut);
    th_conn_close(&c);
    /* A keep-alive client that asks in time is not affected. */
    c = th_must_connect(p->port);
    for (int i = 0; i < 4; i++) {
        th_sleep_ms(800);
        th_resp_t *r = NULL;
        cr_assert_eq(th_send_request(c, "GET", "/health", NULL, NULL, 0), 0);
        cr_assert_eq(th_read_response(c, &r, 3000), 0,
                     "request %d on a kept connection", i);
        cr_assert_eq(r->status, 200);
        th_resp_free(&r);
    }
    th_conn_close(&c);
    th_assert_serving(p->port);
}
