/* sv_config.h - the supervisor's view of etc/vapora.conf: [supervisor],
 * every [service:NAME] and every [program:NAME], validated.
 *
 * A "fingerprint" renders what a child reads: a program, its section; a
 * service, every section but the programs, the other services and the
 * supervisor-only keys, less its `workers` (scaling never replaces
 * workers). When a reload sees a different fingerprint, the service's
 * workers are rolling-replaced, the program restarted. */
#ifndef VAPORA_SV_CONFIG_H
#define VAPORA_SV_CONFIG_H

#include <sched.h> /* cpu_set_t: the includer defines _GNU_SOURCE */
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

typedef struct sv_service_cfg {
    char *name;       /* "backend" */
    char *listen;     /* "0.0.0.0:8001" */
    unsigned workers; /* resolved: auto → CPUs this process may use */
    bool workers_auto;
    char **argv;       /* the command; NULL-terminated */
    char *fingerprint; /* what its workers read, rendered */
    bool control;      /* speaks the control protocol (see docs/supervisor.md) */
    unsigned start_timeout; /* seconds a starting worker has to say ready */
    unsigned shutdown_timeout; /* seconds a retiring worker may drain ([service],
                                  [runtime], then [supervisor]) */
    bool pin; /* cpu_affinity, resolved: each worker's loop on a CPU of its own */
} sv_service_cfg_t;

typedef struct sv_program_cfg {
    char *name;
    char **argv;     /* NULL-terminated */
    char *directory; /* working directory, or NULL */
    char **env;      /* environment: "NAME=value" entries, NULL-terminated, or NULL */
    char *fingerprint;
} sv_program_cfg_t;

typedef struct sv_config {
    char *path;     /* absolute path of the file */
    char *text;     /* the file as read */
    char *admin;    /* "127.0.0.1:8000" */
    char *admin_token; /* [supervisor] admin_token, or NULL (admin_auth.h) */
    char *data_dir; /* absolute */
    unsigned shutdown_timeout;
    unsigned watchdog_timeout;
    sv_service_cfg_t *services;
    size_t nservices;
    sv_program_cfg_t *programs;
    size_t nprograms;
    cfg_t *cfg;
} sv_config_t;

/* Loads and validates path. bin_dir is where default service binaries live
 * (the supervisor's own directory). On failure returns NULL with a reason
 * in err. Warnings (unknown keys) go to the log. */
sv_config_t *sv_config_load(const char *path, const char *bin_dir, char *err,
                            size_t errlen);
void sv_config_destroy(sv_config_t **cp);

const sv_service_cfg_t *sv_config_service(const sv_config_t *c, const char *name);
const sv_program_cfg_t *sv_config_program(const sv_config_t *c, const char *name);

/* Splits a command line on blanks, honouring '...' and "..." quotes.
 * Returns a NULL-terminated heap array (free with sv_argv_free), or NULL
 * when empty or a quote is unterminated. */
char **sv_split_command(const char *cmd);
/* A heap copy of the NULL-terminated argv (free with sv_argv_free). */
char **sv_argv_dup(char *const *argv);
/* Frees an argv from sv_split_command or sv_argv_dup; accepts NULL. */
void sv_argv_free(char **argv);

/* CPUs this process may use: its affinity mask, capped by a cgroup CPU
 * quota (v2 cpu.max or v1 cfs_quota_us), rounded up; at least 1. */
unsigned sv_cpus_available(void);
/* Whether the CPUs this process may use are its own to share out: no
 * cgroup quota below its affinity set (a quota means a share of a host's
 * CPUs, which other tenants use too). What cpu_affinity = auto follows. */
bool sv_cpus_own(void);
/* The CPU of allowed with the fewest in load (indexed by CPU number, at
 * least CPU_SETSIZE entries), the lowest number among equals; -1 when
 * allowed is empty. */
int sv_cpu_least(const cpu_set_t *allowed, const unsigned *load);

#endif
