/* http_stream.c - streamed replies: chunked transfer with MHD's content
 * reader, fed by http_stream_write on the loop thread.
 *
 * DESIGN. MHD asks for bytes (s_stream_read) whenever the socket can take
 * them. With nothing buffered and the stream still open, the reader
 * suspends the connection and returns 0 (returning 0 without suspending
 * makes MHD spin); a write or the end resumes it. While suspended, the
 * connection's socket is watched (http_watch.c) so that a client leaving
 * ends the stream and tells its owner (gone). The stream belongs to its MHD
 * response and is freed with it; once the request ends, st->req is NULL
 * and the handle only waits for that. See http_internal.h for the layer's
 * files. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "http_internal.h"

/* A streamed reply waiting for its next bytes: the client left. The stream
 * ends (MHD then closes the connection) and its owner is told. */
static void s_client_left(http_req_t *req)
{
    http_stream_t *st = req->stream;
    if (!st || st->ended)
        return;
    http_stream_gone_fn gone = st->gone;
    st->gone = NULL;
    http_stream_end(st, true);
    if (gone)
        gone(st->ud);
}

/* MHD asks for the next bytes of a streamed reply. With nothing buffered
 * and the stream still open, the connection is suspended (returning 0
 * without suspending would make MHD spin) until the next write or end. */
static ssize_t s_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    UNUSED(pos);
    http_stream_t *st = cls;
    size_t avail = st->buf.len - st->off;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(out, st->buf.data + st->off, n);
        st->off += n;
        if (st->off == st->buf.len)
            st->off = st->buf.len = 0;
        return (ssize_t)n;
    }
    if (st->ended || !st->req)
        return st->failed || !st->req ? MHD_CONTENT_READER_END_WITH_ERROR
                                      : MHD_CONTENT_READER_END_OF_STREAM;
    st->req->suspended = true;
    MHD_suspend_connection(st->req->conn);
    http__watch_with(st->req, s_client_left);
    return 0;
}

static void s_stream_free(void *cls)
{
    http_stream_t *st = cls;
    if (st->req)
        st->req->stream = NULL;
    sbuf_free(&st->buf);
    free(st);
}

http_stream_t *http_reply_stream(http_req_t *req, unsigned status,
                                 const char *content_type, http_stream_gone_fn gone,
                                 void *ud)
{
    VP_ASSERT(!req->replied);
    http_stream_t *st = xcalloc(1, sizeof *st);
    st->req = req;
    st->gone = gone;
    st->ud = ud;
    req->replied = true;
    req->status = status;
    req->stream = st;
    req->resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, s_stream_read,
                                                  st, s_stream_free);
    VP_ASSERT(req->resp != NULL);
    st->resp = req->resp;
    if (content_type)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    http__add_headers(req);
    http__send(req);
    return st;
}

void http_stream_write(http_stream_t *st, const void *data, size_t len)
{
    if (!st->req || st->ended || !len)
        return;
    sbuf_append(&st->buf, data, len);
    http__resume(st->req);
}

void http_stream_trailer(http_stream_t *st, const char *name, const char *value)
{
    if (st->req && !st->ended)
        MHD_add_response_footer(st->resp, name, value);
}

void http_stream_end(http_stream_t *st, bool failed)
{
    if (!st->req || st->ended)
        return;
    st->ended = true;
    st->failed = failed;
    http__resume(st->req);
}

size_t http_stream_pending(const http_stream_t *st)
{
    return st->buf.len - st->off;
}

void http__stream_detach(http_req_t *req)
{
    http_stream_t *st = req->stream;
    if (!st)
        return;
    st->req = NULL;
    req->stream = NULL;
    if (!st->ended && st->gone)
        st->gone(st->ud);
}
