/* http_internal.h - what the files of the HTTP layer share, and nothing a
 * user of http.h may touch: the server, request, route and stream
 * structures, and the http__ functions one file offers the others.
 *
 * DESIGN. One concern per file (as h2o's lib/core does):
 *   http.c         the server's lifecycle and libmicrohttpd's callbacks
 *                  (a request from its first sight to its completion)
 *   http_conn.c    connections: our accept4 on the shared listening socket
 *                  (EPOLLEXCLUSIVE, MHD_add_connection), the per-address
 *                  limit, the header and body deadlines, and the hand-over
 *                  of a closing socket to the lingering close
 *   http_peers.c   connections counted per client address
 *   http_linger.c  the lingering close (answer, FIN, drop input, close)
 *   http_check.c   what is checked before a handler runs: limits, framing,
 *                  media type, and the body (collected, parsed as JSON)
 *   http_strict.c  RFC 9112's rules for the request head, as received
 *   http_route.c   the route table: patterns, matching, 404 / 405 + Allow
 *   http_req.c     request accessors, and the error recorded on a request
 *   http_reply.c   replies, error bodies, upgrades, replies deferred to the pool
 *   http_stream.c  streamed (chunked) replies
 *   http_watch.c   noticing a client that leaves while its request waits
 * Calls go one way (no two files call each other): http.c uses the others
 * but http_req.c and http_linger.c; http_check.c uses http_strict.c,
 * http_route.c and http_req.c; http_route.c uses http_req.c; http_stream.c
 * uses http_reply.c and http_watch.c; http_reply.c uses http_req.c and
 * http_watch.c; http_conn.c uses http_linger.c and http_peers.c;
 * http_linger.c uses http_peers.c; http_strict.c, http_peers.c, http_req.c
 * and http_watch.c use none.
 *
 * Everything here runs on the loop thread, except s_blocking_work in
 * http_reply.c (a pool thread), which reads only req->blocking. */
#ifndef VAPORA_HTTP_INTERNAL_H
#define VAPORA_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "loadshare.h"
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

/* Where a connection stands, for its deadline (http_conn.c). */
typedef enum conn_phase {
    CONN_HEAD,     /* waiting for a request's headers: request_timeout */
    CONN_BODY,     /* headers in, the body still coming: body_timeout, and
                      request_timeout without a byte */
    CONN_BUSY,     /* the request is complete: its handler and reply; a
                      reply not taken for request_timeout */
    CONN_UPGRADED, /* a WebSocket now: no deadline of ours */
} conn_phase_t;

/* The per-address counts (http_peers.c). */
typedef struct http_peers http_peers_t;

/* A connection from its accept to its close (http_conn.c). */
typedef struct conn_track {
    int fd;
    conn_phase_t phase;
    uint64_t since_ms; /* the phase's deadline counts from here; CONN_BUSY:
                          when the reply was last seen moving */
    uint64_t body_ms;  /* CONN_BODY: when body bytes last came */
    uint64_t acked;    /* CONN_BUSY: reply bytes the client had acknowledged */
    bool cut;          /* shut down at a deadline: closes without lingering */
    bool linger;       /* ended by the server with input perhaps unread */
    bool has_peer;     /* peer is counted in http_server.peers */
    uint64_t peer;     /* its client's address (http__peer_key) */
    char *last_words;  /* a whole reply written at its close, or NULL */
    size_t last_len;
    list_t link; /* http_server.conns */
} conn_track_t;

