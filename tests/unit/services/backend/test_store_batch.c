/* test_store_batch.c - unit tests for the store's writer
 * (services/backend/store_batch.c): a batch is whatever was queued, even
 * by one thread; a write that fails rolls back alone while the others of
 * its batch commit (the batch running again with savepoints only when a
 * write failed after changing rows); and a write completes only once its
 * batch committed (another connection sees it by then). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_internal.h"
#include "store_outbox.h"

static char s_dir[] = "/tmp/vapora-writer-XXXXXX";
static char s_path[128];
static store_t *s_store;

static void s_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    char err[256];
    snprintf(s_path, sizeof s_path, "%s/t.db", s_dir);
    s_store = store_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(s_store, "%s", err);
}

static void s_fini(void)
{
    store_destroy(&s_store);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

static const char *const SQL_PUT = "INSERT INTO meta(key,value) VALUES(?,'v')";

/* How a write of a meta row goes. */
typedef enum {
    OP_OK,
    OP_FAIL,   /* its first statement succeeds, its second fails (the same key
                  again): a write whose later step fails */
    OP_NESTED, /* a store write inside it fails so, and it goes on with a row
                  of its own and succeeds */
    OP_EVENT,  /* it queues an event with its row */
} how_t;

/* A write of a meta row (a key already there fails it before any change). */
typedef struct op {
    store_write_t w;
    store_err_t e;
    char key[32];
    how_t how;
    atomic_int runs;   /* how many times run() ran */
    sem_t *gate;       /* run() posts gate[1], then waits for gate[0] */
    uint64_t batch;    /* the writer's batch count when run() ran */
    int seen;          /* in done(): whether another connection saw the row */
    atomic_bool ended; /* done() ran */
} op_t;

/* Whether key is in meta, read on a connection of its own. */
static int s_visible(const char *key)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(s_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT 1 FROM meta WHERE key=?", -1, &st, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return found;
}

static bool s_put(store_conn_t *c, const char *key)
{
    sqlite3_stmt *st = store__stmt(c, SQL_PUT);
    store__bind_text(st, 1, key);
    return sqlite3_step(st) == SQLITE_DONE;
}

/* Puts key, twice when twice (the second fails), as one store write. */
static int s_put_write(store_conn_t *c, store_err_t *e, const char *key, bool twice)
{
    if (!store__begin(c))
        return store__fail(c, e);
    if (!s_put(c, key) || (twice && !s_put(c, key))) {
        store__rollback(c);
        return store__fail(c, e);
    }
    return store__commit(c) ? 0 : store__fail(c, e);
}

static int s_run(store_write_t *w, store_t *s)
{
    op_t *o = container_of(w, op_t, w);
    atomic_fetch_add(&o->runs, 1);
    if (o->gate && atomic_load(&o->runs) == 1) { /* the writer is busy until the
                                                    test lets it go */
        sem_post(&o->gate[1]);
        sem_wait(&o->gate[0]);
    }
    o->batch = atomic_load(&s->batches);
    store_conn_t *c = store__conn(s);
    if (o->how == OP_EVENT) {
        cr_assert(store__begin(c));
        cr_assert(s_put(c, o->key));
        cr_assert(store__emit_text(s, c, "vapora.test", "test", o->key, o->key, "{}"));
        return store__commit(c) ? 0 : store__fail(c, w->e);
    }
    if (o->how != OP_NESTED)
        return s_put_write(c, w->e, o->key, o->how == OP_FAIL);
    char inner[40];
    snprintf(inner, sizeof inner, "%s-inner", o->key);
    store_err_t e;
    cr_assert_neq(s_put_write(c, &e, inner, true), 0, "the inner write succeeded");
    return s_put_write(c, w->e, o->key, false);
}

static void s_done(store_write_t *w)
{
    op_t *o = container_of(w, op_t, w);
    o->seen = s_visible(o->key);
    atomic_store(&o->ended, true);
}

static void s_submit(op_t *o, const char *key, how_t how, sem_t *gate)
{
    *o = (op_t){.w = {.run = s_run, .done = s_done}, .how = how, .gate = gate};
    o->w.e = &o->e;
    snprintf(o->key, sizeof o->key, "%s", key);
    cr_assert_eq(store_write_submit(s_store, &o->w), 0);
}

/* Queues a write that holds the writer in a batch of its own until
 * s_release. */
static void s_hold(op_t *o, sem_t gate[2])
{
    sem_init(&gate[0], 0, 0);
    sem_init(&gate[1], 0, 0);
    s_submit(o, "hold", OP_OK, gate);
    sem_wait(&gate[1]); /* it runs: what comes next queues */
}

static void s_release(sem_t gate[2])
{
    sem_post(&gate[0]);
}

