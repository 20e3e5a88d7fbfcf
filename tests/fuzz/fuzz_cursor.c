/* fuzz_cursor.c - the backend's paging cursors (services/backend/cursor.c):
 * a ?cursor= value as a client sends it. Properties: a cursor decodes to a
 * position > 0 of its own kind only, and the cursor of a decoded position
 * decodes to that position again. */
#include <string.h>
#include <stdlib.h>

#include "backend/cursor.h"
#include "fz.h"

static void s_kind(char kind, const char *cursor)
{
    int64_t pos = 0;
    if (!cursor_decode(kind, cursor, &pos))
        return;
    FZ_CHECK(pos > 0, "cursor '%s' decoded to %lld", cursor, (long long)pos);
    char other = kind == 't' ? 'p' : 't';
    int64_t pos2 = 0;
    FZ_CHECK(!cursor_decode(other, cursor, &pos2), "cursor '%s' fits both kinds",
             cursor);
    char buf[64];
    cursor_encode(kind, pos, buf, sizeof buf);
    FZ_CHECK(cursor_decode(kind, buf, &pos2) && pos2 == pos,
             "position %lld does not survive its own cursor '%s'", (long long)pos, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    char *cursor = fz_rest_str(&in);
    s_kind('t', cursor);
    s_kind('p', cursor);
    free(cursor);
    return 0;
}
