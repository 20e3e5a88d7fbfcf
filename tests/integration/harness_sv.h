/* harness_sv.h - a vapora-supervisor under test: started on fresh ports
 * and a fresh data_dir from a config template, read through its admin API
 * (/status), and stopped the way an operator would.
 *
 * DESIGN. A supervisor is stopped with SIGTERM, then a second SIGINT, then
 * SIGKILL; every worker and program pid a test saw in its /status is
 * tracked with its start time (harness_proc.h), and whatever of those still
 * runs at th_cleanup() is SIGKILLed, so a failed test leaves no orphan
 * behind and a recycled pid is never mistaken for one.
 *
 * The admin API wants a token (docs/supervisor.md): once it answers, the
 * harness reads it from DATA_DIR/admin-token, and every call here sends
 * it; a test's own requests add sv->auth to their headers.
 *
 * Main thread only. Pointers are NULL on failure, errors 0 / -errno. */
#ifndef VAPORA_TEST_HARNESS_SV_H
#define VAPORA_TEST_HARNESS_SV_H

#include <jansson.h>
#include <stdbool.h>

#include "harness_proc.h"

#define TH_SV_PORTS 4

/* A running vapora-supervisor. Owned by the harness list; end it with
 * th_sv_free() or let th_cleanup() do it. */
typedef struct th_sv th_sv_t;
struct th_sv {
    th_proc_t *proc; /* the supervisor; its log has its workers' too */
    int admin_port;
    char admin[32];         /* "127.0.0.1:<admin_port>", for vaporactl -a */
    int ports[TH_SV_PORTS]; /* free ports, for @PORT1@ .. @PORT4@ */
    char *data_dir;         /* a fresh directory under $VAPORA_TEST_TMP */
    char *testsvc;          /* absolute path of vapora-testsvc */
    char *backend;          /* absolute path of vapora-backend, for @BACKEND@ */
    char *router;           /* absolute path of vapora-llm-router, for @ROUTER@ */
    char token[260];        /* the admin API's token, from DATA_DIR/admin-token */
    char auth[300];         /* "Authorization: Bearer <token>\r\n" */
    th_sv_t *prev, *next;
};

/* Writes a config and starts build/bin/vapora-supervisor on it, then waits
 * until its admin API answers GET /health (not for any worker). The config
 * is "[supervisor]\nadmin = @ADMIN@\ndata_dir = @DATA@\n" followed by tmpl, so
 * tmpl may go on with [supervisor] keys. In both, @ADMIN@ stands for
 * sv->admin, @ADMIN_PORT@ for its port, @DATA@ for sv->data_dir, @TESTSVC@
 * for sv->testsvc, @BACKEND@ for sv->backend, @ROUTER@ for sv->router and
 * @PORTn@ (n = 1..TH_SV_PORTS) for sv->ports[n-1]. Retries on other ports
 * when one was taken meanwhile. Fills sv->token and sv->auth. NULL on
 * failure, with the log on stderr. */
th_sv_t *th_sv_start(const char *tmpl);

/* Like th_sv_start, but on the given data_dir (copied; NULL: a fresh one),
 * e.g. to restart on the data a supervisor stopped before left behind. The
 * directory is removed with sv only when it is empty by then (but for the
 * admin token, which goes with sv). */
th_sv_t *th_sv_start_in(const char *data_dir, const char *tmpl);

/* Replaces the config file of sv (atomically) with tmpl expanded as by
 * th_sv_start, with the same ports. Returns 0 or -errno. */
int th_sv_write_config(th_sv_t *sv, const char *tmpl);

/* GET /status, parsed; NULL when it failed. Tracks every pid it lists.
 * The caller owns the reference. */
json_t *th_sv_status(th_sv_t *sv);

/* The entry of status's "services" or "programs" (kind) named name, or
 * NULL. Borrowed from status. */
json_t *th_sv_find(json_t *status, const char *kind, const char *name);

/* The workers of a service entry in state (NULL: all of them). */
unsigned th_sv_count(json_t *service, const char *state);

/* Polls /status until service desires n workers and lists exactly n, all
 * running. Returns whether that happened within timeout_ms. */
bool th_sv_wait_settled(th_sv_t *sv, const char *service, unsigned n, int timeout_ms);

/* Stops the supervisor if it still runs (SIGCONT to the tracked pids, then
 * SIGTERM, SIGINT and SIGKILL, each after up to 3 s), removes its files and
 * frees sv. Accepts NULL; sets *svp = NULL. */
void th_sv_free(th_sv_t **svp);

/* For th_cleanup(): th_sv_free() of every supervisor still on the list. */
void th__svs_release(void);

#endif
