/* wire.c - translation between the LLM wire formats (see wire.h): caller
 * requests to the canonical OpenAI form, the canonical form to each
 * provider's request, provider responses and streams back to canonical, and
 * canonical stream events rendered for OpenAI or Anthropic callers.
 *
 * DESIGN. Every conversion walks jansson values and builds new ones; nothing
 * is shared with the input (values are deep-copied), so the caller owns
 * exactly what it gets back. The stream parser frames bytes into lines
 * itself: SSE per the WHATWG rules (CR, LF or CRLF ends a line, ':' starts a
 * comment, the data lines of one event are joined with '\n', a blank line
 * dispatches it) or NDJSON for Ollama. A line, and an event's data, may hold
 * at most WIRE_MAX_LINE bytes. Each complete JSON payload goes to its kind's
 * handler, which calls the caller back with events whose pointers borrow
 * from that payload for the duration of the callback. Gemini and Ollama tool
 * calls carry no id, so ids "call_<nonce>_<n>" are made up here.
 *
 * Sections: helpers, kinds and finish reasons, OpenAI validation, Anthropic
 * requests, canonical -> each upstream, responses, the parser, the emitter. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire.h"
#include "alloc.h"
#include "now.h"
#include "sbuf.h"

#define WIRE_MAX_LINE (1u << 20)     /* bytes of one line or one event's data */
#define WIRE_MSG_OVERHEAD 8          /* tokens per message in the prompt bound */
#define WIRE_IMAGE_TOKENS 2000       /* tokens per image in the prompt bound */
#define WIRE_DEFAULT_MAX_TOKENS 4096 /* Anthropic max_tokens when none is known */
#define WIRE_MAX_BLOCKS 4096         /* Anthropic content blocks tracked per stream */

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static int s_fail(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The string at o[key], or NULL when absent or not a string. */
static const char *s_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool s_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* Whether s is one of the n strings of set. */
static bool s_in(const char *s, const char *const *set, size_t n)
{
    while (s && n-- > 0)
        if (strcmp(s, set[n]) == 0)
            return true;
    return false;
}

/* Whether o[key] is there and not null (OpenAI treats null as absent). */
static bool s_present(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return v && !json_is_null(v);
}

/* Copies src[skey] to dst[dkey] when present and not null. */
static void s_copy(json_t *dst, const char *dkey, const json_t *src, const char *skey)
{
    if (s_present(src, skey))
        json_object_set_new(dst, dkey, json_deep_copy(json_object_get(src, skey)));
}

static json_t *s_sbuf_json(const sbuf_t *b)
{
    return json_stringn(b->data ? b->data : "", b->len);
}

static void s_append_str(sbuf_t *b, const json_t *s)
{
    if (json_is_string(s))
        sbuf_append(b, json_string_value(s), json_string_length(s));
}

/* Compact JSON text of v; the caller frees it. "{}" when v is NULL. */
static char *s_dumps(const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return s ? s : xstrdup("{}");
}

/* Tool-call arguments (a JSON text) as an object; {} when they are not one. */
static json_t *s_args_object(const char *args)
{
    json_t *v = args ? json_loads(args, 0, NULL) : NULL;
    if (json_is_object(v))
        return v;
    json_decref(v);
    return json_object();
}

/* The text of an OpenAI content: a string, or an array's text parts joined
 * with sep. */
static void s_content_text(const json_t *c, const char *sep, sbuf_t *out)
{
    size_t i;
    const json_t *p;
    bool first = true;
    if (json_is_string(c)) {
        s_append_str(out, c);
        return;
    }
    json_array_foreach(c, i, p)
    {
        const json_t *t = json_object_get(p, "text");
        if (!s_is(s_str(p, "type"), "text") || !json_is_string(t))
            continue;
        if (!first)
            sbuf_puts(out, sep);
        s_append_str(out, t);
        first = false;
    }
}

/* Splits "data:MIME;base64,DATA"; false for any other URL. *mime is the
 * caller's to free. */
static bool s_data_url(const char *url, char **mime, const char **data)
{
    if (!url || strncmp(url, "data:", 5) != 0)
        return false;
    const char *b64 = strstr(url + 5, ";base64,");
    if (!b64)
        return false;
    *mime = xstrndup(url + 5, (size_t)(b64 - url - 5));
    *data = b64 + 8;
    return true;
}

/* A fresh tool-call id for calls that come without one. */
static void s_tool_id(char *buf, size_t len, unsigned long nonce, int n)
{
    snprintf(buf, len, "call_%012lx_%d", nonce, n);
}

static unsigned long s_nonce(void)
{
    static unsigned long counter;
    uint64_t x = now_ns() + __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) *
                                     0x9e3779b97f4a7c15ull;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (unsigned long)(x & 0xffffffffffffull);
}

/* {"id","type":"function","function":{"name","arguments"}}. */
static json_t *s_tool_call(const char *id, const char *name, const char *args)
{
    return json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id ? id : "", "type", "function",
                     "function", "name", name ? name : "", "arguments",
                     args ? args : "{}");
}

/* A canonical assistant message: the text (null when empty and there are
 * tool calls) and calls (stolen) when there are any. */
static json_t *s_message(const sbuf_t *text, json_t *calls)
{
    json_t *m = json_pack("{s:s}", "role", "assistant");
    bool calling = json_array_size(calls) > 0;
    json_object_set_new(m, "content",
                        text->len || !calling ? s_sbuf_json(text) : json_null());
    if (calling)
        json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    return m;
}

/* The name of the tool call `id` made by an assistant message before
 * msgs[upto] (tool results in Gemini and Ollama are matched by name). */
static const char *s_tool_name(const json_t *msgs, size_t upto, const char *id)
{
    while (id && upto-- > 0) {
        size_t i;
        const json_t *tc;
        json_array_foreach(json_object_get(json_array_get(msgs, upto), "tool_calls"), i,
                           tc)
        {
            if (s_is(s_str(tc, "id"), id))
                return s_str(json_object_get(tc, "function"), "name");
        }
    }
    return NULL;
}

/* Appends items (stolen) as a message {role, key: items} to msgs, merged
 * into the last message when that has the same role; nothing when empty. */
static void s_push(json_t *msgs, const char *role, const char *key, json_t *items)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    if (json_array_size(items) == 0) {
        json_decref(items);
    } else if (last && s_is(s_str(last, "role"), role)) {
        json_array_extend(json_object_get(last, key), items);
        json_decref(items);
    } else {
        json_t *m = json_pack("{s:s}", "role", role);
        json_object_set_new(m, key, items);
        json_array_append_new(msgs, m);
    }
}

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

/* Reads two token counts of a usage object into u. */
static void s_read_usage(const json_t *o, const char *in, const char *out,
                         wire_usage_t *u)
{
    const json_t *i = json_object_get(o, in), *x = json_object_get(o, out);
    if (json_is_integer(i)) {
        u->input_tokens = wire_tokens(json_integer_value(i));
        u->present = true;
    }
    if (json_is_integer(x)) {
        u->output_tokens = wire_tokens(json_integer_value(x));
        u->present = true;
    }
}

/* Anthropic's input_tokens leave out the cached ones; count them too. */
static void s_anthropic_usage(const json_t *o, wire_usage_t *u)
{
    s_read_usage(o, "input_tokens", "output_tokens", u);
    if (!json_is_integer(json_object_get(o, "input_tokens")))
        return;
    u->input_tokens = wire_tokens(
        (long long)u->input_tokens +
        wire_tokens(json_integer_value(json_object_get(o, "cache_read_input_tokens"))) +
        wire_tokens(
            json_integer_value(json_object_get(o, "cache_creation_input_tokens"))));
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
static const char *s_finish_of(wire_kind_t kind, const char *raw, bool saw_tool)
{
    const char *f = s_is(raw, "function_call") ? "tool_calls" : (raw ? raw : "stop");
    if (kind == WIRE_ANTHROPIC)
        f = s_map(s_anthropic_finish, ARRAY_LEN(s_anthropic_finish), raw, "stop");
    else if (kind == WIRE_GEMINI)
        f = s_map(s_gemini_finish, ARRAY_LEN(s_gemini_finish), raw, "stop");
    else if (kind == WIRE_OLLAMA)
        f = s_map(s_ollama_finish, ARRAY_LEN(s_ollama_finish), raw, "stop");
    return saw_tool && strcmp(f, "stop") == 0 ? "tool_calls" : f;
}

static const char *s_anthropic_stop(const char *finish)
{
    return s_map(s_to_anthropic_stop, ARRAY_LEN(s_to_anthropic_stop), finish,
                 "end_turn");
}

/* ------------------------------------------------------------------ */
/* OpenAI request validation                                            */
/* ------------------------------------------------------------------ */

static int s_check_num(const json_t *o, const char *key, double lo, double hi,
                       char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v) && json_number_value(v) >= lo && json_number_value(v) <= hi)
        return 0;
    return s_fail(err, len, "%s: must be a number between %g and %g", key, lo, hi);
}

static int s_check_int(const json_t *o, const char *key, long lo, char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= lo))
        return 0;
    return s_fail(err, len, "%s: must be an integer >= %ld", key, lo);
}

static int s_check_bool(const json_t *o, const char *key, char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || json_is_boolean(v))
        return 0;
    return s_fail(err, len, "%s: must be a boolean", key);
}

static bool s_all_strings(const json_t *a)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(a))
        return false;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            return false;
    }
    return true;
}

static int s_check_parts(const json_t *c, size_t mi, char *err, size_t len)
{
    size_t i;
    const json_t *p;
    json_array_foreach(c, i, p)
    {
        const char *type = s_str(p, "type");
        if (!type)
            return s_fail(err, len, "messages[%zu].content[%zu].type: must be a string",
                          mi, i);
        if (strcmp(type, "text") == 0 && !s_str(p, "text"))
            return s_fail(err, len, "messages[%zu].content[%zu].text: must be a string",
                          mi, i);
        if (strcmp(type, "image_url") == 0 &&
            !s_str(json_object_get(p, "image_url"), "url"))
            return s_fail(err, len,
                          "messages[%zu].content[%zu].image_url.url: must be a string",
                          mi, i);
    }
    return 0;
}

