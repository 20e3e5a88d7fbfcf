/* admit.h - a budgeted call's admission, exact across every worker: the
 * worst case of each budget state's plan (its dearest model at the call's
 * token bounds) goes to the ledger, which in one transaction on the pool
 * picks the first state, from the role's current one, whose plan fits
 * under the limit, and reserves its worst case (ledger_admit).
 *
 * The job is embedded in its owner (the call) and reached back with
 * container_of, so an admission allocates nothing (pool.h). Loop thread,
 * but for the ledger's work on the pool. */
#ifndef VAPORA_ROUTER_ADMIT_H
#define VAPORA_ROUTER_ADMIT_H

#include "ledger.h"
#include "plan.h"
#include "router.h"

typedef struct admit admit_t;
/* status < 0: the pool cancelled the job (shutdown); else ad->a holds the
 * ledger's answer (rc, state, plan, reservation...). */
typedef void (*admit_done_fn)(admit_t *ad, int status);

struct admit {
    pool_work_t work;
    ledger_t *ledger;
    admit_done_fn done;
    ledger_admit_t a; /* the question, then the ledger's answer */
};

/* Asks the ledger to admit a call under budget b (borrowed until done; its
 * name is the spend key) in its current window, with
 * plans[RT_NORMAL..RT_EXCEEDED] and
 * at most in_tokens + out_tokens: done(ad, status) follows on the loop
 * thread. 0, or the pool's error (-EBUSY...), and then done never comes. */
int admit_submit(admit_t *ad, router_t *rt, const rt_budget_t *b,
                 const rt_plan_t plans[3], long in_tokens, long out_tokens,
                 admit_done_fn done);

#endif
