/* call.c - the life of one call: planning, admission, attempts with
 * retries and fallback, start and abort. The reply is call_reply.c's
 * (whole) or call_stream.c's (streamed), its end call_end.c's (see
 * call_internal.h); one exchange with a provider is upstream.c's. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "call_internal.h"
#include "alloc.h"
#include "now.h"

#define CALL_MAX_RETRY_AFTER 10.0 /* longer: ask the next provider instead */
#define CALL_WATCH_AFTER_MS 20    /* a caller waiting longer is watched */

static void s_attempt(call_t *c);

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
        return; /* call__reply_whole said why */
    if (result != CURLE_OK)
        call__last_error(c, "%s: %s", a->provider->name, curl_easy_strerror(result));
    else if (c->stream_failed)
        call__last_error(c, "%s: %s", a->provider->name,
                         c->stream_error ? c->stream_error : "malformed stream");
    else if (c->x.status != 200)
        call__last_error(c, "%s: HTTP %ld", a->provider->name, c->x.status);
}

/* The attempt's exchange is over (upstream.h). */
static void s_on_done(void *ud, CURLcode result)
{
    call_t *c = ud;
    const rt_attempt_t *a = call__current(c);
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
        call__stream_error(c, why, strlen(why));
    }
    if (ok && c->stream) {
        rt_provider_success(rt->cfg, a->provider, ms);
        call__end_stream(c, a);
        return;
    }
    if (ok && call__reply_whole(c, a, ms))
        return;
    /* Only a 4xx but 429 says the caller erred; a 3xx (or any other status
     * an API does not answer) is the provider's failure, never passed on. */
    bool caller_erred = status >= 400 && status < 500 && status != 429;
    bool retriable =
        result != CURLE_OK || !caller_erred || c->stream_failed || c->bad_answer;
    s_failure_reason(c, a, result);
    if (c->st) {
        rt_provider_failure(rt->cfg, a->provider, loop_now_ms(rt->loop));
        call__break_stream(c, a, c->last_error);
    } else if (!retriable) { /* it answered: the caller erred */
        rt_provider_success(rt->cfg, a->provider, ms);
        call__reply_passthrough(c);
    } else {
        rt_provider_failure(rt->cfg, a->provider, loop_now_ms(rt->loop));
        c->last_result = result;
        call__drop_transfer(c);
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
    const rt_attempt_t *a = call__current(c);
    uint64_t limit = (uint64_t)a->provider->timeout_s * 1000;
    uint64_t quiet = loop_now_ms(loop) - c->x.last_data_ms;
    if (c->x.pause_wanted ||
        c->x.paused) /* the caller's slowness, not the provider's */
        quiet = 0;
    if (quiet < limit) {
        c->silence_timer = loop_add_timer(loop, limit - quiet, 0, s_silence_check, c);
        return;
    }
    upstream_abort(c->rt->upstream, &c->x);
    upstream_end(c->rt->upstream, &c->x);
    rt_provider_failure(c->rt->cfg, a->provider, loop_now_ms(loop));
    call__last_error(c, "%s: the stream was silent for %ld s", a->provider->name,
                     a->provider->timeout_s);
    c->last_result = CURLE_OPERATION_TIMEDOUT;
    if (c->st)
        call__break_stream(c, a, c->last_error);
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
    call__fail(c, status, code, msg.data);
    sbuf_free(&msg);
}

/* The caller's own bytes with the router's output bound added as the last
 * member (`"max_completion_tokens":N`), which is what rendering the
 * canonical request would send: a new string. */
static char *s_with_bound(const char *raw, size_t len, long bound)
{
    while (len > 0 && isspace((unsigned char)raw[len - 1]))
        len--;
    VP_ASSERT(len > 0 && raw[len - 1] == '}'); /* a JSON object, validated */
    char num[24], *p = num + sizeof num; /* "%ld" without printf */
    unsigned long v = bound < 0 ? -(unsigned long)bound : (unsigned long)bound;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    if (bound < 0)
        *--p = '-';
    static const char key[] = ",\"max_completion_tokens\":";
    sbuf_t b = {0};
    sbuf_reserve(&b, len + sizeof key + sizeof num);
    sbuf_append(&b, raw, len - 1);
    sbuf_append(&b, key, sizeof key - 1);
    sbuf_append(&b, p, (size_t)(num + sizeof num - p));
    sbuf_append(&b, "}", 1);
    return sbuf_steal(&b);
}

/* The body to send for attempt a, its length, and the path to send it to:
 * the caller's own bytes when they are the upstream's request (with the
 * router's output bound added when the request set none), else the
 * canonical request rendered for the provider (kept in c->upbody). */
