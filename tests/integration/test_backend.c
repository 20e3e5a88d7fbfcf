/* test_backend.c - integration tests of the backend's REST API
 * (services/backend), written against docs/backend.md: each test starts the
 * real vapora-backend (standalone on a free port, or under the real
 * supervisor with two workers) on a fresh data_dir under $VAPORA_TEST_TMP
 * with a known admin password, and talks to it over TCP like a client:
 * log in, then create, list, patch and delete with the token.
 *
 * DESIGN. Requests go over one keep-alive connection per test (opened again
 * when the server closes it); the tests that need concurrency run their own
 * client threads with th_call(), which shares nothing with the rest of the
 * harness. Ids are compared as the strings the API returns; an "unknown"
 * id is one of the same shape with every letter and digit replaced by 0.
 * Nothing is waited for by sleeping, except the token expiry (a window that
 * must pass).
 *
 * Every test has .fini = s_fini: client threads are stopped and joined,
 * the workers and supervisors stopped, parsed documents freed and the data
 * directories removed, even when an assertion failed half way. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define BACKEND "vapora-backend"
#define PW "s3cret-Admin-pw"
#define JSON_CT "Content-Type: application/json\r\n"
#define API "/api/v1"

/* A [service:backend] under the supervisor on @PORT1@ with n workers. */
#define BE_SV(n)                                                                       \
    "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = " n                      \
    "\ncommand = @BACKEND@\n\n[backend]\nadmin_password = " PW "\n"

/* ---- what a test holds; s_fini releases all of it ---- */

static int s_port;      /* the backend under test */
static th_conn_t *s_c;  /* the keep-alive connection to it */
static json_t **s_docs; /* every parsed document */
static size_t s_ndocs;
static char **s_strs; /* every string made by s_fmt and friends */
static size_t s_nstrs;
static char *s_dirs[8]; /* data directories, removed at the end */
static size_t s_ndirs;

typedef struct s_inserter s_inserter_t;
static s_inserter_t *s_ins[8]; /* client threads still running */
static size_t s_nins;
static void s_inserter_stop(s_inserter_t *in);
static void s_inserter_free(s_inserter_t *in);

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

