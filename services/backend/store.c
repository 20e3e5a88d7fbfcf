/* store.c - SQLite implementation of store.h. */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "rules.h"
#include "alloc.h"
#include "now.h"
#include "sbuf.h"
#include "file.h"
#include "parse.h"

#define STMT_CACHE 48

/* How often each worker's checkpointer copies the WAL back (ms). */
#define STORE_CHECKPOINT_MS 100

struct store {
    char *path;
    pthread_key_t key; /* the calling thread's conn_t */
    long outbox_max;
    atomic_long backlog;  /* estimate, refreshed by store_outbox_fetch */
    atomic_ulong dropped; /* events not queued: the outbox was full */
    atomic_ulong last_drop_log;
    /* Group commit: writers queue here; one of them runs the batch. */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    struct wop *wq_head, *wq_tail;
    bool combining;
    void (*on_commit)(void *ud); /* after a batch that queued events */
    void *on_commit_ud;
    /* Bumped after every committed write by any worker process: a page of
     * `<database>-version` mapped shared (see store_version). */
    _Atomic uint64_t *version;
    size_t version_len;
    /* The checkpointer (see s_checkpointer). */
    pthread_t ckpt;
    bool ckpt_running;
    atomic_bool ckpt_stop;
};

typedef struct conn {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    unsigned ncache;
    _Atomic uint64_t *version; /* the store's */
    int lockfd;                /* this connection's handle on the write lock */
    bool locked;
} conn_t;

/* ---- the schema, one migration per entry; never edit a shipped one ---- */

static const char *const s_migrations[] = {
    /* 1: users, projects, tasks and task dependencies. seq orders lists and
     * backs the cursors: AUTOINCREMENT never reuses a value. */
    "CREATE TABLE users(id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL, role TEXT NOT NULL, created_at TEXT NOT NULL);"
    "CREATE TABLE projects(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE tasks(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " project_id TEXT NOT NULL REFERENCES projects(id), title TEXT NOT NULL,"
    " description TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,"
    " priority TEXT NOT NULL, progress INTEGER NOT NULL, assigned_role TEXT,"
    " assigned_agent TEXT, estimated_hours REAL, actual_hours REAL, result TEXT,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX tasks_by_project ON tasks(project_id, seq);"
    "CREATE TABLE task_deps(task_id TEXT NOT NULL, blocked_by TEXT NOT NULL,"
    " PRIMARY KEY(task_id, blocked_by));"
    "CREATE INDEX task_deps_by_blocker ON task_deps(blocked_by);",
    /* 2: the transactional outbox of events, drained in seq order to NATS. */
    "CREATE TABLE outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL,"
    " payload TEXT NOT NULL, created_at TEXT NOT NULL);",
    /* 3: each task's JSON, rendered by every write that changes the task, so
     * reads serve stored text instead of building it per request. */
    "ALTER TABLE tasks ADD COLUMN doc TEXT;",
};

/* ---- connections ---- */

static int s_busy(void *ud, int count)
{
    UNUSED(ud);
    usleep(200); /* fairer between processes than SQLite's default handler */
    return count < 25000;
}

static void s_conn_free(void *p)
{
    conn_t *c = p;
    for (unsigned i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].st);
    sqlite3_close(c->db);
    if (c->lockfd >= 0)
        close(c->lockfd);
    free(c);
}

static sqlite3 *s_open_db(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        NULL);
    if (rc == SQLITE_OK)
        sqlite3_busy_handler(db, s_busy, NULL);
    if (rc == SQLITE_OK)
        rc =
            sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                         " PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=67108864;"
                         " PRAGMA wal_autocheckpoint=0;",
                         NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static conn_t *s_conn(store_t *s)
{
    conn_t *c = pthread_getspecific(s->key);
    if (c)
        return c;
    char err[256];
    sqlite3 *db = s_open_db(s->path, err, sizeof err);
    if (!db) {
        log_error("store: %s", err);
        return NULL;
    }
    c = xcalloc(1, sizeof *c);
    c->db = db;
    c->version = s->version;
    char *lp = xasprintf("%s-writelock", s->path);
    c->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lockfd < 0)
        log_err(errno, "store: %s (writers will poll SQLite's lock instead)", lp);
    free(lp);
    pthread_setspecific(s->key, c);
    return c;
}

/* A prepared statement for sql (a string literal: cached by address). */
static sqlite3_stmt *s_stmt(conn_t *c, const char *sql)
{
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
    VP_ASSERT(c->ncache < STMT_CACHE);
    c->cache[c->ncache].sql = sql;
    c->cache[c->ncache].st = st;
    c->ncache++;
    return st;
}

static int s_fail(conn_t *c, store_err_t *e)
{
    e->code = "storage_error";
    snprintf(e->msg, sizeof e->msg, "the database failed: %s",
             c ? sqlite3_errmsg(c->db) : "no connection");
    log_error("store: %s", e->msg);
    return VP_ESTORE;
}

static int s_not_found(store_err_t *e, const char *what, const char *id)
{
    e->code = "not_found";
    snprintf(e->msg, sizeof e->msg, "no %s with id %s", what, id);
    return VP_ENOTFOUND;
}

