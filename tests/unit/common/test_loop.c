/* test_loop.c - unit tests for common/loop_epoll.c: fd readiness, timers,
 * removal from inside callbacks, before-sleep hooks, cross-thread wake-ups
 * and lag measurement. */
#define _GNU_SOURCE
#include "loop.h"
#include "now.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct pipe_ctx {
    int fds[2];
    int calls;
    unsigned last_events;
    struct pipe_ctx *other; /* removed (and closed) by this one's callback */
} pipe_ctx_t;

static void s_pipe(pipe_ctx_t *p)
{
    cr_assert_eq(pipe2(p->fds, O_NONBLOCK | O_CLOEXEC), 0);
}

static void s_close(pipe_ctx_t *p)
{
    if (p->fds[0] >= 0)
        close(p->fds[0]);
    if (p->fds[1] >= 0)
        close(p->fds[1]);
    p->fds[0] = p->fds[1] = -1;
}

static void s_on_read(loop_t *l, int fd, unsigned ev, void *ud)
{
    pipe_ctx_t *p = ud;
    char buf[16];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    p->calls++;
    p->last_events = ev;
    if (p->other) {
        cr_assert_eq(loop_del_fd(l, p->other->fds[0]), 0);
        s_close(p->other);
        p->other->other = NULL; /* it must not remove us in turn */
    }
    loop_stop(l);
}

Test(loop, fd_readiness_reaches_callback)
{
    loop_t *l = loop_new();
    pipe_ctx_t p = {0};
    s_pipe(&p);
    cr_assert_eq(loop_add_fd(l, p.fds[0], LOOP_READ, s_on_read, &p), 0);
    cr_assert_eq(loop_add_fd(l, p.fds[0], LOOP_READ, s_on_read, &p), -EEXIST);
    cr_assert_eq(loop_fd_count(l), 1);
    cr_assert_eq(write(p.fds[1], "x", 1), 1);
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(p.calls, 1);
    cr_assert(p.last_events & LOOP_READ);
    cr_assert_eq(loop_del_fd(l, p.fds[0]), 0);
    cr_assert_eq(loop_del_fd(l, p.fds[0]), -ENOENT);
    cr_assert_eq(loop_fd_count(l), 0);
    s_close(&p);
    loop_destroy(&l);
    cr_assert_null(l);
}

Test(loop, fd_removed_in_same_batch_gets_no_callback)
{
    loop_t *l = loop_new();
    pipe_ctx_t a = {0}, b = {0};
    s_pipe(&a);
    s_pipe(&b);
    a.other = &b;
    b.other = &a;
    cr_assert_eq(loop_add_fd(l, a.fds[0], LOOP_READ, s_on_read, &a), 0);
    cr_assert_eq(loop_add_fd(l, b.fds[0], LOOP_READ, s_on_read, &b), 0);
    /* Both readable before the loop polls: one epoll batch holds both. */
    cr_assert_eq(write(a.fds[1], "x", 1), 1);
    cr_assert_eq(write(b.fds[1], "x", 1), 1);
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(a.calls + b.calls, 1, "a=%d b=%d", a.calls, b.calls);
    cr_assert_eq(loop_fd_count(l), 1);
    s_close(&a);
    s_close(&b);
    loop_destroy(&l);
}

typedef struct timer_log {
    int order[8];
    int n;
    int repeats;
    loop_timer_t *victim;
    loop_timer_t *self;
} timer_log_t;

static void s_t1(loop_t *l, loop_timer_t *t, void *ud)
{
    (void)l;
    (void)t;
    timer_log_t *log = ud;
    log->order[log->n++] = 1;
}

static void s_t2(loop_t *l, loop_timer_t *t, void *ud)
{
    (void)t;
    timer_log_t *log = ud;
    log->order[log->n++] = 2;
    loop_stop(l);
}

Test(loop, timers_fire_in_due_order)
{
    loop_t *l = loop_new();
    timer_log_t log = {0};
    loop_add_timer(l, 30, 0, s_t2, &log);
    loop_add_timer(l, 5, 0, s_t1, &log);
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.order[1], 2);
    loop_destroy(&l);
}

static void s_repeat(loop_t *l, loop_timer_t *t, void *ud)
{
    timer_log_t *log = ud;
    if (++log->repeats == 3) {
        log->self = t;
        loop_cancel_timer(l, &log->self); /* cancel itself from inside */
        cr_assert_null(log->self);
        loop_stop(l);
    }
}

Test(loop, repeating_timer_cancels_itself)
{
    loop_t *l = loop_new();
    timer_log_t log = {0};
    loop_add_timer(l, 1, 1, s_repeat, &log);
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(log.repeats, 3);
    /* Run again briefly: the cancelled timer must not fire any more. */
    loop_add_timer(l, 20, 0, s_t2, &log);
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(log.repeats, 3);
    loop_destroy(&l);
}

static void s_cancel_other(loop_t *l, loop_timer_t *t, void *ud)
{
    (void)t;
    timer_log_t *log = ud;
    log->order[log->n++] = 3;
    loop_cancel_timer(l, &log->victim);
}

