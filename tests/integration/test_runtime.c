/* test_runtime.c - integration tests of the worker runtime (common/worker.c,
 * http.c, pool.c, loop_epoll.c): each test starts a real worker binary on a
 * free loopback port with its own config and talks to it over TCP like a
 * client would.
 *
 * The shipped services (backend, agents, llm-router) cover the built-in
 * endpoints, limits and signals; build/tests/vapora-testsvc adds the routes
 * the shipped services do not have yet (JSON echo, pool sleep, loop block,
 * path parameters).
 *
 * Every test has .fini = s_fini, which kills the workers, closes the sockets
 * and frees the responses the test still holds, even when an assertion
 * failed half way. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

#define BACKEND "vapora-backend"
#define TESTSVC "vapora-testsvc"

/* The parsed body of the last s_json() call; freed by the next or by s_fini. */
static json_t *s_doc;

static void s_fini(void)
{
    json_decref(s_doc);
    s_doc = NULL;
    th_cleanup();
}

/* ---- helpers ---- */

/* Starts bin with [service:section] plus extra config lines; asserts. */
static th_proc_t *s_start(const char *bin, const char *section, const char *extra)
{
    th_proc_t *p = th_start(bin, section, extra);
    cr_assert_not_null(p, "%s did not start (see stderr for its log)", bin);
    return p;
}

/* Sends one request on c and reads the response; asserts it arrived. */
static th_resp_t *s_exchange(th_conn_t *c, const char *method, const char *path,
                             const char *headers, const char *body)
{
    th_resp_t *r = NULL;
    int rc = th_send_request(c, method, path, headers, body, body ? strlen(body) : 0);
    cr_assert_eq(rc, 0, "sending %s %s: %s", method, path, strerror(-rc));
    rc = th_read_response(c, &r, TH_IO_MS);
    cr_assert_eq(rc, 0, "no response to %s %s: %s", method, path, strerror(-rc));
    return r;
}

/* One request on a new connection; asserts a response arrived. */
static th_resp_t *s_request(const th_proc_t *p, const char *method, const char *path,
                            const char *headers, const char *body)
{
    th_resp_t *r = NULL;
    int rc = th_request(p->port, method, path, headers, body, &r);
    cr_assert_eq(rc, 0, "no response to %s %s: %s", method, path, strerror(-rc));
    return r;
}

/* Parses the body of r as JSON (kept in s_doc); asserts it is JSON. */
static json_t *s_json(const th_resp_t *r)
{
    json_error_t e;
    json_decref(s_doc);
    s_doc = json_loadb(r->body, r->body_len, 0, &e);
    cr_assert_not_null(s_doc, "body is not JSON (%s): %.300s", e.text, r->body);
    return s_doc;
}

/* Asserts that the Content-Type of r starts with want. */
static void s_assert_type(const th_resp_t *r, const char *want)
{
    const char *ct = th_resp_header(r, "Content-Type");
    cr_assert_not_null(ct, "no Content-Type (status %d)", r->status);
    cr_assert(strncmp(ct, want, strlen(want)) == 0, "Content-Type %s, want %s", ct,
              want);
}

/* Asserts r is {"error":{"code":code,"message":"..."}} with status. */
static void s_assert_error(const th_resp_t *r, int status, const char *code)
{
    cr_assert_eq(r->status, status, "status %d, want %d; body: %.300s", r->status,
                 status, r->body);
    s_assert_type(r, "application/json");
    const char *got = NULL, *msg = NULL;
    json_error_t e;
    int rc = json_unpack_ex(s_json(r), &e, 0, "{s:{s:s,s:s}}", "error", "code", &got,
                            "message", &msg);
    cr_assert_eq(rc, 0, "not an error object (%s): %.300s", e.text, r->body);
    cr_assert_str_eq(got, code, "error code %s, want %s", got, code);
    cr_assert(msg[0] != '\0', "empty error message");
}

/* Asserts that p answers GET /health with 200 on a new connection. */
static void s_assert_serving(const th_proc_t *p)
{
    th_resp_t *r = s_request(p, "GET", "/health", NULL, NULL);
    cr_assert_eq(r->status, 200, "GET /health: %d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "\"healthy\""), "GET /health: %.300s", r->body);
    th_resp_free(&r);
}

