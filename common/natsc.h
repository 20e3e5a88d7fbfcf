/* natsc.h - a worker's connection to NATS (nats.c), kept up in the
 * background.
 *
 * DESIGN. nats.c runs its own threads (read loop, flusher). With send_asap,
 * a publish (or ack) is written at once by the thread making it (SendAsap):
 * for a service making a few publishes per piece of work (an agent's run),
 * a wake-up of the flusher per publish cost more than the write. Without
 * it, the flusher coalesces writes: a service publishing on every request
 * (the router's usage events: 28k against 32k req/s with it, same run) or
 * in bursts (the backend's outbox) keeps that. The first
 * connect attempt can block for its timeout, so it runs on the blocking
 * pool, never on the loop thread; with RetryOnFailedConnect it returns at
 * once when the server is not there yet and keeps trying in the background,
 * forever (MaxReconnect -1), as it does after losing a server that was up.
 * The state is read with natsConnection_Status (thread-safe), so /health can
 * say "degraded" while NATS is away. Connection events are logged from the
 * library's threads (log.h is thread-safe).
 *
 * natsc_new, natsc_destroy and natsc_state are loop-thread calls;
 * natsc_conn and natsc_connected may be called from any thread. */
#ifndef VAPORA_NATSC_H
#define VAPORA_NATSC_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>

#include "pool.h"

typedef struct natsc natsc_t;

/* Starts connecting to url (e.g. "nats://127.0.0.1:4222") on the pool;
 * name is the client name the server sees; send_asap: see above. NULL
 * (logged) when the options are invalid or the pool refuses the job. */
natsc_t *natsc_new(pool_t *pool, const char *url, const char *name, bool send_asap);
/* Closes the connection and releases nats.c. Accepts NULL; sets *cp = NULL.
 * Must run after the pool is destroyed (the connect job may still run). */
void natsc_destroy(natsc_t **cp);

/* Whether the connection is up now. */
bool natsc_connected(natsc_t *c);
/* A one-line description when not connected ("connecting to nats://…",
 * "disconnected from nats://…, reconnecting"); "" when connected. */
void natsc_state(natsc_t *c, char *buf, size_t len);

/* The connection for publishing and subscribing, or NULL before the first
 * attempt returned. Borrowed. */
natsConnection *natsc_conn(natsc_t *c);

/* Unsubscribes the asynchronous *subp and waits, at most timeout_ms, until
 * its message handler can run no more (nats.c may be running it, or run it
 * once more, after Unsubscribe returns), then destroys it; *subp = NULL.
 * Call it before freeing what the handler uses; never from the handler,
 * nor while the handler waits on the caller. Accepts *subp == NULL.
 * Returns false when the handler may still run (the timeout passed, logged):
 * then what it uses must not be freed. */
bool natsc_unsubscribe_wait(natsSubscription **subp, int timeout_ms);

#endif
