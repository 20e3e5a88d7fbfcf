/* fuzz_wire_stream.c - a provider's stream as the router reads it
 * (services/llm-router/wire_parser.c: SSE for OpenAI, Anthropic and Gemini,
 * NDJSON for Ollama) and the caller's stream rendered from its events
 * (wire_emitter.c), as call.c does.
 *
 * Input: a flags byte (provider kind, caller format, include_usage), a seed
 * for the sizes of the pieces the stream arrives in, then the stream.
 * Properties: the events do not depend on how the stream is cut (curl
 * delivers arbitrary pieces); the rendered stream is one the router's own
 * parser reads back, complete, with the same text. */
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "llm-router/wire.h"

/* The events as text, one line each (tool ids as "id" or "-": made-up ids
 * differ from parser to parser). */
static void s_log_ev(const wire_ev_t *ev, void *ud)
{
    sbuf_t *log = ud;
    switch (ev->type) {
    case WIRE_EV_TEXT:
        sbuf_puts(log, "T ");
        sbuf_append(log, ev->text, ev->len);
        break;
    case WIRE_EV_TOOL:
        sbuf_printf(log, "C%d %s %s ", ev->index, ev->tool_id ? "id" : "-",
                    ev->tool_name ? ev->tool_name : "-");
        sbuf_append(log, ev->text, ev->len);
        break;
    case WIRE_EV_FINISH: sbuf_printf(log, "F %s", ev->finish_reason); break;
    case WIRE_EV_USAGE:
        FZ_CHECK(ev->usage.input_tokens >= 0 && ev->usage.output_tokens >= 0 &&
                     ev->usage.input_tokens <= WIRE_MAX_TOKENS &&
                     ev->usage.output_tokens <= WIRE_MAX_TOKENS,
                 "usage out of bounds: %ld in, %ld out", ev->usage.input_tokens,
                 ev->usage.output_tokens);
        sbuf_printf(log, "U %ld %ld", ev->usage.input_tokens, ev->usage.output_tokens);
        break;
    case WIRE_EV_ERROR:
        sbuf_puts(log, "E ");
        sbuf_append(log, ev->text, ev->len);
        break;
    }
    sbuf_append(log, "\n", 1);
}

/* Parses s whole into log; returns the feed's result. */
static int s_parse_whole(wire_kind_t kind, const char *s, size_t n, wire_ev_fn fn,
                         void *ud, bool *complete)
{
    wire_parser_t *p = wire_parser_new(kind);
    int rc = wire_parser_feed(p, s, n, fn, ud);
    *complete = wire_parser_complete(p);
    wire_parser_destroy(&p);
    return rc;
}

/* Parses s in pieces of 1 to 32 bytes drawn from seed. */
static int s_parse_pieces(wire_kind_t kind, const char *s, size_t n, unsigned seed,
                          sbuf_t *log, bool *complete)
{
    wire_parser_t *p = wire_parser_new(kind);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 32;
        if (k > n - i)
            k = n - i;
        rc = wire_parser_feed(p, s + i, k, s_log_ev, log);
        i += k;
    }
    *complete = wire_parser_complete(p);
    wire_parser_destroy(&p);
    return rc;
}

typedef struct emit {
    wire_emitter_t *e;
    sbuf_t out;
    sbuf_t text; /* every TEXT event's bytes */
    wire_usage_t usage;
    bool failed; /* an ERROR event ended the stream */
} emit_t;

/* As call.c's s_on_event: usage kept, an error ends the stream. */
static void s_emit_ev(const wire_ev_t *ev, void *ud)
{
    emit_t *em = ud;
    if (em->failed)
        return;
    if (ev->type == WIRE_EV_USAGE) {
        em->usage = ev->usage;
    } else if (ev->type == WIRE_EV_ERROR) {
        char *msg = strndup(ev->text, ev->len);
        wire_emit_error(em->e, msg, &em->out);
        free(msg);
        em->failed = true;
    } else {
        if (ev->type == WIRE_EV_TEXT)
            sbuf_append(&em->text, ev->text, ev->len);
        wire_emit(em->e, ev, &em->out);
    }
}

typedef struct readback {
    sbuf_t text;
    bool error;
} readback_t;

static void s_readback_ev(const wire_ev_t *ev, void *ud)
{
    readback_t *rb = ud;
    if (ev->type == WIRE_EV_TEXT)
        sbuf_append(&rb->text, ev->text, ev->len);
    rb->error = rb->error || ev->type == WIRE_EV_ERROR;
}

/* The caller's stream from the events of s, read back by our own parser:
 * complete, or (an upstream error ended it) ending in an error event. */
static void s_render(wire_kind_t kind, wire_kind_t out_kind, bool include_usage,
                     const char *s, size_t n)
{
    emit_t em = {.e = wire_emitter_new(out_kind, "chatcmpl-fz", "m", include_usage, 7)};
    bool complete;
    s_parse_whole(kind, s, n, s_emit_ev, &em, &complete);
    if (!em.failed)
        wire_emit_end(em.e, &em.usage, &em.out);
    readback_t rb = {0};
    int rc = s_parse_whole(out_kind, em.out.data ? em.out.data : "", em.out.len,
                           s_readback_ev, &rb, &complete);
    FZ_CHECK(rc == 0 && (em.failed ? rb.error : complete),
             "the rendered %s stream does not read back (rc %d, complete %d, error %d):"
             "\n%.*s",
             wire_kind_name(out_kind), rc, complete, rb.error, (int)em.out.len,
             em.out.data);
    FZ_CHECK(
        rb.text.len == em.text.len &&
            (rb.text.len == 0 || memcmp(rb.text.data, em.text.data, rb.text.len) == 0),
        "the rendered stream's text differs: %zu bytes in, %zu out", em.text.len,
        rb.text.len);
    sbuf_free(&rb.text);
    sbuf_free(&em.text);
    sbuf_free(&em.out);
    wire_emitter_destroy(&em.e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    uint8_t flags = fz_byte(&in);
    unsigned seed = fz_byte(&in);
    wire_kind_t kind = (wire_kind_t)(flags & 3);
    wire_kind_t out_kind = flags & 4 ? WIRE_ANTHROPIC : WIRE_OPENAI;
    const char *s = (const char *)in.data;
    sbuf_t whole = {0}, pieces = {0};
    bool c1, c2;
    int rc1 = s_parse_whole(kind, s, in.len, s_log_ev, &whole, &c1);
    int rc2 = s_parse_pieces(kind, s, in.len, seed, &pieces, &c2);
    FZ_CHECK(rc1 == rc2 && c1 == c2,
             "whole: rc %d complete %d; in pieces: rc %d complete %d", rc1, c1, rc2,
             c2);
    FZ_CHECK(whole.len == pieces.len &&
                 (whole.len == 0 || memcmp(whole.data, pieces.data, whole.len) == 0),
             "events differ:\nwhole:\n%s\npieces:\n%s", whole.data ? whole.data : "",
             pieces.data ? pieces.data : "");
    sbuf_free(&whole);
    sbuf_free(&pieces);
    s_render(kind, out_kind, flags & 8, s, in.len);
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    return fz_mutate_json(data, size, max_size, seed);
}
