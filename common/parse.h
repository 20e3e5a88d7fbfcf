/* parse.h - whole numbers and doubles from text (a config value, a query
 * parameter), strictly: no trailing bytes, no silent overflow. Any thread. */
#ifndef VAPORA_PARSE_H
#define VAPORA_PARSE_H

/* Parses a whole base-10 integer in [min,max]: digits after an optional
 * '-', nothing else (no spaces, no '+'); returns 0 or -EINVAL/-ERANGE. */
int parse_long(const char *s, long min, long max, long *out);
/* Parses a whole finite double; returns 0 or -EINVAL. */
int parse_double(const char *s, double *out);

#endif
