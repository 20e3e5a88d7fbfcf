/* store_outbox.h - the events every write queues, for the publisher.
 *
 * Every write of the store queues its event in the outbox table, in the
 * same transaction (vapora.projects.created|updated|deleted,
 * vapora.tasks.created|updated|deleted, and vapora.tasks.assigned when an
 * update sets assigned_role), as {"type","id","project_id","data","at"}.
 * events.c drains it to NATS in order. Functions that touch the database
 * run on the publisher's thread (or at start-up); the counters and
 * settings may be read or set from any thread. */
#ifndef VAPORA_STORE_OUTBOX_H
#define VAPORA_STORE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct store_event {
    int64_t seq;
    char *subject;
    char *payload;
} store_event_t;

/* At most max events wait; more are dropped (the writes still succeed).
 * 0 turns events off. Set before serving. */
void store_outbox_set_max(store_t *s, long max);
/* fn(ud) runs (on the writer thread) after each commit of writes while
 * events wait: the publisher wakes at once instead of at its poll. NULL
 * removes it. May be called while writes run: once it returns, the old fn
 * runs no more (it runs under a lock this takes), so its ud may go; fn
 * must not call this. */
void store_outbox_set_commit_hook(store_t *s, void (*fn)(void *ud), void *ud);
/* Events waiting (an estimate, any thread), and events dropped so far. */
long store_outbox_backlog(store_t *s);
unsigned long store_outbox_dropped(store_t *s);
/* Re-reads the backlog estimate from the database. */
int store_outbox_refresh(store_t *s, store_err_t *e);
/* The oldest limit events, in order (*evs, *n); free with
 * store_outbox_free. */
int store_outbox_fetch(store_t *s, int limit, store_event_t **evs, size_t *n,
                       store_err_t *e);
/* Forgets every event up to seq (published): a write in the writer's
 * next batch, which the caller waits for; it leaves store_version as it
 * is (no read sees the outbox). */
int store_outbox_delete_upto(store_t *s, int64_t seq, store_err_t *e);
void store_outbox_free(store_event_t *evs, size_t n);

#endif
