/* harness_ws.h - a minimal WebSocket client for the tests: open with a
 * checked 101 (RFC 6455's own example key), read and write frames, wait for
 * an event of a type. It asserts (criterion) what it needs. Main thread. */
#ifndef VAPORA_TEST_HARNESS_WS_H
#define VAPORA_TEST_HARNESS_WS_H

#include <jansson.h>
#include <stddef.h>

/* Reads exactly len bytes within timeout_ms for each; 0 or -1. */
int th_ws_read_full(int fd, void *buf, size_t len, int timeout_ms);
/* The upgrade request for path (kept). */
const char *th_ws_upgrade_request(const char *path);
/* Opens ws://127.0.0.1:port/path; returns the fd after a checked 101. */
int th_ws_open(int port, const char *path);
/* Reads one frame; returns its opcode (-1: none in time) and the payload
 * (the caller frees it). */
int th_ws_read(int fd, char **payload, size_t *len, int timeout_ms);
/* Writes one masked frame of a short payload (< 126 bytes). */
void th_ws_write(int fd, int opcode, const char *data, size_t len);
/* Reads text frames until one whose "type" is type arrives; NULL when
 * none in time (the caller owns the reference). */
json_t *th_ws_wait_event(int fd, const char *type, int timeout_ms);

#endif
