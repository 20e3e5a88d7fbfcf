/* test_runtime_strict.c - what a hostile or sloppy client sends the HTTP
 * layer of the worker runtime (common/http_strict.c, http_linger.c): heads
 * RFC 9112 says to refuse with 400 (a request smuggled behind
 * `Content-Length : 34`, a NUL in the target or in a value, a missing or a
 * second Host, obs-fold), and early answers (413) that real clients still
 * sending their body must read rather than lose to a reset (curl, and
 * node's http module, each ten times). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define TESTSVC "vapora-testsvc"

/* Requests to GET /items/{id} of the testsvc counted by its /metrics. */
static double s_items_served(const th_proc_t *p)
{
    th_resp_t *r = th_must_request(p->port, "GET", "/metrics", NULL, NULL);
    const char *const labels[] = {"route=\"/items/{id}\"", NULL};
    double v = th_metric(r->body, "vapora_http_requests_total", labels);
    th_resp_free(&r);
    return v < 0 ? 0 : v;
}

/* A raw head (it may hold NULs) and what it shows. */
typedef struct head_case {
    const char *raw;
    size_t len;
    const char *what;
} head_case_t;

#define HEAD(lit, what) {lit, sizeof lit - 1, what}

/* Starts a testsvc and asserts that each head is answered 400 bad_request
 * and its connection closed, that the worker goes on, and that none of
 * them reached GET /items/{id}. */
static void s_assert_all_400(const head_case_t *cases, size_t n)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    for (size_t i = 0; i < n; i++) {
        th_assert_answered_and_closed(p->port, cases[i].raw, cases[i].len, 400,
                                      "bad_request", cases[i].what);
        th_assert_serving(p->port);
    }
    cr_assert_eq(s_items_served(p), 0, "a refused request ran");
}

/* ---- RFC 9112: heads refused with 400 ---- */

/* A space before the colon made libmicrohttpd miss the length: the body
 * ran as a second request (GET /items/smuggled). It must not run. */
Test(http_strict, content_length_with_space_smuggles_nothing, .timeout = 30,
     .fini = th_cleanup)
{
    static const head_case_t cases[] = {
        HEAD("POST /echo HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT "Content-Length : 41\r\n\r\n"
             "GET /items/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
             "Content-Length : 41, a request in the body"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nContent-Length\t: 0\r\n\r\n",
             "Content-Length<tab>:"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", "X-A :"),
    };
    s_assert_all_400(cases, sizeof cases / sizeof *cases);
}

/* A NUL cut the target short: "/items/a\0/../../health" ran as /items/a. */
Test(http_strict, nul_in_request_line, .timeout = 30, .fini = th_cleanup)
{
    static const head_case_t cases[] = {
        HEAD("GET /items/a\0/../../health HTTP/1.1\r\nHost: x\r\n\r\n",
             "NUL in the target"),
        HEAD("GET /items/a\0 HTTP/1.1\r\nHost: x\r\n\r\n", "NUL at its end"),
        HEAD("GE\0T /items/a HTTP/1.1\r\nHost: x\r\n\r\n", "NUL in the method"),
        HEAD("GET /items/a\tb HTTP/1.1\r\nHost: x\r\n\r\n", "tab in the target"),
    };
    s_assert_all_400(cases, sizeof cases / sizeof *cases);
}

Test(http_strict, host_missing_or_twice, .timeout = 30, .fini = th_cleanup)
{
    static const head_case_t cases[] = {
        HEAD("GET /items/a HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
             "two Host, same value"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: a b\r\n\r\n", "Host with a space"),
    };
    s_assert_all_400(cases, sizeof cases / sizeof *cases);
}

Test(http_strict, obs_fold_and_nul_in_a_value, .timeout = 30, .fini = th_cleanup)
{
    static const head_case_t cases[] = {
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
             "obs-fold (space)"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n",
             "obs-fold (tab)"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
             "NUL in a value"),
        HEAD("GET /items/a HTTP/1.1\r\nX-A: a\0\r\nHost: x\r\n\r\n",
             "NUL at the end of a value"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "CR in a value"),
        HEAD("GET /items/a HTTP/1.1\r\nHost: x\r\nX-A: a\x01 b\r\n\r\n",
             "control character in a value"),
    };
    s_assert_all_400(cases, sizeof cases / sizeof *cases);
}

/* What RFC 9112 allows stays allowed. */
Test(http_strict, tolerated_forms_are_served, .timeout = 30, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    static const char *const heads[] = {
        "GET /items/a HTTP/1.0\r\n\r\n",                             /* no Host */
        "GET /items/a%20b HTTP/1.1\r\nHost: x\r\n\r\n",               /* %20 */
        "GET /items/a HTTP/1.1\nHost: x\n\n",                        /* bare LF */
        "GET /items/a HTTP/1.1\r\nHost:x\r\nX-A:\t b \r\n\r\n",      /* OWS */
        "GET /items/a HTTP/1.1\r\nHost: \r\n\r\n",                   /* empty Host */
        "GET /items/a HTTP/1.1\r\nHost: [::1]:80\r\nX-B: \xc3\xa9\r\n\r\n",
        "\r\nGET /items/a HTTP/1.1\r\nHost: x\r\nX-C: a:b\r\n\r\n", /* blank first */
    };
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        th_conn_t *c = th_must_connect(p->port);
        cr_assert_eq(th_send_raw(c, heads[i], strlen(heads[i]), TH_IO_MS), 0);
        th_resp_t *r = NULL;
        cr_assert_eq(th_read_response(c, &r, TH_IO_MS), 0, "head %zu: no answer", i);
        cr_assert_eq(r->status, 200, "head %zu: %d %.300s", i, r->status, r->body);
        th_resp_free(&r);
        th_conn_close(&c);
    }
    cr_assert_eq(s_items_served(p), sizeof heads / sizeof *heads);
}

