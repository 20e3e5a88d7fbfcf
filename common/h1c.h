/* h1c.h - a lean HTTP/1.1 client on a worker's loop, for plain-HTTP peers
 * at a numeric address: one request per connection at a time, connections
 * kept alive and reused, the whole answer collected into the caller's
 * buffer.
 *
 * WHY. For a whole (non-streamed) answer from a peer on the same host or
 * network, curl's multi interface costs more than the exchange itself: two
 * poll()s a request (its liveness check of a reused connection, and a
 * readiness check after sending) and about a sixth of a relaying worker's
 * CPU time in its own code (perf). Here a request on a kept connection is
 * one sendmsg, one epoll wake and one recv. TLS, proxies, name resolution
 * and streaming stay curl's (hclient.h, curlm.h).
 *
 * DESIGN. A request renders nothing: the caller hands the request's head
 * (request line, headers, the blank line) and its body, both borrowed until
 * done() or h1c_abort. The answer is parsed as it arrives: status line,
 * headers (Content-Length, Transfer-Encoding: chunked, Connection,
 * Retry-After), then a body delimited by its length, by chunks, or by the
 * connection's end; 1xx answers are skipped. A malformed answer (h1parse.h)
 * ends the request with H1C_MALFORMED. A connection is reused only after a
 * whole answer to a request sent whole, on HTTP/1.1 without "Connection:
 * close", and with nothing after the answer; else it is closed. A
 * connection kept idle that becomes readable (the peer closed it, or sent
 * what nobody asked) is closed, and so is one idle over idle_ms. A
 * request sent on a kept connection that ends before any byte of an answer
 * is sent once more on a new connection (the peer closed it while it was
 * idle), as curl does.
 *
 * Loop thread only. done() runs on the loop thread from an fd or timer
 * callback, never inside h1c_start, and may start or abort requests. */
#ifndef VAPORA_H1C_H
#define VAPORA_H1C_H

#include <stddef.h>
#include <sys/socket.h>

#include "loop.h"
#include "sbuf.h"

typedef struct h1c h1c_t;
typedef struct h1c_req h1c_req_t;

typedef enum h1c_result {
    H1C_OK = 0,
    H1C_CONNECT,   /* could not connect */
    H1C_TIMEOUT,   /* the connect or the whole request took too long */
    H1C_SEND,      /* the request could not be sent */
    H1C_RECV,      /* the connection failed or ended before the answer did */
    H1C_EMPTY,     /* the peer closed without answering */
    H1C_MALFORMED, /* the answer is not HTTP/1.x as RFC 9112 has it */
    H1C_TOO_BIG,   /* the body passed max_body */
} h1c_result_t;

/* The outcome: status is the answer's status (0 when none came), and
 * retry_after its Retry-After in seconds (delay-seconds form; 0: none).
 * The body is in the caller's buffer (opts.body_out). */
typedef void (*h1c_done_fn)(h1c_result_t res, int status, double retry_after, void *ud);

typedef struct h1c_opts {
    const struct sockaddr *addr; /* the peer (copied) */
    socklen_t addrlen;
    const char *head; /* "POST /p HTTP/1.1\r\n...\r\n\r\n"; borrowed */
    size_t head_len;
    const char *body; /* borrowed; may be NULL */
    size_t body_len;
    sbuf_t *body_out;        /* the answer's body is appended here */
    size_t max_body;         /* 0: 16 MiB */
    long timeout_ms;         /* the whole request; 0: none */
    long connect_timeout_ms; /* 0: 10000 */
} h1c_opts_t;

/* A client on loop (borrowed) keeping at most max_idle connections for
 * reuse, each for at most idle_ms: a NAT or firewall on the way may drop
 * an idle one without a word, and a request sent on it would wait out its
 * whole timeout (curl keeps them 118 s). NULL on allocation failure. */
h1c_t *h1c_new(loop_t *loop, unsigned max_idle, unsigned idle_ms);
/* Closes every connection; every request must be over or aborted. NULL is
 * fine; sets *hp to NULL. */
void h1c_destroy(h1c_t **hp);

/* Starts a request; done(…, ud) follows exactly once unless it is
 * aborted, a failure to connect included (even one known at once: an
 * unreachable network, no port or fd left). Returns the request, or NULL
 * with errno EINVAL when the options are wrong (then done never comes). */
h1c_req_t *h1c_start(h1c_t *h, const h1c_opts_t *o, h1c_done_fn done, void *ud);
/* Ends a request early: its connection is closed, done never comes. NULL
 * is fine; sets *rp to NULL. */
void h1c_abort(h1c_t *h, h1c_req_t **rp);

/* Connections open now (busy and idle), for tests and stats. */
unsigned h1c_open(const h1c_t *h);
/* Requests that went out on a kept connection, for tests and stats. */
unsigned long h1c_reused(const h1c_t *h);

#endif
