/* h1c.c - a lean HTTP/1.1 client on a worker's loop. See h1c.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "h1c.h"
#include "alloc.h"
#include "h1parse.h"
#include "list.h"

#define H1C_MAX_BODY (16u << 20)
#define H1C_CONNECT_TIMEOUT_MS 10000

typedef struct h1c_conn {
    h1c_t *h;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h1c_req_t *req; /* NULL while idle */
    bool connected;
    bool reused;         /* this request is not the connection's first */
    bool want_write;     /* LOOP_WRITE is watched */
    size_t sent;         /* of the request's head and body */
    uint64_t idle_since; /* loop_now_ms when it went idle */
    h1parse_t parse;
    list_t link; /* in h->idle while idle */
} h1c_conn_t;

struct h1c_req {
    h1c_t *h;
    h1c_conn_t *conn;
    h1c_opts_t o;
    struct sockaddr_storage addr;
    h1c_done_fn done;
    void *ud;
    loop_timer_t *timer;
    uint64_t deadline_ms; /* of the whole request; 0: none */
    h1c_result_t later;   /* a failure found inside h1c_start, told from a timer */
    int status;           /* of an answer whose connection failed after its head */
    double retry_after;
    bool retried; /* sent again on a new connection once already */
};

struct h1c {
    loop_t *loop;
    list_t idle; /* most recently used first */
    unsigned nidle, max_idle, nopen;
    uint64_t idle_ms;    /* kept at most this long */
    loop_timer_t *sweep; /* closes those kept too long */
    unsigned long reused;
    char buf[16384];
};

static void s_on_io(loop_t *loop, int fd, unsigned events, void *ud);
static void s_arm(h1c_req_t *r);
static int s_send(h1c_conn_t *c);

static void s_on_sweep(loop_t *loop, loop_timer_t *t, void *ud);

h1c_t *h1c_new(loop_t *loop, unsigned max_idle, unsigned idle_ms)
{
    h1c_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = loop;
    h->max_idle = max_idle;
    h->idle_ms = idle_ms;
    list_init(&h->idle);
    uint64_t every = idle_ms / 4 < 50 ? 50 : idle_ms / 4 > 5000 ? 5000 : idle_ms / 4;
    h->sweep = loop_add_timer(loop, every, every, s_on_sweep, h);
    return h;
}

unsigned h1c_open(const h1c_t *h)
{
    return h->nopen;
}

unsigned long h1c_reused(const h1c_t *h)
{
    return h->reused;
}

/* ---- connections ---- */

static void s_close(h1c_conn_t *c)
{
    h1c_t *h = c->h;
    if (list_linked(&c->link)) {
        list_remove(&c->link);
        h->nidle--;
    }
    loop_del_fd(h->loop, c->fd);
    close(c->fd);
    h1parse_free(&c->parse);
    h->nopen--;
    free(c);
}

void h1c_destroy(h1c_t **hp)
{
    h1c_t *h = hp ? *hp : NULL;
    if (!h)
        return;
    loop_cancel_timer(h->loop, &h->sweep);
    list_for_each_safe(it, nx, &h->idle) s_close(list_item(it, h1c_conn_t, link));
    free(h);
    *hp = NULL;
}

/* Closes the connections kept longer than idle_ms (the oldest are last). */
static void s_sweep(h1c_t *h)
{
    uint64_t now = loop_now_ms(h->loop);
    while (!list_empty(&h->idle)) {
        h1c_conn_t *c = list_item(h->idle.prev, h1c_conn_t, link);
        if (now - c->idle_since <= h->idle_ms)
            break;
        s_close(c);
    }
}

static void s_on_sweep(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    s_sweep(ud);
}

/* A kept connection to the request's peer, taken out of the idle list. */
static h1c_conn_t *s_take_idle(h1c_t *h, const h1c_req_t *r)
{
    s_sweep(h);
    list_for_each(it, &h->idle)
    {
        h1c_conn_t *c = list_item(it, h1c_conn_t, link);
        if (c->addrlen == r->o.addrlen && memcmp(&c->addr, &r->addr, c->addrlen) == 0) {
            list_remove(&c->link);
            list_init(&c->link);
            h->nidle--;
            c->reused = true;
            h->reused++;
            return c;
        }
    }
    return NULL;
}

/* A new connection to the request's peer, its connect under way. NULL
 * (errno set) when the socket cannot be made or the connect fails at once. */
