/* upstream.c - one exchange with a provider on curl: easy handles kept for
 * reuse, each provider's fixed headers, and the answer as it arrives. See
 * upstream.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream.h"
#include "alloc.h"
#include "h1c.h"
#include "base.h"
#include "now.h"

#define UPSTREAM_IDLE 64             /* easy handles kept for reuse, at most */
#define UPSTREAM_URLS 32             /* parsed URLs kept, at most */
#define UPSTREAM_MAX_BODY (8u << 20) /* a whole answer */
#define UPSTREAM_USER_AGENT "vapora-llm-router/" VAPORA_VERSION
#define UPSTREAM_KEEP 256      /* connections the builtin client keeps */
#define UPSTREAM_KEEP_MS 60000 /* and for how long at most */

/* How a provider is reached, worked out on its first request. */
typedef struct upstream_prov {
    struct curl_slist *headers; /* curl's list of its fixed headers */
    int direct; /* 0: not yet known; 1: the builtin client (h1c.h); -1: curl */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *path;  /* base_url's, without a trailing '/' */
    char *fixed; /* "Host: ...\r\n" and the fixed headers, each with its CRLF */
} upstream_prov_t;

struct upstream {
    const rt_config_t *cfg;
    loop_t *loop;
    curlm_t *curlm;
    h1c_t *h1c;
    bool proxy_env; /* a proxy is named in the environment: curl for all */
    CURL *idle[UPSTREAM_IDLE];
    size_t nidle;
    upstream_prov_t *provs; /* by provider index */
    struct {
        char *text;
        CURLU *url;
    } urls[UPSTREAM_URLS]; /* parsed once: curl would parse a URL string again
                              for every request (a tenth of its work) */
    size_t nurls;
};

/* Whether the environment names a proxy for curl to use, in any of the
 * variables curl reads for an http or https URL (HTTP_PROXY too, which
 * curl ignores: its presence only keeps the look-ups). */
