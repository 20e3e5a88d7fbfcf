/* pool.c - see pool.h. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "mailbox.h"

struct pool {
    loop_t *loop;
    mailbox_t *done; /* finished jobs, to the loop thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *tids;
    unsigned nthreads;
    unsigned max_queue;
    bool stopping;
    /* Guarded by mu. */
    list_t queue;
    unsigned queued;
    unsigned busy;
    uint64_t rejected;
    uint64_t completed;
};

static void *s_thread_main(void *arg)
{
    pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (list_empty(&p->queue) && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        list_t *n = list_pop_front(&p->queue);
        if (!n)
            break; /* stopping and nothing left */
        pool_work_t *w = list_item(n, pool_work_t, link);
        p->queued--;
        w->running = true;
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        w->work(w);
        w->status = 0;
        pthread_mutex_lock(&p->mu);
        p->busy--;
        pthread_mutex_unlock(&p->mu);
        VP_ASSERT(mailbox_post(p->done, &w->link) == 0);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Loop thread: runs the done() callbacks of the finished jobs. */
static void s_on_done(list_t *items, void *ud)
{
    pool_t *p = ud;
    uint64_t n = 0;
    list_for_each_safe(it, nx, items) {
        pool_work_t *w = list_item(it, pool_work_t, link);
        list_remove(it);
        w->done(w, w->status);
        n++;
    }
    pthread_mutex_lock(&p->mu);
    p->completed += n;
    pthread_mutex_unlock(&p->mu);
}

static unsigned s_start_threads(pool_t *p, unsigned threads)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* threads inherit the mask */
    for (unsigned i = 0; i < threads; i++) {
        int rc = pthread_create(&p->tids[i], NULL, s_thread_main, p);
        if (rc != 0) {
            log_err(rc, "pthread_create (pool thread %u)", i);
            break;
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p->nthreads;
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
    list_init(&p->queue);
    p->done = mailbox_new(loop, 0, s_on_done, p);
    if (!p->done) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->tids = xcalloc(threads, sizeof *p->tids);
    if (s_start_threads(p, threads) == 0) {
        pool_destroy(&p);
        errno = EAGAIN;
        return NULL;
    }
    return p;
}

int pool_submit(pool_t *p, pool_work_t *w, pool_work_fn work, pool_done_fn done)
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
    w->work = work;
    w->done = done;
    w->status = 0;
    w->running = false;
    list_push_back(&p->queue, &w->link);
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int pool_cancel(pool_t *p, pool_work_t *w)
{
    pthread_mutex_lock(&p->mu);
    if (w->running) {
        pthread_mutex_unlock(&p->mu);
        return -EBUSY;
    }
    list_remove(&w->link);
    p->queued--;
    w->status = -ECANCELED;
    pthread_mutex_unlock(&p->mu);
    VP_ASSERT(mailbox_post(p->done, &w->link) == 0);
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
    list_t cancelled = LIST_INIT(cancelled);
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    list_splice(&cancelled, &p->queue);
    p->queued = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    list_for_each_safe(it, nx, &cancelled) {
        list_remove(it);
        list_item(it, pool_work_t, link)->status = -ECANCELED;
        VP_ASSERT(mailbox_post(p->done, it) == 0);
    }
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->tids[i], NULL);
    mailbox_destroy(&p->done); /* runs the last done() callbacks */
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->tids);
    free(p);
    *poolp = NULL;
}
