/* live.c - GET /ws: live events over WebSocket.
 *
 * DESIGN. Every backend worker subscribes to vapora.> on NATS, so a client
 * hears of a change whichever worker made it. nats.c delivers messages on
 * its own thread: they go to the loop through a bounded mailbox
 * (mailbox.h); the loop thread then sends each event to the sessions whose
 * ?project_id= filter matches. */
#define _GNU_SOURCE
#include <errno.h>
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
#include "ws.h"

#define LIVE_QUEUE_MAX 10000

typedef struct item {
    char *payload;
    size_t len;
    list_t link;
} item_t;

struct live {
    backend_t *b;
    ws_hub_t *hub;
    mailbox_t *mb;
    natsSubscription *sub;
    loop_timer_t *retry;
    atomic_ulong dropped;
};

typedef struct session {
    char project[64]; /* "" = every project */
} session_t;

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

static void s_send_one(ws_t *ws, void *ud)
{
    fanout_t *f = ud;
    session_t *s = ws_data(ws);
    if (s->project[0] && (!f->project || strcmp(s->project, f->project) != 0))
        return;
    ws_send_text(ws, f->payload, f->len);
}

/* Loop thread: relays each event to the sessions that want it. */
static void s_on_events(list_t *items, void *ud)
{
    live_t *l = ud;
    list_for_each_safe(n, nx, items) {
        item_t *it = list_item(n, item_t, link);
        list_remove(n);
        if (l->hub && ws_hub_count(l->hub) > 0) {
            json_t *j = json_loadb(it->payload, it->len, 0, NULL);
            fanout_t f = {json_string_value(json_object_get(j, "project_id")),
                          it->payload, it->len};
            ws_hub_each(l->hub, s_send_one, &f);
            json_decref(j);
        }
        s_item_free(it);
    }
}

/* Subscribes once the NATS connection object exists (it is made on the
 * pool); nats.c keeps the subscription across reconnects. */
static void s_try_subscribe(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    live_t *l = ud;
    natsConnection *nc = natsc_conn(worker_nats(l->b->w));
    if (!nc)
        return;
    natsStatus s = natsConnection_Subscribe(&l->sub, nc, "vapora.>", s_on_nats, l);
    if (s != NATS_OK) {
        log_warn("live: subscribing to vapora.> failed: %s; retrying",
                 natsStatus_GetText(s));
        return;
    }
    loop_cancel_timer(worker_loop(l->b->w), &l->retry);
}

static void s_session_closed(ws_t *ws, void *ud)
{
    UNUSED(ws);
    free(ud);
}

static void s_ws(http_req_t *req, void *ud)
{
    live_t *l = ud;
    auth_claims_t who;
    const char *tok = http_req_query(req, "token");
    if (tok && !http_req_header(req, "Authorization")) {
        if (auth_verify_token_cached(l->b->auth, tok, &who) < 0) {
            http_reply_error(req, 401, "unauthorized",
                             "the token is invalid or expired");
            return;
        }
    } else if (!api_authorize(req, l->b, AUTH_VIEWER, &who)) {
        return;
    }
    session_t *s = xcalloc(1, sizeof *s);
    const char *p = http_req_query(req, "project_id");
    if (p)
        snprintf(s->project, sizeof s->project, "%s", p);
    if (ws_accept(l->hub, req, NULL, s_session_closed, s) < 0)
        free(s);
}

static void s_collect(sbuf_t *out, void *ud)
{
    live_t *l = ud;
    unsigned long dropped = atomic_load(&l->dropped);
    metrics_write_sample(out, "vapora_ws_sessions", "Open WebSocket sessions.", "gauge",
                         "service=\"backend\"", ws_hub_count(l->hub));
    metrics_write_sample(out, "vapora_ws_events_dropped_total",
                         "Events not relayed because the relay queue was full.",
                         "counter", "service=\"backend\"", (double)dropped);
}

live_t *live_new(backend_t *b)
{
    live_t *l = xcalloc(1, sizeof *l);
    l->b = b;
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
    l->hub = ws_hub_new(loop, worker_http(b->w), &wc);
    l->mb = mailbox_new(loop, LIVE_QUEUE_MAX, s_on_events, l);
    if (!l->mb) {
        log_err(errno, "live: mailbox");
        live_destroy(&l);
        return NULL;
    }
    if (worker_nats(b->w))
        l->retry = loop_add_timer(loop, 0, 100, s_try_subscribe, l);
    else
        log_info("live: [nats] url is not set; /ws sessions get no events");
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
    loop_cancel_timer(loop, &l->retry);
    if (l->sub) {
        natsSubscription_Unsubscribe(l->sub);
        natsSubscription_Destroy(l->sub);
    }
    ws_hub_destroy(&l->hub);
    mailbox_destroy(&l->mb); /* what is left is freed, not relayed */
    free(l);
    *lp = NULL;
}
