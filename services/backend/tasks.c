/* tasks.c - tasks: create in a project, list with filters, get, update
 * under the status rules (If-Match), delete, assign; see tasks.h. */
#define _GNU_SOURCE
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cache.h"
#include "cursor.h"
#include "log.h"
#include "now.h"
#include "parse.h"
#include "rules.h"
#include "sbuf.h"
#include "store_tasks.h"

/* A task's result, encoded, at most (as description: 100,000). Boards and
 * lists carry every result: keep each one bounded. */
#define TASK_RESULT_MAX 100000

/* The agent roles a task may be assigned to. */
static bool s_is_agent_role(const char *r)
{
    static const char *const roles[] = {
        "architect",  "developer",       "code-reviewer",  "tester",
        "documenter", "marketer",        "presenter",      "devops",
        "security",   "project-manager", "decision-maker", "monitor", NULL};
    for (const char *const *x = roles; r && *x; x++)
        if (strcmp(r, *x) == 0)
            return true;
    return false;
}

/* Checks the fields shared by create and update. */
static bool s_check_common(const json_t *body, verr_t *e)
{
    const char *s;
    return validate_string(body, "description", false, 0, 100000, &s, e) &&
           validate_enum(body, "type", false, rules_is_type, &s, e) &&
           validate_enum(body, "priority", false, rules_is_priority, &s, e) &&
           validate_number(body, "estimated_hours", 0, 100000, true, e) &&
           validate_id_array(body, "blocked_by", e);
}

/* ---- create ---- */

typedef struct create_job {
    api_job_t job;
    store_task_new_t task; /* borrows from the request */
} create_job_t;

static void s_create_work(api_job_t *j)
{
    const store_task_new_t *t = &container_of(j, create_job_t, job)->task;
    char id[STORE_ID_MAX];
    j->rc = store_task_create(j->b->store, t, &j->body, id, &j->err);
    if (j->rc == 0) {
        j->status = 201;
        snprintf(j->location, sizeof j->location, "/api/v1/tasks/%s", id);
    }
}

/* The new task of project_id from a validated body, with the defaults. */
static void s_new_task(store_task_new_t *t, const char *project_id, const json_t *body)
{
    json_t *eh = json_object_get(body, "estimated_hours");
    const char *type = json_string_value(json_object_get(body, "type"));
    const char *priority = json_string_value(json_object_get(body, "priority"));
    *t = (store_task_new_t){
        .project_id = project_id,
        .title = json_string_value(json_object_get(body, "title")),
        .description = json_string_value(json_object_get(body, "description")),
        .type = type ? type : "feature",
        .priority = priority ? priority : "medium",
        .has_estimate = json_is_number(eh),
        .estimated_hours = json_number_value(eh),
        .blocked_by = json_object_get(body, "blocked_by"),
    };
}

static void s_create(http_req_t *req, void *ud)
{
    create_job_t *c = API_START(req, ud, create_job_t, s_create_work, AUTH_MEMBER);
    if (!c)
        return;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"title",    "description",     "type",
                                          "priority", "estimated_hours", "blocked_by",
                                          NULL};
    verr_t e;
    const char *title;
    if (!validate_known_fields(body, allowed, &e) ||
        !validate_string(body, "title", true, 1, 500, &title, &e) ||
        !s_check_common(body, &e)) {
        api_invalid(req, &e);
        api_discard(&c->job);
        return;
    }
    s_new_task(&c->task, c->job.id, body);
    c->job.writer = true;
    api_run(req, &c->job);
}

/* ---- list and get ---- */

typedef struct list_job {
    api_job_t job;
    store_task_filter_t filter; /* the request's query */
    api_page_t page;
} list_job_t;

static void s_list_work(api_job_t *j)
{
    list_job_t *l = container_of(j, list_job_t, job);
    sbuf_t b = {0};
    int64_t next = 0;
    sbuf_puts(&b, "{\"items\":");
    j->rc = store_task_page(j->b->store, &l->filter, l->page.after, l->page.limit, &b,
                            &next, &j->err);
    if (j->rc == 0) {
        char cur[64];
        if (next)
            cursor_encode('t', next, cur, sizeof cur);
        sbuf_printf(&b, ",\"next_cursor\":%s%s%s}", next ? "\"" : "",
                    next ? cur : "null", next ? "\"" : "");
        j->body = sbuf_steal(&b);
    }
    sbuf_free(&b);
}

