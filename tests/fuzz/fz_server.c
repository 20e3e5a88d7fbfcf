/* fz_server.c - see fz_server.h. */
#define _GNU_SOURCE
#include "fz_server.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base.h"
#include "fz.h"
#include "log.h"

#define FZ_QUIET_POLLS 3   /* polls without progress before the client stops */
#define FZ_REPLY_CAP 65536 /* reply bytes kept */

/* One exchange: a client connection on the same loop as the server. */
typedef struct xchg {
    int fd;
    const uint8_t *data;
    size_t len, off;
    bool shut; /* our sending side is shut down */
    bool done; /* the server closed the connection */
    sbuf_t *reply;
    uint64_t got;   /* reply bytes read */
    uint64_t marks; /* got + requests completed + pool jobs done, at the last poll */
    int quiet;      /* polls in a row without progress */
} xchg_t;

struct fz_server {
    loop_t *loop;
    metrics_t *metrics;
    http_server_t *http;
    pool_t *pool;
    bool (*busy)(void *ud);
    void *busy_ud;
    int lfd;
    struct sockaddr_un addr;
    socklen_t addrlen;
    xchg_t *x; /* the exchange under way, or NULL */
};

static void s_bind(fz_server_t *s)
{
    s->addr.sun_family = AF_UNIX;
    /* An abstract name: nothing to clean up, unique per process. */
    int n = snprintf(s->addr.sun_path + 1, sizeof s->addr.sun_path - 1,
                     "vapora-fuzz-%d", (int)getpid());
    s->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FZ_CHECK(s->lfd >= 0, "socket: %s", strerror(errno));
    FZ_CHECK(bind(s->lfd, (struct sockaddr *)&s->addr, s->addrlen) == 0, "bind: %s",
             strerror(errno));
    FZ_CHECK(listen(s->lfd, 64) == 0, "listen: %s", strerror(errno));
}

static uint64_t s_marks(const fz_server_t *s)
{
    uint64_t m = s->x->got + http_server_requests(s->http);
    if (s->pool) {
        pool_stats_t st;
        pool_get_stats(s->pool, &st);
        m += st.completed;
    }
    return m;
}

static bool s_busy(const fz_server_t *s)
{
    if (s->busy && s->busy(s->busy_ud))
        return true;
    if (!s->pool)
        return false;
    pool_stats_t st;
    pool_get_stats(s->pool, &st);
    return st.busy || st.queued;
}

/* Before the loop sleeps: once the input is out and taken, count the polls
 * in which nothing moved; after a few, the client has nothing more to say.
 * While the server has bytes to read or a job runs, the loop sleeps
 * until that makes an event (its reading, the job's completion): polling
 * then would only cost a loaded machine its time. */
static int64_t s_before_sleep(loop_t *loop, void *ud)
{
    UNUSED(loop);
    fz_server_t *s = ud;
    xchg_t *x = s->x;
    if (!x || x->done || x->shut || x->off < x->len)
        return -1;
    int unread = 0;
    if (ioctl(x->fd, SIOCOUTQ, &unread) < 0)
        unread = 0;
    if (unread > 0 || s_busy(s)) {
        x->quiet = 0;
        return -1;
    }
    uint64_t m = s_marks(s);
    if (m != x->marks) {
        x->marks = m;
        x->quiet = 0;
        return 0;
    }
    if (++x->quiet >= FZ_QUIET_POLLS) {
        shutdown(x->fd, SHUT_WR);
        x->shut = true;
        return -1;
    }
    return 0;
}

void fz_server_config(http_config_t *cfg)
{
    http_config_defaults(cfg);
    cfg->service = "fuzz";
    /* Inputs that make libmicrohttpd wait for the timeout (see
     * docs/fuzzing.md) cost this much each: keep it short. */
    cfg->request_timeout = 1;
}

