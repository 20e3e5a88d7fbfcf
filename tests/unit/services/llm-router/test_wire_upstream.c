/* test_wire_upstream.c - unit tests for the canonical request rendered for
 * an OpenAI upstream (wire_upstream.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

Test(wire_upstream, upstream_openai)
{
    char path[128];
    json_t *c = J(K_CANON);
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
