/* run.h - one run: an agent doing one assigned task, from the delivery of
 * its assignment to the acknowledgement of that delivery.
 *
 * DESIGN. A run is a small state machine on the loop thread:
 *   admit (its row in the database, on the pool) → choose an agent with a
 *   free slot, or park → start (the task in-progress under If-Match) →
 *   call (the router, streamed) → finish (the result on the task under
 *   If-Match) → saved → acknowledged.
 * The agents' own database failing (a full disk) is no failure of the run:
 * its admission and its last save are tried again each second, the
 * delivery held meanwhile, never naked for it (JetStream stops delivering
 * a message after max_deliver, and the task would wait for nothing).
 * Failures: one worth another delivery (the router unreachable, 5xx, a
 * timeout) is naked with a growing delay while deliveries remain, else the
 * run is dead; a final one (budget_exceeded, a refused request, a loop
 * guard) fails the run at once. A failed, dead or canceled run puts the
 * task back to todo. Exactly one effect per assignment: the run id comes
 * from the assignment (task id and the version it made), and every write
 * to the task is conditional on the version the run holds, so a
 * redelivery, a crashed worker's retry or a stale delivery cannot write a
 * second result or move the task twice.
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_RUN_H
#define VAPORA_AGENTS_RUN_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>

#include "agents.h"
#include "llm.h"
#include "sbuf.h"

typedef enum {
    STEP_ADMIT,
    STEP_PARKED,
    STEP_START,
    STEP_CALL,
    STEP_FINISH,
    STEP_REVERT,
    STEP_FINAL,
} run_step_t;

typedef struct run run_t;

/* A save of a run's row on its way (runlog.c): a copy, since the run goes
 * on changing meanwhile. */
typedef struct run_save {
    dbq_op_t op;
    run_row_t row;
    exec_row_t exec;
    bool has_exec;
    int rc;
} run_save_t;

/* Called with each piece of a run's output as it arrives, and once with
 * text NULL when the run ends (watch.c). */
typedef void (*run_watch_fn)(run_t *r, const char *text, size_t len, void *ud);

typedef struct run_watcher {
    run_watch_fn fn;
    void *ud;
    list_t link;
} run_watcher_t;

struct run {
    agents_t *a;
    list_t link;             /* a->runs or a->parked */
    run_row_t row;           /* what the database holds (and will) */
    natsMsg *msg;            /* the delivery, acknowledged at the end */
    json_t *task;            /* the task as the assignment carried it */
    const char *assigned_role; /* in task; NULL: the platform chooses */
    bool *excluded;          /* per configured agent: failed this task too often */
    const agent_def_t *agent;
    int64_t version;         /* the task's version this run holds */
    llm_call_t *call;
    bool call_done;          /* the call's answer came before the task was ours */
    bool call_ok, call_retriable, call_401;
    char *call_error;        /* "code: message" of a failed call */
    json_t *blockers;        /* documents of the tasks it was blocked by */
    int pending;             /* blocker reads on their way */
    bool moved;              /* this run set the task in-progress */
    int rechecks;            /* conflicts resolved by reading the task again */
    int check_what;          /* what a re-read of the task is for */
    int tries;               /* attempts of the current write to the backend */
    loop_timer_t *again;     /* the next try of a backend write */
    sbuf_t out;              /* the output so far */
    list_t watchers;
    run_step_t step;
    bool slot_held;
    bool cancel;             /* asked to stop: at the next step */
    char *cancel_reason;
    bool saving, dirty;      /* a save on the pool; another one owed (runlog.c) */
    exec_row_t final_exec;   /* runlog_final: recorded with the last save */
    bool has_final_exec;
    bool final_save;         /* runlog_final's save: tried until it is on disk */
    void (*on_saved)(run_t *r, bool saved);
    loop_timer_t *store_again; /* the next try of a write to the agents' database
                              * that failed (a full disk: run.c, runlog.c) */
    unsigned store_tries;    /* those tries, for the log */
    int64_t store_since;     /* unix ms its write to the database first failed; 0 */
    run_save_t save;         /* the save on its way, while saving */
    uint64_t progress_ms;    /* loop ms of the last progress ack */
    uint64_t start_ms;       /* loop ms the call started */
    int64_t assigned_ms;     /* unix ms the assignment was made (its event's "at"); 0 */
    int64_t t_recv, t_admit, t_start; /* unix ms: received, admitted, task in-progress */
    dbq_op_t admit;          /* its row made or read back (run.c) */
    run_row_t admit_row;     /* what the pool writes meanwhile: the loop thread
                              * goes on reading row (run_find) */
    int admit_rc;
    int superseded;          /* older runs of the task its admission canceled */
    bool newer;              /* its admission found a run of a later assignment */
    bool displaced;          /* superseded: puts back only the version it wrote */
    bool reread;             /* a start's conflict read the task again later */
};

/* Takes a delivery of vapora.tasks.assigned (ownership of msg). */
void run_assigned(agents_t *a, natsMsg *msg);
/* Retries parked runs whose agents have a free slot now. */
void run_unpark(agents_t *a);
/* Sends the progress acks owed (every ack_wait / 3). */
void run_progress(agents_t *a);
/* Cancels the run of id (or of task_id when id is NULL) if it is active
 * on this worker. Returns true when one was. */
bool run_cancel(agents_t *a, const char *id, const char *task_id, const char *why);
/* Cancels the runs of task_id active on this worker that come from an
 * assignment older than version (the task version a newer one made): they
 * leave the task to the newer run. */
void run_supersede(agents_t *a, const char *task_id, int64_t version);
/* The active run of id on this worker, or NULL. */
run_t *run_find(agents_t *a, const char *id);
/* Cancels every active run (the worker stops): their deliveries are naked
 * at once so that another worker takes them. */
void run_abort_all(agents_t *a);
/* The worker drains: parked runs go back (naked at once, for another
 * worker); running ones go on to their end. */
void run_release_parked(agents_t *a);

/* Adds / removes a watcher of r's output. */
void run_watch(run_t *r, run_watcher_t *w);
void run_unwatch(run_watcher_t *w);

#endif
