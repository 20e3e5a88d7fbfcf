/* test_backend_throttle.c - the login throttle (docs/backend.md): once an
 * account or a client address has failed too often, logins are refused
 * with 429 before any password is checked (the right one too) until the
 * delay has passed; parallel guesses buy nothing; and no other name can
 * reset an account's count. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fixture.h"

/* A login's status on a new connection (thread-safe: th_call). */
static int s_login_status(int port, const char *user, const char *pass)
{
    char body[256];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", user,
             pass);
    return th_call(port, "POST", BE_API "/auth/login", TH_JSON_CT, body, NULL,
                   3 * TH_IO_MS);
}

/* Fails n logins of user (each answered 401: checked and wrong). */
static void s_fail(const char *user, int n)
{
    for (int i = 0; i < n; i++) {
        th_resp_t *r = be_login_resp(user, "wrong-password");
        th_assert_error(r, 401, "invalid_credentials",
                        th_fmt("failure %d of %s", i, user));
        th_resp_free(&r);
    }
}

/* Asserts that a login of user with pass is refused unchecked: 429
 * too_many_attempts with a Retry-After of whole seconds. Returns it. */
static int s_assert_throttled(const char *user, const char *pass)
{
    th_resp_t *r = be_login_resp(user, pass);
    th_assert_error(r, 429, "too_many_attempts", th_fmt("login of %s", user));
    const char *ra = th_resp_header(r, "Retry-After");
    cr_assert_not_null(ra, "429 without Retry-After");
    int secs = atoi(ra);
    cr_assert(secs >= 1 && secs <= 60, "Retry-After: %s", ra);
    th_resp_free(&r);
    return secs;
}

/* Polls logins of user with pass (every 20 ms) until one is not refused;
 * returns how long that took (ms) and its status in *status. */
static long long s_wait_admitted(const char *user, const char *pass, int *status)
{
    long long t0 = th_now_ms();
    for (;;) {
        th_resp_t *r = be_login_resp(user, pass);
        *status = r->status;
        th_resp_free(&r);
        if (*status != 429)
            return th_now_ms() - t0;
        cr_assert_lt(th_now_ms() - t0, 20000, "%s refused for 20 s", user);
        th_sleep_ms(20);
    }
}

/* Fails user's logins until the delay is 1 s (5, then two more each
 * after its delay): room for a loaded machine between two requests. */
static void s_throttle(const char *user)
{
    s_fail(user, 5);
    for (int i = 0; i < 2; i++) {
        int status;
        s_wait_admitted(user, "wrong-password", &status);
        cr_assert_eq(status, 401);
    }
}

Test(backend_throttle, the_right_password_is_refused_until_the_delay_passed,
     .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    s_throttle("admin");
    int secs = s_assert_throttled("admin", BE_PW);
    /* After the delay the right password logs in, and the count starts
     * over. */
    th_sleep_ms(secs * 1000);
    be_login("admin", BE_PW);
    s_fail("admin", 5);
}

Test(backend_throttle, each_checked_failure_doubles_the_delay, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    s_fail("admin", 5);
    int status;
    long long d[3];
    for (int i = 0; i < 3; i++) {
        s_assert_throttled("admin", "wrong-password");
        d[i] = s_wait_admitted("admin", "wrong-password", &status);
        cr_assert_eq(status, 401, "attempt %d after the delay: %d", 6 + i, status);
    }
    cr_log_info("delays before attempts 6, 7, 8: %lld, %lld, %lld ms", d[0], d[1],
                d[2]);
    cr_assert_geq(d[0], 250 - 20, "attempt 6 was checked after %lld ms", d[0]);
    cr_assert_geq(d[1], 500 - 20, "attempt 7 was checked after %lld ms", d[1]);
    cr_assert_geq(d[2], 1000 - 20, "attempt 8 was checked after %lld ms", d[2]);
    /* Another username is not held up by admin's failures. */
    s_fail("someone-else", 1);
}

/* The slot the login throttle used to give a username: FNV-1a mod 256. */
static unsigned s_old_slot(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (unsigned)(h % 256);
}

Test(backend_throttle, a_colliding_name_does_not_reset_an_account, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    /* A name that shared admin's slot in the old table of 256 hashed
     * slots, one user per slot: failing as it took the slot over. */
    const char *collider = NULL;
    for (int i = 0; !collider; i++) {
        const char *n = th_fmt("user%d", i);
        if (strcmp(n, "admin") != 0 && s_old_slot(n) == s_old_slot("admin"))
            collider = n;
    }
    s_throttle("admin");
    s_fail(collider, 1);
    s_assert_throttled("admin", "wrong-password");
    s_assert_throttled("admin", BE_PW);
}

typedef struct s_guesser {
    int port;
    int status;
    pthread_barrier_t *go;
    pthread_t th;
} s_guesser_t;

static void *s_guess_main(void *arg)
{
    s_guesser_t *g = arg;
    pthread_barrier_wait(g->go);
    g->status = s_login_status(g->port, "admin", "a-guess-of-the-password");
    return NULL;
}

Test(backend_throttle, parallel_guesses_on_a_throttled_account_are_not_checked,
     .timeout = 60, .fini = be_fini)
{
    be_start(NULL);
    s_fail("admin", 5);
    enum { N = 64 };
    static s_guesser_t g[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < N; i++) {
        g[i] = (s_guesser_t){.port = be_port(), .go = &go};
        cr_assert_eq(pthread_create(&g[i].th, NULL, s_guess_main, &g[i]), 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int checked = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(g[i].th, NULL);
        checked += g[i].status == 401;
        refused += g[i].status == 429;
    }
    pthread_barrier_destroy(&go);
    cr_log_info("%d parallel guesses: %d checked, %d refused", N, checked, refused);
    cr_assert_eq(checked + refused, N, "other answers among the %d guesses", N);
    /* One guess per delay (250 ms, then 500, 1000 ...) at most: a handful
     * even when the guesses straggle in over seconds on a loaded machine. */
    cr_assert_leq(checked, 6, "%d of %d parallel guesses were checked", checked, N);
    s_assert_throttled("admin", BE_PW);
}

Test(backend_throttle, failures_from_one_address_throttle_every_name, .timeout = 60,
     .fini = be_fini)
{
    be_start("admin_password = " BE_PW "\nlogin_address_failures = 8\n");
    for (int i = 0; i < 8; i++)
        s_fail(th_fmt("sprayed-%d", i), 1);
    s_assert_throttled("sprayed-new", "wrong-password");
    /* The address is held up, whatever the name (the right password too). */
    int secs = s_assert_throttled("admin", BE_PW);
    th_sleep_ms(secs * 1000);
    /* After the delay one attempt is checked; a success does not wipe the
     * address's failures. */
    be_login("admin", BE_PW);
    s_assert_throttled("sprayed-9", "wrong-password");
}
