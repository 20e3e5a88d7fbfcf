/* store.h - the backend's storage: the one module handlers call, so that a
 * PostgreSQL driver can slot in behind the same functions later.
 *
 * DESIGN. SQLite in WAL mode, synchronous=NORMAL. Every function below runs
 * on a blocking-pool thread (never the loop thread) and uses that thread's
 * own connection, opened on first use and closed when the thread exits;
 * statements are prepared once per connection and reused. Each write is one
 * BEGIN IMMEDIATE transaction: when a function returns 0 its change
 * is committed. Several worker processes share the file: a busy handler
 * retries every 200 µs for up to 5 s.
 *
 * Rows come back as jansson objects in the API's shape; the caller owns
 * them. Errors carry an API error code and a sentence in store_err_t. */
#ifndef VAPORA_STORE_H
#define VAPORA_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sbuf.h"
#include "vp_error.h"

typedef struct store store_t;

/* Errors: every int below is 0 or a negative code of vp_error.h:
 * VP_ENOTFOUND (404), VP_ECONFLICT (409: err.code says which),
 * VP_EPRECONDITION (412 version_mismatch), VP_EINVALID (422: err.code names
 * the field), VP_ESTORE (500: the database failed). */

typedef struct store_err {
    const char *code;
    char msg[256];
} store_err_t;

/* Opens (creating) the database at path and applies pending migrations,
 * on the calling thread: call once at start-up, before serving. NULL with a
 * reason in err on failure. */
store_t *store_open(const char *path, char *err, size_t errlen);
void store_destroy(store_t **sp);

/* ---- users ---- */
/* Creates a user; VP_ECONFLICT username_taken. *out: the user (no hash). */
int store_user_create(store_t *s, const char *username, const char *hash,
                             const char *role, json_t **out, store_err_t *e);
/* Inserts the user only when no user of that name exists; *created says
 * whether this call created it. */
int store_user_ensure(store_t *s, const char *username, const char *hash,
                             const char *role, bool *created, store_err_t *e);
/* The user and its password hash (*hash, caller frees), by name. */
int store_user_by_name(store_t *s, const char *username, json_t **out,
                              char **hash, store_err_t *e);
int store_user_get(store_t *s, const char *id, json_t **out, store_err_t *e);
int store_user_list(store_t *s, json_t **out, store_err_t *e);

/* ---- projects ---- */
int store_project_create(store_t *s, const char *name, const char *desc,
                                json_t **out, store_err_t *e);
int store_project_get(store_t *s, const char *id, json_t **out, store_err_t *e);
/* Projects after cursor position `after` (0: from the start), at most limit;
 * *next is the position of the last one when more may follow, else 0. */
int store_project_list(store_t *s, int64_t after, int limit, json_t **items,
                              int64_t *next, store_err_t *e);
/* Applies name/description from patch (already validated). */
int store_project_update(store_t *s, const char *id, const json_t *patch,
                                json_t **out, store_err_t *e);
/* VP_ECONFLICT project_has_tasks unless cascade. */
int store_project_delete(store_t *s, const char *id, bool cascade,
                                store_err_t *e);
/* {"project_id","columns":[{"status","tasks":[…]}…]} */
int store_project_board(store_t *s, const char *id, json_t **out,
                               store_err_t *e);

/* ---- tasks ---- */
typedef struct store_task_filter {
    const char *project_id, *status, *priority, *assigned_role; /* NULL: any */
} store_task_filter_t;

/* Creates a task from validated fields (title, description, type, priority,
 * estimated_hours, blocked_by). VP_ENOTFOUND when the project does not
 * exist; VP_EINVALID invalid_blocked_by for unknown blockers. */
int store_task_create(store_t *s, const char *project_id, const json_t *fields,
                             json_t **out, store_err_t *e);
int store_task_get(store_t *s, const char *id, json_t **out, store_err_t *e);
/* Reads serve each task's stored JSON: one task (*doc, caller frees), or
 * the tasks matching f after cursor position `after` (0: from the start),
 * at most limit, appended to items as a JSON array; *next is the position
 * of the last one when more may follow, else 0. */
int store_task_get_doc(store_t *s, const char *id, char **doc, store_err_t *e);
int store_task_page(store_t *s, const store_task_filter_t *f, int64_t after,
                           int limit, sbuf_t *items, int64_t *next, store_err_t *e);
/* Applies a validated patch under the status rules (see rules.h), in one
 * transaction. if_match < 0: no precondition. */
int store_task_update(store_t *s, const char *id, const json_t *patch,
                             int64_t if_match, json_t **out, store_err_t *e);
int store_task_delete(store_t *s, const char *id, store_err_t *e);

/* ---- events: every write above queues its event in the outbox, in the
 * same transaction (vapora.projects.created|updated|deleted,
 * vapora.tasks.created|updated|deleted, and vapora.tasks.assigned when an
 * update sets assigned_role), as {"type","id","project_id","data","at"}. ---- */
typedef struct store_event {
    int64_t seq;
    char *subject;
    char *payload;
} store_event_t;

/* At most max events wait; more are dropped (the writes still succeed).
 * 0 turns events off. */
void store_set_outbox_max(store_t *s, long max);
/* fn(ud) runs (on the committing pool thread) after each commit of writes
 * while events wait: the publisher wakes at once instead of at its poll. */
void store_set_commit_hook(store_t *s, void (*fn)(void *ud), void *ud);
/* Events waiting (an estimate, any thread), and events dropped so far. */
long store_outbox_backlog(store_t *s);
unsigned long store_outbox_dropped(store_t *s);
/* Re-reads the backlog estimate from the database. */
int store_outbox_refresh(store_t *s, store_err_t *e);
/* The oldest limit events, in order; free with store_outbox_free. */
int store_outbox_fetch(store_t *s, int limit, store_event_t **evs, size_t *n,
                              store_err_t *e);
/* Forgets every event up to seq (published). */
int store_outbox_delete_upto(store_t *s, int64_t seq, store_err_t *e);
void store_outbox_free(store_event_t *evs, size_t n);

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

/* Opaque cursors: encode a position, decode one (false when malformed).
 * kind tells lists apart ('p' projects, 't' tasks). */
void store_cursor_encode(char kind, int64_t pos, char *buf, size_t len);
bool store_cursor_decode(char kind, const char *cursor, int64_t *pos);

#endif
