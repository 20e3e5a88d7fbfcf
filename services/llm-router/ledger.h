/* ledger.h - the router's spend and usage, shared by every router worker of
 * a host and kept across restarts: SQLite (WAL) in data_dir.
 *
 * DESIGN. Admission must be exact across processes: a reservation reads
 * spent + reserved and inserts its own row in one BEGIN IMMEDIATE
 * transaction, so two workers can never both take the last dollar.
 * Settling (deleting the reservation, adding the real cost) and usage
 * totals are not on any request's critical path: workers queue them and
 * write them in batches (ledger_flush). Reservations of a worker that died
 * are released by the next worker that starts (they carry its pid).
 * Amounts are kept in nano-USD (int64) so that sums are exact.
 *
 * Every ledger_* call except ledger_open/ledger_destroy blocks on SQLite: pool
 * threads only. A mutex serialises the calls of one process. */
#ifndef VAPORA_LEDGER_H
#define VAPORA_LEDGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "plan.h"
#include "vp_error.h"

typedef struct ledger ledger_t;

#define LEDGER_NANO 1000000000.0

/* Opens (creating, migrating) the database at path. NULL with a reason.
 * The caller owns the result. */
ledger_t *ledger_open(const char *path, char *err, size_t errlen);
/* Closes l (NULL is fine) and sets *lp to NULL. */
void ledger_destroy(ledger_t **lp);

/* Releases reservations held by processes that no longer exist. Returns
 * how many were released, or VP_ESTORE. */
int ledger_release_dead(ledger_t *l);
/* Releases every reservation of process pid (a worker at its end). */
void ledger_release_pid(ledger_t *l, pid_t pid);

/* Admission of one request of a budgeted role in the window starting at
 * window_start: amounts[s] is the worst-case cost (nano-USD) of the plan for
 * state s, or -1 when that state has no plan. In one transaction: the state
 * from (spent + reserved) / limit; the first state from there on whose plan
 * fits under the limit is chosen and its amount reserved. */
typedef struct ledger_admit {
    const char *role; /* the budget's spend key (ledger_entry_t.budget) */
    int64_t window_start;
    int64_t limit;   /* nano-USD */
    double near_percent;
    int64_t amounts[3];
    /* results */
    int rc;            /* 0 admitted, 1 refused (no plan fits), VP_ESTORE */
    rt_state_t state;  /* the role's state before this request */
    int plan;          /* the chosen state's plan */
    int64_t reservation; /* row id */
    int64_t spent, reserved; /* before this request */
} ledger_admit_t;
void ledger_admit(ledger_t *l, ledger_admit_t *a);

/* One finished request, or several with the same key and no reservation,
 * queued for the next flush. */
typedef struct ledger_entry {
    int64_t reservation; /* 0: none */
    char role[64], provider[64], model[128];
    /* The budget charged: its spend key (a role without a [budget:ROLE]
     * spends from "default"); empty: the role's own name. */
    char budget[64];
    int64_t window_start; /* of that budget; 0: no budget */
    int64_t minute;       /* unix minute of the request */
    int64_t cost;         /* nano-USD */
    long input_tokens, output_tokens;
    long requests;  /* the calls this entry adds up (see usage.c's batching) */
    long errors;    /* of which answered with an error */
    long estimated; /* of which counted from streamed text */
} ledger_entry_t;
/* Applies n entries in one transaction. Returns 0 or VP_ESTORE. */
int ledger_apply(ledger_t *l, const ledger_entry_t *e, size_t n);

/* Spent and reserved (nano-USD) of role in the window. */
int ledger_balance(ledger_t *l, const char *role, int64_t window_start, int64_t *spent,
                   int64_t *reserved);

/* Usage totals since `since` (unix seconds) grouped by "role", "provider"
 * or "model": a new JSON array of {key, requests, errors, input_tokens,
 * output_tokens, cost_usd, estimated}. NULL on error. */
json_t *ledger_usage(ledger_t *l, const char *group_by, int64_t since);

#endif
