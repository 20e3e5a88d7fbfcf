/* metrics_http.c - see metrics_http.h. */
#include "metrics_http.h"

#include "sbuf.h"

static void s_metrics(http_req_t *req, void *ud)
{
    metrics_t *m = ud;
    sbuf_t out = {0};
    metrics_render(m, &out);
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    sbuf_free(&out);
}

int metrics_http_route(http_server_t *srv, metrics_t *m)
{
    return http_route(srv, "GET", "/metrics", 0, s_metrics, m);
}