static void s_fini(void)
{
    for (size_t i = 0; i < s_nins; i++) {
        s_inserter_stop(s_ins[i]);
        s_inserter_free(s_ins[i]);
    }
    s_nins = 0;
    s_c = NULL; /* closed by th_cleanup */
    th_cleanup();
    for (size_t i = 0; i < s_ndocs; i++)
        json_decref(s_docs[i]);
    free(s_docs);
    s_docs = NULL;
    s_ndocs = 0;
    for (size_t i = 0; i < s_nstrs; i++)
        free(s_strs[i]);
    free(s_strs);
    s_strs = NULL;
    s_nstrs = 0;
    const char *keep = getenv("VAPORA_TEST_KEEP");
    for (size_t i = 0; i < s_ndirs; i++) {
        if (!keep || !*keep || strcmp(keep, "0") == 0)
            nftw(s_dirs[i], s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(s_dirs[i]);
    }
    s_ndirs = 0;
}

/* ---- small helpers ---- */

/* Keeps s until s_fini; returns it. */
static char *s_keep_str(char *s)
{
    s_strs = realloc(s_strs, (s_nstrs + 1) * sizeof *s_strs);
    s_strs[s_nstrs++] = s;
    return s;
}

/* A formatted string, kept until s_fini. */
__attribute__((format(printf, 1, 2))) static char *s_fmt(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert_geq(n, 0);
    return s_keep_str(s);
}

/* Keeps j until s_fini; returns it. */
static json_t *s_keep(json_t *j)
{
    s_docs = realloc(s_docs, (s_ndocs + 1) * sizeof *s_docs);
    s_docs[s_ndocs++] = j;
    return j;
}

/* Remembers dir (a heap string, taken) for removal at the end. */
static void s_track_dir(char *dir)
{
    cr_assert_lt(s_ndirs, sizeof s_dirs / sizeof *s_dirs);
    s_dirs[s_ndirs++] = dir;
}

/* A fresh, empty data directory (removed at the end). */
static const char *s_new_dir(void)
{
    char *d = th_tmp_path("bedata", "");
    cr_assert_not_null(d);
    cr_assert_eq(mkdir(d, 0700), 0, "mkdir %s: %s", d, strerror(errno));
    s_track_dir(d);
    return d;
}

static const char *s_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t s_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* o[key] as the text of a JSON value (kept), for messages and comparisons. */
static const char *s_dump(const json_t *v)
{
    if (!v)
        return "(absent)";
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return s ? s_keep_str(s) : "(?)";
}

/* The "id" of o as a string (an integer id is printed); asserts it is there. */
static const char *s_id(const json_t *o)
{
    json_t *v = json_object_get(o, "id");
    if (json_is_string(v) && json_string_length(v) > 0)
        return json_string_value(v);
    if (json_is_integer(v))
        return s_fmt("%lld", (long long)json_integer_value(v));
    cr_assert_fail("no usable \"id\" in %s", s_dump(o));
    return NULL;
}

/* The "id" of o as JSON text (for blocked_by lists). */
static const char *s_idj(const json_t *o)
{
    return s_dump(json_object_get(o, "id"));
}

/* An id of the same shape as id that names nothing. */
static const char *s_unknown_id(const char *id)
{
    char *u = s_keep_str(strdup(id));
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

/* Compares two timestamps of the API (ISO 8601 strings of one format, or
 * numbers): <0, 0, >0. */
static int s_ts_cmp(const json_t *a, const json_t *b)
{
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b));
    cr_assert(json_is_number(a) && json_is_number(b), "timestamps %s and %s", s_dump(a),
              s_dump(b));
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

/* ---- requests ---- */

/* Sends one request on the test's keep-alive connection (made again when
 * the server closed it) with raw header lines; asserts a whole response
 * arrived. */
static th_resp_t *s_send_raw(const char *method, const char *path, const char *headers,
                             const char *body)
{
    if (s_c && th_peer_closed(s_c))
        th_conn_close(&s_c);
    if (!s_c) {
        s_c = th_connect(s_port, TH_IO_MS);
        cr_assert_not_null(s_c, "connect to 127.0.0.1:%d: %s", s_port, strerror(errno));
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

/* The header lines for token (NULL: none) and a JSON body. */
static const char *s_headers(const char *token, const char *extra, bool json)
{
    return s_fmt("%s%s%s%s%s", token ? "Authorization: Bearer " : "",
                 token ? token : "", token ? "\r\n" : "", json ? JSON_CT : "",
                 extra ? extra : "");
}

/* Sends one request with a bearer token (NULL: none). */
static th_resp_t *s_send(const char *method, const char *path, const char *token,
                         const char *body)
{
    return s_send_raw(method, path, s_headers(token, NULL, body != NULL), body);
}

/* Parses the body of r (kept); asserts it is JSON. */
static json_t *s_json(const th_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    cr_assert_not_null(j, "body of a %d is not JSON (%s): %.300s", r->status, e.text,
                       r->body);
    return s_keep(j);
}

/* Asserts the status of r is want, with the request and body in the
 * message. */
static void s_assert_status(const th_resp_t *r, int want, const char *method,
                            const char *path)
{
    cr_assert_eq(r->status, want, "%s %s: status %d, want %d; body: %.400s", method,
                 path, r->status, want, r->body);
}

/* One request; asserts status want; returns the parsed body (kept), or
 * NULL when it is empty. */
static json_t *s_api(int want, const char *method, const char *path, const char *token,
                     const char *body)
{
    th_resp_t *r = s_send(method, path, token, body);
    s_assert_status(r, want, method, path);
    json_t *j = r->body_len ? s_json(r) : NULL;
    th_resp_free(&r);
    return j;
}

/* Asserts r is exactly {"error":{"code":code,"message":"<sentence>"}} with
 * status and a JSON Content-Type; returns the message (kept). */
static const char *s_assert_error(const th_resp_t *r, int status, const char *code,
                                  const char *what)
{
    cr_assert_eq(r->status, status, "%s: status %d, want %d (%s); body: %.400s", what,
                 r->status, status, code, r->body);
    const char *ct = th_resp_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "%s: Content-Type %s",
              what, ct ? ct : "(none)");
    json_t *j = s_json(r);
    json_t *e = json_object_get(j, "error");
    cr_assert(json_is_object(e) && json_object_size(j) == 1,
              "%s: not {\"error\":{...}}: %.400s", what, r->body);
    const char *got = s_str(e, "code"), *msg = s_str(e, "message");
    cr_assert(got && msg, "%s: error without code or message: %.400s", what, r->body);
    cr_assert_str_eq(got, code, "%s: error code %s, want %s; body: %.400s", what, got,
                     code, r->body);
    cr_assert(msg[0] != '\0', "%s: empty error message", what);
    return msg;
}

/* One request; asserts the error; returns its message. */
static const char *s_api_err(int status, const char *code, const char *method,
                             const char *path, const char *token, const char *body)
{
    th_resp_t *r = s_send(method, path, token, body);
    const char *msg = s_assert_error(r, status, code, s_fmt("%s %s", method, path));
    th_resp_free(&r);
    return msg;
}

/* ---- starting the backend ---- */

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

/* Starts vapora-backend standalone on a fresh data_dir (returned in *dir
 * when dir is non-NULL) with the given [backend] lines (NULL: the known
 * admin password); the requests go to it from now on. */
static th_proc_t *s_backend(const char *backend_keys, const char **dir)
{
    const char *d = s_new_dir();
    if (dir)
        *dir = d;
    const char *extra =
        s_fmt("\n[supervisor]\ndata_dir = %s\n\n[backend]\n%s", d,
              backend_keys ? backend_keys : "admin_password = " PW "\n");
    th_proc_t *p = th_start(BACKEND, "backend", extra);
    cr_assert_not_null(p, "vapora-backend did not start (its log is on stderr)");
    s_port = p->port;
    th_conn_close(&s_c);
    s_wait_serving();
    return p;
}

/* Starts a supervisor with the backend on n workers (tmpl: BE_SV(n)) on
 * data_dir (NULL: a fresh one) and waits until they serve. */
static th_sv_t *s_sv_backend(const char *data_dir, const char *tmpl, unsigned n)
{
    th_sv_t *sv = th_sv_start_in(data_dir, tmpl);
    cr_assert_not_null(sv, "the supervisor did not start (its log is on stderr)");
    if (!data_dir)
        s_track_dir(strdup(sv->data_dir));
    if (!th_sv_wait_settled(sv, "backend", n, 20000)) {
        char *log = th_log(sv->proc);
        s_keep_str(log);
        cr_assert_fail("the backend did not settle on %u running workers; log:\n%s", n,
                       log);
    }
    if (!data_dir) {
        /* Workers starting together on a fresh data_dir must all come up
         * the first time (one once lost a race for the new database). */
        json_t *st = th_sv_status(sv);
        json_t *svc = th_sv_find(st, "services", "backend");
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(svc, "workers"), i, w)
            cr_assert_eq(json_integer_value(json_object_get(w, "restarts")), 0,
                         "a backend worker restarted at first start: %s",
                         s_keep_str(th_log(sv->proc)));
        json_decref(st);
    }
    s_port = sv->ports[0];
    th_conn_close(&s_c);
    s_wait_serving();
    return sv;
}

/* POST /auth/login; returns the response (caller frees). */
static th_resp_t *s_login_resp(const char *user, const char *pass)
{
    json_t *b = json_pack("{s:s,s:s}", "username", user, "password", pass);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    th_resp_t *r = s_send("POST", API "/auth/login", NULL, body);
    free(body);
    return r;
}

/* Logs in; asserts 200; returns the whole answer (kept). */
static json_t *s_login_doc(const char *user, const char *pass)
{
    th_resp_t *r = s_login_resp(user, pass);
    s_assert_status(r, 200, "POST", API "/auth/login");
    json_t *j = s_json(r);
    th_resp_free(&r);
    const char *tok = s_str(j, "access_token");
    cr_assert(tok && *tok, "login of %s: no access_token in %s", user, s_dump(j));
    return j;
}

/* Logs in; returns the token. */
static const char *s_login(const char *user, const char *pass)
{
    return s_str(s_login_doc(user, pass), "access_token");
}

/* ---- resources ---- */

static json_t *s_project(const char *tok, const char *name)
{
    json_t *b = json_pack("{s:s,s:s}", "name", name, "description", "made by a test");
    char *body = s_keep_str(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    return s_api(201, "POST", API "/projects", tok, body);
}

/* Creates a task in project p with extra JSON members (e.g.
 * "\"priority\":\"high\""; NULL: none). */
static json_t *s_task(const char *tok, const json_t *p, const char *title,
                      const char *extra)
{
    const char *body =
        s_fmt("{\"title\":\"%s\"%s%s}", title, extra ? "," : "", extra ? extra : "");
    return s_api(201, "POST", s_fmt(API "/projects/%s/tasks", s_id(p)), tok, body);
}

static const char *s_task_path(const json_t *t)
{
    return s_fmt(API "/tasks/%s", s_id(t));
}

/* PATCH the task with body; asserts 200 and that version grew by one. */
static json_t *s_patch(const char *tok, const json_t *t, const char *body)
{
    json_int_t v = s_int(t, "version");
    json_t *n = s_api(200, "PATCH", s_task_path(t), tok, body);
    cr_assert_eq(s_int(n, "version"), v + 1, "PATCH %s: version %lld after %lld", body,
                 (long long)s_int(n, "version"), (long long)v);
    return n;
}

/* Moves t through the given statuses (NULL-terminated); returns it. */
static json_t *s_walk(const char *tok, json_t *t, ...)
{
    va_list ap;
    va_start(ap, t);
    for (const char *st; (st = va_arg(ap, const char *));) {
        t = s_patch(tok, t, s_fmt("{\"status\":\"%s\"}", st));
        cr_assert_str_eq(s_str(t, "status"), st);
    }
    va_end(ap);
    return t;
}

/* Creates a user; returns it. */
static json_t *s_user(const char *tok, const char *name, const char *pass,
                      const char *role)
{
    json_t *b =
        json_pack("{s:s,s:s,s:s}", "username", name, "password", pass, "role", role);
    char *body = s_keep_str(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    return s_api(201, "POST", API "/users", tok, body);
}

/* Whether the array arr has an object whose key is the string val. */
static bool s_has(const json_t *arr, const char *key, const char *val)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        json_t *v = json_object_get(o, key);
        const char *s = json_is_string(v) ? json_string_value(v) : s_dump(v);
        if (strcmp(s, val) == 0)
            return true;
    }
    return false;
}

/* ---- base64url and JWT pieces ---- */

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decodes n characters of base64url (no padding); kept, NUL-terminated. */
static char *s_b64url_decode(const char *in, size_t n)
{
    char *out = s_keep_str(calloc(1, n * 3 / 4 + 4));
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = strchr(s_b64, in[i]);
        cr_assert(p && in[i], "not base64url: %.*s", (int)n, in);
        acc = (acc << 6) | (unsigned)(p - s_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    return out;
}

/* Encodes a string as base64url without padding; kept. */
static char *s_b64url_encode(const char *in)
{
    size_t n = strlen(in);
    char *out = s_keep_str(calloc(1, n * 4 / 3 + 4));
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | (unsigned char)in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = s_b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = s_b64[(acc << (6 - bits)) & 63];
    return out;
}

/* Splits a JWT into its three parts; asserts it has them. */
static void s_jwt_split(const char *tok, const char **h, size_t *hn, const char **p,
                        size_t *pn, const char **sig)
{
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    cr_assert(d1 && d2 && !strchr(d2 + 1, '.'), "not a JWT: %s", tok);
    *h = tok;
    *hn = (size_t)(d1 - tok);
    *p = d1 + 1;
    *pn = (size_t)(d2 - d1 - 1);
    *sig = d2 + 1;
}

/* The decoded claims of a JWT (kept). */
static json_t *s_jwt_claims(const char *tok)
{
    const char *h, *p, *sig;
    size_t hn, pn;
    s_jwt_split(tok, &h, &hn, &p, &pn, &sig);
    json_t *c = json_loads(s_b64url_decode(p, pn), 0, NULL);
    cr_assert_not_null(c, "the JWT payload is not JSON: %s", tok);
    return s_keep(c);
}

/* GET /auth/me with raw header lines; asserts 401 unauthorized. */
static void s_assert_unauthorized(const char *headers, const char *what)
{
    th_resp_t *r = s_send_raw("GET", API "/auth/me", headers, NULL);
    s_assert_error(r, 401, "unauthorized", what);
    th_resp_free(&r);
}

/* =================================================================== */
/* 1. Login and tokens                                                  */
/* =================================================================== */

Test(backend_auth, login_returns_a_bearer_token_and_the_owner, .timeout = 60,
     .fini = s_fini)
{
    th_proc_t *p = s_backend(NULL, NULL);
    json_t *j = s_login_doc("admin", PW);
    cr_assert_str_eq(s_str(j, "token_type") ? s_str(j, "token_type") : "(none)",
                     "Bearer", "%s", s_dump(j));
    cr_assert(json_is_integer(json_object_get(j, "expires_in")) &&
                  s_int(j, "expires_in") == 3600,
              "expires_in in %s", s_dump(j));
    json_t *u = json_object_get(j, "user");
    cr_assert(json_is_object(u), "no user in %s", s_dump(j));
    const char *uid = s_id(u);
    cr_assert_str_eq(s_str(u, "username") ? s_str(u, "username") : "", "admin");
    cr_assert_str_eq(s_str(u, "role") ? s_str(u, "role") : "", "owner");
    cr_assert(!strstr(s_dump(j), "password"),
              "the login answer mentions a password: %s", s_dump(j));

    /* The token is an HS256 JWT with the documented claims. */
    const char *tok = s_str(j, "access_token");
    const char *h, *pl, *sig;
    size_t hn, pn;
    s_jwt_split(tok, &h, &hn, &pl, &pn, &sig);
    json_t *hdr = s_keep(json_loads(s_b64url_decode(h, hn), 0, NULL));
    cr_assert_str_eq(s_str(hdr, "alg") ? s_str(hdr, "alg") : "", "HS256", "header %s",
                     s_dump(hdr));
    json_t *c = s_jwt_claims(tok);
    cr_assert_str_eq(s_str(c, "sub") ? s_str(c, "sub")
                                     : s_dump(json_object_get(c, "sub")),
                     uid, "claims %s", s_dump(c));
    cr_assert_str_eq(s_str(c, "username") ? s_str(c, "username") : "", "admin");
    cr_assert_str_eq(s_str(c, "role") ? s_str(c, "role") : "", "owner");
    json_int_t iat = s_int(c, "iat"), exp = s_int(c, "exp");
    cr_assert_eq(exp - iat, 3600, "exp - iat = %lld in %s", (long long)(exp - iat),
                 s_dump(c));
    long long now = (long long)time(NULL);
    cr_assert(iat >= now - 60 && iat <= now + 5, "iat %lld, now %lld", (long long)iat,
              now);

    /* GET /auth/me with it is the caller. */
    json_t *me = s_api(200, "GET", API "/auth/me", tok, NULL);
    json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
    cr_assert_str_eq(s_id(mu), uid, "/auth/me: %s", s_dump(me));
    cr_assert_str_eq(s_str(mu, "username") ? s_str(mu, "username") : "", "admin");
    cr_assert_str_eq(s_str(mu, "role") ? s_str(mu, "role") : "", "owner");

    /* The configured password is never logged in clear. */
    char *log = s_keep_str(th_log(p));
    cr_assert(!strstr(log, PW), "the admin password is in the log:\n%s", log);
}

Test(backend_auth, wrong_password_and_unknown_user_are_the_same_401, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    th_resp_t *r = s_login_resp("admin", "not-the-password");
    const char *m1 = s_assert_error(r, 401, "invalid_credentials", "wrong password");
    th_resp_free(&r);
    r = s_login_resp("nobody-here", PW);
    const char *m2 = s_assert_error(r, 401, "invalid_credentials", "unknown user");
    th_resp_free(&r);
    cr_assert_str_eq(m1, m2, "the messages differ: \"%s\" vs \"%s\"", m1, m2);
    /* Neither is a token; the right password still works. */
    s_login("admin", PW);
}

/* Milliseconds a failed login of user takes (asserts it fails with 401). */
static long long s_failed_login_ms(const char *user, const char *pass)
{
    long long t0 = th_now_ms();
    th_resp_t *r = s_login_resp(user, pass);
    long long ms = th_now_ms() - t0;
    s_assert_error(r, 401, "invalid_credentials", s_fmt("login of %s", user));
    th_resp_free(&r);
    return ms;
}

Test(backend_auth, unknown_user_costs_a_hash_and_failures_slow_down, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    /* Same work: an unknown user is not answered much faster than a wrong
     * password (a dummy argon2id hash is verified). */
    long long wrong = 0, unknown = 0;
    for (int i = 0; i < 3; i++) {
        wrong += s_failed_login_ms("admin", "wrong-password");
        unknown += s_failed_login_ms(s_fmt("ghost-%d", i), "wrong-password");
    }
    cr_log_info("3 wrong passwords: %lld ms, 3 unknown users: %lld ms", wrong, unknown);
    cr_assert_geq(unknown * 3, wrong,
                  "unknown users: %lld ms, wrong passwords: %lld ms", unknown, wrong);

    /* Two more failures make five for admin; then each failure waits
     * 250 ms, doubling. */
    long long base = 0;
    for (int i = 0; i < 2; i++)
        base += s_failed_login_ms("admin", "wrong-password");
    long long d6 = s_failed_login_ms("admin", "wrong-password");
    long long d7 = s_failed_login_ms("admin", "wrong-password");
    long long d8 = s_failed_login_ms("admin", "wrong-password");
    cr_log_info("failures 4-5: %lld ms; 6: %lld, 7: %lld, 8: %lld ms", base, d6, d7,
                d8);
    cr_assert_geq(d6, 250, "the 6th failure was answered after %lld ms", d6);
    cr_assert_geq(d7, 500, "the 7th failure was answered after %lld ms", d7);
    cr_assert_geq(d8, 1000, "the 8th failure was answered after %lld ms", d8);
    /* Another username is not slowed down by admin's failures. */
    long long other = s_failed_login_ms("someone-else", "wrong-password");
    cr_assert_lt(other, d8, "another user's first failure took %lld ms", other);
    /* The right password still logs in. */
    s_login("admin", PW);
}

Test(backend_auth, missing_malformed_and_forged_tokens_are_401, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *adm = s_login("admin", PW);
    s_user(adm, "vera", "viewer-pass-1", "viewer");
    const char *tok = s_login("vera", "viewer-pass-1");
    s_api(200, "GET", API "/auth/me", tok, NULL);

    s_assert_unauthorized(NULL, "no Authorization");
    const char *noauth[][3] = {
        {"GET", API "/projects", NULL},
        {"GET", API "/tasks", NULL},
        {"GET", API "/users", NULL},
        {"POST", API "/projects", "{\"name\":\"x\"}"},
        {"POST", API "/users",
         "{\"username\":\"x\",\"password\":\"xxxxxxxxx\","
         "\"role\":\"owner\"}"},
    };
    for (size_t i = 0; i < sizeof noauth / sizeof *noauth; i++)
        s_api_err(401, "unauthorized", noauth[i][0], noauth[i][1], NULL, noauth[i][2]);
    s_assert_unauthorized("Authorization: Bearer\r\n", "Bearer without a token");
    s_assert_unauthorized("Authorization: Bearer abc\r\n", "Bearer abc");
    s_assert_unauthorized("Authorization: Bearer a.b.c\r\n", "Bearer a.b.c");
    s_assert_unauthorized(s_fmt("Authorization: %s\r\n", tok), "no Bearer scheme");
    s_assert_unauthorized("Authorization: Basic YWRtaW46czNjcmV0\r\n", "Basic");

    /* One character of the signature changed (not the last, whose low bits
     * a lenient decoder may ignore). */
    const char *h, *pl, *sig;
    size_t hn, pn;
    s_jwt_split(tok, &h, &hn, &pl, &pn, &sig);
    cr_assert_gt(strlen(sig), 8);
    char *forged = s_keep_str(strdup(tok));
    char *c = forged + (sig - tok) + 5;
    *c = *c == 'A' ? 'B' : 'A';
    s_assert_unauthorized(s_fmt("Authorization: Bearer %s\r\n", forged),
                          "a signature character flipped");

    /* The viewer's claims rewritten to owner, the signature kept. */
    json_t *cl = json_deep_copy(s_jwt_claims(tok));
    s_keep(cl);
    json_object_set_new(cl, "role", json_string("owner"));
    char *cls = s_keep_str(json_dumps(cl, JSON_COMPACT));
    const char *raised = s_fmt("%.*s.%s.%s", (int)hn, h, s_b64url_encode(cls), sig);
    s_assert_unauthorized(s_fmt("Authorization: Bearer %s\r\n", raised),
                          "claims rewritten to owner");
    s_api_err(401, "unauthorized", "GET", API "/users", raised, NULL);

    /* alg none, unsigned. */
    const char *none = s_fmt(
        "%s.%.*s.", s_b64url_encode("{\"alg\":\"none\",\"typ\":\"JWT\"}"), (int)pn, pl);
    s_assert_unauthorized(s_fmt("Authorization: Bearer %s\r\n", none), "alg none");

    /* The good token still works. */
    json_t *me = s_api(200, "GET", API "/auth/me", tok, NULL);
    json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
    cr_assert_str_eq(s_str(mu, "role") ? s_str(mu, "role") : "", "viewer");
}

Test(backend_auth, expired_token_is_401, .timeout = 60, .fini = s_fini)
{
    /* token_ttl = 2, not 1: the token must be used once while valid (so a
     * worker that remembers verified tokens has it in its cache), and with
     * one second a login in the last milliseconds of a second would give a
     * token that has already expired by the time it is used. */
    s_backend("admin_password = " PW "\ntoken_ttl = 2\n", NULL);
    json_t *j = s_login_doc("admin", PW);
    const char *tok = s_str(j, "access_token");
    json_t *c = s_jwt_claims(tok);
    json_int_t exp = s_int(c, "exp");
    cr_assert_eq(exp - s_int(c, "iat"), 2, "claims %s with token_ttl = 2", s_dump(c));
    s_api(200, "GET", API "/auth/me", tok, NULL);
    s_api(200, "GET", API "/projects", tok, NULL);
    /* Wait until a second past exp by the wall clock (JWT times are). */
    long long left_ms = ((long long)exp + 1 - (long long)time(NULL)) * 1000 + 200;
    cr_assert_leq(left_ms, 4000, "exp %lld is too far ahead", (long long)exp);
    th_sleep_ms((int)left_ms);
    s_assert_unauthorized(s_fmt("Authorization: Bearer %s\r\n", tok), "expired token");
    s_api_err(401, "unauthorized", "GET", API "/projects", tok, NULL);
    /* A new login gives a token that works again. */
    s_api(200, "GET", API "/auth/me", s_login("admin", PW), NULL);
}

/* =================================================================== */
/* 2. The generated admin password and secret                           */
/* =================================================================== */

/* Asserts path exists with permissions 0600. */
static void s_assert_0600(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    cr_assert_eq(st.st_mode & 07777, 0600, "%s has mode %04o, want 0600", path,
                 (unsigned)(st.st_mode & 07777));
    cr_assert_gt(st.st_size, 0, "%s is empty", path);
}

/* Whether the file at path (absent: no) contains needle. */
static bool s_file_has(const char *path, const void *needle, size_t n)
{
    size_t len = 0;
    char *data = th_read_file(path, &len);
    bool has = data && memmem(data, len, needle, n) != NULL;
    free(data);
    return has;
}

/* How many times needle occurs in s. */
static int s_count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(backend_auth, random_admin_password_is_kept_0600_and_never_stored_in_clear,
     .timeout = 60, .fini = s_fini)
{
    const char *dir;
    th_proc_t *p = s_backend("admin_password =\n", &dir);
    const char *pwf = s_fmt("%s/admin-password", dir);
    s_assert_0600(pwf);
    char *pw = s_keep_str(th_read_file(pwf, NULL));
    cr_assert_not_null(pw);
    pw[strcspn(pw, "\r\n")] = '\0';
    cr_assert_geq(strlen(pw), 8, "the generated password \"%s\" is short", pw);
    const char *tok = s_login("admin", pw);
    json_t *me = s_api(200, "GET", API "/auth/me", tok, NULL);
    json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
    cr_assert_str_eq(s_str(mu, "role") ? s_str(mu, "role") : "", "owner");

    /* Hashed with argon2id, not stored in clear (the WAL counts too). */
    const char *db = s_fmt("%s/vapora.db", dir);
    struct stat st;
    cr_assert_eq(stat(db, &st), 0, "no database at %s", db);
    const char *files[] = {db, s_fmt("%s-wal", db), s_fmt("%s-journal", db)};
    bool argon = false;
    for (size_t i = 0; i < 3; i++) {
        cr_assert(!s_file_has(files[i], pw, strlen(pw)), "the password is in %s",
                  files[i]);
        argon |= s_file_has(files[i], "$argon2id$", 10);
    }
    cr_assert(argon, "no $argon2id$ hash in the database files");

    /* Logged once (that is how an operator learns it), and the secret. */
    char *log = s_keep_str(th_log(p));
    cr_assert_eq(s_count(log, pw), 1, "the password is in the log %d times:\n%s",
                 s_count(log, pw), log);
    s_assert_0600(s_fmt("%s/jwt-secret", dir));
    char *secret = s_keep_str(th_read_file(s_fmt("%s/jwt-secret", dir), NULL));

    /* A second start keeps both: the same password logs in, the old token
     * validates, and the password is not logged again. */
    cr_assert_eq(th_stop(p, SIGTERM, 10000), 0, "SIGTERM: not a clean exit");
    const char *extra =
        s_fmt("\n[supervisor]\ndata_dir = %s\n\n[backend]\nadmin_password =\n", dir);
    p = th_start(BACKEND, "backend", extra);
    cr_assert_not_null(p);
    s_port = p->port;
    th_conn_close(&s_c);
    s_wait_serving();
    char *pw2 = s_keep_str(th_read_file(pwf, NULL));
    pw2[strcspn(pw2, "\r\n")] = '\0';
    cr_assert_str_eq(pw2, pw, "admin-password changed on a restart");
    char *secret2 = s_keep_str(th_read_file(s_fmt("%s/jwt-secret", dir), NULL));
    cr_assert_str_eq(secret2 ? secret2 : "", secret ? secret : "",
                     "jwt-secret changed");
    s_api(200, "GET", API "/auth/me", tok, NULL);
    s_login("admin", pw);
    log = s_keep_str(th_log(p));
    cr_assert(!strstr(log, pw), "the password was logged again on a restart");
}

/* =================================================================== */
/* 3. Users and roles                                                   */
/* =================================================================== */

Test(backend_users, owner_creates_users_with_validation, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *adm = s_login("admin", PW);
    json_t *m = s_user(adm, "mia", "member-pass-1", "member");
    cr_assert_str_eq(s_str(m, "username") ? s_str(m, "username") : "", "mia");
    cr_assert_str_eq(s_str(m, "role") ? s_str(m, "role") : "", "member");
    s_id(m);
    cr_assert_not_null(json_object_get(m, "created_at"), "no created_at: %s",
                       s_dump(m));
    cr_assert(!strstr(s_dump(m), "pass") && !strstr(s_dump(m), "argon"),
              "the user answer shows a password or hash: %s", s_dump(m));
    json_t *v = s_user(adm, "vic", "viewer-pass-1", "viewer");
    cr_assert_str_eq(s_str(v, "role") ? s_str(v, "role") : "", "viewer");

    s_api_err(
        409, "username_taken", "POST", API "/users", adm,
        "{\"username\":\"mia\",\"password\":\"another-pass\",\"role\":\"viewer\"}");
    s_api_err(422, "invalid_role", "POST", API "/users", adm,
              "{\"username\":\"rob\",\"password\":\"robert-pass\",\"role\":\"god\"}");
    s_api_err(422, "invalid_password", "POST", API "/users", adm,
              "{\"username\":\"rob\",\"password\":\"short\",\"role\":\"member\"}");
    s_api_err(422, "invalid_username", "POST", API "/users", adm,
              "{\"username\":\"\",\"password\":\"robert-pass\",\"role\":\"member\"}");
    const char *um = s_api_err(422, "unknown_field", "POST", API "/users", adm,
                               "{\"username\":\"rob\",\"password\":\"robert-pass\","
                               "\"role\":\"member\",\"shoe_size\":44}");
    cr_assert(strstr(um, "shoe_size"), "the message does not name the field: %s", um);

    json_t *list = s_api(200, "GET", API "/users", adm, NULL);
    json_t *items = json_object_get(list, "items");
    cr_assert(json_is_array(items), "GET /users: %s", s_dump(list));
    cr_assert_eq(json_array_size(items), 3, "users: %s", s_dump(items));
    cr_assert(s_has(items, "username", "admin") && s_has(items, "username", "mia") &&
                  s_has(items, "username", "vic"),
              "users: %s", s_dump(items));
    cr_assert(!s_has(items, "username", "rob"), "a refused user was created");
    cr_assert(!strstr(s_dump(items), "argon") && !strstr(s_dump(items), "password"),
              "GET /users shows passwords or hashes: %s", s_dump(items));
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        s_id(o);
        cr_assert(s_str(o, "username") && s_str(o, "role") &&
                      json_object_get(o, "created_at"),
                  "user %zu: %s", i, s_dump(o));
    }
    /* The new users can log in with their roles. */
    json_t *lm = s_login_doc("mia", "member-pass-1");
    cr_assert_str_eq(s_str(json_object_get(lm, "user"), "role"), "member");
    json_t *lv = s_login_doc("vic", "viewer-pass-1");
    cr_assert_str_eq(s_str(json_object_get(lv, "user"), "role"), "viewer");
}

Test(backend_users, roles_viewer_reads_member_writes_owner_manages, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *adm = s_login("admin", PW);
    s_user(adm, "mia", "member-pass-1", "member");
    s_user(adm, "vic", "viewer-pass-1", "viewer");
    const char *mem = s_login("mia", "member-pass-1");
    const char *vie = s_login("vic", "viewer-pass-1");

    /* member: projects and tasks, not users. */
    json_t *p = s_project(mem, "members-project");
    json_t *t = s_task(mem, p, "members-task", NULL);
    t = s_patch(mem, t, "{\"priority\":\"high\"}");
    s_api(202, "POST", s_fmt("%s/assign", s_task_path(t)), mem,
          "{\"role\":\"developer\"}");
    t = s_api(200, "GET", s_task_path(t), mem, NULL);
    s_api_err(403, "forbidden", "GET", API "/users", mem, NULL);
    s_api_err(
        403, "forbidden", "POST", API "/users", mem,
        "{\"username\":\"eve\",\"password\":\"eve-password\",\"role\":\"owner\"}");

    /* viewer: reads everything of projects and tasks, writes nothing. */
    const char *pp = s_fmt(API "/projects/%s", s_id(p));
    s_api(200, "GET", API "/projects", vie, NULL);
    s_api(200, "GET", pp, vie, NULL);
    s_api(200, "GET", s_fmt("%s/board", pp), vie, NULL);
    s_api(200, "GET", API "/tasks", vie, NULL);
    s_api(200, "GET", s_fmt(API "/tasks?project_id=%s", s_id(p)), vie, NULL);
    s_api(200, "GET", s_task_path(t), vie, NULL);
    s_api(200, "GET", API "/auth/me", vie, NULL);
    s_api_err(403, "forbidden", "POST", API "/projects", vie, "{\"name\":\"nope\"}");
    s_api_err(403, "forbidden", "PATCH", pp, vie, "{\"name\":\"nope\"}");
    s_api_err(403, "forbidden", "DELETE", pp, vie, NULL);
    s_api_err(403, "forbidden", "DELETE", s_fmt("%s?cascade=true", pp), vie, NULL);
    s_api_err(403, "forbidden", "POST", s_fmt("%s/tasks", pp), vie,
              "{\"title\":\"nope\"}");
    s_api_err(403, "forbidden", "PATCH", s_task_path(t), vie, "{\"title\":\"nope\"}");
    s_api_err(403, "forbidden", "DELETE", s_task_path(t), vie, NULL);
    s_api_err(403, "forbidden", "POST", s_fmt("%s/assign", s_task_path(t)), vie, "{}");
    s_api_err(403, "forbidden", "GET", API "/users", vie, NULL);
    s_api_err(
        403, "forbidden", "POST", API "/users", vie,
        "{\"username\":\"eve\",\"password\":\"eve-password\",\"role\":\"viewer\"}");

    /* Nothing the viewer tried changed anything. */
    json_t *p2 = s_api(200, "GET", pp, adm, NULL);
    cr_assert_str_eq(s_str(p2, "name"), "members-project");
    json_t *t2 = s_api(200, "GET", s_task_path(t), adm, NULL);
    cr_assert(json_equal(t2, t), "the viewer changed the task: %s -> %s", s_dump(t),
              s_dump(t2));
    json_t *tl =
        s_api(200, "GET", s_fmt(API "/tasks?project_id=%s", s_id(p)), adm, NULL);
    cr_assert_eq(json_array_size(json_object_get(tl, "items")), 1);
    json_t *ul = s_api(200, "GET", API "/users", adm, NULL);
    cr_assert_eq(json_array_size(json_object_get(ul, "items")), 3, "users: %s",
                 s_dump(ul));

    /* member deletes what it made. */
    th_resp_t *r = s_send("DELETE", s_task_path(t), mem, NULL);
    s_assert_status(r, 204, "DELETE", s_task_path(t));
    cr_assert_eq(r->body_len, 0, "a 204 with a body: %s", r->body);
    th_resp_free(&r);
    s_api_err(404, "not_found", "GET", s_task_path(t), mem, NULL);
    s_api_err(404, "not_found", "DELETE", s_task_path(t), mem, NULL);
    s_api(204, "DELETE", pp, mem, NULL);
}

/* =================================================================== */
/* 4. Projects                                                          */
/* =================================================================== */

Test(backend_projects, create_get_patch_delete, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    th_resp_t *r = s_send("POST", API "/projects", tok,
                          "{\"name\":\"Alpha\",\"description\":\"the first\"}");
    s_assert_status(r, 201, "POST", API "/projects");
    json_t *p = s_json(r);
    const char *id = s_id(p);
    const char *loc = th_resp_header(r, "Location");
    const char *path = s_fmt(API "/projects/%s", id);
    cr_assert(loc && strcmp(loc, path) == 0, "Location %s, want %s",
              loc ? loc : "(none)", path);
    th_resp_free(&r);
    cr_assert_str_eq(s_str(p, "name"), "Alpha");
    cr_assert_str_eq(s_str(p, "description"), "the first");
    cr_assert_not_null(json_object_get(p, "created_at"), "%s", s_dump(p));
    cr_assert_not_null(json_object_get(p, "updated_at"), "%s", s_dump(p));

    json_t *g = s_api(200, "GET", path, tok, NULL);
    cr_assert(json_equal(g, p), "GET %s: %s, created %s", path, s_dump(g), s_dump(p));

    th_sleep_ms(1100); /* so a second-resolution updated_at can move */
    json_t *u = s_api(200, "PATCH", path, tok, "{\"name\":\"Beta\"}");
    cr_assert_str_eq(s_str(u, "name"), "Beta");
    cr_assert_str_eq(s_str(u, "description"), "the first", "PATCH of name alone: %s",
                     s_dump(u));
    cr_assert_str_eq(s_id(u), id);
    cr_assert(
        json_equal(json_object_get(u, "created_at"), json_object_get(p, "created_at")),
        "created_at changed: %s -> %s", s_dump(p), s_dump(u));
    cr_assert_geq(
        s_ts_cmp(json_object_get(u, "updated_at"), json_object_get(u, "created_at")), 0,
        "updated_at before created_at: %s", s_dump(u));
    cr_assert_gt(
        s_ts_cmp(json_object_get(u, "updated_at"), json_object_get(p, "updated_at")), 0,
        "updated_at did not move 1.1 s later: %s -> %s", s_dump(p), s_dump(u));
    u = s_api(200, "PATCH", path, tok, "{\"description\":\"changed\"}");
    cr_assert_str_eq(s_str(u, "name"), "Beta");
    cr_assert_str_eq(s_str(u, "description"), "changed");
    g = s_api(200, "GET", path, tok, NULL);
    cr_assert(json_equal(g, u), "GET after PATCH: %s, PATCH said %s", s_dump(g),
              s_dump(u));

    json_t *list = s_api(200, "GET", API "/projects", tok, NULL);
    cr_assert(s_has(json_object_get(list, "items"), "id", id), "list: %s",
              s_dump(list));

    th_resp_t *d = s_send("DELETE", path, tok, NULL);
    s_assert_status(d, 204, "DELETE", path);
    cr_assert_eq(d->body_len, 0, "a 204 with a body: %s", d->body);
    th_resp_free(&d);
    s_api_err(404, "not_found", "GET", path, tok, NULL);
    s_api_err(404, "not_found", "DELETE", path, tok, NULL);
    s_api_err(404, "not_found", "PATCH", path, tok, "{\"name\":\"Gamma\"}");
    list = s_api(200, "GET", API "/projects", tok, NULL);
    cr_assert(!s_has(json_object_get(list, "items"), "id", id), "still listed: %s",
              s_dump(list));
}

Test(backend_projects, delete_with_tasks_needs_cascade, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "with-tasks");
    json_t *other = s_project(tok, "bystander");
    const char *path = s_fmt(API "/projects/%s", s_id(p));
    json_t *t1 = s_task(tok, p, "one", NULL);
    json_t *t2 = s_task(tok, p, "two", NULL);
    s_walk(tok, t2, "in-progress", "review", "done", NULL);
    json_t *keep = s_task(tok, other, "stays", NULL);

    s_api_err(409, "project_has_tasks", "DELETE", path, tok, NULL);
    s_api_err(409, "project_has_tasks", "DELETE", s_fmt("%s?cascade=false", path), tok,
              NULL);
    s_api(200, "GET", path, tok, NULL);
    s_api(200, "GET", s_task_path(t1), tok, NULL);

    s_api(204, "DELETE", s_fmt("%s?cascade=true", path), tok, NULL);
    s_api_err(404, "not_found", "GET", path, tok, NULL);
    s_api_err(404, "not_found", "GET", s_task_path(t1), tok, NULL);
    s_api_err(404, "not_found", "GET", s_task_path(t2), tok, NULL);
    json_t *l =
        s_api(200, "GET", s_fmt(API "/tasks?project_id=%s", s_id(p)), tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(l, "items")), 0, "tasks left: %s",
                 s_dump(l));
    /* The other project and its task are untouched. */
    s_api(200, "GET", s_task_path(keep), tok, NULL);
    s_api(200, "GET", s_fmt(API "/projects/%s", s_id(other)), tok, NULL);
    /* An empty project needs no cascade. */
    json_t *e = s_project(tok, "empty");
    s_api(204, "DELETE", s_fmt(API "/projects/%s", s_id(e)), tok, NULL);
}

