/* users.c - POST /api/v1/auth/login, GET /api/v1/auth/me, and users. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "base.h"
#include "store_users.h"

/* ---- login ---- */

static void s_login_job(job_t *j)
{
    const char *name = json_string_value(json_object_get(j->in, "username"));
    const char *pw = json_string_value(json_object_get(j->in, "password"));
    json_t *user = NULL;
    char *hash = NULL;
    int rc = store_user_by_name(j->b->store, name, &user, &hash, &j->err);
    /* Unknown users cost the same as wrong passwords. */
    bool ok = auth_verify_password(rc == 0 ? hash : auth_dummy_hash(), pw);
    free(hash);
    if (rc == VP_ESTORE) {
        j->rc = rc;
    } else if (rc != 0 || !ok) {
        j->flag = false;
    } else {
        char *tok = auth_issue_token(j->b, user);
        if (!tok) {
            j->rc = VP_ESTORE;
            j->err.code = "token_error";
            snprintf(j->err.msg, sizeof j->err.msg, "could not sign a token");
        } else {
            j->flag = true;
            j->out = json_pack("{s:s,s:s,s:I,s:O}", "access_token", tok, "token_type",
                               "Bearer", "expires_in", (json_int_t)j->b->token_ttl,
                               "user", user);
            free(tok);
        }
    }
    json_decref(user);
}

typedef struct delayed {
    http_req_t *req;
} delayed_t;

static void s_reply_invalid(http_req_t *req)
{
    http_reply_error(req, 401, "invalid_credentials", "wrong username or password");
}

static void s_delayed_reply(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    s_reply_invalid(ud);
}

/* Failure: answer 401 now, or later when this username keeps failing. */
static void s_login_after(job_t *j, http_req_t *req)
{
    const char *name = json_string_value(json_object_get(j->in, "username"));
    if (j->flag) {
        auth_forget_failures(j->b, name);
        return;
    }
    uint64_t delay = auth_failure_delay(j->b, name);
    json_decref(j->out);
    j->out = NULL;
    j->rc = VP_EINVALID; /* s_done must not reply: we do */
    if (delay == 0) {
        s_reply_invalid(req);
    } else {
        log_warn("repeated login failures for \"%s\": answering in %llu ms", name,
                 (unsigned long long)delay);
        loop_add_timer(worker_loop(j->b->w), delay, 0, s_delayed_reply, req);
    }
}

static void s_login(http_req_t *req, void *ud)
{
    backend_t *b = ud;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"username", "password", NULL};
    verr_t e;
    const char *u, *p;
    if (!v_known_fields(body, allowed, &e) ||
        !v_string(body, "username", true, 1, 64, &u, &e) ||
        !v_string(body, "password", true, 1, 1024, &p, &e)) {
        api_invalid(req, &e);
        return;
    }
    job_t *j = api_job(b, s_login_job);
    j->in = json_incref(body);
    j->after = s_login_after;
    api_run(req, j);
}

/* ---- me and users ---- */

static void s_me_job(job_t *j)
{
    j->rc = store_user_get(j->b->store, j->who.sub, &j->out, &j->err);
}

static void s_me(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_me_job, ROLE_VIEWER);
    if (j)
        api_run(req, j);
}

static void s_users_list_job(job_t *j)
{
    json_t *items = NULL;
    j->rc = store_user_list(j->b->store, &items, &j->err);
    if (j->rc == 0)
        j->out = json_pack("{s:o}", "items", items);
}

static void s_users_list(http_req_t *req, void *ud)
{
    job_t *j = api_start(req, ud, s_users_list_job, ROLE_OWNER);
    if (j)
        api_run(req, j);
}

static void s_user_create_job(job_t *j)
{
    char *hash =
        auth_hash_password(json_string_value(json_object_get(j->in, "password")));
    if (!hash) {
        j->rc = VP_ESTORE;
        j->err.code = "hash_error";
        snprintf(j->err.msg, sizeof j->err.msg, "could not hash the password");
        return;
    }
    j->rc = store_user_create(
        j->b->store, json_string_value(json_object_get(j->in, "username")), hash,
        json_string_value(json_object_get(j->in, "role")), &j->out, &j->err);
    free(hash);
    if (j->rc == 0) {
        j->status = 201;
        snprintf(j->location, sizeof j->location, "/api/v1/users/%s",
                 json_string_value(json_object_get(j->out, "id")));
    }
}

static bool s_is_role(const char *r)
{
    return role_rank(r) >= 0;
}

static bool s_username_ok(const char *u)
{
    for (; *u; u++)
        if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') ||
              (*u >= '0' && *u <= '9') || *u == '_' || *u == '-' || *u == '.'))
            return false;
    return true;
}

static void s_user_create(http_req_t *req, void *ud)
{
    backend_t *b = ud;
    claims_t who;
    if (!api_authorize(req, b, ROLE_OWNER, &who))
        return;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"username", "password", "role", NULL};
    verr_t e;
    const char *u, *p, *r;
    if (!v_known_fields(body, allowed, &e) ||
        !v_string(body, "username", true, 1, 64, &u, &e) ||
        !v_string(body, "password", true, 8, 1024, &p, &e) ||
        !v_enum(body, "role", true, s_is_role, &r, &e)) {
        api_invalid(req, &e);
        return;
    }
    if (!s_username_ok(u)) {
        http_reply_error(req, 422, "invalid_username",
                         "username: use letters, digits, '.', '_' and '-'");
        return;
    }
    job_t *j = api_job(b, s_user_create_job);
    j->in = json_incref(body);
    api_run(req, j);
}

void users_routes(backend_t *b)
{
    http_server_t *h = worker_http(b->w);
    http_route(h, "POST", "/api/v1/auth/login", HTTP_JSON_BODY, s_login, b);
    http_route(h, "GET", "/api/v1/auth/me", 0, s_me, b);
    http_route(h, "GET", "/api/v1/users", 0, s_users_list, b);
    http_route(h, "POST", "/api/v1/users", HTTP_JSON_BODY, s_user_create, b);
}
