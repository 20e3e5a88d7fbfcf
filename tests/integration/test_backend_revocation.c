/* test_backend_revocation.c - managing users (docs/backend.md): an owner
 * deletes users and changes roles, a user changes their own password; the
 * last owner stays; and a deleted user's token, or a token from before a
 * role or password change, stops working at the very next request, on
 * every worker (two, under the supervisor), the cached reads included. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fixture.h"

#define USERS BE_API "/users"

/* The path of user u. */
static const char *s_user_path(const json_t *u)
{
    return th_fmt(USERS "/%s", be_id(u));
}

/* One request with tok on a new connection (either worker may answer);
 * returns the status. */
static int s_fresh(const char *method, const char *path, const char *tok,
                   const char *body)
{
    th_resp_t *r = NULL;
    int rc = th_request(be_port(), method, path, be_headers(tok, NULL, body != NULL),
                        body, &r);
    cr_assert_eq(rc, 0, "%s %s: no answer", method, path);
    int st = r->status;
    th_resp_free(&r);
    return st;
}

/* Asserts that tok works for each request below, n times on new
 * connections (so both workers serve it, and cache what they read). */
static void s_assert_token_works(const char *tok, const json_t *task, int n)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(s_fresh("GET", BE_API "/auth/me", tok, NULL), 200);
        cr_assert_eq(s_fresh("GET", be_task_path(task), tok, NULL), 200);
    }
}

/* Asserts that tok is refused (401) for reads, cached reads and writes,
 * on each of n new connections. */
static void s_assert_token_refused(const char *tok, const json_t *task, int n)
{
    for (int i = 0; i < n; i++) {
        int me = s_fresh("GET", BE_API "/auth/me", tok, NULL);
        int get = s_fresh("GET", be_task_path(task), tok, NULL);
        int post = s_fresh("POST", BE_API "/projects", tok, "{\"name\":\"after\"}");
        int patch = s_fresh("PATCH", be_task_path(task), tok, "{\"progress\":5}");
        cr_assert(me == 401 && get == 401 && post == 401 && patch == 401,
                  "request round %d: me %d, get %d, post %d, patch %d", i, me, get,
                  post, patch);
    }
}

Test(backend_revocation, a_deleted_users_token_stops_on_every_worker_at_once,
     .timeout = 60, .fini = be_fini)
{
    be_sv_start(NULL, BE_SV("2"), 2);
    const char *adm = be_login("admin", BE_PW);
    json_t *mia = be_user(adm, "mia", "member-pass-1", "member");
    const char *tok = be_login("mia", "member-pass-1");
    json_t *t = be_task(tok, be_project(tok, "mia's"), "hers", NULL);
    s_assert_token_works(tok, t, 8);

    be_api(204, "DELETE", s_user_path(mia), adm, NULL);
    /* Not even from a worker's cache of the task, filled again by the
     * admin's reads since: that is the first request of hers each worker
     * sees after the deletion. */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(s_fresh("GET", be_task_path(t), adm, NULL), 200);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(s_fresh("GET", be_task_path(t), tok, NULL), 401, "round %d", i);
    s_assert_token_refused(tok, t, 8);
    be_api_err(401, "invalid_credentials", "POST", BE_API "/auth/login", NULL,
               "{\"username\":\"mia\",\"password\":\"member-pass-1\"}");
    be_api_err(404, "not_found", "DELETE", s_user_path(mia), adm, NULL);
    json_t *l = be_api(200, "GET", USERS, adm, NULL);
    cr_assert_null(th_find(json_object_get(l, "items"), "username", "mia"));
    /* What she made stays. */
    be_api(200, "GET", be_task_path(t), adm, NULL);
}

