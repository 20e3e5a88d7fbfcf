/* harness_http.h - a minimal HTTP/1.1 client over raw TCP sockets to
 * 127.0.0.1, for talking to the programs under test like a client would,
 * down to the bytes when a test needs to (pipelining, half requests,
 * ambiguous framing).
 *
 * DESIGN. The client keeps one receive buffer per connection; a response is
 * parsed out of its front and whatever follows stays for the next one. All
 * sockets are non-blocking and every wait is a poll() bounded by a deadline
 * computed once per call, so a call never takes longer than its timeout.
 * Connections and responses are on per-process lists that th_cleanup()
 * (harness.h) releases, so a test that fails half way leaks nothing.
 *
 * Main thread only, except th_call() (and th__tcp_connect()), which touch
 * no list. Errors are 0 / -errno, pointers NULL on failure. */
#ifndef VAPORA_TEST_HARNESS_HTTP_H
#define VAPORA_TEST_HARNESS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* The header line of a JSON request body. */
#define TH_JSON_CT "Content-Type: application/json\r\n"

typedef struct th_conn th_conn_t;

/* Opens a TCP connection to 127.0.0.1:port (keep-alive is the HTTP/1.1
 * default). NULL on failure or timeout, errno set. Owned by the harness
 * list; close with th_conn_close(). */
th_conn_t *th_connect(int port, int timeout_ms);

/* Closes the socket and frees c. Accepts NULL; sets *cp = NULL. */
void th_conn_close(th_conn_t **cp);

/* The socket of c, to check that a connection stayed the same one. */
int th_conn_fd(const th_conn_t *c);

/* Sends len raw bytes. Returns 0, -ETIMEDOUT, or -errno (-EPIPE when the
 * peer has closed). */
int th_send_raw(th_conn_t *c, const void *data, size_t len, int timeout_ms);

/* Sends "METHOD path HTTP/1.1", Host, the header lines of headers (each
 * ending in "\r\n"; may be NULL), then Content-Length and body when body is
 * non-NULL. Returns as th_send_raw. */
int th_send_request(th_conn_t *c, const char *method, const char *path,
                    const char *headers, const void *body, size_t body_len);

typedef struct th_header {
    char *name, *value;
} th_header_t;

/* A parsed response. Owned by the harness list; free with th_resp_free(). */
typedef struct th_resp th_resp_t;
struct th_resp {
    int status;
    th_header_t *headers;
    size_t nheaders;
    char *body; /* NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
    th_resp_t *prev, *next;
};

/* Reads one response: status line, headers, and a body delimited by
 * Content-Length, chunked encoding, or (neither) the peer closing. Returns
 * 0 and *out; -ETIMEDOUT; -ECONNRESET when the peer closed or reset before
 * a whole response arrived; -EPROTO when it is not HTTP. */
int th_read_response(th_conn_t *c, th_resp_t **out, int timeout_ms);

/* Waits until the peer closes (EOF or reset), discarding any data. Returns
 * 0, or -ETIMEDOUT when it stayed open. */
int th_wait_closed(th_conn_t *c, int timeout_ms);

/* Whether the peer has closed c by now, without waiting (discards any data
 * that arrived). */
bool th_peer_closed(th_conn_t *c);

/* One exchange on a new connection, closed afterwards. Returns as
 * th_read_response; on failure *out is NULL. */
int th_request(int port, const char *method, const char *path, const char *headers,
               const char *body, th_resp_t **out);

/* One exchange on a new connection within timeout_ms, like th_request but
 * thread-safe: it touches none of the harness lists, so client threads a
 * test starts itself may use it (with every signal blocked in them). body
 * is NUL-terminated (NULL: none). Returns the status (100..599), or -errno
 * as th_read_response when no whole response arrived. *resp_body, when
 * resp_body is non-NULL, receives the response body (NUL-terminated, caller
 * frees) or NULL on failure. */
int th_call(int port, const char *method, const char *path, const char *headers,
            const char *body, char **resp_body, int timeout_ms);

/* The value of a response header (case-insensitive name), or NULL. */
const char *th_resp_header(const th_resp_t *r, const char *name);

/* Frees r. Accepts NULL; sets *rp = NULL. */
void th_resp_free(th_resp_t **rp);

/* ---- for th_cleanup() and the other harness modules ---- */

/* Connects a non-blocking socket to 127.0.0.1:port before deadline
 * (th_now_ms() time), TCP_NODELAY on. Returns the fd or -errno.
 * Thread-safe. */
int th__tcp_connect(int port, long long deadline);

/* Sends len bytes on the non-blocking socket fd before deadline. Returns 0,
 * -ETIMEDOUT, or -errno (-EPIPE when the peer has closed). Thread-safe. */
int th__send(int fd, const char *data, size_t len, long long deadline);

/* Receives up to room - 1 bytes into buf (NUL-terminated after what came),
 * waiting until deadline. Returns the bytes read, -ECONNRESET on EOF or
 * reset, -ETIMEDOUT, or -errno. Thread-safe. */
int th__recv(int fd, char *buf, size_t room, long long deadline);

/* Frees every response and closes every connection still on the lists. */
void th__http_release(void);

#endif
