/* wire_from_anthropic.c - an Anthropic Messages request, checked and turned
 * into a new canonical (OpenAI) request: system prompt, text, image,
 * tool_use and tool_result blocks, tools, tool_choice and parameters. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "wire_internal.h"
#include "alloc.h"

/* Appends the text blocks of an Anthropic block array joined with sep;
 * other block types are skipped. VP_EINVALID when an element is not a
 * block. */
static int s_join_text_blocks(const json_t *blocks, const char *sep, sbuf_t *out)
{
    size_t i;
    const json_t *b;
    bool first = true;
    json_array_foreach(blocks, i, b)
    {
        const char *type = wire__str(b, "type");
        if (!type || (strcmp(type, "text") == 0 && !wire__str(b, "text")))
            return VP_EINVALID;
        if (strcmp(type, "text") != 0)
            continue;
        if (!first)
            sbuf_puts(out, sep);
        wire__append_str(out, json_object_get(b, "text"));
        first = false;
    }
    return 0;
}

static int s_a_params(const json_t *req, json_t *canon, char *err, size_t len)
{
    const json_t *stops = json_object_get(req, "stop_sequences");
    const char *user = wire__str(json_object_get(req, "metadata"), "user_id");
    if (wire__present(req, "model") && !wire__str(req, "model"))
        return wire__fail(err, len, "model: must be a string");
    if (!wire__present(req, "max_tokens"))
        return wire__fail(err, len, "max_tokens: required");
    if (wire__check_int(req, "max_tokens", 1, err, len) < 0 ||
        wire__check_num(req, "temperature", 0, 1, err, len) < 0 ||
        wire__check_num(req, "top_p", 0, 1, err, len) < 0 ||
        wire__check_int(req, "top_k", 0, err, len) < 0 ||
        wire__check_bool(req, "stream", err, len) < 0)
        return VP_EINVALID;
    if (stops && !json_is_null(stops) && !wire__all_strings(stops))
        return wire__fail(err, len, "stop_sequences: must be an array of strings");
    const json_t *meta = json_object_get(req, "metadata");
    if (meta && !json_is_null(meta) && !json_is_object(meta))
        return wire__fail(err, len, "metadata: must be an object");
    const json_t *uid = json_object_get(meta, "user_id");
    if (uid && !json_is_null(uid) && !json_is_string(uid))
        return wire__fail(err, len, "metadata.user_id: must be a string");
    wire__copy(canon, "model", req, "model");
    wire__copy(canon, "max_tokens", req, "max_tokens");
    wire__copy(canon, "temperature", req, "temperature");
    wire__copy(canon, "top_p", req, "top_p");
    wire__copy(canon, "stop", req, "stop_sequences");
    wire__copy(canon, "stream", req, "stream");
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
    json_array_foreach(sys, k, blk) text_only &=
        wire__is(wire__str(blk, "type"), "text");
    if (json_is_string(sys))
        wire__append_str(&b, sys);
    else if (!json_is_array(sys) || !text_only ||
             s_join_text_blocks(sys, "\n", &b) < 0) {
        sbuf_free(&b);
        return wire__fail(err, len,
                          "system: must be a string or an array of text blocks");
    }
    json_array_append_new(
        msgs, json_pack("{s:s,s:o}", "role", "system", "content", wire__sbuf_json(&b)));
    sbuf_free(&b);
    return 0;
}

static int s_a_image(const json_t *b, size_t mi, size_t j, json_t *parts, char *err,
                     size_t len)
{
    const json_t *src = json_object_get(b, "source");
    const char *type = wire__str(src, "type"), *mt = wire__str(src, "media_type");
    const char *data = wire__str(src, "data"), *u = wire__str(src, "url");
    char *url;
    if (wire__is(type, "base64") && mt && data)
        url = xasprintf("data:%s;base64,%s", mt, data);
    else if (wire__is(type, "url") && u)
        url = xstrdup(u);
    else
        return wire__fail(err, len, "messages[%zu].content[%zu].source: %s", mi, j,
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
            return wire__fail(
                err, len, "messages[%zu].content[%zu].text: must be a string", mi, j);
        json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", t));
        return 0;
    }
    if (strcmp(type, "image") == 0)
        return s_a_image(b, mi, j, parts, err, len);
    if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0)
        return 0;
    return wire__fail(err, len,
                      "messages[%zu].content[%zu].type: unsupported block type \"%s\"",
                      mi, j, type);
}

