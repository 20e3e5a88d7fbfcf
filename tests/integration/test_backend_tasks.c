/* test_backend_tasks.c - the backend's tasks (docs/backend.md): filters
 * that combine, every status transition rule, blocking, If-Match and
 * versions, and assignment. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <string.h>

#include "backend_fixture.h"

/* =================================================================== */
/* 6. Filters                                                           */
/* =================================================================== */

/* Asserts GET /tasks?query lists exactly the tasks of want (NULL-ended). */
static void s_assert_query(const char *tok, const char *query, ...)
{
    json_t *j = be_api(200, "GET",
                       th_fmt(BE_API "/tasks?limit=500%s%s", *query ? "&" : "", query),
                       tok, NULL);
    json_t *items = json_object_get(j, "items");
    cr_assert(json_is_array(items), "%s: %s", query, th_dump(j));
    va_list ap;
    va_start(ap, query);
    size_t n = 0;
    for (json_t *t; (t = va_arg(ap, json_t *)); n++)
        cr_assert(th_find(items, "id", be_id(t)), "%s: task \"%s\" missing from %s",
                  query, th_str(t, "title"), th_dump(items));
    va_end(ap);
    cr_assert_eq(json_array_size(items), n, "%s: %zu tasks listed, want %zu: %s", query,
                 json_array_size(items), n, th_dump(items));
}

Test(backend_tasks, filters_combine, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *A = be_project(tok, "A"), *B = be_project(tok, "B");
    const char *dev = "{\"assigned_role\":\"developer\"}";
    json_t *a1 = be_task(tok, A, "a1", "\"priority\":\"high\"");
    a1 = be_patch(tok, a1, dev);
    json_t *a2 = be_task(tok, A, "a2", "\"priority\":\"high\"");
    a2 = be_walk(tok, be_patch(tok, a2, dev), "in-progress", NULL);
    json_t *a3 = be_task(tok, A, "a3", "\"priority\":\"medium\"");
    a3 = be_walk(tok, be_patch(tok, a3, "{\"assigned_role\":\"tester\"}"),
                 "in-progress", NULL);
    json_t *a4 = be_task(tok, A, "a4", "\"priority\":\"low\"");
    json_t *a5 = be_task(tok, A, "a5", "\"priority\":\"high\"");
    a5 = be_walk(tok, be_patch(tok, a5, dev), "in-progress", "review", "done", NULL);
    json_t *a6 = be_task(tok, A, "a6", NULL); /* medium by default */
    cr_assert_str_eq(th_str(a6, "priority"), "medium");
    a6 = be_patch(tok, a6, dev);
    json_t *b1 = be_task(tok, B, "b1", "\"priority\":\"high\"");
    b1 = be_patch(tok, b1, dev);
    json_t *b2 = be_task(tok, B, "b2", "\"priority\":\"high\"");
    b2 = be_walk(tok, be_patch(tok, b2, dev), "in-progress", NULL);

    const char *pa = th_fmt("project_id=%s", be_id(A)),
               *pb = th_fmt("project_id=%s", be_id(B));
    s_assert_query(tok, pa, a1, a2, a3, a4, a5, a6, NULL);
    s_assert_query(tok, pb, b1, b2, NULL);
    s_assert_query(tok, th_fmt("%s&status=todo", pa), a1, a4, a6, NULL);
    s_assert_query(tok, th_fmt("%s&status=in-progress", pa), a2, a3, NULL);
    s_assert_query(tok, th_fmt("%s&priority=high", pa), a1, a2, a5, NULL);
    s_assert_query(tok, th_fmt("%s&assigned_role=developer", pa), a1, a2, a5, a6, NULL);
    s_assert_query(tok, th_fmt("%s&assigned_role=tester", pa), a3, NULL);
    s_assert_query(tok, th_fmt("%s&status=in-progress&priority=high", pa), a2, NULL);
    s_assert_query(tok,
                   th_fmt("%s&status=todo&priority=high&assigned_role=developer", pa),
                   a1, NULL);
    s_assert_query(tok, th_fmt("%s&status=done", pb), NULL);
    s_assert_query(tok, "status=in-progress&priority=high&assigned_role=developer", a2,
                   b2, NULL);
    s_assert_query(tok, "priority=high", a1, a2, a5, b1, b2, NULL);
    s_assert_query(tok, "status=done", a5, NULL);
    s_assert_query(tok, "priority=low&status=todo", a4, NULL);
    s_assert_query(tok, "assigned_role=developer&status=todo", a1, a6, b1, NULL);
    s_assert_query(tok, "", a1, a2, a3, a4, a5, a6, b1, b2, NULL);
    /* A filter value that is not one of the allowed ones is a 400 naming it. */
    be_api_err(400, "invalid_status", "GET", BE_API "/tasks?status=bogus", tok, NULL);
    be_api_err(400, "invalid_priority", "GET", BE_API "/tasks?priority=urgent", tok,
               NULL);
    be_api_err(400, "invalid_assigned_role", "GET", BE_API "/tasks?assigned_role=chef",
               tok, NULL);
}

