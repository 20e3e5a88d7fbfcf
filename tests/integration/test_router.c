/* test_router.c - the LLM router (vapora-llm-router) under the supervisor,
 * talking to the fake provider (tests/fakes/fake_llm.py), which plays all
 * four provider kinds at once, one scope (/s/NAME) per [provider:NAME].
 *
 * Covered: both caller formats against every provider kind, whole and
 * streamed; provider keys; fallback, retries and cooldown; streams cut
 * upstream or abandoned by the caller; budgets (near, exceeded, concurrent
 * admission, restart); malformed requests; the model list; usage totals;
 * model choice by task type.
 *
 * DESIGN. Every test starts a fake and a supervisor with two router workers
 * (one in the cooldown test: provider health is per worker) on a config
 * made by s_config(). Replies are read raw (s_call), so that a stream's trailers
 * (X-Vapora-Cost-USD) are kept, and a stream's SSE events are parsed into a
 * JSON array (s_sse) that the format checks walk. What the providers
 * received is read back from the fake's per-scope stats. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "harness.h"

#define REPLY "The quick brown fox jumps over the lazy dog."
#define OAI "/v1/chat/completions"
#define ANT "/v1/messages"
#define ROLE_TINY "X-Vapora-Role: tiny\r\n"
#define S_CLOSE(a, b) (fabs((a) - (b)) < 1e-6)

/* ---- the config ---- */

/* What varies between the tests' configs; zero values are the defaults. */
typedef struct s_opts {
    int workers;        /* 0: 2 */
    const char *chain;  /* NULL: "oai, claude, gem, local" */
    int retries;        /* [routing] retries */
    int cooldown_s;     /* 0: 5 */
    const char *router; /* more [router] lines */
    const char *extra;  /* more sections */
} s_opts_t;

/* The supervisor's config template for the fake on fake_port (heap). */
static char *s_config(int fake_port, const s_opts_t *o)
{
    char *t = NULL;
    int n = asprintf(
        &t,
        "shutdown_timeout = 3\n\n"
        "[service:llm-router]\nlisten = 127.0.0.1:@PORT1@\nworkers = %d\n"
        "command = @ROUTER@\n\n"
        "[router]\ndefault_max_tokens = 1000\n%s\n"
        "[provider:oai]\nkind = openai\nbase_url = http://127.0.0.1:%d/s/oai/v1\n"
        "api_key = sk-oai-secret\nmodels = gpt-a, gpt-b\ntimeout = 2\n\n"
        "[provider:claude]\nkind = anthropic\nbase_url = http://127.0.0.1:%d/s/claude\n"
        "api_key = sk-ant-secret\nmodels = claude-x\n\n"
        "[provider:gem]\nkind = gemini\nbase_url = http://127.0.0.1:%d/s/gem\n"
        "api_key = g-secret\nmodels = gem-x\n\n"
        "[provider:local]\nkind = ollama\nbase_url = http://127.0.0.1:%d/s/local\n"
        "models = llama\n\n"
        "[model:gpt-a]\ninput_usd_per_mtok = 1000\noutput_usd_per_mtok = 2000\n"
        "equivalents = claude-x\n\n"
        "[model:gpt-b]\ninput_usd_per_mtok = 100\noutput_usd_per_mtok = 200\n\n"
        "[model:claude-x]\ninput_usd_per_mtok = 500\noutput_usd_per_mtok = 1000\n\n"
        "[model:gem-x]\ninput_usd_per_mtok = 200\noutput_usd_per_mtok = 400\n\n"
        "[routing]\ndefault_model = gpt-a\nfallback_chain = %s\nretries = %d\n"
        "cooldown_failures = 3\ncooldown = %d\n\n"
        "[route:arch]\ntask_types = architecture, design\nmodel = claude-x\n\n%s",
        o->workers ? o->workers : 2, o->router ? o->router : "", fake_port, fake_port,
        fake_port, fake_port, o->chain ? o->chain : "oai, claude, gem, local",
        o->retries, o->cooldown_s ? o->cooldown_s : 5, o->extra ? o->extra : "");
    cr_assert_gt(n, 0);
    return t;
}

/* Starts the fake with REPLY as every provider's answer. */
static th_proc_t *s_fake(void)
{
    th_proc_t *fake = th_fake_llm_start();
    cr_assert_not_null(fake, "the fake provider did not start");
    const char *scopes[] = {"oai", "claude", "gem", "local"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(th_fake_llm_config(fake, scopes[i], "{\"reply\":\"" REPLY "\"}"),
                     0);
    return fake;
}

/* Starts a supervisor on tmpl (in data_dir; NULL: a fresh one) and waits
 * until its router workers run and answer GET /v1/models. */
static th_sv_t *s_start_in(const char *data_dir, const char *tmpl, int workers)
{
    th_sv_t *sv = th_sv_start_in(data_dir, tmpl);
    cr_assert_not_null(sv, "the supervisor did not start");
    cr_assert(th_sv_wait_settled(sv, "llm-router", (unsigned)workers, 10000),
              "the router workers did not start");
    /* Workers starting together on the ledger all come up the first time. */
    json_t *status = th_sv_status(sv);
    json_t *svc = th_sv_find(status, "services", "llm-router");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
        cr_assert_eq(json_integer_value(json_object_get(w, "restarts")), 0,
                     "a router worker restarted at start");
    json_decref(status);
    long long end = th_now_ms() + 10000;
    int st = 0;
    while (th_now_ms() < end && st != 200) {
        st = th_call(sv->ports[0], "GET", "/v1/models",
                     "Authorization: Bearer test-key-1\r\n", NULL, NULL, 2000);
        if (st != 200)
            th_sleep_ms(50);
    }
    cr_assert_eq(st, 200, "GET /v1/models never answered 200 (last %d)", st);
    return sv;
}

static th_sv_t *s_start(const th_proc_t *fake, const s_opts_t *o)
{
    char *tmpl = s_config(fake->port, o);
    th_sv_t *sv = s_start_in(NULL, tmpl, o->workers ? o->workers : 2);
    free(tmpl);
    return sv;
}

/* ---- requests, read raw ---- */

/* A whole response: the header lines ("Name: value\r\n" each), the body
 * (de-chunked), the trailer lines, and the body parsed when it is JSON. */
typedef struct s_resp {
    int status;
    char *head, *body, *trailers;
    json_t *json;
} s_resp_t;

static void s_resp_clear(s_resp_t *r)
{
    free(r->head);
    free(r->body);
    free(r->trailers);
    json_decref(r->json);
    *r = (s_resp_t){0};
}

/* Parses buf as one response into r. Returns 1 when it is whole, 0 when
 * more must come (r is then cleared). At eof a body without length ends. */
static int s_parse(const char *buf, size_t len, bool eof, s_resp_t *r)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4), *lim = buf + len;
    if (!end || sscanf(buf, "HTTP/1.%*1[01] %3d", &r->status) != 1)
        return 0;
    const char *eol = strstr(buf, "\r\n");
    r->head = strndup(eol + 2, (size_t)(end - eol));
    r->body = calloc(1, 1);
    const char *p = end + 4;
    size_t blen = 0;
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        for (;;) {
            const char *nl = memmem(p, (size_t)(lim - p), "\r\n", 2);
            size_t size = nl ? strtoul(p, NULL, 16) : 0;
            if (!nl || (size && (size_t)(lim - nl) < size + 4))
                goto more;
            p = nl + 2;
            if (size == 0)
                break;
            r->body = realloc(r->body, blen + size + 1);
            memcpy(r->body + blen, p, size);
            r->body[blen += size] = '\0';
            p += size + 2;
        }
        const char *tend = memmem(p - 2, (size_t)(lim - p + 2), "\r\n\r\n", 4);
        if (!tend)
            goto more;
        r->trailers = strndup(p, (size_t)(tend + 2 - p));
    } else {
        const char *cl = strcasestr(r->head, "content-length:");
        size_t want = cl ? strtoul(cl + 15, NULL, 10) : (size_t)(lim - p);
        if ((size_t)(lim - p) < want || (!cl && !eof && r->status >= 200))
            goto more;
        free(r->body);
        r->body = strndup(p, want);
    }
    r->json = json_loads(r->body, 0, NULL);
    return 1;
more:
    s_resp_clear(r);
    return 0;
}

/* Sends a request with the header lines hdrs on a new connection and reads
 * the whole response within timeout_ms (asserted). */
static s_resp_t s_send(int port, const char *method, const char *path, const char *hdrs,
                       const char *body, int timeout_ms)
{
    th_conn_t *c = th_connect(port, TH_IO_MS);
    cr_assert_not_null(c, "connect: %s", strerror(errno));
    /* A refused body (413) may fail to leave: the answer is read anyway. */
    th_send_request(c, method, path, hdrs, body, body ? strlen(body) : 0);
    s_resp_t r = {0};
    char *buf = NULL;
    size_t len = 0;
    long long end = th_now_ms() + timeout_ms;
    bool eof = false, whole = false;
    while (!whole && !eof && th_now_ms() < end) {
        struct pollfd pfd = {.fd = th_conn_fd(c), .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - th_now_ms())) <= 0)
            continue;
        buf = realloc(buf, len + 65537);
        ssize_t n = recv(pfd.fd, buf + len, 65536, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        eof = n <= 0;
        len += n > 0 ? (size_t)n : 0;
        buf[len] = '\0';
        whole = s_parse(buf, len, eof, &r);
    }
    th_conn_close(&c);
    cr_assert(whole, "%s %s: no whole response within %d ms (got %zu bytes: %.300s)",
              method, path, timeout_ms, len, buf ? buf : "");
    free(buf);
    return r;
}

