/* wire_emitter.c - canonical stream events rendered as the caller's
 * stream (see wire.h, wire_emit*): OpenAI chat.completion.chunk events
 * ending in "data: [DONE]", or Anthropic's message_start,
 * content_block_start/delta/stop, message_delta and message_stop. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include "wire_internal.h"
#include "alloc.h"

struct wire_emitter {
    wire_kind_t kind;
    char *id, *model;
    bool include_usage;
    long input_estimate;
    json_int_t created;
    bool started, ended;
    char *finish;       /* the canonical finish reason, once known */
    wire_usage_t usage; /* from a USAGE event */
    int block;          /* Anthropic: index of the open content block, or -1 */
    int nblocks;        /* Anthropic: content blocks opened so far */
    int block_tool;     /* Anthropic: tool index of the open block, -1: text */
    int next_tool;      /* Anthropic: tool indexes below this were opened */
    unsigned long nonce;
};

wire_emitter_t *wire_emitter_new(wire_kind_t out_kind, const char *id,
                                 const char *model, bool include_usage,
                                 long input_estimate)
{
    if (out_kind != WIRE_OPENAI && out_kind != WIRE_ANTHROPIC)
        return NULL;
    wire_emitter_t *e = xcalloc(1, sizeof *e);
    e->kind = out_kind;
    e->id = xstrdup(id ? id : "");
    e->model = xstrdup(model ? model : "");
    e->include_usage = include_usage;
    e->input_estimate = input_estimate;
    e->created = (json_int_t)time(NULL);
    e->block = e->block_tool = -1;
    e->nonce = wire__nonce();
    return e;
}

void wire_emitter_destroy(wire_emitter_t **ep)
{
    if (!ep || !*ep)
        return;
    free((*ep)->id);
    free((*ep)->model);
    free((*ep)->finish);
    free(*ep);
    *ep = NULL;
}

bool wire_emitter_started(const wire_emitter_t *e)
{
    return e->started;
}

/* A JSON string of text/len; "" when it is not valid UTF-8. */
static json_t *s_jstrn(const char *text, size_t len)
{
    json_t *s = text ? json_stringn(text, len) : NULL;
    return s ? s : json_string("");
}

/* Writes an SSE event (data stolen) to out: "event: NAME\n" when event is
 * given, then "data: JSON\n\n". */
static void s_write(sbuf_t *out, const char *event, json_t *data)
{
    char *s = data ? json_dumps(data, JSON_COMPACT) : NULL;
    if (s) {
        if (event)
            sbuf_printf(out, "event: %s\n", event);
        sbuf_puts(out, "data: ");
        sbuf_puts(out, s);
        sbuf_puts(out, "\n\n");
    }
    free(s);
    json_decref(data);
}

/* ---- OpenAI chunks ---- */

static void s_oa_chunk(const wire_emitter_t *e, json_t *delta, const char *finish,
                       sbuf_t *out)
{
    json_t *c =
        json_pack("{s:s,s:s,s:I,s:s}", "id", e->id, "object", "chat.completion.chunk",
                  "created", e->created, "model", e->model);
    json_object_set_new(c, "choices",
                        json_pack("[{s:i,s:o,s:o}]", "index", 0, "delta", delta,
                                  "finish_reason",
                                  finish ? json_string(finish) : json_null()));
    s_write(out, NULL, c);
}

static void s_oa_start(wire_emitter_t *e, sbuf_t *out)
{
    if (e->started)
        return;
    e->started = true;
    s_oa_chunk(e, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL,
               out);
}

static json_t *s_oa_tool_delta(const wire_emitter_t *e, const wire_ev_t *ev)
{
    json_t *tc = json_pack("{s:i}", "index", ev->index), *fn = json_object();
    char id[48];
    if (ev->tool_id || ev->tool_name) {
        wire__tool_id(id, sizeof id, e->nonce, ev->index);
        json_object_set_new(tc, "id", json_string(ev->tool_id ? ev->tool_id : id));
        json_object_set_new(tc, "type", json_string("function"));
        json_object_set_new(fn, "name",
                            json_string(ev->tool_name ? ev->tool_name : ""));
    }
    json_object_set_new(fn, "arguments", s_jstrn(ev->text, ev->len));
    json_object_set_new(tc, "function", fn);
    return json_pack("{s:[o]}", "tool_calls", tc);
}

static void s_oa_end(wire_emitter_t *e, const wire_usage_t *u, sbuf_t *out)
{
    s_oa_start(e, out);
    if (!e->finish)
        s_oa_chunk(e, json_object(), "stop", out);
    if (e->include_usage) {
        json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", e->id, "object",
                              "chat.completion.chunk", "created", e->created, "model",
                              e->model, "choices", "usage", wire__usage_json(u));
        s_write(out, NULL, c);
    }
    sbuf_puts(out, "data: [DONE]\n\n");
}

/* ---- Anthropic events ---- */

static void s_an_start(wire_emitter_t *e, sbuf_t *out)
{
    if (e->started)
        return;
    e->started = true;
    json_t *msg =
        json_pack("{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:I,s:i}}", "id", e->id, "type",
                  "message", "role", "assistant", "model", e->model, "content",
                  "stop_reason", "stop_sequence", "usage", "input_tokens",
                  (json_int_t)e->input_estimate, "output_tokens", 0);
    s_write(out, "message_start",
            json_pack("{s:s,s:o}", "type", "message_start", "message", msg));
}