static bool s_exec(conn_t *c, const char *sql)
{
    return sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Inside a group commit (see s_write) every write is a savepoint of the
 * batch's one transaction: these three then mean SAVEPOINT, RELEASE and
 * ROLLBACK TO, so a write's body is the same alone or batched. */
static __thread bool t_batched;

/* The write lock: an flock on `<database>-writelock`, taken before BEGIN
 * IMMEDIATE and released after COMMIT or ROLLBACK. SQLite's own lock is
 * polled by a busy handler that sleeps, so a process that just committed
 * took it again before the other woke: unfair, and the tail of write
 * latency. Waiters on an flock are woken by the kernel at its release. */
static void s_lock(conn_t *c)
{
    if (c->lockfd < 0 || c->locked)
        return;
    while (flock(c->lockfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    c->locked = true;
}

static void s_unlock(conn_t *c)
{
    if (c->locked) {
        flock(c->lockfd, LOCK_UN);
        c->locked = false;
    }
}

static bool s_begin(conn_t *c)
{
    if (t_batched)
        return s_exec(c, "SAVEPOINT w");
    s_lock(c);
    if (s_exec(c, "BEGIN IMMEDIATE"))
        return true;
    s_unlock(c);
    return false;
}

static void s_bump(conn_t *c)
{
    if (c->version)
        atomic_fetch_add_explicit(c->version, 1, memory_order_release);
}

static bool s_commit(conn_t *c)
{
    if (s_exec(c, t_batched ? "RELEASE w" : "COMMIT")) {
        if (!t_batched) {
            s_bump(c);
            s_unlock(c);
        }
        return true;
    }
    s_exec(c, t_batched ? "ROLLBACK TO w; RELEASE w" : "ROLLBACK");
    if (!t_batched)
        s_unlock(c);
    return false;
}

static void s_rollback(conn_t *c)
{
    s_exec(c, t_batched ? "ROLLBACK TO w; RELEASE w" : "ROLLBACK");
    if (!t_batched)
        s_unlock(c);
}

/* ---- events: queued in the outbox inside the change's transaction ---- */

static void s_bind_text(sqlite3_stmt *st, int i, const char *v);

static const char *const SQL_OUTBOX_INSERT =
    "INSERT INTO outbox(subject,payload,created_at) VALUES(?,?,?)";

/* Queues {"type":type,"id","project_id","data":data,"at"} on subject. A full
 * outbox drops the event (counted, logged at most every 10 s): the write
 * itself still succeeds. Returns false only when the database fails. */
static bool s_emit(store_t *s, conn_t *c, const char *subject, const char *type,
                   const json_t *data)
{
    if (s->outbox_max == 0)
        return true; /* events are off: no NATS configured */
    if (atomic_load(&s->backlog) >= s->outbox_max) {
        unsigned long n = atomic_fetch_add(&s->dropped, 1) + 1;
        unsigned long now = (unsigned long)(now_ms() / 10000);
        if (atomic_exchange(&s->last_drop_log, now) != now)
            log_warn("events: the outbox is full (%ld); %lu event(s) dropped so far",
                     s->outbox_max, n);
        return true;
    }
    char at[40];
    now_iso8601(at, sizeof at);
    json_t *pid = json_object_get(data, "project_id");
    json_t *ev = json_pack(
        "{s:s,s:O,s:O,s:O,s:s}", "type", type, "id", json_object_get(data, "id"),
        "project_id", pid ? pid : json_object_get(data, "id"), "data", data, "at", at);
    char *txt = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    sqlite3_stmt *st = s_stmt(c, SQL_OUTBOX_INSERT);
    bool ok = st != NULL;
    if (ok) {
        s_bind_text(st, 1, subject);
        sqlite3_bind_text(st, 2, txt, -1, SQLITE_TRANSIENT);
        s_bind_text(st, 3, at);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    free(txt);
    if (ok)
        atomic_fetch_add(&s->backlog, 1);
    return ok;
}

/* ---- values ---- */

static void s_uuid(char out[37])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
}

static void s_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static json_t *s_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

static json_t *s_col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
               ? json_null()
               : json_real(sqlite3_column_double(st, i));
}

void store_cursor_encode(char kind, int64_t pos, char *buf, size_t len)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%c.%lld", kind, (long long)pos);
    sodium_bin2base64(buf, len, (const unsigned char *)raw, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

bool store_cursor_decode(char kind, const char *cursor, int64_t *pos)
{
    unsigned char raw[32];
    size_t n = 0;
    if (sodium_base642bin(raw, sizeof raw - 1, cursor, strlen(cursor), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n < 3 || raw[0] != (unsigned char)kind || raw[1] != '.')
        return false;
    raw[n] = '\0';
    long v;
    if (parse_long((const char *)raw + 2, 1, 0x7fffffffffffffffL, &v) < 0)
        return false;
    *pos = v;
    return true;
}

/* ---- open and migrate ---- */

static int s_migrate(sqlite3 *db, char *err, size_t errlen)
{
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations("
                     "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version),0) FROM schema_migrations", -1,
                       &st, NULL);
    int have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    int want = (int)ARRAY_LEN(s_migrations);
    for (int v = have + 1; v <= want; v++) {
        char ts[40], *ins;
        now_iso8601(ts, sizeof ts);
        ins = xasprintf("INSERT INTO schema_migrations VALUES(%d,'%s')", v, ts);
        int rc = sqlite3_exec(db, s_migrations[v - 1], NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, ins, NULL, NULL, NULL);
        free(ins);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "migration %d failed: %s", v, sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -EIO;
        }
        log_info("store: applied schema migration %d", v);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (have > want) {
        snprintf(err, errlen,
                 "the database is at schema %d, newer than this build (%d)", have,
                 want);
        return -EIO;
    }
    return 0;
fail:
    snprintf(err, errlen, "migrations: %s", sqlite3_errmsg(db));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -EIO;
}

/* Maps `<path>-version` (created if missing). Without it (logged), the
 * version stays 0 and store_version_known() says so. */
static void s_map_version(store_t *s, const char *path)
{
    char *vpath = xasprintf("%s-version", path);
    size_t len = 4096;
    void *p = file_map_shared(vpath, len, NULL);
    if (!p)
        log_err(errno, "store: mapping %s (reads will not be cached)", vpath);
    else
        s->version = p, s->version_len = len;
    free(vpath);
}

/* Checkpoints run here, off every request's path: a commit that had to
 * checkpoint the WAL itself (SQLite's automatic checkpoint, turned off in
 * s_open_db) took several milliseconds longer, the tail of POST latency.
 * Passive checkpoints never wait for writers or readers; each worker runs
 * one, and SQLite lets one at a time proceed. */
static void *s_checkpointer(void *arg)
{
    store_t *s = arg;
    char err[256];
    sqlite3 *db = s_open_db(s->path, err, sizeof err);
    if (!db) {
        log_warn("store: checkpointer: %s", err);
        return NULL;
    }
    while (!atomic_load(&s->ckpt_stop)) {
        int frames = 0, done = 0;
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
        usleep(STORE_CHECKPOINT_MS * 1000);
    }
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
    return s->version ? atomic_load_explicit(s->version, memory_order_acquire) : 0;
}

bool store_version_known(const store_t *s)
{
    return s->version != NULL;
}

store_t *store_open(const char *path, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    sqlite3 *db = s_open_db(path, err, errlen);
    if (!db)
        return NULL;
    int rc = s_migrate(db, err, errlen);
    sqlite3_close(db);
    if (rc < 0)
        return NULL;
    store_t *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->outbox_max = 100000;
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->wcv, NULL);
    pthread_key_create(&s->key, s_conn_free);
    s_map_version(s, path);
    s_start_checkpointer(s);
    store_err_t e;
    if (store_outbox_refresh(s, &e) != 0) /* start-up: this thread */
        log_warn("store: %s", e.msg);
    return s;
}

void store_destroy(store_t **sp)
{
    store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    if (s->ckpt_running) {
        atomic_store(&s->ckpt_stop, true);
        pthread_join(s->ckpt, NULL);
    }
    /* Pool threads closed their connections when they exited. */
    conn_t *c = pthread_getspecific(s->key);
    if (c)
        s_conn_free(c);
    pthread_key_delete(s->key);
    pthread_mutex_destroy(&s->wmu);
    pthread_cond_destroy(&s->wcv);
    if (s->version)
        munmap((void *)s->version, s->version_len);
    free(s->path);
    free(s);
    *sp = NULL;
}

/* Runs sql (one "?" for key) and leaves *row on the first row: 0,
 * VP_ENOTFOUND naming `what` and key, or VP_ESTORE. c may be NULL (no
 * connection: an error). */
static int s_find_row(conn_t *c, const char *sql, const char *key,
                             const char *what, sqlite3_stmt **row, store_err_t *e)
{
    sqlite3_stmt *st = c ? s_stmt(c, sql) : NULL;
    if (!st)
        return s_fail(c, e);
    s_bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return s_not_found(e, what, key);
    if (rc != SQLITE_ROW)
        return s_fail(c, e);
    *row = st;
    return 0;
}

/* ---- users ---- */

static const char *const SQL_USER_INSERT =
    "INSERT INTO users(id,username,password_hash,role,created_at) VALUES(?,?,?,?,?)";
static const char *const SQL_USER_BY_NAME =
    "SELECT id,username,role,created_at,password_hash FROM users WHERE username=?";
static const char *const SQL_USER_BY_ID =
    "SELECT id,username,role,created_at FROM users WHERE id=?";
static const char *const SQL_USER_LIST =
    "SELECT id,username,role,created_at FROM users ORDER BY created_at, username";

static json_t *s_user_row(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o}", "id", s_col_text(st, 0), "username",
                     s_col_text(st, 1), "role", s_col_text(st, 2), "created_at",
                     s_col_text(st, 3));
}

static int s_insert_user(conn_t *c, const char *username, const char *hash,
                         const char *role, json_t **out)
{
    char id[37], ts[40];
    s_uuid(id);
    now_iso8601(ts, sizeof ts);
    sqlite3_stmt *st = s_stmt(c, SQL_USER_INSERT);
    if (!st)
        return SQLITE_ERROR;
    s_bind_text(st, 1, id);
    s_bind_text(st, 2, username);
    s_bind_text(st, 3, hash);
    s_bind_text(st, 4, role);
    s_bind_text(st, 5, ts);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE && out)
        *out = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "username", username, "role",
                         role, "created_at", ts);
    return rc;
}