/* POSTs a JSON body to the router (hdrs: more header lines) and returns the
 * response, asserting its status. */
static s_resp_t s_call(th_sv_t *sv, const char *path, const char *hdrs,
                       const char *body, int want)
{
    char h[1024];
    snprintf(h, sizeof h, "Content-Type: application/json\r\nTE: trailers\r\n%s%s",
             strcmp(path, ANT) == 0 ? "anthropic-version: 2023-06-01\r\n" : "",
             hdrs ? hdrs : "");
    s_resp_t r = s_send(sv->ports[0], "POST", path, h, body, 10000);
    cr_assert_eq(r.status, want, "POST %s: %d, want %d: %.400s", path, r.status, want,
                 r.body);
    return r;
}

/* A chat body: OpenAI's format, or Anthropic's when ant. model NULL: none;
 * max_tokens <= 0: none. An OpenAI stream asks for the usage chunk. */
static char *s_body(bool ant, const char *model, bool stream, int max_tokens)
{
    char m[96] = "", mt[48] = "", *b = NULL;
    if (model)
        snprintf(m, sizeof m, "\"model\":\"%s\",", model);
    if (max_tokens > 0)
        snprintf(mt, sizeof mt, "\"max_tokens\":%d,", max_tokens);
    const char *s =
        !stream ? ""
        : ant   ? "\"stream\":true,"
                : "\"stream\":true,\"stream_options\":{\"include_usage\":true},";
    cr_assert_gt(
        asprintf(&b, "{%s%s%s\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", m,
                 mt, s),
        0);
    return b;
}

/* The value of the field name in lines (head or trailers), or NULL. */
static const char *s_field(const char *lines, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = lines; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1 + strspn(p + nl + 1, " \t");
            snprintf(out, n, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

#define s_expect_field(lines, name, want)                                              \
    do {                                                                               \
        char v_[128];                                                                  \
        const char *got_ = s_field((lines), (name), v_, sizeof v_);                    \
        cr_assert(got_ &&strcmp(got_, (want)) == 0, "%s: got %s, want %s (in:\n%s)",   \
                  (name), got_ ? got_ : "(none)", (want), (lines) ? (lines) : "");     \
    } while (0)

/* ---- JSON helpers ---- */

static const char *s_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static double s_num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* The element of array a whose key is the string value, or NULL. */
static json_t *s_find(const json_t *a, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *v = s_str(e, key);
        if (v && strcmp(v, value) == 0)
            return e;
    }
    return NULL;
}

/* GET path on the router, parsed (caller decrefs), or NULL unless 200. */
static json_t *s_get(th_sv_t *sv, const char *path)
{
    char *body = NULL;
    int st = th_call(sv->ports[0], "GET", path, NULL, NULL, &body, TH_IO_MS);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

/* A number in the fake's stats of scope (key may be "by_kind.openai"). */
static long s_fake_num(const th_proc_t *fake, const char *scope, const char *key)
{
    json_t *st = th_fake_llm_stats(fake, scope);
    cr_assert_not_null(st, "no stats from the fake");
    const char *dot = strchr(key, '.');
    json_t *o = st;
    if (dot) {
        char k[32];
        snprintf(k, sizeof k, "%.*s", (int)(dot - key), key);
        o = json_object_get(st, k);
        key = dot + 1;
    }
    long v = (long)json_integer_value(json_object_get(o, key));
    json_decref(st);
    return v;
}

/* The fake's "last" request of scope (caller decrefs). */
static json_t *s_fake_last(const th_proc_t *fake, const char *scope)
{
    json_t *st = th_fake_llm_stats(fake, scope);
    cr_assert_not_null(st);
    json_t *last = json_incref(json_object_get(st, "last"));
    json_decref(st);
    cr_assert(json_is_object(last), "scope %s got no request", scope);
    return last;
}

/* ---- streams ---- */

/* The events of an SSE body: [{"event": NAME (absent when none), "data": TEXT}]. */
static json_t *s_sse(const char *body)
{
    json_t *evs = json_array(), *ev = NULL;
    for (const char *p = body; *p;) {
        size_t n = strcspn(p, "\n");
        char line[8192];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        line[strcspn(line, "\r")] = '\0';
        p += n + (p[n] == '\n');
        if (!*line) {
            if (ev)
                json_array_append_new(evs, ev);
            ev = NULL;
            continue;
        }
        if (!ev)
            ev = json_object();
        char *v = strchr(line, ':');
        if (!v || v == line)
            continue; /* a comment */
        *v++ = '\0';
        v += *v == ' ';
        if (strcmp(line, "event") == 0 || strcmp(line, "data") == 0)
            json_object_set_new(ev, line, json_string(v));
    }
    if (ev)
        json_array_append_new(evs, ev); /* not terminated: still counted */
    return evs;
}

/* An OpenAI-format stream read: its text, the usage of the usage chunk, an
 * error chunk's error, and whether [DONE] came last. */
typedef struct s_oai_stream {
    char text[4096];
    json_t *usage, *error;
    bool done_last;
    char finish[32];
} s_oai_stream_t;

static s_oai_stream_t s_oai_stream(const char *body)
{
    s_oai_stream_t s = {0};
    json_t *evs = s_sse(body), *ev;
    size_t i, n = json_array_size(evs);
    json_array_foreach(evs, i, ev)
    {
        const char *d = s_str(ev, "data");
        cr_assert_not_null(d, "an event without data in:\n%s", body);
        if (strcmp(d, "[DONE]") == 0) {
            s.done_last = i == n - 1;
            continue;
        }
        json_t *ch = json_loads(d, 0, NULL);
        cr_assert_not_null(ch, "a chunk is not JSON: %s", d);
        if (json_object_get(ch, "error")) {
            s.error = json_incref(json_object_get(ch, "error"));
        } else {
            cr_assert_str_eq(s_str(ch, "object"), "chat.completion.chunk", "%s", d);
            json_t *choices = json_object_get(ch, "choices");
            json_t *c0 = json_array_get(choices, 0);
            const char *t = s_str(json_object_get(c0, "delta"), "content");
            strncat(s.text, t ? t : "", sizeof s.text - strlen(s.text) - 1);
            if (s_str(c0, "finish_reason"))
                snprintf(s.finish, sizeof s.finish, "%s", s_str(c0, "finish_reason"));
            if (json_array_size(choices) == 0 &&
                json_is_object(json_object_get(ch, "usage")))
                s.usage = json_incref(json_object_get(ch, "usage"));
        }
        json_decref(ch);
    }
    json_decref(evs);
    return s;
}

/* An Anthropic-format stream read: its text, its event names in order (a
 * run of content_block_delta as one, pings left out), message_delta's
 * output_tokens, and whether every data's "type" names its event. */
typedef struct s_ant_stream {
    char text[4096];
    char names[512];
    long output_tokens;
} s_ant_stream_t;

static s_ant_stream_t s_ant_stream(const char *body)
{
    s_ant_stream_t s = {.output_tokens = -1};
    json_t *evs = s_sse(body), *ev;
    size_t i;
    const char *prev = "";
    json_array_foreach(evs, i, ev)
    {
        const char *name = s_str(ev, "event"), *d = s_str(ev, "data");
        cr_assert(name && d, "an event without a name or data in:\n%s", body);
        json_t *j = json_loads(d, 0, NULL);
        cr_assert_not_null(j, "event %s: data is not JSON: %s", name, d);
        cr_assert_str_eq(s_str(j, "type"), name, "event %s has data %s", name, d);
        if (strcmp(name, "content_block_delta") == 0) {
            json_t *delta = json_object_get(j, "delta");
            cr_assert_str_eq(s_str(delta, "type"), "text_delta", "%s", d);
            strncat(s.text, s_str(delta, "text"), sizeof s.text - strlen(s.text) - 1);
        }
        if (strcmp(name, "message_delta") == 0)
            s.output_tokens = (long)json_integer_value(
                json_object_get(json_object_get(j, "usage"), "output_tokens"));
        if (strcmp(name, "ping") != 0 && strcmp(name, prev) != 0) {
            snprintf(s.names + strlen(s.names), sizeof s.names - strlen(s.names),
                     "%s%s", *s.names ? "," : "", name);
            prev = name;
        }
        json_decref(j);
    }
    json_decref(evs);
    return s;
}

#define ANT_SEQUENCE                                                                   \
    "message_start,content_block_start,content_block_delta,content_block_stop,"        \
    "message_delta,message_stop"

/* ---- every caller format against every provider kind ----
 * The reply is the fake's text, the usage its 10 + 20 tokens, the cost
 * those at the model's prices; the provider got its own wire format. */

typedef struct s_kind {
    const char *provider, *model, *kind, *path, *cost;
} s_kind_t;

static const s_kind_t s_kinds[] = {
    {"oai", "gpt-a", "openai", "/v1/chat/completions", "0.050000"},
    {"claude", "claude-x", "anthropic", "/v1/messages", "0.025000"},
    {"gem", "gem-x", "gemini", "/v1beta/models/gem-x:", "0.010000"},
    {"local", "llama", "ollama", "/api/chat", "0.000000"},
};

/* Checks the X-Vapora-* fields of a reply k served at the first attempt. */
static void s_check_served(const s_resp_t *r, const s_kind_t *k, bool stream)
{
    s_expect_field(r->head, "X-Vapora-Provider", k->provider);
    s_expect_field(r->head, "X-Vapora-Model", k->model);
    s_expect_field(r->head, "X-Vapora-Attempts", "1");
    s_expect_field(r->head, "X-Vapora-Budget-State", "normal");
    s_expect_field(stream ? r->trailers : r->head, "X-Vapora-Cost-USD", k->cost);
}

/* Checks that k's scope got exactly one request, in its kind's format. */
static void s_check_upstream(const th_proc_t *fake, const s_kind_t *k, bool stream)
{
    char key[32];
    snprintf(key, sizeof key, "by_kind.%s", k->kind);
    cr_assert_eq(s_fake_num(fake, k->provider, "requests"), 1, "%s", k->provider);
    cr_assert_eq(s_fake_num(fake, k->provider, key), 1, "%s", k->provider);
    json_t *last = s_fake_last(fake, k->provider);
    const char *path = s_str(last, "path");
    cr_assert(path && strncmp(path, k->path, strlen(k->path)) == 0, "%s: path %s",
              k->provider, path);
    if (strcmp(k->kind, "gemini") == 0) {
        cr_assert_str_eq(strchr(path, ':') + 1,
                         stream ? "streamGenerateContent" : "generateContent");
        if (stream)
            cr_assert_str_eq(s_str(json_object_get(last, "query"), "alt"), "sse");
    }
    json_decref(last);
}

Test(router_formats, openai_callers_get_every_kind, .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = s_body(false, k->model, false, 0);
        s_resp_t r = s_call(sv, OAI, NULL, body, 200);
        cr_assert_not_null(r.json, "%s: not JSON: %s", k->provider, r.body);
        cr_assert_str_eq(s_str(r.json, "object"), "chat.completion");
        json_t *c0 = json_array_get(json_object_get(r.json, "choices"), 0);
        json_t *msg = json_object_get(c0, "message");
        cr_assert_str_eq(s_str(msg, "role"), "assistant");
        cr_assert_str_eq(s_str(msg, "content"), REPLY, "%s: %s", k->provider, r.body);
        cr_assert_str_eq(s_str(c0, "finish_reason"), "stop", "%s", k->provider);
        json_t *u = json_object_get(r.json, "usage");
        cr_assert(s_num(u, "prompt_tokens") == 10 &&
                      s_num(u, "completion_tokens") == 20 &&
                      s_num(u, "total_tokens") == 30,
                  "%s: usage %s", k->provider, r.body);
        s_check_served(&r, k, false);
        s_check_upstream(fake, k, false);
        s_resp_clear(&r);
        free(body);
    }
}

Test(router_formats, openai_streams_from_every_kind, .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = s_body(false, k->model, true, 0), hdr[64];
        snprintf(hdr, sizeof hdr, "X-Vapora-Provider: %s\r\n", k->provider);
        s_resp_t r = s_call(sv, OAI, hdr, body, 200);
        char ct[128];
        cr_assert(strstr(s_field(r.head, "Content-Type", ct, sizeof ct) ?: "",
                         "text/event-stream"),
                  "%s: content type %s", k->provider, ct);
        s_oai_stream_t s = s_oai_stream(r.body);
        cr_assert_str_eq(s.text, REPLY, "%s: stream:\n%s", k->provider, r.body);
        cr_assert(s.done_last, "%s: [DONE] is not last:\n%s", k->provider, r.body);
        cr_assert_null(s.error, "%s: an error chunk:\n%s", k->provider, r.body);
        cr_assert_str_eq(s.finish, "stop", "%s", k->provider);
        cr_assert(s.usage && s_num(s.usage, "prompt_tokens") == 10 &&
                      s_num(s.usage, "completion_tokens") == 20 &&
                      s_num(s.usage, "total_tokens") == 30,
                  "%s: no right usage chunk:\n%s", k->provider, r.body);
        s_check_served(&r, k, true);
        s_check_upstream(fake, k, true);
        json_decref(s.usage);
        s_resp_clear(&r);
        free(body);
    }
}

