/* events.h - publishes the outbox to NATS JetStream.
 *
 * DESIGN. JetStream calls block (request/reply), so publishing runs on a
 * thread of its own, never on the loop or the pool. Of all the backend
 * workers of a host, the one holding an flock on DATA_DIR/events.lock
 * publishes (the others wait to take over when it exits or dies), so events
 * leave in outbox order. It makes sure stream VAPORA (subjects vapora.>,
 * file storage, 2 min duplicate window, the configured max_age and
 * max_bytes, given to an existing stream too) exists, publishes each event with
 * Nats-Msg-Id = its outbox seq (a resend after an unknown outcome is
 * deduplicated), and deletes what was acknowledged. While NATS is away the
 * events wait in the outbox (bounded by [backend] outbox_max) and go out in
 * order once it is back. */
#ifndef VAPORA_EVENTS_H
#define VAPORA_EVENTS_H

#include "backend.h"

typedef struct events events_t;

/* The limits of stream VAPORA: the oldest events go once older than
 * max_age_s seconds or once the stream holds more than max_bytes (0: no
 * such limit). [backend] events_max_age and events_max_bytes. */
typedef struct events_limits {
    long max_age_s;
    long max_bytes;
} events_limits_t;
#define EVENTS_MAX_AGE (7L * 86400) /* their defaults: 7 days, 1 GiB */
#define EVENTS_MAX_BYTES (1L << 30)

/* Starts the publisher (loop thread, at set-up). NULL when [nats] url is not
 * set: then no event is queued at all. */
events_t *events_new(backend_t *b, const events_limits_t *lim);
/* Stops and joins the publisher. Accepts NULL; sets *ep = NULL. */
void events_destroy(events_t **ep);

#endif
