/* http_watch.c - noticing a client that leaves while its request waits.
 *
 * A suspended connection is out of libmicrohttpd's epoll, and MHD would not
 * notice its client leave; we watch its socket in our loop for the peer's
 * close meanwhile (LOOP_HANGUP), and stop watching once the request resumes
 * or gets its reply. Two callers: http_req_watch_gone (a request waiting
 * for its reply) and http_stream.c (a stream waiting for its next bytes).
 * See http_internal.h for the layer's files. */
#include "http_internal.h"

void http__unwatch(http_req_t *req)
{
    if (req->watch_fd >= 0) {
        loop_del_fd(req->srv->loop, req->watch_fd);
        req->watch_fd = -1;
    }
}

static void s_on_hangup(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    http_req_t *req = ud;
    if (!(ev & (LOOP_HANGUP | LOOP_ERROR)))
        return;
    void (*fn)(http_req_t *) = req->left_fn;
    http__unwatch(req);
    fn(req);
}

void http__watch_with(http_req_t *req, void (*fn)(http_req_t *req))
{
    if (req->watch_fd >= 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    int fd = ci->connect_fd;
    if (loop_add_fd(req->srv->loop, fd, LOOP_HANGUP, s_on_hangup, req) == 0) {
        req->watch_fd = fd;
        req->left_fn = fn;
    }
}

/* A request waiting for its reply: the client left. */
static void s_gone(http_req_t *req)
{
    http_gone_fn fn = req->gone_fn;
    req->gone_fn = NULL;
    if (fn)
        fn(req->gone_ud); /* it still replies (the reply is then dropped) */
}

void http__watch(http_req_t *req)
{
    if (req->gone_fn)
        http__watch_with(req, s_gone);
}

void http_req_watch_gone(http_req_t *req, http_gone_fn fn, void *ud)
{
    req->gone_fn = fn;
    req->gone_ud = ud;
    if (req->suspended)
        http__watch(req);
}
