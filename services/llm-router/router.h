/* router.h - the LLM router service's state: one per worker process,
 * filled by main.c at start-up and shared by its modules on the loop
 * thread.
 *
 * DESIGN. A call is one caller request (/v1/chat/completions or
 * /v1/messages). Its life, all on the loop thread:
 *   1. routes.c parses and validates the body in the caller's format and
 *      turns it into the canonical request (wire.h);
 *   2. routes.c knows the caller by its key (caller.h) and the role it
 *      spends from, whose budget is its own [budget:ROLE] or the shared
 *      [budget:default]; call.c plans the attempts (plan.h) for each
 *      budget state and the call is admitted at once (admit.h: the
 *      worst case reserved in the budget book, exactly, across workers);
 *   3. call.c runs the attempts on curl's multi interface (upstream.h,
 *      curlm.h): a retriable failure (connect error, timeout, 429, 5xx) is
 *      retried on the same provider with backoff, then the next provider of
 *      the plan is asked; a stream is relayed event by event from the first
 *      byte, and from then on there is no fallback;
 *   4. the outcome is settled: the reservation released and the real cost
 *      added in the book (admit.h), then the usage totals and the spend
 *      written to the ledger in batches and a NATS event published
 *      (usage.h), off the request's path. */
#ifndef VAPORA_ROUTER_H
#define VAPORA_ROUTER_H

#include "book.h"
#include "caller.h"
#include "config.h"
#include "curlm.h"
#include "ledger.h"
#include "list.h"
#include "upstream.h"
#include "usage.h"
#include "worker.h"

/* A budget of the configuration in the book (admit.c): its slot, and its
 * window as last computed. */
typedef struct rt_budget_slot {
    int slot;
    int64_t start, end;
} rt_budget_slot_t;

typedef struct router {
    worker_t *w;
    loop_t *loop;
    pool_t *pool;
    rt_config_t *cfg;              /* owned */
    callers_t *callers;            /* owned: who may call (caller.h) */
    curlm_t *curlm;                /* owned: curl's multi interface on loop */
    ledger_t *ledger;              /* owned */
    book_t *book;                  /* owned: the budget book (admit.h) */
    rt_budget_slot_t *budget_slot; /* owned: of each cfg->budgets[i] */
    loop_timer_t *reap_timer;      /* dead workers' reservations (admit.c) */
    usage_t *usage;                /* owned */
    upstream_t *upstream;          /* owned */
    list_t calls;                  /* live calls (call.c), for teardown */
    list_t spare_calls;            /* finished calls kept for the next (call.c) */
    size_t nspare_calls;
} router_t;

#endif