static void s_wait(op_t *o)
{
    for (int i = 0; i < 1000 && !atomic_load(&o->ended); i++)
        usleep(10000);
    cr_assert(atomic_load(&o->ended), "write %s never completed", o->key);
}

Test(writer, a_failing_write_rolls_back_alone_and_its_batch_commits, .init = s_init,
     .fini = s_fini)
{
    sem_t gate[2];
    static op_t hold, a, b, c;
    s_hold(&hold, gate);
    s_submit(&a, "a", OP_OK, NULL);
    s_submit(&b, "b", OP_FAIL, NULL);
    s_submit(&c, "c", OP_OK, NULL);
    s_release(gate);
    s_wait(&hold), s_wait(&a), s_wait(&b), s_wait(&c);
    cr_assert(a.batch == b.batch && b.batch == c.batch && a.batch != hold.batch,
              "not one batch: %lu %lu %lu (after %lu)", (unsigned long)a.batch,
              (unsigned long)b.batch, (unsigned long)c.batch,
              (unsigned long)hold.batch);
    cr_assert_eq(a.w.rc, 0, "%s", a.e.msg);
    cr_assert_eq(c.w.rc, 0, "%s", c.e.msg);
    cr_assert_eq(b.w.rc, VP_ESTORE, "the failing write answered %d", b.w.rc);
    cr_assert(strstr(b.e.msg, "UNIQUE"), "%s", b.e.msg);
    cr_assert(a.seen && c.seen, "completed before its commit: a %d c %d", a.seen,
              c.seen);
    cr_assert_not(b.seen, "the failing write's first row stayed");
    cr_assert(s_visible("a") && s_visible("c") && !s_visible("b"));
    /* b failed after changing a row, with no savepoint: the batch ran again
     * from a, with them; c had not run yet. */
    cr_assert_eq(atomic_load(&a.runs), 2);
    cr_assert_eq(atomic_load(&b.runs), 2);
    cr_assert_eq(atomic_load(&c.runs), 1);
}

/* The events of a batch's first run are not counted again when it runs
 * again: the outbox's backlog and its dropped count are what committed. */
Test(writer, a_batch_run_again_counts_its_events_once, .init = s_init, .fini = s_fini)
{
    sem_t gate[2];
    static op_t hold, e1, e2, b;
    store_outbox_set_max(s_store, 1);
    s_hold(&hold, gate);
    s_submit(&e1, "e1", OP_EVENT, NULL);
    s_submit(&e2, "e2", OP_EVENT, NULL); /* the outbox holds one: dropped */
    s_submit(&b, "b", OP_FAIL, NULL);
    s_release(gate);
    s_wait(&hold), s_wait(&e1), s_wait(&e2), s_wait(&b);
    cr_assert_eq(e1.w.rc, 0, "%s", e1.e.msg);
    cr_assert_eq(e2.w.rc, 0, "%s", e2.e.msg);
    cr_assert_eq(atomic_load(&e1.runs), 2, "the batch did not run again");
    cr_assert_eq(store_outbox_backlog(s_store), 1);
    cr_assert_eq(store_outbox_dropped(s_store), 1);
    store_err_t e;
    cr_assert_eq(store_outbox_refresh(s_store, &e), 0, "%s", e.msg);
    cr_assert_eq(store_outbox_backlog(s_store), 1, "one event committed");
    store_end(s_store);
}

/* A write that fails before changing anything (a check that fails, a
 * first statement refused) needs no savepoint: its batch runs once. */
Test(writer, a_write_failing_before_any_change_leaves_its_batch_running_once,
     .init = s_init, .fini = s_fini)
{
    sem_t gate[2];
    static op_t first, hold, a, b, c;
    s_submit(&first, "dup", OP_OK, NULL);
    s_wait(&first);
    s_hold(&hold, gate);
    s_submit(&a, "a", OP_OK, NULL);
    s_submit(&b, "dup", OP_OK, NULL); /* already there: refused at once */
    s_submit(&c, "c", OP_OK, NULL);
    s_release(gate);
    s_wait(&hold), s_wait(&a), s_wait(&b), s_wait(&c);
    cr_assert_eq(a.batch, c.batch, "not one batch");
    cr_assert_eq(a.w.rc, 0, "%s", a.e.msg);
    cr_assert_eq(c.w.rc, 0, "%s", c.e.msg);
    cr_assert_eq(b.w.rc, VP_ESTORE, "the failing write answered %d", b.w.rc);
    cr_assert(strstr(b.e.msg, "UNIQUE"), "%s", b.e.msg);
    cr_assert(s_visible("a") && s_visible("c"));
    cr_assert_eq(atomic_load(&a.runs), 1, "the batch ran again");
    cr_assert_eq(atomic_load(&b.runs), 1);
    cr_assert_eq(atomic_load(&c.runs), 1);
}

