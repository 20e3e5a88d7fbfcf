/* http.c - the server's lifecycle and libmicrohttpd's callbacks: a request
 * from its first sight (s_req_new) through the access handler (s_access)
 * to its completion (s_completed), the daemon's place on our loop, and the
 * request metrics. See http.h for the design, http_internal.h for the
 * other files of the layer. */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "http_internal.h"
#include "log.h"

static const double s_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                          1,      2.5,     5,      10};

void http_config_defaults(http_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->service = "vapora";
    cfg->max_body = 1024 * 1024;
    cfg->max_url = 4096;
    cfg->max_header = 8192;
    cfg->max_connections = 4096;
    cfg->request_timeout = 30;
    cfg->body_timeout = 60;
    cfg->max_connections_per_ip = 256;
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

/* Counts a request that got a reply, and logs it when asked to. */
static void s_account(http_server_t *srv, http_req_t *req,
                      enum MHD_RequestTerminationCode toe)
{
    route_t *r = req->route ? req->route : &srv->unmatched;
    double secs = (double)(loop_now_ns(srv->loop) - req->start_ns) / 1e9;
    metric_inc(s_status_series(srv, r, req->status), 1);
    metric_observe(r->latency, secs);
    srv->completed++;
    if (srv->cfg.access_log)
        log_info("%s %s %u %.3fms%s", req->method, req->url, req->status, secs * 1e3,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
}

/* ---- a request's life in libmicrohttpd's callbacks ---- */

/* MHD's URI-log callback: the first sight of a request, with the whole
 * request-target. The request context is born here. */
/* Finished requests kept for the next ones: a request's context is larger
 * than malloc's per-thread cache takes, and calloc'ing it cost ~800
 * instructions a request (callgrind). Not under ASan, which should see
 * every use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define HTTP_SPARE_REQS 0
#else
#define HTTP_SPARE_REQS 256
#endif

static http_req_t *s_req_alloc(http_server_t *srv)
{
    list_t *n = list_pop_front(&srv->spare);
    if (!n)
        return xcalloc(1, sizeof(http_req_t));
    http_req_t *req = list_item(n, http_req_t, link);
    srv->nspare--;
    memset(req, 0, sizeof *req);
    return req;
}

static void s_req_release(http_server_t *srv, http_req_t *req)
{
    if (srv->nspare + 1 > HTTP_SPARE_REQS) {
        free(req);
        return;
    }
    list_push_front(&srv->spare, &req->link);
    srv->nspare++;
}

static void *s_req_new(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_server_t *srv = cls;
    http_req_t *req = s_req_alloc(srv);
    req->srv = srv;
    req->conn = conn;
    req->uri_raw = uri;
    req->bad_target = !http__strict_target(uri, &req->uri_len);
    for (const char *p = uri; (p = strchr(p, '%')); p++)
        if (p[1] == '0' && p[2] == '0')
            req->nul_in_uri = true;
    /* The loop's clock, as nginx's $request_time: exact to one loop
     * iteration, and no clock_gettime (~30 ns here) twice a request. */
    req->start_ns = loop_now_ns(srv->loop);
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
    if (req->resp && !req->resp_shared)
        MHD_destroy_response(req->resp);
    http__upgrade_end(req);
    sbuf_free(&req->headers);
    json_decref(req->json);
    sbuf_free(&req->body);
    free(req->err_msg);
    free(req->allow);
    free(req->pathbuf);
    if (req->blocking.done)
        return; /* its job is still with the pool (a forced stop, which leaves
                   without joining the pool): the job reads this memory */
    s_req_release(srv, req);
}

/* Answers the error recorded on req (http__set_error). */
static void s_reply_recorded(http_req_t *req)
{
    http__reply_error_str(req, req->err_status, req->err_code, req->err_msg);
}

/* The access handler's first call: the headers are complete. Requests that
 * cannot be read safely, or whose Content-Length is over the limit, are
 * answered now, before their body; the connection is then closed, and
 * lingers so that a client still sending reads the answer. */
static void s_headers_arrived(http_server_t *srv, http_req_t *req, const char *url,
                              const char *method, const char *version)
{
    /* From now on the request is in flight (a client stalled in its
     * headers does not hold up a drain). */
    req->method = method;
    req->url = url;
    req->version = version;
    http__conn_request_started(req);
    srv->in_flight++;
    srv->last_request_ms = loop_now_ms(srv->loop);
    http__check_request(srv, req, method, version);
    if (req->framing_error) {
        /* Answered before the body, libmicrohttpd closes the connection
         * after the reply: nothing after it is read as a request. */
        req->handled = true;
        s_reply_recorded(req);
        http__conn_linger(req, NULL, 0);
    } else if (http__length_over_limit(srv, req)) {
        /* Refuse now rather than read a body we will not keep. A request
         * already refused (404, 415, …) gets that answer, as early. */
        req->handled = true;
        if (req->err_status)
            s_reply_recorded(req);
        else
            http_reply_error(req, 413, "payload_too_large",
                             "the request body is larger than %zu bytes",
                             srv->cfg.max_body);
        http__conn_linger(req, NULL, 0);
    }
}

/* A body goes past the limit (a chunked one: no length to refuse it by).
 * libmicrohttpd cannot send a reply before the body ends: we let it drop
 * the connection and write the recorded answer on the socket ourselves,
 * in its lingering close. */
static enum MHD_Result s_body_refused(http_req_t *req)
{
    size_t len;
    char *bytes =
        http__error_bytes(req, req->err_status, req->err_code, req->err_msg, &len);
    req->handled = true;
    http__conn_linger(req, bytes, len);
    return MHD_NO;
}

/* The request is complete: its recorded error or its handler answers.
 * Without a reply yet, the connection is suspended until one comes. */
static void s_handle(http_req_t *req)
{
    req->handled = true;
    http__conn_request_complete(req);
    if (!req->err_status)
        http__parse_json(req);
    if (req->err_status) {
        if (req->allow)
            http_req_add_header(req, "Allow", req->allow);
        s_reply_recorded(req);
    } else {
        req->route->fn(req, req->route->ud);
    }
    if (req->resp) {
        http__queue(req);
    } else if (!req->replied) {
        req->suspended = true;
        MHD_suspend_connection(req->conn);
        http__watch(req);
    }
}

/* MHD's access handler: (1) the headers arrived, (2) each piece of body,
 * (3) the request is complete, and again after each resume. A response
 * queued in call (1) closes the keep-alive connection: only the refusals
 * made before the body (s_headers_arrived) want that. */
static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    UNUSED(conn);
    http_server_t *srv = cls;
    http_req_t *req = *con_cls;
    VP_ASSERT(req != NULL); /* made by s_req_new */
    if (!req->method) {
        s_headers_arrived(srv, req, url, method, version);
        return MHD_YES;
    }
    if (*upload_data_size) {
        http__conn_body_arrived(req);
        return http__collect_body(req, upload_data, upload_data_size)
                   ? MHD_YES
                   : s_body_refused(req);
    }
    if (req->resp) { /* resumed with a reply, replied within the handler,
                       or refused by MHD in its previous call */
        http__queue(req);
        return MHD_YES;
    }
    if (!req->handled) /* otherwise still waiting (a spurious call) */
        s_handle(req);
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
    http__conn_request_done(req, toe);
    http__stream_detach(req);
    if (req->replied)
        s_account(srv, req, toe);
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

/* ---- the daemon on our loop ---- */

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
    list_init(&srv->lingering);
    list_init(&srv->spare);
    srv->peers = http__peers_new();
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

static struct MHD_Daemon *s_start_daemon(http_server_t *srv)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_UPGRADE | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, s_access, srv, MHD_OPTION_NOTIFY_COMPLETED, s_completed,
        srv, MHD_OPTION_URI_LOG_CALLBACK, s_req_new, srv, MHD_OPTION_NOTIFY_CONNECTION,
        http__conn_notify, srv, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->cfg.max_connections + 16, MHD_OPTION_CONNECTION_TIMEOUT,
        0u /* ours: http_conn.c */, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        s_conn_memory(&srv->cfg), MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, srv,
        MHD_OPTION_END);
}

