/* test_pool.c - unit tests for common/pool.c: completions reach the loop
 * thread, the bounded queue rejects, shutdown cancels queued jobs, and
 * cancellation of queued and running jobs. */
#define _GNU_SOURCE
#include "pool.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct ctx {
    loop_t *loop;
    pthread_t loop_thread;
    int done_ok, done_cancelled;
    int target; /* stop the loop after this many done() calls */
    atomic_int ran;
    atomic_int wrong_thread_work;
    int wrong_thread_done;
    sem_t started; /* posted by a blocking job once it runs */
    sem_t release; /* waited on by a blocking job */
} ctx_t;

static void s_ctx_init(ctx_t *c, int target)
{
    memset(c, 0, sizeof *c);
    c->loop = loop_new();
    c->loop_thread = pthread_self();
    c->target = target;
    sem_init(&c->started, 0, 0);
    sem_init(&c->release, 0, 0);
}

static void s_ctx_fini(ctx_t *c)
{
    loop_destroy(&c->loop);
    sem_destroy(&c->started);
    sem_destroy(&c->release);
}

/* One submission: the job embedded in what its done() frees. */
typedef struct tjob {
    pool_work_t w;
    ctx_t *c;
} tjob_t;

static void s_work(pool_work_t *w)
{
    ctx_t *c = container_of(w, tjob_t, w)->c;
    if (pthread_equal(pthread_self(), c->loop_thread))
        atomic_fetch_add(&c->wrong_thread_work, 1);
    atomic_fetch_add(&c->ran, 1);
}

static void s_blocking_work(pool_work_t *w)
{
    ctx_t *c = container_of(w, tjob_t, w)->c;
    sem_post(&c->started);
    sem_wait(&c->release);
    atomic_fetch_add(&c->ran, 1);
}

static void s_done(pool_work_t *w, int status)
{
    tjob_t *j = container_of(w, tjob_t, w);
    ctx_t *c = j->c;
    free(j);
    if (!pthread_equal(pthread_self(), c->loop_thread))
        c->wrong_thread_done++;
    if (status == 0)
        c->done_ok++;
    else if (status == -ECANCELED)
        c->done_cancelled++;
    if (c->done_ok + c->done_cancelled == c->target)
        loop_stop(c->loop);
}

/* Submits fn for c; *wp (when given) receives the job's handle. */
static int s_submit(pool_t *p, ctx_t *c, pool_work_fn fn, pool_work_t **wp)
{
    tjob_t *j = calloc(1, sizeof *j);
    j->c = c;
    int rc = pool_submit(p, &j->w, fn, s_done);
    if (rc < 0)
        free(j);
    else if (wp)
        *wp = &j->w;
    return rc;
}

Test(pool, completions_run_on_the_loop_thread)
{
    ctx_t c;
    s_ctx_init(&c, 200);
    pool_t *p = pool_new(c.loop, 4, 256);
    cr_assert_not_null(p);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(s_submit(p, &c, s_work, NULL), 0);
    cr_assert_eq(loop_run(c.loop), 0);
    cr_assert_eq(c.done_ok, 200);
    cr_assert_eq(atomic_load(&c.ran), 200);
    cr_assert_eq(atomic_load(&c.wrong_thread_work), 0);
    cr_assert_eq(c.wrong_thread_done, 0);
    pool_stats_t st;
    pool_get_stats(p, &st);
    cr_assert_eq(st.completed, 200);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.threads, 4);
    pool_destroy(&p);
    cr_assert_null(p);
    s_ctx_fini(&c);
}

Test(pool, full_queue_rejects_at_once)
{
    ctx_t c;
    s_ctx_init(&c, 3);
    pool_t *p = pool_new(c.loop, 1, 2);
    cr_assert_eq(s_submit(p, &c, s_blocking_work, NULL), 0);
    sem_wait(&c.started); /* the only thread is now busy */
    cr_assert_eq(s_submit(p, &c, s_work, NULL), 0);
    cr_assert_eq(s_submit(p, &c, s_work, NULL), 0);
    cr_assert_eq(s_submit(p, &c, s_work, NULL), -EBUSY);
    pool_stats_t st;
    pool_get_stats(p, &st);
    cr_assert_eq(st.queued, 2);
    cr_assert_eq(st.busy, 1);
    cr_assert_eq(st.rejected, 1);
    sem_post(&c.release);
    cr_assert_eq(loop_run(c.loop), 0);
    cr_assert_eq(c.done_ok, 3);
    pool_destroy(&p);
    s_ctx_fini(&c);
}

static void *s_release_later(void *arg)
{
    usleep(50000);
    sem_post(&((ctx_t *)arg)->release);
    return NULL;
}

Test(pool, shutdown_cancels_queued_and_finishes_running)
{
    ctx_t c;
    s_ctx_init(&c, -1);
    pool_t *p = pool_new(c.loop, 1, 8);
    cr_assert_eq(s_submit(p, &c, s_blocking_work, NULL), 0);
    sem_wait(&c.started);
    cr_assert_eq(s_submit(p, &c, s_work, NULL), 0);
    cr_assert_eq(s_submit(p, &c, s_work, NULL), 0);
    pthread_t t;
    pthread_create(&t, NULL, s_release_later, &c);
    pool_destroy(&p); /* waits for the running job */
    pthread_join(t, NULL);
    cr_assert_eq(c.done_ok, 1);
    cr_assert_eq(c.done_cancelled, 2);
    cr_assert_eq(atomic_load(&c.ran), 1); /* cancelled work never ran */
    s_ctx_fini(&c);
}

Test(pool, cancel_queued_and_running_jobs)
{
    ctx_t c;
    s_ctx_init(&c, 2);
    pool_t *p = pool_new(c.loop, 1, 8);
    pool_work_t *running = NULL, *queued = NULL;
    cr_assert_eq(s_submit(p, &c, s_blocking_work, &running), 0);
    sem_wait(&c.started);
    cr_assert_eq(s_submit(p, &c, s_work, &queued), 0);
    cr_assert_eq(pool_cancel(p, queued), 0);
    cr_assert_eq(pool_cancel(p, running), -EBUSY);
    sem_post(&c.release);
    cr_assert_eq(loop_run(c.loop), 0);
    cr_assert_eq(c.done_ok, 1);
    cr_assert_eq(c.done_cancelled, 1);
    cr_assert_eq(atomic_load(&c.ran), 1);
    pool_destroy(&p);
    s_ctx_fini(&c);
}

Test(pool, submit_after_stop_and_bad_sizes)
{
    ctx_t c;
    s_ctx_init(&c, 0);
    cr_assert_null(pool_new(c.loop, 0, 8));
    cr_assert_null(pool_new(c.loop, 2, 0));
    pool_destroy(NULL);
    s_ctx_fini(&c);
}
