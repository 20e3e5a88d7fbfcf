/* test_wire_upstream_gemini.c - unit tests for the canonical request
 * rendered for a Gemini upstream (wire_upstream_gemini.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

Test(wire_upstream_gemini, upstream_gemini)
{
    char path[128];
    json_t *c = J(K_CANON);
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
