/* test_wire_response.c - unit tests for whole upstream answers of each kind
 * turned canonical and then Anthropic, and providers' error bodies
 * (wire_response.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"
#include "vp_error.h"

/* ---- responses -> canonical ---- */

static json_t *canon_of(wire_kind_t kind, const char *body, wire_usage_t *u)
{
    char err[256] = "";
    json_t *b = J(body);
    json_t *c =
        wire_canonical_response(kind, b, "chatcmpl-1", "the-model", u, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    json_decref(b);
    cr_assert_str_eq(at_str(c, "id"), "chatcmpl-1");
    cr_assert_str_eq(at_str(c, "object"), "chat.completion");
    cr_assert_str_eq(at_str(c, "model"), "the-model");
    cr_assert(json_is_integer(at(c, "created")));
    cr_assert_eq(at_int(c, "choices.0.index"), 0);
    cr_assert_str_eq(at_str(c, "choices.0.message.role"), "assistant");
    return c;
}

Test(wire_response, response_openai)
{
    wire_usage_t u = {0};
    json_t *c = canon_of(
        WIRE_OPENAI,
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"model\":\"gpt\",\"choices\":[{"
        "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_"
        "calls\":"
        "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}],"
        "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}",
        &u);
    cr_assert(json_is_null(at(c, "choices.0.message.content")));
    cr_assert_str_eq(at_str(c, "choices.0.message.tool_calls.0.id"), "call_1");
    cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), "tool_calls");
    assert_json(at(c, "usage"),
                "{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}");
    cr_assert(u.present && u.input_tokens == 11 && u.output_tokens == 7);
    json_decref(c);
}

Test(wire_response, response_anthropic)
{
    wire_usage_t u = {0};
    json_t *c = canon_of(
        WIRE_ANTHROPIC,
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"...\"},{\"type\":\"text\",\"text\":"
        "\"Hel\"},"
        "{\"type\":\"text\",\"text\":\"lo\"},{\"type\":\"tool_use\",\"id\":\"toolu_9\","
        "\"name\":\"calc\",\"input\":{\"x\":2}}],\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":20,\"output_tokens\":9,"
        "\"cache_read_input_tokens\":5}}",
        &u);
    cr_assert_str_eq(at_str(c, "choices.0.message.content"), "Hello");
    assert_json(
        at(c, "choices.0.message.tool_calls"),
        "[{\"id\":\"toolu_9\",\"type\":\"function\",\"function\":{\"name\":\"calc\","
        "\"arguments\":\"{\\\"x\\\":2}\"}}]");
    cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), "tool_calls");
    cr_assert(u.present && u.input_tokens == 25 && u.output_tokens == 9);
    cr_assert_eq(at_int(c, "usage.total_tokens"), 34);
    json_decref(c);
    static const char *const map[][2] = {{"end_turn", "stop"},
                                         {"stop_sequence", "stop"},
                                         {"max_tokens", "length"},
                                         {"refusal", "content_filter"}};
    for (size_t i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"content\":[],\"stop_reason\":\"%s\"}",
                 map[i][0]);
        c = canon_of(WIRE_ANTHROPIC, body, NULL);
        cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), map[i][1]);
        cr_assert_str_eq(at_str(c, "choices.0.message.content"), "");
        cr_assert_null(at(c, "usage"));
        json_decref(c);
    }
}

Test(wire_response, response_gemini)
{
    wire_usage_t u = {0};
    json_t *c = canon_of(
        WIRE_GEMINI,
        "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":"
        "\"hmm\","
        "\"thought\":true},{\"text\":\"Sure\"},{\"functionCall\":{\"name\":\"look\","
        "\"args\":{\"q\":\"a\"}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":"
        "{\"promptTokenCount\":12,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":3}"
        "}",
        &u);
    cr_assert_str_eq(at_str(c, "choices.0.message.content"), "Sure");
    cr_assert_str_eq(at_str(c, "choices.0.message.tool_calls.0.function.name"), "look");
    cr_assert_str_eq(at_str(c, "choices.0.message.tool_calls.0.function.arguments"),
                     "{\"q\":\"a\"}");
    cr_assert_str_eq(at_str(c, "choices.0.message.tool_calls.0.type"), "function");
    cr_assert(strncmp(at_str(c, "choices.0.message.tool_calls.0.id"), "call_", 5) == 0);
    cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), "tool_calls");
    cr_assert(u.present && u.input_tokens == 12 && u.output_tokens == 7);
    json_decref(c);
    static const char *const map[][2] = {{"STOP", "stop"},
                                         {"MAX_TOKENS", "length"},
                                         {"SAFETY", "content_filter"},
                                         {"RECITATION", "content_filter"}};
    for (size_t i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},"
                 "\"finishReason\":\"%s\"}]}",
                 map[i][0]);
        c = canon_of(WIRE_GEMINI, body, NULL);
        cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), map[i][1]);
        json_decref(c);
    }
    c = canon_of(WIRE_GEMINI, "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}",
                 NULL);
    cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), "content_filter");
    json_decref(c);
}

