/* tasks.c - tasks: create in a project, list with filters, get, update
 * under the status rules (If-Match), delete, assign. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cache.h"
#include "log.h"
#include "rules.h"
#include "base.h"
#include "now.h"
#include "sbuf.h"
#include "parse.h"

/* The agent roles a task may be assigned to. */
static bool s_is_agent_role(const char *r)
{
    static const char *const roles[] = {
        "architect",  "developer",       "code-reviewer",  "tester",
        "documenter", "marketer",        "presenter",      "devops",
        "security",   "project-manager", "decision-maker", NULL};
    for (const char *const *x = roles; r && *x; x++)
        if (strcmp(r, *x) == 0)
            return true;
    return false;
}

/* Checks the fields shared by create and update. */
static bool s_check_common(const json_t *body, verr_t *e)
{
    const char *s;
    return v_string(body, "description", false, 0, 100000, &s, e) &&
           v_enum(body, "type", false, rules_is_type, &s, e) &&
           v_enum(body, "priority", false, rules_is_priority, &s, e) &&
           v_number(body, "estimated_hours", 0, 100000, true, e) &&
           v_id_array(body, "blocked_by", e);
}

/* ---- create ---- */

static void s_create_job(job_t *j)
{
    json_t *eh = json_object_get(j->in, "estimated_hours");
    store_task_new_t t = {
        .project_id = j->id,
        .title = json_string_value(json_object_get(j->in, "title")),
        .description = json_string_value(json_object_get(j->in, "description")),
        .type = json_string_value(json_object_get(j->in, "type")),
        .priority = json_string_value(json_object_get(j->in, "priority")),
        .has_estimate = json_is_number(eh),
        .estimated_hours = json_number_value(eh),
        .blocked_by = json_object_get(j->in, "blocked_by"),
    };
    j->rc = store_task_create(j->b->store, &t, &j->out, &j->err);
    if (j->rc == 0) {
        j->status = 201;
        snprintf(j->location, sizeof j->location, "/api/v1/tasks/%s",
                 json_string_value(json_object_get(j->out, "id")));
    }
}

static void s_create(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_create_job, ROLE_MEMBER);
    if (!j)
        return;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"title",    "description",     "type",
                                          "priority", "estimated_hours", "blocked_by",
                                          NULL};
    verr_t e;
    const char *title;
    if (!v_known_fields(body, allowed, &e) ||
        !v_string(body, "title", true, 1, 500, &title, &e) ||
        !s_check_common(body, &e)) {
        api_invalid(req, &e);
        api_discard(j);
        return;
    }
    j->in = json_deep_copy(body);
    if (!json_object_get(j->in, "type"))
        json_object_set_new(j->in, "type", json_string("feature"));
    if (!json_object_get(j->in, "priority"))
        json_object_set_new(j->in, "priority", json_string("medium"));
    api_run(req, j);
}

/* ---- list and get ---- */

static void s_list_job(job_t *j)
{
    sbuf_t b = {0};
    int64_t next = 0;
    sbuf_puts(&b, "{\"items\":");
    j->rc =
        store_task_page(j->b->store, &j->filter, j->num, j->limit, &b, &next, &j->err);
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
    job_t *j = api_start(req, ud, s_list_job, ROLE_VIEWER);
    if (!j)
        return;
    store_task_filter_t *f = &j->filter;
    f->project_id = http_req_query(req, "project_id");
    if (!api_page(req, 't', &j->limit, &j->num) ||
        !s_filter(req, "status", rules_is_status, &f->status) ||
        !s_filter(req, "priority", rules_is_priority, &f->priority) ||
        !s_filter(req, "assigned_role", s_is_agent_role, &f->assigned_role)) {
        api_discard(j);
        return;
    }
    /* The filter strings live in the request, which outlives the job. */
    api_run(req, j);
}

static void s_get_job(job_t *j)
{
    j->rc = store_task_get_doc(j->b->store, j->id, &j->body, &j->err);
}

/* Keeps the document read for the next GET, tagged with the version read
 * before the database was asked. */
static void s_get_keep(job_t *j, http_req_t *req)
{
    UNUSED(req);
    rcache_put(j->b->cache, j->id, j->tag, j->body);
}

static void s_get(http_req_t *req, void *ud)
{
    backend_t *b = ud;
    job_t *j = api_start(req, b, s_get_job, ROLE_VIEWER);
    if (!j)
        return;
    if (b->cache) {
        uint64_t v = store_version(b->store);
        size_t len;
        const char *body = rcache_get(b->cache, j->id, v, &len);
        if (body) { /* no write anywhere since it was read */
            http_reply(req, 200, "application/json", body, len);
            api_discard(j);
            return;
        }
        j->tag = v;
        j->after = s_get_keep;
    }
    api_run(req, j);
}

/* ---- update ---- */