static int s_check_tool_calls(const json_t *tcs, size_t mi, char *err, size_t len)
{
    size_t i;
    const json_t *tc;
    if (!json_is_array(tcs))
        return s_fail(err, len, "messages[%zu].tool_calls: must be an array", mi);
    json_array_foreach(tcs, i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        if (!s_str(tc, "id"))
            return s_fail(err, len,
                          "messages[%zu].tool_calls[%zu].id: must be a string", mi, i);
        if (!s_str(fn, "name"))
            return s_fail(
                err, len,
                "messages[%zu].tool_calls[%zu].function.name: must be a string", mi, i);
        if (!s_str(fn, "arguments"))
            return s_fail(
                err, len,
                "messages[%zu].tool_calls[%zu].function.arguments: must be a string",
                mi, i);
    }
    return 0;
}

static int s_check_message(const json_t *m, size_t i, char *err, size_t len)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant",
                                        "tool"};
    const char *role = s_str(m, "role");
    if (!json_is_object(m))
        return s_fail(err, len, "messages[%zu]: must be an object", i);
    if (!s_in(role, roles, ARRAY_LEN(roles)))
        return s_fail(err, len, "messages[%zu].role: %s", i,
                      "must be one of system, developer, user, assistant, tool");
    const json_t *c = json_object_get(m, "content");
    bool assistant = strcmp(role, "assistant") == 0;
    if (json_is_array(c) && s_check_parts(c, i, err, len) < 0)
        return -1;
    /* An assistant message that only calls tools may have no content. */
    if (!json_is_array(c) && !json_is_string(c) &&
        !(assistant && (!c || json_is_null(c))))
        return s_fail(err, len, "messages[%zu].content: %s", i,
                      "must be a string or an array of content parts");
    if (assistant && s_present(m, "tool_calls") &&
        s_check_tool_calls(json_object_get(m, "tool_calls"), i, err, len) < 0)
        return -1;
    if (strcmp(role, "tool") == 0 && !s_str(m, "tool_call_id"))
        return s_fail(err, len, "messages[%zu].tool_call_id: must be a string", i);
    return 0;
}

static int s_check_messages(const json_t *req, char *err, size_t len)
{
    const json_t *ms = json_object_get(req, "messages");
    size_t i;
    const json_t *m;
    if (!json_is_array(ms) || json_array_size(ms) == 0)
        return s_fail(err, len, "messages: must be a non-empty array");
    json_array_foreach(ms, i, m)
    {
        if (s_check_message(m, i, err, len) < 0)
            return -1;
    }
    return 0;
}

static int s_check_tools(const json_t *req, char *err, size_t len)
{
    const json_t *tools = json_object_get(req, "tools"), *t;
    size_t i;
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return s_fail(err, len, "tools: must be an array");
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *params = json_object_get(fn, "parameters");
        if (!s_is(s_str(t, "type"), "function"))
            return s_fail(err, len, "tools[%zu].type: must be \"function\"", i);
        if (!s_str(fn, "name"))
            return s_fail(err, len, "tools[%zu].function.name: must be a string", i);
        if (params && !json_is_object(params))
            return s_fail(err, len, "tools[%zu].function.parameters: must be an object",
                          i);
    }
    return 0;
}

static int s_check_tool_choice(const json_t *req, char *err, size_t len)
{
    const json_t *tc = json_object_get(req, "tool_choice");
    const char *s = json_string_value(tc);
    if (!tc || json_is_null(tc) || s_is(s, "none") || s_is(s, "auto") ||
        s_is(s, "required"))
        return 0;
    if (json_is_object(tc) && s_str(json_object_get(tc, "function"), "name"))
        return 0;
    return s_fail(err, len,
                  "tool_choice: must be \"none\", \"auto\", \"required\" or "
                  "{\"type\":\"function\",\"function\":{\"name\":...}}");
}

static int s_check_openai_params(const json_t *req, char *err, size_t len)
{
    const json_t *n = json_object_get(req, "n");
    const json_t *so = json_object_get(req, "stream_options");
    const json_t *stop = json_object_get(req, "stop");
    if (s_check_num(req, "temperature", 0, 2, err, len) < 0 ||
        s_check_num(req, "top_p", 0, 1, err, len) < 0 ||
        s_check_num(req, "presence_penalty", -2, 2, err, len) < 0 ||
        s_check_num(req, "frequency_penalty", -2, 2, err, len) < 0 ||
        s_check_int(req, "max_tokens", 1, err, len) < 0 ||
        s_check_int(req, "max_completion_tokens", 1, err, len) < 0 ||
        s_check_bool(req, "stream", err, len) < 0)
        return -1;
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return s_fail(err, len, "n: only 1 is supported");
    if (stop && !json_is_null(stop) && !json_is_string(stop) && !s_all_strings(stop))
        return s_fail(err, len, "stop: must be a string or an array of strings");
    if (so && !json_is_null(so) &&
        !(json_is_object(so) && s_check_bool(so, "include_usage", NULL, 0) == 0))
        return s_fail(err, len,
                      "stream_options: must be an object with a boolean include_usage");
    return 0;
}

