/* workers.h - the services and their workers: starting, retiring and
 * replacing workers, reconciling each service with its desired shape
 * (scale, rolling restart), the watchdog, and the control channel (ready
 * and heartbeats come in; drain and log_level go out).
 *
 * A worker's life: STARTING (spawned; control services only) → RUNNING
 * (said ready, or started when it has no control channel) → DRAINING
 * (asked to finish and exit; SIGKILL at kill_at_ms) → forgotten when it
 * exits. An unexpected exit goes to BACKOFF (backoff.h) and the slot is
 * started again; a worker of a generation being replaced is forgotten
 * instead and reconcile starts a current one.
 *
 * Loop thread only. */
#ifndef VAPORA_SV_WORKERS_H
#define VAPORA_SV_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control.h"
#include "proc.h"
#include "sockets.h"
#include "supervisor.h"
#include "zchan.h"

/* After SIGABRT for a hung worker, SIGKILL this much later. */
#define SV_ABORT_GRACE_MS 2000
/* A draining worker stops itself at its timeout; SIGKILL comes this much
 * later. */
#define SV_EXIT_SLACK_MS 500

typedef struct sv_worker {
    sv_proc_t p;
    sv_service_t *svc;
    unsigned id;
    unsigned gen;   /* the service generation it was started for */
    char ident[96]; /* routing id on the control channel: "backend/3" */
    sv_socket_t *sock;
    bool ready;
    uint64_t ready_ms;
    uint64_t last_seen_ms; /* last ready or heartbeat */
    bool aborted;          /* the watchdog sent SIGABRT */
    bool retiring;         /* not replaced when it exits */
    int cpu;               /* the CPU its loop runs on (cpu_affinity), or -1 */
    control_stats_t stats;
    double cpu_percent;
    uint64_t stats_ms;
} sv_worker_t;

struct sv_service {
    char *name;
    char *listen;
    char **argv;
    bool control;           /* speaks the control protocol */
    unsigned start_timeout; /* seconds to say ready */
    unsigned shutdown_timeout; /* seconds a retiring worker may drain */
    bool pin;                  /* cpu_affinity: each worker's loop on a CPU */
    char *fingerprint;
    unsigned desired;
    unsigned gen;
    bool removed; /* dropped from the config: retire, then forget */
    sv_socket_t *sock;
    sv_worker_t **workers;
    size_t nworkers;
    unsigned next_id;
    char log_level[16]; /* set at run time (sv_set_log_level); "": the config's */
};

/* ---- what the admin API calls ---- */

/* The service called name that is not being removed, or NULL. */
sv_service_t *sv_find_service(sv_t *sv, const char *name);
/* Sets the desired worker count (0-256); returns 0 or -EINVAL. */
int sv_scale(sv_t *sv, sv_service_t *svc, long n);
/* Starts a rolling replacement of every worker of svc. */
void sv_rolling_restart(sv_t *sv, sv_service_t *svc);
/* Tells every worker of svc to log at level ("debug", "info", "warn",
 * "error") from now on; workers started later are told once ready, until
 * the supervisor restarts. Returns the number of workers told, or -EINVAL
 * for an unknown level. */
int sv_set_log_level(sv_t *sv, sv_service_t *svc, const char *level);

/* ---- what the other supervisor modules call ---- */

/* Adds a service for sc, listening on sock (its reference is taken over);
 * no worker starts before the next reconcile. */
sv_service_t *sv_service_new(sv_t *sv, const sv_service_cfg_t *sc, sv_socket_t *sock);
/* Brings svc to its desired shape: starts the missing workers, retires the
 * extra ones, moves a rolling restart on by one. Nothing while shutting
 * down or once removed. */
void sv_reconcile(sv_t *sv, sv_service_t *svc);
/* Asks a worker to finish its in-flight requests and exit within
 * timeout_s; it will not be replaced. A worker without a process is
 * forgotten at once: returns true then (the pointer is invalid). */
bool sv_worker_retire(sv_t *sv, sv_worker_t *w, unsigned timeout_s);
/* Every worker at once, for the shutdown: each drains within
 * [supervisor] shutdown_timeout and gets SIGKILL at last_kill_ms at the
 * latest. */
void sv_workers_drain_all(sv_t *sv, uint64_t last_kill_ms);
/* Drops the services that were removed and whose workers are all gone. */
void sv_services_sweep(sv_t *sv);

/* Handles the exit of pid, if it is one of our workers (returns whether
 * it was): forgets it, replaces it, or puts it in backoff. */
bool sv_workers_on_exit(sv_t *sv, pid_t pid, int status);
/* The tick's share: backoff timers, kill deadlines and the watchdog of
 * every worker, then a reconcile of every service. now: ms, monotonic. */
void sv_workers_tick(sv_t *sv, uint64_t now);
/* Workers in the table, with a process or not. */
size_t sv_workers_count(const sv_t *sv);
/* SIGKILL to every worker, then waits for each (a forced stop). */
void sv_workers_kill(sv_t *sv);
/* Forgets every worker and frees every service (sv_destroy). */
void sv_services_destroy(sv_t *sv);

/* The control channel's callback (zchan_fn; ud is the sv_t): a worker's
 * "ready" or "heartbeat". */
void sv_workers_on_control(zchan_t *ch, const zchan_msg_t *m, void *ud);

#endif
