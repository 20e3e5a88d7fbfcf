/* pool.h - the blocking-task pool: our spawn_blocking.
 *
 * DESIGN. `threads` pool threads take jobs from a bounded FIFO (mutex +
 * condvar). A full queue rejects at once with -EBUSY (HTTP 503 upstream).
 * Finished jobs go onto a completion list; the pool's eventfd is written only
 * when that list goes from empty to non-empty, so a burst of N completions
 * costs one wake-up. The loop thread swaps the list out and runs each job's
 * done() without holding the lock. Pool threads block all signals.
 *
 * Threads: pool_new, pool_submit, pool_cancel, pool_destroy and every done()
 * callback run on the loop thread; work() runs on a pool thread. */
#ifndef VAPORA_POOL_H
#define VAPORA_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct pool pool_t;
typedef struct pool_job pool_job_t;

/* Runs on a pool thread. */
typedef void (*pool_work_fn)(void *arg);
/* Runs on the loop thread after work() returned (status 0) or when the job
 * was cancelled before it started (status -ECANCELED; work() never ran). */
typedef void (*pool_done_fn)(void *arg, int status);

typedef struct pool_stats {
    unsigned threads;
    unsigned busy;      /* threads running a job now */
    unsigned queued;    /* jobs waiting for a thread */
    uint64_t rejected;  /* submissions refused because the queue was full */
    uint64_t completed; /* done() callbacks run */
} pool_stats_t;

/* Starts `threads` threads with room for `max_queue` waiting jobs, and
 * registers the completion eventfd on loop. NULL on failure (errno set).
 * Create it after any fork: threads do not survive fork. */
pool_t *pool_new(loop_t *loop, unsigned threads, unsigned max_queue);

/* Cancels every queued job (their done() runs with -ECANCELED), waits for
 * running jobs to finish, runs their done() with 0, joins the threads and
 * frees the pool. Accepts NULL; sets *poolp to NULL. */
void pool_destroy(pool_t **poolp);

/* Queues work(arg); done(arg, status) follows on the loop thread. Returns 0
 * and, when jobp is non-NULL, a handle valid until done() starts; or -EBUSY
 * when the queue is full, -ESHUTDOWN when the pool is stopping. On failure
 * nothing is called. */
int pool_submit(pool_t *pool, pool_work_fn work, pool_done_fn done, void *arg,
                pool_job_t **jobp);

/* Cancels a job that has not started: returns 0 and its done() runs with
 * -ECANCELED on a later loop iteration. Returns -EBUSY when the job is
 * already running (done() will follow normally). */
int pool_cancel(pool_t *pool, pool_job_t *job);

/* A snapshot of the counters (any thread). */
void pool_get_stats(pool_t *pool, pool_stats_t *out);

#endif
