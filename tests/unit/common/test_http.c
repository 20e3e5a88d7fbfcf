/* test_http.c - unit tests for common/http.c: routing by method and pattern
 * with {params}, 404 and 405 with Allow, JSON body checks (415, 400), replies
 * deferred through the pool, and the request metrics. A client thread talks
 * to a server running on this thread's loop. */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "sbuf.h"

typedef struct fixture {
    loop_t *loop;
    metrics_t *metrics;
    pool_t *pool;
    http_server_t *srv;
    int lfd;
    int port;
    atomic_int client_done;
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

static int64_t s_hook(loop_t *l, void *ud)
{
    fixture_t *f = ud;
    if (atomic_load(&f->client_done))
        loop_stop(l);
    return -1;
}

/* Sends each raw request on its own connection and stores the raw reply. */
static void *s_client(void *arg)
{
    fixture_t *f = arg;
    for (int i = 0; i < f->nreqs; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            write(fd, f->reqs[i], strlen(f->reqs[i])) > 0) {
            size_t off = 0;
            ssize_t n;
            /* Connection: close makes the server end the reply with EOF. */
            while (off < sizeof f->resp[i] - 1 &&
                   (n = read(fd, f->resp[i] + off, sizeof f->resp[i] - 1 - off)) > 0)
                off += (size_t)n;
            f->resp[i][off] = '\0';
        }
        close(fd);
    }
    atomic_store(&f->client_done, 1);
    loop_wakeup(f->loop);
    return NULL;
}

static void s_run(fixture_t *f)
{
    http_config_t hc;
    http_config_defaults(&hc);
    hc.service = "unit";
    hc.max_body = 64;
    f->loop = loop_new();
    f->metrics = metrics_new();
    f->pool = pool_new(f->loop, 1, 4);
    f->srv = http_server_new(f->loop, f->metrics, &hc);
    cr_assert_eq(http_route(f->srv, "GET", "/p/{pid}/t/{tid}", 0, s_item, f), 0);
    cr_assert_eq(http_route(f->srv, "POST", "/echo", HTTP_JSON_BODY, s_echo, f), 0);
    cr_assert_eq(http_route(f->srv, "GET", "/echo", 0, s_item, f), 0);
    cr_assert_eq(http_route(f->srv, "GET", "/deferred", 0, s_deferred, f), 0);
    cr_assert_eq(http_route(f->srv, "GET", "no-slash", 0, s_item, f), -EINVAL);
    char err[128];
    f->lfd = net_listen("127.0.0.1:0", 64, false, err, sizeof err);
    cr_assert_geq(f->lfd, 0, "%s", err);
    f->port = net_local_port(f->lfd);
    cr_assert_eq(http_server_start(f->srv, f->lfd), 0);
    loop_add_before_sleep(f->loop, s_hook, f);
    pthread_t t;
    pthread_create(&t, NULL, s_client, f);
    cr_assert_eq(loop_run(f->loop), 0);
    pthread_join(t, NULL);
}

static void s_fini(fixture_t *f)
{
    pool_destroy(&f->pool);
    http_server_destroy(&f->srv);
    metrics_destroy(&f->metrics);
    close(f->lfd);
    loop_destroy(&f->loop);
}

#define REQ(line, extra)                                                               \
    line " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" extra "\r\n"

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
    cr_assert_eq(http_server_in_flight(F.srv), 0);
    sbuf_t out = {0};
    metrics_render(F.metrics, &out);
    cr_assert(strstr(out.data, "vapora_http_requests_total{service=\"unit\",route="
                               "\"/p/{pid}/t/{tid}\",status=\"200\"} 2"),
              "%s", out.data);
    cr_assert(strstr(out.data, "route=\"unmatched\",status=\"404\"} 2"), "%s",
              out.data);
    cr_assert(strstr(out.data, "route=\"/deferred\",status=\"200\"} 1"));
    sbuf_free(&out);
    s_fini(&F);
}
