/* http.h - the HTTP layer of a worker: libmicrohttpd in external-epoll mode,
 * driven from our loop, with routing, JSON in and out, limits and metrics.
 *
 * DESIGN. MHD runs with MHD_USE_EPOLL and no thread of its own; its epoll fd
 * sits in our loop and MHD_run() is called after each of its wake-ups and
 * from a before-sleep hook whenever MHD has buffered work (timeout 0), a
 * connection was resumed, or one was added. We accept connections ourselves
 * (MHD_USE_NO_LISTEN_SOCKET) on a listening fd registered EPOLLEXCLUSIVE, so
 * worker processes sharing one socket do not all wake per connection.
 *
 * A request is routed when its headers arrive; the body is collected (up to
 * max_body) and the handler runs once the request is complete, so the
 * response never has to close a keep-alive connection (it does while
 * draining, and to give a connection back to a sibling: see
 * http_server_share_accepts). A handler either replies at once or returns
 * without replying: the connection is then suspended until
 * http_reply*() is called later on the loop thread (typically from a pool
 * job's done() callback; see http_req_run_blocking).
 *
 * Errors are JSON: {"error":{"code":"snake_case","message":"sentence"}}.
 * Every call here is loop-thread only. The implementation is split by
 * concern (http.c, http_conn.c, http_check.c, http_route.c, http_req.c,
 * http_reply.c, http_stream.c, http_watch.c): see http_internal.h. */
#ifndef VAPORA_HTTP_H
#define VAPORA_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"
#include "metrics.h"
#include "pool.h"

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

typedef void (*http_handler_fn)(http_req_t *req, void *ud);

typedef struct http_config {
    const char *service;      /* the `service` label of the metrics */
    size_t max_body;          /* bytes; larger bodies get 413 */
    size_t max_url;           /* bytes; longer URLs get 414 */
    size_t max_header;        /* bytes of all header lines; more gets 431 */
    unsigned max_connections; /* more wait in the listen backlog */
    unsigned max_connections_per_ip; /* per client address (IPv6: per /64);
                                        0: no limit */
    unsigned request_timeout; /* seconds a connection may stall or idle, and
                                 to send a request's headers */
    unsigned body_timeout;    /* seconds to send a request's body, from its
                                 headers; 0: no limit */
    bool access_log;          /* one log line per request at info level */
} http_config_t;

/* Fills cfg with the defaults: 1 MiB body, 4 KiB URL, 8 KiB headers, 4096
 * connections, 256 per client address, 30 s timeout, 60 s for a body, no
 * access log. */
void http_config_defaults(http_config_t *cfg);

/* Route flags. */
enum {
    /* The route takes a JSON object body: 415 unless Content-Type is
     * application/json, 400 `missing_body` when absent, 400 `invalid_json`
     * when malformed or not an object. http_req_json() returns it. */
    HTTP_JSON_BODY = 1u << 0,
    /* As HTTP_JSON_BODY, but an empty body is allowed (json is then NULL). */
    HTTP_JSON_OPTIONAL = 1u << 1,
};

/* Creates a server (not yet accepting). metrics and loop are borrowed and
 * must outlive it. NULL on failure. */
http_server_t *http_server_new(loop_t *loop, metrics_t *metrics,
                               const http_config_t *cfg);
/* Replies 503 to suspended requests, closes every connection and frees the
 * server. The listening fd is not closed. Accepts NULL; sets *srvp = NULL. */
void http_server_destroy(http_server_t **srvp);

/* Adds a route. method is "GET", "POST", ...; pattern is a path whose
 * segments are literals or {name} ("/api/v1/tasks/{id}"). The pattern is
 * also the `route` label of the metrics. GET routes answer HEAD too.
 * Returns 0 or -EINVAL on a malformed pattern. */
int http_route(http_server_t *srv, const char *method, const char *pattern,
               unsigned flags, http_handler_fn fn, void *ud);

