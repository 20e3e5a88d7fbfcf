/* test_http.c - unit tests for the HTTP layer as a whole (common/http*.c):
 * routing by method and pattern with {params}, 404 and 405 with Allow, JSON
 * body checks (415, 400), replies deferred through the pool, and the
 * request metrics. A client thread talks to a server running on this
 * thread's loop (test_http_fixture.h). Routing alone: test_http_route.c. */
#define _GNU_SOURCE
#include "http.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "sbuf.h"
#include "test_http_fixture.h"

typedef struct fixture {
    hfix_t h;
    pool_t *pool;
    /* Client results: raw responses, one per request. */
    char resp[16][2048];
    const char *reqs[16];
    int nreqs;
} fixture_t;

static void s_item(http_req_t *req, void *ud)
{
    (void)ud;
    json_t *j = json_pack("{s:s,s:s}", "project", http_req_param(req, "pid"), "task",
                          http_req_param(req, "tid"));
    http_reply_json(req, 200, j);
}

static void s_echo(http_req_t *req, void *ud)
{
    (void)ud;
    http_reply_json(req, 201, json_incref(http_req_json(req)));
}

static void s_work(void *arg)
{
    *(int *)arg = 7;
}

static void s_work_done(http_req_t *req, void *arg, int status)
{
    http_reply_error(req, 200, "from_pool", "value %d status %d", *(int *)arg, status);
    free(arg);
}

static void s_deferred(http_req_t *req, void *ud)
{
    fixture_t *f = ud;
    int *v = calloc(1, sizeof *v);
    http_req_run_blocking(req, f->pool, s_work, s_work_done, v);
}

/* Sends each raw request on its own connection and stores the raw reply. */
static void *s_client(void *arg)
{
    fixture_t *f = arg;
    for (int i = 0; i < f->nreqs; i++)
        hfix_exchange(f->h.port, f->reqs[i], f->resp[i], sizeof f->resp[i]);
    return NULL;
}

static void s_run(fixture_t *f)
{
    http_config_t hc;
    http_config_defaults(&hc);
    hc.service = "unit";
    hc.max_body = 64;
    hfix_init(&f->h, &hc);
    f->pool = pool_new(f->h.loop, 1, 4);
    http_server_t *srv = f->h.srv;
    cr_assert_eq(http_route(srv, "GET", "/p/{pid}/t/{tid}", 0, s_item, f), 0);
    cr_assert_eq(http_route(srv, "POST", "/echo", HTTP_JSON_BODY, s_echo, f), 0);
    cr_assert_eq(http_route(srv, "GET", "/echo", 0, s_item, f), 0);
    cr_assert_eq(http_route(srv, "GET", "/deferred", 0, s_deferred, f), 0);
    cr_assert_eq(http_route(srv, "GET", "no-slash", 0, s_item, f), -EINVAL);
    hfix_start(&f->h);
    hfix_run(&f->h, s_client, f);
}

static void s_fini(fixture_t *f)
{
    pool_destroy(&f->pool);
    hfix_fini(&f->h);
}

#define REQ HFIX_REQ

static fixture_t F;

static void s_expect(int i, const char *status_line, const char *body_part)
{
    cr_assert(strncmp(F.resp[i], status_line, strlen(status_line)) == 0,
              "request %d: got %.60s", i, F.resp[i]);
    cr_assert(strstr(F.resp[i], body_part), "request %d: no \"%s\" in %s", i, body_part,
              F.resp[i]);
}