fz_server_t *fz_server_new(const http_config_t *cfg)
{
    fz_server_t *s = calloc(1, sizeof *s);
    FZ_CHECK(s, "out of memory");
    log_set_level(LOG_ERROR);
    s->loop = loop_new();
    s->metrics = metrics_new();
    FZ_CHECK(s->loop && s->metrics, "loop_new or metrics_new failed");
    s->http = http_server_new(s->loop, s->metrics, cfg);
    FZ_CHECK(s->http, "http_server_new failed");
    /* After the server's own hook, which runs libmicrohttpd when it has
     * buffered work. */
    loop_add_before_sleep(s->loop, s_before_sleep, s);
    s_bind(s);
    return s;
}

loop_t *fz_server_loop(fz_server_t *s)
{
    return s->loop;
}

metrics_t *fz_server_metrics(fz_server_t *s)
{
    return s->metrics;
}

http_server_t *fz_server_http(fz_server_t *s)
{
    return s->http;
}

void fz_server_watch_pool(fz_server_t *s, pool_t *pool)
{
    s->pool = pool;
}

void fz_server_watch_busy(fz_server_t *s, bool (*busy)(void *ud), void *ud)
{
    s->busy = busy;
    s->busy_ud = ud;
}

void fz_server_start(fz_server_t *s)
{
    FZ_CHECK(http_server_start(s->http, s->lfd) == 0, "http_server_start failed");
}

static void s_end(loop_t *loop, xchg_t *x)
{
    x->done = true;
    loop_del_fd(loop, x->fd);
    loop_stop(loop);
}

static void s_write_more(loop_t *loop, xchg_t *x)
{
    while (x->off < x->len) {
        ssize_t n = send(x->fd, x->data + x->off, x->len - x->off, MSG_NOSIGNAL);
        if (n > 0) {
            x->off += (size_t)n;
        } else if (errno == EAGAIN || errno == EINTR) {
            return;
        } else {
            x->off = x->len; /* the server closed: the rest cannot go */
        }
    }
    loop_mod_fd(loop, x->fd, LOOP_READ);
}

static void s_read(loop_t *loop, xchg_t *x)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(x->fd, buf, sizeof buf, 0);
        if (n > 0) {
            x->got += (size_t)n;
            if (x->reply && x->reply->len < FZ_REPLY_CAP)
                sbuf_append(x->reply, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        s_end(loop, x); /* end of stream, or a reset */
        return;
    }
}

static void s_on_client(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(fd);
    xchg_t *x = ud;
    if (ev & LOOP_WRITE)
        s_write_more(loop, x);
    if (!x->done && (ev & (LOOP_READ | LOOP_ERROR | LOOP_HANGUP)))
        s_read(loop, x);
}

static void s_hang(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    xchg_t *x = ud;
    fz_fail(__FILE__, __LINE__, "connection closed",
            "the server kept the connection open %d ms after the client's last "
            "byte (%zu of %zu bytes sent, %s)",
            FZ_SERVER_HANG_MS, x->off, x->len,
            x->shut ? "sending side shut down" : "still sending");
}

void fz_server_exchange(fz_server_t *s, const void *data, size_t len, sbuf_t *reply)
{
    static int show = -1;
    sbuf_t shown = {0};
    if (show < 0)
        show = getenv("FZ_SHOW") != NULL;
    if (show && !reply)
        reply = &shown;
    xchg_t x = {.data = data, .len = len, .reply = reply};
    x.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FZ_CHECK(x.fd >= 0, "socket: %s", strerror(errno));
    FZ_CHECK(connect(x.fd, (struct sockaddr *)&s->addr, s->addrlen) == 0, "connect: %s",
             strerror(errno));
    FZ_CHECK(loop_add_fd(s->loop, x.fd, LOOP_READ | LOOP_WRITE, s_on_client, &x) == 0,
             "loop_add_fd failed");
    s->x = &x;
    loop_timer_t *hang = loop_add_timer(s->loop, FZ_SERVER_HANG_MS, 0, s_hang, &x);
    while (!x.done)
        loop_run(s->loop);
    loop_cancel_timer(s->loop, &hang);
    s->x = NULL;
    close(x.fd);
    if (show)
        fprintf(stderr, "---- the server answered %llu bytes:\n%.*s\n",
                (unsigned long long)x.got, (int)reply->len,
                reply->data ? reply->data : "");
    sbuf_free(&shown);
}