static void s_an_close(wire_emitter_t *e, sbuf_t *out)
{
    if (e->block < 0)
        return;
    s_write(out, "content_block_stop",
            json_pack("{s:s,s:i}", "type", "content_block_stop", "index", e->block));
    e->block = e->block_tool = -1;
}

/* Closes the open block and opens cb (stolen) for tool index tool (-1: text). */
static void s_an_open(wire_emitter_t *e, json_t *cb, int tool, sbuf_t *out)
{
    s_an_close(e, out);
    e->block = e->nblocks++;
    e->block_tool = tool;
    s_write(out, "content_block_start",
            json_pack("{s:s,s:i,s:o}", "type", "content_block_start", "index", e->block,
                      "content_block", cb));
}

static void s_an_delta(const wire_emitter_t *e, json_t *delta, sbuf_t *out)
{
    s_write(out, "content_block_delta",
            json_pack("{s:s,s:i,s:o}", "type", "content_block_delta", "index", e->block,
                      "delta", delta));
}

static void s_an_text_ev(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out)
{
    if (ev->len == 0)
        return;
    if (e->block < 0 || e->block_tool >= 0)
        s_an_open(e, json_pack("{s:s,s:s}", "type", "text", "text", ""), -1, out);
    s_an_delta(e,
               json_pack("{s:s,s:o}", "type", "text_delta", "text",
                         s_jstrn(ev->text, ev->len)),
               out);
}

/* A tool delta opens a tool_use block when it starts a new call. Deltas of
 * a call whose block was already closed (interleaved parallel calls) cannot
 * be expressed in Anthropic's stream and are dropped. */
static void s_an_tool_ev(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out)
{
    char id[48];
    if (e->block < 0 || e->block_tool != ev->index) {
        if (ev->index < e->next_tool)
            return;
        wire__tool_id(id, sizeof id, e->nonce, ev->index);
        s_an_open(e,
                  json_pack("{s:s,s:s,s:s,s:{}}", "type", "tool_use", "id",
                            ev->tool_id ? ev->tool_id : id, "name",
                            ev->tool_name ? ev->tool_name : "", "input"),
                  ev->index, out);
        e->next_tool = ev->index + 1;
    }
    if (ev->len > 0)
        s_an_delta(e,
                   json_pack("{s:s,s:o}", "type", "input_json_delta", "partial_json",
                             s_jstrn(ev->text, ev->len)),
                   out);
}

static void s_an_end(wire_emitter_t *e, const wire_usage_t *u, sbuf_t *out)
{
    s_an_start(e, out);
    s_an_close(e, out);
    s_write(out, "message_delta",
            json_pack("{s:s,s:{s:s,s:n},s:{s:I,s:I}}", "type", "message_delta", "delta",
                      "stop_reason", wire__anthropic_stop(e->finish), "stop_sequence",
                      "usage", "output_tokens", (json_int_t)u->output_tokens,
                      "input_tokens", (json_int_t)u->input_tokens));
    s_write(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

/* ---- both ---- */

void wire_emit(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out)
{
    if (e->ended)
        return;
    if (ev->type == WIRE_EV_USAGE) {
        e->usage = ev->usage;
    } else if (ev->type == WIRE_EV_ERROR) {
        char *msg = xstrndup(ev->text ? ev->text : "", ev->text ? ev->len : 0);
        wire_emit_error(e, msg, out);
        free(msg);
    } else if (ev->type == WIRE_EV_FINISH) {
        free(e->finish);
        e->finish = xstrdup(ev->finish_reason ? ev->finish_reason : "stop");
        if (e->kind == WIRE_OPENAI) {
            s_oa_start(e, out);
            s_oa_chunk(e, json_object(), e->finish, out);
        }
    } else if (e->kind == WIRE_OPENAI) {
        s_oa_start(e, out);
        s_oa_chunk(e,
                   ev->type == WIRE_EV_TEXT
                       ? json_pack("{s:o}", "content", s_jstrn(ev->text, ev->len))
                       : s_oa_tool_delta(e, ev),
                   NULL, out);
    } else {
        s_an_start(e, out);
        if (ev->type == WIRE_EV_TEXT)
            s_an_text_ev(e, ev, out);
        else
            s_an_tool_ev(e, ev, out);
    }
}

void wire_emit_end(wire_emitter_t *e, const wire_usage_t *usage, sbuf_t *out)
{
    wire_usage_t u = {.input_tokens = e->input_estimate};
    if (e->ended)
        return;
    /* A caller's estimate (counts without present) is still the best known. */
    if (usage && (usage->present || usage->input_tokens || usage->output_tokens))
        u = *usage;
    else if (e->usage.present)
        u = e->usage;
    if (e->kind == WIRE_OPENAI)
        s_oa_end(e, &u, out);
    else
        s_an_end(e, &u, out);
    e->ended = true;
}

void wire_emit_error(wire_emitter_t *e, const char *message, sbuf_t *out)
{
    json_t *m;
    if (e->ended)
        return;
    m = message ? json_string(message) : NULL;
    if (!m)
        m = json_string("upstream error");
    e->started = e->ended = true;
    if (e->kind == WIRE_ANTHROPIC) {
        s_write(out, "error",
                json_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type",
                          "api_error", "message", m));
        return;
    }
    s_write(
        out, NULL,
        json_pack("{s:{s:o,s:s}}", "error", "message", m, "type", "upstream_error"));
    sbuf_puts(out, "data: [DONE]\n\n");
}
