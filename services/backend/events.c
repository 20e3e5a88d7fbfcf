/* events.c - see events.h. */
#define _GNU_SOURCE
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "now.h"
#include "sbuf.h"
#include "shwake.h"
#include "store_outbox.h"

#define EVENTS_BATCH 1024
/* The leader sleeps until a commit in any worker kicks it (events.wake,
 * shared by the workers), or this long at most. */
#define EVENTS_IDLE_MS 200
#define EVENTS_FOLLOWER_MS 200
#define EVENTS_REFRESH_MS 1000
/* After a partial batch, the publisher sleeps this long (commits that
 * queue events do not wake it meanwhile): under a stream of writes, fewer
 * and fuller batches cost the database and NATS less. */
#define EVENTS_PACE_MS 5
#define EVENTS_RETRY_MS 250
/* The stream's window for dropping a message sent again (Nats-Msg-Id):
 * longer than a publisher's restart. */
#define EVENTS_DUPLICATES_NS (120LL * 1000000000LL)

struct events {
    backend_t *b;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    int lock_fd;
    shwake_t *wake; /* commits in every worker kick the leader through it */
    bool leader;
    jsCtx *js;
    natsConnection *js_nc; /* the connection js was made on */
    bool stream_ok;
    atomic_ulong published;
    atomic_bool is_leader;
    atomic_bool async_failed; /* an asynchronous publish of this batch failed */
    atomic_bool stream_lost;
    int64_t max_age_ns; /* [backend] events_max_age; 0: none */
    int64_t max_bytes;  /* [backend] events_max_bytes; 0: none */
};

/* nats.c thread: a publish of the current batch was refused or lost. */
static void s_async_err(jsCtx *js, jsPubAckErr *pae, void *ud)
{
    UNUSED(js);
    events_t *ev = ud;
    atomic_store(&ev->async_failed, true);
    if (pae->Err == NATS_NO_RESPONDERS)
        atomic_store(&ev->stream_lost, true);
}

/* Waits ms, or less when stopping. Returns false when stopping. */
static bool s_wait(events_t *ev, int ms)
{
    struct timespec ts = now_deadline(ms);
    pthread_mutex_lock(&ev->mu);
    if (!ev->stop)
        pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
    bool go = !ev->stop;
    pthread_mutex_unlock(&ev->mu);
    return go;
}

static bool s_take_lead(events_t *ev)
{
    if (ev->leader)
        return true;
    if (flock(ev->lock_fd, LOCK_EX | LOCK_NB) == 0) {
        ev->leader = true;
        atomic_store(&ev->is_leader, true);
        log_info("events: this worker publishes the outbox to NATS");
    }
    return ev->leader;
}

/* A JetStream context on the connection nc (made again when nc changed). */
static bool s_context(events_t *ev, natsConnection *nc)
{
    if (ev->js && ev->js_nc != nc) {
        jsCtx_Destroy(ev->js);
        ev->js = NULL;
    }
    if (ev->js)
        return true;
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 2000;
    o.PublishAsync.MaxPending = EVENTS_BATCH * 2;
    o.PublishAsync.ErrHandler = s_async_err;
    o.PublishAsync.ErrHandlerClosure = ev;
    if (natsConnection_JetStream(&ev->js, nc, &o) != NATS_OK)
        return false;
    ev->js_nc = nc;
    ev->stream_ok = false;
    return true;
}

/* The limits of stream VAPORA, set on cfg. The duplicate window may not
 * be longer than the messages live. */
static void s_limits(const events_t *ev, jsStreamConfig *cfg)
{
    cfg->MaxAge = ev->max_age_ns;
    cfg->MaxBytes = ev->max_bytes ? ev->max_bytes : -1;
    cfg->Duplicates = EVENTS_DUPLICATES_NS;
    if (ev->max_age_ns && ev->max_age_ns < cfg->Duplicates)
        cfg->Duplicates = ev->max_age_ns;
}

static void s_log_limits(const char *what, const events_t *ev)
{
    log_info("events: %s stream VAPORA (vapora.>, file storage, max_age %lld s, "
             "max_bytes %lld)",
             what, (long long)(ev->max_age_ns / 1000000000LL),
             (long long)ev->max_bytes);
}

/* Gives an existing stream the configured limits when it has others (the
 * rest of its configuration stays). si is replaced. */
