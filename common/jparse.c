/* jparse.c - request bodies read in one pass into jansson trees, jansson
 * itself for anything else. See jparse.h. */
#include "jparse.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "sbuf.h"

typedef struct jp {
    const unsigned char *p, *end;
    int depth;
    sbuf_t tmp; /* a string with escapes, decoded */
} jp_t;

/* Bytes a string holds as they are: printable ASCII but '"' and '\'. */
static const unsigned char s_plain[256] = {
    [0x20 ... '"' - 1] = 1,
    ['"' + 1 ... '\\' - 1] = 1,
    ['\\' + 1 ... 0x7F] = 1,
};

static json_t *s_value(jp_t *j);

static void s_ws(jp_t *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

/* The length of the well-formed UTF-8 sequence of 2 to 4 bytes at p (no
 * overlong form, no surrogate, nothing past U+10FFFF), or 0. */
static size_t s_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned b = p[0];
    size_t n = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3
                                         : b >= 0xF0 && b <= 0xF4 ? 4
                                                                  : 0;
    if (!n || (size_t)(end - p) < n)
        return 0;
    unsigned cp = b & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    bool bad = (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
               (n == 4 && (cp < 0x10000 || cp > 0x10FFFF));
    return bad ? 0 : n;
}

/* The value of the 4 hex digits at p, or -1. */
static long s_hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = parse_hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Code point cp (no NUL: left to jansson) in UTF-8 onto b. */
static void s_put_utf8(sbuf_t *b, long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80)
        u[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)),
        n = 4;
    sbuf_append(b, u, n);
}

/* One escape at j->p (a backslash), decoded onto j->tmp. */
static bool s_escape(jp_t *j)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (j->end - j->p < 2)
        return false;
    const char *k = j->p[1] ? strchr(from, j->p[1]) : NULL;
    if (k) {
        sbuf_append(&j->tmp, &to[k - from], 1);
        j->p += 2;
        return true;
    }
    long cp = j->p[1] == 'u' ? s_hex4(j->p + 2, j->end) : -1;
    if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
        return false; /* \u0000, a lone low surrogate, not an escape */
    j->p += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u'
                      ? s_hex4(j->p + 2, j->end)
                      : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return false;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        j->p += 6;
    }
    s_put_utf8(&j->tmp, cp);
    return true;
}

/* The string at j->p (its opening quote): *s and *n its decoded text,
 * borrowed from the input when it has no escape, else from j->tmp. */
static bool s_string(jp_t *j, const char **s, size_t *n)
{
    const unsigned char *start = ++j->p;
    bool esc = false;
    for (;;) {
        while (j->p < j->end && s_plain[*j->p])
            j->p++;
        if (j->p >= j->end || *j->p < 0x20)
            return false;
        if (*j->p == '"')
            break;
        if (*j->p == '\\') {
            if (!esc)
                sbuf_reset(&j->tmp);
            esc = true;
            sbuf_append(&j->tmp, start, (size_t)(j->p - start));
            if (!s_escape(j))
                return false;
            start = j->p;
            continue;
        }
        size_t u = s_utf8(j->p, j->end); /* copied with the run it is in */
        if (!u)
            return false;
        j->p += u;
    }
    if (esc)
        sbuf_append(&j->tmp, start, (size_t)(j->p - start));
    *s = esc ? j->tmp.data : (const char *)start;
    *n = esc ? j->tmp.len : (size_t)(j->p - start);
    j->p++;
    return true;
}

static void s_digits(jp_t *j)
{
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
}

/* A number as jansson's grammar has it: an integer (no '.', no exponent)
 * that a json_int_t holds, or a real that a double holds. */
