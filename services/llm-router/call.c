/* call.c - the life of one call: admission, attempts with retries and
 * fallback, the reply (whole or streamed), settlement. See gateway.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gateway.h"
#include "log.h"
#include "alloc.h"
#include "now.h"
#include "sbuf.h"

#define CALL_MAX_BODY (8u << 20)    /* a whole upstream answer */
#define CALL_MAX_BACKLOG (4u << 20) /* streamed bytes the caller has not taken */
#define CALL_MAX_RETRY_AFTER 10.0   /* longer: ask the next provider instead */

static void s_attempt(call_t *c);

/* ---- bookkeeping ---- */

static void s_unlink(call_t *c)
{
    gateway_t *gw = c->gw;
    if (c->prev)
        c->prev->next_call = c->next_call;
    else if (gw->calls == c)
        gw->calls = c->next_call;
    if (c->next_call)
        c->next_call->prev = c->prev;
    c->prev = c->next_call = NULL;
}

/* Easy handles are kept for reuse: creating one costs a dozen allocations
 * per request. */
static CURL *s_easy_get(gateway_t *gw)
{
    CURL *e = gw->nidle ? gw->idle[--gw->nidle] : curl_easy_init();
    VP_ASSERT(e != NULL);
    return e;
}

/* Not reset: every attempt sets the same options again (s_attempt), and a
 * reset re-initialises all of them, which costs more than it saves. */