static h1c_conn_t *s_connect(h1c_t *h, const h1c_req_t *r)
{
    int fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    h1c_conn_t *c = xcalloc(1, sizeof *c);
    int rc = connect(fd, (const struct sockaddr *)&r->addr, r->o.addrlen);
    int e = rc < 0 && errno != EINPROGRESS ? errno : 0;
    if (!e)
        e = -loop_add_fd(h->loop, fd, LOOP_READ | LOOP_WRITE, s_on_io, c);
    if (e) {
        close(fd);
        free(c);
        errno = e;
        return NULL;
    }
    c->h = h;
    c->fd = fd;
    memcpy(&c->addr, &r->addr, r->o.addrlen);
    c->addrlen = r->o.addrlen;
    c->connected = rc == 0;
    c->want_write = true;
    list_init(&c->link);
    h->nopen++;
    return c;
}

static void s_watch(h1c_conn_t *c, bool write)
{
    if (c->want_write != write) {
        c->want_write = write;
        loop_mod_fd(c->h->loop, c->fd, LOOP_READ | (write ? LOOP_WRITE : 0));
    }
}

/* Gives r a connection: a kept one (unless fresh), else a new one. 0 or
 * -1 (errno). */
static int s_attach(h1c_req_t *r, bool fresh)
{
    h1c_conn_t *c = fresh ? NULL : s_take_idle(r->h, r);
    if (!c && !(c = s_connect(r->h, r)))
        return -1;
    c->req = r;
    c->sent = 0;
    h1parse_init(&c->parse, r->o.max_body, false);
    r->conn = c;
    return 0;
}

/* ---- the end of a request ---- */

/* Tells r's owner and frees r; its connection, if any, is kept for another
 * request when the answer allows, else closed. */
static void s_finish(h1c_req_t *r, h1c_result_t res)
{
    h1c_t *h = r->h;
    h1c_conn_t *c = r->conn;
    int status = c ? c->parse.status : r->status;
    double ra = c ? c->parse.retry_after : r->retry_after;
    if (c) {
        c->req = NULL;
        /* an answer that came before the whole request went out leaves the
         * peer reading the rest of it: the connection is not reused */
        bool sent = c->sent == r->o.head_len + r->o.body_len;
        if (res == H1C_OK && sent && c->parse.keep_alive && h->nidle < h->max_idle) {
            s_watch(c, false);
            c->idle_since = loop_now_ms(h->loop);
            list_push_front(&h->idle, &c->link);
            h->nidle++;
        } else {
            s_close(c);
        }
    }
    loop_cancel_timer(h->loop, &r->timer);
    h1c_done_fn done = r->done;
    void *ud = r->ud;
    free(r);
    done(res, status, ra, ud);
}

/* r's connection failed with res. A request sent on a kept connection that
 * got no byte back goes once more on a new one (the peer closed the kept
 * one while it was idle). */
static void s_failed(h1c_req_t *r, h1c_result_t res)
{
    h1c_conn_t *c = r->conn;
    bool again = c && c->reused && !c->parse.any && !r->retried &&
                 (res == H1C_SEND || res == H1C_RECV || res == H1C_EMPTY);
    if (c) {
        r->status = c->parse.status;
        r->retry_after = c->parse.retry_after;
        c->req = NULL;
        s_close(c);
        r->conn = NULL;
    }
    r->later = H1C_OK; /* whatever was to be told is being told */
    if (again) {
        r->retried = true;
        if (s_attach(r, true) < 0) {
            s_finish(r, H1C_CONNECT);
            return;
        }
        s_arm(r);
        if (r->conn->connected && s_send(r->conn) < 0)
            s_failed(r, H1C_SEND);
        return;
    }
    s_finish(r, res);
}

/* ---- timers ---- */

static void s_on_timer(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    h1c_req_t *r = ud;
    r->timer = NULL; /* one-shot: the loop frees it */
    h1c_result_t res = r->later != H1C_OK ? r->later : H1C_TIMEOUT;
    r->later = H1C_OK;
    s_failed(r, res);
}

/* The request's timer: its connect's bound while connecting, else the
 * whole request's. */
static void s_arm(h1c_req_t *r)
{
    loop_t *loop = r->h->loop;
    loop_cancel_timer(loop, &r->timer);
    uint64_t now = loop_now_ms(loop), at = r->deadline_ms;
    if (r->conn && !r->conn->connected) {
        long ct = r->o.connect_timeout_ms > 0 ? r->o.connect_timeout_ms
                                              : H1C_CONNECT_TIMEOUT_MS;
        if (!at || now + (uint64_t)ct < at)
            at = now + (uint64_t)ct;
    }
    if (at)
        r->timer = loop_add_timer(loop, at > now ? at - now : 0, 0, s_on_timer, r);
}

/* ---- sending and receiving ---- */

