/* sv.h - the supervisor's state, shared by supervisor.c (the process table
 * and its state machine) and admin.c (the HTTP admin API).
 *
 * DESIGN. One loop thread, as in every VAPORA process. Signals (SIGCHLD,
 * SIGTERM, SIGINT, SIGHUP) arrive through a signalfd; control messages from
 * workers through a ZeroMQ ROUTER socket; a 100 ms tick runs the watchdog,
 * the backoff timers and the drain deadlines, then reconciles each service:
 * the number of live workers of the current generation is brought to the
 * desired count, one replacement at a time when a rolling restart is under
 * way (the replacement is ready before the worker it replaces drains).
 * Listening sockets belong to the supervisor and outlive every worker. */
#ifndef VAPORA_SV_H
#define VAPORA_SV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "control.h"
#include "http.h"
#include "loop.h"
#include "metrics.h"
#include "sigfd.h"
#include "sv_config.h"
#include "zchan.h"

/* Restart policy. */
#define SV_BACKOFF_MIN_MS 100
#define SV_BACKOFF_MAX_MS 30000
#define SV_HEALTHY_RESET_MS 30000
#define SV_ABORT_GRACE_MS 2000
#define SV_TICK_MS 100
/* A draining worker stops itself at its timeout; SIGKILL comes this much
 * later. */
#define SV_EXIT_SLACK_MS 500
/* At shutdown, the least time programs get between SIGTERM and SIGKILL. */
#define SV_PROGRAM_STOP_MS 1000

typedef enum sv_state {
    SV_STARTING,
    SV_RUNNING,
    SV_DRAINING,
    SV_BACKOFF,
    SV_STOPPED,
} sv_state_t;

const char *sv_state_name(sv_state_t s);

typedef struct sv_socket {
    int fd;
    char *addr;
    unsigned refs;
} sv_socket_t;

typedef struct sv_service sv_service_t;

/* What every supervised process shares: restart bookkeeping. */
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

typedef struct sv_program {
    sv_proc_t p;
    char *name;
    char **argv;
    char *directory;
    char *fingerprint;
    bool removed;         /* stop it and forget it */
    bool restart_pending; /* its config changed: start again once stopped */
} sv_program_t;

typedef enum sv_phase {
    SV_PHASE_RUNNING,
    SV_PHASE_STOP_SERVICES,
    SV_PHASE_STOP_PROGRAMS,
    SV_PHASE_DONE,
} sv_phase_t;

typedef struct sv {
    loop_t *loop;
    sv_config_t *cfg;
    char *config_path;
    char *bin_dir;
    char *run_dir;    /* data_dir/run: ipc socket and lock */
    char *control_ep; /* ipc://… */
    char *worker_config; /* run_dir/config.conf: the last valid file, for -c */
    int lock_fd;
    void *zctx;
    zchan_t *router;
    sigfd_t *signals;
    loop_timer_t *tick;
    metrics_t *metrics;
    http_server_t *admin;
    int admin_fd;
    sv_service_t **services;
    size_t nservices;
    sv_program_t **programs;
    size_t nprograms;
    sv_phase_t phase;
    uint64_t phase_deadline_ms;
    int exit_status;
    time_t started_wall;
} sv_t;

/* backoff.c: the restart policy. Records an exit of p at `now` (ms,
 * monotonic) and returns the delay before the next start: none for the
 * first failure after the process became ready, else 100 ms doubling per
 * consecutive failure up to 30 s, plus up to 25 % jitter. A process that
 * had been ready for 30 s starts a fresh count. */
uint64_t sv_backoff_after_exit(sv_proc_t *p, uint64_t now, bool was_ready);
/* Puts p in backoff until now + delay. */
void sv_enter_backoff(sv_proc_t *p, uint64_t now, uint64_t delay);

/* supervisor.c */
int sv_start(sv_t *sv, const char *config_path, char *err, size_t errlen);
void sv_stop(sv_t *sv);
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
/* Re-reads the config; on failure changes nothing and returns -EINVAL
 * with the reason in err. */
int sv_reload(sv_t *sv, char *err, size_t errlen);
/* Begins the graceful shutdown (idempotent). */
void sv_shutdown(sv_t *sv, const char *why);

/* admin.c */
int sv_admin_start(sv_t *sv, char *err, size_t errlen);
void sv_admin_stop(sv_t *sv);
json_t *sv_service_json(sv_t *sv, sv_service_t *svc);

#endif
