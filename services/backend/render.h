/* render.h - JSON text in one allocation.
 *
 * json_dumps grows its buffer from 16 bytes by doubling and then copies
 * the result: about ten allocations for a task's few hundred bytes, and a
 * task write renders three texts (its stored document, its event, the
 * reply). Rendering into a buffer sized for a typical document costs one.
 * Any thread. */
#ifndef VAPORA_BACKEND_RENDER_H
#define VAPORA_BACKEND_RENDER_H

#include <jansson.h>
#include <stddef.h>

#include "sbuf.h"

/* v as JSON text (json_dumps' flags): a heap string the caller frees, or
 * NULL when v cannot be encoded. */
char *render_json(const json_t *v, size_t flags);

/* Pieces of JSON text appended to b, byte for byte what json_dumps
 * (JSON_COMPACT) gives for the same values, for the documents written on
 * every request (store_doc.c), where building jansson values to dump them
 * cost more than the rest of the write:
 * - s (valid UTF-8: it came from JSON) as a string, or null for NULL;
 * - a whole number;
 * - any value (through jansson: reals, a task's result). */
void render_string(sbuf_t *b, const char *s);
void render_int(sbuf_t *b, long long v);
void render_value(sbuf_t *b, const json_t *v);

#endif
