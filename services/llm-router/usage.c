/* usage.c - what each finished call cost: queued, then written to the
 * ledger in batches on the pool every USAGE_FLUSH_MS (settling its
 * reservation), and published on NATS as vapora.llm.usage. Nothing here
 * delays a caller's reply. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "log.h"
#include "alloc.h"
#include "now.h"

#define USAGE_FLUSH_MS 200
#define USAGE_MAX_PENDING 1000000 /* records waiting for the ledger, at most */

typedef struct batch {
    pool_work_t work;
    gateway_t *gw;
    ledger_entry_t *e;
    size_t n;
    void (*fn)(gateway_t *gw, void *ud); /* usage_after_flush */
    void (*done)(void *ud, int status);
    void *ud;
    bool failed; /* the ledger refused the batch */
} batch_t;

static void s_copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static void s_publish(gateway_t *gw, const ledger_entry_t *e, const call_t *c,
                      double cost, int status)
{
    natsc_t *nc = worker_nats(gw->w);
    natsConnection *conn = nc && natsc_connected(nc) ? natsc_conn(nc) : NULL;
    if (!conn)
        return; /* usage is in the ledger; the event is best effort */
    char at[40];
    now_iso8601(at, sizeof at);
    json_t *ev = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:f,s:b,s:f,s:i,s:i,s:s}", "type", "llm.usage",
        "id", c->id, "role", e->role, "provider", e->provider, "model", e->model,
        "input_tokens", (json_int_t)e->input_tokens, "output_tokens",
        (json_int_t)e->output_tokens, "cost_usd", cost, "estimated", e->estimated != 0,
        "latency_ms", (double)(now_ns() - c->start_ns) / 1e6, "status", status,
        "attempts", (int)c->attempts, "at", at);
    char *s = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    natsStatus st = natsConnection_PublishString(conn, "vapora.llm.usage", s);
    if (st != NATS_OK)
        log_debug("publishing vapora.llm.usage: %s", natsStatus_GetText(st));
    free(s);
}

void usage_record(gateway_t *gw, call_t *c, const rt_attempt_t *a, double cost_usd,
                  bool estimated, int http_status)
{
    if (gw->npending >= USAGE_MAX_PENDING) { /* the ledger has been refusing for long */
        static uint64_t dropped;
        if (dropped++ % 10000 == 0)
            log_error("usage: the ledger is not taking records; %llu dropped",
                      (unsigned long long)dropped);
        return;
    }
    if (gw->npending == gw->cap) {
        gw->cap = gw->cap ? gw->cap * 2 : 64;
        gw->pending = xrealloc(gw->pending, gw->cap * sizeof *gw->pending);
    }
    ledger_entry_t *e = &gw->pending[gw->npending++];
    memset(e, 0, sizeof *e);
    e->reservation = c->reservation;
    s_copy(e->role, sizeof e->role, c->role);
    s_copy(e->provider, sizeof e->provider, a ? a->provider->name : "none");
    s_copy(e->model, sizeof e->model, a ? a->model : "none");
    e->window_start = c->budget ? c->window_start : 0;
    e->minute = time(NULL) / 60;
    e->cost = (int64_t)(cost_usd * LEDGER_NANO + 0.5);
    e->input_tokens = c->usage.input_tokens;
    e->output_tokens = c->usage.output_tokens;
    e->requests = 1;
    e->errors = http_status >= 400;
    e->estimated = estimated;
    if (a) {
        a->provider->input_tokens += (uint64_t)c->usage.input_tokens;
        a->provider->output_tokens += (uint64_t)c->usage.output_tokens;
        a->provider->cost_usd += cost_usd;
    }
    s_publish(gw, e, c, cost_usd, http_status);
    c->reservation = 0;
}

static void s_batch_work(pool_work_t *w)
{
    batch_t *b = container_of(w, batch_t, work);
    if (b->n && ledger_apply(b->gw->ledger, b->e, b->n) < 0) {
        log_warn("usage: %zu records could not be written; trying again", b->n);
        b->failed = true;
    }
    if (b->fn)
        b->fn(b->gw, b->ud);
}

static void s_put_back(gateway_t *gw, batch_t *b);

