/* loop_epoll.h - the epoll backend of loop.c (internal: only loop.c calls
 * it), as redis keeps ae_epoll.c apart from ae.c. This is the one file
 * besides loop_epoll.c that knows epoll exists.
 *
 * A registration carries an opaque 64-bit tag that comes back with each of
 * its events; loop.c puts the fd and its generation there. Events use the
 * LOOP_* bits of loop.h: LOOP_READ (readable, or the peer shut down its
 * side), LOOP_WRITE, LOOP_ERROR (EPOLLERR or EPOLLHUP) and LOOP_HANGUP (the
 * peer closed or shut down). */
#ifndef VAPORA_LOOP_EPOLL_H
#define VAPORA_LOOP_EPOLL_H

#include <stdint.h>

typedef struct loop__event {
    uint64_t tag;
    unsigned events;
} loop__event_t;

enum { LOOP__ADD, LOOP__MOD, LOOP__DEL };

/* A new epoll instance (close-on-exec): its fd, or -errno. */
int loop__epoll_open(void);
/* Adds, changes or removes fd's registration. events are LOOP_READ,
 * LOOP_WRITE, LOOP_EXCLUSIVE, LOOP_EDGE and LOOP_HANGUP. Returns 0 or
 * -errno. */
int loop__epoll_ctl(int epfd, int op, int fd, unsigned events, uint64_t tag);
/* Waits up to timeout_ms (-1: no bound) for at most max events. Returns
 * how many were stored, or -errno (-EINTR included). */
int loop__epoll_wait(int epfd, loop__event_t *out, int max, int timeout_ms);

#endif