Test(loop, timer_cancelled_by_another_never_fires)
{
    loop_t *l = loop_new();
    timer_log_t log = {0};
    loop_add_timer(l, 1, 0, s_cancel_other, &log);
    log.victim = loop_add_timer(l, 10, 0, s_t1, &log);
    loop_add_timer(l, 40, 0, s_t2, &log);
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.order[0], 3);
    cr_assert_eq(log.order[1], 2);
    loop_destroy(&l);
}

typedef struct hook_ctx {
    int calls;
    atomic_int flag;
} hook_ctx_t;

static int64_t s_hook(loop_t *l, void *ud)
{
    hook_ctx_t *h = ud;
    h->calls++;
    if (h->calls == 5)
        loop_stop(l);
    return 0; /* do not sleep */
}

Test(loop, before_sleep_hook_runs_each_iteration_and_bounds_sleep)
{
    loop_t *l = loop_new();
    hook_ctx_t h = {0};
    loop_add_before_sleep(l, s_hook, &h);
    /* Without the hook's 0 bound this would block forever: no fd, no timer. */
    cr_assert_eq(loop_run(l), 0);
    cr_assert_eq(h.calls, 5);
    loop_destroy(&l);
}

static int64_t s_flag_hook(loop_t *l, void *ud)
{
    hook_ctx_t *h = ud;
    h->calls++;
    if (atomic_load(&h->flag))
        loop_stop(l);
    return -1; /* no bound: sleep until woken */
}

static void *s_waker(void *arg)
{
    void **a = arg;
    usleep(20000);
    atomic_store(&((hook_ctx_t *)a[1])->flag, 1);
    loop_wakeup(a[0]);
    return NULL;
}

Test(loop, wakeup_from_another_thread)
{
    loop_t *l = loop_new();
    hook_ctx_t h = {0};
    loop_add_before_sleep(l, s_flag_hook, &h);
    void *args[2] = {l, &h};
    pthread_t t;
    pthread_create(&t, NULL, s_waker, args);
    cr_assert_eq(loop_run(l), 0);
    pthread_join(t, NULL);
    cr_assert(atomic_load(&h.flag));
    cr_assert_geq(h.calls, 2); /* once before sleeping, once after the wake */
    loop_destroy(&l);
}

/* Adds s_t2, due now, then blocks the loop thread: s_t2 comes due after
 * this pass began, so it runs in the next one, ~60 ms late. */
static void s_hog(loop_t *l, loop_timer_t *t, void *ud)
{
    (void)t;
    loop_add_timer(l, 0, 0, s_t2, ud);
    usleep(60000);
}

Test(loop, lag_measures_late_timers)
{
    loop_t *l = loop_new();
    timer_log_t log = {0};
    loop_add_timer(l, 1, 0, s_hog, &log);
    cr_assert_eq(loop_run(l), 0);
    uint64_t lag = loop_take_max_lag(l);
    cr_assert_geq(lag, 50ull * 1000000ull, "lag %llu ns", (unsigned long long)lag);
    cr_assert_eq(loop_take_max_lag(l), 0); /* taking resets it */
    loop_destroy(&l);
}

Test(loop, bad_fd_and_unknown_fd_are_errors)
{
    loop_t *l = loop_new();
    cr_assert_eq(loop_add_fd(l, -1, LOOP_READ, s_on_read, NULL), -EBADF);
    cr_assert_eq(loop_mod_fd(l, 5, LOOP_READ), -ENOENT);
    cr_assert_eq(loop_del_fd(l, 1000), -ENOENT);
    loop_destroy(&l);
    loop_destroy(&l); /* NULL is accepted */
}

/* Always more work: the loop never sleeps. With a yield budget it runs
 * until five yields (or 2 s: a loaded machine may deschedule the loop for
 * long, so wall time alone does not bound the yields); without, 20 ms. */
typedef struct busy {
    uint64_t start;
    bool budget;
} busy_t;

static int64_t s_busy_hook(loop_t *l, void *ud)
{
    busy_t *b = ud;
    uint64_t ran = now_ms() - b->start;
    if (b->budget ? loop_yields(l) >= 5 || ran >= 2000 : ran >= 20)
        loop_stop(l);
    return 0;
}

Test(loop, busy_loop_yields_after_its_budget)
{
    loop_t *l = loop_new();
    busy_t b = {now_ms(), true};
    loop_add_before_sleep(l, s_busy_hook, &b);
    loop_set_yield(l, 1000000); /* 1 ms */
    cr_assert_eq(loop_run(l), 0);
    /* Continuous work with a 1 ms budget yields, again and again. */
    cr_assert_geq(loop_yields(l), 5, "yields %llu", (unsigned long long)loop_yields(l));
    loop_destroy(&l);
    l = loop_new();
    b = (busy_t){now_ms(), false};
    loop_add_before_sleep(l, s_busy_hook, &b);
    cr_assert_eq(loop_run(l), 0); /* no budget set: never yields */
    cr_assert_eq(loop_yields(l), 0);
    loop_destroy(&l);
}
