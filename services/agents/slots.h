/* slots.h - runs in flight per agent, counted across every agents worker
 * of the host, so that an agent's max_concurrent holds whichever worker
 * takes a task.
 *
 * DESIGN. One file (DATA_DIR/agents-slots), preallocated and mapped shared
 * by every worker, holds a table of workers (pid and start time) and a
 * table of agents (name, and the runs each worker holds for it), behind one
 * process-shared robust mutex: a worker killed while holding it leaves it
 * to the next locker (EOWNERDEAD), which makes it consistent again. A
 * worker that dies holding runs is noticed by its pid being gone (or
 * reused: the start time differs) when a full agent is asked for, at most
 * every 100 ms (each look reads /proc); its runs stop counting then. An
 * operation is a few µs under the lock; no syscall but the lock's futex.
 *
 * Threads: any thread of a worker may call these (the lock serialises). */
#ifndef VAPORA_AGENTS_SLOTS_H
#define VAPORA_AGENTS_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define SLOTS_WORKERS 64
#define SLOTS_AGENTS 1024

typedef struct slots slots_t;

/* Maps path (created and preallocated when missing) and registers this
 * process. NULL with errno set: -ENOSPC when SLOTS_WORKERS live processes
 * are registered already. */
slots_t *slots_open(const char *path);
/* Releases every run this process holds and its registration. */
void slots_destroy(slots_t **sp);

/* Takes one run of agent when fewer than max are in flight across the
 * live workers. Returns 0, -EBUSY when full, -ENOSPC when the table has no
 * room for another agent name, -EINVAL for a bad name. */
int slots_acquire(slots_t *s, const char *agent, unsigned max);
/* Gives back one run of agent held by this process (no-op when none). */
void slots_release(slots_t *s, const char *agent);
/* Runs of agent in flight across the live workers. */
unsigned slots_in_flight(slots_t *s, const char *agent);
/* When agent last took a run (unix ms, any worker of the host; 0: never):
 * the least recently used goes first when nothing else tells agents apart. */
uint64_t slots_last_used(slots_t *s, const char *agent);

#endif
