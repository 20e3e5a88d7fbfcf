/* http_internal.h - what the files of the HTTP layer share, and nothing a
 * user of http.h may touch: the server, request, route and stream
 * structures, and the http__ functions one file offers the others.
 *
 * DESIGN. One concern per file (as h2o's lib/core does):
 *   http.c         the server's lifecycle and libmicrohttpd's callbacks
 *                  (a request from its first sight to its completion)
 *   http_conn.c    connections: our accept4 on the shared listening socket
 *                  (EPOLLEXCLUSIVE, MHD_add_connection) and the header deadline
 *   http_check.c   what is checked before a handler runs: limits, framing,
 *                  media type, and the body (collected, parsed as JSON)
 *   http_route.c   the route table: patterns, matching, 404 / 405 + Allow
 *   http_req.c     request accessors, and the error recorded on a request
 *   http_reply.c   replies, error bodies, upgrades, replies deferred to the pool
 *   http_stream.c  streamed (chunked) replies
 *   http_watch.c   noticing a client that leaves while its request waits
 * Calls go one way (no two files call each other): http.c uses the others
 * but http_req.c; http_check.c uses http_route.c and http_req.c;
 * http_route.c uses http_req.c; http_stream.c uses http_reply.c and
 * http_watch.c; http_reply.c uses http_req.c and http_watch.c; http_conn.c,
 * http_req.c and http_watch.c use none.
 *
 * Everything here runs on the loop thread, except s_blocking_work in
 * http_reply.c (a pool thread), which reads only req->blocking. */
#ifndef VAPORA_HTTP_INTERNAL_H
#define VAPORA_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "http.h"
#include "list.h"
#include "sbuf.h"

#define HTTP_MAX_SEGS 16     /* segments of a route pattern */
#define HTTP_MAX_PARAMS 8    /* {params} a request can match */
#define HTTP_STATUS_CACHE 12 /* request counters cached per route, by status */

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

/* A connection as the header deadline sees it (http_conn.c). */
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
    void (*left_fn)(http_req_t *req); /* http__watch_with's, while watched */
    list_t link;                      /* http_server.live, for shutdown */
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

/* ---- http_conn.c: accepting, and the header deadline ---- */

/* Starts accepting on listen_fd (registered EPOLLEXCLUSIVE) and the
 * once-a-second header-deadline sweep. Returns 0 or -errno. */
int http__conn_start(http_server_t *srv, int listen_fd);
/* Stops accepting for good (a drain). */
void http__conn_stop_accepting(http_server_t *srv);
/* Stops the sweep (the server is being destroyed). */
void http__conn_stop(http_server_t *srv);
/* MHD_OPTION_NOTIFY_CONNECTION: tracks each connection from open to close. */
void http__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
/* req's headers are complete: its connection is off the deadline. */
void http__conn_request_started(http_req_t *req);
/* req is over: its keep-alive connection waits for the next headers, on
 * the deadline again (not after an upgrade). */
void http__conn_request_done(http_req_t *req);

/* ---- http_check.c: checks before the handler, and the body ---- */

/* The checks done when the headers arrive (URL length, %00, header size,
 * framing, route, media type): records the first failure on req. */
void http__check_request(http_server_t *srv, http_req_t *req);
/* Whether req's Content-Length is over max_body (digits beyond a long
 * count as over). */
bool http__length_over_limit(const http_server_t *srv, const http_req_t *req);
/* Takes *size bytes of body (sets *size to 0); records 413 past max_body
 * and counts what it drops. Returns false when the client keeps sending
 * far past the limit and should be dropped. */
bool http__collect_body(http_req_t *req, const char *data, size_t *size);
/* Parses the body of a JSON route; records 400 on failure. */
void http__parse_json(http_req_t *req);

/* ---- http_route.c: the route table ---- */

/* Finds the route of req->method and req->url: sets req->route and the
 * params, or records 404, or 405 with req->allow. */
void http__route_request(http_server_t *srv, http_req_t *req);
/* Frees what http_route allocated for r (not r itself). */
void http__route_free(route_t *r);

/* ---- http_req.c ---- */

/* Records a request-level error, replied once the request is complete;
 * the first one recorded wins. */
void http__set_error(http_req_t *req, unsigned status, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- http_reply.c ---- */

/* Queues req->resp on the connection (adds Date, and Connection: close
 * while draining) and drops our reference. When libmicrohttpd refuses it
 * in this call (see http_reply.c), it stays in req->resp and the access
 * handler's next call queues it. */
void http__queue(http_req_t *req);
/* Adds the headers http_req_add_header collected to req->resp. */
void http__add_headers(http_req_t *req);
/* Resumes a suspended request (MHD then calls the access handler again). */
void http__resume(http_req_t *req);
/* Hands a reply just built in req->resp over: resumes a suspended request,
 * queues it when the handler has returned, or leaves it for the access
 * handler to queue when the handler returns. */
void http__send(http_req_t *req);
/* Replies with an error body (http_error_fn's or ours) for msg. */
void http__reply_error_str(http_req_t *req, unsigned status, const char *code,
                           const char *msg);

/* ---- http_stream.c ---- */

/* The request of a streamed reply ends: the stream loses it, and its owner
 * is told (gone) unless the stream had ended. */
void http__stream_detach(http_req_t *req);

/* ---- http_watch.c: the client-gone watch ---- */

/* Watches a suspended request's socket: once the client leaves, the watch
 * ends and fn(req) runs. */
void http__watch_with(http_req_t *req, void (*fn)(http_req_t *req));
/* Watches for http_req_watch_gone's callback, if one was asked for. */
void http__watch(http_req_t *req);
/* Stops watching (the request gets its reply or resumes). */
void http__unwatch(http_req_t *req);

#endif
