/* test_http_fixture.c - see test_http_fixture.h. */
#define _GNU_SOURCE
#include "test_http_fixture.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

static int64_t s_stop_when_done(loop_t *loop, void *ud)
{
    hfix_t *f = ud;
    if (atomic_load(&f->client_done))
        loop_stop(loop);
    return -1;
}

void hfix_init(hfix_t *f, const http_config_t *cfg)
{
    memset(f, 0, sizeof *f);
    http_config_t hc;
    http_config_defaults(&hc);
    hc.service = "unit";
    f->loop = loop_new();
    f->metrics = metrics_new();
    cr_assert(f->loop && f->metrics);
    f->srv = http_server_new(f->loop, f->metrics, cfg ? cfg : &hc);
    cr_assert_not_null(f->srv);
    f->lfd = -1;
    loop_add_before_sleep(f->loop, s_stop_when_done, f);
}

void hfix_start(hfix_t *f)
{
    char err[128];
    f->lfd = net_listen("127.0.0.1:0", 64, false, err, sizeof err);
    cr_assert_geq(f->lfd, 0, "%s", err);
    f->port = net_local_port(f->lfd);
    cr_assert_eq(http_server_start(f->srv, f->lfd), 0);
}

typedef struct client {
    hfix_t *f;
    void *(*fn)(void *);
    void *arg;
} client_t;

static void *s_client(void *arg)
{
    client_t *c = arg;
    c->fn(c->arg);
    atomic_store(&c->f->client_done, 1);
    loop_wakeup(c->f->loop);
    return NULL;
}

void hfix_run(hfix_t *f, void *(*client)(void *), void *arg)
{
    client_t c = {f, client, arg};
    atomic_store(&f->client_done, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_client, &c), 0);
    cr_assert_eq(loop_run(f->loop), 0);
    pthread_join(t, NULL);
}

typedef struct exchange {
    hfix_t *f;
    const char *req;
    char *out;
    size_t cap;
} exchange_t;

static void *s_exchange(void *arg)
{
    exchange_t *e = arg;
    hfix_exchange(e->f->port, e->req, e->out, e->cap);
    return NULL;
}

void hfix_run_exchange(hfix_t *f, const char *req, char *out, size_t cap)
{
    exchange_t e = {f, req, out, cap};
    hfix_run(f, s_exchange, &e);
}

void hfix_fini(hfix_t *f)
{
    http_server_destroy(&f->srv);
    metrics_destroy(&f->metrics);
    if (f->lfd >= 0)
        close(f->lfd);
    loop_destroy(&f->loop);
}

int hfix_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

size_t hfix_read_all(int fd, char *out, size_t cap)
{
    size_t off = 0;
    ssize_t n;
    while (off < cap - 1 && (n = read(fd, out + off, cap - 1 - off)) > 0)
        off += (size_t)n;
    out[off] = '\0';
    return off;
}

size_t hfix_exchange(int port, const char *req, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = hfix_connect(port);
    if (fd < 0)
        return 0;
    size_t n = 0;
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req))
        n = hfix_read_all(fd, out, cap);
    close(fd);
    return n;
}
