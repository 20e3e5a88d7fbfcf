/* h1parse.c - the answer to an HTTP/1.1 request, parsed as it arrives. See
 * h1parse.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1parse.h"
#include "parse.h"

enum {
    S_HEAD,
    S_LEN,
    S_CLOSE,
    S_CHUNK_LINE,
    S_CHUNK_DATA,
    S_CHUNK_END,
    S_TRAILERS,
    S_DONE
};

#define MAX_LENGTH ((int64_t)1 << 53)

void h1parse_init(h1parse_t *p, size_t max_body, bool no_body)
{
    sbuf_t line = p->line;
    memset(p, 0, sizeof *p);
    p->line = line;
    sbuf_reset(&p->line);
    p->max_body = max_body;
    p->no_body = no_body;
    p->length = -1;
    p->state = S_HEAD;
}

void h1parse_free(h1parse_t *p)
{
    sbuf_free(&p->line);
}

/* ---- lines ---- */

/* Appends bytes to p->line up to and including the first '\n' of data.
 * Returns how many were taken; *ended says whether a '\n' was among them.
 * -1 when the line buffer would pass its bound. */
static long s_take_line(h1parse_t *p, const char *data, size_t n, bool *ended)
{
    const char *nl = memchr(data, '\n', n);
    size_t k = nl ? (size_t)(nl - data) + 1 : n;
    if (p->line.len + k > H1PARSE_MAX_HEAD)
        return -1;
    sbuf_append(&p->line, data, k);
    *ended = nl != NULL;
    return (long)k;
}

/* The line in p->line without its end: its length, or -1 when a bare CR
 * is in it. */
static long s_line(const h1parse_t *p)
{
    const char *b = p->line.data;
    size_t n = p->line.len - 1; /* without its '\n' */
    if (n && b[n - 1] == '\r')
        n--;
    return memchr(b, '\r', n) ? -1 : (long)n;
}

/* ---- the head ---- */

static bool s_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A field value's byte: visible, obs-text, space or tab. */
static bool s_vchar(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Whether the comma-separated list v (n bytes) holds token tok. */
static bool s_has_token(const char *v, size_t n, const char *tok)
{
    size_t t = strlen(tok);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - s == t && strncasecmp(v + s, tok, t) == 0)
            return true;
    }
    return false;
}

/* Digits only, at most 2^53; -1 otherwise. */
static int64_t s_digits(const char *v, size_t n)
{
    if (n == 0 || n > 16)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x <= MAX_LENGTH ? x : -1;
}

/* One header the client acts on (name n bytes, value v trimmed). 0, or -1
 * when it makes the answer malformed. */
static int s_field(h1parse_t *p, const char *name, size_t nl, const char *v, size_t n)
{
    if (nl == 14 && strncasecmp(name, "content-length", 14) == 0) {
        int64_t len = s_digits(v, n);
        if (len < 0 || (p->length >= 0 && p->length != len))
            return -1;
        p->length = len;
    } else if (nl == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
        if (p->chunked || n != 7 || strncasecmp(v, "chunked", 7) != 0)
            return -1;
        p->chunked = true;
    } else if (nl == 10 && strncasecmp(name, "connection", 10) == 0) {
        if (s_has_token(v, n, "close"))
            p->keep_alive = false;
    } else if (nl == 11 && strncasecmp(name, "retry-after", 11) == 0) {
        int64_t secs = s_digits(v, n);
        if (secs >= 0)
            p->retry_after = (double)secs;
    }
    return 0;
}

/* One header line (s, n bytes, no line end). 0 or -1. */
static int s_header_line(h1parse_t *p, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ':') /* also a folded line, or space before ':' */
        return -1;
    size_t nl = i++;
    for (size_t k = i; k < n; k++)
        if (!s_vchar((unsigned char)s[k]))
            return -1;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return s_field(p, s, nl, s + i, n - i);
}

/* "HTTP/1.x DDD[ reason]": the status, or -1. Sets keep_alive by version. */
static int s_status_line(h1parse_t *p, const char *s, size_t n)
{
    if (n < 12 || strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != ' ' || (n > 12 && s[12] != ' '))
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        st = st * 10 + (s[i] - '0');
    }
    for (size_t k = 12; k < n; k++)
        if (!s_vchar((unsigned char)s[k]))
            return -1;
    p->keep_alive = s[7] == '1';
    return st >= 100 ? st : -1;
}

/* One line of a head (n bytes, its end stripped), checked as it comes: a
 * peer that is not HTTP fails at its first line, not at a timeout. */
static h1parse_rc_t s_head_line(h1parse_t *p, size_t n)
{
    const char *l = p->line.data;
    if (!p->in_head) {
        if (n == 0)
            return H1P_MORE; /* a stray line end before a head */
        int st = s_status_line(p, l, n);
        if (st < 0)
            return H1P_MALFORMED;
        p->in_head = true;
        p->head_status = st;
        p->length = -1;
        p->chunked = false;
        p->retry_after = 0;
        return H1P_MORE;
    }
    if (n)
        return s_header_line(p, l, n) < 0 ? H1P_MALFORMED : H1P_MORE;
    if (p->chunked && p->length >= 0)
        return H1P_MALFORMED;
    p->in_head = false; /* the blank line: the head is whole */
    p->head_bytes = 0;
    p->status = p->head_status;
    return H1P_DONE;
}

