/* db.h - the agents service's own SQLite file (DATA_DIR/agents.db): its
 * runs, the execution records it learns from, and the failures in a row of
 * each agent on each task. It never shares the backend's database.
 *
 * DESIGN. One connection behind a (recursive) mutex (the ledger's pattern:
 * each call is tens of µs; adb_batch holds it around the calls it
 * groups); every call blocks, so callers run them on the pool (or at
 * start-up). Rows are typed (run_row_t, exec_row_t); text fields of a row
 * read back are the row's own, freed with run_row_clear. Errors: 0, or
 * VP_ENOTFOUND / VP_ESTORE (VP_EFULL on a full disk). */
#ifndef VAPORA_AGENTS_DB_H
#define VAPORA_AGENTS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqldb.h"

typedef struct adb adb_t;

/* A run's states. */
#define RUN_QUEUED "queued"
#define RUN_RUNNING "running"
#define RUN_SUCCEEDED "succeeded"
#define RUN_FAILED "failed"
#define RUN_CANCELED "canceled"
#define RUN_DEAD "dead"

typedef struct run_row {
    int64_t seq; /* insertion order (cursor) */
    char id[32];
    char task_id[64];
    char project_id[64];
    int64_t task_version; /* the version its assignment made */
    char agent[64];
    char role[32];
    char task_type[64];
    char state[16];
    int attempts;
    char model[128];
    char provider[64];
    char outcome[16]; /* "", "accepted" or "rejected" */
    char *error;      /* heap, or NULL */
    char *content;    /* heap, or NULL: the answer */
    int64_t input_tokens, output_tokens;
    double cost_usd;
    int64_t latency_ms;
    int64_t created_ms, started_ms, finished_ms; /* unix ms; 0: not yet */
} run_row_t;

/* Frees a row's heap fields (error, content). */
void run_row_clear(run_row_t *r);
/* dst = a copy of src with heap fields of its own (free with run_row_clear). */
void run_row_copy(run_row_t *dst, const run_row_t *src);
/* True for succeeded, failed, canceled and dead. */
bool run_state_final(const char *state);

/* One finished run, as learning sees it. */
typedef struct exec_row {
    int64_t seq;
    char run_id[32];
    char agent[64];
    char task_type[64];
    bool success;
    int64_t latency_ms;
    double cost_usd;
    int64_t at; /* unix seconds */
} exec_row_t;

/* Opens (creating and migrating) path, its commits synced as sync says.
 * NULL with the reason in err. */
adb_t *adb_open(const char *path, sqldb_sync_t sync, char *err, size_t errlen);
void adb_destroy(adb_t **dbp);

/* Inserts r as a new run unless its id exists; either way *r is then the
 * stored row. *created says which. */
int adb_run_admit(adb_t *db, run_row_t *r, bool *created);
/* Writes every field of r over the stored run of the same id. */
int adb_run_save(adb_t *db, const run_row_t *r);
/* Reads run id into *r. */
int adb_run_get(adb_t *db, const char *id, run_row_t *r);

typedef struct run_filter {
    const char *task_id, *agent, *state; /* NULL: any */
    int64_t after;                       /* seq of the previous page's last; 0 */
    int limit;                           /* 1..500 */
} run_filter_t;
/* Fills rows[0..*n) (room for f->limit) oldest first; *more when another
 * page follows. */
int adb_run_page(adb_t *db, const run_filter_t *f, run_row_t *rows, size_t *n, bool *more);
/* The newest run of task_id that succeeded and awaits review, if any. */
int adb_run_awaiting_review(adb_t *db, const char *task_id, run_row_t *r);

/* Marks run id canceled (with reason) when it is queued or running;
 * *changed says whether it was. */
int adb_run_cancel(adb_t *db, const char *id, const char *reason, bool *changed);
/* Makes a failed or dead run queued again (error cleared), unless a later
 * run of its task exists (a newer assignment: its result must not be
 * replaced); *changed says whether it was made queued. */
int adb_run_requeue(adb_t *db, const char *id, bool *changed);
/* Marks the runs of r's task from older assignments (a lower task_version)
 * canceled (RUN_SUPERSEDED) when queued or running; *n: how many. *newer:
 * whether a run of a later assignment exists (r is superseded itself). */
int adb_runs_supersede(adb_t *db, const run_row_t *r, int *n, bool *newer);
#define RUN_SUPERSEDED "superseded by a newer assignment of the task"
/* Puts a queued run back as was says (state, error, finished_ms): a retry
 * that could not go out. */
int adb_run_unqueue(adb_t *db, const run_row_t *was);
/* Sets the outcome of a succeeded run that has none yet; *changed says
 * whether it had none. */
int adb_run_set_outcome(adb_t *db, const char *id, const char *outcome, bool *changed);

/* Records e once per run id (a second call for the same run changes
 * nothing and sets *added false), and the failures in a row of (agent,
 * task_id): reset by a success, one more by a failure. */
int adb_exec_add(adb_t *db, const exec_row_t *e, const char *task_id, bool *added);
/* Runs fn(db, ud), which calls the writes above, in one transaction: they
 * are committed together (one WAL commit for the lot; each is as durable as
 * alone once this returns). When the transaction cannot be had or is lost
 * (an error rolled it back, the commit failed), fn runs again without one,
 * each write committing on its own: fn must be idempotent (adb_run_admit,
 * adb_run_save, adb_exec_add and the reads are) and set afresh what it
 * reports. Pool thread (it
 * blocks); other threads' calls wait meanwhile. */
void adb_batch(adb_t *db, void (*fn)(adb_t *db, void *ud), void *ud);
/* Calls fn for every execution with seq > after, oldest first; *last gets
 * the last seq seen. */
int adb_exec_since(adb_t *db, int64_t after, void (*fn)(const exec_row_t *e, void *ud),
                   void *ud, int64_t *last);
/* Calls fn(agent, failures, ud) for every agent with failures on task_id. */
int adb_streaks(adb_t *db, const char *task_id,
                void (*fn)(const char *agent, long failures, void *ud), void *ud);

#endif
