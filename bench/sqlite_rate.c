/* sqlite_rate.c - the anchors for the backend's write benchmark: how many
 * rows per second SQLite itself commits on this machine in WAL mode with
 * synchronous=NORMAL and a cached statement, from one process, in
 * transactions of ROWS rows (default 1: single-row commits; the backend's
 * group commit makes transactions of many).
 *
 *   sqlite_rate DBPATH SECONDS [ROWS] */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: sqlite_rate DBPATH SECONDS [ROWS]\n");
        return 2;
    }
    long rows = argc == 4 ? atol(argv[3]) : 1;
    if (rows < 1)
        rows = 1;
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                     " id TEXT, title TEXT, created_at TEXT)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_stmt *ins;
    sqlite3_prepare_v3(db, "INSERT INTO t(id,title,created_at) VALUES(?,?,?)", -1,
                       SQLITE_PREPARE_PERSISTENT, &ins, NULL);
    double secs = atof(argv[2]), start = s_now();
    long n = 0;
    while (s_now() - start < secs) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (long r = 0; r < rows; r++) {
            sqlite3_bind_text(ins, 1, "00000000-0000-4000-8000-000000000000", -1,
                              SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, "bench task", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, "2026-11-24T00:00:00.000Z", -1, SQLITE_STATIC);
            sqlite3_step(ins);
            sqlite3_reset(ins);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        n += rows;
    }
    printf("%.0f\n", (double)n / (s_now() - start));
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return 0;
}
