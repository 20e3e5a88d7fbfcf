/* h1parse.h - the answer to an HTTP/1.1 request, parsed as its bytes
 * arrive (RFC 9112): the status line, the headers a client acts on, and the
 * body, delimited by Content-Length, by chunks or by the connection's end.
 * 1xx interim answers are skipped.
 *
 * Strict where leniency lets a peer be read two ways: a header folded over
 * lines, whitespace before a colon, a Content-Length that is not digits or
 * differs from another, a Transfer-Encoding other than "chunked", or both
 * Transfer-Encoding and Content-Length, are all malformed. Heads, chunk
 * lines and trailers are bounded (H1PARSE_MAX_HEAD). No allocation beyond
 * the parser's line buffer and the caller's body buffer. */
#ifndef VAPORA_H1PARSE_H
#define VAPORA_H1PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

#define H1PARSE_MAX_HEAD (16u << 10) /* a head, a chunk line, the trailers */

typedef enum h1parse_rc {
    H1P_MORE = 0,  /* all taken; the answer goes on */
    H1P_DONE,      /* the answer is complete */
    H1P_MALFORMED, /* not a valid answer */
    H1P_TOO_BIG,   /* the body passed max_body */
} h1parse_rc_t;

typedef struct h1parse {
    int state;
    int status;         /* of the final answer; 0 until its head is read */
    double retry_after; /* Retry-After in seconds (delay form); 0: none */
    bool keep_alive;    /* the connection may carry another request */
    bool any;           /* some byte of an answer came */
    bool no_body;       /* the answer has none, whatever its headers say */
    int64_t length;     /* Content-Length; -1: none */
    bool chunked;
    uint64_t remaining; /* of the body, or of the current chunk */
    size_t max_body;
    size_t body_len;
    bool in_head;      /* its status line is read, the blank line not yet */
    int head_status;   /* of the head being read */
    size_t head_bytes; /* of its heads so far, then of its trailers */
    sbuf_t line;       /* a line of a head, a chunk-size line or a trailer */
} h1parse_t;

/* Ready for the answer to a request (a HEAD request's answer has no body:
 * no_body). max_body 0: no bound. */
void h1parse_init(h1parse_t *p, size_t max_body, bool no_body);
/* Frees the line buffer. */
void h1parse_free(h1parse_t *p);

/* Takes up to n bytes; body bytes are appended to out. *used is how many
 * were taken: all of them on H1P_MORE; on H1P_DONE what follows is not this
 * answer's; on a failure the rest is left unread. A 204 or 304 that says
 * it has a body leaves keep_alive false (its bytes may still come). */
h1parse_rc_t h1parse_feed(h1parse_t *p, const char *data, size_t n, sbuf_t *out,
                          size_t *used);
/* The connection ended: H1P_DONE when that ends a body delimited by it,
 * else H1P_MALFORMED (or H1P_MORE when no byte came at all: the caller
 * decides what an empty answer means). */
h1parse_rc_t h1parse_eof(h1parse_t *p);

#endif
