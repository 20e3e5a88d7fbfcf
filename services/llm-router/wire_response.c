/* wire_response.c - a provider's whole (non-streamed) answer of any kind
 * turned into a canonical chat.completion, that turned into an Anthropic
 * message, and the message of a provider's error body. (The usage of an
 * OpenAI answer read from its bytes alone: wire_scan.c.) */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire_internal.h"
#include "alloc.h"

/* What a whole response says, whatever its kind. */
typedef struct s_resp {
    sbuf_t text;
    json_t *calls;
    const char *finish;
    wire_usage_t usage;
    unsigned long nonce;
} s_resp_t;

/* A tool call whose arguments are a JSON value (Anthropic, Gemini, Ollama);
 * a made-up id when id is NULL. */
static void s_resp_call(s_resp_t *r, const char *id, const char *name,
                        const json_t *args)
{
    char idbuf[48];
    char *text =
        json_is_string(args) ? xstrdup(json_string_value(args)) : wire__dumps(args);
    if (!id) {
        wire__tool_id(idbuf, sizeof idbuf, r->nonce, (int)json_array_size(r->calls));
        id = idbuf;
    }
    json_array_append_new(r->calls, wire__tool_call(id, name, text));
    free(text);
}

static int s_resp_openai(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *ch = json_array_get(json_object_get(body, "choices"), 0), *tc;
    const json_t *msg = json_object_get(ch, "message");
    size_t i;
    if (!json_is_object(msg))
        return wire__fail(err, len,
                          "not an OpenAI chat.completion: choices[0].message missing");
    wire__content_text(json_object_get(msg, "content"), "", &r->text);
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
        json_array_append_new(r->calls, json_deep_copy(tc));
    r->finish = wire__finish_of(WIRE_OPENAI, wire__str(ch, "finish_reason"), false);
    wire__read_usage(json_object_get(body, "usage"), "prompt_tokens",
                     "completion_tokens", &r->usage);
    return 0;
}

static int s_resp_anthropic(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *content = json_object_get(body, "content"), *b;
    size_t i;
    if (!json_is_array(content))
        return wire__fail(err, len,
                          "not an Anthropic message: content must be an array");
    json_array_foreach(content, i, b)
    {
        const char *type = wire__str(b, "type");
        if (wire__is(type, "text"))
            wire__append_str(&r->text, json_object_get(b, "text"));
        else if (wire__is(type, "tool_use"))
            s_resp_call(r, wire__str(b, "id"), wire__str(b, "name"),
                        json_object_get(b, "input"));
    }
    r->finish = wire__finish_of(WIRE_ANTHROPIC, wire__str(body, "stop_reason"), false);
    wire__anthropic_usage(json_object_get(body, "usage"), &r->usage);
    return 0;
}

static int s_resp_gemini(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *c = json_array_get(json_object_get(body, "candidates"), 0), *p;
    const char *blocked =
        wire__str(json_object_get(body, "promptFeedback"), "blockReason");
    size_t i;
    if (!json_is_object(c) && !blocked)
        return wire__fail(err, len, "not a Gemini response: candidates missing");
    json_array_foreach(json_object_get(json_object_get(c, "content"), "parts"), i, p)
    {
        const json_t *call = json_object_get(p, "functionCall");
        if (json_is_true(json_object_get(p, "thought")))
            continue;
        wire__append_str(&r->text, json_object_get(p, "text"));
        if (json_is_object(call))
            s_resp_call(r, wire__str(call, "id"), wire__str(call, "name"),
                        json_object_get(call, "args"));
    }
    r->finish = c ? wire__finish_of(WIRE_GEMINI, wire__str(c, "finishReason"),
                                    json_array_size(r->calls) > 0)
                  : "content_filter";
    wire__gemini_usage(json_object_get(body, "usageMetadata"), &r->usage);
    return 0;
}

static int s_resp_ollama(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *msg = json_object_get(body, "message"), *tc;
    size_t i;
    if (!json_is_object(msg))
        return wire__fail(err, len, "not an Ollama chat response: message missing");
    wire__append_str(&r->text, json_object_get(msg, "content"));
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        s_resp_call(r, wire__str(tc, "id"), wire__str(fn, "name"),
                    json_object_get(fn, "arguments"));
    }
    r->finish = wire__finish_of(WIRE_OLLAMA, wire__str(body, "done_reason"),
                                json_array_size(r->calls) > 0);
    wire__read_usage(body, "prompt_eval_count", "eval_count", &r->usage);
    return 0;
}

static json_t *s_completion(const char *id, const char *model, const s_resp_t *r)
{
    json_t *msg = wire__message(&r->text, json_incref(r->calls));
    json_t *c =
        json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}]}", "id", id ? id : "",
                  "object", "chat.completion", "created", (json_int_t)time(NULL),
                  "model", model ? model : "", "choices", "index", 0, "message", msg,
                  "logprobs", "finish_reason", r->finish);
    if (r->usage.present)
        json_object_set_new(c, "usage", wire__usage_json(&r->usage));
    return c;
}

json_t *wire_canonical_response(wire_kind_t kind, const json_t *body, const char *id,
                                const char *model, wire_usage_t *usage, char *err,
                                size_t errlen)
{
    s_resp_t r = {.calls = json_array(), .nonce = wire__nonce()};
    json_t *out = NULL;
    int rc;
    if (!json_is_object(body))
        rc = wire__fail(err, errlen, "%s response: must be a JSON object",
                        wire_kind_name(kind));
    else if (kind == WIRE_ANTHROPIC)
        rc = s_resp_anthropic(body, &r, err, errlen);
    else if (kind == WIRE_GEMINI)
        rc = s_resp_gemini(body, &r, err, errlen);
    else if (kind == WIRE_OLLAMA)
        rc = s_resp_ollama(body, &r, err, errlen);
    else
        rc = s_resp_openai(body, &r, err, errlen);
    if (rc == 0) {
        out = s_completion(id, model, &r);
        if (usage)
            *usage = r.usage;
    }
    json_decref(r.calls);
    sbuf_free(&r.text);
    return out;
}

json_t *wire_to_anthropic_response(const json_t *canon)
{
    const json_t *ch = json_array_get(json_object_get(canon, "choices"), 0);
    const json_t *u = json_object_get(canon, "usage");
    const char *id = wire__str(canon, "id"), *model = wire__str(canon, "model");
    json_t *content = wire__anthropic_blocks(json_object_get(ch, "message"));
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:o,s:s,s:n,s:{s:I,s:I}}", "id", id ? id : "", "type",
        "message", "role", "assistant", "model", model ? model : "", "content", content,
        "stop_reason", wire__anthropic_stop(wire__str(ch, "finish_reason")),
        "stop_sequence", "usage", "input_tokens",
        json_integer_value(json_object_get(u, "prompt_tokens")), "output_tokens",
        json_integer_value(json_object_get(u, "completion_tokens")));
}

const char *wire_error_message(const json_t *body)
{
    const json_t *e;
    if (json_is_array(body)) /* Gemini may wrap its error in an array */
        body = json_array_get(body, 0);
    e = json_object_get(body, "error");
    if (json_is_string(e))
        return json_string_value(e);
    return wire__str(e, "message");
}