Test(router_formats, anthropic_callers_get_every_kind, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = s_body(true, k->model, false, 100);
        s_resp_t r = s_call(sv, ANT, NULL, body, 200);
        cr_assert_not_null(r.json, "%s: not JSON: %s", k->provider, r.body);
        cr_assert_str_eq(s_str(r.json, "type"), "message");
        cr_assert_str_eq(s_str(r.json, "role"), "assistant");
        json_t *c0 = json_array_get(json_object_get(r.json, "content"), 0);
        cr_assert_str_eq(s_str(c0, "type"), "text", "%s", r.body);
        cr_assert_str_eq(s_str(c0, "text"), REPLY, "%s: %s", k->provider, r.body);
        cr_assert_not_null(s_str(r.json, "stop_reason"), "%s", r.body);
        json_t *u = json_object_get(r.json, "usage");
        cr_assert(s_num(u, "input_tokens") == 10 && s_num(u, "output_tokens") == 20,
                  "%s: usage %s", k->provider, r.body);
        s_check_served(&r, k, false);
        s_check_upstream(fake, k, false);
        s_resp_clear(&r);
        free(body);
    }
}

Test(router_formats, anthropic_streams_from_every_kind, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = s_body(true, k->model, true, 100), hdr[64];
        snprintf(hdr, sizeof hdr, "X-Vapora-Provider: %s\r\n", k->provider);
        s_resp_t r = s_call(sv, ANT, hdr, body, 200);
        s_ant_stream_t s = s_ant_stream(r.body);
        cr_assert_str_eq(s.names, ANT_SEQUENCE, "%s: stream:\n%s", k->provider, r.body);
        cr_assert_str_eq(s.text, REPLY, "%s", k->provider);
        cr_assert_eq(s.output_tokens, 20, "%s: stream:\n%s", k->provider, r.body);
        s_check_served(&r, k, true);
        s_check_upstream(fake, k, true);
        s_resp_clear(&r);
        free(body);
    }
}

/* ---- provider keys go to their provider only, never the caller's ---- */

Test(router_keys, each_provider_gets_its_own_key_and_never_the_callers, .timeout = 60,
     .fini = th_cleanup)
{
    static const char *secrets[] = {"sk-oai-secret", "sk-ant-secret", "g-secret",
                                    "test-key"};
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"expect_key\":\"sk-oai-secret\"}"),
                 0);
    cr_assert_eq(
        th_fake_llm_config(fake, "claude", "{\"expect_key\":\"sk-ant-secret\"}"), 0);
    cr_assert_eq(th_fake_llm_config(fake, "gem", "{\"expect_key\":\"g-secret\"}"), 0);
    th_sv_t *sv =
        s_start(fake, &(s_opts_t){.router = "api_keys = test-key-1, test-key-2\n"});
    for (size_t i = 0; i < 8; i++) {
        const s_kind_t *k = &s_kinds[i % 4];
        bool ant = i >= 4;
        char *body = s_body(ant, k->model, false, 100), hdr[128];
        snprintf(hdr, sizeof hdr, "X-Vapora-Provider: %s\r\n%s", k->provider,
                 ant ? "x-api-key: test-key-2\r\n"
                     : "Authorization: Bearer test-key-1\r\n");
        s_resp_t r = s_call(sv, ant ? ANT : OAI, hdr, body, 200);
        json_t *last = s_fake_last(fake, k->provider);
        json_t *h = json_object_get(last, "headers"), *v;
        const char *name;
        json_object_foreach(h, name, v)
        {
            for (size_t s = 0; s < 4; s++) {
                if (s != i % 4)
                    cr_assert_null(strstr(json_string_value(v), secrets[s]),
                                   "%s got %s: %s", k->provider, name,
                                   json_string_value(v));
            }
        }
        char *q = json_dumps(json_object_get(last, "query"), 0);
        cr_assert_null(strstr(q, "test-key"), "%s got query %s", k->provider, q);
        free(q);
        if (i % 4 == 0)
            cr_assert_str_eq(s_str(h, "authorization"), "Bearer sk-oai-secret");
        if (i % 4 == 1) {
            cr_assert_str_eq(s_str(h, "x-api-key"), "sk-ant-secret");
            cr_assert_not_null(s_str(h, "anthropic-version"));
        }
        if (i % 4 == 2)
            cr_assert_str_eq(s_str(h, "x-goog-api-key"), "g-secret");
        if (i % 4 == 3)
            cr_assert(!json_object_get(h, "authorization") &&
                          !json_object_get(h, "x-api-key"),
                      "ollama got a key");
        json_decref(last);
        s_resp_clear(&r);
        free(body);
    }
}

