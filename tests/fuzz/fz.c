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

void fz_check_json(const json_t *v, const char *what)
{
    char *s = json_dumps(v, JSON_COMPACT);
    FZ_CHECK(s, "%s does not serialise", what);
    json_t *back = json_loads(s, JSON_ALLOW_NUL, NULL);
    FZ_CHECK(back, "%s does not read back: %s", what, s);
    json_decref(back);
    free(s);
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

/* The values a scalar may become. */
static const char *const s_edges[] = {
    "-1",
    "0",
    "-0",
    "1",
    "9223372036854775807",
    "-9223372036854775808",
    "100000001",
    "4294967296",
    "1e30",
    "-1e30",
    "1.5",
    "\"12\"",
    "\"\"",
    "null",
    "true",
    "false",
    "[]",
    "{}",
};

/* Whether data[i] starts a JSON scalar outside a string; its length in *n. */
static bool s_scalar_at(const uint8_t *data, size_t size, size_t i, size_t *n)
{
    static const char num[] = "-+.0123456789eE";
    size_t j = i;
    if (strchr("-0123456789", data[i]) && data[i]) {
        while (j < size && data[j] && strchr(num, data[j]))
            j++;
    } else {
        static const char *const words[] = {"true", "false", "null"};
        for (size_t w = 0; w < 3 && j == i; w++)
            if (size - i >= strlen(words[w]) &&
                memcmp(data + i, words[w], strlen(words[w])) == 0)
                j = i + strlen(words[w]);
    }
    *n = j - i;
    return j > i;
}

/* The k-th scalar outside strings (k modulo their count): its offset and
 * length; false when there is none. */
static bool s_pick_scalar(const uint8_t *data, size_t size, unsigned k, size_t *off,
                          size_t *len)
{
    size_t count = 0, n;
    for (int pass = 0; pass < 2; pass++) {
        bool in_str = false;
        for (size_t i = 0; i < size; i++) {
            if (in_str) {
                if (data[i] == '\\')
                    i++;
                else if (data[i] == '"')
                    in_str = false;
            } else if (data[i] == '"') {
                in_str = true;
            } else if (s_scalar_at(data, size, i, &n)) {
                if (pass == 1 && count-- == 0) {
                    *off = i;
                    *len = n;
                    return true;
                }
                count += pass == 0;
                i += n - 1;
            }
        }
        if (count == 0)
            return false;
        count = k % count;
    }
    return false;
}

size_t fz_mutate_json(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    size_t off, len;
    if (seed % 3 != 0 || !s_pick_scalar(data, size, seed / 3, &off, &len))
        return LLVMFuzzerMutate(data, size, max_size);
    const char *v = s_edges[(seed / 7) % (sizeof s_edges / sizeof s_edges[0])];
    size_t vlen = strlen(v);
    if (size - len + vlen > max_size)
        return LLVMFuzzerMutate(data, size, max_size);
    memmove(data + off + vlen, data + off + len, size - off - len);
    memcpy(data + off, v, vlen);
    return size - len + vlen;
}
