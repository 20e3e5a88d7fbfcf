/* proc.c - see proc.h. */
#define _GNU_SOURCE
#include "proc.h"

#include <signal.h>

#include "backoff.h"
#include "log.h"

static const char *const s_state_names[] = {"starting", "running", "draining",
                                            "backoff", "stopped"};

const char *sv_state_name(sv_state_t s)
{
    return s_state_names[s];
}

void sv_proc_signal(pid_t pid, int sig)
{
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

bool sv_proc_spawned(sv_proc_t *p, pid_t pid, sv_state_t state, uint64_t now,
                     const char *who, const char *err)
{
    p->kill_at_ms = 0;
    if (pid < 0) {
        log_error("cannot start %s: %s", who, err);
        p->pid = 0;
        p->last_status = 127 << 8;
        sv_enter_backoff(p, now, sv_backoff_after_exit(p, now, false));
        return false;
    }
    p->pid = pid;
    p->state = state;
    p->started_ms = now;
    p->started_wall = time(NULL);
    log_info("started %s (pid %d)", who, (int)pid);
    return true;
}
