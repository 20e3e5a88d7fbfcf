/* test_jsq.c - unit tests for common/jsq.c against a real nats-server:
 * two queues on one durable consumer share the messages without overlap
 * (each keeps what it got until the other got one: the first to bind may
 * not take everything),
 * a nak with delay brings a message back with its delivery count, a
 * queue that holds max_local messages fetches no more, and one holding more
 * than a live sibling process leaves it fetches (share_path). */
#define _GNU_SOURCE
#include "jsq.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadshare.h"
#include "now.h"
#include "pool.h"

static pid_t s_server;
static char s_dir[64], s_url[64];

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/vapora-jsq-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    int port = s_free_port();
    snprintf(s_url, sizeof s_url, "nats://127.0.0.1:%d", port);
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    s_server = fork();
    if (s_server == 0) {
        execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", portstr, "-sd",
               s_dir, (char *)NULL);
        _exit(127);
    }
    /* The stream the queues read, made as another service would. */
    natsConnection *nc = NULL;
    for (int i = 0; i < 100 && natsConnection_ConnectTo(&nc, s_url) != NATS_OK; i++)
        usleep(50000);
    cr_assert_not_null(nc, "nats-server did not start");
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"t.>"};
    sc.Name = "T";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    cr_assert_eq(js_AddStream(NULL, js, &sc, NULL, NULL), NATS_OK);
    for (int i = 0; i < 40; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        cr_assert_eq(js_Publish(NULL, js, "t.work", body, (int)strlen(body), NULL, NULL),
                     NATS_OK);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static void s_teardown(void)
{
    kill(s_server, SIGTERM);
    waitpid(s_server, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

typedef struct ctx {
    loop_t *loop;
    int seen[40];
    int got, target;
    bool nak_first; /* nak message 0 once, with a short delay */
    uint64_t redelivered_count;
    bool hold; /* keep messages (do not ack): for max_local */
    natsMsg *held[8];
    int nheld;
    struct tq *share[2]; /* set: each queue keeps what it got until both got one */
} ctx_t;

/* One queue of a test: its context is shared by the test's queues. */
typedef struct tq {
    ctx_t *c;
    jsq_t *q;
    int got;
    natsMsg *kept[8]; /* at most max_local: what it got before the other queue */
    int nkept;
} tq_t;

/* Acks a message a queue got and counts it; the loop stops at the target. */
static void s_handle(tq_t *t, natsMsg *m)
{
    ctx_t *c = t->c;
    int i = atoi(natsMsg_GetData(m));
    if (i == 0 && c->nak_first)
        c->redelivered_count = jsq_deliveries(m);
    c->seen[i]++;
    c->got++;
    natsMsg_Ack(m, NULL);
    natsMsg_Destroy(m);
    jsq_done(t->q);
    if (c->got == c->target)
        loop_stop(c->loop);
}

static void s_on_msg(natsMsg *m, void *ud)
{
    tq_t *t = ud;
    ctx_t *c = t->c;
    int i = atoi(natsMsg_GetData(m));
    if (c->hold && c->nheld < 8) {
        c->held[c->nheld++] = m;
        c->got++;
        if (c->got == c->target)
            loop_stop(c->loop);
        return;
    }
    if (c->nak_first && i == 0 && jsq_deliveries(m) == 1) {
        natsMsg_NakWithDelay(m, 100, NULL);
        natsMsg_Destroy(m);
        jsq_done(t->q);
        return;
    }
    t->got++;
    if (c->share[0] && (c->share[0]->got == 0 || c->share[1]->got == 0)) {
        /* Its max_local held, this queue fetches no more: the other one must
         * take the next messages, however fast this one was to bind. */
        t->kept[t->nkept++] = m;
        return;
    }
    s_handle(t, m);
    for (int k = 0; c->share[0] && k < 2; k++) {
        tq_t *o = c->share[k];
        for (; o->nkept > 0; o->nkept--)
            s_handle(o, o->kept[o->nkept - 1]);
    }
}

static void s_timeout(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    (void)ud;
    loop_stop(loop);
}

static void s_queue_shared(tq_t *t, ctx_t *c, natsc_t *nc, unsigned max_local,
                           const char *share)
{
    jsq_config_t cfg = {.stream = "T", .durable = "work", .filter = "t.work",
                        .ack_wait_ms = 5000, .max_deliver = 5, .max_ack_pending = 1000,
                        .max_local = max_local, .share_path = share};
    t->c = c;
    t->q = jsq_new(c->loop, nc, &cfg, s_on_msg, t);
    cr_assert_not_null(t->q);
}

static void s_queue(tq_t *t, ctx_t *c, natsc_t *nc, unsigned max_local)
{
    s_queue_shared(t, c, nc, max_local, NULL);
}

Test(jsq, two_queues_share_one_consumer_and_a_nak_comes_back, .init = s_setup,
     .fini = s_teardown, .timeout = 30)
{
    ctx_t c = {.loop = loop_new(), .nak_first = true, .target = 40};
    pool_t *pool = pool_new(c.loop, 1, 8);
    natsc_t *nc = natsc_new(pool, s_url, "jsq-test", false);
    tq_t a = {0}, b = {0};
    c.share[0] = &a;
    c.share[1] = &b;
    s_queue(&a, &c, nc, 4);
    s_queue(&b, &c, nc, 4);
    loop_timer_t *t = loop_add_timer(c.loop, 15000, 0, s_timeout, NULL);
    loop_run(c.loop);
    loop_cancel_timer(c.loop, &t);
    cr_assert_eq(c.got, 40, "got %d", c.got);
    cr_assert(a.got > 0 && b.got > 0, "one queue took everything: %d / %d", a.got, b.got);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(c.seen[i], 1, "message %d handled %d times", i, c.seen[i]);
    cr_assert_eq(c.redelivered_count, 2, "the nak'd message came back as delivery 2");
    cr_assert(jsq_ready(a.q));
    jsq_destroy(&a.q);
    jsq_destroy(&b.q);
    pool_destroy(&pool);
    natsc_destroy(&nc);
    loop_destroy(&c.loop);
}

/* The messages a test held: acknowledged, or given back (nak). */
static void s_release_held(ctx_t *c, tq_t *q, bool nak)
{
    for (int i = 0; i < c->nheld; i++) {
        if (nak)
            natsMsg_Nak(c->held[i], NULL);
        else
            natsMsg_Ack(c->held[i], NULL);
        natsMsg_Destroy(c->held[i]);
        jsq_done(q->q);
    }
    c->nheld = 0;
}

/* Ends a one-queue test: the queue, then the pool, NATS and the loop. */
static void s_end(ctx_t *c, tq_t *q, pool_t **pool, natsc_t **nc)
{
    jsq_destroy(&q->q);
    pool_destroy(pool);
    natsc_destroy(nc);
    loop_destroy(&c->loop);
}

Test(jsq, a_full_worker_takes_no_more, .init = s_setup, .fini = s_teardown, .timeout = 30)
{
    ctx_t c = {.loop = loop_new(), .hold = true, .target = 3};
    pool_t *pool = pool_new(c.loop, 1, 8);
    natsc_t *nc = natsc_new(pool, s_url, "jsq-test", false);
    tq_t q = {0};
    s_queue(&q, &c, nc, 3);
    loop_timer_t *t = loop_add_timer(c.loop, 10000, 0, s_timeout, NULL);
    loop_run(c.loop);
    cr_assert_eq(c.got, 3);
    c.target = 4; /* run one more second: nothing more may arrive */
    loop_cancel_timer(c.loop, &t);
    t = loop_add_timer(c.loop, 1000, 0, s_timeout, NULL);
    loop_run(c.loop);
    cr_assert_eq(c.got, 3, "fetched past max_local");
    cr_assert_geq(jsq_pending(q.q), 30, "the consumer's backlog is reported");
    s_release_held(&c, &q, false);
    s_end(&c, &q, &pool, &nc);
}

/* A sibling process holding no message, alive (its heartbeat kept fresh)
 * until killed. */
static pid_t s_idle_sibling(const char *share)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        loadshare_t *ls = loadshare_open(share);
        for (;;) {
            if (ls)
                loadshare_set(ls, 0, now_ms());
            usleep(50000);
        }
    }
    return pid;
}

/* With a live sibling holding nothing, a queue that holds messages leaves
 * it fetches (it still gets every message: a sibling that does not fetch
 * slows it, never stops it); alone, it never does. */
Test(jsq, a_queue_holding_more_than_a_sibling_leaves_it_fetches, .init = s_setup,
     .fini = s_teardown, .timeout = 30)
{
    char share[96];
    snprintf(share, sizeof share, "%s/work.share", s_dir);
    for (int with_sibling = 0; with_sibling < 2; with_sibling++) {
        pid_t sib = with_sibling ? s_idle_sibling(share) : -1;
        usleep(200000); /* its slot is there */
        ctx_t c = {.loop = loop_new(), .hold = true, .target = 8};
        pool_t *pool = pool_new(c.loop, 1, 8);
        natsc_t *nc = natsc_new(pool, s_url, "jsq-test", false);
        tq_t q = {0};
        s_queue_shared(&q, &c, nc, 100, share);
        loop_timer_t *t = loop_add_timer(c.loop, 15000, 0, s_timeout, NULL);
        loop_run(c.loop);
        loop_cancel_timer(c.loop, &t);
        cr_assert_geq(c.got, 8, "got %d of 8", c.got); /* a batch may bring more */
        /* Its first fetch may take every message there is (a batch): the
         * fetch after it is the one left to the sibling. */
        for (int i = 0; with_sibling && i < 200 && jsq_yielded(q.q) == 0; i++)
            usleep(10000);
        if (with_sibling)
            cr_assert_gt(jsq_yielded(q.q), 0, "no fetch was left to the idle sibling");
        else
            cr_assert_eq(jsq_yielded(q.q), 0, "alone, it left fetches to nobody");
        s_release_held(&c, &q, true); /* back, for the next round */
        s_end(&c, &q, &pool, &nc);
        if (sib > 0) {
            kill(sib, SIGKILL);
            waitpid(sib, NULL, 0);
        }
    }
}

/* Publishes 100 more t.work messages on its own connection, a little after
 * it starts: they come while a fetch is under way. *arg: how many were
 * stored (asserted by the test's thread: criterion asserts there only). */
static void *s_publish_late(void *arg)
{
    int *stored = arg;
    usleep(20000);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (natsConnection_ConnectTo(&nc, s_url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        for (int i = 0; i < 100; i++)
            *stored += js_Publish(NULL, js, "t.work", "late", 4, NULL, NULL) == NATS_OK;
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

/* Sends a pull request for batch messages of consumer "late" whose answers
 * land in sub, as an earlier fetch whose caller stopped waiting. */
static void s_pull(natsConnection *nc, natsSubscription *sub, int batch)
{
    char req[64];
    snprintf(req, sizeof req, "{\"batch\":%d,\"expires\":3000000000}", batch);
    cr_assert_eq(natsConnection_PublishRequestString(nc, "$JS.API.CONSUMER.MSG.NEXT.T.late",
                                                     natsSubscription_GetSubject(sub), req),
                 NATS_OK);
}

/* nats.c #749: a plain fetch of 64 starting with 36 + 4 late answers
 * waiting (more than half its batch) asks for 24 more and then gathers
 * until it holds 24, which it already passed: it stops only on the
 * server's status or its timeout, with more than it asked for (past its
 * array of 64 when enough come: heap corruption). jsq_fetch takes the 40
 * that wait, and no more, while an earlier pull still brings more. */
Test(jsq, a_fetch_starting_with_late_answers_takes_only_those, .init = s_setup,
     .fini = s_teardown, .timeout = 30)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, s_url), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    cr_assert_eq(js_PullSubscribe(&sub, js, "t.work", "late", NULL, NULL, NULL), NATS_OK);
    s_pull(nc, sub, 36);
    s_pull(nc, sub, 100); /* 4 now (the stream holds 40), the rest as they come */
    int waiting = 0;
    for (int i = 0; i < 200 && waiting < 40; i++) {
        usleep(10000);
        natsSubscription_GetPending(sub, &waiting, NULL);
    }
    cr_assert_eq(waiting, 40, "%d late answers waiting, not 40", waiting);
    pthread_t pub;
    int stored = 0;
    cr_assert_eq(pthread_create(&pub, NULL, s_publish_late, &stored), 0);
    natsMsgList list = {0};
    cr_assert_eq(jsq_fetch(&list, sub, 64, 250), NATS_OK);
    pthread_join(pub, NULL);
    cr_assert_eq(stored, 100, "%d of the late messages stored", stored);
    cr_assert_eq(list.Count, 40, "took %d", list.Count);
    for (int i = 0; i < list.Count; i++)
        cr_assert_eq(atoi(natsMsg_GetData(list.Msgs[i])), i, "message %d out of order", i);
    natsMsgList_Destroy(&list);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}
