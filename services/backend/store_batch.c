/* store_batch.c - the writer: group commit on a thread of its own.
 *
 * Writes queue here (store_write_submit from any thread, or store__write,
 * which waits). One thread per store takes whatever is queued, up to
 * STORE_BATCH writes, and runs them in one BEGIN IMMEDIATE transaction,
 * each as if in its own savepoint (a write that fails rolls back alone:
 * see s_run_writes), commits once, then completes each write in order.
 * While it runs a batch the next one queues, so batches grow with the load
 * whatever the number of pool threads: a request holds no thread while it
 * waits for its commit.
 * Concurrent writes thus share one commit and one hold of the database's
 * write lock instead of queueing for it one by one. No network I/O
 * happens inside.
 *
 * A write is a struct of its own embedding store_write_t (see store.h):
 * this file runs them without knowing what they are. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "store_internal.h"

/* At most this many writes per transaction: a bound on how long the write
 * lock is held (and on the latency of the writes behind). */
#define STORE_BATCH 128

/* Drops what a write produced (its result, or its text). */
static void s_drop(store_write_t *w)
{
    if (w->out) {
        json_decref(*w->out);
        *w->out = NULL;
    }
    if (w->text) {
        free(*w->text);
        *w->text = NULL;
    }
}

/* The batch failed to commit: outcomes that looked fine are replaced by
 * the batch's cause (c is NULL when there was no connection). */
static void s_fail_all(store_conn_t *c, list_t *batch)
{
    list_for_each(it, batch)
    {
        store_write_t *w = list_item(it, store_write_t, link);
        if (w->rc == 0) {
            s_drop(w);
            w->rc = store__fail(c, w->e);
        }
    }
}

typedef enum {
    RUN_OK,   /* every write ran, the transaction is open */
    RUN_GONE, /* SQLite rolled the transaction back (a full disk) */
    RUN_REDO, /* a write failed after changing rows, with no savepoint */
} run_t;

/* Whether w, run without savepoints, left changes that only its savepoint
 * could have undone: a rollback after changes (c->redo), or a failure
 * after rows changed since `before`. */
static bool s_needs_redo(store_conn_t *c, const store_write_t *w, int64_t before)
{
    return c->redo || (w->rc != 0 && sqlite3_total_changes64(c->db) != before);
}

/* Runs the writes of batch inside the open transaction: each in its
 * savepoint, or (optimistic) with none, stopping at the first write that
 * needed one. RUN_GONE: SQLite rolled the transaction back by itself after
 * a failure (a full disk), and the writes that had succeeded went with
 * it; the writes after that one are left with rc 0. */
static run_t s_run_ops(store_t *s, store_conn_t *c, list_t *batch, bool optimistic)
{
    run_t r = RUN_OK;
    c->batched = true;
    c->optimistic = optimistic;
    c->redo = false;
    c->run_events = c->run_drops = 0;
    list_for_each(it, batch)
    {
        store_write_t *w = list_item(it, store_write_t, link);
        w->rc = 0; /* when it does not run: failed with the others below */
        if (r != RUN_OK)
            continue;
        c->depth = 0;
        int64_t before = sqlite3_total_changes64(c->db);
        w->rc = w->run(w, s);
        if (sqlite3_get_autocommit(c->db))
            r = RUN_GONE;
        else if (optimistic && s_needs_redo(c, w, before))
            r = RUN_REDO;
    }
    c->batched = c->optimistic = false;
    return r;
}

/* Runs the writes of batch in the transaction just begun. Savepoints cost
 * the writer a copy of every page a write changes (nearly a fifth of its
 * time), and only a write that fails after changing rows needs one. So
 * the batch runs without; when such a write comes, the transaction is
 * rolled back, what the writes produced is dropped, and the batch runs
 * again from its start with a savepoint per write (a write's run may thus
 * be called twice: see store.h). False when the transaction is gone. */
static bool s_run_writes(store_t *s, store_conn_t *c, list_t *batch)
{
    run_t r = s_run_ops(s, c, batch, true);
    if (r == RUN_REDO) {
        if (!store__tx(c, STORE_TX_ROLLBACK))
            return false; /* s_run_batch ends the transaction */
        list_for_each(it, batch)
        {
            s_drop(list_item(it, store_write_t, link));
        }
        c->users_changed = false;
        atomic_fetch_sub(&s->backlog, c->run_events);
        atomic_fetch_sub(&s->dropped, (unsigned long)c->run_drops);
        r = store__begin_immediate(c) ? s_run_ops(s, c, batch, false) : RUN_GONE;
    }
    return r == RUN_OK;
}

/* The writes outran the checkpointer: the WAL is checkpointed here, with
 * the write lock held, so that it empties and the next write starts it
 * over. The writes of every worker wait meanwhile: they go at the pace of
 * the checkpoints. A checkpoint already running (the checkpointer's)
 * makes this one wait for it (SQLITE_BUSY). */
static void s_checkpoint(store_conn_t *c)
{
    store__conn_reset(c); /* a statement left open is a read that stops it */
    for (int ms = 0; ms < 5000; ms++) { /* then the next batch tries again */
        if (sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                      NULL) != SQLITE_BUSY)
            break;
        usleep(1000);
    }
}

/* Whether no write of batch changed what reads see. */
static bool s_quiet(list_t *batch)
{
    list_for_each(it, batch)
    {
        if (!list_item(it, store_write_t, link)->quiet)
            return false;
    }
    return true;
}

