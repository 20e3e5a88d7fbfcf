/* projects.c - /api/v1/projects: create, list, get, update, delete, board;
 * see projects.h. */
#define _GNU_SOURCE
#include "projects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "store_projects.h"

static bool s_check_body(http_req_t *req, const json_t *body, bool creating)
{
    static const char *const allowed[] = {"name", "description", NULL};
    verr_t e;
    const char *name, *desc;
    if (!validate_known_fields(body, allowed, &e) ||
        !validate_string(body, "name", creating, 1, 200, &name, &e) ||
        !validate_string(body, "description", false, 0, 10000, &desc, &e)) {
        api_invalid(req, &e);
        return false;
    }
    if (!creating && json_object_size(body) == 0) {
        http_reply_error(req, 422, "empty_patch", "the body names no field to change");
        return false;
    }
    return true;
}

/* ---- create ---- */

typedef struct create_job {
    api_job_t job;
    const char *name, *description; /* the request's */
} create_job_t;

static void s_create_work(api_job_t *j)
{
    create_job_t *c = container_of(j, create_job_t, job);
    j->rc = store_project_create(j->b->store, c->name, c->description, &j->out, &j->err);
    if (j->rc == 0) {
        j->status = 201;
        snprintf(j->location, sizeof j->location, "/api/v1/projects/%s",
                 json_string_value(json_object_get(j->out, "id")));
    }
}

static void s_create(http_req_t *req, void *ud)
{
    create_job_t *c = API_START(req, ud, create_job_t, s_create_work, AUTH_MEMBER);
    if (!c)
        return;
    json_t *body = http_req_json(req);
    if (!s_check_body(req, body, true)) {
        api_discard(&c->job);
        return;
    }
    c->name = json_string_value(json_object_get(body, "name"));
    c->description = json_string_value(json_object_get(body, "description"));
    c->job.writer = true;
    api_run(req, &c->job);
}

/* ---- list, get, board ---- */

typedef struct list_job {
    api_job_t job;
    api_page_t page;
} list_job_t;

static void s_list_work(api_job_t *j)
{
    api_page_t *p = &container_of(j, list_job_t, job)->page;
    json_t *items = NULL;
    int64_t next = 0;
    j->rc = store_project_list(j->b->store, p->after, p->limit, &items, &next, &j->err);
    if (j->rc == 0)
        j->out = api_page_body(items, 'p', next);
}

static void s_list(http_req_t *req, void *ud)
{
    list_job_t *l = API_START(req, ud, list_job_t, s_list_work, AUTH_VIEWER);
    if (!l)
        return;
    if (!api_page(req, 'p', &l->page)) {
        api_discard(&l->job);
        return;
    }
    api_run(req, &l->job);
}

static void s_get_work(api_job_t *j)
{
    j->rc = store_project_get(j->b->store, j->id, &j->out, &j->err);
}

static void s_get(http_req_t *req, void *ud)
{
    api_serve(req, ud, s_get_work, AUTH_VIEWER);
}

typedef struct board_job {
    api_job_t job;
    unsigned flags; /* STORE_BOARD_* */
} board_job_t;

static void s_board_work(api_job_t *j)
{
    board_job_t *bj = container_of(j, board_job_t, job);
    j->rc = store_project_board(j->b->store, j->id, bj->flags, &j->out, &j->err);
}

/* ?name=true or 1: the board includes what it leaves out by default. */
static bool s_asked(http_req_t *req, const char *name)
{
    const char *v = http_req_query(req, name);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void s_board(http_req_t *req, void *ud)
{
    board_job_t *bj = API_START(req, ud, board_job_t, s_board_work, AUTH_VIEWER);
    if (!bj)
        return;
    bj->flags = (s_asked(req, "archived") ? STORE_BOARD_ARCHIVED : 0) |
                (s_asked(req, "results") ? STORE_BOARD_RESULTS : 0);
    api_run(req, &bj->job);
}

/* ---- update ---- */

typedef struct update_job {
    api_job_t job;
    const json_t *patch; /* the request's body */
} update_job_t;

static void s_update_work(api_job_t *j)
{
    const json_t *patch = container_of(j, update_job_t, job)->patch;
    j->rc = store_project_update(j->b->store, j->id, patch, &j->out, &j->err);
}

static void s_update(http_req_t *req, void *ud)
{
    update_job_t *u = API_START(req, ud, update_job_t, s_update_work, AUTH_MEMBER);
    if (!u)
        return;
    if (!s_check_body(req, http_req_json(req), false)) {
        api_discard(&u->job);
        return;
    }
    u->patch = http_req_json(req);
    u->job.writer = true;
    api_run(req, &u->job);
}

/* ---- delete ---- */

typedef struct delete_job {
    api_job_t job;
    bool cascade;
} delete_job_t;

static void s_delete_work(api_job_t *j)
{
    bool cascade = container_of(j, delete_job_t, job)->cascade;
    j->rc = store_project_delete(j->b->store, j->id, cascade, &j->err);
    j->status = 204;
}

static void s_delete(http_req_t *req, void *ud)
{
    delete_job_t *d = API_START(req, ud, delete_job_t, s_delete_work, AUTH_MEMBER);
    if (!d)
        return;
    const char *c = http_req_query(req, "cascade");
    d->cascade = c && (strcmp(c, "true") == 0 || strcmp(c, "1") == 0);
    d->job.writer = true;
    api_run(req, &d->job);
}

void projects_add_routes(backend_t *b)
{
    http_server_t *h = worker_http(b->w);
    http_route(h, "POST", "/api/v1/projects", HTTP_JSON_BODY, s_create, b);
    http_route(h, "GET", "/api/v1/projects", 0, s_list, b);
    http_route(h, "GET", "/api/v1/projects/{id}", 0, s_get, b);
    http_route(h, "PATCH", "/api/v1/projects/{id}", HTTP_JSON_BODY, s_update, b);
    http_route(h, "DELETE", "/api/v1/projects/{id}", 0, s_delete, b);
    http_route(h, "GET", "/api/v1/projects/{id}/board", 0, s_board, b);
}