static void s_batch_done(pool_work_t *w, int status)
{
    batch_t *b = container_of(w, batch_t, work);
    gateway_t *gw = b->gw;
    if (!b->fn)
        gw->flushing = false;
    if (b->done)
        b->done(b->ud, status);
    if (status < 0 || b->failed) { /* cancelled (shutdown) or refused: keep them */
        b->fn = NULL;
        s_put_back(gw, b);
        return;
    }
    free(b->e);
    free(b);
}

static bool s_same_key(const ledger_entry_t *a, const ledger_entry_t *b)
{
    return a->minute == b->minute && a->window_start == b->window_start &&
           strcmp(a->role, b->role) == 0 && strcmp(a->provider, b->provider) == 0 &&
           strcmp(a->model, b->model) == 0;
}

/* Adds up entries with the same key and no reservation to settle, so that
 * a batch of thousands of calls is a handful of upserts. In place (an
 * entry only ever moves down); returns the new count. */
static size_t s_coalesce(ledger_entry_t *e, size_t n)
{
    size_t out = 0, agg[32], nagg = 0; /* agg: where the running sums are */
    for (size_t i = 0; i < n; i++) {
        ledger_entry_t cur = e[i];
        if (!cur.reservation) {
            size_t j = 0;
            while (j < nagg && !s_same_key(&e[agg[j]], &cur))
                j++;
            if (j < nagg) {
                ledger_entry_t *sum = &e[agg[j]];
                sum->requests += cur.requests;
                sum->errors += cur.errors;
                sum->estimated += cur.estimated;
                sum->input_tokens += cur.input_tokens;
                sum->output_tokens += cur.output_tokens;
                sum->cost += cur.cost;
                continue;
            }
            if (nagg < ARRAY_LEN(agg))
                agg[nagg++] = out;
        }
        e[out++] = cur;
    }
    return out;
}

static batch_t *s_take(gateway_t *gw)
{
    batch_t *b = xcalloc(1, sizeof *b);
    b->gw = gw;
    b->e = gw->pending;
    b->n = s_coalesce(gw->pending, gw->npending);
    gw->pending = NULL;
    gw->npending = gw->cap = 0;
    return b;
}

/* Puts a batch that could not be submitted back in front of the queue. */
static void s_put_back(gateway_t *gw, batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (gw->npending == gw->cap) {
            gw->cap = gw->cap ? gw->cap * 2 : 64;
            gw->pending = xrealloc(gw->pending, gw->cap * sizeof *gw->pending);
        }
        gw->pending[gw->npending++] = b->e[i];
    }
    free(b->e);
    free(b);
}

static void s_flush_timer(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    gateway_t *gw = ud;
    if (gw->flushing || gw->npending == 0)
        return;
    batch_t *b = s_take(gw);
    gw->flushing = true;
    if (pool_submit(gw->pool, &b->work, s_batch_work, s_batch_done) < 0) {
        gw->flushing = false;
        s_put_back(gw, b); /* the pool is full: next tick */
    }
}

int usage_after_flush(gateway_t *gw, void (*fn)(gateway_t *gw, void *ud),
                      void (*done)(void *ud, int status), void *ud)
{
    batch_t *b = s_take(gw);
    b->fn = fn;
    b->done = done;
    b->ud = ud;
    int rc = pool_submit(gw->pool, &b->work, s_batch_work, s_batch_done);
    if (rc < 0) {
        b->fn = NULL;
        b->done = NULL;
        s_put_back(gw, b);
    }
    return rc;
}

void usage_start(gateway_t *gw)
{
    gw->flush_timer =
        loop_add_timer(gw->loop, USAGE_FLUSH_MS, USAGE_FLUSH_MS, s_flush_timer, gw);
}

void usage_stop(gateway_t *gw)
{
    loop_cancel_timer(gw->loop, &gw->flush_timer);
    /* The end of the process: the last records are written here, blocking;
     * whatever this worker still holds reserved is then stale. */
    size_t n = s_coalesce(gw->pending, gw->npending);
    if (n && ledger_apply(gw->ledger, gw->pending, n) < 0)
        log_warn("usage: %zu records could not be written at exit", n);
    ledger_release_pid(gw->ledger, getpid());
    free(gw->pending);
    gw->pending = NULL;
    gw->npending = gw->cap = 0;
}
