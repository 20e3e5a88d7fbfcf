/* test_cursor.c - unit tests for services/backend/cursor.c. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "cursor.h"

Test(cursor, round_trip_and_rejects_garbage)
{
    char buf[64];
    int64_t pos = 0;
    cursor_encode('t', 12345, buf, sizeof buf);
    cr_assert(cursor_decode('t', buf, &pos));
    cr_assert_eq(pos, 12345);
    cr_assert_not(cursor_decode('p', buf, &pos), "a task cursor on projects");
    cr_assert_not(cursor_decode('t', "garbage!", &pos));
    cr_assert_not(cursor_decode('t', "", &pos));
    cursor_encode('t', 0, buf, sizeof buf);
    cr_assert_not(cursor_decode('t', buf, &pos), "position 0 is not a cursor");
}