static void s_easy_put(gateway_t *gw, CURL *e)
{
    if (gw->nidle < ARRAY_LEN(gw->idle)) {
        gw->idle[gw->nidle++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

static void s_drop_transfer(call_t *c)
{
    loop_cancel_timer(c->gw->loop, &c->silence_timer);
    if (c->easy)
        s_easy_put(c->gw, c->easy);
    c->easy = NULL;
    wire_parser_destroy(&c->parser);
    sbuf_reset(&c->body);
}

void call_free(call_t *c)
{
    if (!c)
        return;
    s_unlink(c);
    loop_cancel_timer(c->gw->loop, &c->retry_timer);
    s_drop_transfer(c);
    wire_emitter_destroy(&c->emitter);
    json_decref(c->canon);
    sbuf_free(&c->body);
    sbuf_free(&c->out);
    free(c->stream_error);
    free(c->last_error);
    free(c->upbody);
    free(c);
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
    usage_record(c->gw, c, c->attempts ? a : NULL, 0, false, (int)status);
    call_free(c);
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
    return rt_cost(c->gw->cfg, a->model, c->usage.input_tokens, c->usage.output_tokens);
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
    usage_record(c->gw, c, a, cost, estimated, 200);
    call_free(c);
    return true;
}

static void s_reply_whole(call_t *c, const rt_attempt_t *a)
{
    char err[256];
    json_error_t je;
    if (a->provider->kind == WIRE_OPENAI && c->format == GW_OPENAI && c->body.len &&
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
    if (c->format == GW_ANTHROPIC) {
        json_t *m = wire_to_anthropic_response(canon);
        json_decref(canon);
        canon = m;
    }
    http_reply_json(c->req, 200, canon);
    usage_record(c->gw, c, a, cost, estimated, 200);
    call_free(c);
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
        a ? rt_cost(c->gw->cfg, a->model, c->usage.input_tokens, c->usage.output_tokens)
          : 0;
    usage_record(c->gw, c, a, cost, true, status);
}

/* ---- streaming ---- */

static void s_gone(void *ud)
{
    call_t *c = ud;
    c->req = NULL;
    c->st = NULL;
    if (c->easy) { /* curlm takes the handle; nothing of c is called again */
        curlm_abort(c->gw->curlm, c->easy);
        c->easy = NULL;
    }
    const rt_attempt_t *a = s_current(c);
    if (c->usage.present)
        usage_record(c->gw, c, a,
                     rt_cost(c->gw->cfg, a->model, c->usage.input_tokens,
                             c->usage.output_tokens),
                     false, 499);
    else
        s_record_estimate(c, a, 499);
    call_free(c);
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
    c->last_data_ms = loop_now_ms(c->gw->loop);
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
        rt_cost(c->gw->cfg, a->model, c->usage.input_tokens, c->usage.output_tokens);
    if (!c->st)
        s_start_stream(c); /* an empty stream is still a stream */
    sbuf_reset(&c->out);
    wire_emit_end(c->emitter, &c->usage, &c->out);
    char buf[32];
    snprintf(buf, sizeof buf, "%.6f", cost);
    http_stream_trailer(c->st, "X-Vapora-Cost-USD", buf);
    http_stream_write(c->st, c->out.data, c->out.len);
    http_stream_end(c->st, false);
    usage_record(c->gw, c, a, cost, est, 200);
    call_free(c);
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
    call_free(c);
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
    gateway_t *gw = c->gw;
    uint64_t now = loop_now_ms(gw->loop);
    bool again = c->tries <= (unsigned)gw->cfg->retries &&
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
    c->retry_timer = loop_add_timer(gw->loop, (uint64_t)ms, 0, s_retry_timer, c);
}

static void s_on_done(CURL *easy, CURLcode result, void *ud)
{
    call_t *c = ud;
    const rt_attempt_t *a = s_current(c);
    gateway_t *gw = c->gw;
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
        rt_provider_success(gw->cfg, a->provider, ms);
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
        rt_provider_failure(gw->cfg, a->provider, loop_now_ms(gw->loop));
        s_break_stream(c, a, c->last_error);
        return;
    }
    if (!retriable) {
        rt_provider_success(gw->cfg, a->provider,
                            ms); /* it answered: the caller erred */
        s_reply_passthrough(c);
        return;
    }
    rt_provider_failure(gw->cfg, a->provider, loop_now_ms(gw->loop));
    c->last_result = result;
    s_drop_transfer(c);
    s_next(c, a);
}

static struct curl_slist *s_headers(const rt_provider_t *p)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    char *line = NULL;
    switch (p->kind) {
    case WIRE_OPENAI:
        if (*p->api_key)
            line = xasprintf("Authorization: Bearer %s", p->api_key);
        break;
    case WIRE_ANTHROPIC:
        h = curl_slist_append(h, "anthropic-version: 2023-06-01");
        if (*p->api_key)
            line = xasprintf("x-api-key: %s", p->api_key);
        break;
    case WIRE_GEMINI:
        if (*p->api_key)
            line = xasprintf("x-goog-api-key: %s", p->api_key);
        break;
    case WIRE_OLLAMA: break;
    }
    if (line)
        h = curl_slist_append(h, line);
    free(line);
    return h;
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
    curlm_abort(c->gw->curlm, c->easy);
    c->easy = NULL;
    wire_parser_destroy(&c->parser);
    sbuf_reset(&c->body);
    rt_provider_failure(c->gw->cfg, a->provider, loop_now_ms(loop));
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

static void s_attempt(call_t *c)
{
    gateway_t *gw = c->gw;
    const rt_attempt_t *a = s_current(c);
    if (!a) {
        s_exhausted(c);
        return;
    }
    char path[512];
    char *text;
    const char *asked = json_string_value(json_object_get(c->canon, "model"));
    size_t raw_len = 0;
    const char *raw = c->req ? http_req_body(c->req, &raw_len) : NULL;
    if (a->provider->kind == WIRE_OPENAI && c->format == GW_OPENAI && !c->stream &&
        raw && asked && strcmp(asked, a->model) == 0) {
        /* The caller's own request is the upstream's: send its bytes. */
        snprintf(path, sizeof path, "/chat/completions");
        text = raw_len <= 16384 ? NULL : xstrndup(raw, raw_len);
    } else {
        json_t *body =
            wire_upstream_request(a->provider->kind, c->canon, a->model, c->stream,
                                  gw->cfg->default_max_tokens, path, sizeof path);
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
    char *url = xasprintf("%s%s", a->provider->base_url,
                          path); /* ~100 ns; curl parses it anyway */
    c->easy = s_easy_get(gw);
    size_t pi = (size_t)(a->provider - gw->cfg->providers);
    if (!gw->headers)
        gw->headers = xcalloc(gw->cfg->nproviders, sizeof *gw->headers);
    if (!gw->headers[pi])
        gw->headers[pi] = s_headers(a->provider);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    free(c->upbody);  /* the previous attempt's */
    c->upbody = text; /* curl reads it in place until the transfer ends */
    /* A small request of the caller's own is read from the request itself:
     * it leaves in the first send, long before the request could be freed. */
    const char *send = text ? text : raw;
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE,
                     (long)(text ? strlen(text) : raw_len));
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, send);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, gw->headers[pi]);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
    /* A stream may rightly last longer than any total bound: for it,
     * `timeout` bounds the silences instead (s_silence_check), the wait
     * for its first byte included. */
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS,
                     c->stream ? 0L : a->provider->timeout_s * 1000L);
    if (c->stream) {
        c->last_data_ms = loop_now_ms(gw->loop);
        loop_cancel_timer(gw->loop, &c->silence_timer);
        c->silence_timer = loop_add_timer(
            gw->loop, (uint64_t)a->provider->timeout_s * 1000, 0, s_silence_check, c);
    }
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c->easy, CURLOPT_BUFFERSIZE, c->stream ? 1024L : 16384L);
    curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "vapora-llm-router/" VAPORA_VERSION);
    free(url);
    if (c->stream)
        c->parser = wire_parser_new(a->provider->kind);
    c->attempts++;
    c->tries++;
    c->status = 0;
    c->retry_after = 0;
    c->stream_failed = false;
    c->attempt_ns = now_ns();
    a->provider->requests++;
    if (curlm_add(gw->curlm, c->easy, s_on_done, c) < 0) {
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
    ledger_admit(j->c->gw->ledger, &j->a);
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
            rt_cost(c->gw->cfg, p->attempts[i].model, c->prompt_bound, c->max_tokens);
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
        curlm_abort(c->gw->curlm, c->easy);
        c->easy = NULL;
    }
    loop_cancel_timer(c->gw->loop, &c->retry_timer);
    http_reply_error(c->req, 499, "client_closed", "the client closed its connection");
    s_record_estimate(c, c->attempts ? s_current(c) : NULL, 499);
    call_free(c);
}