static bool s_proxy_env(void)
{
    static const char *const vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                       "HTTPS_PROXY", "all_proxy",  "ALL_PROXY",
                                       "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < ARRAY_LEN(vars); i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

upstream_t *upstream_new(const rt_config_t *cfg, loop_t *loop, curlm_t *m)
{
    upstream_t *u = xcalloc(1, sizeof *u);
    u->cfg = cfg;
    u->loop = loop;
    u->curlm = m;
    u->provs = xcalloc(cfg->nproviders ? cfg->nproviders : 1, sizeof *u->provs);
    u->h1c = h1c_new(loop, UPSTREAM_KEEP, UPSTREAM_KEEP_MS);
    VP_ASSERT(u->h1c != NULL);
    u->proxy_env = s_proxy_env();
    return u;
}

void upstream_destroy(upstream_t **up)
{
    upstream_t *u = up ? *up : NULL;
    if (!u)
        return;
    while (u->nidle)
        curl_easy_cleanup(u->idle[--u->nidle]);
    for (size_t i = 0; i < u->nurls; i++) {
        curl_url_cleanup(u->urls[i].url);
        free(u->urls[i].text);
    }
    for (size_t i = 0; i < u->cfg->nproviders; i++) {
        curl_slist_free_all(u->provs[i].headers);
        free(u->provs[i].path);
        free(u->provs[i].fixed);
    }
    free(u->provs);
    h1c_destroy(&u->h1c);
    free(u);
    *up = NULL;
}

/* The headers every request to p carries, whichever client sends it: the
 * content type, the user agent, then its kind's (its key, its API
 * version). Up to four lines into lines (freed by the caller); how many. */
static size_t s_fixed_headers(const rt_provider_t *p, char *lines[4])
{
    size_t n = 0;
    lines[n++] = xstrdup("Content-Type: application/json");
    lines[n++] = xstrdup("User-Agent: " UPSTREAM_USER_AGENT);
    switch (p->kind) {
    case WIRE_OPENAI:
        if (*p->api_key)
            lines[n++] = xasprintf("Authorization: Bearer %s", p->api_key);
        break;
    case WIRE_ANTHROPIC:
        lines[n++] = xstrdup("anthropic-version: 2023-06-01");
        if (*p->api_key)
            lines[n++] = xasprintf("x-api-key: %s", p->api_key);
        break;
    case WIRE_GEMINI:
        if (*p->api_key)
            lines[n++] = xasprintf("x-goog-api-key: %s", p->api_key);
        break;
    case WIRE_OLLAMA: break;
    }
    return n;
}

/* The user agent is one of the fixed headers rather than
 * CURLOPT_USERAGENT: curl formats that one into a header of its own for
 * every request, byte by byte (its printf), then copies it into the
 * request, again byte by byte (~2,800 instructions a request, callgrind);
 * a header of the list is copied once. The same bytes reach the provider. */
static struct curl_slist *s_headers(const rt_provider_t *p)
{
    struct curl_slist *h = NULL;
    char *lines[4];
    for (size_t i = 0, n = s_fixed_headers(p, lines); i < n; i++) {
        h = curl_slist_append(h, lines[i]);
        free(lines[i]);
    }
    return curl_slist_append(h, "Expect:");
}

static upstream_prov_t *s_prov(upstream_t *u, const rt_provider_t *p)
{
    size_t i = (size_t)(p - u->cfg->providers);
    VP_ASSERT(i < u->cfg->nproviders);
    return &u->provs[i];
}

/* p's header list, built on first use. */
static struct curl_slist *s_provider_headers(upstream_t *u, const rt_provider_t *p)
{
    upstream_prov_t *pv = s_prov(u, p);
    if (!pv->headers)
        pv->headers = s_headers(p);
    return pv->headers;
}

/* ---- what comes back ---- */

/* The parser's events, passed on: each one is a sign of life of the
 * stream (bytes that make none, keep-alive comments, are not). */
static void s_on_event(const wire_ev_t *ev, void *ud)
{
    upstream_xfer_t *x = ud;
    x->last_data_ms = loop_now_ms(x->up->loop);
    x->req.on_event(ev, x->req.ud);
}

static size_t s_on_data(char *ptr, size_t size, size_t n, void *ud)
{
    upstream_xfer_t *x = ud;
    size_t len = size * n;
    if (!x->status)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (!x->req.stream || x->status != 200) {
        x->last_data_ms = loop_now_ms(x->up->loop);
        if (x->body.len + len > UPSTREAM_MAX_BODY)
            return 0;
        /* Most answers come in one piece: one malloc of their size (a
         * floor of 2 KiB made it 4 KiB, past malloc's per-thread cache). */
        sbuf_append(&x->body, ptr, len);
        return len;
    }
    if (x->pause_wanted) { /* curl keeps this piece for upstream_resume */
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (wire_parser_feed(x->parser, ptr, len, s_on_event, x) < 0) {
        x->malformed = true;
        return 0;
    }
    int fed = x->req.on_fed(x->req.ud);
    x->pause_wanted = fed > 0;
    return fed < 0 ? 0 : len;
}

static size_t s_on_header(char *buf, size_t size, size_t n, void *ud)
{
    upstream_xfer_t *x = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
        double secs;
        char v[32];
        size_t k = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
        memcpy(v, buf + 12, k);
        v[k] = '\0';
        if (sscanf(v, "%lf", &secs) == 1 && secs >= 0)
            x->retry_after = secs;
    }
    return len;
}

static void s_on_done(CURL *easy, CURLcode result, void *ud)
{
    upstream_xfer_t *x = ud;
    if (!x->status)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
    x->req.on_done(x->req.ud, result);
}

/* ---- the builtin client, for plain HTTP to a numeric address ---- */

/* Whether s has a byte that may not stand in a request line or a header
 * (a control, a space, DEL). */
static bool s_unsafe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* host (from a URL: "127.0.0.1", "[::1]") and port into pv's address. 0,
 * or -1 when it is a name to resolve (localhost too: it may be ::1 as well
 * as 127.0.0.1, which curl tries in turn). */
static int s_numeric(upstream_prov_t *pv, const char *host, long port)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&pv->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&pv->addr;
    size_t n = strlen(host);
    char v6[64];
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        pv->addrlen = sizeof *a4;
        return 0;
    }
    if (n < 3 || n - 2 >= sizeof v6 || host[0] != '[' || host[n - 1] != ']')
        return -1;
    memcpy(v6, host + 1, n - 2);
    v6[n - 2] = '\0';
    if (inet_pton(AF_INET6, v6, &a6->sin6_addr) != 1)
        return -1;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    pv->addrlen = sizeof *a6;
    return 0;
}

/* The fixed part of every request's head to p at authority host:port. */
static char *s_fixed(const rt_provider_t *p, const char *host, long port)
{
    sbuf_t b = {0};
    sbuf_printf(&b, port == 80 ? "Host: %s\r\n" : "Host: %s:%ld\r\n", host, port);
    sbuf_puts(&b, "Accept: */*\r\n"); /* as curl sends it */
    char *lines[4];
    for (size_t i = 0, n = s_fixed_headers(p, lines); i < n; i++) {
        sbuf_printf(&b, "%s\r\n", lines[i]);
        free(lines[i]);
    }
    return sbuf_steal(&b);
}

