/* call.c - the life of one call: planning, admission, attempts with
 * retries and fallback, the reply (whole or streamed), settlement. See
 * call.h and router.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "log.h"
#include "alloc.h"
#include "now.h"
#include "plan.h"
#include "sbuf.h"

#define CALL_MAX_BODY (8u << 20)    /* a whole upstream answer */
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
    long prompt_bound; /* tokens, upper bound */
    long max_tokens;   /* worst-case output */
    /* plan and progress */
    rt_plan_t plans[3];
    rt_plan_t *plan;
    rt_state_t state;
    size_t next;       /* index of the attempt being made in *plan */
    unsigned tries;    /* on the current provider */
    unsigned attempts; /* in total */
    loop_timer_t *retry_timer;
    loop_timer_t *silence_timer; /* a stream's longest silence (provider timeout) */
    uint64_t last_data_ms;       /* loop_now_ms of the upstream's last bytes */
    /* budget */
    const rt_budget_t *budget;
    int64_t window_start;
    int64_t reservation;
    /* the current upstream transfer */
    CURL *easy;
    char *upbody; /* the upstream request body curl is sending */
    long status;
    double retry_after; /* seconds, from the upstream's Retry-After */
    sbuf_t body;        /* a whole (non-stream or error) upstream answer */
    wire_parser_t *parser;
    wire_emitter_t *emitter;
    sbuf_t out;         /* bytes for the caller, per callback */
    bool stream_failed; /* the upstream stream was malformed or errored */
    char *stream_error;
    char *last_error; /* of the latest failed attempt, for the caller */
    bool admitting;   /* the admission job is on the pool */
    bool client_gone; /* the caller closed its connection before the reply */
    CURLcode last_result;
    /* outcome */
    wire_usage_t usage;
    size_t streamed_bytes;
    uint64_t start_ns, attempt_ns;
} call_t;

static void s_attempt(call_t *c);

/* ---- bookkeeping ---- */

static void s_drop_transfer(call_t *c)
{
    loop_cancel_timer(c->rt->loop, &c->silence_timer);
    if (c->easy)
        upstream_put(c->rt->upstream, c->easy);
    c->easy = NULL;
    wire_parser_destroy(&c->parser);
    sbuf_reset(&c->body);
}

/* Frees c (NULL is fine) and sets *cp to NULL. */
static void s_destroy(call_t **cp)
{
    call_t *c = *cp;
    if (!c)
        return;
    list_remove(&c->link);
    loop_cancel_timer(c->rt->loop, &c->retry_timer);
    s_drop_transfer(c);
    wire_emitter_destroy(&c->emitter);
    json_decref(c->canon);
    sbuf_free(&c->body);
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

/* Records the outcome (usage.h); a: the attempt that answered last, NULL
 * when no provider was asked. The reservation goes with the record. */
static void s_record(call_t *c, const rt_attempt_t *a, double cost, bool estimated,
                     int status)
{
    usage_rec_t r = {.id = c->id,
                     .role = c->role,
                     .provider = a ? a->provider : NULL,
                     .model = a ? a->model : NULL,
                     .reservation = c->reservation,
                     .window_start = c->budget ? c->window_start : 0,
                     .tokens = c->usage,
                     .cost_usd = cost,
                     .estimated = estimated,
                     .http_status = status,
                     .attempts = c->attempts,
                     .start_ns = c->start_ns};
    usage_record(c->rt->usage, &r);
    c->reservation = 0;
}

/* ---- replies ---- */

static void s_add_headers(call_t *c, const rt_attempt_t *a, double cost, bool with_cost)
{
    char buf[64];
    http_req_add_header(c->req, "X-Vapora-Provider", a->provider->name);
    http_req_add_header(c->req, "X-Vapora-Model", a->model);
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
        char buf[32];
        snprintf(buf, sizeof buf, "%u", c->attempts);
        http_req_add_header(c->req, "X-Vapora-Attempts", buf);
        http_req_add_header(c->req, "X-Vapora-Budget-State", rt_state_name(c->state));
        http_reply_error(c->req, status, code, "%s", msg);
    }
    s_record(c, c->attempts ? a : NULL, 0, false, (int)status);
    s_destroy(&c);
}

/* The cost of a whole answer of bytes bytes. Without readable usage from
 * the provider the call is not free: its tokens are estimated (the prompt's
 * bound, a token per 4 bytes of answer) and *estimated is set. */
