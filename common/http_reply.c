/* http_reply.c - replying: a body at once (copied, owned or JSON), the
 * JSON error bodies (ours or the service's http_error_fn), upgrades (101),
 * and replies deferred to the blocking pool (http_req_run_blocking).
 *
 * DESIGN. A reply is built into req->resp and then handed to libmicrohttpd
 * by http__send: a suspended request is resumed (MHD calls the access
 * handler again, which queues it), a request whose handler has returned
 * is queued at once, and one whose handler is still running is queued by
 * the access handler when the handler returns. A response is never queued
 * in the access handler's first call: that would close the keep-alive
 * connection (measured: 72k vs 15k req/s). See http_internal.h for the
 * layer's files. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "http_internal.h"
#include "log.h"
#include "utf8.h"

/* The Date header, formatted at most once a second (MHD would format it
 * for every response). */
static const char *s_date(http_server_t *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

void http__queue(http_req_t *req)
{
    http_server_t *srv = req->srv;
    /* A shared response has its Date, and is never sent while draining. */
    if (!req->resp_shared) {
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_DATE, s_date(srv));
        /* Draining, or holding far more connections than a sibling: this
         * one closes after its reply, and its client connects again (a
         * stream, which may last hours, is not given back). */
        if (req->status != 101 &&
            (srv->draining || (!req->stream && http__conn_shed(srv))))
            MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (MHD_queue_response(req->conn, req->status, req->resp) != MHD_YES) {
        /* Not in this call. After the 100 Continue it sent for a request
         * without a body, with bytes behind it (a pipelined request),
         * libmicrohttpd 0.9.75 calls the handler with no data while it
         * still waits for a body, where it refuses a reply; its next call,
         * once the request is complete, takes it (found by fuzz_http).
         * Keep the reply for that call: destroying it here left the client
         * unanswered and freed a stream under its owner. That call comes
         * within the same MHD_run, so a shared response is still alive.
         * Adding the two headers again then is harmless: a second Date
         * replaces the first, a second "close" is not added. */
        log_debug("reply to %s %s kept for the next call", req->method, req->url);
        return;
    }
    if (!req->resp_shared)
        MHD_destroy_response(req->resp);
    req->resp = NULL;
}

void http__add_headers(http_req_t *req)
{
    const char *p = req->headers.data;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const char *name = p, *value = p + strlen(p) + 1;
        MHD_add_response_header(req->resp, name, value);
        p = value + strlen(value) + 1;
    }
}

void http__resume(http_req_t *req)
{
    http__unwatch(req);
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        req->srv->dirty = true;
    }
}

void http__send(http_req_t *req)
{
    if (req->suspended)
        http__resume(req);
    else if (req->handled)
        http__queue(req);
    /* Otherwise the access handler queues it when the handler returns. */
}

void http_req_add_header(http_req_t *req, const char *name, const char *value)
{
    if (!req->headers.cap)
        sbuf_reserve(&req->headers, 256); /* one allocation for the usual few */
    sbuf_append(&req->headers, name, strlen(name) + 1);
    sbuf_append(&req->headers, value, strlen(value) + 1);
    req->nheaders++;
}

static void s_reply_mem(http_req_t *req, unsigned status, const char *content_type,
                        const void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    VP_ASSERT(!req->replied);
    req->replied = true;
    req->status = status;
    req->resp = MHD_create_response_from_buffer(len, (void *)body, mode);
    VP_ASSERT(req->resp != NULL);
    if (content_type)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http__add_headers(req);
    http__unwatch(req);
    http__send(req);
}

void http_reply(http_req_t *req, unsigned status, const char *content_type,
                const void *body, size_t len)
{
    s_reply_mem(req, status, content_type, body, len, MHD_RESPMEM_MUST_COPY);
}

void http_reply_owned(http_req_t *req, unsigned status, const char *content_type,
                      char *body, size_t len)
{
    s_reply_mem(req, status, content_type, body, len, MHD_RESPMEM_MUST_FREE);
}

