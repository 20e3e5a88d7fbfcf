/* http.c - see http.h. */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "list.h"
#include "log.h"
#include "now.h"
#include "sbuf.h"
#include "utf8.h"
#include "parse.h"

#define HTTP_MAX_SEGS 16
#define HTTP_MAX_PARAMS 8
#define HTTP_STATUS_CACHE 12
#define HTTP_ACCEPT_BATCH 4
#define HTTP_DISCARD_MAX (1024 * 1024)

static const double s_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                          1,      2.5,     5,      10};

typedef struct status_series {
    unsigned status;
    metric_series_t *series;
} status_series_t;

typedef struct route {
    char *method;
    char *pattern;
    char *segs[HTTP_MAX_SEGS]; /* literal, or "{name}" */
    unsigned nsegs;
    unsigned flags;
    http_handler_fn fn;
    void *ud;
    metric_series_t *latency;
    status_series_t by_status[HTTP_STATUS_CACHE];
} route_t;

/* A connection as the header deadline sees it (s_sweep). */
typedef struct conn_track {
    int fd;
    uint64_t since_ms; /* waiting for a request's headers since */
    bool busy;         /* a request is past its headers, or it was upgraded */
    list_t link;       /* http_server.conns */
} conn_track_t;

struct http_req {
    http_server_t *srv;
    struct MHD_Connection *conn;
    const char *method; /* NULL until the access handler's first call */
    const char *url;
    const char *version; /* "HTTP/1.1" */
    size_t uri_len;      /* the full request-target, query string included */
    bool nul_in_uri;     /* %00 in it: decoded, it would cut the path short */
    bool framing_error;  /* where its body ends is unclear: answer, then close */
    size_t discarded;    /* body bytes read and dropped (the request is refused) */
    conn_track_t *track; /* its connection's */
    route_t *route;
    uint64_t start_ns;
    /* A request-level error found while receiving: replied at the end. */
    unsigned err_status;
    const char *err_code;
    char *err_msg;
    char *allow; /* Allow header for 405 */
    sbuf_t body;
    bool body_overflow;
    json_t *json;
    char *pathbuf; /* NUL-separated copies of the param values */
    const char *pnames[HTTP_MAX_PARAMS];
    const char *pvals[HTTP_MAX_PARAMS];
    unsigned nparams;
    sbuf_t headers; /* response headers: "name\0value\0" pairs */
    unsigned nheaders;
    struct MHD_Response *resp;
    unsigned status;
    bool handled;   /* the handler has run */
    bool suspended; /* MHD_suspend_connection in effect */
    bool replied;
    http_stream_t *stream; /* a streamed reply in progress */
    /* http_req_watch_gone: told when the client leaves while suspended */
    http_gone_fn gone_fn;
    void *gone_ud;
    int watch_fd; /* the connection's socket in our loop; -1: not watched */
    list_t link;  /* http_server.live, for shutdown */
    /* http_req_run_blocking's job, one at a time. The request outlives it:
     * it stays suspended until done() replies, and a worker stops its pool
     * before its server. done is NULL when no job is pending. */
    struct {
        pool_work_t job;
        http_work_fn work;
        http_done_fn done;
        void *arg;
    } blocking;
};

/* A streamed reply: owned by its MHD response (freed by s_stream_free once
 * MHD is done with it); req is NULL once the request has ended. */
struct http_stream {
    http_req_t *req;
    struct MHD_Response *resp;
    sbuf_t buf;  /* bytes written but not yet handed to MHD */
    size_t off;  /* how much of buf MHD has taken */
    bool ended;  /* http_stream_end called */
    bool failed; /* end with an error (MHD_CONTENT_READER_END_WITH_ERROR) */
    http_stream_gone_fn gone;
    void *ud;
};

struct http_server {
    loop_t *loop;
    metrics_t *metrics;
    http_config_t cfg;
    char *service;
    struct MHD_Daemon *daemon;
    int mhd_epfd;
    int listen_fd;
    bool accepting;
    bool draining;
    bool dirty; /* MHD_run needed before sleeping */
    loop_timer_t *accept_retry;
    route_t *routes;
    size_t nroutes;
    route_t unmatched; /* metrics of requests that matched no route */
    metric_family_t *req_total;
    metric_family_t *latency;
    unsigned in_flight;
    uint64_t completed;
    uint64_t last_request_ms; /* monotonic: when the last request's headers came */
    char date[40];            /* IMF-fixdate of date_sec, for the Date header */
    time_t date_sec;
    list_t live; /* every request from its first sight to its completion */
    http_error_fn error_fn;
    void *error_ud;
    list_t conns; /* every open connection (conn_track_t) */
    loop_timer_t *sweep;
};

void http_config_defaults(http_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->service = "vapora";
    cfg->max_body = 1024 * 1024;
    cfg->max_url = 4096;
    cfg->max_header = 8192;
    cfg->max_connections = 4096;
    cfg->request_timeout = 30;
    cfg->access_log = false;
}