static double s_answer_cost(call_t *c, const rt_attempt_t *a, size_t bytes,
                            bool *estimated)
{
    *estimated = !c->usage.present;
    if (*estimated)
        c->usage = (wire_usage_t){c->prompt_bound, (long)((bytes + 3) / 4), false};
    return rt_cost(c->rt->cfg, a->model, c->usage.input_tokens, c->usage.output_tokens);
}

/* OpenAI to an OpenAI caller: the provider's bytes go back as they are and
 * only its usage is parsed, which saves parsing and rebuilding the rest.
 * false: not a completion this scan recognises (the full path decides). */
static bool s_relay_openai(call_t *c, const rt_attempt_t *a)
{
    if (wire_openai_scan_usage(c->body.data, c->body.len, &c->usage) < 0)
        return false;
    bool estimated;
    size_t blen = c->body.len;
    double cost = s_answer_cost(c, a, blen, &estimated);
    s_add_headers(c, a, cost, true);
    http_reply_owned(c->req, 200, "application/json", sbuf_steal(&c->body), blen);
    s_record(c, a, cost, estimated, 200);
    s_destroy(&c);
    return true;
}

static void s_reply_whole(call_t *c, const rt_attempt_t *a)
{
    char err[256];
    json_error_t je;
    if (a->provider->kind == WIRE_OPENAI && c->format == CALL_OPENAI && c->body.len &&
        s_relay_openai(c, a))
        return;
    json_t *body = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, &je);
    json_t *canon = body ? wire_canonical_response(a->provider->kind, body, c->id,
                                                   a->model, &c->usage, err, sizeof err)
                         : NULL;
    json_decref(body);
    if (!canon) {
        s_fail(c, 502, "upstream_error", "the provider's answer could not be read");
        return;
    }
    bool estimated;
    double cost = s_answer_cost(c, a, c->body.len, &estimated);
    s_add_headers(c, a, cost, true);
    if (c->format == CALL_ANTHROPIC) {
        json_t *m = wire_to_anthropic_response(canon);
        json_decref(canon);
        canon = m;
    }
    http_reply_json(c->req, 200, canon);
    s_record(c, a, cost, estimated, 200);
    s_destroy(&c);
}

/* The caller's own 4xx from the provider: its status, its message, in the
 * caller's format. */
static void s_reply_passthrough(call_t *c)
{
    json_t *body = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
    const char *msg = body ? wire_error_message(body) : NULL;
    char *m = xstrdup(msg ? msg : "the provider refused the request");
    json_decref(body);
    s_fail(c, (unsigned)c->status, c->status == 404 ? "not_found" : "upstream_rejected",
           m);
    free(m);
}

/* Records a call that ended without the provider's final usage: the
 * prompt and the streamed text, by estimate (about 4 bytes a token). a
 * NULL: no provider was asked. */
static void s_record_estimate(call_t *c, const rt_attempt_t *a, int status)
{
    long out = (long)((c->streamed_bytes + 3) / 4);
    c->usage = (wire_usage_t){a ? c->prompt_bound : 0, a ? out : 0, false};
    double cost =
        a ? rt_cost(c->rt->cfg, a->model, c->usage.input_tokens, c->usage.output_tokens)
          : 0;
    s_record(c, a, cost, true, status);
}

/* ---- streaming ---- */

static void s_gone(void *ud)
{
    call_t *c = ud;
    c->req = NULL;
    c->st = NULL;
    if (c->easy) { /* curlm takes the handle; nothing of c is called again */
        curlm_abort(c->rt->curlm, c->easy);
        c->easy = NULL;
    }
    const rt_attempt_t *a = s_current(c);
    if (c->usage.present)
        s_record(c, a,
                 rt_cost(c->rt->cfg, a->model, c->usage.input_tokens,
                         c->usage.output_tokens),
                 false, 499);
    else
        s_record_estimate(c, a, 499);
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
        c->stream_failed = true;
        free(c->stream_error);
        c->stream_error = xstrndup(ev->text ? ev->text : "", ev->len);
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

static size_t s_on_data(char *ptr, size_t size, size_t n, void *ud)
{
    call_t *c = ud;
    size_t len = size * n;
    c->last_data_ms = loop_now_ms(c->rt->loop);
    if (!c->status)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    if (!c->stream || c->status != 200) {
        if (c->body.len + len > CALL_MAX_BODY)
            return 0;
        if (!c->body.cap)
            sbuf_reserve(&c->body,
                         len < 2048 ? 2048 : len); /* most answers: one malloc */
        sbuf_append(&c->body, ptr, len);
        return len;
    }
    sbuf_reset(&c->out);
    if (wire_parser_feed(c->parser, ptr, len, s_on_event, c) < 0) {
        c->stream_failed = true;
        return 0;
    }
    if (c->st && c->out.len) {
        http_stream_write(c->st, c->out.data, c->out.len);
        if (http_stream_pending(c->st) > CALL_MAX_BACKLOG)
            return 0; /* the caller does not read: stop, do not buffer without end */
    }
    return len;
}

static size_t s_on_header(char *buf, size_t size, size_t n, void *ud)
{
    call_t *c = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
        double secs;
        char v[32];
        size_t k = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
        memcpy(v, buf + 12, k);
        v[k] = '\0';
        if (sscanf(v, "%lf", &secs) == 1 && secs >= 0)
            c->retry_after = secs;
    }
    return len;
}

