/* call_reply.c - a whole answer: checked (one JSON text in UTF-8, an
 * answer of its provider's kind) before anything of it is relayed, then
 * passed on as it came (OpenAI to an OpenAI caller) or converted; and the
 * provider's own 4xx passed back. See call_internal.h. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "call_internal.h"
#include "alloc.h"

/* OpenAI to an OpenAI caller: the provider's bytes go back as they are and
 * only its usage is read, which saves parsing and rebuilding the rest.
 * false: not a completion this scan recognises (the full path decides). */
static bool s_relay_openai(call_t *c, const rt_attempt_t *a)
{
    sbuf_t *body = &c->x.body;
    if (wire_openai_scan_usage(body->data, body->len, &c->usage) < 0)
        return false;
    size_t blen = body->len;
    charge_t ch = call__charge(c, a, blen);
    call__add_headers(c, a, ch.cost_usd, true);
    http_reply_owned(c->req, 200, "application/json", sbuf_steal(body), blen);
    call__record(c, a, &ch, 200);
    call__destroy(&c);
    return true;
}

/* A whole answer that cannot be relayed: the attempt failed (the caller's
 * last error says why) and the next provider is asked. */
static bool s_bad_answer(call_t *c, const rt_attempt_t *a, const char *why)
{
    c->bad_answer = true;
    call__last_error(c, "%s: %s", a->provider->name, why);
    return false;
}

/* Replies with the whole answer of attempt a (answered 2xx in ms) and
 * ends c; false, c intact, when the answer is not valid JSON in UTF-8 or
 * not an answer of its provider's kind: nothing is relayed then. */
bool call__reply_whole(call_t *c, const rt_attempt_t *a, double ms)
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
    charge_t ch = call__charge(c, a, b->len);
    if (ch.anomaly) /* the caller is told what was charged, not what was claimed */
        json_object_set_new(
            canon, "usage",
            json_pack("{s:I,s:I,s:I}", "prompt_tokens",
                      (json_int_t)ch.tokens.input_tokens, "completion_tokens",
                      (json_int_t)ch.tokens.output_tokens, "total_tokens",
                      (json_int_t)(ch.tokens.input_tokens + ch.tokens.output_tokens)));
    call__add_headers(c, a, ch.cost_usd, true);
    if (c->format == CALL_ANTHROPIC) {
        json_t *m = wire_to_anthropic_response(canon);
        json_decref(canon);
        canon = m;
    }
    http_reply_json(c->req, 200, canon);
    call__record(c, a, &ch, 200);
    call__destroy(&c);
    return true;
}

/* The caller's own 4xx from the provider: its status, its message, in the
 * caller's format. */
void call__reply_passthrough(call_t *c)
{
    const sbuf_t *b = &c->x.body;
    long status = c->x.status;
    json_t *body = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    const char *msg = body ? wire_error_message(body) : NULL;
    char *m = xstrdup(msg ? msg : "the provider refused the request");
    json_decref(body);
    call__fail(c, (unsigned)status, status == 404 ? "not_found" : "upstream_rejected",
               m);
    free(m);
}