/* =================================================================== */
/* 7. Status rules and versions                                         */
/* =================================================================== */

/* Asserts PATCH body on t is refused with 409 code and changes nothing. */
static void s_assert_refused(const char *tok, const json_t *t, const char *body,
                             const char *code)
{
    be_api_err(409, code, "PATCH", be_task_path(t), tok, body);
    json_t *now = be_api(200, "GET", be_task_path(t), tok, NULL);
    cr_assert(json_equal(now, t), "a refused PATCH %s changed the task: %s -> %s", body,
              th_dump(t), th_dump(now));
}

Test(backend_tasks, every_transition_rule, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "rules");

    /* The happy path, one version per change. */
    json_t *t = be_task(tok, p, "happy", NULL);
    cr_assert_eq(th_int(t, "version"), 1);
    t = be_walk(tok, t, "in-progress", "review", NULL);
    t = be_walk(tok, t, "in-progress", "review", "done", NULL);
    cr_assert_eq(th_int(t, "version"), 6);
    /* done is read-only but for archived. */
    s_assert_refused(tok, t, "{\"title\":\"renamed\"}", "task_done");
    s_assert_refused(tok, t, "{\"priority\":\"low\"}", "task_done");
    t = be_walk(tok, t, "archived", NULL);
    cr_assert_eq(th_int(t, "version"), 7);
    s_assert_refused(tok, t, "{\"status\":\"todo\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "invalid_transition");

    /* From todo only to in-progress or archived. */
    json_t *u = be_task(tok, p, "todo-rules", NULL);
    s_assert_refused(tok, u, "{\"status\":\"review\"}", "invalid_transition");
    s_assert_refused(tok, u, "{\"status\":\"done\"}", "invalid_transition");
    u = be_walk(tok, u, "archived", NULL);
    cr_assert_eq(th_int(u, "version"), 2);

    /* in-progress goes on to review, back to todo (a failed or canceled
     * run gives its task back) or to archived, never straight to done. */
    json_t *w = be_walk(tok, be_task(tok, p, "ip-rules", NULL), "in-progress", NULL);
    s_assert_refused(tok, w, "{\"status\":\"done\"}", "invalid_transition");
    w = be_walk(tok, w, "todo", "in-progress", NULL);
    w = be_walk(tok, w, "review", NULL);
    s_assert_refused(tok, w, "{\"status\":\"todo\"}", "invalid_transition");
    w = be_walk(tok, w, "archived", NULL);

    /* An unknown status is a validation error. */
    json_t *x = be_task(tok, p, "bad-status", NULL);
    be_api_err(422, "invalid_status", "PATCH", be_task_path(x), tok,
               "{\"status\":\"finished\"}");

    /* Several fields in one PATCH are one change. */
    x = be_patch(tok, x,
                 "{\"title\":\"renamed\",\"priority\":\"high\",\"progress\":40}");
    cr_assert_str_eq(th_str(x, "title"), "renamed");
    cr_assert_str_eq(th_str(x, "priority"), "high");
    cr_assert_eq(th_int(x, "progress"), 40);
    cr_assert_eq(th_int(x, "version"), 2);
    json_t *g = be_api(200, "GET", be_task_path(x), tok, NULL);
    cr_assert(json_equal(g, x), "GET %s after PATCH %s", th_dump(g), th_dump(x));
}

