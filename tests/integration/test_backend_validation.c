/* test_backend_validation.c - the backend's validation (docs/backend.md):
 * a new task's defaults, then every field of a create and a PATCH with its
 * own error code, unknown ids, malformed JSON and bodies over 1 MiB. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fixture.h"

/* =================================================================== */
/* 9. Validation                                                        */
/* =================================================================== */

Test(backend_validation, every_field_has_its_code, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "validation");
    json_t *q = be_project(tok, "elsewhere");
    const char *tp = th_fmt(BE_API "/projects/%s/tasks", be_id(p));

    /* A task with only a title has every documented default. */
    th_resp_t *r = be_send("POST", tp, tok, "{\"title\":\"defaults\"}");
    be_assert_status(r, 201, "POST", tp);
    json_t *t = th_must_json(r);
    const char *loc = th_resp_header(r, "Location");
    cr_assert(loc && strcmp(loc, be_task_path(t)) == 0, "Location %s, want %s",
              loc ? loc : "(none)", be_task_path(t));
    th_resp_free(&r);
    json_t *want = json_pack(
        "{s:O,s:s,s:s,s:s,s:s,s:i,s:n,s:n,s:n,s:n,s:[],s:n,s:i}", "project_id",
        json_object_get(p, "id"), "title", "defaults", "type", "feature", "status",
        "todo", "priority", "medium", "progress", 0, "assigned_role", "assigned_agent",
        "estimated_hours", "actual_hours", "blocked_by", "result", "version", 1);
    th_keep_json(want);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        cr_assert(json_equal(json_object_get(t, key), v),
                  "new task: %s is %s, want %s in %s", key,
                  th_dump(json_object_get(t, key)), th_dump(v), th_dump(t));
    }
    const char *must[] = {"id", "description", "created_at", "updated_at"};
    for (size_t i = 0; i < 4; i++)
        cr_assert(json_object_get(t, must[i]), "new task without %s: %s", must[i],
                  th_dump(t));

    /* Fields of a create. */
    be_api_err(422, "invalid_title", "POST", tp, tok, "{\"description\":\"no title\"}");
    be_api_err(422, "invalid_title", "POST", tp, tok, "{\"title\":\"\"}");
    be_api_err(422, "invalid_title", "POST", tp, tok, "{\"title\":42}");
    char long_title[502];
    memset(long_title, 'x', 501);
    long_title[501] = '\0';
    be_api_err(422, "invalid_title", "POST", tp, tok,
               th_fmt("{\"title\":\"%s\"}", long_title));
    long_title[500] = '\0';
    be_api(201, "POST", tp, tok, th_fmt("{\"title\":\"%s\"}", long_title));
    be_api_err(422, "invalid_type", "POST", tp, tok,
               "{\"title\":\"x\",\"type\":\"nope\"}");
    be_api_err(422, "invalid_priority", "POST", tp, tok,
               "{\"title\":\"x\",\"priority\":\"urgent\"}");
    be_api_err(422, "invalid_estimated_hours", "POST", tp, tok,
               "{\"title\":\"x\",\"estimated_hours\":-1}");
    be_api_err(422, "invalid_estimated_hours", "POST", tp, tok,
               "{\"title\":\"x\",\"estimated_hours\":100001}");
    be_api_err(422, "invalid_description", "POST", tp, tok,
               "{\"title\":\"x\",\"description\":7}");
    const char *m = be_api_err(422, "unknown_field", "POST", tp, tok,
                               "{\"title\":\"x\",\"colour\":\"red\"}");
    cr_assert(strstr(m, "colour"), "the message does not name the field: %s", m);
    be_api_err(
        422, "invalid_blocked_by", "POST", tp, tok,
        th_fmt("{\"title\":\"x\",\"blocked_by\":[\"%s\"]}", be_unknown_id(be_id(t))));
    be_api_err(422, "invalid_blocked_by", "POST", tp, tok,
               "{\"title\":\"x\",\"blocked_by\":\"not-an-array\"}");
    json_t *foreign = be_task(tok, q, "foreign", NULL);
    be_api_err(422, "invalid_blocked_by", "POST", tp, tok,
               th_fmt("{\"title\":\"x\",\"blocked_by\":[%s]}", be_idj(foreign)));
    const char *types[] = {"bugfix", "enhancement", "tech-debt"};
    for (size_t i = 0; i < 3; i++) {
        json_t *k = be_task(tok, p, "typed", th_fmt("\"type\":\"%s\"", types[i]));
        cr_assert_str_eq(th_str(k, "type"), types[i]);
    }

    /* Fields of a PATCH. */
    const char *pt = be_task_path(t);
    be_api_err(422, "invalid_progress", "PATCH", pt, tok, "{\"progress\":101}");
    be_api_err(422, "invalid_progress", "PATCH", pt, tok, "{\"progress\":-1}");
    be_api_err(422, "invalid_title", "PATCH", pt, tok, "{\"title\":\"\"}");
    be_api_err(422, "invalid_actual_hours", "PATCH", pt, tok,
               "{\"actual_hours\":100001}");
    be_api_err(422, "invalid_blocked_by", "PATCH", pt, tok,
               th_fmt("{\"blocked_by\":[%s]}", be_idj(t))); /* itself */
    /* A result is any JSON, of at most 100,000 bytes encoded. */
    char *big = malloc(100010);
    memset(big, 'r', 100009);
    big[100009] = '\0';
    be_api_err(422, "invalid_result", "PATCH", pt, tok,
               th_fmt("{\"result\":{\"log\":\"%s\"}}", big)); /* 100,019 bytes */
    free(big);
    const char *m2 =
        be_api_err(422, "unknown_field", "PATCH", pt, tok, "{\"owner\":\"me\"}");
    cr_assert(strstr(m2, "owner"), "the message does not name the field: %s", m2);
    json_t *g = be_api(200, "GET", pt, tok, NULL);
    cr_assert(json_equal(g, t), "refused PATCHes changed the task: %s", th_dump(g));
    t = be_patch(tok, t,
                 "{\"progress\":100,\"estimated_hours\":2.5,\"actual_hours\":0}");
    cr_assert_eq(th_int(t, "progress"), 100);

    /* Projects. */
    be_api_err(422, "invalid_name", "POST", BE_API "/projects", tok,
               "{\"description\":\"x\"}");
    be_api_err(422, "invalid_name", "POST", BE_API "/projects", tok, "{\"name\":\"\"}");
    be_api_err(422, "invalid_name", "PATCH", th_fmt(BE_API "/projects/%s", be_id(p)),
               tok, "{\"name\":\"\"}");
    be_api_err(422, "unknown_field", "POST", BE_API "/projects", tok,
               "{\"name\":\"x\",\"budget\":1}");

    /* Unknown ids. */
    const char *nope = be_unknown_id(be_id(t));
    const char *unknown[][2] = {
        {"GET", th_fmt(BE_API "/tasks/%s", nope)},
        {"GET", BE_API "/tasks/no-such-task"},
        {"DELETE", th_fmt(BE_API "/tasks/%s", nope)},
        {"GET", th_fmt(BE_API "/projects/%s", be_unknown_id(be_id(p)))},
        {"GET", th_fmt(BE_API "/projects/%s/board", be_unknown_id(be_id(p)))},
        {"DELETE", th_fmt(BE_API "/projects/%s", be_unknown_id(be_id(p)))},
    };
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        be_api_err(404, "not_found", unknown[i][0], unknown[i][1], tok, NULL);
    be_api_err(404, "not_found", "PATCH", th_fmt(BE_API "/tasks/%s", nope), tok,
               "{\"title\":\"x\"}");
    be_api_err(404, "not_found", "POST", th_fmt(BE_API "/tasks/%s/assign", nope), tok,
               "{}");
    be_api_err(404, "not_found", "POST",
               th_fmt(BE_API "/projects/%s/tasks", be_unknown_id(be_id(p))), tok,
               "{\"title\":\"x\"}");

    /* Malformed JSON and bodies over 1 MiB. */
    be_api_err(400, "invalid_json", "POST", tp, tok, "{\"title\": ");
    be_api_err(400, "invalid_json", "POST", BE_API "/projects", tok, "{name: 1}");
    be_api_err(400, "invalid_json", "PATCH", pt, tok, "[1,2");
    th_conn_t *c = th_must_connect(be_port());
    const char *head = th_fmt("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                              "Content-Length: 1048577\r\n\r\n",
                              tp, be_headers(tok, NULL, true));
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    r = NULL;
    int rc = th_read_response(c, &r, 3000);
    cr_assert_eq(rc, 0, "no 413 for a 1 MiB + 1 body: %s", strerror(-rc));
    cr_assert_eq(r->status, 413, "status %d for a 1 MiB + 1 body: %.300s", r->status,
                 r->body);
    const char *code = th_str(json_object_get(th_must_json(r), "error"), "code");
    cr_assert(code && th_str(json_object_get(th_must_json(r), "error"), "message"),
              "413 without the error shape: %.300s", r->body);
    th_resp_free(&r);
    th_conn_close(&c);
    /* Nothing of that was created. */
    json_t *l =
        be_api(200, "GET", th_fmt(BE_API "/tasks?limit=500&project_id=%s", be_id(p)),
               tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(l, "items")), 5, "tasks: %s",
                 th_dump(l));
}
