/* test_backend_pagination.c - the backend's cursor pagination
 * (docs/backend.md): paging through a thousand tasks, or projects oldest
 * first, while another client inserts, lists every item that was there
 * exactly once; limit and cursor are validated.
 *
 * Its tests have .fini = s_fini: the inserting client threads are stopped
 * and joined before be_fini. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fixture.h"

typedef struct s_inserter s_inserter_t;
static s_inserter_t *s_ins[8]; /* client threads still running */
static size_t s_nins;
static void s_inserter_stop(s_inserter_t *in);
static void s_inserter_free(s_inserter_t *in);

static void s_fini(void)
{
    for (size_t i = 0; i < s_nins; i++) {
        s_inserter_stop(s_ins[i]);
        s_inserter_free(s_ins[i]);
    }
    s_nins = 0;
    be_fini();
}

#define S_BATCH 25 /* requests sent before their responses are read */

/* Creates n tasks titled "<prefix>-<i>" in project p (or, when project is
 * set, n projects named so; p is then unused) over one keep-alive
 * connection, S_BATCH requests at a time (pipelined), in order; stores
 * their ids (kept) in ids[]. */
static void s_create_many(const char *tok, const json_t *p, const char *prefix, int n,
                          const char **ids, bool project)
{
    th_conn_t *c = th_must_connect(be_port());
    const char *path =
        project ? BE_API "/projects" : th_fmt(BE_API "/projects/%s/tasks", be_id(p));
    const char *hdr = be_headers(tok, NULL, true);
    for (int i = 0; i < n; i += S_BATCH) {
        int m = n - i < S_BATCH ? n - i : S_BATCH;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (int k = 0; k < m; k++) {
            char body[128];
            snprintf(body, sizeof body,
                     project ? "{\"name\":\"%s-%d\"}" : "{\"title\":\"%s-%d\"}", prefix,
                     i + k);
            fprintf(f,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: "
                    "%zu\r\n\r\n%s",
                    path, hdr, strlen(body), body);
        }
        fclose(f);
        int rc = th_send_raw(c, buf, len, TH_IO_MS);
        free(buf);
        cr_assert_eq(rc, 0, "sending a batch: %s", strerror(-rc));
        for (int k = 0; k < m; k++) {
            th_resp_t *r = NULL;
            rc = th_read_response(c, &r, 2 * TH_IO_MS);
            cr_assert_eq(rc, 0, "no response to request %d of the batch at %d: %s",
                         k + 1, i, strerror(-rc));
            be_assert_status(r, 201, "POST", path);
            ids[i + k] = be_id(th_must_json(r));
            th_resp_free(&r);
        }
    }
    th_conn_close(&c);
}

/* A client thread that creates tasks (or projects) until stopped or max. */
struct s_inserter {
    int port;
    char *path, *headers;
    bool project;
    int max;
    atomic_bool stop;
    atomic_long ok, failed;
    char first_error[300];
    pthread_t th;
    bool joined;
};

static void *s_inserter_main(void *arg)
{
    s_inserter_t *in = arg;
    for (int i = 0; i < in->max && !atomic_load(&in->stop); i++) {
        char body[96], *resp = NULL;
        snprintf(body, sizeof body,
                 in->project ? "{\"name\":\"late-%d\"}" : "{\"title\":\"late-%d\"}", i);
        int st =
            th_call(in->port, "POST", in->path, in->headers, body, &resp, TH_IO_MS);
        if (st == 201) {
            atomic_fetch_add(&in->ok, 1);
        } else if (atomic_fetch_add(&in->failed, 1) == 0) {
            snprintf(in->first_error, sizeof in->first_error, "POST %s: %d %.200s",
                     in->path, st, resp ? resp : "");
        }
        free(resp);
        th_sleep_ms(2);
    }
    return NULL;
}

/* Starts an inserter on path (every signal blocked in its thread). */
static s_inserter_t *s_inserter_start(const char *path, const char *tok, bool project,
                                      int max)
{
    s_inserter_t *in = calloc(1, sizeof *in);
    in->port = be_port();
    in->path = strdup(path);
    in->headers = strdup(be_headers(tok, NULL, true));
    in->project = project;
    in->max = max;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&in->th, NULL, s_inserter_main, in);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cr_assert_eq(rc, 0);
    s_ins[s_nins++] = in;
    return in;
}

/* Stops and joins the thread (once); the struct stays for its counts
 * until s_fini frees it. */
static void s_inserter_stop(s_inserter_t *in)
{
    if (in->joined)
        return;
    atomic_store(&in->stop, true);
    pthread_join(in->th, NULL);
    in->joined = true;
}

static void s_inserter_free(s_inserter_t *in)
{
    free(in->path);
    free(in->headers);
    free(in);
}

/* cursor percent-encoded for a query string (kept). */
static const char *s_urlenc(const char *v)
{
    char *out = th_keep(calloc(1, strlen(v) * 3 + 1)), *o = out;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    return out;
}

/* Pages through base with limit; every id seen is
 * appended to *seen (kept). Returns the number of pages. */
