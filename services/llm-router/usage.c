/* usage.c - what each finished call cost: queued, then written to the
 * ledger in batches on the pool every USAGE_FLUSH_MS, and published on
 * NATS as vapora.llm.usage. See usage.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usage.h"
#include "log.h"
#include "alloc.h"
#include "now.h"
#include "utf8.h"

#define USAGE_FLUSH_MS 200
#define USAGE_MAX_PENDING 1000000 /* records waiting for the ledger, at most */

struct usage {
    worker_t *w;
    loop_t *loop;
    pool_t *pool;
    ledger_t *ledger;
    ledger_entry_t *pending; /* finished calls waiting for the next flush */
    size_t npending, cap;
    bool flushing; /* a periodic batch is on the pool */
    sbuf_t ev;     /* the event being published */
    time_t at_sec; /* the second at[] holds */
    char at[24];   /* "YYYY-MM-DDTHH:MM:SS" of at_sec */
    loop_timer_t *flush_timer;
    metric_family_t *anomalies; /* by provider */
};

typedef struct batch {
    pool_work_t work;
    usage_t *u;
    ledger_entry_t *e;
    size_t n;
    void (*fn)(void *ud); /* usage_after_flush */
    void (*done)(void *ud, int status);
    void *ud;
    bool failed; /* the ledger refused the batch */
} batch_t;

