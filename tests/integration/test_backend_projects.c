/* test_backend_projects.c - the backend's projects (docs/backend.md):
 * create, get, patch and delete; a delete with tasks needs cascade; the
 * board has five columns ordered by priority, then age. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <string.h>

#include "backend_fixture.h"

/* =================================================================== */
/* 4. Projects                                                          */
/* =================================================================== */

Test(backend_projects, create_get_patch_delete, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    th_resp_t *r = be_send("POST", BE_API "/projects", tok,
                           "{\"name\":\"Alpha\",\"description\":\"the first\"}");
    be_assert_status(r, 201, "POST", BE_API "/projects");
    json_t *p = th_must_json(r);
    const char *id = be_id(p);
    const char *loc = th_resp_header(r, "Location");
    const char *path = th_fmt(BE_API "/projects/%s", id);
    cr_assert(loc && strcmp(loc, path) == 0, "Location %s, want %s",
              loc ? loc : "(none)", path);
    th_resp_free(&r);
    cr_assert_str_eq(th_str(p, "name"), "Alpha");
    cr_assert_str_eq(th_str(p, "description"), "the first");
    cr_assert_not_null(json_object_get(p, "created_at"), "%s", th_dump(p));
    cr_assert_not_null(json_object_get(p, "updated_at"), "%s", th_dump(p));

    json_t *g = be_api(200, "GET", path, tok, NULL);
    cr_assert(json_equal(g, p), "GET %s: %s, created %s", path, th_dump(g), th_dump(p));

    th_sleep_ms(1100); /* so a second-resolution updated_at can move */
    json_t *u = be_api(200, "PATCH", path, tok, "{\"name\":\"Beta\"}");
    cr_assert_str_eq(th_str(u, "name"), "Beta");
    cr_assert_str_eq(th_str(u, "description"), "the first", "PATCH of name alone: %s",
                     th_dump(u));
    cr_assert_str_eq(be_id(u), id);
    cr_assert(
        json_equal(json_object_get(u, "created_at"), json_object_get(p, "created_at")),
        "created_at changed: %s -> %s", th_dump(p), th_dump(u));
    cr_assert_geq(
        be_ts_cmp(json_object_get(u, "updated_at"), json_object_get(u, "created_at")),
        0, "updated_at before created_at: %s", th_dump(u));
    cr_assert_gt(
        be_ts_cmp(json_object_get(u, "updated_at"), json_object_get(p, "updated_at")),
        0, "updated_at did not move 1.1 s later: %s -> %s", th_dump(p), th_dump(u));
    u = be_api(200, "PATCH", path, tok, "{\"description\":\"changed\"}");
    cr_assert_str_eq(th_str(u, "name"), "Beta");
    cr_assert_str_eq(th_str(u, "description"), "changed");
    g = be_api(200, "GET", path, tok, NULL);
    cr_assert(json_equal(g, u), "GET after PATCH: %s, PATCH said %s", th_dump(g),
              th_dump(u));

    json_t *list = be_api(200, "GET", BE_API "/projects", tok, NULL);
    cr_assert(th_find(json_object_get(list, "items"), "id", id), "list: %s",
              th_dump(list));

    th_resp_t *d = be_send("DELETE", path, tok, NULL);
    be_assert_status(d, 204, "DELETE", path);
    cr_assert_eq(d->body_len, 0, "a 204 with a body: %s", d->body);
    th_resp_free(&d);
    be_api_err(404, "not_found", "GET", path, tok, NULL);
    be_api_err(404, "not_found", "DELETE", path, tok, NULL);
    be_api_err(404, "not_found", "PATCH", path, tok, "{\"name\":\"Gamma\"}");
    list = be_api(200, "GET", BE_API "/projects", tok, NULL);
    cr_assert(!th_find(json_object_get(list, "items"), "id", id), "still listed: %s",
              th_dump(list));
}

Test(backend_projects, delete_with_tasks_needs_cascade, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "with-tasks");
    json_t *other = be_project(tok, "bystander");
    const char *path = th_fmt(BE_API "/projects/%s", be_id(p));
    json_t *t1 = be_task(tok, p, "one", NULL);
    json_t *t2 = be_task(tok, p, "two", NULL);
    be_walk(tok, t2, "in-progress", "review", "done", NULL);
    json_t *keep = be_task(tok, other, "stays", NULL);

    be_api_err(409, "project_has_tasks", "DELETE", path, tok, NULL);
    be_api_err(409, "project_has_tasks", "DELETE", th_fmt("%s?cascade=false", path),
               tok, NULL);
    be_api(200, "GET", path, tok, NULL);
    be_api(200, "GET", be_task_path(t1), tok, NULL);

    be_api(204, "DELETE", th_fmt("%s?cascade=true", path), tok, NULL);
    be_api_err(404, "not_found", "GET", path, tok, NULL);
    be_api_err(404, "not_found", "GET", be_task_path(t1), tok, NULL);
    be_api_err(404, "not_found", "GET", be_task_path(t2), tok, NULL);
    json_t *l =
        be_api(200, "GET", th_fmt(BE_API "/tasks?project_id=%s", be_id(p)), tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(l, "items")), 0, "tasks left: %s",
                 th_dump(l));
    /* The other project and its task are untouched. */
    be_api(200, "GET", be_task_path(keep), tok, NULL);
    be_api(200, "GET", th_fmt(BE_API "/projects/%s", be_id(other)), tok, NULL);
    /* An empty project needs no cascade. */
    json_t *e = be_project(tok, "empty");
    be_api(204, "DELETE", th_fmt(BE_API "/projects/%s", be_id(e)), tok, NULL);
}
/* Asserts the board column col has status st and the tasks of want in
 * order (NULL-ended). */