void call_start(call_t *c)
{
    gateway_t *gw = c->gw;
    http_req_watch_gone(c->req, s_client_gone, c);
    c->next_call = gw->calls;
    if (gw->calls)
        gw->calls->prev = c;
    gw->calls = c;
    c->start_ns = now_ns();
    if (!c->budget) {
        c->state = RT_NORMAL;
        c->plan = &c->plans[RT_NORMAL];
        s_attempt(c);
        return;
    }
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
    if (pool_submit(gw->pool, &j->work, s_admit_work, s_admit_done) < 0) {
        c->admitting = false;
        free(j);
        s_fail(c, 503, "overloaded", "the router is busy; retry shortly");
    }
}

void call_abort_all(gateway_t *gw)
{
    while (gw->calls) {
        call_t *c = gw->calls;
        if (c->easy) {
            curlm_abort(gw->curlm, c->easy);
            c->easy = NULL;
        }
        if (c->st)
            http_stream_end(c->st, true);
        /* What it cost so far is counted and its reservation released
         * (usage_stop writes these last records). */
        s_record_estimate(c, c->attempts ? s_current(c) : NULL, 503);
        call_free(c);
    }
    while (gw->nidle)
        curl_easy_cleanup(gw->idle[--gw->nidle]);
    for (size_t i = 0; gw->headers && i < gw->cfg->nproviders; i++)
        curl_slist_free_all(gw->headers[i]);
    free(gw->headers);
    gw->headers = NULL;
}
