/* jsq.c - see jsq.h. */
#define _GNU_SOURCE
#include "jsq.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "list.h"
#include "loadshare.h"
#include "log.h"
#include "mailbox.h"
#include "now.h"

#define JSQ_FETCH_MS 250
/* A fetch's batch at most: small enough that the workers' shares of a burst
 * stay even (5,000 runs in flight: 86 and 86 MB RSS, where 64 gave 97 and
 * 81), large enough that pull requests cost nothing next to deliveries. */
#define JSQ_BATCH 16
/* nats.c before 3.10.0 (#749): a fetch that starts with k messages already
 * waiting in the subscription (late answers to an earlier pull) asks the
 * server for batch - k more, then reads until it holds batch - k in all:
 * when k > batch / 2 it never gets there and writes past its array of
 * batch (heap corruption: an agents worker aborting in malloc about one
 * 2,000-task burst in ten). jsq_fetch asks for exactly what waits when
 * something does, so that such a fetch returns before that loop. */
#define JSQ_YIELD_MS 2 /* a fetch left to a sibling holding fewer */
#define NS_PER_MS 1000000LL

typedef struct item {
    natsMsg *msg;
    list_t link;
} item_t;

struct jsq {
    natsc_t *nc;
    jsq_config_t cfg;
    int64_t *backoff_ns;
    jsq_fn fn;
    void *ud;
    mailbox_t *mb;
    pthread_t tid;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;          /* guarded by mu */
    bool paused;        /* guarded by mu: fetch no more */
    unsigned in_hands;  /* guarded by mu: posted and not yet jsq_done */
    atomic_uint_fast64_t pending;
    atomic_bool ready;
    loadshare_t *share; /* the siblings' counts of messages in hands, or NULL */
    bool owed;          /* thread: left a fetch to a sibling, takes the next */
    atomic_uint_fast64_t yielded; /* fetches left to siblings */
    /* Thread-only. */
    jsCtx *js;
    natsSubscription *sub;
    natsConnection *js_nc;
};

static bool s_stopping(jsq_t *q)
{
    pthread_mutex_lock(&q->mu);
    bool s = q->stop;
    pthread_mutex_unlock(&q->mu);
    return s;
}

/* Sleeps ms, or less when stopping. */
static void s_nap(jsq_t *q, int ms)
{
    struct timespec ts = now_deadline(ms);
    pthread_mutex_lock(&q->mu);
    if (!q->stop)
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    pthread_mutex_unlock(&q->mu);
}

static void s_unbind(jsq_t *q)
{
    if (q->sub)
        natsSubscription_Destroy(q->sub); /* the durable consumer stays */
    q->sub = NULL;
    if (q->js)
        jsCtx_Destroy(q->js);
    q->js = NULL;
    q->js_nc = NULL;
    atomic_store(&q->ready, false);
}

static void s_consumer_config(const jsq_t *q, jsConsumerConfig *cc)
{
    jsConsumerConfig_Init(cc);
    cc->Durable = q->cfg.durable;
    cc->FilterSubject = q->cfg.filter;
    cc->AckPolicy = js_AckExplicit;
    cc->DeliverPolicy = js_DeliverAll;
    cc->AckWait = q->cfg.ack_wait_ms * NS_PER_MS;
    cc->MaxDeliver = q->cfg.max_deliver;
    cc->BackOff = q->backoff_ns;
    cc->BackOffLen = q->backoff_ns ? q->cfg.nbackoff : 0;
    cc->MaxAckPending = q->cfg.max_ack_pending;
}

/* Creates the consumer, or brings an existing one to this configuration. */
static bool s_consumer(jsq_t *q)
{
    jsConsumerConfig cc;
    s_consumer_config(q, &cc);
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddConsumer(&ci, q->js, q->cfg.stream, &cc, NULL, &jerr);
    if (s != NATS_OK) {
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        s = js_UpdateConsumer(&ci, q->js, q->cfg.stream, &cc, NULL, &jerr);
    }
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK)
        log_warn("jsq %s: creating the consumer failed: %s (%d); retrying", q->cfg.durable,
                 natsStatus_GetText(s), (int)jerr);
    return s == NATS_OK;
}

