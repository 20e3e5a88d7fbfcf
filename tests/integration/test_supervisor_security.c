/* test_supervisor_security.c - what the supervisor keeps from other users
 * and other web pages: data_dir and everything the supervisor, its workers
 * and its programs create there are theirs alone (0700 / 0600), also when
 * started with a lax umask in a data_dir someone made 0755, and what a
 * worker run alone creates; the admin API wants its token and refuses
 * cross-site and DNS-rebinding requests even with it (issue 11's attacks:
 * restart, reload, shutdown from evil.example), and vaporactl finds the
 * token by itself. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor_fixture.h"

/* A data_dir a test made itself, removed by s_fini. */
static char *s_dir;

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

static void s_fini(void)
{
    sup_fini();
    if (s_dir && !th_keep_files())
        nftw(s_dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(s_dir);
    s_dir = NULL;
}

/* ---- file modes ---- */

/* What nftw found open to the group or others, one "mode path" a line. */
static char s_open_to_others[4096];
static size_t s_entries;

static int s_check_mode(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)flag, (void)ftw;
    s_entries++;
    if ((st->st_mode & 077) != 0 && !S_ISLNK(st->st_mode)) {
        size_t n = strlen(s_open_to_others);
        snprintf(s_open_to_others + n, sizeof s_open_to_others - n, "%04o %s\n",
                 (unsigned)(st->st_mode & 07777), path);
    }
    return 0;
}

/* Checks every entry under dir: none open to the group or others, and
 * more than min of them. */
static void s_assert_private(const char *dir, size_t min)
{
    s_open_to_others[0] = '\0';
    s_entries = 0;
    cr_assert_eq(nftw(dir, s_check_mode, 16, FTW_PHYS), 0);
    cr_assert_gt(s_entries, min, "only %zu entries under %s", s_entries, dir);
    cr_assert_str_empty(s_open_to_others, "open to the group or others:\n%s",
                        s_open_to_others);
}

/* The backend (database, WAL, its secrets, the login-failure map, the
 * event lock) and nats-server's JetStream store, all under a supervisor
 * started with umask 022 in a data_dir made 0755 beforehand. */
Test(supervisor_security, data_dir_and_its_files_are_private, .timeout = 90,
     .fini = s_fini)
{
    umask(022); /* what a shell usually has: the supervisor must not rely on it */
    s_dir = th_tmp_path("svdata", "");
    cr_assert_eq(mkdir(s_dir, 0755), 0);
    th_sv_t *sv = th_sv_start_in(
        s_dir, "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"
               "[backend]\nadmin_password = modes-test-password\n\n"
               "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = 2\n\n"
               "[program:nats]\ncommand = nats-server -js -a 127.0.0.1 -p @PORT2@ "
               "-sd @DATA@/nats\n");
    cr_assert_not_null(sv);
    th_assert_settled(sv, "backend", 2, 20000);
    const char *tok = th_be_login(sv->ports[0], "admin", "modes-test-password", 10000);
    th_be_call(sv->ports[0], "POST", TH_BE_API "/projects", tok, "{\"name\":\"modes\"}",
               201);
    th_be_call(sv->ports[0], "POST", TH_BE_API "/auth/login", NULL,
               "{\"username\":\"admin\",\"password\":\"wrong-password\"}", 401);
    /* JetStream has written its store by the time the event is out. */
    char *js = th_fmt("%s/nats/jetstream", sv->data_dir);
    for (int i = 0; i < 100 && access(js, F_OK) != 0; i++)
        th_sleep_ms(50);
    cr_assert_eq(access(js, F_OK), 0, "no JetStream store at %s", js);

    s_assert_private(sv->data_dir, 8);
    th_assert_log(sv->proc, "was open to other users (mode 0755): now 0700", "warn");
}

/* A backend worker run alone (no supervisor to inherit a umask from)
 * creates its data_dir and files private too. */
Test(supervisor_security, a_worker_alone_creates_private_files, .timeout = 60,
     .fini = s_fini)
{
    umask(022);
    s_dir = th_tmp_path("bedata", "");
    th_proc_t *p = th_must_start(
        "vapora-backend", "backend",
        th_fmt("\n[supervisor]\ndata_dir = %s\n\n[backend]\nadmin_password = "
               "alone-test-password\n",
               s_dir));
    th_be_login(p->port, "admin", "alone-test-password", 10000);
    th_be_call(p->port, "POST", TH_BE_API "/auth/login", NULL,
               "{\"username\":\"admin\",\"password\":\"wrong-password\"}", 401);
    s_assert_private(s_dir, 4);
}

