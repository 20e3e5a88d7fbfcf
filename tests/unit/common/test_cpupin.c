/* test_cpupin.c - unit tests for common/cpupin.c: the calling thread moves
 * to the CPU named, threads it starts later keep every CPU, and what is
 * not a CPU (or not one this process may use) is refused, moving nothing. */
#define _GNU_SOURCE
#include "cpupin.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

static void *s_count(void *out)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    *(int *)out = CPU_COUNT(&set);
    return NULL;
}

/* The lowest CPU this process may use. */
static int s_first_cpu(cpu_set_t *all)
{
    cr_assert_eq(sched_getaffinity(0, sizeof *all, all), 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, all))
            return c;
    cr_assert_fail("no CPU");
    return -1;
}

Test(cpupin, moves_this_thread_and_leaves_later_threads_every_cpu)
{
    cpu_set_t all;
    int first = s_first_cpu(&all);
    char text[16];
    snprintf(text, sizeof text, "%d", first);
    cr_assert_eq(cpupin_self(text), first);
    cpu_set_t now;
    cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
    cr_assert_eq(CPU_COUNT(&now), 1);
    cr_assert(CPU_ISSET(first, &now));
    pthread_t t;
    int n = 0;
    cr_assert_eq(pthread_create(&t, NULL, s_count, &n), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(n, CPU_COUNT(&all), "a later thread has %d CPUs, not %d", n,
                 CPU_COUNT(&all));
}

Test(cpupin, refuses_what_is_not_a_cpu_of_ours)
{
    cpu_set_t all, now;
    s_first_cpu(&all);
    cr_assert_eq(cpupin_self(NULL), -EINVAL);
    cr_assert_eq(cpupin_self(""), -EINVAL);
    cr_assert_eq(cpupin_self("-1"), -EINVAL);
    cr_assert_eq(cpupin_self("zero"), -EINVAL);
    cr_assert_eq(cpupin_self("1024"), -EINVAL);
    cr_assert_eq(cpupin_self("1023"), -EINVAL); /* no such CPU here */
    cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
    cr_assert(CPU_EQUAL(&now, &all), "a refused call moved the thread");
}

/* A CPU outside the thread's own set is refused, even where the cgroup
 * would let sched_setaffinity take it. */
Test(cpupin, refuses_a_cpu_outside_this_threads_set)
{
    cpu_set_t all, one, now;
    int first = s_first_cpu(&all);
    if (CPU_COUNT(&all) < 2)
        cr_skip_test("one CPU");
    int second = first + 1;
    while (!CPU_ISSET(second, &all))
        second++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    char text[16];
    snprintf(text, sizeof text, "%d", second);
    cr_assert_eq(cpupin_self(text), -EINVAL);
    cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
    cr_assert(CPU_EQUAL(&now, &one), "a refused call moved the thread");
}
