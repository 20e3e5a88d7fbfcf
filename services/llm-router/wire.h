/* wire.h - translation between the LLM wire formats the router speaks:
 * OpenAI Chat Completions, Anthropic Messages, Gemini generateContent and
 * Ollama /api/chat, for requests, responses, streams and usage.
 *
 * DESIGN. The canonical form inside the router is an OpenAI Chat Completions
 * request and response (jansson objects). A caller's request is validated
 * and, for Anthropic callers, converted to the canonical request; the
 * canonical request is then rendered for the chosen provider's kind.
 * Upstream answers come back the other way: a whole response is converted
 * to a canonical chat.completion (then to an Anthropic message for Anthropic
 * callers); a stream is cut into canonical events by a wire_parser (fed the
 * upstream bytes in arbitrary pieces, as curl delivers them) and rendered
 * for the caller by a wire_emitter. Text content, system prompts, stop
 * sequences, sampling parameters, tool definitions and tool calls are
 * carried across formats; what one format cannot express is dropped.
 *
 * Pure functions over memory: no I/O, any thread. Each section below names
 * the file that implements it; the top of wire.c maps them all. */
#ifndef VAPORA_WIRE_H
#define VAPORA_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sbuf.h"
#include "vp_error.h"

typedef enum wire_kind {
    WIRE_OPENAI = 0,
    WIRE_ANTHROPIC = 1,
    WIRE_GEMINI = 2,
    WIRE_OLLAMA = 3,
} wire_kind_t;

/* "openai" | "anthropic" | "gemini" | "ollama" -> kind; 0 or -EINVAL. */
int wire_kind_parse(const char *s, wire_kind_t *out);
const char *wire_kind_name(wire_kind_t kind);

/* Token counts; present = false when the upstream reported none. A count
 * sent as something other than a number (a string, say) makes the usage
 * unreadable: the call is then counted by estimate, never as free. */
typedef struct wire_usage {
    long input_tokens;
    long output_tokens;
    bool present;
    bool unreadable;
} wire_usage_t;

/* The most tokens one call is billed for: a provider's count is clamped to
 * 0..WIRE_MAX_TOKENS, so that a corrupt one cannot overflow the ledger's
 * nano-dollars (or make a cost negative and lift a budget). */
#define WIRE_MAX_TOKENS 100000000L
long wire_tokens(long long reported);
/* The same for a JSON number, integer or real (a count parsed with
 * JSON_DECODE_INT_AS_REAL, since one beyond 2^63 fails as an integer). */
long wire_tokens_json(const json_t *reported);

/* ---- caller requests -> canonical (wire_validate.c, wire_from_anthropic.c) ---- */

/* Validates an OpenAI Chat Completions request (model a string when
 * present, messages a non-empty array of objects with a known role and
 * string/array content, numbers in range, stream a boolean...). Returns 0,
 * or VP_EINVALID with a one-sentence reason naming the field in err. */
int wire_openai_validate(const json_t *req, char *err, size_t errlen);

/* Converts an Anthropic Messages request (max_tokens required, system as a
 * string or text blocks, messages with string or block content incl.
 * tool_use / tool_result, stop_sequences, temperature, top_p, tools, stream)
 * to a new canonical request. NULL with a reason in err when invalid. */
json_t *wire_from_anthropic_request(const json_t *req, char *err, size_t errlen);

/* The output bound a canonical request asks for: max_completion_tokens,
 * else max_tokens, into *out; false when neither is an integer
 * (wire_json.c). */
bool wire_max_tokens(const json_t *canon, long *out);

/* A rough upper bound of the prompt's tokens (for budget reservations, and
 * the most input a call is charged for): the bytes of every text in
 * messages (and tools) plus a small overhead per message, per image, and
 * for the tool prompt providers add. */
long wire_prompt_token_bound(const json_t *canon);

/* ---- canonical -> upstream request (wire_upstream*.c) ---- */

/* Renders canon for a provider of `kind` asking for `model`, streaming or
 * not (for OpenAI upstreams with stream, stream_options.include_usage is
 * set). Writes the path to append to the provider's base_url into path:
 *   openai:    "/chat/completions"            (base_url ends in /v1)
 *   anthropic: "/v1/messages"
 *   gemini:    "/v1beta/models/MODEL:generateContent" or
 *              "/v1beta/models/MODEL:streamGenerateContent?alt=sse"
 *   ollama:    "/api/chat"
 * Returns a new object (never NULL). Anthropic requests get max_tokens
 * from canon (max_completion_tokens or max_tokens) or default_max_tokens. */
json_t *wire_upstream_request(wire_kind_t kind, const json_t *canon, const char *model,
                              bool stream, long default_max_tokens, char *path,
                              size_t pathlen);

/* ---- upstream response -> canonical -> caller (wire_response.c) ---- */

/* Converts a provider's whole (non-streamed) success body to a canonical
 * chat.completion with the given id and model ("object", "created",
 * "choices"[0].message {role, content, tool_calls?}, finish_reason, "usage"
 * {prompt_tokens, completion_tokens, total_tokens} when known). Fills
 * *usage. NULL with a reason in err when the body is not that kind's
 * response. */
json_t *wire_canonical_response(wire_kind_t kind, const json_t *body, const char *id,
                                const char *model, wire_usage_t *usage, char *err,
                                size_t errlen);