/* ---- the admin API: token, Host, Origin, Content-Type ---- */

/* One request to the admin API, written out in full so that Host is the
 * one given (NULL: 127.0.0.1:<port>); with sv's token when token is set.
 * Returns the response (the caller frees). */
static th_resp_t *s_admin(th_sv_t *sv, const char *method, const char *path,
                          const char *host, bool token, const char *headers,
                          const char *body)
{
    th_conn_t *c = th_must_connect(sv->admin_port);
    const char *req =
        th_fmt("%s %s HTTP/1.1\r\nHost: %s\r\n%s%sContent-Length: "
               "%zu\r\nConnection: close\r\n\r\n%s",
               method, path, host ? host : sv->admin, token ? sv->auth : "",
               headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    cr_assert_eq(th_send_raw(c, req, strlen(req), TH_IO_MS), 0);
    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, TH_IO_MS);
    cr_assert_eq(rc, 0, "%s %s: %s", method, path, strerror(-rc));
    th_conn_close(&c);
    return r;
}

#define EVIL "Origin: http://evil.example\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

/* What the issue found, and its variants: a page in a browser (cross-site
 * simple requests, a DNS-rebound name), a token without the right Origin
 * or Host, and no token at all. */
static const struct attack {
    const char *method, *path;
    const char *host; /* NULL: the admin address */
    bool token;
    const char *headers, *body;
    int status;
    const char *code;
} s_attacks[] = {
    /* fetch(url, {method: "POST", mode: "no-cors", body}) from any page: a
     * body that is not JSON is refused before any route runs */
    {"POST", "/services/web/restart", NULL, false, EVIL "Content-Type: text/plain\r\n",
     "x", 415, "unsupported_media_type"},
    {"POST", "/reload", NULL, false,
     EVIL "Content-Type: application/x-www-form-urlencoded\r\n", "a=b", 415,
     "unsupported_media_type"},
    /* and without a body, by the Origin */
    {"POST", "/shutdown", NULL, false, EVIL "Content-Type: text/plain\r\n", "", 403,
     "forbidden_origin"},
    {"POST", "/shutdown", NULL, false,
     EVIL "Content-Type: multipart/form-data; boundary=x\r\n", "", 403,
     "forbidden_origin"},
    /* a foreign Origin is refused even with the token */
    {"POST", "/shutdown", NULL, true, EVIL JSON_CT, "", 403, "forbidden_origin"},
    {"POST", "/reload", NULL, true, "Origin: null\r\n" JSON_CT, "", 403,
     "forbidden_origin"},
    /* DNS rebinding: the page's own name as Host, even with the token */
    {"POST", "/services/web/restart", "evil.example", true, JSON_CT, "", 403,
     "forbidden_host"},
    {"POST", "/shutdown", "evil.example:8000", true, JSON_CT, "", 403,
     "forbidden_host"},
    {"GET", "/status", "evil.example", true, NULL, NULL, 403, "forbidden_host"},
    /* simple content types, with the token and no Origin */
    {"POST", "/reload", NULL, true, "Content-Type: text/plain\r\n", "", 415,
     "unsupported_media_type"},
    {"POST", "/shutdown", NULL, true,
     "Content-Type: application/x-www-form-urlencoded\r\n", "", 415,
     "unsupported_media_type"},
    /* no token, a wrong one */
    {"POST", "/shutdown", NULL, false, JSON_CT, "", 401, "unauthorized"},
    {"POST", "/services/web/restart", NULL, false,
     "Authorization: Bearer wrong-token-0123456789\r\n" JSON_CT, "", 401,
     "unauthorized"},
    {"POST", "/services/web/scale", NULL, false, JSON_CT, "{\"workers\":0}", 401,
     "unauthorized"},
    {"POST", "/services/web/log-level", NULL, false, JSON_CT, "{\"level\":\"debug\"}",
     401, "unauthorized"},
    {"GET", "/status", NULL, false, NULL, NULL, 401, "unauthorized"},
    {"GET", "/metrics", NULL, false, NULL, NULL, 401, "unauthorized"},
};