/* A store write inside a write fails after changing a row, and its caller
 * goes on and succeeds: the inner write's row must not be committed with
 * the caller's (its savepoint undoes it; without one, the batch runs
 * again with them). */
Test(writer, an_inner_write_failing_after_a_change_leaves_nothing_behind,
     .init = s_init, .fini = s_fini)
{
    sem_t gate[2];
    static op_t hold, a, n, c;
    s_hold(&hold, gate);
    s_submit(&a, "a", OP_OK, NULL);
    s_submit(&n, "n", OP_NESTED, NULL);
    s_submit(&c, "c", OP_OK, NULL);
    s_release(gate);
    s_wait(&hold), s_wait(&a), s_wait(&n), s_wait(&c);
    cr_assert_eq(n.w.rc, 0, "%s", n.e.msg);
    cr_assert(n.seen, "completed before its commit");
    cr_assert(s_visible("a") && s_visible("n") && s_visible("c"));
    cr_assert_not(s_visible("n-inner"), "the failed inner write's row was committed");
    cr_assert_eq(atomic_load(&n.runs), 2, "the batch did not run again");
}

/* The size of a batch is what was queued meanwhile, not how many threads
 * wait: one thread's hundred writes are one transaction. */
Test(writer, one_thread_queues_a_whole_batch, .init = s_init, .fini = s_fini)
{
    enum { N = 100 };
    sem_t gate[2];
    static op_t hold, ops[N];
    uint64_t b0, w0, b1, w1;
    s_hold(&hold, gate);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        s_submit(&ops[i], key, OP_OK, NULL);
    }
    store_writer_stats(s_store, &b0, &w0);
    s_release(gate);
    for (int i = 0; i < N; i++) {
        s_wait(&ops[i]);
        cr_assert_eq(ops[i].w.rc, 0, "%s", ops[i].e.msg);
        cr_assert(ops[i].seen, "write %d completed before its commit", i);
        cr_assert_eq(ops[i].batch, ops[0].batch, "write %d in another batch", i);
    }
    store_writer_stats(s_store, &b1, &w1);
    cr_assert_eq(b1 - b0, 1, "%lu batches for one thread's %d writes",
                 (unsigned long)(b1 - b0), N);
    cr_assert_eq(w1 - w0, N);
}

/* A write from a thread that waits for it (store functions called on a
 * pool thread) joins the batch the others queued. */
Test(writer, a_waiting_write_joins_the_queued_batch, .init = s_init, .fini = s_fini)
{
    sem_t gate[2];
    static op_t hold, a, mine;
    s_hold(&hold, gate);
    s_submit(&a, "a", OP_OK, NULL);
    mine = (op_t){.w = {.run = s_run}};
    mine.w.e = &mine.e;
    snprintf(mine.key, sizeof mine.key, "mine");
    s_release(gate); /* the writer may take a before mine is queued */
    cr_assert_eq(store__write(s_store, &mine.w), 0, "%s", mine.e.msg);
    cr_assert(s_visible("mine"), "store__write returned before its commit");
    s_wait(&a);
    cr_assert(s_visible("a"));
}

/* A write that reads the synchronous setting of the connection it runs on
 * (the writer's). */
typedef struct sync_op {
    store_write_t w;
    store_err_t e;
    int level; /* PRAGMA synchronous: 1 NORMAL, 2 FULL */
} sync_op_t;

static int s_read_sync(store_write_t *w, store_t *s)
{
    sync_op_t *op = container_of(w, sync_op_t, w);
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(c->db, "PRAGMA synchronous", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    op->level = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int s_writer_sync(store_t *s)
{
    sync_op_t op = {.w = {.run = s_read_sync}};
    op.w.e = &op.e;
    cr_assert_eq(store__write(s, &op.w), 0, "%s", op.e.msg);
    return op.level;
}

/* [backend] synchronous = full: the writer's commits sync the WAL before
 * their writes are answered (SQLite's synchronous=FULL); normal, the
 * default, leaves that to the checkpoints. */
Test(writer, a_full_store_syncs_every_commit, .init = s_init, .fini = s_fini)
{
    cr_assert_eq(s_writer_sync(s_store), 1, "the default is NORMAL");
    store_destroy(&s_store);
    char err[256];
    s_store = store_open(s_path, SQLDB_SYNC_FULL, err, sizeof err);
    cr_assert_not_null(s_store, "%s", err);
    cr_assert_eq(s_writer_sync(s_store), 2, "the writer's connection is FULL");
    static op_t a;
    s_submit(&a, "full", OP_OK, NULL);
    s_wait(&a);
    cr_assert_eq(a.w.rc, 0, "%s", a.e.msg);
    cr_assert(s_visible("full"), "a write of the FULL store commits");
}