/* ---- metrics ---- */

static void s_route_metrics(http_server_t *srv, route_t *r)
{
    sbuf_t l = {0};
    metrics_label(&l, "service", srv->service);
    metrics_label(&l, "route", r->pattern);
    r->latency = metrics_series(srv->latency, l.data);
    sbuf_free(&l);
}

static metric_series_t *s_status_series(http_server_t *srv, route_t *r, unsigned status)
{
    for (unsigned i = 0; i < HTTP_STATUS_CACHE; i++) {
        status_series_t *ss = &r->by_status[i];
        if (ss->status == status)
            return ss->series;
        if (ss->status == 0 || i == HTTP_STATUS_CACHE - 1) {
            char st[8];
            snprintf(st, sizeof st, "%u", status);
            sbuf_t l = {0};
            metrics_label(&l, "service", srv->service);
            metrics_label(&l, "route", r->pattern);
            metrics_label(&l, "status", st);
            metric_series_t *s = metrics_series(srv->req_total, l.data);
            sbuf_free(&l);
            if (ss->status == 0) { /* cache it; the last slot is never cached */
                ss->status = status;
                ss->series = s;
            }
            return s;
        }
    }
    return NULL;
}

/* ---- routing ---- */

static int s_split_pattern(route_t *r, const char *pattern)
{
    if (pattern[0] != '/')
        return -EINVAL;
    const char *p = pattern + 1;
    while (*p) {
        if (r->nsegs == HTTP_MAX_SEGS)
            return -EINVAL;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            return -EINVAL;
        r->segs[r->nsegs++] = xstrndup(p, n);
        p += n + (e ? 1 : 0);
    }
    return 0;
}

static bool s_is_param(const char *seg)
{
    size_t n = strlen(seg);
    return n > 2 && seg[0] == '{' && seg[n - 1] == '}';
}

int http_route(http_server_t *srv, const char *method, const char *pattern,
               unsigned flags, http_handler_fn fn, void *ud)
{
    srv->routes = xrealloc(srv->routes, (srv->nroutes + 1) * sizeof *srv->routes);
    route_t *r = &srv->routes[srv->nroutes];
    memset(r, 0, sizeof *r);
    if (s_split_pattern(r, pattern) < 0) {
        for (unsigned i = 0; i < r->nsegs; i++)
            free(r->segs[i]);
        return -EINVAL;
    }
    r->method = xstrdup(method);
    r->pattern = xstrdup(pattern);
    r->flags = flags;
    r->fn = fn;
    r->ud = ud;
    srv->nroutes++;
    /* Route pointers are handed out only after start, so realloc is safe;
     * series are (re)looked up then. */
    return 0;
}

/* Matches path against r; on success fills the request's params. */
static bool s_match(route_t *r, const char *path, http_req_t *req)
{
    const char *p = path;
    if (*p != '/')
        return false;
    p++;
    unsigned np = 0;
    const char *vals[HTTP_MAX_PARAMS];
    size_t lens[HTTP_MAX_PARAMS];
    for (unsigned i = 0; i < r->nsegs; i++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            return false;
        const char *seg = r->segs[i];
        if (s_is_param(seg)) {
            if (np == HTTP_MAX_PARAMS)
                return false;
            vals[np] = p;
            lens[np++] = n;
        } else if (strlen(seg) != n || memcmp(seg, p, n) != 0) {
            return false;
        }
        p += n;
        if (*p == '/')
            p++;
        else if (i + 1 < r->nsegs)
            return false;
    }
    if (*p != '\0' || (p > path + 1 && p[-1] == '/' && r->nsegs > 0))
        return false;
    if (!req)
        return true;
    size_t total = 0;
    for (unsigned i = 0; i < np; i++)
        total += lens[i] + 1;
    if (np) {
        req->pathbuf = xmalloc(total);
        char *w = req->pathbuf;
        unsigned k = 0;
        for (unsigned i = 0; i < r->nsegs; i++) {
            if (!s_is_param(r->segs[i]))
                continue;
            memcpy(w, vals[k], lens[k]);
            w[lens[k]] = '\0';
            req->pnames[k] = r->segs[i];
            req->pvals[k] = w;
            w += lens[k] + 1;
            k++;
        }
    }
    req->nparams = np;
    return true;
}