static void s_end_stream(call_t *c, const rt_attempt_t *a)
{
    bool est = !c->usage.present;
    if (est) {
        c->usage.input_tokens = c->prompt_bound;
        c->usage.output_tokens = (long)((c->streamed_bytes + 3) / 4);
    }
    double cost =
        rt_cost(c->rt->cfg, a->model, c->usage.input_tokens, c->usage.output_tokens);
    if (!c->st)
        s_start_stream(c); /* an empty stream is still a stream */
    sbuf_reset(&c->out);
    wire_emit_end(c->emitter, &c->usage, &c->out);
    char buf[32];
    snprintf(buf, sizeof buf, "%.6f", cost);
    http_stream_trailer(c->st, "X-Vapora-Cost-USD", buf);
    http_stream_write(c->st, c->out.data, c->out.len);
    http_stream_end(c->st, false);
    s_record(c, a, cost, est, 200);
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
    bool again = c->tries <= (unsigned)rt->cfg->retries &&
                 rt_provider_available(a->provider, now) &&
                 c->retry_after <= CALL_MAX_RETRY_AFTER;
    if (!again) {
        c->next++;
        c->tries = 0;
        s_attempt(c);
        return;
    }
    double ms = 100.0 * (double)(1u << (c->tries - 1));
    ms *= 1.0 + (double)(random() % 250) / 1000.0;
    if (c->retry_after > 0)
        ms = c->retry_after * 1000.0;
    c->retry_timer = loop_add_timer(rt->loop, (uint64_t)ms, 0, s_retry_timer, c);
}

static void s_on_done(CURL *easy, CURLcode result, void *ud)
{
    call_t *c = ud;
    const rt_attempt_t *a = s_current(c);
    router_t *rt = c->rt;
    if (!c->status)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &c->status);
    double ms = (double)(now_ns() - c->attempt_ns) / 1e6;
    bool ok =
        result == CURLE_OK && c->status >= 200 && c->status < 300 && !c->stream_failed;
    if (ok && c->stream && !wire_parser_complete(c->parser)) {
        /* The body ended without the stream's end marker: cut short. Before
         * any byte reached the caller that is a failure to fall back from;
         * after, the caller's stream ends with an error event (below). */
        ok = false;
        c->stream_failed = true;
        free(c->stream_error);
        c->stream_error = xstrdup("the stream ended before its end");
    }
    if (ok) {
        rt_provider_success(rt->cfg, a->provider, ms);
        if (c->stream)
            s_end_stream(c, a);
        else
            s_reply_whole(c, a);
        return;
    }
    bool retriable =
        result != CURLE_OK || c->status == 429 || c->status >= 500 || c->stream_failed;
    if (result != CURLE_OK)
        s_last_error(c, "%s: %s", a->provider->name, curl_easy_strerror(result));
    else if (c->stream_failed)
        s_last_error(c, "%s: %s", a->provider->name,
                     c->stream_error ? c->stream_error : "malformed stream");
    else if (c->status != 200)
        s_last_error(c, "%s: HTTP %ld", a->provider->name, c->status);
    if (c->st) {
        rt_provider_failure(rt->cfg, a->provider, loop_now_ms(rt->loop));
        s_break_stream(c, a, c->last_error);
        return;
    }
    if (!retriable) {
        rt_provider_success(rt->cfg, a->provider,
                            ms); /* it answered: the caller erred */
        s_reply_passthrough(c);
        return;
    }
    rt_provider_failure(rt->cfg, a->provider, loop_now_ms(rt->loop));
    c->last_result = result;
    s_drop_transfer(c);
    s_next(c, a);
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
    uint64_t quiet = loop_now_ms(loop) - c->last_data_ms;
    if (quiet < limit) {
        c->silence_timer = loop_add_timer(loop, limit - quiet, 0, s_silence_check, c);
        return;
    }
    curlm_abort(c->rt->curlm, c->easy);
    c->easy = NULL;
    wire_parser_destroy(&c->parser);
    sbuf_reset(&c->body);
    rt_provider_failure(c->rt->cfg, a->provider, loop_now_ms(loop));
    s_last_error(c, "%s: the stream was silent for %ld s", a->provider->name,
                 a->provider->timeout_s);
    c->last_result = CURLE_OPERATION_TIMEDOUT;
    if (c->st)
        s_break_stream(c, a, c->last_error);
    else
        s_next(c, a);
}

