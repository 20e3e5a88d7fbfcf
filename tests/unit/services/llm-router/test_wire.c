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

static void s_keep_usage(const wire_ev_t *ev, void *ud)
{
    if (ev->type == WIRE_EV_USAGE)
        *(wire_usage_t *)ud = ev->usage;
}

/* Found by tests/fuzz/fuzz_wire_response: Gemini's thinking tokens were
 * added to the output count unclamped, so a negative one made the cost
 * negative (lifting a budget) and 2^63-1 overflowed. */
Test(wire, gemini_thinking_tokens_are_clamped)
{
    static const struct {
        const char *thoughts;
        long want;
    } cases[] = {
        {"-9223372036854775808", 4},
        {"-5", 4},
        {"9223372036854775807", WIRE_MAX_TOKENS},
        {"3", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512], err[256];
        snprintf(
            body, sizeof body,
            "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},"
            "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1,"
            "\"candidatesTokenCount\":4,\"thoughtsTokenCount\":%s}}",
            cases[i].thoughts);
        json_t *j = json_loads(body, 0, NULL);
        wire_usage_t u = {0};
        json_t *canon =
            wire_canonical_response(WIRE_GEMINI, j, "i", "m", &u, err, sizeof err);
        cr_assert_not_null(canon, "%s", err);
        cr_assert_eq(u.output_tokens, cases[i].want, "thoughts %s: %ld output tokens",
                     cases[i].thoughts, u.output_tokens);
        json_decref(canon);
        json_decref(j);
        /* The same usage in a stream. */
        char sse[600];
        snprintf(sse, sizeof sse, "data: %s\n\n", body);
        wire_parser_t *p = wire_parser_new(WIRE_GEMINI);
        u = (wire_usage_t){0};
        cr_assert_eq(wire_parser_feed(p, sse, strlen(sse), s_keep_usage, &u), 0);
        cr_assert_eq(u.output_tokens, cases[i].want, "stream, thoughts %s: %ld",
                     cases[i].thoughts, u.output_tokens);
        wire_parser_destroy(&p);
    }
}
