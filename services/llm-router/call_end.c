/* call_end.c - what every end of a call needs: its charge, its usage
 * record, the X-Vapora-* headers, an error reply, freeing it. See
 * call_internal.h. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call_internal.h"
#include "alloc.h"
#include "log.h"

/* The current attempt's exchange is over (or never started): what it held
 * goes. */
void call__drop_transfer(call_t *c)
{
    loop_cancel_timer(c->rt->loop, &c->silence_timer);
    loop_cancel_timer(c->rt->loop, &c->drain_timer);
    upstream_end(c->rt->upstream, &c->x);
}

#if defined(__SANITIZE_ADDRESS__)
#define CALL_SPARE 0
#else
#define CALL_SPARE 256 /* finished calls kept, at most */
#endif

call_t *call__alloc(router_t *rt)
{
    list_t *n = list_pop_front(&rt->spare_calls);
    if (!n)
        return xcalloc(1, sizeof(call_t));
    rt->nspare_calls--;
    call_t *c = list_item(n, call_t, link);
    memset(c, 0, sizeof *c);
    return c;
}

void call_free_spares(router_t *rt)
{
    list_t *n;
    while ((n = list_pop_front(&rt->spare_calls)))
        free(list_item(n, call_t, link));
    rt->nspare_calls = 0;
}

void call__destroy(call_t **cp)
{
    call_t *c = *cp;
    if (!c)
        return;
    list_remove(&c->link);
    loop_cancel_timer(c->rt->loop, &c->retry_timer);
    loop_cancel_timer(c->rt->loop, &c->watch_timer);
    loop_cancel_timer(c->rt->loop, &c->silence_timer);
    loop_cancel_timer(c->rt->loop, &c->drain_timer);
    upstream_xfer_free(c->rt->upstream, &c->x);
    wire_emitter_destroy(&c->emitter);
    json_decref(c->canon);
    sbuf_free(&c->out);
    free(c->stream_error);
    free(c->last_error);
    free(c->upbody);
    router_t *rt = c->rt;
    if (rt->nspare_calls + 1 > CALL_SPARE) {
        free(c);
    } else {
        list_push_front(&rt->spare_calls, &c->link);
        rt->nspare_calls++;
    }
    *cp = NULL;
}

const rt_attempt_t *call__current(const call_t *c)
{
    return c->plan && c->next < c->plan->n ? &c->plan->attempts[c->next] : NULL;
}

void call__last_error(call_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    free(c->last_error);
    c->last_error = sbuf_steal(&b);
}

void call__stream_error(call_t *c, const char *text, size_t len)
{
    c->stream_failed = true;
    free(c->stream_error);
    c->stream_error = xstrndup(text, len);
}

/* Records the outcome (usage.h); a: the attempt that answered last, NULL
 * when no provider was asked. The reservation is settled with it: the
 * cost counted in the book, what was held released (admit.h). */
void call__record(call_t *c, const rt_attempt_t *a, const charge_t *ch, int status)
{
    int64_t cost = (int64_t)(ch->cost_usd * LEDGER_NANO + 0.5); /* nano-USD */
    if (c->admitted)
        admit_settle(c->rt, &c->admit, cost);
    c->admitted = false;
    usage_rec_t r = {.id = c->id,
                     .caller = c->caller,
                     .role = c->role,
                     .budget = c->budget ? c->budget->role : NULL,
                     .provider = a ? a->provider : NULL,
                     .model = a ? a->model : NULL,
                     .window_start = c->budget ? c->admit.a.window : 0,
                     .tokens = ch->tokens,
                     .cost_usd = ch->cost_usd,
                     .cost = cost,
                     .estimated = ch->estimated,
                     .anomaly = ch->anomaly,
                     .http_status = status,
                     .attempts = c->attempts,
                     .start_ns = c->start_ns};
    usage_record(c->rt->usage, &r);
}

/* What the answer of attempt a costs, its text `bytes` long, from the
 * provider's usage (c->usage; estimated when missing or unreadable) and
 * never more than the call reserved (charge.h). c->usage becomes what is
 * charged. */
charge_t call__charge(call_t *c, const rt_attempt_t *a, size_t bytes)
{
    charge_t ch = charge_compute(c->rt->cfg, a->model, &c->usage, bytes,
                                 c->prompt_bound, c->max_tokens);
    if (ch.anomaly)
        log_warn("llm-router: %s reported %ld input and %ld output tokens for call %s, "
                 "bounded by %ld and %ld: charged at most its reservation",
                 a->provider->name, c->usage.input_tokens, c->usage.output_tokens,
                 c->id, c->prompt_bound, c->max_tokens);
    c->usage = ch.tokens;
    return ch;
}

/* Records a call that ended without the provider's final usage: the
 * prompt and the streamed text, by estimate (about 4 bytes a token). a
 * NULL: no provider was asked (nothing is charged). */
void call__record_estimate(call_t *c, const rt_attempt_t *a, int status)
{
    c->usage = (wire_usage_t){0};
    charge_t ch = {.estimated = true};
    if (a)
        ch = call__charge(c, a, c->streamed_bytes);
    call__record(c, a, &ch, status);
}

/* ---- replies ---- */

/* X-Vapora-*: the provider and model when a, the cost when with_cost. */
void call__add_headers(call_t *c, const rt_attempt_t *a, double cost, bool with_cost)
{
    char buf[64];
    if (a) {
        http_req_add_header(c->req, "X-Vapora-Provider", a->provider->name);
        http_req_add_header(c->req, "X-Vapora-Model", a->model);
    }
    if (with_cost) {
        snprintf(buf, sizeof buf, "%.6f", cost);
        http_req_add_header(c->req, "X-Vapora-Cost-USD", buf);
    }
    snprintf(buf, sizeof buf, "%u", c->attempts);
    http_req_add_header(c->req, "X-Vapora-Attempts", buf);
    http_req_add_header(c->req, "X-Vapora-Budget-State", rt_state_name(c->state));
}

/* Ends a call that produced no answer: the caller gets status/code. */
void call__fail(call_t *c, unsigned status, const char *code, const char *msg)
{
    const rt_attempt_t *a = call__current(c);
    if (!a && c->plan && c->plan->n)
        a = &c->plan->attempts[c->plan->n - 1];
    if (c->req) {
        call__add_headers(c, NULL, 0, false);
        http_reply_error(c->req, status, code, "%s", msg);
    }
    call__record(c, c->attempts ? a : NULL, &(charge_t){0}, (int)status);
    call__destroy(&c);
}
