/* live.c - GET /ws: live events over WebSocket.
 *
 * DESIGN. A backend worker with sessions subscribes to vapora.> on NATS,
 * so a client hears of a change whichever worker made it. nats.c delivers
 * messages on its own thread: they go to the loop through a bounded
 * mailbox (mailbox.h); the loop thread then sends each event to the
 * sessions whose ?project_id= filter matches.
 *
 * Nobody listening, the worker does not subscribe: NATS would otherwise
 * send it every event of every write, and its loop would wake for each,
 * for nothing. The first upgrade subscribes on the pool and waits for the
 * server to confirm the subscription (a flush) before its 101 goes out, so
 * that the client misses no event that follows its upgrade; the
 * subscription ends ws_idle_unsubscribe seconds after the last session
 * did. In between, a worker without a session (none open, none upgrading)
 * drops the events on the nats.c thread.
 *
 * A session gets events only while its token's user holds that token: one
 * whose user this worker has not confirmed under the current users counter
 * (store_users_version) at the upgrade waits until a check on the pool
 * does; and whenever the counter moves (a user deleted, a role or password
 * changed), a timer checks every open session again and closes (1008)
 * those whose token has ended. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "live.h"

#include "api.h"
#include "log.h"
#include "mailbox.h"
#include "alloc.h"
#include "sbuf.h"
#include "store_users.h"
#include "ws.h"

#define LIVE_QUEUE_MAX 10000
#define LIVE_CHECK_MS 100 /* how often sessions are looked at again */
#define LIVE_UNCONFIRMED_MAX 256 /* events kept for a session until its check */
#define LIVE_FLUSH_MS 2000       /* the wait for NATS to confirm the subscription */
#define LIVE_UNSUB_S 30           /* the subscription outlives the last session so long */

typedef struct item {
    char *payload;
    size_t len;
    list_t link;
} item_t;

struct live {
    backend_t *b;
    ws_hub_t *hub;
    mailbox_t *mb;
    pthread_mutex_t sub_mu; /* sub, between the pool's subscribe and the loop */
    natsSubscription *sub;  /* vapora.>, while sessions are or were lately open */
    atomic_bool subscribed; /* sub is set and NATS confirmed it (or was down) */
    unsigned upgrading;     /* upgrades waiting for the subscription (loop) */
    uint64_t idle_since;    /* when the last session closed (loop ms); 0: open */
    uint64_t unsub_ms;      /* [backend] ws_idle_unsubscribe */
    pool_work_t sub_job;    /* a subscribe for open sessions (s_tick) */
    bool sub_job_running;
    loop_timer_t *recheck;
    struct check_job *job; /* the check on the pool, or NULL */
    uint64_t checked;      /* the users counter the sessions were checked under */
    uint64_t next_serial;
    list_t held; /* item_t: events waiting to be relayed */
    size_t nheld;
    atomic_ulong dropped;
    /* Sessions upgrading or open (counted before the 101 goes out): while
     * there are none, the nats.c thread drops each event at once, instead
     * of waking the loop for every write of every worker. */
    atomic_uint listeners;
};

typedef struct session {
    live_t *l;
    natsConnection *nc; /* for the subscribe on the pool */
    char project[64];   /* "" = every project */
    char sub[64];     /* the token's user and version */
    int64_t ver;
    uint64_t serial; /* names the session to a check that outlives it */
    bool confirmed;  /* its user held ver under the users counter tag */
    uint64_t tag;
    list_t waiting; /* item_t: its events while it is not confirmed, in order */
    size_t nwaiting;
} session_t;

/* A check of the sessions' users on the pool. */
typedef struct check_item {
    uint64_t serial;
    char sub[64];
    int64_t ver;
    bool known, holds;
} check_item_t;

typedef struct check_job {
    pool_work_t work;
    live_t *l;
    uint64_t tag; /* the users counter, read before the database */
    size_t n, cap;
    check_item_t *items;
} check_job_t;

static void s_item_free(item_t *it)
{
    free(it->payload);
    free(it);
}