static bool s_method_is(const route_t *r, const char *method)
{
    if (strcmp(r->method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

static void s_set_error(http_req_t *req, unsigned status, const char *code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void s_set_error(http_req_t *req, unsigned status, const char *code,
                        const char *fmt, ...)
{
    if (req->err_status)
        return;
    va_list ap;
    va_start(ap, fmt);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    req->err_status = status;
    req->err_code = code;
    req->err_msg = sbuf_steal(&b);
}

/* Finds the route, or records 404/405 on the request. */
static void s_route_request(http_server_t *srv, http_req_t *req)
{
    sbuf_t allow = {0};
    for (size_t i = 0; i < srv->nroutes; i++) {
        route_t *r = &srv->routes[i];
        if (!s_match(r, req->url, NULL))
            continue;
        if (s_method_is(r, req->method)) {
            s_match(r, req->url, req);
            req->route = r;
            sbuf_free(&allow);
            return;
        }
        if (!strstr(allow.data ? allow.data : "", r->method)) {
            if (allow.len)
                sbuf_puts(&allow, ", ");
            sbuf_puts(&allow, r->method);
            if (strcmp(r->method, "GET") == 0)
                sbuf_puts(&allow, ", HEAD");
        }
    }
    if (allow.len) {
        req->allow = sbuf_steal(&allow);
        s_set_error(req, 405, "method_not_allowed",
                    "method %s is not allowed on %s (allowed: %s)", req->method,
                    req->url, req->allow);
    } else {
        s_set_error(req, 404, "not_found", "no route for %s %s", req->method, req->url);
    }
}

/* ---- request checks done when the headers arrive ---- */

typedef struct header_scan {
    size_t sum;             /* bytes of the header block */
    const char *length;     /* the first Content-Length */
    bool lengths_differ;    /* another Content-Length with another value */
    bool transfer_encoding; /* a Transfer-Encoding header */
    bool bad_coding;        /* one that is not just "chunked" */
} header_scan_t;

static enum MHD_Result s_scan_header(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
    UNUSED(kind);
    header_scan_t *h = cls;
    h->sum += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (!h->length)
            h->length = value ? value : "";
        else if (strcmp(h->length, value ? value : "") != 0)
            h->lengths_differ = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        h->transfer_encoding = true;
        /* Only chunked frames a request body (RFC 9112, 6.3): any other
         * coding would make it run until the connection closes. */
        if (!value || strcasecmp(value, "chunked") != 0)
            h->bad_coding = true;
    }
    return MHD_YES;
}

static bool s_is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return false;
    char c = ct[16];
    return c == '\0' || c == ';' || c == ' ';
}

static void s_check_request(http_server_t *srv, http_req_t *req)
{
    const http_config_t *c = &srv->cfg;
    if (req->uri_len > c->max_url) {
        s_set_error(req, 414, "uri_too_long",
                    "the request URL is longer than %zu bytes", c->max_url);
        return;
    }
    if (req->nul_in_uri) {
        s_set_error(req, 400, "bad_request",
                    "the request URL holds an encoded NUL (%%00)");
        return;
    }
    header_scan_t h = {0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, s_scan_header, &h);
    if (h.sum > c->max_header) {
        s_set_error(req, 431, "headers_too_large",
                    "the request headers are larger than %zu bytes", c->max_header);
        return;
    }
    /* Two lengths, a length and chunks, or a coding other than chunked
     * are read one way here and another by a proxy in front: refuse them
     * (RFC 9112, 6.3). */
    if (h.lengths_differ || (h.length && h.transfer_encoding) || h.bad_coding) {
        req->framing_error = true;
        s_set_error(req, 400, "bad_request", "%s",
                    h.lengths_differ
                        ? "the request has Content-Length headers that disagree"
                    : h.bad_coding ? "Transfer-Encoding must be chunked alone"
                                   : "the request has both Content-Length and "
                                     "Transfer-Encoding");
        return;
    }
    s_route_request(srv, req);
    if (req->err_status)
        return;
    if (req->route->flags & (HTTP_JSON_BODY | HTTP_JSON_OPTIONAL)) {
        const char *cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = http_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        bool has_body = (cl && strcmp(cl, "0") != 0) || te;
        const char *ct = http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (has_body && !s_is_json_type(ct))
            s_set_error(req, 415, "unsupported_media_type",
                        "the request body must be application/json, not %s",
                        ct ? ct : "untyped");
    }
}

/* ---- replies ---- */

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

/* Stops watching the client of a request that gets its reply. */
static void s_unwatch(http_req_t *req)
{
    if (req->watch_fd >= 0) {
        loop_del_fd(req->srv->loop, req->watch_fd);
        req->watch_fd = -1;
    }
}

static void s_queue(http_req_t *req)
{
    http_server_t *srv = req->srv;
    MHD_add_response_header(req->resp, MHD_HTTP_HEADER_DATE, s_date(srv));
    if (srv->draining && req->status != 101)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (MHD_queue_response(req->conn, req->status, req->resp) != MHD_YES)
        log_warn("MHD_queue_response failed for %s %s", req->method, req->url);
    MHD_destroy_response(req->resp);
    req->resp = NULL;
}

/* Adds the headers http_req_add_header collected to req->resp. */
static void s_add_headers(http_req_t *req)
{
    const char *p = req->headers.data;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const char *name = p, *value = p + strlen(p) + 1;
        MHD_add_response_header(req->resp, name, value);
        p = value + strlen(value) + 1;
    }
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
    s_add_headers(req);
    s_unwatch(req);
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        req->srv->dirty = true;
    } else if (req->handled) {
        s_queue(req);
    }
    /* Otherwise the access handler queues it when the handler returns. */
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

typedef struct upgrade {
    http_upgrade_fn fn;
    void *ud;
} upgrade_t;

static void s_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls,
                       const char *extra, size_t extra_len, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    UNUSED(conn);
    UNUSED(con_cls);
    upgrade_t *u = cls;
    u->fn(u->ud, sock, extra, extra_len, urh);
    free(u);
}

