/* alloc.h - allocation that cannot fail: out of memory in a worker is fatal,
 * so x*alloc() abort with a line on stderr instead of returning NULL and
 * callers never check. Any thread. */
#ifndef VAPORA_ALLOC_H
#define VAPORA_ALLOC_H

#include <stddef.h>

#include "base.h"

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
