/* zchan.c - see zchan.h. */
#define _GNU_SOURCE
#include "zchan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zmq.h>

#include "log.h"
#include "alloc.h"

struct zchan {
    loop_t *loop;
    void *sock;
    int fd;
    zchan_fn fn;
    void *ud;
    bool in_pump;    /* re-entrancy guard: a callback that sends */
    bool *destroyed; /* set when destroyed from inside a callback */
};

/* Receives one whole message; returns 0, -EAGAIN when none, or -errno. */
static int s_recv_msg(zchan_t *ch, zmq_msg_t *frames, zchan_msg_t *out)
{
    out->n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t *f = &frames[out->n < ZCHAN_MAX_PARTS ? out->n : ZCHAN_MAX_PARTS];
        zmq_msg_init(f);
        if (zmq_msg_recv(f, ch->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(f);
            return -e;
        }
        more = zmq_msg_more(f);
        if (out->n < ZCHAN_MAX_PARTS) {
            out->parts[out->n] = zmq_msg_data(f);
            out->lens[out->n] = zmq_msg_size(f);
            out->n++;
        } else {
            zmq_msg_close(f); /* excess parts are dropped */
        }
    }
    return 0;
}

/* Dispatches every message ready now. */
static void s_pump(zchan_t *ch)
{
    if (ch->in_pump)
        return;
    ch->in_pump = true;
    bool destroyed = false;
    ch->destroyed = &destroyed;
    for (;;) {
        int ev = 0;
        size_t sz = sizeof ev;
        if (zmq_getsockopt(ch->sock, ZMQ_EVENTS, &ev, &sz) < 0 || !(ev & ZMQ_POLLIN))
            break;
        zmq_msg_t frames[ZCHAN_MAX_PARTS + 1];
        zchan_msg_t m;
        int rc = s_recv_msg(ch, frames, &m);
        if (rc < 0) {
            if (rc != -EAGAIN && rc != -EINTR)
                log_err(-rc, "zmq_msg_recv");
            break;
        }
        ch->fn(ch, &m, ch->ud);
        for (size_t i = 0; i < m.n; i++)
            zmq_msg_close(&frames[i]);
        if (destroyed)
            return;
    }
    ch->destroyed = NULL;
    ch->in_pump = false;
}

static void s_on_fd(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    UNUSED(ev);
    s_pump(ud);
}

zchan_t *zchan_new(loop_t *loop, void *zsock, zchan_fn fn, void *ud)
{
    zchan_t *ch = xcalloc(1, sizeof *ch);
    ch->loop = loop;
    ch->sock = zsock;
    ch->fn = fn;
    ch->ud = ud;
    size_t sz = sizeof ch->fd;
    int rc = zmq_getsockopt(zsock, ZMQ_FD, &ch->fd, &sz);
    if (rc == 0)
        rc = loop_add_fd(loop, ch->fd, LOOP_READ | LOOP_EDGE, s_on_fd, ch);
    if (rc != 0) {
        int e = rc < 0 && rc != -1 ? -rc : errno;
        free(ch);
        errno = e;
        return NULL;
    }
    s_pump(ch); /* anything that arrived before registration */
    return ch;
}

void zchan_destroy(zchan_t **chp)
{
    zchan_t *ch = chp ? *chp : NULL;
    if (!ch)
        return;
    if (ch->destroyed)
        *ch->destroyed = true;
    loop_del_fd(ch->loop, ch->fd);
    int zero = 0;
    zmq_setsockopt(ch->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(ch->sock);
    free(ch);
    *chp = NULL;
}

int zchan_send(zchan_t *ch, const void *const *parts, const size_t *lens, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_send(ch->sock, parts[i], lens[i], flags) < 0) {
            rc = -errno;
            break;
        }
    }
    s_pump(ch); /* the send may have consumed a read edge */
    return rc;
}
