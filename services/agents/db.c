/* db.c - see db.h. */
#define _GNU_SOURCE
#include "db.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "now.h"
#include "sqldb.h"
#include "vp_error.h"

static const char *const s_schema =
    "CREATE TABLE IF NOT EXISTS runs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " task_id TEXT NOT NULL, project_id TEXT NOT NULL, task_version INTEGER NOT NULL,"
    " agent TEXT NOT NULL, role TEXT NOT NULL, task_type TEXT NOT NULL,"
    " state TEXT NOT NULL, attempts INTEGER NOT NULL, model TEXT NOT NULL,"
    " provider TEXT NOT NULL, outcome TEXT NOT NULL, error TEXT, content TEXT,"
    " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL, latency_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS runs_task ON runs(task_id, seq);"
    "CREATE INDEX IF NOT EXISTS runs_agent ON runs(agent, seq);"
    "CREATE INDEX IF NOT EXISTS runs_state ON runs(state, seq);"
    "CREATE TABLE IF NOT EXISTS executions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,"
    " agent TEXT NOT NULL, task_type TEXT NOT NULL, success INTEGER NOT NULL,"
    " latency_ms INTEGER NOT NULL, cost_usd REAL NOT NULL, at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS streaks ("
    " agent TEXT NOT NULL, task_id TEXT NOT NULL, failures INTEGER NOT NULL,"
    " PRIMARY KEY (agent, task_id));";

#define RUN_COLS                                                                       \
    "seq, id, task_id, project_id, task_version, agent, role, task_type, state, "      \
    "attempts, model, provider, outcome, error, content, input_tokens, "              \
    "output_tokens, cost_usd, latency_ms, created_ms, started_ms, finished_ms"

enum {
    Q_RUN_INSERT,
    Q_RUN_SAVE,
    Q_RUN_GET,
    Q_RUN_REVIEW,
    Q_EXEC_INSERT,
    Q_STREAK_RESET,
    Q_STREAK_BUMP,
    Q_EXEC_SINCE,
    Q_STREAKS,
    Q_CANCEL,
    Q_REQUEUE,
    Q_UNQUEUE,
    Q_SUPERSEDE,
    Q_NEWER,
    Q_OUTCOME,
    Q_COUNT
};

