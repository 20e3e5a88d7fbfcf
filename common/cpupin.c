/* cpupin.c - see cpupin.h. */
#define _GNU_SOURCE
#include "cpupin.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "parse.h"

/* Threads started later without attributes of their own (libraries'
 * threads, started from the loop thread) get all, the CPUs the thread has
 * now, not the loop's one. */
static void s_default_cpus(const cpu_set_t *all)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return;
    if (pthread_attr_setaffinity_np(&attr, sizeof *all, all) == 0)
        (void)pthread_setattr_default_np(&attr);
    pthread_attr_destroy(&attr);
}

int cpupin_self(const char *text)
{
    long cpu;
    if (!text || parse_long(text, 0, CPU_SETSIZE - 1, &cpu) < 0)
        return -EINVAL;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -errno;
    if (!CPU_ISSET((int)cpu, &set))
        return -EINVAL; /* not one of ours, though the cgroup may allow it */
    s_default_cpus(&set);
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) /* 0: this thread */
        return -errno;
    return (int)cpu;
}