/* =================================================================== */
/* 5. Pagination                                                        */
/* =================================================================== */

#define S_BATCH 25 /* requests sent before their responses are read */

/* Creates n tasks titled "<prefix>-<i>" in project p (or, when project is
 * set, n projects named so; p is then unused) over one keep-alive
 * connection, S_BATCH requests at a time (pipelined), in order; stores
 * their ids (kept) in ids[]. */
static void s_create_many(const char *tok, const json_t *p, const char *prefix, int n,
                          const char **ids, bool project)
{
    th_conn_t *c = th_connect(s_port, TH_IO_MS);
    cr_assert_not_null(c);
    const char *path =
        project ? API "/projects" : s_fmt(API "/projects/%s/tasks", s_id(p));
    const char *hdr = s_headers(tok, NULL, true);
    for (int i = 0; i < n; i += S_BATCH) {
        int m = n - i < S_BATCH ? n - i : S_BATCH;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (int k = 0; k < m; k++) {
            char body[128];
            snprintf(body, sizeof body,
                     project ? "{\"name\":\"%s-%d\"}" : "{\"title\":\"%s-%d\"}", prefix,
                     i + k);
            fprintf(f,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: "
                    "%zu\r\n\r\n%s",
                    path, hdr, strlen(body), body);
        }
        fclose(f);
        int rc = th_send_raw(c, buf, len, TH_IO_MS);
        free(buf);
        cr_assert_eq(rc, 0, "sending a batch: %s", strerror(-rc));
        for (int k = 0; k < m; k++) {
            th_resp_t *r = NULL;
            rc = th_read_response(c, &r, 2 * TH_IO_MS);
            cr_assert_eq(rc, 0, "no response to request %d of the batch at %d: %s",
                         k + 1, i, strerror(-rc));
            s_assert_status(r, 201, "POST", path);
            json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
            cr_assert_not_null(j, "not JSON: %.300s", r->body);
            s_keep(j);
            ids[i + k] = s_id(j);
            th_resp_free(&r);
        }
    }
    th_conn_close(&c);
}