static void s_copy(char *dst, size_t len, const char *src)
{
    src = src ? src : "";
    size_t n = strnlen(src, len - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- the event ---- */

/* s as a JSON string: as it is when it is plain ASCII (names and ids
 * are), else through jansson (escapes, bad UTF-8 repaired). */
static void s_json_str(sbuf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
        p++;
    if (*p == '\0') {
        sbuf_append(b, "\"", 1);
        sbuf_append(b, s, (size_t)(p - (const unsigned char *)s));
        sbuf_append(b, "\"", 1);
        return;
    }
    char *fixed = utf8_repair(s);
    json_t *j = json_string(fixed);
    char *text = json_dumps(j, JSON_ENCODE_ANY);
    sbuf_puts(b, text ? text : "\"\"");
    free(text);
    json_decref(j);
    free(fixed);
}

/* "at": RFC 3339 UTC with milliseconds; the seconds are formatted once a
 * second. */
static void s_at(usage_t *u, sbuf_t *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != u->at_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(u->at, sizeof u->at, "%Y-%m-%dT%H:%M:%S", &tm);
        u->at_sec = ts.tv_sec;
    }
    long ms = ts.tv_nsec / 1000000;
    char tail[8] = {'.',
                    (char)('0' + ms / 100),
                    (char)('0' + ms / 10 % 10),
                    (char)('0' + ms % 10),
                    'Z',
                    '"'};
    sbuf_append(b, "\"", 1);
    sbuf_puts(b, u->at);
    sbuf_append(b, tail, 6);
}

/* ,"key": */
static void s_name(sbuf_t *b, const char *key)
{
    sbuf_append(b, ",\"", 2);
    sbuf_puts(b, key);
    sbuf_append(b, "\":", 2);
}

static void s_key(sbuf_t *b, const char *key, const char *value)
{
    s_name(b, key);
    s_json_str(b, value);
}

/* ,"key":v with v an integer; frac digits of it after a decimal point
 * (v in millionths, frac 6: 1.500000). Without printf, which costs more
 * than the rest of the event. */
static void s_num(sbuf_t *b, const char *key, int64_t v, int frac)
{
    char buf[48], *p = buf + sizeof buf;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    for (int i = 0; i < frac || u || i == frac; i++) {
        if (i == frac && frac)
            *--p = '.';
        *--p = (char)('0' + u % 10);
        u /= 10;
    }
    if (v < 0)
        *--p = '-';
    s_name(b, key);
    sbuf_append(b, p, (size_t)(buf + sizeof buf - p));
}

static void s_bool(sbuf_t *b, const char *key, bool v)
{
    s_name(b, key);
    sbuf_puts(b, v ? "true" : "false");
}

/* The vapora.llm.usage event of r (e: its ledger entry) into b. */
static void s_event(usage_t *u, sbuf_t *b, const ledger_entry_t *e,
                    const usage_rec_t *r)
{
    sbuf_puts(b, "{\"type\":\"llm.usage\"");
    s_key(b, "id", r->id);
    s_key(b, "caller", r->caller ? r->caller : "");
    s_key(b, "role", e->role);
    s_key(b, "budget", e->budget);
    s_key(b, "provider", e->provider);
    s_key(b, "model", e->model);
    s_num(b, "input_tokens", r->tokens.input_tokens, 0);
    s_num(b, "output_tokens", r->tokens.output_tokens, 0);
    s_num(b, "cost_usd", e->cost, 9); /* nano-USD, as the ledger counts it */
    s_bool(b, "estimated", r->estimated);
    s_bool(b, "anomaly", r->anomaly);
    s_num(b, "latency_ms", (int64_t)((now_ns() - r->start_ns) / 1000), 3);
    s_num(b, "status", r->http_status, 0);
    s_num(b, "attempts", r->attempts, 0);
    sbuf_puts(b, ",\"at\":");
    s_at(u, b);
    sbuf_puts(b, "}");
}

static void s_publish(usage_t *u, const ledger_entry_t *e, const usage_rec_t *r)
{
    natsc_t *nc = worker_nats(u->w);
    natsConnection *conn = nc ? natsc_conn(nc) : NULL;
    /* Not asked whether it is connected (that takes the connection's lock
     * once more per call): while the server is away, nats.c keeps what is
     * published in its reconnect buffer and sends it once back; a full
     * buffer refuses it. The ledger is the record; the event is best
     * effort. */
    if (!conn)
        return;
    sbuf_reset(&u->ev);
    s_event(u, &u->ev, e, r);
    natsStatus st =
        natsConnection_Publish(conn, "vapora.llm.usage", u->ev.data, (int)u->ev.len);
    if (st != NATS_OK)
        log_debug("publishing vapora.llm.usage: %s", natsStatus_GetText(st));
}

/* ---- records ---- */

/* Room for one more pending record. */
static ledger_entry_t *s_push(usage_t *u)
{
    if (u->npending == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 64;
        u->pending = xrealloc(u->pending, u->cap * sizeof *u->pending);
    }
    return &u->pending[u->npending++];
}

static bool s_same_key(const ledger_entry_t *a, const ledger_entry_t *b)
{
    return a->minute == b->minute && a->window_start == b->window_start &&
           strcmp(a->role, b->role) == 0 && strcmp(a->budget, b->budget) == 0 &&
           strcmp(a->provider, b->provider) == 0 && strcmp(a->model, b->model) == 0;
}

static void s_add(ledger_entry_t *sum, const ledger_entry_t *e)
{
    sum->requests += e->requests;
    sum->errors += e->errors;
    sum->estimated += e->estimated;
    sum->input_tokens += e->input_tokens;
    sum->output_tokens += e->output_tokens;
    sum->cost += e->cost;
}

/* Queues e, added to a pending record of the same key among the latest. */
static void s_queue(usage_t *u, const ledger_entry_t *e)
{
    for (size_t i = u->npending, k = 0; i > 0 && k < 8; i--, k++) {
        if (s_same_key(&u->pending[i - 1], e)) {
            s_add(&u->pending[i - 1], e);
            return;
        }
    }
    *s_push(u) = *e;
}

void usage_record(usage_t *u, const usage_rec_t *r)
{
    if (u->npending >= USAGE_MAX_PENDING) { /* the ledger has been refusing for long */
        static uint64_t dropped;
        if (dropped++ % 10000 == 0)
            log_error("usage: the ledger is not taking records; %llu dropped",
                      (unsigned long long)dropped);
        return;
    }
    ledger_entry_t e;
    s_copy(e.role, sizeof e.role, r->role);
    s_copy(e.budget, sizeof e.budget, r->budget);
    s_copy(e.provider, sizeof e.provider, r->provider ? r->provider->name : "none");
    s_copy(e.model, sizeof e.model, r->provider ? r->model : "none");
    e.window_start = r->window_start;
    e.minute = time(NULL) / 60;
    e.cost = r->cost;
    e.input_tokens = r->tokens.input_tokens;
    e.output_tokens = r->tokens.output_tokens;
    e.requests = 1;
    e.errors = r->http_status >= 400;
    e.estimated = r->estimated;
    if (r->anomaly) {
        sbuf_t l = {0};
        metrics_label(&l, "provider", e.provider);
        metric_inc(metrics_series(u->anomalies, l.data), 1);
        sbuf_free(&l);
    }
    if (r->provider) {
        r->provider->input_tokens += (uint64_t)r->tokens.input_tokens;
        r->provider->output_tokens += (uint64_t)r->tokens.output_tokens;
        r->provider->cost_usd += r->cost_usd;
    }
    s_publish(u, &e, r);
    s_queue(u, &e);
}

static void s_batch_work(pool_work_t *w)
{
    batch_t *b = container_of(w, batch_t, work);
    if (b->n && ledger_apply(b->u->ledger, b->e, b->n) < 0) {
        log_warn("usage: %zu records could not be written; trying again", b->n);
        b->failed = true;
    }
    if (b->fn)
        b->fn(b->ud);
}

static void s_put_back(usage_t *u, batch_t *b);

static void s_batch_done(pool_work_t *w, int status)
{
    batch_t *b = container_of(w, batch_t, work);
    usage_t *u = b->u;
    if (!b->fn)
        u->flushing = false;
    if (b->done)
        b->done(b->ud, status);
    if (status < 0 || b->failed) { /* cancelled (shutdown) or refused: keep them */
        b->fn = NULL;
        s_put_back(u, b);
        return;
    }
    free(b->e);
    free(b);
}

/* Adds up entries with the same key (a batch put back meets new records),
 * so that a batch of thousands of calls is a handful of upserts; the first
 * 32 keys only, so that many keys (made-up roles) cost no quadratic time.
 * In place (an entry only ever moves down); returns the new count. */
static size_t s_coalesce(ledger_entry_t *e, size_t n)
{
    size_t out = 0, agg[32], nagg = 0; /* agg: where the running sums are */
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < nagg && !s_same_key(&e[agg[j]], &e[i]))
            j++;
        if (j < nagg) {
            s_add(&e[agg[j]], &e[i]);
            continue;
        }
        if (nagg < ARRAY_LEN(agg))
            agg[nagg++] = out;
        e[out++] = e[i];
    }
    return out;
}

