/* test_utf8.c - unit tests for common/utf8.c: UTF-8 repair. */
#include "base.h"
#include "utf8.h"

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

Test(utf8, utf8_repair_keeps_valid_text_and_replaces_the_rest)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"\xff", "\xef\xbf\xbd"},
        {"a\xc3", "a\xef\xbf\xbd"},                               /* cut at the end */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\x9f\xbf|\xf4\x8f\xbf\xbf", "\xed\x9f\xbf|\xf4\x8f\xbf\xbf"}, /* edges */
        {"x\xe2\x82y", "x\xef\xbf\xbd\xef\xbf\xbdy"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *got = utf8_repair(cases[i].in);
        cr_assert_str_eq(got, cases[i].out, "case %zu", i);
        free(got);
    }
}

Test(utf8, chars_counts_code_points_not_bytes)
{
    cr_assert_eq(utf8_chars(""), 0);
    cr_assert_eq(utf8_chars("plain"), 5);
    cr_assert_eq(utf8_chars("caf\xc3\xa9"), 4);
    cr_assert_eq(utf8_chars("\xe2\x82\xac\xf0\x9f\x98\x80"), 2);
}
