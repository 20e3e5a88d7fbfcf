/* test_backend_web.c - the web board's side of the backend (docs/web.md):
 * its files served from [backend] web_root with their types, caching and
 * policy, GET only (HEAD: tests/ui), nothing outside the root; the relays of the
 * other services' routes (who may call them, a service that does not
 * answer); and the board's answer, which leaves out archived tasks and
 * result bodies unless asked. The relays' happy paths (the agents, a run's
 * live output, the router's reports, the supervisor's status) run in the
 * browser tests (tests/ui), against the whole suite. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_fixture.h"

#define SECRET "top-secret-outside-the-root"

/* Writes text to dir/name (its folder made first). */
static void s_put(const char *dir, const char *name, const char *text)
{
    char *path = th_fmt("%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char *cmd = th_fmt("mkdir -p '%s'", path);
    cr_assert_eq(system(cmd), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* A web root with a page, an app file, a vendored module, and beside it a
 * file no request may reach (also through a symlink and a dotfile). */
static const char *s_web_root(void)
{
    const char *d = be_new_dir();
    s_put(d, "secret.txt", SECRET);
    s_put(d, "web/index.html", "<!doctype html><title>board</title>");
    s_put(d, "web/app/main.js", "export const x = 1;");
    s_put(d, "web/app/app.css", "body{}");
    s_put(d, "web/app/.env", SECRET);
    s_put(d, "web/vendor/lib-1.2.3/lib.mjs", "export default 2;");
    s_put(d, "web/vendor/lib-1.2.3/LICENSE", "MIT");
    cr_assert_eq(symlink(th_fmt("%s/secret.txt", d), th_fmt("%s/web/app/link.js", d)),
                 0);
    return th_fmt("%s/web", d);
}

static th_resp_t *s_get(const char *path, const char *headers)
{
    return be_send_raw("GET", path, headers ? headers : "", NULL);
}

static void s_assert_header(const th_resp_t *r, const char *name, const char *want)
{
    const char *v = th_resp_header(r, name);
    cr_assert(v && strstr(v, want), "%s: %s, want it to hold %s", name,
              v ? v : "(none)", want);
}

Test(backend_web, serves_files_with_types_caching_and_policy, .timeout = 60,
     .fini = be_fini)
{
    be_start(th_fmt("admin_password = " BE_PW "\nweb_root = %s\n", s_web_root()));
    th_resp_t *r = s_get("/", NULL);
    be_assert_status(r, 200, "GET", "/");
    cr_assert(strstr(r->body, "<title>board</title>"), "%s", r->body);
    s_assert_header(r, "Content-Type", "text/html");
    s_assert_header(r, "Cache-Control", "no-cache");
    s_assert_header(r, "Content-Security-Policy", "default-src 'none'");
    s_assert_header(r, "Content-Security-Policy", "script-src 'self';");
    s_assert_header(r, "Content-Security-Policy", "frame-ancestors 'none'");
    s_assert_header(r, "X-Content-Type-Options", "nosniff");
    cr_assert(!strstr(th_resp_header(r, "Content-Security-Policy"), "unsafe"));

    r = s_get("/app/main.js", NULL);
    be_assert_status(r, 200, "GET", "/app/main.js");
    s_assert_header(r, "Content-Type", "text/javascript");
    s_assert_header(r, "Cache-Control", "no-cache");
    const char *etag = th_resp_header(r, "ETag");
    cr_assert(etag && etag[0] == '"', "ETag %s", etag ? etag : "(none)");
    r = s_get("/app/main.js", th_fmt("If-None-Match: %s\r\n", etag));
    be_assert_status(r, 304, "GET", "/app/main.js (If-None-Match)");
    r = s_get("/app/app.css", NULL);
    s_assert_header(r, "Content-Type", "text/css");

    r = s_get("/vendor/lib-1.2.3/lib.mjs", NULL);
    be_assert_status(r, 200, "GET", "/vendor/lib-1.2.3/lib.mjs");
    s_assert_header(r, "Content-Type", "text/javascript");
    s_assert_header(r, "Cache-Control", "immutable");
    r = s_get("/vendor/lib-1.2.3/LICENSE", NULL);
    s_assert_header(r, "Content-Type", "text/plain");

    r = be_send_raw("POST", "/app/main.js", TH_JSON_CT, "{}");
    be_assert_status(r, 405, "POST", "/app/main.js");
    r = s_get("/app/nothing.js", NULL);
    be_assert_status(r, 404, "GET", "/app/nothing.js");
}

Test(backend_web, refuses_every_way_out_of_the_root, .timeout = 60, .fini = be_fini)
{
    be_start(th_fmt("admin_password = " BE_PW "\nweb_root = %s\n", s_web_root()));
    static const char *const paths[] = {
        "/app/..%2fsecret.txt",
        "/app/..%2F..%2Fsecret.txt",
        "/app/%2e%2e%2fsecret.txt",
        "/app/%2e%2e",
        "/app/..",
        "/vendor/..%2f..%2fsecret.txt/x",
        "/vendor/lib-1.2.3/..%2f..%2f..%2fsecret.txt",
        "/vendor/../secret.txt",
        "/app/.env",
        "/app/link.js",
        "/app/%00main.js",
        "/../secret.txt",
        "/app/main.js%2f..%2f..%2fsecret.txt",
        "/vendor/%2e%2e/secret.txt",
        "/app/..\\secret.txt",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        th_resp_t *r = s_get(paths[i], NULL);
        cr_assert(r->status == 404 || r->status == 400, "GET %s: %d %s", paths[i],
                  r->status, r->body);
        cr_assert(!strstr(r->body, SECRET), "GET %s reached outside the root",
                  paths[i]);
        be_disconnect(); /* a refused request may close the connection */
    }
}

Test(backend_web, without_a_web_root_the_api_still_serves, .timeout = 60,
     .fini = be_fini)
{
    be_start("admin_password = " BE_PW "\nweb_root = /nonexistent/web\n");
    const char *msg = be_api_err(404, "no_web_board", "GET", "/", NULL, NULL);
    cr_assert(strstr(msg, "web_root"), "%s", msg);
    be_login("admin", BE_PW);
}

/* Nothing listens on the port a relay is told. */
static const char *s_dead_url(void)
{
    return th_fmt("http://127.0.0.1:%d", th_free_port());
}

Test(backend_web, relays_check_who_calls_and_name_a_service_that_does_not_answer,
     .timeout = 60, .fini = be_fini)
{
    be_start(th_fmt("admin_password = " BE_PW "\nweb_root = /nonexistent\n"
                    "agents_url = %s\nrouter_url = %s\nsupervisor_url = %s\n",
                    s_dead_url(), s_dead_url(), s_dead_url()));
    const char *tok = be_login("admin", BE_PW);
    be_user(tok, "mia", "member-pw-1", "member");
    const char *mia = be_login("mia", "member-pw-1");
    /* Checked here: the router's reports need a user, the supervisor's
     * status an owner. */
    be_api_err(401, "unauthorized", "GET", BE_API "/budgets", NULL, NULL);
    be_api_err(401, "unauthorized", "GET", BE_API "/usage?group_by=role", "forged",
               NULL);
    be_api_err(403, "forbidden", "GET", BE_API "/supervisor/status", mia, NULL);
    /* Past the check, a service that does not answer is named. */
    const char *m =
        be_api_err(502, "upstream_unavailable", "GET", BE_API "/budgets", mia, NULL);
    cr_assert(strstr(m, "llm-router"), "%s", m);
    m = be_api_err(502, "upstream_unavailable", "GET", BE_API "/supervisor/status", tok,
                   NULL);
    cr_assert(strstr(m, "supervisor"), "%s", m);
    m = be_api_err(502, "upstream_unavailable", "GET", BE_API "/agents", tok, NULL);
    cr_assert(strstr(m, "agents"), "%s", m);
    m = be_api_err(502, "upstream_unavailable", "GET", BE_API "/runs/abc/stream", tok,
                   NULL);
    m = be_api_err(502, "upstream_unavailable", "POST", BE_API "/runs/abc/cancel", tok,
                   "{}");
    cr_assert(strstr(m, "agents"), "%s", m);
}

Test(backend_web, the_board_leaves_out_archived_tasks_and_results_unless_asked,
     .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "lean board");
    json_t *a = be_task(tok, p, "archived one", NULL);
    json_t *r = be_task(tok, p, "with a result", NULL);
    be_task(tok, p, "plain", NULL);
    be_walk(tok, a, "archived", NULL);
    be_patch(tok, r, "{\"result\":{\"content\":\"a long answer\"}}");
    const char *path = th_fmt(BE_API "/projects/%s/board", be_id(p));

    json_t *b = be_api(200, "GET", path, tok, NULL);
    json_t *cols = json_object_get(b, "columns");
    cr_assert_eq(json_array_size(cols), 5, "%s", th_dump(b));
    json_t *todo = json_array_get(cols, 0), *arch = json_array_get(cols, 4);
    cr_assert_eq(th_int(todo, "count"), 2, "%s", th_dump(todo));
    cr_assert_eq(json_array_size(json_object_get(arch, "tasks")), 0, "%s",
                 th_dump(arch));
    cr_assert_eq(th_int(arch, "count"), 1,
                 "the archived column counts what it leaves out");
    json_t *wr = th_find(json_object_get(todo, "tasks"), "title", "with a result");
    cr_assert(wr && !json_object_get(wr, "result"), "%s", th_dump(wr));
    cr_assert(json_is_true(json_object_get(wr, "has_result")), "%s", th_dump(wr));
    json_t *pl = th_find(json_object_get(todo, "tasks"), "title", "plain");
    cr_assert(json_is_false(json_object_get(pl, "has_result")), "%s", th_dump(pl));

    b = be_api(200, "GET", th_fmt("%s?archived=true&results=1", path), tok, NULL);
    cols = json_object_get(b, "columns");
    arch = json_array_get(cols, 4);
    cr_assert_eq(json_array_size(json_object_get(arch, "tasks")), 1, "%s",
                 th_dump(arch));
    wr = th_find(json_object_get(json_array_get(cols, 0), "tasks"), "title",
                 "with a result");
    cr_assert_str_eq(th_str(json_object_get(wr, "result"), "content"), "a long answer");
}

/* ---- a stand-in for the other services: records each request's head ---- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

typedef struct upstream {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t lock;
    char heads[8][2048];
    int n;
} upstream_t;

static void *s_upstream_run(void *arg)
{
    upstream_t *u = arg;
    static const char reply[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
    for (;;) {
        int c = accept(u->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[2048] = "";
        size_t len = 0;
        while (len < sizeof buf - 1 && !strstr(buf, "\r\n\r\n")) {
            ssize_t k = read(c, buf + len, sizeof buf - 1 - len);
            if (k <= 0)
                break;
            len += (size_t)k;
            buf[len] = '\0';
        }
        pthread_mutex_lock(&u->lock);
        if (u->n < 8)
            snprintf(u->heads[u->n++], sizeof u->heads[0], "%s", buf);
        pthread_mutex_unlock(&u->lock);
        ssize_t w = write(c, reply, sizeof reply - 1);
        (void)w;
        close(c);
    }
}

static upstream_t *s_upstream(void)
{
    upstream_t *u =
        calloc(1, sizeof *u); /* its thread uses it to the end: never freed */
    pthread_mutex_init(&u->lock, NULL);
    u->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(u->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(u->fd, 16), 0);
    getsockname(u->fd, (struct sockaddr *)&a, &al);
    u->port = ntohs(a.sin_port);
    pthread_create(&u->thread, NULL, s_upstream_run, u);
    pthread_detach(u->thread);
    return u;
}

/* The head of the upstream's last request. */
static const char *s_last(upstream_t *u)
{
    pthread_mutex_lock(&u->lock);
    const char *h = th_fmt("%s", u->n ? u->heads[u->n - 1] : "");
    pthread_mutex_unlock(&u->lock);
    return h;
}

Test(backend_web, relays_forward_the_path_known_arguments_and_credentials,
     .timeout = 60, .fini = be_fini)
{
    upstream_t *ag = s_upstream(), *rt = s_upstream(), *sv = s_upstream();
    const char *dir = be_new_dir();
    s_put(dir, "admin-token", "the-admin-token\n");
    be_start_in(dir, th_fmt("admin_password = " BE_PW "\nweb_root = /nonexistent\n"
                            "agents_url = http://127.0.0.1:%d/\n"
                            "router_url = http://127.0.0.1:%d\nrouter_key = rk-board\n"
                            "supervisor_url = http://127.0.0.1:%d\n",
                            ag->port, rt->port, sv->port));
    const char *tok = be_login("admin", BE_PW);
    /* The agents get the caller's token, the path with its id encoded
     * again, and only the arguments the route knows. */
    be_api(200, "GET", BE_API "/runs?task_id=a%20b&state=running&evil=1", tok, NULL);
    const char *h = s_last(ag);
    cr_assert(strstr(h, "GET /api/v1/runs?task_id=a%20b&state=running HTTP/1.1"), "%s",
              h);
    cr_assert(strstr(h, th_fmt("Authorization: Bearer %s", tok)), "%s", h);
    be_api(200, "GET", BE_API "/agents/dev%20a%3Fx%23y", tok, NULL);
    h = s_last(ag);
    cr_assert(strstr(h, "GET /api/v1/agents/dev%20a%3Fx%23y HTTP/1.1"), "%s", h);
    be_api_err(404, "not_found", "GET", BE_API "/runs/%2E%2E", tok, NULL);
    be_api(200, "POST", BE_API "/runs/r1/cancel", tok, "{}");
    h = s_last(ag);
    cr_assert(strstr(h, "POST /api/v1/runs/r1/cancel HTTP/1.1") &&
                  strstr(h, "Content-Type: application/json"),
              "%s", h);
    /* The router gets its caller key, never the user's token. */
    be_api(200, "GET", BE_API "/usage?group_by=model&since=60", tok, NULL);
    h = s_last(rt);
    cr_assert(strstr(h, "GET /api/v1/usage?group_by=model&since=60 HTTP/1.1"), "%s", h);
    cr_assert(strstr(h, "Authorization: Bearer rk-board") && !strstr(h, tok), "%s", h);
    /* The supervisor gets its admin token, read from the data directory. */
    be_api(200, "GET", BE_API "/supervisor/status", tok, NULL);
    h = s_last(sv);
    cr_assert(strstr(h, "GET /status HTTP/1.1"), "%s", h);
    cr_assert(strstr(h, "Authorization: Bearer the-admin-token\r\n") && !strstr(h, tok),
              "%s", h);
}
