/* test_backend_storage.c - the backend on a full disk (a small tmpfs of
 * the test's own): writes answer 507 storage_full with the cause and
 * /health says degraded, until space is back and both recover by
 * themselves; failed logins (which write the shared throttle table) never
 * kill a worker; and a full disk at start is a clear error, not a crash.
 * Skipped, with a warning, where a tmpfs cannot be mounted (not root). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_fixture.h"

#define DISK_BYTES (16u << 20)

/* A data directory on a small disk, or the test is skipped. */
static const char *s_disk(void)
{
    const char *d = be_small_disk(DISK_BYTES);
    if (!d)
        cr_skip_test("no tmpfs: not root, or no mount namespaces");
    return d;
}

/* GET /health: its status, and the body in *body (kept). */
static int s_health(const char **body)
{
    th_resp_t *r = th_must_request(be_port(), "GET", "/health", NULL, NULL);
    int st = r->status;
    *body = th_fmt("%s", r->body);
    th_resp_free(&r);
    return st;
}

/* A description of n characters (kept). */
static const char *s_text(size_t n)
{
    char *t = th_keep(malloc(n + 1));
    memset(t, 'd', n);
    t[n] = '\0';
    return t;
}

Test(backend_storage, a_full_disk_is_507_and_degraded_until_space_returns,
     .timeout = 90, .fini = be_fini)
{
    const char *dir = s_disk();
    be_start_in(dir, NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "on a small disk");
    const char *tasks = th_fmt(BE_API "/projects/%s/tasks", be_id(p));
    const char *body =
        th_fmt("{\"title\":\"big\",\"description\":\"%s\"}", s_text(60000));
    be_fill_disk(dir, 0);

    /* The WAL may still have room for a few writes; then they fail. */
    th_resp_t *r = NULL;
    int n = 0;
    for (; n < 400; n++) {
        th_resp_free(&r);
        r = be_send("POST", tasks, tok, body);
        if (r->status != 201)
            break;
    }
    cr_log_info("%d writes succeeded on the full disk before the first refusal", n);
    const char *msg = th_assert_error(r, 507, "storage_full", "POST on a full disk");
    th_resp_free(&r);
    cr_assert(strstr(msg, "full"), "the message hides the cause: %s", msg);
    cr_assert(!strstr(msg, "rollback"), "the message is about a rollback: %s", msg);
    be_api_err(507, "storage_full", "POST", tasks, tok, body);
    const char *h;
    cr_assert_eq(s_health(&h), 503, "/health on a full disk: %s", h);
    cr_assert(strstr(h, "degraded") && strstr(h, "storage"), "/health: %s", h);
    /* Reads still work. */
    be_api(200, "GET", th_fmt(BE_API "/projects/%s", be_id(p)), tok, NULL);

    /* Space comes back: /health recovers without any client write, then
     * writes succeed. */
    be_free_disk(dir);
    long long deadline = th_now_ms() + 20000;
    while (s_health(&h) != 200) {
        cr_assert_lt(th_now_ms(), deadline, "/health 20 s after space returned: %s", h);
        th_sleep_ms(100);
    }
    be_api(201, "POST", tasks, tok, body);
    cr_assert_eq(s_health(&h), 200, "/health after a write: %s", h);
}

Test(backend_storage, failed_logins_on_a_full_disk_never_kill_a_worker, .timeout = 90,
     .fini = be_fini)
{
    const char *dir = s_disk();
    /* Addresses not counted: every one of the names below gets an entry in
     * the shared table, spread over its pages. */
    th_proc_t *p =
        be_start_in(dir, "admin_password = " BE_PW "\nlogin_address_failures = 0\n");
    be_fill_disk(dir, 0);
    for (int i = 0; i < 40; i++) {
        th_resp_t *r = be_login_resp(th_fmt("guess-%d", i), "wrong-password");
        th_assert_error(r, 401, "invalid_credentials", th_fmt("failed login %d", i));
        th_resp_free(&r);
    }
    cr_assert(th_running(p), "the backend died during failed logins on a full disk");
    th_assert_serving(be_port());
    be_login("admin", BE_PW);
}

