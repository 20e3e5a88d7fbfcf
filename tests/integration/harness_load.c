/* harness_load.c - see harness_load.h. */
#define _GNU_SOURCE
#include "harness_load.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness_base.h"
#include "harness_http.h"

struct th_load {
    int port;
    char path[256];
    unsigned reqs_per_conn;
    long quota; /* connections in all; 0: until stopped */
    int pause_ms;
    pthread_t *threads;
    unsigned nthreads;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stop, held;
    unsigned active;  /* threads inside a connection */
    unsigned running; /* threads not yet finished */
    long claimed;     /* connections started, against quota */
    th_load_stats_t st;
    th_load_t *prev, *next; /* the main thread's list */
};

static th_load_t *s_loads;

/* One thread's connection: fd and its receive buffer. */
typedef struct s_lconn {
    int fd;
    char buf[16384];
    size_t len;
} s_lconn_t;

/* Receives into lc->buf until deadline. Returns bytes read, -ECONNRESET on
 * EOF or reset, -ETIMEDOUT, -ENOBUFS when the buffer is full, or -errno. */
static int s_lc_fill(s_lconn_t *lc, long long deadline)
{
    if (lc->len >= sizeof lc->buf - 1)
        return -ENOBUFS;
    int n = th__recv(lc->fd, lc->buf + lc->len, sizeof lc->buf - lc->len, deadline);
    if (n > 0)
        lc->len += (size_t)n;
    return n;
}

/* The value of header name in a NUL-terminated response head, or NULL. */
static const char *s_head_value(const char *head, const char *name, char *out,
                                size_t outlen)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            v += strspn(v, " \t");
            size_t len = strcspn(v, "\r\n");
            snprintf(out, outlen, "%.*s", (int)(len < outlen ? len : outlen - 1), v);
            return out;
        }
    }
    return NULL;
}

/* Reads and drops body bytes of the response on lc. Returns 0 or as
 * s_lc_fill. */
static int s_lc_skip(s_lconn_t *lc, size_t body, long long deadline)
{
    while (body > 0) {
        if (lc->len == 0) {
            int rc = s_lc_fill(lc, deadline);
            if (rc < 0)
                return rc;
        }
        size_t take = lc->len < body ? lc->len : body;
        memmove(lc->buf, lc->buf + take, lc->len - take);
        lc->len -= take;
        body -= take;
    }
    return 0;
}

/* One GET on lc: returns the status (*close set when the server said
 * Connection: close) or -errno. The body is read and dropped. */
