/* wire_scan.c - the usage of a whole OpenAI answer read from its bytes
 * alone (wire_openai_scan_usage), for an answer relayed to an OpenAI caller
 * as it came: only the top-level members are walked, and only the usage
 * object is parsed. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wire_internal.h"

/* The first byte of the value of a top-level member `key` of the JSON
 * object in [p, end), or NULL. A scan without allocation: strings are
 * skipped whole, so a key-like text inside one is never taken. */
static const char *s_member(const char *p, const char *end, const char *key)
{
    size_t klen = strlen(key);
    int depth = 0;
    while (p < end) {
        char ch = *p++;
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == '"') {
            const char *s = p;
            while (p < end && *p != '"')
                p += *p == '\\' ? 2 : 1;
            if (p >= end)
                return NULL;
            size_t n = (size_t)(p++ - s);
            while (p < end && isspace((unsigned char)*p))
                p++;
            if (depth == 1 && n == klen && memcmp(s, key, klen) == 0 && p < end &&
                *p == ':') {
                for (p++; p < end && isspace((unsigned char)*p); p++)
                    ;
                return p;
            }
        }
    }
    return NULL;
}

int wire_openai_scan_usage(const char *body, size_t len, wire_usage_t *usage)
{
    if (!body)
        return VP_EPARSE;
    const char *p = body, *end = body + len;
    while (p < end && isspace((unsigned char)*p))
        p++;
    const char *choices = p < end && *p == '{' ? s_member(p, end, "choices") : NULL;
    if (!choices || choices == end || *choices != '[')
        return VP_EPARSE;
    const char *u = s_member(p, end, "usage");
    /* As reals: a count beyond 2^63 (in total_tokens, say) must not make
     * the whole object unreadable and the call free. */
    json_t *o = u && u < end && *u == '{'
                    ? json_loadb(u, (size_t)(end - u),
                                 JSON_DISABLE_EOF_CHECK | JSON_DECODE_INT_AS_REAL, NULL)
                    : NULL;
    *usage = (wire_usage_t){0};
    wire__read_usage(o, "prompt_tokens", "completion_tokens", usage);
    /* An object without counts (or a count beyond what a number holds,
     * which leaves the object unreadable) is no usage: estimated. */
    json_decref(o);
    return 0;
}
