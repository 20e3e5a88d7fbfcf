/* call_stream.c - a streamed answer: the provider's events relayed in the
 * caller's format as they come, the upstream transfer paused while the
 * caller has not taken what waits for it, and the stream's end. See
 * call_internal.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>

#include "call_internal.h"

/* Streamed bytes waiting for the caller: from CALL_PAUSE_AT on, the
 * upstream transfer pauses until the caller has taken them all (checked
 * every CALL_DRAIN_MIN_MS, backing off to CALL_DRAIN_MAX_MS while it does
 * not read); CALL_MAX_BACKLOG, which one huge event could still reach,
 * ends the stream. */
#define CALL_PAUSE_AT (64u << 10)
#define CALL_DRAIN_MIN_MS 1
#define CALL_DRAIN_MAX_MS 32
#define CALL_MAX_BACKLOG (4u << 20)

/* The caller left a stream: the upstream stops, what it cost is counted. */
static void s_gone(void *ud)
{
    call_t *c = ud;
    c->req = NULL;
    c->st = NULL;
    upstream_abort(c->rt->upstream, &c->x);
    const rt_attempt_t *a = call__current(c);
    charge_t ch = call__charge(c, a, c->streamed_bytes);
    call__record(c, a, &ch, 499);
    call__destroy(&c);
}

static void s_start_stream(call_t *c)
{
    const rt_attempt_t *a = call__current(c);
    /* From the first byte on there is no other attempt: what only attempts
     * need goes now (a stream may be held for minutes, by the thousand). */
    json_decref(c->canon);
    c->canon = NULL;
    http_req_drop_body(c->req); /* (curl sends c->upbody, the rendered request) */
    call__add_headers(c, a, 0, false);
    c->emitter = wire_emitter_new((wire_kind_t)c->format, c->id, a->model,
                                  c->include_usage, c->prompt_bound);
    c->st = http_reply_stream(c->req, 200, "text/event-stream", s_gone, c);
}

void call__on_event(const wire_ev_t *ev, void *ud)
{
    call_t *c = ud;
    if (ev->type == WIRE_EV_ERROR) {
        call__stream_error(c, ev->text ? ev->text : "", ev->len);
        return;
    }
    if (ev->type == WIRE_EV_USAGE) {
        c->usage = ev->usage;
        return;
    }
    if (!c->req)
        return;
    if (!c->st)
        s_start_stream(c);
    if (ev->type == WIRE_EV_TEXT || ev->type == WIRE_EV_TOOL)
        c->streamed_bytes += ev->len;
    wire_emit(c->emitter, ev, &c->out);
}

/* A paused stream: once the caller has taken every byte waiting, the
 * upstream transfer goes on (from this timer: the loop's, outside any
 * library's callback); until then, checked again, less and less often. */
static void s_drain_check(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    call_t *c = ud;
    c->drain_timer = NULL;
    if (c->st && http_stream_pending(c->st) > 0) {
        c->drain_ms =
            c->drain_ms * 2 > CALL_DRAIN_MAX_MS ? CALL_DRAIN_MAX_MS : c->drain_ms * 2;
        c->drain_timer = loop_add_timer(loop, c->drain_ms, 0, s_drain_check, c);
        return;
    }
    upstream_resume(c->rt->upstream, &c->x);
}

/* After the events of one piece of the stream: they go to the caller. 1
 * (pause) while the caller has CALL_PAUSE_AT bytes or more to take. */
int call__on_fed(void *ud)
{
    call_t *c = ud;
    size_t pending = 0;
    if (c->st && c->out.len) {
        http_stream_write(c->st, c->out.data, c->out.len);
        pending = http_stream_pending(c->st);
    }
    sbuf_reset(&c->out);
    if (pending > CALL_MAX_BACKLOG)
        return -ENOBUFS;
    if (pending < CALL_PAUSE_AT)
        return 0;
    if (!c->drain_timer) {
        c->drain_ms = CALL_DRAIN_MIN_MS;
        c->drain_timer = loop_add_timer(c->rt->loop, c->drain_ms, 0, s_drain_check, c);
    }
    return 1;
}

void call__end_stream(call_t *c, const rt_attempt_t *a)
{
    charge_t ch = call__charge(c, a, c->streamed_bytes);
    if (!c->st)
        s_start_stream(c); /* an empty stream is still a stream */
    sbuf_reset(&c->out);
    wire_emit_end(c->emitter, &c->usage, &c->out);
    char buf[32];
    snprintf(buf, sizeof buf, "%.6f", ch.cost_usd);
    http_stream_trailer(c->st, "X-Vapora-Cost-USD", buf);
    http_stream_write(c->st, c->out.data, c->out.len);
    http_stream_end(c->st, false);
    call__record(c, a, &ch, 200);
    call__destroy(&c);
}

/* The stream broke after bytes reached the caller: no fallback, an error
 * event ends it. */
void call__break_stream(call_t *c, const rt_attempt_t *a, const char *why)
{
    sbuf_reset(&c->out);
    wire_emit_error(c->emitter, why, &c->out);
    http_stream_write(c->st, c->out.data, c->out.len);
    http_stream_end(c->st, false);
    call__record_estimate(c, a, 502);
    call__destroy(&c);
}
