/* sigfd.c - see sigfd.h. */
#define _GNU_SOURCE
#include "sigfd.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "alloc.h"
#include "base.h"

struct sigfd {
    loop_t *loop;
    int fd;
    sigfd_fn fn;
    void *ud;
};

static void s_on_readable(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(ev);
    sigfd_t *s = ud;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        s->fn((int)si.ssi_signo, s->ud);
}

sigfd_t *sigfd_new(loop_t *loop, const int *signals, size_t n, sigfd_fn fn, void *ud)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < n; i++)
        sigaddset(&set, signals[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return NULL;
    sigfd_t *s = xcalloc(1, sizeof *s);
    *s = (sigfd_t){.loop = loop, .fd = fd, .fn = fn, .ud = ud};
    int rc = loop_add_fd(loop, fd, LOOP_READ, s_on_readable, s);
    if (rc < 0) {
        close(fd);
        free(s);
        errno = -rc;
        return NULL;
    }
    return s;
}

void sigfd_destroy(sigfd_t **sp)
{
    sigfd_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    loop_del_fd(s->loop, s->fd);
    close(s->fd);
    free(s);
    *sp = NULL;
}