/* A query filter: absent, or a value fn accepts; false after a 400
 * invalid_<key>. */
static bool s_filter(http_req_t *req, const char *key, bool (*fn)(const char *),
                     const char **out)
{
    const char *v = http_req_query(req, key);
    *out = v;
    if (!v || fn(v))
        return true;
    char code[64];
    snprintf(code, sizeof code, "invalid_%s", key);
    http_reply_error(req, 400, code, "%s=%s is not one of the allowed values", key, v);
    return false;
}

static void s_list(http_req_t *req, void *ud)
{
    list_job_t *l = API_START(req, ud, list_job_t, s_list_work, AUTH_VIEWER);
    if (!l)
        return;
    store_task_filter_t *f = &l->filter;
    f->project_id = http_req_query(req, "project_id");
    if (!api_page(req, 't', &l->page) ||
        !s_filter(req, "status", rules_is_status, &f->status) ||
        !s_filter(req, "priority", rules_is_priority, &f->priority) ||
        !s_filter(req, "assigned_role", s_is_agent_role, &f->assigned_role)) {
        api_discard(&l->job);
        return;
    }
    api_run(req, &l->job);
}

typedef struct get_job {
    api_job_t job;
    uint64_t tag; /* store_version() before the database was asked */
} get_job_t;

static void s_get_work(api_job_t *j)
{
    j->rc = store_task_get_doc(j->b->store, j->id, &j->body, &j->err);
}

/* Keeps the document read for the next GET, tagged with the version read
 * before the database was asked. */
static void s_get_keep(api_job_t *j, http_req_t *req)
{
    UNUSED(req);
    rcache_put(j->b->cache, j->id, container_of(j, get_job_t, job)->tag, j->body);
}

/* Answers from the cache when no write happened anywhere since the
 * document was read (no job is made then); else reads it on the pool. */
static void s_get(http_req_t *req, void *ud)
{
    backend_t *b = ud;
    auth_claims_t who;
    const char *id;
    if (!api_check(req, b, AUTH_VIEWER, &who, &id))
        return;
    uint64_t v = b->cache ? store_version(b->store) : 0;
    size_t len;
    /* Only for a caller known to hold its token: else the job checks. */
    const char *body =
        b->cache && who.current ? rcache_get(b->cache, id, v, &len) : NULL;
    if (body) {
        http_reply(req, 200, "application/json", body, len);
        return;
    }
    get_job_t *g = API_JOB_AS(req, b, get_job_t, s_get_work, &who, id);
    g->tag = v;
    g->job.after = b->cache ? s_get_keep : NULL;
    api_run(req, &g->job);
}

/* ---- update and assign ---- */

typedef struct update_job {
    api_job_t job;
    const json_t *patch; /* the request's body, or own */
    json_t *own;         /* a patch the handler made (assign) */
    int64_t if_match;    /* -1: any version */
} update_job_t;

static void s_update_work(api_job_t *j)
{
    update_job_t *u = container_of(j, update_job_t, job);
    j->rc = store_task_update(j->b->store, j->id, u->patch, u->if_match, &j->body,
                              &j->err);
}

static void s_update_fini(api_job_t *j)
{
    json_decref(container_of(j, update_job_t, job)->own);
}

/* If-Match: a version number, possibly quoted or weak; -1 when absent;
 * false after a 400. */
static bool s_if_match(http_req_t *req, int64_t *out)
{
    const char *h = http_req_header(req, "If-Match");
    *out = -1;
    if (!h)
        return true;
    char buf[32];
    if (strcmp(h, "*") == 0)
        return true; /* any version */
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    long v = -1;
    if (n > 0 && n < sizeof buf) {
        memcpy(buf, h, n);
        buf[n] = '\0';
        if (parse_long(buf, 1, 0x7fffffffL, &v) < 0)
            v = -1;
    }
    if (v < 0) {
        http_reply_error(req, 400, "invalid_if_match",
                         "If-Match must be the task's version number");
        return false;
    }
    *out = v;
    return true;
}