int wire_openai_validate(const json_t *req, char *err, size_t errlen)
{
    if (!json_is_object(req))
        return s_fail(err, errlen, "body: must be a JSON object");
    if (s_present(req, "model") && !s_str(req, "model"))
        return s_fail(err, errlen, "model: must be a string");
    if (s_check_messages(req, err, errlen) < 0 ||
        s_check_openai_params(req, err, errlen) < 0 ||
        s_check_tools(req, err, errlen) < 0 ||
        s_check_tool_choice(req, err, errlen) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Anthropic request -> canonical                                       */
/* ------------------------------------------------------------------ */

/* Appends the text blocks of an Anthropic block array joined with sep;
 * other block types are skipped. -1 when an element is not a block. */
static int s_join_text_blocks(const json_t *blocks, const char *sep, sbuf_t *out)
{
    size_t i;
    const json_t *b;
    bool first = true;
    json_array_foreach(blocks, i, b)
    {
        const char *type = s_str(b, "type");
        if (!type || (strcmp(type, "text") == 0 && !s_str(b, "text")))
            return -1;
        if (strcmp(type, "text") != 0)
            continue;
        if (!first)
            sbuf_puts(out, sep);
        s_append_str(out, json_object_get(b, "text"));
        first = false;
    }
    return 0;
}

static int s_a_params(const json_t *req, json_t *canon, char *err, size_t len)
{
    const json_t *stops = json_object_get(req, "stop_sequences");
    const char *user = s_str(json_object_get(req, "metadata"), "user_id");
    if (s_present(req, "model") && !s_str(req, "model"))
        return s_fail(err, len, "model: must be a string");
    if (!s_present(req, "max_tokens"))
        return s_fail(err, len, "max_tokens: required");
    if (s_check_int(req, "max_tokens", 1, err, len) < 0 ||
        s_check_num(req, "temperature", 0, 1, err, len) < 0 ||
        s_check_num(req, "top_p", 0, 1, err, len) < 0 ||
        s_check_int(req, "top_k", 0, err, len) < 0 ||
        s_check_bool(req, "stream", err, len) < 0)
        return -1;
    if (stops && !json_is_null(stops) && !s_all_strings(stops))
        return s_fail(err, len, "stop_sequences: must be an array of strings");
    const json_t *meta = json_object_get(req, "metadata");
    if (meta && !json_is_null(meta) && !json_is_object(meta))
        return s_fail(err, len, "metadata: must be an object");
    const json_t *uid = json_object_get(meta, "user_id");
    if (uid && !json_is_null(uid) && !json_is_string(uid))
        return s_fail(err, len, "metadata.user_id: must be a string");
    s_copy(canon, "model", req, "model");
    s_copy(canon, "max_tokens", req, "max_tokens");
    s_copy(canon, "temperature", req, "temperature");
    s_copy(canon, "top_p", req, "top_p");
    s_copy(canon, "stop", req, "stop_sequences");
    s_copy(canon, "stream", req, "stream");
    if (user)
        json_object_set_new(canon, "user", json_string(user));
    return 0;
}

static int s_a_system(const json_t *req, json_t *msgs, char *err, size_t len)
{
    const json_t *sys = json_object_get(req, "system");
    sbuf_t b = {0};
    if (!sys || json_is_null(sys))
        return 0;
    bool text_only = true; /* the system prompt takes text blocks only */
    const json_t *blk;
    size_t k;
    json_array_foreach(sys, k, blk) text_only &= s_is(s_str(blk, "type"), "text");
    if (json_is_string(sys))
        s_append_str(&b, sys);
    else if (!json_is_array(sys) || !text_only ||
             s_join_text_blocks(sys, "\n", &b) < 0) {
        sbuf_free(&b);
        return s_fail(err, len, "system: must be a string or an array of text blocks");
    }
    json_array_append_new(
        msgs, json_pack("{s:s,s:o}", "role", "system", "content", s_sbuf_json(&b)));
    sbuf_free(&b);
    return 0;
}

static int s_a_image(const json_t *b, size_t mi, size_t j, json_t *parts, char *err,
                     size_t len)
{
    const json_t *src = json_object_get(b, "source");
    const char *type = s_str(src, "type"), *mt = s_str(src, "media_type");
    const char *data = s_str(src, "data"), *u = s_str(src, "url");
    char *url;
    if (s_is(type, "base64") && mt && data)
        url = xasprintf("data:%s;base64,%s", mt, data);
    else if (s_is(type, "url") && u)
        url = xstrdup(u);
    else
        return s_fail(err, len, "messages[%zu].content[%zu].source: %s", mi, j,
                      "must be a base64 or url image source");
    json_array_append_new(parts, json_pack("{s:s,s:{s:s}}", "type", "image_url",
                                           "image_url", "url", url));
    free(url);
    return 0;
}

/* A text or image block of a user message as a canonical part. */
static int s_a_part(const json_t *b, const char *type, size_t mi, size_t j,
                    json_t *parts, char *err, size_t len)
{
    if (strcmp(type, "text") == 0) {
        const json_t *t = json_object_get(b, "text");
        if (!json_is_string(t))
            return s_fail(err, len, "messages[%zu].content[%zu].text: must be a string",
                          mi, j);
        json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", t));
        return 0;
    }
    if (strcmp(type, "image") == 0)
        return s_a_image(b, mi, j, parts, err, len);
    if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0)
        return 0;
    return s_fail(err, len,
                  "messages[%zu].content[%zu].type: unsupported block type \"%s\"", mi,
                  j, type);
}

static int s_a_tool_result(const json_t *b, size_t mi, size_t j, json_t *msgs,
                           char *err, size_t len)
{
    const char *id = s_str(b, "tool_use_id");
    const json_t *c = json_object_get(b, "content");
    sbuf_t t = {0};
    if (!id)
        return s_fail(err, len,
                      "messages[%zu].content[%zu].tool_use_id: must be a string", mi,
                      j);
    if (json_is_string(c))
        s_append_str(&t, c);
    else if (c && !json_is_null(c) &&
             (!json_is_array(c) || s_join_text_blocks(c, "\n", &t) < 0)) {
        sbuf_free(&t);
        return s_fail(err, len, "messages[%zu].content[%zu].content: %s", mi, j,
                      "must be a string or an array of blocks");
    }
    json_array_append_new(msgs,
                          json_pack("{s:s,s:s,s:o}", "role", "tool", "tool_call_id", id,
                                    "content", s_sbuf_json(&t)));
    sbuf_free(&t);
    return 0;
}

/* A user message's blocks: tool results become "tool" messages (first, as
 * OpenAI wants them right after the assistant's calls), the rest one user
 * message (a string when it is a single text). */
static int s_a_user(const json_t *c, size_t mi, json_t *msgs, char *err, size_t len)
{
    json_t *parts = json_array(), *content = parts;
    size_t j;
    const json_t *b;
    json_array_foreach(c, j, b)
    {
        const char *type = s_str(b, "type");
        int rc;
        if (!type)
            rc = s_fail(err, len, "messages[%zu].content[%zu].type: must be a string",
                        mi, j);
        else if (strcmp(type, "tool_result") == 0)
            rc = s_a_tool_result(b, mi, j, msgs, err, len);
        else
            rc = s_a_part(b, type, mi, j, parts, err, len);
        if (rc < 0) {
            json_decref(parts);
            return -1;
        }
    }
    if (json_array_size(parts) == 1 &&
        s_is(s_str(json_array_get(parts, 0), "type"), "text"))
        content = json_incref(json_object_get(json_array_get(parts, 0), "text"));
    if (json_array_size(parts) > 0)
        json_array_append_new(
            msgs, json_pack("{s:s,s:O}", "role", "user", "content", content));
    if (content != parts)
        json_decref(content);
    json_decref(parts);
    return 0;
}

static int s_a_tool_use(const json_t *b, size_t mi, size_t j, json_t *calls, char *err,
                        size_t len)
{
    const char *id = s_str(b, "id"), *name = s_str(b, "name");
    if (!id || !name)
        return s_fail(err, len, "messages[%zu].content[%zu]: %s", mi, j,
                      "tool_use needs a string id and name");
    char *args = s_dumps(json_object_get(b, "input"));
    json_array_append_new(calls, s_tool_call(id, name, args));
    free(args);
    return 0;
}

static int s_a_assistant(const json_t *c, size_t mi, json_t *msgs, char *err,
                         size_t len)
{
    json_t *calls = json_array();
    sbuf_t text = {0};
    size_t j;
    const json_t *b;
    int rc = 0;
    json_array_foreach(c, j, b)
    {
        const char *type = s_str(b, "type");
        if (s_is(type, "tool_use"))
            rc = s_a_tool_use(b, mi, j, calls, err, len);
        else if (s_is(type, "text") && s_str(b, "text"))
            s_append_str(&text, json_object_get(b, "text"));
        else if (!s_is(type, "thinking") && !s_is(type, "redacted_thinking"))
            rc = s_fail(err, len, "messages[%zu].content[%zu].type: %s", mi, j,
                        "must be text, tool_use or thinking");
        if (rc < 0)
            break;
    }
    if (rc == 0)
        json_array_append_new(msgs, s_message(&text, json_incref(calls)));
    json_decref(calls);
    sbuf_free(&text);
    return rc;
}

static int s_a_messages(const json_t *req, json_t *msgs, char *err, size_t len)
{
    const json_t *ms = json_object_get(req, "messages"), *m;
    size_t i;
    if (!json_is_array(ms) || json_array_size(ms) == 0)
        return s_fail(err, len, "messages: must be a non-empty array");
    json_array_foreach(ms, i, m)
    {
        const char *role = s_str(m, "role");
        const json_t *c = json_object_get(m, "content");
        int rc = 0;
        if (!s_is(role, "user") && !s_is(role, "assistant"))
            return s_fail(err, len,
                          "messages[%zu].role: must be \"user\" or \"assistant\"", i);
        if (json_is_string(c))
            json_array_append_new(msgs,
                                  json_pack("{s:s,s:O}", "role", role, "content", c));
        /* Empty content is Anthropic's prefill for the last assistant turn
         * only. */
        else if (!json_is_array(c) ||
                 (json_array_size(c) == 0 &&
                  !(s_is(role, "assistant") && i + 1 == json_array_size(ms))))
            rc = s_fail(err, len, "messages[%zu].content: %s", i,
                        "must be a string or a non-empty array of content blocks");
        else
            rc = s_is(role, "user") ? s_a_user(c, i, msgs, err, len)
                                    : s_a_assistant(c, i, msgs, err, len);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int s_a_tool_choice(const json_t *req, json_t *canon, char *err, size_t len)
{
    const json_t *tc = json_object_get(req, "tool_choice");
    const char *type = s_str(tc, "type"), *name = s_str(tc, "name");
    json_t *out = NULL;
    if (!tc || json_is_null(tc))
        return 0;
    if (s_is(type, "auto") || s_is(type, "none"))
        out = json_string(type);
    else if (s_is(type, "any"))
        out = json_string("required");
    else if (s_is(type, "tool") && name)
        out = json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name);
    if (!out)
        return s_fail(err, len,
                      "tool_choice: must be {\"type\":\"auto\"|\"any\"|\"none\"} "
                      "or {\"type\":\"tool\",\"name\":...}");
    json_object_set_new(canon, "tool_choice", out);
    if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
        json_object_set_new(canon, "parallel_tool_calls", json_false());
    return 0;
}

static int s_a_tools(const json_t *req, json_t *canon, char *err, size_t len)
{
    const json_t *tools = json_object_get(req, "tools"), *t;
    size_t i;
    if (tools && !json_is_null(tools) && !json_is_array(tools))
        return s_fail(err, len, "tools: must be an array");
    json_array_foreach(tools, i, t)
    {
        if (!s_str(t, "name"))
            return s_fail(err, len, "tools[%zu].name: must be a string", i);
        if (!json_is_object(json_object_get(t, "input_schema")))
            return s_fail(err, len, "tools[%zu].input_schema: must be an object", i);
    }
    json_t *out = json_array();
    json_array_foreach(tools, i, t)
    {
        json_t *fn = json_pack("{s:s}", "name", s_str(t, "name"));
        s_copy(fn, "description", t, "description");
        s_copy(fn, "parameters", t, "input_schema");
        json_array_append_new(
            out, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    if (json_array_size(out))
        json_object_set(canon, "tools", out);
    json_decref(out);
    return s_a_tool_choice(req, canon, err, len);
}

json_t *wire_from_anthropic_request(const json_t *req, char *err, size_t errlen)
{
    if (!json_is_object(req)) {
        s_fail(err, errlen, "body: must be a JSON object");
        return NULL;
    }
    json_t *canon = json_object(), *msgs = json_array();
    json_object_set_new(canon, "messages", msgs);
    if (s_a_params(req, canon, err, errlen) < 0 ||
        s_a_system(req, msgs, err, errlen) < 0 ||
        s_a_messages(req, msgs, err, errlen) < 0 ||
        s_a_tools(req, canon, err, errlen) < 0) {
        json_decref(canon);
        return NULL;
    }
    return canon;
}

/* ------------------------------------------------------------------ */
/* Prompt token bound                                                   */
/* ------------------------------------------------------------------ */

static long s_message_bytes(const json_t *m)
{
    const json_t *c = json_object_get(m, "content"), *p, *tc;
    size_t i;
    long n = (long)json_string_length(c);
    json_array_foreach(c, i, p)
    {
        n += (long)json_string_length(json_object_get(p, "text"));
        n += s_is(s_str(p, "type"), "image_url") ? WIRE_IMAGE_TOKENS : 0;
    }
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        n += (long)json_string_length(json_object_get(fn, "name"));
        n += (long)json_string_length(json_object_get(fn, "arguments"));
    }
    return n;
}

long wire_prompt_token_bound(const json_t *canon)
{
    const json_t *m, *tools = json_object_get(canon, "tools");
    size_t i;
    long n = 0;
    json_array_foreach(json_object_get(canon, "messages"), i, m)
    {
        n += WIRE_MSG_OVERHEAD + s_message_bytes(m);
    }
    if (tools) {
        char *s = s_dumps(tools);
        n += (long)strlen(s);
        free(s);
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Canonical -> upstream requests                                       */
/* ------------------------------------------------------------------ */

static bool s_max_tokens(const json_t *canon, long *out)
{
    const json_t *v = json_object_get(canon, "max_completion_tokens");
    if (!json_is_integer(v))
        v = json_object_get(canon, "max_tokens");
    if (!json_is_integer(v))
        return false;
    *out = (long)json_integer_value(v);
    return true;
}

/* The canonical stop (a string or strings) as a new array, or NULL. */
static json_t *s_stop_array(const json_t *canon)
{
    const json_t *stop = json_object_get(canon, "stop");
    if (json_is_string(stop))
        return json_pack("[O]", stop);
    if (json_is_array(stop) && json_array_size(stop) > 0)
        return json_deep_copy(stop);
    return NULL;
}

/* System and developer messages joined into one text (every other format
 * keeps the system prompt apart from the conversation). */
static void s_system_text(const json_t *msgs, sbuf_t *out)
{
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = s_str(m, "role");
        if (!s_is(role, "system") && !s_is(role, "developer"))
            continue;
        if (out->len)
            sbuf_puts(out, "\n\n");
        s_content_text(json_object_get(m, "content"), "\n", out);
    }
}

static json_t *s_up_openai(const json_t *canon, const char *model, bool stream)
{
    json_t *r = json_deep_copy(canon);
    json_object_set_new(r, "model", json_string(model));
    json_object_set_new(r, "stream", json_boolean(stream));
    if (!stream) {
        json_object_del(r, "stream_options");
        return r;
    }
    json_t *so = json_object_get(r, "stream_options");
    if (!json_is_object(so)) {
        so = json_object();
        json_object_set_new(r, "stream_options", so);
    }
    json_object_set_new(so, "include_usage", json_true());
    return r;
}

/* ---- Anthropic ---- */

static void s_an_text(json_t *blocks, const json_t *text)
{
    if (json_string_length(text) > 0)
        json_array_append_new(blocks,
                              json_pack("{s:s,s:O}", "type", "text", "text", text));
}

static void s_an_image(json_t *blocks, const char *url)
{
    char *mime;
    const char *data;
    if (s_data_url(url, &mime, &data)) {
        json_array_append_new(blocks, json_pack("{s:s,s:{s:s,s:s,s:s}}", "type",
                                                "image", "source", "type", "base64",
                                                "media_type", mime, "data", data));
        free(mime);
    } else if (url) {
        json_array_append_new(blocks, json_pack("{s:s,s:{s:s,s:s}}", "type", "image",
                                                "source", "type", "url", "url", url));
    }
}

static json_t *s_an_user_blocks(const json_t *c)
{
    json_t *blocks = json_array();
    size_t i;
    const json_t *p;
    if (json_is_string(c))
        s_an_text(blocks, c);
    json_array_foreach(c, i, p)
    {
        const char *type = s_str(p, "type");
        if (s_is(type, "text"))
            s_an_text(blocks, json_object_get(p, "text"));
        else if (s_is(type, "image_url"))
            s_an_image(blocks, s_str(json_object_get(p, "image_url"), "url"));
    }
    return blocks;
}

/* {"type":"tool_use","id","name","input"} from a canonical tool call. */
static json_t *s_an_tool_use(const json_t *tc)
{
    const json_t *fn = json_object_get(tc, "function");
    const char *id = s_str(tc, "id"), *name = s_str(fn, "name");
    return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", id ? id : "",
                     "name", name ? name : "", "input",
                     s_args_object(s_str(fn, "arguments")));
}

static json_t *s_an_assistant_blocks(const json_t *m)
{
    json_t *blocks = json_array();
    sbuf_t text = {0};
    size_t i;
    const json_t *tc;
    s_content_text(json_object_get(m, "content"), "", &text);
    if (text.len) {
        json_t *t = s_sbuf_json(&text);
        s_an_text(blocks, t);
        json_decref(t);
    }
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
        json_array_append_new(blocks, s_an_tool_use(tc));
    sbuf_free(&text);
    return blocks;
}

static json_t *s_an_tool_result(const json_t *m)
{
    sbuf_t t = {0};
    s_content_text(json_object_get(m, "content"), "\n", &t);
    const char *id = s_str(m, "tool_call_id");
    json_t *b =
        json_pack("{s:s,s:s}", "type", "tool_result", "tool_use_id", id ? id : "");
    if (t.len) /* content is optional, and Anthropic refuses empty texts */
        json_object_set_new(b, "content", s_sbuf_json(&t));
    sbuf_free(&t);
    return json_pack("[o]", b);
}

static void s_an_messages(const json_t *canon, json_t *r)
{
    const json_t *ms = json_object_get(canon, "messages"), *m;
    json_t *out = json_array();
    sbuf_t sys = {0};
    size_t i;
    s_system_text(ms, &sys);
    if (sys.len)
        json_object_set_new(r, "system", s_sbuf_json(&sys));
    sbuf_free(&sys);
    json_array_foreach(ms, i, m)
    {
        const char *role = s_str(m, "role");
        if (s_is(role, "assistant"))
            s_push(out, "assistant", "content", s_an_assistant_blocks(m));
        else if (s_is(role, "tool"))
            s_push(out, "user", "content", s_an_tool_result(m));
        else if (s_is(role, "user"))
            s_push(out, "user", "content",
                   s_an_user_blocks(json_object_get(m, "content")));
    }
    json_object_set_new(r, "messages", out);
}

static void s_an_params(const json_t *canon, json_t *r)
{
    const json_t *t = json_object_get(canon, "temperature");
    json_t *stop = s_stop_array(canon);
    const char *user = s_str(canon, "user");
    /* OpenAI's temperature goes to 2, Anthropic's to 1. */
    if (json_is_number(t))
        json_object_set_new(r, "temperature",
                            json_number_value(t) > 1 ? json_real(1)
                                                     : json_deep_copy(t));
    s_copy(r, "top_p", canon, "top_p");
    if (stop)
        json_object_set_new(r, "stop_sequences", stop);
    if (user)
        json_object_set_new(r, "metadata", json_pack("{s:s}", "user_id", user));
}

static json_t *s_an_tool_choice(const json_t *canon)
{
    const json_t *tc = json_object_get(canon, "tool_choice");
    const char *s = json_string_value(tc);
    const char *name = s_str(json_object_get(tc, "function"), "name");
    json_t *out = NULL;
    if (s_is(s, "auto") || s_is(s, "none"))
        out = json_pack("{s:s}", "type", s);
    else if (s_is(s, "required"))
        out = json_pack("{s:s}", "type", "any");
    else if (name)
        out = json_pack("{s:s,s:s}", "type", "tool", "name", name);
    if (json_is_false(json_object_get(canon, "parallel_tool_calls"))) {
        if (!out)
            out = json_pack("{s:s}", "type", "auto");
        json_object_set_new(out, "disable_parallel_tool_use", json_true());
    }
    return out;
}

static void s_an_tools(const json_t *canon, json_t *r)
{
    const json_t *t;
    size_t i;
    json_t *tools = json_array(), *choice;
    json_array_foreach(json_object_get(canon, "tools"), i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *params = json_object_get(fn, "parameters");
        json_t *out =
            json_pack("{s:s}", "name", s_str(fn, "name") ? s_str(fn, "name") : "");
        s_copy(out, "description", fn, "description");
        json_object_set_new(out, "input_schema",
                            json_is_object(params)
                                ? json_deep_copy(params)
                                : json_pack("{s:s}", "type", "object"));
        json_array_append_new(tools, out);
    }
    if (json_array_size(tools))
        json_object_set(r, "tools", tools);
    json_decref(tools);
    if ((choice = s_an_tool_choice(canon)))
        json_object_set_new(r, "tool_choice", choice);
}

static json_t *s_up_anthropic(const json_t *canon, const char *model, bool stream,
                              long default_max)
{
    long max = default_max > 0 ? default_max : WIRE_DEFAULT_MAX_TOKENS;
    s_max_tokens(canon, &max);
    json_t *r = json_pack("{s:s,s:I}", "model", model, "max_tokens", (json_int_t)max);
    s_an_messages(canon, r);
    s_an_params(canon, r);
    s_an_tools(canon, r);
    json_object_set_new(r, "stream", json_boolean(stream));
    return r;
}

/* ---- Gemini ---- */

static json_t *s_ge_user_parts(const json_t *c)
{
    json_t *parts = json_array();
    size_t i;
    const json_t *p;
    char *mime;
    const char *data;
    if (json_string_length(c) > 0)
        json_array_append_new(parts, json_pack("{s:O}", "text", c));
    json_array_foreach(c, i, p)
    {
        const json_t *t = json_object_get(p, "text");
        const char *url = s_str(json_object_get(p, "image_url"), "url");
        if (s_is(s_str(p, "type"), "text") && json_string_length(t) > 0)
            json_array_append_new(parts, json_pack("{s:O}", "text", t));
        if (s_is(s_str(p, "type"), "image_url") && s_data_url(url, &mime, &data)) {
            json_array_append_new(parts, json_pack("{s:{s:s,s:s}}", "inlineData",
                                                   "mimeType", mime, "data", data));
            free(mime);
        }
    }
    return parts;
}

static json_t *s_ge_model_parts(const json_t *m)
{
    json_t *parts = json_array();
    sbuf_t text = {0};
    size_t i;
    const json_t *tc;
    s_content_text(json_object_get(m, "content"), "", &text);
    if (text.len)
        json_array_append_new(parts, json_pack("{s:o}", "text", s_sbuf_json(&text)));
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const char *name = s_str(fn, "name");
        json_array_append_new(parts, json_pack("{s:{s:s,s:o}}", "functionCall", "name",
                                               name ? name : "", "args",
                                               s_args_object(s_str(fn, "arguments"))));
    }
    sbuf_free(&text);
    return parts;
}

/* A tool message as a functionResponse part; its response is the result
 * when that is a JSON object, else {"output": text}. */
static json_t *s_ge_response_parts(const json_t *msgs, size_t i, const json_t *m)
{
    sbuf_t t = {0};
    const char *name = s_tool_name(msgs, i, s_str(m, "tool_call_id"));
    s_content_text(json_object_get(m, "content"), "\n", &t);
    json_t *resp = t.len ? json_loadb(t.data, t.len, 0, NULL) : NULL;
    if (!json_is_object(resp)) {
        json_decref(resp);
        resp = json_pack("{s:o}", "output", s_sbuf_json(&t));
    }
    if (!name)
        name = s_str(m, "name");
    sbuf_free(&t);
    return json_pack("[{s:{s:s,s:o}}]", "functionResponse", "name", name ? name : "",
                     "response", resp);
}

static void s_ge_contents(const json_t *canon, json_t *r)
{
    const json_t *ms = json_object_get(canon, "messages"), *m;
    json_t *out = json_array();
    sbuf_t sys = {0};
    size_t i;
    s_system_text(ms, &sys);
    if (sys.len)
        json_object_set_new(
            r, "systemInstruction",
            json_pack("{s:[{s:o}]}", "parts", "text", s_sbuf_json(&sys)));
    sbuf_free(&sys);
    json_array_foreach(ms, i, m)
    {
        const char *role = s_str(m, "role");
        if (s_is(role, "assistant"))
            s_push(out, "model", "parts", s_ge_model_parts(m));
        else if (s_is(role, "tool"))
            s_push(out, "user", "parts", s_ge_response_parts(ms, i, m));
        else if (s_is(role, "user"))
            s_push(out, "user", "parts",
                   s_ge_user_parts(json_object_get(m, "content")));
    }
    json_object_set_new(r, "contents", out);
}

static const char *const s_ge_unsupported[] = {"$schema", "$id", "$comment",
                                               "additionalProperties"};

static json_t *s_ge_schema(const json_t *s);

/* A "properties" object: the names are kept, each schema cleaned. */
static json_t *s_ge_properties(const json_t *props)
{
    json_t *o = json_object(), *v;
    const char *k;
    json_object_foreach((json_t *)props, k, v)
    {
        json_object_set_new(o, k, s_ge_schema(v));
    }
    return o;
}

/* A JSON Schema copied without the keywords Gemini's schema subset rejects. */
static json_t *s_ge_schema(const json_t *s)
{
    const char *k;
    json_t *v, *o;
    size_t i;
    if (json_is_array(s)) {
        o = json_array();
        json_array_foreach(s, i, v)
        {
            json_array_append_new(o, s_ge_schema(v));
        }
        return o;
    }
    if (!json_is_object(s))
        return json_deep_copy(s);
    o = json_object();
    json_object_foreach((json_t *)s, k, v)
    {
        if (s_in(k, s_ge_unsupported, ARRAY_LEN(s_ge_unsupported)))
            continue;
        json_object_set_new(o, k,
                            strcmp(k, "properties") == 0 && json_is_object(v)
                                ? s_ge_properties(v)
                                : s_ge_schema(v));
    }
    return o;
}

static void s_ge_tools(const json_t *canon, json_t *r)
{
    const json_t *t;
    size_t i;
    json_t *decls = json_array();
    json_array_foreach(json_object_get(canon, "tools"), i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *params = json_object_get(fn, "parameters");
        json_t *d =
            json_pack("{s:s}", "name", s_str(fn, "name") ? s_str(fn, "name") : "");
        s_copy(d, "description", fn, "description");
        /* Gemini refuses an OBJECT schema without properties. */
        if (json_object_size(json_object_get(params, "properties")) > 0)
            json_object_set_new(d, "parameters", s_ge_schema(params));
        json_array_append_new(decls, d);
    }
    if (json_array_size(decls))
        json_object_set_new(r, "tools",
                            json_pack("[{s:O}]", "functionDeclarations", decls));
    json_decref(decls);
}

static void s_ge_tool_config(const json_t *canon, json_t *r)
{
    const json_t *tc = json_object_get(canon, "tool_choice");
    const char *s = json_string_value(tc);
    const char *name = s_str(json_object_get(tc, "function"), "name");
    const char *mode = s_is(s, "auto")               ? "AUTO"
                       : s_is(s, "none")             ? "NONE"
                       : s_is(s, "required") || name ? "ANY"
                                                     : NULL;
    if (!mode)
        return;
    json_t *fcc = json_pack("{s:s}", "mode", mode);
    if (name)
        json_object_set_new(fcc, "allowedFunctionNames", json_pack("[s]", name));
    json_object_set_new(r, "toolConfig",
                        json_pack("{s:o}", "functionCallingConfig", fcc));
}

static void s_ge_config(const json_t *canon, json_t *r)
{
    json_t *gc = json_object(), *stop = s_stop_array(canon);
    long max;
    if (s_max_tokens(canon, &max))
        json_object_set_new(gc, "maxOutputTokens", json_integer(max));
    s_copy(gc, "temperature", canon, "temperature");
    s_copy(gc, "topP", canon, "top_p");
    if (stop)
        json_object_set_new(gc, "stopSequences", stop);
    if (json_object_size(gc))
        json_object_set(r, "generationConfig", gc);
    json_decref(gc);
}

static json_t *s_up_gemini(const json_t *canon, const char *model, bool stream,
                           char *path, size_t pathlen)
{
    json_t *r = json_object();
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    snprintf(path, pathlen, "/v1beta/models/%s:%s", model,
             stream ? "streamGenerateContent?alt=sse" : "generateContent");
    s_ge_contents(canon, r);
    s_ge_config(canon, r);
    s_ge_tools(canon, r);
    s_ge_tool_config(canon, r);
    return r;
}

/* ---- Ollama ---- */

static void s_ol_images(const json_t *c, json_t *msg)
{
    json_t *images = json_array();
    size_t i;
    const json_t *p;
    char *mime;
    const char *data;
    json_array_foreach(c, i, p)
    {
        if (s_data_url(s_str(json_object_get(p, "image_url"), "url"), &mime, &data)) {
            json_array_append_new(images, json_string(data));
            free(mime);
        }
    }
    if (json_array_size(images))
        json_object_set(msg, "images", images);
    json_decref(images);
}

static void s_ol_tool_calls(const json_t *m, json_t *msg)
{
    json_t *calls = json_array();
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const char *name = s_str(fn, "name");
        json_array_append_new(calls, json_pack("{s:{s:s,s:o}}", "function", "name",
                                               name ? name : "", "arguments",
                                               s_args_object(s_str(fn, "arguments"))));
    }
    if (json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    json_decref(calls);
}

static json_t *s_ol_message(const json_t *msgs, size_t i, const json_t *m)
{
    const char *role = s_str(m, "role");
    const json_t *c = json_object_get(m, "content");
    const char *tool = s_tool_name(msgs, i, s_str(m, "tool_call_id"));
    sbuf_t t = {0};
    s_content_text(c, "\n", &t);
    json_t *o =
        json_pack("{s:s,s:o}", "role", s_is(role, "developer") ? "system" : role,
                  "content", s_sbuf_json(&t));
    sbuf_free(&t);
    s_ol_images(c, o);
    s_ol_tool_calls(m, o);
    if (s_is(role, "tool") && tool)
        json_object_set_new(o, "tool_name", json_string(tool));
    return o;
}

static json_t *s_up_ollama(const json_t *canon, const char *model, bool stream)
{
    const json_t *ms = json_object_get(canon, "messages"), *m;
    json_t *msgs = json_array(), *opts = json_object(), *stop = s_stop_array(canon);
    size_t i;
    long max;
    json_array_foreach(ms, i, m)
    {
        if (s_str(m, "role"))
            json_array_append_new(msgs, s_ol_message(ms, i, m));
    }
    /* Ollama streams unless told otherwise, so "stream" is always set. */
    json_t *r =
        json_pack("{s:s,s:o,s:b}", "model", model, "messages", msgs, "stream", stream);
    s_copy(opts, "temperature", canon, "temperature");
    s_copy(opts, "top_p", canon, "top_p");
    if (s_max_tokens(canon, &max))
        json_object_set_new(opts, "num_predict", json_integer(max));
    if (stop)
        json_object_set_new(opts, "stop", stop);
    if (json_object_size(opts))
        json_object_set(r, "options", opts);
    json_decref(opts);
    s_copy(r, "tools", canon, "tools");
    return r;
}

json_t *wire_upstream_request(wire_kind_t kind, const json_t *canon, const char *model,
                              bool stream, long default_max_tokens, char *path,
                              size_t pathlen)
{
    if (!model)
        model = s_str(canon, "model") ? s_str(canon, "model") : "";
    switch (kind) {
    case WIRE_ANTHROPIC:
        snprintf(path, pathlen, "/v1/messages");
        return s_up_anthropic(canon, model, stream, default_max_tokens);
    case WIRE_GEMINI: return s_up_gemini(canon, model, stream, path, pathlen);
    case WIRE_OLLAMA:
        snprintf(path, pathlen, "/api/chat");
        return s_up_ollama(canon, model, stream);
    default:
        snprintf(path, pathlen, "/chat/completions");
        return s_up_openai(canon, model, stream);
    }
}

/* ------------------------------------------------------------------ */
/* Upstream responses -> canonical -> Anthropic                         */
/* ------------------------------------------------------------------ */

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
        json_is_string(args) ? xstrdup(json_string_value(args)) : s_dumps(args);
    if (!id) {
        s_tool_id(idbuf, sizeof idbuf, r->nonce, (int)json_array_size(r->calls));
        id = idbuf;
    }
    json_array_append_new(r->calls, s_tool_call(id, name, text));
    free(text);
}

static void s_ge_usage(const json_t *um, wire_usage_t *u)
{
    s_read_usage(um, "promptTokenCount", "candidatesTokenCount", u);
    /* Thinking tokens are billed as output. */
    u->output_tokens +=
        (long)json_integer_value(json_object_get(um, "thoughtsTokenCount"));
}

static int s_resp_openai(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *ch = json_array_get(json_object_get(body, "choices"), 0), *tc;
    const json_t *msg = json_object_get(ch, "message");
    size_t i;
    if (!json_is_object(msg))
        return s_fail(err, len,
                      "not an OpenAI chat.completion: choices[0].message missing");
    s_content_text(json_object_get(msg, "content"), "", &r->text);
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
        json_array_append_new(r->calls, json_deep_copy(tc));
    r->finish = s_finish_of(WIRE_OPENAI, s_str(ch, "finish_reason"), false);
    s_read_usage(json_object_get(body, "usage"), "prompt_tokens", "completion_tokens",
                 &r->usage);
    return 0;
}

static int s_resp_anthropic(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *content = json_object_get(body, "content"), *b;
    size_t i;
    if (!json_is_array(content))
        return s_fail(err, len, "not an Anthropic message: content must be an array");
    json_array_foreach(content, i, b)
    {
        const char *type = s_str(b, "type");
        if (s_is(type, "text"))
            s_append_str(&r->text, json_object_get(b, "text"));
        else if (s_is(type, "tool_use"))
            s_resp_call(r, s_str(b, "id"), s_str(b, "name"),
                        json_object_get(b, "input"));
    }
    r->finish = s_finish_of(WIRE_ANTHROPIC, s_str(body, "stop_reason"), false);
    s_anthropic_usage(json_object_get(body, "usage"), &r->usage);
    return 0;
}

static int s_resp_gemini(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *c = json_array_get(json_object_get(body, "candidates"), 0), *p;
    const char *blocked = s_str(json_object_get(body, "promptFeedback"), "blockReason");
    size_t i;
    if (!json_is_object(c) && !blocked)
        return s_fail(err, len, "not a Gemini response: candidates missing");
    json_array_foreach(json_object_get(json_object_get(c, "content"), "parts"), i, p)
    {
        const json_t *call = json_object_get(p, "functionCall");
        if (json_is_true(json_object_get(p, "thought")))
            continue;
        s_append_str(&r->text, json_object_get(p, "text"));
        if (json_is_object(call))
            s_resp_call(r, s_str(call, "id"), s_str(call, "name"),
                        json_object_get(call, "args"));
    }
    r->finish = c ? s_finish_of(WIRE_GEMINI, s_str(c, "finishReason"),
                                json_array_size(r->calls) > 0)
                  : "content_filter";
    s_ge_usage(json_object_get(body, "usageMetadata"), &r->usage);
    return 0;
}

static int s_resp_ollama(const json_t *body, s_resp_t *r, char *err, size_t len)
{
    const json_t *msg = json_object_get(body, "message"), *tc;
    size_t i;
    if (!json_is_object(msg))
        return s_fail(err, len, "not an Ollama chat response: message missing");
    s_append_str(&r->text, json_object_get(msg, "content"));
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        s_resp_call(r, s_str(tc, "id"), s_str(fn, "name"),
                    json_object_get(fn, "arguments"));
    }
    r->finish = s_finish_of(WIRE_OLLAMA, s_str(body, "done_reason"),
                            json_array_size(r->calls) > 0);
    s_read_usage(body, "prompt_eval_count", "eval_count", &r->usage);
    return 0;
}

