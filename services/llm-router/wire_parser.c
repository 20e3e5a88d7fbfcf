/* wire_parser.c - a provider's stream cut into canonical events (see
 * wire.h, wire_parser_*).
 *
 * DESIGN. The parser frames bytes into lines itself: SSE per the WHATWG
 * rules (CR, LF or CRLF ends a line, ':' starts a comment, the data lines
 * of one event are joined with '\n', a blank line dispatches it) or NDJSON
 * for Ollama. A line, and an event's data, may hold at most WIRE_MAX_LINE
 * bytes. Each complete JSON payload goes to its kind's handler, which calls
 * the caller back with events whose pointers borrow from that payload for
 * the duration of the callback. Gemini and Ollama tool calls carry no id,
 * so ids "call_<nonce>_<n>" are made up here. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire_internal.h"
#include "alloc.h"

#define WIRE_MAX_LINE (1u << 20) /* bytes of one line or one event's data */
#define WIRE_MAX_BLOCKS 4096     /* Anthropic content blocks tracked per stream */

struct wire_parser {
    wire_kind_t kind;
    sbuf_t line;    /* the line being received */
    sbuf_t data;    /* SSE: the data lines of the event being received */
    bool has_data;  /* SSE: a data line was seen (data may still be empty) */
    bool cr;        /* the last byte was a CR, so an LF right after ends nothing */
    bool failed;    /* sticky: the stream was not valid */
    bool complete;  /* the end-of-stream marker was seen */
    char event[32]; /* SSE: the event's name */
    wire_usage_t usage;
    bool usage_sent;
    bool saw_tool;
    int ntools;    /* tool calls started (Anthropic, Gemini, Ollama) */
    int last_tool; /* OpenAI: the index of the last tool call started */
    int *blocks;   /* Anthropic: content block index -> tool index, or -1 */
    size_t nblocks;
    unsigned long nonce;
    char tool_id[48];
};

wire_parser_t *wire_parser_new(wire_kind_t kind)
{
    wire_parser_t *p = xcalloc(1, sizeof *p);
    p->kind = kind;
    p->last_tool = -1;
    p->nonce = wire__nonce();
    return p;
}

void wire_parser_destroy(wire_parser_t **pp)
{
    if (!pp || !*pp)
        return;
    sbuf_free(&(*pp)->line);
    sbuf_free(&(*pp)->data);
    free((*pp)->blocks);
    free(*pp);
    *pp = NULL;
}

bool wire_parser_complete(const wire_parser_t *p)
{
    return p->complete;
}

static void s_ev_text(const json_t *s, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_TEXT};
    if (json_string_length(s) == 0)
        return;
    ev.text = json_string_value(s);
    ev.len = json_string_length(s);
    fn(&ev, ud);
}

static void s_ev_tool(int index, const char *id, const char *name, const char *args,
                      size_t len, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_TOOL,
                    .index = index,
                    .tool_id = id,
                    .tool_name = name,
                    .text = args ? args : "",
                    .len = args ? len : 0};
    fn(&ev, ud);
}

static void s_ev_finish(const char *reason, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_FINISH, .finish_reason = reason};
    fn(&ev, ud);
}

/* Reports the usage once, when it is final. */
static void s_ev_usage(wire_parser_t *p, wire_ev_fn fn, void *ud)
{
    wire_ev_t ev = {.type = WIRE_EV_USAGE, .usage = p->usage};
    if (!p->usage.present || p->usage_sent)
        return;
    p->usage_sent = true;
    fn(&ev, ud);
}

/* An error object ({"message"}) or string as an ERROR event. */
static void s_ev_error(const json_t *e, wire_ev_fn fn, void *ud)
{
    const json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
    wire_ev_t ev = {.type = WIRE_EV_ERROR, .text = "upstream error", .len = 14};
    if (json_is_string(m)) {
        ev.text = json_string_value(m);
        ev.len = json_string_length(m);
    }
    fn(&ev, ud);
}

