/* harness_sv.c - see harness_sv.h. */
#define _GNU_SOURCE
#include "harness_sv.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_base.h"
#include "harness_http.h"

static th_sv_t *s_svs;

/* Appends to b (a heap string, *len its length) n bytes of s. */
static void s_append(char **b, size_t *len, const char *s, size_t n)
{
    *b = realloc(*b, *len + n + 1);
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
}

/* The value of a template placeholder (between the @s), or NULL. */
static const char *s_placeholder(const th_sv_t *sv, const char *name, size_t n,
                                 char *buf, size_t buflen)
{
    if (n == 5 && strncmp(name, "ADMIN", 5) == 0)
        return sv->admin;
    if (n == 10 && strncmp(name, "ADMIN_PORT", 10) == 0) {
        snprintf(buf, buflen, "%d", sv->admin_port);
        return buf;
    }
    if (n == 4 && strncmp(name, "DATA", 4) == 0)
        return sv->data_dir;
    if (n == 7 && strncmp(name, "TESTSVC", 7) == 0)
        return sv->testsvc;
    if (n == 7 && strncmp(name, "BACKEND", 7) == 0)
        return sv->backend;
    if (n == 6 && strncmp(name, "ROUTER", 6) == 0)
        return sv->router;
    if (n == 5 && strncmp(name, "PORT", 4) == 0 && name[4] >= '1' &&
        name[4] < '1' + TH_SV_PORTS) {
        snprintf(buf, buflen, "%d", sv->ports[name[4] - '1']);
        return buf;
    }
    return NULL;
}

/* The config text: [supervisor] admin and data_dir, then tmpl with its
 * placeholders replaced. The caller frees it. */
static char *s_sv_expand(const th_sv_t *sv, const char *tmpl)
{
    char *out = NULL;
    size_t len = 0;
    const char *head = "[supervisor]\nadmin = @ADMIN@\ndata_dir = @DATA@\n";
    for (int part = 0; part < 2; part++) {
        const char *p = part == 0 ? head : tmpl;
        while (*p) {
            const char *at = strchr(p, '@');
            const char *end = at ? strchr(at + 1, '@') : NULL;
            char buf[16];
            const char *v =
                end ? s_placeholder(sv, at + 1, (size_t)(end - at - 1), buf, sizeof buf)
                    : NULL;
            if (!v) { /* up to and including a lone '@' */
                size_t n = at ? (size_t)(at - p) + 1 : strlen(p);
                s_append(&out, &len, p, n);
                p += n;
                continue;
            }
            s_append(&out, &len, p, (size_t)(at - p));
            s_append(&out, &len, v, strlen(v));
            p = end + 1;
        }
    }
    return out;
}

/* Picks fresh ports for sv. Returns 0 or -errno. */
static int s_sv_pick_ports(th_sv_t *sv)
{
    sv->admin_port = th_free_port();
    if (sv->admin_port < 0)
        return sv->admin_port;
    snprintf(sv->admin, sizeof sv->admin, "127.0.0.1:%d", sv->admin_port);
    for (int i = 0; i < TH_SV_PORTS; i++) {
        sv->ports[i] = th_free_port();
        if (sv->ports[i] < 0)
            return sv->ports[i];
    }
    return 0;
}

/* Waits until the admin API answers GET /health with 200. Returns 0,
 * -ECHILD when the supervisor exited, or -ETIMEDOUT. */
static int s_sv_wait_admin(th_sv_t *sv, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (!th_running(sv->proc))
            return -ECHILD;
        th_resp_t *r = NULL;
        th_conn_t *c = th_connect(sv->admin_port, 200);
        if (c && th_send_request(c, "GET", "/health", NULL, NULL, 0) == 0)
            th_read_response(c, &r, 1000);
        th_conn_close(&c);
        bool up = r && r->status == 200;
        th_resp_free(&r);
        if (up)
            return 0;
        if (th_now_ms() >= deadline)
            return -ETIMEDOUT;
        th_sleep_ms(20);
    }
}

/* Reads the admin API's token into sv->token and sv->auth. Returns 0 or
 * -errno. */
static int s_sv_read_token(th_sv_t *sv)
{
    char *path = NULL;
    if (asprintf(&path, "%s/admin-token", sv->data_dir) < 0)
        return -ENOMEM;
    size_t len = 0;
    char *t = th_read_file(path, &len);
    free(path);
    while (t && len > 0 && (t[len - 1] == '\n' || t[len - 1] == ' '))
        t[--len] = '\0';
    int rc = t && len > 0 && len < sizeof sv->token ? 0 : -EINVAL;
    if (rc == 0) {
        snprintf(sv->token, sizeof sv->token, "%s", t);
        snprintf(sv->auth, sizeof sv->auth, "Authorization: Bearer %s\r\n", t);
    }
    free(t);
    return rc;
}

/* Everything of sv but the supervisor process; unlinks and frees sv. */
static void s_sv_release(th_sv_t *sv)
{
    TH_UNLINK(s_svs, sv);
    if (!th_keep_files() && sv->data_dir) {
        char *token = NULL;
        if (asprintf(&token, "%s/admin-token", sv->data_dir) >= 0)
            unlink(token);
        free(token);
        char *run = NULL;
        if (asprintf(&run, "%s/run", sv->data_dir) >= 0) {
            char *f = NULL;
            static const char *const left[] = {"supervisor.lock", "config.conf",
                                               "config.conf.tmp"};
            for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
                if (asprintf(&f, "%s/%s", run, left[i]) >= 0)
                    unlink(f);
                free(f);
                f = NULL;
            }
            rmdir(run);
            free(run);
        }
        rmdir(sv->data_dir);
    }
    free(sv->data_dir);
    free(sv->testsvc);
    free(sv->backend);
    free(sv->router);
    free(sv);
}

