/* test_backend_users.c - the backend's users and roles (docs/backend.md):
 * the owner creates users with validation; a viewer reads, a member writes
 * projects and tasks, only the owner manages users. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "backend_fixture.h"

/* =================================================================== */
/* 3. Users and roles                                                   */
/* =================================================================== */

Test(backend_users, owner_creates_users_with_validation, .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    const char *adm = be_login("admin", BE_PW);
    json_t *m = be_user(adm, "mia", "member-pass-1", "member");
    cr_assert_str_eq(th_str(m, "username") ? th_str(m, "username") : "", "mia");
    cr_assert_str_eq(th_str(m, "role") ? th_str(m, "role") : "", "member");
    be_id(m);
    cr_assert_not_null(json_object_get(m, "created_at"), "no created_at: %s",
                       th_dump(m));
    cr_assert(!strstr(th_dump(m), "pass") && !strstr(th_dump(m), "argon"),
              "the user answer shows a password or hash: %s", th_dump(m));
    json_t *v = be_user(adm, "vic", "viewer-pass-1", "viewer");
    cr_assert_str_eq(th_str(v, "role") ? th_str(v, "role") : "", "viewer");

    be_api_err(
        409, "username_taken", "POST", BE_API "/users", adm,
        "{\"username\":\"mia\",\"password\":\"another-pass\",\"role\":\"viewer\"}");
    be_api_err(422, "invalid_role", "POST", BE_API "/users", adm,
               "{\"username\":\"rob\",\"password\":\"robert-pass\",\"role\":\"god\"}");
    be_api_err(422, "invalid_password", "POST", BE_API "/users", adm,
               "{\"username\":\"rob\",\"password\":\"short\",\"role\":\"member\"}");
    be_api_err(422, "invalid_username", "POST", BE_API "/users", adm,
               "{\"username\":\"\",\"password\":\"robert-pass\",\"role\":\"member\"}");
    const char *um = be_api_err(422, "unknown_field", "POST", BE_API "/users", adm,
                                "{\"username\":\"rob\",\"password\":\"robert-pass\","
                                "\"role\":\"member\",\"shoe_size\":44}");
    cr_assert(strstr(um, "shoe_size"), "the message does not name the field: %s", um);

    json_t *list = be_api(200, "GET", BE_API "/users", adm, NULL);
    json_t *items = json_object_get(list, "items");
    cr_assert(json_is_array(items), "GET /users: %s", th_dump(list));
    /* admin and agents (made at the first start), and the two new ones. */
    cr_assert_eq(json_array_size(items), 4, "users: %s", th_dump(items));
    cr_assert(
        th_find(items, "username", "admin") && th_find(items, "username", "agents") &&
            th_find(items, "username", "mia") && th_find(items, "username", "vic"),
        "users: %s", th_dump(items));
    cr_assert(!th_find(items, "username", "rob"), "a refused user was created");
    cr_assert(!strstr(th_dump(items), "argon") && !strstr(th_dump(items), "password"),
              "GET /users shows passwords or hashes: %s", th_dump(items));
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        be_id(o);
        cr_assert(th_str(o, "username") && th_str(o, "role") &&
                      json_object_get(o, "created_at"),
                  "user %zu: %s", i, th_dump(o));
    }
    /* The new users can log in with their roles. */
    json_t *lm = be_login_doc("mia", "member-pass-1");
    cr_assert_str_eq(th_str(json_object_get(lm, "user"), "role"), "member");
    json_t *lv = be_login_doc("vic", "viewer-pass-1");
    cr_assert_str_eq(th_str(json_object_get(lv, "user"), "role"), "viewer");
}

/* The viewer's token vie reads project p, its board and task t, and is
 * refused every write. */
