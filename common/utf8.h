/* utf8.h - UTF-8 text from outside (a request path, a header) made safe to
 * put into JSON and logs. Any thread. */
#ifndef VAPORA_UTF8_H
#define VAPORA_UTF8_H

#include <stddef.h>

/* Returns a heap copy of the NUL-terminated s in which every byte that is
 * not part of a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) is replaced by U+FFFD, so that text
 * from a request (a percent-decoded path, say) can go into JSON. */
char *utf8_repair(const char *s);

/* Characters (code points) of the well-formed UTF-8 s: the length limits of
 * titles and descriptions count these, not bytes. */
size_t utf8_chars(const char *s);

#endif
