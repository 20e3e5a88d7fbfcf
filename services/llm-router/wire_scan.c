/* wire_scan.c - the usage of a whole OpenAI answer read from its bytes
 * alone (wire_openai_scan_usage), for an answer relayed to an OpenAI caller
 * as it came: nothing else of it is parsed.
 *
 * DESIGN. The usage object is what a JSON parser would make of it
 * (jansson, counts decoded as reals): an object that does not parse, or
 * holds a number no double holds, is no usage at all; the last of a
 * repeated key counts. Most usage objects are a few plain members, read
 * here without building a tree (a jansson object costs ~13k instructions,
 * a tenth of a relayed call): the object is checked as one JSON text
 * (wire_json_valid), then its top-level members are walked. One with an
 * escape anywhere (a key may be spelt with one) goes to jansson, which
 * stays the reference (tests hold the two to the same answers). */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wire_internal.h"

/* The closing quote of the string whose text starts at p (past its
 * opening quote), or NULL: an escape's character is never taken for it.
 * memchr finds the quotes and backslashes (a byte-by-byte walk cost most
 * of a relayed answer's scan). */
static const char *s_string_end(const char *p, const char *end)
{
    const char *q = NULL;
    for (;;) {
        if (!q || q < p) {
            q = p < end ? memchr(p, '"', (size_t)(end - p)) : NULL;
            if (!q)
                return NULL;
        }
        const char *b = memchr(p, '\\', (size_t)(q - p));
        if (!b)
            return q;
        p = b + 2; /* past the escaped character */
    }
}

/* For each of the n keys, the first byte of the value of the top-level
 * member of that name of the JSON object at p (ending before end), or NULL,
 * in vals; and how many members of that name it has, in counts (a second
 * one is read two ways: first wins here, last in most clients). One pass
 * without allocation: strings are skipped whole, so a key-like text inside
 * one is never taken. */
static void s_members(const char *p, const char *end, const char *const *keys, size_t n,
                      const char **vals, int *counts)
{
    int depth = 0;
    for (size_t k = 0; k < n; k++)
        vals[k] = NULL, counts[k] = 0;
    while (p < end) {
        char ch = *p++;
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return; /* the object is over */
        } else if (ch == '"') {
            const char *s = p;
            p = s_string_end(p, end);
            if (!p) { /* not JSON: nothing found */
                for (size_t k = 0; k < n; k++)
                    vals[k] = NULL;
                return;
            }
            size_t len = (size_t)(p++ - s);
            while (p < end && isspace((unsigned char)*p))
                p++;
            if (depth != 1 || p >= end || *p != ':')
                continue;
            for (size_t k = 0; k < n; k++) {
                if (len != strlen(keys[k]) || memcmp(s, keys[k], len) != 0)
                    continue;
                const char *v = p + 1;
                while (v < end && isspace((unsigned char)*v))
                    v++;
                vals[k] = vals[k] ? vals[k] : v;
                counts[k]++;
            }
        }
    }
}

/* Whether the array at a starts with an object that has one "message"
 * object: a chat completion's first choice. */
static bool s_first_choice(const char *a, const char *end)
{
    const char *p = a + 1;
    while (p < end && isspace((unsigned char)*p))
        p++;
    static const char *const key[] = {"message"};
    const char *m = NULL;
    int n = 0;
    if (p < end && *p == '{')
        s_members(p, end, key, 1, &m, &n);
    return m && n == 1 && m < end && *m == '{';
}

/* ---- the reference: jansson ---- */

static void s_usage_jansson(const char *u, const char *end, wire_usage_t *usage)
{
    /* As reals: a count beyond 2^63 (in total_tokens, say) must not make
     * the whole object unreadable and the call free. */
    json_t *o = json_loadb(u, (size_t)(end - u),
                           JSON_DISABLE_EOF_CHECK | JSON_DECODE_INT_AS_REAL, NULL);
    wire__read_usage(o, "prompt_tokens", "completion_tokens", usage);
    json_decref(o);
}

/* ---- plain objects, without a tree ---- */

typedef struct s_span {
    const char *p, *end; /* a member's value; p NULL: the key is absent */
} s_span_t;

#define S_NUM_MAX 64 /* a longer number goes to jansson */