bool http_req_can_upgrade(const http_req_t *req)
{
    /* libmicrohttpd upgrades HTTP/1.1 and later 1.x only. */
    const char *v = req->version;
    return v && strncmp(v, "HTTP/1.", 7) == 0 && strcmp(v, MHD_HTTP_VERSION_1_0) != 0;
}

int http_reply_upgrade(http_req_t *req, http_upgrade_fn fn, void *ud)
{
    VP_ASSERT(!req->replied && !req->suspended);
    if (!http_req_can_upgrade(req)) {
        /* libmicrohttpd would queue nothing for an HTTP/1.0 upgrade. */
        http_reply_error(req, 400, "bad_request", "an upgrade needs HTTP/1.1");
        return -EPROTO;
    }
    upgrade_t *u = xmalloc(sizeof *u);
    *u = (upgrade_t){fn, ud};
    req->replied = true;
    req->status = 101;
    req->resp = MHD_create_response_for_upgrade(s_upgraded, u);
    VP_ASSERT(req->resp != NULL);
    s_add_headers(req);
    if (req->handled)
        s_queue(req);
    return 0;
}

void http_upgrade_close(http_server_t *srv, void *urh)
{
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    srv->dirty = true;
}

/* ---- streamed replies ---- */

static void s_resume(http_req_t *req)
{
    s_unwatch(req);
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        req->srv->dirty = true;
    }
}

static void s_watch_with(http_req_t *req, loop_fd_fn fn);
static void s_on_stream_client(loop_t *loop, int fd, unsigned ev, void *ud);

/* MHD asks for the next bytes of a streamed reply. With nothing buffered
 * and the stream still open, the connection is suspended (returning 0
 * without suspending would make MHD spin) until the next write or end. */
static ssize_t s_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    UNUSED(pos);
    http_stream_t *st = cls;
    size_t avail = st->buf.len - st->off;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(out, st->buf.data + st->off, n);
        st->off += n;
        if (st->off == st->buf.len)
            st->off = st->buf.len = 0;
        return (ssize_t)n;
    }
    if (st->ended || !st->req)
        return st->failed || !st->req ? MHD_CONTENT_READER_END_WITH_ERROR
                                      : MHD_CONTENT_READER_END_OF_STREAM;
    st->req->suspended = true;
    MHD_suspend_connection(st->req->conn);
    s_watch_with(st->req, s_on_stream_client);
    return 0;
}

static void s_stream_free(void *cls)
{
    http_stream_t *st = cls;
    if (st->req)
        st->req->stream = NULL;
    sbuf_free(&st->buf);
    free(st);
}

http_stream_t *http_reply_stream(http_req_t *req, unsigned status,
                                 const char *content_type, http_stream_gone_fn gone,
                                 void *ud)
{
    VP_ASSERT(!req->replied);
    http_stream_t *st = xcalloc(1, sizeof *st);
    st->req = req;
    st->gone = gone;
    st->ud = ud;
    req->replied = true;
    req->status = status;
    req->stream = st;
    req->resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, s_stream_read,
                                                  st, s_stream_free);
    VP_ASSERT(req->resp != NULL);
    st->resp = req->resp;
    if (content_type)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    s_add_headers(req);
    if (req->suspended)
        s_resume(req);
    else if (req->handled)
        s_queue(req);
    return st;
}

void http_stream_write(http_stream_t *st, const void *data, size_t len)
{
    if (!st->req || st->ended || !len)
        return;
    sbuf_append(&st->buf, data, len);
    s_resume(st->req);
}

void http_stream_trailer(http_stream_t *st, const char *name, const char *value)
{
    if (st->req && !st->ended)
        MHD_add_response_footer(st->resp, name, value);
}

void http_stream_end(http_stream_t *st, bool failed)
{
    if (!st->req || st->ended)
        return;
    st->ended = true;
    st->failed = failed;
    s_resume(st->req);
}

size_t http_stream_pending(const http_stream_t *st)
{
    return st->buf.len - st->off;
}

void http_server_set_error_fn(http_server_t *srv, http_error_fn fn, void *ud)
{
    srv->error_fn = fn;
    srv->error_ud = ud;
}

static void s_reply_error_str(http_req_t *req, unsigned status, const char *code,
                              const char *msg);

