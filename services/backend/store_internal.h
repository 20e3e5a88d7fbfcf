/* store_internal.h - what the store's files share; nothing outside the
 * store includes it. The store is one module in several files (see
 * store.h): store.c (open, close, version counter, checkpointer),
 * store_conn.c (a thread's connection, its statement cache, the write lock
 * and transactions), store_sql.c (binding and reading values),
 * store_migrate.c (the schema), store_batch.c (the writer: group commit),
 * store_outbox.c (events), store_users.c, store_projects.c, store_tasks.c,
 * store_task_doc.c (a task's JSON from its row).
 *
 * Every function here runs on the thread that owns the connection it is
 * given (a pool thread, the writer, the publisher, the checkpointer or the
 * set-up thread), except where said otherwise. */
#ifndef VAPORA_STORE_INTERNAL_H
#define VAPORA_STORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "store.h"

/* Statements one connection keeps prepared (every SQL text of the store). */
#define STORE_STMT_CACHE 48

/* What the worker processes sharing a database tell each other: a page of
 * `<database>-version` every one maps shared (preallocated: see
 * file_map_shared). Only grows at its end. */
typedef struct store_shared {
    /* Bumped after every committed write by any worker (store_version). */
    _Atomic uint64_t version;
    /* When (wall-clock ms) a write last failed for lack of space; 0 once a
     * write committed since (store_full_since). */
    _Atomic uint64_t full_ms;
    /* Bumped after every committed change of who holds which token: a user
     * deleted, a role or password changed (store_users_version). */
    _Atomic uint64_t users;
} store_shared_t;

struct store {
    char *path;
    sqldb_sync_t sync; /* every connection's */
    pthread_key_t key; /* the calling thread's store_conn_t */
    /* The outbox (store_outbox.c). */
    long outbox_max;
    atomic_long backlog;  /* estimate, refreshed by store_outbox_refresh */
    atomic_ulong dropped; /* events not queued: the outbox was full */
    atomic_ulong last_drop_log;
    /* After a batch that queued events; set by the loop thread while the
     * writer runs, so both are read, and the hook runs, under hook_mu. */
    pthread_mutex_t hook_mu;
    void (*on_commit)(void *ud);
    void *on_commit_ud;
    /* The writer (store_batch.c): writes queue here; its thread takes
     * whatever is queued as the next batch. */
    pthread_mutex_t wmu;
    pthread_cond_t wcv; /* the writer waits on it for work */
    pthread_cond_t dcv; /* threads in store__write wait on it for their batch */
    list_t wq;          /* store_write_t, in arrival order */
    size_t nq;          /* writes queued (wq) */
    size_t qmax;        /* submissions beyond it are refused (store_write_submit) */
    bool wstop;
    pthread_t writer;
    bool writer_running;
    atomic_ulong batches, writes; /* run so far (store_writer_stats) */
    /* Shared with the other workers; private memory (and not known to be
     * shared) when the file could not be mapped. */
    store_shared_t *shared;
    bool shared_mapped;
    /* The checkpointer thread (store.c). */
    pthread_t ckpt;
    bool ckpt_running;
    atomic_bool ckpt_stop;
};

/* The statements of transactions and savepoints (store__tx). */
enum {
    STORE_TX_BEGIN, /* BEGIN IMMEDIATE */
    STORE_TX_COMMIT,
    STORE_TX_ROLLBACK,
    STORE_TX_SAVEPOINT, /* SAVEPOINT w */
    STORE_TX_RELEASE,
    STORE_TX_ROLLBACK_TO,
    STORE_TX_N
};

/* How deeply store__begin may nest in a batch's first run and still be
 * tracked (deeper: a rollback always runs the batch again). */
#define STORE_NEST_MAX 8

/* One thread's connection, made on its first use of the store and freed
 * when the thread exits (a pthread key destructor). */