/* Whether the Prometheus text has a sample of metric name. */
static bool s_has_metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, name, n) == 0 && (l[n] == '{' || l[n] == ' '))
            return true;
    }
    return false;
}

/* The value of the first sample of name whose labels contain every
 * fragment of labels (NULL-terminated), or -1 when there is none. */
static double s_metric(const char *text, const char *name, const char *const *labels)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        const char *eol = strchrnul(l, '\n');
        if (strncmp(l, name, n) != 0 || l[n] != '{')
            continue;
        char *line = strndup(l, (size_t)(eol - l));
        bool all = true;
        for (const char *const *f = labels; *f && all; f++)
            all = strstr(line, *f) != NULL;
        char *sp = strrchr(line, ' ');
        double v = all && sp ? strtod(sp + 1, NULL) : -1;
        free(line);
        if (all)
            return v;
    }
    return -1;
}

/* GET /metrics on a new connection; returns the response (200 asserted). */
static th_resp_t *s_metrics(const th_proc_t *p)
{
    th_resp_t *r = s_request(p, "GET", "/metrics", NULL, NULL);
    cr_assert_eq(r->status, 200, "GET /metrics: %d %.300s", r->status, r->body);
    return r;
}

/* A copy of the first log line of p containing needle, or NULL. */
static char *s_log_line(const th_proc_t *p, const char *needle)
{
    char *log = th_log(p);
    char *at = strstr(log, needle), *line = NULL;
    if (at) {
        char *b = at;
        while (b > log && b[-1] != '\n')
            b--;
        line = strndup(b, (size_t)(strchrnul(at, '\n') - b));
    }
    free(log);
    return line;
}

/* Asserts that a log line contains needle and is at level (e.g. "warn"). */
static void s_assert_log(const th_proc_t *p, const char *needle, const char *level)
{
    char *line = s_log_line(p, needle);
    char *log = line ? NULL : th_log(p);
    cr_assert_not_null(line, "no log line contains \"%s\"; log:\n%s", needle, log);
    char want[32];
    snprintf(want, sizeof want, "level=%s ", level);
    bool ok = strstr(line, want) != NULL;
    cr_assert(ok, "log line is not at %s: %s", level, line);
    free(line);
}

/* ---- built-in endpoints and SIGTERM, for each shipped service ---- */

static const char *const s_metric_names[] = {
    "vapora_http_requests_total",
    "vapora_http_request_duration_seconds_bucket",
    "vapora_http_request_duration_seconds_sum",
    "vapora_http_request_duration_seconds_count",
    "vapora_loop_lag_seconds",
    "vapora_pool_queue_depth",
    "vapora_pool_busy_threads",
    "vapora_pool_rejected_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
};

/* Asserts the /health body of r: healthy, service, pid, version. */
static void s_assert_health(const th_resp_t *r, const char *service, pid_t pid)
{
    cr_assert_eq(r->status, 200, "GET /health: %d %.300s", r->status, r->body);
    s_assert_type(r, "application/json");
    const char *status = NULL, *svc = NULL, *version = NULL;
    json_int_t jpid = -1, uptime = -1;
    json_error_t e;
    int rc = json_unpack_ex(s_json(r), &e, 0, "{s:s,s:s,s:I,s:I,s:s}", "status",
                            &status, "service", &svc, "pid", &jpid, "uptime_s", &uptime,
                            "version", &version);
    cr_assert_eq(rc, 0, "health body (%s): %.300s", e.text, r->body);
    cr_assert_str_eq(status, "healthy");
    cr_assert_str_eq(svc, service);
    cr_assert_eq(jpid, (json_int_t)pid, "pid %lld, spawned %d", (long long)jpid,
                 (int)pid);
    cr_assert_str_eq(version, "0.1.0");
    cr_assert(uptime >= 0 && uptime < 60, "uptime_s %lld", (long long)uptime);
}

