/* upstream.c - curl easy handles for provider requests, kept for reuse,
 * and each provider's fixed headers. See upstream.h. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "upstream.h"
#include "alloc.h"
#include "base.h"

#define UPSTREAM_IDLE 64 /* easy handles kept for reuse, at most */

struct upstream {
    const rt_config_t *cfg;
    CURL *idle[UPSTREAM_IDLE];
    size_t nidle;
    struct curl_slist **headers; /* by provider index, built on first use */
};

upstream_t *upstream_new(const rt_config_t *cfg)
{
    upstream_t *u = xcalloc(1, sizeof *u);
    u->cfg = cfg;
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
    for (size_t i = 0; i < u->cfg->nproviders; i++)
        curl_slist_free_all(u->headers[i]);
    free(u->headers);
    free(u);
    *up = NULL;
}

static struct curl_slist *s_headers(const rt_provider_t *p)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
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

/* Not reset when it comes back: every request sets the same options again
 * (upstream_easy), and a reset re-initialises all of them, which costs
 * more than it saves. */
void upstream_put(upstream_t *u, CURL *easy)
{
    if (u->nidle < ARRAY_LEN(u->idle))
        u->idle[u->nidle++] = easy;
    else
        curl_easy_cleanup(easy);
}

CURL *upstream_easy(upstream_t *u, const upstream_req_t *r)
{
    const rt_provider_t *p = r->provider;
    CURL *e = u->nidle ? u->idle[--u->nidle] : curl_easy_init();
    VP_ASSERT(e != NULL);
    char *url = xasprintf("%s%s", p->base_url, r->path); /* curl copies it */
    curl_easy_setopt(e, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s_provider_headers(u, p));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, r->on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r->ud);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, r->on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r->ud);
    /* A stream may rightly last longer than any total bound: for it, the
     * provider's timeout bounds the silences instead (the caller's timer),
     * the wait for its first byte included. */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->stream ? 0L : p->timeout_s * 1000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, r->stream ? 1024L : 16384L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vapora-llm-router/" VAPORA_VERSION);
    return e;
}
