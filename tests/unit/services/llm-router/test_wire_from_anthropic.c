/* test_wire_from_anthropic.c - unit tests for Anthropic Messages requests
 * turned canonical (wire_from_anthropic.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

/* ---- Anthropic request -> canonical ---- */

Test(wire_from_anthropic, anthropic_request_to_canonical)
{
    char err[256] = "";
    json_t *req =
        J("{\"model\":\"claude-x\",\"max_tokens\":100,\"temperature\":0.5,"
          "\"top_p\":0.9,\"top_k\":5,\"stop_sequences\":[\"END\"],\"stream\":true,"
          "\"metadata\":{\"user_id\":\"u1\"},"
          "\"system\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\","
          "\"text\":\"B\"}],"
          "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"},"
          "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
          "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
          "\"image/png\",\"data\":\"QUJD\"}}]}]}");
    json_t *c = wire_from_anthropic_request(req, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    assert_json(c,
                "{\"model\":\"claude-x\",\"max_tokens\":100,\"temperature\":0.5,"
                "\"top_p\":0.9,\"stop\":[\"END\"],\"stream\":true,\"user\":\"u1\","
                "\"messages\":[{\"role\":\"system\",\"content\":\"A\\nB\"},"
                "{\"role\":\"user\",\"content\":\"hello\"},"
                "{\"role\":\"assistant\",\"content\":\"hi\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
                "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"data:image/png;base64,QUJD\"}}]}]}");
    cr_assert_eq(wire_openai_validate(c, err, sizeof err), 0, "%s", err);
    json_decref(c);
    json_decref(req);
}

Test(wire_from_anthropic, anthropic_request_tools_and_results)
{
    char err[256] = "";
    json_t *req =
        J("{\"model\":\"m\",\"max_tokens\":5,"
          "\"tools\":[{\"name\":\"get_weather\",\"description\":\"d\",\"input_schema\":"
          "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}],"
          "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true},"
          "\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
          "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
          "\"hm\","
          "\"signature\":\"s\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
          "\"get_weather\",\"input\":{\"city\":\"Paris\"}}]},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
          "\"toolu_1\",\"content\":[{\"type\":\"text\",\"text\":\"sunny\"}]},"
          "{\"type\":\"text\",\"text\":\"thanks\"}]}]}");
    json_t *c = wire_from_anthropic_request(req, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    assert_json(
        at(c, "messages"),
        "[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
        "\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"sunny\"},"
        "{\"role\":\"user\",\"content\":\"thanks\"}]");
    assert_json(
        at(c, "tools"),
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"d\",\"parameters\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"}}}}}]");
    cr_assert_str_eq(at_str(c, "tool_choice"), "required");
    cr_assert(json_is_false(at(c, "parallel_tool_calls")));
    cr_assert_eq(wire_openai_validate(c, err, sizeof err), 0, "%s", err);
    json_decref(c);
    json_decref(req);
}

Test(wire_from_anthropic, anthropic_request_rejects)
{
    static const struct {
        const char *body, *err;
    } cases[] = {
        {"\"x\"", "body: must be a JSON object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: required"},
        {"{\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: must be an integer >= 1"},
        {"{\"max_tokens\":5}", "messages: must be a non-empty array"},
        {"{\"max_tokens\":5,\"messages\":[]}", "messages: must be a non-empty array"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
         "messages[0].role: must be \"user\" or \"assistant\""},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":5}]}",
         "messages[0].content: must be a string or a non-empty array of content "
         "blocks"},
        {"{\"max_tokens\":5,\"temperature\":1.5,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "temperature: must be a number between 0 and 1"},
        {"{\"max_tokens\":5,\"system\":5,\"messages\":[{\"role\":\"user\",\"content\":"
         "\"x\"}]}",
         "system: must be a string or an array of text blocks"},
        {"{\"max_tokens\":5,\"stop_sequences\":\"x\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "stop_sequences: must be an array of strings"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"document\"}]}]}",
         "messages[0].content[0].type: unsupported block type \"document\""},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"tool_result\"}]}]}",
         "messages[0].content[0].tool_use_id: must be a string"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
         "\"tools\":[{\"name\":\"f\"}]}",
         "tools[0].input_schema: must be an object"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
         "\"tool_choice\":{\"type\":\"tool\"}}",
         "tool_choice: must be"},
        {"{\"max_tokens\":5,\"metadata\":5,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "metadata: must be an object"},
        {"{\"max_tokens\":5,\"metadata\":{\"user_id\":7},\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "metadata.user_id: must be a string"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
         "messages[0].content: must be a string or a non-empty array"},
        {"{\"max_tokens\":5,\"system\":[{\"type\":\"image\"}],\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "system: must be a string or an array of text blocks"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        json_t *r = J(cases[i].body);
        json_t *c = wire_from_anthropic_request(r, err, sizeof err);
        cr_assert_null(c, "case %zu accepted", i);
        cr_assert(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
                  "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
        json_decref(r);
    }
}

Test(wire_from_anthropic, anthropic_final_assistant_turn_may_be_empty)
{
    char err[256] = "";
    json_t *r =
        J("{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
          "{\"role\":\"assistant\",\"content\":[]}]}");
    json_t *c = wire_from_anthropic_request(r, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    json_decref(c);
    json_decref(r);
    r = J("{\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[]},"
          "{\"role\":\"user\",\"content\":\"x\"}]}");
    cr_assert_null(wire_from_anthropic_request(r, err, sizeof err));
    cr_assert(strstr(err, "messages[0].content"), "%s", err);
    json_decref(r);
}

/* Found by tests/fuzz/fuzz_wire_request: a user turn of thinking blocks
 * only was dropped, and the request went upstream with no messages. */
Test(wire_from_anthropic, anthropic_request_with_nothing_to_send_is_refused)
{
    char err[256] = "";
    json_t *r = J("{\"max_tokens\":5,\"system\":\"s\",\"messages\":[{\"role\":\"user\","
                  "\"content\":[{\"type\":\"thinking\"}]}]}");
    cr_assert_null(wire_from_anthropic_request(r, err, sizeof err));
    cr_assert_str_eq(err, "messages: no message has content to send");
    json_decref(r);
    /* A thinking block beside text still leaves the text. */
    r = J("{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
          "{\"type\":\"thinking\"},{\"type\":\"text\",\"text\":\"x\"}]}]}");
    json_t *c = wire_from_anthropic_request(r, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(wire_openai_validate(c, err, sizeof err), 0, "%s", err);
    json_decref(c);
    json_decref(r);
}
