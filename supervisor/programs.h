/* programs.h - the [program:NAME] processes (nats-server, ...): one
 * process each, started before the services, restarted with the same
 * policy as workers (backoff.h), stopped with SIGTERM then SIGKILL, and
 * restarted or dropped when a reload changes or removes their section.
 *
 * A program's life: RUNNING → DRAINING (shown as "stopping": SIGTERM sent,
 * SIGKILL at kill_at_ms) → STOPPED, or BACKOFF after an unexpected exit.
 *
 * Loop thread only. */
#ifndef VAPORA_SV_PROGRAMS_H
#define VAPORA_SV_PROGRAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"
#include "supervisor.h"

struct sv_program {
    sv_proc_t p;
    char *name;
    char **argv;
    char *directory;
    char **env; /* [program] environment, or NULL */
    char *fingerprint;
    bool removed;         /* stop it and forget it */
    bool restart_pending; /* its config changed: start again once stopped */
};

/* Adds the program pc describes and starts it. */
sv_program_t *sv_program_new(sv_t *sv, const sv_program_cfg_t *pc);
/* Applies a reloaded config: stops and forgets the programs nc drops,
 * restarts those whose section changed, starts the new ones. */
void sv_programs_apply(sv_t *sv, const sv_config_t *nc);
/* SIGTERM to every program now, SIGKILL at kill_at (ms, monotonic). */
void sv_programs_stop_all(sv_t *sv, uint64_t kill_at);

/* Handles the exit of pid, if it is one of our programs (returns whether
 * it was). */
bool sv_programs_on_exit(sv_t *sv, pid_t pid, int status);
/* The tick's share: backoff timers and kill deadlines. now: ms, monotonic. */
void sv_programs_tick(sv_t *sv, uint64_t now);
/* Programs with a process. */
size_t sv_programs_running(const sv_t *sv);
/* SIGKILL to every program, then waits for each (a forced stop). */
void sv_programs_kill(sv_t *sv);
/* Frees every program (sv_destroy). */
void sv_programs_destroy(sv_t *sv);

#endif
