/* store_conn.c - a thread's connection to the database: opened on first
 * use, its statements prepared once and kept, the write lock, and write
 * transactions (alone, or as savepoints of a group commit). See
 * store_internal.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "now.h"
#include "sqlwal.h"
#include "store_internal.h"

static int s_busy(void *ud, int count)
{
    UNUSED(ud);
    usleep(200); /* fairer between processes than SQLite's default handler */
    return count < 25000;
}

sqlite3 *store__open_db(const char *path, sqldb_sync_t sync, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    /* sqlwal: a group commit's WAL frames go out in one write (sqlwal.h). */
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        sqlwal_vfs());
    if (rc == SQLITE_OK)
        sqlite3_busy_handler(db, s_busy, NULL);
    /* temp_store=MEMORY: a savepoint's journal (past 64 KiB, as a cascade
     * delete's) stays in memory instead of a file in the system's
     * temporary directory, whose disk being full failed the write as if
     * the database's were. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;"
                          " PRAGMA journal_size_limit=67108864;"
                          " PRAGMA wal_autocheckpoint=0; PRAGMA temp_store=MEMORY;",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sqldb_sync_pragma(sync), NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s%s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                 db && sqlite3_system_errno(db) == ENOSPC ? " (the disk is full)" : "");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

void store__conn_free(void *p)
{
    store_conn_t *c = p;
    for (unsigned i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].st);
    for (int i = 0; i < STORE_TX_N; i++)
        sqlite3_finalize(c->tx[i]);
    sqlite3_close(c->db);
    if (c->lockfd >= 0)
        close(c->lockfd);
    free(c);
}

/* After each commit: how many frames the WAL holds (see store_batch.c). */
static int s_wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    UNUSED(db), UNUSED(name);
    ((store_conn_t *)ud)->wal_frames = frames;
    return SQLITE_OK;
}

store_conn_t *store__conn(store_t *s)
{
    store_conn_t *c = pthread_getspecific(s->key);
    if (c)
        return c;
    char err[256];
    sqlite3 *db = store__open_db(s->path, s->sync, err, sizeof err);
    if (!db) {
        log_error("store: %s", err);
        return NULL;
    }
    c = xcalloc(1, sizeof *c);
    c->db = db;
    sqlite3_wal_hook(db, s_wal_hook, c);
    c->shared = s->shared;
    char *lp = xasprintf("%s-writelock", s->path);
    c->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lockfd < 0)
        log_err(errno, "store: %s (writers will poll SQLite's lock instead)", lp);
    free(lp);
    pthread_setspecific(s->key, c);
    return c;
}

void store__conn_reset(store_conn_t *c)
{
    for (unsigned i = 0; i < c->ncache; i++)
        sqlite3_reset(c->cache[i].st);
}

void store__conn_end(store_conn_t *c)
{
    c->cause_rc = 0;
    c->users_changed = false; /* what set it did not commit */
    store__conn_reset(c);
    if (c->locked) { /* a path that began a write and never ended it */
        log_error("store: a write transaction was left open; rolled back");
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        store__unlock(c);
    }
}