static void s_assert_column(const json_t *col, const char *st, ...)
{
    cr_assert_str_eq(th_str(col, "status") ? th_str(col, "status") : "(none)", st,
                     "column %s", th_dump(col));
    json_t *tasks = json_object_get(col, "tasks");
    cr_assert(json_is_array(tasks), "column %s: %s", st, th_dump(col));
    va_list ap;
    va_start(ap, st);
    size_t i = 0;
    for (json_t *t; (t = va_arg(ap, json_t *)); i++) {
        json_t *got = json_array_get(tasks, i);
        cr_assert(got && strcmp(be_id(got), be_id(t)) == 0,
                  "column %s, place %zu: %s, want \"%s\"; column: %s", st, i,
                  got ? th_str(got, "title") : "nothing", th_str(t, "title"),
                  th_dump(tasks));
    }
    va_end(ap);
    cr_assert_eq(json_array_size(tasks), i, "column %s has %zu tasks, want %zu: %s", st,
                 json_array_size(tasks), i, th_dump(tasks));
}

Test(backend_projects, board_has_five_columns_by_priority_then_age, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "board");
    json_t *o = be_project(tok, "not-on-the-board");
    be_task(tok, o, "elsewhere", "\"priority\":\"high\"");
#define PRIO(x) "\"priority\":\"" x "\""
    json_t *l1 = be_task(tok, p, "l1", PRIO("low"));
    json_t *h1 = be_task(tok, p, "h1", PRIO("high"));
    json_t *m1 = be_task(tok, p, "m1", NULL);
    json_t *h2 = be_task(tok, p, "h2", PRIO("high"));
    json_t *m2 = be_task(tok, p, "m2", PRIO("medium"));
    json_t *l2 = be_task(tok, p, "l2", PRIO("low"));
    json_t *i1 = be_task(tok, p, "i1", PRIO("low"));
    json_t *i2 = be_task(tok, p, "i2", PRIO("high"));
    json_t *i3 = be_task(tok, p, "i3", PRIO("low"));
    json_t *r1 = be_task(tok, p, "r1", PRIO("medium"));
    json_t *d1 = be_task(tok, p, "d1", PRIO("low"));
    json_t *d2 = be_task(tok, p, "d2", PRIO("high"));
    json_t *a1 = be_task(tok, p, "a1", PRIO("medium"));
    /* Moved in an order unlike their age: the board orders by age. */
    be_walk(tok, i3, "in-progress", NULL);
    be_walk(tok, i2, "in-progress", NULL);
    be_walk(tok, i1, "in-progress", NULL);
    be_walk(tok, r1, "in-progress", "review", NULL);
    be_walk(tok, d2, "in-progress", "review", "done", NULL);
    be_walk(tok, d1, "in-progress", "review", "done", NULL);
    be_walk(tok, a1, "archived", NULL);
    /* A later edit of an old task does not make it younger. */
    be_patch(tok, l1, "{\"title\":\"l1\",\"progress\":5}");

    /* Archived tasks are on the board only when asked (web board, issue 15). */
    json_t *b =
        be_api(200, "GET", th_fmt(BE_API "/projects/%s/board?archived=true", be_id(p)),
               tok, NULL);
    cr_assert(json_equal(json_object_get(b, "project_id"), json_object_get(p, "id")),
              "project_id %s", th_dump(json_object_get(b, "project_id")));
    json_t *cols = json_object_get(b, "columns");
    cr_assert(json_is_array(cols) && json_array_size(cols) == 5, "columns: %s",
              th_dump(b));
    s_assert_column(json_array_get(cols, 0), "todo", h1, h2, m1, m2, l1, l2, NULL);
    s_assert_column(json_array_get(cols, 1), "in-progress", i2, i1, i3, NULL);
    s_assert_column(json_array_get(cols, 2), "review", r1, NULL);
    s_assert_column(json_array_get(cols, 3), "done", d2, d1, NULL);
    s_assert_column(json_array_get(cols, 4), "archived", a1, NULL);
    /* An empty project has five empty columns. */
    json_t *e = be_project(tok, "empty-board");
    b = be_api(200, "GET", th_fmt(BE_API "/projects/%s/board", be_id(e)), tok, NULL);
    cols = json_object_get(b, "columns");
    cr_assert_eq(json_array_size(cols), 5, "%s", th_dump(b));
    const char *names[] = {"todo", "in-progress", "review", "done", "archived"};
    for (size_t i = 0; i < 5; i++)
        s_assert_column(json_array_get(cols, i), names[i], NULL);
#undef PRIO
}