Test(backend_storage, a_full_disk_at_start_is_a_clear_error, .timeout = 90,
     .fini = be_fini)
{
    const char *dir = s_disk();
    /* A data_dir used before: the throttle table is gone and there is room
     * for the database's WAL but not to make the table again. The worker
     * serves, with a table of its own. */
    th_proc_t *p = be_start_in(dir, NULL);
    be_login("admin", BE_PW);
    cr_assert_eq(th_stop(p, SIGTERM, 10000), 0);
    cr_assert_eq(unlink(th_fmt("%s/login-throttle", dir)), 0);
    be_fill_disk(dir, 256 << 10);
    p = be_start_in(dir, NULL);
    th_assert_log(p, "login-throttle", "error");
    be_login("admin", BE_PW);
    be_api_err(401, "invalid_credentials", "POST", BE_API "/auth/login", NULL,
               "{\"username\":\"admin\",\"password\":\"wrong-password\"}");
    cr_assert_eq(th_stop(p, SIGTERM, 10000), 0);

    /* A fresh data_dir on a full disk: the worker says why and exits 1
     * (no signal, no restart storm: the supervisor backs off). */
    const char *fresh = th_fmt("%s/fresh", dir);
    be_free_disk(dir);
    cr_assert_eq(mkdir(fresh, 0700), 0);
    be_fill_disk(dir, 0);
    char *cfg = th_write_temp("backend", ".conf",
                              th_fmt("[service:backend]\nlisten = 127.0.0.1:%d\n"
                                     "[supervisor]\ndata_dir = %s\n"
                                     "[backend]\nadmin_password = " BE_PW "\n",
                                     th_free_port(), fresh));
    char *bin = th_keep(th_bin_path(BE_BIN));
    th_proc_t *q = th_spawn(bin, cfg);
    cr_assert_not_null(q);
    int rc = th_wait_exit(q, 20000);
    char *log = th_keep(th_log(q));
    cr_assert_eq(rc, 1, "exit %d on a full disk; log:\n%s", rc, log);
    cr_assert(strstr(log, "full"), "the log does not say the disk is full:\n%s", log);
}

/* [backend] synchronous = full: every commit is synced before its writes
 * are answered, and the backend serves as usual; a value it does not know
 * stops it at start, saying which key (no restart storm: exit 1). */
Test(backend_storage, synchronous_is_normal_or_full, .timeout = 60, .fini = be_fini)
{
    th_proc_t *p = be_start("admin_password = " BE_PW "\nsynchronous = full\n");
    const char *tok = be_login("admin", BE_PW);
    json_t *prj = be_project(tok, "synced");
    json_t *t = be_api(201, "POST", th_fmt(BE_API "/projects/%s/tasks", be_id(prj)),
                       tok, "{\"title\":\"written through\"}");
    be_api(200, "GET", th_fmt(BE_API "/tasks/%s", be_id(t)), tok, NULL);
    cr_assert_eq(th_stop(p, SIGTERM, 10000), 0);

    char *cfg = th_write_temp("backend", ".conf",
                              th_fmt("[service:backend]\nlisten = 127.0.0.1:%d\n"
                                     "[supervisor]\ndata_dir = %s\n"
                                     "[backend]\nadmin_password = " BE_PW "\n"
                                     "synchronous = fsync\n",
                                     th_free_port(), be_new_dir()));
    th_proc_t *q = th_spawn(th_keep(th_bin_path(BE_BIN)), cfg);
    cr_assert_not_null(q);
    int rc = th_wait_exit(q, 20000);
    char *log = th_keep(th_log(q));
    cr_assert_eq(rc, 1, "exit %d; log:\n%s", rc, log);
    cr_assert(strstr(log, "[backend] synchronous: ") &&
                  strstr(log, "fsync\\\" is not one of normal, full"),
              "the log does not name the key and the value:\n%s", log);
}

/* SQLite's temporary files (a savepoint's journal past 64 KiB, as a
 * cascade delete's) went to the system's temporary directory: with that
 * disk full and the data_dir's disk fine, the delete failed as
 * "storage_full" and /health said the disk was full. They stay in memory
 * now: the delete succeeds whatever the temporary directory. */
Test(backend_storage, a_full_temporary_directory_fails_no_write, .timeout = 90,
     .fini = be_fini)
{
    const char *tmp = s_disk();
    be_fill_disk(tmp, 0);
    cr_assert_eq(setenv("SQLITE_TMPDIR", tmp, 1), 0); /* for what starts now */
    be_start(NULL);
    const char *tok = be_login("admin", BE_PW);
    json_t *p = be_project(tok, "big");
    const char *tasks = th_fmt(BE_API "/projects/%s/tasks", be_id(p));
    const char *body =
        th_fmt("{\"title\":\"big\",\"description\":\"%s\"}", s_text(3000));
    for (int i = 0; i < 200; i++)
        be_api(201, "POST", tasks, tok, body);
    be_api(204, "DELETE", th_fmt(BE_API "/projects/%s?cascade=true", be_id(p)), tok,
           NULL);
    const char *h;
    cr_assert_eq(s_health(&h), 200, "/health: %s", h);
}
