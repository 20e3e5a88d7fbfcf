/* watch.c - see watch.h. */
#define _GNU_SOURCE
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus.h"
#include "run.h"
#include "sbuf.h"
#include "vp_error.h"

#define WATCH_KEEPALIVE_MS 15000

/* A client's stream. */
typedef struct session {
    watch_t *w;
    http_stream_t *st;
    char run_id[32];
    size_t have;         /* bytes of the output sent to the client */
    run_watcher_t local; /* when the run is on this worker */
    bool remote;         /* followed through the bus */
    bool checking;       /* a read of the run on the pool */
    uint64_t renewed, last_write;
    pool_work_t job;
    run_row_t row;
    int rc;
    list_t link;
} session_t;

/* A run of this worker that another worker's client follows. */
typedef struct lease {
    watch_t *w;
    char run_id[32];
    uint64_t until;
    run_watcher_t local;
    list_t link;
} lease_t;

struct watch {
    agents_t *a;
    list_t sessions;
    list_t leases;
};

watch_t *watch_new(agents_t *a)
{
    watch_t *w = xcalloc(1, sizeof *w);
    w->a = a;
    list_init(&w->sessions);
    list_init(&w->leases);
    return w;
}

/* ---- writing SSE ---- */

static void s_event(session_t *s, const char *name, json_t *data)
{
    char *txt = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    sbuf_t b = {0};
    sbuf_printf(&b, "event: %s\ndata: %s\n\n", name, txt);
    http_stream_write(s->st, b.data, b.len);
    sbuf_free(&b);
    free(txt);
    s->last_write = loop_now_ms(s->w->a->loop);
}

/* Sends the part of text (which starts at offset) the client lacks. */
static void s_output(session_t *s, size_t offset, const char *text, size_t len)
{
    if (offset > s->have || offset + len <= s->have)
        return; /* a gap (healed by the next full copy) or nothing new */
    size_t skip = s->have - offset;
    s_event(s, "output", json_pack("{s:s%}", "text", text + skip, len - skip));
    s->have = offset + len;
}

static void s_session_free(session_t *s)
{
    if (list_linked(&s->local.link))
        run_unwatch(&s->local);
    list_remove(&s->link);
    if (s->checking) { /* the pool job still holds it: freed when it returns */
        s->st = NULL;
        return;
    }
    run_row_clear(&s->row);
    free(s);
}

static void s_end(session_t *s, const char *state, const char *error)
{
    s_event(s, "end", json_pack("{s:s,s:o}", "state", state,
                                "error", error ? json_string(error) : json_null()));
    http_stream_end(s->st, false);
    s_session_free(s);
}

static void s_gone(void *ud)
{
    s_session_free(ud);
}

/* ---- a run on this worker ---- */

static void s_on_local(run_t *r, const char *text, size_t len, void *ud)
{
    session_t *s = container_of(ud, session_t, local);
    if (text) {
        s_output(s, s->have, text, len);
        return;
    }
    list_init(&s->local.link); /* run.c unlinked it */
    s_end(s, r->row.state, r->row.error);
}

static void s_follow_local(session_t *s, run_t *r)
{
    s_output(s, 0, r->out.data ? r->out.data : "", r->out.len);
    s->local = (run_watcher_t){.fn = s_on_local, .ud = &s->local};
    run_watch(r, &s->local);
}

/* ---- a run on another worker ---- */

static void s_ask_owner(session_t *s)
{
    json_t *m = json_pack("{s:s}", "run_id", s->run_id);
    bus_publish(s->w->a->bus, BUS_WATCH, m);
    json_decref(m);
    s->renewed = loop_now_ms(s->w->a->loop);
}

static void s_check_work(pool_work_t *job)
{
    session_t *s = container_of(job, session_t, job);
    s->rc = adb_run_get(s->w->a->db, s->run_id, &s->row);
}

