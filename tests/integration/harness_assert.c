/* harness_assert.c - see harness_assert.h. */
#define _GNU_SOURCE
#include "harness_assert.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_base.h"
#include "harness_keep.h"

th_proc_t *th_must_start(const char *bin, const char *section, const char *extra)
{
    th_proc_t *p = th_start(bin, section, extra);
    cr_assert_not_null(p, "%s did not start (see stderr for its log)", bin);
    return p;
}

th_sv_t *th_must_sv_start(const char *tmpl)
{
    th_sv_t *sv = th_sv_start(tmpl);
    cr_assert_not_null(sv, "the supervisor did not start (its log is on stderr)");
    return sv;
}

th_conn_t *th_must_connect(int port)
{
    th_conn_t *c = th_connect(port, TH_IO_MS);
    cr_assert_not_null(c, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
    return c;
}

th_resp_t *th_must_exchange(th_conn_t *c, const char *method, const char *path,
                            const char *headers, const char *body)
{
    th_resp_t *r = NULL;
    int rc = th_send_request(c, method, path, headers, body, body ? strlen(body) : 0);
    cr_assert_eq(rc, 0, "sending %s %s: %s", method, path, strerror(-rc));
    rc = th_read_response(c, &r, TH_IO_MS);
    cr_assert_eq(rc, 0, "no response to %s %s: %s", method, path, strerror(-rc));
    return r;
}

th_resp_t *th_must_request(int port, const char *method, const char *path,
                           const char *headers, const char *body)
{
    th_resp_t *r = NULL;
    int rc = th_request(port, method, path, headers, body, &r);
    cr_assert_eq(rc, 0, "no response to %s %s: %s", method, path, strerror(-rc));
    return r;
}

json_t *th_must_json(const th_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    cr_assert_not_null(j, "body of a %d is not JSON (%s): %.300s", r->status, e.text,
                       r->body);
    return th_keep_json(j);
}

void th_assert_type(const th_resp_t *r, const char *want)
{
    const char *ct = th_resp_header(r, "Content-Type");
    cr_assert_not_null(ct, "no Content-Type (status %d)", r->status);
    cr_assert(strncmp(ct, want, strlen(want)) == 0, "Content-Type %s, want %s", ct,
              want);
}

const char *th_assert_error(const th_resp_t *r, int status, const char *code,
                            const char *what)
{
    what = what ? what : "the response";
    cr_assert_eq(r->status, status, "%s: status %d, want %d (%s); body: %.400s", what,
                 r->status, status, code, r->body);
    th_assert_type(r, "application/json");
    json_t *j = th_must_json(r);
    json_t *e = json_object_get(j, "error");
    cr_assert(json_is_object(e) && json_object_size(j) == 1,
              "%s: not {\"error\":{...}}: %.400s", what, r->body);
    const char *got = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    cr_assert(got && msg, "%s: error without code or message: %.400s", what, r->body);
    cr_assert_str_eq(got, code, "%s: error code %s, want %s; body: %.400s", what, got,
                     code, r->body);
    cr_assert(msg[0] != '\0', "%s: empty error message", what);
    return msg;
}

void th_assert_answered_and_closed(int port, const char *req, size_t len, int status,
                                   const char *code, const char *what)
{
    th_conn_t *c = th_must_connect(port);
    cr_assert_eq(th_send_raw(c, req, len, TH_IO_MS), 0, "%s: could not send", what);
    th_resp_t *r = NULL;
    int rc = th_read_response(c, &r, 3000);
    cr_assert_eq(rc, 0, "%s: no answer: %s", what, strerror(-rc));
    th_assert_error(r, status, code, what);
    th_resp_free(&r);
    rc = th_read_response(c, &r, 3000);
    cr_assert_eq(rc, -ECONNRESET, "%s: %s after the answer", what,
                 rc == 0 ? th_fmt("another response (%d %.200s)", r->status, r->body)
                         : "the connection stayed open");
    th_conn_close(&c);
}

void th_assert_serving(int port)
{
    th_resp_t *r = th_must_request(port, "GET", "/health", NULL, NULL);
    cr_assert_eq(r->status, 200, "GET /health: %d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "\"healthy\""), "GET /health: %.300s", r->body);
    th_resp_free(&r);
}

void th_assert_log(const th_proc_t *p, const char *needle, const char *level)
{
    char *line = th_keep(th_log_line(p, needle));
    cr_assert_not_null(line, "no log line contains \"%s\"; log:\n%s", needle,
                       (char *)th_keep(th_log(p)));
    char want[32];
    snprintf(want, sizeof want, "level=%s ", level);
    cr_assert(strstr(line, want), "log line is not at %s: %s", level, line);
}

void th_assert_settled(th_sv_t *sv, const char *service, unsigned n, int timeout_ms)
{
    if (th_sv_wait_settled(sv, service, n, timeout_ms))
        return;
    json_t *st = th_keep_json(th_sv_status(sv));
    char *s = th_keep(json_dumps(th_sv_find(st, "services", service), JSON_INDENT(1)));
    cr_assert_fail("%s did not settle on %u running worker(s) in %d ms: %s\nlog:\n%s",
                   service, n, timeout_ms, s ? s : "(not in /status)",
                   (char *)th_keep(th_log(sv->proc)));
}

void th_assert_first_start(th_sv_t *sv, const char *service)
{
    json_t *st = th_keep_json(th_sv_status(sv));
    json_t *svc = th_sv_find(st, "services", service);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
        cr_assert_eq(json_integer_value(json_object_get(w, "restarts")), 0,
                     "a %s worker restarted at first start; log:\n%s", service,
                     (char *)th_keep(th_log(sv->proc)));
}
