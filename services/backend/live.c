/* live.c - GET /ws: live events over WebSocket.
 *
 * DESIGN. Every backend worker subscribes to vapora.> on NATS, so a client
 * hears of a change whichever worker made it. nats.c delivers messages on
 * its own thread: they go into a bounded queue and the loop is woken
 * through an eventfd only when the queue goes from empty to non-empty; the
 * loop thread then sends each event to the sessions whose ?project_id=
 * filter matches. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"
#include "live.h"
#include "log.h"
#include "alloc.h"
#include "sbuf.h"
#include "ws.h"

#define LIVE_QUEUE_MAX 10000

typedef struct item {
    char *payload;
    size_t len;
    struct item *next;
} item_t;

struct live {
    backend_t *b;
    ws_hub_t *hub;
    int evfd;
    natsSubscription *sub;
    loop_timer_t *retry;
    pthread_mutex_t mu;
    item_t *head, *tail; /* guarded by mu */
    unsigned queued;
    unsigned long dropped;
};

typedef struct session {
    char project[64]; /* "" = every project */
} session_t;

/* nats.c thread: queue the message, wake the loop on empty → non-empty. */
static void s_on_nats(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud)
{
    UNUSED(nc);
    UNUSED(sub);
    live_t *l = ud;
    item_t *it = xmalloc(sizeof *it);
    it->len = (size_t)natsMsg_GetDataLength(msg);
    it->payload = xstrndup(natsMsg_GetData(msg), it->len);
    it->next = NULL;
    natsMsg_Destroy(msg);
    pthread_mutex_lock(&l->mu);
    if (l->queued >= LIVE_QUEUE_MAX) {
        l->dropped++;
        pthread_mutex_unlock(&l->mu);
        free(it->payload);
        free(it);
        return;
    }
    bool wake = l->head == NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->queued++;
    pthread_mutex_unlock(&l->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t r = write(l->evfd, &one, sizeof one);
        (void)r;
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

static void s_on_wake(loop_t *loop, int fd, unsigned ev, void *ud)
{
    UNUSED(loop);
    UNUSED(ev);
    live_t *l = ud;
    uint64_t v;
    while (read(fd, &v, sizeof v) > 0) {
    }
    pthread_mutex_lock(&l->mu);
    item_t *list = l->head;
    l->head = l->tail = NULL;
    l->queued = 0;
    pthread_mutex_unlock(&l->mu);
    while (list) {
        item_t *it = list;
        list = it->next;
        if (ws_hub_count(l->hub) > 0) {
            json_t *j = json_loadb(it->payload, it->len, 0, NULL);
            fanout_t f = {json_string_value(json_object_get(j, "project_id")),
                          it->payload, it->len};
            ws_hub_each(l->hub, s_send_one, &f);
            json_decref(j);
        }
        free(it->payload);
        free(it);
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
    claims_t who;
    const char *tok = http_req_query(req, "token");
    if (tok && !http_req_header(req, "Authorization")) {
        if (auth_verify_token_cached(l->b, tok, &who) < 0) {
            http_reply_error(req, 401, "unauthorized",
                             "the token is invalid or expired");
            return;
        }
    } else if (!api_authorize(req, l->b, ROLE_VIEWER, &who)) {
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
    pthread_mutex_lock(&l->mu);
    unsigned long dropped = l->dropped;
    pthread_mutex_unlock(&l->mu);
    metrics_write_sample(out, "vapora_ws_sessions", "Open WebSocket sessions.", "gauge",
                         "service=\"backend\"", ws_hub_count(l->hub));
    metrics_write_sample(out, "vapora_ws_events_dropped_total",
                         "Events not relayed because the relay queue was full.",
                         "counter", "service=\"backend\"", (double)dropped);
}

live_t *live_start(backend_t *b)
{
    live_t *l = xcalloc(1, sizeof *l);
    l->b = b;
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&l->mu, NULL);
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
    if (l->evfd < 0 || loop_add_fd(loop, l->evfd, LOOP_READ, s_on_wake, l) < 0) {
        log_err(errno, "live: eventfd");
        live_stop(&l);
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

void live_stop(live_t **lp)
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
    if (l->evfd >= 0) {
        loop_del_fd(loop, l->evfd);
        close(l->evfd);
    }
    for (item_t *it = l->head, *n; it; it = n) {
        n = it->next;
        free(it->payload);
        free(it);
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
    *lp = NULL;
}