/* ---- fallback and retries ----
 * A failed attempt (500, 429, timeout, refused) goes to the next provider of
 * the chain with its stand-in (gpt-a's equivalent claude-x); retries stay
 * on the same provider first. */

/* A gpt-a call whose answer came from provider/model after attempts. */
static void s_expect_fallback(th_sv_t *sv, const char *provider, const char *model,
                              const char *attempts)
{
    char *body = s_body(false, "gpt-a", false, 0);
    s_resp_t r = s_call(sv, OAI, NULL, body, 200);
    const char *content =
        s_str(json_object_get(json_array_get(json_object_get(r.json, "choices"), 0),
                              "message"),
              "content");
    cr_assert_str_eq(content ?: "", REPLY, "%s", r.body);
    s_expect_field(r.head, "X-Vapora-Provider", provider);
    s_expect_field(r.head, "X-Vapora-Model", model);
    s_expect_field(r.head, "X-Vapora-Attempts", attempts);
    s_resp_clear(&r);
    free(body);
}

Test(router_fallback, on_500_and_on_429_the_next_provider_answers, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    cr_assert_eq(
        th_fake_llm_config(fake, "oai", "{\"fail_status\":500,\"fail_count\":1}"), 0);
    s_expect_fallback(sv, "claude", "claude-x", "2");
    cr_assert_eq(s_fake_num(fake, "oai", "failed"), 1);
    cr_assert_eq(
        th_fake_llm_config(fake, "oai",
                           "{\"fail_status\":429,\"fail_count\":1,\"retry_after\":1}"),
        0);
    s_expect_fallback(sv, "claude", "claude-x", "2");
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), 2);
    cr_assert_eq(s_fake_num(fake, "oai", "failed"), 2);
    cr_assert_eq(s_fake_num(fake, "claude", "requests"), 2);
}

Test(router_fallback, on_timeout_the_next_provider_answers, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"stall\":true}"), 0);
    long long t0 = th_now_ms();
    s_expect_fallback(sv, "claude", "claude-x", "2");
    long long took = th_now_ms() - t0;
    cr_assert(took >= 1900 && took < 4000, "took %lld ms with a 2 s provider timeout",
              took);
    cr_assert_eq(s_fake_num(fake, "oai", "stalled"), 1);
}

Test(router_fallback, on_refused_connection_the_next_provider_answers, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    char extra[256];
    snprintf(extra, sizeof extra,
             "[provider:dead]\nkind = openai\nbase_url = http://127.0.0.1:%d/v1\n"
             "api_key = sk-dead\nmodels = gpt-a\n",
             th_free_port());
    th_sv_t *sv =
        s_start(fake, &(s_opts_t){.chain = "dead, claude, gem", .extra = extra});
    s_expect_fallback(sv, "claude", "claude-x", "2");
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), 0);
}

Test(router_fallback, retries_stay_on_the_provider_and_honour_retry_after,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){.retries = 1});
    cr_assert_eq(
        th_fake_llm_config(fake, "oai", "{\"fail_status\":500,\"fail_count\":1}"), 0);
    s_expect_fallback(sv, "oai", "gpt-a", "2");
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), 2);
    cr_assert_eq(
        th_fake_llm_config(fake, "oai",
                           "{\"fail_status\":429,\"fail_count\":1,\"retry_after\":1}"),
        0);
    long long t0 = th_now_ms();
    s_expect_fallback(sv, "oai", "gpt-a", "2");
    long long took = th_now_ms() - t0;
    cr_assert(took >= 900, "the retry came %lld ms after Retry-After: 1", took);
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), 4);
    cr_assert_eq(s_fake_num(fake, "claude", "requests"), 0);
}

Test(router_fallback, every_attempt_failing_is_502_or_the_last_status, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){.chain = "oai, claude"});
    cr_assert_eq(
        th_fake_llm_config(fake, "oai", "{\"fail_status\":500,\"fail_count\":-1}"), 0);
    cr_assert_eq(
        th_fake_llm_config(fake, "claude", "{\"fail_status\":500,\"fail_count\":1}"),
        0);
    char *body = s_body(false, "gpt-a", false, 0);
    s_resp_t r = s_call(sv, OAI, NULL, body, 502);
    json_t *err = json_object_get(r.json, "error");
    cr_assert(json_is_object(err), "not an OpenAI error: %s", r.body);
    cr_assert(strstr(r.body, "upstream_error"), "%s", r.body);
    s_expect_field(r.head, "X-Vapora-Attempts", "2");
    s_resp_clear(&r);
    cr_assert_eq(
        th_fake_llm_config(fake, "claude", "{\"fail_status\":503,\"fail_count\":1}"),
        0);
    r = s_call(sv, OAI, NULL, body, 503);
    s_resp_clear(&r);
    /* Other 4xx are passed back as they are, without fallback. */
    cr_assert_eq(
        th_fake_llm_config(fake, "oai", "{\"fail_status\":400,\"fail_count\":1}"), 0);
    r = s_call(sv, OAI, NULL, body, 400);
    cr_assert_eq(s_fake_num(fake, "claude", "requests"), 2);
    s_resp_clear(&r);
    free(body);
}

/* ---- cooldown: a provider failing cooldown_failures times in a row is
 * skipped for cooldown seconds (one worker: health is per worker) ---- */

Test(router_cooldown, a_failing_provider_is_skipped_then_tried_again, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){.workers = 1, .cooldown_s = 3});
    cr_assert_eq(
        th_fake_llm_config(fake, "oai", "{\"fail_status\":500,\"fail_count\":-1}"), 0);
    for (int i = 0; i < 3; i++)
        s_expect_fallback(sv, "claude", "claude-x", "2");
    json_t *ps = s_get(sv, "/api/v1/providers");
    json_t *oai = s_find(ps, "name", "oai");
    cr_assert_not_null(oai, "no oai in /api/v1/providers");
    char *dump = json_dumps(oai, 0);
    cr_assert_str_eq(s_str(oai, "state"), "cooldown", "%s", dump);
    cr_assert_eq(s_num(oai, "consecutive_failures"), 3, "%s", dump);
    cr_assert(s_num(oai, "cooldown_remaining_ms") > 0 &&
                  s_num(oai, "cooldown_remaining_ms") <= 3000,
              "%s", dump);
    cr_assert_str_eq(s_str(oai, "kind"), "openai");
    free(dump);
    json_decref(ps);
    for (int i = 0; i < 2; i++) {
        char *body = s_body(false, "gpt-a", false, 0);
        s_resp_t r = s_call(sv, OAI, NULL, body, 200);
        long asked = s_fake_num(fake, "oai", "requests");
        cr_assert_eq(asked, 3,
                     "oai in cooldown was asked (%ld requests); the answer:\n%s", asked,
                     r.head);
        s_expect_field(r.head, "X-Vapora-Provider", "claude");
        s_expect_field(r.head, "X-Vapora-Attempts", "1");
        s_resp_clear(&r);
        free(body);
    }
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"fail_count\":0}"), 0);
    th_sleep_ms(3300);
    s_expect_fallback(sv, "oai", "gpt-a", "1");
    ps = s_get(sv, "/api/v1/providers");
    oai = s_find(ps, "name", "oai");
    cr_assert_str_eq(s_str(oai, "state"), "available");
    /* Calls answered (all workers, from the ledger) and this worker's
     * attempts: claude answered the 5 fallbacks, oai 1 call in 4 tries. */
    json_t *claude = s_find(ps, "name", "claude");
    cr_assert_eq(s_num(claude, "requests"), 5, "%s", json_dumps(claude, 0));
    cr_assert(S_CLOSE(s_num(claude, "cost_usd"), 0.125), "%s", json_dumps(claude, 0));
    cr_assert_eq(s_num(claude, "output_tokens"), 100);
    cr_assert_eq(s_num(oai, "requests"), 1);
    cr_assert_eq(s_num(json_object_get(oai, "worker"), "attempts"), 4);
    cr_assert_eq(s_num(json_object_get(oai, "worker"), "failed_attempts"), 3);
    json_decref(ps);
}

/* ---- no fallback once a stream's first byte reached the caller ---- */