Test(supervisor_security, admin_api_refuses_pages_and_callers_without_token,
     .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = th_must_sv_start(SUP_WEB("2"));
    th_assert_settled(sv, "web", 2, 8000);
    pid_t before[2];
    cr_assert_eq(sup_pids(sup_service(sv, "web"), before, 2), 2);
    for (size_t i = 0; i < sizeof s_attacks / sizeof *s_attacks; i++) {
        const struct attack *a = &s_attacks[i];
        th_resp_t *r =
            s_admin(sv, a->method, a->path, a->host, a->token, a->headers, a->body);
        th_assert_error(r, a->status, a->code,
                        th_fmt("attack %zu: %s %s", i, a->method, a->path));
        if (a->status == 401)
            cr_assert_str_eq(th_resp_header(r, "WWW-Authenticate"),
                             "Bearer realm=\"vapora-admin\"");
        th_resp_free(&r);
    }
    /* Nothing happened: the same workers, never restarted, still serving. */
    th_sleep_ms(300);
    cr_assert(th_running(sv->proc), "the supervisor stopped");
    json_t *web = sup_service(sv, "web");
    cr_assert_str_eq(sup_str(sup_last_status(), "state"), "running");
    cr_assert_eq(th_sv_count(web, "running"), 2);
    cr_assert_eq(th_int(web, "desired"), 2);
    pid_t after[2];
    cr_assert_eq(sup_pids(web, after, 2), 2);
    cr_assert(sup_has_pid(after, 2, before[0]) && sup_has_pid(after, 2, before[1]),
              "the workers were replaced");
    th_assert_serving(sv->ports[0]);
    th_assert_log(sv->proc, "admin API: refused POST /shutdown: foreign Origin",
                  "warn");
}

/* What the API accepts: /health open to all; the token with the API's
 * own names and Origin. */
Test(supervisor_security, admin_api_serves_its_own_origin_with_token, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = th_must_sv_start(SUP_WEB("1"));
    th_resp_t *r = s_admin(sv, "GET", "/health", NULL, false, NULL, NULL);
    cr_assert_eq(r->status, 200, "GET /health without a token: %d", r->status);
    th_resp_free(&r);
    const char *local = th_fmt("localhost:%d", sv->admin_port);
    const char *hosts[] = {sv->admin, local, "127.0.0.1", "[::1]:8101"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        r = s_admin(sv, "GET", "/status", hosts[i], true,
                    th_fmt("Origin: http://%s\r\n", hosts[i]), NULL);
        cr_assert_eq(r->status, 200, "Host %s: %d %s", hosts[i], r->status, r->body);
        th_resp_free(&r);
    }
    r = s_admin(sv, "POST", "/services/web/scale", NULL, true, JSON_CT,
                "{\"workers\":2}");
    cr_assert_eq(r->status, 200, "%d %s", r->status, r->body);
    th_resp_free(&r);
    th_assert_settled(sv, "web", 2, 8000);
    cr_assert_eq(th_log_count(sv->proc, "SECURITY: the admin API listens on"), 0);
}

/* The token outlives the supervisor: one restarted on the same data_dir
 * takes the same, so vaporactl and scripts keep working. */
