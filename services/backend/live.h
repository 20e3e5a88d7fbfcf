/* live.h - GET /ws: every change, live, over WebSocket (see live.c). */
#ifndef VAPORA_LIVE_H
#define VAPORA_LIVE_H

#include "backend.h"

typedef struct live live_t;

/* Adds GET /ws and subscribes to vapora.> (loop thread, at set-up); b
 * outlives it. NULL when the relay mailbox cannot be made (logged). */
live_t *live_new(backend_t *b);
/* Closes every session (1001) and the subscription, and frees the relay.
 * Loop thread. Accepts NULL; sets *lp = NULL. */
void live_destroy(live_t **lp);

#endif