static int s_a_tool_result(const json_t *b, size_t mi, size_t j, json_t *msgs,
                           char *err, size_t len)
{
    const char *id = wire__str(b, "tool_use_id");
    const json_t *c = json_object_get(b, "content");
    sbuf_t t = {0};
    if (!id)
        return wire__fail(err, len,
                          "messages[%zu].content[%zu].tool_use_id: must be a string",
                          mi, j);
    if (json_is_string(c))
        wire__append_str(&t, c);
    else if (c && !json_is_null(c) &&
             (!json_is_array(c) || s_join_text_blocks(c, "\n", &t) < 0)) {
        sbuf_free(&t);
        return wire__fail(err, len, "messages[%zu].content[%zu].content: %s", mi, j,
                          "must be a string or an array of blocks");
    }
    json_array_append_new(msgs,
                          json_pack("{s:s,s:s,s:o}", "role", "tool", "tool_call_id", id,
                                    "content", wire__sbuf_json(&t)));
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
        const char *type = wire__str(b, "type");
        int rc;
        if (!type)
            rc = wire__fail(err, len,
                            "messages[%zu].content[%zu].type: must be a string", mi, j);
        else if (strcmp(type, "tool_result") == 0)
            rc = s_a_tool_result(b, mi, j, msgs, err, len);
        else
            rc = s_a_part(b, type, mi, j, parts, err, len);
        if (rc < 0) {
            json_decref(parts);
            return VP_EINVALID;
        }
    }
    if (json_array_size(parts) == 1 &&
        wire__is(wire__str(json_array_get(parts, 0), "type"), "text"))
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
    const char *id = wire__str(b, "id"), *name = wire__str(b, "name");
    if (!id || !name)
        return wire__fail(err, len, "messages[%zu].content[%zu]: %s", mi, j,
                          "tool_use needs a string id and name");
    char *args = wire__dumps(json_object_get(b, "input"));
    json_array_append_new(calls, wire__tool_call(id, name, args));
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
        const char *type = wire__str(b, "type");
        if (wire__is(type, "tool_use"))
            rc = s_a_tool_use(b, mi, j, calls, err, len);
        else if (wire__is(type, "text") && wire__str(b, "text"))
            wire__append_str(&text, json_object_get(b, "text"));
        else if (!wire__is(type, "thinking") && !wire__is(type, "redacted_thinking"))
            rc = wire__fail(err, len, "messages[%zu].content[%zu].type: %s", mi, j,
                            "must be text, tool_use or thinking");
        if (rc < 0)
            break;
    }
    if (rc == 0)
        json_array_append_new(msgs, wire__message(&text, json_incref(calls)));
    json_decref(calls);
    sbuf_free(&text);
    return rc;
}

static int s_a_messages(const json_t *req, json_t *msgs, char *err, size_t len)
{
    const json_t *ms = json_object_get(req, "messages"), *m;
    size_t i, before = json_array_size(msgs);
    if (!json_is_array(ms) || json_array_size(ms) == 0)
        return wire__fail(err, len, "messages: must be a non-empty array");
    json_array_foreach(ms, i, m)
    {
        const char *role = wire__str(m, "role");
        const json_t *c = json_object_get(m, "content");
        int rc = 0;
        if (!wire__is(role, "user") && !wire__is(role, "assistant"))
            return wire__fail(
                err, len, "messages[%zu].role: must be \"user\" or \"assistant\"", i);
        if (json_is_string(c))
            json_array_append_new(msgs,
                                  json_pack("{s:s,s:O}", "role", role, "content", c));
        /* Empty content is Anthropic's prefill for the last assistant turn
         * only. */
        else if (!json_is_array(c) ||
                 (json_array_size(c) == 0 &&
                  !(wire__is(role, "assistant") && i + 1 == json_array_size(ms))))
            rc = wire__fail(err, len, "messages[%zu].content: %s", i,
                            "must be a string or a non-empty array of content blocks");
        else
            rc = wire__is(role, "user") ? s_a_user(c, i, msgs, err, len)
                                        : s_a_assistant(c, i, msgs, err, len);
        if (rc < 0)
            return VP_EINVALID;
    }
    /* Blocks we drop (thinking in a user message) may leave nothing to send. */
    if (json_array_size(msgs) == before)
        return wire__fail(err, len, "messages: no message has content to send");
    return 0;
}

static int s_a_tool_choice(const json_t *req, json_t *canon, char *err, size_t len)
{
    const json_t *tc = json_object_get(req, "tool_choice");
    const char *type = wire__str(tc, "type"), *name = wire__str(tc, "name");
    json_t *out = NULL;
    if (!tc || json_is_null(tc))
        return 0;
    if (wire__is(type, "auto") || wire__is(type, "none"))
        out = json_string(type);
    else if (wire__is(type, "any"))
        out = json_string("required");
    else if (wire__is(type, "tool") && name)
        out = json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name);
    if (!out)
        return wire__fail(err, len,
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
        return wire__fail(err, len, "tools: must be an array");
    json_array_foreach(tools, i, t)
    {
        if (!wire__str(t, "name"))
            return wire__fail(err, len, "tools[%zu].name: must be a string", i);
        if (!json_is_object(json_object_get(t, "input_schema")))
            return wire__fail(err, len, "tools[%zu].input_schema: must be an object",
                              i);
    }
    json_t *out = json_array();
    json_array_foreach(tools, i, t)
    {
        json_t *fn = json_pack("{s:s}", "name", wire__str(t, "name"));
        wire__copy(fn, "description", t, "description");
        wire__copy(fn, "parameters", t, "input_schema");
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
        wire__fail(err, errlen, "body: must be a JSON object");
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
