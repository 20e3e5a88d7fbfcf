/* harness_proc.h - the processes of an integration test: spawning a
 * program (a service worker, a supervisor, a fake) with its output in a log
 * file, waiting for it to listen or to exit, signalling it, reading its
 * log; and other processes known by pid only (a supervisor's children).
 *
 * DESIGN. Children get PR_SET_PDEATHSIG, every fd above 2 closed, a clean
 * signal state and no core files, so a test process that criterion kills
 * on timeout takes its workers with it. Every wait has a deadline. Started
 * processes are on a per-process list and tracked pids are remembered with
 * their start time: th_cleanup() (harness.h) kills and reaps what still
 * runs, and a recycled pid is never mistaken for a tracked one.
 *
 * Main thread only. Errors are 0 / -errno, pointers NULL on failure. */
#ifndef VAPORA_TEST_HARNESS_PROC_H
#define VAPORA_TEST_HARNESS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct th_proc th_proc_t;

/* A started program. Owned by the harness list; end it with th_proc_free()
 * or let th_cleanup() do it. */
struct th_proc {
    pid_t pid;    /* 0 once reaped */
    int port;     /* the port it listens on (0 when not known) */
    int status;   /* wait status, valid once pid == 0 */
    char *bin;    /* the program */
    char *config; /* its config file (removed by th_proc_free) */
    char *log;    /* its stdout+stderr (removed by th_proc_free) */
    th_proc_t *prev, *next;
};

/* Spawns bin -c config with stdout and stderr appended to a fresh log file,
 * every fd above 2 closed and PR_SET_PDEATHSIG set. Does not wait for it to
 * be ready. Takes ownership of config (a heap path). NULL on failure. */
th_proc_t *th_spawn(const char *bin, char *config);

/* Like th_spawn, but runs argv as given (argv[0] is the program's path,
 * the array is NULL-terminated). Takes ownership of config (a heap path,
 * removed with the process; may be NULL). NULL on failure. */
th_proc_t *th_spawn_argv(const char *const argv[], char *config);

/* Runs argv to completion within timeout_ms. Returns its exit code as
 * th_wait_exit does (-ETIMEDOUT: it was killed), or -ECHILD when it could
 * not be started. When out is non-NULL, *out receives what it printed on
 * stdout and stderr (caller frees; never NULL). */
int th_run(const char *const argv[], int timeout_ms, char **out);

/* Waits until the worker accepts TCP connections on 127.0.0.1:port.
 * Returns 0, -ECHILD when it exited first (its status is then recorded), or
 * -ETIMEDOUT. */
int th_wait_ready(th_proc_t *p, int port, int timeout_ms);

/* Starts a service worker ready to serve: picks a free port, writes a config
 * with "[service:<section>]\nlisten = 127.0.0.1:<port>\n" followed by the
 * lines of extra (may be NULL; it may open other sections), spawns
 * <bin_name> and waits for it. Retries with another port when the worker
 * exits before listening (a port taken in between). NULL on failure, with
 * the reason logged to stderr. */
th_proc_t *th_start(const char *bin_name, const char *section, const char *extra);

/* Waits up to timeout_ms for p to exit. Returns its exit status (0..255),
 * 128+N when killed by signal N, or -ETIMEDOUT; in that case the process is
 * SIGKILLed and reaped, so nothing outlives the call. */
int th_wait_exit(th_proc_t *p, int timeout_ms);

/* Sends sig to p (if it still runs). Returns 0 or -errno. */
int th_signal(th_proc_t *p, int sig);

/* th_signal then th_wait_exit. */
int th_stop(th_proc_t *p, int sig, int timeout_ms);

/* Whether p has not exited yet (reaps it when it has). */
bool th_running(th_proc_t *p);

/* The log of p so far (caller frees); "" when empty, never NULL. */
char *th_log(const th_proc_t *p);

/* Polls the log until it contains needle. Returns true when found within
 * timeout_ms. */
bool th_log_wait(const th_proc_t *p, const char *needle, int timeout_ms);

/* A copy of the first line of p's log that contains needle (caller
 * frees), or NULL. */
char *th_log_line(const th_proc_t *p, const char *needle);

/* How many times needle occurs in p's log (not overlapping). */
int th_log_count(const th_proc_t *p, const char *needle);

/* SIGKILLs p if it still runs, reaps it, removes its files unless
 * VAPORA_TEST_KEEP is set, and frees it. Accepts NULL; sets *pp = NULL. */
void th_proc_free(th_proc_t **pp);

/* ---- other processes (a supervisor's children), by pid ---- */

/* The state letter of pid in /proc (R, S, D, T, Z, ...), or 0 when there is
 * no such process. */
char th_pid_state(pid_t pid);

/* Remembers pid and its start time; th_cleanup() SIGKILLs it if the same
 * process still runs then. th_sv_status() tracks every pid it reports. */
void th_track_pid(pid_t pid);

/* Whether pid still exists (a zombie counts) and, when it was tracked, is
 * still the process that was tracked rather than a recycled pid. */
bool th_pid_remains(pid_t pid);

/* ---- for th_cleanup() and the supervisor module ---- */

/* SIGCONTs every tracked process that still runs (a test may have stopped
 * one that must now hear its drain). */
void th__pids_continue(void);

/* SIGKILLs every tracked process that still runs (continuing it first) and
 * forgets them all. */
void th__pids_kill(void);

/* th_proc_free() of every process still on the list. */
void th__procs_release(void);

#endif
