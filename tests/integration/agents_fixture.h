/* agents_fixture.h - what the tests of the agents service
 * (test_agents_*.c) share: the whole suite under the real supervisor
 * (nats-server, the backend, the LLM router, the agents), the router's
 * provider being the fake (tests/fakes/fake_llm.py, scope "oai"), and
 * helpers to make tasks, assign them and wait for their end.
 *
 * Ports: @PORT1@ backend, @PORT2@ nats, @PORT3@ router, @PORT4@ agents.
 * The calls assert (criterion) what they need. Main thread only. */
#ifndef VAPORA_TEST_AGENTS_FIXTURE_H
#define VAPORA_TEST_AGENTS_FIXTURE_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <sys/types.h>

#include "harness.h"

#define AG_PW "agents-test-admin"
#define AG_AGENTS_PW "agents-test-agents-user"
#define AG_REPLY "Plan: write the handler, then its tests."

typedef struct ag_env {
    th_sv_t *sv;
    th_proc_t *fake;
    const char *tok; /* the admin's token */
    json_t *project;
    int be, router, agents; /* ports */
} ag_env_t;

typedef struct ag_opts {
    int agents_workers; /* 0: 1 */
    const char *agents; /* more [agents] lines */
    const char *extra;  /* more sections (agents of its own; default: ag_agents()) */
    const char *fake;   /* the fake's config (JSON), NULL: reply AG_REPLY */
} ag_opts_t;

/* The default agents: dev-a and dev-b (developer, max_concurrent 2), arch
 * (architect: architecture, design), qa (tester). */
const char *ag_agents(void);

/* The supervisor's config template for o and the fake on fake_port
 * (kept). */
char *ag_config(int fake_port, const ag_opts_t *o);

/* Starts the fake and the suite, logs in, makes a project. */
ag_env_t ag_start(const ag_opts_t *o);
void ag_fini(void);

/* A task (title, description) in the project. */
json_t *ag_task(ag_env_t *e, const char *title, const char *desc);
/* POST /assign with body ("{}" or {"role":...}); returns the answer (202). */
json_t *ag_assign(ag_env_t *e, const json_t *task, const char *body);
/* Polls the task until its status is status; returns it (or fails). */
json_t *ag_wait_status(ag_env_t *e, const json_t *task, const char *status, int timeout_ms);
/* GET on the agents API (token of the admin), expecting status; parsed. */
json_t *ag_get(ag_env_t *e, const char *path, int status);
/* Polls the runs of the task until one is in state; returns it. */
json_t *ag_wait_run(ag_env_t *e, const json_t *task, const char *state, int timeout_ms);
/* The pid of a service's first worker (kind "services"), or of a program
 * ("programs"). */
pid_t ag_pid(ag_env_t *e, const char *kind, const char *name);
/* Waits until the fake streams an answer (a run is mid-call). */
void ag_wait_streaming(ag_env_t *e);
/* The content of message i (0: system, 1: user) of the fake's last
 * request (kept). */
const char *ag_last_message(ag_env_t *e, size_t i);
/* A connection to the suite's nats-server. */
natsConnection *ag_nats(ag_env_t *e);

#endif
