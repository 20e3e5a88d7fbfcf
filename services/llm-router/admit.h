/* admit.h - a budgeted call's admission, exact across every worker: the
 * worst case of each budget state's plan (its dearest model at the call's
 * token bounds) goes to the budget book (book.h), which picks the first
 * state, from the budget's current one, whose plan fits under the limit,
 * and reserves its worst case; settling releases it and adds the cost.
 *
 * DESIGN. The book is shared memory: an admission takes a process-shared
 * mutex for a few dozen instructions, on the loop thread, so a call is
 * admitted before anything is asked upstream without a transaction or a
 * hop to the pool. What the book holds is written behind to the ledger in
 * usage.c's batches. Loop thread only, but for admit_open/admit_close at
 * set-up and teardown. */
#ifndef VAPORA_ROUTER_ADMIT_H
#define VAPORA_ROUTER_ADMIT_H

#include "book.h"
#include "plan.h"
#include "router.h"

/* One call's admission: the question, then the book's answer. */
typedef struct admit {
    int slot; /* the budget's in the book */
    book_admit_t a;
} admit_t;

/* Opens the budget book beside the ledger (ledger_path + ".book"), tracks
 * every budget of rt's configuration (in its current window; the spend the
 * ledger has for it when the book has less) and releases, now and every
 * second, what workers that died held reserved. 0, or -1 logged. */
int admit_open(router_t *rt, const char *ledger_path);
/* Releases what this worker still holds and closes the book. */
void admit_close(router_t *rt);

/* Admits a call under budget b (one of rt's configuration) with
 * plans[RT_NORMAL..RT_EXCEEDED] and at most in_tokens + out_tokens into
 * *ad: ad->a.rc 0 (ad->a.plan chosen, its worst case reserved) or 1 (no
 * plan fits: refused). */
void admit_call(router_t *rt, const rt_budget_t *b, const rt_plan_t plans[3],
                long in_tokens, long out_tokens, admit_t *ad);
/* The admitted call ad ended costing `cost` (nano-USD, at most what it
 * reserved): its window's spend grows, its reservation goes. Once. */
void admit_settle(router_t *rt, const admit_t *ad, int64_t cost);

/* What budget b spent in its current window (at `now`, unix seconds) and
 * holds reserved, in nano-USD. */
void admit_balance(router_t *rt, const rt_budget_t *b, int64_t now, int64_t *spent,
                   int64_t *reserved);

#endif
