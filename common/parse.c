/* parse.c - see parse.h. */
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    /* Digits, after an optional '-': strtol would also take spaces and '+'. */
    if (!s || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -EINVAL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || end == s)
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    char *end;
    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || end == s || errno == ERANGE || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}