sqlite3_stmt *store__stmt(store_conn_t *c, const char *sql)
{
    c->cause_rc = 0; /* a new statement: an older rollback's cause is stale */
    for (unsigned i = 0; i < c->ncache; i++) {
        if (c->cache[i].sql == sql) {
            sqlite3_reset(c->cache[i].st);
            sqlite3_clear_bindings(c->cache[i].st);
            return c->cache[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
        SQLITE_OK) {
        log_error("store: prepare failed: %s (%s)", sqlite3_errmsg(c->db), sql);
        return NULL;
    }
    VP_ASSERT(c->ncache < STORE_STMT_CACHE);
    c->cache[c->ncache].sql = sql;
    c->cache[c->ncache].st = st;
    c->ncache++;
    return st;
}

/* Remembers SQLite's current error as the cause of what follows (a
 * rollback, which replaces it). */
static void s_note_cause(store_conn_t *c)
{
    c->cause_rc = sqlite3_extended_errcode(c->db);
    if (c->cause_rc == SQLITE_OK)
        c->cause_rc = SQLITE_ERROR;
    snprintf(c->cause_msg, sizeof c->cause_msg, "%s", sqlite3_errmsg(c->db));
    if (sqlite3_system_errno(c->db) == ENOSPC)
        c->cause_rc = SQLITE_FULL;
}

int store__fail(store_conn_t *c, store_err_t *e)
{
    if (!c) {
        e->code = "storage_error";
        snprintf(e->msg, sizeof e->msg, "the database failed: no connection");
        log_error("store: %s", e->msg);
        return VP_ESTORE;
    }
    if (c->cause_rc == 0)
        s_note_cause(c);
    if ((c->cause_rc & 0xff) == SQLITE_FULL) {
        e->code = "storage_full";
        snprintf(e->msg, sizeof e->msg,
                 "the disk is full: the change was not saved (%s); it may be retried "
                 "once space is freed",
                 c->cause_msg);
        if (atomic_exchange(&c->shared->full_ms, (uint64_t)now_wall_ms()) == 0)
            log_error("store: %s", e->msg); /* once per episode */
        return VP_EFULL;
    }
    e->code = "storage_error";
    snprintf(e->msg, sizeof e->msg, "the database failed: %s", c->cause_msg);
    log_error("store: %s (SQLite code %d)", e->msg, c->cause_rc);
    return VP_ESTORE;
}

int store__not_found(store_err_t *e, const char *what, const char *id)
{
    e->code = "not_found";
    snprintf(e->msg, sizeof e->msg, "no %s with id %s", what, id);
    return VP_ENOTFOUND;
}

/* The statements that begin and end transactions and savepoints: run for
 * every write, so prepared once per connection (sqlite3_exec would parse
 * them each time). */
static const char *const s_tx_sql[STORE_TX_N] = {
    [STORE_TX_BEGIN] = "BEGIN IMMEDIATE", [STORE_TX_COMMIT] = "COMMIT",
    [STORE_TX_ROLLBACK] = "ROLLBACK",     [STORE_TX_SAVEPOINT] = "SAVEPOINT w",
    [STORE_TX_RELEASE] = "RELEASE w",     [STORE_TX_ROLLBACK_TO] = "ROLLBACK TO w",
};

bool store__tx(store_conn_t *c, int which)
{
    sqlite3_stmt **st = &c->tx[which];
    if (!*st && sqlite3_prepare_v3(c->db, s_tx_sql[which], -1,
                                   SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return false;
    }
    int rc = sqlite3_step(*st);
    sqlite3_reset(*st); /* keeps SQLite's error for the caller's cause */
    return rc == SQLITE_DONE;
}

/* The write lock: an flock on `<database>-writelock`, taken before BEGIN
 * IMMEDIATE and released after COMMIT or ROLLBACK. SQLite's own lock is
 * polled by a busy handler that sleeps, so a process that just committed
 * took it again before the other woke: unfair, and the tail of write
 * latency. Waiters on an flock are woken by the kernel at its release. */
void store__lock(store_conn_t *c)
{
    if (c->lockfd < 0 || c->locked)
        return;
    while (flock(c->lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    c->locked = true;
}

void store__unlock(store_conn_t *c)
{
    if (c->locked) {
        flock(c->lockfd, LOCK_UN);
        c->locked = false;
    }
}

bool store__begin_immediate(store_conn_t *c)
{
    /* A read left mid-way (a row read, its statement not reset) holds its
     * snapshot: BEGIN IMMEDIATE would then fail at once, without the busy
     * handler, whenever another worker committed since
     * (SQLITE_BUSY_SNAPSHOT). Every read of this thread ends here. */
    store__conn_reset(c);
    c->cause_rc = 0;
    return store__tx(c, STORE_TX_BEGIN);
}

/* store__begin in a batch's first run: no savepoint, the changes so far
 * noted (see store_conn_t). */
static bool s_begin_unsaved(store_conn_t *c)
{
    if (c->depth < STORE_NEST_MAX)
        c->begun[c->depth] = sqlite3_total_changes64(c->db);
    c->depth++;
    return true;
}

/* store__commit (ok) or store__rollback in a batch's first run. */
static void s_end_unsaved(store_conn_t *c, bool ok)
{
    if (c->depth > 0)
        c->depth--;
    if (!ok && (c->depth >= STORE_NEST_MAX ||
                sqlite3_total_changes64(c->db) != c->begun[c->depth]))
        c->redo = true;
}

bool store__begin(store_conn_t *c)
{
    c->cause_rc = 0;
    if (c->batched)
        return c->optimistic ? s_begin_unsaved(c) : store__tx(c, STORE_TX_SAVEPOINT);
    store__lock(c);
    if (store__begin_immediate(c))
        return true;
    store__unlock(c);
    return false;
}

void store__bump(store_conn_t *c)
{
    atomic_fetch_add_explicit(&c->shared->version, 1, memory_order_release);
    if (c->users_changed) {
        atomic_fetch_add_explicit(&c->shared->users, 1, memory_order_release);
        c->users_changed = false;
    }
    if (atomic_load_explicit(&c->shared->full_ms, memory_order_relaxed) != 0 &&
        atomic_exchange(&c->shared->full_ms, 0) != 0)
        log_info("store: writes succeed again (the disk has space)");
}

bool store__commit(store_conn_t *c)
{
    if (c->batched && c->optimistic) {
        s_end_unsaved(c, true);
        return true;
    }
    if (store__tx(c, c->batched ? STORE_TX_RELEASE : STORE_TX_COMMIT)) {
        if (!c->batched) {
            store__bump(c);
            store__unlock(c);
        }
        return true;
    }
    store__rollback(c);
    return false;
}

void store__rollback(store_conn_t *c)
{
    if (c->cause_rc == 0) /* the first failure of a statement is its cause */
        s_note_cause(c);
    if (c->batched && c->optimistic)
        s_end_unsaved(c, false);
    else if (!c->batched)
        store__tx(c, STORE_TX_ROLLBACK);
    else if (store__tx(c, STORE_TX_ROLLBACK_TO)) /* fails when all is gone */
        store__tx(c, STORE_TX_RELEASE);
    if (!c->batched)
        store__unlock(c);
}
