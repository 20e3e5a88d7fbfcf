/* supervisor_fixture.c - see supervisor_fixture.h. */
#define _GNU_SOURCE
#include "supervisor_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last /status document of sup_status(); freed by the next and by
 * sup_fini. */
static json_t *s_st;

void sup_fini(void)
{
    json_decref(s_st);
    s_st = NULL;
    th_cleanup();
}

/* ---- /status ---- */

json_t *sup_status(th_sv_t *sv)
{
    json_decref(s_st);
    s_st = th_sv_status(sv);
    cr_assert_not_null(s_st, "GET /status failed");
    return s_st;
}

json_t *sup_last_status(void)
{
    return s_st;
}

json_t *sup_service(th_sv_t *sv, const char *name)
{
    json_t *s = th_sv_find(sup_status(sv), "services", name);
    cr_assert_not_null(s, "service %s not in /status", name);
    return s;
}

json_t *sup_program(th_sv_t *sv, const char *name)
{
    json_t *p = th_sv_find(sup_status(sv), "programs", name);
    cr_assert_not_null(p, "program %s not in /status", name);
    return p;
}

const char *sup_str(const json_t *o, const char *key)
{
    const char *v = th_str(o, key);
    return v ? v : "(null)";
}

json_t *sup_worker(json_t *svc, json_int_t id)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
    {
        if (th_int(w, "id") == id)
            return w;
    }
    return NULL;
}

size_t sup_pids(json_t *svc, pid_t *pids, size_t max)
{
    size_t i, n = 0;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
    {
        if (n < max)
            pids[n++] = (pid_t)th_int(w, "pid");
    }
    return n;
}

bool sup_has_pid(const pid_t *pids, size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* ---- clients and operators ---- */

th_load_t *sup_load(int port, const char *path, unsigned threads, int pause_ms)
{
    th_load_opts_t o = {.port = port,
                        .path = path,
                        .threads = threads,
                        .reqs_per_conn = 1,
                        .pause_ms = pause_ms};
    th_load_t *l = th_load_start(&o);
    cr_assert_not_null(l);
    return l;
}

void sup_assert_clean(const th_load_stats_t *st, const char *what)
{
    cr_assert_eq(st->failed, 0, "%s: %ld of %ld request(s) failed; the first: %s", what,
                 st->failed, st->failed + st->ok, st->first_error);
    cr_assert_gt(st->ok, 0, "%s: the client made no successful request", what);
    cr_log_info("%s: %ld request(s) on %ld connection(s), none failed", what, st->ok,
                st->conns);
}

int sup_ctl(th_sv_t *sv, const char *addr, char **out, const char *a1, const char *a2,
            const char *a3)
{
    char *bin = th_bin_path("vaporactl");
    const char *argv[] = {
        bin, "-c", sv->proc->config, "-a", addr ? addr : sv->admin, a1, a2, a3, NULL};
    int rc = th_run(argv, 10000, out);
    free(bin);
    return rc;
}

void sup_ctl_scale(th_sv_t *sv, unsigned n)
{
    char count[16], *out = NULL;
    snprintf(count, sizeof count, "%u", n);
    int rc = sup_ctl(sv, NULL, &out, "scale", "web", count);
    th_keep(out);
    cr_assert_eq(rc, 0, "vaporactl scale web %u: exit %d: %s", n, rc, out);
    char want[64];
    snprintf(want, sizeof want, "web: %u worker(s) desired", n);
    cr_assert(strstr(out, want), "vaporactl scale output: %s", out);
    th_assert_settled(sv, "web", n, 8000);
}

th_resp_t *sup_admin_post(th_sv_t *sv, const char *path, const char *body)
{
    return th_must_request(sv->admin_port, "POST", path,
                           th_fmt("%s" TH_JSON_CT, sv->auth), body);
}

th_sv_t *sup_start_busy(th_conn_t **c)
{
    th_sv_t *sv = th_must_sv_start("shutdown_timeout = 5\n\n" SUP_WEB("1"));
    th_assert_settled(sv, "web", 1, 5000);
    *c = th_must_connect(sv->ports[0]);
    cr_assert_eq(th_send_request(*c, "GET", "/sleep?ms=1500", NULL, NULL, 0), 0);
    th_sleep_ms(200);
    return sv;
}

/* ---- restarts and processes ---- */

size_t sup_backoff_delays(const char *log, const char *who, long *out, size_t max)
{
    size_t n = 0;
    for (const char *l = log; l && *l && n < max;
         l = strchr(l, '\n'), l = l ? l + 1 : l) {
        const char *eol = strchrnul(l, '\n');
        char *line = strndup(l, (size_t)(eol - l));
        char *at = strstr(line, who);
        char *r = at ? strstr(at, "; restart") : NULL;
        char *in = r ? strstr(r, " in ") : NULL;
        if (in)
            out[n++] = strtol(in + 4, NULL, 10);
        free(line);
    }
    return n;
}

void sup_assert_backoff(const long *d, size_t n, long base, const char *log)
{
    cr_assert_geq(n, 3, "only %zu backoff line(s) in the log:\n%s", n, log);
    cr_assert(d[0] >= base && d[0] <= base + base / 4 + 1,
              "first delay %ld ms, want %ld", d[0], base);
    for (size_t i = 1; i < n; i++)
        cr_assert(d[i] * 2 >= d[i - 1] * 3 && d[i] <= 30000 + 7500,
                  "delay %zu is %ld ms after %ld ms: not a growing backoff", i + 1,
                  d[i], d[i - 1]);
}

bool sup_wait_gone(pid_t pid, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    while (th_pid_remains(pid)) {
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(10);
    }
    return true;
}
