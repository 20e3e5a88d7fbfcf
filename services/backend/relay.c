/* relay.c - the other services' routes the web board reads through the
 * backend; see relay.h. */
#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api.h"
#include "file.h"
#include "hclient.h"
#include "list.h"
#include "log.h"
#include "sbuf.h"

enum { UP_AGENTS, UP_ROUTER, UP_SUPERVISOR, UP_COUNT };

static const char *const s_up_names[UP_COUNT] = {"agents", "llm-router", "supervisor"};

/* A relayed route. */
typedef struct relay_route {
    const char *method, *pattern;
    int upstream;
    int min_rank;            /* checked here; -1: the upstream checks */
    const char *const *args; /* query arguments forwarded; NULL: none */
    bool stream;             /* the body is streamed through */
} relay_route_t;

static const char *const s_run_args[] = {"task_id", "agent",  "state",
                                         "limit",   "cursor", NULL};
static const char *const s_usage_args[] = {"group_by", "since", NULL};

static const relay_route_t s_routes[] = {
    {"GET", "/api/v1/agents", UP_AGENTS, -1, NULL, false},
    {"GET", "/api/v1/agents/{name}", UP_AGENTS, -1, NULL, false},
    {"GET", "/api/v1/runs", UP_AGENTS, -1, s_run_args, false},
    {"GET", "/api/v1/runs/{id}", UP_AGENTS, -1, NULL, false},
    {"GET", "/api/v1/runs/{id}/stream", UP_AGENTS, -1, NULL, true},
    {"POST", "/api/v1/runs/{id}/cancel", UP_AGENTS, -1, NULL, false},
    {"POST", "/api/v1/runs/{id}/retry", UP_AGENTS, -1, NULL, false},
    {"POST", "/api/v1/assignments/preview", UP_AGENTS, -1, NULL, false},
    {"GET", "/api/v1/budgets", UP_ROUTER, AUTH_VIEWER, NULL, false},
    {"GET", "/api/v1/usage", UP_ROUTER, AUTH_VIEWER, s_usage_args, false},
    {"GET", "/api/v1/providers", UP_ROUTER, AUTH_VIEWER, NULL, false},
    {"GET", "/api/v1/supervisor/status", UP_SUPERVISOR, AUTH_OWNER, NULL, false},
};

/* What a route's handler is given. */
typedef struct relay_bind {
    relay_t *r;
    const relay_route_t *route;
} relay_bind_t;

struct relay {
    backend_t *b;
    curlm_t *curlm;
    char *base[UP_COUNT]; /* "http://host:port", no trailing slash */
    char *router_key;     /* NULL: none */
    char *admin_token_path;
    char *router_key_path; /* read when router_key is not set */
    list_t calls; /* relay_call_t.link */
    size_t ncalls;
    relay_bind_t bind[ARRAY_LEN(s_routes)];
};

/* One relayed request, from the handler until its reply ends. */
typedef struct relay_call {
    list_t link;
    relay_t *r;
    const relay_route_t *route;
    http_req_t *req;   /* NULL once replied */
    hclient_req_t *hc; /* NULL once over */
    http_stream_t *st; /* the streamed reply, once started */
} relay_call_t;

/* The job of a route checked here: its caller's token held, and (for the
 * supervisor) the admin token read on the pool. */
typedef struct relay_job {
    api_job_t job;
    relay_t *r;
    const relay_route_t *route;
    char *upstream_key; /* a key read from a file on the pool (s_key_work) */
} relay_job_t;

/* ---- a call's life ---- */

static relay_call_t *s_call_new(relay_t *r, const relay_route_t *route, http_req_t *req)
{
    relay_call_t *c = xcalloc(1, sizeof *c);
    c->r = r;
    c->route = route;
    c->req = req;
    list_push_back(&r->calls, &c->link);
    r->ncalls++;
    return c;
}

static void s_call_free(relay_call_t *c)
{
    list_remove(&c->link);
    c->r->ncalls--;
    free(c);
}

static void s_unavailable(relay_call_t *c, CURLcode rc)
{
    const relay_route_t *rt = c->route;
    log_warn("relay: %s at %s: %s", s_up_names[rt->upstream], c->r->base[rt->upstream],
             curl_easy_strerror(rc));
    http_reply_error(c->req, 502, "upstream_unavailable",
                     "the %s service did not answer: %s", s_up_names[rt->upstream],
                     curl_easy_strerror(rc));
}