/* Starts accepting on listen_fd (a bound, listening, non-blocking socket the
 * caller keeps owning). Returns 0 or -errno. */
int http_server_start(http_server_t *srv, int listen_fd);
/* Keeps this server's count of connections even with the other processes
 * accepting from the same socket that share path (loadshare.h): one
 * holding more leaves the next connection to a sibling holding fewer for a
 * moment, and one holding far more closes a connection after its reply
 * (Connection: close; never a shared reply, a stream or an upgrade) for
 * its client to connect again. Returns 0 or -errno (the file cannot be
 * mapped; the server then accepts as before). */
int http_server_share_accepts(http_server_t *srv, const char *path);
/* Stops accepting (the caller may then close the listening fd); later
 * responses carry `Connection: close`. */
void http_server_drain(http_server_t *srv);
/* Requests received but not yet completed. */
unsigned http_server_in_flight(const http_server_t *srv);
/* When (loop_now_ms) the latest request's headers arrived; 0: none yet. */
uint64_t http_server_last_request_ms(const http_server_t *srv);
/* Requests completed since start. */
uint64_t http_server_requests(const http_server_t *srv);

/* ---- request accessors (valid until the reply is sent) ---- */
const char *http_req_method(const http_req_t *req);
const char *http_req_path(const http_req_t *req);
/* The value of a {name} segment of the matched pattern, or NULL. */
const char *http_req_param(const http_req_t *req, const char *name);
/* A query-string argument, or NULL. */
const char *http_req_query(const http_req_t *req, const char *name);
/* A request header (case-insensitive name), or NULL. */
const char *http_req_header(const http_req_t *req, const char *name);
/* The client's address (the peer of the request's connection: AF_INET or
 * AF_INET6), or NULL when it is not known. Valid until the reply. */
const struct sockaddr *http_req_peer(const http_req_t *req);
/* The raw body (NUL-terminated, *len bytes; NULL when empty). */
const char *http_req_body(const http_req_t *req, size_t *len);
/* The parsed body of HTTP_JSON_* routes (borrowed), or NULL. */
json_t *http_req_json(const http_req_t *req);
/* Frees the body and its parse early (a long-lived request that no longer
 * needs them); http_req_body and http_req_json return NULL afterwards. */
void http_req_drop_body(http_req_t *req);

/* ---- replying: exactly once per request ---- */
/* Adds a response header (copied); call before the reply. */
void http_req_add_header(http_req_t *req, const char *name, const char *value);
/* Replies with a copy of body. */
void http_reply(http_req_t *req, unsigned status, const char *content_type,
                const void *body, size_t len);
/* Replies with body, a malloc'd buffer the server takes and frees. */
void http_reply_owned(http_req_t *req, unsigned status, const char *content_type,
                      char *body, size_t len);
/* A reply that requests share while its bytes stay the same (GET /health
 * answers thousands of callers a second the same body): one response,
 * built again only when its status, type or body or the second of its Date
 * header change, and queued for every request that gets it, without a copy
 * or an allocation. Owned by its caller; requests still sending it keep
 * what they need after http_shared_destroy. */
typedef struct http_shared http_shared_t;
http_shared_t *http_shared_new(void);
/* Accepts NULL; sets *shp = NULL. */
void http_shared_destroy(http_shared_t **shp);
/* Replies as http_reply(req, status, content_type, body, len) would, through
 * sh. A request with headers of its own (http_req_add_header), one answered
 * after its handler returned, or a server draining, gets its own reply. */
void http_reply_shared(http_req_t *req, http_shared_t *sh, unsigned status,
                       const char *content_type, const void *body, size_t len);