/* Every attempt failed: the caller gets the last failure's kind. */
static void s_exhausted(call_t *c)
{
    unsigned status = 502;
    const char *code = "upstream_error";
    if (c->last_result == CURLE_OPERATION_TIMEDOUT)
        status = 504, code = "upstream_timeout";
    else if (c->last_result == CURLE_OK && (c->status == 429 || c->status == 503))
        status = (unsigned)c->status,
        code = c->status == 429 ? "rate_limited" : "unavailable";
    char *msg = xasprintf("every provider failed (%u attempts); last: %s", c->attempts,
                          c->last_error ? c->last_error : "none available");
    s_fail(c, status, code, msg);
    free(msg);
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
        raw && asked && strcmp(asked, a->model) == 0) {
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
                        .on_data = s_on_data,
                        .on_header = s_on_header,
                        .ud = c};
    r.body = s_upstream_body(c, a, path, sizeof path, &r.len);
    c->easy = upstream_easy(rt->upstream, &r);
    if (c->stream) {
        /* The provider's timeout bounds the stream's silences. */
        c->last_data_ms = loop_now_ms(rt->loop);
        loop_cancel_timer(rt->loop, &c->silence_timer);
        c->silence_timer = loop_add_timer(
            rt->loop, (uint64_t)a->provider->timeout_s * 1000, 0, s_silence_check, c);
        c->parser = wire_parser_new(a->provider->kind);
    }
    c->attempts++;
    c->tries++;
    c->status = 0;
    c->retry_after = 0;
    c->stream_failed = false;
    c->attempt_ns = now_ns();
    a->provider->requests++;
    if (curlm_add(rt->curlm, c->easy, s_on_done, c) < 0) {
        s_drop_transfer(c);
        s_fail(c, 500, "internal_error", "the upstream call could not be started");
    }
}

/* ---- admission ---- */

typedef struct admit_job {
    pool_work_t work;
    call_t *c;
    ledger_admit_t a;
} admit_job_t;

static void s_admit_work(pool_work_t *w)
{
    admit_job_t *j = container_of(w, admit_job_t, work);
    ledger_admit(j->c->rt->ledger, &j->a);
}

static void s_admit_done(pool_work_t *w, int status)
{
    admit_job_t *j = container_of(w, admit_job_t, work);
    call_t *c = j->c;
    ledger_admit_t *a = &j->a;
    c->admitting = false;
    if (c->client_gone) { /* nothing was asked yet; release what was reserved */
        c->reservation = a->rc == 0 ? a->reservation : 0;
        free(j);
        s_fail(c, 499, "client_closed", "the client closed its connection");
        return;
    }
    if (status < 0 || a->rc < 0) {
        free(j);
        s_fail(c, 503, "ledger_unavailable", "the budget ledger could not be read");
        return;
    }
    c->state = a->state;
    if (a->rc == 1) {
        char *msg = xasprintf("role '%s' has spent $%.6f (and reserved $%.6f) of its "
                              "$%.2f %s budget",
                              c->role, (double)a->spent / LEDGER_NANO,
                              (double)a->reserved / LEDGER_NANO, c->budget->limit_usd,
                              rt_window_name(c->budget->window));
        free(j);
        s_fail(c, 429, "budget_exceeded", msg);
        free(msg);
        return;
    }
    c->plan = &c->plans[a->plan];
    c->reservation = a->reservation;
    free(j);
    s_attempt(c);
}

