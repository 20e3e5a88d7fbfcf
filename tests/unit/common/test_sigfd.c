/* test_sigfd.c - unit tests for common/sigfd.c: real signals sent to this
 * process arrive on the loop thread, in order, through the callback; they
 * are blocked (no handler runs, the default action does not kill us) and
 * SIGPIPE is ignored. */
#define _GNU_SOURCE
#include "sigfd.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>

#include "base.h"

typedef struct seen {
    loop_t *loop;
    int signo[4];
    size_t n;
} seen_t;

static void s_on_signal(int signo, void *ud)
{
    seen_t *s = ud;
    if (s->n < ARRAY_LEN(s->signo))
        s->signo[s->n++] = signo;
    if (signo == SIGTERM)
        loop_stop(s->loop);
}

static void s_timeout(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    UNUSED(ud);
    loop_stop(loop);
}

Test(sigfd, signals_arrive_on_the_loop_in_order, .timeout = 10)
{
    seen_t seen = {.loop = loop_new()};
    cr_assert_not_null(seen.loop);
    static const int sigs[] = {SIGUSR1, SIGTERM};
    sigfd_t *s = sigfd_new(seen.loop, sigs, ARRAY_LEN(sigs), s_on_signal, &seen);
    cr_assert_not_null(s);
    /* Blocked: they stay pending, nothing is delivered (SIGTERM's default
     * action would end the test process). */
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    cr_assert_eq(seen.n, 0);
    loop_timer_t *t = loop_add_timer(seen.loop, 5000, 0, s_timeout, NULL);
    cr_assert_eq(loop_run(seen.loop), 0);
    loop_cancel_timer(seen.loop, &t);
    cr_assert_eq(seen.n, 2, "%zu signal(s) seen", seen.n);
    /* signalfd reads pending standard signals lowest number first. */
    cr_assert_eq(seen.signo[0], SIGUSR1);
    cr_assert_eq(seen.signo[1], SIGTERM);
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    cr_assert(sigismember(&mask, SIGTERM) && sigismember(&mask, SIGUSR1));
    cr_assert_eq(signal(SIGPIPE, SIG_IGN), SIG_IGN, "SIGPIPE is ignored");
    unsigned before = loop_fd_count(seen.loop);
    sigfd_destroy(&s);
    cr_assert_null(s);
    cr_assert_eq(loop_fd_count(seen.loop), before - 1);
    sigfd_destroy(&s);
    sigfd_destroy(NULL);
    loop_destroy(&seen.loop);
}
