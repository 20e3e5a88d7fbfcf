/* pool.c - see pool.h. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "alloc.h"

struct pool_job {
    pool_work_fn work;
    pool_done_fn done;
    void *arg;
    int status;
    bool running;
    pool_job_t *next, *prev; /* queue links (doubly linked for cancel) */
};

struct pool {
    loop_t *loop;
    int evfd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *tids;
    unsigned nthreads;
    unsigned max_queue;
    bool stopping;
    /* Guarded by mu. */
    pool_job_t *qhead, *qtail;
    unsigned queued;
    unsigned busy;
    pool_job_t *done_head, *done_tail; /* singly linked through next */
    uint64_t rejected;
    uint64_t completed;
};

static void s_push_done(pool_t *p, pool_job_t *j)
{
    /* Caller holds mu. Returns nothing; wakes the loop on empty → non-empty. */
    bool was_empty = p->done_head == NULL;
    j->next = NULL;
    if (p->done_tail)
        p->done_tail->next = j;
    else
        p->done_head = j;
    p->done_tail = j;
    if (was_empty) {
        uint64_t one = 1;
        ssize_t r = write(p->evfd, &one, sizeof one);
        (void)r;
    }
}

static void s_unlink(pool_t *p, pool_job_t *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->qhead = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->qtail = j->prev;
    j->next = j->prev = NULL;
    p->queued--;
}

static void *s_thread_main(void *arg)
{
    pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->qhead && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->qhead)
            break; /* stopping and nothing left */
        pool_job_t *j = p->qhead;
        s_unlink(p, j);
        j->running = true;
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        j->work(j->arg);
        pthread_mutex_lock(&p->mu);
        p->busy--;
        j->status = 0;
        s_push_done(p, j);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Runs the done() callbacks of every finished job. Loop thread. */
static void s_drain_completions(pool_t *p)
{
    uint64_t v;
    while (read(p->evfd, &v, sizeof v) > 0) {
    }
    pthread_mutex_lock(&p->mu);
    pool_job_t *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    uint64_t n = 0;
    while (list) {
        pool_job_t *j = list;
        list = j->next;
        j->done(j->arg, j->status);
        free(j);
        n++;
    }
    if (n) {
        pthread_mutex_lock(&p->mu);
        p->completed += n;
        pthread_mutex_unlock(&p->mu);
    }
}

static void s_on_event(loop_t *loop, int fd, unsigned events, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    UNUSED(events);
    s_drain_completions(ud);
}

pool_t *pool_new(loop_t *loop, unsigned threads, unsigned max_queue)
{
    if (threads == 0 || max_queue == 0) {
        errno = EINVAL;
        return NULL;
    }
    pool_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->max_queue = max_queue;
    p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->evfd < 0) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int rc = loop_add_fd(loop, p->evfd, LOOP_READ, s_on_event, p);
    VP_ASSERT(rc == 0);
    p->tids = xcalloc(threads, sizeof *p->tids);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* threads inherit the mask */
    for (unsigned i = 0; i < threads; i++) {
        rc = pthread_create(&p->tids[i], NULL, s_thread_main, p);
        if (rc != 0) {
            log_err(rc, "pthread_create (pool thread %u)", i);
            break;
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nthreads == 0) {
        pool_destroy(&p);
        errno = EAGAIN;
        return NULL;
    }
    return p;
}

int pool_submit(pool_t *p, pool_work_fn work, pool_done_fn done, void *arg,
                pool_job_t **jobp)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return -ESHUTDOWN;
    }
    if (p->queued >= p->max_queue) {
        p->rejected++;
        pthread_mutex_unlock(&p->mu);
        return -EBUSY;
    }
    pool_job_t *j = xcalloc(1, sizeof *j);
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->prev = p->qtail;
    if (p->qtail)
        p->qtail->next = j;
    else
        p->qhead = j;
    p->qtail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (jobp)
        *jobp = j;
    return 0;
}

int pool_cancel(pool_t *p, pool_job_t *j)
{
    pthread_mutex_lock(&p->mu);
    if (j->running) {
        pthread_mutex_unlock(&p->mu);
        return -EBUSY;
    }
    s_unlink(p, j);
    j->status = -ECANCELED;
    s_push_done(p, j);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void pool_get_stats(pool_t *p, pool_stats_t *out)
{
    pthread_mutex_lock(&p->mu);
    out->threads = p->nthreads;
    out->busy = p->busy;
    out->queued = p->queued;
    out->rejected = p->rejected;
    out->completed = p->completed;
    pthread_mutex_unlock(&p->mu);
}

void pool_destroy(pool_t **poolp)
{
    pool_t *p = poolp ? *poolp : NULL;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    while (p->qhead) {
        pool_job_t *j = p->qhead;
        s_unlink(p, j);
        j->status = -ECANCELED;
        s_push_done(p, j);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->tids[i], NULL);
    s_drain_completions(p);
    loop_del_fd(p->loop, p->evfd);
    close(p->evfd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->tids);
    free(p);
    *poolp = NULL;
}
