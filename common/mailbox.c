/* mailbox.c - see mailbox.h. */
#define _GNU_SOURCE
#include "mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"

struct mailbox {
    loop_t *loop;
    int evfd;
    size_t max;
    mailbox_fn fn;
    void *ud;
    pthread_mutex_t mu;
    list_t items; /* guarded by mu */
    size_t count; /* guarded by mu */
};

void mailbox_drain(mailbox_t *mb)
{
    uint64_t v;
    while (read(mb->evfd, &v, sizeof v) > 0) {
    }
    list_t got = LIST_INIT(got);
    pthread_mutex_lock(&mb->mu);
    list_splice(&got, &mb->items);
    mb->count = 0;
    pthread_mutex_unlock(&mb->mu);
    if (!list_empty(&got))
        mb->fn(&got, mb->ud);
}

static void s_on_wake(loop_t *loop, int fd, unsigned events, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    UNUSED(events);
    mailbox_drain(ud);
}

mailbox_t *mailbox_new(loop_t *loop, size_t max, mailbox_fn fn, void *ud)
{
    mailbox_t *mb = xcalloc(1, sizeof *mb);
    mb->loop = loop;
    mb->max = max;
    mb->fn = fn;
    mb->ud = ud;
    list_init(&mb->items);
    mb->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = mb->evfd < 0 ? -errno : loop_add_fd(loop, mb->evfd, LOOP_READ, s_on_wake, mb);
    if (rc < 0) {
        if (mb->evfd >= 0)
            close(mb->evfd);
        free(mb);
        errno = -rc;
        return NULL;
    }
    pthread_mutex_init(&mb->mu, NULL);
    return mb;
}

void mailbox_destroy(mailbox_t **mbp)
{
    mailbox_t *mb = mbp ? *mbp : NULL;
    if (!mb)
        return;
    mailbox_drain(mb);
    loop_del_fd(mb->loop, mb->evfd);
    close(mb->evfd);
    pthread_mutex_destroy(&mb->mu);
    free(mb);
    *mbp = NULL;
}

int mailbox_post(mailbox_t *mb, list_t *item)
{
    pthread_mutex_lock(&mb->mu);
    if (mb->max && mb->count >= mb->max) {
        pthread_mutex_unlock(&mb->mu);
        return -ENOBUFS;
    }
    bool wake = list_empty(&mb->items);
    list_push_back(&mb->items, item);
    mb->count++;
    pthread_mutex_unlock(&mb->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t r = write(mb->evfd, &one, sizeof one);
        (void)r; /* EAGAIN: a wake-up is already pending */
    }
    return 0;
}
