/* test_natsc.c - unit tests for common/natsc.c against a real nats-server
 * that each test starts on a free loopback port: the first connect runs on
 * the pool while the loop thread goes on; natsc_connected() and
 * natsc_state() follow the server going away and coming back (the
 * connection reconnects by itself), also to a server that was not there
 * yet; a pool that refuses the connect job gives NULL; unsubscribing waits
 * until a handler still running has returned.
 *
 * Every wait is bounded (the loop runs with a deadline timer). The server
 * is a child with PR_SET_PDEATHSIG, killed and reaped by s_fini even when
 * an assertion failed half way, like the loop, the pool and the
 * connection. */
#define _GNU_SOURCE
#include "natsc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "now.h"
#include "pool.h"

#define S_WAIT_MS 8000 /* for a connect or a reconnect; they take < 1 s */

/* What a test holds; s_fini releases it. */
static pid_t s_server;
static loop_t *s_loop;
static pool_t *s_pool;
static natsc_t *s_nc;
static char s_url[64];

static void s_server_stop(void)
{
    if (s_server <= 0)
        return;
    kill(s_server, SIGKILL);
    waitpid(s_server, NULL, 0);
    s_server = 0;
}

static void s_fini(void)
{
    pool_destroy(&s_pool); /* first: the connect job may still run */
    natsc_destroy(&s_nc);
    loop_destroy(&s_loop);
    s_server_stop();
}

/* A free TCP port on 127.0.0.1. */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static bool s_listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return up;
}

/* Starts nats-server on 127.0.0.1:port and waits until it listens. */
static void s_server_start(int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        if (getppid() != parent || null < 0)
            _exit(127);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", p, (char *)NULL);
        _exit(127);
    }
    s_server = pid;
    uint64_t end = now_ms() + 5000;
    while (!s_listening(port)) {
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "nats-server exited (on PATH?)");
        cr_assert_lt(now_ms(), end, "nats-server does not listen on port %d", port);
        usleep(20 * 1000);
    }
}

/* ---- running the loop until something holds ---- */

typedef bool (*s_pred_fn)(void);

typedef struct s_until {
    s_pred_fn pred;
    uint64_t deadline;
} s_until_t;

static void s_check(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)t;
    s_until_t *u = ud;
    if (u->pred() || now_ms() >= u->deadline)
        loop_stop(loop);
}

/* Runs the loop (so pool completions arrive) until pred holds or timeout_ms
 * passed; returns whether pred holds. */
static bool s_run_until(s_pred_fn pred, int timeout_ms)
{
    s_until_t u = {pred, now_ms() + (uint64_t)timeout_ms};
    loop_timer_t *t = loop_add_timer(s_loop, 0, 10, s_check, &u);
    cr_assert_not_null(t);
    cr_assert_eq(loop_run(s_loop), 0);
    loop_cancel_timer(s_loop, &t);
    return pred();
}

static bool s_connected(void)
{
    return natsc_connected(s_nc);
}

static bool s_disconnected(void)
{
    return !natsc_connected(s_nc);
}

static bool s_attempted(void) /* the first attempt returned */
{
    return natsc_conn(s_nc) != NULL;
}

/* ---- helpers ---- */

/* A loop and a pool; natsc_new on the url of port. */
static void s_connect(int port)
{
    snprintf(s_url, sizeof s_url, "nats://127.0.0.1:%d", port);
    s_loop = loop_new();
    cr_assert_not_null(s_loop);
    s_pool = pool_new(s_loop, 2, 8);
    cr_assert_not_null(s_pool);
    s_nc = natsc_new(s_pool, s_url, "test-natsc", false);
    cr_assert_not_null(s_nc);
}

/* Asserts natsc_state says want followed by the url (want "": connected). */
static void s_assert_state(const char *want)
{
    char buf[256], exp[256];
    natsc_state(s_nc, buf, sizeof buf);
    if (*want)
        snprintf(exp, sizeof exp, "%s%s", want, s_url);
    else
        exp[0] = '\0';
    cr_assert(strncmp(buf, exp, strlen(exp)) == 0 && (*want || !*buf),
              "state \"%s\", want \"%s...\"", buf, exp);
}

/* Asserts a message published on the connection comes back through it. */
static void s_assert_round_trip(void)
{
    natsConnection *nc = natsc_conn(s_nc);
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, "test.natsc"), NATS_OK);
    cr_assert_eq(natsConnection_PublishString(nc, "test.natsc", "ping"), NATS_OK);
    natsStatus s = natsSubscription_NextMsg(&m, sub, 2000);
    bool same = s == NATS_OK && strcmp(natsMsg_GetData(m), "ping") == 0;
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    cr_assert(same, "the message did not come back: %s", natsStatus_GetText(s));
}

/* ---- the tests ---- */

