/* proc.h - what every supervised process shares, a service's worker or a
 * program: its state, its restart bookkeeping, how it is signalled and how
 * a spawn is recorded. The restart policy itself is in backoff.h.
 *
 * Loop thread only. */
#ifndef VAPORA_SV_PROC_H
#define VAPORA_SV_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef enum sv_state {
    SV_STARTING,
    SV_RUNNING,
    SV_DRAINING,
    SV_BACKOFF,
    SV_STOPPED,
} sv_state_t;

/* "starting", "running", "draining", "backoff", "stopped" (static). */
const char *sv_state_name(sv_state_t s);

typedef struct sv_proc {
    pid_t pid; /* 0 when not running */
    sv_state_t state;
    uint64_t started_ms; /* monotonic */
    time_t started_wall;
    unsigned restarts;        /* replacements of this slot */
    unsigned failures;        /* consecutive exits before SV_HEALTHY_RESET_MS */
    int last_status;          /* wait status of the last exit; -1: none */
    uint64_t next_attempt_ms; /* monotonic, in backoff */
    time_t next_attempt_wall;
    uint64_t kill_at_ms; /* SIGKILL deadline (drain, stop or watchdog); 0: none */
} sv_proc_t;

/* Signals a child's whole process group (each child leads its own), so
 * what a program started goes with it; falls back to the pid alone if the
 * child has not made its group yet. */
void sv_proc_signal(pid_t pid, int sig);

/* Records the outcome of spawning p: running in `state` from now (ms,
 * monotonic), or, when the spawn failed (pid < 0, reason in err), an exit
 * status 127 and the backoff that follows. who names it in the log.
 * Returns whether it runs. */
bool sv_proc_spawned(sv_proc_t *p, pid_t pid, sv_state_t state, uint64_t now,
                     const char *who, const char *err);

#endif