/* A whole tool call (Gemini, Ollama): one TOOL event with id, name and all
 * the arguments; a made-up id when the upstream gave none. */
static void s_ev_whole_call(wire_parser_t *p, const char *id, const char *name,
                            const json_t *args, wire_ev_fn fn, void *ud)
{
    char *text =
        json_is_string(args) ? xstrdup(json_string_value(args)) : wire__dumps(args);
    int index = p->ntools++;
    if (!id) {
        wire__tool_id(p->tool_id, sizeof p->tool_id, p->nonce, index);
        id = p->tool_id;
    }
    p->saw_tool = true;
    s_ev_tool(index, id, name ? name : "", text, strlen(text), fn, ud);
    free(text);
}

static int s_p_openai(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *ch = json_array_get(json_object_get(j, "choices"), 0), *tc;
    const json_t *delta = json_object_get(ch, "delta");
    size_t i;
    if (wire__present(j, "error")) {
        s_ev_error(json_object_get(j, "error"), fn, ud);
        return 0;
    }
    s_ev_text(json_object_get(delta, "content"), fn, ud);
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
    {
        const json_t *f = json_object_get(tc, "function"),
                     *args = json_object_get(f, "arguments");
        const json_t *idx = json_object_get(tc, "index");
        int index = json_is_integer(idx) ? (int)json_integer_value(idx) : (int)i;
        bool first = index != p->last_tool; /* some servers repeat id and name */
        p->last_tool = index;
        s_ev_tool(index, first ? wire__str(tc, "id") : NULL,
                  first ? wire__str(f, "name") : NULL, json_string_value(args),
                  json_string_length(args), fn, ud);
    }
    if (wire__str(ch, "finish_reason"))
        s_ev_finish(wire__finish_of(WIRE_OPENAI, wire__str(ch, "finish_reason"), false),
                    fn, ud);
    wire__read_usage(json_object_get(j, "usage"), "prompt_tokens", "completion_tokens",
                     &p->usage);
    return 0;
}

/* The tool index of Anthropic content block k, or -1. */
static int s_block_tool(const wire_parser_t *p, const json_t *index)
{
    json_int_t k = json_integer_value(index);
    return json_is_integer(index) && k >= 0 && (size_t)k < p->nblocks ? p->blocks[k]
                                                                      : -1;
}

static int s_p_block_start(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *b = json_object_get(j, "content_block"),
                 *idx = json_object_get(j, "index");
    json_int_t k = json_integer_value(idx);
    if (!json_is_integer(idx) || k < 0 || k >= WIRE_MAX_BLOCKS)
        return VP_EPARSE;
    if ((size_t)k >= p->nblocks) {
        p->blocks = xrealloc(p->blocks, (size_t)(k + 1) * sizeof *p->blocks);
        while (p->nblocks <= (size_t)k)
            p->blocks[p->nblocks++] = -1;
    }
    if (!wire__is(wire__str(b, "type"), "tool_use")) {
        p->blocks[k] = -1;
        if (wire__is(wire__str(b, "type"), "text"))
            s_ev_text(json_object_get(b, "text"), fn, ud);
        return 0;
    }
    p->blocks[k] = p->ntools++;
    p->saw_tool = true;
    s_ev_tool(p->blocks[k], wire__str(b, "id"), wire__str(b, "name"), "", 0, fn, ud);
    return 0;
}

static void s_p_block_delta(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *d = json_object_get(j, "delta");
    const json_t *pj = json_object_get(d, "partial_json");
    const char *type = wire__str(d, "type");
    int tool = s_block_tool(p, json_object_get(j, "index"));
    if (wire__is(type, "text_delta"))
        s_ev_text(json_object_get(d, "text"), fn, ud);
    else if (wire__is(type, "input_json_delta") && tool >= 0 &&
             json_string_length(pj) > 0)
        s_ev_tool(tool, NULL, NULL, json_string_value(pj), json_string_length(pj), fn,
                  ud);
}

