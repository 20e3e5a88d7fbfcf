/* test_h1parse.c - unit tests for common/h1parse.c: an HTTP/1.1 answer
 * parsed as it arrives. Each answer is fed whole and byte by byte (the
 * result must not depend on how the bytes are cut), then the malformed
 * answers a hostile peer can send, the body bound, and what follows an
 * answer on the same connection. */
#include "h1parse.h"

#include <criterion/criterion.h>
#include <string.h>

typedef struct outcome {
    h1parse_rc_t rc;
    size_t used;
    sbuf_t body;
} outcome_t;

/* Feeds text in pieces of `step` bytes (0: whole), then the connection's
 * end when eof. */
static outcome_t s_feed(h1parse_t *p, const char *text, size_t step, bool eof)
{
    outcome_t o = {.rc = H1P_MORE};
    size_t n = strlen(text), pos = 0;
    while (pos < n && o.rc == H1P_MORE) {
        size_t k = step && n - pos > step ? step : n - pos, used = 0;
        o.rc = h1parse_feed(p, text + pos, k, &o.body, &used);
        pos += used;
    }
    o.used = pos;
    if (eof && o.rc == H1P_MORE)
        o.rc = h1parse_eof(p);
    return o;
}

/* The answer text parses to rc with body (NULL: not checked), fed whole
 * and byte by byte alike. Returns the status. */
static int s_check(const char *text, bool eof, h1parse_rc_t rc, const char *body)
{
    int status = -1;
    for (size_t step = 0; step <= 1; step++) {
        h1parse_t p = {0};
        h1parse_init(&p, 0, false);
        outcome_t o = s_feed(&p, text, step, eof);
        cr_assert_eq(o.rc, rc, "step %zu: rc %d, expected %d, for %s", step, o.rc, rc,
                     text);
        if (body)
            cr_assert(o.body.len == strlen(body) &&
                          memcmp(o.body.data ? o.body.data : "", body, o.body.len) == 0,
                      "step %zu: body '%.*s', expected '%s'", step, (int)o.body.len,
                      o.body.data ? o.body.data : "", body);
        cr_assert(status < 0 || status == p.status);
        status = p.status;
        sbuf_free(&o.body);
        h1parse_free(&p);
    }
    return status;
}

Test(h1parse, content_length_body)
{
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 11\r\n\r\n{\"a\":\"xyz\"}";
    cr_assert_eq(s_check(t, false, H1P_DONE, "{\"a\":\"xyz\"}"), 200);
    h1parse_t p = {0};
    h1parse_init(&p, 0, false);
    outcome_t o = s_feed(&p, t, 0, false);
    cr_assert(p.keep_alive);
    cr_assert_eq(p.retry_after, 0);
    sbuf_free(&o.body);
    h1parse_free(&p);
}

Test(h1parse, chunked_body_with_extensions_and_trailers)
{
    cr_assert_eq(
        s_check("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
                false, H1P_DONE, "hello, world"),
        201);
    cr_assert_eq(s_check("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"
                         "A\r\n0123456789\r\n0\r\n\r\n",
                         false, H1P_DONE, "0123456789"),
                 200);
    /* bare LF line ends are read as line ends */
    cr_assert_eq(s_check("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n",
                         false, H1P_DONE, "abc"),
                 200);
}

Test(h1parse, body_until_close)
{
    const char *t = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end";
    cr_assert_eq(s_check(t, true, H1P_DONE, "to the end"), 200);
    h1parse_t p = {0};
    h1parse_init(&p, 0, false);
    outcome_t o = s_feed(&p, t, 0, false);
    cr_assert_eq(o.rc, H1P_MORE); /* only the connection's end ends it */
    cr_assert_not(p.keep_alive);
    sbuf_free(&o.body);
    h1parse_free(&p);
}

Test(h1parse, interim_answers_are_skipped)
{
    cr_assert_eq(
        s_check(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
            "Content-Length: 2\r\n\r\nno",
            false, H1P_DONE, "no"),
        429);
    s_check("HTTP/1.1 101 Switching Protocols\r\n\r\n", false, H1P_MALFORMED, NULL);
}

Test(h1parse, retry_after_and_connection_close)
{
    h1parse_t p = {0};
    h1parse_init(&p, 0, false);
    outcome_t o = s_feed(
        &p,
        "HTTP/1.1 503 Unavailable\r\nRetry-After: 120\r\nConnection: keep-alive, "
        "close\r\nContent-Length: 0\r\n\r\n",
        0, false);
    cr_assert_eq(o.rc, H1P_DONE);
    cr_assert_eq(p.status, 503);
    cr_assert_eq(p.retry_after, 120);
    cr_assert_not(p.keep_alive);
    /* an HTTP-date Retry-After is not a number of seconds: none */
    h1parse_init(&p, 0, false);
    sbuf_reset(&o.body);
    o = s_feed(&p,
               "HTTP/1.1 429 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
               "Content-Length: 0\r\n\r\n",
               0, false);
    cr_assert_eq(o.rc, H1P_DONE);
    cr_assert_eq(p.retry_after, 0);
    sbuf_free(&o.body);
    h1parse_free(&p);
}

Test(h1parse, answers_without_a_body)
{
    cr_assert_eq(s_check("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false,
                         H1P_DONE, ""),
                 204);
    cr_assert_eq(s_check("HTTP/1.1 304 Not Modified\r\n\r\n", false, H1P_DONE, ""),
                 304);
    /* one that says it has a body anyway: its bytes may still come, so the
     * connection is not reused */
    h1parse_t q = {0};
    h1parse_init(&q, 0, false);
    outcome_t d =
        s_feed(&q, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, false);
    cr_assert(d.rc == H1P_DONE && !q.keep_alive);
    h1parse_free(&q);
    cr_assert_eq(
        s_check("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, H1P_DONE, ""),
        200);
    h1parse_t p = {0}; /* the answer to a HEAD request */
    h1parse_init(&p, 0, true);
    outcome_t o = s_feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 0, false);
    cr_assert_eq(o.rc, H1P_DONE);
    cr_assert_eq(o.body.len, 0);
    sbuf_free(&o.body);
    h1parse_free(&p);
}

Test(h1parse, malformed_answers)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 x\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\na",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: "
        "3\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty-name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 "
        "junk\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        s_check(bad[i], false, H1P_MALFORMED, NULL);
}

