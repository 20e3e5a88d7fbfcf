/* hclient.c - see hclient.h. */
#define _GNU_SOURCE
#include "hclient.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "base.h"
#include "sbuf.h"

#define HCLIENT_MAX_BODY (16u << 20)
#define HCLIENT_BUFFER 4096L /* curl's receive buffer per transfer (s_setopts) */

struct hclient_req {
    curlm_t *m;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    sbuf_t in;
    size_t max_body;
    hclient_data_fn on_data;
    hclient_done_fn done;
    void *ud;
};

static void s_free(hclient_req_t *r)
{
    curl_slist_free_all(r->headers);
    free(r->body);
    sbuf_free(&r->in);
    free(r);
}

static long s_status(hclient_req_t *r)
{
    long st = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

static size_t s_on_write(char *p, size_t size, size_t n, void *ud)
{
    hclient_req_t *r = ud;
    size_t len = size * n;
    long st = s_status(r);
    if (r->on_data && st >= 200 && st < 300)
        return r->on_data(p, len, r->ud) < 0 ? CURL_WRITEFUNC_ERROR : len;
    if (r->in.len + len > r->max_body)
        return CURL_WRITEFUNC_ERROR;
    sbuf_append(&r->in, p, len);
    return len;
}

static void s_on_done(CURL *easy, CURLcode rc, void *ud)
{
    hclient_req_t *r = ud;
    long st = rc == CURLE_OK || rc == CURLE_WRITE_ERROR ? s_status(r) : 0;
    if (rc == CURLE_WRITE_ERROR && !r->on_data)
        rc = CURLE_FILESIZE_EXCEEDED;
    r->done(r, st, r->in.data ? r->in.data : "", r->in.len, rc, r->ud);
    curlm_easy_release(r->m, easy); /* reset, for the next request */
    s_free(r);
}

static void s_setopts(hclient_req_t *r, const hclient_opts_t *o)
{
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    if (strcmp(o->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (o->body) {
        r->body = xstrndup(o->body, o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    }
    for (size_t i = 0; o->headers && o->headers[i]; i++)
        r->headers = curl_slist_append(r->headers, o->headers[i]);
    r->headers = curl_slist_append(r->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    if (o->timeout_ms)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     o->connect_timeout_ms ? o->connect_timeout_ms : 5000L);
    if (o->low_speed_s) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->low_speed_s);
    }
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vapora/" VAPORA_VERSION);
    /* curl's receive buffer, per transfer (16 KiB by default): a worker
     * holds thousands of streamed calls at once, each getting a few small
     * chunks a second; larger bodies take a few more reads. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, HCLIENT_BUFFER);
}

const char *hclient_header(hclient_req_t *r, const char *name)
{
    struct curl_header *h = NULL;
    unsigned origin = CURLH_HEADER | CURLH_TRAILER;
    if (curl_easy_header(r->easy, name, 0, origin, -1, &h) != CURLHE_OK)
        return NULL;
    return h->value;
}

hclient_req_t *hclient_start(curlm_t *m, const hclient_opts_t *o, hclient_done_fn done,
                             void *ud)
{
    hclient_req_t *r = xcalloc(1, sizeof *r);
    r->m = m;
    r->easy = curlm_easy(m);
    r->done = done;
    r->ud = ud;
    r->on_data = o->on_data;
    r->max_body = o->max_body ? o->max_body : HCLIENT_MAX_BODY;
    if (r->easy) {
        s_setopts(r, o);
        if (curlm_add(m, r->easy, s_on_done, r) == 0)
            return r;
        curlm_easy_release(m, r->easy);
    }
    s_free(r);
    return NULL;
}

void hclient_abort(curlm_t *m, hclient_req_t **rp)
{
    hclient_req_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    curlm_abort(m, r->easy); /* curlm cleans the easy handle up */
    s_free(r);
    *rp = NULL;
}
