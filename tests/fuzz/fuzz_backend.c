/* fuzz_backend.c - the backend's API bodies and list queries, through its
 * real routes (services/backend/projects.c, tasks.c, api.c: the field
 * checks, validate.c, the cursors, the store and the rendering) on the
 * real HTTP layer, with a real database in a temporary directory and an
 * owner's token.
 *
 * The worker runtime (common/worker.c) is not what is fuzzed and would
 * take the process over: a stand-in below gives the routes the loop, pool
 * and server they ask for. Login and user creation are left out: a valid
 * body costs an argon2 hash (tens of ms), which would slow every run down
 * to a crawl (test_backend_validation.c covers their checks).
 *
 * Input: a byte choosing the request (below), then its JSON body or, for a
 * list, its query string (percent-encoded here, as a client would).
 * What a run creates it deletes again (through the API), so that runs
 * stay as fast after an hour as in the first minute.
 * Properties: no crash, no leak, and never a 5xx (a body the checks let
 * through must be one the store takes). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/api.h"
#include "backend/auth.h"
#include "backend/backend.h"
#include "backend/bootstrap.h"
#include "backend/logins.h"
#include "backend/projects.h"
#include "backend/store_projects.h"
#include "backend/store_tasks.h"
#include "backend/store_users.h"
#include "backend/tasks.h"
#include "base.h"
#include "fz.h"
#include "fz_server.h"
#include "worker.h"

/* ---- the stand-in worker: what the routes ask of one ---- */

struct worker {
    fz_server_t *srv;
    pool_t *pool;
};

loop_t *worker_loop(worker_t *w)
{
    return fz_server_loop(w->srv);
}

pool_t *worker_pool(worker_t *w)
{
    return w->pool;
}

http_server_t *worker_http(worker_t *w)
{
    return fz_server_http(w->srv);
}

metrics_t *worker_metrics(worker_t *w)
{
    return fz_server_metrics(w->srv);
}

natsc_t *worker_nats(worker_t *w)
{
    UNUSED(w);
    return NULL; /* no [nats] url */
}

/* ---- the backend ---- */

static worker_t s_worker;
static backend_t s_b;
static char s_dir[] = "/tmp/vapora-fuzz-backend.XXXXXX";
static char *s_auth_header; /* "Authorization: Bearer <owner token>" */
static char s_project[64], s_task[64];

static void s_remove_dir(void)
{
    char *cmd;
    if (asprintf(&cmd, "rm -rf '%s'", s_dir) > 0 && system(cmd) != 0)
        fprintf(stderr, "fuzz_backend: could not remove %s\n", s_dir);
    free(cmd);
}

/* The admin user, its token, and a project and a task to patch. */
static void s_fixtures(void)
{
    char err[256];
    store_err_t e;
    json_t *user = NULL, *p = NULL;
    char *hash = NULL;
    int64_t ver = 0;
    FZ_CHECK(bootstrap_users(s_b.store, s_dir, "fuzz-admin-password",
                             "fuzz-agents-password", err, sizeof err) == 0,
             "%s", err);
    FZ_CHECK(store_user_by_name(s_b.store, "admin", &user, &hash, &ver, &e) == 0, "%s",
             e.msg);
    char *tok = auth_issue_token(s_b.auth, user, ver);
    FZ_CHECK(tok && asprintf(&s_auth_header, "Authorization: Bearer %s\r\n", tok) > 0,
             "no token");
    FZ_CHECK(store_project_create(s_b.store, "fuzz", "", &p, &e) == 0, "%s", e.msg);
    snprintf(s_project, sizeof s_project, "%s",
             json_string_value(json_object_get(p, "id")));
    store_task_new_t nt = {
        .project_id = s_project, .title = "t", .type = "feature", .priority = "medium"};
    char *doc = NULL, id[STORE_ID_MAX];
    FZ_CHECK(store_task_create(s_b.store, &nt, &doc, id, &e) == 0, "%s", e.msg);
    snprintf(s_task, sizeof s_task, "%s", id);
    free(doc);
    store_end(s_b.store);
    free(tok);
    free(hash);
    json_decref(user);
    json_decref(p);
}

/* Writes run on the store's writer thread, whose answers come back through
 * a mailbox: while a request is in flight (this target always sends whole
 * requests, so none waits for its client), the exchange waits for it. */
