/* fuzz_ws.c - WebSocket frames from a client (common/ws.c on wslay, behind
 * the HTTP layer's upgrade): masking, fragments, control frames, close
 * codes, lengths, the message cap, and frames that arrive with the
 * upgrade request itself. Text messages are echoed back from the loop, as
 * a service would answer them (never from inside wslay's receive: ws.h).
 *
 * Input: a byte, then what the client sends. Byte even: a valid upgrade
 * request goes first and the rest is frames; odd: the client sends the
 * rest as it is, upgrade request included (ws_accept's checks).
 * Properties: no crash, no leak, and the session ends once the client has
 * sent everything (fz_server.h). */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "fz.h"
#include "fz_server.h"
#include "ws.h"

#define FZ_UPGRADE                                                                     \
    "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"     \
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

static fz_server_t *s_srv;
static ws_hub_t *s_hub;
static ws_t *s_ws;    /* the open session, once it has sent a message */
static sbuf_t s_echo; /* text received, to echo */
static bool s_echo_due;

static void s_on_message(ws_t *ws, int text, const uint8_t *data, size_t len, void *ud)
{
    UNUSED(ud);
    s_ws = ws;
    if (text && s_echo.len < 65536) {
        if (len) /* an empty message comes as NULL */
            sbuf_append(&s_echo, data, len);
        s_echo_due = true;
    }
}

static void s_on_closed(ws_t *ws, void *ud)
{
    UNUSED(ud);
    if (ws == s_ws)
        s_ws = NULL;
    sbuf_reset(&s_echo);
    s_echo_due = false;
}

/* The echo goes out from the loop, after wslay's receive has returned. */
static int64_t s_send_echo(loop_t *loop, void *ud)
{
    UNUSED(loop);
    UNUSED(ud);
    if (!s_echo_due || !s_ws)
        return -1;
    s_echo_due = false;
    ws_t *ws = s_ws;
    if (s_echo.len > 6 && memcmp(s_echo.data, "close:", 6) == 0)
        ws_close(ws, 1000, s_echo.data + 6);
    else
        ws_send_text(ws, s_echo.data ? s_echo.data : "", s_echo.len);
    sbuf_reset(&s_echo);
    return 0;
}

static void s_route(http_req_t *req, void *ud)
{
    UNUSED(ud);
    ws_accept(s_hub, req, s_on_message, s_on_closed, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    UNUSED(argc);
    UNUSED(argv);
    http_config_t cfg;
    fz_server_config(&cfg);
    s_srv = fz_server_new(&cfg);
    ws_config_t wc = {.max_queue = 8192,
                      .max_message = 2048,
                      .ping_interval = 20,
                      .idle_timeout = 60};
    s_hub = ws_hub_new(fz_server_loop(s_srv), fz_server_http(s_srv), &wc);
    loop_add_before_sleep(fz_server_loop(s_srv), s_send_echo, NULL);
    http_route(fz_server_http(s_srv), "GET", "/ws", 0, s_route, NULL);
    fz_server_start(s_srv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    bool raw = fz_byte(&in) & 1;
    if (raw) {
        fz_server_exchange(s_srv, in.data, in.len, NULL);
        return 0;
    }
    size_t hl = sizeof FZ_UPGRADE - 1;
    uint8_t *buf = malloc(hl + in.len);
    FZ_CHECK(buf, "out of memory");
    memcpy(buf, FZ_UPGRADE, hl);
    if (in.len)
        memcpy(buf + hl, in.data, in.len);
    fz_server_exchange(s_srv, buf, hl + in.len, NULL);
    free(buf);
    return 0;
}
