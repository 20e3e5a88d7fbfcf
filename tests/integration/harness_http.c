/* harness_http.c - see harness_http.h. */
#define _GNU_SOURCE
#include "harness_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness_base.h"

#define TH_MAX_HEAD (64 * 1024) /* a response head larger than this is -EPROTO */

struct th_conn {
    int fd;
    char *buf; /* received, not yet parsed */
    size_t len, cap;
    th_conn_t *prev, *next;
};

/* What this test process holds; th__http_release() releases all of it. */
static th_conn_t *s_conns;
static th_resp_t *s_resps;

/* ---- connections ---- */

/* Finishes a non-blocking connect(); returns 0 or -errno. */
static int s_connect_wait(int fd, long long deadline)
{
    int ev = th__poll(fd, POLLOUT, deadline);
    if (ev < 0)
        return ev;
    if (ev == 0)
        return -ETIMEDOUT;
    int err = 0;
    socklen_t sl = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        return -errno;
    return -err;
}

int th__tcp_connect(int port, long long deadline)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
    if (rc == -EINPROGRESS)
        rc = s_connect_wait(fd, deadline);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

th_conn_t *th_connect(int port, int timeout_ms)
{
    int fd = th__tcp_connect(port, th_now_ms() + timeout_ms);
    if (fd < 0) {
        errno = -fd;
        return NULL;
    }
    th_conn_t *c = calloc(1, sizeof *c);
    c->fd = fd;
    TH_LINK(s_conns, c);
    return c;
}

void th_conn_close(th_conn_t **cp)
{
    th_conn_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    *cp = NULL;
    TH_UNLINK(s_conns, c);
    close(c->fd);
    free(c->buf);
    free(c);
}

int th_conn_fd(const th_conn_t *c)
{
    return c ? c->fd : -1;
}

int th__send(int fd, const char *data, size_t len, long long deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int ev = th__poll(fd, POLLOUT, deadline);
        if (ev < 0)
            return ev;
        if (ev == 0)
            return -ETIMEDOUT;
    }
    return 0;
}

int th_send_raw(th_conn_t *c, const void *data, size_t len, int timeout_ms)
{
    return th__send(c->fd, data, len, th_now_ms() + timeout_ms);
}

/* Formats a request (head and body in one buffer, so they leave in as few
 * segments as possible); *len receives its length. The caller frees it.
 * Thread-safe. */
static char *s_format_request(const char *method, const char *path, const char *headers,
                              const void *body, size_t body_len, size_t *len)
{
    char *head = NULL;
    int n = body ? asprintf(&head,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                            "Content-Length: %zu\r\n\r\n",
                            method, path, headers ? headers : "", body_len)
                 : asprintf(&head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                            method, path, headers ? headers : "");
    if (n < 0)
        return NULL;
    char *msg = malloc((size_t)n + body_len);
    memcpy(msg, head, (size_t)n);
    if (body && body_len)
        memcpy(msg + n, body, body_len);
    free(head);
    *len = (size_t)n + body_len;
    return msg;
}

int th_send_request(th_conn_t *c, const char *method, const char *path,
                    const char *headers, const void *body, size_t body_len)
{
    size_t len = 0;
    char *msg = s_format_request(method, path, headers, body, body_len, &len);
    if (!msg)
        return -ENOMEM;
    int rc = th_send_raw(c, msg, len, TH_IO_MS);
    free(msg);
    return rc;
}

/* ---- receiving ---- */

int th__recv(int fd, char *buf, size_t room, long long deadline)
{
    for (;;) {
        ssize_t n = recv(fd, buf, room - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            return (int)n;
        }
        if (n == 0 || errno == ECONNRESET)
            return -ECONNRESET;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int ev = th__poll(fd, POLLIN, deadline);
        if (ev < 0)
            return ev;
        if (ev == 0)
            return -ETIMEDOUT;
    }
}

/* Reads what is available into c->buf, waiting until deadline. Returns as
 * th__recv(). */