Test(wire_response, response_ollama)
{
    wire_usage_t u = {0};
    json_t *c =
        canon_of(WIRE_OLLAMA,
                 "{\"model\":\"llama\",\"message\":{\"role\":\"assistant\",\"content\":"
                 "\"Hi there\"},"
                 "\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":26,"
                 "\"eval_count\":298}",
                 &u);
    cr_assert_str_eq(at_str(c, "choices.0.message.content"), "Hi there");
    cr_assert_null(at(c, "choices.0.message.tool_calls"));
    cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), "length");
    cr_assert(u.present && u.input_tokens == 26 && u.output_tokens == 298);
    json_decref(c);
    c = canon_of(WIRE_OLLAMA,
                 "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
                 "[{\"function\":"
                 "{\"name\":\"f\",\"arguments\":{\"a\":1}}}]},\"done\":true,\"done_"
                 "reason\":\"stop\"}",
                 &u);
    cr_assert(json_is_null(at(c, "choices.0.message.content")));
    cr_assert_str_eq(at_str(c, "choices.0.message.tool_calls.0.function.arguments"),
                     "{\"a\":1}");
    cr_assert_str_eq(at_str(c, "choices.0.finish_reason"), "tool_calls");
    cr_assert_not(u.present);
    json_decref(c);
}

Test(wire_response, response_rejects)
{
    static const struct {
        wire_kind_t kind;
        const char *body, *err;
    } cases[] = {
        {WIRE_OPENAI, "{\"choices\":[]}", "not an OpenAI chat.completion"},
        {WIRE_ANTHROPIC, "{\"type\":\"message\"}", "not an Anthropic message"},
        {WIRE_GEMINI, "{\"usageMetadata\":{}}", "not a Gemini response"},
        {WIRE_OLLAMA, "{\"done\":true}", "not an Ollama chat response"},
        {WIRE_OLLAMA, "[1]", "ollama response: must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        wire_usage_t u = {.present = true, .input_tokens = 3};
        json_t *b = J(cases[i].body);
        cr_assert_null(
            wire_canonical_response(cases[i].kind, b, "i", "m", &u, err, sizeof err));
        cr_assert(strstr(err, cases[i].err), "case %zu: %s", i, err);
        json_decref(b);
    }
}

Test(wire_response, to_anthropic_response)
{
    json_t *c =
        J("{\"id\":\"r1\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":"
          "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\","
          "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
          "\"f\",\"arguments\":\"{\\\"a\\\":[1]}\"}}]},\"finish_reason\":"
          "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
          "\"total_tokens\":7}}");
    json_t *a = wire_to_anthropic_response(c);
    assert_json(a,
                "{\"id\":\"r1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                "\"m\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":"
                "\"tool_use\",\"id\":\"c\",\"name\":\"f\",\"input\":{\"a\":[1]}}],"
                "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":"
                "{\"input_tokens\":3,\"output_tokens\":4}}");
    json_decref(a);
    json_decref(c);
    static const char *const map[][2] = {
        {"stop", "end_turn"}, {"length", "max_tokens"}, {"content_filter", "refusal"}};
    for (size_t i = 0; i < 3; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"id\":\"r\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"
                 "\"\"},"
                 "\"finish_reason\":\"%s\"}]}",
                 map[i][0]);
        c = J(body);
        a = wire_to_anthropic_response(c);
        cr_assert_str_eq(at_str(a, "stop_reason"), map[i][1]);
        cr_assert_eq(json_array_size(at(a, "content")), 0);
        json_decref(a);
        json_decref(c);
    }
}

Test(wire_response, error_message)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"{\"error\":{\"message\":\"bad key\",\"type\":\"invalid_request_error\"}}",
         "bad key"},
        {"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
         "\"Overloaded\"}}",
         "Overloaded"},
        {"{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_"
         "EXHAUSTED\"}}",
         "quota"},
        {"[{\"error\":{\"code\":400,\"message\":\"wrapped\"}}]", "wrapped"},
        {"{\"error\":\"model 'x' not found\"}", "model 'x' not found"},
        {"{\"choices\":[]}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *b = J(cases[i].body);
        const char *m = wire_error_message(b);
        if (cases[i].msg)
            cr_assert_str_eq(m, cases[i].msg);
        else
            cr_assert_null(m);
        json_decref(b);
    }
}

/* The usage of a relayed OpenAI answer, read from its bytes. */
static int scan(const char *body, wire_usage_t *u)
{
    *u = (wire_usage_t){-1, -1, false, false};
    return wire_openai_scan_usage(body, strlen(body), u);
}