void http_reply_json(http_req_t *req, unsigned status, json_t *body)
{
    /* body is NULL when json_pack refused its input (text that is not
     * UTF-8): a bug in the caller, but the client still gets an answer. */
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        log_warn("could not encode the JSON reply to %s %s", req->method, req->url);
        s_reply_error_str(req, 500, "internal", "the reply could not be encoded");
        return;
    }
    http_reply_owned(req, status, "application/json", s, strlen(s));
}

static void s_reply_error_str(http_req_t *req, unsigned status, const char *code,
                              const char *msg)
{
    http_server_t *srv = req->srv;
    /* Messages quote the request (a path parameter, a name): make them JSON
     * strings whatever bytes the client sent. */
    char *text = utf8_repair(msg);
    char *custom =
        srv->error_fn ? srv->error_fn(req, status, code, text, srv->error_ud) : NULL;
    if (custom) {
        free(text);
        http_reply_owned(req, status, "application/json", custom, strlen(custom));
        return;
    }
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", text);
    free(text);
    VP_ASSERT(j != NULL); /* code is ours, text is UTF-8 */
    http_reply_json(req, status, j);
}

void http_reply_error(http_req_t *req, unsigned status, const char *code,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    s_reply_error_str(req, status, code, b.data);
    sbuf_free(&b);
}

/* ---- blocking work ---- */

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

/* ---- noticing a client that leaves while its request waits ---- */

static void s_on_client(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    http_req_t *req = ud;
    if (!(ev & (LOOP_HANGUP | LOOP_ERROR)))
        return;
    s_unwatch(req);
    http_gone_fn fn = req->gone_fn;
    req->gone_fn = NULL;
    if (fn)
        fn(req->gone_ud); /* it still replies (the reply is then dropped) */
}

/* A suspended connection is out of MHD's epoll and MHD would not notice
 * its client leave; we watch its socket for the peer's close meanwhile. */