/* Asserts the /metrics text: every metric, and one /health 200 counted. */
static void s_assert_metrics(const th_resp_t *r, const char *service)
{
    cr_assert_eq(r->status, 200, "GET /metrics: %d %.300s", r->status, r->body);
    s_assert_type(r, "text/plain");
    for (size_t i = 0; i < sizeof s_metric_names / sizeof *s_metric_names; i++)
        cr_assert(s_has_metric(r->body, s_metric_names[i]), "no %s in:\n%.2000s",
                  s_metric_names[i], r->body);
    char svc[80];
    snprintf(svc, sizeof svc, "service=\"%s\"", service);
    const char *const labels[] = {svc, "route=\"/health\"", "status=\"200\"", NULL};
    double v = s_metric(r->body, "vapora_http_requests_total", labels);
    cr_assert_eq(v, 1.0, "vapora_http_requests_total{%s,/health,200} = %g in:\n%.2000s",
                 svc, v, r->body);
}

/* Starts a shipped service, checks /health and /metrics, stops it. */
static void s_check_service(const char *bin, const char *service, const char *extra)
{
    th_proc_t *p = s_start(bin, service, extra);
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c, "connect: %s", strerror(errno));
    th_resp_t *r = s_exchange(c, "GET", "/health", NULL, NULL);
    s_assert_health(r, service, p->pid);
    th_resp_free(&r);
    r = s_exchange(c, "GET", "/metrics", NULL, NULL);
    s_assert_metrics(r, service);
    th_resp_free(&r);
    th_conn_close(&c);
    int st = th_stop(p, SIGTERM, TH_EXIT_MS);
    char *log = th_log(p);
    cr_assert_eq(st, 0, "exit status %d after SIGTERM; log:\n%s", st, log);
    free(log);
    s_assert_log(p, "stopped cleanly", "info");
    th_proc_free(&p);
}

Test(services, backend_health_metrics_sigterm, .timeout = 30, .fini = s_fini)
{
    s_check_service("vapora-backend", "backend", NULL);
}

Test(services, agents_health_metrics_sigterm, .timeout = 30, .fini = s_fini)
{
    s_check_service("vapora-agents", "agents", NULL);
}

Test(services, llm_router_health_metrics_sigterm, .timeout = 30, .fini = s_fini)
{
    /* The router refuses to start without a provider to call. */
    char *data = th_tmp_path("rtdata", "");
    char *extra = NULL;
    cr_assert(asprintf(&extra,
                       "[supervisor]\ndata_dir = %s\n[provider:p]\nkind = openai\n"
                       "base_url = http://127.0.0.1:9/v1\nmodels = m\n",
                       data) > 0);
    s_check_service("vapora-llm-router", "llm-router", extra);
    free(extra);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    cr_assert_eq(system(cmd), 0);
    free(data);
}

/* ---- keep-alive ---- */

Test(http, keepalive_1000_requests_one_connection, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", NULL);
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    int fd = th_conn_fd(c);
    for (int i = 0; i < 1000; i++) {
        th_resp_t *r = s_exchange(c, "GET", "/health", NULL, NULL);
        cr_assert_eq(r->status, 200, "request %d: %d %s", i, r->status, r->body);
        const char *conn = th_resp_header(r, "Connection");
        cr_assert(!conn || strcasecmp(conn, "close") != 0,
                  "request %d: Connection: close", i);
        th_resp_free(&r);
        cr_assert_eq(th_conn_fd(c), fd);
    }
    cr_assert_not(th_peer_closed(c), "the server closed the keep-alive connection");
    th_resp_t *r = s_exchange(c, "GET", "/metrics", NULL, NULL);
    const char *const labels[] = {"route=\"/health\"", "status=\"200\"", NULL};
    double v = s_metric(r->body, "vapora_http_requests_total", labels);
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

#define JSON_CT "Content-Type: application/json\r\n"

Test(http, body_over_limit_by_content_length, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", "max_body_bytes = 1024\n");
    char *body = s_json_of_size(1024);
    th_resp_t *r = s_request(p, "POST", "/echo", JSON_CT, body);
    cr_assert_eq(r->status, 200, "a body of exactly 1024 bytes: %d %.300s", r->status,
                 r->body);
    cr_assert_eq(r->body_len, 1024);
    th_resp_free(&r);
    free(body);

    body = s_json_of_size(1025);
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    r = s_exchange(c, "POST", "/echo", JSON_CT, body);
    free(body);
    s_assert_error(r, 413, "payload_too_large");
    th_resp_free(&r);
    cr_assert_eq(th_wait_closed(c, 3000), 0, "the connection stayed open after 413");
    th_conn_close(&c);
    s_assert_serving(p);
}

Test(http, body_over_limit_refused_before_body_is_sent, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", "max_body_bytes = 1024\n");
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    const char *head =
        "POST /echo HTTP/1.1\r\nHost: x\r\n" JSON_CT "Content-Length: 1048576\r\n\r\n";
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    /* No body follows: the 413 must come from the headers alone. */
    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 3000);
    cr_assert_eq(rc, 0, "no 413 before the body: %s", strerror(-rc));
    s_assert_error(r, 413, "payload_too_large");
    th_resp_free(&r);
    cr_assert_eq(th_wait_closed(c, 3000), 0, "the connection stayed open after 413");
    th_conn_close(&c);
    s_assert_serving(p);
}

