/* test_sbuf.c - unit tests for common/sbuf.c: the string buffer. */
#include "sbuf.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

Test(sbuf, sbuf_grows_and_steals)
{
    sbuf_t b = {0};
    for (int i = 0; i < 1000; i++)
        sbuf_printf(&b, "%d,", i);
    cr_assert_eq(b.len, strlen(b.data));
    cr_assert(strncmp(b.data, "0,1,2,", 6) == 0);
    char *s = sbuf_steal(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    free(s);
    s = sbuf_steal(&b); /* an empty buffer yields "" */
    cr_assert_str_eq(s, "");
    free(s);
}