Test(supervisor_security, admin_token_is_kept_across_restarts, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = th_must_sv_start("");
    s_dir = strdup(sv->data_dir);
    char *path = th_fmt("%s/admin-token", s_dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
    cr_assert_eq(strlen(sv->token), 64, "%s", sv->token);
    cr_assert_eq(th_stop(sv->proc, SIGTERM, 8000), 0);
    th_sv_t *again = th_sv_start_in(s_dir, "");
    cr_assert_not_null(again);
    cr_assert_str_eq(again->token, sv->token);
    sup_status(again); /* the old token opens it */
}

/* [supervisor] admin_token (e.g. ${VAPORA_ADMIN_TOKEN}) is the token, and
 * lands in DATA_DIR/admin-token for vaporactl; a reload cannot change it. */
Test(supervisor_security, configured_admin_token_is_used, .timeout = 60, .fini = s_fini)
{
    th_sv_t *sv = th_must_sv_start("admin_token = a-configured-token-0123456789\n");
    cr_assert_str_eq(sv->token, "a-configured-token-0123456789");
    sup_status(sv);
    cr_assert_eq(th_sv_write_config(sv, "admin_token = another-token-0123456789\n"), 0);
    th_resp_t *r = sup_admin_post(sv, "/reload", NULL);
    const char *msg = th_assert_error(r, 422, "invalid_config", "POST /reload");
    cr_assert(strstr(msg, "admin_token"), "%s", msg);
    th_resp_free(&r);
    sup_status(sv); /* the token it started with still opens it */
}

/* admin beyond loopback: a loud warning at every start. */
Test(supervisor_security, admin_beyond_loopback_is_warned_about, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = th_must_sv_start("admin = 0.0.0.0:@ADMIN_PORT@\n");
    th_assert_log(sv->proc, "SECURITY: the admin API listens on 0.0.0.0:", "warn");
    sup_status(sv);
}

/* ---- vaporactl finds the token ---- */

/* The absolute path of vaporactl, for tests that change directory. */
static char s_vaporactl[4096];

/* Runs vaporactl with args (NULL-terminated, at most 6); returns its exit
 * status, *out its output (kept). */
static int s_ctl(char **out, const char *const *args)
{
    const char *argv[8] = {s_vaporactl};
    for (size_t i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    int rc = th_run(argv, 10000, out);
    th_keep(*out);
    return rc;
}

/* Where an operator has the token without typing it: etc/vapora.conf in
 * the current directory (`make run`), $VAPORA_DATA_DIR (a container),
 * $VAPORA_ADMIN_TOKEN; and what it says when it has none. */
Test(supervisor_security, vaporactl_finds_the_token_by_itself, .timeout = 60,
     .fini = s_fini)
{
    unsetenv("VAPORA_ADMIN_ADDR");
    unsetenv("VAPORA_ADMIN_TOKEN");
    unsetenv("VAPORA_DATA_DIR");
    th_sv_t *sv = th_must_sv_start(SUP_WEB("1"));
    th_assert_settled(sv, "web", 1, 8000);
    char cwd[4096], *out = NULL;
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    char *bin = th_bin_path("vaporactl");
    cr_assert_not_null(realpath(bin, s_vaporactl), "%s", bin);
    free(bin);
    s_dir = th_tmp_path("ctlcwd", "");
    cr_assert_eq(mkdir(s_dir, 0700), 0);
    cr_assert_eq(mkdir(th_fmt("%s/etc", s_dir), 0700), 0);
    cr_assert_eq(chdir(s_dir), 0);

    /* No token anywhere: said, with where to put one. */
    int rc = s_ctl(&out, (const char *[]){"-a", sv->admin, "status", NULL});
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "no admin token: cannot read data/admin-token"), "%s", out);
    rc = s_ctl(&out, (const char *[]){"-a", sv->admin, "-t", "wrong-token-0123456789",
                                      "status", NULL});
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "(HTTP 401)"), "%s", out);

    /* `make run`: etc/vapora.conf here gives the address and data_dir. */
    size_t len = 0;
    char *conf = th_read_file(sv->proc->config, &len);
    cr_assert_not_null(conf);
    cr_assert_eq(th_replace_file(th_fmt("%s/etc/vapora.conf", s_dir), conf), 0);
    free(conf);
    rc = s_ctl(&out, (const char *[]){"status", NULL});
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "web "), "%s", out);
    unlink(th_fmt("%s/etc/vapora.conf", s_dir));

    /* A container: VAPORA_DATA_DIR names the data_dir. */
    setenv("VAPORA_DATA_DIR", sv->data_dir, 1);
    rc = s_ctl(&out, (const char *[]){"-a", sv->admin, "status", NULL});
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    unsetenv("VAPORA_DATA_DIR");
    setenv("VAPORA_ADMIN_TOKEN", sv->token, 1);
    rc = s_ctl(&out, (const char *[]){"-a", sv->admin, "--json", "status", NULL});
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "\"services\""), "%s", out);
    unsetenv("VAPORA_ADMIN_TOKEN");
    cr_assert_eq(chdir(cwd), 0);
}