struct http_req {
    http_server_t *srv;
    struct upgrade *upgrade; /* http_reply_upgrade's, until the request ends */
    struct MHD_Connection *conn;
    const char *method; /* NULL until the access handler's first call */
    const char *url;
    const char *version; /* "HTTP/1.1" */
    const char *uri_raw; /* the request-target in MHD's buffer, as received */
    size_t uri_len;      /* the full request-target, query string included */
    bool bad_target;     /* a space or a control character in it */
    bool nul_in_uri;     /* %00 in it: decoded, it would cut the path short */
    bool framing_error;  /* where its body ends is unclear: answer, then close */
    /* The first Content-Length and Transfer-Encoding values (NULL: none),
     * from the walk over the headers (http_check.c). */
    const char *content_length;
    const char *coding;
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
    bool resp_shared; /* resp is an http_shared_t's: not ours to destroy */
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
    list_t live;     /* every request from its first sight to its completion */
    list_t spare;    /* finished requests kept for reuse (http.c) */
    unsigned nspare;
    http_error_fn error_fn;
    void *error_ud;
    list_t conns; /* every open connection (conn_track_t) */
    loop_timer_t *sweep;
    http_peers_t *peers;   /* connections per client address */
    conn_track_t *adding;  /* the connection MHD_add_connection is taking */
    bool stopping;         /* the daemon is stopping: close, never linger */
    list_t lingering;      /* sockets in their lingering close (http_linger.c) */
    unsigned nlinger;
    uint64_t refused;      /* connections refused at the per-address limit */
    uint64_t refused_logged_ms;
    unsigned nconns;        /* open connections (those in conns) */
    loadshare_t *share;   /* the siblings' connection counts, or NULL */
    bool share_owed;        /* took a turn off: takes the next connection */
    uint64_t shed_next_ms;  /* no connection given back before (monotonic) */
    uint64_t shed_wait_ms;  /* the wait set after the last one given back */
    unsigned shed_over;     /* connections over the margin then (0: none) */
};

/* ---- http_conn.c: accepting, and the deadlines ---- */

/* Starts accepting on listen_fd (registered EPOLLEXCLUSIVE) and the
 * once-a-second sweep of the deadlines. Returns 0 or -errno. */
int http__conn_start(http_server_t *srv, int listen_fd);
/* Stops accepting for good (a drain). */
void http__conn_stop_accepting(http_server_t *srv);

/* Whether the reply being queued should close its connection, so that its
 * client comes back through accept to a sibling holding far fewer
 * (loadshare_shed_excess); at most one per HTTP_SHED_MS, backing off to
 * one per HTTP_SHED_MAX_MS while that does not narrow the gap. */
bool http__conn_shed(http_server_t *srv);
/* Stops the sweep (the server is being destroyed). */
void http__conn_stop(http_server_t *srv);
/* MHD_OPTION_NOTIFY_CONNECTION: tracks each connection from open to close. */
void http__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
/* req's headers are complete: its connection is on the body deadline. */
void http__conn_request_started(http_req_t *req);
/* Body bytes of req arrived: its connection is not idle. */
void http__conn_body_arrived(http_req_t *req);
/* req's body is complete: its connection is off the deadlines, but for a
 * reply its client stops taking. */
void http__conn_request_complete(http_req_t *req);
/* req is over (toe: how): its keep-alive connection waits for the next
 * headers, on the deadline again (not after an upgrade). One that did not
 * end with our reply lingers when it closes. */
void http__conn_request_done(http_req_t *req, enum MHD_RequestTerminationCode toe);
/* req's connection will be closed by the server while its client may
 * still be sending: it gets a lingering close. last_words, when non-NULL,
 * is a whole reply (taken, malloc'd) written first, for a request that
 * libmicrohttpd drops without one (http.c returns MHD_NO for it). */
void http__conn_linger(http_req_t *req, char *last_words, size_t len);

/* ---- http_peers.c: connections per client address ---- */

http_peers_t *http__peers_new(void);
void http__peers_destroy(http_peers_t **tp);
/* The key of sa's address (IPv4, or an IPv6 /64); false when it has none
 * (a Unix socket). */
bool http__peer_key(const struct sockaddr *sa, uint64_t *key);
/* Counts one more connection of key, unless it holds limit already
 * (returns false then). */
