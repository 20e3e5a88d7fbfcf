/* test_sqldb.c - unit tests for common/sqldb.c: a file opened for sharing
 * between workers is in WAL mode, synced as asked, with its schema, and a
 * file that cannot be opened is named in the error. */
#include "sqldb.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir_test.h"

static void s_setup(void)
{
    tmpdir_make("vapora-sqldb", "t.db");
}

static void s_teardown(void)
{
    tmpdir_remove();
}

TestSuite(sqldb, .init = s_setup, .fini = s_teardown);

/* The integer a PRAGMA answers on db. */
static long s_pragma(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

Test(sqldb, synchronous_is_what_the_caller_asked)
{
    char err[256] = "";
    sqlite3 *db = sqldb_open(s_path, "CREATE TABLE t (x INTEGER);", SQLDB_SYNC_FULL,
                             err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(s_pragma(db, "PRAGMA synchronous"), 2, "FULL");
    cr_assert_eq(s_pragma(db, "PRAGMA temp_store"), 2, "MEMORY");
    cr_assert_eq(sqldb_exec(db, "INSERT INTO t VALUES (1)", err, sizeof err), 0, "%s",
                 err);
    sqlite3_close(db);

    db = sqldb_open(s_path, "CREATE TABLE IF NOT EXISTS t (x INTEGER);",
                    SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(s_pragma(db, "PRAGMA synchronous"), 1, "NORMAL");
    cr_assert_eq(s_pragma(db, "SELECT count(*) FROM t"), 1);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    cr_assert_str_eq(sqldb_sync_words[SQLDB_SYNC_NORMAL], "normal");
    cr_assert_str_eq(sqldb_sync_words[SQLDB_SYNC_FULL], "full");
    cr_assert_null(sqldb_sync_words[2]);
}

Test(sqldb, a_file_it_cannot_open_is_named)
{
    char err[256] = "", path[160];
    snprintf(path, sizeof path, "%s/missing-dir/t.db", s_dir);
    cr_assert_null(sqldb_open(path, NULL, SQLDB_SYNC_NORMAL, err, sizeof err));
    cr_assert(strstr(err, path), "%s", err);

    cr_assert_null(
        sqldb_open(s_path, "NOT SQL AT ALL", SQLDB_SYNC_NORMAL, err, sizeof err));
    cr_assert(strstr(err, s_path) && strstr(err, "syntax error"), "%s", err);
}
