/* bus.c - see bus.h. */
#define _GNU_SOURCE
#include "bus.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "mailbox.h"

#define BUS_QUEUE_MAX 10000

typedef struct item {
    char *subject;
    json_t *msg;
    list_t link;
} item_t;

struct bus {
    agents_t *a;
    bus_fn fn;
    void *ud;
    mailbox_t *mb;
    natsSubscription *subs[4];
    loop_timer_t *retry;
};

static const char *const s_subjects[4] = {BUS_CANCEL, BUS_SUPERSEDE, BUS_WATCH,
                                          BUS_STREAM "*"};

/* nats.c thread: the message goes to the loop (dropped when full). */
static void s_on_nats(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud)
{
    (void)nc;
    (void)sub;
    bus_t *b = ud;
    json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    if (json_is_object(j)) {
        item_t *it = xcalloc(1, sizeof *it);
        it->subject = xstrdup(natsMsg_GetSubject(m));
        it->msg = j;
        j = NULL;
        if (mailbox_post(b->mb, &it->link) < 0) {
            json_decref(it->msg);
            free(it->subject);
            free(it);
        }
    }
    json_decref(j);
    natsMsg_Destroy(m);
}

static void s_deliver(list_t *items, void *ud)
{
    bus_t *b = ud;
    list_for_each_safe(n, nx, items) {
        item_t *it = list_item(n, item_t, link);
        list_remove(n);
        if (b->fn)
            b->fn(it->subject, it->msg, b->ud);
        json_decref(it->msg);
        free(it->subject);
        free(it);
    }
}

static natsConnection *s_conn(bus_t *b)
{
    natsc_t *n = worker_nats(b->a->w);
    return n ? natsc_conn(n) : NULL;
}

static void s_try_subscribe(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    bus_t *b = ud;
    natsConnection *nc = s_conn(b);
    if (!nc)
        return;
    for (size_t i = 0; i < ARRAY_LEN(s_subjects); i++) {
        if (b->subs[i])
            continue;
        natsStatus s = natsConnection_Subscribe(&b->subs[i], nc, s_subjects[i], s_on_nats, b);
        if (s != NATS_OK) {
            b->subs[i] = NULL;
            log_warn("agents: subscribing to %s failed: %s", s_subjects[i],
                     natsStatus_GetText(s));
            return;
        }
    }
    loop_cancel_timer(loop, &b->retry);
}

bus_t *bus_new(agents_t *a, bus_fn fn, void *ud)
{
    bus_t *b = xcalloc(1, sizeof *b);
    b->a = a;
    b->fn = fn;
    b->ud = ud;
    b->mb = mailbox_new(a->loop, BUS_QUEUE_MAX, s_deliver, b);
    if (!b->mb) {
        free(b);
        return NULL;
    }
    if (worker_nats(a->w))
        b->retry = loop_add_timer(a->loop, 0, 100, s_try_subscribe, b);
    return b;
}

void bus_destroy(bus_t **bp)
{
    bus_t *b = bp ? *bp : NULL;
    if (!b)
        return;
    loop_cancel_timer(b->a->loop, &b->retry);
    bool ended = true; /* s_on_nats uses b and its mailbox */
    for (size_t i = 0; i < ARRAY_LEN(s_subjects); i++)
        ended = natsc_unsubscribe_wait(&b->subs[i], 2000) && ended;
    *bp = NULL;
    if (!ended)
        return; /* left to a handler that may still run (the process ends) */
    b->fn = NULL; /* what is still queued is dropped */
    mailbox_destroy(&b->mb);
    free(b);
}

bool bus_publish(bus_t *b, const char *subject, const json_t *msg)
{
    natsConnection *nc = s_conn(b);
    if (!nc)
        return false;
    char *txt = json_dumps(msg, JSON_COMPACT);
    natsStatus s = natsConnection_PublishString(nc, subject, txt);
    free(txt);
    return s == NATS_OK;
}
