/* test_backoff.c - unit tests for supervisor/backoff.c: the restart policy. */
#include <criterion/criterion.h>

#include "backoff.h"

Test(backoff, first_failure_after_ready_restarts_at_once)
{
    sv_proc_t p = {.started_ms = 1000};
    cr_assert_eq(sv_backoff_after_exit(&p, 2000, true), 0);
    cr_assert_eq(p.failures, 1);
}

Test(backoff, repeated_failures_double_from_100ms_to_30s)
{
    sv_proc_t p = {.started_ms = 0};
    uint64_t prev = 0;
    for (unsigned i = 1; i <= 14; i++) {
        uint64_t d = sv_backoff_after_exit(&p, 10, false);
        uint64_t base = SV_BACKOFF_MIN_MS << (i - 1);
        if (base > SV_BACKOFF_MAX_MS)
            base = SV_BACKOFF_MAX_MS;
        cr_assert_geq(d, base, "failure %u: %llu < %llu", i, (unsigned long long)d,
                      (unsigned long long)base);
        cr_assert_leq(d, base + base / 4, "failure %u: jitter over 25 %%", i);
        cr_assert(d >= prev || base == SV_BACKOFF_MAX_MS);
        prev = d;
    }
    cr_assert_leq(prev, SV_BACKOFF_MAX_MS + SV_BACKOFF_MAX_MS / 4);
}

Test(backoff, never_ready_starts_at_100ms)
{
    sv_proc_t p = {0};
    uint64_t d = sv_backoff_after_exit(&p, 5, false);
    cr_assert_geq(d, SV_BACKOFF_MIN_MS);
    cr_assert_leq(d, SV_BACKOFF_MIN_MS * 5 / 4);
}

Test(backoff, thirty_seconds_healthy_resets_the_count)
{
    sv_proc_t p = {.started_ms = 0};
    for (int i = 0; i < 5; i++)
        sv_backoff_after_exit(&p, 100, true);
    cr_assert_eq(p.failures, 5);
    p.started_ms = 1000;
    cr_assert_eq(sv_backoff_after_exit(&p, 1000 + SV_HEALTHY_RESET_MS, true), 0);
    cr_assert_eq(p.failures, 1);
}

Test(backoff, enter_backoff_sets_state_and_times)
{
    sv_proc_t p = {0};
    sv_enter_backoff(&p, 500, 200);
    cr_assert_eq(p.state, SV_BACKOFF);
    cr_assert_eq(p.next_attempt_ms, 700);
    cr_assert_gt(p.next_attempt_wall, 0);
}
