/* fz.c - see fz.h. */
#include "fz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "\n%s:%d: property broken: %s\n  ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

uint8_t fz_byte(fz_in_t *in)
{
    if (!in->len)
        return 0;
    in->len--;
    return *in->data++;
}

char *fz_rest_str(fz_in_t *in)
{
    char *s = malloc(in->len + 1);
    if (!s)
        abort();
    memcpy(s, in->data, in->len);
    s[in->len] = '\0';
    in->data += in->len;
    in->len = 0;
    return s;
}