static json_t *s_usage_json(const wire_usage_t *u)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)u->input_tokens,
                     "completion_tokens", (json_int_t)u->output_tokens, "total_tokens",
                     (json_int_t)(u->input_tokens + u->output_tokens));
}

static json_t *s_completion(const char *id, const char *model, const s_resp_t *r)
{
    json_t *msg = s_message(&r->text, json_incref(r->calls));
    json_t *c =
        json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}]}", "id", id ? id : "",
                  "object", "chat.completion", "created", (json_int_t)time(NULL),
                  "model", model ? model : "", "choices", "index", 0, "message", msg,
                  "logprobs", "finish_reason", r->finish);
    if (r->usage.present)
        json_object_set_new(c, "usage", s_usage_json(&r->usage));
    return c;
}

json_t *wire_canonical_response(wire_kind_t kind, const json_t *body, const char *id,
                                const char *model, wire_usage_t *usage, char *err,
                                size_t errlen)
{
    s_resp_t r = {.calls = json_array(), .nonce = s_nonce()};
    json_t *out = NULL;
    int rc;
    if (!json_is_object(body))
        rc = s_fail(err, errlen, "%s response: must be a JSON object",
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
    const char *id = s_str(canon, "id"), *model = s_str(canon, "model");
    json_t *content = s_an_assistant_blocks(json_object_get(ch, "message"));
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:o,s:s,s:n,s:{s:I,s:I}}", "id", id ? id : "", "type",
        "message", "role", "assistant", "model", model ? model : "", "content", content,
        "stop_reason", s_anthropic_stop(s_str(ch, "finish_reason")), "stop_sequence",
        "usage", "input_tokens",
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
    return s_str(e, "message");
}

