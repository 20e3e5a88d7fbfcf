/* pool.h - the blocking-task pool: our spawn_blocking.
 *
 * DESIGN. `threads` pool threads take jobs from a bounded FIFO (mutex +
 * condvar). A full queue rejects at once with -EBUSY (HTTP 503 upstream).
 * Finished jobs go to the loop through a mailbox (mailbox.h): a burst of N
 * completions costs one wake-up, and the loop runs each job's done() without
 * holding a lock. Jobs are embedded in their callers' requests (pool_work_t),
 * so submitting allocates nothing. Pool threads block all signals.
 *
 * Threads: pool_new, pool_submit, pool_cancel, pool_destroy and every done()
 * callback run on the loop thread; work() runs on a pool thread. */
#ifndef VAPORA_POOL_H
#define VAPORA_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "loop.h"

typedef struct pool pool_t;
typedef struct pool_work pool_work_t;

/* Runs on a pool thread. */
typedef void (*pool_work_fn)(pool_work_t *w);
/* Runs on the loop thread after work() returned (status 0) or when the job
 * was cancelled before it started (status -ECANCELED; work() never ran).
 * The pool is done with w when it is called: done() may free it. */
typedef void (*pool_done_fn)(pool_work_t *w, int status);

/* A job, embedded in the caller's request (libuv's uv_work_t) and reached
 * back with container_of, so a submission allocates nothing. The pool owns
 * the members from pool_submit until done() is called; the caller owns the
 * memory, which must stay valid until then. */
struct pool_work {
    pool_work_fn work;
    pool_done_fn done;
    list_t link; /* the queue, then the completions */
    int status;
    bool running;
};

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

/* Queues w: work(w) on a pool thread, then done(w, status) on the loop
 * thread. Returns 0, or -EBUSY when the queue is full, -ESHUTDOWN when the
 * pool is stopping; on failure nothing is called and w is the caller's. */
int pool_submit(pool_t *pool, pool_work_t *w, pool_work_fn work, pool_done_fn done);

/* Cancels a job that has not started: returns 0 and its done() runs with
 * -ECANCELED on a later loop iteration. Returns -EBUSY when the job is
 * already running (done() will follow normally). */
int pool_cancel(pool_t *pool, pool_work_t *w);

/* A snapshot of the counters (any thread). */
void pool_get_stats(pool_t *pool, pool_stats_t *out);

#endif