/* Replies with body serialised compactly; takes the reference to body. */
void http_reply_json(http_req_t *req, unsigned status, json_t *body);
/* Replies {"error":{"code":code,"message":<printf>}}. */
void http_reply_error(http_req_t *req, unsigned status, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Upgrades the connection (101 Switching Protocols, with the headers added
 * by http_req_add_header): once the 101 is out, fn(ud, fd, extra,
 * extra_len, urh) runs on the loop thread with the raw socket (not in our
 * loop yet) and the bytes already read past the request. The socket is
 * never close()d by its user: http_upgrade_close(srv, urh) ends it. When
 * the client leaves before its 101 goes out, fn runs once the request ends
 * with fd -1 (extra and urh NULL), so that ud is not lost. */
typedef void (*http_upgrade_fn)(void *ud, int fd, const char *extra, size_t extra_len,
                                void *urh);
/* Whether req's HTTP version allows an upgrade (1.1 or a later 1.x). */
bool http_req_can_upgrade(const http_req_t *req);
/* Returns 0, or -EPROTO when the request cannot be upgraded
 * (!http_req_can_upgrade): it has then been answered 400, and fn will not
 * run. May answer from the handler or from http_req_run_blocking's done. */
int http_reply_upgrade(http_req_t *req, http_upgrade_fn fn, void *ud);
void http_upgrade_close(http_server_t *srv, void *urh);

/* A streamed reply (chunked transfer): the status and headers go out with
 * the first bytes; data is queued with http_stream_write and sent as the
 * client takes it; http_stream_end finishes. gone(ud) runs on the loop
 * thread when the request ends before http_stream_end (the client went
 * away, or the server stopped); the handle is invalid after gone() or
 * after http_stream_end. The stream is owned by the server. */
typedef struct http_stream http_stream_t;
typedef void (*http_stream_gone_fn)(void *ud);
http_stream_t *http_reply_stream(http_req_t *req, unsigned status,
                                 const char *content_type, http_stream_gone_fn gone,
                                 void *ud);
/* Queues a copy of data (no-op after the end). */
void http_stream_write(http_stream_t *st, const void *data, size_t len);
/* Adds a trailer (an HTTP footer after the last chunk); before the end. */
void http_stream_trailer(http_stream_t *st, const char *name, const char *value);
/* Ends the stream once the queued bytes are out; failed = end it abruptly
 * (no terminating chunk, so the client sees a broken transfer). */
void http_stream_end(http_stream_t *st, bool failed);
/* Bytes queued but not yet taken by the connection (for backpressure). */
size_t http_stream_pending(const http_stream_t *st);

/* Formats the body of errors the server produces itself (404, 405, 413,
 * 415, 400 invalid JSON, 503 ...) and of http_reply_error: returns a heap
 * JSON string, or NULL for the default {"error":{"code","message"}}. */
typedef char *(*http_error_fn)(const http_req_t *req, unsigned status, const char *code,
                               const char *message, void *ud);
void http_server_set_error_fn(http_server_t *srv, http_error_fn fn, void *ud);

/* Asks to be told when the client closes its connection while the request
 * waits for its reply (suspended): fn(ud) then runs on the loop thread,
 * once; the request must still be replied to (the reply is dropped). A
 * client that only shuts down its sending side counts as gone. */
typedef void (*http_gone_fn)(void *ud);
void http_req_watch_gone(http_req_t *req, http_gone_fn fn, void *ud);

/* Runs work(arg) on the pool with the request suspended; done(req, arg,
 * status) then runs on the loop thread and must reply. When the queue is
 * full, replies 503 `overloaded` at once and returns -EBUSY (neither
 * function is called; arg stays the caller's). The job lives in the
 * request, so this allocates nothing; one job at a time per request (done
 * may start the next). Destroy the pool before the server: the request
 * must outlive its job. */
typedef void (*http_work_fn)(void *arg);
typedef void (*http_done_fn)(http_req_t *req, void *arg, int status);
int http_req_run_blocking(http_req_t *req, pool_t *pool, http_work_fn work,
                          http_done_fn done, void *arg);

#endif
