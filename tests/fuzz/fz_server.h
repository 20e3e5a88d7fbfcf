/* fz_server.h - a real HTTP server (common/http.h) for the fuzz targets
 * that take bytes from a socket: the server the workers run, on its own
 * loop in this thread, accepting on an abstract unix socket; each input
 * goes to it on a new connection, as a client would send it.
 *
 * DESIGN. An exchange writes the input, then lets the loop run until the
 * server has taken every byte and nothing happens any more (no reply
 * bytes, no request completed, no pool job pending, over a few polls), then
 * shuts down the sending side, as a client that has said all it will, and
 * reads until the server closes the connection. A server that keeps it
 * open for FZ_SERVER_HANG_MS is a finding (a connection a client could
 * hold for ever); one closed by request_timeout (1 s) is only slow.
 * Loop thread only. */
#ifndef VAPORA_FZ_SERVER_H
#define VAPORA_FZ_SERVER_H

#include <stddef.h>

#include "http.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "sbuf.h"

#define FZ_SERVER_HANG_MS 10000

typedef struct fz_server fz_server_t;

/* The defaults (http_config_defaults) with service "fuzz" and a 1 s
 * request_timeout, for a target to adjust. */
void fz_server_config(http_config_t *cfg);
/* A loop, metrics and a server with cfg (routes still to be added); the
 * process's log is cut down to errors. Aborts on failure. Lives until the
 * process ends (libFuzzer never returns). */
fz_server_t *fz_server_new(const http_config_t *cfg);
loop_t *fz_server_loop(fz_server_t *s);
metrics_t *fz_server_metrics(fz_server_t *s);
http_server_t *fz_server_http(fz_server_t *s);
/* A pool whose jobs an exchange waits for (the routes' own, if any). */
void fz_server_watch_pool(fz_server_t *s, pool_t *pool);
/* Work elsewhere an exchange waits for (a thread of the routes' own, such
 * as the backend's store writer): busy(ud) says whether some is under way,
 * and its end must make an event on the loop (a mailbox does). */
void fz_server_watch_busy(fz_server_t *s, bool (*busy)(void *ud), void *ud);
/* Starts accepting. */
void fz_server_start(fz_server_t *s);

/* Sends data on a new connection and runs the loop until the server has
 * closed it (see DESIGN); the first bytes of what it answered go to reply
 * (NULL: dropped). */
void fz_server_exchange(fz_server_t *s, const void *data, size_t len, sbuf_t *reply);

#endif
