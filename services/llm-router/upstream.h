/* upstream.h - one exchange with a provider: the rendered request POSTed
 * with the provider's fixed headers (its key, its API version) and
 * timeouts, and what comes back: the status, Retry-After, and either the
 * whole body or, for a stream answered 200, its canonical events as they
 * arrive (wire_parser). What the call does with the outcome (retry, fall
 * back, reply) is call.c's.
 *
 * DESIGN. A whole answer from a provider at a plain http:// numeric
 * address, with no proxy in the environment, goes through the builtin
 * client (h1c.h): curl's own work there cost more than the exchange. Its
 * failures are told as the nearest CURLcode (call.c words them). All
 * else (https, names, proxies, streams) goes on curl's multi interface
 * (curlm.h). Easy handles are kept for reuse (creating one costs a dozen
 * allocations per request) and each provider's header list is built once.
 * An exchange (upstream_xfer_t) lives inside its owner, the call; the
 * owner hears of it through three callbacks, all on the loop thread:
 * on_event and on_fed while a stream arrives (inside curl's write
 * callback: no curl call from them), on_done once it is over.
 *
 * Backpressure: when on_fed says the caller is full, the next piece is
 * refused with CURL_WRITEFUNC_PAUSE (curl keeps it and stops reading the
 * socket, so the provider's own sending stalls on TCP); the owner calls
 * upstream_resume, from the loop and outside any library's callback, once
 * the caller has taken what was waiting. Loop thread only. */
#ifndef VAPORA_ROUTER_UPSTREAM_H
#define VAPORA_ROUTER_UPSTREAM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "curlm.h"
#include "loop.h"
#include "sbuf.h"
#include "wire.h"

typedef struct upstream upstream_t;

/* For the providers of cfg, on loop and m (all borrowed; they must outlive
 * the result). The caller owns the result. */
upstream_t *upstream_new(const rt_config_t *cfg, loop_t *loop, curlm_t *m);
/* Frees the handles kept for reuse and the header lists; every exchange
 * must be over. NULL is fine; sets *up to NULL. */
void upstream_destroy(upstream_t **up);

/* One request to a provider. */
typedef struct upstream_req {
    const rt_provider_t *provider; /* one of cfg's */
    const char *path;              /* appended to the provider's base_url */
    const char *body;              /* read in place until the exchange ends */
    size_t len;
    /* A stream: its events go to on_event, and the provider's timeout bounds
     * its silences (the owner's timer, from last_data_ms), not its whole. */
    bool stream;
    wire_ev_fn on_event; /* each canonical event of a stream answered 200 */
    /* After the events of each piece of such a stream; < 0 stops the
     * transfer (it ends with CURLE_WRITE_ERROR); > 0: the caller is full,
     * the transfer pauses before the next piece until upstream_resume. */
    int (*on_fed)(void *ud);
    /* Once the exchange is over (never after upstream_abort): result is
     * CURLE_OK or why the transfer failed. */
    void (*on_done)(void *ud, CURLcode result);
    void *ud; /* for the three */
} upstream_req_t;

/* An exchange; the owner embeds it and zeroes it once. Read-only for the
 * owner; valid from upstream_start until the next one. */
typedef struct upstream_xfer {
    upstream_t *up;
    upstream_req_t req;
    CURL *easy;             /* while curl's transfer runs */
    struct h1c_req *direct; /* while the builtin client's runs (h1c.h) */
    sbuf_t head;            /* the builtin client's request head */
    long status;            /* HTTP status; 0 while none came */
    double retry_after;     /* seconds, from Retry-After; 0: none */
    sbuf_t body;            /* a whole answer (or a stream's error answer) */
    wire_parser_t *parser;  /* a stream's */
    bool malformed;         /* the stream did not parse (or the body was too big) */
    bool pause_wanted;      /* on_fed said the caller is full */
    bool paused;            /* curl holds a piece until upstream_resume */
    uint64_t last_data_ms;  /* loop_now_ms of the latest event of a stream (bytes
                             * that make none, keep-alive comments, do not
                             * count), of the latest bytes otherwise, or the start */
    uint64_t start_ns;      /* now_ns() at the start */
} upstream_xfer_t;

/* Starts the exchange r (copied; r->body borrowed) in x. 0, or -EINVAL
 * when curl refuses it or the builtin client cannot take it (then nothing
 * runs and on_done never comes); a provider that cannot be reached is told
 * through on_done, as CURLE_COULDNT_CONNECT. */
int upstream_start(upstream_t *u, upstream_xfer_t *x, const upstream_req_t *r);
/* Takes a paused stream up again (the piece curl held comes first, maybe
 * before this returns). From the loop, never inside a curl or
 * libmicrohttpd callback. No-op when not paused. */
void upstream_resume(upstream_t *u, upstream_xfer_t *x);
/* Stops a running exchange at the top of the loop; on_done never comes. */
void upstream_abort(upstream_t *u, upstream_xfer_t *x);
/* Releases what the exchange held (its handle, for reuse; its parser); the
 * body's buffer is kept for the next one. After on_done or an abort. */
void upstream_end(upstream_t *u, upstream_xfer_t *x);
/* Frees the body's buffer too (the owner's end). */
void upstream_xfer_free(upstream_t *u, upstream_xfer_t *x);

#endif
