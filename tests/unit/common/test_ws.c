/* test_ws.c - unit tests for common/ws.c: the accept key (RFC 6455), the
 * handshake's checks, echo through a real upgraded connection (frames sent
 * with the request included), the incoming message cap (1009), dropping a
 * client that does not read once its queue passes max_queue, the ping and
 * idle timers, the close timeout, and the hub's broadcast and shutdown.
 *
 * The server is the real one (test_http_fixture.h) on this thread's loop;
 * a tiny WebSocket client with blocking sockets runs on a thread. The
 * session callbacks only record what happened: the server acts from loop
 * timers, as services do (see ws.h on what on_message may call). */
#define _GNU_SOURCE
#include "ws.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "now.h"
#include "test_http_fixture.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define WS_HEADERS                                                                     \
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"       \
    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define WS_UPGRADE "GET /ws HTTP/1.1\r\nHost: t\r\n" WS_HEADERS "\r\n"

enum { OP_TEXT = 1, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

Test(ws, accept_key_is_rfc6455s)
{
    char out[29];
    ws_accept_key(RFC_KEY, out);
    cr_assert_str_eq(out, RFC_ACCEPT);
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out);
    cr_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

/* ---- the server side ---- */

typedef struct ctx {
    hfix_t h;
    ws_hub_t *hub;
    ws_config_t cfg;
    atomic_int closed;   /* sessions ended (on_closed) */
    atomic_int messages; /* messages received */
    ws_t *last;          /* the session of the last message (loop thread) */
    char msg[4096];
    size_t msg_len;
    int flood_rc; /* what ws_send_text returned when the flood stopped */
    int flood_sent;
    atomic_int order; /* an action the client asks of the loop thread */
    int client_ok;    /* set by the client thread when everything it saw was right */
    char detail[256];
} ctx_t;

static void s_flood(ctx_t *c, ws_t *ws)
{
    static char chunk[16 * 1024];
    memset(chunk, 'x', sizeof chunk);
    c->flood_rc = 0;
    for (c->flood_sent = 0; c->flood_sent < 4096 && c->flood_rc == 0; c->flood_sent++)
        c->flood_rc = ws_send_text(ws, chunk, sizeof chunk);
}

/* Acts on the last message outside wslay's callbacks: "flood", "close-me",
 * "quiet" (nothing), or an echo. */
static void s_act(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    ctx_t *c = ud;
    ws_t *ws = c->last;
    if (!ws)
        return;
    if (c->msg_len == 5 && memcmp(c->msg, "flood", 5) == 0)
        s_flood(c, ws);
    else if (c->msg_len == 8 && memcmp(c->msg, "close-me", 8) == 0)
        ws_close(ws, 1000, "bye");
    else if (!(c->msg_len == 5 && memcmp(c->msg, "quiet", 5) == 0))
        cr_assert_eq(ws_send_text(ws, c->msg, c->msg_len), 0);
}

static void s_on_message(ws_t *ws, int text, const uint8_t *data, size_t len, void *ud)
{
    ctx_t *c = ud;
    cr_assert_eq(ws_data(ws), c);
    cr_assert(text);
    c->last = ws;
    c->msg_len = len < sizeof c->msg ? len : sizeof c->msg;
    memcpy(c->msg, data, c->msg_len);
    atomic_fetch_add(&c->messages, 1);
    loop_add_timer(c->h.loop, 0, 0, s_act, c);
}

static void s_on_closed(ws_t *ws, void *ud)
{
    ctx_t *c = ud;
    if (c->last == ws)
        c->last = NULL;
    atomic_fetch_add(&c->closed, 1);
}

enum { ORDER_NONE, ORDER_BROADCAST, ORDER_STOP_HUB };

static void s_send_all(ws_t *ws, void *ud)
{
    (void)ud;
    cr_assert_eq(ws_send_text(ws, "to all", 6), 0);
}

/* Carries out what the client thread asked for (loop-thread calls). */
static int64_t s_orders(loop_t *loop, void *ud)
{
    (void)loop;
    ctx_t *c = ud;
    int o = atomic_exchange(&c->order, ORDER_NONE);
    if (o == ORDER_BROADCAST)
        ws_hub_each(c->hub, s_send_all, NULL);
    else if (o == ORDER_STOP_HUB)
        ws_hub_destroy(&c->hub);
    return -1;
}

static void s_route_ws(http_req_t *req, void *ud)
{
    ctx_t *c = ud;
    ws_accept(c->hub, req, s_on_message, s_on_closed, c);
}

static ws_config_t s_cfg(size_t max_queue, size_t max_message, unsigned ping_interval,
                         unsigned idle_timeout)
{
    return (ws_config_t){max_queue, max_message, ping_interval, idle_timeout};
}

static void s_setup(ctx_t *c, const ws_config_t *cfg)
{
    memset(c, 0, sizeof *c);
    hfix_init(&c->h, NULL);
    c->cfg = cfg ? *cfg : s_cfg(1 << 20, 64 << 10, 20, 60);
    c->hub = ws_hub_new(c->h.loop, c->h.srv, &c->cfg);
    cr_assert_eq(http_route(c->h.srv, "GET", "/ws", 0, s_route_ws, c), 0);
    loop_add_before_sleep(c->h.loop, s_orders, c);
    hfix_start(&c->h);
}

/* Sets up with cfg (NULL: ws.h's defaults), runs client on a thread until
 * it returns, and checks that it saw what it expected. */
static void s_run_client(ctx_t *c, const ws_config_t *cfg, void *(*client)(void *))
{
    s_setup(c, cfg);
    hfix_run(&c->h, client, c);
    cr_assert(c->client_ok, "%s", c->detail);
}

static void s_teardown(ctx_t *c)
{
    ws_hub_destroy(&c->hub);
    cr_assert_null(c->hub);
    hfix_fini(&c->h);
}

/* ---- a tiny client ---- */

static bool s_read_exact(int fd, void *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = read(fd, (char *)buf + off, n - off);
        if (r <= 0)
            return false;
        off += (size_t)r;
    }
    return true;
}

