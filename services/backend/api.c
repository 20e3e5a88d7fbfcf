/* api.c - what every handler does: check the token and role, run storage
 * work on the pool, answer with its result or its error. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "log.h"
#include "alloc.h"
#include "parse.h"

bool api_authorize(http_req_t *req, backend_t *b, int min_rank, claims_t *out)
{
    const char *h = http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7] ||
        auth_verify_token_cached(b, h + 7, out) < 0) {
        http_req_add_header(req, "WWW-Authenticate", "Bearer");
        http_reply_error(req, 401, "unauthorized",
                         h ? "the bearer token is invalid or expired"
                           : "this request needs an Authorization: Bearer token");
        return false;
    }
    if (role_rank(out->role) < min_rank) {
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

job_t *api_job(backend_t *b, job_fn fn)
{
    job_t *j = xcalloc(1, sizeof *j);
    j->b = b;
    j->fn = fn;
    j->status = 200;
    return j;
}

static void s_work(void *arg)
{
    job_t *j = arg;
    j->fn(j);
    store_end(j->b->store);
    /* Serialise here: a page of tasks is tens of KiB of JSON, work the loop
     * thread should not do. A hook may still change out (then it is redone). */
    if (j->out && !j->after && !j->body)
        j->body = json_dumps(j->out, JSON_COMPACT);
}

static unsigned s_status_of(int rc)
{
    switch (rc) {
    case VP_ENOTFOUND: return 404;
    case VP_ECONFLICT: return 409;
    case VP_EPRECONDITION: return 412;
    case VP_EINVALID: return 422;
    default: return 500;
    }
}

static void s_done(http_req_t *req, void *arg, int status)
{
    job_t *j = arg;
    if (status != 0) {
        http_reply_error(req, 503, "shutting_down", "the server is shutting down");
    } else if (j->rc != 0) {
        http_reply_error(req, s_status_of(j->rc), j->err.code ? j->err.code : "error",
                         "%s", j->err.msg);
    } else if (j->after && (j->after(j, req), j->rc != 0)) {
        /* The hook answered (or will answer) the request itself. */
    } else {
        if (j->location[0])
            http_req_add_header(req, "Location", j->location);
        if (j->body) {
            http_reply(req, j->status, "application/json", j->body, strlen(j->body));
        } else if (j->out) {
            http_reply_json(req, j->status, j->out);
            j->out = NULL;
        } else {
            http_reply(req, j->status, NULL, "", 0);
        }
    }
    json_decref(j->out);
    json_decref(j->in);
    free(j->body);
    free(j);
}

job_t *api_start(http_req_t *req, backend_t *b, job_fn fn, int min_rank)
{
    job_t *j = api_job(b, fn);
    if (!api_authorize(req, b, min_rank, &j->who)) {
        free(j);
        return NULL;
    }
    const char *id = http_req_param(req, "id");
    if (id && strlen(id) >= sizeof j->id) { /* no id is that long */
        http_reply_error(req, 404, "not_found", "no such id");
        free(j);
        return NULL;
    }
    if (id)
        snprintf(j->id, sizeof j->id, "%s", id);
    return j;
}

void api_discard(job_t *j)
{
    json_decref(j->in);
    free(j);
}

void api_run(http_req_t *req, job_t *j)
{
    if (http_req_run_blocking(req, worker_pool(j->b->w), s_work, s_done, j) < 0)
        api_discard(j);
}

bool api_page(http_req_t *req, char kind, int *limit, int64_t *after)
{
    const char *l = http_req_query(req, "limit");
    const char *c = http_req_query(req, "cursor");
    long v = 50;
    if (l && parse_long(l, 1, 500, &v) < 0) {
        http_reply_error(req, 400, "invalid_limit",
                         "limit must be a whole number from 1 to 500");
        return false;
    }
    *limit = (int)v;
    *after = 0;
    if (c && *c && !cursor_decode(kind, c, after)) {
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
