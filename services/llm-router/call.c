/* call.c - the life of one call: planning, admission, attempts with
 * retries and fallback, the reply (whole or streamed), settlement. See
 * call.h and router.h; one exchange with a provider is upstream.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "admit.h"
#include "alloc.h"
#include "charge.h"
#include "log.h"
#include "now.h"
#include "plan.h"
#include "sbuf.h"

#define CALL_MAX_BACKLOG (4u << 20) /* streamed bytes the caller has not taken */
#define CALL_MAX_RETRY_AFTER 10.0   /* longer: ask the next provider instead */

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
    const char *caller; /* its name, borrowed from the callers */
    long prompt_bound;  /* tokens, upper bound */
    long max_tokens;    /* worst-case output */
    bool bound_added;   /* max_tokens is the router's, added to canon */
    /* plan and progress */
    rt_plan_t plans[3];
    rt_plan_t *plan;
    rt_state_t state;
    size_t next;       /* index of the attempt being made in *plan */
    unsigned tries;    /* on the current provider */
    unsigned attempts; /* in total */
    loop_timer_t *retry_timer;
    loop_timer_t *silence_timer; /* a stream's longest silence (provider timeout) */
    /* budget */
    const rt_budget_t *budget;
    int64_t reservation;
    admit_t admit;  /* the admission job (window_start is its a.window_start) */
    bool admitting; /* on the pool */
    /* the current attempt */
    upstream_xfer_t x;
    char *upbody; /* the rendered request curl is sending */
    wire_emitter_t *emitter;
    sbuf_t out;         /* bytes for the caller, per piece of stream */
    bool stream_failed; /* the upstream stream was malformed or errored */
    bool bad_answer;    /* a whole answer that could not be relayed */
    char *stream_error;
    char *last_error; /* of the latest failed attempt, for the caller */
    bool client_gone; /* the caller closed its connection before the reply */
    CURLcode last_result;
    /* outcome */
    wire_usage_t usage;
    size_t streamed_bytes;
    uint64_t start_ns;
} call_t;

static void s_attempt(call_t *c);

/* ---- bookkeeping ---- */

/* The current attempt's exchange is over (or never started): what it held
 * goes. */
static void s_drop_transfer(call_t *c)
{
    loop_cancel_timer(c->rt->loop, &c->silence_timer);
    upstream_end(c->rt->upstream, &c->x);
}

/* Frees c (NULL is fine) and sets *cp to NULL. */
static void s_destroy(call_t **cp)
{
    call_t *c = *cp;
    if (!c)
        return;
    list_remove(&c->link);
    loop_cancel_timer(c->rt->loop, &c->retry_timer);
    loop_cancel_timer(c->rt->loop, &c->silence_timer);
    upstream_xfer_free(c->rt->upstream, &c->x);
    wire_emitter_destroy(&c->emitter);
    json_decref(c->canon);
    sbuf_free(&c->out);
    free(c->stream_error);
    free(c->last_error);
    free(c->upbody);
    free(c);
    *cp = NULL;
}

static const rt_attempt_t *s_current(const call_t *c)
{
    return c->plan && c->next < c->plan->n ? &c->plan->attempts[c->next] : NULL;
}

