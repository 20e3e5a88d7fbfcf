/* admit.c - a budgeted call's admission: the worst case of each plan,
 * reserved in the budget book. See admit.h. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "admit.h"
#include "alloc.h"
#include "log.h"

#define ADMIT_REAP_MS 1000 /* how often dead workers' reservations are looked for */

static void s_reap(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    router_t *rt = ud;
    book_release_dead(rt->book);
}

/* Tracks budget b in the book: its current window's spend, from the
 * ledger when the book has less. */
static int s_track(router_t *rt, const rt_budget_t *b, int64_t now)
{
    int64_t start, end, persisted = 0;
    rt_window_bounds(b->window, now, &start, &end);
    if (ledger_spent(rt->ledger, b->role, start, &persisted) < 0) {
        log_error("llm-router: reading the spend of budget %s from the ledger",
                  b->role);
        return -1;
    }
    int slot = book_track(rt->book, b->role, start, persisted);
    if (slot < 0)
        log_error("llm-router: the budget book has no room for budget %s (%d names "
                  "at most)",
                  b->role, BOOK_BUDGETS);
    return slot;
}

int admit_open(router_t *rt, const char *ledger_path)
{
    char err[512];
    char *path = xasprintf("%s.book", ledger_path);
    rt->book = book_open(path, err, sizeof err);
    free(path);
    if (!rt->book) {
        log_error("llm-router: %s", err);
        return -1;
    }
    rt->budget_slot = xcalloc(rt->cfg->nbudgets + 1, sizeof *rt->budget_slot);
    int64_t now = time(NULL);
    for (size_t i = 0; i < rt->cfg->nbudgets; i++)
        if ((rt->budget_slot[i].slot = s_track(rt, &rt->cfg->budgets[i], now)) < 0)
            return -1;
    rt->reap_timer = loop_add_timer(rt->loop, ADMIT_REAP_MS, ADMIT_REAP_MS, s_reap, rt);
    return 0;
}

void admit_close(router_t *rt)
{
    loop_cancel_timer(rt->loop, &rt->reap_timer);
    book_destroy(&rt->book);
    free(rt->budget_slot);
    rt->budget_slot = NULL;
}

/* USD as nano-USD, rounded by round (ceil, llround...); INT64_MAX for what
 * int64 does not hold (a caller's max_tokens of 10^15, say), or NaN: a
 * conversion out of range would be undefined, in practice INT64_MIN. */
static int64_t s_nano(double usd, double (*rnd)(double))
{
    double nano = rnd(usd * LEDGER_NANO);
    return nano >= 0 && nano < 0x1p63 ? (int64_t)nano : nano < 0 ? 0 : INT64_MAX;
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
        if (!(cost <= worst)) /* NaN too */
            worst = cost;
    }
    return s_nano(worst, ceil);
}

static size_t s_index(router_t *rt, const rt_budget_t *b)
{
    size_t i = (size_t)(b - rt->cfg->budgets);
    VP_ASSERT(i < rt->cfg->nbudgets);
    return i;
}

static int s_slot(router_t *rt, const rt_budget_t *b)
{
    return rt->budget_slot[s_index(rt, b)].slot;
}

/* The start of b's window at now: computed again only when now leaves the
 * window last computed (gmtime and timegm cost more than an admission). */
static int64_t s_window(router_t *rt, const rt_budget_t *b, int64_t now)
{
    rt_budget_slot_t *bs = &rt->budget_slot[s_index(rt, b)];
    if (now < bs->start || now >= bs->end)
        rt_window_bounds(b->window, now, &bs->start, &bs->end);
    return bs->start;
}

void admit_call(router_t *rt, const rt_budget_t *b, const rt_plan_t plans[3],
                long in_tokens, long out_tokens, admit_t *ad)
{
    int64_t start = s_window(rt, b, time(NULL));
    ad->slot = s_slot(rt, b);
    ad->a = (book_admit_t){.window_start = start,
                           .limit = s_nano(b->limit_usd, round),
                           .near_percent = b->near_percent};
    for (int s = RT_NORMAL; s <= RT_EXCEEDED; s++)
        ad->a.amounts[s] = s_worst(rt->cfg, &plans[s], in_tokens, out_tokens);
    book_admit(rt->book, ad->slot, &ad->a);
}

void admit_settle(router_t *rt, const admit_t *ad, int64_t cost)
{
    book_settle(rt->book, ad->slot, ad->a.window, ad->a.reserved_amount, cost);
}

void admit_balance(router_t *rt, const rt_budget_t *b, int64_t now, int64_t *spent,
                   int64_t *reserved)
{
    int64_t start, end;
    rt_window_bounds(b->window, now, &start, &end);
    book_balance(rt->book, s_slot(rt, b), start, spent, reserved);
}
