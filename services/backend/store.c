/* store.c - the store's life: open (migrations, the page the workers
 * share, the checkpointer thread), the end of a thread's job, close. The
 * rest of the store is in the store_*.c files (see store_internal.h). */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "file.h"
#include "log.h"
#include "now.h"
#include "store_internal.h"
#include "store_outbox.h"

/* How often each worker's checkpointer copies the WAL back (ms). */
#define STORE_CHECKPOINT_MS 100

/* How often a checkpointer tries a write while writes fail for lack of
 * space (ms): it tells every worker when they succeed again. */
#define STORE_PROBE_MS 1000
#define STORE_SHARED_LEN 4096

static const char *const SQL_PROBE =
    "INSERT OR REPLACE INTO meta(key,value) VALUES('write_probe',?)";

/* Maps `<path>-version` (created if missing). Without it (logged), the
 * page is private: the version stays 0 and store_version_known() says so. */
static void s_map_shared(store_t *s, const char *path)
{
    char *vpath = xasprintf("%s-version", path);
    s->shared = file_map_shared(vpath, STORE_SHARED_LEN, NULL);
    s->shared_mapped = s->shared != NULL;
    if (!s->shared) {
        log_err(errno, "store: mapping %s (reads will not be cached)", vpath);
        s->shared = xcalloc(1, sizeof *s->shared);
    }
    free(vpath);
}

/* One small write while writes fail for lack of space: when it commits,
 * store__bump tells every worker that writes succeed again. */
static void s_probe(store_t *s)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? store__stmt(c, SQL_PROBE) : NULL;
    if (!st)
        return;
    char ts[40];
    now_iso8601(ts, sizeof ts);
    store__bind_text(st, 1, ts);
    if (store__begin(c)) {
        if (sqlite3_step(st) == SQLITE_DONE)
            store__commit(c); /* rolls back when it fails */
        else
            store__rollback(c);
    }
    store__conn_end(c);
}

/* The WAL starts again from its beginning only when a write begins while
 * every frame in it is checkpointed. Under a steady stream of writes that
 * never happens by itself (there are always new frames by the time a
 * checkpoint ends): it grew by hundreds of MB a minute, each commit
 * appending to a longer file, and waiting more and more on the file
 * system. So once it holds STORE_WAL_RESTART_FRAMES, the checkpointer catches up
 * until at most STORE_WAL_TAIL frames are left, checkpoints those few
 * under the write lock (no write is running then), and the next write
 * starts the WAL over. */
#define STORE_WAL_TAIL 64
#define STORE_WAL_TRIES 8
#define STORE_WAL_QUICK_NS 1000000
#define STORE_WAL_WAIT_NS 2000000 /* the most the hold waits for readers */

/* A passive checkpoint: whether it left at most `tail` frames. */
static bool s_checkpoint(sqlite3 *db, int *frames, int tail)
{
    int done = 0;
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, frames, &done);
    return *frames >= 0 && *frames - done <= tail;
}

/* Syncs the database file; whether that took less than STORE_WAL_QUICK_NS
 * (few pages were left to write). */
static bool s_sync_quick(int dbfd)
{
    int64_t t0 = now_ns();
    return fdatasync(dbfd) == 0 && now_ns() - t0 < STORE_WAL_QUICK_NS;
}

/* Lets the WAL start over (see above). A checkpoint that does not reach
 * the end of the WAL leaves the pages it copied unsynced, and the one that
 * does syncs them all: under the write lock, that was every page of the
 * catch-up, milliseconds of disk writes during which no worker could
 * write (the tail of POST latency). So the catch-up syncs the database
 * file itself, and copies the frames committed meanwhile, until a sync
 * finds little left to write; the hold then syncs only the last few pages.
 * When the writes outrun the checkpoints, the rest is checkpointed under
 * the lock all the same: the WAL stays bounded, at the cost of a longer
 * hold. */
