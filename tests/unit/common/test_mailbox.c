/* test_mailbox.c - unit tests for common/mailbox.c: items posted from
 * other threads reach the loop thread in order, a burst costs one wake-up,
 * a bound refuses with -ENOBUFS, and destroy delivers what is left. */
#define _GNU_SOURCE
#include "mailbox.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define PER_THREAD 5000
#define THREADS 4

typedef struct msg {
    int thread, seq;
    list_t link;
} msg_t;

typedef struct ctx {
    loop_t *loop;
    mailbox_t *mb;
    pthread_t loop_thread;
    int got, deliveries, wrong_thread;
    int last[THREADS]; /* last seq seen per thread: order is kept */
    int out_of_order;
    int target;
} ctx_t;

static void s_recv(list_t *items, void *ud)
{
    ctx_t *c = ud;
    c->deliveries++;
    if (!pthread_equal(pthread_self(), c->loop_thread))
        c->wrong_thread++;
    list_for_each_safe(it, nx, items) {
        msg_t *m = list_item(it, msg_t, link);
        list_remove(it);
        if (m->seq != c->last[m->thread] + 1)
            c->out_of_order++;
        c->last[m->thread] = m->seq;
        c->got++;
        free(m);
    }
    if (c->got == c->target)
        loop_stop(c->loop);
}

static void *s_poster(void *arg)
{
    void **a = arg;
    ctx_t *c = a[0];
    int t = (int)(long)a[1];
    for (int i = 1; i <= PER_THREAD; i++) {
        msg_t *m = calloc(1, sizeof *m);
        m->thread = t;
        m->seq = i;
        cr_assert_eq(mailbox_post(c->mb, &m->link), 0);
    }
    return NULL;
}

Test(mailbox, posts_from_threads_arrive_in_order_on_the_loop)
{
    ctx_t c = {.loop = loop_new(), .loop_thread = pthread_self(),
               .target = PER_THREAD * THREADS};
    c.mb = mailbox_new(c.loop, 0, s_recv, &c);
    cr_assert_not_null(c.mb);
    pthread_t tids[THREADS];
    void *args[THREADS][2];
    for (int i = 0; i < THREADS; i++) {
        args[i][0] = &c;
        args[i][1] = (void *)(long)i;
        pthread_create(&tids[i], NULL, s_poster, args[i]);
    }
    cr_assert_eq(loop_run(c.loop), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(tids[i], NULL);
    cr_assert_eq(c.got, c.target);
    cr_assert_eq(c.out_of_order, 0);
    cr_assert_eq(c.wrong_thread, 0);
    cr_assert_lt(c.deliveries, c.target, "each post woke the loop");
    mailbox_destroy(&c.mb);
    cr_assert_null(c.mb);
    loop_destroy(&c.loop);
}

Test(mailbox, a_bound_refuses_and_destroy_delivers_the_rest)
{
    ctx_t c = {.loop = loop_new(), .loop_thread = pthread_self(), .target = -1};
    c.mb = mailbox_new(c.loop, 2, s_recv, &c);
    msg_t *m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = calloc(1, sizeof *m[i]);
        m[i]->seq = i + 1;
    }
    cr_assert_eq(mailbox_post(c.mb, &m[0]->link), 0);
    cr_assert_eq(mailbox_post(c.mb, &m[1]->link), 0);
    cr_assert_eq(mailbox_post(c.mb, &m[2]->link), -ENOBUFS);
    free(m[2]);
    mailbox_destroy(&c.mb); /* no loop iteration ran: destroy delivers */
    cr_assert_eq(c.got, 2);
    cr_assert_eq(c.deliveries, 1);
    mailbox_destroy(NULL);
    loop_destroy(&c.loop);
}
