/* http_conn.c - connections: how a worker accepts them, how many one
 * client address may hold, the deadlines each must meet, and how the ones
 * the server ends are closed.
 *
 * DESIGN. libmicrohttpd runs without a listening socket of its own
 * (MHD_USE_NO_LISTEN_SOCKET): we register the listening fd, shared by the
 * worker processes of a service, with EPOLLEXCLUSIVE, so that a connection
 * wakes one idle worker rather than all of them; that worker accept4()s a
 * few and hands each to MHD_add_connection. At max_connections we stop
 * accepting for a while and leave the backlog to siblings. A client address
 * (http_peers.c) holding max_connections_per_ip already has its next
 * connection answered 503 and closed at once, while everyone else is still
 * accepted: one client cannot fill the worker.
 *
 * libmicrohttpd's timeout counts idle time only: a client sending a byte
 * every few seconds would hold its connection for ever, and a few thousand
 * of them every connection slot. Every connection must deliver a request's
 * headers within request_timeout of connecting or of its last reply, and
 * then its body within body_timeout, never idle for request_timeout; a
 * reply its client stops taking (bytes wait in the socket, none
 * acknowledged) is given request_timeout too. A sweep each second shuts
 * down the late ones (libmicrohttpd then reads the end of stream and
 * closes them). libmicrohttpd's own timeout is off (http.c): it read the
 * clock six times and took a lock three times a request to keep it.
 *
 * A connection the server ends while its client may still be sending (an
 * answer before the body, a body over the limit, a head refused by
 * libmicrohttpd itself) is not simply closed, which would reset it and lose
 * the answer: just before libmicrohttpd closes it we take a duplicate of
 * its socket for the lingering close (http_linger.c). See http_internal.h
 * for the layer's files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "http_internal.h"
#include "log.h"

#define HTTP_ACCEPT_BATCH 4         /* connections taken per wake-up */
#define HTTP_REFUSED_LOG_MS 10000   /* at most one warning this often */
#define HTTP_YIELD_MS 1             /* a turn left to a sibling (loadshare.h) */
#define HTTP_SHED_MS 5              /* one connection given back at most this often */
#define HTTP_SHED_MAX_MS 1000       /* ... or this, while that does not narrow the gap */

/* The body of the answer to a connection over its address's limit. */
#define HTTP_TOO_MANY                                                                  \
    "{\"error\":{\"code\":\"too_many_connections\",\"message\":"                          \
    "\"this client address holds too many connections; retry later\"}}"

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

/* A connection from an address at its limit: a short answer, then closed
 * at once (not lingering: that would hold what the limit is there to
 * bound). What its client sent already is read first, so that the close
 * is a FIN after the answer rather than a reset: best effort. */
static void s_refuse(http_server_t *srv, int c)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof HTTP_TOO_MANY - 1, HTTP_TOO_MANY);
    (void)!send(c, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)!recv(c, buf, sizeof buf, MSG_DONTWAIT);
    close(c);
    srv->refused++;
    uint64_t now = loop_now_ms(srv->loop);
    if (!srv->refused_logged_ms || now - srv->refused_logged_ms >= HTTP_REFUSED_LOG_MS) {
        log_warn("refused %" PRIu64 " connections so far from client addresses at "
                 "their limit (max_connections_per_ip = %u)",
                 srv->refused, srv->cfg.max_connections_per_ip);
        srv->refused_logged_ms = now;
    }
}

/* Hands c, from ss, to MHD, counted for its address; false when the
 * address is at its limit (c is then closed). */
static bool s_add(http_server_t *srv, int c, const struct sockaddr_storage *ss,
                  socklen_t sl)
{
    conn_track_t *t = xcalloc(1, sizeof *t);
    t->fd = c;
    t->has_peer = http__peer_key((const struct sockaddr *)ss, &t->peer);
    unsigned limit = srv->cfg.max_connections_per_ip;
    if (t->has_peer && !http__peer_take(srv->peers, t->peer, limit ? limit : UINT_MAX)) {
        free(t);
        s_refuse(srv, c);
        return false;
    }
    srv->adding = t; /* http__conn_notify takes it */
    if (MHD_add_connection(srv->daemon, c, (const struct sockaddr *)ss, sl) != MHD_YES)
        log_warn_errno(errno, "MHD_add_connection refused a connection");
    if (srv->adding) { /* not taken: MHD closed the socket */
        if (t->has_peer)
            http__peer_release(srv->peers, t->peer);
        free(t);
        srv->adding = NULL;
    }
    return true;
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
    if (s_add(srv, c, &ss, sl))
        srv->dirty = true;
    return 1;
}

