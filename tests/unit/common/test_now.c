/* test_now.c - unit tests for common/now.c: the wall clock in Unix
 * milliseconds, and deadlines for pthread_cond_timedwait (nanoseconds
 * carried into seconds, never 1e9 or more). */
#include "now.h"

#include <criterion/criterion.h>

static int64_t s_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(now, wall_ms_is_unix_time)
{
    int64_t before = s_realtime_ms(), t = now_wall_ms(), after = s_realtime_ms();
    cr_assert(t >= before && t <= after, "%lld not in [%lld, %lld]", (long long)t,
              (long long)before, (long long)after);
    cr_assert_gt(t, 1700000000000LL, "not milliseconds since 1970");
}

Test(now, a_deadline_is_ms_from_now_with_its_nanoseconds_carried)
{
    static const int64_t ms[] = {0, 1, 999, 1000, 1500, 2999, 60000};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        int64_t before = s_realtime_ms();
        struct timespec d = now_deadline(ms[i]);
        int64_t after = s_realtime_ms();
        int64_t at = (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;
        cr_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L, "tv_nsec %ld", d.tv_nsec);
        cr_assert(at >= before + ms[i] && at <= after + ms[i], "%lld ms: %lld not in [%lld, %lld]",
                  (long long)ms[i], (long long)at, (long long)(before + ms[i]),
                  (long long)(after + ms[i]));
    }
}
