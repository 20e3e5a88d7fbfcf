/* agents.h - the agents service's state: one per worker process, made by
 * main.c, shared by its modules. Loop thread only, unless a field says.
 *
 * The life of an assignment (see docs/agents.md):
 *   1. dispatch.c takes a vapora.tasks.assigned message from the shared
 *      JetStream consumer, admits its run (db.c, on the pool) and chooses
 *      an agent (infer.c, score.c, profiles.c) with a free slot (slots.c);
 *   2. run.c sets the task in-progress (kanban.c), asks the router
 *      (llm.c), stores the result on the task under If-Match, or fails the
 *      run, and acknowledges the message;
 *   3. outcome.c learns from what users do with results (done: success,
 *      sent back: failure) and cancels runs of archived or deleted tasks;
 *   4. routes.c serves the API; watch.c streams a run's output live. */
#ifndef VAPORA_AGENTS_AGENTS_H
#define VAPORA_AGENTS_AGENTS_H

#include <stdint.h>

#include "config.h"
#include "curlm.h"
#include "db.h"
#include "dbq.h"
#include "jsq.h"
#include "kanban.h"
#include "list.h"
#include "metrics.h"
#include "profiles.h"
#include "slots.h"
#include "worker.h"

typedef struct bus bus_t;           /* bus.h */
typedef struct identity identity_t; /* identity.h */
typedef struct watch watch_t;       /* watch.h */

typedef struct agents_stats {
    uint64_t started, succeeded, failed, canceled, dead, redeliveries;
} agents_stats_t;

typedef struct agents {
    worker_t *w;
    loop_t *loop;
    pool_t *pool;
    curlm_t *curlm;     /* the router's streams: one connection each */
    curlm_t *backend_curlm; /* the backend's API: AGENTS_BACKEND_CONNS at most */
    agents_config_t *cfg;
    adb_t *db;
    dbq_t dbq;          /* its writes, grouped into one transaction a batch */
    slots_t *slots;
    profiles_t *profiles;
    int64_t exec_seq;   /* the last execution record loaded into profiles */
    bool exec_loading;  /* a reload of new records is on the pool */
    char *router_key;   /* the router caller key, once known ("" : none yet) */
    kanban_t *kanban;
    jsq_t *assign_q;    /* vapora.tasks.assigned */
    jsq_t *outcome_q;   /* vapora.tasks.updated */
    jsq_t *deleted_q;   /* vapora.tasks.deleted */
    bus_t *bus;         /* cross-worker cancel and watch messages */
    identity_t *identity; /* who calls the API */
    watch_t *watch;     /* live output streams */
    list_t runs;        /* run_t active on this worker */
    list_t parked;      /* run_t waiting for a free agent */
    loop_timer_t *tick; /* parked runs, progress acks, profile refresh */
    bool stopping;      /* the worker stops: nothing new starts */
    bool unpark_due;    /* a slot was freed: parked runs are tried before the loop sleeps */
    agents_stats_t stats;
    metrics_t *metrics;
} agents_t;

#endif
