/* test_sqlwal.c - unit tests for common/sqlwal.c: a commit's WAL frames in
 * few writes, visible to other connections at once, recovered after a crash,
 * and a write that fails failing its commit. */
#include "sqlwal.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_dir[] = "/tmp/vapora-sqlwal-XXXXXX";
static char s_path[96];

static void s_setup(void)
{
    strcpy(s_dir, "/tmp/vapora-sqlwal-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/t.db", s_dir);
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

/* A connection on vfs (NULL: SQLite's default) in WAL mode, NORMAL sync,
 * no automatic checkpoints (the WAL keeps every frame), table t; NULL on a
 * failure. No assertion here: forked children use it too. */
static sqlite3 *s_try_open(const char *vfs)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          " PRAGMA wal_autocheckpoint=0;"
                          " CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static sqlite3 *s_open(const char *vfs)
{
    sqlite3 *db = s_try_open(vfs);
    cr_assert_not_null(db, "cannot open %s", s_path);
    return db;
}

/* The rows in t, or -1 on an error. */
static long s_count(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* One transaction of rows rows of 500 bytes; SQLite's result code. */
static int s_commit_rows(sqlite3 *db, int rows)
{
    char sql[128];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<%d)"
             " INSERT INTO t(v) SELECT printf('%%500d', i) FROM n",
             rows);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The write system calls this process made so far (/proc/self/io). */
static long s_syscw(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    cr_assert_not_null(f);
    char line[128];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

static long s_writes_of_commit(const char *vfs)
{
    sqlite3 *db = s_open(vfs);
    cr_assert_eq(s_commit_rows(db, 10), SQLITE_OK);
    long before = s_syscw();
    cr_assert_eq(s_commit_rows(db, 150), SQLITE_OK); /* ~20 pages */
    long n = s_syscw() - before;
    sqlite3_close(db);
    return n;
}

TestSuite(sqlwal, .init = s_setup, .fini = s_teardown);

/* A commit of ~20 pages: two writes per page without sqlwal (the control,
 * which shows the count measures what it should), a handful with it. */
Test(sqlwal, a_commit_of_many_pages_is_a_few_writes)
{
    cr_assert_not_null(sqlwal_vfs());
    long plain = s_writes_of_commit(NULL);
    s_teardown();
    s_setup();
    long gathered = s_writes_of_commit(sqlwal_vfs());
    cr_assert_geq(plain, 30, "the default VFS made %ld writes for ~20 pages", plain);
    cr_assert_leq(gathered, 4, "sqlwal made %ld writes (default VFS: %ld)", gathered, plain);
}

/* Every commit is in the file when it returns: another connection (of the
 * default VFS, as another process would be) sees each at once. */
Test(sqlwal, each_commit_is_seen_by_another_connection_at_once)
{
    sqlite3 *w = s_open(sqlwal_vfs());
    sqlite3 *r = s_open(NULL);
    long total = 0;
    for (int i = 1; i <= 60; i++) {
        cr_assert_eq(s_commit_rows(w, i % 7 == 0 ? 120 : 1), SQLITE_OK);
        total += i % 7 == 0 ? 120 : 1;
        cr_assert_eq(s_count(r), total, "commit %d not seen", i);
    }
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A process that dies without closing (its frames only in the WAL): the
 * next one's recovery, which checks every frame's checksum and drops the
 * WAL from the first bad one, finds all its commits. */
Test(sqlwal, commits_survive_a_crash_and_recovery)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sqlite3 *db = s_try_open(sqlwal_vfs());
        if (!db)
            _exit(3);
        for (int i = 0; i < 200; i++)
            if (s_commit_rows(db, i % 10 == 0 ? 100 : 3) != SQLITE_OK)
                _exit(2);
        _exit(0); /* no close, no checkpoint */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sqlite3 *db = s_open(NULL);
    cr_assert_eq(s_count(db), 20 * 100 + 180 * 3);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* In a child whose files may not grow past the WAL's size (RLIMIT_FSIZE, as
 * a full disk would refuse): the commit fails, nobody sees it, and once
 * writes are possible again the next commit works. Exit codes say which
 * step failed. */
static int s_full_child(void)
{
    sqlite3 *w = s_try_open(sqlwal_vfs());
    sqlite3 *r = s_try_open(NULL);
    if (!w || !r)
        return 9;
    if (s_commit_rows(w, 5) != SQLITE_OK)
        return 10;
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", s_path);
    struct stat sb;
    if (stat(wal, &sb) != 0)
        return 11;
    struct rlimit lim = {.rlim_cur = (rlim_t)sb.st_size + 4096, .rlim_max = RLIM_INFINITY};
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 12;
    if (s_commit_rows(w, 150) == SQLITE_OK) /* ~20 pages: past the limit */
        return 13;
    if (s_count(r) != 5)
        return 14;
    sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    lim.rlim_cur = RLIM_INFINITY;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 15;
    if (s_commit_rows(w, 150) != SQLITE_OK)
        return 16;
    if (s_count(r) != 155)
        return 17;
    sqlite3_close(r);
    sqlite3_close(w);
    return 0;
}

Test(sqlwal, a_write_that_fails_fails_its_commit)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(s_full_child());
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (signal %d)", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "step %d failed", WEXITSTATUS(status));
}