static void s_p_message_delta(wire_parser_t *p, const json_t *j, wire_ev_fn fn,
                              void *ud)
{
    const char *stop = wire__str(json_object_get(j, "delta"), "stop_reason");
    if (stop)
        s_ev_finish(wire__finish_of(WIRE_ANTHROPIC, stop, false), fn, ud);
    wire_usage_t u = {0};
    /* Output tokens are cumulative here; input tokens, when repeated, too. */
    wire__anthropic_usage(json_object_get(j, "usage"), &u);
    if (json_is_number(json_object_get(json_object_get(j, "usage"), "output_tokens")))
        p->usage.output_tokens = u.output_tokens;
    if (u.input_tokens > 0)
        p->usage.input_tokens = u.input_tokens;
    p->usage.present = p->usage.present || u.present;
    p->usage.unreadable = p->usage.unreadable || u.unreadable;
    s_ev_usage(p, fn, ud);
}

static int s_p_anthropic(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const char *type = wire__str(j, "type") ? wire__str(j, "type") : p->event;
    if (wire__is(type, "error") || wire__is(p->event, "error"))
        s_ev_error(json_object_get(j, "error"), fn, ud);
    else if (wire__is(type, "message_start"))
        wire__anthropic_usage(json_object_get(json_object_get(j, "message"), "usage"),
                              &p->usage);
    else if (wire__is(type, "content_block_start"))
        return s_p_block_start(p, j, fn, ud);
    else if (wire__is(type, "content_block_delta"))
        s_p_block_delta(p, j, fn, ud);
    else if (wire__is(type, "message_delta"))
        s_p_message_delta(p, j, fn, ud);
    else if (wire__is(type, "message_stop"))
        p->complete = true;
    return 0;
}

static int s_p_gemini(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *c = json_array_get(json_object_get(j, "candidates"), 0), *part;
    const char *finish = wire__str(c, "finishReason");
    const char *blocked =
        wire__str(json_object_get(j, "promptFeedback"), "blockReason");
    size_t i;
    if (wire__present(j, "error")) {
        s_ev_error(json_object_get(j, "error"), fn, ud);
        return 0;
    }
    if (json_is_object(json_object_get(j, "usageMetadata"))) {
        p->usage = (wire_usage_t){0};
        wire__gemini_usage(json_object_get(j, "usageMetadata"), &p->usage);
    }
    json_array_foreach(json_object_get(json_object_get(c, "content"), "parts"), i, part)
    {
        const json_t *call = json_object_get(part, "functionCall");
        if (json_is_true(json_object_get(part, "thought")))
            continue;
        s_ev_text(json_object_get(part, "text"), fn, ud);
        if (json_is_object(call))
            s_ev_whole_call(p, wire__str(call, "id"), wire__str(call, "name"),
                            json_object_get(call, "args"), fn, ud);
    }
    if ((finish && !wire__is(finish, "FINISH_REASON_UNSPECIFIED")) || (!c && blocked)) {
        s_ev_finish(c ? wire__finish_of(WIRE_GEMINI, finish, p->saw_tool)
                      : "content_filter",
                    fn, ud);
        s_ev_usage(p, fn, ud);
        p->complete = true;
    }
    return 0;
}

static int s_p_ollama(wire_parser_t *p, const json_t *j, wire_ev_fn fn, void *ud)
{
    const json_t *msg = json_object_get(j, "message"), *tc;
    size_t i;
    if (wire__present(j, "error")) {
        s_ev_error(json_object_get(j, "error"), fn, ud);
        return 0;
    }
    s_ev_text(json_object_get(msg, "content"), fn, ud);
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const json_t *f = json_object_get(tc, "function");
        s_ev_whole_call(p, wire__str(tc, "id"), wire__str(f, "name"),
                        json_object_get(f, "arguments"), fn, ud);
    }
    if (json_is_true(json_object_get(j, "done"))) {
        wire__read_usage(j, "prompt_eval_count", "eval_count", &p->usage);
        s_ev_finish(
            wire__finish_of(WIRE_OLLAMA, wire__str(j, "done_reason"), p->saw_tool), fn,
            ud);
        s_ev_usage(p, fn, ud);
        p->complete = true;
    }
    return 0;
}

