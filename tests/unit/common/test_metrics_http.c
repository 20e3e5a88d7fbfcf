/* test_metrics_http.c - unit tests for common/metrics_http.c: GET /metrics
 * on a real server on loopback answers the registry's text, collectors
 * included, with the Prometheus content type. A curl client runs in a
 * thread; the server runs on this thread's loop. */
#define _GNU_SOURCE
#include "metrics_http.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

typedef struct fixture {
    loop_t *loop;
    char url[64];
    sbuf_t body;
    char ctype[128];
    long status;
    atomic_int done;
} fixture_t;

static void s_collect(sbuf_t *out, void *ud)
{
    metrics_write_sample(out, "unit_answer", "The answer.", "gauge", "", *(double *)ud);
}

static size_t s_write(char *p, size_t size, size_t n, void *ud)
{
    sbuf_append(ud, p, size * n);
    return size * n;
}

static void *s_client(void *arg)
{
    fixture_t *f = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f->body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (curl_easy_perform(c) == CURLE_OK) {
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(f->ctype, sizeof f->ctype, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
    atomic_store(&f->done, 1);
    loop_wakeup(f->loop);
    return NULL;
}

static int64_t s_hook(loop_t *l, void *ud)
{
    fixture_t *f = ud;
    if (atomic_load(&f->done))
        loop_stop(l);
    return -1;
}

Test(metrics_http, serves_the_registry_as_prometheus_text, .timeout = 20)
{
    fixture_t f = {.loop = loop_new()};
    double answer = 42;
    metrics_t *m = metrics_new();
    metrics_add_collector(m, s_collect, &answer);
    http_config_t hc;
    http_config_defaults(&hc);
    hc.service = "unit";
    http_server_t *srv = http_server_new(f.loop, m, &hc);
    cr_assert_eq(metrics_http_route(srv, m), 0);
    char err[128];
    int lfd = net_listen("127.0.0.1:0", 16, false, err, sizeof err);
    cr_assert_geq(lfd, 0, "%s", err);
    snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d/metrics", net_local_port(lfd));
    cr_assert_eq(http_server_start(srv, lfd), 0);
    loop_add_before_sleep(f.loop, s_hook, &f);
    pthread_t t;
    pthread_create(&t, NULL, s_client, &f);
    loop_run(f.loop);
    pthread_join(t, NULL);
    cr_assert_eq(f.status, 200);
    cr_assert_str_eq(f.ctype, "text/plain; version=0.0.4; charset=utf-8");
    cr_assert(strstr(f.body.data, "# TYPE unit_answer gauge\nunit_answer 42\n"), "%s",
              f.body.data);
    sbuf_free(&f.body);
    http_server_destroy(&srv);
    close(lfd);
    metrics_destroy(&m);
    loop_destroy(&f.loop);
}
