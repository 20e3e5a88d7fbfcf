/* zchan.h - a ZeroMQ socket driven by our loop.
 *
 * DESIGN. ZMQ_FD is edge-triggered and only a hint: any send or receive on
 * the socket (or reading ZMQ_EVENTS) may consume the edge. So after every
 * wake-up of the fd and after every send, zchan drains the socket: it reads
 * ZMQ_EVENTS and receives with ZMQ_DONTWAIT while ZMQ_POLLIN is set,
 * handing each whole multipart message to the callback. Sends never block
 * (ZMQ_DONTWAIT): a full pipe answers -EAGAIN and the caller decides.
 *
 * Loop thread only. Create the ZeroMQ context after any fork, in the
 * process that uses it. */
#ifndef VAPORA_ZCHAN_H
#define VAPORA_ZCHAN_H

#include <stddef.h>

#include "loop.h"

typedef struct zchan zchan_t;

#define ZCHAN_MAX_PARTS 8

/* One received message: parts[i] points at lens[i] bytes, valid only during
 * the callback. For a ROUTER socket, part 0 is the peer's routing id. */
typedef struct zchan_msg {
    const void *parts[ZCHAN_MAX_PARTS];
    size_t lens[ZCHAN_MAX_PARTS];
    size_t n;
} zchan_msg_t;

typedef void (*zchan_fn)(zchan_t *ch, const zchan_msg_t *msg, void *ud);

/* Wraps zsock (a libzmq socket, already bound or connected) and registers
 * its ZMQ_FD on loop. Takes ownership of zsock (closed by zchan_destroy).
 * Returns NULL on failure (errno set). */
zchan_t *zchan_new(loop_t *loop, void *zsock, zchan_fn fn, void *ud);
/* Unregisters and closes the socket. Accepts NULL; sets *chp = NULL. */
void zchan_destroy(zchan_t **chp);

/* Sends n parts as one message without blocking. Returns 0, -EAGAIN when the
 * peer's pipe is full, -EHOSTUNREACH when a ROUTER does not know the peer,
 * or -errno. Messages that arrived meanwhile are dispatched before it
 * returns, so the callback may run inside zchan_send. */
int zchan_send(zchan_t *ch, const void *const *parts, const size_t *lens, size_t n);

#endif
