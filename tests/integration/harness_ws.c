/* harness_ws.c - see harness_ws.h. */
#define _GNU_SOURCE
#include "harness_ws.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_base.h"
#include "harness_http.h"
#include "harness_keep.h"

int th_ws_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t off = 0;
    while (off < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        ssize_t n = read(fd, (char *)buf + off, len - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* The upgrade request for path, with RFC 6455's own example key (kept). */
const char *th_ws_upgrade_request(const char *path)
{
    return th_fmt(
        "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        path);
}

/* Opens ws://127.0.0.1:port/path; returns the fd after a checked 101. */
int th_ws_open(int port, const char *path)
{
    th_conn_t *c = th_connect(port, 3000);
    cr_assert_not_null(c);
    int fd = dup(th_conn_fd(c));
    th_conn_close(&c);
    const char *req = th_ws_upgrade_request(path);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char head[2048] = "";
    size_t off = 0;
    while (off < sizeof head - 1 && !strstr(head, "\r\n\r\n")) {
        cr_assert_eq(th_ws_read_full(fd, head + off, 1, 3000), 0, "no upgrade answer");
        head[++off] = '\0';
    }
    cr_assert(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
    /* RFC 6455's own example key and answer. */
    cr_assert(strcasestr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
              "%s", head);
    return fd;
}

/* Reads one frame; returns its opcode and the payload (caller frees). */
int th_ws_read(int fd, char **payload, size_t *len, int timeout_ms)
{
    unsigned char h[2];
    if (th_ws_read_full(fd, h, 2, timeout_ms) < 0)
        return -1;
    cr_assert_eq(h[1] & 0x80, 0, "server frames must not be masked");
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        unsigned char e[2];
        cr_assert_eq(th_ws_read_full(fd, e, 2, timeout_ms), 0);
        n = ((uint64_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        unsigned char e[8];
        cr_assert_eq(th_ws_read_full(fd, e, 8, timeout_ms), 0);
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | e[i];
    }
    *payload = calloc(1, n + 1);
    *len = n;
    cr_assert_eq(th_ws_read_full(fd, *payload, n, timeout_ms), 0);
    return h[0] & 0x0f;
}

void th_ws_write(int fd, int opcode, const char *data, size_t len)
{
    unsigned char f[140];
    cr_assert_lt(len, 126);
    const unsigned char mask[4] = {1, 2, 3, 4};
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = (unsigned char)data[i] ^ mask[i % 4];
    cr_assert_eq(write(fd, f, 6 + len), (ssize_t)(6 + len));
}

/* Reads text frames until one whose "type" is type arrives. */
json_t *th_ws_wait_event(int fd, const char *type, int timeout_ms)
{
    long long end = th_now_ms() + timeout_ms;
    while (th_now_ms() < end) {
        char *p = NULL;
        size_t n = 0;
        int op = th_ws_read(fd, &p, &n, (int)(end - th_now_ms()));
        if (op < 0) {
            free(p);
            break;
        }
        json_t *j = op == 1 ? json_loadb(p, n, 0, NULL) : NULL;
        free(p);
        if (j && strcmp(json_string_value(json_object_get(j, "type")), type) == 0)
            return j;
        json_decref(j);
    }
    return NULL;
}