static bool s_num_char(char ch)
{
    return (ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == '.' ||
           ch == 'e' || ch == 'E';
}

/* The number whose text starts at p (the body need not end in a NUL);
 * *next past its text. false: longer than S_NUM_MAX. An integer of up to
 * 15 digits, what counts are, is read here, exactly as strtod reads it
 * (every such integer is a double); anything else by strtod, on a copy. */
static bool s_number(const char *p, const char *end, double *v, const char **next)
{
    const char *q = p;
    while (q < end && s_num_char(*q))
        q++;
    size_t n = (size_t)(q - p);
    if (n >= S_NUM_MAX)
        return false;
    *next = q;
    bool neg = *p == '-';
    size_t ndigits = n - neg;
    long long iv = 0;
    const char *d = p + neg;
    for (; ndigits > 0 && ndigits <= 15 && d < q && *d >= '0' && *d <= '9'; d++)
        iv = iv * 10 + (*d - '0');
    if (ndigits > 0 && ndigits <= 15 && d == q) {
        *v = neg ? -(double)iv : (double)iv;
        return true;
    }
    char buf[S_NUM_MAX];
    memcpy(buf, p, n);
    buf[n] = '\0';
    *v = strtod(buf, NULL);
    return true;
}

/* The end of the object starting at u (its closing '}' + 1), skipping
 * strings whole; NULL when it does not close in [u, end), or when an
 * escape or a number no double holds (or a long one) is met: jansson
 * decides those. */
static const char *s_object_end(const char *u, const char *end)
{
    int depth = 0;
    for (const char *p = u; p < end; p++) {
        char ch = *p;
        if (ch == '"') {
            const char *q =
                p + 1 < end ? memchr(p + 1, '"', (size_t)(end - p - 1)) : NULL;
            if (!q || memchr(p + 1, '\\', (size_t)(q - p - 1)))
                return NULL;
            p = q;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
            return p + 1;
        } else if (ch == '-' || isdigit((unsigned char)ch)) {
            double v;
            const char *next;
            if (!s_number(p, end, &v, &next) || isinf(v))
                return NULL;
            p = next - 1;
        }
    }
    return NULL;
}

/* Past the value at p (a valid JSON text's, without escapes). */
static const char *s_skip_value(const char *p, const char *end)
{
    int depth = 0;
    for (; p < end; p++) {
        char ch = *p;
        if (ch == '"') {
            p = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (depth == 0)
                return p + 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return p + 1;
            if (depth < 0)
                return p;
        } else if (depth == 0 && (ch == ',' || isspace((unsigned char)ch))) {
            return p;
        }
    }
    return p;
}

static const char *s_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p))
        p++;
    return p;
}

/* A count's value, as s_read_count (wire.c) takes a parsed one. */
static void s_count(const s_span_t *v, long *out, wire_usage_t *u)
{
    if (!v->p || (v->end - v->p == 4 && memcmp(v->p, "null", 4) == 0))
        return;
    double d;
    const char *next;
    if ((*v->p != '-' && !isdigit((unsigned char)*v->p)) ||
        !s_number(v->p, v->end, &d, &next) || d < 0) { /* a negative: no count */
        u->unreadable = true;
        return;
    }
    *out = d != d || d <= 0               ? 0
           : d >= (double)WIRE_MAX_TOKENS ? WIRE_MAX_TOKENS
                                          : (long)d;
    u->present = true;
}

/* The valid object [u, end) without escapes: its top-level members walked,
 * the last of each count kept. */
static void s_usage_plain(const char *u, const char *end, wire_usage_t *usage)
{
    s_span_t in = {0}, out = {0};
    const char *p = s_ws(u + 1, end);
    while (p < end && *p == '"') {
        const char *key = p + 1, *q = memchr(key, '"', (size_t)(end - key));
        size_t klen = (size_t)(q - key);
        p = s_ws(s_ws(q + 1, end) + 1, end); /* past the ':' */
        s_span_t v = {p, s_skip_value(p, end)};
        if (klen == 13 && memcmp(key, "prompt_tokens", 13) == 0)
            in = v;
        else if (klen == 17 && memcmp(key, "completion_tokens", 17) == 0)
            out = v;
        p = s_ws(v.end, end);
        if (p < end && *p == ',')
            p = s_ws(p + 1, end);
    }
    s_count(&in, &usage->input_tokens, usage);
    s_count(&out, &usage->output_tokens, usage);
}

int wire_openai_scan_usage(const char *body, size_t len, wire_usage_t *usage)
{
    if (!body)
        return VP_EPARSE;
    const char *p = body, *end = body + len;
    while (p < end && isspace((unsigned char)*p))
        p++;
    static const char *const keys[] = {"choices", "usage"};
    const char *vals[2] = {NULL, NULL};
    int counts[2] = {0, 0};
    if (p < end && *p == '{')
        s_members(p, end, keys, 2, vals, counts);
    const char *choices = vals[0], *u = vals[1];
    if (!choices || counts[0] != 1 || choices == end || *choices != '[' ||
        !s_first_choice(choices, end) || counts[1] > 1)
        return VP_EPARSE;
    *usage = (wire_usage_t){0};
    if (!u || u >= end || *u != '{')
        return 0; /* none (null, or not an object): estimated */
    /* Anything but a plain valid object is jansson's to read (one that
     * does not parse is no usage: estimated). */
    const char *uend = s_object_end(u, end);
    if (uend && wire_json_valid(u, (size_t)(uend - u)))
        s_usage_plain(u, uend, usage);
    else
        s_usage_jansson(u, end, usage);
    return 0;
}
