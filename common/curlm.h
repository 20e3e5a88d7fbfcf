/* curlm.h - libcurl's multi-socket API on a worker's loop: outgoing HTTP
 * without a thread per request.
 *
 * DESIGN. One multi handle per worker for its lifetime (a warm connection
 * cache). curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION ->
 * loop_add/mod/del_fd) and when to wake it (CURLMOPT_TIMERFUNCTION -> one
 * loop timer); we call curl_multi_socket_action on those events and then
 * collect finished transfers with curl_multi_info_read, calling each one's
 * done() from the loop, outside any libcurl callback. Aborting or
 * unpausing a transfer from inside a libmicrohttpd callback is not allowed
 * by either library, so curlm_abort only records the wish;
 * a before-sleep hook carries it out at the top of the loop.
 *
 * Every call is loop-thread only. The caller owns each easy handle until
 * done() returns or until it calls curlm_abort, which hands it to curlm. */
#ifndef VAPORA_CURLM_H
#define VAPORA_CURLM_H

#include <curl/curl.h>

#include "loop.h"

typedef struct curlm curlm_t;

/* Runs on the loop thread once the transfer is over (result CURLE_OK or an
 * error); the easy handle is already out of the multi handle. */
typedef void (*curlm_done_fn)(CURL *easy, CURLcode result, void *ud);

/* Creates the multi handle. max_total: connections open at once across
 * every host (0: no limit); max_cached: idle connections kept. */
curlm_t *curlm_new(loop_t *loop, long max_total, long max_cached);
/* Carries out queued aborts and frees the multi handle; every other
 * transfer must be over or aborted, and the loop must not run again.
 * Accepts NULL; sets *mp = NULL. */
void curlm_destroy(curlm_t **mp);

/* An easy handle for a new transfer: one a finished transfer gave back
 * (reset to curl's defaults: no option of its last transfer is left), else
 * a new one. NULL when libcurl cannot make one. */
CURL *curlm_easy(curlm_t *m);
/* Gives back the easy handle of a finished transfer (from its done(), or
 * after), for curlm_easy: a new handle costs a large allocation and its
 * set-up on every request. Past CURLM_SPARE_EASY kept, it is cleaned up. */
void curlm_easy_release(curlm_t *m, CURL *easy);
#define CURLM_SPARE_EASY 64

/* Starts a transfer. Sets CURLOPT_PRIVATE and CURLOPT_NOSIGNAL. Returns 0
 * or -EINVAL when libcurl refuses the handle. */
int curlm_add(curlm_t *m, CURL *easy, curlm_done_fn done, void *ud);
/* Stops a transfer at the top of the loop; done() is never called and no
 * more write/header callbacks reach the caller. curlm takes the easy handle
 * and cleans it up. Safe from
 * any callback of another library (not from a curl callback of this very
 * transfer: return an error from the callback instead). */
void curlm_abort(curlm_t *m, CURL *easy);

#endif
