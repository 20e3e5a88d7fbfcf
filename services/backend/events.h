/* events.h - publishes the outbox to NATS JetStream.
 *
 * DESIGN. JetStream calls block (request/reply), so publishing runs on a
 * thread of its own, never on the loop or the pool. Of all the backend
 * workers of a host, the one holding an flock on DATA_DIR/events.lock
 * publishes (the others wait to take over when it exits or dies), so events
 * leave in outbox order. It makes sure stream VAPORA (subjects vapora.>,
 * file storage, 2 min duplicate window) exists, publishes each event with
 * Nats-Msg-Id = its outbox seq (a resend after an unknown outcome is
 * deduplicated), and deletes what was acknowledged. While NATS is away the
 * events wait in the outbox (bounded by [backend] outbox_max) and go out in
 * order once it is back. */
#ifndef VAPORA_EVENTS_H
#define VAPORA_EVENTS_H

#include "backend.h"

typedef struct events events_t;

/* Starts the publisher (loop thread, at set-up). NULL when [nats] url is not
 * set: then no event is queued at all. */
events_t *events_new(backend_t *b);
/* Stops and joins the publisher. Accepts NULL; sets *ep = NULL. */
void events_destroy(events_t **ep);

#endif