Test(wire_response, openai_scan_usage_reads_the_top_level_usage)
{
    wire_usage_t u;
    cr_assert_eq(scan(" \n{\"id\":\"x\",\"choices\" : [{\"message\":{\"usage\":"
                      "{\"prompt_tokens\":99}}}],\n \"usage\" :\t{\"prompt_tokens\":11,"
                      "\"completion_tokens\":7,\"total_tokens\":18,"
                      "\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
                      &u),
                 0);
    cr_assert(u.present);
    cr_assert_eq(u.input_tokens, 11);
    cr_assert_eq(u.output_tokens, 7);
    /* A key-like text inside a string is not a member; usage may come first. */
    cr_assert_eq(scan("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4},"
                      "\"note\":\"\\\"choices\\\":{\",\"choices\":[{\"message\":{}}]}",
                      &u),
                 0);
    cr_assert(u.present && u.input_tokens == 3 && u.output_tokens == 4);
    /* Counts past 2^63 are read as reals and clamped, not refused. */
    cr_assert_eq(scan("{\"choices\":[{\"message\":{}}],\"usage\":{\"prompt_tokens\":-5,"
                      "\"completion_tokens\":1e30,\"total_tokens\":"
                      "99999999999999999999999}}",
                      &u),
                 0);
    cr_assert(u.present && u.unreadable && u.output_tokens == WIRE_MAX_TOKENS,
              "a negative count is no count: unreadable");
}

Test(wire_response, openai_scan_usage_without_usage_is_not_present)
{
    wire_usage_t u;
    cr_assert_eq(
        scan("{\"choices\":[{\"message\":{},\"usage\":{\"prompt_tokens\":1}}]}", &u),
        0);
    cr_assert_not(u.present);
    cr_assert_eq(u.input_tokens, 0);
    cr_assert_eq(scan("{\"choices\":[{\"message\":{}}],\"usage\":null}", &u), 0);
    cr_assert_not(u.present);
    cr_assert_eq(
        scan("{\"choices\":[{\"message\":{}}],\"usage\":{\"prompt_tokens\":1,}}", &u),
        0);
    cr_assert_not(u.present, "a malformed usage is unreadable");
    cr_assert_eq(scan("{\"choices\":[{\"message\":{}}],\"usage\":", &u), 0);
    cr_assert_not(u.present);
}

/* Counts sent as text are not zero: the usage is unreadable (estimated). */
Test(wire_response, openai_scan_usage_of_counts_as_text_is_unreadable)
{
    wire_usage_t u;
    cr_assert_eq(
        scan("{\"choices\":[{\"message\":{}}],\"usage\":{\"prompt_tokens\":\"10\","
             "\"completion_tokens\":\"20\"}}",
             &u),
        0);
    cr_assert(u.unreadable);
    cr_assert_eq(scan("{\"choices\":[{\"message\":{}}],\"usage\":{\"prompt_tokens\":10,"
                      "\"completion_tokens\":[20]}}",
                      &u),
                 0);
    cr_assert(u.unreadable && u.input_tokens == 10);
    json_t *body = J("{\"type\":\"message\",\"content\":[{\"type\":\"text\","
                     "\"text\":\"x\"}],\"usage\":{\"input_tokens\":\"10\","
                     "\"output_tokens\":20}}");
    char err[128];
    json_t *c =
        wire_canonical_response(WIRE_ANTHROPIC, body, "id", "m", &u, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert(u.unreadable, "an Anthropic count as text");
    json_decref(c);
    json_decref(body);
}

Test(wire_response, openai_scan_usage_refuses_what_is_not_a_completion)
{
    static const char *const bad[] = {
        "",
        "   ",
        "[{\"choices\":[{\"message\":{}}]}]",
        "{\"object\":\"list\",\"data\":[]}",
        "{\"choices\":{}}",
        "{\"choices\":",
        "{\"error\":{\"message\":\"\\\"choices\\\":[\"}}",
        "{\"x\":{\"choices\":[{\"message\":{}}]}}",
        /* not an answer: no choice, no message, a message that is no object */
        "{\"choices\":[]}",
        "{\"choices\":[1,2,3],\"x\":\"<script>\"}",
        "{\"choices\":[{\"message\":\"hi\"}]}",
        "{\"choices\":[{\"index\":0}],\"message\":{}}",
        /* read two ways: first wins here, last in most clients */
        "{\"choices\":[{\"message\":{}}],\"choices\":{\"a\":1}}",
        "{\"choices\":[{\"message\":{},\"message\":{}}]}",
        "{\"choices\":[{\"message\":{}}],\"usage\":{},\"usage\":{\"prompt_tokens\":1}}",
        "{\"unterminated",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wire_usage_t u;
        cr_assert_eq(scan(bad[i], &u), VP_EPARSE, "case %zu", i);
        cr_assert_eq(u.input_tokens, -1, "case %zu: usage untouched", i);
    }
    wire_usage_t u = {0};
    cr_assert_eq(wire_openai_scan_usage(NULL, 0, &u), VP_EPARSE);
}