/* Converts a canonical chat.completion to an Anthropic Messages response
 * ({"id","type":"message","role":"assistant","model","content":[...],
 * "stop_reason","stop_sequence":null,"usage":{input_tokens,output_tokens}}). */
json_t *wire_to_anthropic_response(const json_t *canon);

/* Reads the usage of a whole OpenAI chat.completion from its bytes, without
 * parsing the rest (an answer relayed to an OpenAI caller as it came).
 * Returns 0 when body is an object with one top-level "choices" array
 * whose first element is an object with one "message" object, and at most
 * one top-level "usage", with *usage from it (present false when that is
 * missing or unreadable, or unreadable set when a count is not a number or
 * is negative); VP_EPARSE, *usage untouched, when it is not such an object
 * (only a full parse can tell what the body is). */
int wire_openai_scan_usage(const char *body, size_t len, wire_usage_t *usage);

/* Whether text is one JSON text (RFC 8259) in well-formed UTF-8: what a
 * provider's answer must be before it is relayed as it came (wire_check.c;
 * allocates nothing; containers nest 512 deep at most). */
bool wire_json_valid(const char *text, size_t len);

/* The message of a provider's error body of any kind ({"error":{"message"}},
 * {"type":"error","error":{"message"}}, Gemini {"error":{"message"}}, Ollama
 * {"error":"..."}), or NULL. Borrowed from body. */
const char *wire_error_message(const json_t *body);

/* ---- streams (wire_parser.c, wire_emitter.c) ---- */

typedef enum wire_ev_type {
    WIRE_EV_TEXT,      /* text delta: text/len */
    WIRE_EV_TOOL,      /* tool-call delta: index, id/name (first delta), args text/len */
    WIRE_EV_FINISH,    /* finish_reason set ("stop","length","tool_calls","content_filter") */
    WIRE_EV_USAGE,     /* usage set */
    WIRE_EV_ERROR,     /* the upstream reported an error mid-stream: text = message */
} wire_ev_type_t;

typedef struct wire_ev {
    wire_ev_type_t type;
    const char *text; /* TEXT, TOOL arguments, ERROR message; not NUL-terminated */
    size_t len;
    int index;               /* TOOL */
    const char *tool_id;     /* TOOL, first delta of a call, else NULL */
    const char *tool_name;   /* TOOL, first delta of a call, else NULL */
    const char *finish_reason; /* FINISH */
    wire_usage_t usage;      /* USAGE */
} wire_ev_t;

typedef void (*wire_ev_fn)(const wire_ev_t *ev, void *ud);

/* Cuts a provider's stream (SSE for openai/anthropic/gemini, NDJSON for
 * ollama) into canonical events. Owned by the caller. */
typedef struct wire_parser wire_parser_t;
wire_parser_t *wire_parser_new(wire_kind_t kind);
void wire_parser_destroy(wire_parser_t **pp);
/* Feeds the next bytes (any split, even mid-line or mid-UTF-8); calls fn for
 * each complete event, in order. Returns 0, or VP_EPARSE when the stream is
 * not valid for its kind (a data line that is not JSON, a line over 1 MiB...),
 * and on every feed after that. */
int wire_parser_feed(wire_parser_t *p, const char *buf, size_t len, wire_ev_fn fn,
                     void *ud);
/* Whether the upstream's end-of-stream marker was seen (OpenAI "[DONE]",
 * Anthropic message_stop, Ollama "done":true, Gemini: a finishReason). */
bool wire_parser_complete(const wire_parser_t *p);

/* Renders canonical events as the caller's stream: out_kind WIRE_OPENAI
 * (chat.completion.chunk SSE, "data: [DONE]") or WIRE_ANTHROPIC
 * (message_start, content_block_start/delta/stop, message_delta,
 * message_stop). The first event written also writes the stream's opening
 * (OpenAI: a chunk with delta.role; Anthropic: message_start). */
typedef struct wire_emitter wire_emitter_t;
/* include_usage: OpenAI's stream_options.include_usage (a final chunk with
 * usage and empty choices). input_estimate: the input tokens to announce in
 * Anthropic's message_start before the upstream reports them. */
wire_emitter_t *wire_emitter_new(wire_kind_t out_kind, const char *id, const char *model,
                                 bool include_usage, long input_estimate);
void wire_emitter_destroy(wire_emitter_t **ep);
/* Appends the bytes for ev to out. */
void wire_emit(wire_emitter_t *e, const wire_ev_t *ev, sbuf_t *out);
/* Appends the stream's end to out, with the final usage (OpenAI: the usage
 * chunk when include_usage, then "data: [DONE]"; Anthropic: closes an open
 * content block, message_delta with stop_reason and usage, message_stop). */
void wire_emit_end(wire_emitter_t *e, const wire_usage_t *usage, sbuf_t *out);
/* Appends an in-stream error and the end of the stream (OpenAI: a data
 * chunk {"error":{"message","type":"upstream_error"}} then "data: [DONE]";
 * Anthropic: "event: error" with {"type":"error","error":{"type":
 * "api_error","message"}}). */
void wire_emit_error(wire_emitter_t *e, const char *message, sbuf_t *out);
/* Whether anything has been written yet (then no fallback is possible). */
bool wire_emitter_started(const wire_emitter_t *e);

#endif
