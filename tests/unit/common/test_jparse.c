/* test_jparse.c - unit tests for the fast path of request bodies
 * (jparse.c): every tree it returns is the one jansson's json_loadb makes
 * of the same text (same types, values, member order), it takes the usual
 * bodies, and what jansson refuses it leaves to jansson. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jparse.h"

/* jansson's tree and ours, as compact text ("-" when none). */
static void s_both(const char *text, size_t len, char **ours, char **ref)
{
    json_t *a = jparse_load(text, len), *b = json_loadb(text, len, 0, NULL);
    size_t f = JSON_COMPACT | JSON_ENCODE_ANY;
    *ours = a ? json_dumps(a, f) : strdup("-");
    *ref = b ? json_dumps(b, f) : strdup("-");
    json_decref(a);
    json_decref(b);
}

/* Taken by the fast path, and as jansson reads it. */
static void s_taken(const char *text)
{
    char *ours, *ref;
    s_both(text, strlen(text), &ours, &ref);
    cr_assert_str_neq(ours, "-", "not taken: %s", text);
    cr_assert_str_eq(ours, ref, "%s", text);
    free(ours);
    free(ref);
}

/* Left to jansson (or read the same). */
static void s_same(const char *text, size_t len)
{
    char *ours, *ref;
    s_both(text, len, &ours, &ref);
    cr_assert(strcmp(ours, "-") == 0 || strcmp(ours, ref) == 0, "%.*s: %s, jansson %s",
              (int)len, text, ours, ref);
    free(ours);
    free(ref);
}

Test(jparse, usual_bodies_are_taken_and_read_as_jansson_reads_them)
{
    static const char *const docs[] = {
        "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        " { \"a\" : [ 1 , -2 , 0 , -0 , 3.5 , -1e-3 , 2E+10 , 1e-400 ] } \n",
        "{\"s\":\"line\\nbreak \\\"q\\\" \\\\ \\/ \\b\\f\\r\\t \\u00e9 \\ud83d\\ude00 \\u4e2d\"}",
        "{\"\\u006bey\":1,\"k\\ney\":{\"x\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"}}",
        "{\"dup\":1,\"other\":2,\"dup\":3}",
        "[true,false,null,{},[],\"\",{\"\":\"\"}]",
        "{\"max\":999999999999999999,\"min\":-999999999999999999,\"t\":0.7}",
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",
        "{\"del\":\"\x7f\",\"esc\":\"\\u0001\\u001f\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        s_taken(docs[i]);
}

Test(jparse, what_jansson_refuses_or_we_do_not_take_is_left_to_it)
{
    static const char *const docs[] = {
        "",         "   ",        "1",           "\"s\"",        "null",
        "{",        "{\"a\"}",    "{\"a\":}",    "{\"a\":1,}",   "[1,]",
        "[01]",     "[1.]",       "[.5]",        "[+1]",         "[-]",
        "[1e]",     "[1e+]",      "[tru]",       "[truex]",      "[nul]",
        "{\"a\":1}x", "{} {}",    "[\"\\x\"]",   "[\"\\u12\"]",  "[\"\\u0000\"]",
        "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"a\nb\"]",
        "[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]",
        "[\"\xe2\x82\"]", "[1e400]",  "[-1e400]",    "[1234567890123456789]", "[12345678901234567890]", "[9223372036854775807]",
        "[-9223372036854775808]", "[9223372036854775808]", "{1:2}", "['a']",
        "\xef\xbb\xbf{}", "[1]\x01",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        s_same(docs[i], strlen(docs[i]));
    s_same("{\"a\":1}\0", 8);
    s_same("[\"a\0b\"]", 7);
    char deep[2 * JPARSE_MAX_DEPTH + 8];
    memset(deep, '[', JPARSE_MAX_DEPTH + 1);
    memset(deep + JPARSE_MAX_DEPTH + 1, ']', JPARSE_MAX_DEPTH + 1);
    s_same(deep, 2 * JPARSE_MAX_DEPTH + 2);
    json_t *t = jparse_load(deep, 2 * JPARSE_MAX_DEPTH + 2);
    cr_assert_null(t, "deeper than JPARSE_MAX_DEPTH: left to jansson");
}

/* A random tree of depth at most d. */
static json_t *s_random(unsigned *seed, int d)
{
    static const char *const words[] = {"a", "", "role", "h\xc3\xa9", "\xe4\xb8\xad",
                                        "q\"", "b\\s", "n\nl", "\xf0\x9f\x98\x80",
                                        "\x01", "tab\t", "model"};
    int k = rand_r(seed) % (d > 0 ? 9 : 6);
    json_t *v;
    switch (k) {
    case 0: return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) % 3 - 1));
    case 1: return json_real((double)rand_r(seed) / (rand_r(seed) + 1.0) - 5);
    case 2: return json_string(words[rand_r(seed) % 12]);
    case 3: return rand_r(seed) % 2 ? json_true() : json_false();
    case 4: return json_null();
    case 5: return json_integer((json_int_t)rand_r(seed) << 30);
    case 6:
    case 7:
        v = json_object();
        for (int i = rand_r(seed) % 5; i > 0; i--)
            json_object_set_new(v, words[rand_r(seed) % 12], s_random(seed, d - 1));
        return v;
    default:
        v = json_array();
        for (int i = rand_r(seed) % 5; i > 0; i--)
            json_array_append_new(v, s_random(seed, d - 1));
        return v;
    }
}

/* Random trees, written compact, indented or all ASCII (\u escapes), then
 * as they are and with a byte changed, cut or doubled: whatever the fast
 * path returns is what jansson returns. */
Test(jparse, random_texts_read_as_jansson_reads_them)
{
    unsigned seed = 20261203;
    size_t taken = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *t = json_object();
        json_object_set_new(t, "v", s_random(&seed, 4));
        size_t flags = i % 3 == 0   ? JSON_COMPACT
                       : i % 3 == 1 ? JSON_INDENT(rand_r(&seed) % 3)
                                    : JSON_ENSURE_ASCII | JSON_COMPACT;
        char *text = json_dumps(t, flags);
        json_decref(t);
        size_t len = strlen(text);
        json_t *a = jparse_load(text, len);
        taken += a != NULL;
        json_decref(a);
        s_same(text, len);
        size_t at = (size_t)rand_r(&seed) % len;
        static const char bytes[] = "\"\\{}[],:01-.eE \x80\xc3\xed\x00u";
        text[at] = bytes[rand_r(&seed) % (sizeof bytes - 1)];
        s_same(text, len);
        s_same(text, at);
        free(text);
    }
    cr_assert_gt(taken, 19000, "the fast path took %zu of 20000 valid texts", taken);
}