void http_reply_json(http_req_t *req, unsigned status, json_t *body)
{
    /* body is NULL when json_pack refused its input (text that is not
     * UTF-8): a bug in the caller, but the client still gets an answer. */
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        log_warn("could not encode the JSON reply to %s %s", req->method, req->url);
        http__reply_error_str(req, 500, "internal", "the reply could not be encoded");
        return;
    }
    http_reply_owned(req, status, "application/json", s, strlen(s));
}

/* ---- replies shared by many requests ---- */

struct http_shared {
    struct MHD_Response *resp; /* our reference; NULL before the first reply */
    unsigned status;
    char *content_type; /* NULL: none */
    char *body;
    size_t len;
    time_t date_sec; /* the second of resp's Date header */
};

http_shared_t *http_shared_new(void)
{
    return xcalloc(1, sizeof(http_shared_t));
}

static void s_shared_clear(http_shared_t *sh)
{
    if (sh->resp)
        MHD_destroy_response(sh->resp); /* queued ones keep their reference */
    sh->resp = NULL;
    free(sh->content_type);
    free(sh->body);
    sh->content_type = sh->body = NULL;
}

void http_shared_destroy(http_shared_t **shp)
{
    http_shared_t *sh = shp ? *shp : NULL;
    if (!sh)
        return;
    s_shared_clear(sh);
    free(sh);
    *shp = NULL;
}

/* Whether sh's response is the one to send now. */
static bool s_shared_fits(const http_shared_t *sh, unsigned status, const char *ct,
                          const void *body, size_t len, time_t sec)
{
    return sh->resp && sh->date_sec == sec && sh->status == status && sh->len == len &&
           (ct && sh->content_type ? strcmp(ct, sh->content_type) == 0
                                   : ct == sh->content_type) &&
           memcmp(body, sh->body, len) == 0;
}

static void s_shared_build(http_shared_t *sh, unsigned status, const char *ct,
                           const void *body, size_t len, const char *date, time_t sec)
{
    s_shared_clear(sh);
    sh->status = status;
    sh->content_type = ct ? xstrdup(ct) : NULL;
    sh->body = xmalloc(len ? len : 1);
    memcpy(sh->body, body, len);
    sh->len = len;
    sh->date_sec = sec;
    /* Its own copy: the requests still sending it outlive sh->body. */
    sh->resp = MHD_create_response_from_buffer(len, sh->body, MHD_RESPMEM_MUST_COPY);
    VP_ASSERT(sh->resp != NULL);
    if (ct)
        MHD_add_response_header(sh->resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
    MHD_add_response_header(sh->resp, MHD_HTTP_HEADER_DATE, date);
}

void http_reply_shared(http_req_t *req, http_shared_t *sh, unsigned status,
                       const char *content_type, const void *body, size_t len)
{
    http_server_t *srv = req->srv;
    if (req->nheaders || srv->draining || req->suspended || !req->handled) {
        http_reply(req, status, content_type, body, len);
        return;
    }
    const char *date = s_date(srv);
    if (!s_shared_fits(sh, status, content_type, body, len, srv->date_sec))
        s_shared_build(sh, status, content_type, body, len, date, srv->date_sec);
    VP_ASSERT(!req->replied);
    req->replied = true;
    req->status = status;
    req->resp = sh->resp;
    req->resp_shared = true;
    http__unwatch(req);
    http__queue(req); /* now: the handler is running (handled, not suspended) */
}

/* ---- errors ---- */

void http_server_set_error_fn(http_server_t *srv, http_error_fn fn, void *ud)
{
    srv->error_fn = fn;
    srv->error_ud = ud;
}

/* The body of an error reply: the service's (http_error_fn) or ours. */
static char *s_error_body(http_req_t *req, unsigned status, const char *code,
                          const char *msg)
{
    http_server_t *srv = req->srv;
    /* Messages quote the request (a path parameter, a name): make them JSON
     * strings whatever bytes the client sent. */
    char *text = utf8_repair(msg);
    char *body =
        srv->error_fn ? srv->error_fn(req, status, code, text, srv->error_ud) : NULL;
    if (!body) {
        json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", text);
        VP_ASSERT(j != NULL); /* code is ours, text is UTF-8 */
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        VP_ASSERT(body != NULL);
    }
    free(text);
    return body;
}

void http__reply_error_str(http_req_t *req, unsigned status, const char *code,
                           const char *msg)
{
    char *body = s_error_body(req, status, code, msg);
    http_reply_owned(req, status, "application/json", body, strlen(body));
}

char *http__error_bytes(http_req_t *req, unsigned status, const char *code,
                        const char *msg, size_t *len)
{
    VP_ASSERT(!req->replied);
    req->replied = true;
    req->status = status;
    char *body = s_error_body(req, status, code, msg);
    sbuf_t b = {0};
    sbuf_printf(&b,
                "HTTP/1.1 %u %s\r\nDate: %s\r\nConnection: close\r\n"
                "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                status, MHD_get_reason_phrase_for(status), s_date(req->srv),
                strlen(body), body);
    free(body);
    *len = b.len;
    return sbuf_steal(&b);
}

void http_reply_error(http_req_t *req, unsigned status, const char *code,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    http__reply_error_str(req, status, code, b.data);
    sbuf_free(&b);
}

/* ---- upgrades ---- */

typedef struct upgrade {
    http_upgrade_fn fn;
    void *ud;
    bool fired; /* libmicrohttpd handed the socket over */
} upgrade_t;

static void s_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls,
                       const char *extra, size_t extra_len, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    UNUSED(conn);
    UNUSED(con_cls);
    upgrade_t *u = cls; /* the request's until it ends (http__upgrade_end) */
    u->fired = true;
    u->fn(u->ud, sock, extra, extra_len, urh);
}

