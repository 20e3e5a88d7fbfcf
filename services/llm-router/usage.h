/* usage.h - what each finished call cost: queued, written to the ledger in
 * batches on the pool every 200 ms (its budget's spend and the usage
 * totals; the budget book already counted it, see admit.h), and published
 * on NATS as vapora.llm.usage. Nothing here delays a caller's reply.
 *
 * DESIGN. Records wait in one array of the worker, calls with the same key
 * (minute, role, budget and window, provider, model) added up as they
 * come, so that thousands of calls make a handful of rows; a flush takes
 * the whole array as a batch and hands it to the pool; a batch the ledger
 * refuses, or one the pool cannot take, goes back in front of the queue
 * for the next flush. Reports that must see every call recorded so far run
 * behind a flush (usage_after_flush). The event is written by hand (no
 * JSON tree), one per call. Loop thread only. */
#ifndef VAPORA_ROUTER_USAGE_H
#define VAPORA_ROUTER_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ledger.h"
#include "wire.h"
#include "worker.h"

typedef struct usage usage_t;

/* One finished call. */
typedef struct usage_rec {
    const char *id;     /* the call's id */
    const char *caller; /* who called (caller.h): its name */
    const char *role;
    const char *budget;      /* the budget charged (its name); NULL: none */
    rt_provider_t *provider; /* that answered last; NULL: none was asked */
    const char *model;       /* asked of provider; ignored without one */
    int64_t window_start;    /* of the role's budget; 0: no budget */
    wire_usage_t tokens;
    double cost_usd;
    int64_t cost;   /* the same in nano-USD, as the book counted it */
    bool estimated; /* tokens counted by estimate, not reported */
    /* The provider reported more tokens than the call could use: they were
     * cut to its bounds (charge.h). Counted in vapora_router_usage_anomalies_total. */
    bool anomaly;
    int http_status; /* of the caller's reply */
    unsigned attempts;
    uint64_t start_ns; /* now_ns() when the call began */
} usage_rec_t;

/* Starts the periodic flush of w's records to ledger (borrowed; it must
 * outlive the result). The caller owns the result. */
usage_t *usage_new(worker_t *w, ledger_t *ledger);
/* The end of the worker: writes what is pending, blocking, and frees u.
 * After the pool has stopped (no batch may still be out). NULL is fine;
 * sets *up to NULL. */
void usage_destroy(usage_t **up);

/* Queues r for the ledger, adds it to the provider's totals (and an
 * anomaly to the worker's metrics) and publishes its event on NATS (when
 * [nats] is set; while reconnecting, nats.c buffers it). Copies what it
 * keeps. */
void usage_record(usage_t *u, const usage_rec_t *r);

/* Runs fn(ud) on the pool after everything recorded so far is written;
 * done(ud, status) follows on the loop thread. 0, or the pool's error
 * (-EBUSY...) with neither called. */
int usage_after_flush(usage_t *u, void (*fn)(void *ud),
                      void (*done)(void *ud, int status), void *ud);

#endif
