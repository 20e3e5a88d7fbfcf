/* ws.c - see ws.h. */
#define _GNU_SOURCE
#include "ws.h"

#include <errno.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "alloc.h"
#include "fd.h"
#include "list.h"
#include "log.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_SNDBUF (64 * 1024)
#define WS_CLOSE_TIMEOUT_MS 5000
/* Bytes read from one client per wake of the loop: a flood of frames
 * cannot hold the loop; the rest waits for the next turn. */
#define WS_READ_BUDGET (64 * 1024)
/* Replies queued for a client that does not read (pongs to its pings)
 * count against max_queue, and at most this many: an empty pong is no
 * byte of payload, yet memory all the same. */
#define WS_MAX_QUEUED 1024

struct ws {
    ws_hub_t *hub;
    int fd;
    void *urh;
    wslay_event_context_ptr ctx;
    const char *extra; /* bytes read past the request, fed first */
    size_t extra_len;
    size_t read_left; /* of WS_READ_BUDGET, this wake */
    ws_message_fn on_message;
    ws_closed_fn on_closed;
    void *ud;
    uint64_t last_seen_ms;
    uint64_t last_ping_ms;
    uint64_t closing_ms;
    bool closing;
    list_t link; /* ws_hub.sessions */
};

struct ws_hub {
    loop_t *loop;
    http_server_t *http;
    ws_config_t cfg;
    list_t sessions; /* open sessions, newest first */
    unsigned count;
    loop_timer_t *tick;
};

typedef struct pending {
    ws_hub_t *hub;
    ws_message_fn on_message;
    ws_closed_fn on_closed;
    void *ud;
} pending_t;

void ws_accept_key(const char *key, char out[29])
{
    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, strlen(key), (const uint8_t *)key);
    sha1_update(&sha, strlen(WS_GUID), (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof digest, digest);
    base64_encode_raw(out, sizeof digest, digest);
    out[28] = '\0';
}

/* ---- wslay callbacks ---- */

