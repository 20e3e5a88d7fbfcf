/* cursor.c - see cursor.h. */
#include "cursor.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

void cursor_encode(char kind, int64_t pos, char *buf, size_t len)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%c.%lld", kind, (long long)pos);
    sodium_bin2base64(buf, len, (const unsigned char *)raw, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

bool cursor_decode(char kind, const char *cursor, int64_t *pos)
{
    unsigned char raw[32];
    size_t n = 0;
    if (sodium_base642bin(raw, sizeof raw - 1, cursor, strlen(cursor), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n < 3 || raw[0] != (unsigned char)kind || raw[1] != '.')
        return false;
    raw[n] = '\0';
    long v;
    if (parse_long((const char *)raw + 2, 1, 0x7fffffffffffffffL, &v) < 0)
        return false;
    *pos = v;
    return true;
}