static void s_update_job(job_t *j)
{
    j->rc = store_task_update(j->b->store, j->id, j->in, j->num, &j->out, &j->err);
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
    long v;
    if (n == 0 || n >= sizeof buf) {
        v = -1;
    } else {
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

static bool s_check_patch(const json_t *body, verr_t *e)
{
    static const char *const allowed[] = {"title",
                                          "description",
                                          "type",
                                          "priority",
                                          "status",
                                          "progress",
                                          "assigned_role",
                                          "assigned_agent",
                                          "estimated_hours",
                                          "actual_hours",
                                          "blocked_by",
                                          "result",
                                          NULL};
    const char *s;
    json_t *role = json_object_get(body, "assigned_role");
    json_t *agent = json_object_get(body, "assigned_agent");
    if (!v_known_fields(body, allowed, e) ||
        !v_string(body, "title", false, 1, 500, &s, e) || !s_check_common(body, e) ||
        !v_enum(body, "status", false, rules_is_status, &s, e) ||
        !v_number(body, "progress", 0, 100, false, e) ||
        !v_number(body, "actual_hours", 0, 100000, true, e) ||
        /* Boards and lists carry every result: keep each one bounded. */
        !v_json_size(body, "result", TASK_RESULT_MAX, e))
        return false;
    if (json_object_get(body, "progress") &&
        !json_is_integer(json_object_get(body, "progress"))) {
        snprintf(e->code, sizeof e->code, "invalid_progress");
        snprintf(e->msg, sizeof e->msg, "progress: must be a whole number 0-100");
        return false;
    }
    if (role && !json_is_null(role) && !s_is_agent_role(json_string_value(role))) {
        snprintf(e->code, sizeof e->code, "invalid_assigned_role");
        snprintf(e->msg, sizeof e->msg, "assigned_role: not a known agent role");
        return false;
    }
    if (agent && !json_is_null(agent) &&
        !v_string(body, "assigned_agent", false, 1, 200, &s, e))
        return false;
    if (json_object_size(body) == 0) {
        snprintf(e->code, sizeof e->code, "empty_patch");
        snprintf(e->msg, sizeof e->msg, "the body names no field to change");
        return false;
    }
    return true;
}

static void s_update(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_update_job, ROLE_MEMBER);
    if (!j)
        return;
    verr_t e;
    if (!s_if_match(req, &j->num)) {
        api_discard(j);
        return;
    }
    if (!s_check_patch(http_req_json(req), &e)) {
        api_invalid(req, &e);
        api_discard(j);
        return;
    }
    j->in = json_incref(http_req_json(req));
    api_run(req, j);
}

/* ---- delete ---- */

static void s_delete_job(job_t *j)
{
    j->rc = store_task_delete(j->b->store, j->id, &j->err);
    j->status = 204;
}

static void s_delete(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_delete_job, ROLE_MEMBER);
    if (j)
        api_run(req, j);
}

/* ---- assign ---- */

/* Publishes the assignment on core NATS (buffered while reconnecting). */
static void s_publish_assigned(job_t *j, http_req_t *req)
{
    UNUSED(req);
    natsc_t *nc = worker_nats(j->b->w);
    if (!nc || !natsc_conn(nc))
        return;
    char at[40];
    now_iso8601(at, sizeof at);
    json_t *ev =
        json_pack("{s:s,s:O,s:O,s:O,s:s}", "type", "task.assigned", "id",
                  json_object_get(j->out, "id"), "project_id",
                  json_object_get(j->out, "project_id"), "data", j->out, "at", at);
    char *txt = json_dumps(ev, JSON_COMPACT);
    natsStatus s =
        natsConnection_PublishString(natsc_conn(nc), "vapora.tasks.assigned", txt);
    if (s != NATS_OK)
        log_warn("nats: publishing vapora.tasks.assigned failed: %s",
                 natsStatus_GetText(s));
    free(txt);
    json_decref(ev);
}

static void s_assign(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_update_job, ROLE_MEMBER);
    if (!j)
        return;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"role", NULL};
    verr_t e;
    const char *role = NULL;
    if (body && (!v_known_fields(body, allowed, &e) ||
                 !v_enum(body, "role", false, s_is_agent_role, &role, &e))) {
        api_invalid(req, &e);
        api_discard(j);
        return;
    }
    j->in = json_pack("{s:o}", "assigned_role", role ? json_string(role) : json_null());
    j->num = -1;
    j->status = 202;
    j->after = s_publish_assigned;
    api_run(req, j);
}

void tasks_routes(backend_t *b)
{
    http_server_t *h = worker_http(b->w);
    http_route(h, "POST", "/api/v1/projects/{id}/tasks", HTTP_JSON_BODY, s_create, b);
    http_route(h, "GET", "/api/v1/tasks", 0, s_list, b);
    http_route(h, "GET", "/api/v1/tasks/{id}", 0, s_get, b);
    http_route(h, "PATCH", "/api/v1/tasks/{id}", HTTP_JSON_BODY, s_update, b);
    http_route(h, "DELETE", "/api/v1/tasks/{id}", 0, s_delete, b);
    http_route(h, "POST", "/api/v1/tasks/{id}/assign", HTTP_JSON_OPTIONAL, s_assign, b);
}