static natsStatus s_update(events_t *ev, jsStreamInfo **si, jsErrCode *jerr)
{
    jsStreamConfig cfg = *(*si)->Config;
    s_limits(ev, &cfg);
    if (cfg.MaxAge == (*si)->Config->MaxAge && cfg.MaxBytes == (*si)->Config->MaxBytes)
        return NATS_OK;
    jsStreamInfo *updated = NULL;
    natsStatus s = js_UpdateStream(&updated, ev->js, &cfg, NULL, jerr);
    jsStreamInfo_Destroy(*si);
    *si = updated;
    if (s == NATS_OK)
        s_log_limits("limited", ev);
    return s;
}

/* Makes sure stream VAPORA exists (creating it when missing) with the
 * configured limits. */
static bool s_stream(events_t *ev)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, ev->js, "VAPORA", NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const char *subjects[] = {"vapora.>"};
        cfg.Name = "VAPORA";
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        s_limits(ev, &cfg);
        s = js_AddStream(&si, ev->js, &cfg, NULL, &jerr);
        if (s == NATS_OK)
            s_log_limits("created", ev);
    } else if (s == NATS_OK) {
        s = s_update(ev, &si, &jerr);
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK)
        log_warn("events: stream VAPORA not available: %s (%d)", natsStatus_GetText(s),
                 (int)jerr);
    return s == NATS_OK;
}

/* A JetStream context on the current connection, with the stream there. */
static bool s_ready(events_t *ev)
{
    natsc_t *n = worker_nats(ev->b->w);
    natsConnection *nc = n ? natsc_conn(n) : NULL;
    if (!nc || !natsc_connected(n) || !s_context(ev, nc))
        return false;
    if (atomic_exchange(&ev->stream_lost, false))
        ev->stream_ok = false; /* the server lost the stream: make it again */
    if (!ev->stream_ok)
        ev->stream_ok = s_stream(ev);
    return ev->stream_ok;
}

/* Publishes evs asynchronously (Nats-Msg-Id = the outbox seq) and waits
 * for every acknowledgement; NATS_OK when all were stored. */
static natsStatus s_send(events_t *ev, const store_event_t *evs, size_t n)
{
    atomic_store(&ev->async_failed, false);
    natsStatus s = NATS_OK;
    for (size_t i = 0; i < n && s == NATS_OK; i++) {
        char msgid[48];
        snprintf(msgid, sizeof msgid, "vapora-outbox-%lld", (long long)evs[i].seq);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = msgid;
        s = js_PublishAsync(ev->js, evs[i].subject, evs[i].payload,
                            (int)strlen(evs[i].payload), &po);
    }
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = 5000;
    natsStatus done = js_PublishAsyncComplete(ev->js, &wait);
    if (done != NATS_OK) { /* forget what is still pending: it goes again */
        natsMsgList pending;
        if (js_PublishAsyncGetPendingList(&pending, ev->js) == NATS_OK)
            natsMsgList_Destroy(&pending);
    }
    return s != NATS_OK                      ? s
           : done != NATS_OK                 ? done
           : atomic_load(&ev->async_failed) ? NATS_ERR
                                             : NATS_OK;
}

/* Publishes one batch and forgets it once stored; returns how many went
 * out (-1 on a failure). A batch that fails, even in part, stays in the
 * outbox and is sent again whole: the stream drops the copies it already
 * has (same Nats-Msg-Id), so nothing is lost or doubled and the order
 * holds. */
static int s_publish_batch(events_t *ev)
{
    store_event_t *evs = NULL;
    size_t n = 0;
    store_err_t e;
    backend_t *b = ev->b;
    if (store_outbox_fetch(b->store, EVENTS_BATCH, &evs, &n, &e) != 0)
        return -1;
    natsStatus s = n > 0 ? s_send(ev, evs, n) : NATS_OK;
    int64_t last = n > 0 ? evs[n - 1].seq : 0;
    store_outbox_free(evs, n);
    if (n == 0)
        return 0;
    if (s != NATS_OK) {
        log_warn("events: publishing %zu event(s) failed (%s); sending them again", n,
                 natsStatus_GetText(s));
        return -1;
    }
    if (store_outbox_delete_upto(b->store, last, &e) != 0)
        return -1;
    atomic_fetch_add(&ev->published, (unsigned long)n);
    store_outbox_refresh(b->store, &e);
    return (int)n;
}