Test(backend_tasks, done_task_moves_only_to_archived, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "done-rules");
    json_t *t = be_walk(tok, be_task(tok, p, "finished", NULL), "in-progress", "review",
                        "done", NULL);
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"status\":\"todo\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"status\":\"review\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"result\":\"late\"}", "task_done");
    s_assert_refused(tok, t, "{\"assigned_role\":\"tester\"}", "task_done");
    t = be_walk(tok, t, "archived", NULL);
    cr_assert_eq(th_int(t, "version"), 5);
}

Test(backend_tasks, blocked_task_waits_for_its_blocker_to_be_done, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "blocking");
    json_t *b1 = be_task(tok, p, "blocker-1", NULL);
    json_t *b2 = be_task(tok, p, "blocker-2", NULL);
    json_t *t = be_task(tok, p, "blocked",
                        th_fmt("\"blocked_by\":[%s,%s]", be_idj(b1), be_idj(b2)));
    json_t *bb = json_object_get(t, "blocked_by");
    cr_assert(json_is_array(bb) && json_array_size(bb) == 2, "blocked_by %s",
              th_dump(bb));
    cr_assert(json_equal(json_array_get(bb, 0), json_object_get(b1, "id")) ||
                  json_equal(json_array_get(bb, 1), json_object_get(b1, "id")),
              "blocked_by %s", th_dump(bb));

    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "blocked");
    b1 = be_walk(tok, b1, "in-progress", "review", NULL);
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "blocked");
    b1 = be_walk(tok, b1, "done", NULL);
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}",
                     "blocked"); /* b2 not done */
    b2 = be_walk(tok, b2, "in-progress", "review", "done", NULL);
    t = be_walk(tok, t, "in-progress", NULL);
    cr_assert_eq(th_int(t, "version"), 2);

    /* Blocked_by set by PATCH, and cleared. */
    json_t *u = be_task(tok, p, "later-blocked", NULL);
    json_t *c = be_task(tok, p, "new-blocker", NULL);
    u = be_patch(tok, u, th_fmt("{\"blocked_by\":[%s]}", be_idj(c)));
    s_assert_refused(tok, u, "{\"status\":\"in-progress\"}", "blocked");
    u = be_patch(tok, u, "{\"blocked_by\":[]}");
    cr_assert_eq(json_array_size(json_object_get(u, "blocked_by")), 0);
    u = be_walk(tok, u, "in-progress", NULL);
}

/* =================================================================== */
/* 8. If-Match                                                          */
/* =================================================================== */

/* PATCH with an If-Match header. */
static th_resp_t *s_patch_if(const char *tok, const json_t *t, const char *match,
                             const char *body)
{
    return be_send_raw("PATCH", be_task_path(t),
                       be_headers(tok, th_fmt("If-Match: %s\r\n", match), true), body);
}

Test(backend_tasks, if_match_current_version_or_412, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "if-match");
    json_t *t = be_task(tok, p, "original", NULL);

    th_resp_t *r = s_patch_if(tok, t, "1", "{\"title\":\"first\"}");
    be_assert_status(r, 200, "PATCH If-Match: 1", be_task_path(t));
    t = th_must_json(r);
    th_resp_free(&r);
    cr_assert_eq(th_int(t, "version"), 2);
    cr_assert_str_eq(th_str(t, "title"), "first");

    r = s_patch_if(tok, t, "\"2\"", "{\"title\":\"second\"}");
    be_assert_status(r, 200, "PATCH If-Match: \"2\"", be_task_path(t));
    t = th_must_json(r);
    th_resp_free(&r);
    cr_assert_eq(th_int(t, "version"), 3);

    const char *stale[] = {"1", "\"2\"", "4"};
    for (size_t i = 0; i < 3; i++) {
        r = s_patch_if(tok, t, stale[i], "{\"title\":\"lost update\"}");
        th_assert_error(r, 412, "version_mismatch", th_fmt("If-Match: %s", stale[i]));
        th_resp_free(&r);
    }
    r = s_patch_if(tok, t, "1", "{\"status\":\"in-progress\"}");
    th_assert_error(r, 412, "version_mismatch", "a stale status change");
    th_resp_free(&r);
    json_t *g = be_api(200, "GET", be_task_path(t), tok, NULL);
    cr_assert(json_equal(g, t), "a 412 changed the task: %s -> %s", th_dump(t),
              th_dump(g));
    /* Without If-Match a PATCH applies. */
    be_patch(tok, t, "{\"title\":\"third\"}");
}