static const char *const s_sql[Q_COUNT] = {
    [Q_RUN_INSERT] = "INSERT OR IGNORE INTO runs (id, task_id, project_id, task_version,"
                     " agent, role, task_type, state, attempts, model, provider, outcome,"
                     " error, content, input_tokens, output_tokens, cost_usd, latency_ms,"
                     " created_ms, started_ms, finished_ms) VALUES (?1, ?2, ?3, ?4, ?5,"
                     " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
                     " ?20, ?21)",
    [Q_RUN_SAVE] = "UPDATE runs SET task_id = ?2, project_id = ?3, task_version = ?4,"
                   " agent = ?5, role = ?6, task_type = ?7, state = ?8, attempts = ?9,"
                   " model = ?10, provider = ?11, outcome = ?12, error = ?13, content = ?14,"
                   " input_tokens = ?15, output_tokens = ?16, cost_usd = ?17,"
                   " latency_ms = ?18, created_ms = ?19, started_ms = ?20,"
                   " finished_ms = ?21 WHERE id = ?1"
                   /* a cancel (the API, a newer assignment) is not undone
                    * by the run's own saves on its way to seeing it */
                   " AND NOT (state = 'canceled' AND ?8 IN ('queued', 'running'))",
    [Q_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
    [Q_RUN_REVIEW] = "SELECT " RUN_COLS " FROM runs WHERE task_id = ?1 AND state ="
                     " 'succeeded' AND outcome = '' ORDER BY seq DESC LIMIT 1",
    [Q_EXEC_INSERT] = "INSERT OR IGNORE INTO executions (run_id, agent, task_type, success,"
                      " latency_ms, cost_usd, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_STREAK_RESET] = "DELETE FROM streaks WHERE agent = ?1 AND task_id = ?2",
    [Q_STREAK_BUMP] = "INSERT INTO streaks (agent, task_id, failures) VALUES (?1, ?2, 1)"
                      " ON CONFLICT (agent, task_id) DO UPDATE SET failures = failures + 1",
    [Q_EXEC_SINCE] = "SELECT seq, run_id, agent, task_type, success, latency_ms, cost_usd,"
                     " at FROM executions WHERE seq > ?1 ORDER BY seq",
    [Q_STREAKS] = "SELECT agent, failures FROM streaks WHERE task_id = ?1",
    [Q_CANCEL] = "UPDATE runs SET state = 'canceled', error = ?2, finished_ms = ?3"
                 " WHERE id = ?1 AND state IN ('queued', 'running')",
    [Q_REQUEUE] = "UPDATE runs SET state = 'queued', error = NULL, finished_ms = 0"
                  " WHERE id = ?1 AND state IN ('failed', 'dead') AND NOT EXISTS"
                  " (SELECT 1 FROM runs AS n WHERE n.task_id = runs.task_id"
                  " AND n.task_version > runs.task_version)",
    [Q_SUPERSEDE] = "UPDATE runs SET state = 'canceled', error = ?3, finished_ms = ?4"
                    " WHERE task_id = ?1 AND task_version < ?2"
                    " AND state IN ('queued', 'running')",
    [Q_NEWER] = "SELECT 1 FROM runs WHERE task_id = ?1 AND task_version > ?2 LIMIT 1",
    [Q_UNQUEUE] = "UPDATE runs SET state = ?2, error = ?3, finished_ms = ?4"
                  " WHERE id = ?1 AND state = 'queued'",
    [Q_OUTCOME] = "UPDATE runs SET outcome = ?2 WHERE id = ?1 AND state = 'succeeded'"
                  " AND outcome = ''",
};

/* While the database keeps failing (a full disk fails every write, and
 * the writes are tried again each second), one line per this many s. */
#define ADB_WARN_EVERY_S 10

struct adb {
    pthread_mutex_t mu;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    time_t warned_at; /* under mu: the last error logged */
    unsigned unwarned; /* errors since, not logged */
};

/* Logs why a write failed, at most once per ADB_WARN_EVERY_S; under mu. */
static void s_warn(adb_t *db, const char *what)
{
    time_t now = time(NULL);
    if (db->warned_at && now - db->warned_at < ADB_WARN_EVERY_S) {
        db->unwarned++;
        return;
    }
    if (db->unwarned)
        log_warn("agents db: %s: %s (and %u more errors in %lld s)", what,
                 sqlite3_errmsg(db->db), db->unwarned, (long long)(now - db->warned_at));
    else
        log_warn("agents db: %s: %s", what, sqlite3_errmsg(db->db));
    db->warned_at = now;
    db->unwarned = 0;
}

static int s_rc(adb_t *db, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    s_warn(db, what);
    bool full = (rc & 0xff) == SQLITE_FULL || sqlite3_system_errno(db->db) == ENOSPC;
    return full ? VP_EFULL : VP_ESTORE;
}

adb_t *adb_open(const char *path, sqldb_sync_t sync, char *err, size_t errlen)
{
    adb_t *db = xcalloc(1, sizeof *db);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE); /* adb_batch's calls nest */
    pthread_mutex_init(&db->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    db->db = sqldb_open(path, s_schema, sync, err, errlen);
    for (int i = 0; db->db && i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(db->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->q[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: preparing a statement: %s", path,
                     sqlite3_errmsg(db->db));
            adb_destroy(&db);
            return NULL;
        }
    }
    if (!db->db)
        adb_destroy(&db);
    return db;
}

void adb_destroy(adb_t **dbp)
{
    adb_t *db = dbp ? *dbp : NULL;
    if (!db)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(db->q[i]);
    sqlite3_close(db->db);
    pthread_mutex_destroy(&db->mu);
    free(db);
    *dbp = NULL;
}

void run_row_clear(run_row_t *r)
{
    free(r->error);
    free(r->content);
    r->error = r->content = NULL;
}

void run_row_copy(run_row_t *dst, const run_row_t *src)
{
    *dst = *src;
    dst->error = src->error ? xstrdup(src->error) : NULL;
    dst->content = src->content ? xstrdup(src->content) : NULL;
}

bool run_state_final(const char *s)
{
    return strcmp(s, RUN_SUCCEEDED) == 0 || strcmp(s, RUN_FAILED) == 0 ||
           strcmp(s, RUN_CANCELED) == 0 || strcmp(s, RUN_DEAD) == 0;
}

static sqlite3_stmt *s_q(adb_t *db, int i)
{
    sqlite3_reset(db->q[i]);
    sqlite3_clear_bindings(db->q[i]);
    return db->q[i];
}

static void s_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Binds ?1..?21 in the column order of Q_RUN_INSERT / Q_RUN_SAVE. */
static void s_bind_run(sqlite3_stmt *st, const run_row_t *r)
{
    const char *texts[] = {r->id,    r->task_id, r->project_id};
    for (int i = 0; i < 3; i++)
        s_text(st, i + 1, texts[i]);
    sqlite3_bind_int64(st, 4, r->task_version);
    const char *more[] = {r->agent, r->role, r->task_type, r->state};
    for (int i = 0; i < 4; i++)
        s_text(st, i + 5, more[i]);
    sqlite3_bind_int(st, 9, r->attempts);
    s_text(st, 10, r->model);
    s_text(st, 11, r->provider);
    s_text(st, 12, r->outcome);
    s_text(st, 13, r->error);
    s_text(st, 14, r->content);
    sqlite3_bind_int64(st, 15, r->input_tokens);
    sqlite3_bind_int64(st, 16, r->output_tokens);
    sqlite3_bind_double(st, 17, r->cost_usd);
    sqlite3_bind_int64(st, 18, r->latency_ms);
    sqlite3_bind_int64(st, 19, r->created_ms);
    sqlite3_bind_int64(st, 20, r->started_ms);
    sqlite3_bind_int64(st, 21, r->finished_ms);
}

static void s_col(sqlite3_stmt *st, int i, char *dst, size_t len)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    snprintf(dst, len, "%s", v ? (const char *)v : "");
}