/* Reads the response head byte by byte (frames may follow it). Returns the
 * status code, or -1. */
static int s_read_head(int fd, char *head, size_t cap)
{
    size_t n = 0;
    while (n < cap - 1 && s_read_exact(fd, head + n, 1)) {
        head[++n] = '\0';
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            return atoi(head + 9);
    }
    return -1;
}

/* Appends a masked frame (FIN set) to out; returns its length. */
static size_t s_frame(uint8_t *out, int opcode, const void *data, size_t len)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const uint8_t *)data)[i] ^ mask[i % 4];
    return h + len;
}

static bool s_send_frame(int fd, int opcode, const void *data, size_t len)
{
    uint8_t *buf = malloc(len + 16);
    size_t n = s_frame(buf, opcode, data, len);
    bool ok = write(fd, buf, n) == (ssize_t)n;
    free(buf);
    return ok;
}

/* Reads one frame from the server (unmasked). Returns its opcode, or -1 on
 * EOF, a timeout, or a payload over cap. */
static int s_read_frame(int fd, uint8_t *payload, size_t cap, size_t *len)
{
    uint8_t h[2];
    if (!s_read_exact(fd, h, 2) || (h[1] & 0x80))
        return -1;
    uint64_t n = h[1] & 0x7f;
    uint8_t ext[8];
    if (n == 126) {
        if (!s_read_exact(fd, ext, 2))
            return -1;
        n = (uint64_t)ext[0] << 8 | ext[1];
    } else if (n == 127) {
        if (!s_read_exact(fd, ext, 8))
            return -1;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | ext[i];
    }
    if (n > cap || !s_read_exact(fd, payload, n))
        return -1;
    *len = n;
    return h[0] & 0x0f;
}

