/* wire_upstream.c - the canonical request rendered for the chosen
 * provider's kind: the dispatch (wire_upstream_request), the OpenAI
 * rendering (the canonical form itself, with the model and streaming set),
 * and what the other kinds' renderers read from the canonical request. */
#define _GNU_SOURCE
#include <stdio.h>

#include "wire_internal.h"

bool wire__max_tokens(const json_t *canon, long *out)
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

json_t *wire_upstream_request(wire_kind_t kind, const json_t *canon, const char *model,
                              bool stream, long default_max_tokens, char *path,
                              size_t pathlen)
{
    if (!model)
        model = wire__str(canon, "model") ? wire__str(canon, "model") : "";
    switch (kind) {
    case WIRE_ANTHROPIC:
        snprintf(path, pathlen, "/v1/messages");
        return wire__upstream_anthropic(canon, model, stream, default_max_tokens);
    case WIRE_GEMINI: return wire__upstream_gemini(canon, model, stream, path, pathlen);
    case WIRE_OLLAMA:
        snprintf(path, pathlen, "/api/chat");
        return wire__upstream_ollama(canon, model, stream);
    default:
        snprintf(path, pathlen, "/chat/completions");
        return s_up_openai(canon, model, stream);
    }
}