static void s_watch_with(http_req_t *req, loop_fd_fn fn)
{
    if (req->watch_fd >= 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    int fd = ci->connect_fd;
    if (loop_add_fd(req->srv->loop, fd, LOOP_HANGUP, fn, req) == 0)
        req->watch_fd = fd;
}

static void s_watch(http_req_t *req)
{
    if (req->gone_fn)
        s_watch_with(req, s_on_client);
}

/* A streamed reply waiting for its next bytes: the client left. The stream
 * ends (MHD then closes the connection) and its owner is told. */
static void s_on_stream_client(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    http_req_t *req = ud;
    if (!(ev & (LOOP_HANGUP | LOOP_ERROR)))
        return;
    s_unwatch(req);
    http_stream_t *st = req->stream;
    if (!st || st->ended)
        return;
    http_stream_gone_fn gone = st->gone;
    st->gone = NULL;
    http_stream_end(st, true);
    if (gone)
        gone(st->ud);
}

void http_req_watch_gone(http_req_t *req, http_gone_fn fn, void *ud)
{
    req->gone_fn = fn;
    req->gone_ud = ud;
    if (req->suspended)
        s_watch(req);
}

/* ---- the MHD access handler ---- */

/* MHD's URI-log callback: the first sight of a request, with the whole
 * request-target. The request context is born here. */
static void *s_req_new(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_server_t *srv = cls;
    http_req_t *req = xcalloc(1, sizeof *req);
    req->srv = srv;
    req->conn = conn;
    req->uri_len = strlen(uri);
    for (const char *p = uri; (p = strchr(p, '%')); p++)
        if (p[1] == '0' && p[2] == '0')
            req->nul_in_uri = true;
    req->start_ns = now_ns();
    req->watch_fd = -1;
    list_push_front(&srv->live, &req->link);
    return req;
}

static void s_req_free(http_req_t *req)
{
    http_server_t *srv = req->srv;
    list_remove(&req->link);
    if (req->watch_fd >= 0)
        loop_del_fd(srv->loop, req->watch_fd);
    if (req->method) /* counted once its headers were complete */
        srv->in_flight--;
    if (req->resp)
        MHD_destroy_response(req->resp);
    sbuf_free(&req->headers);
    json_decref(req->json);
    sbuf_free(&req->body);
    free(req->err_msg);
    free(req->allow);
    free(req->pathbuf);
    if (req->blocking.done)
        return; /* its job is still with the pool (a forced stop, which leaves
                   without joining the pool): the job reads this memory */
    free(req);
}

static void s_collect_body(http_req_t *req, const char *data, size_t *size)
{
    size_t max = req->srv->cfg.max_body;
    if (!req->err_status && req->body.len + *size > max) {
        s_set_error(req, 413, "payload_too_large",
                    "the request body is larger than %zu bytes", max);
        req->discarded = req->body.len;
        sbuf_free(&req->body);
    }
    if (!req->err_status)
        sbuf_append(&req->body, data, *size);
    else
        req->discarded += *size;
    *size = 0;
}

/* Parses the body of a JSON route; records 400 on failure. */
static void s_parse_json(http_req_t *req)
{
    unsigned flags = req->route->flags;
    if (!(flags & (HTTP_JSON_BODY | HTTP_JSON_OPTIONAL)))
        return;
    if (req->body.len == 0) {
        if (flags & HTTP_JSON_BODY)
            s_set_error(req, 400, "missing_body",
                        "this request needs a JSON object body");
        return;
    }
    json_error_t e;
    req->json = json_loadb(req->body.data, req->body.len, 0, &e);
    if (!req->json)
        s_set_error(req, 400, "invalid_json",
                    "the request body is not valid JSON: %s (line %d, column %d)",
                    e.text, e.line, e.column);
    else if (!json_is_object(req->json))
        s_set_error(req, 400, "invalid_json", "the request body must be a JSON object");
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    http_server_t *srv = cls;
    http_req_t *req = *con_cls;
    VP_ASSERT(req != NULL); /* made by s_req_new */
    if (!req->method) {
        /* Headers complete: from now on the request is in flight (a client
         * stalled in its headers does not hold up a drain). */
        req->method = method;
        req->url = url;
        req->version = version;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        req->track = ci ? ci->socket_context : NULL;
        if (req->track)
            req->track->busy = true;
        srv->in_flight++;
        srv->last_request_ms = loop_now_ms(srv->loop);
        s_check_request(srv, req);
        if (req->framing_error) {
            /* Answered before the body, libmicrohttpd closes the connection
             * after the reply: nothing after it is read as a request. */
            req->handled = true;
            s_reply_error_str(req, req->err_status, req->err_code, req->err_msg);
            return MHD_YES;
        }
        const char *cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        long n;
        /* Digits beyond a long are too large too. */
        bool huge = cl && cl[0] && strspn(cl, "0123456789") == strlen(cl) &&
                    parse_long(cl, 0, LONG_MAX, &n) < 0;
        if (cl && (huge || (parse_long(cl, 0, LONG_MAX, &n) == 0 &&
                            (size_t)n > srv->cfg.max_body))) {
            /* Refuse now rather than read a body we will not keep: this
             * closes the connection, which is what a client sending too
             * much should expect. A request already refused (404, 415, …)
             * gets that answer, as early. */
            req->handled = true;
            if (req->err_status)
                s_reply_error_str(req, req->err_status, req->err_code, req->err_msg);
            else
                http_reply_error(req, 413, "payload_too_large",
                                 "the request body is larger than %zu bytes",
                                 srv->cfg.max_body);
            return MHD_YES;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* A chunked body has no length to refuse up front. Its 413 comes
         * once it ends; a client still sending 1 MiB past the limit is
         * dropped instead. */
        if (req->discarded > srv->cfg.max_body + HTTP_DISCARD_MAX)
            return MHD_NO;
        s_collect_body(req, upload_data, upload_data_size);
        return MHD_YES;
    }
    if (req->resp) { /* resumed with a reply, or replied within the handler */
        s_queue(req);
        return MHD_YES;
    }
    if (req->handled)
        return MHD_YES; /* still waiting (spurious call) */
    req->handled = true;
    if (!req->err_status)
        s_parse_json(req);
    if (req->err_status) {
        if (req->allow)
            http_req_add_header(req, "Allow", req->allow);
        s_reply_error_str(req, req->err_status, req->err_code, req->err_msg);
    } else {
        req->route->fn(req, req->route->ud);
    }
    if (req->resp) {
        s_queue(req);
    } else if (!req->replied) {
        req->suspended = true;
        MHD_suspend_connection(conn);
        s_watch(req);
    }
    return MHD_YES;
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    UNUSED(conn);
    http_server_t *srv = cls;
    http_req_t *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    if (req->track && req->status != 101) {
        req->track->busy = false; /* keep-alive: waits for the next one */
        req->track->since_ms = loop_now_ms(srv->loop);
    }
    if (req->stream) {
        http_stream_t *st = req->stream;
        st->req = NULL;
        req->stream = NULL;
        if (!st->ended && st->gone)
            st->gone(st->ud);
    }
    if (req->replied) {
        route_t *r = req->route ? req->route : &srv->unmatched;
        double secs = (double)(now_ns() - req->start_ns) / 1e9;
        metric_inc(s_status_series(srv, r, req->status), 1);
        metric_observe(r->latency, secs);
        srv->completed++;
        if (srv->cfg.access_log)
            log_info("%s %s %u %.3fms%s", req->method, req->url, req->status,
                     secs * 1e3,
                     toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
    }
    s_req_free(req);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    UNUSED(cls);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    while (b.len && (b.data[b.len - 1] == '\n'))
        b.data[--b.len] = '\0';
    log_debug("libmicrohttpd: %s", b.data);
    sbuf_free(&b);
}

/* ---- the header deadline ---- */

/* libmicrohttpd's timeout counts idle time only: a client sending a header
 * byte every few seconds would hold its connection for ever, and a few
 * thousand of them every connection slot. Every connection must deliver a
 * request's headers within request_timeout of connecting or of its last
 * reply; a sweep each second shuts down the late ones (libmicrohttpd then
 * reads the end of stream and closes them). */
static void s_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    http_server_t *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_track_t *t = xcalloc(1, sizeof *t);
        t->fd = ci ? ci->connect_fd : -1;
        t->since_ms = loop_now_ms(srv->loop);
        list_push_front(&srv->conns, &t->link);
        *socket_context = t;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_track_t *t = *socket_context;
        list_remove(&t->link);
        free(t);
        *socket_context = NULL;
    }
}

static void s_sweep(loop_t *loop, loop_timer_t *timer, void *ud)
{
    UNUSED(timer);
    http_server_t *srv = ud;
    uint64_t now = loop_now_ms(loop), limit = (uint64_t)srv->cfg.request_timeout * 1000;
    list_for_each(it, &srv->conns) {
        conn_track_t *t = list_item(it, conn_track_t, link);
        if (!t->busy && t->fd >= 0 && now - t->since_ms > limit) {
            log_debug("closing a connection that sent no complete request in %u s",
                      srv->cfg.request_timeout);
            shutdown(t->fd, SHUT_RDWR);
            t->busy = true; /* once */
            srv->dirty = true;
        }
    }
}

/* ---- loop integration ---- */

static void s_run(http_server_t *srv)
{
    srv->dirty = false;
    MHD_run(srv->daemon);
}

static void s_on_mhd(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    UNUSED(ev);
    s_run(ud);
}

static int64_t s_before_sleep(loop_t *loop, void *ud)
{
    UNUSED(loop);
    http_server_t *srv = ud;
    if (!srv->daemon)
        return -1;
    if (srv->dirty)
        s_run(srv);
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(srv->daemon, &t) != MHD_YES)
        return -1;
    if (t == 0)
        srv->dirty = true; /* buffered work: run again right after the poll */
    return (int64_t)t;
}

