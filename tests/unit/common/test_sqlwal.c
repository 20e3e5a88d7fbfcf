/* test_sqlwal.c - unit tests for common/sqlwal.c: a commit's WAL frames in
 * few writes, visible to other connections at once, recovered after a crash,
 * and a write that fails failing its commit. */
#include "sqlwal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tmpdir_test.h"

static void s_setup(void)
{
    tmpdir_make("vapora-sqlwal", "t.db");
}

static void s_teardown(void)
{
    tmpdir_remove();
}

/* A connection on vfs (NULL: SQLite's default) in WAL mode, NORMAL sync,
 * no automatic checkpoints (the WAL keeps every frame), table t; NULL on a
 * failure. No assertion here: forked children use it too. */
static sqlite3 *s_try_open(const char *vfs)
{
    sqlite3 *db = NULL;
    int rc =
        sqlite3_open_v2(s_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(
            db,
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

/* Runs fn in a forked child (criterion's assertions must stay in the
 * parent) and asserts it exited with 0; its exit code names the step that
 * failed. The child exits without closing what it opened, as a crash would. */
static void s_in_child(int (*fn)(void))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(fn());
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (signal %d)", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "step %d failed", WEXITSTATUS(status));
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
    cr_assert_leq(gathered, 4, "sqlwal made %ld writes (default VFS: %ld)", gathered,
                  plain);
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

/* 200 commits, then the process ends without closing or checkpointing. */
static int s_crash_child(void)
{
    sqlite3 *db = s_try_open(sqlwal_vfs());
    if (!db)
        return 3;
    for (int i = 0; i < 200; i++)
        if (s_commit_rows(db, i % 10 == 0 ? 100 : 3) != SQLITE_OK)
            return 2;
    return 0;
}

/* A process that dies without closing (its frames only in the WAL): the
 * next one's recovery, which checks every frame's checksum and drops the
 * WAL from the first bad one, finds all its commits. */
Test(sqlwal, commits_survive_a_crash_and_recovery)
{
    s_in_child(s_crash_child);
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
    char wal[sizeof s_path + 8];
    snprintf(wal, sizeof wal, "%s-wal", s_path);
    struct stat sb;
    if (stat(wal, &sb) != 0)
        return 11;
    struct rlimit lim = {.rlim_cur = (rlim_t)sb.st_size + 4096,
                         .rlim_max = RLIM_INFINITY};
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
    s_in_child(s_full_child);
}

/* A transaction bigger than the 20-page cache, which changes a spilled
 * page again, then the process ends without closing. */
static int s_rewrite_child(void)
{
    sqlite3 *db = s_try_open(sqlwal_vfs());
    if (!db || sqlite3_exec(db, "PRAGMA cache_size=20; INSERT INTO t(v) VALUES('seed')",
                            NULL, NULL, NULL) != SQLITE_OK)
        return 3;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        s_commit_rows(db, 400) != SQLITE_OK ||
        sqlite3_exec(db, "UPDATE t SET v='x' WHERE id<5; COMMIT", NULL, NULL, NULL) !=
            SQLITE_OK)
        return 4;
    return 0; /* no close: what is gathered dies with the process */
}

/* A transaction bigger than the page cache spills frames, then changes a
 * spilled page again: SQLite overwrites that frame and, after the commit
 * frame, rewrites the checksums of the frames from there on, the commit's
 * header last, alone. That header must reach the file: with it left
 * gathered, recovery after a crash stopped at it and lost the commit. */
Test(sqlwal, a_commit_that_rewrote_spilled_frames_survives_a_crash)
{
    s_in_child(s_rewrite_child);
    sqlite3 *db = s_open(NULL);
    cr_assert_eq(s_count(db), 401);
    sqlite3_close(db);
}

static sqlite3_syscall_ptr s_real_pwrite;
static int s_refuse; /* pwrites refused so far, -1: not refusing */

static ssize_t s_pwrite_full(int fd, const void *b, size_t n, off_t off)
{
    if (s_refuse >= 0) {
        s_refuse++;
        errno = ENOSPC;
        return -1;
    }
    return ((ssize_t(*)(int, const void *, size_t, off_t))s_real_pwrite)(fd, b, n, off);
}

/* In a child (the unix VFS's pwrite is swapped for one that fails as a
 * full disk does while s_refuse >= 0): pages spilled by one statement are
 * still gathered when the next statement reads them back and the disk is
 * full. That must fail the whole transaction, as the default VFS's failing
 * spill does: reported as SQLITE_FULL it rolled back only the statement,
 * and the commit then went through over frames never written. */
static int s_spill_child(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find(NULL);
    const char *name =
        unix_vfs->xGetSystemCall(unix_vfs, "pwrite64") ? "pwrite64" : "pwrite";
    s_real_pwrite = unix_vfs->xGetSystemCall(unix_vfs, name);
    s_refuse = -1;
    if (!s_real_pwrite || unix_vfs->xSetSystemCall(
                              unix_vfs, name, (sqlite3_syscall_ptr)s_pwrite_full) != 0)
        return 2;
    sqlite3 *db = s_try_open(sqlwal_vfs());
    if (!db || s_commit_rows(db, 200) != SQLITE_OK)
        return 3;
    if (sqlite3_exec(db,
                     "PRAGMA cache_size=10; PRAGMA wal_checkpoint(TRUNCATE); BEGIN;"
                     " UPDATE t SET v=printf('%500d',-id) WHERE id<=120",
                     NULL, NULL, NULL) != SQLITE_OK)
        return 4;
    s_refuse = 0;
    int rc = sqlite3_exec(db, "SAVEPOINT w; UPDATE t SET id=id+1000 WHERE id<=40", NULL,
                          NULL, NULL);
    if (rc == SQLITE_OK || s_refuse == 0)
        return 5; /* the statement went through, or nothing was refused */
    sqlite3_exec(db, "ROLLBACK TO w; RELEASE w", NULL, NULL, NULL);
    s_refuse = -1;
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3 *r = s_try_open(NULL);
    sqlite3_stmt *st = NULL;
    if (!r ||
        sqlite3_prepare_v2(r, "SELECT count(*) FROM t WHERE v=printf('%500d',-id)", -1,
                           &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return 6;
    int changed = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (changed != 0)
        return 7; /* part of the failed transaction was committed */
    if (sqlite3_prepare_v2(r, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
        return 8;
    sqlite3_finalize(st);
    return 0;
}

Test(sqlwal, a_spill_lost_to_a_full_disk_fails_the_whole_transaction)
{
    s_in_child(s_spill_child);
}

/* A transaction spills frames (gathered), then rolls back; another
 * connection commits over the same rows (at the same WAL offsets); the
 * first then reads. The rolled-back frames must never reach the file: they
 * did, over the other's commit, until the write lock's release dropped
 * them. */
Test(sqlwal, frames_of_a_rolled_back_transaction_never_reach_the_file)
{
    sqlite3 *a = s_open(sqlwal_vfs());
    cr_assert_eq(
        sqlite3_exec(a,
                     "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c"
                     " WHERE i<40) INSERT INTO t(v) SELECT printf('%3000d',i) FROM c;"
                     " PRAGMA wal_checkpoint(PASSIVE);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3 *b = s_open(sqlwal_vfs());
    cr_assert_eq(sqlite3_exec(a, "BEGIN; UPDATE t SET v='rolled back' WHERE id<=4",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_db_cacheflush(a), SQLITE_OK); /* spills: gathered frames */
    cr_assert_eq(sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(b, "UPDATE t SET v='committed' WHERE id<=4", NULL, NULL, NULL),
        SQLITE_OK);
    cr_assert_eq(s_count(a), 40); /* a reads its WAL */
    sqlite3 *c = s_open(NULL);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(c, "SELECT count(*) FROM t WHERE v='committed'", -1,
                                    &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 4,
                 "the other connection's commit was overwritten");
    sqlite3_finalize(st);
    sqlite3_close(c);
    sqlite3_close(b);
    sqlite3_close(a);
}
