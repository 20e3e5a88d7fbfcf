/* harness.h - helpers for the integration tests: free ports, temp config
 * files, spawning and stopping service workers, reading their logs, and a
 * minimal HTTP/1.1 client over raw TCP sockets.
 *
 * DESIGN. Every blocking step (connect, send, receive, waiting for a child)
 * has a deadline in milliseconds and fails with -ETIMEDOUT when it passes,
 * so a hung server fails a test instead of hanging it. Processes, connections
 * and responses made here are remembered in per-process lists; th_cleanup()
 * (the criterion .fini of every test) kills what still runs, closes what is
 * still open and frees what is still allocated, so a test that fails half
 * way leaks nothing. Children also get PR_SET_PDEATHSIG, so a test process
 * that criterion kills on timeout takes its workers with it.
 *
 * Criterion runs each test in its own process, single-threaded: nothing here
 * is thread-safe, and nothing needs to be, except the concurrent client
 * (th_load_*), whose threads share nothing with the rest of the harness.
 *
 * A supervisor under test (th_sv_*) is stopped the way an operator would
 * (SIGTERM, then a second SIGINT, then SIGKILL); every worker and program
 * pid a test saw in its /status is remembered with its start time, and
 * whatever of those still runs at th_cleanup() is SIGKILLed, so a failed
 * test leaves no orphan behind and a recycled pid is never mistaken for one.
 *
 * Errors are returned as 0 / -errno, pointers as NULL on failure. */
#ifndef VAPORA_TEST_HARNESS_H
#define VAPORA_TEST_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Default bounds (ms) used by the convenience calls. */
#define TH_READY_MS 5000 /* a worker must accept connections within this */
#define TH_EXIT_MS 5000  /* ... and exit within this after a signal */
#define TH_IO_MS 5000    /* one request/response exchange */

/* ---- temp files and ports ---- */

/* Returns a free TCP port on 127.0.0.1 (bound to port 0, read back, closed),
 * or -errno. Another process may take it before it is used: th_start()
 * retries with a new port when the worker cannot bind. */
int th_free_port(void);

/* A fresh path "$VAPORA_TEST_TMP/<tag>-<pid>-<n><suffix>" (falls back to
 * /tmp). The caller owns the heap string. */
char *th_tmp_path(const char *tag, const char *suffix);

/* Writes text to a fresh temp file; returns its path (caller frees and
 * unlinks) or NULL. */
char *th_write_temp(const char *tag, const char *suffix, const char *text);

/* Reads a whole file into a NUL-terminated heap string (caller frees), or
 * NULL when it cannot be read. *len, when non-NULL, receives its length. */
char *th_read_file(const char *path, size_t *len);

/* The path of a binary: "vapora-backend" -> $VAPORA_BIN_DIR/vapora-backend
 * (default build/bin); "vapora-testsvc" -> $VAPORA_BIN_DIR/../tests/...
 * The caller owns the heap string. */
char *th_bin_path(const char *name);

/* ---- processes ---- */

typedef struct th_proc th_proc_t;

/* A started worker. Owned by the harness list; end it with th_proc_free()
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

/* ---- HTTP client ---- */

typedef struct th_conn th_conn_t;

/* Opens a TCP connection to 127.0.0.1:port (keep-alive is the HTTP/1.1
 * default). NULL on failure or timeout, errno set. Owned by the harness
 * list; close with th_conn_close(). */
th_conn_t *th_connect(int port, int timeout_ms);

/* Closes the socket and frees c. Accepts NULL; sets *cp = NULL. */
void th_conn_close(th_conn_t **cp);

/* The socket of c, to check that a connection stayed the same one. */
int th_conn_fd(const th_conn_t *c);

/* Sends len raw bytes. Returns 0, -ETIMEDOUT, or -errno (-EPIPE when the
 * peer has closed). */
int th_send_raw(th_conn_t *c, const void *data, size_t len, int timeout_ms);

/* Sends "METHOD path HTTP/1.1", Host, the header lines of headers (each
 * ending in "\r\n"; may be NULL), then Content-Length and body when body is
 * non-NULL. Returns as th_send_raw. */
int th_send_request(th_conn_t *c, const char *method, const char *path,
                    const char *headers, const void *body, size_t body_len);

typedef struct th_header {
    char *name, *value;
} th_header_t;