bool http__peer_take(http_peers_t *t, uint64_t key, unsigned limit);
/* Counts one connection of key less. */
void http__peer_release(http_peers_t *t, uint64_t key);
/* Connections key holds; addresses holding any. */
unsigned http__peer_count(const http_peers_t *t, uint64_t key);
size_t http__peers_used(const http_peers_t *t);

/* ---- http_linger.c: the lingering close ---- */

/* Takes fd (a socket no one else will read or close): sends out (taken,
 * malloc'd; may be NULL), shuts down its sending side, drops what still
 * comes for a bounded time and amount, then closes it and releases *peer
 * (when non-NULL) from srv->peers. */
void http__linger(http_server_t *srv, int fd, char *out, size_t out_len,
                  const uint64_t *peer);
/* Closes the sockets whose time is up (all of them when all). */
void http__linger_sweep(http_server_t *srv, bool all);

/* ---- http_strict.c: RFC 9112's rules for the head ---- */

/* A walk over a request's head as libmicrohttpd received it. */
typedef struct http_strict {
    const char *p;       /* where the next piece must start */
    const char *end;     /* the end of the head */
    const char *version; /* "HTTP/1.1" */
    const char *why;     /* the first failure */
    unsigned hosts;      /* Host headers seen */
} http_strict_t;

/* Whether a request-target as received is free of spaces and control
 * characters (called from MHD's URI-log callback); *len gets its length
 * (up to its NUL). */
bool http__strict_target(const char *uri, size_t *len);
/* Starts the walk over req's head (method and version as the access
 * handler got them) with its request line. */
void http__strict_begin(http_strict_t *w, const http_req_t *req, const char *method,
                        const char *version);
/* The next header (MHD_HEADER_KIND, in order: MHD_get_connection_values).
 * Returns the length of its name. */
size_t http__strict_field(http_strict_t *w, const char *key, const char *value);
/* Ends the walk: NULL when the head is sound, else why not. */
const char *http__strict_end(http_strict_t *w);

/* ---- http_check.c: checks before the handler, and the body ---- */

/* The checks done when the headers arrive (the head's syntax, URL length,
 * %00, header size, framing, route, media type): records the first failure
 * on req. method and version are the access handler's. */
void http__check_request(http_server_t *srv, http_req_t *req, const char *method,
                         const char *version);
/* Whether req's Content-Length is over max_body (digits beyond a long
 * count as over). After http__check_request, which read it. */
bool http__length_over_limit(const http_server_t *srv, const http_req_t *req);
/* Takes *size bytes of body (sets *size to 0) up to max_body. Returns
 * false, with 413 recorded, once the body goes past it: the request is
 * then answered and its connection closed (http.c). */
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
 * while draining or when http__conn_shed says so) and drops our reference.
 * When libmicrohttpd refuses it in this call (see http_reply.c), it stays
 * in req->resp and the access handler's next call queues it. */
void http__queue(http_req_t *req);
/* Adds the headers http_req_add_header collected to req->resp. */
void http__add_headers(http_req_t *req);
/* Resumes a suspended request (MHD then calls the access handler again). */
void http__resume(http_req_t *req);
/* Hands a reply just built in req->resp over: resumes a suspended request,
 * queues it when the handler has returned, or leaves it for the access
 * handler to queue when the handler returns. */
void http__send(http_req_t *req);
/* The request ends: an upgrade it answered that never happened (its client
 * left before the 101) is told so (fn with fd -1), and freed. */
void http__upgrade_end(http_req_t *req);
/* Replies with an error body (http_error_fn's or ours) for msg. */
void http__reply_error_str(http_req_t *req, unsigned status, const char *code,
                           const char *msg);
/* The whole error reply to req (status line, headers, the body
 * http__reply_error_str would send), to be written on its socket by hand
 * once libmicrohttpd has let go of it; *len gets its size. req counts as
 * replied. The caller frees the result. */
char *http__error_bytes(http_req_t *req, unsigned status, const char *code,
                        const char *msg, size_t *len);

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