/* A client thread that creates tasks (or projects) until stopped or max. */
struct s_inserter {
    int port;
    char *path, *headers;
    bool project;
    int max;
    atomic_bool stop;
    atomic_long ok, failed;
    char first_error[300];
    pthread_t th;
    bool joined;
};

static void *s_inserter_main(void *arg)
{
    s_inserter_t *in = arg;
    for (int i = 0; i < in->max && !atomic_load(&in->stop); i++) {
        char body[96], *resp = NULL;
        snprintf(body, sizeof body,
                 in->project ? "{\"name\":\"late-%d\"}" : "{\"title\":\"late-%d\"}", i);
        int st =
            th_call(in->port, "POST", in->path, in->headers, body, &resp, TH_IO_MS);
        if (st == 201) {
            atomic_fetch_add(&in->ok, 1);
        } else if (atomic_fetch_add(&in->failed, 1) == 0) {
            snprintf(in->first_error, sizeof in->first_error, "POST %s: %d %.200s",
                     in->path, st, resp ? resp : "");
        }
        free(resp);
        th_sleep_ms(2);
    }
    return NULL;
}

/* Starts an inserter on path (every signal blocked in its thread). */
static s_inserter_t *s_inserter_start(const char *path, const char *tok, bool project,
                                      int max)
{
    s_inserter_t *in = calloc(1, sizeof *in);
    in->port = s_port;
    in->path = strdup(path);
    in->headers = strdup(s_headers(tok, NULL, true));
    in->project = project;
    in->max = max;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&in->th, NULL, s_inserter_main, in);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cr_assert_eq(rc, 0);
    s_ins[s_nins++] = in;
    return in;
}

