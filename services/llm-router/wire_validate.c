/* wire_validate.c - OpenAI Chat Completions requests as callers send them
 * (the canonical form): validation naming the offending field, and the
 * bound of a prompt's tokens that budget reservations use. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "wire_internal.h"
#include "base.h"

#define WIRE_MSG_OVERHEAD 8    /* tokens per message in the prompt bound */
#define WIRE_IMAGE_TOKENS 2000 /* tokens per image in the prompt bound */
/* With tools, providers add a prompt of their own (Anthropic's tool-use
 * system prompt is 300-550 tokens): the bound counts it, so that a call
 * with tools is not taken for an anomaly (charge.h). */
#define WIRE_TOOLS_OVERHEAD 600

int wire__check_num(const json_t *o, const char *key, double lo, double hi, char *err,
                    size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v) && json_number_value(v) >= lo && json_number_value(v) <= hi)
        return 0;
    return wire__fail(err, len, "%s: must be a number between %g and %g", key, lo, hi);
}

int wire__check_int(const json_t *o, const char *key, long lo, char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= lo))
        return 0;
    return wire__fail(err, len, "%s: must be an integer >= %ld", key, lo);
}

int wire__check_bool(const json_t *o, const char *key, char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || json_is_boolean(v))
        return 0;
    return wire__fail(err, len, "%s: must be a boolean", key);
}

bool wire__all_strings(const json_t *a)
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
        const char *type = wire__str(p, "type");
        if (!type)
            return wire__fail(
                err, len, "messages[%zu].content[%zu].type: must be a string", mi, i);
        if (strcmp(type, "text") == 0 && !wire__str(p, "text"))
            return wire__fail(
                err, len, "messages[%zu].content[%zu].text: must be a string", mi, i);
        if (strcmp(type, "image_url") == 0 &&
            !wire__str(json_object_get(p, "image_url"), "url"))
            return wire__fail(
                err, len, "messages[%zu].content[%zu].image_url.url: must be a string",
                mi, i);
    }
    return 0;
}