/* nats.c thread: hand the message to the loop (dropped when full). */
static void s_on_nats(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud)
{
    UNUSED(nc);
    UNUSED(sub);
    live_t *l = ud;
    if (atomic_load(&l->listeners) == 0) {
        natsMsg_Destroy(msg); /* no session to send it to */
        return;
    }
    item_t *it = xmalloc(sizeof *it);
    it->len = (size_t)natsMsg_GetDataLength(msg);
    it->payload = xstrndup(natsMsg_GetData(msg), it->len);
    natsMsg_Destroy(msg);
    if (mailbox_post(l->mb, &it->link) < 0) {
        atomic_fetch_add(&l->dropped, 1);
        s_item_free(it);
    }
}

typedef struct fanout {
    const char *project;
    const char *payload;
    size_t len;
} fanout_t;

/* A session not confirmed yet keeps its events (the newest
 * LIVE_UNCONFIRMED_MAX) for its check: sent if the token holds, dropped if
 * not. So a client misses none of the events that follow its upgrade. */
static void s_keep(session_t *s, const char *payload, size_t len)
{
    if (s->nwaiting == LIVE_UNCONFIRMED_MAX) {
        s_item_free(list_item(list_pop_front(&s->waiting), item_t, link));
        s->nwaiting--;
    }
    item_t *it = xmalloc(sizeof *it);
    it->payload = xstrndup(payload, len);
    it->len = len;
    list_push_back(&s->waiting, &it->link);
    s->nwaiting++;
}

/* Sends (ws not NULL) or drops what s kept. */
static void s_flush(session_t *s, ws_t *ws)
{
    list_for_each_safe(n, nx, &s->waiting) {
        item_t *it = list_item(n, item_t, link);
        list_remove(n);
        if (ws)
            ws_send_text(ws, it->payload, it->len);
        s_item_free(it);
    }
    s->nwaiting = 0;
}

static void s_send_one(ws_t *ws, void *ud)
{
    fanout_t *f = ud;
    session_t *s = ws_data(ws);
    if (s->project[0] && (!f->project || strcmp(s->project, f->project) != 0))
        return;
    if (s->confirmed)
        ws_send_text(ws, f->payload, f->len);
    else
        s_keep(s, f->payload, f->len);
}

static bool s_start_check(live_t *l);

/* Relays the held events to the sessions that want them, in order; unless
 * the users counter moved since the sessions were last checked: then they
 * wait for that check (started here), so that no event reaches a session
 * whose token has just ended. */
static void s_relay(live_t *l)
{
    if (list_empty(&l->held))
        return;
    store_t *st = l->b->store;
    if (store_version_known(st) && store_users_version(st) != l->checked &&
        s_start_check(l))
        return;
    bool any = l->hub && ws_hub_count(l->hub) > 0;
    list_for_each_safe(n, nx, &l->held) {
        item_t *it = list_item(n, item_t, link);
        list_remove(n);
        l->nheld--;
        if (any) {
            json_t *j = json_loadb(it->payload, it->len, 0, NULL);
            fanout_t f = {json_string_value(json_object_get(j, "project_id")),
                          it->payload, it->len};
            ws_hub_each(l->hub, s_send_one, &f);
            json_decref(j);
        }
        s_item_free(it);
    }
}

/* Loop thread: the events from NATS, held (at most LIVE_QUEUE_MAX: the
 * oldest go first) and relayed. */
static void s_on_events(list_t *items, void *ud)
{
    live_t *l = ud;
    list_for_each_safe(n, nx, items) {
        list_remove(n);
        if (l->nheld >= LIVE_QUEUE_MAX) {
            s_item_free(list_item(list_pop_front(&l->held), item_t, link));
            l->nheld--;
            atomic_fetch_add(&l->dropped, 1);
        }
        list_push_back(&l->held, n);
        l->nheld++;
    }
    s_relay(l);
}

/* ---- the subscription ---- */

/* Pool: subscribes to vapora.> unless subscribed, and waits until the
 * server has the subscription (its PONG to a flush comes after it took the
 * SUB). NATS down, the flush fails: nats.c sends the SUB again when it
 * reconnects, before anything published since. */
