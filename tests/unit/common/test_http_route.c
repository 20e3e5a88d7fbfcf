/* test_http_route.c - unit tests for the route table (common/http_route.c):
 * patterns with {params}, the first matching route winning, trailing and
 * empty segments, 404 vs 405 with its Allow list, HEAD answered by GET
 * routes, malformed patterns. The "route" suite calls the real matcher
 * (http__route_request) on requests built here; "route_wire" sends real
 * requests to a server on loopback, for what libmicrohttpd does before
 * routing (percent-decoding) and the headers that go out. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "test_http_fixture.h"

static loop_t *s_loop;
static metrics_t *s_metrics;
static http_server_t *s_srv;

static void s_nop(http_req_t *req, void *ud)
{
    (void)ud;
    http_reply(req, 204, NULL, "", 0);
}

static void s_setup(void)
{
    http_config_t hc;
    http_config_defaults(&hc);
    s_loop = loop_new();
    s_metrics = metrics_new();
    s_srv = http_server_new(s_loop, s_metrics, &hc);
    cr_assert_not_null(s_srv);
}

static void s_teardown(void)
{
    http_server_destroy(&s_srv);
    metrics_destroy(&s_metrics);
    loop_destroy(&s_loop);
}

static void s_add(const char *method, const char *pattern)
{
    cr_assert_eq(http_route(s_srv, method, pattern, 0, s_nop, NULL), 0, "%s %s", method,
                 pattern);
}

/* A request as the access handler has it once the headers are in. */
static http_req_t *s_route(const char *method, const char *url)
{
    http_req_t *req = calloc(1, sizeof *req);
    req->srv = s_srv;
    req->method = method;
    req->url = url;
    req->watch_fd = -1;
    http__route_request(s_srv, req);
    return req;
}

static void s_free(http_req_t *req)
{
    free(req->err_msg);
    free(req->allow);
    free(req->pathbuf);
    free(req);
}

/* Asserts that method url matches pattern. */
static void s_expect_route(const char *method, const char *url, const char *pattern)
{
    http_req_t *req = s_route(method, url);
    cr_assert_not_null(req->route, "%s %s: no route (%u %s)", method, url,
                       req->err_status, req->err_msg ? req->err_msg : "");
    cr_assert_str_eq(req->route->pattern, pattern, "%s %s", method, url);
    cr_assert_eq(req->err_status, 0);
    s_free(req);
}

/* Asserts that method url gets status (404 or 405) and, for 405, allow. */
static void s_expect_error(const char *method, const char *url, unsigned status,
                           const char *allow)
{
    http_req_t *req = s_route(method, url);
    cr_assert_null(req->route, "%s %s matched %s", method, url,
                   req->route ? req->route->pattern : "");
    cr_assert_eq(req->err_status, status, "%s %s: %u", method, url, req->err_status);
    cr_assert_str_eq(req->err_code, status == 404 ? "not_found" : "method_not_allowed");
    if (allow)
        cr_assert_str_eq(req->allow, allow, "%s %s", method, url);
    else
        cr_assert_null(req->allow);
    s_free(req);
}

TestSuite(route, .init = s_setup, .fini = s_teardown);

Test(route, literal_paths)
{
    s_add("GET", "/health");
    s_add("GET", "/api/v1/projects");
    s_expect_route("GET", "/health", "/health");
    s_expect_route("GET", "/api/v1/projects", "/api/v1/projects");
    s_expect_error("GET", "/healthz", 404, NULL);
    s_expect_error("GET", "/healt", 404, NULL);
    s_expect_error("GET", "/api/v1", 404, NULL);
    s_expect_error("GET", "/api/v1/projects/x", 404, NULL);
    s_expect_error("GET", "/Health", 404, NULL); /* case matters */
    s_expect_error("GET", "health", 404, NULL);  /* not absolute */
    s_expect_error("GET", "", 404, NULL);
}

