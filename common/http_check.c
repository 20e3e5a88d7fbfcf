/* http_check.c - what the server checks of a request before its handler
 * runs, and its body. When the headers arrive: the head's syntax
 * (http_strict.c), the URL's length and an encoded NUL, the header block's
 * size, framing a proxy in front could read differently (RFC 9112, 6.3),
 * the route (http_route.c) and the media type of a JSON route; a
 * Content-Length over the body limit. While the body arrives: collecting it
 * up to max_body. Once it is complete: the JSON parse. A failure is
 * recorded on the request (http__set_error) and answered by http.c. See
 * http_internal.h for the layer's files. */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "jparse.h"
#include "parse.h"

typedef struct header_scan {
    http_strict_t strict;   /* RFC 9112's rules, on the same walk */
    size_t sum;             /* bytes of the header block */
    const char *length;     /* the first Content-Length ("" when it has no value) */
    const char *length_raw; /* ... as libmicrohttpd gave it */
    const char *coding;     /* the first Transfer-Encoding, as given */
    bool lengths_differ;    /* another Content-Length with another value */
    bool transfer_encoding; /* a Transfer-Encoding header */
    bool bad_coding;        /* one that is not just "chunked" */
} header_scan_t;

static enum MHD_Result s_scan_header(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
    UNUSED(kind);
    header_scan_t *h = cls;
    size_t klen = http__strict_field(&h->strict, key, value);
    h->sum += klen + (value ? strlen(value) : 0) + 4;
    if (klen == 14 && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (!h->length) {
            h->length = value ? value : "";
            h->length_raw = value;
        } else if (strcmp(h->length, value ? value : "") != 0)
            h->lengths_differ = true;
    } else if (klen == 17 && strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (!h->transfer_encoding)
            h->coding = value;
        h->transfer_encoding = true;
        /* Only chunked frames a request body (RFC 9112, 6.3): any other
         * coding would make it run until the connection closes. */
        if (!value || strcasecmp(value, "chunked") != 0)
            h->bad_coding = true;
    }
    return MHD_YES;
}

static bool s_is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return false;
    char c = ct[16];
    return c == '\0' || c == ';' || c == ' ';
}

/* A framing error: answered at once, and the connection closed. */
static bool s_framing_error(http_req_t *req, const char *why)
{
    req->framing_error = true;
    http__set_error(req, 400, "bad_request", "%s", why);
    return false;
}

/* The header block's size and framing, from the walk; false when one is
 * refused. */
static bool s_check_headers(http_server_t *srv, http_req_t *req, const header_scan_t *h)
{
    if (h->sum > srv->cfg.max_header) {
        http__set_error(req, 431, "headers_too_large",
                        "the request headers are larger than %zu bytes",
                        srv->cfg.max_header);
        return false;
    }
    /* Two lengths, a length and chunks, or a coding other than chunked
     * are read one way here and another by a proxy in front: refuse them
     * (RFC 9112, 6.3). */
    if (h->lengths_differ || (h->length && h->transfer_encoding) || h->bad_coding)
        return s_framing_error(
            req, h->lengths_differ ? "the request has Content-Length headers that disagree"
                 : h->bad_coding   ? "Transfer-Encoding must be chunked alone"
                                   : "the request has both Content-Length and "
                                     "Transfer-Encoding");
    return true;
}

/* A JSON route takes a body of type application/json only. */
static void s_check_media_type(http_req_t *req)
{
    if (!(req->route->flags & (HTTP_JSON_BODY | HTTP_JSON_OPTIONAL)))
        return;
    const char *cl = req->content_length, *te = req->coding;
    bool has_body = (cl && strcmp(cl, "0") != 0) || te;
    const char *ct = http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (has_body && !s_is_json_type(ct))
        http__set_error(req, 415, "unsupported_media_type",
                        "the request body must be application/json, not %s",
                        ct ? ct : "untyped");
}

/* One walk over the headers: the head's syntax (RFC 9112: a failure is a
 * framing error) and what s_check_headers needs. false when refused. */
static bool s_scan(http_req_t *req, const char *method, const char *version,
                   header_scan_t *h)
{
    if (req->bad_target)
        return s_framing_error(req,
                               "the request target holds a space or a control character");
    http__strict_begin(&h->strict, req, method, version);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, s_scan_header, h);
    /* Kept for the checks that follow, rather than looked up again. */
    req->content_length = h->length_raw;
    req->coding = h->coding;
    const char *why = http__strict_end(&h->strict);
    return why ? s_framing_error(req, why) : true;
}

void http__check_request(http_server_t *srv, http_req_t *req, const char *method,
                         const char *version)
{
    const http_config_t *c = &srv->cfg;
    header_scan_t h = {0};
    /* The head's syntax first: nothing else is sure of a head that a
     * proxy could read otherwise. */
    if (!s_scan(req, method, version, &h))
        return;
    if (req->uri_len > c->max_url) {
        http__set_error(req, 414, "uri_too_long",
                        "the request URL is longer than %zu bytes", c->max_url);
        return;
    }
    if (req->nul_in_uri) {
        http__set_error(req, 400, "bad_request",
                        "the request URL holds an encoded NUL (%%00)");
        return;
    }
    if (!s_check_headers(srv, req, &h))
        return;
    http__route_request(srv, req);
    if (!req->err_status)
        s_check_media_type(req);
}

bool http__length_over_limit(const http_server_t *srv, const http_req_t *req)
{
    const char *cl = req->content_length;
    if (!cl)
        return false;
    long n;
    /* Digits beyond a long are too large too. */
    bool huge = cl[0] && strspn(cl, "0123456789") == strlen(cl) &&
                parse_long(cl, 0, LONG_MAX, &n) < 0;
    return huge ||
           (parse_long(cl, 0, LONG_MAX, &n) == 0 && (size_t)n > srv->cfg.max_body);
}

bool http__collect_body(http_req_t *req, const char *data, size_t *size)
{
    size_t max = req->srv->cfg.max_body, n = *size;
    *size = 0;
    if (req->err_status) { /* refused already: its body is dropped */
        req->discarded += n;
        return req->discarded <= max;
    }
    if (req->body.len + n > max) {
        http__set_error(req, 413, "payload_too_large",
                        "the request body is larger than %zu bytes", max);
        sbuf_free(&req->body);
        return false;
    }
    sbuf_append(&req->body, data, n);
    return true;
}

void http__parse_json(http_req_t *req)
{
    unsigned flags = req->route->flags;
    if (!(flags & (HTTP_JSON_BODY | HTTP_JSON_OPTIONAL)))
        return;
    if (req->body.len == 0) {
        if (flags & HTTP_JSON_BODY)
            http__set_error(req, 400, "missing_body",
                            "this request needs a JSON object body");
        return;
    }
    json_error_t e;
    /* The usual body in one pass; jansson for the rest (and its errors). */
    req->json = jparse_load(req->body.data, req->body.len);
    if (!req->json)
        req->json = json_loadb(req->body.data, req->body.len, 0, &e);
    if (!req->json)
        http__set_error(req, 400, "invalid_json",
                        "the request body is not valid JSON: %s (line %d, column %d)",
                        e.text, e.line, e.column);
    else if (!json_is_object(req->json))
        http__set_error(req, 400, "invalid_json",
                        "the request body must be a JSON object");
}
