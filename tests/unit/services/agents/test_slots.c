/* test_slots.c - unit tests for services/agents/slots.c: max_concurrent
 * holds across processes, a killed process's runs stop counting, and a
 * process gives its runs back when it closes the table. */
#define _GNU_SOURCE
#include "slots.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tmpdir_test.h"

static void s_setup(void)
{
    tmpdir_make("vapora-slots", "agents-slots");
}

static void s_teardown(void)
{
    tmpdir_remove();
}

/* A child that takes n runs of agent, reports through a pipe, then waits
 * to be killed. Returns its pid. */
static pid_t s_holder(const char *agent, int n, unsigned max)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        slots_t *s = slots_open(s_path);
        char ok = 1;
        for (int i = 0; s && i < n; i++)
            ok = ok && slots_acquire(s, agent, max) == 0;
        if (write(p[1], &ok, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(p[1]);
    char ok = 0;
    cr_assert_eq(read(p[0], &ok, 1), 1);
    cr_assert(ok, "the holder could not take its runs");
    close(p[0]);
    return pid;
}

Test(slots, max_holds_across_processes_and_dead_holders_stop_counting,
     .init = s_setup, .fini = s_teardown)
{
    pid_t child = s_holder("developer", 2, 3);
    slots_t *s = slots_open(s_path);
    cr_assert_not_null(s);
    cr_assert_eq(slots_in_flight(s, "developer"), 2);
    cr_assert_eq(slots_acquire(s, "developer", 3), 0);
    cr_assert_eq(slots_acquire(s, "developer", 3), -EBUSY, "max_concurrent 3 exceeded");
    cr_assert_eq(slots_acquire(s, "architect", 1), 0, "agents count apart");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    usleep(150 * 1000); /* the dead are looked for every 100 ms at most */
    cr_assert_eq(slots_acquire(s, "developer", 3), 0, "the dead holder's runs still count");
    cr_assert_eq(slots_in_flight(s, "developer"), 2);
    slots_release(s, "developer");
    slots_release(s, "developer");
    slots_release(s, "developer"); /* more releases than holds: no-op */
    cr_assert_eq(slots_in_flight(s, "developer"), 0);
    cr_assert_eq(slots_acquire(s, "bad name that is far too long for any agent to have at all really", 1),
                 -EINVAL);
    slots_destroy(&s);
    cr_assert_null(s);
}

Test(slots, closing_gives_runs_back, .init = s_setup, .fini = s_teardown)
{
    slots_t *a = slots_open(s_path), *b = slots_open(s_path);
    cr_assert(a && b);
    cr_assert_eq(slots_acquire(a, "tester", 1), 0);
    cr_assert_eq(slots_acquire(b, "tester", 1), -EBUSY);
    slots_destroy(&a);
    cr_assert_eq(slots_acquire(b, "tester", 1), 0);
    slots_destroy(&b);
    slots_destroy(NULL);
}