/* One round of the leader's work; returns how long to wait for a kick. */
static int s_round(events_t *ev)
{
    if (!s_ready(ev))
        return EVENTS_RETRY_MS;
    int sent = s_publish_batch(ev);
    if (sent < 0)
        return EVENTS_RETRY_MS;
    if (sent > 0 && sent < EVENTS_BATCH) { /* let the next batch fill a little */
        struct timespec ts = {0, EVENTS_PACE_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return sent > 0 ? 0 : EVENTS_IDLE_MS;
}

/* Now and then (about once a second while idle), the shared backlog. */
static void s_refresh(events_t *ev, uint64_t *last)
{
    uint64_t now = now_ms();
    if (now - *last < EVENTS_REFRESH_MS)
        return;
    *last = now;
    store_err_t e;
    store_outbox_refresh(ev->b->store, &e);
    store_end(ev->b->store);
}

static void *s_thread(void *arg)
{
    events_t *ev = arg;
    pthread_setname_np(pthread_self(), "events-pub");
    uint64_t refreshed = now_ms();
    while (!ev->stop) {
        /* Read before looking at the outbox: a commit after this moves it,
         * and the wait below then returns at once. */
        uint32_t seen = shwake_seq(ev->wake);
        bool lead = s_take_lead(ev);
        int wait = lead ? s_round(ev) : EVENTS_FOLLOWER_MS;
        store_end(ev->b->store);
        if (wait == 0)
            continue;
        s_refresh(ev, &refreshed);
        if (!lead && !s_wait(ev, wait))
            break;
        if (lead)
            shwake_wait(ev->wake, seen, wait);
    }
    return NULL;
}

/* A commit queued events: wake the publisher (any thread). */
static void s_kick(void *ud)
{
    events_t *ev = ud;
    shwake_kick(ev->wake);
}

static void s_collect(sbuf_t *out, void *ud)
{
    events_t *ev = ud;
    metrics_write_sample(
        out, "vapora_events_outbox_depth", "Events waiting in the outbox for NATS.",
        "gauge", "service=\"backend\"", (double)store_outbox_backlog(ev->b->store));
    metrics_write_sample(out, "vapora_events_published_total",
                         "Events this worker published to JetStream.", "counter",
                         "service=\"backend\"", (double)atomic_load(&ev->published));
    metrics_write_sample(out, "vapora_events_dropped_total",
                         "Events dropped because the outbox was full.", "counter",
                         "service=\"backend\"",
                         (double)store_outbox_dropped(ev->b->store));
    metrics_write_sample(out, "vapora_events_publisher",
                         "1 when this worker is the one publishing the outbox.",
                         "gauge", "service=\"backend\"",
                         atomic_load(&ev->is_leader) ? 1 : 0);
}

events_t *events_new(backend_t *b, const events_limits_t *lim)
{
    if (!worker_nats(b->w)) {
        store_outbox_set_max(b->store, 0);
        log_info("events: [nats] url is not set; no events are published");
        return NULL;
    }
    events_t *ev = xcalloc(1, sizeof *ev);
    ev->b = b;
    ev->max_age_ns = (int64_t)lim->max_age_s * 1000000000LL;
    ev->max_bytes = lim->max_bytes;
    char *path = xasprintf("%s/events.lock", b->data_dir);
    ev->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    path = xasprintf("%s/events.wake", b->data_dir);
    ev->wake = shwake_open(path);
    if (!ev->wake) /* then commits in other workers wait for the poll */
        log_err(errno, "events: mapping %s", path);
    free(path);
    if (ev->lock_fd < 0) {
        log_err(errno, "events: opening the publisher lock");
        shwake_close(&ev->wake);
        free(ev);
        return NULL;
    }
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&ev->tid, NULL, s_thread, ev);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_err(rc, "events: starting the publisher thread");
        close(ev->lock_fd);
        shwake_close(&ev->wake);
        free(ev);
        return NULL;
    }
    metrics_add_collector(worker_metrics(b->w), s_collect, ev);
    store_outbox_set_commit_hook(b->store, s_kick, ev);
    return ev;
}

void events_destroy(events_t **ep)
{
    events_t *ev = ep ? *ep : NULL;
    if (!ev)
        return;
    store_outbox_set_commit_hook(ev->b->store, NULL, NULL);
    pthread_mutex_lock(&ev->mu);
    ev->stop = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    shwake_kick(ev->wake); /* the leader sleeps there */
    pthread_join(ev->tid, NULL);
    shwake_close(&ev->wake);
    jsCtx_Destroy(ev->js);
    close(ev->lock_fd); /* releases the lead */
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    free(ev);
    *ep = NULL;
}
