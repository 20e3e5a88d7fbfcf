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
 * the tests see at once. Alongside: names must be tokens (a space before
 * the colon is not, and made `Content-Length : 34` go unseen as a length),
 * values free of control characters, and an HTTP/1.1 request needs exactly
 * one Host (RFC 9112, 3.2). One thing the walk cannot tell: a NUL sent just
 * before a line's LF reads as the CR of a CRLF; nothing after it is hidden.
 * See http_internal.h for the layer's files. */
#include <string.h>
#include <strings.h>

#include "http_internal.h"

/* tchar of RFC 9110, 5.6.2. */
static bool s_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool s_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!s_tchar((unsigned char)*s))
            return false;
    return true;
}

/* A field value: visible characters, obs-text, spaces and tabs. */
static bool s_field_value(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* A Host value: a reg-name, IPv4 or IP-literal, and a port (RFC 3986). */
static bool s_host_value(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("-._~%!$&'()*+,;=:[]", *p)))
            return false;
    return true;
}

bool http__strict_target(const char *uri)
{
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

typedef struct walk {
    const char *p;   /* where the next piece must start */
    const char *end; /* the end of the head */
    const char *why; /* the first failure */
    unsigned hosts;
} walk_t;

/* p is at the NUL MHD wrote over a line's CR (CRLF) or LF (bare LF): the
 * next line starts after one or both. */
static const char *s_next_line(const char *p, const char *end)
{
    return p + 1 < end && p[1] == '\0' ? p + 2 : p + 1;
}

static enum MHD_Result s_field(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    UNUSED(kind);
    walk_t *w = cls;
    if (w->why)
        return MHD_NO;
    if (key != w->p || !value) {
        w->why = "a header line is folded (obs-fold) or holds a NUL byte";
        return MHD_NO;
    }
    const char *q = key + strlen(key) + 1; /* past the colon */
    while (q < value && (*q == ' ' || *q == '\t'))
        q++;
    size_t vlen = strlen(value);
    if (q != value || value + vlen >= w->end)
        w->why = "a header line is folded (obs-fold) or holds a NUL byte";
    else if (!s_token(key))
        w->why = "a header name is not a token (a space before the colon?)";
    else if (!s_field_value(value))
        w->why = "a header value holds a control character";
    else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0 && ++w->hosts &&
             !s_host_value(value))
        w->why = "the Host header is not a host name and port";
    w->p = s_next_line(value + vlen, w->end);
    return w->why ? MHD_NO : MHD_YES;
}

/* The request line: method, spaces, the target as received (req->uri_raw,
 * req->uri_len bytes), the version. Sets w->p to the first header line.
 * The target's bytes are not looked at here: MHD has percent-decoded them
 * in place by now (http__strict_target saw them as received). */
static void s_request_line(walk_t *w, const http_req_t *req, const char *method,
                           const char *version)
{
    const char *q = method + strlen(method) + 1;
    while (q < req->uri_raw && *q == ' ')
        q++;
    if (q != req->uri_raw || version != req->uri_raw + req->uri_len + 1 ||
        strlen(version) != 8 || version + 8 >= w->end)
        w->why = "the request line holds a NUL byte";
    else if (!s_token(method))
        w->why = "the request method is not a token";
    else
        w->p = s_next_line(version + 8, w->end);
}

const char *http__strict_head(const http_req_t *req, const char *method,
                              const char *version)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (!ci || !req->uri_raw)
        return "the request head could not be read";
    walk_t w = {.end = method + ci->header_size};
    s_request_line(&w, req, method, version);
    if (!w.why)
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND, s_field, &w);
    if (w.why)
        return w.why;
    /* What is left is the blank line ending the head (CRLF, LF, or nothing
     * when the last line's bare LF was read as a CRLF). */
    size_t rest = (size_t)(w.end - w.p);
    if (w.p > w.end || rest > 2 || (rest >= 1 && w.p[0]) || (rest == 2 && w.p[1]))
        return "a header line is folded (obs-fold) or holds a NUL byte";
    if (w.hosts > 1)
        return "the request has more than one Host header";
    if (!w.hosts && strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        return "an HTTP/1.1 request needs a Host header";
    return NULL;
}
