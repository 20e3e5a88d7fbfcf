/* parse.h - whole numbers and doubles from text (a config value, a query
 * parameter), strictly: no trailing bytes, no silent overflow; and the
 * value of a hex digit. Any thread. */
#ifndef VAPORA_PARSE_H
#define VAPORA_PARSE_H

/* Parses a whole base-10 integer in [min,max]: digits after an optional
 * '-', nothing else (no spaces, no '+'); returns 0 or -EINVAL/-ERANGE. */
int parse_long(const char *s, long min, long max, long *out);
/* Parses a whole finite double; returns 0 or -EINVAL. */
int parse_double(const char *s, double *out);

/* The value of hex digit c (either case), or -1. */
static inline int parse_hex_digit(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

#endif
