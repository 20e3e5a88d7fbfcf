/* mailbox.h - the one way a thread hands items to a loop (pool
 * completions, messages from nats.c's threads).
 *
 * DESIGN (h2o's multithread.c). Any thread posts an item (a list_t embedded
 * in it) under the mailbox's lock and learns there whether the queue was
 * empty; only then, after unlocking, it writes the eventfd. So a burst of N
 * posts costs one wake-up and no syscall runs under the lock. The loop
 * thread swaps the whole queue out under the lock and hands it to the
 * receiver without the lock held.
 *
 * Threads: mailbox_new, mailbox_destroy and the receiver run on the loop
 * thread; mailbox_post on any thread. */
#ifndef VAPORA_MAILBOX_H
#define VAPORA_MAILBOX_H

#include <stddef.h>

#include "list.h"
#include "loop.h"

typedef struct mailbox mailbox_t;

/* Loop thread: takes the items delivered (in posting order); they are the
 * receiver's now, and items is empty or holds what it left (ignored). */
typedef void (*mailbox_fn)(list_t *items, void *ud);

/* A mailbox holding at most max items (0: no bound; the poster bounds
 * them) delivered to fn on loop. NULL with errno set on failure. */
mailbox_t *mailbox_new(loop_t *loop, size_t max, mailbox_fn fn, void *ud);

/* Delivers what is still queued to the receiver, then frees the mailbox.
 * No thread may post meanwhile or after. Accepts NULL; sets *mbp to NULL. */
void mailbox_destroy(mailbox_t **mbp);

/* Any thread: queues item. Returns 0, or -ENOBUFS when the mailbox holds
 * max items (item is not queued; it stays the caller's). */
int mailbox_post(mailbox_t *mb, list_t *item);

/* Loop thread: delivers what is queued now, without waiting for the
 * wake-up (for a owner that stops). */
void mailbox_drain(mailbox_t *mb);

#endif