/* The fields of a patch: known, and each of its type and range. */
static bool s_check_patch_fields(const json_t *body, verr_t *e)
{
    static const char *const allowed[] = {
        "title",         "description",    "type",         "priority",
        "status",        "progress",       "assigned_role", "assigned_agent",
        "estimated_hours", "actual_hours", "blocked_by",   "result",
        NULL};
    const char *s;
    return validate_known_fields(body, allowed, e) &&
           validate_string(body, "title", false, 1, 500, &s, e) &&
           s_check_common(body, e) &&
           validate_enum(body, "status", false, rules_is_status, &s, e) &&
           validate_number(body, "progress", 0, 100, false, e) &&
           validate_number(body, "actual_hours", 0, 100000, true, e) &&
           validate_json_size(body, "result", TASK_RESULT_MAX, e);
}

static bool s_check_patch(const json_t *body, verr_t *e)
{
    const char *s;
    json_t *progress = json_object_get(body, "progress");
    json_t *role = json_object_get(body, "assigned_role");
    json_t *agent = json_object_get(body, "assigned_agent");
    if (!s_check_patch_fields(body, e))
        return false;
    if (progress && !json_is_integer(progress))
        return validate_error(e, "invalid_progress",
                              "progress: must be a whole number 0-100");
    if (role && !json_is_null(role) && !s_is_agent_role(json_string_value(role)))
        return validate_error(e, "invalid_assigned_role",
                              "assigned_role: not a known agent role");
    if (agent && !json_is_null(agent) &&
        !validate_string(body, "assigned_agent", false, 1, 200, &s, e))
        return false;
    if (json_object_size(body) == 0)
        return validate_error(e, "empty_patch", "the body names no field to change");
    return true;
}

static void s_update(http_req_t *req, void *ud)
{
    update_job_t *u = API_START(req, ud, update_job_t, s_update_work, AUTH_MEMBER);
    if (!u)
        return;
    verr_t e;
    if (!s_if_match(req, &u->if_match)) {
        api_discard(&u->job);
        return;
    }
    if (!s_check_patch(http_req_json(req), &e)) {
        api_invalid(req, &e);
        api_discard(&u->job);
        return;
    }
    u->patch = http_req_json(req);
    u->job.writer = true;
    api_run(req, &u->job);
}

/* The assignment's event goes out through the outbox, with the write
 * (vapora.tasks.assigned, deduplicated by the stream like every event). */
static void s_assign_work(api_job_t *j)
{
    update_job_t *u = container_of(j, update_job_t, job);
    j->rc = store_task_assign(j->b->store, j->id, u->patch, &j->body, &j->err);
}

static void s_assign(http_req_t *req, void *ud)
{
    update_job_t *u = API_START(req, ud, update_job_t, s_assign_work, AUTH_MEMBER);
    if (!u)
        return;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"role", NULL};
    verr_t e;
    const char *role = NULL;
    if (body && (!validate_known_fields(body, allowed, &e) ||
                 !validate_enum(body, "role", false, s_is_agent_role, &role, &e))) {
        api_invalid(req, &e);
        api_discard(&u->job);
        return;
    }
    u->own = json_pack("{s:o}", "assigned_role", role ? json_string(role) : json_null());
    u->patch = u->own;
    u->if_match = -1;
    u->job.fini = s_update_fini;
    u->job.status = 202;
    u->job.writer = true;
    api_run(req, &u->job);
}

/* ---- delete ---- */

static void s_delete_work(api_job_t *j)
{
    j->rc = store_task_delete(j->b->store, j->id, &j->err);
    j->status = 204;
}

static void s_delete(http_req_t *req, void *ud)
{
    api_serve_write(req, ud, s_delete_work, AUTH_MEMBER);
}

void tasks_add_routes(backend_t *b)
{
    http_server_t *h = worker_http(b->w);
    http_route(h, "POST", "/api/v1/projects/{id}/tasks", HTTP_JSON_BODY, s_create, b);
    http_route(h, "GET", "/api/v1/tasks", 0, s_list, b);
    http_route(h, "GET", "/api/v1/tasks/{id}", 0, s_get, b);
    http_route(h, "PATCH", "/api/v1/tasks/{id}", HTTP_JSON_BODY, s_update, b);
    http_route(h, "DELETE", "/api/v1/tasks/{id}", 0, s_delete, b);
    http_route(h, "POST", "/api/v1/tasks/{id}/assign", HTTP_JSON_OPTIONAL, s_assign, b);
}
