/* supervisor.h - the supervisor's state, its start-up and its shutdown.
 *
 * DESIGN. One loop thread, as in every VAPORA process (ZeroMQ adds its I/O
 * thread; children are forked from the loop thread by spawn.c, safely).
 * Signals (SIGCHLD, SIGTERM, SIGINT, SIGHUP) arrive through a signalfd;
 * control messages from workers through a ZeroMQ ROUTER socket; a 100 ms
 * tick reaps, runs the watchdog, the backoff timers and the drain
 * deadlines, then reconciles each service: the number of live workers of
 * the current generation is brought to the desired count, one replacement
 * at a time when a rolling restart is under way (the replacement is ready
 * before the worker it replaces drains). Listening sockets belong to the
 * supervisor and outlive every worker.
 *
 * The modules, bottom up: proc + backoff (one supervised process and the
 * restart policy), sockets (shared listening sockets), workers (services,
 * their workers, reconcile, the control channel), programs, reload
 * (re-reading the file, and binding every new address), and this one:
 * opening everything, the tick, signals and the shutdown phases. Nothing
 * here knows the admin API: main.c wires it (sv_new → sv_admin_new →
 * sv_launch), and it calls only the public functions below and in
 * workers.h and reload.h.
 *
 * Loop thread only. */
#ifndef VAPORA_SUPERVISOR_H
#define VAPORA_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "loop.h"
#include "sigfd.h"
#include "sockets.h"
#include "sv_config.h"
#include "zchan.h"

#define SV_TICK_MS 100
/* At shutdown, the least time programs get between SIGTERM and SIGKILL. */
#define SV_PROGRAM_STOP_MS 1000

typedef struct sv_service sv_service_t;
typedef struct sv_program sv_program_t;

typedef enum sv_phase {
    SV_PHASE_RUNNING,
    SV_PHASE_STOP_SERVICES,
    SV_PHASE_STOP_PROGRAMS,
    SV_PHASE_DONE,
} sv_phase_t;

/* The state every supervisor module reads (workers.c, programs.c,
 * reload.c, admin.c); only this module creates and frees it. */
typedef struct sv {
    loop_t *loop;
    sv_config_t *cfg;
    char *config_path;
    char *bin_dir;
    char *run_dir;       /* data_dir/run: ipc socket and lock */
    char *control_ep;    /* ipc://… */
    char *worker_config; /* run_dir/config.conf: the last valid file, for -c */
    int lock_fd;
    void *zctx;
    zchan_t *router;
    sigfd_t *signals;
    loop_timer_t *tick;
    sv_socket_t **bound; /* sv_new → sv_launch: cfg's sockets, one per service */
    sv_service_t **services;
    size_t nservices;
    sv_program_t **programs;
    size_t nprograms;
    sv_phase_t phase;
    uint64_t phase_deadline_ms;
    int exit_status;
    time_t started_wall;
} sv_t;

/* Loads config_path, then opens everything the supervisor owns before a
 * child runs: the loop, the signalfd, data_dir/run and its lock, the
 * control socket, the workers' copy of the config, and every service's
 * listening socket. bin_dir (copied) is where default service binaries
 * live. Returns NULL with the reason in err when any of it fails (nothing
 * is left open). */
sv_t *sv_new(const char *config_path, const char *bin_dir, char *err, size_t errlen);
/* Starts the programs, then every service's workers, and the tick. */
void sv_launch(sv_t *sv);
/* Runs the loop until every child has stopped; returns the exit status
 * (0 after a graceful stop, 1 after a forced one or a loop failure). */
int sv_run(sv_t *sv);
/* Begins the graceful shutdown (idempotent): every worker drains, then
 * programs stop, all within [supervisor] shutdown_timeout. */
void sv_shutdown(sv_t *sv, const char *why);
/* Frees the process table (by then every child has exited, or none was
 * started), removes the ipc socket and the workers' config, closes and
 * frees everything; the lock file stays. Accepts NULL; sets *svp = NULL. */
void sv_destroy(sv_t **svp);

#endif
