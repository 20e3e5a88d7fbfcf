/* dbq.h - the agents' database writes of a worker, grouped: whatever is
 * queued while a batch is on the pool goes, in order, into the next one,
 * a single transaction (adb_batch). A burst of runs then costs one commit
 * and one loop -> pool -> loop trip per batch instead of one per write; a
 * lone write goes at once. An op's done() runs after its batch committed:
 * nothing is reported written before it is.
 *
 * Ops are embedded in their owners (a run), reached with container_of;
 * submitting allocates nothing. Loop thread only; work() runs on a pool
 * thread (or on the loop thread, blocking, when there is no pool). */
#ifndef VAPORA_AGENTS_DBQ_H
#define VAPORA_AGENTS_DBQ_H

#include <stdbool.h>

#include "db.h"
#include "list.h"
#include "pool.h"

typedef struct dbq_op dbq_op_t;
struct dbq_op {
    /* Its writes (adb_*), inside the batch's transaction; may run a second
     * time when the batch falls back to one transaction per write (see
     * adb_batch): idempotent, and sets its outcome afresh. */
    void (*work)(dbq_op_t *op, adb_t *db);
    /* On the loop thread once the batch is committed (status 0), or with
     * status < 0 when the pool stopped before running it. The queue is
     * done with op when it is called. */
    void (*done)(dbq_op_t *op, int status);
    list_t link;
};

/* Embedded in its owner (agents_t); zeroed, then dbq_init. */
typedef struct dbq {
    list_t queued; /* loop thread's: the next batch */
    list_t batch;  /* the pool's while busy */
    bool busy;
    pool_t *pool;
    adb_t *db;
    pool_work_t job;
    unsigned batches; /* batches run, for tests and debugging */
} dbq_t;

void dbq_init(dbq_t *q);
/* Queues op, to be written with what else is queued, after the batch on
 * its way (if any). pool NULL, full or stopping: the batch is written here,
 * blocking. */
void dbq_submit(dbq_t *q, pool_t *pool, adb_t *db, dbq_op_t *op);

#endif
