/* loop_epoll.c - see loop_epoll.h: LOOP_* bits to epoll's and back. */
#include "loop_epoll.h"

#include <errno.h>
#include <sys/epoll.h>

#include "loop.h"

int loop__epoll_open(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static uint32_t s_to_epoll(unsigned ev)
{
    uint32_t e = 0;
    /* EPOLLEXCLUSIVE accepts only IN, OUT, ET and WAKEUP beside it. */
    if (ev & LOOP_READ)
        e |= (ev & LOOP_EXCLUSIVE) ? EPOLLIN : EPOLLIN | EPOLLRDHUP;
    if (ev & LOOP_WRITE)
        e |= EPOLLOUT;
    if (ev & LOOP_EXCLUSIVE)
        e |= EPOLLEXCLUSIVE;
    if (ev & LOOP_EDGE)
        e |= EPOLLET;
    if (ev & LOOP_HANGUP)
        e |= EPOLLRDHUP;
    return e;
}

static unsigned s_from_epoll(uint32_t ev)
{
    unsigned e = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP))
        e |= LOOP_READ;
    if (ev & EPOLLOUT)
        e |= LOOP_WRITE;
    if (ev & (EPOLLERR | EPOLLHUP))
        e |= LOOP_ERROR;
    if (ev & (EPOLLRDHUP | EPOLLHUP))
        e |= LOOP_HANGUP;
    return e;
}

int loop__epoll_ctl(int epfd, int op, int fd, unsigned events, uint64_t tag)
{
    static const int ops[] = {
        [LOOP__ADD] = EPOLL_CTL_ADD, [LOOP__MOD] = EPOLL_CTL_MOD, [LOOP__DEL] = EPOLL_CTL_DEL};
    struct epoll_event ev = {.events = s_to_epoll(events), .data.u64 = tag};
    return epoll_ctl(epfd, ops[op], fd, &ev) < 0 ? -errno : 0;
}

int loop__epoll_wait(int epfd, loop__event_t *out, int max, int timeout_ms)
{
    struct epoll_event evs[max];
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++)
        out[i] = (loop__event_t){.tag = evs[i].data.u64, .events = s_from_epoll(evs[i].events)};
    return n;
}
