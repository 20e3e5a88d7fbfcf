/* fuzz_wire_request.c - a caller's request body as the router takes it
 * (services/llm-router/routes.c): POST /v1/chat/completions validated as
 * OpenAI (wire_validate.c), POST /v1/messages converted from Anthropic
 * (wire_from_anthropic.c); what passes is the canonical request, which
 * call.c bounds (prompt tokens, max_tokens) and renders for each provider
 * kind (wire_upstream*.c).
 *
 * Input: the body, parsed as the HTTP layer does (an object, or refused).
 * Properties: a request that passes renders for every kind as an object
 * that serialises to JSON and reads back; the bounds are not negative. */
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "llm-router/wire.h"

static void s_render(const json_t *canon)
{
    long max_tokens = 0;
    wire_max_tokens(canon, &max_tokens);
    FZ_CHECK(wire_prompt_token_bound(canon) >= 0, "a negative prompt bound");
    bool stream = json_is_true(json_object_get(canon, "stream"));
    for (int k = WIRE_OPENAI; k <= WIRE_OLLAMA; k++) {
        char path[256];
        path[0] = '\0';
        json_t *up = wire_upstream_request((wire_kind_t)k, canon, "m-1", stream, 4096,
                                           path, sizeof path);
        FZ_CHECK(json_is_object(up), "%s: not an object", wire_kind_name(k));
        FZ_CHECK(path[0] == '/', "%s: path '%s'", wire_kind_name(k), path);
        fz_check_json(up, wire_kind_name(k));
        json_decref(up);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    char err[256];
    if (wire_openai_validate(body, err, sizeof err) == 0)
        s_render(body);
    else
        FZ_CHECK(err[0] && strlen(err) < sizeof err, "a refusal without a reason");
    json_t *canon = wire_from_anthropic_request(body, err, sizeof err);
    if (canon) {
        FZ_CHECK(wire_openai_validate(canon, err, sizeof err) == 0,
                 "the canonical form of an Anthropic request is not valid: %s", err);
        s_render(canon);
        json_decref(canon);
    }
    json_decref(body);
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    return fz_mutate_json(data, size, max_size, seed);
}
