/* run_step.h - the steps of a run once an agent is chosen (see run.h):
 * start, call, finish, fail, cancel; and how a run lets go of its
 * delivery. Internal to run.c and run_step.c.
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_RUN_STEP_H
#define VAPORA_AGENTS_RUN_STEP_H

#include "run.h"

enum {
    RELEASE_ACK,   /* done with it, one way or another */
    RELEASE_NAK,   /* another delivery soon (1 s) */
    RELEASE_RETRY, /* another delivery after the backoff of this attempt */
    RELEASE_TERM,  /* never again */
};

/* The agent is chosen and its slot held: sets the task in-progress. */
void run_step_begin(run_t *r);
/* Ends the run in a final state (succeeded, failed, canceled, dead) with
 * error (NULL: none): puts the task back to todo when revert (and the run
 * had moved it), saves the row (and, for failed and dead, an execution
 * record), then acknowledges the delivery. */
void run_step_finish(run_t *r, const char *state, const char *error, bool revert);
/* A delivery past max_deliveries (the consumer keeps one more, run.h):
 * the worker of the last one stopped with it. Nothing runs again: the run
 * is dead, and its task, if that worker had it in-progress, goes back to
 * todo (or the run succeeded, if its result is on the task). */
void run_step_reap(run_t *r);
/* Lets go of the delivery as how says, the slot and the run. */
void run_step_release(run_t *r, int how);
/* Frees a run that holds nothing (no delivery, no slot, no call). */
void run_step_free(run_t *r);

#endif
