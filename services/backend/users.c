/* users.c - POST /api/v1/auth/login, GET /api/v1/auth/me, and users; see
 * users.h. */
#define _GNU_SOURCE
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "api.h"
#include "log.h"
#include "store_users.h"

/* ---- login ---- */

typedef struct login_job {
    api_job_t job;
    const char *username, *password; /* the request's */
    bool ok;                         /* the password matched */
    bool judged;                     /* the attempt counted as a success or failure */
    struct sockaddr_storage peer;    /* the client's address (a copy) */
    bool has_peer;
} login_job_t;

static const struct sockaddr *s_peer(const login_job_t *l)
{
    return l->has_peer ? (const struct sockaddr *)&l->peer : NULL;
}

/* A token for user (its token version ver), answered as the login's
 * body; false when signing failed (j->rc says so). */
static bool s_grant(api_job_t *j, json_t *user, int64_t ver)
{
    char *tok = auth_issue_token(j->b->auth, user, ver);
    if (!tok) {
        j->rc = VP_ESTORE;
        j->err.code = "token_error";
        snprintf(j->err.msg, sizeof j->err.msg, "could not sign a token");
        return false;
    }
    j->out =
        json_pack("{s:s,s:s,s:I,s:O}", "access_token", tok, "token_type", "Bearer",
                  "expires_in", (json_int_t)auth_token_ttl(j->b->auth), "user", user);
    free(tok);
    return true;
}

static void s_login_work(api_job_t *j)
{
    login_job_t *l = container_of(j, login_job_t, job);
    json_t *user = NULL;
    char *hash = NULL;
    int64_t ver = 0;
    int rc = store_user_by_name(j->b->store, l->username, &user, &hash, &ver, &j->err);
    /* Unknown users cost the same as wrong passwords. */
    bool ok = auth_verify_password(rc == 0 ? hash : auth_dummy_hash(), l->password);
    free(hash);
    if (rc == VP_ESTORE)
        j->rc = rc;
    else
        l->ok = rc == 0 && ok && s_grant(j, user, ver);
    json_decref(user);
}

/* A success gives the attempt back; a failure stays counted (it was
 * counted when admitted), starts its delay, and is answered at once. */
static void s_login_after(api_job_t *j, http_req_t *req)
{
    login_job_t *l = container_of(j, login_job_t, job);
    l->judged = true;
    if (l->ok) {
        logins_succeeded(j->b->logins, l->username, s_peer(l));
        return;
    }
    logins_failed(j->b->logins, l->username, s_peer(l));
    j->rc = VP_EINVALID; /* api.c must not reply: we do */
    http_reply_error(req, 401, "invalid_credentials", "wrong username or password");
}

/* A login that was never judged (503, a store failure, a stop) gives its
 * attempt back: only checked passwords count. */
static void s_login_fini(api_job_t *j)
{
    login_job_t *l = container_of(j, login_job_t, job);
    if (!l->judged)
        logins_release(j->b->logins, l->username, s_peer(l));
}

/* 429 with Retry-After: the login was refused without being checked. */
static void s_reply_throttled(http_req_t *req, uint64_t wait_ms)
{
    char secs[24];
    snprintf(secs, sizeof secs, "%llu", (unsigned long long)(wait_ms + 999) / 1000);
    http_req_add_header(req, "Retry-After", secs);
    http_reply_error(req, 429, "too_many_attempts",
                     "too many failed logins for this user or from this address; "
                     "retry in %s s",
                     secs);
}

static void s_login(http_req_t *req, void *ud)
{
    backend_t *b = ud;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"username", "password", NULL};
    verr_t e;
    const char *u, *p;
    if (!validate_known_fields(body, allowed, &e) ||
        !validate_string(body, "username", true, 1, 64, &u, &e) ||
        !validate_string(body, "password", true, 1, 1024, &p, &e)) {
        api_invalid(req, &e);
        return;
    }
    uint64_t wait = logins_admit(b->logins, u, http_req_peer(req));
    if (wait > 0) {
        s_reply_throttled(req, wait);
        return;
    }
    login_job_t *l = API_JOB(b, login_job_t, s_login_work);
    l->username = u;
    l->password = p;
    const struct sockaddr *peer = http_req_peer(req);
    if (peer) {
        l->has_peer = true;
        memcpy(&l->peer, peer,
               peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in));
    }
    l->job.after = s_login_after;
    l->job.fini = s_login_fini;
    api_run(req, &l->job);
}

/* ---- me and users ---- */

static void s_me_work(api_job_t *j)
{
    j->rc = store_user_get(j->b->store, j->who.sub, &j->out, &j->err);
}

static void s_me(http_req_t *req, void *ud)
{
    api_serve(req, ud, s_me_work, AUTH_VIEWER);
}

static void s_list_work(api_job_t *j)
{
    json_t *items = NULL;
    j->rc = store_user_list(j->b->store, &items, &j->err);
    if (j->rc == 0)
        j->out = json_pack("{s:o}", "items", items);
}

static void s_list(http_req_t *req, void *ud)
{
    api_serve(req, ud, s_list_work, AUTH_OWNER);
}

typedef struct create_job {
    api_job_t job;
    const char *username, *password, *role; /* the request's */
} create_job_t;

/* The argon2id hash of password (caller frees); NULL when hashing failed
 * (j->rc says so). */
static char *s_hash(api_job_t *j, const char *password)
{
    char *hash = auth_hash_password(password);
    if (!hash) {
        j->rc = VP_ESTORE;
        j->err.code = "hash_error";
        snprintf(j->err.msg, sizeof j->err.msg, "could not hash the password");
    }
    return hash;
}

