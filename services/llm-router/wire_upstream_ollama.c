/* wire_upstream_ollama.c - the canonical request as an Ollama /api/chat
 * request: messages with plain text content, images as base64, tool calls
 * with object arguments, sampling parameters under "options". */
#define _GNU_SOURCE
#include <stdlib.h>

#include "wire_internal.h"

static void s_ol_images(const json_t *c, json_t *msg)
{
    json_t *images = json_array();
    size_t i;
    const json_t *p;
    char *mime;
    const char *data;
    json_array_foreach(c, i, p)
    {
        if (wire__data_url(wire__str(json_object_get(p, "image_url"), "url"), &mime,
                           &data)) {
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
        const char *name = wire__str(fn, "name");
        json_array_append_new(calls,
                              json_pack("{s:{s:s,s:o}}", "function", "name",
                                        name ? name : "", "arguments",
                                        wire__args_object(wire__str(fn, "arguments"))));
    }
    if (json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    json_decref(calls);
}

static json_t *s_ol_message(const json_t *msgs, size_t i, const json_t *m)
{
    const char *role = wire__str(m, "role");
    const json_t *c = json_object_get(m, "content");
    const char *tool = wire__tool_name(msgs, i, wire__str(m, "tool_call_id"));
    sbuf_t t = {0};
    wire__content_text(c, "\n", &t);
    json_t *o =
        json_pack("{s:s,s:o}", "role", wire__is(role, "developer") ? "system" : role,
                  "content", wire__sbuf_json(&t));
    sbuf_free(&t);
    s_ol_images(c, o);
    s_ol_tool_calls(m, o);
    if (wire__is(role, "tool") && tool)
        json_object_set_new(o, "tool_name", json_string(tool));
    return o;
}

json_t *wire__upstream_ollama(const json_t *canon, const char *model, bool stream)
{
    const json_t *ms = json_object_get(canon, "messages"), *m;
    json_t *msgs = json_array(), *opts = json_object(), *stop = wire__stop_array(canon);
    size_t i;
    long max;
    json_array_foreach(ms, i, m)
    {
        if (wire__str(m, "role"))
            json_array_append_new(msgs, s_ol_message(ms, i, m));
    }
    /* Ollama streams unless told otherwise, so "stream" is always set. */
    json_t *r =
        json_pack("{s:s,s:o,s:b}", "model", model, "messages", msgs, "stream", stream);
    wire__copy(opts, "temperature", canon, "temperature");
    wire__copy(opts, "top_p", canon, "top_p");
    if (wire_max_tokens(canon, &max))
        json_object_set_new(opts, "num_predict", json_integer(max));
    if (stop)
        json_object_set_new(opts, "stop", stop);
    if (json_object_size(opts))
        json_object_set(r, "options", opts);
    json_decref(opts);
    wire__copy(r, "tools", canon, "tools");
    return r;
}
