/* store.h - the backend's storage: what handlers call, so that a
 * PostgreSQL driver can slot in behind the same functions later. This
 * header opens and closes the store; each kind of row has its own header:
 * store_users.h, store_projects.h (with the board), store_tasks.h and
 * store_outbox.h (the events waiting for NATS).
 *
 * DESIGN. SQLite in WAL mode, synchronous=NORMAL. Every store function runs
 * on a blocking-pool thread (never the loop thread) and uses that thread's
 * own connection, opened on first use and closed when the thread exits;
 * statements are prepared once per connection and reused. Each write is one
 * BEGIN IMMEDIATE transaction, or a savepoint of a group commit that
 * concurrent writers share (store_batch.c): when a write returns 0 its
 * change is committed. Several worker processes share the file: writers
 * take an flock first, and a busy handler retries every 200 µs for up to
 * 5 s. A thread per worker checkpoints the WAL (commits never do).
 *
 * Rows come back as jansson objects in the API's shape; the caller owns
 * them. Errors: every int returned by the store is 0 or a negative code of
 * vp_error.h: VP_ENOTFOUND (404), VP_ECONFLICT (409: err.code says which),
 * VP_EPRECONDITION (412 version_mismatch), VP_EINVALID (422: err.code
 * names the field), VP_EFULL (507 storage_full: the disk is full),
 * VP_ESTORE (500: the database failed); store_err_t
 * carries the API error code and a sentence. */
#ifndef VAPORA_STORE_H
#define VAPORA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vp_error.h"

typedef struct store store_t;

typedef struct store_err {
    const char *code; /* a string literal: static */
    char msg[256];
} store_err_t;

/* Opens (creating) the database at path and applies pending migrations,
 * on the calling thread: call once at start-up, before serving. Starts the
 * checkpointer thread. NULL with a reason in err on failure. */
store_t *store_open(const char *path, char *err, size_t errlen);
/* Stops the checkpointer and frees the store (after the pool and every
 * other thread using it have stopped). Accepts NULL; sets *sp = NULL. */
void store_destroy(store_t **sp);

/* Ends the calling thread's use of the store for now: resets its cached
 * statements so that no read transaction stays open between jobs (stale
 * snapshots, a WAL that cannot be checkpointed). Call after every job. */
void store_end(store_t *s);

/* A number that grows after every committed write of any worker process
 * sharing the database (a counter in `<database>-version`, mapped shared):
 * what was read while it kept one value is still current. Any thread; no
 * SQLite call. 0 when the counter could not be mapped (store_version_known
 * is then false and nothing should be cached). */
uint64_t store_version(const store_t *s);
bool store_version_known(const store_t *s);

/* The same for the changes that end tokens (a user deleted, a role or a
 * password changed): what was read of the users while it kept one value is
 * still current. 0 when the page is not shared (store_version_known). */
uint64_t store_users_version(const store_t *s);

/* When (wall-clock ms) a write of any worker sharing the database last
 * failed for lack of space (VP_EFULL, 507 storage_full), while none has
 * committed since; 0: writes succeed. While it is set, each worker's
 * checkpointer tries a small write every second, so it clears by itself
 * once space is back. Any thread; no SQLite call. */
uint64_t store_full_since(const store_t *s);

#endif