static char *s_col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    return v ? xstrdup((const char *)v) : NULL;
}

/* Reads a row of RUN_COLS. */
static void s_read_run(sqlite3_stmt *st, run_row_t *r)
{
    r->seq = sqlite3_column_int64(st, 0);
    s_col(st, 1, r->id, sizeof r->id);
    s_col(st, 2, r->task_id, sizeof r->task_id);
    s_col(st, 3, r->project_id, sizeof r->project_id);
    r->task_version = sqlite3_column_int64(st, 4);
    s_col(st, 5, r->agent, sizeof r->agent);
    s_col(st, 6, r->role, sizeof r->role);
    s_col(st, 7, r->task_type, sizeof r->task_type);
    s_col(st, 8, r->state, sizeof r->state);
    r->attempts = sqlite3_column_int(st, 9);
    s_col(st, 10, r->model, sizeof r->model);
    s_col(st, 11, r->provider, sizeof r->provider);
    s_col(st, 12, r->outcome, sizeof r->outcome);
    r->error = s_col_dup(st, 13);
    r->content = s_col_dup(st, 14);
    r->input_tokens = sqlite3_column_int64(st, 15);
    r->output_tokens = sqlite3_column_int64(st, 16);
    r->cost_usd = sqlite3_column_double(st, 17);
    r->latency_ms = sqlite3_column_int64(st, 18);
    r->created_ms = sqlite3_column_int64(st, 19);
    r->started_ms = sqlite3_column_int64(st, 20);
    r->finished_ms = sqlite3_column_int64(st, 21);
}

/* Runs a one-row SELECT of RUN_COLS bound by text a (and b). */
static int s_get_one(adb_t *db, int q, const char *a, run_row_t *r)
{
    sqlite3_stmt *st = s_q(db, q);
    s_text(st, 1, a);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        run_row_clear(r);
        s_read_run(st, r);
    }
    /* A statement left mid-way keeps its read transaction open, and the
     * next write of this connection then fails at once (SQLITE_BUSY
     * against another process's commit): every read ends here. */
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? VP_ENOTFOUND : s_rc(db, rc, "reading a run");
}