static int s_lc_get(s_lconn_t *lc, const char *path, bool *close_after)
{
    long long deadline = th_now_ms() + TH_IO_MS;
    char req[512];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    int rc = th__send(lc->fd, req, (size_t)n, deadline);
    if (rc < 0)
        return rc;
    char *end;
    while (!(end = memmem(lc->buf, lc->len, "\r\n\r\n", 4))) {
        if ((rc = s_lc_fill(lc, deadline)) < 0)
            return rc;
    }
    *end = '\0';
    int status = 0;
    if (sscanf(lc->buf, "HTTP/1.%*1[01] %3d", &status) != 1)
        return -EPROTO;
    char v[64];
    size_t body =
        s_head_value(lc->buf, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
    *close_after =
        s_head_value(lc->buf, "Connection", v, sizeof v) && strcasecmp(v, "close") == 0;
    size_t head = (size_t)(end - lc->buf) + 4;
    memmove(lc->buf, lc->buf + head, lc->len - head);
    lc->len -= head;
    rc = s_lc_skip(lc, body, deadline);
    return rc < 0 ? rc : status;
}

/* Records a failure (the first one's description is kept). */
static void s_load_fail(th_load_t *l, const char *fmt, ...)
{
    pthread_mutex_lock(&l->mu);
    if (l->st.failed++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->st.first_error, sizeof l->st.first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Makes reqs_per_conn requests on one connection, opening another when the
 * server closes it after a response that said so. */
static void s_load_conn(th_load_t *l)
{
    s_lconn_t *lc = calloc(1, sizeof *lc);
    lc->fd = -1;
    long ok = 0, conns = 0;
    for (unsigned i = 0; i < l->reqs_per_conn; i++) {
        if (lc->fd < 0) {
            lc->fd = th__tcp_connect(l->port, th_now_ms() + TH_IO_MS);
            lc->len = 0;
            if (lc->fd < 0) {
                s_load_fail(l, "connect: %s", strerror(-lc->fd));
                break;
            }
            conns++;
        }
        bool close_after = false;
        int rc = s_lc_get(lc, l->path, &close_after);
        if (rc < 0) {
            s_load_fail(l, "GET %s, request %u on its connection: no response (%s)",
                        l->path, i + 1, strerror(-rc));
            break;
        }
        if (rc != 200)
            s_load_fail(l, "GET %s: status %d", l->path, rc);
        else
            ok++;
        if (close_after) {
            close(lc->fd);
            lc->fd = -1;
        }
    }
    if (lc->fd >= 0)
        close(lc->fd);
    free(lc);
    pthread_mutex_lock(&l->mu);
    l->st.ok += ok;
    l->st.conns += conns;
    pthread_mutex_unlock(&l->mu);
}

static void *s_load_thread(void *arg)
{
    th_load_t *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->held && !l->stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop || (l->quota > 0 && l->claimed >= l->quota))
            break;
        l->claimed++;
        l->active++;
        pthread_mutex_unlock(&l->mu);
        s_load_conn(l);
        if (l->pause_ms > 0)
            th_sleep_ms(l->pause_ms);
        pthread_mutex_lock(&l->mu);
        l->active--;
        pthread_cond_broadcast(&l->cv);
    }
    l->running--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

th_load_t *th_load_start(const th_load_opts_t *o)
{
    th_load_t *l = calloc(1, sizeof *l);
    l->port = o->port;
    snprintf(l->path, sizeof l->path, "%s", o->path);
    l->reqs_per_conn = o->reqs_per_conn ? o->reqs_per_conn : 1;
    l->quota = o->conns;
    l->pause_ms = o->pause_ms;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->threads = calloc(o->threads, sizeof *l->threads);
    TH_LINK(s_loads, l);
    /* Threads block the signals the tests send to children, so none of
     * them is delivered to a client thread by accident. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < o->threads; i++) {
        pthread_mutex_lock(&l->mu);
        l->running++;
        pthread_mutex_unlock(&l->mu);
        if (pthread_create(&l->threads[i], NULL, s_load_thread, l) != 0) {
            pthread_mutex_lock(&l->mu);
            l->running--;
            pthread_mutex_unlock(&l->mu);
            break;
        }
        l->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (l->nthreads < o->threads) {
        fprintf(stderr, "harness: started %u of %u client threads\n", l->nthreads,
                o->threads);
        th_load_stop(&l, 0, NULL);
    }
    return l;
}

void th_load_hold(th_load_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->held = true;
    while (l->active > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void th_load_release(th_load_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->held = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void th_load_get(th_load_t *l, th_load_stats_t *st)
{
    pthread_mutex_lock(&l->mu);
    *st = l->st;
    pthread_mutex_unlock(&l->mu);
}

void th_load_stop(th_load_t **lp, int wait_ms, th_load_stats_t *st)
{
    th_load_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    *lp = NULL;
    TH_UNLINK(s_loads, l);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    while (l->quota > 0 && l->running > 0 && wait_ms > 0 &&
           pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0) {
    }
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->nthreads; i++)
        pthread_join(l->threads[i], NULL);
    if (st)
        *st = l->st;
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->threads);
    free(l);
}

void th__loads_release(void)
{
    while (s_loads) {
        th_load_t *l = s_loads;
        th_load_stop(&l, 0, NULL);
    }
}
