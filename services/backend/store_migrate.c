/* store_migrate.c - the database schema, one numbered migration per entry,
 * applied at start-up in one transaction. Never edit a shipped migration:
 * add one. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "log.h"
#include "now.h"
#include "store_internal.h"

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
    /* 4: the store's own small facts (the write probe of store.c). */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    /* 5: tokens carry their user's token_version (claim "ver"); a deleted
     * user, or a role or password change (which bumps it), ends them. */
    "ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;",
};

/* The highest migration applied (0 for a new database). */
static int s_schema_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version),0) FROM schema_migrations", -1,
                       &st, NULL);
    int have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return have;
}

/* Applies migration v and records it; rolls back and says why on failure. */
static int s_apply(sqlite3 *db, int v, char *err, size_t errlen)
{
    char ts[40];
    now_iso8601(ts, sizeof ts);
    char *ins = xasprintf("INSERT INTO schema_migrations VALUES(%d,'%s')", v, ts);
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
    return 0;
}

int store__migrate(sqlite3 *db, char *err, size_t errlen)
{
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations("
                     "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    int have = s_schema_version(db);
    int want = (int)ARRAY_LEN(s_migrations);
    for (int v = have + 1; v <= want; v++)
        if (s_apply(db, v, err, errlen) < 0)
            return -EIO;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (have > want) {
        snprintf(err, errlen, "the database is at schema %d, newer than this build (%d)",
                 have, want);
        return -EIO;
    }
    return 0;
fail:
    snprintf(err, errlen, "migrations: %s", sqlite3_errmsg(db));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -EIO;
}