static int s_page_all(const char *tok, const char *base, int limit, const char ***seen,
                      size_t *nseen)
{
    const char *cursor = NULL;
    int pages = 0;
    for (;;) {
        char sep = strchr(base, '?') ? '&' : '?';
        const char *path =
            cursor ? th_fmt("%s%climit=%d&cursor=%s", base, sep, limit, cursor)
                   : th_fmt("%s%climit=%d", base, sep, limit);
        json_t *j = be_api(200, "GET", path, tok, NULL);
        json_t *items = json_object_get(j, "items");
        json_t *next = json_object_get(j, "next_cursor");
        cr_assert(json_is_array(items) && (json_is_null(next) || json_is_string(next)),
                  "GET %s: not {items, next_cursor}: %.300s", path, th_dump(j));
        cr_assert_leq(json_array_size(items), (size_t)limit,
                      "page of %zu items, limit %d", json_array_size(items), limit);
        size_t i;
        json_t *o;
        json_array_foreach(items, i, o)
        {
            *seen = realloc(*seen, (*nseen + 1) * sizeof **seen);
            (*seen)[(*nseen)++] = be_id(o);
        }
        pages++;
        cr_assert_lt(pages, 10000, "paging does not end");
        if (json_is_null(next))
            return pages;
        cr_assert_gt(json_array_size(items), 0, "an empty page with a next_cursor");
        cursor = s_urlenc(json_string_value(next));
    }
}

Test(backend_pagination, a_thousand_tasks_while_others_are_inserted, .timeout = 60,
     .fini = s_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "big");
    json_t *other = be_project(tok, "other");
    for (int i = 0; i < 3; i++)
        be_task(tok, other, "elsewhere", NULL);

    enum { N = 1000 };
    static const char *ids[N];
    long long t0 = th_now_ms();
    s_create_many(tok, p, "t", N, ids, false);
    cr_log_info("created %d tasks in %lld ms", N, th_now_ms() - t0);

    /* Default and bounds of limit. */
    const char *base = th_fmt(BE_API "/tasks?project_id=%s", be_id(p));
    json_t *d = be_api(200, "GET", base, tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 50, "default page: %zu",
                 json_array_size(json_object_get(d, "items")));
    cr_assert(json_is_string(json_object_get(d, "next_cursor")), "%s",
              th_dump(json_object_get(d, "next_cursor")));
    d = be_api(200, "GET", th_fmt("%s&limit=500", base), tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 500);
    d = be_api(200, "GET", th_fmt("%s&limit=1", base), tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 1);
    const char *bad[] = {"0", "501", "abc", "-1", "10x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        be_api_err(400, "invalid_limit", "GET", th_fmt("%s&limit=%s", base, bad[i]),
                   tok, NULL);
    be_api_err(400, "invalid_cursor", "GET", th_fmt("%s&cursor=garbage", base), tok,
               NULL);

    /* Page with 97 while another client adds tasks to the same project. */
    s_inserter_t *in = s_inserter_start(th_fmt(BE_API "/projects/%s/tasks", be_id(p)),
                                        tok, false, 400);
    th_sleep_ms(50);
    const char **seen = NULL;
    size_t nseen = 0;
    int pages = s_page_all(tok, base, 97, &seen, &nseen);
    th_keep((char *)seen);
    s_inserter_stop(in);
    cr_log_info("%d pages, %zu ids; %ld inserted meanwhile", pages, nseen,
                atomic_load(&in->ok));
    cr_assert_eq(atomic_load(&in->failed), 0, "the inserter failed: %s",
                 in->first_error);
    cr_assert_gt(atomic_load(&in->ok), 0, "nothing was inserted while paging");
    cr_assert_geq(pages, (N + 96) / 97);
    be_assert_each_once(seen, nseen, ids, N);

    /* Once everything is in, paging sees exactly what is there. */
    const char **all = NULL;
    size_t nall = 0;
    s_page_all(tok, base, 97, &all, &nall);
    th_keep((char *)all);
    cr_assert_eq((long)nall, N + atomic_load(&in->ok), "listed %zu, created %ld", nall,
                 N + atomic_load(&in->ok));
    be_assert_each_once(all, nall, ids, N);
}

Test(backend_pagination, projects_oldest_first_while_others_are_inserted, .timeout = 60,
     .fini = s_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    enum { N = 150 };
    static const char *ids[N];
    s_create_many(tok, NULL, "p", N, ids, true);

    json_t *d = be_api(200, "GET", BE_API "/projects", tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 50, "default page");
    be_api_err(400, "invalid_limit", "GET", BE_API "/projects?limit=0", tok, NULL);
    be_api_err(400, "invalid_limit", "GET", BE_API "/projects?limit=501", tok, NULL);
    be_api_err(400, "invalid_limit", "GET", BE_API "/projects?limit=abc", tok, NULL);
    be_api_err(400, "invalid_cursor", "GET", BE_API "/projects?cursor=garbage", tok,
               NULL);

    s_inserter_t *in = s_inserter_start(BE_API "/projects", tok, true, 200);
    th_sleep_ms(30);
    const char **seen = NULL;
    size_t nseen = 0;
    s_page_all(tok, BE_API "/projects", 7, &seen, &nseen);
    th_keep((char *)seen);
    s_inserter_stop(in);
    cr_assert_eq(atomic_load(&in->failed), 0, "the inserter failed: %s",
                 in->first_error);
    cr_assert_gt(atomic_load(&in->ok), 0, "nothing was inserted while paging");
    be_assert_each_once(seen, nseen, ids, N);
    /* Oldest first: the first N listed are the first N made, in order. */
    cr_assert_geq(nseen, (size_t)N);
    for (int i = 0; i < N; i++)
        cr_assert_str_eq(seen[i], ids[i], "project %d listed as %d-th", i, i);
}