Test(router_streams, a_cut_stream_ends_with_an_error_event_and_no_fallback,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"cut_after\":3}"), 0);
    char *body = s_body(false, "gpt-a", true, 0);
    s_resp_t r = s_call(sv, OAI, NULL, body, 200);
    s_oai_stream_t s = s_oai_stream(r.body);
    cr_assert(*s.text && strncmp(REPLY, s.text, strlen(s.text)) == 0 &&
                  strlen(s.text) < strlen(REPLY),
              "text %s in:\n%s", s.text, r.body);
    cr_assert(json_is_object(s.error), "no error chunk in:\n%s", r.body);
    cr_assert(s.done_last, "[DONE] is not last:\n%s", r.body);
    json_decref(s.error);
    json_decref(s.usage);
    s_resp_clear(&r);
    free(body);
    body = s_body(true, "gpt-a", true, 100);
    r = s_call(sv, ANT, NULL, body, 200);
    s_ant_stream_t a = s_ant_stream(r.body);
    cr_assert(*a.text && strncmp(REPLY, a.text, strlen(a.text)) == 0, "text %s",
              a.text);
    cr_assert(strstr(a.names, "content_block_delta,error") &&
                  strcmp(strstr(a.names, ",error"), ",error") == 0,
              "events %s in:\n%s", a.names, r.body);
    s_resp_clear(&r);
    free(body);
    cr_assert_eq(s_fake_num(fake, "oai", "cut"), 2);
    cr_assert_eq(s_fake_num(fake, "claude", "requests"), 0, "the router fell back");
}

/* ---- a caller that goes away mid-stream aborts the upstream ---- */

/* Streams claude's answer (a piece every delay_ms), reads the first piece,
 * closes the connection, and asserts the upstream stream was aborted
 * within within_ms. */
static void s_leave_stream(int delay_ms, int within_ms)
{
    th_proc_t *fake = s_fake();
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"chunk_delay_ms\":%d,\"reply\":\"", delay_ms);
    for (int i = 1; i <= 60; i++)
        snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), "word%d ", i);
    strcat(cfg, "end.\"}");
    cr_assert_eq(th_fake_llm_config(fake, "claude", cfg), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    th_conn_t *c = th_connect(sv->ports[0], TH_IO_MS);
    cr_assert_not_null(c);
    char *body = s_body(false, "claude-x", true, 0);
    cr_assert_eq(th_send_request(c, "POST", OAI,
                                 "Content-Type: application/json\r\n"
                                 "X-Vapora-Provider: claude\r\n",
                                 body, strlen(body)),
                 0);
    free(body);
    char buf[65536];
    size_t len = 0;
    long long end = th_now_ms() + 5000 + delay_ms;
    while (!memmem(buf, len, "word1", 5) && th_now_ms() < end && len < sizeof buf - 1) {
        struct pollfd pfd = {.fd = th_conn_fd(c), .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = recv(pfd.fd, buf + len, sizeof buf - 1 - len, MSG_DONTWAIT);
            cr_assert(n > 0 || errno == EAGAIN, "the stream ended early");
            len += n > 0 ? (size_t)n : 0;
        }
    }
    cr_assert(memmem(buf, len, "word1", 5), "no first piece: %.*s", (int)len, buf);
    th_conn_close(&c);
    long aborted = 0;
    end = th_now_ms() + within_ms;
    while ((aborted = s_fake_num(fake, "claude", "aborted_streams")) == 0 &&
           th_now_ms() < end)
        th_sleep_ms(50);
    cr_assert_eq(aborted, 1, "the upstream stream was not aborted within %d ms",
                 within_ms);
    cr_assert_eq(s_fake_num(fake, "claude", "completed_streams"), 0);
    cr_assert_eq(s_fake_num(fake, "claude", "active_streams"), 0);
}

Test(router_streams, a_caller_disconnecting_aborts_the_upstream, .timeout = 60,
     .fini = th_cleanup)
{
    s_leave_stream(200, 3000);
}

/* Between two pieces the reply waits, out of MHD's sight: the caller
 * leaving is still seen at once, not at the next piece (4 s later). */
Test(router_streams, a_caller_leaving_a_quiet_stream_aborts_the_upstream_at_once,
     .timeout = 60, .fini = th_cleanup)
{
    s_leave_stream(4000, 2000);
}

/* ---- budgets: near takes the cheapest model, exceeded only free ones,
 * none → 429 ---- */

/* The budget of role once spent_usd reached want and nothing is reserved
 * (polled for 5 s: the workers settle in batches); the last one seen
 * otherwise. The caller decrefs. */
static json_t *s_budget(th_sv_t *sv, const char *role, double want)
{
    json_t *b = NULL;
    long long end = th_now_ms() + 5000;
    do {
        json_decref(b);
        json_t *all = s_get(sv, "/api/v1/budgets");
        b = json_incref(s_find(all, "role", role));
        json_decref(all);
        if (b && S_CLOSE(s_num(b, "spent_usd"), want) && s_num(b, "reserved_usd") == 0)
            return b;
        th_sleep_ms(50);
    } while (th_now_ms() < end);
    return b;
}

#define s_expect_budget(sv, role, spent, state)                                        \
    do {                                                                               \
        json_t *b_ = s_budget((sv), (role), (spent));                                  \
        char *d_ = b_ ? json_dumps(b_, 0) : strdup("(none)");                          \
        cr_assert(b_ &&S_CLOSE(s_num(b_, "spent_usd"), (spent)) &&                     \
                      s_num(b_, "reserved_usd") == 0,                                  \
                  "budget %s, want spent %f", d_, (double)(spent));                    \
        cr_assert_str_eq(s_str(b_, "state"), (state), "budget %s", d_);                \
        free(d_);                                                                      \
        json_decref(b_);                                                               \
    } while (0)

/* A role-tiny gpt-a call (max_tokens 100) served by model in state. */
static void s_tiny_call(th_sv_t *sv, const char *model, const char *state,
                        const char *cost)
{
    char *body = s_body(false, "gpt-a", false, 100);
    s_resp_t r = s_call(sv, OAI, ROLE_TINY, body, 200);
    s_expect_field(r.head, "X-Vapora-Model", model);
    s_expect_field(r.head, "X-Vapora-Budget-State", state);
    s_expect_field(r.head, "X-Vapora-Cost-USD", cost);
    s_resp_clear(&r);
    free(body);
}

/* No model is free once llama has a price. */
#define PRICED_LLAMA                                                                   \
    "[model:llama]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n\n"
#define TINY_BUDGET(limit)                                                             \
    "[budget:tiny]\nwindow = daily\nlimit_usd = " limit "\nnear_percent = 80\n"

Test(router_budgets, near_takes_the_cheapest_model_and_exceeded_without_free_is_429,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    /* Each gpt-a call costs 10 in + 100 out = 0.21 USD, its worst case too. */
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"usage_out\":100}"), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){.chain = "oai, claude",
                                            .extra = PRICED_LLAMA TINY_BUDGET("1")});
    for (int i = 1; i <= 4; i++) {
        s_tiny_call(sv, "gpt-a", "normal", "0.210000");
        s_expect_budget(sv, "tiny", 0.21 * i, i < 4 ? "normal" : "near");
    }
    /* 84 %: near, gpt-b (10 in + 100 out = 0.021 USD). */
    s_tiny_call(sv, "gpt-b", "near", "0.021000");
    s_expect_budget(sv, "tiny", 0.861, "near");
    /* A provider that reports more than asked for pushes it over. */
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"usage_out\":1000}"), 0);
    s_tiny_call(sv, "gpt-b", "near", "0.201000");
    s_expect_budget(sv, "tiny", 1.062, "exceeded");
    json_t *all = s_get(sv, "/api/v1/budgets");
    json_t *b = s_find(all, "role", "tiny");
    char *d = json_dumps(b, 0);
    cr_assert_str_eq(s_str(b, "window"), "daily", "%s", d);
    cr_assert(s_num(b, "limit_usd") == 1 && json_object_get(b, "resets_at"), "%s", d);
    free(d);
    json_decref(all);
    /* No model is free: 429 in either format. */
    char *body = s_body(false, "gpt-a", false, 100);
    s_resp_t r = s_call(sv, OAI, ROLE_TINY, body, 429);
    json_t *err = json_object_get(r.json, "error");
    cr_assert_str_eq(s_str(err, "type"), "budget_exceeded", "%s", r.body);
    cr_assert(strstr(s_str(err, "message") ?: "", "tiny"), "%s", r.body);
    s_resp_clear(&r);
    free(body);
    body = s_body(true, "gpt-a", false, 100);
    r = s_call(sv, ANT, ROLE_TINY, body, 429);
    cr_assert_str_eq(s_str(r.json, "type"), "error", "%s", r.body);
    cr_assert_str_eq(s_str(json_object_get(r.json, "error"), "type"), "budget_exceeded",
                     "%s", r.body);
    s_resp_clear(&r);
    free(body);
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), 6);
    /* Other roles have no budget. */
    s_expect_fallback(sv, "oai", "gpt-a", "1");
}