int store_user_create(store_t *s, const char *username, const char *hash,
                             const char *role, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c)
        return s_fail(c, e);
    int rc = s_insert_user(c, username, hash, role, out);
    if (rc == SQLITE_CONSTRAINT) {
        e->code = "username_taken";
        snprintf(e->msg, sizeof e->msg, "a user named \"%s\" already exists", username);
        return VP_ECONFLICT;
    }
    return rc == SQLITE_DONE ? 0 : s_fail(c, e);
}

int store_user_ensure(store_t *s, const char *username, const char *hash,
                             const char *role, bool *created, store_err_t *e)
{
    json_t *u = NULL;
    int rc = store_user_create(s, username, hash, role, &u, e);
    json_decref(u);
    *created = rc == 0;
    return rc == VP_ECONFLICT ? 0 : rc;
}

int store_user_by_name(store_t *s, const char *username, json_t **out,
                              char **hash, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = s_find_row(s_conn(s), SQL_USER_BY_NAME, username, "user named", &st, e);
    if (r != 0)
        return r;
    *out = s_user_row(st);
    *hash = xstrdup((const char *)sqlite3_column_text(st, 4));
    return 0;
}

int store_user_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = s_find_row(s_conn(s), SQL_USER_BY_ID, id, "user", &st, e);
    if (r != 0)
        return r;
    *out = s_user_row(st);
    return 0;
}

int store_user_list(store_t *s, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_USER_LIST) : NULL;
    if (!st)
        return s_fail(c, e);
    json_t *items = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(items, s_user_row(st));
    if (rc != SQLITE_DONE) {
        json_decref(items);
        return s_fail(c, e);
    }
    *out = items;
    return 0;
}

/* ---- projects ---- */

#define PROJECT_COLS "seq,id,name,description,created_at,updated_at"
static const char *const SQL_PROJECT_INSERT =
    "INSERT INTO projects(id,name,description,created_at,updated_at) VALUES(?,?,?,?,?)";
static const char *const SQL_PROJECT_GET =
    "SELECT " PROJECT_COLS " FROM projects WHERE id=?";
static const char *const SQL_PROJECT_LIST =
    "SELECT " PROJECT_COLS " FROM projects WHERE seq>? ORDER BY seq LIMIT ?";
static const char *const SQL_PROJECT_UPDATE =
    "UPDATE projects SET name=COALESCE(?,name), description=COALESCE(?,description),"
    " updated_at=? WHERE id=?";
static const char *const SQL_PROJECT_DELETE = "DELETE FROM projects WHERE id=?";
static const char *const SQL_PROJECT_TASKS =
    "SELECT COUNT(*) FROM tasks WHERE project_id=?";
static const char *const SQL_PROJECT_DEPS_DELETE =
    "DELETE FROM task_deps WHERE task_id IN (SELECT id FROM tasks WHERE project_id=?)"
    " OR blocked_by IN (SELECT id FROM tasks WHERE project_id=?)";
static const char *const SQL_PROJECT_TASKS_DELETE =
    "DELETE FROM tasks WHERE project_id=?";
static const char *const SQL_PROJECT_TASK_IDS =
    "SELECT id FROM tasks WHERE project_id=?1 ORDER BY seq";


static json_t *s_project_row(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:o}", "id", s_col_text(st, 1), "name",
                     s_col_text(st, 2), "description", s_col_text(st, 3), "created_at",
                     s_col_text(st, 4), "updated_at", s_col_text(st, 5));
}

static int s_project_create_impl(store_t *s, const char *name, const char *desc,
                                        json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_PROJECT_INSERT) : NULL;
    if (!st)
        return s_fail(c, e);
    char id[37], ts[40];
    s_uuid(id);
    now_iso8601(ts, sizeof ts);
    s_bind_text(st, 1, id);
    s_bind_text(st, 2, name);
    s_bind_text(st, 3, desc ? desc : "");
    s_bind_text(st, 4, ts);
    s_bind_text(st, 5, ts);
    if (!s_begin(c))
        return s_fail(c, e);
    json_t *p =
        json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", id, "name", name, "description",
                  desc ? desc : "", "created_at", ts, "updated_at", ts);
    if (sqlite3_step(st) != SQLITE_DONE ||
        !s_emit(s, c, "vapora.projects.created", "project.created", p) ||
        !s_commit(c)) {
        json_decref(p);
        s_rollback(c);
        return s_fail(c, e);
    }
    *out = p;
    return 0;
}

