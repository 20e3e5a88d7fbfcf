/* profiles.h - what the agents learned, in memory: per agent its totals,
 * and per (agent, task type) the last PROFILE_RUNS execution records, from
 * which expertise and confidence follow (score.h).
 *
 * Each worker builds its profiles from the execution records of the
 * database (db.h) and adds the new ones as they are written, by any
 * worker; identities are agent names, so profiles survive restarts and
 * reloads. Loop thread only. */
#ifndef VAPORA_AGENTS_PROFILES_H
#define VAPORA_AGENTS_PROFILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "score.h"

#define PROFILE_RUNS 100

typedef struct profiles profiles_t;

profiles_t *profiles_new(void);
void profiles_destroy(profiles_t **pp);

/* Counts one execution record. */
void profiles_add(profiles_t *p, const exec_row_t *e);

/* Fills the history terms of c (runs, successes, type_runs, expertise) for
 * agent c->name on task_type at time now (unix seconds). */
void profiles_fill(const profiles_t *p, const char *task_type, int64_t now,
                   score_cand_t *c);

/* Totals of agent: runs, success_rate (0 without runs), avg_latency_ms,
 * last_run_at (unix seconds, 0: never). */
typedef struct profile_totals {
    unsigned runs, successes;
    double success_rate, avg_latency_ms, avg_cost_usd;
    int64_t last_run_at;
} profile_totals_t;
void profiles_totals(const profiles_t *p, const char *agent, profile_totals_t *out);

/* The learning profile of agent, one object per task type:
 * [{"task_type","runs","successes","expertise","confidence","avg_latency_ms",
 *   "avg_cost_usd"}]. New reference. */
json_t *profiles_json(const profiles_t *p, const char *agent, int64_t now);

#endif
