/* projects.c - /api/v1/projects: create, list, get, update, delete, board. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "store_projects.h"

static bool s_check_body(http_req_t *req, const json_t *body, bool creating)
{
    static const char *const allowed[] = {"name", "description", NULL};
    verr_t e;
    const char *name, *desc;
    if (!v_known_fields(body, allowed, &e) ||
        !v_string(body, "name", creating, 1, 200, &name, &e) ||
        !v_string(body, "description", false, 0, 10000, &desc, &e)) {
        api_invalid(req, &e);
        return false;
    }
    if (!creating && json_object_size(body) == 0) {
        http_reply_error(req, 422, "empty_patch", "the body names no field to change");
        return false;
    }
    return true;
}

static void s_create_job(job_t *j)
{
    j->rc = store_project_create(
        j->b->store, json_string_value(json_object_get(j->in, "name")),
        json_string_value(json_object_get(j->in, "description")), &j->out, &j->err);
    if (j->rc == 0) {
        j->status = 201;
        snprintf(j->location, sizeof j->location, "/api/v1/projects/%s",
                 json_string_value(json_object_get(j->out, "id")));
    }
}

static void s_create(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_create_job, ROLE_MEMBER);
    if (!j)
        return;
    if (!s_check_body(req, http_req_json(req), true)) {
        api_discard(j);
        return;
    }
    j->in = json_incref(http_req_json(req));
    api_run(req, j);
}

static void s_list_job(job_t *j)
{
    json_t *items = NULL;
    int64_t next = 0;
    j->rc = store_project_list(j->b->store, j->num, j->limit, &items, &next, &j->err);
    if (j->rc == 0)
        j->out = api_page_body(items, 'p', next);
}

static void s_list(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_list_job, ROLE_VIEWER);
    if (!j)
        return;
    if (!api_page(req, 'p', &j->limit, &j->num)) {
        api_discard(j);
        return;
    }
    api_run(req, j);
}

static void s_get_job(job_t *j)
{
    j->rc = store_project_get(j->b->store, j->id, &j->out, &j->err);
}

static void s_get(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_get_job, ROLE_VIEWER);
    if (j)
        api_run(req, j);
}

static void s_update_job(job_t *j)
{
    j->rc = store_project_update(j->b->store, j->id, j->in, &j->out, &j->err);
}

static void s_update(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_update_job, ROLE_MEMBER);
    if (!j)
        return;
    if (!s_check_body(req, http_req_json(req), false)) {
        api_discard(j);
        return;
    }
    j->in = json_incref(http_req_json(req));
    api_run(req, j);
}

static void s_delete_job(job_t *j)
{
    j->rc = store_project_delete(j->b->store, j->id, j->flag, &j->err);
    j->status = 204;
}

static void s_delete(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_delete_job, ROLE_MEMBER);
    if (!j)
        return;
    const char *c = http_req_query(req, "cascade");
    j->flag = c && (strcmp(c, "true") == 0 || strcmp(c, "1") == 0);
    api_run(req, j);
}

static void s_board_job(job_t *j)
{
    j->rc = store_project_board(j->b->store, j->id, &j->out, &j->err);
}

static void s_board(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_board_job, ROLE_VIEWER);
    if (j)
        api_run(req, j);
}

void projects_routes(backend_t *b)
{
    http_server_t *h = worker_http(b->w);
    http_route(h, "POST", "/api/v1/projects", HTTP_JSON_BODY, s_create, b);
    http_route(h, "GET", "/api/v1/projects", 0, s_list, b);
    http_route(h, "GET", "/api/v1/projects/{id}", 0, s_get, b);
    http_route(h, "PATCH", "/api/v1/projects/{id}", HTTP_JSON_BODY, s_update, b);
    http_route(h, "DELETE", "/api/v1/projects/{id}", 0, s_delete, b);
    http_route(h, "GET", "/api/v1/projects/{id}/board", 0, s_board, b);
}