Test(http, routing_params_errors_and_deferred_replies)
{
    const char *reqs[] = {
        REQ("GET /p/12/t/ab", ""),
        REQ("GET /p/12/t", ""),
        REQ("DELETE /echo", ""),
        REQ("POST /echo", "Content-Type: application/json\r\nContent-Length: 7\r\n"
                          "\r\n{\"a\":1}"),
        REQ("POST /echo", "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"),
        REQ("POST /echo", "Content-Type: application/json\r\nContent-Length: 5\r\n"
                          "\r\n{\"a\":"),
        REQ("POST /echo", "Content-Type: application/json\r\nContent-Length: 3\r\n"
                          "\r\n[1]"),
        REQ("POST /echo", "Content-Type: application/json\r\nContent-Length: 0\r\n"),
        REQ("GET /deferred", ""),
        REQ("POST /echo", "Content-Type: application/json\r\nContent-Length: 100\r\n"),
        REQ("GET /p/12/t/ab/", ""),
        REQ("HEAD /p/1/t/2", ""),
    };
    F.nreqs = (int)(sizeof reqs / sizeof reqs[0]);
    memcpy(F.reqs, reqs, sizeof reqs);
    s_run(&F);
    s_expect(0, "HTTP/1.1 200", "{\"project\":\"12\",\"task\":\"ab\"}");
    s_expect(1, "HTTP/1.1 404", "\"code\":\"not_found\"");
    s_expect(2, "HTTP/1.1 405", "\"code\":\"method_not_allowed\"");
    cr_assert(strstr(F.resp[2], "Allow: POST, GET, HEAD"), "%s", F.resp[2]);
    s_expect(3, "HTTP/1.1 201", "{\"a\":1}");
    s_expect(4, "HTTP/1.1 415", "\"code\":\"unsupported_media_type\"");
    s_expect(5, "HTTP/1.1 400", "\"code\":\"invalid_json\"");
    s_expect(6, "HTTP/1.1 400", "must be a JSON object");
    s_expect(7, "HTTP/1.1 400", "\"code\":\"missing_body\"");
    s_expect(8, "HTTP/1.1 200", "value 7 status 0");
    s_expect(9, "HTTP/1.1 413", "\"code\":\"payload_too_large\"");
    s_expect(10, "HTTP/1.1 404", "not_found");
    cr_assert(strncmp(F.resp[11], "HTTP/1.1 200", 12) == 0, "%s", F.resp[11]);
    cr_assert_null(strstr(F.resp[11], "project"), "HEAD must have no body");
    /* Every reply is JSON with the error shape where it is an error. */
    for (int i = 1; i < 10; i++)
        if (i != 3 && i != 8)
            cr_assert(strstr(F.resp[i], "{\"error\":{\"code\":"), "%d: %s", i,
                      F.resp[i]);
    cr_assert_eq(http_server_in_flight(F.h.srv), 0);
    sbuf_t out = {0};
    metrics_render(F.h.metrics, &out);
    cr_assert(strstr(out.data, "vapora_http_requests_total{service=\"unit\",route="
                               "\"/p/{pid}/t/{tid}\",status=\"200\"} 2"),
              "%s", out.data);
    cr_assert(strstr(out.data, "route=\"unmatched\",status=\"404\"} 2"), "%s",
              out.data);
    cr_assert(strstr(out.data, "route=\"/deferred\",status=\"200\"} 1"));
    sbuf_free(&out);
    s_fini(&F);
}

/* ---- the blocking job embedded in the request ---- */

typedef struct chain {
    hfix_t h;
    pool_t *pool;
    int runs; /* jobs run, written by the pool thread, read after done */
    char resp[1024];
} chain_t;

static void s_chain_work(void *arg)
{
    ((chain_t *)arg)->runs++;
}

static void s_chain_done(http_req_t *req, void *arg, int status)
{
    chain_t *c = arg;
    cr_assert_eq(status, 0);
    if (c->runs < 3) { /* the job in the request is free again: run the next */
        cr_assert_eq(http_req_run_blocking(req, c->pool, s_chain_work, s_chain_done, c),
                     0);
        return;
    }
    http_reply_error(req, 200, "chained", "runs %d", c->runs);
}

static void s_chain(http_req_t *req, void *ud)
{
    chain_t *c = ud;
    cr_assert_eq(http_req_run_blocking(req, c->pool, s_chain_work, s_chain_done, c), 0);
}

Test(http, done_may_run_the_next_blocking_job, .timeout = 20)
{
    static chain_t c;
    hfix_init(&c.h, NULL);
    c.pool = pool_new(c.h.loop, 2, 4);
    cr_assert_eq(http_route(c.h.srv, "GET", "/chain", 0, s_chain, &c), 0);
    hfix_start(&c.h);
    hfix_run_exchange(&c.h, REQ("GET /chain", ""), c.resp, sizeof c.resp);
    cr_assert(strncmp(c.resp, "HTTP/1.1 200", 12) == 0, "%s", c.resp);
    cr_assert(strstr(c.resp, "runs 3"), "%s", c.resp);
    pool_stats_t ps;
    pool_get_stats(c.pool, &ps);
    cr_assert_eq(ps.completed, 3);
    pool_destroy(&c.pool);
    hfix_fini(&c.h);
}

/* ---- streamed replies ---- */

typedef struct streamer {
    hfix_t h;
    http_stream_t *st;
    atomic_int gone;
    char resp[2048];
} streamer_t;

static void s_stream_more(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    streamer_t *s = ud;
    http_stream_write(s->st, "cd", 2);
    http_stream_trailer(s->st, "X-Done", "yes");
    http_stream_end(s->st, false);
}

static void s_gone(void *ud)
{
    atomic_store(&((streamer_t *)ud)->gone, 1);
}