static void s_viewer_reads_and_cannot_write(const char *vie, const json_t *p,
                                            const json_t *t)
{
    const char *pp = th_fmt(BE_API "/projects/%s", be_id(p));
    be_api(200, "GET", BE_API "/projects", vie, NULL);
    be_api(200, "GET", pp, vie, NULL);
    be_api(200, "GET", th_fmt("%s/board", pp), vie, NULL);
    be_api(200, "GET", BE_API "/tasks", vie, NULL);
    be_api(200, "GET", th_fmt(BE_API "/tasks?project_id=%s", be_id(p)), vie, NULL);
    be_api(200, "GET", be_task_path(t), vie, NULL);
    be_api(200, "GET", BE_API "/auth/me", vie, NULL);
    be_api_err(403, "forbidden", "POST", BE_API "/projects", vie,
               "{\"name\":\"nope\"}");
    be_api_err(403, "forbidden", "PATCH", pp, vie, "{\"name\":\"nope\"}");
    be_api_err(403, "forbidden", "DELETE", pp, vie, NULL);
    be_api_err(403, "forbidden", "DELETE", th_fmt("%s?cascade=true", pp), vie, NULL);
    be_api_err(403, "forbidden", "POST", th_fmt("%s/tasks", pp), vie,
               "{\"title\":\"nope\"}");
    be_api_err(403, "forbidden", "PATCH", be_task_path(t), vie, "{\"title\":\"nope\"}");
    be_api_err(403, "forbidden", "DELETE", be_task_path(t), vie, NULL);
    be_api_err(403, "forbidden", "POST", th_fmt("%s/assign", be_task_path(t)), vie,
               "{}");
    be_api_err(403, "forbidden", "GET", BE_API "/users", vie, NULL);
    be_api_err(
        403, "forbidden", "POST", BE_API "/users", vie,
        "{\"username\":\"eve\",\"password\":\"eve-password\",\"role\":\"viewer\"}");
}

Test(backend_users, roles_viewer_reads_member_writes_owner_manages, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    const char *adm = be_login("admin", BE_PW);
    be_user(adm, "mia", "member-pass-1", "member");
    be_user(adm, "vic", "viewer-pass-1", "viewer");
    const char *mem = be_login("mia", "member-pass-1");
    const char *vie = be_login("vic", "viewer-pass-1");

    /* member: projects and tasks, not users. */
    json_t *p = be_project(mem, "members-project");
    json_t *t = be_task(mem, p, "members-task", NULL);
    t = be_patch(mem, t, "{\"priority\":\"high\"}");
    be_api(202, "POST", th_fmt("%s/assign", be_task_path(t)), mem,
           "{\"role\":\"developer\"}");
    t = be_api(200, "GET", be_task_path(t), mem, NULL);
    be_api_err(403, "forbidden", "GET", BE_API "/users", mem, NULL);
    be_api_err(
        403, "forbidden", "POST", BE_API "/users", mem,
        "{\"username\":\"eve\",\"password\":\"eve-password\",\"role\":\"owner\"}");

    /* viewer: reads everything of projects and tasks, writes nothing. */
    const char *pp = th_fmt(BE_API "/projects/%s", be_id(p));
    s_viewer_reads_and_cannot_write(vie, p, t);

    /* Nothing the viewer tried changed anything. */
    json_t *p2 = be_api(200, "GET", pp, adm, NULL);
    cr_assert_str_eq(th_str(p2, "name"), "members-project");
    json_t *t2 = be_api(200, "GET", be_task_path(t), adm, NULL);
    cr_assert(json_equal(t2, t), "the viewer changed the task: %s -> %s", th_dump(t),
              th_dump(t2));
    json_t *tl =
        be_api(200, "GET", th_fmt(BE_API "/tasks?project_id=%s", be_id(p)), adm, NULL);
    cr_assert_eq(json_array_size(json_object_get(tl, "items")), 1);
    json_t *ul = be_api(200, "GET", BE_API "/users", adm, NULL);
    cr_assert_eq(json_array_size(json_object_get(ul, "items")), 4, "users: %s",
                 th_dump(ul)); /* with admin and agents */

    /* member deletes what it made. */
    th_resp_t *r = be_send("DELETE", be_task_path(t), mem, NULL);
    be_assert_status(r, 204, "DELETE", be_task_path(t));
    cr_assert_eq(r->body_len, 0, "a 204 with a body: %s", r->body);
    th_resp_free(&r);
    be_api_err(404, "not_found", "GET", be_task_path(t), mem, NULL);
    be_api_err(404, "not_found", "DELETE", be_task_path(t), mem, NULL);
    be_api(204, "DELETE", pp, mem, NULL);
}