static const char *s_upstream_body(call_t *c, const rt_attempt_t *a, char *path,
                                   size_t pathlen, size_t *len)
{
    char *text;
    const char *asked = json_string_value(json_object_get(c->canon, "model"));
    size_t raw_len = 0;
    const char *raw = c->req ? http_req_body(c->req, &raw_len) : NULL;
    if (a->provider->kind == WIRE_OPENAI && c->format == CALL_OPENAI && !c->stream &&
        (!c->bound_added || c->bound_appendable) && raw && asked &&
        strcmp(asked, a->model) == 0) {
        /* The caller's own request is the upstream's: send its bytes. */
        snprintf(path, pathlen, "/chat/completions");
        text = c->bound_added     ? s_with_bound(raw, raw_len, c->max_tokens)
               : raw_len <= 16384 ? NULL
                                  : xstrndup(raw, raw_len);
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
    const rt_attempt_t *a = call__current(c);
    if (!a) {
        s_exhausted(c);
        return;
    }
    char path[512];
    upstream_req_t r = {.provider = a->provider,
                        .path = path,
                        .stream = c->stream,
                        .on_event = call__on_event,
                        .on_fed = call__on_fed,
                        .on_done = s_on_done,
                        .ud = c};
    r.body = s_upstream_body(c, a, path, sizeof path, &r.len);
    c->attempts++;
    c->tries++;
    c->stream_failed = false;
    c->bad_answer = false;
    a->provider->requests++;
    if (upstream_start(rt->upstream, &c->x, &r) < 0) {
        call__fail(c, 500, "internal_error", "the upstream call could not be started");
        return;
    }
    if (c->stream) { /* the provider's timeout bounds the stream's silences */
        loop_cancel_timer(rt->loop, &c->silence_timer);
        c->silence_timer = loop_add_timer(
            rt->loop, (uint64_t)a->provider->timeout_s * 1000, 0, s_silence_check, c);
    }
}

/* ---- admission ---- */

/* The call's budget has no room for any of its plans: 429. */
static void s_refused(call_t *c)
{
    const book_admit_t *a = &c->admit.a;
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
    call__fail(c, 429, "budget_exceeded", msg.data);
    sbuf_free(&msg);
}

/* The call's worst case is reserved (admit.h), or it is refused. */
static void s_admit(call_t *c)
{
    admit_call(c->rt, c->budget, c->plans, c->prompt_bound, c->max_tokens, &c->admit);
    c->state = c->admit.a.state;
    if (c->admit.a.rc != 0) {
        s_refused(c);
        return;
    }
    c->admitted = true;
    c->plan = &c->plans[c->admit.a.plan];
    s_attempt(c);
}

/* ---- start and end ---- */

/* The caller closed its connection before any byte of the answer: the
 * upstream call stops (it would cost money for nobody), the reservation is
 * released, what the prompt cost is counted as an estimate. */
static void s_client_gone(void *ud)
{
    call_t *c = ud;
    upstream_abort(c->rt->upstream, &c->x);
    loop_cancel_timer(c->rt->loop, &c->retry_timer);
    http_reply_error(c->req, 499, "client_closed", "the client closed its connection");
    call__record_estimate(c, c->attempts ? call__current(c) : NULL, 499);
    call__destroy(&c);
}

/* The call still waits for its whole answer (a stream has its own watch):
 * from now on, a caller that leaves is noticed (s_client_gone). */
static void s_watch_timer(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    call_t *c = ud;
    c->watch_timer = NULL;
    if (c->req && !c->st)
        http_req_watch_gone(c->req, s_client_gone, c);
}

/* v in hex at p, in at least `width` digits (zeros first); past them. */
static char *s_hex(char *p, unsigned long v, int width)
{
    char tmp[16];
    int n = 0;
    do
        tmp[n++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) && n < (int)sizeof tmp);
    while (n < width)
        tmp[n++] = '0';
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* The call's id: a prefix, the pid, a sequence number and the time, in
 * hex ("%s%x%06lx%08lx", formatted without printf). */
static void s_call_id(call_t *c)
{
    static unsigned long seq;
    static pid_t pid;
    if (!pid)
        pid = getpid();
    const char *prefix = c->format == CALL_ANTHROPIC ? "msg_vp" : "chatcmpl-vp";
    size_t n = strlen(prefix);
    memcpy(c->id, prefix, n);
    char *p = s_hex(c->id + n, (unsigned)pid, 1);
    p = s_hex(p, ++seq & 0xffffff, 6);
    p = s_hex(p, (unsigned long)time(NULL), 8);
    *p = '\0';
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
    /* Neither key at all (not even null): the caller's bytes can carry the
     * bound as one more member (s_with_bound), without a duplicate. */
    c->bound_appendable = !json_object_get(c->canon, "max_tokens") &&
                          !json_object_get(c->canon, "max_completion_tokens");
    json_object_set_new(c->canon, "max_completion_tokens", json_integer(v));
    c->bound_added = true;
    return v;
}

static call_t *s_new(router_t *rt, http_req_t *req, call_format_t format, json_t *canon,
                     const call_who_t *who)
{
    call_t *c = call__alloc(rt);
    c->rt = rt;
    list_init(&c->link);
    c->req = req;
    c->format = format;
    c->canon = canon;
    c->stream = json_is_true(json_object_get(canon, "stream"));
    json_t *so = json_object_get(canon, "stream_options");
    c->include_usage =
        format == CALL_OPENAI && json_is_true(json_object_get(so, "include_usage"));
    size_t rlen = strnlen(who->role, sizeof c->role - 1);
    memcpy(c->role, who->role, rlen);
    c->role[rlen] = '\0';
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
        call__destroy(&c);
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
    /* Watched only once it waits long enough for that to matter: most
     * answers come first, and a watch costs two epoll_ctl calls. */
    c->watch_timer = loop_add_timer(rt->loop, CALL_WATCH_AFTER_MS, 0, s_watch_timer, c);
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
        call__record_estimate(c, c->attempts ? call__current(c) : NULL, 503);
        call__destroy(&c);
    }
}