Test(route, params_are_copied_and_named)
{
    s_add("GET", "/api/v1/projects/{pid}/tasks/{tid}");
    http_req_t *req = s_route("GET", "/api/v1/projects/p-1/tasks/t.2");
    cr_assert_not_null(req->route);
    cr_assert_eq(req->nparams, 2);
    cr_assert_str_eq(http_req_param(req, "pid"), "p-1");
    cr_assert_str_eq(http_req_param(req, "tid"), "t.2");
    cr_assert_null(http_req_param(req, "p"), "a prefix of a name is not the name");
    cr_assert_null(http_req_param(req, "pidx"));
    cr_assert_null(http_req_param(req, "{pid}"));
    /* Copies: the values do not point into the URL. */
    cr_assert(http_req_param(req, "pid") < req->url ||
              http_req_param(req, "pid") > req->url + strlen(req->url));
    s_free(req);
}

Test(route, a_param_takes_one_whole_segment)
{
    s_add("GET", "/p/{id}");
    s_expect_route("GET", "/p/anything:at@all", "/p/{id}");
    s_expect_error("GET", "/p/", 404, NULL);    /* empty */
    s_expect_error("GET", "/p", 404, NULL);     /* missing */
    s_expect_error("GET", "/p/a/b", 404, NULL); /* two segments */
    s_expect_error("GET", "/p//", 404, NULL);
}

Test(route, trailing_and_empty_segments_never_match)
{
    s_add("GET", "/a/b");
    s_add("GET", "/");
    s_expect_route("GET", "/a/b", "/a/b");
    s_expect_error("GET", "/a/b/", 404, NULL);
    s_expect_error("GET", "/a//b", 404, NULL);
    s_expect_error("GET", "//a/b", 404, NULL);
    s_expect_route("GET", "/", "/"); /* the root is the one path ending in "/" */
    s_expect_error("GET", "//", 404, NULL);
}

Test(route, first_added_route_wins)
{
    s_add("GET", "/items/new");
    s_add("GET", "/items/{id}");
    s_add("GET", "/{any}/{id}");
    s_expect_route("GET", "/items/new", "/items/new");
    s_expect_route("GET", "/items/7", "/items/{id}");
    s_expect_route("GET", "/other/7", "/{any}/{id}");
}

Test(route, braces_that_are_not_a_param_are_literal)
{
    s_add("GET", "/x/{}");
    s_add("GET", "/y/{a");
    s_expect_route("GET", "/x/{}", "/x/{}");
    s_expect_error("GET", "/x/z", 404, NULL);
    s_expect_route("GET", "/y/{a", "/y/{a");
    s_expect_error("GET", "/y/a", 404, NULL);
}

Test(route, wrong_method_is_405_with_allow_in_route_order)
{
    s_add("POST", "/echo");
    s_add("GET", "/echo");
    s_add("DELETE", "/items/{id}");
    s_add("PUT", "/items/{id}");
    s_add("GET", "/items/{id}");
    s_expect_error("DELETE", "/echo", 405, "POST, GET, HEAD");
    s_expect_error("PATCH", "/items/3", 405, "DELETE, PUT, GET, HEAD");
    s_expect_error("get", "/echo", 405, "POST, GET, HEAD"); /* methods are exact */
    http_req_t *req = s_route("PATCH", "/items/3");
    cr_assert_str_eq(req->err_msg,
                     "method PATCH is not allowed on /items/3 (allowed: DELETE, PUT, "
                     "GET, HEAD)");
    cr_assert_eq(req->nparams, 0, "no params without a route");
    s_free(req);
    req = s_route("GET", "/nowhere");
    cr_assert_str_eq(req->err_msg, "no route for GET /nowhere");
    s_free(req);
}

Test(route, allow_lists_each_method_once)
{
    s_add("GET", "/a/{x}");
    s_add("GET", "/a/b");
    s_add("POST", "/a/{x}");
    s_add("POST", "/{y}/b");
    s_expect_error("PUT", "/a/b", 405, "GET, HEAD, POST");
}