/* Stops and joins the thread (once); the struct stays for its counts
 * until s_fini frees it. */
static void s_inserter_stop(s_inserter_t *in)
{
    if (in->joined)
        return;
    atomic_store(&in->stop, true);
    pthread_join(in->th, NULL);
    in->joined = true;
}

static void s_inserter_free(s_inserter_t *in)
{
    free(in->path);
    free(in->headers);
    free(in);
}

/* cursor percent-encoded for a query string (kept). */
static const char *s_urlenc(const char *v)
{
    char *out = s_keep_str(calloc(1, strlen(v) * 3 + 1)), *o = out;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    return out;
}

/* Pages through base with limit; every id seen is
 * appended to *seen (kept). Returns the number of pages. */
static int s_page_all(const char *tok, const char *base, int limit, const char ***seen,
                      size_t *nseen)
{
    const char *cursor = NULL;
    int pages = 0;
    for (;;) {
        char sep = strchr(base, '?') ? '&' : '?';
        const char *path =
            cursor ? s_fmt("%s%climit=%d&cursor=%s", base, sep, limit, cursor)
                   : s_fmt("%s%climit=%d", base, sep, limit);
        json_t *j = s_api(200, "GET", path, tok, NULL);
        json_t *items = json_object_get(j, "items");
        json_t *next = json_object_get(j, "next_cursor");
        cr_assert(json_is_array(items) && (json_is_null(next) || json_is_string(next)),
                  "GET %s: not {items, next_cursor}: %.300s", path, s_dump(j));
        cr_assert_leq(json_array_size(items), (size_t)limit,
                      "page of %zu items, limit %d", json_array_size(items), limit);
        size_t i;
        json_t *o;
        json_array_foreach(items, i, o)
        {
            *seen = realloc(*seen, (*nseen + 1) * sizeof **seen);
            (*seen)[(*nseen)++] = s_id(o);
        }
        pages++;
        cr_assert_lt(pages, 10000, "paging does not end");
        if (json_is_null(next))
            return pages;
        cr_assert_gt(json_array_size(items), 0, "an empty page with a next_cursor");
        cursor = s_urlenc(json_string_value(next));
    }
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Asserts that seen[] has no duplicate and every one of want[0..n) exactly
 * once. */
static void s_assert_each_once(const char **seen, size_t nseen, const char **want,
                               int n)
{
    const char **s = malloc(nseen * sizeof *s);
    memcpy(s, seen, nseen * sizeof *s);
    qsort(s, nseen, sizeof *s, s_strcmp_p);
    for (size_t i = 1; i < nseen; i++) {
        if (strcmp(s[i - 1], s[i]) == 0) {
            const char *dup = s[i];
            free(s);
            cr_assert_fail("id %s was listed twice", dup);
        }
    }
    int missing = 0;
    const char *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!bsearch(&want[i], s, nseen, sizeof *s, s_strcmp_p)) {
            if (!missing++)
                first = want[i];
        }
    }
    free(s);
    cr_assert_eq(missing, 0, "%d of the %d ids were never listed (the first: %s)",
                 missing, n, first);
}

Test(backend_pagination, a_thousand_tasks_while_others_are_inserted, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "big");
    json_t *other = s_project(tok, "other");
    for (int i = 0; i < 3; i++)
        s_task(tok, other, "elsewhere", NULL);

    enum { N = 1000 };
    static const char *ids[N];
    long long t0 = th_now_ms();
    s_create_many(tok, p, "t", N, ids, false);
    cr_log_info("created %d tasks in %lld ms", N, th_now_ms() - t0);

    /* Default and bounds of limit. */
    const char *base = s_fmt(API "/tasks?project_id=%s", s_id(p));
    json_t *d = s_api(200, "GET", base, tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 50, "default page: %zu",
                 json_array_size(json_object_get(d, "items")));
    cr_assert(json_is_string(json_object_get(d, "next_cursor")), "%s",
              s_dump(json_object_get(d, "next_cursor")));
    d = s_api(200, "GET", s_fmt("%s&limit=500", base), tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 500);
    d = s_api(200, "GET", s_fmt("%s&limit=1", base), tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 1);
    const char *bad[] = {"0", "501", "abc", "-1", "10x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        s_api_err(400, "invalid_limit", "GET", s_fmt("%s&limit=%s", base, bad[i]), tok,
                  NULL);
    s_api_err(400, "invalid_cursor", "GET", s_fmt("%s&cursor=garbage", base), tok,
              NULL);

    /* Page with 97 while another client adds tasks to the same project. */
    s_inserter_t *in =
        s_inserter_start(s_fmt(API "/projects/%s/tasks", s_id(p)), tok, false, 400);
    th_sleep_ms(50);
    const char **seen = NULL;
    size_t nseen = 0;
    int pages = s_page_all(tok, base, 97, &seen, &nseen);
    s_keep_str((char *)seen);
    s_inserter_stop(in);
    cr_log_info("%d pages, %zu ids; %ld inserted meanwhile", pages, nseen,
                atomic_load(&in->ok));
    cr_assert_eq(atomic_load(&in->failed), 0, "the inserter failed: %s",
                 in->first_error);
    cr_assert_gt(atomic_load(&in->ok), 0, "nothing was inserted while paging");
    cr_assert_geq(pages, (N + 96) / 97);
    s_assert_each_once(seen, nseen, ids, N);

    /* Once everything is in, paging sees exactly what is there. */
    const char **all = NULL;
    size_t nall = 0;
    s_page_all(tok, base, 97, &all, &nall);
    s_keep_str((char *)all);
    cr_assert_eq((long)nall, N + atomic_load(&in->ok), "listed %zu, created %ld", nall,
                 N + atomic_load(&in->ok));
    s_assert_each_once(all, nall, ids, N);
}

Test(backend_pagination, projects_oldest_first_while_others_are_inserted, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    enum { N = 150 };
    static const char *ids[N];
    s_create_many(tok, NULL, "p", N, ids, true);

    json_t *d = s_api(200, "GET", API "/projects", tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(d, "items")), 50, "default page");
    s_api_err(400, "invalid_limit", "GET", API "/projects?limit=0", tok, NULL);
    s_api_err(400, "invalid_limit", "GET", API "/projects?limit=501", tok, NULL);
    s_api_err(400, "invalid_limit", "GET", API "/projects?limit=abc", tok, NULL);
    s_api_err(400, "invalid_cursor", "GET", API "/projects?cursor=garbage", tok, NULL);

    s_inserter_t *in = s_inserter_start(API "/projects", tok, true, 200);
    th_sleep_ms(30);
    const char **seen = NULL;
    size_t nseen = 0;
    s_page_all(tok, API "/projects", 7, &seen, &nseen);
    s_keep_str((char *)seen);
    s_inserter_stop(in);
    cr_assert_eq(atomic_load(&in->failed), 0, "the inserter failed: %s",
                 in->first_error);
    cr_assert_gt(atomic_load(&in->ok), 0, "nothing was inserted while paging");
    s_assert_each_once(seen, nseen, ids, N);
    /* Oldest first: the first N listed are the first N made, in order. */
    cr_assert_geq(nseen, (size_t)N);
    for (int i = 0; i < N; i++)
        cr_assert_str_eq(seen[i], ids[i], "project %d listed as %d-th", i, i);
}

/* =================================================================== */
/* 6. Filters                                                           */
/* =================================================================== */

/* Asserts GET /tasks?query lists exactly the tasks of want (NULL-ended). */
static void s_assert_query(const char *tok, const char *query, ...)
{
    json_t *j =
        s_api(200, "GET", s_fmt(API "/tasks?limit=500%s%s", *query ? "&" : "", query),
              tok, NULL);
    json_t *items = json_object_get(j, "items");
    cr_assert(json_is_array(items), "%s: %s", query, s_dump(j));
    va_list ap;
    va_start(ap, query);
    size_t n = 0;
    for (json_t *t; (t = va_arg(ap, json_t *)); n++)
        cr_assert(s_has(items, "id", s_id(t)), "%s: task \"%s\" missing from %s", query,
                  s_str(t, "title"), s_dump(items));
    va_end(ap);
    cr_assert_eq(json_array_size(items), n, "%s: %zu tasks listed, want %zu: %s", query,
                 json_array_size(items), n, s_dump(items));
}