Test(router_budgets, exceeded_takes_the_free_model, .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"usage_out\":100}"), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){.extra = TINY_BUDGET("0.1")});
    /* Worst case 10 in + 20 out = 0.05 fits; the provider reports 100 out. */
    char *body = s_body(false, "gpt-a", false, 20);
    s_resp_t r = s_call(sv, OAI, ROLE_TINY, body, 200);
    s_expect_field(r.head, "X-Vapora-Model", "gpt-a");
    s_expect_field(r.head, "X-Vapora-Cost-USD", "0.210000");
    s_resp_clear(&r);
    s_expect_budget(sv, "tiny", 0.21, "exceeded");
    r = s_call(sv, OAI, ROLE_TINY, body, 200);
    s_expect_field(r.head, "X-Vapora-Provider", "local");
    s_expect_field(r.head, "X-Vapora-Model", "llama");
    s_expect_field(r.head, "X-Vapora-Budget-State", "exceeded");
    s_expect_field(r.head, "X-Vapora-Cost-USD", "0.000000");
    cr_assert(strstr(r.body, REPLY), "%s", r.body);
    s_resp_clear(&r);
    free(body);
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), 1);
    cr_assert_eq(s_fake_num(fake, "local", "requests"), 1);
}

/* ---- concurrent calls against a tiny budget never overspend ---- */

#define NCONC 200

typedef struct s_conc {
    int port;
    const char *body;
    int status;
} s_conc_t;

static void *s_conc_call(void *arg)
{
    s_conc_t *a = arg;
    a->status =
        th_call(a->port, "POST", OAI, "Content-Type: application/json\r\n" ROLE_TINY,
                a->body, NULL, 30000);
    return NULL;
}

