/* test_wire_check.c - unit tests for the check of a whole answer before it
 * is relayed (wire_check.c): one JSON text in well-formed UTF-8, agreeing
 * with jansson on every case but numbers no machine type holds. */
#include "wire_test.h"

static bool s_valid(const char *text)
{
    return wire_json_valid(text, strlen(text));
}

/* jansson's verdict: the decoder every other path of the router uses. */
static bool s_jansson(const char *text)
{
    json_t *j = json_loadb(text, strlen(text), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_decref(j);
    return j != NULL;
}

Test(wire_check, valid_json)
{
    static const char *ok[] = {
        "{}",
        "[]",
        " {\"a\" : [1, -2.5e+3, 0, 0.0, true, false, null, \"x\"]}\n",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
        "0",
        "-0",
        "1E9",
        "\"\\u0000\"",
        "{\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_assert(s_valid(ok[i]), "refused: %s", ok[i]);
        cr_assert(s_jansson(ok[i]), "jansson refuses: %s", ok[i]);
    }
    /* A number no machine type holds is still JSON (the usage scan then
     * finds it unreadable); jansson cannot decode it. */
    cr_assert(s_valid("{\"n\":1"
                      "00000000000000000000000000000000000000000000}"));
}

Test(wire_check, invalid_json_or_utf8)
{
    static const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1}}",
        "{\"a\":1} x",
        "[1 2]",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "tru",
        "nul",
        "\"abc",
        "\"a\tb\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83d\\u0041\"",
        "\"\xff\"",
        "\"\xc3\"",
        "\"\xc0\xaf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\x80\"",
        "\xef\xbb\xbf{}",
        "{\"a\":\"x\"\xff}",
        "NaN",
        "[Infinity]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_not(s_valid(bad[i]), "accepted case %zu: %s", i, bad[i]);
        cr_assert_not(s_jansson(bad[i]), "jansson accepts case %zu: %s", i, bad[i]);
    }
    cr_assert_not(wire_json_valid(NULL, 0));
    /* A NUL byte is no JSON outside a string, nor raw inside one. */
    cr_assert_not(wire_json_valid("{}\0", 3));
    cr_assert_not(wire_json_valid("\"a\0b\"", 5));
}

Test(wire_check, nesting_is_bounded)
{
    size_t depth = 600;
    char *s = malloc(2 * depth + 1);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    cr_assert_not(s_valid(s), "600 levels accepted");
    size_t ok = 500;
    memset(s, '[', ok);
    memset(s + ok, ']', ok);
    s[2 * ok] = '\0';
    cr_assert(s_valid(s), "500 levels refused");
    free(s);
}
