/* http_strict.c - RFC 9112's rules for a request's head, which
 * libmicrohttpd 0.9.75 does not enforce: a header line that a proxy in
 * front could read differently is refused (400), so no request can hide
 * inside another (request smuggling).
 *
 * DESIGN. libmicrohttpd parses the head in place in its read buffer: it
 * writes a NUL over each line's CR and LF (a bare LF alone), over the
 * space after the method and before the version, and over each header's
 * colon, skips the spaces after it, and then hands out pointers into that
 * buffer. It also reads strings only up to a NUL, so a NUL the client sent
 * silently cuts a target or a value short, and it joins an obs-fold line
 * onto the header's name in a new place. The head it parsed spans
 * [method, method + MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE). We walk that
 * span with the pointers MHD handed out, in order: each piece must start
 * exactly where the previous one ended plus MHD's own separators. Any
 * byte MHD hid from us (a NUL, a fold) leaves a gap and fails the walk; a
 * change of libmicrohttpd's layout would fail it for every request, which
 * the tests see at once. The walk over the headers is http_check.c's, which
 * looks at each header for its own checks too (one pass per request). Alongside: names must be tokens (a space before
 * the colon is not, and made `Content-Length : 34` go unseen as a length),
 * values free of control characters, and an HTTP/1.1 request needs exactly
 * one Host (RFC 9112, 3.2). One thing the walk cannot tell: a NUL sent just
 * before a line's LF reads as the CR of a CRLF; nothing after it is hidden.
 * See http_internal.h for the layer's files. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

/* Byte classes, one lookup per byte (this runs for every request). */
enum {
    C_TOKEN = 1u << 0,  /* tchar (RFC 9110, 5.6.2) */
    C_VALUE = 1u << 1,  /* field-vchar, obs-text, SP, HTAB */
    C_HOST = 1u << 2,   /* reg-name, IPv4 or IP-literal, ':' port (RFC 3986) */
    C_TARGET = 1u << 3, /* anything but a space or a control character */
};

#define S_ALNUM (C_TOKEN | C_VALUE | C_HOST | C_TARGET)

static const uint8_t s_class[256] = {
    ['\t'] = C_VALUE,
    [' '] = C_VALUE,
    ['!'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['"'] = C_VALUE | C_TARGET,
    ['#'] = C_TOKEN | C_VALUE | C_TARGET,
    ['$'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['%'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['&'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['\''] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['('] = C_VALUE | C_HOST | C_TARGET,
    [')'] = C_VALUE | C_HOST | C_TARGET,
    ['*'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['+'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    [','] = C_VALUE | C_HOST | C_TARGET,
    ['-'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['.'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['/'] = C_VALUE | C_TARGET,
    ['0' ... '9'] = S_ALNUM,
    [':'] = C_VALUE | C_HOST | C_TARGET,
    [';'] = C_VALUE | C_HOST | C_TARGET,
    ['<'] = C_VALUE | C_TARGET,
    ['='] = C_VALUE | C_HOST | C_TARGET,
    ['>' ... '@'] = C_VALUE | C_TARGET,
    ['A' ... 'Z'] = S_ALNUM,
    ['['] = C_VALUE | C_HOST | C_TARGET,
    ['\\'] = C_VALUE | C_TARGET,
    [']'] = C_VALUE | C_HOST | C_TARGET,
    ['^'] = C_TOKEN | C_VALUE | C_TARGET,
    ['_'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    ['`'] = C_TOKEN | C_VALUE | C_TARGET,
    ['a' ... 'z'] = S_ALNUM,
    ['{'] = C_VALUE | C_TARGET,
    ['|'] = C_TOKEN | C_VALUE | C_TARGET,
    ['}'] = C_VALUE | C_TARGET,
    ['~'] = C_TOKEN | C_VALUE | C_HOST | C_TARGET,
    [0x80 ... 0xff] = C_VALUE | C_TARGET,
};

/* Whether every byte of s (up to its NUL) is of class c; *len gets its
 * length. */
static bool s_all(const char *s, unsigned c, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s;
    while (s_class[*p] & c)
        p++;
    *len = (size_t)(p - (const unsigned char *)s);
    return *p == '\0';
}

bool http__strict_target(const char *uri, size_t *len)
{
    if (s_all(uri, C_TARGET, len))
        return true;
    *len += strlen(uri + *len);
    return false;
}

/* p is at the NUL MHD wrote over a line's CR (CRLF) or LF (bare LF): the
 * next line starts after one or both. */
static const char *s_next_line(const char *p, const char *end)
{
    return p + 1 < end && p[1] == '\0' ? p + 2 : p + 1;
}

static const char s_fold[] = "a header line is folded (obs-fold) or holds a NUL byte";

/* The request line: method, spaces, the target as received (req->uri_raw,
 * req->uri_len bytes), the version. Sets w->p to the first header line.
 * The target's bytes are not looked at here: MHD has percent-decoded them
 * in place by now (http__strict_target saw them as received). */
static void s_request_line(http_strict_t *w, const http_req_t *req,
                           const char *method, const char *version)
{
    size_t mlen;
    bool token = s_all(method, C_TOKEN, &mlen);
    const char *q = method + mlen + 1;
    while (q < req->uri_raw && *q == ' ')
        q++;
    if (q != req->uri_raw || version != req->uri_raw + req->uri_len + 1 ||
        strlen(version) != 8 || version + 8 >= w->end)
        w->why = "the request line holds a NUL byte";
    else if (!token || !mlen)
        w->why = "the request method is not a token";
    else
        w->p = s_next_line(version + 8, w->end);
}

void http__strict_begin(http_strict_t *w, const http_req_t *req, const char *method,
                        const char *version)
{
    *w = (http_strict_t){.version = version};
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (!ci || !req->uri_raw) {
        w->why = "the request head could not be read";
        return;
    }
    w->end = method + ci->header_size;
    s_request_line(w, req, method, version);
}

size_t http__strict_field(http_strict_t *w, const char *key, const char *value)
{
    size_t klen, vlen;
    bool token = s_all(key, C_TOKEN, &klen);
    if (w->why)
        return klen;
    if (key != w->p || !value) {
        w->why = s_fold;
        return klen;
    }
    const char *q = key + klen + 1; /* past the colon */
    while (q < value && (*q == ' ' || *q == '\t'))
        q++;
    bool printable = s_all(value, C_VALUE, &vlen);
    if (q != value || value + vlen >= w->end)
        w->why = s_fold;
    else if (!token || !klen)
        w->why = "a header name is not a token (a space before the colon?)";
    else if (!printable)
        w->why = "a header value holds a control character";
    else if (klen == 4 && strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0 && ++w->hosts &&
             !s_all(value, C_HOST, &vlen))
        w->why = "the Host header is not a host name and port";
    w->p = s_next_line(value + vlen, w->end);
    return klen;
}

const char *http__strict_end(http_strict_t *w)
{
    if (w->why)
        return w->why;
    /* What is left is the blank line ending the head (CRLF, LF, or nothing
     * when the last line's bare LF was read as a CRLF). */
    size_t rest = (size_t)(w->end - w->p);
    if (w->p > w->end || rest > 2 || (rest >= 1 && w->p[0]) || (rest == 2 && w->p[1]))
        return s_fold;
    if (w->hosts > 1)
        return "the request has more than one Host header";
    if (!w->hosts && strcmp(w->version, MHD_HTTP_VERSION_1_0) != 0)
        return "an HTTP/1.1 request needs a Host header";
    return NULL;
}