Test(backend_tasks, filters_combine, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *A = s_project(tok, "A"), *B = s_project(tok, "B");
    const char *dev = "{\"assigned_role\":\"developer\"}";
    json_t *a1 = s_task(tok, A, "a1", "\"priority\":\"high\"");
    a1 = s_patch(tok, a1, dev);
    json_t *a2 = s_task(tok, A, "a2", "\"priority\":\"high\"");
    a2 = s_walk(tok, s_patch(tok, a2, dev), "in-progress", NULL);
    json_t *a3 = s_task(tok, A, "a3", "\"priority\":\"medium\"");
    a3 = s_walk(tok, s_patch(tok, a3, "{\"assigned_role\":\"tester\"}"), "in-progress",
                NULL);
    json_t *a4 = s_task(tok, A, "a4", "\"priority\":\"low\"");
    json_t *a5 = s_task(tok, A, "a5", "\"priority\":\"high\"");
    a5 = s_walk(tok, s_patch(tok, a5, dev), "in-progress", "review", "done", NULL);
    json_t *a6 = s_task(tok, A, "a6", NULL); /* medium by default */
    cr_assert_str_eq(s_str(a6, "priority"), "medium");
    a6 = s_patch(tok, a6, dev);
    json_t *b1 = s_task(tok, B, "b1", "\"priority\":\"high\"");
    b1 = s_patch(tok, b1, dev);
    json_t *b2 = s_task(tok, B, "b2", "\"priority\":\"high\"");
    b2 = s_walk(tok, s_patch(tok, b2, dev), "in-progress", NULL);

    const char *pa = s_fmt("project_id=%s", s_id(A)),
               *pb = s_fmt("project_id=%s", s_id(B));
    s_assert_query(tok, pa, a1, a2, a3, a4, a5, a6, NULL);
    s_assert_query(tok, pb, b1, b2, NULL);
    s_assert_query(tok, s_fmt("%s&status=todo", pa), a1, a4, a6, NULL);
    s_assert_query(tok, s_fmt("%s&status=in-progress", pa), a2, a3, NULL);
    s_assert_query(tok, s_fmt("%s&priority=high", pa), a1, a2, a5, NULL);
    s_assert_query(tok, s_fmt("%s&assigned_role=developer", pa), a1, a2, a5, a6, NULL);
    s_assert_query(tok, s_fmt("%s&assigned_role=tester", pa), a3, NULL);
    s_assert_query(tok, s_fmt("%s&status=in-progress&priority=high", pa), a2, NULL);
    s_assert_query(tok,
                   s_fmt("%s&status=todo&priority=high&assigned_role=developer", pa),
                   a1, NULL);
    s_assert_query(tok, s_fmt("%s&status=done", pb), NULL);
    s_assert_query(tok, "status=in-progress&priority=high&assigned_role=developer", a2,
                   b2, NULL);
    s_assert_query(tok, "priority=high", a1, a2, a5, b1, b2, NULL);
    s_assert_query(tok, "status=done", a5, NULL);
    s_assert_query(tok, "priority=low&status=todo", a4, NULL);
    s_assert_query(tok, "assigned_role=developer&status=todo", a1, a6, b1, NULL);
    s_assert_query(tok, "", a1, a2, a3, a4, a5, a6, b1, b2, NULL);
    /* A filter value that is not one of the allowed ones is a 400 naming it. */
    s_api_err(400, "invalid_status", "GET", API "/tasks?status=bogus", tok, NULL);
    s_api_err(400, "invalid_priority", "GET", API "/tasks?priority=urgent", tok, NULL);
    s_api_err(400, "invalid_assigned_role", "GET", API "/tasks?assigned_role=chef", tok,
              NULL);
}

/* =================================================================== */
/* 7. Status rules and versions                                         */
/* =================================================================== */

/* Asserts PATCH body on t is refused with 409 code and changes nothing. */
static void s_assert_refused(const char *tok, const json_t *t, const char *body,
                             const char *code)
{
    s_api_err(409, code, "PATCH", s_task_path(t), tok, body);
    json_t *now = s_api(200, "GET", s_task_path(t), tok, NULL);
    cr_assert(json_equal(now, t), "a refused PATCH %s changed the task: %s -> %s", body,
              s_dump(t), s_dump(now));
}

Test(backend_tasks, every_transition_rule, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "rules");

    /* The happy path, one version per change. */
    json_t *t = s_task(tok, p, "happy", NULL);
    cr_assert_eq(s_int(t, "version"), 1);
    t = s_walk(tok, t, "in-progress", "review", NULL);
    t = s_walk(tok, t, "in-progress", "review", "done", NULL);
    cr_assert_eq(s_int(t, "version"), 6);
    /* done is read-only but for archived. */
    s_assert_refused(tok, t, "{\"title\":\"renamed\"}", "task_done");
    s_assert_refused(tok, t, "{\"priority\":\"low\"}", "task_done");
    t = s_walk(tok, t, "archived", NULL);
    cr_assert_eq(s_int(t, "version"), 7);
    s_assert_refused(tok, t, "{\"status\":\"todo\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "invalid_transition");

    /* From todo only to in-progress or archived. */
    json_t *u = s_task(tok, p, "todo-rules", NULL);
    s_assert_refused(tok, u, "{\"status\":\"review\"}", "invalid_transition");
    s_assert_refused(tok, u, "{\"status\":\"done\"}", "invalid_transition");
    u = s_walk(tok, u, "archived", NULL);
    cr_assert_eq(s_int(u, "version"), 2);

    /* in-progress goes on to review or archived, never back to todo or
     * straight to done. */
    json_t *w = s_walk(tok, s_task(tok, p, "ip-rules", NULL), "in-progress", NULL);
    s_assert_refused(tok, w, "{\"status\":\"todo\"}", "invalid_transition");
    s_assert_refused(tok, w, "{\"status\":\"done\"}", "invalid_transition");
    w = s_walk(tok, w, "review", NULL);
    s_assert_refused(tok, w, "{\"status\":\"todo\"}", "invalid_transition");
    w = s_walk(tok, w, "archived", NULL);

    /* An unknown status is a validation error. */
    json_t *x = s_task(tok, p, "bad-status", NULL);
    s_api_err(422, "invalid_status", "PATCH", s_task_path(x), tok,
              "{\"status\":\"finished\"}");

    /* Several fields in one PATCH are one change. */
    x = s_patch(tok, x,
                "{\"title\":\"renamed\",\"priority\":\"high\",\"progress\":40}");
    cr_assert_str_eq(s_str(x, "title"), "renamed");
    cr_assert_str_eq(s_str(x, "priority"), "high");
    cr_assert_eq(s_int(x, "progress"), 40);
    cr_assert_eq(s_int(x, "version"), 2);
    json_t *g = s_api(200, "GET", s_task_path(x), tok, NULL);
    cr_assert(json_equal(g, x), "GET %s after PATCH %s", s_dump(g), s_dump(x));
}

Test(backend_tasks, done_task_moves_only_to_archived, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "done-rules");
    json_t *t = s_walk(tok, s_task(tok, p, "finished", NULL), "in-progress", "review",
                       "done", NULL);
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"status\":\"todo\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"status\":\"review\"}", "invalid_transition");
    s_assert_refused(tok, t, "{\"result\":\"late\"}", "task_done");
    s_assert_refused(tok, t, "{\"assigned_role\":\"tester\"}", "task_done");
    t = s_walk(tok, t, "archived", NULL);
    cr_assert_eq(s_int(t, "version"), 5);
}

Test(backend_tasks, blocked_task_waits_for_its_blocker_to_be_done, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "blocking");
    json_t *b1 = s_task(tok, p, "blocker-1", NULL);
    json_t *b2 = s_task(tok, p, "blocker-2", NULL);
    json_t *t = s_task(tok, p, "blocked",
                       s_fmt("\"blocked_by\":[%s,%s]", s_idj(b1), s_idj(b2)));
    json_t *bb = json_object_get(t, "blocked_by");
    cr_assert(json_is_array(bb) && json_array_size(bb) == 2, "blocked_by %s",
              s_dump(bb));
    cr_assert(json_equal(json_array_get(bb, 0), json_object_get(b1, "id")) ||
                  json_equal(json_array_get(bb, 1), json_object_get(b1, "id")),
              "blocked_by %s", s_dump(bb));

    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "blocked");
    b1 = s_walk(tok, b1, "in-progress", "review", NULL);
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}", "blocked");
    b1 = s_walk(tok, b1, "done", NULL);
    s_assert_refused(tok, t, "{\"status\":\"in-progress\"}",
                     "blocked"); /* b2 not done */
    b2 = s_walk(tok, b2, "in-progress", "review", "done", NULL);
    t = s_walk(tok, t, "in-progress", NULL);
    cr_assert_eq(s_int(t, "version"), 2);

    /* Blocked_by set by PATCH, and cleared. */
    json_t *u = s_task(tok, p, "later-blocked", NULL);
    json_t *c = s_task(tok, p, "new-blocker", NULL);
    u = s_patch(tok, u, s_fmt("{\"blocked_by\":[%s]}", s_idj(c)));
    s_assert_refused(tok, u, "{\"status\":\"in-progress\"}", "blocked");
    u = s_patch(tok, u, "{\"blocked_by\":[]}");
    cr_assert_eq(json_array_size(json_object_get(u, "blocked_by")), 0);
    u = s_walk(tok, u, "in-progress", NULL);
}

/* =================================================================== */
/* 8. If-Match                                                          */
/* =================================================================== */

/* PATCH with an If-Match header. */
static th_resp_t *s_patch_if(const char *tok, const json_t *t, const char *match,
                             const char *body)
{
    return s_send_raw("PATCH", s_task_path(t),
                      s_headers(tok, s_fmt("If-Match: %s\r\n", match), true), body);
}

Test(backend_tasks, if_match_current_version_or_412, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "if-match");
    json_t *t = s_task(tok, p, "original", NULL);

    th_resp_t *r = s_patch_if(tok, t, "1", "{\"title\":\"first\"}");
    s_assert_status(r, 200, "PATCH If-Match: 1", s_task_path(t));
    t = s_json(r);
    th_resp_free(&r);
    cr_assert_eq(s_int(t, "version"), 2);
    cr_assert_str_eq(s_str(t, "title"), "first");

    r = s_patch_if(tok, t, "\"2\"", "{\"title\":\"second\"}");
    s_assert_status(r, 200, "PATCH If-Match: \"2\"", s_task_path(t));
    t = s_json(r);
    th_resp_free(&r);
    cr_assert_eq(s_int(t, "version"), 3);

    const char *stale[] = {"1", "\"2\"", "4"};
    for (size_t i = 0; i < 3; i++) {
        r = s_patch_if(tok, t, stale[i], "{\"title\":\"lost update\"}");
        s_assert_error(r, 412, "version_mismatch", s_fmt("If-Match: %s", stale[i]));
        th_resp_free(&r);
    }
    r = s_patch_if(tok, t, "1", "{\"status\":\"in-progress\"}");
    s_assert_error(r, 412, "version_mismatch", "a stale status change");
    th_resp_free(&r);
    json_t *g = s_api(200, "GET", s_task_path(t), tok, NULL);
    cr_assert(json_equal(g, t), "a 412 changed the task: %s -> %s", s_dump(t),
              s_dump(g));
    /* Without If-Match a PATCH applies. */
    s_patch(tok, t, "{\"title\":\"third\"}");
}

/* =================================================================== */
/* 9. Validation                                                        */
/* =================================================================== */

