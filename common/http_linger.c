/* http_linger.c - the lingering close: a connection the server ends while
 * its client may still be sending is not closed at once.
 *
 * DESIGN. Closing a socket with unread input makes the kernel send a reset,
 * and a client still sending its body (an early 413, a 400 before the
 * body) then loses our answer with the rest of its connection: it sees
 * "connection reset" and never reads the status. As nginx does, we send
 * the answer, shut down our sending side (FIN after the answer), and read
 * and drop whatever still comes until the client closes, or for at most
 * HTTP_LINGER_MS and HTTP_LINGER_BYTES, then close.
 *
 * libmicrohttpd closes the connections it owns itself; http_conn.c takes a
 * duplicate of the socket just before (MHD_CONNECTION_NOTIFY_CLOSED), so
 * that MHD's close() releases only its descriptor, and hands the duplicate
 * here, with the bytes of a reply MHD could not send (a 413 in the middle
 * of a chunked body), if any. At most HTTP_LINGER_MAX sockets linger at
 * once (more close at once), and each counts against its client's address
 * until closed. See http_internal.h for the layer's files. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "http_internal.h"

#define HTTP_LINGER_MS 5000                   /* longest a socket lingers */
#define HTTP_LINGER_BYTES (16u * 1024 * 1024) /* most input dropped */
#define HTTP_LINGER_MAX 1024                  /* sockets lingering at once */

typedef struct lingering {
    http_server_t *srv;
    int fd;
    uint64_t until_ms;
    size_t dropped;
    char *out; /* the reply still to send (owned), or NULL */
    size_t out_len, out_off;
    bool has_peer;
    uint64_t peer;
    list_t link; /* http_server.lingering */
} lingering_t;

static void s_end(lingering_t *l)
{
    http_server_t *srv = l->srv;
    loop_del_fd(srv->loop, l->fd);
    close(l->fd);
    if (l->has_peer)
        http__peer_release(srv->peers, l->peer);
    list_remove(&l->link);
    srv->nlinger--;
    free(l->out);
    free(l);
}

/* Sends what is left of the reply; then FIN. false: the socket failed. */
static bool s_flush(lingering_t *l)
{
    while (l->out_off < l->out_len) {
        ssize_t n = send(l->fd, l->out + l->out_off, l->out_len - l->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        l->out_off += (size_t)n;
    }
    free(l->out);
    l->out = NULL;
    shutdown(l->fd, SHUT_WR);
    return true;
}

/* Reads and drops what came; false once the client closed, failed, or sent
 * too much. */
static bool s_drain(lingering_t *l)
{
    static char sink[65536];
    for (;;) {
        ssize_t n = recv(l->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0) {
            l->dropped += (size_t)n;
            if (l->dropped > HTTP_LINGER_BYTES)
                return false;
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
}

static void s_on_io(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(fd);
    lingering_t *l = ud;
    if (l->out && !s_flush(l)) {
        s_end(l);
        return;
    }
    if (!l->out)
        loop_mod_fd(loop, l->fd, LOOP_READ);
    if ((ev & (LOOP_READ | LOOP_ERROR)) && !s_drain(l))
        s_end(l);
}

void http__linger(http_server_t *srv, int fd, char *out, size_t out_len,
                  const uint64_t *peer)
{
    lingering_t *l = xcalloc(1, sizeof *l);
    *l = (lingering_t){.srv = srv, .fd = fd, .out = out, .out_len = out_len};
    l->until_ms = loop_now_ms(srv->loop) + HTTP_LINGER_MS;
    if (peer) {
        l->has_peer = true;
        l->peer = *peer;
    }
    list_push_back(&srv->lingering, &l->link);
    srv->nlinger++;
    bool ok = srv->nlinger <= HTTP_LINGER_MAX && s_flush(l) &&
              loop_add_fd(srv->loop, fd, l->out ? LOOP_READ | LOOP_WRITE : LOOP_READ,
                          s_on_io, l) == 0;
    if (!ok)
        s_end(l);
}

void http__linger_sweep(http_server_t *srv, bool all)
{
    uint64_t now = loop_now_ms(srv->loop);
    list_for_each_safe(it, tmp, &srv->lingering) {
        lingering_t *l = list_item(it, lingering_t, link);
        if (all || now >= l->until_ms)
            s_end(l);
    }
}
