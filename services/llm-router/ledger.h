/* ledger.h - the router's durable record: what each budget spent per
 * window and the usage totals, shared by every router worker of a host and
 * kept across restarts: SQLite (WAL) in data_dir.
 *
 * DESIGN. Nothing here is on a request's path. Admission is the budget
 * book's (book.h: shared memory, exact across workers); the ledger is
 * written behind it, in batches (usage.c): each settled call adds its cost
 * to its budget's window and its counts to the usage totals, calls with
 * the same key added up first. The book reads a budget's spend from here
 * when it starts tracking it. Amounts are nano-USD (int64): sums are
 * exact.
 *
 * Every ledger_* call except ledger_open/ledger_destroy blocks on SQLite: pool
 * threads, or set-up. A mutex serialises the calls of one process. */
#ifndef VAPORA_LEDGER_H
#define VAPORA_LEDGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqldb.h"
#include "vp_error.h"

typedef struct ledger ledger_t;

#define LEDGER_NANO 1000000000.0

/* Opens (creating, migrating) the database at path, its commits synced as
 * sync says. NULL with a reason. The caller owns the result. */
ledger_t *ledger_open(const char *path, sqldb_sync_t sync, char *err, size_t errlen);
/* Closes l (NULL is fine) and sets *lp to NULL. */
void ledger_destroy(ledger_t **lp);

/* One finished request, or several with the same key added up,
 * queued for the next flush. */
typedef struct ledger_entry {
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

/* What budget (its spend key) spent (nano-USD) in the window starting at
 * window_start, into *spent. 0 or VP_ESTORE. */
int ledger_spent(ledger_t *l, const char *budget, int64_t window_start, int64_t *spent);

/* Usage totals since `since` (unix seconds) grouped by "role", "provider"
 * or "model": a new JSON array of {key, requests, errors, input_tokens,
 * output_tokens, cost_usd, estimated}. NULL on error. */
json_t *ledger_usage(ledger_t *l, const char *group_by, int64_t since);

#endif
