/* test_wire_scan.c - unit tests for the usage of an OpenAI answer read
 * from its bytes (wire_scan.c): the plain objects it reads itself give the
 * answers jansson, its reference, gives. (What the scan accepts and
 * refuses as an answer: test_wire_response.c.) */
#define _GNU_SOURCE
#include "wire_test.h"
#include "base.h"

/* The usage of {"choices":[{"message":{}}],"usage":<usage>}. */
static wire_usage_t s_scan(const char *usage)
{
    sbuf_t b = {0};
    sbuf_printf(&b, "{\"choices\":[{\"message\":{}}],\"usage\":%s}", usage);
    wire_usage_t u = {-1, -1, false, false};
    cr_assert_eq(wire_openai_scan_usage(b.data, b.len, &u), 0, "%s", b.data);
    sbuf_free(&b);
    return u;
}

/* The same usage with an escape in a member of its own, which sends it to
 * jansson: "\u0078" is "x", a member no count reads. */
static wire_usage_t s_scan_jansson(const char *usage)
{
    sbuf_t b = {0};
    const char *rest = usage + 1;
    while (*rest == ' ')
        rest++;
    sbuf_printf(&b, "{\"\\u0078\":0%s%s", *rest == '}' ? "" : ",", rest);
    wire_usage_t u = s_scan(b.data);
    sbuf_free(&b);
    return u;
}

static void s_same(const char *usage)
{
    wire_usage_t a = s_scan(usage), b = s_scan_jansson(usage);
    cr_assert(a.present == b.present && a.unreadable == b.unreadable &&
                  a.input_tokens == b.input_tokens &&
                  a.output_tokens == b.output_tokens,
              "%s: read %d/%d %ld %ld, jansson %d/%d %ld %ld", usage, a.present,
              a.unreadable, a.input_tokens, a.output_tokens, b.present, b.unreadable,
              b.input_tokens, b.output_tokens);
}

Test(wire_scan, plain_objects_read_as_jansson_reads_them)
{
    static const char *const cases[] = {
        "{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}",
        "{\"prompt_tokens\":-5,\"completion_tokens\":1e30,"
        "\"total_tokens\":99999999999999999999999}",
        "{\"prompt_tokens\":\"10\",\"completion_tokens\":\"20\"}",
        "{\"prompt_tokens\":10,\"completion_tokens\":[20]}",
        "{\"prompt_tokens\":null,\"completion_tokens\":3}",
        "{\"prompt_tokens\":1,\"prompt_tokens\":2,\"completion_tokens\":3}",
        "{\"prompt_tokens\":1,\"completion_tokens\":2,\"completion_tokens\":null}",
        "{\"prompt_tokens\":1,}",
        "{\"prompt_tokens\":1e400,\"completion_tokens\":2}",
        "{\"completion_tokens\":5,\"total_tokens\":-1e999}",
        "{\"a\":{\"b\":[1,2,{\"c\":\"d\"}]},\"prompt_tokens\":4.7,"
        "\"completion_tokens\":true}",
        "{ \"prompt_tokens\" : 3 ,\n \"completion_tokens\"\t:4 }",
        "{}",
        "{\"prompt_tokens\":0.5,\"completion_tokens\":100000000000}",
        "{\"completion_tokens\":-0,\"prompt_tokens\":1E2}",
        "{\"prompt_tokens\":12,\"completion_tokens\":3,\"s\":\"\xc3\xa9\"}",
        "{\"prompt_tokens\":12,\"s\":\"\x01\"}",
        "{\"prompt_tokens\":12,\"s\":\"\xff\"}",
        "{\"prompt_tokens\":12,\"completion_tokens\":3",
        "{\"prompt_tokens\":{\"n\":1},\"completion_tokens\":false}",
        "{\"prompt_tokens\":12 \"completion_tokens\":3}",
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        s_same(cases[i]);
}

Test(wire_scan, what_the_plain_reader_gives)
{
    wire_usage_t u = s_scan("{\"prompt_tokens\":11,\"completion_tokens\":7}");
    cr_assert(u.present && !u.unreadable && u.input_tokens == 11 &&
              u.output_tokens == 7);
    u = s_scan("{\"prompt_tokens\":1,\"prompt_tokens\":2,\"completion_tokens\":3}");
    cr_assert(u.present && u.input_tokens == 2, "the last of a repeated key");
    u = s_scan("{\"prompt_tokens\":1e400,\"completion_tokens\":2}");
    cr_assert(!u.present && !u.unreadable, "a number no double holds: no usage");
    u = s_scan("{\"prompt_tokens\":10,\"completion_tokens\":\"20\"}");
    cr_assert(u.present && u.unreadable && u.input_tokens == 10);
    u = s_scan("{\"prompt_tokens\":12,\"s\":\"\x01\"}");
    cr_assert(!u.present, "an object that does not parse: no usage");
}

/* Long numbers (a count of 401 digits) and deep nesting are jansson's. */
Test(wire_scan, long_numbers_and_deep_objects_go_to_jansson)
{
    sbuf_t b = {0};
    sbuf_puts(&b, "{\"prompt_tokens\":1");
    for (int i = 0; i < 400; i++)
        sbuf_puts(&b, "0");
    sbuf_puts(&b, ",\"completion_tokens\":2}");
    wire_usage_t u = s_scan(b.data);
    cr_assert(!u.present, "overflows a double: no usage");
    s_same(b.data);
    sbuf_reset(&b);
    sbuf_puts(&b, "{\"prompt_tokens\":3,\"deep\":");
    for (int i = 0; i < 600; i++)
        sbuf_puts(&b, "[");
    for (int i = 0; i < 600; i++)
        sbuf_puts(&b, "]");
    sbuf_puts(&b, ",\"completion_tokens\":4}");
    u = s_scan(b.data);
    cr_assert(u.present && u.input_tokens == 3 && u.output_tokens == 4);
    s_same(b.data);
    sbuf_free(&b);
}

/* A key-like text inside a string (after escaped quotes and backslashes)
 * is never taken for a member; counts of up to 15 digits (read without
 * strtod) and longer ones give what jansson gives. */
Test(wire_scan, escaped_quotes_hide_keys_and_long_counts_read_exactly)
{
    static const char body[] =
        "{\"x\":\"a\\\\\\\",\\\"usage\\\":{\\\"prompt_tokens\\\":5}, \\\\\","
        "\"choices\":[{\"message\":{}}],\"usage\":{\"prompt_tokens\":7,\"completion_"
        "tokens\":1}}";
    wire_usage_t u = {0};
    cr_assert_eq(wire_openai_scan_usage(body, sizeof body - 1, &u), 0);
    cr_assert(u.present && u.input_tokens == 7 && u.output_tokens == 1, "read %ld %ld",
              u.input_tokens, u.output_tokens);
    static const char *const cases[] = {
        "{\"prompt_tokens\":123456789012345,\"completion_tokens\":99999999999999}",
        "{\"prompt_tokens\":1234567890123456,\"completion_tokens\":-0}",
        "{\"prompt_tokens\":-123456789012345,\"completion_tokens\":000}",
        "{\"prompt_tokens\":12.0,\"completion_tokens\":1e3,\"s\":\"\\\"\\\\\"}",
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        s_same(cases[i]);
    u = s_scan("{\"prompt_tokens\":12345678,\"completion_tokens\":-7}");
    cr_assert(u.present && u.input_tokens == 12345678 && u.output_tokens == 0);
}