typedef struct store_conn {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STORE_STMT_CACHE];
    unsigned ncache;
    sqlite3_stmt *tx[STORE_TX_N]; /* store__tx's, prepared on first use */
    store_shared_t *shared;       /* the store's */
    int lockfd;                   /* this connection's handle on the write lock */
    bool locked;
    /* Inside a group commit every write is a savepoint of the batch's one
     * transaction: store__begin, store__commit and store__rollback then mean
     * SAVEPOINT, RELEASE and ROLLBACK TO, so a write's body is the same alone
     * or batched. */
    bool batched;
    /* A batch's first run (store_batch.c): its writes take no savepoint.
     * store__begin then notes how many rows the connection has changed so
     * far (begun[], nested depth deep), and a store__rollback after rows
     * changed since sets redo: only a savepoint could have undone them, so
     * the batch runs again with one per write. */
    bool optimistic, redo;
    int depth;
    int64_t begun[STORE_NEST_MAX];
    /* The events this run of a batch queued and dropped (store_outbox.c):
     * taken back from the store's counters when the run is rolled back to
     * be done again. */
    long run_events, run_drops;
    /* Why the last rollback happened: SQLite's code and message, kept
     * because the ROLLBACK (which may fail: SQLite rolls back by itself on
     * a full disk) replaces them. 0: none since the current statement. */
    int cause_rc;
    char cause_msg[160];
    /* A write of the current transaction changed a user's tokens:
     * store__bump bumps the users counter too, after the commit. */
    bool users_changed;
    int wal_frames; /* in the WAL after this connection's last commit */
} store_conn_t;

/* ---- store_conn.c: connections, statements, the write lock, transactions */

/* Opens path with the store's pragmas (WAL, synchronous as sync asks,
 * foreign keys, no automatic checkpoint, temporary data in memory) and
 * busy handler; NULL with a reason. */
sqlite3 *store__open_db(const char *path, sqldb_sync_t sync, char *err, size_t errlen);
/* The calling thread's connection (opened on first use), or NULL (logged). */
store_conn_t *store__conn(store_t *s);
/* Closes a connection: the pthread key's destructor. */
void store__conn_free(void *p);
/* Resets the thread's statements (ending its read transaction). */
void store__conn_reset(store_conn_t *c);
/* The same, and rolls back a forgotten transaction. */
void store__conn_end(store_conn_t *c);
/* A prepared statement for sql, a string literal (cached by address), reset
 * and unbound; NULL (logged) when it does not prepare. */
sqlite3_stmt *store__stmt(store_conn_t *c, const char *sql);
/* Runs one of the STORE_TX_* statements; false (SQLite's error kept for
 * the cause) when it fails. */
bool store__tx(store_conn_t *c, int which);
/* BEGIN IMMEDIATE after ending every read this connection left open. */
bool store__begin_immediate(store_conn_t *c);
/* The write lock: an flock on `<database>-writelock` around each write
 * transaction (see store_conn.c). */
void store__lock(store_conn_t *c);
void store__unlock(store_conn_t *c);
/* One write: BEGIN IMMEDIATE ... COMMIT under the write lock, or a
 * savepoint inside a group commit (c->batched). store__commit bumps the
 * version after a real commit; on failure it has rolled back. */
bool store__begin(store_conn_t *c);
bool store__commit(store_conn_t *c);
void store__rollback(store_conn_t *c);
/* Tells every worker that the database changed (store_version), and that
 * writes succeed (store_full). */
void store__bump(store_conn_t *c);
/* Fills e with why the database failed (logged): storage_full and VP_EFULL
 * when it lacks space (then store_full() says so to every worker), else
 * storage_error and VP_ESTORE. The cause is the error that made the last
 * rollback, or else SQLite's last error. c may be NULL (no connection). */
int store__fail(store_conn_t *c, store_err_t *e);
/* Fills e with not_found, "no <what> with id <id>"; VP_ENOTFOUND. */
int store__not_found(store_err_t *e, const char *what, const char *id);

/* ---- store_sql.c: values in and out of statements ---- */

