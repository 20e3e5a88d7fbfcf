/* ws.h - WebSocket sessions on the worker's loop: libmicrohttpd's upgrade
 * hands us the socket, wslay does the framing (RFC 6455).
 *
 * DESIGN. The upgraded socket joins our loop (MHD no longer watches it);
 * we read on EPOLLIN and write on EPOLLOUT only while wslay has something
 * to send. Every session has a send queue capped at max_queue bytes, and
 * its socket's kernel send buffer is held to 64 KiB (the kernel would
 * otherwise grow it to megabytes): a client that does not read is closed
 * dropped before it costs unbounded memory. A close handshake the peer does
 * not answer within 5 s ends the session anyway. Incoming messages are capped at
 * max_message bytes (1009). A ping goes out every ping_interval seconds; a session
 * silent for idle_timeout seconds is closed. Sessions end through MHD (never close() on
 * the fd).
 *
 * Loop thread only. */
#ifndef VAPORA_WS_H
#define VAPORA_WS_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"

typedef struct ws ws_t;
typedef struct ws_hub ws_hub_t;

typedef struct ws_config {
    size_t max_queue;       /* bytes waiting to be sent; default 1 MiB */
    size_t max_message;     /* bytes of one incoming message; default 64 KiB */
    unsigned ping_interval; /* seconds; default 20 */
    unsigned idle_timeout;  /* seconds without any frame; default 60 */
} ws_config_t;

/* A message from the client (text or binary; control frames are handled).
 * It runs inside wslay's receive: do not call ws_send_text or ws_close on
 * ws from here (either may end the session, and free it, while wslay still
 * uses it); act afterwards from the loop (a timer, a hook), as the
 * backend's broadcast does. */
typedef void (*ws_message_fn)(ws_t *ws, int text, const uint8_t *data, size_t len,
                              void *ud);
/* The session is gone; ws is invalid after this returns. ws is NULL when
 * the client left before the 101 went out (the session never opened). */
typedef void (*ws_closed_fn)(ws_t *ws, void *ud);

/* A set of sessions on one loop and HTTP server. cfg may be NULL. */
ws_hub_t *ws_hub_new(loop_t *loop, http_server_t *http, const ws_config_t *cfg);
/* Closes every session (1001 going away) and frees the hub. Accepts NULL. */
void ws_hub_destroy(ws_hub_t **hp);
unsigned ws_hub_count(const ws_hub_t *hub);
/* Calls fn for every open session (fn may close the one it is given). */
void ws_hub_each(ws_hub_t *hub, void (*fn)(ws_t *ws, void *ud), void *ud);

/* Checks that req is a WebSocket upgrade (GET, HTTP/1.1, Upgrade:
 * websocket, Sec-WebSocket-Version 13, a Sec-WebSocket-Key) and answers
 * 101; the session opens once the 101 is out. Otherwise replies 400 (or 426
 * for a wrong version) with a JSON error and returns -EINVAL. ud is the
 * session's data (see ws_data); closed() runs when it ends. */
int ws_accept(ws_hub_t *hub, http_req_t *req, ws_message_fn on_message,
              ws_closed_fn on_closed, void *ud);

/* Queues a text message. Returns 0, or -ENOBUFS when the client is too far
 * behind (the session is then closing), or -EPIPE when it is closing. */
int ws_send_text(ws_t *ws, const char *text, size_t len);
/* Starts the close handshake. */
void ws_close(ws_t *ws, uint16_t code, const char *reason);
void *ws_data(const ws_t *ws);

/* The Sec-WebSocket-Accept value of a key (28 characters + NUL). */
void ws_accept_key(const char *key, char out[29]);

#endif
