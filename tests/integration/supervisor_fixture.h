/* supervisor_fixture.h - what the tests of vapora-supervisor and vaporactl
 * (test_supervisor_*.c) share. Each test starts the real supervisor on
 * loopback with its own config, free ports and data_dir under
 * $VAPORA_TEST_TMP, and drives it like an operator would: its admin API,
 * vaporactl, signals, kill -9 and SIGSTOP on its workers, while a client
 * (harness_load.h) keeps using the services.
 *
 * DESIGN. Nothing that must happen is waited for by sleeping a fixed time
 * and hoping: every such wait polls /status (or the log, or /proc) against
 * a deadline, so a slow machine makes a test slower, not flaky, and a
 * broken supervisor fails a test instead of hanging it. (The few fixed
 * sleeps are windows in which something must *not* happen, or in which the
 * client warms up.) A client failure is a refused or reset connection, a
 * request without a whole response, or a status other than 200; the client
 * opens a new connection per request, so a server closing an idle
 * keep-alive connection while draining is never counted.
 *
 * kill -9 and SIGSTOP of a worker happen while the client is held between
 * two requests (th_load_hold): a request that a worker is serving at the
 * instant it is SIGKILLed is lost whatever a supervisor does; what these
 * tests check is that nothing else is.
 *
 * Every test has .fini = sup_fini: the supervisor is stopped, every worker
 * and program pid it reported is SIGKILLed if still there (stopped ones are
 * continued first), client threads are joined. Main thread only; the calls
 * assert (criterion) what they need. */
#ifndef VAPORA_TEST_SUPERVISOR_FIXTURE_H
#define VAPORA_TEST_SUPERVISOR_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* A service [service:web] on @PORT1@ running vapora-testsvc. */
#define SUP_WEB(workers)                                                               \
    "[service:web]\nlisten = 127.0.0.1:@PORT1@\nworkers = " workers                    \
    "\ncommand = @TESTSVC@\n\n"

/* The criterion .fini of the supervisor's tests: frees the last /status,
 * then th_cleanup(). */
void sup_fini(void);

/* ---- /status ---- */

/* GET /status; asserts it answered. The document is kept until the next
 * sup_status() (or sup_service, sup_program) call. */
json_t *sup_status(th_sv_t *sv);

/* The last document sup_status() returned (NULL before the first). */
json_t *sup_last_status(void);

/* The service entry of a fresh /status; asserts it is listed. Borrowed
 * from sup_last_status(). */
json_t *sup_service(th_sv_t *sv, const char *name);

/* The program entry of a fresh /status; asserts it is listed. Borrowed
 * from sup_last_status(). */
json_t *sup_program(th_sv_t *sv, const char *name);

/* o[key] as a string, or "(null)" when it is not one (so it can go to
 * cr_assert_str_eq and messages as it is). */
const char *sup_str(const json_t *o, const char *key);

/* The worker of svc whose slot id is id, or NULL. Borrowed. */
json_t *sup_worker(json_t *svc, json_int_t id);

/* Fills pids[] with the worker pids of svc; returns how many (at most max). */
size_t sup_pids(json_t *svc, pid_t *pids, size_t max);

/* Whether pid is one of pids[0..n). */
bool sup_has_pid(const pid_t *pids, size_t n, pid_t pid);

/* ---- clients and operators ---- */

/* Starts a client on port: threads threads, one GET path per connection,
 * until stopped. */
th_load_t *sup_load(int port, const char *path, unsigned threads, int pause_ms);

/* Asserts a load saw no failure and some successes. */
void sup_assert_clean(const th_load_stats_t *st, const char *what);

/* Runs vaporactl -c <sv's config> -a <addr> a1 a2 a3 (addr NULL: the
 * admin address of sv; a2, a3 may be NULL): it finds the token in the
 * config's data_dir. Returns its exit status, *out its output (caller
 * frees). */
int sup_ctl(th_sv_t *sv, const char *addr, char **out, const char *a1, const char *a2,
            const char *a3);

/* vaporactl scale web n; asserts it succeeded and that web settled on n
 * workers. */
void sup_ctl_scale(th_sv_t *sv, unsigned n);

/* POST path with the token and body (JSON, sent as application/json;
 * NULL: none) to the admin API; asserts a response (the caller frees it). */
th_resp_t *sup_admin_post(th_sv_t *sv, const char *path, const char *body);

/* A supervisor (shutdown_timeout 5 s) whose one web worker has a 1.5 s
 * request in flight on *c. */
th_sv_t *sup_start_busy(th_conn_t **c);

/* ---- restarts and processes ---- */

/* The delays (ms) of every log line that contains who and then "restart",
 * taken from the number after "in " (e.g. "restart 2 in 224 ms"). Returns
 * how many (at most max). */
size_t sup_backoff_delays(const char *log, const char *who, long *out, size_t max);

/* Asserts that delays grow as the restart policy says: from base ms, each
 * at least 1.5 times the one before (doubling, with up to 25 % jitter). */
void sup_assert_backoff(const long *d, size_t n, long base, const char *log);

/* Waits until pid no longer exists; returns whether it happened in time. */
bool sup_wait_gone(pid_t pid, int timeout_ms);

#endif
