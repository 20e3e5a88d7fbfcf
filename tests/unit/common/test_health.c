/* test_health.c - unit tests for GET /health (common/health.c) and the
 * replies requests share (http_reply_shared): the healthy answer, a
 * failing check's 503 and reason, warnings, and a shared reply that
 * follows its bytes. A client thread talks to a real server on this
 * thread's loop (test_http_fixture.h). */
#define _GNU_SOURCE
#include "health.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_http_fixture.h"

#define REQ HFIX_REQ

typedef struct fixture {
    hfix_t h;
    health_t *health;
    int state; /* what the check returns */
    char resp[4][2048];
} fixture_t;

static int s_check(void *ud, char *buf, size_t len)
{
    fixture_t *f = ud;
    if (f->state != HEALTH_OK)
        snprintf(buf, len, "%s", "the disk is gone");
    return f->state;
}

static void s_setup(fixture_t *f)
{
    hfix_init(&f->h, NULL);
    f->health = health_new(f->h.loop, "unit");
    health_add_check(f->health, "disk", s_check, f);
    health_route(f->health, f->h.srv);
    hfix_start(&f->h);
    health_start(f->health);
}

static void s_teardown(fixture_t *f)
{
    hfix_fini(&f->h);
    health_destroy(&f->health);
    cr_assert_null(f->health);
}

static const char *s_body(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(b, "no body in %s", resp);
    return b + 4;
}

Test(health, healthy_answer_is_shared_and_follows_the_checks, .timeout = 20)
{
    static fixture_t f;
    s_setup(&f);
    hfix_run_exchange(&f.h, REQ("GET /health", ""), f.resp[0], sizeof f.resp[0]);
    hfix_run_exchange(&f.h, REQ("GET /health", ""), f.resp[1], sizeof f.resp[1]);
    f.state = HEALTH_DEGRADED;
    hfix_run_exchange(&f.h, REQ("GET /health", ""), f.resp[2], sizeof f.resp[2]);
    f.state = HEALTH_OK;
    hfix_run_exchange(&f.h, REQ("HEAD /health", ""), f.resp[3], sizeof f.resp[3]);

    char want[256];
    snprintf(want, sizeof want,
             "{\"status\":\"healthy\",\"service\":\"unit\",\"pid\":%d,\"uptime_s\":",
             (int)getpid());
    for (int i = 0; i < 2; i++) {
        cr_assert(strncmp(f.resp[i], "HTTP/1.1 200 ", 13) == 0, "%s", f.resp[i]);
        cr_assert(strstr(f.resp[i], "Content-Type: application/json\r\n"), "%s",
                  f.resp[i]);
        cr_assert(strstr(f.resp[i], "\r\nDate: "), "%s", f.resp[i]);
        cr_assert(strncmp(s_body(f.resp[i]), want, strlen(want)) == 0, "%s",
                  s_body(f.resp[i]));
        cr_assert(strstr(s_body(f.resp[i]), ",\"version\":\"" VAPORA_VERSION "\"}"));
    }
    /* A failing check: 503, degraded, with the check's name and reason. */
    cr_assert(strncmp(f.resp[2], "HTTP/1.1 503 ", 13) == 0, "%s", f.resp[2]);
    cr_assert(strstr(s_body(f.resp[2]), "\"status\":\"degraded\""), "%s", f.resp[2]);
    cr_assert(strstr(s_body(f.resp[2]), "\"reason\":\"disk: the disk is gone\""), "%s",
              f.resp[2]);
    /* Healthy again, and HEAD gets the headers without the body. */
    cr_assert(strncmp(f.resp[3], "HTTP/1.1 200 ", 13) == 0, "%s", f.resp[3]);
    cr_assert_str_eq(s_body(f.resp[3]), "");
    s_teardown(&f);
}

Test(health, warnings_are_listed_in_every_answer, .timeout = 20)
{
    static fixture_t f;
    s_setup(&f);
    health_add_warning(f.health, "a risky setting");
    hfix_run_exchange(&f.h, REQ("GET /health", ""), f.resp[0], sizeof f.resp[0]);
    cr_assert(strncmp(f.resp[0], "HTTP/1.1 200 ", 13) == 0, "%s", f.resp[0]);
    cr_assert(strstr(s_body(f.resp[0]), "\"status\":\"healthy\""), "%s", f.resp[0]);
    cr_assert(strstr(s_body(f.resp[0]), "\"warnings\":[\"a risky setting\"]"), "%s",
              f.resp[0]);
    s_teardown(&f);
}

/* ---- http_reply_shared ---- */

typedef struct shared {
    hfix_t h;
    http_shared_t *sh;
    const char *body; /* what /s answers */
    char resp[4][1024];
} shared_t;

static void s_shared(http_req_t *req, void *ud)
{
    shared_t *s = ud;
    if (strcmp(http_req_path(req), "/own") == 0)
        http_req_add_header(req, "X-Own", "yes");
    http_reply_shared(req, s->sh, 201, "text/plain", s->body, strlen(s->body));
}

Test(http_shared, a_shared_reply_follows_its_bytes, .timeout = 20)
{
    static shared_t s;
    hfix_init(&s.h, NULL);
    s.sh = http_shared_new();
    cr_assert_eq(http_route(s.h.srv, "GET", "/s", 0, s_shared, &s), 0);
    cr_assert_eq(http_route(s.h.srv, "GET", "/own", 0, s_shared, &s), 0);
    hfix_start(&s.h);
    s.body = "first";
    hfix_run_exchange(&s.h, REQ("GET /s", ""), s.resp[0], sizeof s.resp[0]);
    hfix_run_exchange(&s.h, REQ("GET /s", ""), s.resp[1], sizeof s.resp[1]);
    s.body = "fresh"; /* as long: only the bytes differ */
    hfix_run_exchange(&s.h, REQ("GET /s", ""), s.resp[2], sizeof s.resp[2]);
    hfix_run_exchange(&s.h, REQ("GET /own", ""), s.resp[3], sizeof s.resp[3]);
    const char *bodies[] = {"first", "first", "fresh", "fresh"};
    for (int i = 0; i < 4; i++) {
        cr_assert(strncmp(s.resp[i], "HTTP/1.1 201 ", 13) == 0, "%s", s.resp[i]);
        cr_assert(strstr(s.resp[i], "Content-Type: text/plain\r\n"), "%s", s.resp[i]);
        cr_assert(strstr(s.resp[i], "\r\nDate: "), "%s", s.resp[i]);
        cr_assert_str_eq(s_body(s.resp[i]), bodies[i]);
        /* One Date each: a shared reply never gains a header per request. */
        const char *d = strstr(s.resp[i], "\r\nDate: ");
        cr_assert_null(strstr(d + 1, "\r\nDate: "), "%s", s.resp[i]);
    }
    /* A request with headers of its own gets them (its own reply). */
    cr_assert(strstr(s.resp[3], "\r\nX-Own: yes\r\n"), "%s", s.resp[3]);
    cr_assert_null(strstr(s.resp[2], "X-Own"), "%s", s.resp[2]);
    hfix_fini(&s.h);
    http_shared_destroy(&s.sh);
    cr_assert_null(s.sh);
    http_shared_destroy(NULL);
}