static void s_subscribe(live_t *l, natsConnection *nc)
{
    pthread_mutex_lock(&l->sub_mu);
    if (!l->sub && nc) {
        natsStatus st = natsConnection_Subscribe(&l->sub, nc, "vapora.>", s_on_nats, l);
        if (st == NATS_OK) {
            natsConnection_FlushTimeout(nc, LIVE_FLUSH_MS);
        } else {
            log_warn("live: subscribing to vapora.> failed: %s; retrying",
                     natsStatus_GetText(st));
            l->sub = NULL;
        }
    }
    atomic_store(&l->subscribed, l->sub != NULL);
    pthread_mutex_unlock(&l->sub_mu);
}

static void s_sub_job(pool_work_t *w)
{
    live_t *l = container_of(w, live_t, sub_job);
    s_subscribe(l, natsc_conn(worker_nats(l->b->w)));
}

static void s_sub_job_done(pool_work_t *w, int status)
{
    UNUSED(status);
    container_of(w, live_t, sub_job)->sub_job_running = false;
}

/* Loop timer: subscribes when sessions are open without a subscription
 * (NATS's connection did not exist yet at their upgrade); ends it once no
 * session was open for l->unsub_ms. Never waits for the pool's
 * subscribe: a lock it holds is tried, not taken. */
static void s_keep_subscription(live_t *l)
{
    natsc_t *nats = worker_nats(l->b->w);
    if (!nats || l->sub_job_running || l->upgrading)
        return;
    unsigned n = atomic_load(&l->listeners);
    if (n > 0 && !atomic_load(&l->subscribed) && natsc_conn(nats)) {
        if (pool_submit(worker_pool(l->b->w), &l->sub_job, s_sub_job, s_sub_job_done) == 0)
            l->sub_job_running = true;
        return;
    }
    if (n > 0 || !l->idle_since ||
        loop_now_ms(worker_loop(l->b->w)) - l->idle_since < l->unsub_ms)
        return;
    if (pthread_mutex_trylock(&l->sub_mu) != 0)
        return;
    if (l->sub) {
        natsSubscription_Unsubscribe(l->sub);
        natsSubscription_Destroy(l->sub);
        l->sub = NULL;
    }
    atomic_store(&l->subscribed, false);
    l->idle_since = 0;
    pthread_mutex_unlock(&l->sub_mu);
}

/* ---- who may listen ---- */

static void s_check_work(pool_work_t *w)
{
    check_job_t *j = container_of(w, check_job_t, work);
    store_t *st = j->l->b->store;
    for (size_t i = 0; i < j->n; i++) {
        check_item_t *it = &j->items[i];
        store_err_t e;
        int64_t ver = 0;
        int rc = store_user_token(st, it->sub, &ver, &e);
        it->known = rc == 0 || rc == VP_ENOTFOUND;
        it->holds = rc == 0 && ver == it->ver;
    }
    store_end(st);
}

/* Applies what the check found to the session it names, if still open. */
static void s_apply(ws_t *ws, void *ud)
{
    check_job_t *j = ud;
    session_t *s = ws_data(ws);
    for (size_t i = 0; i < j->n; i++) {
        check_item_t *it = &j->items[i];
        if (it->serial != s->serial)
            continue;
        if (!it->known) { /* the database failed: no events until a check does not */
            s->confirmed = false;
            continue;
        }
        s->confirmed = it->holds;
        s->tag = j->tag;
        s_flush(s, it->holds ? ws : NULL);
        if (!it->holds)
            ws_close(ws, 1008, "the token was revoked");
    }
}

static void s_check_done(pool_work_t *w, int status)
{
    check_job_t *j = container_of(w, check_job_t, work);
    live_t *l = j->l;
    l->job = NULL;
    if (status == 0) {
        ws_hub_each(l->hub, s_apply, j);
        l->checked = j->tag;
    }
    free(j->items);
    free(j);
    s_relay(l);
}

/* Adds a session to check: unconfirmed, or confirmed under another value
 * of the users counter (every one, when the counter is not shared). */