Test(route, head_is_answered_by_get_routes_only)
{
    s_add("POST", "/only-post");
    s_add("GET", "/both");
    s_add("HEAD", "/head");
    s_expect_route("HEAD", "/both", "/both");
    s_expect_error("HEAD", "/only-post", 405, "POST");
    s_expect_route("HEAD", "/head", "/head");
    s_expect_error("GET", "/head", 405, "HEAD"); /* HEAD does not answer GET */
    s_expect_error("POST", "/both", 405, "GET, HEAD");
}

Test(route, an_earlier_route_for_another_method_does_not_hide_a_later_one)
{
    s_add("GET", "/t/{id}");
    s_add("DELETE", "/t/{id}");
    http_req_t *req = s_route("DELETE", "/t/9");
    cr_assert_not_null(req->route);
    cr_assert_str_eq(req->route->method, "DELETE");
    cr_assert_str_eq(http_req_param(req, "id"), "9");
    cr_assert_null(req->allow);
    s_free(req);
}

Test(route, malformed_patterns_are_refused)
{
    const char *bad[] = {"", "no-slash", "/a//b", "//", "/a//", "x/y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(http_route(s_srv, "GET", bad[i], 0, s_nop, NULL), -EINVAL, "%s",
                     bad[i]);
    cr_assert_eq(s_srv->nroutes, 0);
    s_expect_error("GET", "/a/b", 404, NULL);
}

Test(route, a_pattern_trailing_slash_is_dropped)
{
    s_add("GET", "/a/");
    s_expect_route("GET", "/a", "/a/");
    s_expect_error("GET", "/a/", 404, NULL);
}

Test(route, at_most_16_segments_and_8_params)
{
    char pat[256] = "", path[256] = "";
    for (int i = 0; i < 16; i++) {
        snprintf(pat + strlen(pat), sizeof pat - strlen(pat), "/s%d", i);
        snprintf(path + strlen(path), sizeof path - strlen(path), "/s%d", i);
    }
    s_add("GET", pat);
    s_expect_route("GET", path, pat);
    strcat(pat, "/s16");
    cr_assert_eq(http_route(s_srv, "GET", pat, 0, s_nop, NULL), -EINVAL);
    /* Nine params make a valid pattern that no path can match. */
    s_add("GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}");
    s_add("GET", "/n/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}");
    http_req_t *req = s_route("GET", "/1/2/3/4/5/6/7/8");
    cr_assert_eq(req->nparams, 8);
    cr_assert_str_eq(http_req_param(req, "h"), "8");
    s_free(req);
    s_expect_error("GET", "/n/1/2/3/4/5/6/7/8/9", 404, NULL);
}

/* ---- through a real server: what reaches the router ---- */

static void s_echo_param(http_req_t *req, void *ud)
{
    (void)ud;
    json_t *j = json_pack("{s:s,s:s*}", "id", http_req_param(req, "id"), "q",
                          http_req_query(req, "q"));
    http_reply_json(req, 200, j);
}

typedef struct wire {
    hfix_t h;
    const char *reqs[16];
    char resp[16][1024];
    int n;
} wire_t;

static void *s_wire_client(void *arg)
{
    wire_t *w = arg;
    for (int i = 0; i < w->n; i++)
        hfix_exchange(w->h.port, w->reqs[i], w->resp[i], sizeof w->resp[i]);
    return NULL;
}

static void s_wire_expect(const wire_t *w, int i, const char *status, const char *part)
{
    cr_assert(strncmp(w->resp[i], status, strlen(status)) == 0, "%d (%s): %.80s", i,
              w->reqs[i], w->resp[i]);
    cr_assert(strstr(w->resp[i], part), "%d (%s): no %s in %s", i, w->reqs[i], part,
              w->resp[i]);
}

