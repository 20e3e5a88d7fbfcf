/* wire_json.c - the small JSON helpers every direction of the wire
 * translation uses (see wire_internal.h): typed reads, copies, text of a
 * content, data URLs, tool calls and messages in the canonical form,
 * made-up tool-call ids, and what every upstream renderer reads from the
 * canonical request (max tokens, stop sequences, the system prompt). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wire_internal.h"
#include "alloc.h"
#include "now.h"

int wire__fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vp_verrorf(err, len, VP_EINVALID, fmt, ap);
    va_end(ap);
    return VP_EINVALID;
}

/* The string at o[key], or NULL when absent or not a string. */
const char *wire__str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool wire__is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* Whether s is one of the n strings of set. */
bool wire__in(const char *s, const char *const *set, size_t n)
{
    while (s && n-- > 0)
        if (strcmp(s, set[n]) == 0)
            return true;
    return false;
}

/* Whether o[key] is there and not null (OpenAI treats null as absent). */
bool wire__present(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return v && !json_is_null(v);
}

/* Copies src[skey] to dst[dkey] when present and not null. */
void wire__copy(json_t *dst, const char *dkey, const json_t *src, const char *skey)
{
    if (wire__present(src, skey))
        json_object_set_new(dst, dkey, json_deep_copy(json_object_get(src, skey)));
}

json_t *wire__sbuf_json(const sbuf_t *b)
{
    return json_stringn(b->data ? b->data : "", b->len);
}

void wire__append_str(sbuf_t *b, const json_t *s)
{
    if (json_is_string(s))
        sbuf_append(b, json_string_value(s), json_string_length(s));
}

/* Compact JSON text of v; the caller frees it. "{}" when v is NULL. */
char *wire__dumps(const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return s ? s : xstrdup("{}");
}

/* Tool-call arguments (a JSON text) as an object; {} when they are not one. */
json_t *wire__args_object(const char *args)
{
    json_t *v = args ? json_loads(args, 0, NULL) : NULL;
    if (json_is_object(v))
        return v;
    json_decref(v);
    return json_object();
}

/* The text of an OpenAI content: a string, or an array's text parts joined
 * with sep. */
void wire__content_text(const json_t *c, const char *sep, sbuf_t *out)
{
    size_t i;
    const json_t *p;
    bool first = true;
    if (json_is_string(c)) {
        wire__append_str(out, c);
        return;
    }
    json_array_foreach(c, i, p)
    {
        const json_t *t = json_object_get(p, "text");
        if (!wire__is(wire__str(p, "type"), "text") || !json_is_string(t))
            continue;
        if (!first)
            sbuf_puts(out, sep);
        wire__append_str(out, t);
        first = false;
    }
}

/* Splits "data:MIME;base64,DATA"; false for any other URL. *mime is the
 * caller's to free. */
bool wire__data_url(const char *url, char **mime, const char **data)
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
void wire__tool_id(char *buf, size_t len, unsigned long nonce, int n)
{
    snprintf(buf, len, "call_%012lx_%d", nonce, n);
}

unsigned long wire__nonce(void)
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
json_t *wire__tool_call(const char *id, const char *name, const char *args)
{
    return json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id ? id : "", "type", "function",
                     "function", "name", name ? name : "", "arguments",
                     args ? args : "{}");
}

/* A canonical assistant message: the text (null when empty and there are
 * tool calls) and calls (stolen) when there are any. */
json_t *wire__message(const sbuf_t *text, json_t *calls)
{
    json_t *m = json_pack("{s:s}", "role", "assistant");
    bool calling = json_array_size(calls) > 0;
    json_object_set_new(m, "content",
                        text->len || !calling ? wire__sbuf_json(text) : json_null());
    if (calling)
        json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    return m;
}

/* The name of the tool call `id` made by an assistant message before
 * msgs[upto] (tool results in Gemini and Ollama are matched by name). */
const char *wire__tool_name(const json_t *msgs, size_t upto, const char *id)
{
    while (id && upto-- > 0) {
        size_t i;
        const json_t *tc;
        json_array_foreach(json_object_get(json_array_get(msgs, upto), "tool_calls"), i,
                           tc)
        {
            if (wire__is(wire__str(tc, "id"), id))
                return wire__str(json_object_get(tc, "function"), "name");
        }
    }
    return NULL;
}

/* Appends items (stolen) as a message {role, key: items} to msgs, merged
 * into the last message when that has the same role; nothing when empty. */
void wire__push(json_t *msgs, const char *role, const char *key, json_t *items)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    if (json_array_size(items) == 0) {
        json_decref(items);
    } else if (last && wire__is(wire__str(last, "role"), role)) {
        json_array_extend(json_object_get(last, key), items);
        json_decref(items);
    } else {
        json_t *m = json_pack("{s:s}", "role", role);
        json_object_set_new(m, key, items);
        json_array_append_new(msgs, m);
    }
}

/* ---- read from the canonical request by every renderer ---- */

bool wire_max_tokens(const json_t *canon, long *out)
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
json_t *wire__stop_array(const json_t *canon)
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
void wire__system_text(const json_t *msgs, sbuf_t *out)
{
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = wire__str(m, "role");
        if (!wire__is(role, "system") && !wire__is(role, "developer"))
            continue;
        if (out->len)
            sbuf_puts(out, "\n\n");
        wire__content_text(json_object_get(m, "content"), "\n", out);
    }
}
