/* upstream.h - the HTTP side of an attempt: a curl easy handle set up to
 * POST a rendered request to a provider, with that provider's fixed
 * headers (its key, its API version), the call's callbacks and the
 * provider's timeouts. Handles are kept for reuse: creating one costs a
 * dozen allocations per request; each provider's header list is built once.
 * Running the transfer is curlm.h's business. Loop thread only. */
#ifndef VAPORA_ROUTER_UPSTREAM_H
#define VAPORA_ROUTER_UPSTREAM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct upstream upstream_t;

/* For the providers of cfg (borrowed; it must outlive the result). The
 * caller owns the result. */
upstream_t *upstream_new(const rt_config_t *cfg);
/* Frees the handles kept for reuse and the header lists. NULL is fine;
 * sets *up to NULL. */
void upstream_destroy(upstream_t **up);

/* One request to a provider. */
typedef struct upstream_req {
    const rt_provider_t *provider; /* one of cfg's */
    const char *path;              /* appended to the provider's base_url */
    const char *body;              /* read in place until the transfer ends */
    size_t len;
    bool stream; /* the provider's timeout bounds silences, not the whole */
    curl_write_callback on_data;   /* the response body */
    curl_write_callback on_header; /* each response header line */
    void *ud;                      /* for both callbacks */
} upstream_req_t;

/* An easy handle set up for r, ready for curlm_add. Give it back with
 * upstream_put once its transfer has ended. */
CURL *upstream_easy(upstream_t *u, const upstream_req_t *r);
/* Takes back a handle whose transfer has ended, for reuse. */
void upstream_put(upstream_t *u, CURL *easy);

#endif