/* Worst-case cost (nano-USD) of a plan: its dearest attempt. -1: empty. */
static int64_t s_worst(const call_t *c, const rt_plan_t *p)
{
    if (p->n == 0)
        return -1;
    double worst = 0;
    for (size_t i = 0; i < p->n; i++) {
        double cost =
            rt_cost(c->rt->cfg, p->attempts[i].model, c->prompt_bound, c->max_tokens);
        if (cost > worst)
            worst = cost;
    }
    return (int64_t)ceil(worst * LEDGER_NANO);
}

/* The caller closed its connection before any byte of the answer: the
 * upstream call stops (it would cost money for nobody), the reservation is
 * released, what the prompt cost is counted as an estimate. */
static void s_client_gone(void *ud)
{
    call_t *c = ud;
    c->client_gone = true;
    if (c->admitting)
        return; /* s_admit_done ends it */
    if (c->easy) {
        curlm_abort(c->rt->curlm, c->easy);
        c->easy = NULL;
    }
    loop_cancel_timer(c->rt->loop, &c->retry_timer);
    http_reply_error(c->req, 499, "client_closed", "the client closed its connection");
    s_record_estimate(c, c->attempts ? s_current(c) : NULL, 499);
    s_destroy(&c);
}

/* Submits the admission of a budgeted call (the ledger reserves the worst
 * case of the plan it can afford); s_admit_done carries on. */
static void s_admit(call_t *c)
{
    admit_job_t *j = xcalloc(1, sizeof *j);
    j->c = c;
    int64_t end;
    rt_window_bounds(c->budget->window, time(NULL), &c->window_start, &end);
    j->a =
        (ledger_admit_t){.role = c->role,
                         .window_start = c->window_start,
                         .limit = (int64_t)llround(c->budget->limit_usd * LEDGER_NANO),
                         .near_percent = c->budget->near_percent};
    for (int s = 0; s < 3; s++)
        j->a.amounts[s] = s_worst(c, &c->plans[s]);
    c->admitting = true;
    if (pool_submit(c->rt->pool, &j->work, s_admit_work, s_admit_done) < 0) {
        c->admitting = false;
        free(j);
        s_fail(c, 503, "overloaded", "the router is busy; retry shortly");
    }
}

/* ---- start ---- */

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

static long s_max_tokens(const router_t *rt, const json_t *canon)
{
    json_t *v = json_object_get(canon, "max_completion_tokens");
    if (!json_is_integer(v))
        v = json_object_get(canon, "max_tokens");
    return json_is_integer(v) && json_integer_value(v) > 0
               ? (long)json_integer_value(v)
               : rt->cfg->default_max_tokens;
}

static call_t *s_new(router_t *rt, http_req_t *req, call_format_t format, json_t *canon)
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
    const char *role = http_req_header(req, "X-Vapora-Role");
    snprintf(c->role, sizeof c->role, "%s", role && *role ? role : "default");
    c->budget = rt_budget_find(rt->cfg, c->role);
    c->prompt_bound = wire_prompt_token_bound(canon);
    c->max_tokens = s_max_tokens(rt, canon);
    s_call_id(c);
    return c;
}

/* Plans c; replies and frees it when the request names nothing we know. */
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
    if (rc < 0)
        s_destroy(&c);
    return rc == 0;
}

void call_start(router_t *rt, http_req_t *req, call_format_t format, json_t *canon)
{
    call_t *c = s_new(rt, req, format, canon);
    if (!s_plan(c))
        return;
    http_req_watch_gone(c->req, s_client_gone, c);
    list_push_front(&rt->calls, &c->link);
    c->start_ns = now_ns();
    if (c->budget) {
        s_admit(c);
        return;
    }
    c->state = RT_NORMAL;
    c->plan = &c->plans[RT_NORMAL];
    s_attempt(c);
}

void call_abort_all(router_t *rt)
{
    list_t *it;
    while ((it = list_first(&rt->calls))) {
        call_t *c = list_item(it, call_t, link);
        if (c->easy) {
            curlm_abort(rt->curlm, c->easy);
            c->easy = NULL;
        }
        if (c->st)
            http_stream_end(c->st, true);
        /* What it cost so far is counted and its reservation released
         * (usage_destroy writes these last records). */
        s_record_estimate(c, c->attempts ? s_current(c) : NULL, 503);
        s_destroy(&c);
    }
}
