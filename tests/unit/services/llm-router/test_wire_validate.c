/* test_wire_validate.c - unit tests for OpenAI request validation and the
 * prompt's token bound (wire_validate.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

/* ---- OpenAI validation ---- */

Test(wire_validate, openai_validate_accepts)
{
    char err[256] = "";
    json_t *r =
        J("{\"model\":\"gpt-4o\",\"messages\":["
          "{\"role\":\"system\",\"content\":\"be brief\"},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
          "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]},"
          "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
          "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
          "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}],"
          "\"temperature\":2,\"top_p\":0.5,\"max_tokens\":10,\"stream\":true,"
          "\"stream_options\":{\"include_usage\":true},\"stop\":[\"x\"],\"n\":1,"
          "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"auto\","
          "\"presence_penalty\":null}");
    cr_assert_eq(wire_openai_validate(r, err, sizeof err), 0, "%s", err);
    json_decref(r);
}

Test(wire_validate, openai_validate_rejects)
{
    static const struct {
        const char *body, *err;
    } cases[] = {
        {"[]", "body: must be a JSON object"},
        {"{\"model\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "model: must be a string"},
        {"{}", "messages: must be a non-empty array"},
        {"{\"messages\":[]}", "messages: must be a non-empty array"},
        {"{\"messages\":[1]}", "messages[0]: must be an object"},
        {"{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
         "messages[0].role: must be one of system, developer, user, assistant, tool"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\"}]}",
         "messages[1].content: must be a string or an array of content parts"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
         "messages[0].content[0].text: must be a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
         "messages[0].content[0].type: must be a string"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
         "messages[0].tool_call_id: must be a string"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\","
         "\"function\":{\"name\":\"f\"}}]}]}",
         "messages[0].tool_calls[0].function.arguments: must be a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":2.5}",
         "temperature: must be a number between 0 and 2"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"1\"}",
         "temperature: must be a number between 0 and 2"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":1.5}",
         "top_p: must be a number between 0 and 1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
         "max_tokens: must be an integer >= 1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_"
         "tokens\":1.5}",
         "max_completion_tokens: must be an integer >= 1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}",
         "stream: must be a boolean"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}",
         "n: only 1 is supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}",
         "stop: must be a string or an array of strings"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":1}",
         "stream_options: must be an object with a boolean include_usage"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}",
         "tools: must be an array"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
         "\"function\",\"function\":{}}]}",
         "tools[0].function.name: must be a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":"
         "\"any\"}",
         "tool_choice: must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        json_t *r = J(cases[i].body);
        cr_assert_eq(wire_openai_validate(r, err, sizeof err), VP_EINVALID,
                     "case %zu accepted", i);
        cr_assert(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
                  "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
        json_decref(r);
    }
}

Test(wire_validate, prompt_token_bound)
{
    json_t *a = J("{\"messages\":[{\"role\":\"user\",\"content\":\"0123456789\"}]}");
    json_t *b = J(
        "{\"messages\":[{\"role\":\"system\",\"content\":\"abc\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"0123456789\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
        "\"function\":{\"name\":\"fn\",\"arguments\":\"{\\\"a\\\":1}\"}}]}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"fn\"}}]}");
    long na = wire_prompt_token_bound(a), nb = wire_prompt_token_bound(b);
    cr_assert_geq(na, 10);
    cr_assert_lt(na, 40);
    /* 3 + 10 + 2 + 7 text bytes, the tools' JSON, three message overheads. */
    cr_assert_geq(nb, 22 + 40 + 3);
    cr_assert_gt(nb, na);
    json_decref(a);
    json_decref(b);
}

/* Every byte forwarded may be billed as input: a schema, functions or a
 * message's name count too, or a budget could be spent past its limit
 * with them (found by an attack session). */
Test(wire_validate, the_prompt_bound_counts_every_field_forwarded)
{
    char big[4001];
    memset(big, 'x', 4000);
    big[4000] = '\0';
    json_t *base = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", "hi");
    long n0 = wire_prompt_token_bound(base);
    json_t *fmt = json_deep_copy(base);
    json_object_set_new(fmt, "response_format",
                        json_pack("{s:s,s:{s:s,s:{s:s}}}", "type", "json_schema",
                                  "json_schema", "name", "s", "schema", "description", big));
    json_t *fns = json_deep_copy(base);
    json_object_set_new(fns, "functions", json_pack("[{s:s,s:s}]", "name", "f",
                                                    "description", big));
    json_t *named = json_deep_copy(base);
    json_object_set_new(json_array_get(json_object_get(named, "messages"), 0), "name",
                        json_string(big));
    cr_assert_geq(wire_prompt_token_bound(fmt), n0 + 4000);
    cr_assert_geq(wire_prompt_token_bound(fns), n0 + 4000);
    cr_assert_geq(wire_prompt_token_bound(named), n0 + 4000);
    json_decref(base);
    json_decref(fmt);
    json_decref(fns);
    json_decref(named);
}