static void s_check_done(pool_work_t *job, int status)
{
    session_t *s = container_of(job, session_t, job);
    s->checking = false;
    if (!s->st) { /* the client left meanwhile */
        run_row_clear(&s->row);
        free(s);
        return;
    }
    if (status < 0 || s->rc < 0)
        return; /* the next tick asks again */
    if (run_state_final(s->row.state)) {
        const char *c = s->row.content ? s->row.content : "";
        s_output(s, 0, c, strlen(c));
        s_end(s, s->row.state, s->row.error);
    }
}

static void s_check(session_t *s)
{
    if (s->checking)
        return;
    s->checking = true;
    if (pool_submit(s->w->a->pool, &s->job, s_check_work, s_check_done) < 0)
        s->checking = false;
}

/* The owner's message for one of our remote sessions. */
static void s_on_stream(watch_t *w, const json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "run_id"));
    const char *text = json_string_value(json_object_get(m, "text"));
    json_int_t off = json_integer_value(json_object_get(m, "offset"));
    bool end = json_is_true(json_object_get(m, "end"));
    list_for_each_safe(it, nx, &w->sessions) {
        session_t *s = list_item(it, session_t, link);
        if (!id || !s->remote || strcmp(s->run_id, id) != 0)
            continue;
        if (text && off >= 0)
            s_output(s, (size_t)off, text, json_string_length(json_object_get(m, "text")));
        if (end)
            s_end(s, json_string_value(json_object_get(m, "state")) ?: "finished",
                  json_string_value(json_object_get(m, "error")));
    }
}

/* ---- the owner's side: publishing for other workers ---- */

static void s_publish(watch_t *w, const char *id, json_t *m)
{
    char subject[96];
    snprintf(subject, sizeof subject, BUS_STREAM "%s", id);
    bus_publish(w->a->bus, subject, m);
    json_decref(m);
}

static void s_lease_free(lease_t *l)
{
    if (list_linked(&l->local.link))
        run_unwatch(&l->local);
    list_remove(&l->link);
    free(l);
}

static void s_on_leased(run_t *r, const char *text, size_t len, void *ud)
{
    lease_t *l = container_of(ud, lease_t, local);
    size_t off = r->out.len - len; /* text was just appended */
    if (text) {
        s_publish(l->w, l->run_id,
                  json_pack("{s:s,s:I,s:s%}", "run_id", l->run_id, "offset", (json_int_t)off,
                            "text", text, len));
        return;
    }
    list_init(&l->local.link);
    s_publish(l->w, l->run_id,
              json_pack("{s:s,s:b,s:s,s:o}", "run_id", l->run_id, "end", 1, "state",
                        r->row.state, "error",
                        r->row.error ? json_string(r->row.error) : json_null()));
    s_lease_free(l);
}

static void s_on_watch(watch_t *w, const json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "run_id"));
    run_t *r = id ? run_find(w->a, id) : NULL;
    if (!r)
        return; /* not ours */
    lease_t *l = NULL;
    list_for_each(it, &w->leases) {
        lease_t *x = list_item(it, lease_t, link);
        if (strcmp(x->run_id, id) == 0)
            l = x;
    }
    if (!l) {
        l = xcalloc(1, sizeof *l);
        l->w = w;
        snprintf(l->run_id, sizeof l->run_id, "%s", id);
        l->local = (run_watcher_t){.fn = s_on_leased, .ud = &l->local};
        list_push_back(&w->leases, &l->link);
        run_watch(r, &l->local);
    }
    l->until = loop_now_ms(w->a->loop) + BUS_WATCH_LEASE_MS;
    s_publish(w, id, json_pack("{s:s,s:I,s:s%}", "run_id", id, "offset", (json_int_t)0,
                               "text", r->out.data ? r->out.data : "", r->out.len));
}

void watch_on_bus(agents_t *a, const char *subject, const json_t *msg)
{
    if (strcmp(subject, BUS_WATCH) == 0)
        s_on_watch(a->watch, msg);
    else
        s_on_stream(a->watch, msg);
}