/* Runs every write of batch in one transaction (the writer thread). */
static void s_run_batch(store_t *s, list_t *batch)
{
    store_conn_t *c = store__conn(s);
    if (c)
        store__lock(c);
    bool ok = c && store__begin_immediate(c) && s_run_writes(s, c, batch);
    long queued = atomic_load(&s->backlog);
    if (ok && !store__tx(c, STORE_TX_COMMIT)) {
        store__rollback(c);
        ok = false;
    }
    if (ok && c->wal_frames >= STORE_WAL_MAX_FRAMES)
        s_checkpoint(c);
    if (c && !sqlite3_get_autocommit(c->db)) /* a ROLLBACK that failed (NOMEM) */
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    if (c)
        store__unlock(c);
    if (!ok) {
        if (c)
            c->users_changed = false; /* nothing was committed */
        s_fail_all(c, batch);
    } else {
        if (!s_quiet(batch))
            store__bump(c);
        if (queued > 0)
            store__commit_hook(s);
    }
    if (c)
        store__conn_end(c); /* no statement keeps a read open between batches */
}

/* Moves up to STORE_BATCH writes from the queue to batch (under wmu). */
static void s_take_batch(store_t *s, list_t *batch)
{
    list_init(batch);
    unsigned long n = 0;
    for (; n < STORE_BATCH && !list_empty(&s->wq); n++) {
        list_push_back(batch, list_pop_front(&s->wq));
        s->nq--;
    }
    atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->writes, n, memory_order_relaxed);
}

/* Completes the writes of a batch in order: done(), or the wake-up of the
 * thread waiting in store__write. */
static void s_complete(store_t *s, list_t *batch)
{
    bool waiters = false;
    list_for_each_safe(it, nx, batch)
    {
        store_write_t *w = list_item(it, store_write_t, link);
        list_remove(it);
        if (w->done) {
            w->done(w); /* w may be gone now */
        } else {
            pthread_mutex_lock(&s->wmu);
            w->finished = true; /* the waiter may return and free w */
            pthread_mutex_unlock(&s->wmu);
            waiters = true;
        }
    }
    if (waiters) {
        pthread_mutex_lock(&s->wmu);
        pthread_cond_broadcast(&s->dcv);
        pthread_mutex_unlock(&s->wmu);
    }
}

static void *s_writer(void *arg)
{
    store_t *s = arg;
    pthread_setname_np(pthread_self(), "store-writer"); /* for top -H, perf */
    pthread_mutex_lock(&s->wmu);
    for (;;) {
        while (list_empty(&s->wq) && !s->wstop)
            pthread_cond_wait(&s->wcv, &s->wmu);
        if (list_empty(&s->wq))
            break; /* stopping, and nothing is left */
        list_t batch;
        s_take_batch(s, &batch);
        pthread_mutex_unlock(&s->wmu);
        s_run_batch(s, &batch);
        s_complete(s, &batch);
        pthread_mutex_lock(&s->wmu);
    }
    pthread_mutex_unlock(&s->wmu);
    return NULL; /* the thread's connection closes with it (store.c's key) */
}

bool store__writer_start(store_t *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop */
    int rc = pthread_create(&s->writer, NULL, s_writer, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        log_err(rc, "store: starting the writer thread");
    s->writer_running = rc == 0;
    return s->writer_running;
}

void store__writer_stop(store_t *s)
{
    if (!s->writer_running)
        return;
    pthread_mutex_lock(&s->wmu);
    s->wstop = true;
    pthread_cond_signal(&s->wcv);
    pthread_mutex_unlock(&s->wmu);
    pthread_join(s->writer, NULL);
    s->writer_running = false;
}

/* Queues w unless the queue is full (limit) or the writer stops. */
static int s_queue(store_t *s, store_write_t *w, size_t limit)
{
    pthread_mutex_lock(&s->wmu);
    int rc = s->wstop ? -ESHUTDOWN : s->nq >= limit ? -EBUSY : 0;
    if (rc == 0) {
        w->finished = false;
        list_push_back(&s->wq, &w->link);
        if (s->nq++ == 0)
            pthread_cond_signal(&s->wcv); /* the writer may be waiting */
    }
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

int store_write_submit(store_t *s, store_write_t *w)
{
    VP_ASSERT(w->run && w->done && w->e);
    return s_queue(s, w, s->qmax);
}

void store_set_queue_max(store_t *s, size_t max)
{
    s->qmax = max;
}

void store_writer_stats(const store_t *s, uint64_t *batches, uint64_t *writes)
{
    *batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
    *writes = atomic_load_explicit(&s->writes, memory_order_relaxed);
}

int store__write(store_t *s, store_write_t *w)
{
    store_conn_t *c = pthread_getspecific(s->key);
    if (c && c->batched) {                 /* the writer, running a batch: join it */
        if (sqlite3_get_autocommit(c->db)) /* the batch's transaction is gone */
            return store__fail(c, w->e);
        return w->run(w, s);
    }
    /* The writer waiting for its own batch would wait for ever. */
    VP_ASSERT(!s->writer_running || !pthread_equal(pthread_self(), s->writer));
    if (c) /* no read of this thread keeps a snapshot from before the write */
        store__conn_reset(c);
    w->done = NULL;
    int rc = s_queue(s, w, SIZE_MAX); /* its thread bounds the waits */
    if (rc < 0) {
        w->e->code = "storage_error";
        snprintf(w->e->msg, sizeof w->e->msg, "the store is closing");
        return VP_ESTORE;
    }
    pthread_mutex_lock(&s->wmu);
    while (!w->finished)
        pthread_cond_wait(&s->dcv, &s->wmu);
    pthread_mutex_unlock(&s->wmu);
    return w->rc;
}
