/* test_vp_error.c - unit tests for common/vp_error.c: project codes do not
 * collide with errno's and each has its own text. */
#include "vp_error.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(vp_error, codes_sit_outside_errnos_range_with_their_own_text)
{
    cr_assert_str_eq(vp_strerror(0), "success");
    cr_assert_str_eq(vp_strerror(-ENOENT), strerror(ENOENT));
    cr_assert_not(vp_is_project_error(-ENOENT));
    cr_assert_not(vp_is_project_error(-4095));
    for (int e = VP_EBASE + 1; e < VP_ELAST; e++) {
        cr_assert(vp_is_project_error(e));
        cr_assert_lt(e, -4096, "a project code inside errno's range");
        cr_assert_str_neq(vp_strerror(e), "unknown error", "code %d has no text", e);
        for (int f = e + 1; f < VP_ELAST; f++)
            cr_assert_str_neq(vp_strerror(e), vp_strerror(f));
    }
    cr_assert_not(vp_is_project_error(VP_EBASE));
    cr_assert_not(vp_is_project_error(VP_ELAST));
}

Test(vp_error, errorf_writes_the_message_and_returns_the_code)
{
    char err[16];
    cr_assert_eq(vp_errorf(err, sizeof err, -EINVAL, "bad %s", "key"), -EINVAL);
    cr_assert_str_eq(err, "bad key");
    cr_assert_eq(vp_errorf(err, sizeof err, VP_EINVALID, "%s", "a message far too long"),
                 VP_EINVALID);
    cr_assert_str_eq(err, "a message far t", "not truncated to the buffer");
    cr_assert_eq(vp_errorf(NULL, 0, VP_EPARSE, "nowhere %d", 1), VP_EPARSE);
}