static void s_accept_resume(loop_t *loop, loop_timer_t *t, void *ud);

static void s_accept_resume_later(http_server_t *srv, uint64_t ms)
{
    if (!srv->draining && !srv->accept_retry)
        srv->accept_retry = loop_add_timer(srv->loop, ms, 0, s_accept_resume, srv);
}

static void s_pause_accepting(http_server_t *srv, uint64_t ms)
{
    if (!srv->accepting)
        return;
    loop_del_fd(srv->loop, srv->listen_fd);
    srv->accepting = false;
    s_accept_resume_later(srv, ms);
}

static void s_on_listen(loop_t *loop, int fd, unsigned ev, void *ud);

static void s_accept_resume(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    http_server_t *srv = ud;
    srv->accept_retry = NULL;
    if (srv->draining || srv->accepting)
        return;
    if (loop_add_fd(loop, srv->listen_fd, LOOP_READ | LOOP_EXCLUSIVE, s_on_listen,
                    srv) == 0)
        srv->accepting = true;
}

/* EPOLLEXCLUSIVE wakes the first idle waiter in the listening socket's
 * wait queue, so without help one worker takes most connections (measured:
 * 1.8 to 1 with two workers) and its clients see the tail latency.
 * Re-registering after a batch moves our entry to the end of that queue:
 * idle workers take turns. */
static void s_rotate_accept(http_server_t *srv)
{
    if (!srv->accepting)
        return;
    loop_del_fd(srv->loop, srv->listen_fd);
    if (loop_add_fd(srv->loop, srv->listen_fd, LOOP_READ | LOOP_EXCLUSIVE, s_on_listen,
                    srv) < 0) {
        srv->accepting = false;
        s_accept_resume_later(srv, 10);
    }
}

static void s_on_listen(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(ev);
    http_server_t *srv = ud;
    int accepted = 0;
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (info && info->num_connections >= srv->cfg.max_connections) {
            /* Leave the rest in the backlog (siblings may take them). */
            s_pause_accepting(srv, 50);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                break;
            log_err(errno, "accept4(%d)", fd);
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM)
                s_pause_accepting(srv, 100);
            return;
        }
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
            int one = 1;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (MHD_add_connection(srv->daemon, c, (struct sockaddr *)&ss, sl) != MHD_YES)
            log_warn_errno(errno, "MHD_add_connection refused a connection");
        srv->dirty = true;
        accepted++;
    }
    if (accepted)
        s_rotate_accept(srv);
}

http_server_t *http_server_new(loop_t *loop, metrics_t *metrics,
                               const http_config_t *cfg)
{
    http_server_t *srv = xcalloc(1, sizeof *srv);
    srv->loop = loop;
    srv->metrics = metrics;
    srv->cfg = *cfg;
    srv->service = xstrdup(cfg->service ? cfg->service : "vapora");
    srv->cfg.service = srv->service;
    srv->listen_fd = -1;
    srv->mhd_epfd = -1;
    list_init(&srv->live);
    list_init(&srv->conns);
    srv->req_total = metrics_family(metrics, "vapora_http_requests_total",
                                    "HTTP requests completed, by route and status.",
                                    METRIC_COUNTER, NULL, 0);
    srv->latency =
        metrics_family(metrics, "vapora_http_request_duration_seconds",
                       "Time from the request's headers to its completion.",
                       METRIC_HISTOGRAM, s_latency_bounds, ARRAY_LEN(s_latency_bounds));
    srv->unmatched.pattern = xstrdup("unmatched");
    loop_add_before_sleep(loop, s_before_sleep, srv);
    return srv;
}

