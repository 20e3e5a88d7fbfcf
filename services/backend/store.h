/* store.h - the backend's storage: what handlers call, so that a
 * PostgreSQL driver can slot in behind the same functions later. This
 * header opens and closes the store; each kind of row has its own header:
 * store_users.h, store_projects.h (with the board), store_tasks.h and
 * store_outbox.h (the events waiting for NATS).
 *
 * DESIGN. SQLite in WAL mode, synchronous=NORMAL. Every store function runs
 * on a thread that may block (a pool thread, the writer; never the loop
 * thread) and uses that thread's own connection, opened on first use and
 * closed when the thread exits; statements are prepared once per
 * connection and reused. Every write runs on the store's writer thread
 * (store_batch.c), which takes whatever writes are queued as one batch: one
 * BEGIN IMMEDIATE transaction, each write in its own savepoint, one COMMIT.
 * So the size of a batch follows the load, not how many threads wait; when
 * a write returns 0 (or its completion runs) its change is committed.
 * Several worker processes share the file: writers take an flock first,
 * and a busy handler retries every 200 µs for up to 5 s. A thread per
 * worker checkpoints the WAL (commits never do).
 *
 * Rows come back as jansson objects in the API's shape; the caller owns
 * them. Errors: every int returned by the store is 0 or a negative code of
 * vp_error.h: VP_ENOTFOUND (404), VP_ECONFLICT (409: err.code says which),
 * VP_EPRECONDITION (412 version_mismatch), VP_EINVALID (422: err.code
 * names the field), VP_EFULL (507 storage_full: the disk is full),
 * VP_ESTORE (500: the database failed); store_err_t
 * carries the API error code and a sentence. */
#ifndef VAPORA_STORE_H
#define VAPORA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "list.h"
#include "sqldb.h"
#include "vp_error.h"

typedef struct store store_t;

/* An id (a UUID as text) fits in this many bytes, with its NUL. */
#define STORE_ID_MAX 40

typedef struct store_err {
    const char *code; /* a string literal: static */
    char msg[256];
} store_err_t;

/* Opens (creating) the database at path, its commits synced as sync
 * ([backend] synchronous; sqldb.h says what each mode keeps) says: with
 * FULL, each commit (one per batch) syncs the WAL before its writes are
 * answered. Applies pending migrations on the calling thread: call once
 * at start-up, before serving. Starts the writer and checkpointer
 * threads. NULL with a reason in err on failure. */
store_t *store_open(const char *path, sqldb_sync_t sync, char *err, size_t errlen);
/* Runs the writes still queued (their done() runs), stops the writer and
 * the checkpointer and frees the store (after the pool and every other
 * thread using it have stopped). Accepts NULL; sets *sp = NULL. */
void store_destroy(store_t **sp);

/* ---- the writer ----
 *
 * A write for the next batch, submitted from any thread (the loop's too)
 * and completed on the writer thread: the caller's answer is sent from
 * done(), after the commit. Embed it in the caller's struct and reach the
 * rest with container_of. The writer takes up to STORE_BATCH queued
 * writes at a time, in submission order (which is the order of their
 * changes and of their events). */
typedef struct store_write store_write_t;
struct store_write {
    /* The writer thread, inside the batch's transaction: the work. It may
     * call any store function (its writes are savepoints of the batch),
     * but not store_end. Returns 0 when its outcome stands only once the
     * batch commits: if the commit fails, rc, *out, *text and *e are replaced by
     * the failure. Anything else: its outcome holds whatever the batch
     * does (it failed and rolled back its savepoint, or changed nothing).
     * It may run twice: when a write of its batch failed after changing
     * rows, the batch is rolled back, *out and *text are dropped, and every
     * write runs again. So it sets its whole outcome each time and leaves
     * its inputs as they were. */
    int (*run)(store_write_t *w, store_t *s);
    /* The writer thread, once the batch committed or failed (rc is then
     * final, and 0 means committed): w is the caller's again, and may be
     * freed. NULL for store__write's own waits. */
    void (*done)(store_write_t *w);
    json_t **out;   /* optional: a result, dropped when the commit fails */
    char **text;    /* optional: a result as text, freed then too */
    store_err_t *e; /* why the write failed */
    int rc;
    bool quiet;    /* changes nothing reads see: the version stays */
    bool finished; /* (store__write) */
    list_t link;   /* the queue's until done() */
};

/* Queues w (its run, done and e set) for the writer. Any thread. 0, or
 * -EBUSY when the queue already holds its limit (store_set_queue_max: the
 * caller answers 503) or -ESHUTDOWN when the store is closing; then w is
 * the caller's and nothing runs. */
int store_write_submit(store_t *s, store_write_t *w);
/* How many writes may wait for the writer (default 1024); call before
 * serving. */
void store_set_queue_max(store_t *s, size_t max);
/* How many batches (transactions) the writer ran, and how many writes they
 * held, so far. Any thread. */
void store_writer_stats(const store_t *s, uint64_t *batches, uint64_t *writes);

/* Ends the calling thread's use of the store for now: resets its cached
 * statements so that no read transaction stays open between jobs (stale
 * snapshots, a WAL that cannot be checkpointed). Call after every job. */
void store_end(store_t *s);

/* A number that grows after every committed write of any worker process
 * sharing the database (a counter in `<database>-version`, mapped shared):
 * what was read while it kept one value is still current. Any thread; no
 * SQLite call. 0 when the counter could not be mapped (store_version_known
 * is then false and nothing should be cached). */
uint64_t store_version(const store_t *s);
bool store_version_known(const store_t *s);

/* The same for the changes that end tokens (a user deleted, a role or a
 * password changed): what was read of the users while it kept one value is
 * still current. 0 when the page is not shared (store_version_known). */
uint64_t store_users_version(const store_t *s);

/* When (wall-clock ms) a write of any worker sharing the database last
 * failed for lack of space (VP_EFULL, 507 storage_full), while none has
 * committed since; 0: writes succeed. While it is set, each worker's
 * checkpointer tries a small write every second, so it clears by itself
 * once space is back. Any thread; no SQLite call. */
uint64_t store_full_since(const store_t *s);

#endif