Test(h1parse, heads_and_lines_are_bounded)
{
    sbuf_t t = {0};
    sbuf_puts(&t, "HTTP/1.1 200 OK\r\n");
    while (t.len <= H1PARSE_MAX_HEAD)
        sbuf_puts(&t, "X-Filler: 0123456789012345678901234567890123456789\r\n");
    sbuf_puts(&t, "\r\n");
    s_check(t.data, false, H1P_MALFORMED, NULL);
    sbuf_reset(&t); /* a chunk line that never ends */
    sbuf_puts(&t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    while (t.len <= 2 * H1PARSE_MAX_HEAD)
        sbuf_puts(&t, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    s_check(t.data, false, H1P_MALFORMED, NULL);
    sbuf_free(&t);
}

Test(h1parse, the_body_bound)
{
    for (size_t step = 0; step <= 1; step++) {
        h1parse_t p = {0};
        h1parse_init(&p, 4, false);
        outcome_t o = s_feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde",
                             step, false);
        cr_assert_eq(o.rc, H1P_TOO_BIG);
        h1parse_init(&p, 4, false);
        sbuf_reset(&o.body);
        o = s_feed(&p,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n",
                   step, false);
        cr_assert_eq(o.rc, H1P_TOO_BIG);
        h1parse_init(&p, 4, false);
        sbuf_reset(&o.body);
        o = s_feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", step, false);
        cr_assert_eq(o.rc, H1P_DONE);
        h1parse_init(&p, 4, false); /* a length past the bound: said at the head */
        sbuf_reset(&o.body);
        o = s_feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", step, false);
        cr_assert_eq(o.rc, H1P_TOO_BIG);
        sbuf_free(&o.body);
        h1parse_free(&p);
    }
}

Test(h1parse, what_follows_an_answer_is_left)
{
    const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    h1parse_t p = {0};
    h1parse_init(&p, 0, false);
    sbuf_t body = {0};
    size_t used;
    cr_assert_eq(h1parse_feed(&p, t, strlen(t), &body, &used), H1P_DONE);
    cr_assert_eq(used, strlen(t) - strlen("HTTP/1.1 200 OK\r\n"));
    cr_assert_eq(body.len, 2);
    sbuf_free(&body);
    h1parse_free(&p);
}

Test(h1parse, the_end_of_the_connection)
{
    /* nothing at all: the caller's to judge */
    h1parse_t p = {0};
    h1parse_init(&p, 0, false);
    cr_assert_eq(h1parse_eof(&p), H1P_MORE);
    h1parse_free(&p);
    /* a head cut short, a body cut short, a chunked body cut short */
    s_check("HTTP/1.1 200 OK\r\nContent-Le", true, H1P_MALFORMED, NULL);
    s_check("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, H1P_MALFORMED,
            NULL);
    s_check("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", true,
            H1P_MALFORMED, NULL);
}

/* A peer that is not HTTP (a server on the wrong port) fails at its first
 * line, and a bad header at its own line: neither waits for a blank line
 * that may never come. */
Test(h1parse, each_line_is_checked_as_it_comes)
{
    static const char *const early[] = {
        "SSH-2.0-OpenSSH_9.6\r\n",
        "-ERR unknown command\r\n",
        "HTTP/1.1 2000 OK\r\n",
        "HTTP/1.1 200 OK\r\nnot a header\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n",
    };
    for (size_t i = 0; i < sizeof early / sizeof *early; i++)
        s_check(early[i], false, H1P_MALFORMED, NULL);
}