static void s_restart_wal(sqlite3 *db, int lockfd, int dbfd, uint64_t *until)
{
    int frames = 0;
    for (int i = 0; i < STORE_WAL_TRIES; i++) {
        bool near = s_checkpoint(db, &frames, STORE_WAL_TAIL);
        if (dbfd < 0 ? near : s_sync_quick(dbfd) && near)
            break;
    }
    while (flock(lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    /* RESTART: the rest, after a brief wait (s_busy_brief) for readers of
     * an older snapshot, which hold the frames after it back, and then for
     * the readers of the WAL at all: the next write starts it over. */
    *until = now_ns() + STORE_WAL_WAIT_NS;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    flock(lockfd, LOCK_UN);
    if (rc == SQLITE_BUSY)
        log_debug("store: a reader kept the WAL from starting over; again later");
}

/* The checkpointer's busy handler: only the checkpoint under the write
 * lock waits (for readers, done within a millisecond or so), and every
 * write waits with it, so in small steps until *ud (now_ns), then it goes
 * on as a passive one (the WAL starts over at a later try). */
static int s_busy_brief(void *ud, int count)
{
    (void)count;
    if (now_ns() >= *(const uint64_t *)ud)
        return 0;
    usleep(20);
    return 1;
}

/* The files a checkpointer works with (-1 when missing): the write lock
 * (s_restart_wal holds it), the database (to sync it), and the turn: one
 * worker's checkpointer runs at a time, as two at once made each other's
 * checkpoints end at once (SQLITE_BUSY), the one under the write lock
 * among them. */
typedef struct ckpt_fds {
    int lock, db, turn;
    uint64_t until; /* s_busy_brief's deadline */
} ckpt_fds_t;

static int s_open_beside(const char *path, const char *suffix, int flags)
{
    char *p = xasprintf("%s%s", path, suffix);
    int fd = open(p, flags | O_CLOEXEC, 0600);
    free(p);
    return fd;
}

static void s_ckpt_open(ckpt_fds_t *f, const char *path)
{
    f->lock = s_open_beside(path, "-writelock", O_RDWR | O_CREAT);
    f->db = s_open_beside(path, "", O_RDONLY);
    f->turn = s_open_beside(path, "-ckptlock", O_RDWR | O_CREAT);
}

static void s_ckpt_close(ckpt_fds_t *f)
{
    int *fds[] = {&f->lock, &f->db, &f->turn};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        if (*fds[i] >= 0)
            close(*fds[i]);
}

/* One round of checkpoints, when it is this worker's turn. */
static void s_ckpt_round(sqlite3 *db, ckpt_fds_t *f)
{
    if (f->turn >= 0 && flock(f->turn, LOCK_EX | LOCK_NB) < 0)
        return; /* another worker's checkpointer is at it */
    int frames = 0;
    s_checkpoint(db, &frames, 0);
    if (frames >= STORE_WAL_RESTART_FRAMES && f->lock >= 0)
        s_restart_wal(db, f->lock, f->db, &f->until);
    if (f->turn >= 0)
        flock(f->turn, LOCK_UN);
}

/* Checkpoints run here, off every request's path: a commit that had to
 * checkpoint the WAL itself (SQLite's automatic checkpoint, turned off in
 * store__open_db) took several milliseconds longer, the tail of POST
 * latency. Passive checkpoints never wait for writers or readers; each
 * worker runs one, and they take turns (ckpt_fds_t). */
static void *s_checkpointer(void *arg)
{
    store_t *s = arg;
    pthread_setname_np(pthread_self(), "store-ckpt");
    char err[256];
    sqlite3 *db = store__open_db(s->path, s->sync, err, sizeof err);
    if (!db) {
        log_warn("store: checkpointer: %s", err);
        return NULL;
    }
    ckpt_fds_t f = {.until = 0};
    s_ckpt_open(&f, s->path);
    sqlite3_busy_handler(db, s_busy_brief, &f.until);
    for (unsigned n = 1; !atomic_load(&s->ckpt_stop); n++) {
        s_ckpt_round(db, &f);
        if (n % (STORE_PROBE_MS / STORE_CHECKPOINT_MS) == 0 && store_full_since(s))
            s_probe(s);
        usleep(STORE_CHECKPOINT_MS * 1000);
    }
    s_ckpt_close(&f);
    sqlite3_close(db);
    return NULL;
}

static void s_start_checkpointer(store_t *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop */
    s->ckpt_running = pthread_create(&s->ckpt, NULL, s_checkpointer, s) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->ckpt_running)
        log_warn("store: no checkpointer thread; commits will checkpoint");
}

uint64_t store_version(const store_t *s)
{
    return s->shared_mapped
               ? atomic_load_explicit(&s->shared->version, memory_order_acquire)
               : 0;
}

bool store_version_known(const store_t *s)
{
    return s->shared_mapped;
}

uint64_t store_users_version(const store_t *s)
{
    return s->shared_mapped
               ? atomic_load_explicit(&s->shared->users, memory_order_acquire)
               : 0;
}

uint64_t store_full_since(const store_t *s)
{
    return atomic_load_explicit(&s->shared->full_ms, memory_order_relaxed);
}

store_t *store_open(const char *path, sqldb_sync_t sync, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    /* No allocation statistics: they take a global mutex at every
     * sqlite3_malloc. Only before SQLite's first use (else it says
     * SQLITE_MISUSE and nothing changes). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3 *db = store__open_db(path, sync, err, errlen);
    if (!db)
        return NULL;
    int rc = store__migrate(db, err, errlen);
    sqlite3_close(db);
    if (rc < 0)
        return NULL;
    store_t *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->sync = sync;
    s->outbox_max = 100000;
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->hook_mu, NULL);
    pthread_cond_init(&s->wcv, NULL);
    pthread_cond_init(&s->dcv, NULL);
    list_init(&s->wq);
    s->qmax = 1024;
    pthread_key_create(&s->key, store__conn_free);
    s_map_shared(s, path);
    if (!store__writer_start(s)) {
        snprintf(err, errlen, "cannot start the store's writer thread");
        store_destroy(&s);
        return NULL;
    }
    s_start_checkpointer(s);
    store_err_t e;
    if (store_outbox_refresh(s, &e) != 0) /* start-up: this thread */
        log_warn("store: %s", e.msg);
    return s;
}

void store_end(store_t *s)
{
    store_conn_t *c = pthread_getspecific(s->key);
    if (c)
        store__conn_end(c);
}

void store_destroy(store_t **sp)
{
    store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    store__writer_stop(s); /* what is queued still runs */
    if (s->ckpt_running) {
        atomic_store(&s->ckpt_stop, true);
        pthread_join(s->ckpt, NULL);
    }
    /* Pool threads closed their connections when they exited. */
    store_conn_t *c = pthread_getspecific(s->key);
    if (c)
        store__conn_free(c);
    pthread_key_delete(s->key);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->hook_mu);
    pthread_cond_destroy(&s->wcv);
    pthread_cond_destroy(&s->dcv);
    if (s->shared_mapped)
        munmap(s->shared, STORE_SHARED_LEN);
    else
        free(s->shared);
    free(s->path);
    free(s);
    *sp = NULL;
}
