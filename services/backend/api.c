/* api.c - the plumbing every handler uses; see api.h. */
#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "cursor.h"
#include "parse.h"
#include "render.h"
#include "store_users.h"
#include "worker.h"

/* 401 unauthorized, with the reason. */
static void s_unauthorized(http_req_t *req, const char *why)
{
    http_req_add_header(req, "WWW-Authenticate", "Bearer");
    http_reply_error(req, 401, "unauthorized", "%s", why);
}

static const char S_REVOKED[] = "the token was revoked (its user was deleted, or the "
                                "role or password changed): log in again";

/* The bearer token of req, or NULL. */
static const char *s_token(http_req_t *req)
{
    const char *h = http_req_header(req, "Authorization");
    return h && strncasecmp(h, "Bearer ", 7) == 0 && h[7] ? h + 7 : NULL;
}

bool api_authorize(http_req_t *req, backend_t *b, int min_rank, auth_claims_t *out)
{
    const char *tok = s_token(req);
    uint64_t users = store_users_version(b->store);
    int rc = tok ? auth_verify_token_cached(
                       b->auth, tok, store_version_known(b->store) ? &users : NULL, out)
                 : -EACCES;
    if (rc < 0) {
        s_unauthorized(req, rc == -EKEYREVOKED ? S_REVOKED
                            : http_req_header(req, "Authorization")
                                ? "the bearer token is invalid or expired"
                                : "this request needs an Authorization: Bearer token");
        return false;
    }
    if (auth_role_rank(out->role) < min_rank) {
        http_reply_error(req, 403, "forbidden", "the %s role may not do this",
                         out->role);
        return false;
    }
    return true;
}

void api_invalid(http_req_t *req, const verr_t *e)
{
    http_reply_error(req, 422, e->code, "%s", e->msg);
}

api_job_t *api_job(backend_t *b, size_t size, api_work_fn fn)
{
    VP_ASSERT(size >= sizeof(api_job_t));
    api_job_t *j = xcalloc(1, size);
    j->b = b;
    j->fn = fn;
    j->status = 200;
    return j;
}

bool api_check(http_req_t *req, backend_t *b, int min_rank, auth_claims_t *who,
               const char **id)
{
    if (!api_authorize(req, b, min_rank, who))
        return false;
    *id = http_req_param(req, "id");
    if (*id && strlen(*id) >= 64) { /* no id is that long */
        http_reply_error(req, 404, "not_found", "no such id");
        return false;
    }
    return true;
}

api_job_t *api_job_as(http_req_t *req, backend_t *b, size_t size, api_work_fn fn,
                      const auth_claims_t *who, const char *id)
{
    api_job_t *j = api_job(b, size, fn);
    j->who = *who;
    j->id = id;
    j->token = s_token(req);
    j->users_tag = store_users_version(b->store);
    return j;
}

api_job_t *api_start(http_req_t *req, backend_t *b, size_t size, api_work_fn fn,
                     int min_rank)
{
    auth_claims_t who;
    const char *id;
    if (!api_check(req, b, min_rank, &who, &id))
        return NULL;
    return api_job_as(req, b, size, fn, &who, id);
}

void api_discard(api_job_t *j)
{
    if (j->fini)
        j->fini(j);
    json_decref(j->out);
    free(j->body);
    free(j);
}

/* Whether the caller's user still holds the token's version (the pool):
 * false when it does not (j->revoked) or the database failed (j->rc). */
static bool s_user_holds(api_job_t *j)
{
    int64_t ver = 0;
    int rc = store_user_token(j->b->store, j->who.sub, &ver, &j->err);
    j->user_checked = rc == 0 || rc == VP_ENOTFOUND;
    j->revoked = rc == VP_ENOTFOUND || (rc == 0 && ver != j->who.ver);
    if (!j->user_checked)
        j->rc = rc;
    return j->user_checked && !j->revoked;
}

/* Serialises the answer off the loop thread: a page of tasks is tens of
 * KiB of JSON. A hook may still change out (then it is redone). */
static void s_render(api_job_t *j)
{
    if (j->rc == 0 && j->out && !j->after && !j->body)
        j->body = render_json(j->out, JSON_COMPACT);
}

static void s_work(pool_work_t *w)
{
    api_job_t *j = container_of(w, api_job_t, work);
    if (j->token && !j->who.current && !s_user_holds(j)) {
        store_end(j->b->store);
        return;
    }
    j->fn(j);
    store_end(j->b->store);
    s_render(j);
}

/* The writer thread, inside the batch's transaction: 0 when the answer
 * stands only if the batch commits. */
static int s_write_run(store_write_t *w, store_t *s)
{
    UNUSED(s);
    api_job_t *j = container_of(w, api_job_t, write);
    j->rc = 0; /* it may run again (see store.h): nothing of a first run stays */
    j->location[0] = '\0';
    if (j->token && !j->who.current && !s_user_holds(j))
        return -1; /* 401, or the database failed: nothing was written */
    j->fn(j);
    return j->rc;
}