/* After a head: what the body is. */
static h1parse_rc_t s_after_head(h1parse_t *p)
{
    sbuf_reset(&p->line);
    if (p->status < 200) { /* interim: the final answer follows */
        if (p->status == 101)
            return H1P_MALFORMED; /* nobody asked to switch protocols */
        p->status = 0;
        return H1P_MORE;
    }
    if (p->no_body || p->status == 204 || p->status == 304) {
        if (p->length > 0 || p->chunked) /* a body may follow all the same */
            p->keep_alive = false;
        p->state = S_DONE;
        return H1P_DONE;
    }
    if (p->max_body && p->length > 0 && (uint64_t)p->length > p->max_body)
        return H1P_TOO_BIG; /* said at once, not after reading it */
    if (p->chunked) {
        p->state = S_CHUNK_LINE;
    } else if (p->length >= 0) {
        p->remaining = (uint64_t)p->length;
        p->state = p->length ? S_LEN : S_DONE;
    } else {
        p->state = S_CLOSE; /* the connection's end ends it */
        p->keep_alive = false;
    }
    return p->state == S_DONE ? H1P_DONE : H1P_MORE;
}

static h1parse_rc_t s_head(h1parse_t *p, const char *d, size_t n, size_t *k)
{
    bool ended;
    long t = s_take_line(p, d, n, &ended);
    if (t < 0 || (p->head_bytes += (size_t)t) > H1PARSE_MAX_HEAD)
        return H1P_MALFORMED; /* stray line ends and interim heads count too */
    *k = (size_t)t;
    if (!ended)
        return H1P_MORE;
    long len = s_line(p);
    h1parse_rc_t rc = len < 0 ? H1P_MALFORMED : s_head_line(p, (size_t)len);
    sbuf_reset(&p->line);
    return rc == H1P_DONE ? s_after_head(p) : rc;
}

/* ---- the body ---- */

static h1parse_rc_t s_body(h1parse_t *p, const char *d, size_t n, sbuf_t *out,
                           size_t *k)
{
    size_t take = n;
    if (p->state != S_CLOSE && take > p->remaining)
        take = (size_t)p->remaining;
    if (p->max_body && p->body_len + take > p->max_body)
        return H1P_TOO_BIG;
    sbuf_append(out, d, take);
    p->body_len += take;
    *k = take;
    if (p->state == S_CLOSE)
        return H1P_MORE;
    p->remaining -= take;
    if (p->remaining)
        return H1P_MORE;
    p->state = p->state == S_LEN ? S_DONE : S_CHUNK_END;
    return p->state == S_DONE ? H1P_DONE : H1P_MORE;
}

/* "HEX[;ext]" in p->line (n bytes without its end): the chunk's size, or
 * -1. */
static int64_t s_chunk_size(const h1parse_t *p, size_t n)
{
    const char *s = p->line.data;
    size_t i = 0;
    int64_t x = 0;
    for (; i < n && i < 14; i++) {
        int v = parse_hex_digit((unsigned char)s[i]);
        if (v < 0)
            break;
        x = x * 16 + v;
    }
    size_t digits = i;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) /* BWS before an extension */
        i++;
    if (digits == 0 || (i < n && s[i] != ';'))
        return -1;
    for (size_t k = i; k < n; k++)
        if (!s_vchar((unsigned char)s[k]))
            return -1;
    return x;
}

/* A chunk-size line, the line end after a chunk's data, or a trailer line. */
static h1parse_rc_t s_chunk_line(h1parse_t *p, const char *d, size_t n, size_t *k)
{
    bool ended;
    long t = s_take_line(p, d, n, &ended);
    /* trailers are bounded together, as a head is */
    if (t < 0 ||
        (p->state == S_TRAILERS && (p->head_bytes += (size_t)t) > H1PARSE_MAX_HEAD))
        return H1P_MALFORMED;
    *k = (size_t)t;
    if (!ended)
        return H1P_MORE;
    long len = s_line(p);
    h1parse_rc_t rc = H1P_MORE;
    if (p->state == S_CHUNK_END) {
        if (len != 0)
            return H1P_MALFORMED;
        p->state = S_CHUNK_LINE;
    } else if (p->state == S_TRAILERS) {
        if (len == 0) { /* the blank line; a trailer before it is ignored */
            p->state = S_DONE;
            rc = H1P_DONE;
        }
    } else {
        int64_t size = len < 0 ? -1 : s_chunk_size(p, (size_t)len);
        if (size < 0)
            return H1P_MALFORMED;
        p->remaining = (uint64_t)size;
        p->state = size ? S_CHUNK_DATA : S_TRAILERS;
    }
    sbuf_reset(&p->line);
    return rc;
}

h1parse_rc_t h1parse_feed(h1parse_t *p, const char *data, size_t n, sbuf_t *out,
                          size_t *used)
{
    size_t pos = 0;
    h1parse_rc_t rc = p->state == S_DONE ? H1P_DONE : H1P_MORE;
    if (n)
        p->any = true;
    while (pos < n && rc == H1P_MORE) {
        size_t k = 0;
        switch (p->state) {
        case S_HEAD: rc = s_head(p, data + pos, n - pos, &k); break;
        case S_LEN:
        case S_CLOSE:
        case S_CHUNK_DATA: rc = s_body(p, data + pos, n - pos, out, &k); break;
        default: rc = s_chunk_line(p, data + pos, n - pos, &k); break;
        }
        pos += k;
    }
    *used = pos;
    return rc;
}

h1parse_rc_t h1parse_eof(h1parse_t *p)
{
    if (p->state == S_CLOSE || p->state == S_DONE) {
        p->state = S_DONE;
        return H1P_DONE;
    }
    return p->any ? H1P_MALFORMED : H1P_MORE;
}
