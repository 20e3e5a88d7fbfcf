/* test_wire_upstream_anthropic.c - unit tests for the canonical request
 * rendered for an Anthropic upstream (wire_upstream_anthropic.c), and an
 * Anthropic caller's request surviving the trip through the canonical form. */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

Test(wire_upstream_anthropic, upstream_anthropic)
{
    char path[128];
    json_t *c = J(K_CANON);
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

/* An Anthropic caller's request survives the trip through the canonical
 * form to an Anthropic upstream. */
Test(wire_upstream_anthropic, anthropic_round_trip)
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