int adb_run_admit(adb_t *db, run_row_t *r, bool *created)
{
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, Q_RUN_INSERT);
    s_bind_run(st, r);
    int rc = s_rc(db, sqlite3_step(st), "admitting a run");
    *created = rc == 0 && sqlite3_changes(db->db) == 1;
    if (rc == 0)
        rc = s_get_one(db, Q_RUN_GET, r->id, r);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int adb_run_save(adb_t *db, const run_row_t *r)
{
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, Q_RUN_SAVE);
    s_bind_run(st, r);
    int rc = s_rc(db, sqlite3_step(st), "saving a run");
    if (rc == 0 && sqlite3_changes(db->db) == 0)
        rc = VP_ENOTFOUND;
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int adb_run_get(adb_t *db, const char *id, run_row_t *r)
{
    pthread_mutex_lock(&db->mu);
    int rc = s_get_one(db, Q_RUN_GET, id, r);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int adb_run_awaiting_review(adb_t *db, const char *task_id, run_row_t *r)
{
    pthread_mutex_lock(&db->mu);
    int rc = s_get_one(db, Q_RUN_REVIEW, task_id, r);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* The page query: built per call (filters vary), prepared and freed. */
static sqlite3_stmt *s_page_stmt(adb_t *db, const run_filter_t *f)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT " RUN_COLS " FROM runs WHERE seq > ?1%s%s%s ORDER BY seq LIMIT ?5",
             f->task_id ? " AND task_id = ?2" : "", f->agent ? " AND agent = ?3" : "",
             f->state ? " AND state = ?4" : "");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, f->after);
    s_text(st, 2, f->task_id);
    s_text(st, 3, f->agent);
    s_text(st, 4, f->state);
    sqlite3_bind_int(st, 5, f->limit + 1);
    return st;
}

int adb_run_page(adb_t *db, const run_filter_t *f, run_row_t *rows, size_t *n, bool *more)
{
    *n = 0;
    *more = false;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_page_stmt(db, f);
    int rc = st ? SQLITE_ROW : SQLITE_ERROR;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == (size_t)f->limit) {
            *more = true;
            break;
        }
        memset(&rows[*n], 0, sizeof rows[*n]);
        s_read_run(st, &rows[(*n)++]);
    }
    rc = s_rc(db, rc, "listing runs");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int s_step_pair(adb_t *db, int q, const char *a, const char *b)
{
    sqlite3_stmt *st = s_q(db, q);
    s_text(st, 1, a);
    s_text(st, 2, b);
    return s_rc(db, sqlite3_step(st), "writing a streak");
}

static int s_exec_insert(adb_t *db, const exec_row_t *e, bool *added)
{
    sqlite3_stmt *st = s_q(db, Q_EXEC_INSERT);
    s_text(st, 1, e->run_id);
    s_text(st, 2, e->agent);
    s_text(st, 3, e->task_type);
    sqlite3_bind_int(st, 4, e->success);
    sqlite3_bind_int64(st, 5, e->latency_ms);
    sqlite3_bind_double(st, 6, e->cost_usd);
    sqlite3_bind_int64(st, 7, e->at);
    int rc = s_rc(db, sqlite3_step(st), "recording an execution");
    *added = rc == 0 && sqlite3_changes(db->db) == 1;
    return rc;
}