/* Tells wslay why a recv/send failed: "try later" or a real error. */
static ssize_t s_io_error(wslay_event_context_ptr ctx)
{
    wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                                   ? WSLAY_ERR_WOULDBLOCK
                                   : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t s_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                      void *user)
{
    UNUSED(flags);
    ws_t *ws = user;
    if (ws->extra_len) {
        size_t n = ws->extra_len < len ? ws->extra_len : len;
        memcpy(buf, ws->extra, n);
        ws->extra += n;
        ws->extra_len -= n;
        return (ssize_t)n;
    }
    if (ws->read_left == 0) { /* the budget of this wake is spent: next turn */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n = recv(ws->fd, buf, len < ws->read_left ? len : ws->read_left, 0);
    if (n < 0)
        return s_io_error(ctx);
    ws->read_left -= n > 0 ? (size_t)n : 0;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ws->last_seen_ms = loop_now_ms(ws->hub->loop);
    return n;
}

static ssize_t s_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                      int flags, void *user)
{
    ws_t *ws = user;
    ssize_t n = send(ws->fd, data, len,
                     MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
    if (n < 0)
        return s_io_error(ctx);
    return n;
}

static void s_on_msg(wslay_event_context_ptr ctx,
                     const struct wslay_event_on_msg_recv_arg *a, void *user)
{
    UNUSED(ctx);
    ws_t *ws = user;
    if ((a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) &&
        ws->on_message)
        ws->on_message(ws, a->opcode == WSLAY_TEXT_FRAME, a->msg, a->msg_length,
                       ws->ud);
}

/* ---- the session on the loop ---- */

static void s_free(ws_t *ws)
{
    ws_hub_t *hub = ws->hub;
    list_remove(&ws->link);
    hub->count--;
    loop_del_fd(hub->loop, ws->fd);
    wslay_event_context_free(ws->ctx);
    http_upgrade_close(hub->http, ws->urh);
    if (ws->on_closed)
        ws->on_closed(ws, ws->ud);
    free(ws);
}

/* Updates the fd's interest, or ends the session when wslay is done. */
static void s_update(ws_t *ws)
{
    bool r = wslay_event_want_read(ws->ctx), w = wslay_event_want_write(ws->ctx);
    if (!r && !w) {
        s_free(ws);
        return;
    }
    loop_mod_fd(ws->hub->loop, ws->fd, (r ? LOOP_READ : 0) | (w ? LOOP_WRITE : 0));
}

/* Whether what is queued for ws (its events, and the pongs wslay queues
 * for its pings) is past what a client that reads would leave. */
static bool s_overfull(ws_t *ws)
{
    return wslay_event_get_queued_msg_length(ws->ctx) > ws->hub->cfg.max_queue ||
           wslay_event_get_queued_msg_count(ws->ctx) > WS_MAX_QUEUED;
}

static void s_on_io(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(fd);
    ws_t *ws = ud;
    ws->read_left = WS_READ_BUDGET;
    if (((ev & LOOP_READ) && wslay_event_recv(ws->ctx) != 0) ||
        ((ev & (LOOP_WRITE | LOOP_READ)) && wslay_event_send(ws->ctx) != 0)) {
        s_free(ws); /* peer gone or protocol error */
        return;
    }
    if (s_overfull(ws)) {
        log_warn("websocket client does not read its replies (%zu waiting): dropping it",
                 wslay_event_get_queued_msg_count(ws->ctx));
        s_free(ws);
        return;
    }
    s_update(ws);
}

static void s_opened(void *ud, int fd, const char *extra, size_t extra_len, void *urh)
{
    pending_t *p = ud;
    if (fd < 0) { /* the client left before its 101 */
        if (p->on_closed)
            p->on_closed(NULL, p->ud);
        free(p);
        return;
    }
    ws_hub_t *hub = p->hub;
    ws_t *ws = xcalloc(1, sizeof *ws);
    ws->hub = hub;
    ws->fd = fd;
    ws->urh = urh;
    ws->extra = extra;
    ws->extra_len = extra_len;
    ws->on_message = p->on_message;
    ws->on_closed = p->on_closed;
    ws->ud = p->ud;
    free(p);
    ws->last_seen_ms = ws->last_ping_ms = loop_now_ms(hub->loop);
    static const struct wslay_event_callbacks cbs = {s_recv, s_send, NULL,    NULL,
                                                     NULL,   NULL,   s_on_msg};
    wslay_event_context_server_init(&ws->ctx, &cbs, ws);
    wslay_event_config_set_max_recv_msg_length(ws->ctx, hub->cfg.max_message);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* MHD turned it off */
    /* Without a bound the kernel autotunes a socket's send buffer up to
     * megabytes, which a client that does not read would pin: keep it
     * small, so that max_queue is what bounds a slow client. */
    int sndbuf = WS_SNDBUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    fd_set_nonblock(fd);
    list_push_front(&hub->sessions, &ws->link);
    hub->count++;
    if (loop_add_fd(hub->loop, fd, LOOP_READ, s_on_io, ws) < 0) {
        s_free(ws);
        return;
    }
    if (extra_len) /* frames that came with the request */
        s_on_io(hub->loop, fd, LOOP_READ, ws);
}

/* A Sec-WebSocket-Key is 16 bytes in base64: 22 characters and "==". */
static bool s_key_ok(const char *key)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!key || strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (!strchr(b64, key[i]))
            return false;
    /* The last character holds 2 bits of data: the rest must be zero. */
    return (strchr(b64, key[21]) - b64) % 16 == 0;
}

