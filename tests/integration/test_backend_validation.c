/* test_backend_validation.c - the backend's validation (docs/backend.md):
 * a new task's defaults, then every field of a create and a PATCH with its
 * own error code, unknown ids, malformed JSON and bodies over 1 MiB. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fixture.h"

/* What the steps of every_field_has_its_code share: the token, the
 * project under test (p) and another one (q), p's tasks path and the task
 * first made in p with a title alone. */
typedef struct s_ctx {
    const char *tok;
    json_t *p, *q;
    const char *tp;
    json_t *t;
} s_ctx_t;

/* A task with only a title has every documented default; it is x->t. */
static void s_new_task_has_the_defaults(s_ctx_t *x)
{
    th_resp_t *r = be_send("POST", x->tp, x->tok, "{\"title\":\"defaults\"}");
    be_assert_status(r, 201, "POST", x->tp);
    x->t = th_must_json(r);
    const char *loc = th_resp_header(r, "Location");
    cr_assert(loc && strcmp(loc, be_task_path(x->t)) == 0, "Location %s, want %s",
              loc ? loc : "(none)", be_task_path(x->t));
    th_resp_free(&r);
    json_t *want = json_pack(
        "{s:O,s:s,s:s,s:s,s:s,s:i,s:n,s:n,s:n,s:n,s:[],s:n,s:i}", "project_id",
        json_object_get(x->p, "id"), "title", "defaults", "type", "feature", "status",
        "todo", "priority", "medium", "progress", 0, "assigned_role", "assigned_agent",
        "estimated_hours", "actual_hours", "blocked_by", "result", "version", 1);
    th_keep_json(want);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        cr_assert(json_equal(json_object_get(x->t, key), v),
                  "new task: %s is %s, want %s in %s", key,
                  th_dump(json_object_get(x->t, key)), th_dump(v), th_dump(x->t));
    }
    const char *must[] = {"id", "description", "created_at", "updated_at"};
    for (size_t i = 0; i < 4; i++)
        cr_assert(json_object_get(x->t, must[i]), "new task without %s: %s", must[i],
                  th_dump(x->t));
}

/* Each field of a create has its own error code. */
static void s_create_fields(const s_ctx_t *x)
{
    be_api_err(422, "invalid_title", "POST", x->tp, x->tok,
               "{\"description\":\"no title\"}");
    be_api_err(422, "invalid_title", "POST", x->tp, x->tok, "{\"title\":\"\"}");
    be_api_err(422, "invalid_title", "POST", x->tp, x->tok, "{\"title\":42}");
    char long_title[502];
    memset(long_title, 'x', 501);
    long_title[501] = '\0';
    be_api_err(422, "invalid_title", "POST", x->tp, x->tok,
               th_fmt("{\"title\":\"%s\"}", long_title));
    long_title[500] = '\0';
    be_api(201, "POST", x->tp, x->tok, th_fmt("{\"title\":\"%s\"}", long_title));
    be_api_err(422, "invalid_type", "POST", x->tp, x->tok,
               "{\"title\":\"x\",\"type\":\"nope\"}");
    be_api_err(422, "invalid_priority", "POST", x->tp, x->tok,
               "{\"title\":\"x\",\"priority\":\"urgent\"}");
    be_api_err(422, "invalid_estimated_hours", "POST", x->tp, x->tok,
               "{\"title\":\"x\",\"estimated_hours\":-1}");
    be_api_err(422, "invalid_estimated_hours", "POST", x->tp, x->tok,
               "{\"title\":\"x\",\"estimated_hours\":100001}");
    be_api_err(422, "invalid_description", "POST", x->tp, x->tok,
               "{\"title\":\"x\",\"description\":7}");
    const char *m = be_api_err(422, "unknown_field", "POST", x->tp, x->tok,
                               "{\"title\":\"x\",\"colour\":\"red\"}");
    cr_assert(strstr(m, "colour"), "the message does not name the field: %s", m);
    be_api_err(422, "invalid_blocked_by", "POST", x->tp, x->tok,
               th_fmt("{\"title\":\"x\",\"blocked_by\":[\"%s\"]}",
                      be_unknown_id(be_id(x->t))));
    be_api_err(422, "invalid_blocked_by", "POST", x->tp, x->tok,
               "{\"title\":\"x\",\"blocked_by\":\"not-an-array\"}");
    json_t *foreign = be_task(x->tok, x->q, "foreign", NULL);
    be_api_err(422, "invalid_blocked_by", "POST", x->tp, x->tok,
               th_fmt("{\"title\":\"x\",\"blocked_by\":[%s]}", be_idj(foreign)));
    const char *types[] = {"bugfix", "enhancement", "tech-debt"};
    for (size_t i = 0; i < 3; i++) {
        json_t *k = be_task(x->tok, x->p, "typed", th_fmt("\"type\":\"%s\"", types[i]));
        cr_assert_str_eq(th_str(k, "type"), types[i]);
    }
}

/* Each field of a PATCH has its own error code; refused PATCHes change
 * nothing. */
