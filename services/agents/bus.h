/* bus.h - what the agents workers of a host tell each other over core
 * NATS (never stored: the subjects are outside the VAPORA stream's
 * vapora.>):
 *   vapora-internal.agents.cancel    {"run_id"} or {"task_id"}, "reason":
 *                                    the worker that has the run cancels it;
 *   vapora-internal.agents.watch     {"run_id","watcher"}: the worker that has
 *                                    the run publishes its output so far and
 *                                    what follows, for BUS_WATCH_LEASE_MS
 *                                    (renewed by each request), on
 *   vapora-internal.agents.stream.ID {"run_id","offset","text"} or
 *                                    {"run_id","end":true,"state"}.
 * Every worker subscribes to all three; messages reach the loop through a
 * mailbox and go to one handler. Loop thread only. */
#ifndef VAPORA_AGENTS_BUS_H
#define VAPORA_AGENTS_BUS_H

#include <jansson.h>
#include <stdbool.h>

#include "agents.h"

#define BUS_CANCEL "vapora-internal.agents.cancel"
/* {"task_id","version"}: runs of older assignments of the task end. */
#define BUS_SUPERSEDE "vapora-internal.agents.supersede"
#define BUS_WATCH "vapora-internal.agents.watch"
#define BUS_STREAM "vapora-internal.agents.stream."
#define BUS_WATCH_LEASE_MS 10000

typedef struct bus bus_t;

/* fn(subject, msg, ud) on the loop thread for each message received. */
typedef void (*bus_fn)(const char *subject, const json_t *msg, void *ud);

/* Subscribes once the NATS connection exists (retrying until then). */
bus_t *bus_new(agents_t *a, bus_fn fn, void *ud);
void bus_destroy(bus_t **bp);

/* Publishes msg on subject; false without NATS (the caller then acts
 * alone). */
bool bus_publish(bus_t *b, const char *subject, const json_t *msg);

#endif