/* The writer thread, after the batch: a failed commit replaces the
 * answer (the store dropped j->out and filled j->err). */
static void s_write_done(store_write_t *w)
{
    api_job_t *j = container_of(w, api_job_t, write);
    if (w->rc != 0 && j->rc == 0 && !j->revoked) {
        j->rc = w->rc; /* the store dropped out and body */
        j->location[0] = '\0';
    }
    s_render(j);
    VP_ASSERT(mailbox_post(j->b->written, &w->link) == 0);
}

static unsigned s_status_of(int rc)
{
    switch (rc) {
    case VP_ENOTFOUND: return 404;
    case VP_ECONFLICT: return 409;
    case VP_EPRECONDITION: return 412;
    case VP_EINVALID: return 422;
    case VP_EFULL: return 507;
    default: return 500;
    }
}

/* Replies j's answer; the body is handed over, not copied. */
static void s_reply(http_req_t *req, api_job_t *j)
{
    if (j->location[0])
        http_req_add_header(req, "Location", j->location);
    if (j->body) {
        http_reply_owned(req, j->status, "application/json", j->body, strlen(j->body));
        j->body = NULL;
    } else if (j->out) {
        http_reply_json(req, j->status, j->out);
        j->out = NULL;
    } else {
        http_reply(req, j->status, NULL, "", 0);
    }
}

static void s_finish(api_job_t *j, int status)
{
    http_req_t *req = j->req;
    if (j->user_checked)
        auth_token_checked(j->b->auth, j->token, j->users_tag, !j->revoked);
    if (status != 0) {
        http_reply_error(req, 503, "shutting_down", "the server is shutting down");
    } else if (j->revoked) {
        s_unauthorized(req, S_REVOKED);
    } else if (j->rc != 0) {
        http_reply_error(req, s_status_of(j->rc), j->err.code ? j->err.code : "error",
                         "%s", j->err.msg);
    } else if (j->after && (j->after(j, req), j->rc != 0)) {
        /* The hook answered (or will answer) the request itself. */
    } else {
        s_reply(req, j);
    }
    api_discard(j);
}

static void s_done(pool_work_t *w, int status)
{
    s_finish(container_of(w, api_job_t, work), status);
}

/* Loop thread: the writer's finished jobs, in the order of their commits. */
static void s_on_written(list_t *items, void *ud)
{
    UNUSED(ud);
    list_for_each_safe(it, nx, items)
    {
        list_remove(it);
        s_finish(container_of(it, api_job_t, write.link), 0);
    }
}

int api_init(backend_t *b)
{
    b->written = mailbox_new(worker_loop(b->w), 0, s_on_written, b);
    return b->written ? 0 : -errno;
}

void api_fini(backend_t *b)
{
    mailbox_destroy(&b->written);
}

static int s_submit(api_job_t *j)
{
    if (!j->writer)
        return pool_submit(worker_pool(j->b->w), &j->work, s_work, s_done);
    j->write = (store_write_t){.run = s_write_run,
                               .done = s_write_done,
                               .out = &j->out,
                               .text = &j->body,
                               .e = &j->err};
    return store_write_submit(j->b->store, &j->write);
}

void api_run(http_req_t *req, api_job_t *j)
{
    j->req = req;
    if (s_submit(j) < 0) {
        http_reply_error(req, 503, "overloaded", "the server is busy; retry shortly");
        api_discard(j);
    }
}

/* api_start and api_run of a plain api_job_t. */
static void s_serve(http_req_t *req, backend_t *b, api_work_fn fn, int min_rank,
                    bool writer)
{
    api_job_t *j = api_start(req, b, sizeof *j, fn, min_rank);
    if (j) {
        j->writer = writer;
        api_run(req, j);
    }
}

void api_serve(http_req_t *req, backend_t *b, api_work_fn fn, int min_rank)
{
    s_serve(req, b, fn, min_rank, false);
}

void api_serve_write(http_req_t *req, backend_t *b, api_work_fn fn, int min_rank)
{
    s_serve(req, b, fn, min_rank, true);
}

bool api_page(http_req_t *req, char kind, api_page_t *page)
{
    const char *l = http_req_query(req, "limit");
    const char *c = http_req_query(req, "cursor");
    long v = 50;
    if (l && parse_long(l, 1, 500, &v) < 0) {
        http_reply_error(req, 400, "invalid_limit",
                         "limit must be a whole number from 1 to 500");
        return false;
    }
    page->limit = (int)v;
    page->after = 0;
    if (c && *c && !cursor_decode(kind, c, &page->after)) {
        http_reply_error(req, 400, "invalid_cursor",
                         "the cursor is not one this list returned");
        return false;
    }
    return true;
}

json_t *api_page_body(json_t *items, char kind, int64_t next)
{
    char cur[64];
    if (next)
        cursor_encode(kind, next, cur, sizeof cur);
    return json_pack("{s:o,s:o}", "items", items, "next_cursor",
                     next ? json_string(cur) : json_null());
}
