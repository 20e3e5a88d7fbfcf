/* http_conn.c - connections: how a worker accepts them, and the deadline
 * each must meet with a request's headers.
 *
 * DESIGN. libmicrohttpd runs without a listening socket of its own
 * (MHD_USE_NO_LISTEN_SOCKET): we register the listening fd, shared by the
 * worker processes of a service, with EPOLLEXCLUSIVE, so that a connection
 * wakes one idle worker rather than all of them; that worker accept4()s a
 * few and hands each to MHD_add_connection. At max_connections we stop
 * accepting for a while and leave the backlog to siblings.
 *
 * libmicrohttpd's timeout counts idle time only: a client sending a header
 * byte every few seconds would hold its connection for ever, and a few
 * thousand of them every connection slot. Every connection must deliver a
 * request's headers within request_timeout of connecting or of its last
 * reply; a sweep each second shuts down the late ones (libmicrohttpd then
 * reads the end of stream and closes them). See http_internal.h for the
 * layer's files. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "alloc.h"
#include "http_internal.h"
#include "log.h"

#define HTTP_ACCEPT_BATCH 4 /* connections taken per wake-up */

static void s_on_listen(loop_t *loop, int fd, unsigned ev, void *ud);

static int s_watch_listen(http_server_t *srv)
{
    return loop_add_fd(srv->loop, srv->listen_fd, LOOP_READ | LOOP_EXCLUSIVE,
                       s_on_listen, srv);
}

static void s_accept_resume(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    http_server_t *srv = ud;
    srv->accept_retry = NULL;
    if (srv->draining || srv->accepting)
        return;
    if (s_watch_listen(srv) == 0)
        srv->accepting = true;
}

static void s_accept_resume_later(http_server_t *srv, uint64_t ms)
{
    if (!srv->draining && !srv->accept_retry)
        srv->accept_retry = loop_add_timer(srv->loop, ms, 0, s_accept_resume, srv);
}

static void s_pause_accepting(http_server_t *srv, uint64_t ms)
{
    if (!srv->accepting)
        return;
    loop_del_fd(srv->loop, srv->listen_fd);
    srv->accepting = false;
    s_accept_resume_later(srv, ms);
}

/* EPOLLEXCLUSIVE wakes the first idle waiter in the listening socket's
 * wait queue, so without help one worker takes most connections (measured:
 * 1.8 to 1 with two workers) and its clients see the tail latency.
 * Re-registering after a batch moves our entry to the end of that queue:
 * idle workers take turns. */
static void s_rotate_accept(http_server_t *srv)
{
    if (!srv->accepting)
        return;
    loop_del_fd(srv->loop, srv->listen_fd);
    if (s_watch_listen(srv) < 0) {
        srv->accepting = false;
        s_accept_resume_later(srv, 10);
    }
}

/* Accepts one connection and hands it to MHD. Returns 1 when one was
 * taken, 0 when there is none (or the server is full: accepting paused),
 * -1 on an error that paused accepting or should end the batch. */
static int s_accept_one(http_server_t *srv, int fd)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    if (info && info->num_connections >= srv->cfg.max_connections) {
        /* Leave the rest in the backlog (siblings may take them). */
        s_pause_accepting(srv, 50);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
            return 0;
        log_err(errno, "accept4(%d)", fd);
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            s_pause_accepting(srv, 100);
        return -1;
    }
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (MHD_add_connection(srv->daemon, c, (struct sockaddr *)&ss, sl) != MHD_YES)
        log_warn_errno(errno, "MHD_add_connection refused a connection");
    srv->dirty = true;
    return 1;
}

static void s_on_listen(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(ev);
    http_server_t *srv = ud;
    int accepted = 0;
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        int rc = s_accept_one(srv, fd);
        if (rc < 0)
            return;
        if (rc == 0)
            break;
        accepted++;
    }
    if (accepted)
        s_rotate_accept(srv);
}

/* ---- the header deadline ---- */

void http__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    http_server_t *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_track_t *t = xcalloc(1, sizeof *t);
        t->fd = ci ? ci->connect_fd : -1;
        t->since_ms = loop_now_ms(srv->loop);
        list_push_front(&srv->conns, &t->link);
        *socket_context = t;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_track_t *t = *socket_context;
        list_remove(&t->link);
        free(t);
        *socket_context = NULL;
    }
}

void http__conn_request_started(http_req_t *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    req->track = ci ? ci->socket_context : NULL;
    if (req->track)
        req->track->busy = true;
}

void http__conn_request_done(http_req_t *req)
{
    if (req->track && req->status != 101) {
        req->track->busy = false; /* keep-alive: waits for the next one */
        req->track->since_ms = loop_now_ms(req->srv->loop);
    }
}

static void s_sweep(loop_t *loop, loop_timer_t *timer, void *ud)
{
    UNUSED(timer);
    http_server_t *srv = ud;
    uint64_t now = loop_now_ms(loop), limit = (uint64_t)srv->cfg.request_timeout * 1000;
    list_for_each(it, &srv->conns) {
        conn_track_t *t = list_item(it, conn_track_t, link);
        if (!t->busy && t->fd >= 0 && now - t->since_ms > limit) {
            log_debug("closing a connection that sent no complete request in %u s",
                      srv->cfg.request_timeout);
            shutdown(t->fd, SHUT_RDWR);
            t->busy = true; /* once */
            srv->dirty = true;
        }
    }
}

/* ---- starting and stopping ---- */

int http__conn_start(http_server_t *srv, int listen_fd)
{
    srv->listen_fd = listen_fd;
    int rc = s_watch_listen(srv);
    if (rc < 0)
        return rc;
    srv->accepting = true;
    srv->sweep = loop_add_timer(srv->loop, 1000, 1000, s_sweep, srv);
    return 0;
}

void http__conn_stop_accepting(http_server_t *srv)
{
    if (srv->accepting) {
        loop_del_fd(srv->loop, srv->listen_fd);
        srv->accepting = false;
    }
    loop_cancel_timer(srv->loop, &srv->accept_retry);
}

void http__conn_stop(http_server_t *srv)
{
    loop_cancel_timer(srv->loop, &srv->sweep);
}
