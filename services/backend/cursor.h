/* cursor.h - the opaque cursors of paged lists: a list's kind and a row
 * position (the row's seq), base64url-encoded. Pure functions, any thread. */
#ifndef VAPORA_BACKEND_CURSOR_H
#define VAPORA_BACKEND_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encodes position pos of a list of kind ('p' projects, 't' tasks) into
 * buf (len bytes; 64 is plenty). */
void cursor_encode(char kind, int64_t pos, char *buf, size_t len);
/* Decodes a cursor of kind into *pos (> 0); false when it is malformed or
 * belongs to another kind of list. */
bool cursor_decode(char kind, const char *cursor, int64_t *pos);

#endif
