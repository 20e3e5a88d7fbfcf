/* http_req.c - a request as its handler sees it: the accessors of http.h,
 * and the error recorded on a request while it is received (replied once
 * it is complete). See http_internal.h for the layer's files. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

void http__set_error(http_req_t *req, unsigned status, const char *code,
                     const char *fmt, ...)
{
    if (req->err_status)
        return;
    va_list ap;
    va_start(ap, fmt);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    req->err_status = status;
    req->err_code = code;
    req->err_msg = sbuf_steal(&b);
}

const char *http_req_method(const http_req_t *req)
{
    return req->method;
}

const char *http_req_path(const http_req_t *req)
{
    return req->url;
}

const char *http_req_param(const http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < req->nparams; i++) {
        const char *p = req->pnames[i];
        if (strncmp(p + 1, name, n) == 0 && p[n + 1] == '}' && p[n + 2] == '\0')
            return req->pvals[i];
    }
    return NULL;
}

const char *http_req_query(const http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(const http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const struct sockaddr *http_req_peer(const http_req_t *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    return sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) ? sa : NULL;
}

const char *http_req_body(const http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.len ? req->body.data : NULL;
}

void http_req_drop_body(http_req_t *req)
{
    sbuf_free(&req->body);
    json_decref(req->json);
    req->json = NULL;
}

json_t *http_req_json(const http_req_t *req)
{
    return req->json;
}

bool http_req_can_upgrade(const http_req_t *req)
{
    /* libmicrohttpd upgrades HTTP/1.1 and later 1.x only. */
    const char *v = req->version;
    return v && strncmp(v, "HTTP/1.", 7) == 0 && strcmp(v, MHD_HTTP_VERSION_1_0) != 0;
}
