/* live.h - GET /ws: every change, live, over WebSocket (see live.c). */
#ifndef VAPORA_LIVE_H
#define VAPORA_LIVE_H

#include "backend.h"

typedef struct live live_t;

/* Adds GET /ws and subscribes to vapora.> (loop thread, at set-up). */
live_t *live_start(backend_t *b);
/* Closes every session (1001) and the subscription. Accepts NULL. */
void live_stop(live_t **lp);

#endif
