/* test_wire.c - unit tests for the wire vocabulary (wire.c): provider
 * kinds and the clamping of providers' token counts. */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

/* ---- kinds ---- */

Test(wire, kind_names)
{
    wire_kind_t k;
    const char *names[] = {"openai", "anthropic", "gemini", "ollama"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(wire_kind_parse(names[i], &k), 0);
        cr_assert_eq((int)k, i);
        cr_assert_str_eq(wire_kind_name(k), names[i]);
    }
    cr_assert_eq(wire_kind_parse("azure", &k), -EINVAL);
    cr_assert_eq(wire_kind_parse(NULL, &k), -EINVAL);
}

Test(wire, provider_token_counts_are_clamped)
{
    cr_assert_eq(wire_tokens(-5), 0);
    cr_assert_eq(wire_tokens(0), 0);
    cr_assert_eq(wire_tokens(1234), 1234);
    cr_assert_eq(wire_tokens(WIRE_MAX_TOKENS), WIRE_MAX_TOKENS);
    cr_assert_eq(wire_tokens(4611686018427387904LL), WIRE_MAX_TOKENS);
    char err[256];
    wire_usage_t u = {0};
    const char *body =
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":-7,\"completion_tokens\":"
        "9223372036854775807}}";
    json_t *j = json_loads(body, 0, NULL);
    cr_assert_not_null(j);
    json_t *canon =
        wire_canonical_response(WIRE_OPENAI, j, "i", "m", &u, err, sizeof err);
    cr_assert_not_null(canon, "%s", err);
    cr_assert_eq(u.input_tokens, 0);
    cr_assert_eq(u.output_tokens, WIRE_MAX_TOKENS);
    json_decref(canon);
    json_decref(j);
}