static int s_project_get(conn_t *c, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = s_find_row(c, SQL_PROJECT_GET, id, "project", &st, e);
    if (r != 0)
        return r;
    if (out)
        *out = s_project_row(st);
    return 0;
}

int store_project_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    return c ? s_project_get(c, id, out, e) : s_fail(c, e);
}

int store_project_list(store_t *s, int64_t after, int limit, json_t **items,
                              int64_t *next, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_PROJECT_LIST) : NULL;
    if (!st)
        return s_fail(c, e);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, limit + 1); /* one more tells whether a page follows */
    json_t *a = json_array();
    int rc, n = 0;
    int64_t last = 0;
    *next = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *next = last;
            break;
        }
        json_array_append_new(a, s_project_row(st));
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(a);
        return s_fail(c, e);
    }
    *items = a;
    return 0;
}

static int s_project_update_impl(store_t *s, const char *id, const json_t *patch,
                                        json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c || !s_begin(c))
        return s_fail(c, e);
    sqlite3_stmt *st = s_stmt(c, SQL_PROJECT_UPDATE);
    char ts[40];
    now_iso8601(ts, sizeof ts);
    if (st) {
        s_bind_text(st, 1, json_string_value(json_object_get(patch, "name")));
        s_bind_text(st, 2, json_string_value(json_object_get(patch, "description")));
        s_bind_text(st, 3, ts);
        s_bind_text(st, 4, id);
    }
    if (!st || sqlite3_step(st) != SQLITE_DONE) {
        s_rollback(c);
        return s_fail(c, e);
    }
    if (sqlite3_changes(c->db) == 0) {
        s_rollback(c);
        return s_not_found(e, "project", id);
    }
    int r = s_project_get(c, id, out, e);
    if (r == 0 &&
        !s_emit(s, c, "vapora.projects.updated", "project.updated", *out)) {
        json_decref(*out);
        *out = NULL;
        s_rollback(c);
        return s_fail(c, e);
    }
    if (r != 0 || !s_commit(c)) {
        if (r == 0) {
            json_decref(*out);
            *out = NULL;
        }
        return r == 0 ? s_fail(c, e) : r;
    }
    return 0;
}

static int s_step_id(conn_t *c, const char *sql, const char *id, const char *id2)
{
    sqlite3_stmt *st = s_stmt(c, sql);
    if (!st)
        return SQLITE_ERROR;
    s_bind_text(st, 1, id);
    if (id2)
        s_bind_text(st, 2, id2);
    return sqlite3_step(st);
}

static int s_task_get(conn_t *c, const char *id, json_t **out, store_err_t *e);
static json_t *s_ids(conn_t *c, const char *sql, const char *id);

static int s_project_delete_impl(store_t *s, const char *id, bool cascade,
                                        store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c || !s_begin(c))
        return s_fail(c, e);
    int r = s_project_get(c, id, NULL, e);
    if (r != 0) {
        s_rollback(c);
        return r;
    }
    sqlite3_stmt *cnt = s_stmt(c, SQL_PROJECT_TASKS);
    s_bind_text(cnt, 1, id);
    int64_t tasks = sqlite3_step(cnt) == SQLITE_ROW ? sqlite3_column_int64(cnt, 0) : -1;
    if (tasks > 0 && !cascade) {
        s_rollback(c);
        e->code = "project_has_tasks";
        snprintf(e->msg, sizeof e->msg,
                 "the project has %lld task(s); delete them first or pass cascade=true",
                 (long long)tasks);
        return VP_ECONFLICT;
    }
    json_t *gone = json_pack("{s:s,s:b}", "id", id, "cascade", tasks > 0);
    /* A cascade deletes tasks: each gets its task.deleted (blocked_by stays
     * within a project, so no task elsewhere changes). */
    json_t *docs = json_array(), *ids = s_ids(c, SQL_PROJECT_TASK_IDS, id);
    bool ok = tasks >= 0 && ids;
    size_t i;
    json_t *v;
    json_array_foreach(ok ? ids : NULL, i, v)
    {
        json_t *t = NULL;
        ok = ok && s_task_get(c, json_string_value(v), &t, e) == 0;
        if (t)
            json_array_append_new(docs, t);
    }
    ok = ok && s_step_id(c, SQL_PROJECT_DEPS_DELETE, id, id) == SQLITE_DONE &&
         s_step_id(c, SQL_PROJECT_TASKS_DELETE, id, NULL) == SQLITE_DONE &&
         s_step_id(c, SQL_PROJECT_DELETE, id, NULL) == SQLITE_DONE;
    json_array_foreach(ok ? docs : NULL, i, v)
        ok = ok && s_emit(s, c, "vapora.tasks.deleted", "task.deleted", v);
    ok = ok && s_emit(s, c, "vapora.projects.deleted", "project.deleted", gone) &&
         s_commit(c);
    json_decref(gone);
    json_decref(docs);
    json_decref(ids);
    if (!ok) {
        s_rollback(c);
        return s_fail(c, e);
    }
    return 0;
}

/* ---- tasks ---- */

#define TASK_COLS                                                                      \
    "seq,id,project_id,title,description,type,status,priority,progress,"               \
    "assigned_role,assigned_agent,estimated_hours,actual_hours,result,created_at,"     \
    "updated_at,version"
static const char *const SQL_TASK_INSERT =
    "INSERT INTO tasks(id,project_id,title,description,type,status,priority,progress,"
    "estimated_hours,created_at,updated_at,version) "
    "VALUES(?,?,?,?,?,'todo',?,0,?,?,?,1)";
static const char *const SQL_TASK_GET = "SELECT " TASK_COLS " FROM tasks WHERE id=?";
static const char *const SQL_TASK_BOARD =
    "SELECT " TASK_COLS " FROM tasks WHERE project_id=? ORDER BY"
    " CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, seq";
static const char *const SQL_DEPS_OF =
    "SELECT blocked_by FROM task_deps WHERE task_id=?";
static const char *const SQL_DEP_INSERT = "INSERT OR IGNORE INTO task_deps VALUES(?,?)";
static const char *const SQL_DEPS_DELETE = "DELETE FROM task_deps WHERE task_id=?";
static const char *const SQL_DEPS_DELETE_ALL =
    "DELETE FROM task_deps WHERE task_id=?1 OR blocked_by=?1";
static const char *const SQL_TASK_DELETE = "DELETE FROM tasks WHERE id=?";
static const char *const SQL_TASK_STATUS =
    "SELECT status, project_id FROM tasks WHERE id=?";