/* ------------------------------------------------------------------ */
/* Stream parser                                                        */
/* ------------------------------------------------------------------ */

struct wire_parser {
    wire_kind_t kind;
    sbuf_t line;    /* the line being received */
    sbuf_t data;    /* SSE: the data lines of the event being received */
    bool has_data;  /* SSE: a data line was seen (data may still be empty) */
    bool cr;        /* the last byte was a CR, so an LF right after ends nothing */
    bool failed;    /* sticky: the stream was not valid */
    bool complete;  /* the end-of-stream marker was seen */
    char event[32]; /* SSE: the event's name */
    wire_usage_t usage;
    bool usage_sent;
    bool saw_tool;
    int ntools;    /* tool calls started (Anthropic, Gemini, Ollama) */
    int last_tool; /* OpenAI: the index of the last tool call started */
    int *blocks;   /* Anthropic: content block index -> tool index, or -1 */
    size_t nblocks;
    unsigned long nonce;
    char tool_id[48];
};

wire_parser_t *wire_parser_new(wire_kind_t kind)
{
    wire_parser_t *p = xcalloc(1, sizeof *p);
    p->kind = kind;
    p->last_tool = -1;
    p->nonce = s_nonce();
    return p;
}

void wire_parser_destroy(wire_parser_t **pp)
{
    if (!pp || !*pp)
        return;
    sbuf_free(&(*pp)->line);
    sbuf_free(&(*pp)->data);
    free((*pp)->blocks);
    free(*pp);
    *pp = NULL;
}

