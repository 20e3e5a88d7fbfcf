/* jparse.h - a fast path for jansson's json_loadb on request bodies.
 *
 * DESIGN. jansson reads its input one byte at a time through a stream and a
 * growing string buffer (~200 instructions a byte of a small request body,
 * callgrind). jparse_load reads the usual body, an object or array of
 * plain members, in one pass (runs of plain string bytes in a tight loop)
 * and builds the same jansson tree with the same calls jansson's parser
 * makes (json_object_setn_new_nocheck: the last of a repeated key wins, in
 * the first one's place). Whatever it does not take, it leaves to jansson
 * by returning NULL: any text that jansson would refuse (so that the
 * caller reports jansson's error, position included), a string with
 * \u0000, an integer past json_int_t, a real that overflows, more
 * than JPARSE_MAX_DEPTH levels. A tree it returns is the one json_loadb(text,
 * len, 0, NULL) returns (tests hold the two to the same output). Any thread. */
#ifndef VAPORA_JPARSE_H
#define VAPORA_JPARSE_H

#include <jansson.h>
#include <stddef.h>

#define JPARSE_MAX_DEPTH 64

/* The tree of the JSON text [text, text + len) (an object or an array, as
 * json_loadb without flags takes), owned by the caller; NULL when the text
 * is left to jansson. */
json_t *jparse_load(const char *text, size_t len);

#endif