/* ---- early answers, read by clients still sending ---- */

/* Runs cmd (a shell command printing the status it got) and returns its
 * first line (kept). */
static const char *s_run(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "popen %s", cmd);
    char line[256] = "";
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    pclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return th_fmt("%s", line);
}

/* A 10 MB file of 'a' for the uploads (kept). */
static const char *s_big_file(void)
{
    char *path = th_keep(th_tmp_path("upload", ".txt"));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    static char block[65536];
    memset(block, 'a', sizeof block);
    for (size_t n = 0; n < 10 * 1000 * 1000; n += sizeof block)
        fwrite(block, 1, sizeof block, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* curl, ten times per framing (Expect off: the body goes at once), against
 * the 1 MiB body limit: each run must print 413. */
Test(http_early, curl_sees_413_while_sending_10_mb, .timeout = 120, .fini = th_cleanup)
{
    th_proc_t *p = th_must_start(TESTSVC, "testsvc", NULL);
    const char *file = s_big_file();
    static const char *const framings[] = {"-H 'Transfer-Encoding: chunked'", ""};
    for (size_t f = 0; f < 2; f++)
        for (int i = 0; i < 10; i++) {
            const char *got = s_run(th_fmt(
                "curl -s -o /dev/null -w '%%{http_code}' -H 'Expect:' %s "
                "-H 'Content-Type: application/json' --data-binary @%s "
                "http://127.0.0.1:%d/echo 2>&1",
                framings[f], file, p->port));
            cr_assert_str_eq(got, "413", "%s run %d: curl got %s",
                             f ? "Content-Length" : "chunked", i, got);
        }
    unlink(file);
    th_assert_serving(p->port);
}

/* Runs the node client ten times per framing; each must print want. */
static void s_node_sees(const th_proc_t *p, const char *pad, const char *want)
{
    static const char *const modes[] = {"chunked", "length"};
    for (size_t m = 0; m < 2; m++)
        for (int i = 0; i < 10; i++) {
            const char *got =
                s_run(th_fmt("node tests/integration/clients/early_reply.js %d %s %s 2>&1",
                             p->port, modes[m], pad));
            cr_assert_str_eq(got, want, "%s run %d: node got %s", modes[m], i, got);
        }
    th_assert_serving(p->port);
}

/* node's http client writes the whole body whatever comes back; it must
 * still see the 413 (tests/integration/clients/early_reply.js). */
Test(http_early, node_sees_413_while_sending_10_mb, .timeout = 120, .fini = th_cleanup)
{
    if (system("node --version >/dev/null 2>&1") != 0)
        cr_skip_test("node is not installed");
    s_node_sees(th_must_start(TESTSVC, "testsvc", NULL), "0", "413");
}

/* A head too large for libmicrohttpd's memory: it answers 431 itself
 * (its own HTML), and that answer must be read as well. */
Test(http_early, node_sees_libmicrohttpds_own_431_while_sending, .timeout = 120,
     .fini = th_cleanup)
{
    if (system("node --version >/dev/null 2>&1") != 0)
        cr_skip_test("node is not installed");
    s_node_sees(th_must_start(TESTSVC, "testsvc", NULL), "20000", "431");
}
