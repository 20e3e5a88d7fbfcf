/* loop.h - the one event loop of a worker process, in the spirit of redis' ae.
 *
 * DESIGN. One thread (the loop thread) owns the loop and every fd registered
 * on it; all loop_* calls are made from that thread only, except
 * loop_wakeup(), which any thread may call. Each iteration: run due timers,
 * run the before-sleep hooks (each may bound the sleep), epoll_wait, dispatch
 * fd events. An fd (or timer) removed from inside any callback never receives
 * another callback, even one already collected in the same epoll batch: each
 * registration carries a generation number that the dispatcher checks.
 *
 * Timer lag (how late a timer fires compared with its due time) is measured
 * on every firing; the worst lag since the last loop_take_max_lag() call is
 * the starvation signal exported as vapora_loop_lag_seconds. Only
 * loop_epoll.c calls epoll_*. */
#ifndef VAPORA_LOOP_H
#define VAPORA_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct loop loop_t;
typedef struct loop_timer loop_timer_t;

enum {
    LOOP_READ = 1u << 0,
    LOOP_WRITE = 1u << 1,
    LOOP_ERROR = 1u << 2,     /* reported only: EPOLLERR or EPOLLHUP */
    LOOP_EXCLUSIVE = 1u << 3, /* EPOLLEXCLUSIVE: for listen fds shared by processes */
    LOOP_EDGE = 1u << 4,      /* EPOLLET */
    LOOP_HANGUP = 1u << 5,    /* EPOLLRDHUP: the peer closed (or shut down) its side */
};

typedef void (*loop_fd_fn)(loop_t *loop, int fd, unsigned events, void *ud);
typedef void (*loop_timer_fn)(loop_t *loop, loop_timer_t *timer, void *ud);
/* Returns the longest the loop may sleep, in ms (-1: no bound, 0: do not sleep). */
typedef int64_t (*loop_sleep_fn)(loop_t *loop, void *ud);

/* Creates a loop (epoll + eventfd for wake-ups). NULL on failure (errno set). */
loop_t *loop_new(void);
/* Frees the loop. Registered fds are not closed (their owners close them);
 * pending timers are freed. Accepts NULL; sets *loopp to NULL. */
void loop_destroy(loop_t **loopp);

/* Watches fd for events (LOOP_READ|LOOP_WRITE, optional LOOP_EXCLUSIVE or
 * LOOP_EDGE). Returns 0, -EEXIST when already registered, or -errno. */
int loop_add_fd(loop_t *loop, int fd, unsigned events, loop_fd_fn fn, void *ud);
/* Changes the events watched for an fd already registered. */
int loop_mod_fd(loop_t *loop, int fd, unsigned events);
/* Stops watching fd; safe from inside any callback, including fd's own.
 * Returns 0 or -ENOENT. The fd is not closed. */
int loop_del_fd(loop_t *loop, int fd);

/* Arms a timer after `after_ms`, then every `repeat_ms` when non-zero. The
 * loop owns the returned handle; it stays valid until the timer is cancelled
 * or, for a one-shot timer, until its callback returns. */
loop_timer_t *loop_add_timer(loop_t *loop, uint64_t after_ms, uint64_t repeat_ms,
                             loop_timer_fn fn, void *ud);
/* Cancels and frees a timer; safe from inside any callback, including the
 * timer's own. Accepts NULL; sets *timerp to NULL. */
void loop_cancel_timer(loop_t *loop, loop_timer_t **timerp);

/* Adds a hook run before every sleep (after timers). Hooks run in the order
 * added. Returns 0 or -ENOMEM. */
int loop_add_before_sleep(loop_t *loop, loop_sleep_fn fn, void *ud);

/* Runs until loop_stop(). Returns 0, or -errno when epoll_wait fails. */
int loop_run(loop_t *loop);
/* Makes loop_run return after the current iteration. Loop thread only. */
void loop_stop(loop_t *loop);
/* Wakes a sleeping loop from any thread (async-signal-safe). */
void loop_wakeup(loop_t *loop);

/* After busy_ns of work without sleeping, the loop yields its core once
 * (sched_yield) before polling again, so that a loop that always has work
 * does not hold the core until the scheduler's tick preempts it. 0 (the
 * default) never yields. */
void loop_set_yield(loop_t *loop, uint64_t busy_ns);
/* How many times the loop yielded (for tests and stats). */
uint64_t loop_yields(const loop_t *loop);

/* Monotonic time (ms) cached at the start of the current iteration. */
uint64_t loop_now_ms(const loop_t *loop);
/* The same in ns: when the events now being dispatched were polled. */
uint64_t loop_now_ns(const loop_t *loop);
/* Worst timer lag (ns) seen since the previous call; resets the maximum. */
uint64_t loop_take_max_lag(loop_t *loop);
/* Number of fds currently registered (for tests and stats). */
unsigned loop_fd_count(const loop_t *loop);

#endif
