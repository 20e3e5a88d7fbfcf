/* book.h - the budget book: what every budget has spent in its current
 * window and what the calls in flight hold reserved, shared by every router
 * worker of a host in a preallocated mapping (data_dir/llm-router.db.book
 * beside the ledger), so that a call is admitted exactly, across workers,
 * on the loop thread, without a transaction or a thread hop.
 *
 * DESIGN. The mapping holds a process-shared robust mutex, up to
 * BOOK_BUDGETS budget slots (name, window start, spent, reserved: nano-USD)
 * and up to BOOK_WORKERS worker slots, each with what its worker holds
 * reserved per budget. Admission reads spent + reserved and reserves under
 * the mutex, a few dozen instructions: two workers can never both take the
 * last dollar. Every change is made of whole 8-byte stores in an order that
 * a worker killed halfway cannot corrupt:
 *  - a worker that dies holding the mutex: the next to lock it is told
 *    (EOWNERDEAD) and recomputes each budget's reserved total from the
 *    worker slots, which are the truth of reservations;
 *  - a worker that dies holding reservations: its slot is locked by an
 *    open-file-description lock (one byte of the file per slot), which the
 *    kernel drops with the process; every worker looks for slots whose lock
 *    is gone (book_release_dead: at start, then every second) and releases
 *    what they held. No reservation outlives its worker by more than that;
 *  - settling adds the cost to spent before it releases the reservation,
 *    so a death in between leaves too much reserved (released as above),
 *    never too little counted.
 * Spend survives restarts twice over: the mapping is a file in data_dir,
 * and every settled cost also reaches the ledger (SQLite) in usage.c's
 * batches; a budget slot made or found stale at start takes the larger of
 * the two (book_track), both being sums of settled costs. A window rolls
 * over at the first admission after it ends (spent starts at 0; calls still
 * in flight from the old window stay reserved until they settle, and their
 * cost goes to the old window in the ledger only).
 *
 * A handle is one worker: one slot, claimed at book_open. Calls on one
 * handle: one thread at a time (the loop thread); handles of one process
 * are independent (as tests use them). */
#ifndef VAPORA_ROUTER_BOOK_H
#define VAPORA_ROUTER_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan.h"

#define BOOK_BUDGETS 256 /* budget names a data_dir ever holds, at most */
/* The largest limit the book counts with (about 2.3 billion USD in
 * nano-USD); a larger one is taken as this. Amounts are compared with the
 * room left, never added to what is used, so that no worst case, however
 * large, can wrap a sum around and fit. */
#define BOOK_MAX_LIMIT (INT64_MAX / 4)
#define BOOK_WORKERS 256 /* router workers of a host at once, at most */

typedef struct book book_t;

/* Maps the book at path (made and preallocated when missing, or when it is
 * not a book of this layout) and claims a worker slot, releasing first
 * what dead workers held. NULL with a reason (ENOSPC, no free slot...).
 * The caller owns the result. */
book_t *book_open(const char *path, char *err, size_t errlen);
/* Releases what this worker still holds reserved and its slot, unmaps,
 * frees b (NULL is fine) and sets *bp to NULL. */
void book_destroy(book_t **bp);

/* The slot of budget `name` (its spend key), made when missing, in the
 * window starting at window_start: when the slot is new or its window
 * earlier, spent becomes persisted (the ledger's spend of that window);
 * in the same window, the larger of the two. The slot's index (>= 0), or
 * -ENOSPC when BOOK_BUDGETS names are taken. */
int book_track(book_t *b, const char *name, int64_t window_start, int64_t persisted);

/* Admission of one call under budget slot `slot` in the window starting at
 * window_start (a later window than the slot's rolls it over; an earlier
 * one is taken as the slot's): amounts[s] is the worst case (nano-USD) of
 * the plan of state s (INT64_MAX: more than any limit), or -1 when that
 * state has no plan. The state comes
 * from (spent + reserved) / limit; the first state from there on whose plan
 * fits under the limit is chosen and its amount reserved. */
typedef struct book_admit {
    int64_t window_start;
    int64_t limit; /* nano-USD */
    double near_percent;
    int64_t amounts[3];
    /* results */
    int rc;                  /* 0 admitted, 1 refused (no plan fits) */
    rt_state_t state;        /* the budget's state before this call */
    int plan;                /* the chosen state's plan */
    int64_t reserved_amount; /* what this call holds (0: nothing) */
    int64_t window;          /* the window it was admitted in */
    int64_t spent, reserved; /* before this call */
} book_admit_t;
void book_admit(book_t *b, int slot, book_admit_t *a);

/* A call admitted in window `window` under `slot` ended: `cost` (nano-USD,
 * at most what it reserved) is added to the window's spend when that is
 * still the slot's window, and `reserved` (its book_admit_t's
 * reserved_amount) is released. */
void book_settle(book_t *b, int slot, int64_t window, int64_t reserved, int64_t cost);

/* Spent in the window starting at window_start (0 when the slot has not
 * reached it yet or has left it) and reserved now, of slot. */
void book_balance(book_t *b, int slot, int64_t window_start, int64_t *spent,
                  int64_t *reserved);

/* Releases what workers that no longer exist held reserved. Returns how
 * many such workers there were. */
int book_release_dead(book_t *b);

#endif
