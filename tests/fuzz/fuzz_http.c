/* fuzz_http.c - bytes on a connection to the HTTP layer every service runs
 * (common/http*.c on libmicrohttpd): the request line, headers, framing
 * (Content-Length, chunked), bodies, pipelined requests, and what
 * http_check.c decides before a handler runs (limits, framing, routes,
 * media types, JSON bodies).
 *
 * The server has small limits, so that inputs of a few KiB reach every
 * one, and routes of each kind: path parameters, a JSON body, an optional
 * JSON body, a reply deferred to the pool, a streamed reply, /metrics.
 * Input: what the client sends. Properties: no crash, no leak, and the
 * connection ends once the client has sent everything (fz_server.h). */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "fz.h"
#include "fz_server.h"
#include "metrics_http.h"

static fz_server_t *s_srv;
static pool_t *s_pool;

static void s_params(http_req_t *req, void *ud)
{
    UNUSED(ud);
    const char *q = http_req_query(req, "q");
    const char *h = http_req_header(req, "X-Test");
    http_reply_json(req, 200,
                    json_pack("{s:s?,s:s?,s:s?,s:s?,s:s}", "project",
                              http_req_param(req, "project"), "task",
                              http_req_param(req, "task"), "q", q, "h", h, "path",
                              http_req_path(req)));
}

static void s_echo(http_req_t *req, void *ud)
{
    UNUSED(ud);
    http_reply_json(req, 201, json_incref(http_req_json(req)));
}

static void s_optional(http_req_t *req, void *ud)
{
    UNUSED(ud);
    size_t len = 0;
    http_req_body(req, &len);
    http_reply_error(req, 200, "ok", "%zu bytes, %s", len,
                     http_req_json(req) ? "JSON" : "none");
}

static void s_delete(http_req_t *req, void *ud)
{
    UNUSED(ud);
    http_req_add_header(req, "X-Id", http_req_param(req, "id"));
    http_reply(req, 204, NULL, "", 0);
}

static void s_stream(http_req_t *req, void *ud)
{
    UNUSED(ud);
    http_stream_t *st = http_reply_stream(req, 200, "text/event-stream", NULL, NULL);
    for (int i = 0; i < 3; i++)
        http_stream_write(st, "data: {}\n\n", 10);
    http_stream_trailer(st, "X-Done", "1");
    http_stream_end(st, false);
}

static void s_work(void *arg)
{
    UNUSED(arg);
}

static void s_done(http_req_t *req, void *arg, int status)
{
    UNUSED(arg);
    http_reply_error(req, 200, "deferred", "status %d", status);
}

static void s_deferred(http_req_t *req, void *ud)
{
    UNUSED(ud);
    http_req_run_blocking(req, s_pool, s_work, s_done, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    UNUSED(argc);
    UNUSED(argv);
    http_config_t cfg;
    fz_server_config(&cfg);
    cfg.max_body = 4096;
    cfg.max_url = 256;
    cfg.max_header = 1024;
    cfg.max_connections = 64;
    s_srv = fz_server_new(&cfg);
    http_server_t *h = fz_server_http(s_srv);
    s_pool = pool_new(fz_server_loop(s_srv), 1, 4);
    fz_server_watch_pool(s_srv, s_pool);
    http_route(h, "GET", "/p/{project}/t/{task}", 0, s_params, NULL);
    http_route(h, "POST", "/echo", HTTP_JSON_BODY, s_echo, NULL);
    http_route(h, "PUT", "/opt", HTTP_JSON_OPTIONAL, s_optional, NULL);
    http_route(h, "DELETE", "/items/{id}", 0, s_delete, NULL);
    http_route(h, "GET", "/stream", 0, s_stream, NULL);
    http_route(h, "GET", "/deferred", 0, s_deferred, NULL);
    metrics_http_route(h, fz_server_metrics(s_srv));
    fz_server_start(s_srv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_server_exchange(s_srv, data, size, NULL);
    return 0;
}
