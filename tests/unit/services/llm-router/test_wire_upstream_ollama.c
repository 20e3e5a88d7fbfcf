/* test_wire_upstream_ollama.c - unit tests for the canonical request
 * rendered for an Ollama upstream (wire_upstream_ollama.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

Test(wire_upstream_ollama, upstream_ollama)
{
    char path[128];
    json_t *c = J(K_CANON);
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