static void s_gather(ws_t *ws, void *ud)
{
    check_job_t *j = ud;
    session_t *s = ws_data(ws);
    if (s->confirmed && s->tag == j->tag && store_version_known(j->l->b->store))
        return;
    if (j->n == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 16;
        j->items = xrealloc(j->items, j->cap * sizeof *j->items);
    }
    check_item_t *it = &j->items[j->n++];
    *it = (check_item_t){.serial = s->serial, .ver = s->ver};
    memcpy(it->sub, s->sub, sizeof it->sub);
}

/* Starts a check of the sessions that need one; true while one runs (or
 * could not be queued yet: the timer tries again), false when none needs
 * it (then every session is current). */
static bool s_start_check(live_t *l)
{
    if (l->job)
        return true;
    check_job_t *j = xcalloc(1, sizeof *j);
    j->l = l;
    j->tag = store_users_version(l->b->store);
    if (l->hub)
        ws_hub_each(l->hub, s_gather, j);
    if (j->n == 0) {
        l->checked = j->tag;
        free(j);
        return false;
    }
    if (pool_submit(worker_pool(l->b->w), &j->work, s_check_work, s_check_done) == 0)
        l->job = j;
    else
        free(j->items), free(j);
    return true;
}

/* Loop timer: confirms new sessions, checks again those whose users may
 * have changed, relays what waited. */
static void s_tick(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    live_t *l = ud;
    s_start_check(l);
    s_relay(l);
    s_keep_subscription(l);
}

/* A session ended (or never opened): the last one starts the wait before
 * the subscription ends. */
static void s_unlisten(live_t *l)
{
    if (atomic_fetch_sub(&l->listeners, 1) == 1)
        l->idle_since = loop_now_ms(worker_loop(l->b->w));
}

static void s_session_closed(ws_t *ws, void *ud)
{
    UNUSED(ws);
    session_t *s = ud;
    live_t *l = s->l;
    s_flush(s, NULL);
    s_unlisten(l);
    free(s);
}

/* The caller of GET /ws: its token in ?token= or Authorization; false
 * after replying 401 or 403. */
static bool s_caller(live_t *l, http_req_t *req, auth_claims_t *who)
{
    const char *tok = http_req_query(req, "token");
    if (!tok || http_req_header(req, "Authorization"))
        return api_authorize(req, l->b, AUTH_VIEWER, who);
    uint64_t users = store_users_version(l->b->store);
    bool known = store_version_known(l->b->store);
    if (auth_verify_token_cached(l->b->auth, tok, known ? &users : NULL, who) < 0) {
        http_reply_error(req, 401, "unauthorized",
                         "the token is invalid, expired or revoked");
        return false;
    }
    return true;
}

/* Answers the upgrade; the session counts as listening from before its
 * 101 goes out. */
static void s_open(live_t *l, http_req_t *req, session_t *s)
{
    atomic_fetch_add(&l->listeners, 1);
    l->idle_since = 0;
    if (ws_accept(l->hub, req, NULL, s_session_closed, s) < 0) {
        s_unlisten(l);
        free(s);
    }
}

static void s_upgrade_work(void *arg)
{
    session_t *s = arg;
    s_subscribe(s->l, s->nc);
}

static void s_upgrade_done(http_req_t *req, void *arg, int status)
{
    session_t *s = arg;
    s->l->upgrading--;
    if (status != 0) { /* the worker stops */
        http_reply_error(req, 503, "unavailable", "the server is stopping");
        free(s);
        return;
    }
    s_open(s->l, req, s);
}

