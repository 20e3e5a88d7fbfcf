/* fuzz_wire_response.c - a provider's whole (non-streamed) answer as the
 * router reads it (services/llm-router/wire_response.c), as call.c does:
 * an OpenAI answer to an OpenAI caller is relayed with only its usage
 * scanned; otherwise the body is parsed, made a canonical chat.completion,
 * and for Anthropic callers an Anthropic message; an error body gives its
 * message.
 *
 * Input: a byte choosing the provider kind, then the body. Properties: token
 * counts stay within 0..WIRE_MAX_TOKENS whatever the provider claims (wire.h);
 * every answer built serialises to JSON. */
#include <stdlib.h>

#include "fz.h"
#include "llm-router/wire.h"

static void s_check_usage(const wire_usage_t *u, const char *where)
{
    FZ_CHECK(u->input_tokens >= 0 && u->input_tokens <= WIRE_MAX_TOKENS &&
                 u->output_tokens >= 0 && u->output_tokens <= WIRE_MAX_TOKENS,
             "%s: usage out of bounds: %ld in, %ld out", where, u->input_tokens,
             u->output_tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    wire_kind_t kind = (wire_kind_t)(fz_byte(&in) & 3);
    const char *body = (const char *)in.data;
    wire_usage_t usage = {0};
    if (kind == WIRE_OPENAI && wire_openai_scan_usage(body, in.len, &usage) == 0)
        s_check_usage(&usage, "scan");
    json_t *j = json_loadb(body, in.len, 0, NULL);
    if (!j)
        return 0;
    char err[256];
    usage = (wire_usage_t){0};
    json_t *canon =
        wire_canonical_response(kind, j, "chatcmpl-fz", "m", &usage, err, sizeof err);
    if (canon) {
        s_check_usage(&usage, "canonical");
        fz_check_json(canon, "the canonical answer");
        json_t *m = wire_to_anthropic_response(canon);
        FZ_CHECK(m, "no Anthropic message from a canonical answer");
        fz_check_json(m, "the Anthropic message");
        json_decref(m);
        json_decref(canon);
    }
    wire_error_message(j);
    json_decref(j);
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    return fz_mutate_json(data, size, max_size, seed);
}