static int s_check_tool_calls(const json_t *tcs, size_t mi, char *err, size_t len)
{
    size_t i;
    const json_t *tc;
    if (!json_is_array(tcs))
        return wire__fail(err, len, "messages[%zu].tool_calls: must be an array", mi);
    json_array_foreach(tcs, i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        if (!wire__str(tc, "id"))
            return wire__fail(
                err, len, "messages[%zu].tool_calls[%zu].id: must be a string", mi, i);
        if (!wire__str(fn, "name"))
            return wire__fail(
                err, len,
                "messages[%zu].tool_calls[%zu].function.name: must be a string", mi, i);
        if (!wire__str(fn, "arguments"))
            return wire__fail(
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
    const char *role = wire__str(m, "role");
    if (!json_is_object(m))
        return wire__fail(err, len, "messages[%zu]: must be an object", i);
    if (!wire__in(role, roles, ARRAY_LEN(roles)))
        return wire__fail(err, len, "messages[%zu].role: %s", i,
                          "must be one of system, developer, user, assistant, tool");
    const json_t *c = json_object_get(m, "content");
    bool assistant = strcmp(role, "assistant") == 0;
    if (json_is_array(c) && s_check_parts(c, i, err, len) < 0)
        return VP_EINVALID;
    /* An assistant message that only calls tools may have no content. */
    if (!json_is_array(c) && !json_is_string(c) &&
        !(assistant && (!c || json_is_null(c))))
        return wire__fail(err, len, "messages[%zu].content: %s", i,
                          "must be a string or an array of content parts");
    if (assistant && wire__present(m, "tool_calls") &&
        s_check_tool_calls(json_object_get(m, "tool_calls"), i, err, len) < 0)
        return VP_EINVALID;
    if (strcmp(role, "tool") == 0 && !wire__str(m, "tool_call_id"))
        return wire__fail(err, len, "messages[%zu].tool_call_id: must be a string", i);
    return 0;
}

static int s_check_messages(const json_t *req, char *err, size_t len)
{
    const json_t *ms = json_object_get(req, "messages");
    size_t i;
    const json_t *m;
    if (!json_is_array(ms) || json_array_size(ms) == 0)
        return wire__fail(err, len, "messages: must be a non-empty array");
    json_array_foreach(ms, i, m)
    {
        if (s_check_message(m, i, err, len) < 0)
            return VP_EINVALID;
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
        return wire__fail(err, len, "tools: must be an array");
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *params = json_object_get(fn, "parameters");
        if (!wire__is(wire__str(t, "type"), "function"))
            return wire__fail(err, len, "tools[%zu].type: must be \"function\"", i);
        if (!wire__str(fn, "name"))
            return wire__fail(err, len, "tools[%zu].function.name: must be a string",
                              i);
        if (params && !json_is_object(params))
            return wire__fail(err, len,
                              "tools[%zu].function.parameters: must be an object", i);
    }
    return 0;
}

static int s_check_tool_choice(const json_t *req, char *err, size_t len)
{
    const json_t *tc = json_object_get(req, "tool_choice");
    const char *s = json_string_value(tc);
    if (!tc || json_is_null(tc) || wire__is(s, "none") || wire__is(s, "auto") ||
        wire__is(s, "required"))
        return 0;
    if (json_is_object(tc) && wire__str(json_object_get(tc, "function"), "name"))
        return 0;
    return wire__fail(err, len,
                      "tool_choice: must be \"none\", \"auto\", \"required\" or "
                      "{\"type\":\"function\",\"function\":{\"name\":...}}");
}

static int s_check_openai_params(const json_t *req, char *err, size_t len)
{
    const json_t *n = json_object_get(req, "n");
    const json_t *so = json_object_get(req, "stream_options");
    const json_t *stop = json_object_get(req, "stop");
    if (wire__check_num(req, "temperature", 0, 2, err, len) < 0 ||
        wire__check_num(req, "top_p", 0, 1, err, len) < 0 ||
        wire__check_num(req, "presence_penalty", -2, 2, err, len) < 0 ||
        wire__check_num(req, "frequency_penalty", -2, 2, err, len) < 0 ||
        wire__check_int(req, "max_tokens", 1, err, len) < 0 ||
        wire__check_int(req, "max_completion_tokens", 1, err, len) < 0 ||
        wire__check_bool(req, "stream", err, len) < 0)
        return VP_EINVALID;
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return wire__fail(err, len, "n: only 1 is supported");
    if (stop && !json_is_null(stop) && !json_is_string(stop) &&
        !wire__all_strings(stop))
        return wire__fail(err, len, "stop: must be a string or an array of strings");
    if (so && !json_is_null(so) &&
        !(json_is_object(so) && wire__check_bool(so, "include_usage", NULL, 0) == 0))
        return wire__fail(
            err, len, "stream_options: must be an object with a boolean include_usage");
    return 0;
}

int wire_openai_validate(const json_t *req, char *err, size_t errlen)
{
    if (!json_is_object(req))
        return wire__fail(err, errlen, "body: must be a JSON object");
    if (wire__present(req, "model") && !wire__str(req, "model"))
        return wire__fail(err, errlen, "model: must be a string");
    if (s_check_messages(req, err, errlen) < 0 ||
        s_check_openai_params(req, err, errlen) < 0 ||
        s_check_tools(req, err, errlen) < 0 ||
        s_check_tool_choice(req, err, errlen) < 0)
        return VP_EINVALID;
    return 0;
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
        n += wire__is(wire__str(p, "type"), "image_url") ? WIRE_IMAGE_TOKENS : 0;
    }
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        n += (long)json_string_length(json_object_get(fn, "name"));
        n += (long)json_string_length(json_object_get(fn, "arguments"));
    }
    return n;
}

static bool s_listed(const char *k, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(k, list[i]) == 0)
            return true;
    return false;
}

/* Bytes of o's members as forwarded, but for its keys in skip and, with
 * structured, its scalars (a model name, max_tokens: no prompt). */
static long s_other_bytes(const json_t *o, const char *const *skip, bool structured)
{
    const char *k;
    json_t *v;
    long n = 0;
    json_object_foreach((json_t *)o, k, v)
    {
        bool nested = json_is_object(v) || json_is_array(v);
        if (s_listed(k, skip) || (structured && !nested))
            continue;
        n += (long)strlen(k) + 4;
        if (json_is_string(v)) {
            n += (long)json_string_length(v);
        } else if (nested) {
            char *d = wire__dumps(v);
            n += (long)strlen(d);
            free(d);
        }
    }
    return n;
}

long wire_prompt_token_bound(const json_t *canon)
{
    static const char *const msg_counted[] = {"role", "content", "tool_calls", NULL};
    static const char *const top_counted[] = {"messages", "tools", "stream_options", NULL};
    const json_t *m, *tools = json_object_get(canon, "tools");
    size_t i;
    /* Whatever else is forwarded (a message's name, functions, a response
     * format's schema...) may be billed as input too: a token per byte. */
    long n = s_other_bytes(canon, top_counted, true);
    json_array_foreach(json_object_get(canon, "messages"), i, m)
    {
        n += WIRE_MSG_OVERHEAD + s_message_bytes(m);
        if (json_object_size(m) > 2)
            n += s_other_bytes(m, msg_counted, false);
    }
    if (tools) {
        char *s = wire__dumps(tools);
        n += WIRE_TOOLS_OVERHEAD + (long)strlen(s);
        free(s);
    }
    return n;
}
