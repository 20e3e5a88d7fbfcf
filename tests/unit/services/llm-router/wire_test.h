/* wire_test.h - what the wire_* unit tests share: JSON fixtures and
 * comparisons, a path reader, and a stream parser run that checks feeding
 * all at once and one byte at a time give the same events. Header only
 * (static inline, so a test file that does not use a helper pays nothing). */
#ifndef VAPORA_TEST_WIRE_TEST_H
#define VAPORA_TEST_WIRE_TEST_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "sbuf.h"

static inline json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    cr_assert_not_null(v, "bad test JSON (%s): %s", e.text, text);
    return v;
}

/* Asserts that got equals the JSON text want (key order ignored). */
static inline void assert_json(const json_t *got, const char *want)
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
static inline json_t *at(const json_t *v, const char *path)
{
    char *copy = strdup(path), *save = NULL;
    json_t *cur = (json_t *)v;
    for (char *k = strtok_r(copy, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(k, NULL, 10))
                                 : json_object_get(cur, k);
    free(copy);
    return cur;
}

static inline const char *at_str(const json_t *v, const char *path)
{
    return json_string_value(at(v, path));
}

static inline long long at_int(const json_t *v, const char *path)
{
    json_t *x = at(v, path);
    cr_assert(json_is_integer(x), "%s is not an integer", path);
    return json_integer_value(x);
}

/* Canonical events rendered as one line each, for comparison. */
static inline void log_ev(const wire_ev_t *ev, void *ud)
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
static inline char *parse_both(wire_kind_t kind, const char *stream, int *rc,
                               bool *complete)
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

static inline void expect_stream(wire_kind_t kind, const char *stream, const char *want)
{
    int rc;
    bool complete;
    char *log = parse_both(kind, stream, &rc, &complete);
    cr_assert_eq(rc, 0);
    cr_assert(complete, "stream not complete");
    cr_assert_str_eq(log, want);
    free(log);
}

/* A canonical request with every feature the renderers translate (the
 * upstream_* tests render it for each kind). */
#define K_CANON                                                                        \
    "{\"model\":\"auto\",\"max_tokens\":64,\"temperature\":1.5,\"top_p\":0.8,"         \
    "\"stop\":\"STOP\",\"stream\":true,\"user\":\"u\","                                \
    "\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"                         \
    "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"dev\"}]},"     \
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what\"},"           \
    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/"                     \
    "jpeg;base64,AAAA\"}}]},"                                                          \
    "{\"role\":\"assistant\",\"content\":\"let me see\",\"tool_calls\":["              \
    "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"look\","            \
    "\"arguments\":\"{\\\"q\\\":1}\"}},"                                               \
    "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"peek\","            \
    "\"arguments\":\"{}\"}}]},"                                                        \
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"{\\\"r\\\":2}\"},"       \
    "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"plain\"},"               \
    "{\"role\":\"user\",\"content\":\"go on\"}],"                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"look\","               \
    "\"description\":"                                                                 \
    "\"L\",\"parameters\":{\"$schema\":\"x\",\"type\":\"object\","                     \
    "\"additionalProperties\":"                                                        \
    "false,\"properties\":{\"q\":{\"type\":\"integer\"},\"additionalProperties\":{"    \
    "\"type\":"                                                                        \
    "\"string\"}}}}},{\"type\":\"function\",\"function\":{\"name\":\"peek\","          \
    "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],"                       \
    "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"look\"}}}"

#endif
