/* sqldb.c - see sqldb.h. */
#define _GNU_SOURCE
#include "sqldb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "base.h"
#include "file.h"
#include "log.h"

const char *const sqldb_sync_words[] = {"normal", "full", NULL};

const char *sqldb_sync_pragma(sqldb_sync_t sync)
{
    return sync == SQLDB_SYNC_FULL ? "PRAGMA synchronous=FULL"
                                   : "PRAGMA synchronous=NORMAL";
}

int sqldb_sync_setting(const cfg_t *cfg, const char *section, sqldb_sync_t *out,
                       char *err, size_t errlen)
{
    int v;
    if (cfg_get_choice(cfg, section, "synchronous", sqldb_sync_words, SQLDB_SYNC_NORMAL,
                       &v, err, errlen) < 0)
        return -EINVAL;
    *out = (sqldb_sync_t)v;
    return 0;
}

int sqldb_busy(void *ud, int count)
{
    UNUSED(ud);
    if (count > 20000) /* ~5 s */
        return 0;
    struct timespec ts = {0, (150 + (count % 4) * 50) * 1000L};
    nanosleep(&ts, NULL);
    return 1;
}

int sqldb_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

static sqlite3 *s_open(const char *path, const char *schema, sqldb_sync_t sync,
                       char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    char why[256] = "";
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        snprintf(why, sizeof why, "%s", db ? sqlite3_errmsg(db) : "out of memory");
    } else {
        sqlite3_busy_handler(db, sqldb_busy, NULL);
        /* temp_store=MEMORY: statement journals and temporary tables in
         * memory, not in the system's temporary directory (a full one
         * failed writes as if the database's disk were full). */
        if (sqldb_exec(db, "PRAGMA journal_mode=WAL; PRAGMA temp_store=MEMORY;", why,
                       sizeof why) == 0 &&
            sqldb_exec(db, sqldb_sync_pragma(sync), why, sizeof why) == 0 && schema)
            sqldb_exec(db, schema, why, sizeof why);
    }
    if (!why[0])
        return db;
    snprintf(err, errlen, "opening %s: %s", path, why);
    sqlite3_close(db);
    return NULL;
}

sqlite3 *sqldb_open(const char *path, const char *schema, sqldb_sync_t sync, char *err,
                    size_t errlen)
{
    char *lock_path = xasprintf("%s.lock", path);
    int fd = file_lock(lock_path);
    if (fd < 0)
        log_err(-fd, "locking %s (opening without it)", lock_path);
    free(lock_path);
    sqlite3 *db = s_open(path, schema, sync, err, errlen);
    if (fd >= 0)
        close(fd);
    if (db)
        log_info("%s: WAL, synchronous=%s", path, sqldb_sync_words[sync]);
    return db;
}