int adb_exec_add(adb_t *db, const exec_row_t *e, const char *task_id, bool *added)
{
    pthread_mutex_lock(&db->mu);
    /* Inside a batch's transaction, a savepoint keeps the pair whole. */
    bool nested = !sqlite3_get_autocommit(db->db);
    const char *begin = nested ? "SAVEPOINT exec_add" : "BEGIN IMMEDIATE";
    int rc = s_rc(db, sqlite3_exec(db->db, begin, NULL, NULL, NULL), "begin");
    *added = false;
    if (rc == 0)
        rc = s_exec_insert(db, e, added);
    if (rc == 0 && *added)
        rc = s_step_pair(db, e->success ? Q_STREAK_RESET : Q_STREAK_BUMP, e->agent, task_id);
    const char *end = rc == 0 ? (nested ? "RELEASE exec_add" : "COMMIT")
                              : (nested ? "ROLLBACK TO exec_add; RELEASE exec_add" : "ROLLBACK");
    sqlite3_exec(db->db, end, NULL, NULL, NULL);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

void adb_batch(adb_t *db, void (*fn)(adb_t *db, void *ud), void *ud)
{
    pthread_mutex_lock(&db->mu);
    bool began = sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    if (began) {
        fn(db, ud);
        /* An error that rolled the transaction back left nothing to commit. */
        bool whole = !sqlite3_get_autocommit(db->db);
        if (whole && sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
            pthread_mutex_unlock(&db->mu);
            return;
        }
        s_warn(db, "a batch of writes failed; writing them one by one");
        if (!sqlite3_get_autocommit(db->db))
            sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    }
    fn(db, ud); /* each write commits on its own, as outside a batch */
    pthread_mutex_unlock(&db->mu);
}

int adb_exec_since(adb_t *db, int64_t after, void (*fn)(const exec_row_t *e, void *ud),
                   void *ud, int64_t *last)
{
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, Q_EXEC_SINCE);
    sqlite3_bind_int64(st, 1, after);
    *last = after;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        exec_row_t e = {.seq = sqlite3_column_int64(st, 0),
                        .success = sqlite3_column_int(st, 4) != 0,
                        .latency_ms = sqlite3_column_int64(st, 5),
                        .cost_usd = sqlite3_column_double(st, 6),
                        .at = sqlite3_column_int64(st, 7)};
        s_col(st, 1, e.run_id, sizeof e.run_id);
        s_col(st, 2, e.agent, sizeof e.agent);
        s_col(st, 3, e.task_type, sizeof e.task_type);
        fn(&e, ud);
        *last = e.seq;
    }
    sqlite3_reset(st);
    rc = s_rc(db, rc, "reading executions");
    pthread_mutex_unlock(&db->mu);
    return rc;
}


/* Runs an UPDATE bound by (a, b, c_ms) and says whether it changed a row. */
static int s_update(adb_t *db, int q, const char *a, const char *b, int64_t c_ms,
                    bool *changed)
{
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, q);
    s_text(st, 1, a);
    if (b)
        s_text(st, 2, b);
    if (c_ms)
        sqlite3_bind_int64(st, 3, c_ms);
    int rc = s_rc(db, sqlite3_step(st), "updating a run");
    *changed = rc == 0 && sqlite3_changes(db->db) > 0;
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int adb_run_cancel(adb_t *db, const char *id, const char *reason, bool *changed)
{
    return s_update(db, Q_CANCEL, id, reason, now_wall_ms(), changed);
}

int adb_run_requeue(adb_t *db, const char *id, bool *changed)
{
    return s_update(db, Q_REQUEUE, id, NULL, 0, changed);
}

int adb_runs_supersede(adb_t *db, const run_row_t *r, int *n, bool *newer)
{
    int64_t at = now_wall_ms();
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, Q_SUPERSEDE);
    s_text(st, 1, r->task_id);
    sqlite3_bind_int64(st, 2, r->task_version);
    s_text(st, 3, RUN_SUPERSEDED);
    sqlite3_bind_int64(st, 4, at);
    int rc = s_rc(db, sqlite3_step(st), "superseding runs");
    *n = rc == 0 ? sqlite3_changes(db->db) : 0;
    if (rc == 0) {
        st = s_q(db, Q_NEWER);
        s_text(st, 1, r->task_id);
        sqlite3_bind_int64(st, 2, r->task_version);
        int s = sqlite3_step(st);
        *newer = s == SQLITE_ROW;
        rc = s_rc(db, s, "reading newer runs");
        sqlite3_reset(st); /* no read left open */
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int adb_run_unqueue(adb_t *db, const run_row_t *was)
{
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, Q_UNQUEUE);
    s_text(st, 1, was->id);
    s_text(st, 2, was->state);
    s_text(st, 3, was->error);
    sqlite3_bind_int64(st, 4, was->finished_ms);
    int rc = s_rc(db, sqlite3_step(st), "putting a run back");
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int adb_run_set_outcome(adb_t *db, const char *id, const char *outcome, bool *changed)
{
    return s_update(db, Q_OUTCOME, id, outcome, 0, changed);
}

int adb_streaks(adb_t *db, const char *task_id,
                void (*fn)(const char *agent, long failures, void *ud), void *ud)
{
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st = s_q(db, Q_STREAKS);
    s_text(st, 1, task_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn((const char *)sqlite3_column_text(st, 0), (long)sqlite3_column_int64(st, 1), ud);
    sqlite3_reset(st);
    rc = s_rc(db, rc, "reading streaks");
    pthread_mutex_unlock(&db->mu);
    return rc;
}