bool wire_parser_complete(const wire_parser_t *p)
{
    return p->complete;
}

static void s_ev_text(const json_t *s, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_TEXT};
    if (json_string_length(s) == 0)
        return;
    ev.text = json_string_value(s);
    ev.len = json_string_length(s);
    fn(&ev, ud);
}

static void s_ev_tool(int index, const char *id, const char *name, const char *args,
                      size_t len, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_TOOL,
                    .index = index,
                    .tool_id = id,
                    .tool_name = name,
                    .text = args ? args : "",
                    .len = args ? len : 0};
    fn(&ev, ud);
}

static void s_ev_finish(const char *reason, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_FINISH, .finish_reason = reason};
    fn(&ev, ud);
}

/* Reports the usage once, when it is final. */
static void s_ev_usage(wire_parser_t *p, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_USAGE, .usage = p->usage};
    if (!p->usage.present || p->usage_sent)
        return;
    p->usage_sent = true;
    fn(&ev, ud);
}

/* An error object ({"message"}) or string as an ERROR event. */
static void s_ev_error(const json_t *e, wire_ev_fn fn, void *ud)
{
    const json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
    wire_ev_t ev = {.type = WIRE_EV_ERROR, .text = "upstream error", .len = 14};
    if (json_is_string(m)) {
        ev.text = json_string_value(m);
        ev.len = json_string_length(m);
    }
    fn(&ev, ud);
}

/* A whole tool call (Gemini, Ollama): one TOOL event with id, name and all
 * the arguments; a made-up id when the upstream gave none. */
static void s_ev_whole_call(wire_parser_t *p, const char *id, const char *name,
                            const json_t *args, wire_ev_fn fn, void *ud)
{
    char *text =
        json_is_string(args) ? xstrdup(json_string_value(args)) : s_dumps(args);
    int index = p->ntools++;
    if (!id) {
        s_tool_id(p->tool_id, sizeof p->tool_id, p->nonce, index);
        id = p->tool_id;
    }
    p->saw_tool = true;
    s_ev_tool(index, id, name ? name : "", text, strlen(text), fn, ud);
    free(text);
}

static int s_p_openai(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *ch = json_array_get(json_object_get(j, "choices"), 0), *tc;
    const json_t *delta = json_object_get(ch, "delta");
    size_t i;
    if (s_present(j, "error")) {
        s_ev_error(json_object_get(j, "error"), fn, ud);
        return 0;
    }
    s_ev_text(json_object_get(delta, "content"), fn, ud);
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
    {
        const json_t *f = json_object_get(tc, "function"),
                     *args = json_object_get(f, "arguments");
        const json_t *idx = json_object_get(tc, "index");
        int index = json_is_integer(idx) ? (int)json_integer_value(idx) : (int)i;
        bool first = index != p->last_tool; /* some servers repeat id and name */
        p->last_tool = index;
        s_ev_tool(index, first ? s_str(tc, "id") : NULL,
                  first ? s_str(f, "name") : NULL, json_string_value(args),
                  json_string_length(args), fn, ud);
    }
    if (s_str(ch, "finish_reason"))
        s_ev_finish(s_finish_of(WIRE_OPENAI, s_str(ch, "finish_reason"), false), fn,
                    ud);
    s_read_usage(json_object_get(j, "usage"), "prompt_tokens", "completion_tokens",
                 &p->usage);
    return 0;
}

