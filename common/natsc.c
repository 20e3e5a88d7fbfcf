/* natsc.c - see natsc.h. */
#define _GNU_SOURCE
#include "natsc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "now.h"
#include "alloc.h"

struct natsc {
    char *url;
    natsOptions *opts;
    /* Set by the connect job's done() (loop thread), read by any thread
     * (jsq's, the backend's events thread): released and acquired, so that
     * a reader sees the connection the pool thread made, not just the
     * pointer. */
    _Atomic(natsConnection *) nc;
    natsConnection *pending; /* written by the pool thread */
    natsStatus connect_status;
    atomic_bool job_running;
    pool_work_t connect; /* the connect job */
    bool destroyed;
};

static void s_on_connected(natsConnection *nc, void *ud)
{
    UNUSED(nc);
    natsc_t *c = ud;
    log_info("nats: connected to %s", c->url);
}

static void s_on_disconnected(natsConnection *nc, void *ud)
{
    UNUSED(nc);
    natsc_t *c = ud;
    log_warn("nats: disconnected from %s; reconnecting", c->url);
}

static void s_on_reconnected(natsConnection *nc, void *ud)
{
    UNUSED(nc);
    natsc_t *c = ud;
    log_info("nats: reconnected to %s", c->url);
}

static void s_on_closed(natsConnection *nc, void *ud)
{
    UNUSED(nc);
    natsc_t *c = ud;
    if (!c->destroyed)
        log_error("nats: connection to %s closed", c->url);
}

/* Pool thread: the first attempt; with retry on, returns at once if the
 * server is not there. */
static void s_connect_job(pool_work_t *w)
{
    natsc_t *c = container_of(w, natsc_t, connect);
    c->connect_status = natsConnection_Connect(&c->pending, c->opts);
}

static void s_connect_done(pool_work_t *w, int status)
{
    natsc_t *c = container_of(w, natsc_t, connect);
    atomic_store(&c->job_running, false);
    if (status != 0)
        return; /* cancelled: the pool is stopping */
    atomic_store_explicit(&c->nc, c->pending, memory_order_release);
    if (c->connect_status == NATS_OK)
        log_info("nats: connected to %s", c->url);
    else if (c->connect_status == NATS_NOT_YET_CONNECTED)
        log_warn("nats: %s is not reachable yet; retrying in the background", c->url);
    else
        log_error("nats: cannot connect to %s: %s", c->url,
                  natsStatus_GetText(c->connect_status));
}

static int s_options(natsc_t *c, const char *name, bool send_asap)
{
    natsStatus s = natsOptions_Create(&c->opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(c->opts, c->url);
    if (s == NATS_OK)
        s = natsOptions_SetName(c->opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(c->opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(c->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(c->opts, 250);
    if (s == NATS_OK) /* a server that stops answering is noticed in ~4 s */
        s = natsOptions_SetPingInterval(c->opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(c->opts, 2);
    if (s == NATS_OK && send_asap)
        s = natsOptions_SetSendAsap(c->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(c->opts, true, s_on_connected, c);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(c->opts, s_on_disconnected, c);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(c->opts, s_on_reconnected, c);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(c->opts, s_on_closed, c);
    if (s != NATS_OK) {
        log_error("nats: invalid options for %s: %s", c->url, natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

natsc_t *natsc_new(pool_t *pool, const char *url, const char *name, bool send_asap)
{
    natsc_t *c = xcalloc(1, sizeof *c);
    c->url = xstrdup(url);
    if (s_options(c, name, send_asap) < 0) {
        natsc_destroy(&c);
        return NULL;
    }
    atomic_store(&c->job_running, true);
    if (pool_submit(pool, &c->connect, s_connect_job, s_connect_done) < 0) {
        log_error("nats: the pool refused the connect job");
        atomic_store(&c->job_running, false);
        natsc_destroy(&c);
        return NULL;
    }
    return c;
}

void natsc_destroy(natsc_t **cp)
{
    natsc_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    VP_ASSERT(!atomic_load(&c->job_running));
    c->destroyed = true;
    natsConnection *nc = natsc_conn(c) ? natsc_conn(c) : c->pending;
    if (nc) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
    natsOptions_Destroy(c->opts);
    /* nats.c runs connection callbacks on its own threads, after Close has
     * returned: they may still read c until the library has stopped. */
    nats_CloseAndWait(2000);
    free(c->url);
    free(c);
    *cp = NULL;
}

bool natsc_connected(natsc_t *c)
{
    natsConnection *nc = natsc_conn(c);
    return nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
}

void natsc_state(natsc_t *c, char *buf, size_t len)
{
    natsConnection *nc = natsc_conn(c);
    if (!nc) {
        snprintf(buf, len, "connecting to %s", c->url);
        return;
    }
    switch (natsConnection_Status(nc)) {
    case NATS_CONN_STATUS_CONNECTED: snprintf(buf, len, "%s", ""); break;
    case NATS_CONN_STATUS_CONNECTING:
        snprintf(buf, len, "connecting to %s", c->url);
        break;
    case NATS_CONN_STATUS_RECONNECTING:
    case NATS_CONN_STATUS_DISCONNECTED:
        snprintf(buf, len, "disconnected from %s, reconnecting", c->url);
        break;
    default: snprintf(buf, len, "connection to %s closed", c->url); break;
    }
}

natsConnection *natsc_conn(natsc_t *c)
{
    return atomic_load_explicit(&c->nc, memory_order_acquire);
}

/* ---- unsubscribing ---- */

typedef struct sub_end {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} sub_end_t;

/* nats.c's thread, once the handler has returned for the last time. */
static void s_sub_ended(void *closure)
{
    sub_end_t *e = closure;
    pthread_mutex_lock(&e->mu);
    e->done = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Waits for e->done until timeout_ms have passed; whether it came. */
static bool s_sub_wait(sub_end_t *e, int timeout_ms)
{
    struct timespec until = now_deadline(timeout_ms);
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    while (!e->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&e->cv, &e->mu, &until);
    bool done = e->done;
    pthread_mutex_unlock(&e->mu);
    return done;
}

bool natsc_unsubscribe_wait(natsSubscription **subp, int timeout_ms)
{
    natsSubscription *sub = *subp;
    if (!sub)
        return true;
    *subp = NULL;
    sub_end_t *e = xcalloc(1, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    /* Refused for a subscription already closed (its connection closed):
     * then no handler runs any more. */
    bool wait = natsSubscription_SetOnCompleteCB(sub, s_sub_ended, e) == NATS_OK;
    natsSubscription_Unsubscribe(sub);
    if (wait && !s_sub_wait(e, timeout_ms)) {
        log_warn("nats: a subscription's handler did not end within %d ms", timeout_ms);
        natsSubscription_Destroy(sub);
        return false; /* e is left to the late callback */
    }
    natsSubscription_Destroy(sub);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
    return true;
}