/* Whether to leave the connections waiting to a sibling holding fewer
 * (loadshare.h): accepting pauses for HTTP_YIELD_MS, after which this
 * worker takes what still waits, so that a sibling that does not take them
 * delays them that long at most. */
static bool s_yield(http_server_t *srv)
{
    if (!srv->share)
        return false;
    if (srv->share_owed) {
        srv->share_owed = false;
        return false;
    }
    if (!loadshare_should_yield(srv->share, srv->nconns, loop_now_ms(srv->loop)))
        return false;
    srv->share_owed = true;
    s_pause_accepting(srv, HTTP_YIELD_MS);
    return true;
}

bool http__conn_shed(http_server_t *srv)
{
    if (!srv->share || srv->draining)
        return false;
    uint64_t now = loop_now_ms(srv->loop);
    if (now < srv->shed_next_ms)
        return false;
    unsigned over = loadshare_shed_excess(srv->share, srv->nconns, now);
    if (over == 0) {
        srv->shed_over = 0;
        return false;
    }
    /* The last one given back did not narrow the gap (its client came back
     * here while the sibling's loop was busy, or what this worker holds
     * cannot move: upgrades, streams): wait twice as long each time. */
    uint64_t wait = HTTP_SHED_MS;
    if (srv->shed_over && over >= srv->shed_over)
        wait = srv->shed_wait_ms * 2 < HTTP_SHED_MAX_MS ? srv->shed_wait_ms * 2
                                                        : HTTP_SHED_MAX_MS;
    srv->shed_wait_ms = wait;
    srv->shed_over = over;
    srv->shed_next_ms = now + wait;
    return true;
}

/* The count the siblings see, and this worker's heartbeat. */
static void s_publish(http_server_t *srv)
{
    if (srv->share)
        loadshare_set(srv->share, srv->nconns, loop_now_ms(srv->loop));
}

static void s_on_listen(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(ev);
    http_server_t *srv = ud;
    if (s_yield(srv))
        return;
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

/* ---- tracking, and the deadlines ---- */

/* Whether input is waiting unread on fd: closing it would reset it. */
static bool s_unread(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* MHD is about to close t's socket: hands a duplicate to the lingering
 * close when the server ended it with input perhaps still coming. */
static void s_closing(http_server_t *srv, conn_track_t *t)
{
    bool linger = !srv->stopping && !t->cut && t->phase != CONN_UPGRADED &&
                  t->fd >= 0 && (t->linger || t->last_words || s_unread(t->fd));
    int dup = linger ? fcntl(t->fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dup >= 0) {
        http__linger(srv, dup, t->last_words, t->last_len,
                     t->has_peer ? &t->peer : NULL);
        t->last_words = NULL;
    } else if (t->has_peer) {
        http__peer_release(srv->peers, t->peer);
    }
    free(t->last_words);
    free(t);
}

void http__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    http_server_t *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_track_t *t = srv->adding;
        srv->adding = NULL;
        if (!t) { /* not through s_add: tracked, not counted */
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            t = xcalloc(1, sizeof *t);
            t->fd = ci ? ci->connect_fd : -1;
        }
        t->phase = CONN_HEAD;
        t->since_ms = loop_now_ms(srv->loop);
        list_push_front(&srv->conns, &t->link);
        *socket_context = t;
        srv->nconns++;
        s_publish(srv);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_track_t *t = *socket_context;
        list_remove(&t->link);
        *socket_context = NULL;
        srv->nconns--;
        s_publish(srv);
        s_closing(srv, t);
    }
}

/* req's connection's track (found once the request has begun). */
static conn_track_t *s_track(http_req_t *req)
{
    if (!req->track) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        req->track = ci ? ci->socket_context : NULL;
    }
    return req->track;
}

void http__conn_request_started(http_req_t *req)
{
    conn_track_t *t = s_track(req);
    if (t) {
        t->phase = CONN_BODY;
        t->since_ms = t->body_ms = loop_now_ms(req->srv->loop);
    }
}

void http__conn_body_arrived(http_req_t *req)
{
    if (req->track)
        req->track->body_ms = loop_now_ms(req->srv->loop);
}