/* Requests whose framing is in doubt are answered at once and the
 * connection closed: what follows is never read as a request. */
Test(http, ambiguous_framing_is_refused_and_closed, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
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
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        th_conn_t *c = th_connect(p->port, TH_IO_MS);
        cr_assert_not_null(c);
        char req[512];
        int n = snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\nHost: x\r\n" JSON_CT "%s\r\n{}",
                         cases[i].head);
        cr_assert_eq(th_send_raw(c, req, (size_t)n, TH_IO_MS), 0);
        th_resp_t *r = NULL;
        int rc = th_read_response(c, &r, 3000);
        cr_assert_eq(rc, 0, "case %zu: no answer: %s", i, strerror(-rc));
        s_assert_error(r, cases[i].status, cases[i].code);
        th_resp_free(&r);
        cr_assert_eq(th_wait_closed(c, 3000), 0, "case %zu: still open", i);
        th_conn_close(&c);
    }
    /* A request refused already (no route) with a body too large for us
     * gets its answer before the body, too. */
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    const char *nope = "POST /nope HTTP/1.1\r\nHost: x\r\n" JSON_CT
                       "Content-Length: 100000000000\r\n\r\n";
    cr_assert_eq(th_send_raw(c, nope, strlen(nope), TH_IO_MS), 0);
    th_resp_t *nr = NULL;
    cr_assert_eq(th_read_response(c, &nr, 3000), 0, "no early answer for /nope");
    s_assert_error(nr, 404, "not_found");
    th_resp_free(&nr);
    cr_assert_eq(th_wait_closed(c, 3000), 0);
    th_conn_close(&c);
    /* %00 would cut the path short once decoded. */
    th_resp_t *r = s_request(p, "GET", "/health%00.json", NULL, NULL);
    s_assert_error(r, 400, "bad_request");
    th_resp_free(&r);
    r = s_request(p, "GET", "/items/a%00b", NULL, NULL);
    s_assert_error(r, 400, "bad_request");
    th_resp_free(&r);
    s_assert_serving(p);
}