Test(natsc, connects_on_the_pool_and_carries_messages, .timeout = 30, .fini = s_fini)
{
    int port = s_free_port();
    s_server_start(port);
    s_connect(port);
    /* natsc_new returned before any attempt reached the loop thread. */
    cr_assert_null(natsc_conn(s_nc));
    cr_assert_not(natsc_connected(s_nc));
    s_assert_state("connecting to ");
    cr_assert(s_run_until(s_connected, S_WAIT_MS), "not connected to %s", s_url);
    cr_assert_not_null(natsc_conn(s_nc));
    s_assert_state("");
    s_assert_round_trip();
}

Test(natsc, a_server_that_comes_later_is_connected_to, .timeout = 30, .fini = s_fini)
{
    int port = s_free_port(); /* nothing listens there yet */
    s_connect(port);
    cr_assert(s_run_until(s_attempted, S_WAIT_MS), "the first attempt never returned");
    cr_assert_not(natsc_connected(s_nc));
    char buf[256];
    natsc_state(s_nc, buf, sizeof buf);
    cr_assert(strstr(buf, s_url), "state \"%s\" does not name %s", buf, s_url);
    s_server_start(port);
    cr_assert(s_run_until(s_connected, S_WAIT_MS), "not connected once it listened");
    s_assert_state("");
    s_assert_round_trip();
}

Test(natsc, reconnects_after_the_server_restarts, .timeout = 30, .fini = s_fini)
{
    int port = s_free_port();
    s_server_start(port);
    s_connect(port);
    cr_assert(s_run_until(s_connected, S_WAIT_MS), "not connected to %s", s_url);
    natsConnection *first = natsc_conn(s_nc);
    s_server_stop();
    cr_assert(s_run_until(s_disconnected, S_WAIT_MS),
              "still connected to a dead server");
    s_assert_state("disconnected from ");
    s_server_start(port);
    cr_assert(s_run_until(s_connected, S_WAIT_MS), "did not reconnect");
    cr_assert_eq(natsc_conn(s_nc), first, "a new connection instead of a reconnect");
    s_assert_state("");
    s_assert_round_trip();
}

/* A job that holds a pool thread until released. */
typedef struct s_blocker {
    pool_work_t w;
    sem_t started, release;
} s_blocker_t;

static void s_block(pool_work_t *w)
{
    s_blocker_t *b = container_of(w, s_blocker_t, w);
    sem_post(&b->started);
    sem_wait(&b->release);
}

static void s_nothing(pool_work_t *w)
{
    (void)w;
}

static void s_block_done(pool_work_t *w, int status)
{
    (void)w, (void)status;
}

Test(natsc, a_full_pool_refuses_and_nothing_is_made, .timeout = 30, .fini = s_fini)
{
    snprintf(s_url, sizeof s_url, "nats://127.0.0.1:%d", s_free_port());
    s_loop = loop_new();
    s_pool = pool_new(s_loop, 1, 1);
    cr_assert_not_null(s_pool);
    static s_blocker_t running;
    static pool_work_t queued;
    sem_init(&running.started, 0, 0);
    sem_init(&running.release, 0, 0);
    cr_assert_eq(pool_submit(s_pool, &running.w, s_block, s_block_done), 0);
    sem_wait(&running.started); /* the one thread is busy */
    cr_assert_eq(pool_submit(s_pool, &queued, s_nothing, s_block_done), 0);
    natsc_t *c = natsc_new(s_pool, s_url, "test-natsc", false);
    sem_post(&running.release);
    cr_assert_null(c, "natsc_new with a full pool queue");
    natsc_destroy(&c);
    natsc_destroy(NULL);
}

/* A handler that is still running when its subscription is closed. */
static sem_t s_in_handler;
static atomic_bool s_handler_done;

static void s_slow_handler(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud)
{
    (void)nc, (void)sub, (void)ud;
    sem_post(&s_in_handler);
    usleep(300 * 1000);
    atomic_store(&s_handler_done, true);
    natsMsg_Destroy(m);
}

Test(natsc, unsubscribe_wait_returns_once_the_handler_is_over, .timeout = 30,
     .fini = s_fini)
{
    int port = s_free_port();
    s_server_start(port);
    s_connect(port);
    cr_assert(s_run_until(s_connected, S_WAIT_MS), "not connected to %s", s_url);
    natsConnection *nc = natsc_conn(s_nc);
    natsSubscription *sub = NULL;
    sem_init(&s_in_handler, 0, 0);
    atomic_store(&s_handler_done, false);
    cr_assert_eq(natsConnection_Subscribe(&sub, nc, "test.slow", s_slow_handler, NULL),
                 NATS_OK);
    cr_assert_eq(natsConnection_PublishString(nc, "test.slow", "x"), NATS_OK);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    cr_assert_eq(sem_timedwait(&s_in_handler, &until), 0, "the handler did not run");
    natsc_unsubscribe_wait(&sub, 5000);
    cr_assert_null(sub);
    cr_assert(atomic_load(&s_handler_done), "returned while the handler still ran");
    natsc_unsubscribe_wait(&sub, 5000); /* NULL: nothing to do */
    sem_destroy(&s_in_handler);
}