/* A new UUID (version 7: time-ordered, 74 random bits), as text. */
void store__uuid(char out[37]);
/* Now, as now_iso8601 writes it (2026-01-02T03:04:05.678Z), cheaper. */
#define STORE_TS_MAX 40
void store__now(char out[STORE_TS_MAX]);
/* Binds v (copied), or NULL. */
void store__bind_text(sqlite3_stmt *st, int i, const char *v);
/* Column i as a JSON string, or null. */
json_t *store__col_text(sqlite3_stmt *st, int i);
json_t *store__col_real(sqlite3_stmt *st, int i);
/* Runs sql (one "?" for key) and leaves *row on the first row: 0,
 * VP_ENOTFOUND naming `what` and key, or VP_ESTORE. c may be NULL. */
int store__find_row(store_conn_t *c, const char *sql, const char *key, const char *what,
                    sqlite3_stmt **row, store_err_t *e);
/* Steps sql with id (and id2 when not NULL) bound: SQLite's result code. */
int store__step_id(store_conn_t *c, const char *sql, const char *id, const char *id2);
/* The first column of every row sql gives for id (bound to ?1), as JSON
 * strings; NULL when the statement does not prepare. */
json_t *store__ids(store_conn_t *c, const char *sql, const char *id);

/* ---- store_migrate.c ---- */

/* Applies the migrations db lacks, in one transaction; 0 or -EIO with a
 * reason (also when the database is newer than this build). */
int store__migrate(sqlite3 *db, char *err, size_t errlen);

/* ---- store_batch.c: the writer ---- */

/* The WAL is let start over past STORE_WAL_RESTART_FRAMES (the
 * checkpointer, store.c); past STORE_WAL_MAX_FRAMES, when the writes
 * outrun the checkpoints, the writer checkpoints it itself before it lets
 * the write lock go. */
#define STORE_WAL_RESTART_FRAMES 8192
#define STORE_WAL_MAX_FRAMES 16384

/* Starts the writer thread (store_open); false when it cannot. */
bool store__writer_start(store_t *s);
/* Runs what is still queued, then stops and joins the writer. */
void store__writer_stop(store_t *s);

/* Runs w in the next batch and returns once that batch committed (or
 * failed): w->rc. Any thread but the loop's; from the writer itself (a
 * store_write_submit job's run calling a store function), w runs at once
 * as a savepoint of the batch being run. */
int store__write(store_t *s, store_write_t *w);

/* ---- store_outbox.c ---- */

/* The writer thread, after a commit while events wait: the commit hook, if
 * one is set (store_outbox_set_commit_hook). */
void store__commit_hook(store_t *s);
/* Queues {"type":type,"id","project_id","data":data,"at"} on subject, in
 * the current write transaction. A full outbox drops the event (counted,
 * logged at most every 10 s); false only when the database fails. */
bool store__emit(store_t *s, store_conn_t *c, const char *subject, const char *type,
                 const json_t *data);
/* The same with data as JSON text, and the event's id and project_id. */
bool store__emit_text(store_t *s, store_conn_t *c, const char *subject,
                      const char *type, const char *id, const char *project_id,
                      const char *data);

/* ---- store_task_doc.c: a task from its row ---- */

/* A task as the API shows it, from a row of TASK_COLS (and its blockers). */
json_t *store__task_row(store_conn_t *c, sqlite3_stmt *st);
/* The same as JSON text (the task's document: caller frees), byte for byte
 * json_dumps(store__task_row(c, st), JSON_COMPACT). */
char *store__task_doc(store_conn_t *c, sqlite3_stmt *st);
/* The document of a new task without blockers (id, created at ts): what
 * store__task_doc gives once it is inserted. */
struct store_task_new;
char *store__task_doc_new(const char *id, const struct store_task_new *t,
                          const char *ts);

/* ---- store_tasks.c, for the projects ---- */

/* The task id as JSON (*out, caller owns): 0, VP_ENOTFOUND or VP_ESTORE. */
int store__task_get(store_conn_t *c, const char *id, json_t **out, store_err_t *e);

#define STORE_TASK_COLS                                                                \
    "seq,id,project_id,title,description,type,status,priority,progress,"               \
    "assigned_role,assigned_agent,estimated_hours,actual_hours,result,created_at,"     \
    "updated_at,version"

#endif