/* One complete payload: an SSE event's data or an NDJSON line. */
static int s_payload(wire_parser_t *p, const char *s, size_t n, wire_ev_fn fn, void *ud)
{
    int rc = VP_EPARSE;
    if (p->kind == WIRE_OPENAI && n == 6 && memcmp(s, "[DONE]", 6) == 0) {
        p->complete = true;
        s_ev_usage(p, fn, ud);
        return 0;
    }
    json_t *j = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
    const json_t *o =
        p->kind == WIRE_GEMINI && json_is_array(j) ? json_array_get(j, 0) : j;
    if (json_is_object(o)) {
        switch (p->kind) {
        case WIRE_ANTHROPIC: rc = s_p_anthropic(p, o, fn, ud); break;
        case WIRE_GEMINI: rc = s_p_gemini(p, o, fn, ud); break;
        case WIRE_OLLAMA: rc = s_p_ollama(p, o, fn, ud); break;
        default: rc = s_p_openai(p, o, fn, ud); break;
        }
    }
    json_decref(j);
    return rc;
}

static int s_sse_dispatch(wire_parser_t *p, wire_ev_fn fn, void *ud)
{
    int rc = 0;
    if (p->has_data) {
        p->data.len--; /* the '\n' after the last data line */
        p->data.data[p->data.len] = '\0';
        if (p->data.len > 0)
            rc = s_payload(p, p->data.data, p->data.len, fn, ud);
    }
    sbuf_reset(&p->data);
    p->has_data = false;
    p->event[0] = '\0';
    return rc;
}

/* One SSE line (without its end): a field, a comment, or the blank line
 * that dispatches the event. */
static int s_sse_line(wire_parser_t *p, const char *s, size_t n, wire_ev_fn fn,
                      void *ud)
{
    if (n == 0)
        return s_sse_dispatch(p, fn, ud);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    if (v < s + n && *v == ' ')
        v++;
    size_t vlen = (size_t)(s + n - v);
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (p->data.len + vlen + 1 > WIRE_MAX_LINE)
            return VP_EPARSE;
        sbuf_append(&p->data, v, vlen);
        sbuf_append(&p->data, "\n", 1);
        p->has_data = true;
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        snprintf(p->event, sizeof p->event, "%.*s", (int)vlen, v);
    }
    return 0;
}

static int s_line(wire_parser_t *p, wire_ev_fn fn, void *ud)
{
    const char *s = p->line.data ? p->line.data : "";
    size_t n = p->line.len;
    if (p->kind != WIRE_OLLAMA)
        return s_sse_line(p, s, n, fn, ud);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n > 0 ? s_payload(p, s, n, fn, ud) : 0;
}

int wire_parser_feed(wire_parser_t *p, const char *buf, size_t len, wire_ev_fn fn,
                     void *ud)
{
    size_t i = 0;
    while (!p->failed && i < len) {
        if (p->cr && buf[i] == '\n') {
            p->cr = false;
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        p->cr = false;
        if (p->line.len + (j - i) > WIRE_MAX_LINE) {
            p->failed = true;
            break;
        }
        sbuf_append(&p->line, buf + i, j - i);
        if (j == len)
            break;
        p->cr = buf[j] == '\r';
        p->failed = s_line(p, fn, ud) < 0;
        sbuf_reset(&p->line);
        i = j + 1;
    }
    return p->failed ? VP_EPARSE : 0;
}
