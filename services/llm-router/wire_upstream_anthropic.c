/* wire_upstream_anthropic.c - the canonical request as an Anthropic
 * Messages request: the system prompt apart, messages as content blocks
 * (tool results in user turns), temperature capped at 1, tools and
 * tool_choice, max_tokens always set. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "wire_internal.h"

#define WIRE_DEFAULT_MAX_TOKENS 4096 /* max_tokens when none is known */

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
    if (wire__data_url(url, &mime, &data)) {
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
        const char *type = wire__str(p, "type");
        if (wire__is(type, "text"))
            s_an_text(blocks, json_object_get(p, "text"));
        else if (wire__is(type, "image_url"))
            s_an_image(blocks, wire__str(json_object_get(p, "image_url"), "url"));
    }
    return blocks;
}

/* {"type":"tool_use","id","name","input"} from a canonical tool call. */
static json_t *s_an_tool_use(const json_t *tc)
{
    const json_t *fn = json_object_get(tc, "function");
    const char *id = wire__str(tc, "id"), *name = wire__str(fn, "name");
    return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", id ? id : "",
                     "name", name ? name : "", "input",
                     wire__args_object(wire__str(fn, "arguments")));
}

json_t *wire__anthropic_blocks(const json_t *m)
{
    json_t *blocks = json_array();
    sbuf_t text = {0};
    size_t i;
    const json_t *tc;
    wire__content_text(json_object_get(m, "content"), "", &text);
    if (text.len) {
        json_t *t = wire__sbuf_json(&text);
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
    wire__content_text(json_object_get(m, "content"), "\n", &t);
    const char *id = wire__str(m, "tool_call_id");
    json_t *b =
        json_pack("{s:s,s:s}", "type", "tool_result", "tool_use_id", id ? id : "");
    if (t.len) /* content is optional, and Anthropic refuses empty texts */
        json_object_set_new(b, "content", wire__sbuf_json(&t));
    sbuf_free(&t);
    return json_pack("[o]", b);
}

static void s_an_messages(const json_t *canon, json_t *r)
{
    const json_t *ms = json_object_get(canon, "messages"), *m;
    json_t *out = json_array();
    sbuf_t sys = {0};
    size_t i;
    wire__system_text(ms, &sys);
    if (sys.len)
        json_object_set_new(r, "system", wire__sbuf_json(&sys));
    sbuf_free(&sys);
    json_array_foreach(ms, i, m)
    {
        const char *role = wire__str(m, "role");
        if (wire__is(role, "assistant"))
            wire__push(out, "assistant", "content", wire__anthropic_blocks(m));
        else if (wire__is(role, "tool"))
            wire__push(out, "user", "content", s_an_tool_result(m));
        else if (wire__is(role, "user"))
            wire__push(out, "user", "content",
                       s_an_user_blocks(json_object_get(m, "content")));
    }
    json_object_set_new(r, "messages", out);
}

static void s_an_params(const json_t *canon, json_t *r)
{
    const json_t *t = json_object_get(canon, "temperature");
    json_t *stop = wire__stop_array(canon);
    const char *user = wire__str(canon, "user");
    /* OpenAI's temperature goes to 2, Anthropic's to 1. */
    if (json_is_number(t))
        json_object_set_new(r, "temperature",
                            json_number_value(t) > 1 ? json_real(1)
                                                     : json_deep_copy(t));
    wire__copy(r, "top_p", canon, "top_p");
    if (stop)
        json_object_set_new(r, "stop_sequences", stop);
    if (user)
        json_object_set_new(r, "metadata", json_pack("{s:s}", "user_id", user));
}

static json_t *s_an_tool_choice(const json_t *canon)
{
    const json_t *tc = json_object_get(canon, "tool_choice");
    const char *s = json_string_value(tc);
    const char *name = wire__str(json_object_get(tc, "function"), "name");
    json_t *out = NULL;
    if (wire__is(s, "auto") || wire__is(s, "none"))
        out = json_pack("{s:s}", "type", s);
    else if (wire__is(s, "required"))
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
        json_t *out = json_pack("{s:s}", "name",
                                wire__str(fn, "name") ? wire__str(fn, "name") : "");
        wire__copy(out, "description", fn, "description");
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

json_t *wire__upstream_anthropic(const json_t *canon, const char *model, bool stream,
                                 long default_max)
{
    long max = default_max > 0 ? default_max : WIRE_DEFAULT_MAX_TOKENS;
    wire_max_tokens(canon, &max);
    json_t *r = json_pack("{s:s,s:I}", "model", model, "max_tokens", (json_int_t)max);
    s_an_messages(canon, r);
    s_an_params(canon, r);
    s_an_tools(canon, r);
    json_object_set_new(r, "stream", json_boolean(stream));
    return r;
}