static void s_patch_fields(s_ctx_t *x)
{
    const char *pt = be_task_path(x->t);
    be_api_err(422, "invalid_progress", "PATCH", pt, x->tok, "{\"progress\":101}");
    be_api_err(422, "invalid_progress", "PATCH", pt, x->tok, "{\"progress\":-1}");
    be_api_err(422, "invalid_title", "PATCH", pt, x->tok, "{\"title\":\"\"}");
    be_api_err(422, "invalid_actual_hours", "PATCH", pt, x->tok,
               "{\"actual_hours\":100001}");
    be_api_err(422, "invalid_blocked_by", "PATCH", pt, x->tok,
               th_fmt("{\"blocked_by\":[%s]}", be_idj(x->t))); /* itself */
    /* A result is any JSON, of at most 100,000 bytes encoded. */
    char *big = malloc(100010);
    memset(big, 'r', 100009);
    big[100009] = '\0';
    be_api_err(422, "invalid_result", "PATCH", pt, x->tok,
               th_fmt("{\"result\":{\"log\":\"%s\"}}", big)); /* 100,019 bytes */
    free(big);
    const char *m2 =
        be_api_err(422, "unknown_field", "PATCH", pt, x->tok, "{\"owner\":\"me\"}");
    cr_assert(strstr(m2, "owner"), "the message does not name the field: %s", m2);
    json_t *g = be_api(200, "GET", pt, x->tok, NULL);
    cr_assert(json_equal(g, x->t), "refused PATCHes changed the task: %s", th_dump(g));
    x->t = be_patch(x->tok, x->t,
                    "{\"progress\":100,\"estimated_hours\":2.5,\"actual_hours\":0}");
    cr_assert_eq(th_int(x->t, "progress"), 100);
}

/* The fields of a project. */
static void s_project_fields(const s_ctx_t *x)
{
    be_api_err(422, "invalid_name", "POST", BE_API "/projects", x->tok,
               "{\"description\":\"x\"}");
    be_api_err(422, "invalid_name", "POST", BE_API "/projects", x->tok,
               "{\"name\":\"\"}");
    be_api_err(422, "invalid_name", "PATCH", th_fmt(BE_API "/projects/%s", be_id(x->p)),
               x->tok, "{\"name\":\"\"}");
    be_api_err(422, "unknown_field", "POST", BE_API "/projects", x->tok,
               "{\"name\":\"x\",\"budget\":1}");
}

/* Unknown ids are 404 on every route that takes one. */
static void s_unknown_ids(const s_ctx_t *x)
{
    const char *nope = be_unknown_id(be_id(x->t));
    const char *unknown[][2] = {
        {"GET", th_fmt(BE_API "/tasks/%s", nope)},
        {"GET", BE_API "/tasks/no-such-task"},
        {"DELETE", th_fmt(BE_API "/tasks/%s", nope)},
        {"GET", th_fmt(BE_API "/projects/%s", be_unknown_id(be_id(x->p)))},
        {"GET", th_fmt(BE_API "/projects/%s/board", be_unknown_id(be_id(x->p)))},
        {"DELETE", th_fmt(BE_API "/projects/%s", be_unknown_id(be_id(x->p)))},
    };
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        be_api_err(404, "not_found", unknown[i][0], unknown[i][1], x->tok, NULL);
    be_api_err(404, "not_found", "PATCH", th_fmt(BE_API "/tasks/%s", nope), x->tok,
               "{\"title\":\"x\"}");
    be_api_err(404, "not_found", "POST", th_fmt(BE_API "/tasks/%s/assign", nope),
               x->tok, "{}");
    be_api_err(404, "not_found", "POST",
               th_fmt(BE_API "/projects/%s/tasks", be_unknown_id(be_id(x->p))), x->tok,
               "{\"title\":\"x\"}");
}

/* Malformed JSON is 400, a body over 1 MiB 413. */
static void s_malformed_and_oversized(const s_ctx_t *x)
{
    be_api_err(400, "invalid_json", "POST", x->tp, x->tok, "{\"title\": ");
    be_api_err(400, "invalid_json", "POST", BE_API "/projects", x->tok, "{name: 1}");
    be_api_err(400, "invalid_json", "PATCH", be_task_path(x->t), x->tok, "[1,2");
    th_conn_t *c = th_must_connect(be_port());
    const char *head = th_fmt("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                              "Content-Length: 1048577\r\n\r\n",
                              x->tp, be_headers(x->tok, NULL, true));
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 3000);
    cr_assert_eq(rc, 0, "no 413 for a 1 MiB + 1 body: %s", strerror(-rc));
    cr_assert_eq(r->status, 413, "status %d for a 1 MiB + 1 body: %.300s", r->status,
                 r->body);
    const char *code = th_str(json_object_get(th_must_json(r), "error"), "code");
    cr_assert(code && th_str(json_object_get(th_must_json(r), "error"), "message"),
              "413 without the error shape: %.300s", r->body);
    th_resp_free(&r);
    th_conn_close(&c);
}

Test(backend_validation, every_field_has_its_code, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    s_ctx_t x = {.tok = be_login("admin", BE_PW)};
    x.p = be_project(x.tok, "validation");
    x.q = be_project(x.tok, "elsewhere");
    x.tp = th_fmt(BE_API "/projects/%s/tasks", be_id(x.p));
    s_new_task_has_the_defaults(&x);
    s_create_fields(&x);
    s_patch_fields(&x);
    s_project_fields(&x);
    s_unknown_ids(&x);
    s_malformed_and_oversized(&x);
    /* Nothing of that was created. */
    json_t *l =
        be_api(200, "GET", th_fmt(BE_API "/tasks?limit=500&project_id=%s", be_id(x.p)),
               x.tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(l, "items")), 5, "tasks: %s",
                 th_dump(l));
}
