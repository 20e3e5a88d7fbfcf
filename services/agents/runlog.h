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

/* Saves r->row as it is now (after any save already on its way). */
void runlog_save(run_t *r);
/* Saves r->row, records exec (NULL: none) once per run, then calls
 * done(r) on the loop thread when both are written (or failed: logged). */
void runlog_final(run_t *r, const exec_row_t *exec, void (*done)(run_t *r));
/* Publishes the run's current state (non-blocking; dropped without NATS). */
void runlog_event(run_t *r);

/* The run as the API shows it (new reference); with its content when
 * asked. */
json_t *runlog_json(const run_row_t *row, bool content);

#endif
