/* acceptshare.h - keeping the connection counts of the workers that share
 * one listening socket even.
 *
 * DESIGN. The workers of a service accept from one socket, registered with
 * EPOLLEXCLUSIVE: a connection wakes one of them, which takes what waits in
 * the backlog. When connections come in a burst, the first worker awake
 * drains it (its registration, made again, is ready at once): measured
 * with wrk's 100 connections on two backend workers, splits of 80/20 and
 * 92/8, and the loaded worker's clients saw the tail latency of a worker
 * doing most of the work while the other idled. So each worker publishes
 * its count of open connections in a slot of a small file that the
 * workers of the service map (DATA_DIR/run/<service>.accept), with its pid
 * and a heartbeat; a worker holding more than its least loaded live
 * sibling (by a margin) leaves the next connection to it for a moment.
 *
 * Threads: everything on the worker's loop thread. */
#ifndef VAPORA_ACCEPTSHARE_H
#define VAPORA_ACCEPTSHARE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct acceptshare acceptshare_t;

/* A sibling whose heartbeat is older than this is not waited for (hung,
 * stopped, or gone without releasing its slot). */
#define ACCEPTSHARE_STALE_MS 3000

/* Maps path (created when missing) and takes a slot for this process: a
 * free one, or one whose process is gone. NULL with errno set when the file
 * cannot be mapped or every slot is held. */
acceptshare_t *acceptshare_open(const char *path);

/* Gives the slot back and unmaps. Accepts NULL. */
void acceptshare_close(acceptshare_t **ap);

/* Publishes this worker's count of open connections, and its heartbeat
 * (now_ms: the monotonic clock, which every process shares). */
void acceptshare_set(acceptshare_t *a, unsigned conns, uint64_t now_ms);

/* Whether this worker, holding conns connections, should leave the next one
 * to a live sibling that holds fewer (by more than a margin). */
bool acceptshare_should_yield(const acceptshare_t *a, unsigned conns, uint64_t now_ms);

#endif