Test(router_budgets, two_hundred_concurrent_calls_never_overspend, .timeout = 120,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"latency_ms\":300}"), 0);
    th_sv_t *sv = s_start(
        fake, &(s_opts_t){.chain = "oai", .extra = PRICED_LLAMA TINY_BUDGET("1")});
    char *body = s_body(false, "gpt-a", false, 20);
    static s_conc_t calls[NCONC];
    static pthread_t th[NCONC];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < NCONC; i++) {
        calls[i] = (s_conc_t){.port = sv->ports[0], .body = body};
        cr_assert_eq(pthread_create(&th[i], NULL, s_conc_call, &calls[i]), 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    long ok = 0, refused = 0;
    int other = 0;
    for (int i = 0; i < NCONC; i++) {
        pthread_join(th[i], NULL);
        ok += calls[i].status == 200;
        refused += calls[i].status == 429;
        if (calls[i].status != 200 && calls[i].status != 429)
            other = calls[i].status;
    }
    free(body);
    cr_assert_eq(ok + refused, NCONC, "%ld ok, %ld 429, another answer was %d", ok,
                 refused, other);
    cr_assert(ok > 0 && refused > 0, "%ld ok, %ld 429", ok, refused);
    cr_log_info("%ld calls answered 200, %ld 429", ok, refused);
    th_sleep_ms(500);
    json_t *b = s_budget(sv, "tiny", NAN);
    char *d = json_dumps(b, 0);
    cr_assert(b && s_num(b, "reserved_usd") == 0, "budget %s", d);
    cr_assert(s_num(b, "spent_usd") > 0 &&
                  s_num(b, "spent_usd") <= s_num(b, "limit_usd") + 1e-9,
              "overspent: %s after %ld calls", d, ok);
    cr_log_info("budget after the calls: %s", d);
    free(d);
    json_decref(b);
    cr_assert_eq(s_fake_num(fake, "oai", "requests"), ok);
}

/* ---- the spend survives a restart on the same data_dir ---- */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

Test(router_budgets, spend_survives_a_restart, .timeout = 90, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    char *tmpl = s_config(fake->port, &(s_opts_t){.extra = TINY_BUDGET("10")});
    th_sv_t *sv = s_start_in(NULL, tmpl, 2);
    s_tiny_call(sv, "gpt-a", "normal", "0.050000");
    s_tiny_call(sv, "gpt-a", "normal", "0.050000");
    s_expect_budget(sv, "tiny", 0.1, "normal");
    char *dir = strdup(sv->data_dir);
    th_sv_free(&sv);
    sv = s_start_in(dir, tmpl, 2);
    s_expect_budget(sv, "tiny", 0.1, "normal");
    s_tiny_call(sv, "gpt-a", "normal", "0.050000");
    s_expect_budget(sv, "tiny", 0.15, "normal");
    th_sv_free(&sv);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
    free(tmpl);
}

/* ---- malformed requests: the right 4xx, in the caller's format ---- */

#define CT_JSON "Content-Type: application/json\r\n"
#define CT_TEXT "Content-Type: text/plain\r\n"
#define KEY_O "Authorization: Bearer test-key-1\r\n"
#define KEY_A "x-api-key: test-key-1\r\nanthropic-version: 2023-06-01\r\n"
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

typedef struct s_bad {
    const char *path, *hdrs, *body; /* body NULL: 2 MiB */
    int status;
    const char *type, *code; /* NULL: not checked */
} s_bad_t;

static const s_bad_t s_bads[] = {
    {OAI, CT_JSON KEY_O, "{\"model\":", 400, NULL, NULL},
    {OAI, CT_JSON KEY_O, "{\"model\":\"gpt-a\"}", 400, NULL, NULL},
    {OAI, CT_TEXT KEY_O, "{\"model\":\"gpt-a\"," MSGS "}", 415, NULL, NULL},
    {OAI, CT_JSON KEY_O, "{\"model\":\"nope\"," MSGS "}", 404, NULL, "model_not_found"},
    {OAI, CT_JSON, "{\"model\":\"gpt-a\"," MSGS "}", 401, "authentication_error", NULL},
    {OAI, CT_JSON "Authorization: Bearer test-key-3\r\n",
     "{\"model\":\"gpt-a\"," MSGS "}", 401, "authentication_error", NULL},
    {OAI, CT_JSON KEY_O, NULL, 413, NULL, NULL},
    {ANT, CT_JSON KEY_A, "{\"model\":", 400, NULL, NULL},
    {ANT, CT_JSON KEY_A, "{\"model\":\"claude-x\",\"max_tokens\":10}", 400, NULL, NULL},
    {ANT, CT_JSON KEY_A, "{\"model\":\"claude-x\"," MSGS "}", 400, NULL, NULL},
    {ANT, CT_TEXT KEY_A, "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 415,
     NULL, NULL},
    {ANT, CT_JSON KEY_A, "{\"model\":\"nope\",\"max_tokens\":10," MSGS "}", 404, NULL,
     NULL},
    {ANT, CT_JSON "anthropic-version: 2023-06-01\r\n",
     "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 401, "authentication_error",
     NULL},
    {ANT, CT_JSON "x-api-key: test-key-3\r\n",
     "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 401, "authentication_error",
     NULL},
    {ANT, CT_JSON KEY_A, NULL, 413, NULL, NULL},
    /* Only /v1/messages itself answers in Anthropic's format. */
    {"/v1/messagesx", CT_JSON KEY_O, "{}", 404, NULL, NULL},
    /* A role names a budget: not any bytes at all. */
    {OAI,
     CT_JSON KEY_O "X-Vapora-Role: \xff"
                   "bad\r\n",
     "{\"model\":\"gpt-a\"," MSGS "}", 400, NULL, "invalid_request"},
    {ANT, CT_JSON KEY_A "X-Vapora-Role: two words\r\n",
     "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 400, NULL, NULL},
};

/* Checks that r is an error in the format of path's API. */
static void s_check_error(const s_resp_t *r, const s_bad_t *b)
{
    json_t *e = json_object_get(r->json, "error");
    cr_assert(json_is_object(e), "%s %d: not an error body: %s", b->path, b->status,
              r->body);
    if (strcmp(b->path, ANT) == 0) {
        cr_assert_str_eq(s_str(r->json, "type"), "error", "%s", r->body);
    } else {
        cr_assert(json_is_null(json_object_get(e, "param")) &&
                      json_object_get(e, "code"),
                  "%s", r->body);
        if (b->code)
            cr_assert_str_eq(s_str(e, "code") ?: "", b->code, "%s", r->body);
    }
    cr_assert(s_str(e, "type") && s_str(e, "message"), "%s", r->body);
    if (b->type)
        cr_assert_str_eq(s_str(e, "type"), b->type, "%s", r->body);
}

Test(router_errors, malformed_requests_get_their_4xx_in_the_callers_format,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv =
        s_start(fake, &(s_opts_t){.router = "api_keys = test-key-1, test-key-2\n"});
    size_t big_len = 2u << 20;
    char *big = malloc(big_len + 128);
    int n =
        sprintf(big, "{\"model\":\"gpt-a\",\"max_tokens\":10,\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"");
    memset(big + n, 'x', big_len);
    strcpy(big + n + big_len, "\"}]}");
    for (size_t i = 0; i < sizeof s_bads / sizeof *s_bads; i++) {
        const s_bad_t *b = &s_bads[i];
        s_resp_t r = s_send(sv->ports[0], "POST", b->path, b->hdrs,
                            b->body ? b->body : big, 10000);
        cr_assert_eq(r.status, b->status, "case %zu: %s %s: %d, want %d: %.300s", i,
                     b->path, b->body ? b->body : "(2 MiB)", r.status, b->status,
                     r.body);
        s_check_error(&r, b);
        s_resp_clear(&r);
    }
    free(big);
    const char *scopes[] = {"oai", "claude", "gem", "local"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(s_fake_num(fake, scopes[i], "requests"), 0, "%s was asked",
                     scopes[i]);
}

/* ---- the model list and the usage totals ---- */

/* /api/v1/usage?QUERY once the entry key = value has want requests (polled
 * 5 s: workers write every 200 ms); the last answer otherwise. Caller
 * decrefs; *entry is borrowed from it. */
static json_t *s_usage(th_sv_t *sv, const char *query, const char *key,
                       const char *value, double want, json_t **entry)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/usage?%s", query);
    json_t *u = NULL;
    long long end = th_now_ms() + 5000;
    do {
        json_decref(u);
        u = s_get(sv, path);
        *entry = s_find(u, key, value);
        if (*entry && s_num(*entry, "requests") == want)
            break;
        th_sleep_ms(100);
    } while (th_now_ms() < end);
    cr_assert_not_null(u, "GET %s failed", path);
    return u;
}

/* A provider's absurd token counts are clamped: spend stays a small
 * positive number and the budget keeps counting. */
Test(router_budgets, corrupt_usage_from_a_provider_cannot_overflow_a_budget,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    cr_assert_eq(th_fake_llm_config(fake, "oai",
                                    "{\"usage_in\":4611686018427387904,"
                                    "\"usage_out\":4611686018427387904}"),
                 0);
    char *ob = s_body(false, "gpt-a", false, 0);
    s_resp_t r = s_call(sv, OAI, "X-Vapora-Role: tester\r\n", ob, 200);
    s_resp_clear(&r);
    free(ob);
    json_t *e, *u = s_usage(sv, "group_by=role", "role", "tester", 1, &e);
    char *d = json_dumps(u, 0);
    cr_assert(e && s_num(e, "input_tokens") == 100000000 &&
                  s_num(e, "output_tokens") == 100000000 && s_num(e, "cost_usd") > 0 &&
                  s_num(e, "cost_usd") < 1e9,
              "usage %s", d);
    free(d);
    json_decref(u);

    /* A count no JSON number type holds leaves the usage unreadable: the
     * call is estimated, not free. */
    char cfg[600] = "{\"usage_in\":1";
    for (int i = 0; i < 400; i++)
        strcat(cfg, "0");
    strcat(cfg, "}");
    cr_assert_eq(th_fake_llm_config(fake, "oai", cfg), 0);
    ob = s_body(false, "gpt-a", false, 0);
    r = s_call(sv, OAI, "X-Vapora-Role: unreadable\r\n", ob, 200);
    s_resp_clear(&r);
    free(ob);
    u = s_usage(sv, "group_by=role", "role", "unreadable", 1, &e);
    d = json_dumps(u, 0);
    cr_assert(e && s_num(e, "estimated") == 1 && s_num(e, "input_tokens") > 0 &&
                  s_num(e, "output_tokens") > 0 && s_num(e, "cost_usd") > 0,
              "usage %s", d);
    free(d);
    json_decref(u);
}

Test(router_usage, models_are_listed_and_usage_is_totalled, .timeout = 60,
     .fini = th_cleanup)
{
    static const char *models[][2] = {{"gpt-a", "oai"},
                                      {"gpt-b", "oai"},
                                      {"claude-x", "claude"},
                                      {"gem-x", "gem"},
                                      {"llama", "local"}};
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    json_t *m = s_get(sv, "/v1/models");
    cr_assert_str_eq(s_str(m, "object"), "list");
    for (size_t i = 0; i < 5; i++) {
        json_t *e = s_find(json_object_get(m, "data"), "id", models[i][0]);
        cr_assert_not_null(e, "%s is not listed", models[i][0]);
        cr_assert_str_eq(s_str(e, "object"), "model");
        cr_assert_str_eq(s_str(e, "owned_by"), models[i][1]);
        cr_assert(json_is_integer(json_object_get(e, "created")));
    }
    json_decref(m);
    char *ob = s_body(false, "gpt-a", false, 0),
         *ab = s_body(true, "claude-x", false, 100);
    s_resp_t r = s_call(sv, OAI, NULL, ob, 200);
    s_resp_clear(&r);
    r = s_call(sv, OAI, NULL, ob, 200);
    s_resp_clear(&r);
    r = s_call(sv, ANT, NULL, ab, 200);
    s_resp_clear(&r);
    free(ob);
    free(ab);
    json_t *e, *u = s_usage(sv, "group_by=provider", "provider", "oai", 2, &e);
    char *d = json_dumps(u, 0);
    cr_assert(e && s_num(e, "requests") == 2 && s_num(e, "errors") == 0 &&
                  s_num(e, "input_tokens") == 20 && s_num(e, "output_tokens") == 40 &&
                  S_CLOSE(s_num(e, "cost_usd"), 0.1),
              "usage %s", d);
    e = s_find(u, "provider", "claude");
    cr_assert(e && s_num(e, "requests") == 1 && s_num(e, "input_tokens") == 10 &&
                  s_num(e, "output_tokens") == 20 &&
                  S_CLOSE(s_num(e, "cost_usd"), 0.025),
              "usage %s", d);
    free(d);
    json_decref(u);
    u = s_usage(sv, "group_by=model", "model", "gpt-a", 2, &e);
    cr_assert(e && s_num(e, "requests") == 2);
    json_decref(u);
    u = s_usage(sv, "group_by=role", "role", "default", 3, &e);
    cr_assert(e && s_num(e, "requests") == 3);
    json_decref(u);
    char path[96]; /* nothing was used after since */
    snprintf(path, sizeof path, "/api/v1/usage?group_by=provider&since=%lld",
             (long long)time(NULL) + 3600);
    u = s_get(sv, path);
    e = s_find(u, "provider", "oai");
    cr_assert(json_is_array(u) && (!e || s_num(e, "requests") == 0),
              "calls from before since were counted");
    json_decref(u);
}

Test(router_usage, a_stream_without_usage_is_estimated, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "gem", "{\"stream_usage\":false}"), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    char *body = s_body(false, "gem-x", true, 0);
    s_resp_t r = s_call(sv, OAI, NULL, body, 200);
    s_oai_stream_t s = s_oai_stream(r.body);
    cr_assert_str_eq(s.text, REPLY);
    char cost[32];
    cr_assert(s_field(r.trailers, "X-Vapora-Cost-USD", cost, sizeof cost) &&
                  atof(cost) > 0,
              "trailers: %s", r.trailers ? r.trailers : "(none)");
    json_t *e, *u = s_usage(sv, "group_by=provider", "provider", "gem", 1, &e);
    json_t *est = json_object_get(e, "estimated");
    char *d = json_dumps(u, 0);
    cr_assert(s_num(e, "output_tokens") > 0 && s_num(e, "cost_usd") > 0, "usage: %s",
              d);
    cr_assert(json_is_true(est) || json_number_value(est) > 0, "not estimated: %s", d);
    free(d);
    json_decref(u);
    /* The caller's usage chunk counts the estimate too (44 bytes ~ 11). */
    double out = s.usage ? s_num(s.usage, "completion_tokens") : 0;
    cr_assert(out >= 5 && out <= 22, "usage chunk %s in:\n%s", s.usage ? "" : "missing",
              r.body);
    json_decref(s.usage);
    s_resp_clear(&r);
    free(body);
}

/* ---- model choice: the body's model, else a route by task type, else the
 * default model ---- */

Test(router_routing, task_type_rules_and_the_default_model, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    static const struct {
        const char *model, *hdr, *want;
    } cases[] = {
        {"auto", "X-Vapora-Task-Type: design\r\n", "claude-x"},
        {NULL, "X-Vapora-Task-Type: architecture\r\n", "claude-x"},
        {"gpt-b", "X-Vapora-Task-Type: design\r\n", "gpt-b"},
        {NULL, "X-Vapora-Task-Type: chat\r\n", "gpt-a"},
        {NULL, NULL, "gpt-a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *body = s_body(false, cases[i].model, false, 0);
        s_resp_t r = s_call(sv, OAI, cases[i].hdr, body, 200);
        s_expect_field(r.head, "X-Vapora-Model", cases[i].want);
        s_resp_clear(&r);
        free(body);
    }
}

/* ---- usage events on NATS ---- */

static void s_nats_fini(void)
{
    th_cleanup();
    nats_CloseAndWait(2000);
}

/* With [nats] url set (nats-server as the supervisor's program), each
 * finished call publishes vapora.llm.usage with its role, provider, model,
 * tokens, cost and status. */
Test(router_usage, each_call_publishes_its_usage_on_nats, .timeout = 60,
     .fini = s_nats_fini)
{
    th_proc_t *fake = s_fake();
    s_opts_t o = {
        .extra = "[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"
                 "[program:nats]\ncommand = nats-server -a 127.0.0.1 -p @PORT2@\n"};
    th_sv_t *sv = s_start(fake, &o);
    /* Both workers say healthy once their NATS connection is up. */
    long long end = th_now_ms() + 10000;
    int healthy = 0;
    while (th_now_ms() < end && healthy < 10) {
        healthy = th_call(sv->ports[0], "GET", "/health", NULL, NULL, NULL, 2000) == 200
                      ? healthy + 1
                      : 0;
        th_sleep_ms(20);
    }
    cr_assert_eq(healthy, 10, "the workers never reported NATS up");
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", sv->ports[1]);
    natsConnection *nc = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, url), NATS_OK);
    natsSubscription *sub = NULL;
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, "vapora.llm.usage"), NATS_OK);
    cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
    char *body = s_body(false, "gpt-a", false, 0);
    s_resp_t r = s_call(sv, OAI, "X-Vapora-Role: developer\r\n", body, 200);
    s_resp_clear(&r);
    free(body);
    natsMsg *msg = NULL;
    cr_assert_eq(natsSubscription_NextMsg(&msg, sub, 5000), NATS_OK,
                 "no vapora.llm.usage event within 5 s");
    json_t *ev =
        json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    cr_assert_not_null(ev);
    cr_assert_str_eq(s_str(ev, "type"), "llm.usage");
    cr_assert_str_eq(s_str(ev, "role"), "developer");
    cr_assert_str_eq(s_str(ev, "provider"), "oai");
    cr_assert_str_eq(s_str(ev, "model"), "gpt-a");
    cr_assert_eq(s_num(ev, "input_tokens"), 10);
    cr_assert_eq(s_num(ev, "output_tokens"), 20);
    cr_assert(S_CLOSE(s_num(ev, "cost_usd"), 0.05), "cost %g", s_num(ev, "cost_usd"));
    cr_assert_eq(s_num(ev, "status"), 200);
    cr_assert(json_is_false(json_object_get(ev, "estimated")));
    json_decref(ev);
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

