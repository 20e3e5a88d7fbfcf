/* loadshare.h - keeping the loads of sibling worker processes even: each
 * publishes a count (its open connections, the messages in its hands), and
 * one holding more than a live sibling leaves it the next piece of work.
 *
 * DESIGN. The workers of a service accept from one socket, registered with
 * EPOLLEXCLUSIVE: a connection wakes one of them, which takes what waits in
 * the backlog. When connections come in a burst, the first worker awake
 * drains it (its registration, made again, is ready at once): measured
 * with wrk's 100 connections on two backend workers, splits of 80/20 and
 * 92/8, and the loaded worker's clients saw the tail latency of a worker
 * doing most of the work while the other idled. Work queues fetched by
 * every worker (jsq.h) drift the same way: 5,000 streamed runs split about
 * 3,100/1,900 between two agents workers, one of them past its memory
 * bound. So each worker publishes its count in a slot of a small file that
 * the siblings map (one file per kind of work: DATA_DIR/run/<service>.accept
 * for connections), with its pid and a heartbeat; a worker holding more
 * than its least loaded live sibling (by a margin) leaves the next piece to
 * it for a moment.
 *
 * Threads: loadshare_set and loadshare_should_yield from any thread of the
 * process (a slot's fields are atomics); open and close once each. */
#ifndef VAPORA_LOADSHARE_H
#define VAPORA_LOADSHARE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct loadshare loadshare_t;

/* A sibling whose heartbeat is older than this is not waited for (hung,
 * stopped, or gone without releasing its slot). */
#define LOADSHARE_STALE_MS 3000

/* Maps path (created when missing) and takes a slot for this process: a
 * free one, or one whose process is gone. NULL with errno set when the file
 * cannot be mapped or every slot is held. */
loadshare_t *loadshare_open(const char *path);

/* Gives the slot back and unmaps. Accepts NULL. */
void loadshare_close(loadshare_t **ap);

/* Publishes this worker's count of open connections, and its heartbeat
 * (now_ms: the monotonic clock, which every process shares). */
void loadshare_set(loadshare_t *a, unsigned conns, uint64_t now_ms);

/* Whether this worker, holding conns connections, should leave the next one
 * to a live sibling that holds fewer (by more than a margin). */
bool loadshare_should_yield(const loadshare_t *a, unsigned conns, uint64_t now_ms);

/* How many of conns this worker holds beyond a live sibling's count and a
 * margin wider than loadshare_should_yield's (0: none): the work it should
 * give back. Work taken while a sibling could not take it (its loop busy
 * when a burst came) otherwise stays for as long as it lasts, keep-alive
 * connections above all. */
unsigned loadshare_shed_excess(const loadshare_t *a, unsigned conns, uint64_t now_ms);

#endif
