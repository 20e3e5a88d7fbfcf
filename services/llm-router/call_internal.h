/* call_internal.h - what the files of a call share (call.h is their
 * public API): the call itself and the call__ functions one file offers
 * the others.
 *
 * DESIGN. One concern per file:
 *   call.c         a call's life: plan, admission, attempts, retries and
 *                  fallback, start and abort
 *   call_reply.c   a whole answer: checked, relayed or converted; the
 *                  provider's own 4xx passed back
 *   call_stream.c  a streamed answer: events relayed as they come, with
 *                  backpressure, and its end
 *   call_end.c     what every end needs: the charge, the usage record, the
 *                  X-Vapora-* headers, an error reply, freeing the call
 * Calls go one way: call.c uses the three others; call_reply.c and
 * call_stream.c use call_end.c; call_end.c uses none. Loop thread only. */
#ifndef VAPORA_ROUTER_CALL_INTERNAL_H
#define VAPORA_ROUTER_CALL_INTERNAL_H

#include "admit.h"
#include "call.h"
#include "charge.h"
#include "plan.h"
#include "sbuf.h"

typedef struct call {
    router_t *rt;
    list_t link;       /* in rt->calls once started */
    http_req_t *req;   /* NULL once the caller is gone */
    http_stream_t *st; /* streamed reply, once started */
    call_format_t format;
    json_t *canon; /* canonical request (owned) */
    bool stream, include_usage;
    char id[48];
    char role[64];
    const char *caller;    /* its name, borrowed from the callers */
    long prompt_bound;     /* tokens, upper bound */
    long max_tokens;       /* worst-case output */
    bool bound_added;      /* max_tokens is the router's, added to canon */
    bool bound_appendable; /* ... to a request that had no such key at all */
    /* plan and progress */
    rt_plan_t plans[3];
    rt_plan_t *plan;
    rt_state_t state;
    size_t next;       /* index of the attempt being made in *plan */
    unsigned tries;    /* on the current provider */
    unsigned attempts; /* in total */
    loop_timer_t *retry_timer;
    loop_timer_t *watch_timer;   /* when to start watching for the caller leaving */
    loop_timer_t *silence_timer; /* a stream's longest silence (provider timeout) */
    loop_timer_t *drain_timer;   /* a paused stream waits for the caller to read */
    unsigned drain_ms;           /* its next interval */
    /* budget */
    const rt_budget_t *budget;
    admit_t admit; /* its admission: the budget's slot, the window, the amount */
    bool admitted; /* holds admit's reservation until settled (call__record) */
    /* the current attempt */
    upstream_xfer_t x;
    char *upbody; /* the rendered request curl is sending */
    wire_emitter_t *emitter;
    sbuf_t out;         /* bytes for the caller, per piece of stream */
    bool stream_failed; /* the upstream stream was malformed or errored */
    bool bad_answer;    /* a whole answer that could not be relayed */
    char *stream_error;
    char *last_error; /* of the latest failed attempt, for the caller */
    CURLcode last_result;
    /* outcome */
    wire_usage_t usage;
    size_t streamed_bytes;
    uint64_t start_ns;
} call_t;

/* ---- call_end.c ---- */

/* The current attempt's exchange is over (or never started): what it held
 * goes (its timers, its handle). */
void call__drop_transfer(call_t *c);
/* A zeroed call for rt: one kept by call__destroy, else a new one. A call
 * (~1 KiB) is past malloc's per-thread cache, and allocating one cost a
 * large-chunk search and a consolidation of the small free chunks per
 * call (callgrind); not under ASan, which should see every use after
 * free. */
call_t *call__alloc(router_t *rt);
/* Frees what c holds, and c itself or keeps it for call__alloc (NULL is
 * fine); sets *cp to NULL. */
void call__destroy(call_t **cp);
/* The attempt being made, or NULL. */
const rt_attempt_t *call__current(const call_t *c);
/* Sets the caller's last error (the latest failed attempt's). */
void call__last_error(call_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The upstream stream failed (an error event, or cut short), with why. */
void call__stream_error(call_t *c, const char *text, size_t len);
/* Records the outcome (usage.h): a, the attempt that answered last (NULL:
 * no provider was asked); the reservation is settled with it. */
void call__record(call_t *c, const rt_attempt_t *a, const charge_t *ch, int status);
/* What the answer of a costs, its text `bytes` long (charge.h); c->usage
 * becomes what is charged, an anomaly is logged. */
charge_t call__charge(call_t *c, const rt_attempt_t *a, size_t bytes);
/* Records a call that ended without its final usage, by estimate. */
void call__record_estimate(call_t *c, const rt_attempt_t *a, int status);
/* X-Vapora-*: the provider and model when a, the cost when with_cost. */
void call__add_headers(call_t *c, const rt_attempt_t *a, double cost, bool with_cost);
/* Ends a call that produced no answer: the caller gets status/code. */
void call__fail(call_t *c, unsigned status, const char *code, const char *msg);

/* ---- call_reply.c ---- */

/* Replies with the whole answer of attempt a (answered 2xx in ms) and ends
 * c; false, c intact, when the answer may not be relayed (c->bad_answer,
 * the last error says why). */
bool call__reply_whole(call_t *c, const rt_attempt_t *a, double ms);
/* The provider's own 4xx, in the caller's format; ends c. */
void call__reply_passthrough(call_t *c);

/* ---- call_stream.c ---- */

/* upstream_req_t's on_event and on_fed for a stream (ud: the call). */
void call__on_event(const wire_ev_t *ev, void *ud);
int call__on_fed(void *ud);
/* The stream of attempt a ended well: its end, its cost; ends c. */
void call__end_stream(call_t *c, const rt_attempt_t *a);
/* The stream broke after bytes reached the caller: an error event ends
 * it (no fallback); ends c. */
void call__break_stream(call_t *c, const rt_attempt_t *a, const char *why);

#endif
