/* test_http_fixture.h - a real HTTP server (common/http.h) on this
 * thread's loop, listening on a loopback port, for the unit tests of the
 * HTTP layer, ws and curlm. Clients either run on a thread of their own
 * with blocking sockets (hfix_run) or on the same loop (curl). No mocks:
 * the server is the one the workers run. */
#ifndef VAPORA_TEST_HTTP_FIXTURE_H
#define VAPORA_TEST_HTTP_FIXTURE_H

#include <stdatomic.h>
#include <stddef.h>

#include "http.h"

typedef struct hfix {
    loop_t *loop;
    metrics_t *metrics;
    http_server_t *srv;
    int lfd;
    int port;
    atomic_int client_done;
} hfix_t;

/* Makes the loop, the metrics and the server (not started yet: add routes
 * first). cfg NULL: the defaults, with service "unit". */
void hfix_init(hfix_t *f, const http_config_t *cfg);
/* Starts the server on 127.0.0.1 and an ephemeral port (f->port). */
void hfix_start(hfix_t *f);
/* Runs client(arg) on a thread and the loop here until it returns (or
 * until something calls loop_stop), then joins it. */
void hfix_run(hfix_t *f, void *(*client)(void *), void *arg);
/* hfix_run with a client that sends req on one connection and reads the
 * reply into out (see hfix_exchange). */
void hfix_run_exchange(hfix_t *f, const char *req, char *out, size_t cap);
/* Destroys the server, then the rest. */
void hfix_fini(hfix_t *f);

/* A blocking connection to 127.0.0.1:port with 5 s read/write timeouts;
 * -1 on failure. */
int hfix_connect(int port);
/* Reads until EOF, a timeout or cap - 1 bytes; NUL-terminates. Returns the
 * length. */
size_t hfix_read_all(int fd, char *out, size_t cap);
/* Sends req on a new connection and reads the reply until the server
 * closes (send Connection: close). Returns the length read. */
size_t hfix_exchange(int port, const char *req, char *out, size_t cap);

/* A request with the Host and Connection: close headers; extra is more
 * header lines (each ending "\r\n"), then optionally "\r\n" and a body. */
#define HFIX_REQ(line, extra)                                                          \
    line " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" extra "\r\n"

#endif