/* The tool index of Anthropic content block k, or -1. */
static int s_block_tool(const wire_parser_t *p, const json_t *index)
{
    json_int_t k = json_integer_value(index);
    return json_is_integer(index) && k >= 0 && (size_t)k < p->nblocks ? p->blocks[k]
                                                                      : -1;
}

static int s_p_block_start(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *b = json_object_get(j, "content_block"),
                 *idx = json_object_get(j, "index");
    json_int_t k = json_integer_value(idx);
    if (!json_is_integer(idx) || k < 0 || k >= WIRE_MAX_BLOCKS)
        return -1;
    if ((size_t)k >= p->nblocks) {
        p->blocks = xrealloc(p->blocks, (size_t)(k + 1) * sizeof *p->blocks);
        while (p->nblocks <= (size_t)k)
            p->blocks[p->nblocks++] = -1;
    }
    if (!s_is(s_str(b, "type"), "tool_use")) {
        p->blocks[k] = -1;
        if (s_is(s_str(b, "type"), "text"))
            s_ev_text(json_object_get(b, "text"), fn, ud);
        return 0;
    }
    p->blocks[k] = p->ntools++;
    p->saw_tool = true;
    s_ev_tool(p->blocks[k], s_str(b, "id"), s_str(b, "name"), "", 0, fn, ud);
    return 0;
}

static void s_p_block_delta(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *d = json_object_get(j, "delta");
    const json_t *pj = json_object_get(d, "partial_json");
    const char *type = s_str(d, "type");
    int tool = s_block_tool(p, json_object_get(j, "index"));
    if (s_is(type, "text_delta"))
        s_ev_text(json_object_get(d, "text"), fn, ud);
    else if (s_is(type, "input_json_delta") && tool >= 0 && json_string_length(pj) > 0)
        s_ev_tool(tool, NULL, NULL, json_string_value(pj), json_string_length(pj), fn,
                  ud);
}

static void s_p_message_delta(wire_parser_t *p, const json_t *j, wire_ev_fn fn,
                              void *ud)
{
    const char *stop = s_str(json_object_get(j, "delta"), "stop_reason");
    if (stop)
        s_ev_finish(s_finish_of(WIRE_ANTHROPIC, stop, false), fn, ud);
    wire_usage_t u = {0};
    /* Output tokens are cumulative here; input tokens, when repeated, too. */
    s_anthropic_usage(json_object_get(j, "usage"), &u);
    if (json_is_integer(json_object_get(json_object_get(j, "usage"), "output_tokens")))
        p->usage.output_tokens = u.output_tokens;
    if (u.input_tokens > 0)
        p->usage.input_tokens = u.input_tokens;
    p->usage.present = p->usage.present || u.present;
    s_ev_usage(p, fn, ud);
}

static int s_p_anthropic(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const char *type = s_str(j, "type") ? s_str(j, "type") : p->event;
    if (s_is(type, "error") || s_is(p->event, "error"))
        s_ev_error(json_object_get(j, "error"), fn, ud);
    else if (s_is(type, "message_start"))
        s_anthropic_usage(json_object_get(json_object_get(j, "message"), "usage"),
                          &p->usage);
    else if (s_is(type, "content_block_start"))
        return s_p_block_start(p, j, fn, ud);
    else if (s_is(type, "content_block_delta"))
        s_p_block_delta(p, j, fn, ud);
    else if (s_is(type, "message_delta"))
        s_p_message_delta(p, j, fn, ud);
    else if (s_is(type, "message_stop"))
        p->complete = true;
    return 0;
}

static int s_p_gemini(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *c = json_array_get(json_object_get(j, "candidates"), 0), *part;
    const char *finish = s_str(c, "finishReason");
    const char *blocked = s_str(json_object_get(j, "promptFeedback"), "blockReason");
    size_t i;
    if (s_present(j, "error")) {
        s_ev_error(json_object_get(j, "error"), fn, ud);
        return 0;
    }
    if (json_is_object(json_object_get(j, "usageMetadata"))) {
        p->usage = (wire_usage_t){0};
        s_ge_usage(json_object_get(j, "usageMetadata"), &p->usage);
    }
    json_array_foreach(json_object_get(json_object_get(c, "content"), "parts"), i, part)
    {
        const json_t *call = json_object_get(part, "functionCall");
        if (json_is_true(json_object_get(part, "thought")))
            continue;
        s_ev_text(json_object_get(part, "text"), fn, ud);
        if (json_is_object(call))
            s_ev_whole_call(p, s_str(call, "id"), s_str(call, "name"),
                            json_object_get(call, "args"), fn, ud);
    }
    if ((finish && !s_is(finish, "FINISH_REASON_UNSPECIFIED")) || (!c && blocked)) {
        s_ev_finish(c ? s_finish_of(WIRE_GEMINI, finish, p->saw_tool)
                      : "content_filter",
                    fn, ud);
        s_ev_usage(p, fn, ud);
        p->complete = true;
    }
    return 0;
}

static int s_p_ollama(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *msg = json_object_get(j, "message"), *tc;
    size_t i;
    if (s_present(j, "error")) {
        s_ev_error(json_object_get(j, "error"), fn, ud);
        return 0;
    }
    s_ev_text(json_object_get(msg, "content"), fn, ud);
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const json_t *f = json_object_get(tc, "function");
        s_ev_whole_call(p, s_str(tc, "id"), s_str(f, "name"),
                        json_object_get(f, "arguments"), fn, ud);
    }
    if (json_is_true(json_object_get(j, "done"))) {
        s_read_usage(j, "prompt_eval_count", "eval_count", &p->usage);
        s_ev_finish(s_finish_of(WIRE_OLLAMA, s_str(j, "done_reason"), p->saw_tool), fn,
                    ud);
        s_ev_usage(p, fn, ud);
        p->complete = true;
    }
    return 0;
}

/* One complete payload: an SSE event's data or an NDJSON line. */
static int s_payload(wire_parser_t *p, const char *s, size_t n, wire_ev_fn fn, void *ud)
{
    int rc = -1;
    if (p->kind == WIRE_OPENAI && n == 6 && memcmp(s, "[DONE]", 6) == 0) {
        p->complete = true;
        s_ev_usage(p, fn, ud);
        return 0;
    }
    json_t *j = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
    const json_t *o =
        p->kind == WIRE_GEMINI && json_is_array(j) ? json_array_get(j, 0) : j;
    if (json_is_object(o)) {
        switch (p->kind) {
        case WIRE_ANTHROPIC: rc = s_p_anthropic(p, o, fn, ud); break;
        case WIRE_GEMINI: rc = s_p_gemini(p, o, fn, ud); break;
        case WIRE_OLLAMA: rc = s_p_ollama(p, o, fn, ud); break;
        default: rc = s_p_openai(p, o, fn, ud); break;
        }
    }
    json_decref(j);
    return rc;
}

static int s_sse_dispatch(wire_parser_t *p, wire_ev_fn fn, void *ud)
{
    int rc = 0;
    if (p->has_data) {
        p->data.len--; /* the '\n' after the last data line */
        p->data.data[p->data.len] = '\0';
        if (p->data.len > 0)
            rc = s_payload(p, p->data.data, p->data.len, fn, ud);
    }
    sbuf_reset(&p->data);
    p->has_data = false;
    p->event[0] = '\0';
    return rc;
}

/* One SSE line (without its end): a field, a comment, or the blank line
 * that dispatches the event. */
static int s_sse_line(wire_parser_t *p, const char *s, size_t n, wire_ev_fn fn,
                      void *ud)
{
    if (n == 0)
        return s_sse_dispatch(p, fn, ud);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    if (v < s + n && *v == ' ')
        v++;
    size_t vlen = (size_t)(s + n - v);
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (p->data.len + vlen + 1 > WIRE_MAX_LINE)
            return -1;
        sbuf_append(&p->data, v, vlen);
        sbuf_append(&p->data, "\n", 1);
        p->has_data = true;
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        snprintf(p->event, sizeof p->event, "%.*s", (int)vlen, v);
    }
    return 0;
}

static int s_line(wire_parser_t *p, wire_ev_fn fn, void *ud)
{
    const char *s = p->line.data ? p->line.data : "";
    size_t n = p->line.len;
    if (p->kind != WIRE_OLLAMA)
        return s_sse_line(p, s, n, fn, ud);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n > 0 ? s_payload(p, s, n, fn, ud) : 0;
}

