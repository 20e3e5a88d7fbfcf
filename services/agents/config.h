/* config.h - the agents service's sections of etc/vapora.conf, loaded and
 * checked: [agents] (how to reach the router and the backend, delivery
 * policy, defaults of every agent) and one [agent:NAME] per agent.
 *
 *   [agent:architect]
 *   role = architect              ; one of the twelve roles (roles.h)
 *   model = auto                  ; or a model name the router knows
 *   max_concurrent = 2            ; runs at once, across every agents worker
 *   task_types = architecture, design   ; default: the role's (roles.h)
 *   system_prompt = You are ...   ; or system_prompt_file = path (relative:
 *                                 ; to [agents] prompts_dir, default ".")
 *   temperature = 0.2
 *   max_tokens = 4096
 *   run_timeout = 600             ; seconds; default [agents] run_timeout
 *   max_cost_usd = 1              ; per run; default [agents] max_run_cost_usd
 *   max_failures = 3              ; failures in a row on one task, then never again
 *
 * An agents_config_t is immutable once loaded; any thread may read it. */
#ifndef VAPORA_AGENTS_CONFIG_H
#define VAPORA_AGENTS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "sqldb.h"

#define AGENT_NAME_MAX 63

typedef struct agent_def {
    char *name; /* the section's NAME: the agent's stable identity */
    char *role;
    char *model;
    unsigned max_concurrent;
    char **task_types;
    size_t ntask_types;
    char *system_prompt;
    double temperature;
    long max_tokens;
    long run_timeout_s;
    double max_cost_usd;
    long max_failures;
} agent_def_t;

typedef struct agents_config {
    char *router_url;       /* "http://127.0.0.1:8003", no trailing slash */
    char *router_key;       /* "" : read router_key_file (the router makes it) */
    char *router_key_file;  /* DATA_DIR/router-key-agents by default */
    char *backend_url;      /* "http://127.0.0.1:8001" */
    char *backend_user;     /* the backend user the service acts as */
    char *backend_password; /* from the config, else backend_password_file */
    char *backend_password_file; /* DATA_DIR/agents-password (the backend writes it) */
    char *database;         /* the service's own SQLite file */
    sqldb_sync_t synchronous; /* [agents] synchronous */
    char *data_dir;
    char *default_role;     /* candidates when no agent claims a task's type */
    char *prompts_dir;      /* where relative system_prompt_file paths start */
    long max_deliveries;    /* deliveries of one assignment before it is dead */
    long ack_wait_s;        /* a delivery unacknowledged this long comes back */
    agent_def_t *agents;
    size_t nagents;
    const char **task_types; /* every task type some agent claims, once each */
    size_t ntask_types;
} agents_config_t;

/* Loads and checks every key above. NULL with a one-line reason naming the
 * section and key in err on failure. system_prompt_file is read here
 * (relative to the working directory). */
agents_config_t *agents_config_load(const cfg_t *cfg, char *err, size_t errlen);
void agents_config_destroy(agents_config_t **cp);

/* The agent named name, or NULL. */
const agent_def_t *agents_config_find(const agents_config_t *c, const char *name);
/* True when agent a claims task type t. */
bool agent_def_claims(const agent_def_t *a, const char *t);

#endif