static void s_last_error(call_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_last_error(call_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_t b = {0};
    sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    free(c->last_error);
    c->last_error = sbuf_steal(&b);
}

static void s_stream_error(call_t *c, const char *text, size_t len)
{
    c->stream_failed = true;
    free(c->stream_error);
    c->stream_error = xstrndup(text, len);
}

/* Records the outcome (usage.h); a: the attempt that answered last, NULL
 * when no provider was asked. The reservation goes with the record. */
static void s_record(call_t *c, const rt_attempt_t *a, const charge_t *ch, int status)
{
    usage_rec_t r = {.id = c->id,
                     .caller = c->caller,
                     .role = c->role,
                     .budget = c->budget ? c->budget->role : NULL,
                     .provider = a ? a->provider : NULL,
                     .model = a ? a->model : NULL,
                     .reservation = c->reservation,
                     .window_start = c->budget ? c->admit.a.window_start : 0,
                     .tokens = ch->tokens,
                     .cost_usd = ch->cost_usd,
                     .estimated = ch->estimated,
                     .anomaly = ch->anomaly,
                     .http_status = status,
                     .attempts = c->attempts,
                     .start_ns = c->start_ns};
    usage_record(c->rt->usage, &r);
    c->reservation = 0;
}

/* What the answer of attempt a costs, its text `bytes` long, from the
 * provider's usage (c->usage; estimated when missing or unreadable) and
 * never more than the call reserved (charge.h). c->usage becomes what is
 * charged. */
static charge_t s_charge(call_t *c, const rt_attempt_t *a, size_t bytes)
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
static void s_record_estimate(call_t *c, const rt_attempt_t *a, int status)
{
    c->usage = (wire_usage_t){0};
    charge_t ch = {.estimated = true};
    if (a)
        ch = s_charge(c, a, c->streamed_bytes);
    s_record(c, a, &ch, status);
}

/* ---- replies ---- */

/* X-Vapora-*: the provider and model when a, the cost when with_cost. */
static void s_add_headers(call_t *c, const rt_attempt_t *a, double cost, bool with_cost)
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
static void s_fail(call_t *c, unsigned status, const char *code, const char *msg)
{
    const rt_attempt_t *a = s_current(c);
    if (!a && c->plan && c->plan->n)
        a = &c->plan->attempts[c->plan->n - 1];
    if (c->req) {
        s_add_headers(c, NULL, 0, false);
        http_reply_error(c->req, status, code, "%s", msg);
    }
    s_record(c, c->attempts ? a : NULL, &(charge_t){0}, (int)status);
    s_destroy(&c);
}

/* OpenAI to an OpenAI caller: the provider's bytes go back as they are and
 * only its usage is read, which saves parsing and rebuilding the rest.
 * false: not a completion this scan recognises (the full path decides). */
static bool s_relay_openai(call_t *c, const rt_attempt_t *a)
{
    sbuf_t *body = &c->x.body;
    if (wire_openai_scan_usage(body->data, body->len, &c->usage) < 0)
        return false;
    size_t blen = body->len;
    charge_t ch = s_charge(c, a, blen);
    s_add_headers(c, a, ch.cost_usd, true);
    http_reply_owned(c->req, 200, "application/json", sbuf_steal(body), blen);
    s_record(c, a, &ch, 200);
    s_destroy(&c);
    return true;
}

/* A whole answer that cannot be relayed: the attempt failed (the caller's
 * last error says why) and the next provider is asked. */
static bool s_bad_answer(call_t *c, const rt_attempt_t *a, const char *why)
{
    c->bad_answer = true;
    s_last_error(c, "%s: %s", a->provider->name, why);
    return false;
}

/* Replies with the whole answer of attempt a (answered 2xx in ms) and
 * ends c; false, c intact, when the answer is not valid JSON in UTF-8 or
 * not an answer of its provider's kind: nothing is relayed then. */
static bool s_reply_whole(call_t *c, const rt_attempt_t *a, double ms)
{
    char err[256];
    const sbuf_t *b = &c->x.body;
    if (!wire_json_valid(b->data, b->len))
        return s_bad_answer(c, a, "the answer is not valid JSON in UTF-8");
    rt_provider_success(c->rt->cfg, a->provider, ms);
    if (a->provider->kind == WIRE_OPENAI && c->format == CALL_OPENAI &&
        s_relay_openai(c, a))
        return true;
    json_t *body = json_loadb(b->data, b->len, 0, NULL);
    json_t *canon = body ? wire_canonical_response(a->provider->kind, body, c->id,
                                                   a->model, &c->usage, err, sizeof err)
                         : NULL;
    json_decref(body);
    if (!canon) /* (the health counts it a failure after this success) */
        return s_bad_answer(c, a, body ? err : "the answer could not be read");
    charge_t ch = s_charge(c, a, b->len);
    if (ch.anomaly) /* the caller is told what was charged, not what was claimed */
        json_object_set_new(canon, "usage",
                            json_pack("{s:I,s:I,s:I}", "prompt_tokens",
                                      (json_int_t)ch.tokens.input_tokens,
                                      "completion_tokens",
                                      (json_int_t)ch.tokens.output_tokens,
                                      "total_tokens",
                                      (json_int_t)(ch.tokens.input_tokens +
                                                   ch.tokens.output_tokens)));
    s_add_headers(c, a, ch.cost_usd, true);
    if (c->format == CALL_ANTHROPIC) {
        json_t *m = wire_to_anthropic_response(canon);
        json_decref(canon);
        canon = m;
    }
    http_reply_json(c->req, 200, canon);
    s_record(c, a, &ch, 200);
    s_destroy(&c);
    return true;
}

/* The caller's own 4xx from the provider: its status, its message, in the
 * caller's format. */
static void s_reply_passthrough(call_t *c)
{
    const sbuf_t *b = &c->x.body;
    long status = c->x.status;
    json_t *body = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    const char *msg = body ? wire_error_message(body) : NULL;
    char *m = xstrdup(msg ? msg : "the provider refused the request");
    json_decref(body);
    s_fail(c, (unsigned)status, status == 404 ? "not_found" : "upstream_rejected", m);
    free(m);
}

/* ---- streaming ---- */

/* The caller left a stream: the upstream stops, what it cost is counted. */
static void s_gone(void *ud)
{
    call_t *c = ud;
    c->req = NULL;
    c->st = NULL;
    upstream_abort(c->rt->upstream, &c->x);
    const rt_attempt_t *a = s_current(c);
    charge_t ch = s_charge(c, a, c->streamed_bytes);
    s_record(c, a, &ch, 499);
    s_destroy(&c);
}

static void s_start_stream(call_t *c)
{
    const rt_attempt_t *a = s_current(c);
    /* From the first byte on there is no other attempt: what only attempts
     * need goes now (a stream may be held for minutes, by the thousand). */
    json_decref(c->canon);
    c->canon = NULL;
    http_req_drop_body(c->req); /* (curl sends c->upbody, the rendered request) */
    s_add_headers(c, a, 0, false);
    c->emitter = wire_emitter_new((wire_kind_t)c->format, c->id, a->model,
                                  c->include_usage, c->prompt_bound);
    c->st = http_reply_stream(c->req, 200, "text/event-stream", s_gone, c);
}

static void s_on_event(const wire_ev_t *ev, void *ud)
{
    call_t *c = ud;
    if (ev->type == WIRE_EV_ERROR) {
        s_stream_error(c, ev->text ? ev->text : "", ev->len);
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

/* After the events of one piece of the stream: they go to the caller. */
static int s_on_fed(void *ud)
{
    call_t *c = ud;
    int rc = 0;
    if (c->st && c->out.len) {
        http_stream_write(c->st, c->out.data, c->out.len);
        if (http_stream_pending(c->st) > CALL_MAX_BACKLOG)
            rc = -ENOBUFS; /* the caller does not read: stop, do not buffer without end
                            */
    }
    sbuf_reset(&c->out);
    return rc;
}

static void s_end_stream(call_t *c, const rt_attempt_t *a)
{
    charge_t ch = s_charge(c, a, c->streamed_bytes);
    if (!c->st)
        s_start_stream(c); /* an empty stream is still a stream */
    sbuf_reset(&c->out);
    wire_emit_end(c->emitter, &c->usage, &c->out);
    char buf[32];
    snprintf(buf, sizeof buf, "%.6f", ch.cost_usd);
    http_stream_trailer(c->st, "X-Vapora-Cost-USD", buf);
    http_stream_write(c->st, c->out.data, c->out.len);
    http_stream_end(c->st, false);
    s_record(c, a, &ch, 200);
    s_destroy(&c);
}

/* The stream broke after bytes reached the caller: no fallback, an error
 * event ends it. */
static void s_break_stream(call_t *c, const rt_attempt_t *a, const char *why)
{
    sbuf_reset(&c->out);
    wire_emit_error(c->emitter, why, &c->out);
    http_stream_write(c->st, c->out.data, c->out.len);
    http_stream_end(c->st, false);
    s_record_estimate(c, a, 502);
    s_destroy(&c);
}

/* ---- attempts ---- */

static void s_retry_timer(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    call_t *c = ud;
    c->retry_timer = NULL;
    s_attempt(c);
}

/* After a retriable failure: the same provider again after a backoff, or
 * the next one. */
static void s_next(call_t *c, const rt_attempt_t *a)
{
    router_t *rt = c->rt;
    uint64_t now = loop_now_ms(rt->loop);
    double retry_after = c->x.retry_after;
    /* An answer that is corrupt (not JSON, not UTF-8, not a stream of its
     * kind) is not asked for again: the next provider is. */
    bool corrupt = c->bad_answer || c->x.malformed;
    bool again = !corrupt && c->tries <= (unsigned)rt->cfg->retries &&
                 rt_provider_available(a->provider, now) &&
                 retry_after <= CALL_MAX_RETRY_AFTER;
    if (!again) {
        c->next++;
        c->tries = 0;
        s_attempt(c);
        return;
    }
    double ms = 100.0 * (double)(1u << (c->tries - 1));
    ms *= 1.0 + (double)(random() % 250) / 1000.0;
    if (retry_after > 0)
        ms = retry_after * 1000.0;
    c->retry_timer = loop_add_timer(rt->loop, (uint64_t)ms, 0, s_retry_timer, c);
}

/* Why the attempt failed, for the caller's last error. */
static void s_failure_reason(call_t *c, const rt_attempt_t *a, CURLcode result)
{
    if (c->bad_answer)
        return; /* s_reply_whole said why */
    if (result != CURLE_OK)
        s_last_error(c, "%s: %s", a->provider->name, curl_easy_strerror(result));
    else if (c->stream_failed)
        s_last_error(c, "%s: %s", a->provider->name,
                     c->stream_error ? c->stream_error : "malformed stream");
    else if (c->x.status != 200)
        s_last_error(c, "%s: HTTP %ld", a->provider->name, c->x.status);
}

/* The attempt's exchange is over (upstream.h). */
static void s_on_done(void *ud, CURLcode result)
{
    call_t *c = ud;
    const rt_attempt_t *a = s_current(c);
    router_t *rt = c->rt;
    long status = c->x.status;
    double ms = (double)(now_ns() - c->x.start_ns) / 1e6;
    if (c->x.malformed)
        c->stream_failed = true;
    bool ok = result == CURLE_OK && status >= 200 && status < 300 && !c->stream_failed;
    if (ok && c->stream && !wire_parser_complete(c->x.parser)) {
        /* The body ended without the stream's end marker: cut short. Before
         * any byte reached the caller that is a failure to fall back from;
         * after, the caller's stream ends with an error event (below). */
        ok = false;
        const char *why = "the stream ended before its end";
        s_stream_error(c, why, strlen(why));
    }
    if (ok && c->stream) {
        rt_provider_success(rt->cfg, a->provider, ms);
        s_end_stream(c, a);
        return;
    }
    if (ok && s_reply_whole(c, a, ms))
        return;
    bool retriable = result != CURLE_OK || status == 429 || status >= 500 ||
                     c->stream_failed || c->bad_answer;
    s_failure_reason(c, a, result);
    if (c->st) {
        rt_provider_failure(rt->cfg, a->provider, loop_now_ms(rt->loop));
        s_break_stream(c, a, c->last_error);
    } else if (!retriable) { /* it answered: the caller erred */
        rt_provider_success(rt->cfg, a->provider, ms);
        s_reply_passthrough(c);
    } else {
        rt_provider_failure(rt->cfg, a->provider, loop_now_ms(rt->loop));
        c->last_result = result;
        s_drop_transfer(c);
        s_next(c, a);
    }
}

/* A stream's upstream has been silent for its provider's timeout: the
 * transfer stops, as a timeout: another provider is asked when nothing
 * reached the caller yet, else the caller's stream ends with an error. */
static void s_silence_check(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    call_t *c = ud;
    c->silence_timer = NULL; /* one-shot */
    const rt_attempt_t *a = s_current(c);
    uint64_t limit = (uint64_t)a->provider->timeout_s * 1000;
    uint64_t quiet = loop_now_ms(loop) - c->x.last_data_ms;
    if (quiet < limit) {
        c->silence_timer = loop_add_timer(loop, limit - quiet, 0, s_silence_check, c);
        return;
    }
    upstream_abort(c->rt->upstream, &c->x);
    upstream_end(c->rt->upstream, &c->x);
    rt_provider_failure(c->rt->cfg, a->provider, loop_now_ms(loop));
    s_last_error(c, "%s: the stream was silent for %ld s", a->provider->name,
                 a->provider->timeout_s);
    c->last_result = CURLE_OPERATION_TIMEDOUT;
    if (c->st)
        s_break_stream(c, a, c->last_error);
    else
        s_next(c, a);
}

/* Appends, when some providers were left out for want of a key, which. */
static void s_skipped(const rt_config_t *cfg, sbuf_t *out)
{
    sbuf_t names = {0};
    if (rt_keyless_names(cfg, &names))
        sbuf_printf(out, "; skipped, without the api_key their kind needs: %s",
                    names.data);
    sbuf_free(&names);
}

/* Every attempt failed: the caller gets the last failure's kind. */
static void s_exhausted(call_t *c)
{
    unsigned status = 502;
    const char *code = "upstream_error";
    long last = c->x.status;
    if (c->last_result == CURLE_OPERATION_TIMEDOUT)
        status = 504, code = "upstream_timeout";
    else if (c->last_result == CURLE_OK && (last == 429 || last == 503))
        status = (unsigned)last, code = last == 429 ? "rate_limited" : "unavailable";
    sbuf_t msg = {0};
    sbuf_printf(&msg, "every provider failed (%u attempts); last: %s", c->attempts,
                c->last_error ? c->last_error : "none available");
    s_skipped(c->rt->cfg, &msg);
    s_fail(c, status, code, msg.data);
    sbuf_free(&msg);
}

/* The body to send for attempt a, its length, and the path to send it to:
 * the caller's own bytes when they are the upstream's request, else the
 * canonical request rendered for the provider (kept in c->upbody). */
static const char *s_upstream_body(call_t *c, const rt_attempt_t *a, char *path,
                                   size_t pathlen, size_t *len)
{
    char *text;
    const char *asked = json_string_value(json_object_get(c->canon, "model"));
    size_t raw_len = 0;
    const char *raw = c->req ? http_req_body(c->req, &raw_len) : NULL;
    if (a->provider->kind == WIRE_OPENAI && c->format == CALL_OPENAI && !c->stream &&
        !c->bound_added && raw && asked && strcmp(asked, a->model) == 0) {
        /* The caller's own request is the upstream's: send its bytes. */
        snprintf(path, pathlen, "/chat/completions");
        text = raw_len <= 16384 ? NULL : xstrndup(raw, raw_len);
    } else {
        json_t *body =
            wire_upstream_request(a->provider->kind, c->canon, a->model, c->stream,
                                  c->rt->cfg->default_max_tokens, path, pathlen);
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
    free(c->upbody);  /* the previous attempt's */
    c->upbody = text; /* curl reads it in place until the transfer ends */
    /* A small request of the caller's own is read from the request itself:
     * it leaves in the first send, long before the request could be freed. */
    *len = text ? strlen(text) : raw_len;
    return text ? text : raw;
}

static void s_attempt(call_t *c)
{
    router_t *rt = c->rt;
    const rt_attempt_t *a = s_current(c);
    if (!a) {
        s_exhausted(c);
        return;
    }
    char path[512];
    upstream_req_t r = {.provider = a->provider,
                        .path = path,
                        .stream = c->stream,
                        .on_event = s_on_event,
                        .on_fed = s_on_fed,
                        .on_done = s_on_done,
                        .ud = c};
    r.body = s_upstream_body(c, a, path, sizeof path, &r.len);
    c->attempts++;
    c->tries++;
    c->stream_failed = false;
    c->bad_answer = false;
    a->provider->requests++;
    if (upstream_start(rt->upstream, &c->x, &r) < 0) {
        s_fail(c, 500, "internal_error", "the upstream call could not be started");
        return;
    }
    if (c->stream) { /* the provider's timeout bounds the stream's silences */
        loop_cancel_timer(rt->loop, &c->silence_timer);
        c->silence_timer = loop_add_timer(
            rt->loop, (uint64_t)a->provider->timeout_s * 1000, 0, s_silence_check, c);
    }
}

/* ---- admission ---- */

static void s_admit_done(admit_t *ad, int status)
{
    call_t *c = container_of(ad, call_t, admit);
    const ledger_admit_t *a = &ad->a;
    c->admitting = false;
    if (c->client_gone) { /* nothing was asked yet; release what was reserved */
        c->reservation = a->rc == 0 ? a->reservation : 0;
        s_fail(c, 499, "client_closed", "the client closed its connection");
        return;
    }
    if (status < 0 || a->rc < 0) {
        s_fail(c, 503, "ledger_unavailable", "the budget ledger could not be read");
        return;
    }
    c->state = a->state;
    if (a->rc == 1) {
        sbuf_t msg = {0};
        if (strcmp(c->role, c->budget->role) == 0)
            sbuf_printf(&msg, "role '%s' has", c->role);
        else
            sbuf_printf(&msg,
                        "role '%s' has no budget of its own; the budget '%s' it "
                        "shares has",
                        c->role, c->budget->role);
        sbuf_printf(&msg, " spent $%.6f (and reserved $%.6f) of its $%.2f %s budget",
                    (double)a->spent / LEDGER_NANO, (double)a->reserved / LEDGER_NANO,
                    c->budget->limit_usd, rt_window_name(c->budget->window));
        s_fail(c, 429, "budget_exceeded", msg.data);
        sbuf_free(&msg);
        return;
    }
    c->plan = &c->plans[a->plan];
    c->reservation = a->reservation;
    s_attempt(c);
}

/* The call waits for its admission (admit.h); s_admit_done carries on. */
static void s_admit(call_t *c)
{
    c->admitting = true;
    if (admit_submit(&c->admit, c->rt, c->budget, c->plans, c->prompt_bound,
                     c->max_tokens, s_admit_done) < 0) {
        c->admitting = false;
        s_fail(c, 503, "overloaded", "the router is busy; retry shortly");
    }
}

/* ---- start and end ---- */

/* The caller closed its connection before any byte of the answer: the
 * upstream call stops (it would cost money for nobody), the reservation is
 * released, what the prompt cost is counted as an estimate. */
static void s_client_gone(void *ud)
{
    call_t *c = ud;
    c->client_gone = true;
    if (c->admitting)
        return; /* s_admit_done ends it */
    upstream_abort(c->rt->upstream, &c->x);
    loop_cancel_timer(c->rt->loop, &c->retry_timer);
    http_reply_error(c->req, 499, "client_closed", "the client closed its connection");
    s_record_estimate(c, c->attempts ? s_current(c) : NULL, 499);
    s_destroy(&c);
}

static void s_call_id(call_t *c)
{
    static unsigned long seq;
    static pid_t pid;
    if (!pid)
        pid = getpid();
    snprintf(c->id, sizeof c->id, "%s%x%06lx%08lx",
             c->format == CALL_ANTHROPIC ? "msg_vp" : "chatcmpl-vp", (unsigned)pid,
             ++seq & 0xffffff, (unsigned long)time(NULL));
}

/* The most output tokens the call may cost (its reservation's): the
 * request's own bound, else default_max_tokens, which the provider is then
 * asked for too (max_completion_tokens), so that no answer outgrows what
 * was reserved for it (charge.h). */
static long s_output_bound(call_t *c)
{
    long v;
    if (wire_max_tokens(c->canon, &v) && v > 0)
        return v;
    v = c->rt->cfg->default_max_tokens;
    json_object_set_new(c->canon, "max_completion_tokens", json_integer(v));
    c->bound_added = true;
    return v;
}

static call_t *s_new(router_t *rt, http_req_t *req, call_format_t format, json_t *canon,
                     const call_who_t *who)
{
    call_t *c = xcalloc(1, sizeof *c);
    c->rt = rt;
    list_init(&c->link);
    c->req = req;
    c->format = format;
    c->canon = canon;
    c->stream = json_is_true(json_object_get(canon, "stream"));
    json_t *so = json_object_get(canon, "stream_options");
    c->include_usage =
        format == CALL_OPENAI && json_is_true(json_object_get(so, "include_usage"));
    snprintf(c->role, sizeof c->role, "%s", who->role);
    c->caller = who->caller;
    c->budget = who->budget;
    VP_ASSERT(c->budget != NULL);
    c->prompt_bound = wire_prompt_token_bound(canon);
    c->max_tokens = s_output_bound(c);
    s_call_id(c);
    return c;
}

/* No provider may be asked at all: every one that could serve the request
 * lacks the key its kind needs (or the one X-Vapora-Provider names does). */
static void s_no_provider(call_t *c)
{
    sbuf_t msg = {0};
    sbuf_puts(&msg, "no provider can serve this request");
    s_skipped(c->rt->cfg, &msg);
    http_reply_error(c->req, 503, "no_provider", "%s", msg.data);
    sbuf_free(&msg);
}

/* Plans c; replies and frees it when the request names nothing we know, or
 * nothing it may ask. */
static bool s_plan(call_t *c)
{
    rt_request_t rq = {
        .model = json_string_value(json_object_get(c->canon, "model")),
        .task_type = http_req_header(c->req, "X-Vapora-Task-Type"),
        .provider = http_req_header(c->req, "X-Vapora-Provider"),
    };
    int rc = rt_plan(c->rt->cfg, &rq, loop_now_ms(c->rt->loop), c->plans);
    if (rc == VP_EUNKNOWN_MODEL)
        http_reply_error(
            c->req, 404, "model_not_found",
            "the model '%s' does not exist or is not configured (GET /v1/models "
            "lists them)",
            rq.model);
    else if (rc == VP_EUNKNOWN_PROVIDER)
        http_reply_error(c->req, 400, "unknown_provider",
                         "X-Vapora-Provider names no configured provider: '%s'",
                         rq.provider);
    bool none = rc == 0 && c->plans[RT_NORMAL].n == 0;
    if (none)
        s_no_provider(c);
    if (rc < 0 || none) {
        s_destroy(&c);
        return false;
    }
    return true;
}

void call_start(router_t *rt, http_req_t *req, call_format_t format, json_t *canon,
                const call_who_t *who)
{
    call_t *c = s_new(rt, req, format, canon, who);
    if (!s_plan(c))
        return;
    http_req_watch_gone(c->req, s_client_gone, c);
    list_push_front(&rt->calls, &c->link);
    c->start_ns = now_ns();
    s_admit(c);
}

void call_abort_all(router_t *rt)
{
    list_t *it;
    while ((it = list_first(&rt->calls))) {
        call_t *c = list_item(it, call_t, link);
        upstream_abort(rt->upstream, &c->x);
        if (c->st)
            http_stream_end(c->st, true);
        /* What it cost so far is counted and its reservation released
         * (usage_destroy writes these last records). */
        s_record_estimate(c, c->attempts ? s_current(c) : NULL, 503);
        s_destroy(&c);
    }
}