static int s_fill(th_conn_t *c, long long deadline)
{
    if (c->cap - c->len < 4096) {
        c->cap = c->cap ? c->cap * 2 : 16384;
        c->buf = realloc(c->buf, c->cap);
    }
    int n = th__recv(c->fd, c->buf + c->len, c->cap - c->len, deadline);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

/* Drops the first n buffered bytes. */
static void s_consume(th_conn_t *c, size_t n)
{
    if (n == 0)
        return;
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* Ensures n bytes are buffered. Returns 0 or as s_fill. */
static int s_need(th_conn_t *c, size_t n, long long deadline)
{
    while (c->len < n) {
        int rc = s_fill(c, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Ensures the buffer holds delim; returns its offset or as s_fill. */
static long s_need_delim(th_conn_t *c, const char *delim, long long deadline)
{
    size_t dl = strlen(delim);
    for (;;) {
        char *at = c->buf ? memmem(c->buf, c->len, delim, dl) : NULL;
        if (at)
            return at - c->buf;
        if (c->len > TH_MAX_HEAD)
            return -EPROTO;
        int rc = s_fill(c, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Parses "HTTP/1.x NNN reason\r\nName: value\r\n..." (NUL-terminated,
 * without the blank line) into r. Returns 0 or -EPROTO. */
static int s_parse_head(char *head, th_resp_t *r)
{
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    if (!line || sscanf(line, "HTTP/1.%*1[01] %3d", &r->status) != 1)
        return -EPROTO;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon)
            return -EPROTO;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        r->headers = realloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
        r->headers[r->nheaders].name = strdup(line);
        r->headers[r->nheaders].value = strdup(v);
        r->nheaders++;
    }
    return 0;
}

/* Appends n bytes to the body of r. */
static void s_body_append(th_resp_t *r, const char *data, size_t n)
{
    r->body = realloc(r->body, r->body_len + n + 1);
    if (n)
        memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* Reads a chunked body (and its trailers) into r. */
static int s_read_chunked(th_conn_t *c, th_resp_t *r, long long deadline)
{
    for (;;) {
        long eol = s_need_delim(c, "\r\n", deadline);
        if (eol < 0)
            return (int)eol;
        char *end = NULL;
        unsigned long size = strtoul(c->buf, &end, 16);
        if (end == c->buf)
            return -EPROTO;
        s_consume(c, (size_t)eol + 2);
        if (size == 0)
            break;
        int rc = s_need(c, size + 2, deadline);
        if (rc < 0)
            return rc;
        s_body_append(r, c->buf, size);
        s_consume(c, size + 2);
    }
    for (;;) { /* trailers, up to the blank line */
        long eol = s_need_delim(c, "\r\n", deadline);
        if (eol < 0)
            return (int)eol;
        s_consume(c, (size_t)eol + 2);
        if (eol == 0)
            return 0;
    }
}

/* Reads the body of r as its headers say. */
static int s_read_body(th_conn_t *c, th_resp_t *r, long long deadline)
{
    const char *te = th_resp_header(r, "Transfer-Encoding");
    const char *cl = th_resp_header(r, "Content-Length");
    if (te && strcasestr(te, "chunked"))
        return s_read_chunked(c, r, deadline);
    if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        int rc = s_need(c, n, deadline);
        if (rc < 0)
            return rc;
        s_body_append(r, c->buf, n);
        s_consume(c, n);
        return 0;
    }
    if (r->status / 100 == 1 || r->status == 204 || r->status == 304)
        return 0;
    int rc;
    while ((rc = s_fill(c, deadline)) > 0) { /* delimited by the close */
    }
    if (rc != -ECONNRESET)
        return rc;
    s_body_append(r, c->buf ? c->buf : "", c->len);
    s_consume(c, c->len);
    return 0;
}

/* Frees a response that is on no list. */
static void s_resp_destroy(th_resp_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    free(r);
}

/* Reads one response into a new th_resp_t that is on no list (so this is
 * thread-safe for a connection only this thread uses). Returns as
 * th_read_response. */
static int s_read_response(th_conn_t *c, th_resp_t **out, long long deadline)
{
    *out = NULL;
    long end = s_need_delim(c, "\r\n\r\n", deadline);
    if (end < 0)
        return (int)end;
    th_resp_t *r = calloc(1, sizeof *r);
    c->buf[end] = '\0';
    int rc = s_parse_head(c->buf, r);
    s_consume(c, (size_t)end + 4);
    if (rc == 0)
        rc = s_read_body(c, r, deadline);
    if (rc == 0 && !r->body)
        s_body_append(r, "", 0);
    if (rc < 0) {
        s_resp_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

int th_read_response(th_conn_t *c, th_resp_t **out, int timeout_ms)
{
    int rc = s_read_response(c, out, th_now_ms() + timeout_ms);
    if (rc == 0)
        TH_LINK(s_resps, *out);
    return rc;
}

int th_wait_closed(th_conn_t *c, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        int rc = s_fill(c, deadline);
        s_consume(c, c->len);
        if (rc == -ECONNRESET)
            return 0;
        if (rc < 0)
            return rc;
    }
}

bool th_peer_closed(th_conn_t *c)
{
    return th_wait_closed(c, 0) == 0;
}

int th_request(int port, const char *method, const char *path, const char *headers,
               const char *body, th_resp_t **out)
{
    *out = NULL;
    th_conn_t *c = th_connect(port, TH_IO_MS);
    if (!c)
        return -errno;
    int rc = th_send_request(c, method, path, headers, body, body ? strlen(body) : 0);
    if (rc == 0)
        rc = th_read_response(c, out, TH_IO_MS);
    th_conn_close(&c);
    return rc;
}

const char *th_resp_header(const th_resp_t *r, const char *name)
{
    for (size_t i = 0; r && i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

void th_resp_free(th_resp_t **rp)
{
    th_resp_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    *rp = NULL;
    TH_UNLINK(s_resps, r);
    s_resp_destroy(r);
}

int th_call(int port, const char *method, const char *path, const char *headers,
            const char *body, char **resp_body, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    if (resp_body)
        *resp_body = NULL;
    int fd = th__tcp_connect(port, deadline);
    if (fd < 0)
        return fd;
    th_conn_t c = {.fd = fd};
    size_t len = 0;
    char *msg =
        s_format_request(method, path, headers, body, body ? strlen(body) : 0, &len);
    int rc = msg ? th__send(fd, msg, len, deadline) : -ENOMEM;
    free(msg);
    th_resp_t *r = NULL;
    if (rc == 0)
        rc = s_read_response(&c, &r, deadline);
    close(fd);
    free(c.buf);
    if (rc < 0)
        return rc;
    rc = r->status;
    if (resp_body) {
        *resp_body = r->body;
        r->body = NULL;
    }
    s_resp_destroy(r);
    return rc;
}

void th__http_release(void)
{
    while (s_resps) {
        th_resp_t *r = s_resps;
        th_resp_free(&r);
    }
    while (s_conns) {
        th_conn_t *c = s_conns;
        th_conn_close(&c);
    }
}
