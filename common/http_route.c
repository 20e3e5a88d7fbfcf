/* http_route.c - the route table: a route is a method and a path pattern
 * whose segments are literals or {name}s. A request's path is matched
 * against each route in the order they were added; the first route whose
 * pattern and method match wins. A path some route matches with another
 * method gets 405 with an Allow header listing those methods (GET brings
 * HEAD along); no match at all gets 404.
 *
 * Paths arrive percent-decoded by libmicrohttpd (an encoded "/" splits a
 * segment like a plain one), so params are decoded text. An empty segment
 * matches nothing, and neither does a trailing "/" (except the pattern "/"
 * itself). See http_internal.h for the layer's files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "http_internal.h"

/* Where a path matched a route's {params}: pointers into the path. */
typedef struct match {
    unsigned np;
    const char *vals[HTTP_MAX_PARAMS];
    size_t lens[HTTP_MAX_PARAMS];
} match_t;

static int s_split_pattern(route_t *r, const char *pattern)
{
    if (pattern[0] != '/')
        return -EINVAL;
    const char *p = pattern + 1;
    while (*p) {
        if (r->nsegs == HTTP_MAX_SEGS)
            return -EINVAL;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            return -EINVAL;
        r->segs[r->nsegs++] = xstrndup(p, n);
        p += n + (e ? 1 : 0);
    }
    return 0;
}

static bool s_is_param(const char *seg)
{
    size_t n = strlen(seg);
    return n > 2 && seg[0] == '{' && seg[n - 1] == '}';
}

int http_route(http_server_t *srv, const char *method, const char *pattern,
               unsigned flags, http_handler_fn fn, void *ud)
{
    srv->routes = xrealloc(srv->routes, (srv->nroutes + 1) * sizeof *srv->routes);
    route_t *r = &srv->routes[srv->nroutes];
    memset(r, 0, sizeof *r);
    if (s_split_pattern(r, pattern) < 0) {
        for (unsigned i = 0; i < r->nsegs; i++)
            free(r->segs[i]);
        return -EINVAL;
    }
    r->method = xstrdup(method);
    r->pattern = xstrdup(pattern);
    r->flags = flags;
    r->fn = fn;
    r->ud = ud;
    srv->nroutes++;
    /* Route pointers are handed out only after start, so realloc is safe;
     * series are (re)looked up then. */
    return 0;
}

void http__route_free(route_t *r)
{
    for (unsigned i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->method);
    free(r->pattern);
}

/* Whether path matches r's pattern; m gets where its {params} are. */
static bool s_match(const route_t *r, const char *path, match_t *m)
{
    const char *p = path;
    if (*p != '/')
        return false;
    p++;
    m->np = 0;
    for (unsigned i = 0; i < r->nsegs; i++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            return false;
        const char *seg = r->segs[i];
        if (s_is_param(seg)) {
            if (m->np == HTTP_MAX_PARAMS)
                return false;
            m->vals[m->np] = p;
            m->lens[m->np++] = n;
        } else if (strlen(seg) != n || memcmp(seg, p, n) != 0) {
            return false;
        }
        p += n;
        if (*p == '/')
            p++;
        else if (i + 1 < r->nsegs)
            return false;
    }
    return *p == '\0' && !(p > path + 1 && p[-1] == '/' && r->nsegs > 0);
}

/* Gives req copies of the param values m found, named after r's segments. */
static void s_keep_params(const route_t *r, const match_t *m, http_req_t *req)
{
    size_t total = 0;
    for (unsigned i = 0; i < m->np; i++)
        total += m->lens[i] + 1;
    if (m->np) {
        req->pathbuf = xmalloc(total);
        char *w = req->pathbuf;
        unsigned k = 0;
        for (unsigned i = 0; i < r->nsegs; i++) {
            if (!s_is_param(r->segs[i]))
                continue;
            memcpy(w, m->vals[k], m->lens[k]);
            w[m->lens[k]] = '\0';
            req->pnames[k] = r->segs[i];
            req->pvals[k] = w;
            w += m->lens[k] + 1;
            k++;
        }
    }
    req->nparams = m->np;
}

static bool s_method_is(const route_t *r, const char *method)
{
    if (strcmp(r->method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

/* Adds r's method (and HEAD after GET) to an Allow list, once. */
static void s_allow(sbuf_t *allow, const route_t *r)
{
    if (strstr(allow->data ? allow->data : "", r->method))
        return;
    if (allow->len)
        sbuf_puts(allow, ", ");
    sbuf_puts(allow, r->method);
    if (strcmp(r->method, "GET") == 0)
        sbuf_puts(allow, ", HEAD");
}

void http__route_request(http_server_t *srv, http_req_t *req)
{
    sbuf_t allow = {0};
    match_t m;
    for (size_t i = 0; i < srv->nroutes; i++) {
        route_t *r = &srv->routes[i];
        if (!s_match(r, req->url, &m))
            continue;
        if (s_method_is(r, req->method)) {
            s_keep_params(r, &m, req);
            req->route = r;
            sbuf_free(&allow);
            return;
        }
        s_allow(&allow, r);
    }
    if (allow.len) {
        req->allow = sbuf_steal(&allow);
        http__set_error(req, 405, "method_not_allowed",
                        "method %s is not allowed on %s (allowed: %s)", req->method,
                        req->url, req->allow);
    } else {
        http__set_error(req, 404, "not_found", "no route for %s %s", req->method,
                        req->url);
    }
}
