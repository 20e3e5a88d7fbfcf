/* outcome.h - what users do with the agents' results, learned from the
 * task events (durable consumers of vapora.tasks.updated and
 * vapora.tasks.deleted shared by the workers; not of vapora.tasks.*:
 * created and assigned, two of a task's every five events, teach nothing):
 * a result accepted (the task moves to done) is a success of
 * its run, a result sent back (review → in-progress) a failure; each run
 * counts once. A task archived or deleted cancels its run, wherever it
 * runs (bus.h). Loop thread only. */
#ifndef VAPORA_AGENTS_OUTCOME_H
#define VAPORA_AGENTS_OUTCOME_H

#include <nats/nats.h>

#include "agents.h"

/* Takes one delivery of vapora.tasks.updated or .deleted from q
 * (ownership of msg). */
void outcome_on_msg(agents_t *a, jsq_t *q, natsMsg *msg);

#endif