static bool s_stream_exists(jsq_t *q)
{
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, q->js, q->cfg.stream, NULL, NULL);
    jsStreamInfo_Destroy(si);
    return s == NATS_OK;
}

/* Thread: a bound subscription on the current connection, or false. */
static bool s_bind(jsq_t *q)
{
    natsConnection *nc = natsc_conn(q->nc);
    if (!nc || !natsc_connected(q->nc))
        return false;
    if (q->sub && q->js_nc == nc)
        return true;
    s_unbind(q);
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 2000;
    if (natsConnection_JetStream(&q->js, nc, &o) != NATS_OK)
        return false;
    q->js_nc = nc;
    if (!s_stream_exists(q) || !s_consumer(q))
        return false;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = q->cfg.stream;
    so.Consumer = q->cfg.durable;
    natsStatus s = js_PullSubscribe(&q->sub, q->js, q->cfg.filter, q->cfg.durable, &o,
                                    &so, NULL);
    if (s != NATS_OK) {
        log_warn("jsq %s: binding failed: %s", q->cfg.durable, natsStatus_GetText(s));
        q->sub = NULL;
        return false;
    }
    atomic_store(&q->ready, true);
    log_info("jsq %s: consuming %s from stream %s", q->cfg.durable, q->cfg.filter,
             q->cfg.stream);
    return true;
}

/* Thread: how many more messages the receiver may take now (waits while
 * it holds max_local). 0 when stopping. */
static int s_room(jsq_t *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->stop && (q->paused || q->in_hands >= q->cfg.max_local))
        pthread_cond_wait(&q->cv, &q->mu);
    int room = q->stop ? 0 : (int)(q->cfg.max_local - q->in_hands);
    pthread_mutex_unlock(&q->mu);
    return room < JSQ_BATCH ? room : JSQ_BATCH;
}

/* Under mu: the count of messages in hands the siblings see. A worker
 * that stopped fetching shows as full: nobody leaves it a fetch. */
static void s_publish(jsq_t *q)
{
    if (q->share)
        loadshare_set(q->share, q->paused ? UINT32_MAX / 2 : q->in_hands, now_ms());
}

static void s_post(jsq_t *q, natsMsg *m)
{
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, m) == NATS_OK)
        atomic_store(&q->pending, md->NumPending);
    jsMsgMetaData_Destroy(md);
    item_t *it = xcalloc(1, sizeof *it);
    it->msg = m;
    pthread_mutex_lock(&q->mu);
    q->in_hands++;
    s_publish(q);
    pthread_mutex_unlock(&q->mu);
    VP_ASSERT(mailbox_post(q->mb, &it->link) == 0);
}

natsStatus jsq_fetch(natsMsgList *list, natsSubscription *sub, int room, int64_t timeout_ms)
{
    int waiting = 0;
    if (natsSubscription_GetPending(sub, &waiting, NULL) != NATS_OK)
        waiting = 1;
    int batch = waiting > 0 && waiting < room ? waiting : room;
    natsStatus s = natsSubscription_Fetch(list, sub, batch, timeout_ms, NULL);
    /* More than asked: nats.c wrote past its array; the heap is not to be
     * trusted. The messages come back to a fresh worker. */
    VP_ASSERT(list->Count <= batch);
    return s;
}

static void s_fetch(jsq_t *q, int room)
{
    natsMsgList list = {0};
    natsStatus s = jsq_fetch(&list, q->sub, room, JSQ_FETCH_MS);
    if (s == NATS_OK) {
        for (int i = 0; i < list.Count; i++) {
            s_post(q, list.Msgs[i]);
            list.Msgs[i] = NULL;
        }
    } else if (s != NATS_TIMEOUT) {
        log_warn("jsq %s: fetch failed: %s; binding again", q->cfg.durable,
                 natsStatus_GetText(s));
        s_unbind(q);
    }
    natsMsgList_Destroy(&list);
}

/* Thread: whether to leave the next fetch to a sibling holding fewer
 * messages (loadshare.h); after leaving one, the next is taken, so that a
 * sibling that does not fetch slows this worker by half at most. Also the
 * heartbeat. */
