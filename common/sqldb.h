/* sqldb.h - opening an SQLite file that several worker processes share,
 * the way every service here needs it (see FIELD-GUIDE.md section 6): WAL,
 * synchronous=NORMAL (or FULL, a service's setting), a busy handler that sleeps 150-300
 * µs (SQLite's own sleeps up to 100 ms and is unfair between processes), and a set-up
 * done by one process at a time (an flock on PATH.lock: SQLite refuses a concurrent WAL
 * switch at once, without its busy handler).
 *
 * Blocking: call at start-up or on a pool thread. */
#ifndef VAPORA_SQLDB_H
#define VAPORA_SQLDB_H

#include <sqlite3.h>
#include <stddef.h>

#include "cfg.h"

/* How a commit reaches the disk. NORMAL: a commit survives the process's
 * crash, and a power loss may undo the last ones (WAL synced at each
 * checkpoint). FULL: the WAL is synced at each commit, before it returns. */
typedef enum { SQLDB_SYNC_NORMAL, SQLDB_SYNC_FULL } sqldb_sync_t;
/* Their words in a configuration (`synchronous = normal|full`), in that
 * order, NULL-terminated: for cfg_get_choice. */
extern const char *const sqldb_sync_words[];
/* The PRAGMA that sets sync on a connection ("PRAGMA synchronous=FULL"),
 * for connections opened otherwise than by sqldb_open. */
const char *sqldb_sync_pragma(sqldb_sync_t sync);
/* [section] synchronous (normal, the default, or full; any case) into
 * *out: 0, or -EINVAL with a reason naming section, key and value. */
int sqldb_sync_setting(const cfg_t *cfg, const char *section, sqldb_sync_t *out,
                       char *err, size_t errlen);

/* Opens (creating) path with SQLITE_OPEN_NOMUTEX, sets it up as above and
 * runs schema (SQL, may be NULL) under the set-up lock; logs the path and
 * its mode ("PATH: WAL, synchronous=full") at info. Returns the
 * connection, or NULL with a reason naming path in err. */
sqlite3 *sqldb_open(const char *path, const char *schema, sqldb_sync_t sync, char *err,
                    size_t errlen);

/* The busy handler sqldb_open installs (for connections opened otherwise). */
int sqldb_busy(void *ud, int count);

/* Runs sql (several statements allowed); 0, or -1 with the reason in err. */
int sqldb_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

#endif