/* Sends body to POST /echo in chunks of chunk bytes on c. */
static void s_send_chunked(th_conn_t *c, const char *body, size_t chunk)
{
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\n" JSON_CT
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

Test(http, chunked_body_over_limit, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", "max_body_bytes = 1024\n");
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
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
    s_assert_error(r, 413, "payload_too_large");
    th_resp_free(&r);
    th_conn_close(&c);

    /* One that keeps sending is cut off 1 MiB past the limit. */
    c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\n" JSON_CT
                       "Transfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    static char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 65536);
    memset(chunk + n, 'x', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    size_t sent = 0;
    while (sent < (8u << 20) &&
           th_send_raw(c, chunk, (size_t)n + 65536 + 2, TH_IO_MS) == 0)
        sent += 65536;
    cr_assert_lt(sent, 8u << 20, "8 MiB went into a 1 KiB limit");
    th_conn_close(&c);
    s_assert_serving(p);
}

/* ---- JSON bodies ---- */

Test(json, valid_object_is_echoed, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    const char *sent = "{\"name\":\"t\\u00e9st\",\"n\":42,\"list\":[1,2.5,null,true],"
                       "\"nested\":{\"a\":{\"b\":\"c\"}}}";
    th_resp_t *r = s_request(p, "POST", "/echo",
                             "Content-Type: application/json; charset=utf-8\r\n", sent);
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    s_assert_type(r, "application/json");
    json_t *want = json_loads(sent, 0, NULL);
    bool same = json_equal(want, s_json(r));
    json_decref(want);
    cr_assert(same, "echoed %s, sent %s", r->body, sent);
    th_resp_free(&r);
}

Test(json, malformed_is_400_invalid_json, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    th_resp_t *r = s_request(p, "POST", "/echo", JSON_CT, "{\"a\": ");
    s_assert_error(r, 400, "invalid_json");
    th_resp_free(&r);
    s_assert_serving(p);
    r = s_request(p, "POST", "/echo", JSON_CT, "[1,2]"); /* not an object */
    s_assert_error(r, 400, "invalid_json");
    th_resp_free(&r);
    s_assert_serving(p);
}

Test(json, wrong_content_type_is_415, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    th_resp_t *r =
        s_request(p, "POST", "/echo", "Content-Type: text/plain\r\n", "{\"a\":1}");
    s_assert_error(r, 415, "unsupported_media_type");
    th_resp_free(&r);
    s_assert_serving(p);
    r = s_request(p, "POST", "/echo", NULL, "{\"a\":1}"); /* no Content-Type */
    s_assert_error(r, 415, "unsupported_media_type");
    th_resp_free(&r);
    s_assert_serving(p);
}

Test(json, empty_body_is_400_missing_body, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    th_resp_t *r = s_request(p, "POST", "/echo", JSON_CT, "");
    s_assert_error(r, 400, "missing_body");
    th_resp_free(&r);
    s_assert_serving(p);
}

/* ---- routing and request limits ---- */

Test(http, unknown_route_is_404, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", NULL);
    th_resp_t *r = s_request(p, "GET", "/surely/not/a/route", NULL, NULL);
    s_assert_error(r, 404, "not_found");
    th_resp_free(&r);
    s_assert_serving(p);
}

Test(http, wrong_method_is_405_with_allow, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", NULL);
    th_resp_t *r = s_request(p, "POST", "/health", NULL, "");
    s_assert_error(r, 405, "method_not_allowed");
    const char *allow = th_resp_header(r, "Allow");
    cr_assert_not_null(allow, "405 without an Allow header");
    cr_assert(strstr(allow, "GET"), "Allow: %s", allow);
    th_resp_free(&r);
    s_assert_serving(p);
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

Test(http, long_url_is_414, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", NULL);
    char *url = s_url_of_size(4096); /* max_url_bytes, query included */
    th_resp_t *r = s_request(p, "GET", url, NULL, NULL);
    free(url);
    cr_assert_eq(r->status, 200, "a URL of exactly 4096 bytes: %d %.300s", r->status,
                 r->body);
    th_resp_free(&r);
    url = s_url_of_size(5000);
    r = s_request(p, "GET", url, NULL, NULL);
    free(url);
    s_assert_error(r, 414, "uri_too_long");
    th_resp_free(&r);
    s_assert_serving(p);
}

Test(http, huge_header_is_431, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", NULL);
    size_t n = 10000;
    char *hdr = malloc(n + 16);
    int k = snprintf(hdr, n + 16, "X-Pad: ");
    memset(hdr + k, 'a', n);
    strcpy(hdr + k + n, "\r\n");
    th_resp_t *r = s_request(p, "GET", "/health", hdr, NULL);
    free(hdr);
    s_assert_error(r, 431, "headers_too_large");
    th_resp_free(&r);
    s_assert_serving(p);
}

Test(http, header_just_under_libmicrohttpd_memory_gets_json_431, .timeout = 30,
     .fini = s_fini)
{
    /* Between max_header_bytes and what libmicrohttpd can hold: our JSON 431,
     * never a silently dropped connection. */
    th_proc_t *p = s_start(BACKEND, "backend", NULL);
    size_t n = 11000;
    char *hdr = malloc(n + 16);
    memcpy(hdr, "X-Pad: ", 7);
    memset(hdr + 7, 'a', n);
    memcpy(hdr + 7 + n, "\r\n", 3);
    th_resp_t *r = NULL;
    int rc = th_request(p->port, "GET", "/health", hdr, NULL, &r);
    free(hdr);
    cr_assert_eq(rc, 0, "no response: %s", strerror(-rc));
    s_assert_error(r, 431, "headers_too_large");
    th_resp_free(&r);
    s_assert_serving(p);
}

Test(http, raised_header_limit_is_honoured, .timeout = 30, .fini = s_fini)
{
    /* max_header_bytes above the default must not be capped silently by
     * libmicrohttpd's per-connection memory. */
    th_proc_t *p = s_start(BACKEND, "backend", "max_header_bytes = 24576\n");
    size_t n = 20000;
    char *hdr = malloc(n + 16);
    memcpy(hdr, "X-Pad: ", 7);
    memset(hdr + 7, 'a', n);
    memcpy(hdr + 7 + n, "\r\n", 3);
    th_resp_t *r = NULL;
    int rc = th_request(p->port, "GET", "/health", hdr, NULL, &r);
    free(hdr);
    cr_assert_eq(rc, 0, "no response: %s", strerror(-rc));
    cr_assert_eq(r->status, 200, "%d %.200s", r->status, r->body);
    th_resp_free(&r);
}

Test(http, path_parameter, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    th_resp_t *r = s_request(p, "GET", "/items/abc", NULL, NULL);
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    const char *id = NULL;
    cr_assert_eq(json_unpack(s_json(r), "{s:s}", "id", &id), 0, "%.300s", r->body);
    cr_assert_str_eq(id, "abc");
    cr_assert_eq(json_object_size(s_doc), 1, "%.300s", r->body);
    th_resp_free(&r);
    r = s_request(p, "GET", "/items/abc/def", NULL, NULL);
    s_assert_error(r, 404, "not_found");
    th_resp_free(&r);
    /* A percent-decoded byte that is not UTF-8 is quoted as U+FFFD. */
    r = s_request(p, "GET", "/items/abc/%ff", NULL, NULL);
    s_assert_error(r, 404, "not_found");
    cr_assert(strstr(r->body, "\xef\xbf\xbd"), "%.300s", r->body);
    th_resp_free(&r);
    s_assert_serving(p);
}

/* ---- a client that stalls ---- */

Test(http, stalled_client_is_cut_and_others_served, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", "request_timeout = 1\n");
    th_conn_t *stalled = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(stalled);
    const char *half = "GET /health HTTP/1.1\r\nHost: x\r\n"; /* no blank line */
    long long t0 = th_now_ms();
    cr_assert_eq(th_send_raw(stalled, half, strlen(half), TH_IO_MS), 0);
    th_sleep_ms(100);

    th_resp_t *r = s_request(p, "GET", "/health", NULL, NULL);
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
    s_assert_serving(p);
}

/* A client that keeps trickling header bytes (slowloris) is never idle
 * for request_timeout, yet must not hold its connection past it. */
Test(http, trickling_headers_are_cut_at_request_timeout, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", "request_timeout = 2\n");
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
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
    c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
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
    s_assert_serving(p);
}

/* ---- graceful stop ---- */

Test(lifecycle, sigterm_lets_pool_request_finish, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    long long t0 = th_now_ms();
    cr_assert_eq(th_send_request(c, "GET", "/sleep?ms=1500", NULL, NULL, 0), 0);
    th_sleep_ms(200);
    cr_assert_eq(th_signal(p, SIGTERM), 0);
    cr_assert(th_log_wait(p, "SIGTERM: draining", 2000), "no drain log line");

    /* Running alone, the worker closes its listening socket when it starts
     * draining: a new connection is refused rather than left hanging. */
    th_conn_t *late = th_connect(p->port, 500);
    cr_assert_null(late, "a connection made after SIGTERM was accepted");

    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 5000);
    long long took = th_now_ms() - t0;
    cr_assert_eq(rc, 0, "the in-flight request got no response: %s", strerror(-rc));
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    json_int_t ms = -1;
    cr_assert_eq(json_unpack(s_json(r), "{s:I}", "slept_ms", &ms), 0, "%.300s",
                 r->body);
    cr_assert_eq(ms, 1500);
    cr_assert_geq(took, 1400, "answered after %lld ms", took);
    const char *conn = th_resp_header(r, "Connection");
    cr_assert(conn && strcasecmp(conn, "close") == 0, "Connection: %s", conn);
    th_resp_free(&r);

    int st = th_wait_exit(p, TH_EXIT_MS);
    cr_assert_eq(st, 0, "exit status %d", st);
    s_assert_log(p, "drained: no request in flight", "info");
    s_assert_log(p, "stopped cleanly", "info");
}

Test(lifecycle, shutdown_timeout_bounds_a_running_pool_job, .timeout = 30,
     .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", "shutdown_timeout = 1\n");
    th_conn_t *c = th_connect(p->port, TH_IO_MS);
    cr_assert_not_null(c);
    cr_assert_eq(th_send_request(c, "GET", "/sleep?ms=8000", NULL, NULL, 0), 0);
    th_sleep_ms(200);
    long long t0 = th_now_ms();
    cr_assert_eq(th_signal(p, SIGTERM), 0);
    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 5000);
    cr_assert_eq(rc, 0, "the waiting request got no response: %s", strerror(-rc));
    s_assert_error(r, 503, "shutting_down");
    th_resp_free(&r);
    int st = th_wait_exit(p, TH_EXIT_MS);
    long long took = th_now_ms() - t0;
    cr_assert_eq(st, 0, "exit status %d", st);
    cr_assert_lt(took, 4000, "stopping took %lld ms with shutdown_timeout = 1", took);
    s_assert_log(p, "abandoning 1 running pool job", "warn");
}

/* NATS configured but not there: the worker serves, /health says degraded
 * with the reason, and SIGTERM still stops it at once. */
Test(lifecycle, nats_away_is_degraded_not_down, .timeout = 30, .fini = s_fini)
{
    int nport = th_free_port(); /* nothing listens there */
    char extra[128];
    snprintf(extra, sizeof extra, "[nats]\nurl = nats://127.0.0.1:%d\n", nport);
    th_proc_t *p = s_start(TESTSVC, "testsvc", extra);
    th_resp_t *r = s_request(p, "GET", "/health", NULL, NULL);
    cr_assert_eq(r->status, 503, "%d %.300s", r->status, r->body);
    s_assert_type(r, "application/json");
    json_t *j = s_json(r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "degraded");
    const char *reason = json_string_value(json_object_get(j, "reason"));
    cr_assert(reason && strncmp(reason, "nats: ", 6) == 0, "reason %s", reason);
    cr_assert_eq(json_integer_value(json_object_get(j, "pid")), p->pid);
    th_resp_free(&r);
    r = s_request(p, "GET", "/items/x", NULL, NULL);
    cr_assert_eq(r->status, 200, "other routes serve: %d", r->status);
    th_resp_free(&r);
    long long t0 = th_now_ms();
    cr_assert_eq(th_stop(p, SIGTERM, TH_EXIT_MS), 0);
    cr_assert_lt(th_now_ms() - t0, 3000, "stopping waited on NATS");
}

/* ---- pool overload ---- */

Test(lifecycle, full_pool_queue_is_503, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", "pool_threads = 1\npool_queue = 1\n");
    th_conn_t *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = th_connect(p->port, TH_IO_MS);
        cr_assert_not_null(c[i]);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(th_send_request(c[i], "GET", "/sleep?ms=500", NULL, NULL, 0), 0);
    int n200 = 0, n503 = 0;
    for (int i = 0; i < 3; i++) {
        th_resp_t *r = NULL;
        int rc = th_read_response(c[i], &r, TH_IO_MS);
        cr_assert_eq(rc, 0, "request %d: %s", i, strerror(-rc));
        if (r->status == 503) {
            s_assert_error(r, 503, "overloaded");
            n503++;
        } else {
            cr_assert_eq(r->status, 200, "request %d: %d %s", i, r->status, r->body);
            cr_assert_str_eq(r->body, "{\"slept_ms\":500}");
            n200++;
        }
        th_resp_free(&r);
        th_conn_close(&c[i]);
    }
    cr_assert_geq(n503, 1, "no 503 with 1 thread and a queue of 1");
    cr_assert_geq(n200, 1, "no request was served");
    th_resp_t *m = s_metrics(p);
    const char *const labels[] = {"service=\"testsvc\"", NULL};
    double rejected = s_metric(m->body, "vapora_pool_rejected_total", labels);
    cr_assert_eq(rejected, (double)n503, "rejected_total %g, 503s %d", rejected, n503);
    th_resp_free(&m);
    s_assert_serving(p);
}

/* ---- starvation warning ---- */

Test(lifecycle, blocked_loop_logs_starvation, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(TESTSVC, "testsvc", NULL);
    long long t0 = th_now_ms();
    th_resp_t *r = s_request(p, "GET", "/block?ms=300", NULL, NULL);
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    cr_assert_geq(th_now_ms() - t0, 300);
    th_resp_free(&r);
    cr_assert(th_log_wait(p, "event loop starved", 3000),
              "no starvation warning 3 s after blocking the loop 300 ms");
    s_assert_log(p, "event loop starved", "warn");
    s_assert_serving(p);
}

/* ---- configuration ---- */

Test(config, unset_variable_exits_2_naming_section_and_key, .timeout = 30,
     .fini = s_fini)
{
    unsetenv("SURELY_UNSET_VAR_XYZ");
    char *config = th_write_temp("unset", ".conf",
                                 "[runtime]\npool_threads = 2\n\n"
                                 "[service:backend]\n"
                                 "listen = ${SURELY_UNSET_VAR_XYZ}\n");
    cr_assert_not_null(config);
    char *bin = th_bin_path(BACKEND);
    th_proc_t *p = th_spawn(bin, config);
    free(bin);
    cr_assert_not_null(p);
    int st = th_wait_exit(p, TH_EXIT_MS);
    cr_assert_eq(st, 2, "exit status %d, want 2", st);
    s_assert_log(p, "SURELY_UNSET_VAR_XYZ", "error");
    char *line = s_log_line(p, "SURELY_UNSET_VAR_XYZ");
    bool names = strstr(line, "[service:backend]") && strstr(line, "listen");
    cr_assert(names, "the error does not name [service:backend] listen: %s", line);
    free(line);
}

Test(config, unknown_key_warns_and_starts, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p = s_start(BACKEND, "backend", "surely_unknown_key = 1\n");
    s_assert_log(p, "unknown key 'surely_unknown_key' in section [service:backend]",
                 "warn");
    s_assert_serving(p);
    int st = th_stop(p, SIGTERM, TH_EXIT_MS);
    cr_assert_eq(st, 0, "exit status %d", st);
}

/* log_format = json: every line of the worker's log is a JSON object with
 * time, level, service, pid and msg; access_log = true adds one line per
 * request. */
Test(config, json_logs_and_access_log, .timeout = 30, .fini = s_fini)
{
    th_proc_t *p =
        s_start(BACKEND, "backend", "log_format = json\naccess_log = true\n");
    th_resp_t *r = s_request(p, "GET", "/health", NULL, NULL);
    cr_assert_eq(r->status, 200);
    th_resp_free(&r);
    r = s_request(p, "GET", "/nope", NULL, NULL);
    cr_assert_eq(r->status, 404);
    th_resp_free(&r);
    cr_assert(th_log_wait(p, "GET /nope 404", 3000),
              "no access-log line for GET /nope");
    char *log = th_log(p);
    int lines = 0, access = 0;
    for (char *l = strtok(log, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *j = json_loads(l, 0, NULL);
        cr_assert_not_null(j, "not a JSON log line: %s", l);
        cr_assert(json_is_string(json_object_get(j, "time")) &&
                      json_is_string(json_object_get(j, "level")) &&
                      json_is_integer(json_object_get(j, "pid")) &&
                      json_is_string(json_object_get(j, "msg")),
                  "missing fields: %s", l);
        cr_assert_str_eq(json_string_value(json_object_get(j, "service")), "backend");
        const char *msg = json_string_value(json_object_get(j, "msg"));
        access += strncmp(msg, "GET /health 200", 15) == 0 ||
                  strncmp(msg, "GET /nope 404", 13) == 0;
        json_decref(j);
        lines++;
    }
    free(log);
    cr_assert_geq(lines, 3);
    cr_assert_eq(access, 2, "want one access line per request, got %d", access);
}