static void s_copy_header(hclient_req_t *hc, http_req_t *req, const char *name)
{
    const char *v = hclient_header(hc, name);
    if (v)
        http_req_add_header(req, name, v);
}

static void s_on_done(hclient_req_t *hc, long status, const char *body, size_t len,
                      CURLcode rc, void *ud)
{
    relay_call_t *c = ud;
    c->hc = NULL;
    if (c->st) {
        http_stream_end(c->st, rc != CURLE_OK);
    } else if (status == 0) {
        s_unavailable(c, rc);
    } else {
        const char *ct = hclient_header(hc, "Content-Type");
        s_copy_header(hc, c->req, "Location");
        s_copy_header(hc, c->req, "Retry-After");
        s_copy_header(hc, c->req, "WWW-Authenticate");
        http_req_add_header(c->req, "Cache-Control", "no-store");
        http_reply(c->req, (unsigned)status, ct ? ct : "application/json", body, len);
    }
    s_call_free(c);
}

/* The client of a stream left: the upstream request stops. */
static void s_stream_gone(void *ud)
{
    relay_call_t *c = ud;
    c->st = NULL;
    if (c->hc)
        hclient_abort(c->r->curlm, &c->hc);
    s_call_free(c);
}

static int s_on_data(const char *data, size_t len, void *ud)
{
    relay_call_t *c = ud;
    if (!c->st) {
        const char *ct = hclient_header(c->hc, "Content-Type");
        http_req_add_header(c->req, "X-Accel-Buffering", "no");
        c->st = http_reply_stream(c->req, 200, ct ? ct : "text/event-stream",
                                  s_stream_gone, c);
        c->req = NULL;
    }
    if (http_stream_pending(c->st) + len > RELAY_MAX_PENDING)
        return -1; /* the client fell behind: done() ends the stream broken */
    http_stream_write(c->st, data, len);
    return 0;
}

/* The client left before any answer: the upstream request stops. The
 * request is still replied to (the reply is dropped). */
static void s_req_gone(void *ud)
{
    relay_call_t *c = ud;
    if (!c->hc || c->st)
        return;
    hclient_abort(c->r->curlm, &c->hc);
    http_reply_error(c->req, 503, "client_gone", "the client left");
    s_call_free(c);
}

/* ---- starting a call ---- */

/* Appends the upstream path of req on route rt: the route's pattern with
 * each {param} percent-encoded again (MHD decoded it: "a%2Fb" must stay one
 * segment). false when a param is "." or "..", which no id or name is. */
static bool s_path(sbuf_t *u, const relay_route_t *rt, http_req_t *req)
{
    if (rt->upstream == UP_SUPERVISOR) {
        sbuf_puts(u, "/status");
        return true;
    }
    for (const char *p = rt->pattern; *p;) {
        const char *open = strchr(p, '{');
        if (!open) {
            sbuf_puts(u, p);
            break;
        }
        sbuf_append(u, p, (size_t)(open - p));
        const char *close = strchr(open, '}');
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(close - open - 1), open + 1);
        const char *v = http_req_param(req, name);
        if (!v || strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
            return false;
        char *e = curl_easy_escape(NULL, v, 0);
        sbuf_puts(u, e ? e : "");
        curl_free(e);
        p = close + 1;
    }
    return true;
}

/* The upstream URL of req on route: base + path + the known arguments
 * (NULL: the path cannot be relayed). */
static char *s_url(relay_t *r, const relay_route_t *rt, http_req_t *req)
{
    sbuf_t u = {0};
    sbuf_puts(&u, r->base[rt->upstream]);
    if (!s_path(&u, rt, req)) {
        sbuf_free(&u);
        return NULL;
    }
    char sep = '?';
    for (size_t i = 0; rt->args && rt->args[i]; i++) {
        const char *v = http_req_query(req, rt->args[i]);
        if (!v)
            continue;
        char *e = curl_easy_escape(NULL, v, 0);
        sbuf_printf(&u, "%c%s=%s", sep, rt->args[i], e ? e : "");
        curl_free(e);
        sep = '&';
    }
    return sbuf_steal(&u);
}

/* The header lines sent upstream (hclient copies them): Accept, the
 * Authorization (auth; NULL: none) and the body's Content-Type. */
