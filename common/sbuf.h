/* sbuf.h - a growable NUL-terminated byte buffer. Zero-initialise
 * (`sbuf_t b = {0};`) and release with sbuf_free. Growth never fails (see
 * alloc.h). Not thread-safe: one owner at a time. */
#ifndef VAPORA_SBUF_H
#define VAPORA_SBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sbuf {
    char *data;
    size_t len;
    size_t cap;
} sbuf_t;

/* Makes room for extra more bytes (and the NUL). */
void sbuf_reserve(sbuf_t *b, size_t extra);
void sbuf_append(sbuf_t *b, const void *data, size_t len);
void sbuf_puts(sbuf_t *b, const char *s);
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vprintf(sbuf_t *b, const char *fmt, va_list ap);
/* Empties b and keeps its memory. */
void sbuf_reset(sbuf_t *b);
void sbuf_free(sbuf_t *b);
/* Hands the heap string to the caller (never NULL) and empties b. */
char *sbuf_steal(sbuf_t *b);

#endif