/* Whether ?2 is among the tasks ?1 waits on, directly or not. */
static const char *const SQL_DEP_REACHES =
    "WITH RECURSIVE up(id) AS (SELECT blocked_by FROM task_deps WHERE task_id=?1"
    " UNION SELECT d.blocked_by FROM task_deps d JOIN up ON d.task_id=up.id)"
    " SELECT 1 FROM up WHERE id=?2 LIMIT 1";
static const char *const SQL_DEPENDENTS =
    "SELECT task_id FROM task_deps WHERE blocked_by=?";
static const char *const SQL_TASK_TOUCH =
    "UPDATE tasks SET version=version+1, updated_at=? WHERE id=?";
static const char *const SQL_TASK_SAVE_DOC = "UPDATE tasks SET doc=? WHERE id=?";
static const char *const SQL_TASK_DOC = "SELECT doc FROM tasks WHERE id=?";
static const char *const SQL_TASK_PAGE =
    "SELECT seq, doc, id FROM tasks WHERE seq>?1 AND (?2 IS NULL OR project_id=?2)"
    " AND (?3 IS NULL OR status=?3) AND (?4 IS NULL OR priority=?4)"
    " AND (?5 IS NULL OR assigned_role=?5) ORDER BY seq LIMIT ?6";

/* Stores the rendered JSON of task t (inside the write's transaction). */
static bool s_save_doc(conn_t *c, const json_t *t)
{
    sqlite3_stmt *st = s_stmt(c, SQL_TASK_SAVE_DOC);
    if (!st)
        return false;
    sqlite3_bind_text(st, 1, json_dumps(t, JSON_COMPACT), -1, free);
    s_bind_text(st, 2, json_string_value(json_object_get(t, "id")));
    return sqlite3_step(st) == SQLITE_DONE;
}

static json_t *s_task_row(conn_t *c, sqlite3_stmt *st)
{
    json_t *result = json_null();
    const char *rt = (const char *)sqlite3_column_text(st, 13);
    if (rt) {
        json_t *r = json_loads(rt, JSON_DECODE_ANY, NULL);
        if (r) {
            json_decref(result);
            result = r;
        }
    }
    json_t *t = json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "id",
        s_col_text(st, 1), "project_id", s_col_text(st, 2), "title", s_col_text(st, 3),
        "description", s_col_text(st, 4), "type", s_col_text(st, 5), "status",
        s_col_text(st, 6), "priority", s_col_text(st, 7), "progress",
        sqlite3_column_int(st, 8), "assigned_role", s_col_text(st, 9), "assigned_agent",
        s_col_text(st, 10), "estimated_hours", s_col_real(st, 11), "actual_hours",
        s_col_real(st, 12), "result", result, "created_at", s_col_text(st, 14),
        "updated_at", s_col_text(st, 15), "version",
        (json_int_t)sqlite3_column_int64(st, 16));
    json_t *deps = json_array();
    sqlite3_stmt *d = s_stmt(c, SQL_DEPS_OF);
    if (d) {
        s_bind_text(d, 1, json_string_value(json_object_get(t, "id")));
        while (sqlite3_step(d) == SQLITE_ROW)
            json_array_append_new(deps, s_col_text(d, 0));
        sqlite3_reset(d);
    }
    json_object_set_new(t, "blocked_by", deps);
    return t;
}

static int s_task_get(conn_t *c, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = s_find_row(c, SQL_TASK_GET, id, "task", &st, e);
    if (r != 0)
        return r;
    *out = s_task_row(c, st);
    sqlite3_reset(st);
    return 0;
}

int store_task_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    return c ? s_task_get(c, id, out, e) : s_fail(c, e);
}

/* Checks every blocker of task `self` in project: it exists there and is not
 * the task itself. *all_done says whether they are all done. */
static int s_check_blockers(conn_t *c, const json_t *ids, const char *project,
                                   const char *self, bool *all_done, store_err_t *e)
{
    size_t i;
    json_t *v;
    *all_done = true;
    json_array_foreach(ids, i, v)
    {
        const char *bid = json_string_value(v);
        sqlite3_stmt *st = s_stmt(c, SQL_TASK_STATUS);
        if (!st)
            return s_fail(c, e);
        s_bind_text(st, 1, bid);
        int rc = sqlite3_step(st);
        bool ok = rc == SQLITE_ROW &&
                  strcmp((const char *)sqlite3_column_text(st, 1), project) == 0 &&
                  !(self && strcmp(bid, self) == 0);
        if (rc == SQLITE_ROW &&
            strcmp((const char *)sqlite3_column_text(st, 0), "done"))
            *all_done = false;
        sqlite3_reset(st);
        if (!ok) {
            e->code = "invalid_blocked_by";
            snprintf(e->msg, sizeof e->msg,
                     "blocked_by: %s is not another task of this project", bid);
            return VP_EINVALID;
        }
        if (self && s_step_id(c, SQL_DEP_REACHES, bid, self) == SQLITE_ROW) {
            e->code = "invalid_blocked_by";
            snprintf(e->msg, sizeof e->msg,
                     "blocked_by: %s already waits on this task (a cycle)", bid);
            return VP_EINVALID;
        }
    }
    return 0;
}

static bool s_insert_deps(conn_t *c, const char *id, const json_t *ids)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        sqlite3_stmt *st = s_stmt(c, SQL_DEP_INSERT);
        if (!st)
            return false;
        s_bind_text(st, 1, id);
        s_bind_text(st, 2, json_string_value(v));
        if (sqlite3_step(st) != SQLITE_DONE)
            return false;
    }
    return true;
}

/* Ends a write transaction that produced task id: commits and reads it back
 * (inside, so the answer is what was committed). */
static int s_finish_task(store_t *s, conn_t *c, const char *id, const char *what,
                                json_t **out, store_err_t *e)
{
    int r = s_task_get(c, id, out, e);
    if (r != 0) {
        s_rollback(c);
        return r;
    }
    char subject[64], type[64];
    snprintf(subject, sizeof subject, "vapora.tasks.%s", what);
    snprintf(type, sizeof type, "task.%s", what);
    if (!s_save_doc(c, *out) || !s_emit(s, c, subject, type, *out) || !s_commit(c)) {
        s_rollback(c);
        json_decref(*out);
        *out = NULL;
        return s_fail(c, e);
    }
    return 0;
}