/* libmicrohttpd's per-connection memory holds the request line, the
 * headers and the I/O buffers, and is zeroed for every request: keep it as
 * small as our limits allow (16 KiB by default), so that a request within
 * max_url + max_header always reaches our checks and their JSON errors. */
static size_t s_conn_memory(const http_config_t *c)
{
    /* Headers and URL are read into the first half; the rest holds the
     * response headers and write buffer. A service with small limits (the
     * LLM router, which holds thousands of streams) gets small pools. */
    size_t need = c->max_url + c->max_header + 4096;
    return need < 8192 ? 8192 : (need + 1023) & ~(size_t)1023;
}

int http_server_start(http_server_t *srv, int listen_fd)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        s_route_metrics(srv, &srv->routes[i]);
    s_route_metrics(srv, &srv->unmatched);
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_UPGRADE | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, s_access, srv, MHD_OPTION_NOTIFY_COMPLETED, s_completed,
        srv, MHD_OPTION_URI_LOG_CALLBACK, s_req_new, srv, MHD_OPTION_NOTIFY_CONNECTION,
        s_notify_conn, srv, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->cfg.max_connections + 16, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->cfg.request_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        s_conn_memory(&srv->cfg), MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, srv,
        MHD_OPTION_END);
    if (!srv->daemon)
        return -EIO;
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info)
        return -EIO;
    srv->mhd_epfd = info->epoll_fd;
    int rc = loop_add_fd(srv->loop, srv->mhd_epfd, LOOP_READ, s_on_mhd, srv);
    if (rc < 0)
        return rc;
    srv->listen_fd = listen_fd;
    rc =
        loop_add_fd(srv->loop, listen_fd, LOOP_READ | LOOP_EXCLUSIVE, s_on_listen, srv);
    if (rc < 0)
        return rc;
    srv->accepting = true;
    srv->sweep = loop_add_timer(srv->loop, 1000, 1000, s_sweep, srv);
    return 0;
}

void http_server_drain(http_server_t *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    if (srv->accepting) {
        loop_del_fd(srv->loop, srv->listen_fd);
        srv->accepting = false;
    }
    loop_cancel_timer(srv->loop, &srv->accept_retry);
}

unsigned http_server_in_flight(const http_server_t *srv)
{
    return srv->in_flight;
}

uint64_t http_server_last_request_ms(const http_server_t *srv)
{
    return srv->last_request_ms;
}

uint64_t http_server_requests(const http_server_t *srv)
{
    return srv->completed;
}

static void s_route_free(route_t *r)
{
    for (unsigned i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->method);
    free(r->pattern);
}

void http_server_destroy(http_server_t **srvp)
{
    http_server_t *srv = srvp ? *srvp : NULL;
    if (!srv)
        return;
    http_server_drain(srv);
    if (srv->daemon) {
        /* MHD aborts when stopped with a suspended connection. */
        list_for_each(it, &srv->live) {
            http_req_t *r = list_item(it, http_req_t, link);
            if (r->stream)
                http_stream_end(r->stream, true);
            else if (r->suspended)
                http_reply_error(r, 503, "shutting_down",
                                 "the server is shutting down");
        }
        MHD_run(srv->daemon);
        loop_del_fd(srv->loop, srv->mhd_epfd);
        MHD_stop_daemon(srv->daemon);
    }
    loop_cancel_timer(srv->loop, &srv->sweep);
    for (size_t i = 0; i < srv->nroutes; i++)
        s_route_free(&srv->routes[i]);
    free(srv->routes);
    s_route_free(&srv->unmatched);
    free(srv->service);
    free(srv);
    *srvp = NULL;
}

/* ---- accessors ---- */

const char *http_req_method(const http_req_t *req)
{
    return req->method;
}

const char *http_req_path(const http_req_t *req)
{
    return req->url;
}

const char *http_req_param(const http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < req->nparams; i++) {
        const char *p = req->pnames[i];
        if (strncmp(p + 1, name, n) == 0 && p[n + 1] == '}' && p[n + 2] == '\0')
            return req->pvals[i];
    }
    return NULL;
}

const char *http_req_query(const http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(const http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_body(const http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.len ? req->body.data : NULL;
}

void http_req_drop_body(http_req_t *req)
{
    sbuf_free(&req->body);
    json_decref(req->json);
    req->json = NULL;
}

json_t *http_req_json(const http_req_t *req)
{
    return req->json;
}