Test(backend_validation, every_field_has_its_code, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "validation");
    json_t *q = s_project(tok, "elsewhere");
    const char *tp = s_fmt(API "/projects/%s/tasks", s_id(p));

    /* A task with only a title has every documented default. */
    th_resp_t *r = s_send("POST", tp, tok, "{\"title\":\"defaults\"}");
    s_assert_status(r, 201, "POST", tp);
    json_t *t = s_json(r);
    const char *loc = th_resp_header(r, "Location");
    cr_assert(loc && strcmp(loc, s_task_path(t)) == 0, "Location %s, want %s",
              loc ? loc : "(none)", s_task_path(t));
    th_resp_free(&r);
    json_t *want = json_pack(
        "{s:O,s:s,s:s,s:s,s:s,s:i,s:n,s:n,s:n,s:n,s:[],s:n,s:i}", "project_id",
        json_object_get(p, "id"), "title", "defaults", "type", "feature", "status",
        "todo", "priority", "medium", "progress", 0, "assigned_role", "assigned_agent",
        "estimated_hours", "actual_hours", "blocked_by", "result", "version", 1);
    s_keep(want);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        cr_assert(json_equal(json_object_get(t, key), v),
                  "new task: %s is %s, want %s in %s", key,
                  s_dump(json_object_get(t, key)), s_dump(v), s_dump(t));
    }
    const char *must[] = {"id", "description", "created_at", "updated_at"};
    for (size_t i = 0; i < 4; i++)
        cr_assert(json_object_get(t, must[i]), "new task without %s: %s", must[i],
                  s_dump(t));

    /* Fields of a create. */
    s_api_err(422, "invalid_title", "POST", tp, tok, "{\"description\":\"no title\"}");
    s_api_err(422, "invalid_title", "POST", tp, tok, "{\"title\":\"\"}");
    s_api_err(422, "invalid_title", "POST", tp, tok, "{\"title\":42}");
    char long_title[502];
    memset(long_title, 'x', 501);
    long_title[501] = '\0';
    s_api_err(422, "invalid_title", "POST", tp, tok,
              s_fmt("{\"title\":\"%s\"}", long_title));
    long_title[500] = '\0';
    s_api(201, "POST", tp, tok, s_fmt("{\"title\":\"%s\"}", long_title));
    s_api_err(422, "invalid_type", "POST", tp, tok,
              "{\"title\":\"x\",\"type\":\"nope\"}");
    s_api_err(422, "invalid_priority", "POST", tp, tok,
              "{\"title\":\"x\",\"priority\":\"urgent\"}");
    s_api_err(422, "invalid_estimated_hours", "POST", tp, tok,
              "{\"title\":\"x\",\"estimated_hours\":-1}");
    s_api_err(422, "invalid_estimated_hours", "POST", tp, tok,
              "{\"title\":\"x\",\"estimated_hours\":100001}");
    s_api_err(422, "invalid_description", "POST", tp, tok,
              "{\"title\":\"x\",\"description\":7}");
    const char *m = s_api_err(422, "unknown_field", "POST", tp, tok,
                              "{\"title\":\"x\",\"colour\":\"red\"}");
    cr_assert(strstr(m, "colour"), "the message does not name the field: %s", m);
    s_api_err(
        422, "invalid_blocked_by", "POST", tp, tok,
        s_fmt("{\"title\":\"x\",\"blocked_by\":[\"%s\"]}", s_unknown_id(s_id(t))));
    s_api_err(422, "invalid_blocked_by", "POST", tp, tok,
              "{\"title\":\"x\",\"blocked_by\":\"not-an-array\"}");
    json_t *foreign = s_task(tok, q, "foreign", NULL);
    s_api_err(422, "invalid_blocked_by", "POST", tp, tok,
              s_fmt("{\"title\":\"x\",\"blocked_by\":[%s]}", s_idj(foreign)));
    const char *types[] = {"bugfix", "enhancement", "tech-debt"};
    for (size_t i = 0; i < 3; i++) {
        json_t *k = s_task(tok, p, "typed", s_fmt("\"type\":\"%s\"", types[i]));
        cr_assert_str_eq(s_str(k, "type"), types[i]);
    }

    /* Fields of a PATCH. */
    const char *pt = s_task_path(t);
    s_api_err(422, "invalid_progress", "PATCH", pt, tok, "{\"progress\":101}");
    s_api_err(422, "invalid_progress", "PATCH", pt, tok, "{\"progress\":-1}");
    s_api_err(422, "invalid_title", "PATCH", pt, tok, "{\"title\":\"\"}");
    s_api_err(422, "invalid_actual_hours", "PATCH", pt, tok,
              "{\"actual_hours\":100001}");
    s_api_err(422, "invalid_blocked_by", "PATCH", pt, tok,
              s_fmt("{\"blocked_by\":[%s]}", s_idj(t))); /* itself */
    /* A result is any JSON, of at most 100,000 bytes encoded. */
    char *big = malloc(100010);
    memset(big, 'r', 100009);
    big[100009] = '\0';
    s_api_err(422, "invalid_result", "PATCH", pt, tok,
              s_fmt("{\"result\":{\"log\":\"%s\"}}", big)); /* 100,019 bytes */
    free(big);
    const char *m2 =
        s_api_err(422, "unknown_field", "PATCH", pt, tok, "{\"owner\":\"me\"}");
    cr_assert(strstr(m2, "owner"), "the message does not name the field: %s", m2);
    json_t *g = s_api(200, "GET", pt, tok, NULL);
    cr_assert(json_equal(g, t), "refused PATCHes changed the task: %s", s_dump(g));
    t = s_patch(tok, t,
                "{\"progress\":100,\"estimated_hours\":2.5,\"actual_hours\":0}");
    cr_assert_eq(s_int(t, "progress"), 100);

    /* Projects. */
    s_api_err(422, "invalid_name", "POST", API "/projects", tok,
              "{\"description\":\"x\"}");
    s_api_err(422, "invalid_name", "POST", API "/projects", tok, "{\"name\":\"\"}");
    s_api_err(422, "invalid_name", "PATCH", s_fmt(API "/projects/%s", s_id(p)), tok,
              "{\"name\":\"\"}");
    s_api_err(422, "unknown_field", "POST", API "/projects", tok,
              "{\"name\":\"x\",\"budget\":1}");

    /* Unknown ids. */
    const char *nope = s_unknown_id(s_id(t));
    const char *unknown[][2] = {
        {"GET", s_fmt(API "/tasks/%s", nope)},
        {"GET", API "/tasks/no-such-task"},
        {"DELETE", s_fmt(API "/tasks/%s", nope)},
        {"GET", s_fmt(API "/projects/%s", s_unknown_id(s_id(p)))},
        {"GET", s_fmt(API "/projects/%s/board", s_unknown_id(s_id(p)))},
        {"DELETE", s_fmt(API "/projects/%s", s_unknown_id(s_id(p)))},
    };
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        s_api_err(404, "not_found", unknown[i][0], unknown[i][1], tok, NULL);
    s_api_err(404, "not_found", "PATCH", s_fmt(API "/tasks/%s", nope), tok,
              "{\"title\":\"x\"}");
    s_api_err(404, "not_found", "POST", s_fmt(API "/tasks/%s/assign", nope), tok, "{}");
    s_api_err(404, "not_found", "POST",
              s_fmt(API "/projects/%s/tasks", s_unknown_id(s_id(p))), tok,
              "{\"title\":\"x\"}");

    /* Malformed JSON and bodies over 1 MiB. */
    s_api_err(400, "invalid_json", "POST", tp, tok, "{\"title\": ");
    s_api_err(400, "invalid_json", "POST", API "/projects", tok, "{name: 1}");
    s_api_err(400, "invalid_json", "PATCH", pt, tok, "[1,2");
    th_conn_t *c = th_connect(s_port, TH_IO_MS);
    cr_assert_not_null(c);
    const char *head = s_fmt("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                             "Content-Length: 1048577\r\n\r\n",
                             tp, s_headers(tok, NULL, true));
    cr_assert_eq(th_send_raw(c, head, strlen(head), TH_IO_MS), 0);
    r = NULL;
    int rc = th_read_response(c, &r, 3000);
    cr_assert_eq(rc, 0, "no 413 for a 1 MiB + 1 body: %s", strerror(-rc));
    cr_assert_eq(r->status, 413, "status %d for a 1 MiB + 1 body: %.300s", r->status,
                 r->body);
    const char *code = s_str(json_object_get(s_json(r), "error"), "code");
    cr_assert(code && s_str(json_object_get(s_json(r), "error"), "message"),
              "413 without the error shape: %.300s", r->body);
    th_resp_free(&r);
    th_conn_close(&c);
    /* Nothing of that was created. */
    json_t *l = s_api(200, "GET", s_fmt(API "/tasks?limit=500&project_id=%s", s_id(p)),
                      tok, NULL);
    cr_assert_eq(json_array_size(json_object_get(l, "items")), 5, "tasks: %s",
                 s_dump(l));
}

/* =================================================================== */
/* 10. Assign and 11. Board                                             */
/* =================================================================== */

Test(backend_tasks, assign_records_the_role_or_null, .timeout = 60, .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "assign");
    json_t *t = s_task(tok, p, "to-assign", NULL);
    const char *ap = s_fmt("%s/assign", s_task_path(t));
    json_t *a = s_api(202, "POST", ap, tok, "{\"role\":\"developer\"}");
    cr_assert_str_eq(s_id(a), s_id(t), "assign answered another task: %s", s_dump(a));
    cr_assert_str_eq(s_str(a, "assigned_role") ? s_str(a, "assigned_role") : "(null)",
                     "developer", "%s", s_dump(a));
    json_t *g = s_api(200, "GET", s_task_path(t), tok, NULL);
    cr_assert_str_eq(s_str(g, "assigned_role") ? s_str(g, "assigned_role") : "(null)",
                     "developer");
    a = s_api(202, "POST", ap, tok, "{}");
    cr_assert(json_is_null(json_object_get(a, "assigned_role")),
              "assign {}: assigned_role %s",
              s_dump(json_object_get(a, "assigned_role")));
    g = s_api(200, "GET", s_task_path(t), tok, NULL);
    cr_assert(json_is_null(json_object_get(g, "assigned_role")), "%s", s_dump(g));
    s_api_err(400, "invalid_json", "POST", ap, tok, "{");
}

/* Asserts the board column col has status st and the tasks of want in
 * order (NULL-ended). */
static void s_assert_column(const json_t *col, const char *st, ...)
{
    cr_assert_str_eq(s_str(col, "status") ? s_str(col, "status") : "(none)", st,
                     "column %s", s_dump(col));
    json_t *tasks = json_object_get(col, "tasks");
    cr_assert(json_is_array(tasks), "column %s: %s", st, s_dump(col));
    va_list ap;
    va_start(ap, st);
    size_t i = 0;
    for (json_t *t; (t = va_arg(ap, json_t *)); i++) {
        json_t *got = json_array_get(tasks, i);
        cr_assert(got && strcmp(s_id(got), s_id(t)) == 0,
                  "column %s, place %zu: %s, want \"%s\"; column: %s", st, i,
                  got ? s_str(got, "title") : "nothing", s_str(t, "title"),
                  s_dump(tasks));
    }
    va_end(ap);
    cr_assert_eq(json_array_size(tasks), i, "column %s has %zu tasks, want %zu: %s", st,
                 json_array_size(tasks), i, s_dump(tasks));
}

Test(backend_projects, board_has_five_columns_by_priority_then_age, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "board");
    json_t *o = s_project(tok, "not-on-the-board");
    s_task(tok, o, "elsewhere", "\"priority\":\"high\"");
