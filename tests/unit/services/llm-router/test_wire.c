/* test_wire.c - unit tests for the LLM wire translation (wire.c): request
 * validation and conversion in every direction, responses of each kind,
 * stream parsing (whole and one byte at a time) and both stream emitters. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"
#include "sbuf.h"

/* ---- helpers ---- */

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    cr_assert_not_null(v, "bad test JSON (%s): %s", e.text, text);
    return v;
}

/* Asserts that got equals the JSON text want (key order ignored). */
static void assert_json(const json_t *got, const char *want)
{
    json_t *w = J(want);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *x = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(got, w), "got  %s\nwant %s", g, x);
    free(g);
    free(x);
    json_decref(w);
}

/* The value at a path like "messages.1.content" (array indexes as numbers). */
static json_t *at(const json_t *v, const char *path)
{
    char *copy = strdup(path), *save = NULL;
    json_t *cur = (json_t *)v;
    for (char *k = strtok_r(copy, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(k, NULL, 10))
                                 : json_object_get(cur, k);
    free(copy);
    return cur;
}

static const char *at_str(const json_t *v, const char *path)
{
    return json_string_value(at(v, path));
}

static long long at_int(const json_t *v, const char *path)
{
    json_t *x = at(v, path);
    cr_assert(json_is_integer(x), "%s is not an integer", path);
    return json_integer_value(x);
}

/* Canonical events rendered as one line each, for comparison. */
static void log_ev(const wire_ev_t *ev, void *ud)
{
    sbuf_t *log = ud;
    switch (ev->type) {
    case WIRE_EV_TEXT: sbuf_printf(log, "T %.*s\n", (int)ev->len, ev->text); break;
    case WIRE_EV_TOOL:
        sbuf_printf(log, "C%d %s %s %.*s\n", ev->index, ev->tool_id ? "id" : "-",
                    ev->tool_name ? ev->tool_name : "-", (int)ev->len, ev->text);
        break;
    case WIRE_EV_FINISH: sbuf_printf(log, "F %s\n", ev->finish_reason); break;
    case WIRE_EV_USAGE:
        sbuf_printf(log, "U %ld %ld\n", ev->usage.input_tokens,
                    ev->usage.output_tokens);
        break;
    case WIRE_EV_ERROR: sbuf_printf(log, "E %.*s\n", (int)ev->len, ev->text); break;
    }
}

/* Parses stream with kind, fed all at once and one byte at a time; asserts
 * both give the same events and return codes. Returns the log (free it). */
static char *parse_both(wire_kind_t kind, const char *stream, int *rc, bool *complete)
{
    sbuf_t whole = {0}, bytes = {0};
    wire_parser_t *p = wire_parser_new(kind);
    int rc1 = wire_parser_feed(p, stream, strlen(stream), log_ev, &whole);
    bool c1 = wire_parser_complete(p);
    wire_parser_destroy(&p);
    cr_assert_null(p);
    p = wire_parser_new(kind);
    int rc2 = 0;
    for (size_t i = 0; stream[i] && rc2 == 0; i++)
        rc2 = wire_parser_feed(p, stream + i, 1, log_ev, &bytes);
    cr_assert_eq(rc1, rc2);
    cr_assert_eq(c1, wire_parser_complete(p));
    cr_assert_str_eq(whole.data ? whole.data : "", bytes.data ? bytes.data : "");
    wire_parser_destroy(&p);
    sbuf_free(&bytes);
    *rc = rc1;
    if (complete)
        *complete = c1;
    return sbuf_steal(&whole);
}

static void expect_stream(wire_kind_t kind, const char *stream, const char *want)
{
    int rc;
    bool complete;
    char *log = parse_both(kind, stream, &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert(complete, "stream not complete");
    cr_assert_str_eq(log, want);
    free(log);
}

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

/* ---- OpenAI validation ---- */

Test(wire, openai_validate_accepts)
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

Test(wire, openai_validate_rejects)
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
        cr_assert_eq(wire_openai_validate(r, err, sizeof err), -1, "case %zu accepted",
                     i);
        cr_assert(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
                  "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
        json_decref(r);
    }
}

/* ---- Anthropic request -> canonical ---- */

Test(wire, anthropic_request_to_canonical)
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

Test(wire, anthropic_request_tools_and_results)
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

Test(wire, anthropic_request_rejects)
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

Test(wire, prompt_token_bound)
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

/* ---- canonical -> upstream ---- */

static const char *k_canon =
    "{\"model\":\"auto\",\"max_tokens\":64,\"temperature\":1.5,\"top_p\":0.8,"
    "\"stop\":\"STOP\",\"stream\":true,\"user\":\"u\","
    "\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"
    "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"dev\"}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what\"},"
    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/"
    "jpeg;base64,AAAA\"}}]},"
    "{\"role\":\"assistant\",\"content\":\"let me see\",\"tool_calls\":["
    "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"look\","
    "\"arguments\":\"{\\\"q\\\":1}\"}},"
    "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"peek\","
    "\"arguments\":\"{}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"{\\\"r\\\":2}\"},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"plain\"},"
    "{\"role\":\"user\",\"content\":\"go on\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"look\",\"description\":"
    "\"L\",\"parameters\":{\"$schema\":\"x\",\"type\":\"object\","
    "\"additionalProperties\":"
    "false,\"properties\":{\"q\":{\"type\":\"integer\"},\"additionalProperties\":{"
    "\"type\":"
    "\"string\"}}}}},{\"type\":\"function\",\"function\":{\"name\":\"peek\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],"
    "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"look\"}}}";

Test(wire, upstream_openai)
{
    char path[128];
    json_t *c = J(k_canon);
    json_t *r =
        wire_upstream_request(WIRE_OPENAI, c, "gpt-4o", true, 0, path, sizeof path);
    cr_assert_str_eq(path, "/chat/completions");
    cr_assert_str_eq(at_str(r, "model"), "gpt-4o");
    cr_assert(json_is_true(at(r, "stream")));
    cr_assert(json_is_true(at(r, "stream_options.include_usage")));
    json_object_del(r, "model");
    json_object_del(r, "stream_options");
    json_object_del(c, "model");
    cr_assert(json_equal(r, c), "the rest is passed through unchanged");
    json_decref(r);
    r = wire_upstream_request(WIRE_OPENAI, c, "gpt-4o", false, 0, path, sizeof path);
    cr_assert(json_is_false(at(r, "stream")));
    cr_assert_null(at(r, "stream_options"));
    json_decref(r);
    json_decref(c);
}

Test(wire, upstream_anthropic)
{
    char path[128];
    json_t *c = J(k_canon);
    json_t *r = wire_upstream_request(WIRE_ANTHROPIC, c, "claude-s", false, 1000, path,
                                      sizeof path);
    cr_assert_str_eq(path, "/v1/messages");
    assert_json(
        r,
        "{\"model\":\"claude-s\",\"max_tokens\":64,\"system\":\"sys\\n\\ndev\","
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"what\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/"
        "jpeg\","
        "\"data\":\"AAAA\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"let me "
        "see\"},"
        "{\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"look\",\"input\":{\"q\":1}},"
        "{\"type\":\"tool_use\",\"id\":\"c2\",\"name\":\"peek\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"c1\","
        "\"content\":\"{\\\"r\\\":2}\"},{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"c2\","
        "\"content\":\"plain\"},{\"type\":\"text\",\"text\":\"go on\"}]}],"
        "\"temperature\":1.0,\"top_p\":0.8,\"stop_sequences\":[\"STOP\"],"
        "\"metadata\":{\"user_id\":\"u\"},"
        "\"tools\":[{\"name\":\"look\",\"description\":\"L\",\"input_schema\":{\"$"
        "schema\":"
        "\"x\",\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "\"q\":"
        "{\"type\":\"integer\"},\"additionalProperties\":{\"type\":\"string\"}}}},"
        "{\"name\":\"peek\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"look\"},\"stream\":false}");
    json_decref(r);
    /* No max tokens in canon: the default; streaming. */
    json_object_del(c, "max_tokens");
    r = wire_upstream_request(WIRE_ANTHROPIC, c, "claude-s", true, 1000, path,
                              sizeof path);
    cr_assert_eq(at_int(r, "max_tokens"), 1000);
    cr_assert(json_is_true(at(r, "stream")));
    json_decref(r);
    json_decref(c);
}

Test(wire, upstream_gemini)
{
    char path[128];
    json_t *c = J(k_canon);
    json_t *r = wire_upstream_request(WIRE_GEMINI, c, "gemini-2.5-flash", false, 0,
                                      path, sizeof path);
    cr_assert_str_eq(path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_json(
        r,
        "{\"systemInstruction\":{\"parts\":[{\"text\":\"sys\\n\\ndev\"}]},"
        "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"what\"},{"
        "\"inlineData\":"
        "{\"mimeType\":\"image/jpeg\",\"data\":\"AAAA\"}}]},"
        "{\"role\":\"model\",\"parts\":[{\"text\":\"let me see\"},{\"functionCall\":"
        "{\"name\":\"look\",\"args\":{\"q\":1}}},{\"functionCall\":{\"name\":\"peek\","
        "\"args\":{}}}]},"
        "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"look\","
        "\"response\":{\"r\":2}}},{\"functionResponse\":{\"name\":\"peek\","
        "\"response\":"
        "{\"output\":\"plain\"}}},{\"text\":\"go on\"}]}],"
        "\"generationConfig\":{\"maxOutputTokens\":64,\"temperature\":1.5,\"topP\":0.8,"
        "\"stopSequences\":[\"STOP\"]},"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"look\",\"description\":"
        "\"L\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":"
        "\"integer\"},"
        "\"additionalProperties\":{\"type\":\"string\"}}}},{\"name\":\"peek\"}]}],"
        "\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\","
        "\"allowedFunctionNames\":[\"look\"]}}}");
    json_decref(r);
    r = wire_upstream_request(WIRE_GEMINI, c, "models/gemini-pro", true, 0, path,
                              sizeof path);
    cr_assert_str_eq(path, "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse");
    cr_assert_null(at(r, "stream"));
    cr_assert_null(at(r, "model"));
    json_decref(r);
    json_decref(c);
}

Test(wire, upstream_ollama)
{
    char path[128];
    json_t *c = J(k_canon);
    json_t *r =
        wire_upstream_request(WIRE_OLLAMA, c, "llama3.1", false, 0, path, sizeof path);
    cr_assert_str_eq(path, "/api/chat");
    cr_assert(json_is_false(at(r, "stream")), "Ollama needs stream:false spelled out");
    assert_json(at(r, "options"),
                "{\"temperature\":1.5,\"top_p\":0.8,\"num_predict\":64,"
                "\"stop\":[\"STOP\"]}");
    assert_json(
        at(r, "messages"),
        "[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"system\",\"content\":"
        "\"dev\"},"
        "{\"role\":\"user\",\"content\":\"what\",\"images\":[\"AAAA\"]},"
        "{\"role\":\"assistant\",\"content\":\"let me see\",\"tool_calls\":["
        "{\"function\":{\"name\":\"look\",\"arguments\":{\"q\":1}}},"
        "{\"function\":{\"name\":\"peek\",\"arguments\":{}}}]},"
        "{\"role\":\"tool\",\"content\":\"{\\\"r\\\":2}\",\"tool_name\":\"look\"},"
        "{\"role\":\"tool\",\"content\":\"plain\",\"tool_name\":\"peek\"},"
        "{\"role\":\"user\",\"content\":\"go on\"}]");
    cr_assert_str_eq(at_str(r, "model"), "llama3.1");
    cr_assert_str_eq(at_str(r, "tools.0.function.name"), "look");
    json_decref(r);
    r = wire_upstream_request(WIRE_OLLAMA, c, "llama3.1", true, 0, path, sizeof path);
    cr_assert(json_is_true(at(r, "stream")));
    json_decref(r);
    json_decref(c);
}

/* An Anthropic caller's request survives the trip through the canonical
 * form to an Anthropic upstream. */
Test(wire, anthropic_round_trip)
{
    char err[256], path[64];
    const char *text =
        "{\"model\":\"m\",\"max_tokens\":7,\"system\":\"S\",\"stop_sequences\":[\"a\","
        "\"b\"],"
        "\"temperature\":0.25,\"stream\":true,"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"q\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"t\"},{"
        "\"type\":"
        "\"tool_use\",\"id\":\"x\",\"name\":\"f\",\"input\":{\"k\":[1,2]}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"x\","
        "\"content\":\"ok\"}]}],"
        "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"auto\"}}";
    json_t *req = J(text);
    json_t *c = wire_from_anthropic_request(req, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    json_t *r =
        wire_upstream_request(WIRE_ANTHROPIC, c, "m", true, 99, path, sizeof path);
    cr_assert(json_equal(r, req), "%s", json_dumps(r, JSON_COMPACT));
    json_decref(r);
    json_decref(c);
    json_decref(req);
}

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

Test(wire, response_openai)
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

Test(wire, response_anthropic)
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

Test(wire, response_gemini)
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

Test(wire, response_ollama)
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

Test(wire, response_rejects)
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

Test(wire, to_anthropic_response)
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

Test(wire, error_message)
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

/* ---- stream parsing ---- */

Test(wire, parse_openai_stream)
{
    const char *s =
        "data: "
        "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],"
        "\"usage\":null}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
        "\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"l\\u00f6 "
        "\\\"x\\\"\"},"
        "\"finish_reason\":null}]}\n\n"
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
        "\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":"
        "\"\"}}]},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]},\"finish_reason\":null}]}\n\n"
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":"
        "\"call_b\",\"function\":{\"name\":\"put\",\"arguments\":\"{\"}}]}}]}\n\n"
        /* Some servers repeat id and name on every delta of a call. */
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":"
        "\"call_b\",\"function\":{\"name\":\"put\",\"arguments\":\"}\"}}]}}]}\n\n"
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}"
        "\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,"
        "\"total_tokens\":12}}\n\n"
        "data: [DONE]\n\n";
    expect_stream(WIRE_OPENAI, s,
                  "T Hel\n"
                  "T l\xc3\xb6 \"x\"\n"
                  "C0 id get \n"
                  "C0 - - {\"a\":\n"
                  "C1 id put {\n"
                  "C1 - - }\n"
                  "F tool_calls\n"
                  "U 9 3\n");
}

Test(wire, parse_openai_stream_without_done_is_incomplete)
{
    int rc;
    bool complete;
    char *log =
        parse_both(WIRE_OPENAI,
                   "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}"
                   "\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{}}]}",
                   &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert_not(complete);
    cr_assert_str_eq(log, "T a\n");
    free(log);
}

Test(wire, parse_anthropic_stream)
{
    const char *s =
        "event: message_start\n"
        "data: "
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":"
        "\"message\","
        "\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"stop_reason\":null,"
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1,"
        "\"cache_read_input_tokens\":10}}}\n\n"
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_start\n"
        "data: "
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"text_delta\",\"text\":\"Hello\"}}\n\n"
        "event: content_block_stop\ndata: "
        "{\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\n"
        "data: "
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"P\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"aris\\\"}\"}}\n\n"
        "event: content_block_stop\ndata: "
        "{\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    expect_stream(WIRE_ANTHROPIC, s,
                  "T Hello\n"
                  "C0 id get_weather \n"
                  "C0 - - {\"city\": \"P\n"
                  "C0 - - aris\"}\n"
                  "F tool_calls\n"
                  "U 35 89\n");
}

Test(wire, parse_gemini_stream)
{
    /* Gemini ends its lines with CRLF. */
    const char *s =
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Once\"}],\"role\":"
        "\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,"
        "\"totalTokenCount\":8}}\r\n\r\n"
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" upon\"},"
        "{\"functionCall\":{\"name\":\"tell\",\"args\":{\"n\":1}}}],\"role\":\"model\"}"
        ","
        "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{"
        "\"promptTokenCount\":8,"
        "\"candidatesTokenCount\":5,\"totalTokenCount\":13}}\r\n\r\n";
    expect_stream(WIRE_GEMINI, s,
                  "T Once\n"
                  "T  upon\n"
                  "C0 id tell {\"n\":1}\n"
                  "F tool_calls\n"
                  "U 8 5\n");
    expect_stream(WIRE_GEMINI,
                  "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},"
                  "\"finishReason\":\"MAX_TOKENS\"}]}\r\n\r\n",
                  "T x\nF length\n");
    expect_stream(
        WIRE_GEMINI,
        "data: {\"candidates\":[{\"finishReason\":\"SAFETY\"}],\"usageMetadata\":"
        "{\"promptTokenCount\":4,\"candidatesTokenCount\":0}}\r\n\r\n",
        "F content_filter\nU 4 0\n");
}

Test(wire, parse_ollama_stream)
{
    const char *s =
        "{\"model\":\"llama\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},"
        "\"done\":false}\n"
        "{\"model\":\"llama\",\"message\":{\"role\":\"assistant\",\"content\":\" "
        "sky\"},"
        "\"done\":false}\r\n"
        "\n"
        "{\"model\":\"llama\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"done\":true,\"done_reason\":\"length\",\"total_duration\":1,"
        "\"prompt_eval_count\":26,\"eval_count\":290}\n";
    expect_stream(WIRE_OLLAMA, s, "T The\nT  sky\nF length\nU 26 290\n");
    expect_stream(
        WIRE_OLLAMA,
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
        "[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":\"y\"}}}]},"
        "\"done\":false}\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
        "\"done_reason\":\"stop\",\"prompt_eval_count\":1,\"eval_count\":2}\n",
        "C0 id f {\"x\":\"y\"}\nF tool_calls\nU 1 2\n");
}

Test(wire, sse_framing)
{
    /* Comments, an id field, a bare CR line end, CRLF, no space after the
     * colon, and one event's data spread over three lines. */
    const char *s = ": keep-alive\r\n"
                    "id: 7\r\n"
                    "data:{\"choices\":[{\"index\":0,\r"
                    "data: \"delta\":{\"content\":\"multi\"}\n"
                    "data: }]}\r\n"
                    "\r\n"
                    ":\n\n"
                    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"line\"},"
                    "\"finish_reason\":\"stop\"}]}\r\r"
                    "data: [DONE]\n\n";
    expect_stream(WIRE_OPENAI, s, "T multi\nT line\nF stop\n");
    /* CRLF between the data lines of one event: the LF must not end a line. */
    expect_stream(WIRE_OPENAI,
                  "data: {\"choices\":[{\"index\":0,\r\n"
                  "data: \"delta\":{\"content\":\"crlf\"}}]}\r\n\r\n"
                  "data: [DONE]\r\n\r\n",
                  "T crlf\n");
    /* The event name is taken from "event:" when the data has no type. */
    expect_stream(WIRE_ANTHROPIC, "event: message_stop\ndata: {}\n\n", "");
}

Test(wire, parse_errors_in_stream)
{
    int rc;
    char *log =
        parse_both(WIRE_ANTHROPIC,
                   "event: message_start\ndata: {\"type\":\"message_start\","
                   "\"message\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}"
                   "\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                   "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
                   &rc, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(log, "E Overloaded\n");
    free(log);
    log = parse_both(
        WIRE_OPENAI,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"error\":{\"message\":\"rate limited\",\"type\":\"x\"}}\n\n",
        &rc, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(log, "T a\nE rate limited\n");
    free(log);
    log = parse_both(
        WIRE_GEMINI,
        "data: {\"error\":{\"code\":500,\"message\":\"internal\"}}\r\n\r\n", &rc, NULL);
    cr_assert_str_eq(log, "E internal\n");
    free(log);
    log = parse_both(WIRE_OLLAMA, "{\"error\":\"out of memory\"}\n", &rc, NULL);
    cr_assert_str_eq(log, "E out of memory\n");
    free(log);
}

Test(wire, parser_rejects_invalid_streams)
{
    int rc;
    char *log = parse_both(WIRE_OPENAI,
                           "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                           "data: not json\n\n"
                           "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
                           &rc, NULL);
    cr_assert_eq(rc, -1);
    cr_assert_str_eq(log, "T a\n");
    free(log);
    log = parse_both(WIRE_OLLAMA, "{\"done\":fa\n", &rc, NULL);
    cr_assert_eq(rc, -1);
    free(log);
    log = parse_both(WIRE_ANTHROPIC,
                     "data: {\"type\":\"content_block_start\",\"index\":-1,"
                     "\"content_block\":{\"type\":\"text\"}}\n\n",
                     &rc, NULL);
    cr_assert_eq(rc, -1);
    free(log);

    /* A line longer than the bound fails, and stays failed. */
    size_t n = (1u << 20) + 16;
    char *big = malloc(n);
    memset(big, 'x', n);
    memcpy(big, "data: ", 6);
    wire_parser_t *p = wire_parser_new(WIRE_OPENAI);
    sbuf_t out = {0};
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i += 4096)
        r = wire_parser_feed(p, big + i, n - i < 4096 ? n - i : 4096, log_ev, &out);
    cr_assert_eq(r, -1);
    cr_assert_eq(wire_parser_feed(p, "\n\ndata: [DONE]\n\n", 16, log_ev, &out), -1);
    cr_assert_not(wire_parser_complete(p));
    wire_parser_destroy(&p);
    /* So does one event of many data lines adding up to more. */
    p = wire_parser_new(WIRE_OPENAI);
    memcpy(big + 4090, "\n", 1);
    size_t fed = 0;
    for (r = 0; r == 0 && fed < 2 * n; fed += 4091)
        r = wire_parser_feed(p, big, 4091, log_ev, &out);
    cr_assert_eq(r, -1, "the data of one event is bounded too");
    cr_assert_gt(fed, 1u << 20);
    wire_parser_destroy(&p);
    cr_assert_null(out.data);
    free(big);
}

/* ---- emitters ---- */

static void emit_all(wire_emitter_t *e, const wire_ev_t *evs, size_t n, sbuf_t *out)
{
    for (size_t i = 0; i < n; i++)
        wire_emit(e, &evs[i], out);
}

static const wire_ev_t k_events[] = {
    {.type = WIRE_EV_TEXT, .text = "Hi \"you\"", .len = 8},
    {.type = WIRE_EV_TEXT, .text = "!", .len = 1},
    {.type = WIRE_EV_TOOL,
     .index = 0,
     .tool_id = "call_1",
     .tool_name = "get",
     .text = "",
     .len = 0},
    {.type = WIRE_EV_TOOL, .index = 0, .text = "{\"a\":1}", .len = 7},
    {.type = WIRE_EV_TOOL,
     .index = 1,
     .tool_id = "call_2",
     .tool_name = "put",
     .text = "{}",
     .len = 2},
    {.type = WIRE_EV_FINISH, .finish_reason = "tool_calls"},
    {.type = WIRE_EV_USAGE,
     .usage = {.input_tokens = 5, .output_tokens = 6, .present = true}},
};

Test(wire, emit_openai)
{
    sbuf_t out = {0};
    wire_emitter_t *e = wire_emitter_new(WIRE_OPENAI, "chatcmpl-9", "gpt-x", true, 100);
    cr_assert_not(wire_emitter_started(e));
    emit_all(e, k_events, 1, &out);
    cr_assert(wire_emitter_started(e));
    /* The opening chunk carries the role, then the first text. */
    char want[512];
    long created = 0;
    cr_assert_eq(sscanf(out.data,
                        "data: {\"id\":\"chatcmpl-9\",\"object\":"
                        "\"chat.completion.chunk\",\"created\":%ld",
                        &created),
                 1);
    snprintf(
        want, sizeof want,
        "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":"
        "%ld,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":"
        "%ld,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"Hi \\\"you\\\"\"},\"finish_reason\":null}]}\n\n",
        created, created);
    cr_assert_str_eq(out.data, want);
    emit_all(e, k_events + 1, 6, &out);
    wire_usage_t final = {.input_tokens = 50, .output_tokens = 60, .present = true};
    wire_emit_end(e, &final, &out);
    wire_emit_end(e, &final, &out); /* idempotent */
    const char *tail = "data: [DONE]\n\n";
    cr_assert_str_eq(out.data + out.len - strlen(tail), tail);
    cr_assert(strstr(out.data, "\"choices\":[],\"usage\":{\"prompt_tokens\":50,"
                               "\"completion_tokens\":60,\"total_tokens\":110}}\n\n"),
              "%s", out.data);
    cr_assert(strstr(out.data, "{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
                               "\"function\":{\"name\":\"get\",\"arguments\":\"\"}}"));
    /* What we emit parses back into the same events. */
    int rc;
    bool complete;
    char *log = parse_both(WIRE_OPENAI, out.data, &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert(complete);
    cr_assert_str_eq(log,
                     "T Hi \"you\"\nT !\nC0 id get \nC0 - - {\"a\":1}\nC1 id put {}\n"
                     "F tool_calls\nU 50 60\n");
    free(log);
    wire_emitter_destroy(&e);
    cr_assert_null(e);
    sbuf_free(&out);
}

Test(wire, emit_openai_without_usage_or_events)
{
    sbuf_t out = {0};
    wire_emitter_t *e = wire_emitter_new(WIRE_OPENAI, "i", "m", false, 0);
    wire_emit_end(e, NULL, &out);
    cr_assert_null(strstr(out.data, "\"usage\""));
    int rc;
    bool complete;
    char *log = parse_both(WIRE_OPENAI, out.data, &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert(complete);
    cr_assert_str_eq(log, "F stop\n");
    cr_assert(strstr(out.data, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"));
    free(log);
    wire_emitter_destroy(&e);
    wire_emitter_destroy(&e);
    wire_emitter_destroy(NULL);
    cr_assert_null(wire_emitter_new(WIRE_GEMINI, "i", "m", false, 0));
    sbuf_free(&out);
}

/* The names of the SSE events in out, space-separated. */
static char *event_names(const char *out)
{
    sbuf_t b = {0};
    for (const char *s = strstr(out, "event: "); s; s = strstr(s + 1, "\nevent: ")) {
        s += *s == '\n';
        sbuf_printf(&b, "%s%.*s", b.len ? " " : "", (int)strcspn(s + 7, "\n"), s + 7);
    }
    return sbuf_steal(&b);
}

Test(wire, emit_anthropic)
{
    sbuf_t out = {0};
    wire_emitter_t *e = wire_emitter_new(WIRE_ANTHROPIC, "msg_1", "claude", false, 42);
    emit_all(e, k_events, 1, &out);
    cr_assert_str_eq(
        out.data,
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
        "\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\","
        "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
        "{\"input_tokens\":42,\"output_tokens\":0}}}\n\n"
        "event: content_block_start\ndata: "
        "{\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: "
        "{\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"you\\\"\"}}\n\n");
    emit_all(e, k_events + 1, 6, &out);
    wire_emit_end(e, NULL, &out); /* the USAGE event's counts */
    char *names = event_names(out.data);
    cr_assert_str_eq(names,
                     "message_start content_block_start content_block_delta "
                     "content_block_delta content_block_stop content_block_start "
                     "content_block_delta content_block_stop content_block_start "
                     "content_block_delta content_block_stop message_delta "
                     "message_stop");
    free(names);
    cr_assert(strstr(out.data,
                     "\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_1\","
                     "\"name\":\"get\",\"input\":{}}"));
    cr_assert(strstr(out.data,
                     "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
                     "\"{\\\"a\\\":1}\"}"));
    cr_assert(strstr(out.data,
                     "event: message_delta\ndata: {\"type\":\"message_delta\","
                     "\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":"
                     "null},\"usage\":{\"output_tokens\":6,\"input_tokens\":5}}"));
    const char *stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    cr_assert_str_eq(out.data + out.len - strlen(stop), stop);
    int rc;
    bool complete;
    char *log = parse_both(WIRE_ANTHROPIC, out.data, &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert(complete);
    cr_assert_str_eq(log,
                     "T Hi \"you\"\nT !\nC0 id get \nC0 - - {\"a\":1}\nC1 id put \n"
                     "C1 - - {}\nF tool_calls\nU 5 6\n");
    free(log);
    wire_emitter_destroy(&e);
    sbuf_free(&out);
}

Test(wire, emit_anthropic_finish_and_usage)
{
    static const char *const map[][2] = {
        {"stop", "end_turn"}, {"length", "max_tokens"}, {"content_filter", "refusal"}};
    for (size_t i = 0; i < 3; i++) {
        sbuf_t out = {0};
        wire_emitter_t *e = wire_emitter_new(WIRE_ANTHROPIC, "m", "c", false, 7);
        wire_ev_t ev = {.type = WIRE_EV_FINISH, .finish_reason = map[i][0]};
        wire_emit(e, &ev, &out);
        wire_emit_end(e, NULL, &out);
        char want[160];
        snprintf(want, sizeof want,
                 "{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                 "\"usage\":{\"output_tokens\":0,\"input_tokens\":7}}",
                 map[i][1]);
        cr_assert(strstr(out.data, want), "%s", out.data);
        cr_assert_null(strstr(out.data, "content_block_start"));
        wire_emitter_destroy(&e);
        sbuf_free(&out);
    }
    /* A caller's estimate (no upstream usage) is reported as given. */
    sbuf_t out = {0};
    wire_emitter_t *e = wire_emitter_new(WIRE_ANTHROPIC, "m", "c", false, 7);
    wire_usage_t est = {.input_tokens = 30, .output_tokens = 12, .present = false};
    wire_emit_end(e, &est, &out);
    cr_assert(strstr(out.data, "\"usage\":{\"output_tokens\":12,\"input_tokens\":30}"),
              "%s", out.data);
    wire_emitter_destroy(&e);
    sbuf_free(&out);
}

/* Anthropic's stream cannot reopen a closed tool_use block: a late delta of
 * an earlier parallel call is dropped rather than sent to the wrong block. */
Test(wire, emit_anthropic_interleaved_tools)
{
    sbuf_t out = {0};
    wire_emitter_t *e = wire_emitter_new(WIRE_ANTHROPIC, "m", "c", false, 0);
    const wire_ev_t evs[] = {
        {.type = WIRE_EV_TOOL,
         .index = 0,
         .tool_id = "a",
         .tool_name = "f",
         .text = "{",
         .len = 1},
        {.type = WIRE_EV_TOOL,
         .index = 1,
         .tool_id = "b",
         .tool_name = "g",
         .text = "{",
         .len = 1},
        {.type = WIRE_EV_TOOL, .index = 0, .text = "}", .len = 1},
        {.type = WIRE_EV_TOOL, .index = 1, .text = "}", .len = 1},
    };
    emit_all(e, evs, 4, &out);
    wire_emit_end(e, NULL, &out);
    int rc;
    char *log = parse_both(WIRE_ANTHROPIC, out.data, &rc, NULL);
    cr_assert_str_eq(log, "C0 id f \nC0 - - {\nC1 id g \nC1 - - {\nC1 - - }\nF stop\n"
                          "U 0 0\n");
    free(log);
    wire_emitter_destroy(&e);
    sbuf_free(&out);
}

Test(wire, emit_errors)
{
    sbuf_t out = {0};
    wire_emitter_t *e = wire_emitter_new(WIRE_OPENAI, "i", "m", true, 0);
    wire_ev_t t = {.type = WIRE_EV_TEXT, .text = "a", .len = 1};
    wire_emit(e, &t, &out);
    wire_ev_t err = {.type = WIRE_EV_ERROR, .text = "boom!", .len = 4};
    wire_emit(e, &err, &out);
    wire_emit_end(e, NULL, &out); /* nothing more after an error */
    wire_emit(e, &t, &out);
    const char *tail =
        "data: {\"error\":{\"message\":\"boom\",\"type\":\"upstream_error\"}}"
        "\n\ndata: [DONE]\n\n";
    cr_assert_str_eq(out.data + out.len - strlen(tail), tail);
    int rc;
    char *log = parse_both(WIRE_OPENAI, out.data, &rc, NULL);
    cr_assert_str_eq(log, "T a\nE boom\n");
    free(log);
    wire_emitter_destroy(&e);
    sbuf_reset(&out);

    e = wire_emitter_new(WIRE_ANTHROPIC, "i", "m", false, 0);
    wire_emit_error(e, "upstream said \"no\"", &out);
    cr_assert(wire_emitter_started(e));
    cr_assert_str_eq(out.data,
                     "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                     "\"api_error\",\"message\":\"upstream said \\\"no\\\"\"}}\n\n");
    wire_emit_end(e, NULL, &out);
    cr_assert_null(strstr(out.data, "message_stop"));
    log = parse_both(WIRE_ANTHROPIC, out.data, &rc, NULL);
    cr_assert_str_eq(log, "E upstream said \"no\"\n");
    free(log);
    wire_emitter_destroy(&e);
    sbuf_free(&out);
}

/* Upstream stream of one kind -> parser -> emitter of another -> parsed
 * again as the caller would. */
typedef struct relay {
    wire_emitter_t *e;
    sbuf_t *out;
} relay_t;

static void relay_ev(const wire_ev_t *ev, void *ud)
{
    relay_t *r = ud;
    wire_emit(r->e, ev, r->out);
}

static char *relay(wire_kind_t from, wire_kind_t to, const char *stream)
{
    sbuf_t out = {0};
    relay_t r = {wire_emitter_new(to, "id", "m", true, 3), &out};
    wire_parser_t *p = wire_parser_new(from);
    for (size_t i = 0; stream[i]; i++)
        cr_assert_eq(wire_parser_feed(p, stream + i, 1, relay_ev, &r), 0);
    cr_assert(wire_parser_complete(p));
    wire_emit_end(r.e, NULL, &out);
    int rc;
    bool complete;
    char *log = parse_both(to, out.data, &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert(complete);
    wire_parser_destroy(&p);
    wire_emitter_destroy(&r.e);
    sbuf_free(&out);
    return log;
}

Test(wire, relay_between_kinds)
{
    char *log =
        relay(WIRE_GEMINI, WIRE_ANTHROPIC,
              "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"},"
              "{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},\"finishReason\":"
              "\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":2,"
              "\"candidatesTokenCount\":1}}\r\n\r\n");
    cr_assert_str_eq(log, "T a\nC0 id f \nC0 - - {}\nF tool_calls\nU 2 1\n");
    free(log);
    log =
        relay(WIRE_OLLAMA, WIRE_OPENAI,
              "{\"message\":{\"content\":\"x\"},\"done\":false}\n"
              "{\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\","
              "\"prompt_eval_count\":4,\"eval_count\":1}\n");
    cr_assert_str_eq(log, "T x\nF stop\nU 4 1\n");
    free(log);
    log = relay(WIRE_ANTHROPIC, WIRE_OPENAI,
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                "{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
                "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"yo\"}}\n\n"
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                "{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":2}}\n\n"
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    cr_assert_str_eq(log, "T yo\nF length\nU 9 2\n");
    free(log);
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

Test(wire, anthropic_final_assistant_turn_may_be_empty)
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
