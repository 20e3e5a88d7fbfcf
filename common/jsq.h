/* jsq.h - a JetStream work queue read by every worker of a service: a
 * durable pull consumer shared by the workers (each message goes to one
 * of them), with explicit acks, whose messages reach the worker's loop.
 *
 * DESIGN. nats.c's JetStream calls block (request/reply), so one thread
 * per jsq waits for the connection and the stream, creates (or updates)
 * the durable consumer, binds to it and fetches; each message goes to the
 * loop through a mailbox (mailbox.h), where the receiver handles it and
 * later acknowledges it with natsMsg_Ack / NakWithDelay / InProgress /
 * Term (non-blocking calls with NULL options) and then calls jsq_done().
 * The thread fetches only while fewer than max_local messages are in the
 * receiver's hands, so a busy worker leaves messages to its siblings.
 *
 * Threads: jsq_new, jsq_destroy, jsq_done and the receiver run on the loop
 * thread; jsq_pending on any. */
#ifndef VAPORA_JSQ_H
#define VAPORA_JSQ_H

#include <nats/nats.h>
#include <stdint.h>

#include "loop.h"
#include "natsc.h"

typedef struct jsq jsq_t;

typedef struct jsq_config {
    const char *stream;   /* must exist (another service creates it); waited for */
    const char *durable;  /* the consumer's name, shared by the workers */
    const char *filter;   /* subject filter */
    int64_t ack_wait_ms;  /* unacknowledged this long: redelivered */
    int64_t max_deliver;  /* deliveries at most (-1: no bound) */
    const int64_t *backoff_ms; /* redelivery delays (after a nak without delay or
                                   an ack timeout); NULL: AckWait each time */
    int nbackoff;
    int64_t max_ack_pending; /* unacknowledged messages across workers, at most */
    unsigned max_local;      /* in this worker's hands at most */
    /* A file the workers consuming this queue share (loadshare.h): one
     * holding more messages than a sibling leaves it the next fetch. NULL:
     * each fetches as fast as it can. */
    const char *share_path;
} jsq_config_t;

/* Loop thread: a message, now the receiver's (natsMsg_Destroy it); call
 * jsq_done() once it is acknowledged one way or another. */
typedef void (*jsq_fn)(natsMsg *msg, void *ud);

/* Starts the consumer thread. cfg's strings are copied. NULL with errno
 * set when the thread or its mailbox cannot be made. */
jsq_t *jsq_new(loop_t *loop, natsc_t *nc, const jsq_config_t *cfg, jsq_fn fn, void *ud);
/* Stops the thread (within ~250 ms) and frees the queue; messages not yet
 * handed to the receiver are dropped unacknowledged (they come back after
 * AckWait). Accepts NULL; sets *qp = NULL. */
void jsq_destroy(jsq_t **qp);

/* Stops fetching (the worker drains): messages already handed over stay
 * the receiver's to finish; no new one comes (loop thread). */
void jsq_stop_fetching(jsq_t *q);

/* One message the receiver held is finished (loop thread). */
void jsq_done(jsq_t *q);

/* Fetches this queue left to a sibling holding fewer messages
 * (share_path). Any thread. */
uint64_t jsq_yielded(jsq_t *q);

/* Messages of the consumer not yet delivered to any worker, as the last
 * fetched message said (the queue a user waits in); any thread. */
uint64_t jsq_pending(jsq_t *q);
/* True once the consumer is bound and fetching. */
bool jsq_ready(jsq_t *q);

/* natsSubscription_Fetch of at most room messages that nats.c before 3.10
 * cannot make write past its array (#749: a fetch starting with more than
 * half its batch already waiting in the subscription, late answers to an
 * earlier pull): when messages wait, it takes exactly those. The thread
 * that fetches (sub is a pull subscription). */
natsStatus jsq_fetch(natsMsgList *list, natsSubscription *sub, int room, int64_t timeout_ms);

/* How many times msg was delivered (1 the first time), 0 when unknown. */
uint64_t jsq_deliveries(natsMsg *msg);

#endif