static batch_t *s_take(usage_t *u)
{
    batch_t *b = xcalloc(1, sizeof *b);
    b->u = u;
    b->e = u->pending;
    b->n = s_coalesce(u->pending, u->npending);
    u->pending = NULL;
    u->npending = u->cap = 0;
    return b;
}

/* Puts a batch that could not be submitted back in front of the queue. */
static void s_put_back(usage_t *u, batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        *s_push(u) = b->e[i];
    free(b->e);
    free(b);
}

static void s_flush_timer(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    usage_t *u = ud;
    if (u->flushing || u->npending == 0)
        return;
    batch_t *b = s_take(u);
    u->flushing = true;
    if (pool_submit(u->pool, &b->work, s_batch_work, s_batch_done) < 0) {
        u->flushing = false;
        s_put_back(u, b); /* the pool is full: next tick */
    }
}

int usage_after_flush(usage_t *u, void (*fn)(void *ud),
                      void (*done)(void *ud, int status), void *ud)
{
    batch_t *b = s_take(u);
    b->fn = fn;
    b->done = done;
    b->ud = ud;
    int rc = pool_submit(u->pool, &b->work, s_batch_work, s_batch_done);
    if (rc < 0) {
        b->fn = NULL;
        b->done = NULL;
        s_put_back(u, b);
    }
    return rc;
}

usage_t *usage_new(worker_t *w, ledger_t *ledger)
{
    usage_t *u = xcalloc(1, sizeof *u);
    u->w = w;
    u->loop = worker_loop(w);
    u->pool = worker_pool(w);
    u->ledger = ledger;
    u->anomalies = metrics_family(
        worker_metrics(w), "vapora_router_usage_anomalies_total",
        "Calls whose provider reported more tokens than the call could use "
        "(charged at most their reservation)",
        METRIC_COUNTER, NULL, 0);
    u->flush_timer =
        loop_add_timer(u->loop, USAGE_FLUSH_MS, USAGE_FLUSH_MS, s_flush_timer, u);
    return u;
}

void usage_destroy(usage_t **up)
{
    usage_t *u = up ? *up : NULL;
    if (!u)
        return;
    loop_cancel_timer(u->loop, &u->flush_timer);
    /* The end of the process: the last records are written here, blocking;
     * whatever this worker still holds reserved is then stale. */
    size_t n = s_coalesce(u->pending, u->npending);
    if (n && ledger_apply(u->ledger, u->pending, n) < 0)
        log_warn("usage: %zu records could not be written at exit", n);
    free(u->pending);
    sbuf_free(&u->ev);
    free(u);
    *up = NULL;
}
