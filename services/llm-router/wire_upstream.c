/* wire_upstream.c - the canonical request rendered for the chosen
 * provider's kind: the dispatch (wire_upstream_request) to each kind's
 * renderer (wire_upstream_*.c), and the OpenAI rendering itself (the
 * canonical form, with the model and streaming set). */
#define _GNU_SOURCE
#include <stdio.h>

#include "wire_internal.h"

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
