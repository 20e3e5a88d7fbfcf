/* store_outbox.c - the outbox: events queued inside each write's
 * transaction, and read back in order by the publisher. See
 * store_outbox.h. */
#define _GNU_SOURCE
#include "store_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "now.h"
#include "render.h"
#include "store_internal.h"

static const char *const SQL_OUTBOX_INSERT =
    "INSERT INTO outbox(subject,payload,created_at) VALUES(?,?,?)";
static const char *const SQL_OUTBOX_FETCH =
    "SELECT seq,subject,payload FROM outbox ORDER BY seq LIMIT ?";
static const char *const SQL_OUTBOX_DELETE = "DELETE FROM outbox WHERE seq<=?";
static const char *const SQL_OUTBOX_SIZE =
    "SELECT COALESCE(MAX(seq)-MIN(seq)+1,0) FROM outbox";

/* The outbox's size as c sees it (its seqs are contiguous: the publisher
 * deletes from the front). False when it cannot be read. */
static bool s_size(store_conn_t *c, long *n)
{
    sqlite3_stmt *st = c ? store__stmt(c, SQL_OUTBOX_SIZE) : NULL;
    bool ok = st && sqlite3_step(st) == SQLITE_ROW;
    if (ok)
        *n = (long)sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    return ok;
}

/* Whether the outbox is full: the event is then counted as dropped (and
 * logged at most every 10 s). The estimate counts this worker's events
 * since its last refresh, not what another worker's publisher sent
 * meanwhile: at the limit, the outbox is counted again, in this write's
 * transaction (two index lookups), before an event is dropped. */
static bool s_full(store_t *s, store_conn_t *c)
{
    if (atomic_load(&s->backlog) < s->outbox_max)
        return false;
    long size;
    if (s_size(c, &size)) {
        atomic_store(&s->backlog, size);
        if (size < s->outbox_max)
            return false;
    }
    if (c)
        c->run_drops++;
    unsigned long n = atomic_fetch_add(&s->dropped, 1) + 1;
    unsigned long now = (unsigned long)(now_ms() / 10000);
    if (atomic_exchange(&s->last_drop_log, now) != now)
        log_warn("events: the outbox is full (%ld); %lu event(s) dropped so far",
                 s->outbox_max, n);
    return true;
}

/* {"type":type,"id":id,"project_id":project_id,"data":data,"at":at}:
 * what json_dumps(JSON_COMPACT) gives for the object built from them. */
static char *s_payload(const char *type, const char *id, const char *project_id,
                       const char *data, const char *at)
{
    sbuf_t b = {0};
    sbuf_reserve(&b, strlen(data) + 160);
    sbuf_puts(&b, "{\"type\":");
    render_string(&b, type);
    sbuf_puts(&b, ",\"id\":");
    render_string(&b, id);
    sbuf_puts(&b, ",\"project_id\":");
    render_string(&b, project_id);
    sbuf_puts(&b, ",\"data\":");
    sbuf_puts(&b, data);
    sbuf_puts(&b, ",\"at\":");
    render_string(&b, at);
    sbuf_puts(&b, "}");
    return sbuf_steal(&b);
}

bool store__emit_text(store_t *s, store_conn_t *c, const char *subject,
                      const char *type, const char *id, const char *project_id,
                      const char *data)
{
    if (s->outbox_max == 0 || s_full(s, c))
        return true; /* events are off (no NATS configured), or dropped */
    char at[40];
    store__now(at);
    sqlite3_stmt *st = store__stmt(c, SQL_OUTBOX_INSERT);
    if (!st)
        return false;
    store__bind_text(st, 1, subject);
    sqlite3_bind_text(st, 2, s_payload(type, id, project_id, data, at), -1, free);
    store__bind_text(st, 3, at);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    if (ok) {
        atomic_fetch_add(&s->backlog, 1);
        c->run_events++;
    }
    return ok;
}

bool store__emit(store_t *s, store_conn_t *c, const char *subject, const char *type,
                 const json_t *data)
{
    if (s->outbox_max == 0)
        return true; /* no rendering for nothing */
    const char *id = json_string_value(json_object_get(data, "id"));
    const char *pid = json_string_value(json_object_get(data, "project_id"));
    char *txt = render_json(data, JSON_COMPACT);
    bool ok = txt && store__emit_text(s, c, subject, type, id, pid ? pid : id, txt);
    free(txt);
    return ok;
}

void store_outbox_set_commit_hook(store_t *s, void (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&s->hook_mu);
    s->on_commit = fn;
    s->on_commit_ud = ud;
    pthread_mutex_unlock(&s->hook_mu);
}

void store__commit_hook(store_t *s)
{
    pthread_mutex_lock(&s->hook_mu);
    if (s->on_commit)
        s->on_commit(s->on_commit_ud);
    pthread_mutex_unlock(&s->hook_mu);
}

void store_outbox_set_max(store_t *s, long max)
{
    s->outbox_max = max;
}

long store_outbox_backlog(store_t *s)
{
    return atomic_load(&s->backlog);
}

unsigned long store_outbox_dropped(store_t *s)
{
    return atomic_load(&s->dropped);
}

int store_outbox_refresh(store_t *s, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    long n;
    /* The read ends in s_size: the publisher's thread sleeps after it, and
     * a snapshot kept meanwhile held every checkpoint back (store.c). */
    if (!s_size(c, &n))
        return store__fail(c, e);
    atomic_store(&s->backlog, n);
    return 0;
}

int store_outbox_fetch(store_t *s, int limit, store_event_t **evs, size_t *n,
                       store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? store__stmt(c, SQL_OUTBOX_FETCH) : NULL;
    if (!st)
        return store__fail(c, e);
    sqlite3_bind_int(st, 1, limit);
    *evs = xcalloc((size_t)limit, sizeof **evs);
    *n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_event_t *ev = &(*evs)[(*n)++];
        ev->seq = sqlite3_column_int64(st, 0);
        ev->subject = xstrdup((const char *)sqlite3_column_text(st, 1));
        ev->payload = xstrdup((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        store_outbox_free(*evs, *n);
        *evs = NULL;
        *n = 0;
        return store__fail(c, e);
    }
    return 0;
}

typedef struct outbox_delete_op {
    store_write_t w;
    int64_t seq;
} outbox_delete_op_t;

static int s_delete(store_write_t *w, store_t *s)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? store__stmt(c, SQL_OUTBOX_DELETE) : NULL;
    if (!st)
        return store__fail(c, w->e);
    sqlite3_bind_int64(st, 1, container_of(w, outbox_delete_op_t, w)->seq);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : store__fail(c, w->e);
}

/* A write like the others: in the writer's next batch, under the write
 * lock, instead of a transaction of its own that the writers' would wait
 * for (and it for theirs) in SQLite's busy handler. */
int store_outbox_delete_upto(store_t *s, int64_t seq, store_err_t *e)
{
    outbox_delete_op_t op = {.w = {.run = s_delete, .e = e, .quiet = true}, .seq = seq};
    return store__write(s, &op.w);
}

void store_outbox_free(store_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(evs[i].subject);
        free(evs[i].payload);
    }
    free(evs);
}
