/* harness_load.h - a concurrent HTTP client: threads that keep making GET
 * requests while a test kills, stops, scales or restarts the workers that
 * serve them, and count what failed.
 *
 * DESIGN. Each thread has its own small parser on a fixed buffer and
 * touches none of the harness lists; the counts are guarded by one mutex
 * per load. Threads block every signal, so none of the signals the tests
 * send to children is delivered to a client thread by accident.
 *
 * The th_load_* calls are main-thread calls; the threads' own work is
 * theirs. */
#ifndef VAPORA_TEST_HARNESS_LOAD_H
#define VAPORA_TEST_HARNESS_LOAD_H

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
 * the harness list; end it with th_load_stop() or let th_cleanup() do it. */
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

/* For th_cleanup(): stops every load still running. */
void th__loads_release(void);

#endif
