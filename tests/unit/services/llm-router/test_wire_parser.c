/* test_wire_parser.c - unit tests for stream parsing of each kind, fed whole
 * and one byte at a time, SSE framing and invalid streams (wire_parser.c). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

/* ---- stream parsing ---- */

Test(wire_parser, parse_openai_stream)
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

Test(wire_parser, parse_openai_stream_without_done_is_incomplete)
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

Test(wire_parser, parse_anthropic_stream)
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

Test(wire_parser, parse_gemini_stream)
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

Test(wire_parser, parse_ollama_stream)
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

Test(wire_parser, sse_framing)
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

Test(wire_parser, parse_errors_in_stream)
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

Test(wire_parser, parser_rejects_invalid_streams)
{
    int rc;
    char *log = parse_both(WIRE_OPENAI,
                           "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                           "data: not json\n\n"
                           "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
                           &rc, NULL);
    cr_assert_eq(rc, VP_EPARSE);
    cr_assert_str_eq(log, "T a\n");
    free(log);
    log = parse_both(WIRE_OLLAMA, "{\"done\":fa\n", &rc, NULL);
    cr_assert_eq(rc, VP_EPARSE);
    free(log);
    log = parse_both(WIRE_ANTHROPIC,
                     "data: {\"type\":\"content_block_start\",\"index\":-1,"
                     "\"content_block\":{\"type\":\"text\"}}\n\n",
                     &rc, NULL);
    cr_assert_eq(rc, VP_EPARSE);
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
    cr_assert_eq(r, VP_EPARSE);
    cr_assert_eq(wire_parser_feed(p, "\n\ndata: [DONE]\n\n", 16, log_ev, &out),
                 VP_EPARSE);
    cr_assert_not(wire_parser_complete(p));
    wire_parser_destroy(&p);
    /* So does one event of many data lines adding up to more. */
    p = wire_parser_new(WIRE_OPENAI);
    memcpy(big + 4090, "\n", 1);
    size_t fed = 0;
    for (r = 0; r == 0 && fed < 2 * n; fed += 4091)
        r = wire_parser_feed(p, big, 4091, log_ev, &out);
    cr_assert_eq(r, VP_EPARSE, "the data of one event is bounded too");
    cr_assert_gt(fed, 1u << 20);
    wire_parser_destroy(&p);
    cr_assert_null(out.data);
    free(big);
}
