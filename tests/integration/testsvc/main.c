/* main.c - vapora-testsvc: a service built on the real worker runtime with
 * routes only the integration tests need.
 *
 *   POST /echo        JSON object body, echoed back (HTTP_JSON_BODY checks).
 *   GET  /sleep?ms=N  a pool job that sleeps N ms (0..60000), then
 *                     {"slept_ms":N}: drain, overload and 503 tests.
 *   GET  /block?ms=N  sleeps N ms (0..60000) on the loop thread, on purpose,
 *                     so the starvation warning can be observed.
 *   GET  /items/{id}  {"id":"<id>"}: path parameters.
 *
 * It reads [service:testsvc] (then [runtime]) like the shipped services. Never
 * ship it: /block breaks the house rule that nothing blocks the loop. */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "parse.h"

#define TESTSVC_MAX_MS 60000

/* Parses the `ms` query argument into *ms; replies 400 and returns -EINVAL
 * when it is missing or not a whole number in [0, TESTSVC_MAX_MS]. */
static int s_query_ms(http_req_t *req, long *ms)
{
    const char *v = http_req_query(req, "ms");
    if (!v || parse_long(v, 0, TESTSVC_MAX_MS, ms) < 0) {
        http_reply_error(req, 400, "bad_request",
                         "ms must be a whole number of milliseconds in [0, %d]",
                         TESTSVC_MAX_MS);
        return -EINVAL;
    }
    return 0;
}

static void s_echo(http_req_t *req, void *ud)
{
    UNUSED(ud);
    http_reply_json(req, 200, json_incref(http_req_json(req)));
}

/* ---- GET /sleep: a job on the pool ---- */

/* Pool thread: the job's argument is a heap long (the milliseconds). */
static void s_sleep_work(void *arg)
{
    const long *ms = arg;
    usleep((useconds_t)(*ms * 1000));
}

/* Loop thread: replies, whether the job ran (0) or was cancelled. */
static void s_sleep_done(http_req_t *req, void *arg, int status)
{
    long *ms = arg;
    if (status == 0)
        http_reply_json(req, 200, json_pack("{s:I}", "slept_ms", (json_int_t)*ms));
    else
        http_reply_error(req, 503, "cancelled", "the sleep job was cancelled");
    free(ms);
}

static void s_sleep(http_req_t *req, void *ud)
{
    worker_t *w = ud;
    long *ms = xmalloc(sizeof *ms);
    if (s_query_ms(req, ms) < 0) {
        free(ms);
        return;
    }
    /* On -EBUSY the runtime has replied 503 and the argument stays ours. */
    if (http_req_run_blocking(req, worker_pool(w), s_sleep_work, s_sleep_done, ms) < 0)
        free(ms);
}

/* ---- GET /block: blocks the loop thread on purpose ---- */

static void s_block(http_req_t *req, void *ud)
{
    UNUSED(ud);
    long ms;
    if (s_query_ms(req, &ms) < 0)
        return;
    usleep((useconds_t)(ms * 1000));
    http_reply_json(req, 200, json_pack("{s:I}", "blocked_ms", (json_int_t)ms));
}

/* ---- GET /items/{id} ---- */

static void s_item(http_req_t *req, void *ud)
{
    UNUSED(ud);
    const char *id = http_req_param(req, "id");
    http_reply_json(req, 200, json_pack("{s:s}", "id", id ? id : ""));
}

static int s_setup(worker_t *w)
{
    http_server_t *srv = worker_http(w);
    int rc = 0;
    rc = rc ? rc : http_route(srv, "POST", "/echo", HTTP_JSON_BODY, s_echo, w);
    rc = rc ? rc : http_route(srv, "GET", "/sleep", 0, s_sleep, w);
    rc = rc ? rc : http_route(srv, "GET", "/block", 0, s_block, w);
    rc = rc ? rc : http_route(srv, "GET", "/items/{id}", 0, s_item, w);
    return rc;
}

static const worker_service_t s_service = {
    .name = "testsvc",
    .default_listen = "127.0.0.1:0",
    .setup = s_setup,
};

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &s_service);
}