/* Whether the URL h has no such part. */
static bool s_absent(CURLU *h, CURLUPart what)
{
    char *x = NULL;
    CURLUcode rc = curl_url_get(h, what, &x, 0);
    curl_free(x);
    return rc != CURLUE_OK;
}

/* Whether p is reached by the builtin client: its base_url is http:// to a
 * numeric address, with no user, query, fragment or IPv6 zone, and no
 * proxy is named in the environment. Worked out once. */
static bool s_direct(upstream_t *u, const rt_provider_t *p, upstream_prov_t *pv)
{
    if (pv->direct)
        return pv->direct > 0;
    pv->direct = -1;
    CURLU *h = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    bool ok = !u->proxy_env && h &&
              curl_url_set(h, CURLUPART_URL, p->base_url, 0) == CURLUE_OK &&
              curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              strcmp(scheme, "http") == 0 &&
              curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
              curl_url_get(h, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
              s_absent(h, CURLUPART_USER) && s_absent(h, CURLUPART_QUERY) &&
              s_absent(h, CURLUPART_FRAGMENT) && s_absent(h, CURLUPART_ZONEID) &&
              !s_unsafe(path) && !s_unsafe(p->api_key) &&
              s_numeric(pv, host, atol(port)) == 0;
    if (ok) {
        size_t n = strlen(path);
        while (n && path[n - 1] == '/')
            path[--n] = '\0';
        pv->path = xstrdup(path);
        pv->fixed = s_fixed(p, host, atol(port));
        pv->direct = 1;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(h);
    return ok;
}

static void s_direct_done(h1c_result_t res, int status, double retry_after, void *ud)
{
    static const CURLcode codes[] = {
        [H1C_OK] = CURLE_OK,
        [H1C_CONNECT] = CURLE_COULDNT_CONNECT,
        [H1C_TIMEOUT] = CURLE_OPERATION_TIMEDOUT,
        [H1C_SEND] = CURLE_SEND_ERROR,
        [H1C_RECV] = CURLE_RECV_ERROR,
        [H1C_EMPTY] = CURLE_GOT_NOTHING,
        [H1C_MALFORMED] = CURLE_WEIRD_SERVER_REPLY,
        [H1C_TOO_BIG] = CURLE_WRITE_ERROR, /* as curl's path says it */
    };
    upstream_xfer_t *x = ud;
    x->direct = NULL;
    x->status = status;
    x->retry_after = retry_after;
    x->last_data_ms = loop_now_ms(x->up->loop);
    x->req.on_done(x->req.ud, codes[res]);
}

/* A whole answer through the builtin client: 0, 1 when the request is
 * curl's after all (its path has a byte a request line cannot carry), or
 * -EINVAL when it cannot start. */
static int s_direct_start(upstream_t *u, upstream_xfer_t *x, const upstream_prov_t *pv)
{
    const upstream_req_t *r = &x->req;
    if (s_unsafe(r->path))
        return 1;
    sbuf_t *b = &x->head;
    sbuf_reset(b);
    sbuf_puts(b, "POST ");
    sbuf_puts(b, pv->path);
    sbuf_puts(b, r->path);
    sbuf_puts(b, " HTTP/1.1\r\n");
    sbuf_puts(b, pv->fixed);
    sbuf_printf(b, "Content-Length: %zu\r\n\r\n", r->len);
    h1c_opts_t o = {.addr = (const struct sockaddr *)&pv->addr,
                    .addrlen = pv->addrlen,
                    .head = b->data,
                    .head_len = b->len,
                    .body = r->body,
                    .body_len = r->len,
                    .body_out = &x->body,
                    .max_body = UPSTREAM_MAX_BODY,
                    .timeout_ms = r->provider->timeout_s * 1000L};
    x->direct = h1c_start(u->h1c, &o, s_direct_done, x);
    return x->direct ? 0 : -EINVAL;
}

/* ---- an exchange ---- */

/* A new handle with the options every exchange shares. They stay set
 * while the handle is kept for reuse (handles are not reset). curl looks
 * for a proxy in the environment at every request (five getenv and a
 * no_proxy match, ~2,000 instructions); when no such variable is set the
 * answer is always "none", which the handle is told once. */
static CURL *s_easy_new(const upstream_t *u)
{
    CURL *e = curl_easy_init();
    VP_ASSERT(e != NULL);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (!u->proxy_env) {
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    return e;
}

/* The parsed form of url, kept (curl reads it, never changes it); NULL
 * when UPSTREAM_URLS others are kept, or it does not parse. */
static CURLU *s_url(upstream_t *u, const char *url)
{
    for (size_t i = 0; i < u->nurls; i++)
        if (strcmp(u->urls[i].text, url) == 0)
            return u->urls[i].url;
    if (u->nurls == UPSTREAM_URLS)
        return NULL;
    CURLU *h = curl_url();
    /* The flags CURLOPT_URL parses a text with. */
    unsigned flags = CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME;
    if (!h || curl_url_set(h, CURLUPART_URL, url, flags) != CURLUE_OK) {
        curl_url_cleanup(h);
        return NULL;
    }
    u->urls[u->nurls].text = xstrdup(url);
    u->urls[u->nurls++].url = h;
    return h;
}

/* The provider's URL for this request: kept parsed, else as text. */
static void s_set_url(upstream_t *u, CURL *e, const upstream_req_t *r)
{
    char buf[1024], *url = buf; /* curl copies a text */
    if ((size_t)snprintf(buf, sizeof buf, "%s%s", r->provider->base_url, r->path) >=
        sizeof buf)
        url = xasprintf("%s%s", r->provider->base_url, r->path);
    CURLU *h = s_url(u, url);
    curl_easy_setopt(e, CURLOPT_CURLU, h); /* NULL: the text below counts */
    if (!h)
        curl_easy_setopt(e, CURLOPT_URL, url);
    if (url != buf)
        free(url);
}

static CURL *s_easy(upstream_t *u, upstream_xfer_t *x)
{
    const upstream_req_t *r = &x->req;
    const rt_provider_t *p = r->provider;
    CURL *e = u->nidle ? u->idle[--u->nidle] : s_easy_new(u);
    s_set_url(u, e, r);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s_provider_headers(u, p));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    /* A stream may rightly last longer than any total bound: for it, the
     * provider's timeout bounds the silences instead (the owner's timer),
     * the wait for its first byte included. */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->stream ? 0L : p->timeout_s * 1000L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, r->stream ? 1024L : 16384L);
    return e;
}

int upstream_start(upstream_t *u, upstream_xfer_t *x, const upstream_req_t *r)
{
    x->up = u;
    x->req = *r;
    x->status = 0;
    x->retry_after = 0;
    x->malformed = false;
    x->pause_wanted = x->paused = false;
    x->last_data_ms = loop_now_ms(u->loop);
    x->start_ns = now_ns();
    upstream_prov_t *pv = s_prov(u, r->provider);
    if (!r->stream && s_direct(u, r->provider, pv)) {
        int rc = s_direct_start(u, x, pv);
        if (rc <= 0)
            return rc;
    }
    x->easy = s_easy(u, x);
    if (r->stream)
        x->parser = wire_parser_new(r->provider->kind);
    if (curlm_add(u->curlm, x->easy, s_on_done, x) < 0) {
        upstream_end(u, x);
        return -EINVAL;
    }
    return 0;
}

void upstream_resume(upstream_t *u, upstream_xfer_t *x)
{
    bool paused = x->paused;
    x->pause_wanted = x->paused = false;
    x->last_data_ms = loop_now_ms(u->loop); /* a pause is no silence */
    if (paused && x->easy)
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

void upstream_abort(upstream_t *u, upstream_xfer_t *x)
{
    h1c_abort(u->h1c, &x->direct);
    if (x->easy) /* curlm takes the handle; nothing of x is called again */
        curlm_abort(u->curlm, x->easy);
    x->easy = NULL;
}

/* Not reset when it comes back: every exchange sets its own options again
 * (s_easy), the shared ones stay (s_easy_new), and a reset re-initialises
 * all of them, which costs more than it saves. */
void upstream_end(upstream_t *u, upstream_xfer_t *x)
{
    h1c_abort(u->h1c, &x->direct); /* none after on_done */
    if (x->easy) {
        if (u->nidle < ARRAY_LEN(u->idle))
            u->idle[u->nidle++] = x->easy;
        else
            curl_easy_cleanup(x->easy);
    }
    x->easy = NULL;
    wire_parser_destroy(&x->parser);
    sbuf_reset(&x->body);
}

void upstream_xfer_free(upstream_t *u, upstream_xfer_t *x)
{
    upstream_end(u, x);
    sbuf_free(&x->body);
    sbuf_free(&x->head);
}
