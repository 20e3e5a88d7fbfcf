/* control.h - the worker's end of the supervisor control channel.
 *
 * A worker started by vapora-supervisor finds VAPORA_CONTROL (an ipc://
 * endpoint) and VAPORA_WORKER_ID in its environment. It connects a DEALER
 * socket whose routing id is the worker id, says "ready" once it serves,
 * sends a heartbeat with its stats every second from the loop's timer (so a
 * heartbeat proves the loop turns, not just the pipe), and obeys commands:
 * "drain" (finish in-flight requests, take no new ones, exit) and
 * "log_level".
 *
 * Wire format: one frame of JSON per message.
 *   worker → supervisor: {"type":"ready"} | {"type":"heartbeat","stats":{…}}
 *   supervisor → worker: {"type":"drain"} | {"type":"log_level","level":"debug"}
 *
 * Loop thread only. */
#ifndef VAPORA_CONTROL_H
#define VAPORA_CONTROL_H

#include <stdint.h>

#include "loop.h"

typedef struct control control_t;

typedef struct control_stats {
    uint64_t requests; /* completed since start */
    unsigned in_flight;
    double loop_lag_ms; /* worst over the last second */
    unsigned pool_queue;
    unsigned pool_busy;
    double cpu_seconds; /* user + system */
    uint64_t rss_bytes;
} control_stats_t;

typedef struct control_ops {
    void (*on_drain)(void *ud);
    void (*on_log_level)(void *ud, const char *level);
} control_ops_t;

/* Connects when VAPORA_CONTROL is set; returns NULL when it is not (the
 * worker runs alone) or on failure (logged). ops is copied. */
control_t *control_from_env(loop_t *loop, const control_ops_t *ops, void *ud);
void control_destroy(control_t **cp);

/* Return 0, or -EAGAIN when the pipe is full (the message is dropped). */
int control_send_ready(control_t *c);
int control_send_heartbeat(control_t *c, const control_stats_t *st);

/* Serialises / parses the stats object of a heartbeat (shared with the
 * supervisor). control_stats_parse returns 0 or -EINVAL. */
char *control_stats_json(const control_stats_t *st);
struct json_t;
int control_stats_parse(const struct json_t *obj, control_stats_t *out);

#endif
