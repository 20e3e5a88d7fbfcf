/* wire.c - the vocabulary of the wire formats (see wire.h): provider
 * kinds, token counts and the usage objects they come in, and finish
 * reasons from each kind to the canonical (OpenAI) ones and to Anthropic's.
 *
 * Source map of the wire translation (one idea per file; wire.h is the
 * public API of them all, wire_internal.h what they share):
 *   wire.c                    kinds, token counts, usage, finish reasons
 *   wire_json.c               JSON helpers, what renderers read from canon
 *   wire_validate.c           OpenAI (canonical) requests: validation, prompt bound
 *   wire_from_anthropic.c     Anthropic Messages request -> canonical
 *   wire_upstream.c           canonical -> upstream: dispatch, OpenAI
 *   wire_upstream_anthropic.c canonical -> Anthropic Messages
 *   wire_upstream_gemini.c    canonical -> Gemini generateContent
 *   wire_upstream_ollama.c    canonical -> Ollama /api/chat
 *   wire_response.c           whole upstream responses -> canonical -> Anthropic
 *   wire_scan.c               a relayed OpenAI answer's usage, read from its bytes
 *   wire_check.c              a whole answer's JSON and UTF-8, before relaying it
 *   wire_parser.c             upstream streams (SSE, NDJSON) -> canonical events
 *   wire_emitter.c            canonical events -> the caller's stream */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "wire_internal.h"
#include "base.h"

long wire_tokens(long long reported)
{
    return reported < 0                 ? 0
           : reported > WIRE_MAX_TOKENS ? WIRE_MAX_TOKENS
                                        : (long)reported;
}

long wire_tokens_json(const json_t *reported)
{
    if (json_is_integer(reported))
        return wire_tokens(json_integer_value(reported));
    double v = json_number_value(reported); /* 0 when not a number */
    return v != v || v <= 0               ? 0
           : v >= (double)WIRE_MAX_TOKENS ? WIRE_MAX_TOKENS
                                          : (long)v;
}

/* One count: a number (clamped) into *out; any other value but null, a
 * negative number included (no count, and never a free call: charge.h),
 * makes the usage unreadable. */
static void s_read_count(const json_t *v, long *out, wire_usage_t *u)
{
    if (json_is_number(v) && json_number_value(v) >= 0) {
        *out = wire_tokens_json(v);
        u->present = true;
    } else if (v && !json_is_null(v)) {
        u->unreadable = true;
    }
}

/* Reads two token counts of a usage object into u. */
void wire__read_usage(const json_t *o, const char *in, const char *out, wire_usage_t *u)
{
    s_read_count(json_object_get(o, in), &u->input_tokens, u);
    s_read_count(json_object_get(o, out), &u->output_tokens, u);
}

/* Anthropic's input_tokens leave out the cached ones; count them too. */
void wire__anthropic_usage(const json_t *o, wire_usage_t *u)
{
    wire__read_usage(o, "input_tokens", "output_tokens", u);
    if (!json_is_number(json_object_get(o, "input_tokens")))
        return;
    u->input_tokens = wire_tokens(
        (long long)u->input_tokens +
        wire_tokens(json_integer_value(json_object_get(o, "cache_read_input_tokens"))) +
        wire_tokens(
            json_integer_value(json_object_get(o, "cache_creation_input_tokens"))));
}

void wire__gemini_usage(const json_t *um, wire_usage_t *u)
{
    wire__read_usage(um, "promptTokenCount", "candidatesTokenCount", u);
    /* Thinking tokens are billed as output. */
    u->output_tokens =
        wire_tokens((long long)u->output_tokens +
                    wire_tokens_json(json_object_get(um, "thoughtsTokenCount")));
}

json_t *wire__usage_json(const wire_usage_t *u)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)u->input_tokens,
                     "completion_tokens", (json_int_t)u->output_tokens, "total_tokens",
                     (json_int_t)(u->input_tokens + u->output_tokens));
}

/* ------------------------------------------------------------------ */
/* Kinds and finish reasons                                             */
/* ------------------------------------------------------------------ */

static const char *const s_kind_names[] = {"openai", "anthropic", "gemini", "ollama"};

int wire_kind_parse(const char *s, wire_kind_t *out)
{
    for (size_t i = 0; s && i < ARRAY_LEN(s_kind_names); i++) {
        if (strcmp(s, s_kind_names[i]) == 0) {
            *out = (wire_kind_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *wire_kind_name(wire_kind_t kind)
{
    return (unsigned)kind < ARRAY_LEN(s_kind_names) ? s_kind_names[kind] : "unknown";
}

typedef struct s_pair {
    const char *from, *to;
} s_pair_t;

static const s_pair_t s_anthropic_finish[] = {
    {"end_turn", "stop"},
    {"stop_sequence", "stop"},
    {"max_tokens", "length"},
    {"tool_use", "tool_calls"},
    {"pause_turn", "stop"},
    {"refusal", "content_filter"},
    {"model_context_window_exceeded", "length"},
};
static const s_pair_t s_gemini_finish[] = {
    {"STOP", "stop"},
    {"MAX_TOKENS", "length"},
    {"SAFETY", "content_filter"},
    {"RECITATION", "content_filter"},
    {"BLOCKLIST", "content_filter"},
    {"PROHIBITED_CONTENT", "content_filter"},
    {"SPII", "content_filter"},
    {"IMAGE_SAFETY", "content_filter"},
};
static const s_pair_t s_ollama_finish[] = {{"stop", "stop"}, {"length", "length"}};
static const s_pair_t s_to_anthropic_stop[] = {
    {"stop", "end_turn"},
    {"length", "max_tokens"},
    {"tool_calls", "tool_use"},
    {"content_filter", "refusal"},
};

static const char *s_map(const s_pair_t *t, size_t n, const char *from,
                         const char *dflt)
{
    for (size_t i = 0; from && i < n; i++)
        if (strcmp(t[i].from, from) == 0)
            return t[i].to;
    return dflt;
}

/* A provider's finish reason as a canonical one; a plain stop after tool
 * calls means the model wants them run (Gemini and Ollama say STOP/stop). */
const char *wire__finish_of(wire_kind_t kind, const char *raw, bool saw_tool)
{
    const char *f =
        wire__is(raw, "function_call") ? "tool_calls" : (raw ? raw : "stop");
    if (kind == WIRE_ANTHROPIC)
        f = s_map(s_anthropic_finish, ARRAY_LEN(s_anthropic_finish), raw, "stop");
    else if (kind == WIRE_GEMINI)
        f = s_map(s_gemini_finish, ARRAY_LEN(s_gemini_finish), raw, "stop");
    else if (kind == WIRE_OLLAMA)
        f = s_map(s_ollama_finish, ARRAY_LEN(s_ollama_finish), raw, "stop");
    return saw_tool && strcmp(f, "stop") == 0 ? "tool_calls" : f;
}

const char *wire__anthropic_stop(const char *finish)
{
    return s_map(s_to_anthropic_stop, ARRAY_LEN(s_to_anthropic_stop), finish,
                 "end_turn");
}