#define PRIO(x) "\"priority\":\"" x "\""
    json_t *l1 = s_task(tok, p, "l1", PRIO("low"));
    json_t *h1 = s_task(tok, p, "h1", PRIO("high"));
    json_t *m1 = s_task(tok, p, "m1", NULL);
    json_t *h2 = s_task(tok, p, "h2", PRIO("high"));
    json_t *m2 = s_task(tok, p, "m2", PRIO("medium"));
    json_t *l2 = s_task(tok, p, "l2", PRIO("low"));
    json_t *i1 = s_task(tok, p, "i1", PRIO("low"));
    json_t *i2 = s_task(tok, p, "i2", PRIO("high"));
    json_t *i3 = s_task(tok, p, "i3", PRIO("low"));
    json_t *r1 = s_task(tok, p, "r1", PRIO("medium"));
    json_t *d1 = s_task(tok, p, "d1", PRIO("low"));
    json_t *d2 = s_task(tok, p, "d2", PRIO("high"));
    json_t *a1 = s_task(tok, p, "a1", PRIO("medium"));
    /* Moved in an order unlike their age: the board orders by age. */
    s_walk(tok, i3, "in-progress", NULL);
    s_walk(tok, i2, "in-progress", NULL);
    s_walk(tok, i1, "in-progress", NULL);
    s_walk(tok, r1, "in-progress", "review", NULL);
    s_walk(tok, d2, "in-progress", "review", "done", NULL);
    s_walk(tok, d1, "in-progress", "review", "done", NULL);
    s_walk(tok, a1, "archived", NULL);
    /* A later edit of an old task does not make it younger. */
    s_patch(tok, l1, "{\"title\":\"l1\",\"progress\":5}");

    json_t *b = s_api(200, "GET", s_fmt(API "/projects/%s/board", s_id(p)), tok, NULL);
    cr_assert(json_equal(json_object_get(b, "project_id"), json_object_get(p, "id")),
              "project_id %s", s_dump(json_object_get(b, "project_id")));
    json_t *cols = json_object_get(b, "columns");
    cr_assert(json_is_array(cols) && json_array_size(cols) == 5, "columns: %s",
              s_dump(b));
    s_assert_column(json_array_get(cols, 0), "todo", h1, h2, m1, m2, l1, l2, NULL);
    s_assert_column(json_array_get(cols, 1), "in-progress", i2, i1, i3, NULL);
    s_assert_column(json_array_get(cols, 2), "review", r1, NULL);
    s_assert_column(json_array_get(cols, 3), "done", d2, d1, NULL);
    s_assert_column(json_array_get(cols, 4), "archived", a1, NULL);
    /* An empty project has five empty columns. */
    json_t *e = s_project(tok, "empty-board");
    b = s_api(200, "GET", s_fmt(API "/projects/%s/board", s_id(e)), tok, NULL);
    cols = json_object_get(b, "columns");
    cr_assert_eq(json_array_size(cols), 5, "%s", s_dump(b));
    const char *names[] = {"todo", "in-progress", "review", "done", "archived"};
    for (size_t i = 0; i < 5; i++)
        s_assert_column(json_array_get(cols, i), names[i], NULL);
#undef PRIO
}

/* =================================================================== */
/* 12. Persistence across a restart and 13. concurrency                 */
/* =================================================================== */

Test(backend_supervised, data_and_tokens_survive_a_full_restart, .timeout = 60,
     .fini = s_fini)
{
    th_sv_t *sv = s_sv_backend(NULL, BE_SV("2"), 2);
    char *dir = s_keep_str(strdup(sv->data_dir));
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "durable");
    json_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = s_task(tok, p, s_fmt("durable-%d", i),
                      i == 2 ? "\"priority\":\"high\"" : NULL);
    t[1] = s_walk(tok, t[1], "in-progress", NULL);
    t[3] = s_patch(tok, t[3], "{\"assigned_role\":\"developer\",\"progress\":30}");
    s_user(tok, "mia", "member-pass-1", "member");
    json_t *before =
        s_api(200, "GET", s_fmt(API "/tasks?project_id=%s", s_id(p)), tok, NULL);
    char *secret = s_keep_str(th_read_file(s_fmt("%s/jwt-secret", dir), NULL));
    cr_assert_not_null(secret, "no %s/jwt-secret", dir);

    th_conn_close(&s_c);
    int rc = th_stop(sv->proc, SIGTERM, 20000);
    cr_assert_eq(rc, 0, "the supervisor exited with %d after SIGTERM", rc);
    th_sv_free(&sv);

    sv = s_sv_backend(dir, BE_SV("2"), 2);
    /* The old token validates on every worker (new connections spread). */
    for (int i = 0; i < 12; i++) {
        th_conn_close(&s_c);
        json_t *me = s_api(200, "GET", API "/auth/me", tok, NULL);
        json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
        cr_assert_str_eq(s_str(mu, "username") ? s_str(mu, "username") : "", "admin");
    }
    s_login("admin", PW);
    s_login("mia", "member-pass-1");
    json_t *pg = s_api(200, "GET", s_fmt(API "/projects/%s", s_id(p)), tok, NULL);
    cr_assert(json_equal(pg, p), "project after the restart: %s, before %s", s_dump(pg),
              s_dump(p));
    json_t *after =
        s_api(200, "GET", s_fmt(API "/tasks?project_id=%s", s_id(p)), tok, NULL);
    cr_assert(
        json_equal(json_object_get(after, "items"), json_object_get(before, "items")),
        "tasks after the restart: %s\nbefore: %s", s_dump(after), s_dump(before));
    for (int i = 0; i < 5; i++) {
        json_t *g = s_api(200, "GET", s_task_path(t[i]), tok, NULL);
        cr_assert(json_equal(g, t[i]), "task %d after the restart: %s, before %s", i,
                  s_dump(g), s_dump(t[i]));
    }
    char *secret2 = s_keep_str(th_read_file(s_fmt("%s/jwt-secret", dir), NULL));
    cr_assert_str_eq(secret2 ? secret2 : "", secret, "jwt-secret changed on a restart");
    /* And it still writes. */
    s_walk(tok, t[1], "review", NULL);
}

/* A client thread that creates n tasks, one connection each. */
typedef struct s_maker {
    int port, n;
    const char *path, *headers;
    int created;
    char **ids;
    char first_error[300];
    pthread_t th;
} s_maker_t;

static void *s_maker_main(void *arg)
{
    s_maker_t *m = arg;
    m->ids = calloc((size_t)m->n, sizeof *m->ids);
    for (int i = 0; i < m->n; i++) {
        char body[96], *resp = NULL;
        snprintf(body, sizeof body, "{\"title\":\"c-%d\",\"priority\":\"low\"}", i);
        int st =
            th_call(m->port, "POST", m->path, m->headers, body, &resp, 3 * TH_IO_MS);
        json_t *j = st == 201 && resp ? json_loads(resp, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id) {
            m->ids[m->created++] = strdup(id);
        } else if (!m->first_error[0]) {
            snprintf(m->first_error, sizeof m->first_error, "request %d: %d %.200s", i,
                     st, resp ? resp : "");
        }
        json_decref(j);
        free(resp);
    }
    return NULL;
}

Test(backend_supervised, four_clients_create_400_tasks_on_two_workers, .timeout = 60,
     .fini = s_fini)
{
    s_sv_backend(NULL, BE_SV("2"), 2);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "busy");
    enum { T = 4, N = 100 };
    static s_maker_t mk[T];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < T; i++) {
        mk[i] = (s_maker_t){.port = s_port,
                            .n = N,
                            .path = s_fmt(API "/projects/%s/tasks", s_id(p)),
                            .headers = s_headers(tok, NULL, true)};
        cr_assert_eq(pthread_create(&mk[i].th, NULL, s_maker_main, &mk[i]), 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    long long t0 = th_now_ms();
    for (int i = 0; i < T; i++)
        pthread_join(mk[i].th, NULL);
    cr_log_info("%d tasks by %d clients in %lld ms", T * N, T, th_now_ms() - t0);
    const char *made[T * N];
    int nmade = 0;
    for (int i = 0; i < T; i++) {
        for (int k = 0; k < mk[i].created; k++)
            made[nmade++] = s_keep_str(mk[i].ids[k]);
        free(mk[i].ids);
    }
    for (int i = 0; i < T; i++)
        cr_assert_eq(mk[i].created, N,
                     "client %d created %d of %d; the first failure: %s", i,
                     mk[i].created, N, mk[i].first_error);

    json_t *l = s_api(200, "GET", s_fmt(API "/tasks?limit=500&project_id=%s", s_id(p)),
                      tok, NULL);
    json_t *items = json_object_get(l, "items");
    cr_assert_eq(json_array_size(items), (size_t)(T * N), "listed %zu tasks",
                 json_array_size(items));
    cr_assert(json_is_null(json_object_get(l, "next_cursor")), "next_cursor %s",
              s_dump(json_object_get(l, "next_cursor")));
    const char **seen = calloc(T * N, sizeof *seen);
    s_keep_str((char *)seen);
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o) seen[i] = s_id(o);
    s_assert_each_once(seen, json_array_size(items), made, nmade);
}

/* If-Match: * is any version; an If-Match that is no version is 400; an
 * empty PATCH is 422 on tasks and projects alike; an id too long to exist
 * is 404. */
Test(backend_tasks, if_match_star_empty_patches_and_long_ids, .timeout = 60,
     .fini = s_fini)
{
    s_backend(NULL, NULL);
    const char *tok = s_login("admin", PW);
    json_t *p = s_project(tok, "edges");
    json_t *t = s_task(tok, p, "edge", NULL);
    th_resp_t *r = s_patch_if(tok, t, "*", "{\"title\":\"any version\"}");
    s_assert_status(r, 200, "PATCH If-Match: *", s_task_path(t));
    th_resp_free(&r);
    r = s_patch_if(tok, t, "abc", "{\"title\":\"x\"}");
    s_assert_error(r, 400, "invalid_if_match", "If-Match: abc");
    th_resp_free(&r);
    r = s_send("PATCH", s_task_path(t), tok, "{}");
    s_assert_error(r, 422, "empty_patch", "PATCH task {}");
    th_resp_free(&r);
    r = s_send("PATCH", s_fmt(API "/projects/%s", s_str(p, "id")), tok, "{}");
    s_assert_error(r, 422, "empty_patch", "PATCH project {}");
    th_resp_free(&r);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    r = s_send("GET", s_fmt(API "/tasks/%s", longid), tok, NULL);
    s_assert_error(r, 404, "not_found", "a 199-character id");
    th_resp_free(&r);
}

/* ---- the read cache of GET /tasks/{id} ---- */

/* GETs path on a new connection (so either worker answers); returns the
 * task (kept). */
static json_t *s_get_fresh(const char *tok, const char *path)
{
    char *body = NULL;
    int st = th_call(s_port, "GET", path, s_fmt("Authorization: Bearer %s\r\n", tok),
                     NULL, &body, TH_IO_MS);
    cr_assert_eq(st, 200, "GET %s: %d %s", path, st, body ? body : "");
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    cr_assert_not_null(j);
    s_keep(j);
    return j;
}

/* Both workers cache what they read; a write through either one is seen
 * by the very next read on both, and the hits show in /metrics. */
Test(backend_supervised, cached_reads_never_outlive_a_write_on_either_worker,
     .timeout = 60, .fini = s_fini)
{
    s_sv_backend(NULL, BE_SV("2"), 2);
    const char *tok = s_login("admin", PW);
    json_t *t = s_task(tok, s_project(tok, "cached"), "round 0", NULL);
    const char *path = s_task_path(t);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 20; i++) {
            json_t *g = s_get_fresh(tok, path);
            cr_assert_eq(s_int(g, "version"), round + 1, "round %d read %d: %s", round,
                         i, s_dump(g));
            cr_assert_str_eq(s_str(g, "title"), s_fmt("round %d", round));
        }
        t = s_patch(tok, t, s_fmt("{\"title\":\"round %d\"}", round + 1));
    }
    char *m = NULL;
    double hits = 0;
    for (int i = 0; i < 10 && hits == 0; i++) {
        cr_assert_eq(th_call(s_port, "GET", "/metrics", NULL, NULL, &m, TH_IO_MS), 200);
        const char *at = strstr(m, "vapora_backend_read_cache_total{result=\"hit\"} ");
        cr_assert_not_null(at, "no cache metrics: %.300s", m);
        hits = atof(at + strlen("vapora_backend_read_cache_total{result=\"hit\"} "));
        free(m);
    }
    cr_assert_gt(hits, 0, "no worker served a read from its cache");
}