/* Connects and upgrades; returns the fd, or -1. */
static int s_open(int port)
{
    int fd = hfix_connect(port);
    char head[1024];
    if (fd < 0 || write(fd, WS_UPGRADE, strlen(WS_UPGRADE)) < 0 ||
        s_read_head(fd, head, sizeof head) != 101) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Expects a close frame with code; answers it when `answer`. */
static bool s_expect_close(int fd, uint16_t code, const char *reason, bool answer)
{
    uint8_t p[256];
    size_t n;
    int op;
    while ((op = s_read_frame(fd, p, sizeof p, &n)) == OP_PING)
        ;
    if (op != OP_CLOSE || n < 2 || (p[0] << 8 | p[1]) != code)
        return false;
    if (reason && (n - 2 != strlen(reason) || memcmp(p + 2, reason, n - 2) != 0))
        return false;
    return !answer || s_send_frame(fd, OP_CLOSE, p, 2);
}

/* Whether the server closes the connection (rather than a timeout): EOF,
 * or a reset when it closed with bytes of ours unread. */
static bool s_eof(int fd)
{
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        ;
    return r == 0 || errno == ECONNRESET;
}

#define CHECK(c, cond)                                                                 \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            snprintf((c)->detail, sizeof(c)->detail, "line %d: %s", __LINE__, #cond);  \
            return NULL;                                                               \
        }                                                                              \
    } while (0)

static void s_wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 1000 && atomic_load(v) < want; i++)
        usleep(10 * 1000);
}

static void s_order(ctx_t *c, int order)
{
    atomic_store(&c->order, order);
    loop_wakeup(c->h.loop);
}

/* ---- handshake ---- */

