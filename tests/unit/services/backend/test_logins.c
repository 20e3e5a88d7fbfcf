/* test_logins.c - unit tests for services/backend/logins.c: the login
 * slow-down, shared by the workers of a data_dir. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "logins.h"

Test(auth, repeated_failures_are_slowed_down)
{
    char dir[] = "/tmp/vapora-fails-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    logins_t *l = logins_new(dir);
    cr_assert(logins_shared(l));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_failure_delay(l, "bob"), 0);
    cr_assert_eq(logins_failure_delay(l, "bob"), 250);
    cr_assert_eq(logins_failure_delay(l, "bob"), 500);
    for (int i = 0; i < 10; i++)
        logins_failure_delay(l, "bob");
    cr_assert_eq(logins_failure_delay(l, "bob"), 8000);
    cr_assert_eq(logins_failure_delay(l, "alice"), 0);
    logins_forget(l, "bob");
    cr_assert_eq(logins_failure_delay(l, "bob"), 0);
    /* A second worker on the same data_dir counts the same failures. */
    logins_t *other = logins_new(dir);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(logins_failure_delay(i % 2 ? l : other, "carol"), 0);
    cr_assert_eq(logins_failure_delay(other, "carol"), 0);
    cr_assert_eq(logins_failure_delay(l, "carol"), 250);
    logins_destroy(&other);
    logins_destroy(&l);
    cr_assert_null(l);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
