/* cpupin.h - putting a worker's loop thread on one CPU.
 *
 * The supervisor gives each worker of a service with cpu_affinity a CPU
 * (the one the fewest other loops have) in VAPORA_WORKER_CPU; the worker
 * moves its loop thread there once its other threads are started (they
 * keep every CPU the process may use). Two busy loops then never share a
 * core while another idles: measured with wrk on two cores shared with the
 * client, GET /health p99 stayed at 2.2 ms where unpinned runs went from
 * 2.3 to 4.4 ms as the scheduler happened to place the loops
 * (docs/runtime.md). Threads the loop thread starts later without
 * attributes of their own (libnats' delivery threads) get every CPU
 * (pthread_setattr_default_np); any started with their own attributes
 * would inherit the loop's CPU. */
#ifndef VAPORA_CPUPIN_H
#define VAPORA_CPUPIN_H

/* Moves the calling thread to the CPU numbered by text (decimal), one of
 * those it may use now, after making all of those the default of threads
 * created later. Returns the CPU, or -EINVAL (not a CPU number, or not
 * one of the thread's), or -errno of sched_setaffinity. */
int cpupin_self(const char *text);

#endif