static void s_stream(http_req_t *req, void *ud)
{
    streamer_t *s = ud;
    s->st = http_reply_stream(req, 200, "text/plain", s_gone, s);
    http_stream_write(s->st, "ab", 2);
    if (strcmp(http_req_path(req), "/stream") == 0) /* the rest comes later */
        loop_add_timer(s->h.loop, 20, 0, s_stream_more, s);
}

Test(http, streamed_reply_is_chunked_with_trailers, .timeout = 20)
{
    static streamer_t s;
    hfix_init(&s.h, NULL);
    cr_assert_eq(http_route(s.h.srv, "GET", "/stream", 0, s_stream, &s), 0);
    hfix_start(&s.h);
    hfix_run_exchange(&s.h, REQ("GET /stream", ""), s.resp, sizeof s.resp);
    cr_assert(strstr(s.resp, "Transfer-Encoding: chunked\r\n"), "%s", s.resp);
    cr_assert(strstr(s.resp, "Cache-Control: no-cache\r\n"), "%s", s.resp);
    const char *body = strstr(s.resp, "\r\n\r\n");
    cr_assert_not_null(body);
    cr_assert_str_eq(body, "\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\nX-Done: yes\r\n\r\n");
    cr_assert_eq(atomic_load(&s.gone), 0, "an ended stream is not gone");
    hfix_fini(&s.h);
}

/* The client reads the first chunk and leaves while the stream waits. */
static void *s_leaving_client(void *arg)
{
    streamer_t *s = arg;
    int fd = hfix_connect(s->h.port);
    const char *req = REQ("GET /stream-forever", "");
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    ssize_t n = 0, r;
    while (!strstr(s->resp, "2\r\nab\r\n") &&
           (r = read(fd, s->resp + n, sizeof s->resp - 1 - (size_t)n)) > 0)
        n += r;
    close(fd);
    for (int i = 0; i < 500 && !atomic_load(&s->gone); i++)
        usleep(10 * 1000);
    return NULL;
}

Test(http, a_stream_whose_client_leaves_is_gone, .timeout = 20)
{
    static streamer_t s;
    hfix_init(&s.h, NULL);
    cr_assert_eq(http_route(s.h.srv, "GET", "/stream-forever", 0, s_stream, &s), 0);
    hfix_start(&s.h);
    hfix_run(&s.h, s_leaving_client, &s);
    cr_assert(strstr(s.resp, "2\r\nab\r\n"), "%s", s.resp);
    cr_assert_eq(atomic_load(&s.gone), 1, "gone() did not run");
    cr_assert_eq(http_server_in_flight(s.h.srv), 0);
    hfix_fini(&s.h);
}

/* Found by tests/fuzz/fuzz_http: after the 100 Continue libmicrohttpd sends
 * for a request without a body, bytes behind that request (the next one,
 * pipelined) made it call the handler once before it could take a reply.
 * The reply was dropped (no answer until request_timeout), and a streamed
 * one freed its stream under the handler (use after free). */
static void s_plain(http_req_t *req, void *ud)
{
    (void)ud;
    http_reply(req, 200, "text/plain", "hi", 2);
}

/* Sends "GET path" with Expect: 100-continue and a second request behind
 * it, to a route answered by fn; both must be answered. Returns where the
 * first answer starts in s->resp. */
static const char *s_expect_then_next(streamer_t *s, const char *path,
                                      http_handler_fn fn)
{
    char req[256];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n"
             "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             path, path);
    hfix_init(&s->h, NULL);
    cr_assert_eq(http_route(s->h.srv, "GET", path, 0, fn, s), 0);
    hfix_start(&s->h);
    hfix_run_exchange(&s->h, req, s->resp, sizeof s->resp);
    const char *first = strstr(s->resp, "HTTP/1.1 200 OK\r\n");
    cr_assert_not_null(first, "the first request got no answer: %s", s->resp);
    cr_assert_not_null(strstr(first + 1, "HTTP/1.1 200 OK\r\n"),
                       "the second request got no answer: %s", s->resp);
    return first;
}

Test(http, expect_continue_with_a_request_behind_is_answered, .timeout = 20)
{
    static streamer_t s;
    const char *first = s_expect_then_next(&s, "/plain", s_plain);
    cr_assert(strstr(first, "\r\n\r\nhi"), "%s", s.resp);
    hfix_fini(&s.h);
}

Test(http, expect_continue_with_a_request_behind_streams, .timeout = 20)
{
    static streamer_t s;
    const char *first = s_expect_then_next(&s, "/stream", s_stream);
    cr_assert(strstr(first, "2\r\nab\r\n2\r\ncd\r\n0\r\nX-Done: yes\r\n"), "%s",
              s.resp);
    hfix_fini(&s.h);
}
