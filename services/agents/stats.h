/* stats.h - the agents service's metrics on GET /metrics:
 *   vapora_agents_runs_total{role,state}            runs that reached a state
 *   vapora_agents_run_duration_seconds{role}        finished runs (histogram)
 *   vapora_agents_first_byte_seconds{role}          assignment → first byte of the
 *                                                   answer (first attempts; histogram)
 *   vapora_agents_runs_in_flight{agent}             across the host's workers
 *   vapora_agents_runs_parked                       waiting for a free agent here
 *   vapora_agents_redeliveries_total                assignments delivered again
 *   vapora_agents_dead_letters_total                runs out of deliveries
 *   vapora_agents_queue_pending                     assignments no worker took yet
 * Loop thread only. */
#ifndef VAPORA_AGENTS_STATS_H
#define VAPORA_AGENTS_STATS_H

#include "agents.h"
#include "run.h"

void stats_init(agents_t *a);
/* The first byte of a first attempt's answer came ms after its
 * assignment was made. */
void stats_first_byte(agents_t *a, const char *role, int64_t ms);
/* A run entered state (running, queued, or a final one). */
void stats_run_state(agents_t *a, const run_row_t *row);
/* A write to the agents' database that r waits for (its admission, its
 * last save) went through (ok) or failed: GET /health says "degraded"
 * (check "storage") while a run of the worker waits for one. */
void stats_store(run_t *r, bool ok);

#endif