static bool s_busy(void *ud)
{
    UNUSED(ud);
    return http_server_in_flight(fz_server_http(s_worker.srv)) > 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    UNUSED(argc);
    UNUSED(argv);
    char err[256];
    FZ_CHECK(mkdtemp(s_dir), "mkdtemp failed");
    atexit(s_remove_dir);
    http_config_t cfg;
    fz_server_config(&cfg);
    s_worker.srv = fz_server_new(&cfg);
    s_worker.pool = pool_new(fz_server_loop(s_worker.srv), 1, 16);
    fz_server_watch_pool(s_worker.srv, s_worker.pool);
    char *db;
    FZ_CHECK(asprintf(&db, "%s/vapora.db", s_dir) > 0, "asprintf");
    s_b = (backend_t){.w = &s_worker, .data_dir = s_dir};
    s_b.store = store_open(db, SQLDB_SYNC_NORMAL, err, sizeof err);
    FZ_CHECK(s_b.store, "%s", err);
    free(db);
    s_b.auth = auth_new_with_key("fuzz-key-fuzz-key-fuzz-key-fuzz!", 32, 3600);
    s_b.logins = logins_new(s_dir, LOGINS_ADDRESS_FREE);
    s_fixtures();
    FZ_CHECK(api_init(&s_b) == 0, "api_init failed");
    fz_server_watch_busy(s_worker.srv, s_busy, NULL);
    projects_add_routes(&s_b);
    tasks_add_routes(&s_b);
    fz_server_start(s_worker.srv);
    return 0;
}

/* ---- one request ---- */

#define FZ_QUERY_MAX 3000 /* bytes of request line, below max_url (4096) */

typedef struct target {
    const char *method;
    const char *path; /* %s: the fixture project's or task's id */
    bool task;        /* the id is the task's */
    bool query;       /* the input is the query string, not a body */
    const char *extra;
} target_t;

static const target_t s_targets[] = {
    {"POST", "/api/v1/projects", false, false, ""},
    {"PATCH", "/api/v1/projects/%s", false, false, ""},
    {"POST", "/api/v1/projects/%s/tasks", false, false, ""},
    {"PATCH", "/api/v1/tasks/%s", true, false, "If-Match: *\r\n"},
    {"POST", "/api/v1/tasks/%s/assign", true, false, ""},
    {"GET", "/api/v1/tasks", false, true, ""},
    {"GET", "/api/v1/projects", false, true, ""},
    {"GET", "/api/v1/projects/%s/board", false, true, ""},
};

/* The input as a query string: bytes a request line cannot carry are
 * percent-encoded, and it stops short of max_url: longer request lines are
 * fuzz_http's business (and near the size of libmicrohttpd's buffer they
 * stall until request_timeout, which made this target crawl). */
static void s_query(sbuf_t *out, const uint8_t *s, size_t n)
{
    static const char keep[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-._~=&%+";
    sbuf_puts(out, "?");
    for (size_t i = 0; i < n && out->len < FZ_QUERY_MAX; i++) {
        if (s[i] && strchr(keep, s[i]))
            sbuf_append(out, &s[i], 1);
        else
            sbuf_printf(out, "%%%02X", s[i]);
    }
}

static void s_request(const target_t *t, const uint8_t *data, size_t len, sbuf_t *req)
{
    sbuf_printf(req, "%s ", t->method);
    sbuf_printf(req, t->path, t->task ? s_task : s_project);
    if (t->query)
        s_query(req, data, len);
    sbuf_printf(req, " HTTP/1.1\r\nHost: t\r\n%s%s", s_auth_header, t->extra);
    if (!t->query)
        sbuf_printf(req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                    len);
    sbuf_puts(req, "\r\n");
    if (!t->query && len)
        sbuf_append(req, data, len);
}

static void s_check_reply(const char *method, const char *path, const sbuf_t *reply)
{
    FZ_CHECK(!reply->data || strncmp(reply->data, "HTTP/1.1 5", 10) != 0,
             "%s %s answered a server error:\n%.*s", method, path,
             (int)(reply->len < 2000 ? reply->len : 2000), reply->data);
}

/* Deletes what a create made (its Location), so that the database, and
 * the fixture project's board, stay the same size run after run. */
static void s_undo_create(const sbuf_t *reply)
{
    const char *loc = reply->data ? strstr(reply->data, "\r\nLocation: ") : NULL;
    if (!loc)
        return;
    loc += 12;
    int n = (int)strcspn(loc, "\r\n");
    sbuf_t req = {0}, del = {0};
    sbuf_printf(&req, "DELETE %.*s HTTP/1.1\r\nHost: t\r\n%s\r\n", n, loc,
                s_auth_header);
    fz_server_exchange(s_worker.srv, req.data, req.len, &del);
    s_check_reply("DELETE", "a new item", &del);
    sbuf_free(&req);
    sbuf_free(&del);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    const target_t *t = &s_targets[fz_byte(&in) % ARRAY_LEN(s_targets)];
    sbuf_t req = {0}, reply = {0};
    s_request(t, in.data, in.len, &req);
    fz_server_exchange(s_worker.srv, req.data, req.len, &reply);
    s_check_reply(t->method, t->path, &reply);
    s_undo_create(&reply);
    sbuf_free(&req);
    sbuf_free(&reply);
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    return fz_mutate_json(data, size, max_size, seed);
}