/* One attempt of th_sv_start on fresh ports; *retry is set when a port was
 * taken meanwhile. */
static th_sv_t *s_sv_start_once(const char *data_dir, const char *tmpl, bool *retry)
{
    th_sv_t *sv = calloc(1, sizeof *sv);
    TH_LINK(s_svs, sv);
    sv->data_dir = data_dir ? strdup(data_dir) : th_tmp_path("svdata", "");
    char *tsvc = th_bin_path("vapora-testsvc"), real[PATH_MAX];
    sv->testsvc = strdup(realpath(tsvc, real) ? real : tsvc);
    free(tsvc);
    char *be = th_bin_path("vapora-backend");
    sv->backend = strdup(realpath(be, real) ? real : be);
    free(be);
    char *rt = th_bin_path("vapora-llm-router");
    sv->router = strdup(realpath(rt, real) ? real : rt);
    free(rt);
    char *bin = th_bin_path("vapora-supervisor");
    char *text = NULL, *config = NULL;
    if (s_sv_pick_ports(sv) == 0 && (text = s_sv_expand(sv, tmpl)))
        config = th_write_temp("supervisor", ".conf", text);
    free(text);
    if (config)
        sv->proc = th_spawn(bin, config);
    free(bin);
    int rc = sv->proc ? s_sv_wait_admin(sv, TH_READY_MS) : -EIO;
    if (rc == 0 && (rc = s_sv_read_token(sv)) == 0)
        return sv;
    char *log = th_log(sv->proc);
    *retry = rc == -ECHILD && strstr(log, "Address already in use");
    fprintf(stderr, "harness: the supervisor did not start (%s); log:\n%s\n",
            strerror(-rc), log);
    free(log);
    th_proc_free(&sv->proc);
    s_sv_release(sv);
    return NULL;
}

th_sv_t *th_sv_start_in(const char *data_dir, const char *tmpl)
{
    th_sv_t *sv = NULL;
    bool retry = true;
    for (int i = 0; !sv && retry && i < TH_START_TRIES; i++) {
        retry = false;
        sv = s_sv_start_once(data_dir, tmpl, &retry);
    }
    return sv;
}

th_sv_t *th_sv_start(const char *tmpl)
{
    return th_sv_start_in(NULL, tmpl);
}

int th_sv_write_config(th_sv_t *sv, const char *tmpl)
{
    char *text = s_sv_expand(sv, tmpl);
    int rc = th_replace_file(sv->proc->config, text);
    free(text);
    return rc;
}

/* Remembers every worker and program pid of a /status document. */
static void s_sv_track(json_t *st)
{
    size_t i, j;
    json_t *s, *w;
    json_array_foreach(json_object_get(st, "services"), i, s)
        json_array_foreach(json_object_get(s, "workers"), j, w)
            th_track_pid((pid_t)json_integer_value(json_object_get(w, "pid")));
    json_array_foreach(json_object_get(st, "programs"), i, s)
        th_track_pid((pid_t)json_integer_value(json_object_get(s, "pid")));
}

json_t *th_sv_status(th_sv_t *sv)
{
    th_resp_t *r = NULL;
    if (th_request(sv->admin_port, "GET", "/status", sv->auth, NULL, &r) < 0)
        return NULL;
    json_t *st = r->status == 200 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    th_resp_free(&r);
    if (st)
        s_sv_track(st);
    return st;
}

json_t *th_sv_find(json_t *status, const char *kind, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(status, kind), i, s)
    {
        const char *n = json_string_value(json_object_get(s, "name"));
        if (n && strcmp(n, name) == 0)
            return s;
    }
    return NULL;
}

unsigned th_sv_count(json_t *service, const char *state)
{
    unsigned n = 0;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(service, "workers"), i, w)
    {
        const char *s = json_string_value(json_object_get(w, "state"));
        n += !state || (s && strcmp(s, state) == 0);
    }
    return n;
}

bool th_sv_wait_settled(th_sv_t *sv, const char *service, unsigned n, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        json_t *st = th_sv_status(sv);
        json_t *s = th_sv_find(st, "services", service);
        bool done = s && th_sv_count(s, NULL) == n && th_sv_count(s, "running") == n &&
                    json_integer_value(json_object_get(s, "desired")) == (json_int_t)n;
        json_decref(st);
        if (done)
            return true;
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(20);
    }
}

/* Sends sig to the supervisor and waits up to ms for it to exit. */
static void s_sv_signal_wait(th_sv_t *sv, int sig, int ms)
{
    th_signal(sv->proc, sig);
    for (long long end = th_now_ms() + ms; th_running(sv->proc) && th_now_ms() < end;)
        th_sleep_ms(10);
}

void th_sv_free(th_sv_t **svp)
{
    th_sv_t *sv = svp ? *svp : NULL;
    if (!sv)
        return;
    *svp = NULL;
    if (th_running(sv->proc)) {
        /* A worker a test stopped must run to hear its drain. */
        th__pids_continue();
        /* SIGTERM drains; a second SIGINT makes the supervisor SIGKILL and
         * reap everything it runs; SIGKILL (th_proc_free) is the last resort,
         * after which th_cleanup() ends the orphans. */
        s_sv_signal_wait(sv, SIGTERM, 3000);
        s_sv_signal_wait(sv, SIGINT, 3000);
    }
    th_proc_free(&sv->proc);
    s_sv_release(sv);
}

void th__svs_release(void)
{
    while (s_svs) {
        th_sv_t *sv = s_svs;
        th_sv_free(&sv);
    }
}
