/* store_batch.c - group commit.
 *
 * A write queues its operation; the first writer to find no batch running
 * takes up to STORE_BATCH queued operations and runs them in one BEGIN
 * IMMEDIATE transaction, each in its own savepoint (an operation that fails
 * rolls back alone), commits once, and wakes the others. Concurrent
 * requests thus share one commit and one hold of the database's write lock
 * instead of queueing for it one by one. No network I/O happens inside.
 *
 * An operation is a struct of its own embedding store_write_t (see
 * store_internal.h): this file runs them without knowing what they are. */
#include "store_internal.h"

#define STORE_BATCH 64

/* The batch failed to commit: results that looked fine are dropped, with
 * the batch's cause (c is NULL when there was no connection). */
static void s_fail_all(store_conn_t *c, list_t *batch)
{
    list_for_each(it, batch)
    {
        store_write_t *w = list_item(it, store_write_t, link);
        if (w->rc == 0) {
            if (w->out) {
                json_decref(*w->out);
                *w->out = NULL;
            }
            w->rc = store__fail(c, w->e);
        }
    }
}

/* Runs the operations of batch inside the open transaction, each in its
 * savepoint; false when the transaction is gone: SQLite rolls it back by
 * itself after some failures (a full disk), and the operations that had
 * succeeded went with it. */
static bool s_run_ops(store_t *s, store_conn_t *c, list_t *batch)
{
    bool open = true;
    c->batched = true;
    list_for_each(it, batch)
    {
        store_write_t *w = list_item(it, store_write_t, link);
        w->rc = open ? w->run(w, s) : 0; /* 0: failed with the others below */
        if (open && sqlite3_get_autocommit(c->db))
            open = false;
    }
    c->batched = false;
    return open;
}

/* Runs every operation of batch in one transaction (the caller's thread). */
static void s_run_batch(store_t *s, list_t *batch)
{
    store_conn_t *c = store__conn(s);
    if (c)
        store__lock(c);
    bool ok = c && store__begin_immediate(c) && s_run_ops(s, c, batch);
    long queued = atomic_load(&s->backlog);
    if (ok && !store__exec(c, "COMMIT")) {
        store__rollback(c);
        ok = false;
    }
    if (c)
        store__unlock(c);
    if (!ok) {
        if (c)
            c->users_changed = false; /* nothing was committed */
        s_fail_all(c, batch);
        return;
    }
    store__bump(c);
    if (s->on_commit && queued > 0)
        s->on_commit(s->on_commit_ud);
}

/* Moves up to STORE_BATCH operations from the queue to batch (under wmu). */
static void s_take_batch(store_t *s, list_t *batch)
{
    list_init(batch);
    for (int n = 0; n < STORE_BATCH && !list_empty(&s->wq); n++)
        list_push_back(batch, list_pop_front(&s->wq));
}

int store__write(store_t *s, store_write_t *w)
{
    pthread_mutex_lock(&s->wmu);
    list_push_back(&s->wq, &w->link);
    while (!w->done) {
        if (s->combining) {
            pthread_cond_wait(&s->wcv, &s->wmu);
            continue;
        }
        s->combining = true;
        list_t batch;
        s_take_batch(s, &batch);
        pthread_mutex_unlock(&s->wmu);
        s_run_batch(s, &batch);
        pthread_mutex_lock(&s->wmu);
        /* The writers wake after the unlock: nothing here touches their
         * operations once they may have returned. */
        list_for_each_safe(it, nx, &batch)
        {
            list_remove(it);
            list_item(it, store_write_t, link)->done = true;
        }
        s->combining = false;
        pthread_cond_broadcast(&s->wcv);
    }
    pthread_mutex_unlock(&s->wmu);
    return w->rc;
}