static bool s_yield(jsq_t *q)
{
    if (!q->share)
        return false;
    pthread_mutex_lock(&q->mu);
    unsigned n = q->in_hands;
    s_publish(q); /* the heartbeat */
    pthread_mutex_unlock(&q->mu);
    if (q->owed || !loadshare_should_yield(q->share, n, now_ms())) {
        q->owed = false;
        return false;
    }
    q->owed = true;
    atomic_fetch_add(&q->yielded, 1);
    return true;
}

static void *s_thread(void *arg)
{
    jsq_t *q = arg;
    while (!s_stopping(q)) {
        if (!s_bind(q)) {
            s_nap(q, 500);
            continue;
        }
        int room = s_room(q);
        if (room > 0 && s_yield(q))
            s_nap(q, JSQ_YIELD_MS);
        else if (room > 0)
            s_fetch(q, room);
    }
    s_unbind(q);
    return NULL;
}

/* Loop thread: hands each message to the receiver. */
static void s_deliver(list_t *items, void *ud)
{
    jsq_t *q = ud;
    list_for_each_safe(n, nx, items) {
        item_t *it = list_item(n, item_t, link);
        list_remove(n);
        natsMsg *m = it->msg;
        free(it);
        if (q->fn)
            q->fn(m, q->ud);
        else /* stopping: left unacknowledged, it comes back */
            natsMsg_Destroy(m);
    }
}

static void s_copy_config(jsq_t *q, const jsq_config_t *cfg)
{
    q->cfg = *cfg;
    q->cfg.stream = xstrdup(cfg->stream);
    q->cfg.durable = xstrdup(cfg->durable);
    q->cfg.filter = xstrdup(cfg->filter);
    q->cfg.backoff_ms = NULL;
    q->cfg.share_path = NULL; /* used by jsq_new only */
    if (cfg->backoff_ms && cfg->nbackoff > 0) {
        q->backoff_ns = xcalloc((size_t)cfg->nbackoff, sizeof *q->backoff_ns);
        for (int i = 0; i < cfg->nbackoff; i++)
            q->backoff_ns[i] = cfg->backoff_ms[i] * NS_PER_MS;
    }
    if (q->cfg.max_local == 0)
        q->cfg.max_local = 1;
}

jsq_t *jsq_new(loop_t *loop, natsc_t *nc, const jsq_config_t *cfg, jsq_fn fn, void *ud)
{
    jsq_t *q = xcalloc(1, sizeof *q);
    q->nc = nc;
    q->fn = fn;
    q->ud = ud;
    s_copy_config(q, cfg);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (cfg->share_path && !(q->share = loadshare_open(cfg->share_path)))
        log_warn("jsq %s: %s: %s; fetching without regard to the other workers",
                 cfg->durable, cfg->share_path, strerror(errno));
    q->mb = mailbox_new(loop, 0, s_deliver, q);
    if (!q->mb) {
        jsq_destroy(&q);
        return NULL;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&q->tid, NULL, s_thread, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        jsq_destroy(&q);
        return NULL;
    }
    q->started = true;
    return q;
}

void jsq_destroy(jsq_t **qp)
{
    jsq_t *q = qp ? *qp : NULL;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (q->started)
        pthread_join(q->tid, NULL);
    q->fn = NULL; /* what the mailbox still holds is dropped */
    mailbox_destroy(&q->mb);
    loadshare_close(&q->share);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free((char *)q->cfg.stream);
    free((char *)q->cfg.durable);
    free((char *)q->cfg.filter);
    free(q->backoff_ns);
    free(q);
    *qp = NULL;
}

void jsq_stop_fetching(jsq_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->paused = true;
    s_publish(q);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void jsq_done(jsq_t *q)
{
    pthread_mutex_lock(&q->mu);
    VP_ASSERT(q->in_hands > 0);
    q->in_hands--;
    s_publish(q);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

uint64_t jsq_yielded(jsq_t *q)
{
    return atomic_load(&q->yielded);
}

uint64_t jsq_pending(jsq_t *q)
{
    return atomic_load(&q->pending);
}

bool jsq_ready(jsq_t *q)
{
    return atomic_load(&q->ready);
}

uint64_t jsq_deliveries(natsMsg *msg)
{
    jsMsgMetaData *md = NULL;
    uint64_t n = 0;
    if (natsMsg_GetMetaData(&md, msg) == NATS_OK)
        n = md->NumDelivered;
    jsMsgMetaData_Destroy(md);
    return n;
}
