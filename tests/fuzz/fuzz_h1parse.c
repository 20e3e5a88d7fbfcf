/* fuzz_h1parse.c - a peer's answer to an HTTP/1.1 request
 * (common/h1parse.c), as the router's builtin client reads a provider's.
 * The first byte cuts the rest in two (at its value, modulo the length);
 * the answer is parsed whole and in those two pieces, and both give the
 * same outcome and status, and a complete answer the same body and bytes
 * taken: how TCP cuts an answer changes nothing. The body bound holds, and the
 * connection's end after an unfinished answer never reads as a complete one unless the
 * answer is delimited by it. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "h1parse.h"

#define MAX_BODY 4096

typedef struct run {
    h1parse_rc_t rc;
    size_t used;
    int status;
    sbuf_t body;
} run_t;

static run_t s_parse(const char *d, size_t n, size_t cut)
{
    run_t r = {.rc = H1P_MORE};
    h1parse_t p = {0};
    h1parse_init(&p, MAX_BODY, false);
    size_t used = 0;
    r.rc = h1parse_feed(&p, d, cut, &r.body, &used);
    r.used = used;
    if (r.rc == H1P_MORE && cut < n) {
        r.rc = h1parse_feed(&p, d + cut, n - cut, &r.body, &used);
        r.used += used;
    }
    FZ_CHECK(r.rc != H1P_MORE || r.used == n, "MORE yet %zu of %zu taken", r.used, n);
    FZ_CHECK(p.body_len == r.body.len && r.body.len <= MAX_BODY, "body %zu",
             r.body.len);
    if (r.rc == H1P_MORE) {
        r.rc = h1parse_eof(&p);
        FZ_CHECK(r.rc != H1P_DONE || !p.keep_alive, "ended by EOF yet kept alive");
    }
    r.status = p.status;
    h1parse_free(&p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *d = (const char *)data + 1;
    size_t n = size - 1, cut = n ? data[0] % (n + 1) : 0;
    run_t a = s_parse(d, n, n), b = s_parse(d, n, cut);
    FZ_CHECK(a.rc == b.rc && a.status == b.status,
             "whole: rc %d status %d; cut at %zu: rc %d status %d", a.rc, a.status, cut,
             b.rc, b.status);
    /* a failed answer's bytes are thrown away: how far it got may differ */
    bool whole = a.rc == H1P_DONE;
    FZ_CHECK(!whole || (a.used == b.used && a.body.len == b.body.len &&
                        (a.body.len == 0 ||
                         memcmp(a.body.data, b.body.data, a.body.len) == 0)),
             "whole: %zu taken, body %zu; cut at %zu: %zu taken, body %zu", a.used,
             a.body.len, cut, b.used, b.body.len);
    sbuf_free(&a.body);
    sbuf_free(&b.body);
    return 0;
}