Test(route_wire, params_arrive_percent_decoded, .timeout = 20)
{
    static wire_t w;
    hfix_init(&w.h, NULL);
    cr_assert_eq(http_route(w.h.srv, "GET", "/p/{id}/x", 0, s_echo_param, NULL), 0);
    cr_assert_eq(http_route(w.h.srv, "POST", "/p/{id}/x", 0, s_echo_param, NULL), 0);
    const char *reqs[] = {
        HFIX_REQ("GET /p/a%20b/x", ""), HFIX_REQ("GET /p/%41%42/x", ""),
        HFIX_REQ("GET /p/a+b/x", ""),   HFIX_REQ("GET /p/a%2Fb/x", ""),
        HFIX_REQ("GET /p/a%2fb/x", ""), HFIX_REQ("GET /p/q/x?q=1%202", ""),
        HFIX_REQ("GET /p/a%00b/x", ""), HFIX_REQ("GET /p/%e2%82%ac/x", ""),
        HFIX_REQ("GET /p/%zz/x", ""),   HFIX_REQ("PUT /p/%41/x", ""),
        HFIX_REQ("GET /nope/%ff", ""),
    };
    w.n = (int)(sizeof reqs / sizeof reqs[0]);
    memcpy(w.reqs, reqs, sizeof reqs);
    hfix_start(&w.h);
    hfix_run(&w.h, s_wire_client, &w);
    s_wire_expect(&w, 0, "HTTP/1.1 200", "\"id\":\"a b\"");
    s_wire_expect(&w, 1, "HTTP/1.1 200", "\"id\":\"AB\"");
    s_wire_expect(&w, 2, "HTTP/1.1 200", "\"id\":\"a+b\""); /* + is no space here */
    /* An encoded slash is a slash by the time routing sees the path. */
    s_wire_expect(&w, 3, "HTTP/1.1 404", "no route for GET /p/a/b/x");
    s_wire_expect(&w, 4, "HTTP/1.1 404", "no route for GET /p/a/b/x");
    s_wire_expect(&w, 5, "HTTP/1.1 200", "\"q\":\"1 2\""); /* the query is apart */
    s_wire_expect(&w, 6, "HTTP/1.1 400", "encoded NUL");
    s_wire_expect(&w, 7, "HTTP/1.1 200", "\"id\":\"\xe2\x82\xac\"");
    s_wire_expect(&w, 8, "HTTP/1.1 200", "\"id\":\"%zz\""); /* not an escape: kept */
    s_wire_expect(&w, 9, "HTTP/1.1 405", "(allowed: GET, HEAD, POST)");
    cr_assert(strstr(w.resp[9], "\r\nAllow: GET, HEAD, POST\r\n"), "%s", w.resp[9]);
    /* A decoded byte that is not UTF-8 is quoted as U+FFFD. */
    s_wire_expect(&w, 10, "HTTP/1.1 404", "no route for GET /nope/\xef\xbf\xbd");
    cr_assert_null(strstr(w.resp[10], "Allow:"), "a 404 has no Allow");
    hfix_fini(&w.h);
}

Test(route_wire, head_gets_get_headers_without_body, .timeout = 20)
{
    static wire_t w;
    hfix_init(&w.h, NULL);
    cr_assert_eq(http_route(w.h.srv, "GET", "/p/{id}/x", 0, s_echo_param, NULL), 0);
    const char *reqs[] = {HFIX_REQ("GET /p/1/x", ""), HFIX_REQ("HEAD /p/1/x", "")};
    w.n = 2;
    memcpy(w.reqs, reqs, sizeof reqs);
    hfix_start(&w.h);
    hfix_run(&w.h, s_wire_client, &w);
    s_wire_expect(&w, 0, "HTTP/1.1 200", "\r\n\r\n{\"id\":\"1\"}");
    s_wire_expect(&w, 1, "HTTP/1.1 200", "Content-Type: application/json");
    cr_assert(strstr(w.resp[1], "Content-Length: 10\r\n"), "%s", w.resp[1]);
    cr_assert(strcmp(strstr(w.resp[1], "\r\n\r\n"), "\r\n\r\n") == 0, "%s", w.resp[1]);
    hfix_fini(&w.h);
}
