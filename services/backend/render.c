/* render.c - see render.h. */
#include "render.h"

#include <stdlib.h>

/* Enough for a task with a short description and a few blockers. */
#define RENDER_FIRST 1024

static int s_append(const char *buf, size_t size, void *data)
{
    sbuf_append(data, buf, size);
    return 0;
}

char *render_json(const json_t *v, size_t flags)
{
    sbuf_t b = {0};
    sbuf_reserve(&b, RENDER_FIRST - 1);
    if (json_dump_callback(v, s_append, &b, flags) != 0) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_steal(&b);
}

/* jansson escapes the quote, the backslash and the control characters
 * (these as \b \f \n \r \t, the rest as \u00XX in upper case), and nothing
 * else without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH. */
static const char *s_escape(unsigned char ch, char seq[8])
{
    static const char hex[] = "0123456789ABCDEF";
    switch (ch) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default:
        seq[0] = '\\', seq[1] = 'u', seq[2] = '0', seq[3] = '0';
        seq[4] = hex[ch >> 4], seq[5] = hex[ch & 15], seq[6] = '\0';
        return seq;
    }
}

void render_string(sbuf_t *b, const char *s)
{
    if (!s) {
        sbuf_append(b, "null", 4);
        return;
    }
    sbuf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        char seq[8];
        sbuf_append(b, run, (size_t)(p - run));
        sbuf_puts(b, s_escape(*p, seq));
        run = p + 1;
    }
    sbuf_append(b, run, (size_t)(p - run));
    sbuf_append(b, "\"", 1);
}

void render_int(sbuf_t *b, long long v)
{
    char buf[24], *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    sbuf_append(b, p, (size_t)(buf + sizeof buf - p));
}

void render_value(sbuf_t *b, const json_t *v)
{
    json_dump_callback(v, s_append, b, JSON_COMPACT | JSON_ENCODE_ANY);
}
