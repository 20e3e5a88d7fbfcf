/* test_parse.c - unit tests for common/parse.c: number parsing. */
#include "parse.h"

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

Test(parse, parse_numbers)
{
    long v;
    double d;
    cr_assert_eq(parse_long("42", 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(parse_long("101", 0, 100, &v), -ERANGE);
    cr_assert_eq(parse_long("4x", 0, 100, &v), -EINVAL);
    cr_assert_eq(parse_long("", 0, 100, &v), -EINVAL);
    cr_assert_eq(parse_long("+5", 0, 100, &v), -EINVAL);
    cr_assert_eq(parse_long(" 5", 0, 100, &v), -EINVAL);
    cr_assert_eq(parse_long("-", -5, 100, &v), -EINVAL);
    cr_assert_eq(parse_long("-5", -5, 100, &v), 0);
    cr_assert_eq(v, -5);
    cr_assert_eq(parse_double("0.5", &d), 0);
    cr_assert_float_eq(d, 0.5, 1e-12);
    cr_assert_eq(parse_double("nan", &d), -EINVAL);
    cr_assert_eq(parse_double("1e999", &d), -EINVAL);
}
