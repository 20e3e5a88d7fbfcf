/* dbq.c - see dbq.h. */
#include "dbq.h"

#include "base.h"

void dbq_init(dbq_t *q)
{
    list_init(&q->queued);
    list_init(&q->batch);
    q->busy = false;
}

static void s_each(adb_t *db, void *ud)
{
    dbq_t *q = ud;
    list_for_each(it, &q->batch) {
        dbq_op_t *op = list_item(it, dbq_op_t, link);
        op->work(op, db);
    }
}

static void s_work(pool_work_t *w)
{
    dbq_t *q = container_of(w, dbq_t, job);
    adb_batch(q->db, s_each, q);
}

/* Tells the batch's ops, in order; ops they queue meanwhile wait for the
 * next batch (q->busy is still set). */
static void s_finish(dbq_t *q, int status)
{
    q->batches++;
    list_t *it;
    while ((it = list_pop_front(&q->batch))) {
        dbq_op_t *op = list_item(it, dbq_op_t, link);
        op->done(op, status);
    }
    q->busy = false;
}

static void s_next(dbq_t *q, pool_t *pool, adb_t *db);

static void s_done(pool_work_t *w, int status)
{
    dbq_t *q = container_of(w, dbq_t, job);
    s_finish(q, status);
    s_next(q, q->pool, q->db);
}

static void s_next(dbq_t *q, pool_t *pool, adb_t *db)
{
    while (!q->busy && !list_empty(&q->queued)) {
        list_splice(&q->batch, &q->queued);
        q->busy = true;
        q->pool = pool;
        q->db = db;
        if (pool && pool_submit(pool, &q->job, s_work, s_done) == 0)
            return;
        s_work(&q->job); /* no pool to take it: write it here, blocking */
        s_finish(q, 0);
    }
}

void dbq_submit(dbq_t *q, pool_t *pool, adb_t *db, dbq_op_t *op)
{
    list_push_back(&q->queued, &op->link);
    s_next(q, pool, db);
}
