/* test_wire_emitter.c - unit tests for both stream emitters (wire_emitter.c),
 * and streams relayed from one kind to another (parser -> emitter). */
#define _GNU_SOURCE
#include <errno.h>

#include "wire_test.h"

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

Test(wire_emitter, emit_openai)
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

Test(wire_emitter, emit_openai_without_usage_or_events)
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

Test(wire_emitter, emit_anthropic)
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

Test(wire_emitter, emit_anthropic_finish_and_usage)
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
Test(wire_emitter, emit_anthropic_interleaved_tools)
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

Test(wire_emitter, emit_errors)
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

Test(wire_emitter, relay_between_kinds)
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
