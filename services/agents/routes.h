/* routes.h - the agents service's HTTP API (docs/agents.md): agents, runs,
 * cancel and retry, the assignment preview, and a run's live output.
 * Viewers read, members act (identity.h). Loop thread only. */
#ifndef VAPORA_AGENTS_ROUTES_H
#define VAPORA_AGENTS_ROUTES_H

#include "agents.h"

void routes_add(agents_t *a);

#endif