void http__upgrade_end(http_req_t *req)
{
    upgrade_t *u = req->upgrade;
    if (!u)
        return;
    req->upgrade = NULL;
    if (!u->fired) /* the client left before its 101 went out */
        u->fn(u->ud, -1, NULL, 0, NULL);
    free(u);
}

int http_reply_upgrade(http_req_t *req, http_upgrade_fn fn, void *ud)
{
    VP_ASSERT(!req->replied); /* suspended: after http_req_run_blocking */
    if (!http_req_can_upgrade(req)) {
        /* libmicrohttpd would queue nothing for an HTTP/1.0 upgrade. */
        http_reply_error(req, 400, "bad_request", "an upgrade needs HTTP/1.1");
        return -EPROTO;
    }
    upgrade_t *u = xmalloc(sizeof *u);
    *u = (upgrade_t){fn, ud, false};
    req->upgrade = u;
    req->replied = true;
    req->status = 101;
    req->resp = MHD_create_response_for_upgrade(s_upgraded, u);
    VP_ASSERT(req->resp != NULL);
    http__add_headers(req);
    http__send(req);
    return 0;
}

void http_upgrade_close(http_server_t *srv, void *urh)
{
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    srv->dirty = true;
}

/* ---- replies deferred to the blocking pool ---- */

static void s_blocking_work(pool_work_t *w)
{
    http_req_t *req = container_of(w, http_req_t, blocking.job);
    req->blocking.work(req->blocking.arg);
}

static void s_blocking_done(pool_work_t *w, int status)
{
    http_req_t *req = container_of(w, http_req_t, blocking.job);
    http_done_fn done = req->blocking.done;
    req->blocking.done = NULL; /* done() may run another job */
    done(req, req->blocking.arg, status);
}

int http_req_run_blocking(http_req_t *req, pool_t *pool, http_work_fn work,
                          http_done_fn done, void *arg)
{
    VP_ASSERT(req->blocking.done == NULL); /* one job at a time */
    req->blocking.work = work;
    req->blocking.done = done;
    req->blocking.arg = arg;
    int rc = pool_submit(pool, &req->blocking.job, s_blocking_work, s_blocking_done);
    if (rc < 0) {
        req->blocking.done = NULL;
        http_reply_error(req, 503, "overloaded", "the server is busy; retry shortly");
        return rc;
    }
    return 0;
}