int wire_parser_feed(wire_parser_t *p, const char *buf, size_t len, wire_ev_fn fn,
                     void *ud)
{
    size_t i = 0;
    while (!p->failed && i < len) {
        if (p->cr && buf[i] == '\n') {
            p->cr = false;
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        p->cr = false;
        if (p->line.len + (j - i) > WIRE_MAX_LINE) {
            p->failed = true;
            break;
        }
        sbuf_append(&p->line, buf + i, j - i);
        if (j == len)
            break;
        p->cr = buf[j] == '\r';
        p->failed = s_line(p, fn, ud) < 0;
        sbuf_reset(&p->line);
        i = j + 1;
    }
    return p->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Stream emitter                                                       */
/* ------------------------------------------------------------------ */

struct wire_emitter {
    wire_kind_t kind;
    char *id, *model;
    bool include_usage;
    long input_estimate;
    json_int_t created;
    bool started, ended;
    char *finish;       /* the canonical finish reason, once known */
    wire_usage_t usage; /* from a USAGE event */
    int block;          /* Anthropic: index of the open content block, or -1 */
    int nblocks;        /* Anthropic: content blocks opened so far */
    int block_tool;     /* Anthropic: tool index of the open block, -1: text */
    int next_tool;      /* Anthropic: tool indexes below this were opened */
    unsigned long nonce;
};

wire_emitter_t *wire_emitter_new(wire_kind_t out_kind, const char *id,
                                 const char *model, bool include_usage,
                                 long input_estimate)
{
    if (out_kind != WIRE_OPENAI && out_kind != WIRE_ANTHROPIC)
        return NULL;
    wire_emitter_t *e = xcalloc(1, sizeof *e);
    e->kind = out_kind;
    e->id = xstrdup(id ? id : "");
    e->model = xstrdup(model ? model : "");
    e->include_usage = include_usage;
    e->input_estimate = input_estimate;
    e->created = (json_int_t)time(NULL);
    e->block = e->block_tool = -1;
    e->nonce = s_nonce();
    return e;
}

void wire_emitter_destroy(wire_emitter_t **ep)
{
    if (!ep || !*ep)
        return;
    free((*ep)->id);
    free((*ep)->model);
    free((*ep)->finish);
    free(*ep);
    *ep = NULL;
}

bool wire_emitter_started(const wire_emitter_t *e)
{
    return e->started;
}

/* A JSON string of text/len; "" when it is not valid UTF-8. */
static json_t *s_jstrn(const char *text, size_t len)
{
    json_t *s = text ? json_stringn(text, len) : NULL;
    return s ? s : json_string("");
}

/* Writes an SSE event (data stolen) to out: "event: NAME\n" when event is
 * given, then "data: JSON\n\n". */
static void s_write(sbuf_t *out, const char *event, json_t *data)
{
    char *s = data ? json_dumps(data, JSON_COMPACT) : NULL;
    if (s) {
        if (event)
            sbuf_printf(out, "event: %s\n", event);
        sbuf_puts(out, "data: ");
        sbuf_puts(out, s);
        sbuf_puts(out, "\n\n");
    }
    free(s);
    json_decref(data);
}

/* ---- OpenAI chunks ---- */

static void s_oa_chunk(const wire_emitter_t *e, json_t *delta, const char *finish,
                       sbuf_t *out)
{
    json_t *c =
        json_pack("{s:s,s:s,s:I,s:s}", "id", e->id, "object", "chat.completion.chunk",
                  "created", e->created, "model", e->model);
    json_object_set_new(c, "choices",
                        json_pack("[{s:i,s:o,s:o}]", "index", 0, "delta", delta,
                                  "finish_reason",
                                  finish ? json_string(finish) : json_null()));
    s_write(out, NULL, c);
}

static void s_oa_start(wire_emitter_t *e, sbuf_t *out)
{
    if (e->started)
        return;
    e->started = true;
    s_oa_chunk(e, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL,
               out);
}

static json_t *s_oa_tool_delta(const wire_emitter_t *e, const wire_ev_t *ev)
{
    json_t *tc = json_pack("{s:i}", "index", ev->index), *fn = json_object();
    char id[48];
    if (ev->tool_id || ev->tool_name) {
        s_tool_id(id, sizeof id, e->nonce, ev->index);
        json_object_set_new(tc, "id", json_string(ev->tool_id ? ev->tool_id : id));
        json_object_set_new(tc, "type", json_string("function"));
        json_object_set_new(fn, "name",
                            json_string(ev->tool_name ? ev->tool_name : ""));
    }
    json_object_set_new(fn, "arguments", s_jstrn(ev->text, ev->len));
    json_object_set_new(tc, "function", fn);
    return json_pack("{s:[o]}", "tool_calls", tc);
}

static void s_oa_end(wire_emitter_t *e, const wire_usage_t *u, sbuf_t *out)
{
    s_oa_start(e, out);
    if (!e->finish)
        s_oa_chunk(e, json_object(), "stop", out);
    if (e->include_usage) {
        json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", e->id, "object",
                              "chat.completion.chunk", "created", e->created, "model",
                              e->model, "choices", "usage", s_usage_json(u));
        s_write(out, NULL, c);
    }
    sbuf_puts(out, "data: [DONE]\n\n");
}

/* ---- Anthropic events ---- */

static void s_an_start(wire_emitter_t *e, sbuf_t *out)
{
    if (e->started)
        return;
    e->started = true;
    json_t *msg =
        json_pack("{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:I,s:i}}", "id", e->id, "type",
                  "message", "role", "assistant", "model", e->model, "content",
                  "stop_reason", "stop_sequence", "usage", "input_tokens",
                  (json_int_t)e->input_estimate, "output_tokens", 0);
    s_write(out, "message_start",
            json_pack("{s:s,s:o}", "type", "message_start", "message", msg));
}

static void s_an_close(wire_emitter_t *e, sbuf_t *out)
{
    if (e->block < 0)
        return;
    s_write(out, "content_block_stop",
            json_pack("{s:s,s:i}", "type", "content_block_stop", "index", e->block));
    e->block = e->block_tool = -1;
}

/* Closes the open block and opens cb (stolen) for tool index tool (-1: text). */
static void s_an_open(wire_emitter_t *e, json_t *cb, int tool, sbuf_t *out)
{
    s_an_close(e, out);
    e->block = e->nblocks++;
    e->block_tool = tool;
    s_write(out, "content_block_start",
            json_pack("{s:s,s:i,s:o}", "type", "content_block_start", "index", e->block,
                      "content_block", cb));
}

static void s_an_delta(const wire_emitter_t *e, json_t *delta, sbuf_t *out)
{
    s_write(out, "content_block_delta",
            json_pack("{s:s,s:i,s:o}", "type", "content_block_delta", "index", e->block,
                      "delta", delta));
}

static void s_an_text_ev(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out)
{
    if (ev->len == 0)
        return;
    if (e->block < 0 || e->block_tool >= 0)
        s_an_open(e, json_pack("{s:s,s:s}", "type", "text", "text", ""), -1, out);
    s_an_delta(e,
               json_pack("{s:s,s:o}", "type", "text_delta", "text",
                         s_jstrn(ev->text, ev->len)),
               out);
}

/* A tool delta opens a tool_use block when it starts a new call. Deltas of
 * a call whose block was already closed (interleaved parallel calls) cannot
 * be expressed in Anthropic's stream and are dropped. */
static void s_an_tool_ev(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out)
{
    char id[48];
    if (e->block < 0 || e->block_tool != ev->index) {
        if (ev->index < e->next_tool)
            return;
        s_tool_id(id, sizeof id, e->nonce, ev->index);
        s_an_open(e,
                  json_pack("{s:s,s:s,s:s,s:{}}", "type", "tool_use", "id",
                            ev->tool_id ? ev->tool_id : id, "name",
                            ev->tool_name ? ev->tool_name : "", "input"),
                  ev->index, out);
        e->next_tool = ev->index + 1;
    }
    if (ev->len > 0)
        s_an_delta(e,
                   json_pack("{s:s,s:o}", "type", "input_json_delta", "partial_json",
                             s_jstrn(ev->text, ev->len)),
                   out);
}

static void s_an_end(wire_emitter_t *e, const wire_usage_t *u, sbuf_t *out)
{
    s_an_start(e, out);
    s_an_close(e, out);
    s_write(out, "message_delta",
            json_pack("{s:s,s:{s:s,s:n},s:{s:I,s:I}}", "type", "message_delta", "delta",
                      "stop_reason", s_anthropic_stop(e->finish), "stop_sequence",
                      "usage", "output_tokens", (json_int_t)u->output_tokens,
                      "input_tokens", (json_int_t)u->input_tokens));
    s_write(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

/* ---- both ---- */

void wire_emit(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out)
{
    if (e->ended)
        return;
    if (ev->type == WIRE_EV_USAGE) {
        e->usage = ev->usage;
    } else if (ev->type == WIRE_EV_ERROR) {
        char *msg = xstrndup(ev->text ? ev->text : "", ev->text ? ev->len : 0);
        wire_emit_error(e, msg, out);
        free(msg);
    } else if (ev->type == WIRE_EV_FINISH) {
        free(e->finish);
        e->finish = xstrdup(ev->finish_reason ? ev->finish_reason : "stop");
        if (e->kind == WIRE_OPENAI) {
            s_oa_start(e, out);
            s_oa_chunk(e, json_object(), e->finish, out);
        }
    } else if (e->kind == WIRE_OPENAI) {
        s_oa_start(e, out);
        s_oa_chunk(e,
                   ev->type == WIRE_EV_TEXT
                       ? json_pack("{s:o}", "content", s_jstrn(ev->text, ev->len))
                       : s_oa_tool_delta(e, ev),
                   NULL, out);
    } else {
        s_an_start(e, out);
        if (ev->type == WIRE_EV_TEXT)
            s_an_text_ev(e, ev, out);
        else
            s_an_tool_ev(e, ev, out);
    }
}

void wire_emit_end(wire_emitter_t *e, const wire_usage_t *usage, sbuf_t *out)
{
    wire_usage_t u = {.input_tokens = e->input_estimate};
    if (e->ended)
        return;
    /* A caller's estimate (counts without present) is still the best known. */
    if (usage && (usage->present || usage->input_tokens || usage->output_tokens))
        u = *usage;
    else if (e->usage.present)
        u = e->usage;
    if (e->kind == WIRE_OPENAI)
        s_oa_end(e, &u, out);
    else
        s_an_end(e, &u, out);
    e->ended = true;
}

void wire_emit_error(wire_emitter_t *e, const char *message, sbuf_t *out)
{
    json_t *m;
    if (e->ended)
        return;
    m = message ? json_string(message) : NULL;
    if (!m)
        m = json_string("upstream error");
    e->started = e->ended = true;
    if (e->kind == WIRE_ANTHROPIC) {
        s_write(out, "error",
                json_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type",
                          "api_error", "message", m));
        return;
    }
    s_write(
        out, NULL,
        json_pack("{s:{s:o,s:s}}", "error", "message", m, "type", "upstream_error"));
    sbuf_puts(out, "data: [DONE]\n\n");
}