static int s_task_create_impl(store_t *s, const char *project_id,
                                     const json_t *f, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c || !s_begin(c))
        return s_fail(c, e);
    bool done;
    json_t *blockers = json_object_get(f, "blocked_by");
    int r = s_project_get(c, project_id, NULL, e);
    if (r == 0 && blockers)
        r = s_check_blockers(c, blockers, project_id, NULL, &done, e);
    if (r != 0) {
        s_rollback(c);
        return r;
    }
    char id[37], ts[40];
    s_uuid(id);
    now_iso8601(ts, sizeof ts);
    sqlite3_stmt *st = s_stmt(c, SQL_TASK_INSERT);
    if (st) {
        json_t *eh = json_object_get(f, "estimated_hours");
        const char *desc = json_string_value(json_object_get(f, "description"));
        s_bind_text(st, 1, id);
        s_bind_text(st, 2, project_id);
        s_bind_text(st, 3, json_string_value(json_object_get(f, "title")));
        s_bind_text(st, 4, desc ? desc : "");
        s_bind_text(st, 5, json_string_value(json_object_get(f, "type")));
        s_bind_text(st, 6, json_string_value(json_object_get(f, "priority")));
        if (json_is_number(eh))
            sqlite3_bind_double(st, 7, json_number_value(eh));
        s_bind_text(st, 8, ts);
        s_bind_text(st, 9, ts);
    }
    if (!st || sqlite3_step(st) != SQLITE_DONE ||
        (blockers && !s_insert_deps(c, id, blockers))) {
        s_rollback(c);
        return s_fail(c, e);
    }
    return s_finish_task(s, c, id, "created", out, e);
}

int store_task_get_doc(store_t *s, const char *id, char **doc, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st;
    int r = s_find_row(c, SQL_TASK_DOC, id, "task", &st, e);
    if (r != 0)
        return r;
    const char *d = (const char *)sqlite3_column_text(st, 0);
    if (d) {
        *doc = xstrdup(d);
        return 0;
    }
    json_t *t = NULL; /* a row from before migration 3 */
    r = s_task_get(c, id, &t, e);
    if (r == 0)
        *doc = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    return r;
}

int store_task_page(store_t *s, const store_task_filter_t *f, int64_t after,
                           int limit, sbuf_t *items, int64_t *next, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_TASK_PAGE) : NULL;
    if (!st)
        return s_fail(c, e);
    sqlite3_bind_int64(st, 1, after);
    s_bind_text(st, 2, f->project_id);
    s_bind_text(st, 3, f->status);
    s_bind_text(st, 4, f->priority);
    s_bind_text(st, 5, f->assigned_role);
    sqlite3_bind_int(st, 6, limit + 1);
    int rc, n = 0;
    int64_t last = 0;
    *next = 0;
    sbuf_append(items, "[", 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *next = last;
            break;
        }
        if (n > 0)
            sbuf_append(items, ",", 1);
        const char *d = (const char *)sqlite3_column_text(st, 1);
        if (d) {
            sbuf_append(items, d, (size_t)sqlite3_column_bytes(st, 1));
        } else { /* a row from before migration 3 */
            json_t *t = NULL;
            char id[64];
            snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 2));
            if (s_task_get(c, id, &t, e) != 0) {
                sqlite3_reset(st);
                return VP_ESTORE;
            }
            char *txt = json_dumps(t, JSON_COMPACT);
            sbuf_puts(items, txt);
            free(txt);
            json_decref(t);
        }
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail(c, e);
    sbuf_append(items, "]", 1);
    return 0;
}

int store_project_board(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c)
        return s_fail(c, e);
    int r = s_project_get(c, id, NULL, e);
    if (r != 0)
        return r;
    sqlite3_stmt *st = s_stmt(c, SQL_TASK_BOARD);
    if (!st)
        return s_fail(c, e);
    json_t *cols[8];
    json_t *columns = json_array();
    for (unsigned i = 0; i < rules_nstatuses; i++) {
        cols[i] = json_array();
        json_array_append_new(columns, json_pack("{s:s,s:o}", "status",
                                                 rules_statuses[i], "tasks", cols[i]));
    }
    s_bind_text(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 6);
        for (unsigned i = 0; i < rules_nstatuses; i++)
            if (strcmp(status, rules_statuses[i]) == 0)
                json_array_append_new(cols[i], s_task_row(c, st));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(columns);
        return s_fail(c, e);
    }
    *out = json_pack("{s:s,s:o}", "project_id", id, "columns", columns);
    return 0;
}

/* The columns a PATCH may set, in the order of the UPDATE it builds. */
static const char *const s_task_fields[] = {
    "title",           "description",  "type",          "priority",
    "status",          "progress",     "assigned_role", "assigned_agent",
    "estimated_hours", "actual_hours", "result"};

static void s_bind_json(sqlite3_stmt *st, int i, const char *field, json_t *v)
{
    if (strcmp(field, "result") == 0) {
        if (json_is_null(v)) {
            sqlite3_bind_null(st, i);
        } else {
            char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            sqlite3_bind_text(st, i, txt, -1, free);
        }
    } else if (json_is_string(v)) {
        s_bind_text(st, i, json_string_value(v));
    } else if (json_is_integer(v)) {
        sqlite3_bind_int64(st, i, json_integer_value(v));
    } else if (json_is_real(v)) {
        sqlite3_bind_double(st, i, json_real_value(v));
    } else {
        sqlite3_bind_null(st, i);
    }
}

/* Runs UPDATE tasks SET <fields of patch>, version+1, updated_at. */
static bool s_apply_patch(conn_t *c, const char *id, const json_t *patch)
{
    sbuf_t sql = {0};
    sbuf_puts(&sql, "UPDATE tasks SET version=version+1, updated_at=?1");
    int n = 2;
    for (size_t i = 0; i < ARRAY_LEN(s_task_fields); i++)
        if (json_object_get(patch, s_task_fields[i]))
            sbuf_printf(&sql, ", %s=?%d", s_task_fields[i], n++);
    sbuf_printf(&sql, " WHERE id=?%d", n);
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL) == SQLITE_OK;
    sbuf_free(&sql);
    if (!ok)
        return false;
    char ts[40];
    now_iso8601(ts, sizeof ts);
    s_bind_text(st, 1, ts);
    n = 2;
    for (size_t i = 0; i < ARRAY_LEN(s_task_fields); i++) {
        json_t *v = json_object_get(patch, s_task_fields[i]);
        if (v)
            s_bind_json(st, n++, s_task_fields[i], v);
    }
    s_bind_text(st, n, id);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok;
}

/* Whether the patch changes anything but status (and blocked_by counts). */
static bool s_other_fields(const json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (strcmp(k, "status") != 0)
            return true;
    }
    return false;
}

