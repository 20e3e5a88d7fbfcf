/* upstream.c - one exchange with a provider on curl: easy handles kept for
 * reuse, each provider's fixed headers, and the answer as it arrives. See
 * upstream.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream.h"
#include "alloc.h"
#include "base.h"
#include "now.h"

#define UPSTREAM_IDLE 64             /* easy handles kept for reuse, at most */
#define UPSTREAM_URLS 32             /* parsed URLs kept, at most */
#define UPSTREAM_MAX_BODY (8u << 20) /* a whole answer */
#define UPSTREAM_USER_AGENT "vapora-llm-router/" VAPORA_VERSION

struct upstream {
    const rt_config_t *cfg;
    loop_t *loop;
    curlm_t *curlm;
    CURL *idle[UPSTREAM_IDLE];
    size_t nidle;
    struct curl_slist **headers; /* by provider index, built on first use */
    struct {
        char *text;
        CURLU *url;
    } urls[UPSTREAM_URLS]; /* parsed once: curl would parse a URL string again
                              for every request (a tenth of its work) */
    size_t nurls;
};

upstream_t *upstream_new(const rt_config_t *cfg, loop_t *loop, curlm_t *m)
{
    upstream_t *u = xcalloc(1, sizeof *u);
    u->cfg = cfg;
    u->loop = loop;
    u->curlm = m;
    u->headers = xcalloc(cfg->nproviders ? cfg->nproviders : 1, sizeof *u->headers);
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
    for (size_t i = 0; i < u->cfg->nproviders; i++)
        curl_slist_free_all(u->headers[i]);
    free(u->headers);
    free(u);
    *up = NULL;
}

/* The user agent is one of the fixed headers rather than
 * CURLOPT_USERAGENT: curl formats that one into a header of its own for
 * every request, byte by byte (its printf), then copies it into the
 * request, again byte by byte (~2,800 instructions a request, callgrind);
 * a header of the list is copied once. The same bytes reach the provider. */
static struct curl_slist *s_headers(const rt_provider_t *p)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: " UPSTREAM_USER_AGENT);
    h = curl_slist_append(h, "Expect:");
    char *line = NULL;
    switch (p->kind) {
    case WIRE_OPENAI:
        if (*p->api_key)
            line = xasprintf("Authorization: Bearer %s", p->api_key);
        break;
    case WIRE_ANTHROPIC:
        h = curl_slist_append(h, "anthropic-version: 2023-06-01");
        if (*p->api_key)
            line = xasprintf("x-api-key: %s", p->api_key);
        break;
    case WIRE_GEMINI:
        if (*p->api_key)
            line = xasprintf("x-goog-api-key: %s", p->api_key);
        break;
    case WIRE_OLLAMA: break;
    }
    if (line)
        h = curl_slist_append(h, line);
    free(line);
    return h;
}

/* p's header list, built on first use. */
static struct curl_slist *s_provider_headers(upstream_t *u, const rt_provider_t *p)
{
    size_t i = (size_t)(p - u->cfg->providers);
    VP_ASSERT(i < u->cfg->nproviders);
    if (!u->headers[i])
        u->headers[i] = s_headers(p);
    return u->headers[i];
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

/* ---- an exchange ---- */

/* Whether the environment names a proxy for curl to use, in any of the
 * variables curl reads for an http or https URL (HTTP_PROXY too, which
 * curl ignores: its presence only keeps the look-ups). */
static bool s_proxy_env(void)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy",
                                       "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                       "no_proxy",   "NO_PROXY"};
    for (size_t i = 0; i < ARRAY_LEN(vars); i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

/* A new handle with the options every exchange shares. They stay set
 * while the handle is kept for reuse (handles are not reset). curl looks
 * for a proxy in the environment at every request (five getenv and a
 * no_proxy match, ~2,000 instructions); when no such variable is set the
 * answer is always "none", which the handle is told once. */
static CURL *s_easy_new(void)
{
    CURL *e = curl_easy_init();
    VP_ASSERT(e != NULL);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (!s_proxy_env()) {
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
    CURL *e = u->nidle ? u->idle[--u->nidle] : s_easy_new();
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
    x->easy = s_easy(u, x);
    if (r->stream)
        x->parser = wire_parser_new(r->provider->kind);
    x->last_data_ms = loop_now_ms(u->loop);
    x->start_ns = now_ns();
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
    if (x->easy) /* curlm takes the handle; nothing of x is called again */
        curlm_abort(u->curlm, x->easy);
    x->easy = NULL;
}

/* Not reset when it comes back: every exchange sets its own options again
 * (s_easy), the shared ones stay (s_easy_new), and a reset re-initialises
 * all of them, which costs more than it saves. */
void upstream_end(upstream_t *u, upstream_xfer_t *x)
{
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
}