typedef struct relay_heads {
    char *auth, *ctype;
    const char *lines[4];
} relay_heads_t;

static void s_heads(relay_heads_t *h, http_req_t *req, const char *auth, bool body)
{
    const char *ct = http_req_header(req, "Content-Type");
    size_t n = 0;
    h->auth = auth ? xasprintf("Authorization: %s", auth) : NULL;
    h->ctype = body && ct ? xasprintf("Content-Type: %s", ct) : NULL;
    h->lines[n++] = "Accept: application/json, text/event-stream";
    if (h->auth)
        h->lines[n++] = h->auth;
    if (h->ctype)
        h->lines[n++] = h->ctype;
    h->lines[n] = NULL;
}

/* Starts the upstream request of c; auth is the Authorization value to
 * send (NULL: none). Replies itself when it cannot start. */
static void s_start(relay_call_t *c, const char *auth)
{
    http_req_t *req = c->req;
    char *url = s_url(c->r, c->route, req);
    if (!url) {
        http_reply_error(req, 404, "not_found", "no such id");
        s_call_free(c);
        return;
    }
    size_t blen = 0;
    const char *body = http_req_body(req, &blen);
    relay_heads_t h;
    s_heads(&h, req, auth, body != NULL);
    hclient_opts_t o = {.method = c->route->method,
                        .url = url,
                        .headers = h.lines,
                        .body = body,
                        .body_len = blen,
                        .timeout_ms = c->route->stream ? 0 : 30000,
                        .on_data = c->route->stream ? s_on_data : NULL};
    c->hc = hclient_start(c->r->curlm, &o, s_on_done, c);
    free(url);
    free(h.auth);
    free(h.ctype);
    if (!c->hc) {
        s_unavailable(c, CURLE_FAILED_INIT);
        s_call_free(c);
        return;
    }
    http_req_watch_gone(req, s_req_gone, c);
}

static void s_noop_work(api_job_t *j)
{
    UNUSED(j);
}

/* The key an upstream wants, read on the pool (the file may appear or
 * change while the backend runs): the supervisor's admin token, or the
 * router's key for the board when [backend] router_key does not set it. */
static void s_key_work(api_job_t *j)
{
    relay_job_t *rj = container_of(j, relay_job_t, job);
    const relay_t *r = rj->r;
    const char *path = rj->route->upstream == UP_SUPERVISOR ? r->admin_token_path
                       : r->router_key ? NULL
                                       : r->router_key_path;
    char *t = path ? file_read_all(path, NULL) : NULL;
    if (t)
        t[strcspn(t, "\r\n")] = '\0';
    rj->upstream_key = t;
}

static void s_job_fini(api_job_t *j)
{
    relay_job_t *rj = container_of(j, relay_job_t, job);
    free(rj->upstream_key);
}

/* The caller holds its token: the request goes upstream. */
static void s_after_check(api_job_t *j, http_req_t *req)
{
    relay_job_t *rj = container_of(j, relay_job_t, job);
    relay_t *r = rj->r;
    char *auth = NULL;
    const char *router_key = r->router_key ? r->router_key : rj->upstream_key;
    if (rj->route->upstream == UP_ROUTER && router_key && *router_key)
        auth = xasprintf("Bearer %s", router_key);
    else if (rj->route->upstream == UP_SUPERVISOR && rj->upstream_key &&
             *rj->upstream_key)
        auth = xasprintf("Bearer %s", rj->upstream_key);
    s_start(s_call_new(r, rj->route, req), auth);
    free(auth);
    j->rc = 1; /* answered here */
}

static void s_handle(http_req_t *req, void *ud)
{
    relay_bind_t *bind = ud;
    relay_t *r = bind->r;
    const relay_route_t *rt = bind->route;
    if (r->ncalls >= RELAY_MAX_CALLS) {
        http_reply_error(req, 503, "overloaded",
                         "too many relayed requests; retry shortly");
        return;
    }
    if (rt->min_rank < 0) {
        s_start(s_call_new(r, rt, req), http_req_header(req, "Authorization"));
        return;
    }
    relay_job_t *rj = API_START(
        req, r->b, relay_job_t,
        rt->upstream == UP_SUPERVISOR || (rt->upstream == UP_ROUTER && !r->router_key)
            ? s_key_work
            : s_noop_work,
        rt->min_rank);
    if (!rj)
        return;
    rj->r = r;
    rj->route = rt;
    rj->job.after = s_after_check;
    rj->job.fini = s_job_fini;
    api_run(req, &rj->job);
}