/* A parsed response. Owned by the harness list; free with th_resp_free(). */
typedef struct th_resp th_resp_t;
struct th_resp {
    int status;
    th_header_t *headers;
    size_t nheaders;
    char *body; /* NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
    th_resp_t *prev, *next;
};

/* Reads one response: status line, headers, and a body delimited by
 * Content-Length, chunked encoding, or (neither) the peer closing. Returns
 * 0 and *out; -ETIMEDOUT; -ECONNRESET when the peer closed or reset before
 * a whole response arrived; -EPROTO when it is not HTTP. */
int th_read_response(th_conn_t *c, th_resp_t **out, int timeout_ms);

/* Waits until the peer closes (EOF or reset), discarding any data. Returns
 * 0, or -ETIMEDOUT when it stayed open. */
int th_wait_closed(th_conn_t *c, int timeout_ms);

/* Whether the peer has closed c by now, without waiting (discards any data
 * that arrived). */
bool th_peer_closed(th_conn_t *c);

/* One exchange on a new connection, closed afterwards. Returns as
 * th_read_response; on failure *out is NULL. */
int th_request(int port, const char *method, const char *path, const char *headers,
               const char *body, th_resp_t **out);

/* One exchange on a new connection within timeout_ms, like th_request but
 * thread-safe: it touches none of the harness lists, so client threads a
 * test starts itself may use it (with every signal blocked in them). body
 * is NUL-terminated (NULL: none). Returns the status (100..599), or -errno
 * as th_read_response when no whole response arrived. *resp_body, when
 * resp_body is non-NULL, receives the response body (NUL-terminated, caller
 * frees) or NULL on failure. */
int th_call(int port, const char *method, const char *path, const char *headers,
            const char *body, char **resp_body, int timeout_ms);

/* The value of a response header (case-insensitive name), or NULL. */
const char *th_resp_header(const th_resp_t *r, const char *name);

/* Frees r. Accepts NULL; sets *rp = NULL. */
void th_resp_free(th_resp_t **rp);

/* ---- a concurrent client (thread-safe) ---- */

/* Threads that each open a connection, make reqs_per_conn GET requests on
 * it (opening a new connection when a response said Connection: close),
 * close it and start over. A failure is a connection that could not be
 * made, a request without a whole response within TH_IO_MS (reset, EOF,
 * timeout), or a status other than 200. */
typedef struct th_load_opts {
    int port;         /* on 127.0.0.1 */
    const char *path; /* copied */
    unsigned threads;
    unsigned reqs_per_conn; /* 0 counts as 1 */
    long conns;             /* in all, then the threads end; 0: until stopped */
    int pause_ms;           /* per thread, between connections */
} th_load_opts_t;

typedef struct th_load_stats {
    long ok;     /* requests answered 200 */
    long failed; /* failures as defined above */
    long conns;  /* connections opened */
    char first_error[256];
} th_load_stats_t;

typedef struct th_load th_load_t;

/* Starts the threads (every signal blocked in them). The load is owned by
 * the harness list; end it with th_load_stop() or let th_cleanup() do it.
 * Main thread only, like everything else here but the threads' own work. */
th_load_t *th_load_start(const th_load_opts_t *o);

/* Waits until no thread is inside a connection and keeps them from opening
 * new ones until th_load_release(): with reqs_per_conn 1, no request is on
 * the wire in between. */
void th_load_hold(th_load_t *l);
void th_load_release(th_load_t *l);

/* The counts so far. */
void th_load_get(th_load_t *l, th_load_stats_t *st);

/* Waits up to wait_ms for a load with a connection quota to finish it, then
 * stops the threads (a request under way completes or times out first),
 * joins them, fills *st (may be NULL) and frees l. Accepts NULL; sets
 * *lp = NULL. */
void th_load_stop(th_load_t **lp, int wait_ms, th_load_stats_t *st);

/* ---- a supervisor under test ---- */

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
    th_sv_t *prev, *next;
};

/* Writes a config and starts build/bin/vapora-supervisor on it, then waits
 * until its admin API answers GET /health (not for any worker). The config
 * is "[supervisor]\nadmin = @ADMIN@\ndata_dir = @DATA@\n" followed by tmpl, so
 * tmpl may go on with [supervisor] keys. In both, @ADMIN@ stands for
 * sv->admin, @DATA@ for sv->data_dir, @TESTSVC@ for sv->testsvc, @BACKEND@
 * for sv->backend and @PORTn@ (n = 1..TH_SV_PORTS) for sv->ports[n-1].
 * Retries on other ports when one was taken meanwhile. NULL on failure,
 * with the log on stderr. */
th_sv_t *th_sv_start(const char *tmpl);

/* Like th_sv_start, but on the given data_dir (copied; NULL: a fresh one),
 * e.g. to restart on the data a supervisor stopped before left behind. The
 * directory is removed with sv only when it is empty by then. */
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

/* ---- the fake LLM provider (tests/fakes/fake_llm.py) ---- */

/* Starts the fake on a free port (p->port), stopping by itself when this
 * process ends. $VAPORA_FAKES_DIR overrides tests/fakes. NULL on failure. */
th_proc_t *th_fake_llm_start(void);
/* POSTs json to the fake's /_fake/config of scope (NULL: the default
 * scope). Returns 0 or -EPROTO. */
int th_fake_llm_config(const th_proc_t *fake, const char *scope, const char *json);
/* GET /_fake/stats of scope, parsed (caller owns), or NULL. */
json_t *th_fake_llm_stats(const th_proc_t *fake, const char *scope);

/* ---- per-test cleanup ---- */

/* Stops every client load and supervisor, kills and reaps every process,
 * closes every connection, frees every response this test process still
 * holds, and SIGKILLs what still runs of the tracked pids. Use as criterion
 * .fini. */
void th_cleanup(void);

/* Monotonic milliseconds, for the tests' own timing. */
long long th_now_ms(void);

/* Sleeps ms milliseconds (restarted on EINTR). */
void th_sleep_ms(int ms);

#endif