static void s_create_work(api_job_t *j)
{
    create_job_t *c = container_of(j, create_job_t, job);
    char *hash = s_hash(j, c->password);
    if (!hash)
        return;
    j->rc =
        store_user_create(j->b->store, c->username, hash, c->role, &j->out, &j->err);
    free(hash);
    if (j->rc == 0) {
        j->status = 201;
        snprintf(j->location, sizeof j->location, "/api/v1/users/%s",
                 json_string_value(json_object_get(j->out, "id")));
    }
}

static bool s_is_role(const char *r)
{
    return auth_role_rank(r) >= 0;
}

static bool s_username_ok(const char *u)
{
    for (; *u; u++)
        if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') ||
              (*u >= '0' && *u <= '9') || *u == '_' || *u == '-' || *u == '.'))
            return false;
    return true;
}

static void s_create(http_req_t *req, void *ud)
{
    create_job_t *c = API_START(req, ud, create_job_t, s_create_work, AUTH_OWNER);
    if (!c)
        return;
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"username", "password", "role", NULL};
    verr_t e;
    const char *u, *p, *r;
    if (!validate_known_fields(body, allowed, &e) ||
        !validate_string(body, "username", true, 1, 64, &u, &e) ||
        !validate_string(body, "password", true, 8, 1024, &p, &e) ||
        !validate_enum(body, "role", true, s_is_role, &r, &e)) {
        api_invalid(req, &e);
        api_discard(&c->job);
        return;
    }
    if (!s_username_ok(u)) {
        http_reply_error(req, 422, "invalid_username",
                         "username: use letters, digits, '.', '_' and '-'");
        api_discard(&c->job);
        return;
    }
    c->username = u;
    c->password = p;
    c->role = r;
    api_run(req, &c->job);
}

/* ---- one user: read, change, delete ---- */

/* Whether the caller may act on the user of the path: an owner on anyone,
 * others on themselves only; false after replying 403 (and freeing j). */
static bool s_self_or_owner(http_req_t *req, api_job_t *j)
{
    if (auth_role_rank(j->who.role) >= AUTH_OWNER || strcmp(j->id, j->who.sub) == 0)
        return true;
    http_reply_error(req, 403, "forbidden", "only an owner may manage other users");
    api_discard(j);
    return false;
}

static void s_get_work(api_job_t *j)
{
    j->rc = store_user_get(j->b->store, j->id, &j->out, &j->err);
}

static void s_get(http_req_t *req, void *ud)
{
    api_job_t *j = api_start(req, ud, sizeof *j, s_get_work, AUTH_VIEWER);
    if (j && s_self_or_owner(req, j))
        api_run(req, j);
}

typedef struct patch_job {
    api_job_t job;
    const char *role, *password; /* the request's; NULL: unchanged */
} patch_job_t;

static void s_patch_work(api_job_t *j)
{
    patch_job_t *p = container_of(j, patch_job_t, job);
    char *hash = p->password ? s_hash(j, p->password) : NULL;
    if (!p->password || hash)
        j->rc = store_user_update(j->b->store, j->id, p->role, hash, &j->out, &j->err);
    free(hash);
}

/* Validates the body of a PATCH; false after replying 422 or 403. */
static bool s_patch_body(http_req_t *req, patch_job_t *p)
{
    json_t *body = http_req_json(req);
    static const char *const allowed[] = {"role", "password", NULL};
    verr_t e;
    if (!validate_known_fields(body, allowed, &e) ||
        !validate_enum(body, "role", false, s_is_role, &p->role, &e) ||
        !validate_string(body, "password", false, 8, 1024, &p->password, &e)) {
        api_invalid(req, &e);
        return false;
    }
    if (!p->role && !p->password) {
        http_reply_error(req, 422, "empty_patch", "the body names no field to change");
        return false;
    }
    if (p->role && auth_role_rank(p->job.who.role) < AUTH_OWNER) {
        http_reply_error(req, 403, "forbidden", "only an owner may change roles");
        return false;
    }
    return true;
}

static void s_patch(http_req_t *req, void *ud)
{
    patch_job_t *p = API_START(req, ud, patch_job_t, s_patch_work, AUTH_VIEWER);
    if (!p || !s_self_or_owner(req, &p->job))
        return;
    if (!s_patch_body(req, p)) {
        api_discard(&p->job);
        return;
    }
    api_run(req, &p->job);
}

static void s_delete_work(api_job_t *j)
{
    j->rc = store_user_delete(j->b->store, j->id, &j->err);
    j->status = 204;
}

static void s_delete(http_req_t *req, void *ud)
{
    api_serve(req, ud, s_delete_work, AUTH_OWNER);
}

void users_add_routes(backend_t *b)
{
    http_server_t *h = worker_http(b->w);
    http_route(h, "POST", "/api/v1/auth/login", HTTP_JSON_BODY, s_login, b);
    http_route(h, "GET", "/api/v1/auth/me", 0, s_me, b);
    http_route(h, "GET", "/api/v1/users", 0, s_list, b);
    http_route(h, "POST", "/api/v1/users", HTTP_JSON_BODY, s_create, b);
    http_route(h, "GET", "/api/v1/users/{id}", 0, s_get, b);
    http_route(h, "PATCH", "/api/v1/users/{id}", HTTP_JSON_BODY, s_patch, b);
    http_route(h, "DELETE", "/api/v1/users/{id}", 0, s_delete, b);
}