/* =================================================================== */
/* 10. Assign and 11. Board                                             */
/* =================================================================== */

Test(backend_tasks, assign_records_the_role_or_null, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "assign");
    json_t *t = be_task(tok, p, "to-assign", NULL);
    const char *ap = th_fmt("%s/assign", be_task_path(t));
    json_t *a = be_api(202, "POST", ap, tok, "{\"role\":\"developer\"}");
    cr_assert_str_eq(be_id(a), be_id(t), "assign answered another task: %s",
                     th_dump(a));
    cr_assert_str_eq(th_str(a, "assigned_role") ? th_str(a, "assigned_role") : "(null)",
                     "developer", "%s", th_dump(a));
    json_t *g = be_api(200, "GET", be_task_path(t), tok, NULL);
    cr_assert_str_eq(th_str(g, "assigned_role") ? th_str(g, "assigned_role") : "(null)",
                     "developer");
    a = be_api(202, "POST", ap, tok, "{}");
    cr_assert(json_is_null(json_object_get(a, "assigned_role")),
              "assign {}: assigned_role %s",
              th_dump(json_object_get(a, "assigned_role")));
    g = be_api(200, "GET", be_task_path(t), tok, NULL);
    cr_assert(json_is_null(json_object_get(g, "assigned_role")), "%s", th_dump(g));
    be_api_err(400, "invalid_json", "POST", ap, tok, "{");
    /* monitor is the twelfth role; assigning again, even to the same role,
     * is a new assignment: a new version (and a new task.assigned). */
    json_t *m1 = be_api(202, "POST", ap, tok, "{\"role\":\"monitor\"}");
    json_t *m2 = be_api(202, "POST", ap, tok, "{\"role\":\"monitor\"}");
    cr_assert_eq(th_int(m2, "version"), th_int(m1, "version") + 1, "%s", th_dump(m2));
}

/* If-Match: * is any version; an If-Match that is no version is 400; an
 * empty PATCH is 422 on tasks and projects alike; an id too long to exist
 * is 404. */
Test(backend_tasks, if_match_star_empty_patches_and_long_ids, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "edges");
    json_t *t = be_task(tok, p, "edge", NULL);
    th_resp_t *r = s_patch_if(tok, t, "*", "{\"title\":\"any version\"}");
    be_assert_status(r, 200, "PATCH If-Match: *", be_task_path(t));
    th_resp_free(&r);
    r = s_patch_if(tok, t, "abc", "{\"title\":\"x\"}");
    th_assert_error(r, 400, "invalid_if_match", "If-Match: abc");
    th_resp_free(&r);
    r = be_send("PATCH", be_task_path(t), tok, "{}");
    th_assert_error(r, 422, "empty_patch", "PATCH task {}");
    th_resp_free(&r);
    r = be_send("PATCH", th_fmt(BE_API "/projects/%s", th_str(p, "id")), tok, "{}");
    th_assert_error(r, 422, "empty_patch", "PATCH project {}");
    th_resp_free(&r);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    r = be_send("GET", th_fmt(BE_API "/tasks/%s", longid), tok, NULL);
    th_assert_error(r, 404, "not_found", "a 199-character id");
    th_resp_free(&r);
}

/* ---- the read cache of GET /tasks/{id} ---- */
