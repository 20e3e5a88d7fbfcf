/* wire_internal.h - what the wire_*.c files share and nothing else sees:
 * JSON helpers and what every upstream renderer reads from the canonical
 * request (wire_json.c), usage readers and finish reasons (wire.c), number
 * and flag checks (wire_validate.c), and each provider kind's renderer
 * (wire_upstream_*.c, dispatched by wire_upstream.c).
 *
 * Conventions of these helpers: a `const char *` read from a JSON value
 * borrows from it; a returned json_t is a new reference; "stolen" means the
 * helper takes the caller's reference. Pure functions: any thread. */
#ifndef VAPORA_WIRE_INTERNAL_H
#define VAPORA_WIRE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sbuf.h"
#include "wire.h"

/* ---- wire_json.c: JSON helpers ---- */

/* Writes the printf-style reason into err (when err is not NULL) and
 * returns VP_EINVALID. */
int wire__fail(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The string at o[key], or NULL when absent or not a string. */
const char *wire__str(const json_t *o, const char *key);
/* Whether s is not NULL and equals want. */
bool wire__is(const char *s, const char *want);
/* Whether s is one of the n strings of set. */
bool wire__in(const char *s, const char *const *set, size_t n);
/* Whether o[key] is there and not null (OpenAI treats null as absent). */
bool wire__present(const json_t *o, const char *key);
/* Copies src[skey] to dst[dkey] when present and not null. */
void wire__copy(json_t *dst, const char *dkey, const json_t *src, const char *skey);
/* The bytes of b as a new JSON string. */
json_t *wire__sbuf_json(const sbuf_t *b);
/* Appends the JSON string s to b (nothing when s is not a string). */
void wire__append_str(sbuf_t *b, const json_t *s);
/* Compact JSON text of v; the caller frees it. "{}" when v is NULL. */
char *wire__dumps(const json_t *v);
/* Tool-call arguments (a JSON text) as an object; {} when they are not one. */
json_t *wire__args_object(const char *args);
/* The text of an OpenAI content: a string, or an array's text parts joined
 * with sep. */
void wire__content_text(const json_t *c, const char *sep, sbuf_t *out);
/* Splits "data:MIME;base64,DATA"; false for any other URL. *mime is the
 * caller's to free; *data borrows from url. */
bool wire__data_url(const char *url, char **mime, const char **data);
/* A made-up tool-call id "call_<nonce>_<n>", for calls that come without
 * one (Gemini, Ollama). */
void wire__tool_id(char *buf, size_t len, unsigned long nonce, int n);
/* A fresh 48-bit nonce for wire__tool_id (thread-safe). */
unsigned long wire__nonce(void);
/* {"id","type":"function","function":{"name","arguments"}}. */
json_t *wire__tool_call(const char *id, const char *name, const char *args);
/* A canonical assistant message: the text (null when empty and there are
 * tool calls) and calls (stolen) when there are any. */
json_t *wire__message(const sbuf_t *text, json_t *calls);
/* The name of the tool call `id` made by an assistant message before
 * msgs[upto] (tool results in Gemini and Ollama are matched by name). */
const char *wire__tool_name(const json_t *msgs, size_t upto, const char *id);
/* Appends items (stolen) as a message {role, key: items} to msgs, merged
 * into the last message when that has the same role; nothing when empty. */
void wire__push(json_t *msgs, const char *role, const char *key, json_t *items);

/* ---- wire_json.c: what every renderer reads from canon (with
 * wire_max_tokens, wire.h) ---- */

/* The canonical stop (a string or strings) as a new array, or NULL. */
json_t *wire__stop_array(const json_t *canon);
/* System and developer messages joined into one text (every other format
 * keeps the system prompt apart from the conversation). */
void wire__system_text(const json_t *msgs, sbuf_t *out);

/* ---- wire.c: usage and finish reasons ---- */

/* Reads the two token counts o[in], o[out] into u (present when either is
 * an integer). */
void wire__read_usage(const json_t *o, const char *in, const char *out,
                      wire_usage_t *u);
/* Anthropic's usage object; its input_tokens leave out the cached ones,
 * which are counted too. */
void wire__anthropic_usage(const json_t *o, wire_usage_t *u);
/* Gemini's usageMetadata; thinking tokens are billed as output. */
void wire__gemini_usage(const json_t *um, wire_usage_t *u);
/* OpenAI's {"prompt_tokens","completion_tokens","total_tokens"}. */
json_t *wire__usage_json(const wire_usage_t *u);
/* A provider's finish reason as a canonical one; a plain stop after tool
 * calls means the model wants them run (Gemini and Ollama say STOP/stop). */
const char *wire__finish_of(wire_kind_t kind, const char *raw, bool saw_tool);
/* A canonical finish reason as Anthropic's stop_reason. */
const char *wire__anthropic_stop(const char *finish);

/* ---- wire_validate.c: checks shared with Anthropic requests ---- */

/* o[key], when present and not null, is a number in [lo, hi]; else
 * VP_EINVALID with the reason in err. */
int wire__check_num(const json_t *o, const char *key, double lo, double hi, char *err,
                    size_t len);
/* o[key], when present and not null, is an integer >= lo. */
int wire__check_int(const json_t *o, const char *key, long lo, char *err, size_t len);
/* o[key], when present and not null, is a boolean. */
int wire__check_bool(const json_t *o, const char *key, char *err, size_t len);
/* Whether a is an array of strings only. */
bool wire__all_strings(const json_t *a);

/* ---- one renderer per provider kind (canonical -> that kind's body) ---- */

/* wire_upstream_anthropic.c: a Messages request; max_tokens from canon,
 * else default_max (else 4096). */
json_t *wire__upstream_anthropic(const json_t *canon, const char *model, bool stream,
                                 long default_max);
/* wire_upstream_anthropic.c: an assistant message's text and tool calls as
 * Anthropic content blocks (also used for whole responses). */
json_t *wire__anthropic_blocks(const json_t *m);
/* wire_upstream_gemini.c: a generateContent body; writes its path. */
json_t *wire__upstream_gemini(const json_t *canon, const char *model, bool stream,
                              char *path, size_t pathlen);
/* wire_upstream_ollama.c: an /api/chat body. */
json_t *wire__upstream_ollama(const json_t *canon, const char *model, bool stream);

#endif
