/* runlog.h - what the world sees of a run: its row saved to the database
 * in order (saves never overtake each other; a burst coalesces into one),
 * its state changes published on NATS as vapora.agents.run.<state> (the
 * backend's /ws relays them with the task events), and its JSON.
 *
 * Loop thread only; the saves run on the pool. */
#ifndef VAPORA_AGENTS_RUNLOG_H
#define VAPORA_AGENTS_RUNLOG_H

#include <jansson.h>
#include <stdbool.h>

#include "run.h"

#define RUNLOG_RETRY_MS 1000 /* a write that failed, tried again */

/* Saves r->row as it is now (after any save already on its way). */
void runlog_save(run_t *r);
/* Saves r->row, records exec (NULL: none) once per run, then calls
 * done(r, true) on the loop thread once both are written. A failed write
 * (a full disk) is tried again every RUNLOG_RETRY_MS, for as long as it
 * takes; done(r, false) only when the pool stops first or the row is gone
 * (VP_ENOTFOUND: the next delivery makes it again). (The other saves
 * are not tried again: the last one writes the whole row.) */
void runlog_final(run_t *r, const exec_row_t *exec, void (*done)(run_t *r, bool saved));
/* r's write to the agents' database (what: "its admission", ...) failed
 * with rc, a full disk say: the fault is not the run's, so it waits, its
 * delivery held (progress acks), and again(r's timer) runs in
 * RUNLOG_RETRY_MS; /health counts it meanwhile (stats_store). Logged the
 * first time and every 60th. */
void runlog_store_later(run_t *r, int rc, const char *what, loop_timer_fn again);
/* Publishes the run's current state (non-blocking; dropped without NATS). */
void runlog_event(run_t *r);

/* The run as the API shows it (new reference); with its content when
 * asked. */
json_t *runlog_json(const run_row_t *row, bool content);

#endif
