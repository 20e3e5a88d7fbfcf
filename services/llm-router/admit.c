/* admit.c - a budgeted call's admission: the worst case of each plan,
 * reserved in the ledger on the pool. See admit.h. */
#define _GNU_SOURCE
#include <math.h>
#include <time.h>

#include "admit.h"

static void s_work(pool_work_t *w)
{
    admit_t *ad = container_of(w, admit_t, work);
    ledger_admit(ad->ledger, &ad->a);
}

static void s_done(pool_work_t *w, int status)
{
    admit_t *ad = container_of(w, admit_t, work);
    ad->done(ad, status);
}

/* Worst-case cost (nano-USD) of a plan: its dearest attempt. -1: empty. */
static int64_t s_worst(const rt_config_t *cfg, const rt_plan_t *p, long in_tokens,
                       long out_tokens)
{
    if (p->n == 0)
        return -1;
    double worst = 0;
    for (size_t i = 0; i < p->n; i++) {
        double cost = rt_cost(cfg, p->attempts[i].model, in_tokens, out_tokens);
        if (cost > worst)
            worst = cost;
    }
    return (int64_t)ceil(worst * LEDGER_NANO);
}

int admit_submit(admit_t *ad, router_t *rt, const rt_budget_t *b,
                 const rt_plan_t plans[3], long in_tokens, long out_tokens,
                 admit_done_fn done)
{
    int64_t start, end;
    rt_window_bounds(b->window, time(NULL), &start, &end);
    ad->ledger = rt->ledger;
    ad->done = done;
    ad->a = (ledger_admit_t){.role = b->role,
                             .window_start = start,
                             .limit = (int64_t)llround(b->limit_usd * LEDGER_NANO),
                             .near_percent = b->near_percent};
    for (int s = RT_NORMAL; s <= RT_EXCEEDED; s++)
        ad->a.amounts[s] = s_worst(rt->cfg, &plans[s], in_tokens, out_tokens);
    return pool_submit(rt->pool, &ad->work, s_work, s_done);
}