void http__conn_request_complete(http_req_t *req)
{
    conn_track_t *t = req->track;
    if (t && t->phase == CONN_BODY) {
        t->phase = CONN_BUSY;
        t->since_ms = loop_now_ms(req->srv->loop);
        t->acked = 0;
    }
}

void http__conn_request_done(http_req_t *req, enum MHD_RequestTerminationCode toe)
{
    conn_track_t *t = s_track(req);
    if (!t)
        return;
    if (req->replied && req->status == 101) {
        t->phase = CONN_UPGRADED;
        return;
    }
    t->phase = CONN_HEAD; /* keep-alive: waits for the next one */
    t->since_ms = loop_now_ms(req->srv->loop);
    /* Ended otherwise than by our reply (libmicrohttpd answered it itself,
     * or gave up on it): its client may still be sending. */
    if (!(req->replied && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) &&
        toe != MHD_REQUEST_TERMINATED_TIMEOUT_REACHED &&
        toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
        t->linger = true;
}

void http__conn_linger(http_req_t *req, char *last_words, size_t len)
{
    conn_track_t *t = s_track(req);
    if (!t) {
        free(last_words);
        return;
    }
    t->linger = true;
    free(t->last_words);
    t->last_words = last_words;
    t->last_len = len;
}

/* Whether t's reply stalls: bytes wait in its socket and the client
 * acknowledged none of them for limit ms. Looked at once a second, and
 * only for a reply busy for a second already (a stream may be busy for
 * hours, taking its bytes): one getsockopt. */
static bool s_reply_stalled(conn_track_t *t, uint64_t now, uint64_t limit)
{
    if (now - t->since_ms < 1000)
        return false;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    size_t need = offsetof(struct tcp_info, tcpi_notsent_bytes) + 4;
    if (getsockopt(t->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || len < need)
        return false; /* not TCP, or a kernel before 4.6: no judgement */
    bool waiting = ti.tcpi_unacked > 0 || ti.tcpi_notsent_bytes > 0;
    if (!waiting || ti.tcpi_bytes_acked != t->acked) {
        t->acked = ti.tcpi_bytes_acked;
        t->since_ms = now; /* nothing to take, or taken since the last look */
        return false;
    }
    return now - t->since_ms > limit;
}

/* Why t is late at now, or NULL. head: request_timeout, body: body_timeout
 * (ms; 0: none). */
static const char *s_late(conn_track_t *t, uint64_t now, uint64_t head, uint64_t body)
{
    switch (t->phase) {
    case CONN_HEAD: return head && now - t->since_ms > head ? "did not send a request head in time" : NULL;
    case CONN_BODY:
        if (body && now - t->since_ms > body)
            return "took too long over its body";
        return head && now - t->body_ms > head ? "stopped sending its body" : NULL;
    case CONN_BUSY:
        return head && s_reply_stalled(t, now, head) ? "stopped taking its reply" : NULL;
    default: return NULL;
    }
}

static void s_sweep(loop_t *loop, loop_timer_t *timer, void *ud)
{
    UNUSED(timer);
    http_server_t *srv = ud;
    uint64_t now = loop_now_ms(loop);
    uint64_t head = (uint64_t)srv->cfg.request_timeout * 1000;
    uint64_t body = (uint64_t)srv->cfg.body_timeout * 1000;
    list_for_each(it, &srv->conns) {
        conn_track_t *t = list_item(it, conn_track_t, link);
        const char *why = t->cut || t->fd < 0 ? NULL : s_late(t, now, head, body);
        if (why) {
            log_debug("closing a connection: its client %s", why);
            shutdown(t->fd, SHUT_RDWR);
            t->cut = true; /* once */
            srv->dirty = true;
        }
    }
    http__linger_sweep(srv, false);
    s_publish(srv); /* the heartbeat */
}

/* ---- starting and stopping ---- */

int http_server_share_accepts(http_server_t *srv, const char *path)
{
    loadshare_close(&srv->share);
    srv->share = loadshare_open(path);
    if (!srv->share)
        return -errno;
    s_publish(srv);
    return 0;
}

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
    loadshare_close(&srv->share); /* siblings no longer leave it a turn */
}

void http__conn_stop(http_server_t *srv)
{
    loadshare_close(&srv->share);
    loop_cancel_timer(srv->loop, &srv->sweep);
    http__linger_sweep(srv, true);
}