/* The checks of an update, inside its transaction. */
static int s_check_update(conn_t *c, const json_t *cur, const json_t *patch,
                                 int64_t if_match, store_err_t *e)
{
    const char *id = json_string_value(json_object_get(cur, "id"));
    json_int_t version = json_integer_value(json_object_get(cur, "version"));
    if (if_match >= 0 && if_match != version) {
        e->code = "version_mismatch";
        snprintf(e->msg, sizeof e->msg, "the task is at version %lld, not %lld",
                 (long long)version, (long long)if_match);
        return VP_EPRECONDITION;
    }
    json_t *blockers = json_object_get(patch, "blocked_by");
    if (!blockers)
        blockers = json_object_get(cur, "blocked_by");
    bool done = true;
    int r = s_check_blockers(
        c, blockers, json_string_value(json_object_get(cur, "project_id")), id, &done,
        e);
    if (r != 0)
        return r;
    const char *code =
        rules_check_change(json_string_value(json_object_get(cur, "status")),
                           json_string_value(json_object_get(patch, "status")),
                           s_other_fields(patch), done, e->msg, sizeof e->msg);
    if (code) {
        e->code = code;
        return VP_ECONFLICT;
    }
    return 0;
}

/* Whether applying patch to the task cur changes anything. */
static bool s_patch_changes(const json_t *cur, const json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        json_t *old = json_object_get(cur, k);
        if (!old || !json_equal(old, v))
            return true;
    }
    return false;
}

static int s_task_update_impl(store_t *s, const char *id, const json_t *patch,
                                     int64_t if_match, json_t **out, store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c || !s_begin(c))
        return s_fail(c, e);
    json_t *cur = NULL;
    int r = s_task_get(c, id, &cur, e);
    if (r == 0)
        r = s_check_update(c, cur, patch, if_match, e);
    if (r == 0 && !s_patch_changes(cur, patch)) {
        /* Nothing changes: no new version, no event. */
        s_rollback(c);
        *out = cur;
        return 0;
    }
    json_decref(cur);
    if (r != 0) {
        s_rollback(c);
        return r;
    }
    json_t *blockers = json_object_get(patch, "blocked_by");
    if (!s_apply_patch(c, id, patch) ||
        (blockers && (s_step_id(c, SQL_DEPS_DELETE, id, NULL) != SQLITE_DONE ||
                      !s_insert_deps(c, id, blockers)))) {
        s_rollback(c);
        return s_fail(c, e);
    }
    if (json_object_get(patch, "assigned_role")) {
        /* An assignment is an update, and an event of its own. */
        json_t *t = NULL;
        if (s_task_get(c, id, &t, e) != 0 ||
            !s_emit(s, c, "vapora.tasks.assigned", "task.assigned", t)) {
            json_decref(t);
            s_rollback(c);
            return s_fail(c, e);
        }
        json_decref(t);
    }
    return s_finish_task(s, c, id, "updated", out, e);
}

/* The tasks whose blocked_by lost a deleted task changed: a new version,
 * their stored document and a task.updated event each. */
static bool s_touch_dependents(store_t *s, conn_t *c, const json_t *ids, store_err_t *e)
{
    size_t i;
    json_t *d;
    json_array_foreach(ids, i, d)
    {
        char ts[40];
        json_t *dt = NULL;
        now_iso8601(ts, sizeof ts);
        sqlite3_stmt *u = s_stmt(c, SQL_TASK_TOUCH);
        if (u) {
            s_bind_text(u, 1, ts);
            s_bind_text(u, 2, json_string_value(d));
        }
        bool ok = u && sqlite3_step(u) == SQLITE_DONE &&
                  s_task_get(c, json_string_value(d), &dt, e) == 0 &&
                  s_save_doc(c, dt) &&
                  s_emit(s, c, "vapora.tasks.updated", "task.updated", dt);
        json_decref(dt);
        if (!ok)
            return false;
    }
    return true;
}

/* The first column of every row sql gives for id (bound to ?1), as strings. */
static json_t *s_ids(conn_t *c, const char *sql, const char *id)
{
    json_t *out = json_array();
    sqlite3_stmt *st = s_stmt(c, sql);
    if (!st) {
        json_decref(out);
        return NULL;
    }
    s_bind_text(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(out, s_col_text(st, 0));
    sqlite3_reset(st);
    return out;
}

static int s_task_delete_impl(store_t *s, const char *id, store_err_t *e)
{
    conn_t *c = s_conn(s);
    if (!c || !s_begin(c))
        return s_fail(c, e);
    json_t *t = NULL;
    int r = s_task_get(c, id, &t, e);
    if (r != 0) {
        s_rollback(c);
        return r;
    }
    /* The tasks it blocked change too: their blocked_by loses it. */
    json_t *deps = json_array();
    sqlite3_stmt *st = s_stmt(c, SQL_DEPENDENTS);
    if (st) {
        s_bind_text(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(deps, s_col_text(st, 0));
        sqlite3_reset(st);
    }
    bool ok = st && s_step_id(c, SQL_DEPS_DELETE_ALL, id, NULL) == SQLITE_DONE &&
              s_step_id(c, SQL_TASK_DELETE, id, NULL) == SQLITE_DONE &&
              s_emit(s, c, "vapora.tasks.deleted", "task.deleted", t);
    ok = ok && s_touch_dependents(s, c, deps, e);
    json_decref(deps);
    ok = ok && s_commit(c);
    json_decref(t);
    if (!ok) {
        s_rollback(c);
        return s_fail(c, e);
    }
    return 0;
}

/* ---- the outbox, for the events publisher ---- */

static const char *const SQL_OUTBOX_FETCH =
    "SELECT seq,subject,payload FROM outbox ORDER BY seq LIMIT ?";
static const char *const SQL_OUTBOX_DELETE = "DELETE FROM outbox WHERE seq<=?";
static const char *const SQL_OUTBOX_SIZE =
    "SELECT COALESCE(MAX(seq)-MIN(seq)+1,0) FROM outbox";

void store_set_commit_hook(store_t *s, void (*fn)(void *ud), void *ud)
{
    s->on_commit = fn;
    s->on_commit_ud = ud;
}

void store_set_outbox_max(store_t *s, long max)
{
    s->outbox_max = max;
}

long store_outbox_backlog(store_t *s)
{
    return atomic_load(&s->backlog);
}

unsigned long store_outbox_dropped(store_t *s)
{
    return atomic_load(&s->dropped);
}

int store_outbox_refresh(store_t *s, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_OUTBOX_SIZE) : NULL;
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return s_fail(c, e);
    atomic_store(&s->backlog, (long)sqlite3_column_int64(st, 0));
    return 0;
}

int store_outbox_fetch(store_t *s, int limit, store_event_t **evs, size_t *n,
                              store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_OUTBOX_FETCH) : NULL;
    if (!st)
        return s_fail(c, e);
    sqlite3_bind_int(st, 1, limit);
    *evs = xcalloc((size_t)limit, sizeof **evs);
    *n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_event_t *ev = &(*evs)[(*n)++];
        ev->seq = sqlite3_column_int64(st, 0);
        ev->subject = xstrdup((const char *)sqlite3_column_text(st, 1));
        ev->payload = xstrdup((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        store_outbox_free(*evs, *n);
        *evs = NULL;
        *n = 0;
        return s_fail(c, e);
    }
    return 0;
}

int store_outbox_delete_upto(store_t *s, int64_t seq, store_err_t *e)
{
    conn_t *c = s_conn(s);
    sqlite3_stmt *st = c ? s_stmt(c, SQL_OUTBOX_DELETE) : NULL;
    if (!st)
        return s_fail(c, e);
    sqlite3_bind_int64(st, 1, seq);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : s_fail(c, e);
}

void store_outbox_free(store_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(evs[i].subject);
        free(evs[i].payload);
    }
    free(evs);
}