int http_server_start(http_server_t *srv, int listen_fd)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        s_route_metrics(srv, &srv->routes[i]);
    s_route_metrics(srv, &srv->unmatched);
    srv->daemon = s_start_daemon(srv);
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
    return http__conn_start(srv, listen_fd);
}

void http_server_drain(http_server_t *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    http__conn_stop_accepting(srv);
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

/* Answers every request still waiting (MHD aborts when stopped with a
 * suspended connection), then stops the daemon. */
static void s_stop_daemon(http_server_t *srv)
{
    srv->stopping = true;
    list_for_each(it, &srv->live) {
        http_req_t *r = list_item(it, http_req_t, link);
        if (r->stream)
            http_stream_end(r->stream, true);
        else if (r->suspended)
            http_reply_error(r, 503, "shutting_down", "the server is shutting down");
    }
    MHD_run(srv->daemon);
    loop_del_fd(srv->loop, srv->mhd_epfd);
    MHD_stop_daemon(srv->daemon);
}

void http_server_destroy(http_server_t **srvp)
{
    http_server_t *srv = srvp ? *srvp : NULL;
    if (!srv)
        return;
    http_server_drain(srv);
    if (srv->daemon)
        s_stop_daemon(srv);
    http__conn_stop(srv);
    for (list_t *n; (n = list_pop_front(&srv->spare));)
        free(list_item(n, http_req_t, link));
    http__peers_destroy(&srv->peers);
    for (size_t i = 0; i < srv->nroutes; i++)
        http__route_free(&srv->routes[i]);
    free(srv->routes);
    http__route_free(&srv->unmatched);
    free(srv->service);
    free(srv);
    *srvp = NULL;
}