static void *s_handshake_client(void *arg)
{
    ctx_t *c = arg;
    int fd = hfix_connect(c->h.port);
    CHECK(c, fd >= 0);
    /* A frame sent together with the request is read too. */
    uint8_t buf[1024];
    size_t n = strlen(WS_UPGRADE);
    memcpy(buf, WS_UPGRADE, n);
    n += s_frame(buf + n, OP_TEXT, "hello", 5);
    CHECK(c, write(fd, buf, n) == (ssize_t)n);
    char head[1024];
    CHECK(c, s_read_head(fd, head, sizeof head) == 101);
    CHECK(c, strstr(head, "\r\nUpgrade: websocket\r\n"));
    CHECK(c, strstr(head, "\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
    uint8_t p[64];
    CHECK(c, s_read_frame(fd, p, sizeof p, &n) == OP_TEXT);
    CHECK(c, n == 5 && memcmp(p, "hello", 5) == 0);
    CHECK(c, s_send_frame(fd, OP_TEXT, "again", 5));
    CHECK(c, s_read_frame(fd, p, sizeof p, &n) == OP_TEXT);
    CHECK(c, n == 5 && memcmp(p, "again", 5) == 0);
    /* wslay answers a ping by itself. */
    CHECK(c, s_send_frame(fd, OP_PING, "pi", 2));
    CHECK(c, s_read_frame(fd, p, sizeof p, &n) == OP_PONG && n == 2);
    /* Our close is answered and the session ends. */
    CHECK(c, s_send_frame(fd, OP_CLOSE, "\x03\xe8", 2));
    CHECK(c, s_read_frame(fd, p, sizeof p, &n) == OP_CLOSE);
    CHECK(c, s_eof(fd));
    close(fd);
    s_wait_for(&c->closed, 1);
    c->client_ok = 1;
    return NULL;
}

Test(ws, handshake_echo_ping_and_close, .timeout = 20)
{
    static ctx_t c;
    s_run_client(&c, NULL, s_handshake_client);
    cr_assert_eq(atomic_load(&c.messages), 2);
    cr_assert_eq(atomic_load(&c.closed), 1);
    cr_assert_eq(ws_hub_count(c.hub), 0);
    s_teardown(&c);
}

typedef struct refusal {
    const char *req;
    const char *status;
    const char *part;
} refusal_t;

static const refusal_t s_refusals[] = {
    {"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "HTTP/1.1 400",
     "not_websocket"},
    {"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: close\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
     "HTTP/1.1 400", "not_websocket"}, /* Connection does not list upgrade */
    {"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: close, "
     "Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
     "HTTP/1.1 400", "not_websocket"}, /* a key that is not 16 bytes */
    {"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: close, "
     "Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n\r\n",
     "HTTP/1.1 400", "not_websocket"}, /* padding bits set */
    {"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: close, "
     "Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " RFC_KEY
     "\r\nContent-Length: 2\r\n\r\nhi",
     "HTTP/1.1 400", "not_websocket"}, /* a body */
    {"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: close, "
     "Upgrade\r\n"
     "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
     "HTTP/1.1 426", "Sec-WebSocket-Version: 13\r\n"},
    {"GET /ws HTTP/1.0\r\nHost: t\r\n" WS_HEADERS "\r\n", "HTTP/1.1 400",
     "an upgrade needs HTTP/1.1"},
};

static void *s_refusal_client(void *arg)
{
    ctx_t *c = arg;
    for (size_t i = 0; i < sizeof s_refusals / sizeof s_refusals[0]; i++) {
        char resp[2048];
        hfix_exchange(c->h.port, s_refusals[i].req, resp, sizeof resp);
        if (strncmp(resp, s_refusals[i].status, strlen(s_refusals[i].status)) != 0 ||
            !strstr(resp, s_refusals[i].part)) {
            snprintf(c->detail, sizeof c->detail, "refusal %zu: %.200s", i, resp);
            return NULL;
        }
    }
    c->client_ok = 1;
    return NULL;
}

Test(ws, handshakes_that_are_not_websocket_13_are_refused, .timeout = 20)
{
    static ctx_t c;
    s_run_client(&c, NULL, s_refusal_client);
    cr_assert_eq(ws_hub_count(c.hub), 0);
    s_teardown(&c);
}

/* ---- limits ---- */

static void *s_big_client(void *arg)
{
    ctx_t *c = arg;
    int fd = s_open(c->h.port);
    CHECK(c, fd >= 0);
    static char big[2048];
    memset(big, 'b', sizeof big);
    uint8_t p[2048];
    size_t n;
    CHECK(c, s_send_frame(fd, OP_TEXT, big, 1024)); /* at the cap: fine */
    CHECK(c, s_read_frame(fd, p, sizeof p, &n) == OP_TEXT && n == 1024);
    CHECK(c, s_send_frame(fd, OP_TEXT, big, 1025));
    CHECK(c, s_expect_close(fd, 1009, NULL, true));
    CHECK(c, s_eof(fd));
    close(fd);
    s_wait_for(&c->closed, 1);
    c->client_ok = 1;
    return NULL;
}

Test(ws, a_message_over_max_message_is_closed_1009, .timeout = 20)
{
    static ctx_t c;
    ws_config_t cfg = s_cfg(1 << 20, 1024, 20, 60);
    s_run_client(&c, &cfg, s_big_client);
    cr_assert_eq(atomic_load(&c.messages), 1);
    cr_assert_eq(atomic_load(&c.closed), 1);
    s_teardown(&c);
}

static void *s_slow_client(void *arg)
{
    ctx_t *c = arg;
    int fd = s_open(c->h.port);
    CHECK(c, fd >= 0);
    CHECK(c, s_send_frame(fd, OP_TEXT, "flood", 5));
    s_wait_for(&c->closed, 1); /* reading nothing meanwhile */
    CHECK(c, atomic_load(&c->closed) == 1);
    CHECK(c, s_eof(fd)); /* what was sent, then the end */
    close(fd);
    c->client_ok = 1;
    return NULL;
}

Test(ws, a_client_that_does_not_read_is_dropped_at_max_queue, .timeout = 30)
{
    static ctx_t c;
    ws_config_t cfg = s_cfg(64 << 10, 1024, 20, 60);
    s_run_client(&c, &cfg, s_slow_client);
    cr_assert_eq(c.flood_rc, -ENOBUFS);
    /* The kernel's buffers (send buffer held to 64 KiB) and the queue's
     * 64 KiB hold what was sent: far from the 64 MiB tried. */
    cr_assert_lt(c.flood_sent, 128, "sent %d messages of 16 KiB", c.flood_sent);
    cr_assert_eq(ws_hub_count(c.hub), 0);
    s_teardown(&c);
}

/* Pings, empty and not, reading no pong: the pongs queued for it are
 * bounded like its events, and it is dropped. */
static void *s_pinging_client(void *arg)
{
    ctx_t *c = arg;
    int fd = s_open(c->h.port);
    CHECK(c, fd >= 0);
    char payload[125];
    memset(payload, 'p', sizeof payload);
    bool sent = true;
    for (int i = 0; i < 200000 && sent && !atomic_load(&c->closed); i++)
        sent = s_send_frame(fd, OP_PING, payload, i % 2 ? sizeof payload : 0);
    s_wait_for(&c->closed, 1);
    CHECK(c, atomic_load(&c->closed) == 1);
    close(fd);
    c->client_ok = 1;
    return NULL;
}

Test(ws, a_client_that_pings_without_reading_is_dropped, .timeout = 30)
{
    static ctx_t c;
    ws_config_t cfg = s_cfg(64 << 10, 1024, 20, 60);
    s_run_client(&c, &cfg, s_pinging_client);
    cr_assert_eq(ws_hub_count(c.hub), 0);
    s_teardown(&c);
}

/* ---- timers ---- */

static void *s_idle_client(void *arg)
{
    ctx_t *c = arg;
    uint64_t t0 = now_ms();
    int fd = s_open(c->h.port);
    CHECK(c, fd >= 0);
    uint8_t p[64];
    size_t n;
    CHECK(c, s_read_frame(fd, p, sizeof p, &n) == OP_PING); /* ping_interval 1 s */
    CHECK(c, n == 0);
    CHECK(c, now_ms() - t0 >= 900);
    /* Silent (no pong either) for idle_timeout: the server closes. */
    CHECK(c, s_expect_close(fd, 1001, "idle", true));
    CHECK(c, now_ms() - t0 >= 2000);
    CHECK(c, s_eof(fd));
    close(fd);
    s_wait_for(&c->closed, 1);
    c->client_ok = 1;
    return NULL;
}

Test(ws, pings_go_out_and_a_silent_client_is_closed_idle, .timeout = 30)
{
    static ctx_t c;
    ws_config_t cfg = s_cfg(1 << 20, 1024, 1, 2);
    s_run_client(&c, &cfg, s_idle_client);
    cr_assert_eq(atomic_load(&c.closed), 1);
    s_teardown(&c);
}

static void *s_mute_client(void *arg)
{
    ctx_t *c = arg;
    int fd = s_open(c->h.port);
    CHECK(c, fd >= 0);
    CHECK(c, s_send_frame(fd, OP_TEXT, "close-me", 8));
    uint64_t t0 = now_ms();
    CHECK(c, s_expect_close(fd, 1000, "bye", false)); /* and never answer */
    s_wait_for(&c->closed, 1);
    CHECK(c, atomic_load(&c->closed) == 1);
    CHECK(c, now_ms() - t0 >= 4900); /* the 5 s close timeout */
    CHECK(c, s_eof(fd));
    close(fd);
    c->client_ok = 1;
    return NULL;
}

Test(ws, an_unanswered_close_ends_the_session_after_5_s, .timeout = 30)
{
    static ctx_t c;
    s_run_client(&c, NULL, s_mute_client);
    s_teardown(&c);
}

/* ---- the hub ---- */

static void *s_hub_client(void *arg)
{
    ctx_t *c = arg;
    int fds[3];
    for (int i = 0; i < 3; i++)
        CHECK(c, (fds[i] = s_open(c->h.port)) >= 0);
    /* The sessions open once the 101 is out; a message proves each is. */
    for (int i = 0; i < 3; i++)
        CHECK(c, s_send_frame(fds[i], OP_TEXT, "quiet", 5));
    s_wait_for(&c->messages, 3);
    CHECK(c, atomic_load(&c->messages) == 3);
    s_order(c, ORDER_BROADCAST);
    uint8_t p[64];
    size_t n;
    for (int i = 0; i < 3; i++) {
        CHECK(c, s_read_frame(fds[i], p, sizeof p, &n) == OP_TEXT);
        CHECK(c, n == 6 && memcmp(p, "to all", 6) == 0);
    }
    s_order(c, ORDER_STOP_HUB);
    for (int i = 0; i < 3; i++) {
        CHECK(c, s_expect_close(fds[i], 1001, "server stopping", false));
        CHECK(c, s_eof(fds[i]));
        close(fds[i]);
    }
    CHECK(c, atomic_load(&c->closed) == 3); /* before the hub was gone */
    c->client_ok = 1;
    return NULL;
}

Test(ws, the_hub_broadcasts_and_closes_every_session_going_away, .timeout = 30)
{
    static ctx_t c;
    s_run_client(&c, NULL, s_hub_client);
    cr_assert_null(c.hub);
    s_teardown(&c);
}
