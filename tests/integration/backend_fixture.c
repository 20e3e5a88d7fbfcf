/* backend_fixture.c - see backend_fixture.h. */
#define _GNU_SOURCE
#include "backend_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static int s_port;      /* the backend under test */
static th_conn_t *s_c;  /* the keep-alive connection to it */
static char *s_dirs[8]; /* data directories, removed at the end */
static size_t s_ndirs;
static char *s_mounts[2]; /* tmpfs mounted by be_small_disk */
static size_t s_nmounts;

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

void be_fini(void)
{
    s_c = NULL; /* closed by th_cleanup */
    th_cleanup();
    for (size_t i = 0; i < s_nmounts; i++) {
        umount2(s_mounts[i], MNT_DETACH);
        free(s_mounts[i]);
    }
    s_nmounts = 0;
    for (size_t i = 0; i < s_ndirs; i++) {
        if (!th_keep_files())
            nftw(s_dirs[i], s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(s_dirs[i]);
    }
    s_ndirs = 0;
}

/* ---- starting the backend ---- */

/* Remembers dir (a heap string, taken) for removal at the end. */
static void s_track_dir(char *dir)
{
    cr_assert_lt(s_ndirs, sizeof s_dirs / sizeof *s_dirs);
    s_dirs[s_ndirs++] = dir;
}

const char *be_new_dir(void)
{
    char *d = th_tmp_path("bedata", "");
    cr_assert_not_null(d);
    cr_assert_eq(mkdir(d, 0700), 0, "mkdir %s: %s", d, strerror(errno));
    s_track_dir(d);
    return d;
}

/* Waits until the backend under test answers GET /health with 200: it
 * accepts connections before its setup (migrations, the admin user) is
 * done, and files it writes then are only there after. */
static void s_wait_serving(void)
{
    long long deadline = th_now_ms() + 20000;
    int last = 0;
    for (;;) {
        th_resp_t *r = NULL;
        int rc = th_request(s_port, "GET", "/health", NULL, NULL, &r);
        last = rc < 0 ? rc : r->status;
        th_resp_free(&r);
        if (last == 200)
            return;
        cr_assert_lt(th_now_ms(), deadline, "GET /health: %d after 20 s", last);
        th_sleep_ms(20);
    }
}

/* Sends the requests to port from now on, once it serves. */
static void s_use(int port)
{
    s_port = port;
    th_conn_close(&s_c);
    s_wait_serving();
}

th_proc_t *be_start_in(const char *data_dir, const char *backend_keys)
{
    const char *d = data_dir ? data_dir : be_new_dir();
    const char *extra =
        th_fmt("\n[supervisor]\ndata_dir = %s\n\n[backend]\n%s", d,
               backend_keys ? backend_keys : "admin_password = " BE_PW "\n");
    th_proc_t *p = th_start(BE_BIN, "backend", extra);
    cr_assert_not_null(p, "vapora-backend did not start (its log is on stderr)");
    s_use(p->port);
    return p;
}

th_proc_t *be_start(const char *backend_keys)
{
    return be_start_in(NULL, backend_keys);
}

th_sv_t *be_sv_start(const char *data_dir, const char *tmpl, unsigned n)
{
    th_sv_t *sv = th_sv_start_in(data_dir, tmpl);
    cr_assert_not_null(sv, "the supervisor did not start (its log is on stderr)");
    if (!data_dir)
        s_track_dir(strdup(sv->data_dir));
    th_assert_settled(sv, "backend", n, 20000);
    /* Workers starting together on a fresh data_dir must all come up the
     * first time (one once lost a race for the new database). */
    if (!data_dir)
        th_assert_first_start(sv, "backend");
    s_use(sv->ports[0]);
    return sv;
}

/* ---- a small disk ---- */

/* Makes this process's mounts private to it and its children. */
static bool s_private_mounts(void)
{
    return unshare(CLONE_NEWNS) == 0 &&
           mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

const char *be_small_disk(size_t bytes)
{
    const char *d = be_new_dir();
    char opts[64];
    snprintf(opts, sizeof opts, "size=%zu,mode=0700", bytes);
    cr_assert_lt(s_nmounts, sizeof s_mounts / sizeof *s_mounts);
    if ((s_nmounts == 0 && !s_private_mounts()) ||
        mount("tmpfs", d, "tmpfs", 0, opts) != 0) {
        cr_log_warn("cannot mount a tmpfs on %s (%s): skipped; this needs root", d,
                    strerror(errno));
        return NULL;
    }
    s_mounts[s_nmounts++] = strdup(d);
    return d;
}

void be_fill_disk(const char *dir, size_t leave)
{
    const char *path = th_fmt("%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    /* Big writes first, then smaller ones into what is left. */
    for (size_t n = sizeof chunk; n > 0; n /= 2)
        while (write(fd, chunk, n) == (ssize_t)n)
            ;
    int e = errno;
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    if (leave)
        cr_assert_eq(
            ftruncate(fd, st.st_size > (off_t)leave ? st.st_size - (off_t)leave : 0),
            0);
    close(fd);
    cr_assert_eq(e, ENOSPC, "filling %s stopped with: %s", dir, strerror(e));
}

void be_free_disk(const char *dir)
{
    cr_assert_eq(unlink(th_fmt("%s/filler", dir)), 0, "%s/filler: %s", dir,
                 strerror(errno));
}

int be_port(void)
{
    return s_port;
}

void be_disconnect(void)
{
    th_conn_close(&s_c);
}

/* ---- requests ---- */

th_resp_t *be_send_raw(const char *method, const char *path, const char *headers,
                       const char *body)
{
    if (s_c && th_peer_closed(s_c))
        th_conn_close(&s_c);
    if (!s_c) {
        s_c = th_must_connect(s_port);
    }
    int rc = th_send_request(s_c, method, path, headers, body, body ? strlen(body) : 0);
    cr_assert_eq(rc, 0, "sending %s %s: %s", method, path, strerror(-rc));
    th_resp_t *r = NULL;
    rc = th_read_response(s_c, &r, TH_IO_MS);
    if (rc < 0)
        th_conn_close(&s_c);
    cr_assert_eq(rc, 0, "no response to %s %s: %s", method, path, strerror(-rc));
    const char *conn = th_resp_header(r, "Connection");
    if (conn && strcasecmp(conn, "close") == 0)
        th_conn_close(&s_c);
    return r;
}

const char *be_headers(const char *token, const char *extra, bool json)
{
    return th_fmt("%s%s%s%s%s", token ? "Authorization: Bearer " : "",
                  token ? token : "", token ? "\r\n" : "", json ? TH_JSON_CT : "",
                  extra ? extra : "");
}

th_resp_t *be_send(const char *method, const char *path, const char *token,
                   const char *body)
{
    return be_send_raw(method, path, be_headers(token, NULL, body != NULL), body);
}

void be_assert_status(const th_resp_t *r, int want, const char *method,
                      const char *path)
{
    cr_assert_eq(r->status, want, "%s %s: status %d, want %d; body: %.400s", method,
                 path, r->status, want, r->body);
}

json_t *be_api(int want, const char *method, const char *path, const char *token,
               const char *body)
{
    th_resp_t *r = be_send(method, path, token, body);
    be_assert_status(r, want, method, path);
    json_t *j = r->body_len ? th_must_json(r) : NULL;
    th_resp_free(&r);
    return j;
}

const char *be_api_err(int status, const char *code, const char *method,
                       const char *path, const char *token, const char *body)
{
    th_resp_t *r = be_send(method, path, token, body);
    const char *msg = th_assert_error(r, status, code, th_fmt("%s %s", method, path));
    th_resp_free(&r);
    return msg;
}

th_resp_t *be_login_resp(const char *user, const char *pass)
{
    json_t *b = json_pack("{s:s,s:s}", "username", user, "password", pass);
    char *body = th_keep(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    return be_send("POST", BE_API "/auth/login", NULL, body);
}

json_t *be_login_doc(const char *user, const char *pass)
{
    return th_be_login_doc(s_port, user, pass, 0);
}

const char *be_login(const char *user, const char *pass)
{
    return th_be_login(s_port, user, pass, 0);
}

/* ---- resources ---- */

const char *be_id(const json_t *o)
{
    json_t *v = json_object_get(o, "id");
    if (json_is_string(v) && json_string_length(v) > 0)
        return json_string_value(v);
    if (json_is_integer(v))
        return th_fmt("%lld", (long long)json_integer_value(v));
    cr_assert_fail("no usable \"id\" in %s", th_dump(o));
    return NULL;
}

const char *be_idj(const json_t *o)
{
    return th_dump(json_object_get(o, "id"));
}

const char *be_unknown_id(const char *id)
{
    char *u = th_keep(strdup(id));
    bool digits = true;
    for (char *p = u; *p; p++)
        digits &= *p >= '0' && *p <= '9';
    if (digits)
        return "987654321";
    for (char *p = u; *p; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
            (*p >= 'A' && *p <= 'Z'))
            *p = '0';
    return u;
}

int be_ts_cmp(const json_t *a, const json_t *b)
{
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b));
    cr_assert(json_is_number(a) && json_is_number(b), "timestamps %s and %s",
              th_dump(a), th_dump(b));
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

json_t *be_project(const char *tok, const char *name)
{
    json_t *b = json_pack("{s:s,s:s}", "name", name, "description", "made by a test");
    char *body = th_keep(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    return be_api(201, "POST", BE_API "/projects", tok, body);
}

json_t *be_task(const char *tok, const json_t *p, const char *title, const char *extra)
{
    const char *body =
        th_fmt("{\"title\":\"%s\"%s%s}", title, extra ? "," : "", extra ? extra : "");
    return be_api(201, "POST", th_fmt(BE_API "/projects/%s/tasks", be_id(p)), tok,
                  body);
}

const char *be_task_path(const json_t *t)
{
    return th_fmt(BE_API "/tasks/%s", be_id(t));
}

json_t *be_patch(const char *tok, const json_t *t, const char *body)
{
    json_int_t v = th_int(t, "version");
    json_t *n = be_api(200, "PATCH", be_task_path(t), tok, body);
    cr_assert_eq(th_int(n, "version"), v + 1, "PATCH %s: version %lld after %lld", body,
                 (long long)th_int(n, "version"), (long long)v);
    return n;
}

json_t *be_walk(const char *tok, json_t *t, ...)
{
    va_list ap;
    va_start(ap, t);
    for (const char *st; (st = va_arg(ap, const char *));) {
        t = be_patch(tok, t, th_fmt("{\"status\":\"%s\"}", st));
        cr_assert_str_eq(th_str(t, "status"), st);
    }
    va_end(ap);
    return t;
}

json_t *be_user(const char *tok, const char *name, const char *pass, const char *role)
{
    json_t *b =
        json_pack("{s:s,s:s,s:s}", "username", name, "password", pass, "role", role);
    char *body = th_keep(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    return be_api(201, "POST", BE_API "/users", tok, body);
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void be_assert_each_once(const char **seen, size_t nseen, const char **want, int n)
{
    const char **s = th_keep(malloc(nseen * sizeof *s));
    memcpy(s, seen, nseen * sizeof *s);
    qsort(s, nseen, sizeof *s, s_strcmp_p);
    for (size_t i = 1; i < nseen; i++)
        cr_assert_str_neq(s[i - 1], s[i], "id %s was listed twice", s[i]);
    int missing = 0;
    const char *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!bsearch(&want[i], s, nseen, sizeof *s, s_strcmp_p) && !missing++)
            first = want[i];
    }
    cr_assert_eq(missing, 0, "%d of the %d ids were never listed (the first: %s)",
                 missing, n, first);
}
