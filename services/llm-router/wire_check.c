/* wire_check.c - a provider's bytes checked before they are relayed as
 * they came: one JSON text (RFC 8259) in well-formed UTF-8 (RFC 3629).
 *
 * DESIGN. An OpenAI answer to an OpenAI caller is relayed byte for byte,
 * without being parsed into objects (that saves a parse and a rebuild per
 * call), so nothing else would notice corrupt JSON or UTF-8 before the
 * caller does. The check is a scanner that allocates nothing: containers
 * are tracked on a small stack (WIRE_CHECK_DEPTH deep at most), strings are
 * checked for escapes, control characters, UTF-8 and unpaired surrogates,
 * numbers for their grammar only (a number no machine type holds is still
 * JSON; the usage scan treats it as unreadable). See wire.h. */
#include <string.h>

#include "wire_internal.h"

#define WIRE_CHECK_DEPTH 512

typedef struct cur {
    const unsigned char *p, *end;
} cur_t;

static void s_ws(cur_t *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool s_digit(const cur_t *c)
{
    return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

static void s_digits(cur_t *c)
{
    while (s_digit(c))
        c->p++;
}

/* One UTF-8 sequence of two to four bytes at c->p: no overlong form, no
 * surrogate, nothing above U+10FFFF. */
static bool s_utf8(cur_t *c)
{
    unsigned b = c->p[0], need, cp;
    if (b >= 0xC2 && b <= 0xDF)
        need = 1, cp = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 2, cp = b & 0x0F;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 3, cp = b & 0x07;
    else
        return false;
    if ((size_t)(c->end - c->p) <= need)
        return false;
    for (unsigned i = 1; i <= need; i++) {
        if ((c->p[i] & 0xC0) != 0x80)
            return false;
        cp = cp << 6 | (c->p[i] & 0x3F);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
        return false;
    c->p += need + 1;
    return true;
}

/* The value of \uXXXX at p (6 bytes available), or -1. */
static long s_u_escape(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        unsigned ch = p[i];
        int d = ch >= '0' && ch <= '9'   ? (int)(ch - '0')
                : ch >= 'a' && ch <= 'f' ? (int)(ch - 'a' + 10)
                : ch >= 'A' && ch <= 'F' ? (int)(ch - 'A' + 10)
                                         : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* One escape at c->p (a backslash); surrogates must come in pairs. */
static bool s_escape(cur_t *c)
{
    if (c->end - c->p < 2)
        return false;
    if (c->p[1] != 'u') {
        if (!c->p[1] || !strchr("\"\\/bfnrt", c->p[1]))
            return false;
        c->p += 2;
        return true;
    }
    long hi = s_u_escape(c->p, c->end);
    if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
        return false;
    c->p += 6;
    if (hi < 0xD800 || hi > 0xDBFF)
        return true;
    long lo = s_u_escape(c->p, c->end);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return false;
    c->p += 6;
    return true;
}

/* The bytes a string may hold as they are: printable ASCII but the quote
 * and the backslash. Runs of them are skipped in a tight loop (most of an
 * answer is such text). */
static const unsigned char s_plain[256] = {
    [0x20 ... '"' - 1] = 1,
    ['"' + 1 ... '\\' - 1] = 1,
    ['\\' + 1 ... 0x7F] = 1,
};

/* A string, c->p at its opening quote. */
static bool s_string(cur_t *c)
{
    for (c->p++; c->p < c->end;) {
        const unsigned char *p = c->p, *end = c->end;
        while (p < end && s_plain[*p])
            p++;
        c->p = p;
        if (p == end)
            return false;
        unsigned ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20)
            return false;
        bool good = ch == '\\' ? s_escape(c) : ch >= 0x80 ? s_utf8(c) : (c->p++, true);
        if (!good)
            return false;
    }
    return false;
}

static bool s_number(cur_t *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (!s_digit(c))
        return false;
    if (*c->p++ != '0')
        s_digits(c);
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!s_digit(c))
            return false;
        s_digits(c);
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!s_digit(c))
            return false;
        s_digits(c);
    }
    return true;
}

static bool s_literal(cur_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* A value that is not a container. */
static bool s_scalar(cur_t *c)
{
    switch (*c->p) {
    case '"': return s_string(c);
    case 't': return s_literal(c, "true");
    case 'f': return s_literal(c, "false");
    case 'n': return s_literal(c, "null");
    default: return s_number(c);
    }
}

/* What the scanner expects next. */
typedef enum want { W_VALUE, W_KEY, W_AFTER } want_t;

/* After a value: a comma, the end of its container, or of the text. */
static want_t s_after(cur_t *c, unsigned char *stack, size_t *depth, bool *ok)
{
    s_ws(c);
    if (*depth == 0) {
        *ok = c->p == c->end;
        return W_AFTER;
    }
    unsigned char top = stack[*depth - 1];
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return top == '{' ? W_KEY : W_VALUE;
    }
    if (c->p < c->end && *c->p == (top == '{' ? '}' : ']')) {
        c->p++;
        (*depth)--;
        return W_AFTER;
    }
    *ok = false;
    return W_AFTER;
}

/* A key and its colon. */
static bool s_key(cur_t *c)
{
    s_ws(c);
    if (c->p >= c->end || *c->p != '"' || !s_string(c))
        return false;
    s_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return false;
    c->p++;
    return true;
}

bool wire_json_valid(const char *text, size_t len)
{
    cur_t c = {(const unsigned char *)text, (const unsigned char *)text + len};
    unsigned char stack[WIRE_CHECK_DEPTH];
    size_t depth = 0;
    bool ok = text != NULL;
    want_t want = W_VALUE;
    while (ok) {
        if (want == W_AFTER) {
            bool end = depth == 0;
            want = s_after(&c, stack, &depth, &ok);
            if (end)
                return ok;
            continue;
        }
        if (want == W_KEY && !s_key(&c))
            return false;
        s_ws(&c);
        if (c.p >= c.end)
            return false;
        unsigned char open = *c.p;
        if (open != '{' && open != '[') {
            ok = s_scalar(&c);
            want = W_AFTER;
            continue;
        }
        if (depth == WIRE_CHECK_DEPTH)
            return false;
        stack[depth++] = open;
        c.p++;
        s_ws(&c);
        bool empty = c.p < c.end && *c.p == (open == '{' ? '}' : ']');
        c.p += empty;
        depth -= empty;
        want = empty ? W_AFTER : open == '{' ? W_KEY : W_VALUE;
    }
    return false;
}
