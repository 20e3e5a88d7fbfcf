/* hclient.h - outgoing HTTP requests from a worker's loop (on curlm.h):
 * a method, a URL, headers and a body in; the status and the whole body
 * out, or the body as it arrives for a stream.
 *
 * Every call is loop-thread only; callbacks run on the loop thread, never
 * inside another library's callback. A request is owned by hclient from
 * hclient_start until its done() returns or hclient_abort is called. */
#ifndef VAPORA_HCLIENT_H
#define VAPORA_HCLIENT_H

#include <curl/curl.h>
#include <stddef.h>

#include "curlm.h"

typedef struct hclient_req hclient_req_t;

/* The outcome: status is the HTTP status (0 when no answer came: result
 * says why, e.g. CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT). body is
 * what was received and not handed to on_data (NUL-terminated; borrowed
 * until done returns). */
typedef void (*hclient_done_fn)(hclient_req_t *r, long status, const char *body,
                                size_t len, CURLcode result, void *ud);
/* Streaming: bytes of the body as they arrive, once the status is known
 * (status >= 200 < 300 only; an error body is collected for done()).
 * Return 0 to go on, -1 to stop the transfer (done() follows with
 * CURLE_WRITE_ERROR). */
typedef int (*hclient_data_fn)(const char *data, size_t len, void *ud);

typedef struct hclient_opts {
    const char *method;             /* "GET", "POST", "PATCH", ... */
    const char *url;
    const char *const *headers;     /* "Name: value", NULL-terminated; may be NULL */
    const char *body;               /* copied; NULL: none */
    size_t body_len;
    long timeout_ms;                /* whole request; 0: none */
    long connect_timeout_ms;        /* 0: 5000 */
    long low_speed_s;               /* a stream silent this long fails; 0: off */
    size_t max_body;                /* collected at most (else CURLE_FILESIZE_EXCEEDED); 0: 16 MiB */
    hclient_data_fn on_data;        /* NULL: collect the whole body */
} hclient_opts_t;

/* The value of the response header (or trailer) name, or NULL; valid in
 * done() and on_data (the string until the callback returns). */
const char *hclient_header(hclient_req_t *r, const char *name);

/* Starts a request. Returns it, or NULL when curl refuses it (done is
 * then never called). */
hclient_req_t *hclient_start(curlm_t *m, const hclient_opts_t *o, hclient_done_fn done,
                             void *ud);
/* Stops a request: the connection closes at the top of the loop (so the
 * server sees the client leave at once); done() is never called. Not from
 * inside this request's own on_data (return -1 there). */
void hclient_abort(curlm_t *m, hclient_req_t **rp);

#endif