/* ---- upstreams by host name ---- */

/* A base_url with a host name goes through curl's threaded resolver, whose
 * own socket curl watches and closes by itself (each host:port is resolved
 * once); with providers refusing connections in between, fd numbers are
 * reused all the time. Calls keep working and no socket error is logged. */
Test(router_formats, providers_named_by_host_name_keep_working, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    int dead[3];
    for (int i = 0; i < 3; i++)
        dead[i] = th_free_port();
    char *extra = NULL;
    cr_assert_gt(
        asprintf(&extra,
                 "[provider:d0]\nkind = openai\nbase_url = http://localhost:%d/v1\n"
                 "models = by-name\n\n"
                 "[provider:d1]\nkind = anthropic\nbase_url = http://localhost:%d\n"
                 "models = by-name\n\n"
                 "[provider:d2]\nkind = ollama\nbase_url = http://localhost:%d\n"
                 "models = by-name\n\n"
                 "[provider:byname]\nkind = openai\n"
                 "base_url = http://localhost:%d/s/oai/v1\nmodels = by-name\n",
                 dead[0], dead[1], dead[2], fake->port),
        0);
    th_sv_t *sv = s_start(
        fake, &(s_opts_t){.workers = 1, .extra = extra, .chain = "d0, d1, d2, byname"});
    free(extra);
    for (int i = 0; i < 12; i++) {
        char *body = s_body(i % 2, "by-name", i % 4 < 2, 50);
        s_resp_t r = s_call(sv, i % 2 ? ANT : OAI, NULL, body, 200);
        cr_assert(strstr(r.body, "fox"), "call %d: %.300s", i, r.body);
        s_resp_clear(&r);
        free(body);
    }
    char *log = th_log(sv->proc);
    cr_assert_null(strstr(log, "curlm:"), "socket errors in the log:\n%s", log);
    cr_assert_null(strstr(log, "curl_multi_socket_action"), "curl errors:\n%s", log);
    free(log);
}

/* An OpenAI answer to an OpenAI caller is relayed byte for byte and only
 * its top-level usage is read: text that looks like a usage member inside
 * the content changes nothing. */
Test(router_formats, relayed_answers_keep_their_bytes_and_real_usage, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(
        th_fake_llm_config(fake, "oai",
                           "{\"reply\":\"x\\\"usage\\\":{\\\"prompt_tokens\\\":999}\","
                           "\"usage_in\":10,\"usage_out\":20}"),
        0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    char *body = s_body(false, "gpt-a", false, 0);
    s_resp_t r = s_call(sv, OAI, NULL, body, 200);
    free(body);
    char cost[32];
    cr_assert_not_null(s_field(r.head, "X-Vapora-Cost-USD", cost, sizeof cost));
    cr_assert_str_eq(cost, "0.050000");
    json_t *msg = json_object_get(json_array_get(json_object_get(r.json, "choices"), 0),
                                  "message");
    cr_assert_str_eq(s_str(msg, "content"), "x\"usage\":{\"prompt_tokens\":999}");
    cr_assert_eq(s_num(json_object_get(r.json, "usage"), "prompt_tokens"), 10);
    s_resp_clear(&r);
}

/* ---- a caller that leaves before its answer ---- */

/* Without a stream, nothing is written to the caller until the answer is
 * there; the router still notices the caller leave and stops the upstream
 * call at once (the provider's timeout is 120 s here). */
Test(router_streams, a_caller_leaving_a_whole_answer_aborts_the_upstream, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "claude", "{\"stall\":true}"), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    th_conn_t *c = th_connect(sv->ports[0], TH_IO_MS);
    cr_assert_not_null(c);
    char *body = s_body(false, "claude-x", false, 0);
    cr_assert_eq(th_send_request(c, "POST", OAI,
                                 "Content-Type: application/json\r\n"
                                 "X-Vapora-Provider: claude\r\n",
                                 body, strlen(body)),
                 0);
    free(body);
    long long end = th_now_ms() + 5000;
    while (th_now_ms() < end && s_fake_num(fake, "claude", "stalled") < 1)
        th_sleep_ms(20);
    cr_assert_eq(s_fake_num(fake, "claude", "stalled"), 1,
                 "the call never reached claude");
    th_conn_close(&c);
    end = th_now_ms() + 3000;
    while (th_now_ms() < end && s_fake_num(fake, "claude", "stall_released") < 1)
        th_sleep_ms(20);
    cr_assert_eq(s_fake_num(fake, "claude", "stall_released"), 1,
                 "the upstream call outlived its caller");
    /* The router goes on serving, and counted the abandoned call. */
    cr_assert_eq(th_fake_llm_config(fake, "claude", "{\"stall\":false}"), 0);
    body = s_body(false, "claude-x", false, 0);
    s_resp_t r = s_call(sv, OAI, "X-Vapora-Provider: claude\r\n", body, 200);
    s_resp_clear(&r);
    free(body);
}

/* A stream whose HTTP body ends cleanly but before the stream's own end
 * (no finish, no end event) is cut short, not complete: before any byte
 * reached the caller the next provider answers; after, the caller's stream
 * ends with an error event. */
Test(router_streams, a_stream_ending_before_its_end_is_not_an_answer, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"end_after\":0}"), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    char *body = s_body(false, "gpt-a", true, 0);
    s_resp_t r = s_call(sv, OAI, NULL, body, 200);
    char v[64];
    cr_assert_not_null(s_field(r.head, "X-Vapora-Provider", v, sizeof v));
    cr_assert_str_eq(v, "claude", "an empty stream was taken as oai's answer: %s",
                     r.body);
    cr_assert(strstr(r.body, "data: [DONE]") && !strstr(r.body, "\"error\""), "%s",
              r.body);
    s_resp_clear(&r);
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"end_after\":3}"), 0);
    r = s_call(sv, OAI, NULL, body, 200);
    cr_assert(strstr(r.body, "\"error\""), "a cut stream looked complete: %s", r.body);
    cr_assert_null(strstr(r.body, "\"finish_reason\":\"stop\""), "%s", r.body);
    s_resp_clear(&r);
    free(body);
}

/* A stream is bounded by its silences: oai (timeout 2 s) opens its stream,
 * then says nothing for 3 s. After 2 s of silence, with nothing sent to the
 * caller yet, the next provider answers instead of the caller hanging. */
Test(router_streams, a_silent_stream_times_out_by_its_silence, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = s_fake();
    cr_assert_eq(th_fake_llm_config(fake, "oai", "{\"chunk_delay_ms\":3000}"), 0);
    th_sv_t *sv = s_start(fake, &(s_opts_t){0});
    char *body = s_body(false, "gpt-a", true, 0);
    long long t0 = th_now_ms();
    s_resp_t r = s_call(sv, OAI, NULL, body, 200);
    long long took = th_now_ms() - t0;
    char v[64];
    cr_assert_not_null(s_field(r.head, "X-Vapora-Provider", v, sizeof v));
    cr_assert_str_eq(v, "claude");
    cr_assert(strstr(r.body, "data: [DONE]") && !strstr(r.body, "\"error\""), "%s",
              r.body);
    cr_assert(took >= 1500 && took < 2900, "the silence lasted %lld ms", took);
    cr_assert_eq(s_fake_num(fake, "oai", "aborted_streams"), 1);
    s_resp_clear(&r);
    free(body);
}