void store_end(store_t *s)
{
    conn_t *c = pthread_getspecific(s->key);
    for (unsigned i = 0; c && i < c->ncache; i++)
        sqlite3_reset(c->cache[i].st);
    if (c && c->locked) { /* a path that began a write and never ended it */
        log_error("store: a write transaction was left open; rolled back");
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        s_unlock(c);
    }
}

/* ---- group commit ----
 *
 * A write queues its operation; the first writer to find no batch running
 * takes up to STORE_BATCH queued operations and runs them in one BEGIN
 * IMMEDIATE transaction, each in its own savepoint (an operation that fails
 * rolls back alone), commits once, and wakes the others. Concurrent
 * requests thus share one commit and one hold of the database's write lock
 * instead of queueing for it one by one. No network I/O happens inside. */

#define STORE_BATCH 64

typedef struct wop {
    int (*run)(struct wop *w, store_t *s);
    const char *a, *b;
    const json_t *j;
    bool flag;
    int64_t num;
    json_t **out;
    store_err_t *e;
    int rc;
    bool done;
    struct wop *next;
} wop_t;

static void s_run_batch(store_t *s, wop_t *batch)
{
    conn_t *c = s_conn(s);
    if (c)
        s_lock(c);
    bool ok = c && s_exec(c, "BEGIN IMMEDIATE");
    t_batched = true;
    for (wop_t *w = batch; w; w = w->next)
        w->rc = ok ? w->run(w, s) : s_fail(c, w->e);
    t_batched = false;
    if (!ok) {
        if (c)
            s_unlock(c);
        return;
    }
    long queued = atomic_load(&s->backlog);
    bool committed = s_exec(c, "COMMIT");
    if (!committed)
        s_exec(c, "ROLLBACK");
    s_unlock(c);
    if (committed) {
        s_bump(c);
        if (s->on_commit && queued > 0)
            s->on_commit(s->on_commit_ud);
        return;
    }
    for (wop_t *w = batch; w; w = w->next) {
        if (w->rc == 0) {
            if (w->out) {
                json_decref(*w->out);
                *w->out = NULL;
            }
            w->rc = s_fail(c, w->e);
        }
    }
}

static int s_write(store_t *s, wop_t *w)
{
    pthread_mutex_lock(&s->wmu);
    w->next = NULL;
    if (s->wq_tail)
        s->wq_tail->next = w;
    else
        s->wq_head = w;
    s->wq_tail = w;
    while (!w->done) {
        if (s->combining) {
            pthread_cond_wait(&s->wcv, &s->wmu);
            continue;
        }
        s->combining = true;
        wop_t *batch = s->wq_head, *last = batch;
        for (int n = 1; n < STORE_BATCH && last->next; n++)
            last = last->next;
        s->wq_head = last->next;
        if (!s->wq_head)
            s->wq_tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->wmu);
        s_run_batch(s, batch);
        pthread_mutex_lock(&s->wmu);
        for (wop_t *x = batch, *n; x; x = n) {
            n = x->next;
            x->done = true;
        }
        s->combining = false;
        pthread_cond_broadcast(&s->wcv);
    }
    pthread_mutex_unlock(&s->wmu);
    return w->rc;
}

static int s_op_project_create(wop_t *w, store_t *s)
{
    return s_project_create_impl(s, w->a, w->b, w->out, w->e);
}

int store_project_create(store_t *s, const char *name, const char *desc,
                                json_t **out, store_err_t *e)
{
    wop_t w = {.run = s_op_project_create, .a = name, .b = desc, .out = out, .e = e};
    return s_write(s, &w);
}

static int s_op_project_update(wop_t *w, store_t *s)
{
    return s_project_update_impl(s, w->a, w->j, w->out, w->e);
}

int store_project_update(store_t *s, const char *id, const json_t *patch,
                                json_t **out, store_err_t *e)
{
    wop_t w = {.run = s_op_project_update, .a = id, .j = patch, .out = out, .e = e};
    return s_write(s, &w);
}

static int s_op_project_delete(wop_t *w, store_t *s)
{
    return s_project_delete_impl(s, w->a, w->flag, w->e);
}

int store_project_delete(store_t *s, const char *id, bool cascade,
                                store_err_t *e)
{
    wop_t w = {.run = s_op_project_delete, .a = id, .flag = cascade, .e = e};
    return s_write(s, &w);
}

static int s_op_task_create(wop_t *w, store_t *s)
{
    return s_task_create_impl(s, w->a, w->j, w->out, w->e);
}

int store_task_create(store_t *s, const char *project_id, const json_t *fields,
                             json_t **out, store_err_t *e)
{
    wop_t w = {
        .run = s_op_task_create, .a = project_id, .j = fields, .out = out, .e = e};
    return s_write(s, &w);
}

static int s_op_task_update(wop_t *w, store_t *s)
{
    return s_task_update_impl(s, w->a, w->j, w->num, w->out, w->e);
}

int store_task_update(store_t *s, const char *id, const json_t *patch,
                             int64_t if_match, json_t **out, store_err_t *e)
{
    wop_t w = {.run = s_op_task_update,
               .a = id,
               .j = patch,
               .num = if_match,
               .out = out,
               .e = e};
    return s_write(s, &w);
}

static int s_op_task_delete(wop_t *w, store_t *s)
{
    return s_task_delete_impl(s, w->a, w->e);
}

int store_task_delete(store_t *s, const char *id, store_err_t *e)
{
    wop_t w = {.run = s_op_task_delete, .a = id, .e = e};
    return s_write(s, &w);
}