/* ---- set-up ---- */

/* A base URL: http(s)://..., without its trailing slashes; NULL if not. */
static char *s_base(const char *url)
{
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return NULL;
    char *b = xstrdup(url);
    for (size_t n = strlen(b); n > 8 && b[n - 1] == '/'; n--)
        b[n - 1] = '\0';
    return b;
}

/* http:// + [supervisor] admin, an address on every interface made the
 * loopback one. */
static char *s_admin_url(const cfg_t *cfg)
{
    const char *a = cfg_get_str(cfg, "supervisor", "admin", "127.0.0.1:8000");
    if (strncmp(a, "0.0.0.0:", 8) == 0)
        return xasprintf("http://127.0.0.1:%s", a + 8);
    if (strncmp(a, "[::]:", 5) == 0)
        return xasprintf("http://[::1]:%s", a + 5);
    return xasprintf("http://%s", a);
}

relay_t *relay_new(backend_t *b, const cfg_t *cfg, char *err, size_t errlen)
{
    static const char *const keys[UP_COUNT] = {"agents_url", "router_url",
                                               "supervisor_url"};
    char *admin = s_admin_url(cfg);
    const char *defs[UP_COUNT] = {"http://127.0.0.1:8002", "http://127.0.0.1:8003",
                                  admin};
    relay_t *r = xcalloc(1, sizeof *r);
    r->b = b;
    list_init(&r->calls);
    for (int i = 0; i < UP_COUNT; i++) {
        const char *v = cfg_get_str(cfg, "backend", keys[i], "");
        r->base[i] = s_base(*v ? v : defs[i]);
        if (!r->base[i]) {
            snprintf(err, errlen, "[backend] %s: not an http:// or https:// URL: %s",
                     keys[i], *v ? v : defs[i]);
            free(admin);
            relay_destroy(&r);
            return NULL;
        }
    }
    free(admin);
    const char *key = cfg_get_str(cfg, "backend", "router_key", "");
    r->router_key = *key ? xstrdup(key) : NULL;
    r->admin_token_path = xasprintf("%s/admin-token", b->data_dir);
    const char *kf = cfg_get_str(cfg, "backend", "router_key_file", "");
    r->router_key_path = *kf ? xstrdup(kf) : xasprintf("%s/router-key-board", b->data_dir);
    r->curlm = curlm_new(worker_loop(b->w), 0, 64);
    return r;
}

void relay_add_routes(relay_t *r)
{
    http_server_t *srv = worker_http(r->b->w);
    for (size_t i = 0; i < ARRAY_LEN(s_routes); i++) {
        r->bind[i].r = r;
        r->bind[i].route = &s_routes[i];
        http_route(srv, s_routes[i].method, s_routes[i].pattern, 0, s_handle,
                   &r->bind[i]);
    }
}

size_t relay_in_flight(const relay_t *r)
{
    return r->ncalls;
}

/* Ends every call: the upstream requests stop, streams end broken (their
 * clients reconnect elsewhere), waiting requests get 503. */
static void s_end_all(relay_t *r)
{
    list_for_each_safe(it, nx, &r->calls)
    {
        relay_call_t *c = list_item(it, relay_call_t, link);
        if (c->hc)
            hclient_abort(r->curlm, &c->hc);
        if (c->st)
            http_stream_end(c->st, true);
        else if (c->req)
            http_reply_error(c->req, 503, "shutting_down",
                             "the server is shutting down");
        s_call_free(c);
    }
}

void relay_drain(relay_t *r)
{
    list_for_each_safe(it, nx, &r->calls)
    {
        relay_call_t *c = list_item(it, relay_call_t, link);
        if (!c->st)
            continue; /* a plain request finishes */
        if (c->hc)
            hclient_abort(r->curlm, &c->hc);
        http_stream_end(c->st, true);
        s_call_free(c);
    }
}

void relay_destroy(relay_t **rp)
{
    relay_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    s_end_all(r);
    curlm_destroy(&r->curlm);
    for (int i = 0; i < UP_COUNT; i++)
        free(r->base[i]);
    free(r->router_key);
    free(r->router_key_path);
    free(r->admin_token_path);
    free(r);
    *rp = NULL;
}