static void s_ws(http_req_t *req, void *ud)
{
    live_t *l = ud;
    auth_claims_t who;
    if (!s_caller(l, req, &who))
        return;
    session_t *s = xcalloc(1, sizeof *s);
    list_init(&s->waiting);
    const char *p = http_req_query(req, "project_id");
    if (p)
        snprintf(s->project, sizeof s->project, "%s", p);
    memcpy(s->sub, who.sub, sizeof s->sub);
    s->ver = who.ver;
    s->serial = ++l->next_serial;
    s->confirmed = who.current; /* else the next check confirms it */
    s->tag = store_users_version(l->b->store);
    s->l = l;
    natsc_t *nats = worker_nats(l->b->w);
    s->nc = nats ? natsc_conn(nats) : NULL;
    if (!s->nc || atomic_load(&l->subscribed)) {
        s_open(l, req, s);
        return;
    }
    if (http_req_run_blocking(req, worker_pool(l->b->w), s_upgrade_work, s_upgrade_done,
                              s) == 0)
        l->upgrading++;
    else
        free(s); /* answered 503 */
}

static void s_collect(sbuf_t *out, void *ud)
{
    live_t *l = ud;
    unsigned long dropped = atomic_load(&l->dropped);
    metrics_write_sample(out, "vapora_ws_sessions", "Open WebSocket sessions.", "gauge",
                         "service=\"backend\"", ws_hub_count(l->hub));
    metrics_write_sample(out, "vapora_ws_subscribed",
                         "Whether this worker is subscribed to the events (it is while "
                         "sessions are open, and a while after).",
                         "gauge", "service=\"backend\"", atomic_load(&l->subscribed));
    metrics_write_sample(out, "vapora_ws_events_dropped_total",
                         "Events not relayed because the relay queue was full.",
                         "counter", "service=\"backend\"", (double)dropped);
}

live_t *live_new(backend_t *b)
{
    live_t *l = xcalloc(1, sizeof *l);
    l->b = b;
    pthread_mutex_init(&l->sub_mu, NULL);
    list_init(&l->held);
    l->checked = store_users_version(b->store);
    loop_t *loop = worker_loop(b->w);
    ws_config_t wc = {.max_queue = 1 << 20,
                      .max_message = 64 << 10,
                      .ping_interval = 20,
                      .idle_timeout = 60};
    long maxq;
    char err[256];
    if (cfg_get_long(worker_cfg(b->w), "backend", "ws_max_queue", (long)wc.max_queue,
                     4096, 1L << 30, &maxq, err, sizeof err) < 0)
        log_warn("%s; using %zu", err, wc.max_queue);
    else
        wc.max_queue = (size_t)maxq;
    long unsub;
    if (cfg_get_long(worker_cfg(b->w), "backend", "ws_idle_unsubscribe", LIVE_UNSUB_S, 1,
                     86400, &unsub, err, sizeof err) < 0) {
        log_warn("%s; using %d", err, LIVE_UNSUB_S);
        unsub = LIVE_UNSUB_S;
    }
    l->unsub_ms = (uint64_t)unsub * 1000;
    l->hub = ws_hub_new(loop, worker_http(b->w), &wc);
    l->mb = mailbox_new(loop, LIVE_QUEUE_MAX, s_on_events, l);
    if (!l->mb) {
        log_err(errno, "live: mailbox");
        live_destroy(&l);
        return NULL;
    }
    if (!worker_nats(b->w))
        log_info("live: [nats] url is not set; /ws sessions get no events");
    l->recheck = loop_add_timer(loop, LIVE_CHECK_MS, LIVE_CHECK_MS, s_tick, l);
    http_route(worker_http(b->w), "GET", "/ws", 0, s_ws, l);
    metrics_add_collector(worker_metrics(b->w), s_collect, l);
    return l;
}

void live_destroy(live_t **lp)
{
    live_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    loop_t *loop = worker_loop(l->b->w);
    loop_cancel_timer(loop, &l->recheck);
    if (!natsc_unsubscribe_wait(&l->sub, 2000)) { /* its handler uses l, its mailbox */
        *lp = NULL;
        return; /* left to a handler that may still run (the process ends) */
    }
    ws_hub_destroy(&l->hub);
    mailbox_destroy(&l->mb); /* what is left is freed, not relayed */
    list_for_each_safe(n, nx, &l->held) {
        list_remove(n);
        s_item_free(list_item(n, item_t, link));
    }
    pthread_mutex_destroy(&l->sub_mu);
    free(l);
    *lp = NULL;
}