/* Whether the comma-separated header value lists token. */
static bool s_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t trim = len;
        while (trim && (p[trim - 1] == ' ' || p[trim - 1] == '\t'))
            trim--;
        if (trim == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

int ws_accept(ws_hub_t *hub, http_req_t *req, ws_message_fn on_message,
              ws_closed_fn on_closed, void *ud)
{
    const char *up = http_req_header(req, "Upgrade");
    const char *conn = http_req_header(req, "Connection");
    const char *key = http_req_header(req, "Sec-WebSocket-Key");
    const char *ver = http_req_header(req, "Sec-WebSocket-Version");
    const char *cl = http_req_header(req, "Content-Length");
    bool body =
        (cl && strcmp(cl, "0") != 0) || http_req_header(req, "Transfer-Encoding");
    if (strcmp(http_req_method(req), "GET") != 0 || !up ||
        strcasecmp(up, "websocket") != 0 || !conn || !s_has_token(conn, "upgrade") ||
        !s_key_ok(key) || body) {
        http_reply_error(req, 400, "not_websocket",
                         "this endpoint needs a WebSocket upgrade (GET without a "
                         "body, with Connection: Upgrade, Upgrade: websocket and a "
                         "Sec-WebSocket-Key of 16 bytes in base64)");
        return -EINVAL;
    }
    if (!http_req_can_upgrade(req)) {
        http_reply_error(req, 400, "bad_request", "an upgrade needs HTTP/1.1");
        return -EPROTO;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        http_req_add_header(req, "Sec-WebSocket-Version", "13");
        http_reply_error(req, 426, "websocket_version",
                         "only WebSocket version 13 is supported");
        return -EINVAL;
    }
    char accept[29];
    ws_accept_key(key, accept);
    http_req_add_header(req, "Upgrade", "websocket");
    http_req_add_header(req, "Sec-WebSocket-Accept", accept);
    pending_t *p = xmalloc(sizeof *p);
    *p = (pending_t){hub, on_message, on_closed, ud};
    if (http_reply_upgrade(req, s_opened, p) < 0) {
        free(p);
        return -EPROTO;
    }
    return 0;
}

int ws_send_text(ws_t *ws, const char *text, size_t len)
{
    if (ws->closing || wslay_event_get_close_sent(ws->ctx))
        return -EPIPE;
    if (wslay_event_get_queued_msg_length(ws->ctx) + len > ws->hub->cfg.max_queue) {
        /* It does not read, so a close handshake would never finish: drop
         * it now, with everything queued for it. */
        log_warn("websocket client too slow (%zu bytes waiting): dropping it",
                 wslay_event_get_queued_msg_length(ws->ctx));
        s_free(ws);
        return -ENOBUFS;
    }
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return -EPIPE;
    if (wslay_event_send(ws->ctx) != 0) {
        s_free(ws);
        return -EPIPE;
    }
    s_update(ws);
    return 0;
}

void ws_close(ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->closing)
        return;
    ws->closing = true;
    ws->closing_ms = loop_now_ms(ws->hub->loop);
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, strlen(reason));
    if (wslay_event_send(ws->ctx) != 0)
        s_free(ws);
    else
        s_update(ws);
}

void *ws_data(const ws_t *ws)
{
    return ws->ud;
}

/* ---- the hub ---- */

static void s_tick(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(t);
    ws_hub_t *hub = ud;
    uint64_t now = loop_now_ms(loop);
    list_for_each_safe(it, next, &hub->sessions) {
        ws_t *ws = list_item(it, ws_t, link);
        if (ws->closing && now - ws->closing_ms > WS_CLOSE_TIMEOUT_MS) {
            s_free(ws); /* the peer never answered our close */
            continue;
        }
        if (!ws->closing &&
            now - ws->last_seen_ms > (uint64_t)hub->cfg.idle_timeout * 1000) {
            ws_close(ws, 1001, "idle");
            continue;
        }
        if (!ws->closing &&
            now - ws->last_ping_ms >= (uint64_t)hub->cfg.ping_interval * 1000) {
            struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *)"", 0};
            ws->last_ping_ms = now;
            if (wslay_event_queue_msg(ws->ctx, &ping) == 0 &&
                wslay_event_send(ws->ctx) != 0)
                s_free(ws);
            else
                s_update(ws);
        }
    }
}

ws_hub_t *ws_hub_new(loop_t *loop, http_server_t *http, const ws_config_t *cfg)
{
    ws_hub_t *hub = xcalloc(1, sizeof *hub);
    hub->loop = loop;
    hub->http = http;
    list_init(&hub->sessions);
    hub->cfg = cfg ? *cfg
                   : (ws_config_t){.max_queue = 1 << 20,
                                   .max_message = 64 << 10,
                                   .ping_interval = 20,
                                   .idle_timeout = 60};
    hub->tick = loop_add_timer(loop, 1000, 1000, s_tick, hub);
    return hub;
}

void ws_hub_destroy(ws_hub_t **hp)
{
    ws_hub_t *hub = hp ? *hp : NULL;
    if (!hub)
        return;
    list_t *first;
    while ((first = list_first(&hub->sessions))) {
        ws_t *ws = list_item(first, ws_t, link);
        ws_close(ws, 1001, "server stopping");
        if (list_first(&hub->sessions) == first) /* still there: close queued */
            s_free(ws);
    }
    loop_cancel_timer(hub->loop, &hub->tick);
    free(hub);
    *hp = NULL;
}

unsigned ws_hub_count(const ws_hub_t *hub)
{
    return hub->count;
}

void ws_hub_each(ws_hub_t *hub, void (*fn)(ws_t *ws, void *ud), void *ud)
{
    list_for_each_safe(it, next, &hub->sessions)
        fn(list_item(it, ws_t, link), ud);
}