/* ---- serving, ticking, stopping ---- */

static session_t *s_session(agents_t *a, const char *run_id)
{
    session_t *s = xcalloc(1, sizeof *s);
    s->w = a->watch;
    snprintf(s->run_id, sizeof s->run_id, "%s", run_id);
    list_init(&s->local.link);
    list_init(&s->link);
    return s;
}

static void s_start(session_t *s, http_req_t *req)
{
    s->st = http_reply_stream(req, 200, "text/event-stream", s_gone, s);
    list_push_back(&s->w->sessions, &s->link);
}

typedef struct first {
    agents_t *a;
    session_t *s;
    int rc;
} first_t;

static void s_first_work(void *arg)
{
    first_t *f = arg;
    f->rc = adb_run_get(f->a->db, f->s->run_id, &f->s->row);
}

/* The run is not on this worker: unknown (404), finished (its stored
 * output), or running elsewhere (followed through the bus). */
static void s_first_done(http_req_t *req, void *arg, int status)
{
    first_t *f = arg;
    session_t *s = f->s;
    run_t *r = run_find(f->a, s->run_id); /* it may have come here meanwhile */
    if (status < 0 || (f->rc < 0 && f->rc != VP_ENOTFOUND && !r)) {
        http_reply_error(req, 503, "store_unavailable", "the run could not be read");
    } else if (f->rc == VP_ENOTFOUND && !r) {
        http_reply_error(req, 404, "not_found", "no run has that id");
    } else {
        s_start(s, req);
        if (r) {
            s_follow_local(s, r);
        } else if (run_state_final(s->row.state)) {
            const char *c = s->row.content ? s->row.content : "";
            s_output(s, 0, c, strlen(c));
            s_end(s, s->row.state, s->row.error);
        } else {
            s->remote = true;
            s_ask_owner(s);
        }
        free(f);
        return;
    }
    run_row_clear(&s->row);
    free(s);
    free(f);
}

void watch_serve(agents_t *a, http_req_t *req, const char *run_id)
{
    size_t n = run_id ? strlen(run_id) : 0;
    if (n == 0 || n >= 32 || strspn(run_id, "abcdefghijklmnopqrstuvwxyz0123456789_") != n) {
        http_reply_error(req, 404, "not_found", "no run has that id");
        return;
    }
    session_t *s = s_session(a, run_id);
    run_t *r = run_find(a, run_id);
    if (r) {
        s_start(s, req);
        s_follow_local(s, r);
        return;
    }
    first_t *f = xcalloc(1, sizeof *f);
    *f = (first_t){a, s, 0};
    if (http_req_run_blocking(req, a->pool, s_first_work, s_first_done, f) < 0) {
        free(s);
        free(f);
    }
}

void watch_tick(agents_t *a)
{
    watch_t *w = a->watch;
    uint64_t now = loop_now_ms(a->loop);
    list_for_each_safe(it, nx, &w->leases) {
        lease_t *l = list_item(it, lease_t, link);
        if (now >= l->until)
            s_lease_free(l);
    }
    list_for_each_safe(it, nx, &w->sessions) {
        session_t *s = list_item(it, session_t, link);
        if (s->remote && now - s->renewed >= WATCH_RENEW_MS) {
            s_ask_owner(s);
            s_check(s);
        }
        if (now - s->last_write >= WATCH_KEEPALIVE_MS) {
            http_stream_write(s->st, ": keep-alive\n\n", 14);
            s->last_write = now;
        }
    }
}

void watch_destroy(watch_t **wp)
{
    watch_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    list_for_each_safe(it, nx, &w->leases)
        s_lease_free(list_item(it, lease_t, link));
    list_for_each_safe(it, nx, &w->sessions) {
        session_t *s = list_item(it, session_t, link);
        http_stream_end(s->st, true);
        s_session_free(s);
    }
    free(w);
    *wp = NULL;
}