/* Sends what is left of the request. 0, or -1 when the connection failed. */
static int s_send(h1c_conn_t *c)
{
    const h1c_opts_t *o = &c->req->o;
    size_t total = o->head_len + o->body_len;
    while (c->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (c->sent < o->head_len)
            iov[n++] = (struct iovec){(char *)o->head + c->sent, o->head_len - c->sent};
        size_t boff = c->sent > o->head_len ? c->sent - o->head_len : 0;
        if (o->body_len > boff)
            iov[n++] = (struct iovec){(char *)o->body + boff, o->body_len - boff};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s_watch(c, true);
            return 0;
        }
        if (k < 0)
            return -1;
        c->sent += (size_t)k;
    }
    s_watch(c, false);
    return 0;
}

/* What one recv() brought, or the connection's end (n == 0). */
static void s_received(h1c_conn_t *c, const char *data, size_t n)
{
    h1c_req_t *r = c->req;
    if (n == 0) {
        h1parse_rc_t rc = h1parse_eof(&c->parse);
        c->parse.keep_alive = false;
        if (rc == H1P_DONE)
            s_finish(r, H1C_OK);
        else
            s_failed(r, rc == H1P_MORE ? H1C_EMPTY : H1C_RECV);
        return;
    }
    size_t used;
    h1parse_rc_t rc = h1parse_feed(&c->parse, data, n, r->o.body_out, &used);
    if (rc == H1P_MORE)
        return;
    if (rc == H1P_DONE && used < n) /* bytes nobody asked for: not reused */
        c->parse.keep_alive = false;
    s_finish(r, rc == H1P_DONE      ? H1C_OK
                : rc == H1P_TOO_BIG ? H1C_TOO_BIG
                                    : H1C_MALFORMED);
}

static void s_read(h1c_conn_t *c)
{
    h1c_t *h = c->h;
    ssize_t n;
    do
        n = recv(c->fd, h->buf, sizeof h->buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (!c->req) { /* idle: the peer closed it, or sent what nobody asked */
        s_close(c);
        return;
    }
    if (n < 0) {
        s_failed(c->req, H1C_RECV);
        return;
    }
    s_received(c, h->buf, (size_t)n);
}

/* The connect finished: 0, or -1 when it failed. */
static int s_connected(h1c_conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
        return -1;
    c->connected = true;
    s_arm(c->req);
    return 0;
}

static void s_on_io(loop_t *loop, int fd, unsigned events, void *ud)
{
    (void)loop;
    (void)fd;
    h1c_conn_t *c = ud;
    if (c->req && !c->connected) {
        if (!(events & (LOOP_WRITE | LOOP_ERROR)))
            return;
        if (s_connected(c) < 0) {
            s_failed(c->req, H1C_CONNECT);
            return;
        }
    }
    if (c->req && c->want_write && (events & (LOOP_WRITE | LOOP_ERROR))) {
        if (s_send(c) < 0) {
            s_failed(c->req, H1C_SEND);
            return;
        }
    }
    if (events & (LOOP_READ | LOOP_ERROR))
        s_read(c);
}

/* ---- requests ---- */

h1c_req_t *h1c_start(h1c_t *h, const h1c_opts_t *o, h1c_done_fn done, void *ud)
{
    if (!o->addr || o->addrlen > sizeof(struct sockaddr_storage) || !o->body_out) {
        errno = EINVAL;
        return NULL;
    }
    h1c_req_t *r = xcalloc(1, sizeof *r);
    r->h = h;
    r->o = *o;
    if (!r->o.max_body)
        r->o.max_body = H1C_MAX_BODY;
    memcpy(&r->addr, o->addr, o->addrlen);
    r->o.addr = (const struct sockaddr *)&r->addr;
    r->done = done;
    r->ud = ud;
    if (o->timeout_ms > 0)
        r->deadline_ms = loop_now_ms(h->loop) + (uint64_t)o->timeout_ms;
    h1c_result_t fail = H1C_OK;
    if (s_attach(r, false) < 0) /* unreachable, no ports left, no fds... */
        fail = H1C_CONNECT;
    else if (r->conn->connected && s_send(r->conn) < 0)
        fail = H1C_SEND;
    if (fail == H1C_OK) {
        s_arm(r);
    } else { /* told from a timer: never inside h1c_start */
        r->later = fail;
        r->timer = loop_add_timer(h->loop, 0, 0, s_on_timer, r);
    }
    return r;
}

void h1c_abort(h1c_t *h, h1c_req_t **rp)
{
    h1c_req_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    if (r->conn) {
        r->conn->req = NULL;
        s_close(r->conn);
    }
    loop_cancel_timer(h->loop, &r->timer);
    free(r);
    *rp = NULL;
}