Test(backend_revocation, a_changed_role_or_password_ends_the_old_tokens, .timeout = 60,
     .fini = be_fini)
{
    be_sv_start(NULL, BE_SV("2"), 2);
    const char *adm = be_login("admin", BE_PW);
    json_t *mia = be_user(adm, "mia", "member-pass-1", "member");
    const char *tok = be_login("mia", "member-pass-1");
    json_t *t = be_task(tok, be_project(tok, "p"), "t", NULL);
    s_assert_token_works(tok, t, 6);

    /* Demoted: the member's token stops at once; a new login is a viewer. */
    json_t *u = be_api(200, "PATCH", s_user_path(mia), adm, "{\"role\":\"viewer\"}");
    cr_assert_str_eq(th_str(u, "role"), "viewer");
    cr_assert(!strstr(th_dump(u), "pass"), "the answer shows a password: %s",
              th_dump(u));
    s_assert_token_refused(tok, t, 6);
    const char *vtok = be_login("mia", "member-pass-1");
    be_api(200, "GET", be_task_path(t), vtok, NULL);
    be_api_err(403, "forbidden", "POST", BE_API "/projects", vtok, "{\"name\":\"x\"}");

    /* Her own password: the old tokens stop, the new password logs in. */
    be_api(200, "PATCH", s_user_path(mia), vtok, "{\"password\":\"new-pass-of-mia\"}");
    s_assert_token_refused(vtok, t, 6);
    be_api_err(401, "invalid_credentials", "POST", BE_API "/auth/login", NULL,
               "{\"username\":\"mia\",\"password\":\"member-pass-1\"}");
    const char *ntok = be_login("mia", "new-pass-of-mia");
    s_assert_token_works(ntok, t, 4);
    /* An owner sets anyone's password; a role set to what it is changes
     * nothing. */
    be_api(200, "PATCH", s_user_path(mia), adm, "{\"password\":\"set-by-owner\"}");
    const char *otok = be_login("mia", "set-by-owner");
    be_api(200, "PATCH", s_user_path(mia), adm, "{\"role\":\"viewer\"}");
    s_assert_token_works(otok, t, 4);
}

Test(backend_revocation, only_owners_manage_and_the_last_owner_stays, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    const char *adm = be_login("admin", BE_PW);
    json_t *me = be_api(200, "GET", BE_API "/auth/me", adm, NULL);
    const char *self = th_fmt(USERS "/%s", be_id(me));
    json_t *mia = be_user(adm, "mia", "member-pass-1", "member");
    json_t *vic = be_user(adm, "vic", "viewer-pass-1", "viewer");
    const char *mtok = be_login("mia", "member-pass-1");

    /* The last owner can be neither removed nor demoted. */
    be_api_err(409, "last_owner", "DELETE", self, adm, NULL);
    be_api_err(409, "last_owner", "PATCH", self, adm, "{\"role\":\"member\"}");
    /* Non-owners manage no one, not even their own role. */
    be_api_err(403, "forbidden", "DELETE", s_user_path(vic), mtok, NULL);
    be_api_err(403, "forbidden", "PATCH", s_user_path(vic), mtok,
               "{\"password\":\"hijacked-pw\"}");
    be_api_err(403, "forbidden", "PATCH", s_user_path(mia), mtok,
               "{\"role\":\"owner\"}");
    be_api_err(403, "forbidden", "GET", s_user_path(vic), mtok, NULL);
    json_t *got = be_api(200, "GET", s_user_path(mia), mtok, NULL);
    cr_assert_str_eq(th_str(got, "username"), "mia");
    /* Validation. */
    be_api_err(422, "empty_patch", "PATCH", s_user_path(mia), adm, "{}");
    be_api_err(422, "invalid_role", "PATCH", s_user_path(mia), adm,
               "{\"role\":\"god\"}");
    be_api_err(422, "invalid_password", "PATCH", s_user_path(mia), adm,
               "{\"password\":\"short\"}");
    be_api_err(422, "unknown_field", "PATCH", s_user_path(mia), adm,
               "{\"username\":\"other\"}");
    const char *nobody = th_fmt(USERS "/%s", be_unknown_id(be_id(mia)));
    be_api_err(404, "not_found", "PATCH", nobody, adm, "{\"role\":\"viewer\"}");
    be_api_err(404, "not_found", "DELETE", nobody, adm, NULL);

    /* With a second owner, admin may step down, and then the other is the
     * last one. */
    be_api(200, "PATCH", s_user_path(mia), adm, "{\"role\":\"owner\"}");
    const char *otok = be_login("mia", "member-pass-1");
    be_api(200, "PATCH", self, adm, "{\"role\":\"member\"}");
    be_api_err(409, "last_owner", "DELETE", s_user_path(mia), otok, NULL);
    be_api(204, "DELETE", self, otok, NULL);
}

Test(backend_revocation, a_deleted_admin_is_not_made_again_at_a_restart, .timeout = 60,
     .fini = be_fini)
{
    const char *dir = be_new_dir();
    th_proc_t *p = be_start_in(dir, NULL);
    const char *adm = be_login("admin", BE_PW);
    json_t *me = be_api(200, "GET", BE_API "/auth/me", adm, NULL);
    be_user(adm, "boss", "boss-password", "owner");
    const char *btok = be_login("boss", "boss-password");
    be_api(204, "DELETE", th_fmt(USERS "/%s", be_id(me)), btok, NULL);
    cr_assert_eq(th_stop(p, SIGTERM, 10000), 0);
    be_start_in(dir, NULL);
    be_api_err(401, "invalid_credentials", "POST", BE_API "/auth/login", NULL,
               "{\"username\":\"admin\",\"password\":\"" BE_PW "\"}");
    be_login("boss", "boss-password");
}
