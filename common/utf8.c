/* utf8.c - see utf8.h. */
#include "utf8.h"

#include <string.h>

#include "sbuf.h"

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0. */
static size_t s_utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

char *utf8_repair(const char *s)
{
    sbuf_t b = {0};
    sbuf_reserve(&b, strlen(s) + 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = s_utf8_len(p);
        if (n) {
            sbuf_append(&b, p, n);
            p += n;
        } else {
            sbuf_append(&b, "\xEF\xBF\xBD", 3);
            p++;
        }
    }
    return sbuf_steal(&b);
}

size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}