static json_t *s_number(jp_t *j)
{
    const unsigned char *s = j->p;
    bool neg = *j->p == '-';
    j->p += neg;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return NULL;
    if (*j->p++ != '0')
        s_digits(j);
    const unsigned char *int_end = j->p;
    bool real = false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        const unsigned char *d = j->p;
        s_digits(j);
        if (j->p == d)
            return NULL;
        real = true;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        j->p += j->p < j->end && (*j->p == '+' || *j->p == '-');
        const unsigned char *d = j->p;
        s_digits(j);
        if (j->p == d)
            return NULL;
        real = true;
    }
    size_t n = (size_t)(j->p - s);
    if (!real) { /* as strtoll reads it; out of its range: jansson's error */
        if (int_end - s - neg > 19)
            return NULL;
        unsigned long long v = 0;
        for (const unsigned char *d = s + neg; d < int_end; d++)
            v = v * 10 + (unsigned)(*d - '0');
        if (v > (unsigned long long)LLONG_MAX + neg)
            return NULL;
        return json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
    }
    char buf[64];
    if (n >= sizeof buf)
        return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    return isinf(v) ? NULL : json_real(v);
}

static json_t *s_literal(jp_t *j, const char *word, json_t *v)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return NULL;
    j->p += n;
    return v;
}

/* Past a container's opening byte; true when it closes at once. */
static bool s_open(jp_t *j, unsigned char close)
{
    j->p++;
    s_ws(j);
    bool closed = j->p < j->end && *j->p == close;
    j->p += closed;
    return closed;
}

/* After a member or element: past the ',' before another one, or past
 * the container's end (*closed); false when neither follows. */
static bool s_more(jp_t *j, unsigned char close, bool *closed)
{
    s_ws(j);
    *closed = j->p < j->end && *j->p == close;
    if (!*closed && (j->p >= j->end || *j->p != ','))
        return false;
    j->p++;
    s_ws(j);
    return true;
}

static json_t *s_array(jp_t *j)
{
    json_t *a = json_array();
    bool closed = s_open(j, ']'), ok = true;
    while (ok && !closed) {
        json_t *v = s_value(j);
        ok = v && json_array_append_new(a, v) == 0 && s_more(j, ']', &closed);
    }
    if (!ok)
        json_decref(a);
    return ok ? a : NULL;
}

/* One member "key": value into o. */
static bool s_member(jp_t *j, json_t *o)
{
    const char *k;
    size_t klen;
    if (j->p >= j->end || *j->p != '"' || !s_string(j, &k, &klen))
        return false;
    /* A decoded key is taken from j->tmp, which the value may reuse. */
    char *own = k == j->tmp.data ? sbuf_steal(&j->tmp) : NULL;
    k = own ? own : k;
    s_ws(j);
    json_t *v = j->p < j->end && *j->p == ':' ? (j->p++, s_ws(j), s_value(j)) : NULL;
    int rc = v ? json_object_setn_new_nocheck(o, k, klen, v) : -1;
    free(own);
    return rc == 0;
}

static json_t *s_object(jp_t *j)
{
    json_t *o = json_object();
    bool closed = s_open(j, '}'), ok = true;
    while (ok && !closed)
        ok = s_member(j, o) && s_more(j, '}', &closed);
    if (!ok)
        json_decref(o);
    return ok ? o : NULL;
}

static json_t *s_value(jp_t *j)
{
    if (j->p >= j->end)
        return NULL;
    const char *s;
    size_t n;
    json_t *v = NULL;
    switch (*j->p) {
    case '{':
    case '[':
        if (++j->depth > JPARSE_MAX_DEPTH)
            return NULL;
        v = *j->p == '{' ? s_object(j) : s_array(j);
        j->depth--;
        return v;
    case '"': return s_string(j, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    case 't': return s_literal(j, "true", json_true());
    case 'f': return s_literal(j, "false", json_false());
    case 'n': return s_literal(j, "null", json_null());
    default: return s_number(j);
    }
}

json_t *jparse_load(const char *text, size_t len)
{
    jp_t j = {(const unsigned char *)text, (const unsigned char *)text + len, 0, {0}};
    s_ws(&j);
    json_t *v = j.p < j.end && (*j.p == '{' || *j.p == '[') ? s_value(&j) : NULL;
    s_ws(&j);
    sbuf_free(&j.tmp);
    if (v && j.p != j.end) {
        json_decref(v);
        v = NULL;
    }
    return v;
}
