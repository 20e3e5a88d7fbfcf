/* router_fixture.c - see router_fixture.h. */
#define _GNU_SOURCE
#include "router_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- the router and the fake ---- */

char *llm_config(int fake_port, const llm_opts_t *o)
{
    char *t = NULL;
    const char *def = o->default_budget ? o->default_budget : LLM_DEFAULT_BUDGET;
    int n = asprintf(
        &t,
        "shutdown_timeout = 3\n\n"
        "[service:llm-router]\nlisten = %s:@PORT1@\nworkers = %d\n"
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
        "cooldown_failures = %d\ncooldown = %d\n\n"
        "[route:arch]\ntask_types = architecture, design\nmodel = claude-x\n\n"
        "%s%s%s%s",
        o->listen_host ? o->listen_host : "127.0.0.1", o->workers ? o->workers : 2,
        o->router ? o->router : "", fake_port, fake_port, fake_port, fake_port,
        o->chain ? o->chain : "oai, claude, gem, local", o->retries,
        o->cooldown_failures ? o->cooldown_failures : 3,
        o->cooldown_s ? o->cooldown_s : 5, o->extra ? o->extra : "",
        def && *def ? "\n[budget:default]\nwindow = monthly\nlimit_usd = " : "",
        def ? def : "", def && *def ? "\n" : "");
    cr_assert_gt(n, 0);
    return t;
}

th_proc_t *llm_fake(void)
{
    th_proc_t *fake = th_fake_llm_start();
    cr_assert_not_null(fake, "the fake provider did not start");
    const char *scopes[] = {"oai", "claude", "gem", "local"};
    for (size_t i = 0; i < 4; i++)
        llm_fake_set(fake, scopes[i], "{\"reply\":\"" LLM_REPLY "\"}");
    return fake;
}

th_sv_t *llm_start_in(const char *data_dir, const char *tmpl, int workers)
{
    th_sv_t *sv = th_sv_start_in(data_dir, tmpl);
    cr_assert_not_null(sv, "the supervisor did not start (its log is on stderr)");
    th_assert_settled(sv, "llm-router", (unsigned)workers, 10000);
    /* Workers starting together on the ledger all come up the first time. */
    th_assert_first_start(sv, "llm-router");
    long long end = th_now_ms() + 10000;
    int st = 0;
    while (th_now_ms() < end && st != 200) {
        /* Without a key from loopback (anonymous = loopback), else with the
         * key the tests that refuse anonymous callers configure. */
        st = th_call(sv->ports[0], "GET", "/v1/models", NULL, NULL, NULL, 2000);
        if (st == 401)
            st = th_call(sv->ports[0], "GET", "/v1/models",
                         "Authorization: Bearer test-key-1\r\n", NULL, NULL, 2000);
        if (st != 200)
            th_sleep_ms(50);
    }
    cr_assert_eq(st, 200, "GET /v1/models never answered 200 (last %d)", st);
    return sv;
}

th_sv_t *llm_start(const th_proc_t *fake, const llm_opts_t *o)
{
    char *tmpl = llm_config(fake->port, o);
    th_sv_t *sv = llm_start_in(NULL, tmpl, o->workers ? o->workers : 2);
    free(tmpl);
    return sv;
}

pid_t llm_worker_pid(th_sv_t *sv)
{
    json_t *st = th_sv_status(sv);
    json_t *w = json_array_get(
        json_object_get(th_sv_find(st, "services", "llm-router"), "workers"), 0);
    pid_t pid = (pid_t)th_int(w, "pid");
    json_decref(st);
    cr_assert_gt(pid, 0, "no llm-router worker in /status");
    return pid;
}

/* ---- requests, read raw ---- */

void llm_resp_clear(llm_resp_t *r)
{
    free(r->head);
    free(r->body);
    free(r->trailers);
    json_decref(r->json);
    *r = (llm_resp_t){0};
}

/* Reads the chunked body that starts at p (up to lim) into r->body (one
 * byte allocated), and its trailer lines into r->trailers. Returns 1 when
 * it is whole, 0 when more must come. */
static int s_parse_chunked(const char *p, const char *lim, llm_resp_t *r)
{
    size_t blen = 0;
    r->body = realloc(r->body, (size_t)(lim - p) + 1); /* the body is no longer */
    for (;;) {
        const char *nl = memmem(p, (size_t)(lim - p), "\r\n", 2);
        size_t size = nl ? strtoul(p, NULL, 16) : 0;
        if (!nl || (size && (size_t)(lim - nl) < size + 4))
            return 0;
        p = nl + 2;
        if (size == 0)
            break;
        memcpy(r->body + blen, p, size);
        r->body[blen += size] = '\0';
        p += size + 2;
    }
    const char *tend = memmem(p - 2, (size_t)(lim - p + 2), "\r\n\r\n", 4);
    if (!tend)
        return 0;
    r->trailers = strndup(p, (size_t)(tend + 2 - p));
    return 1;
}

/* Parses buf as one response into r. Returns 1 when it is whole, 0 when
 * more must come (r is then cleared). At eof a body without length ends. */
static int s_parse(const char *buf, size_t len, bool eof, llm_resp_t *r)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4), *lim = buf + len;
    if (!end || sscanf(buf, "HTTP/1.%*1[01] %3d", &r->status) != 1)
        return 0;
    const char *eol = strstr(buf, "\r\n");
    r->head = strndup(eol + 2, (size_t)(end - eol));
    r->body = calloc(1, 1);
    const char *p = end + 4;
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        if (!s_parse_chunked(p, lim, r))
            goto more;
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
    llm_resp_clear(r);
    return 0;
}

/* Whether buf may hold a whole response yet: a chunked one ends with an
 * empty line (so a stream of megabytes is not parsed again at each read). */
static bool s_may_be_whole(const char *buf, size_t len, bool eof)
{
    const char *head = memmem(buf, len, "\r\n\r\n", 4);
    if (eof || !head)
        return true;
    const char *te =
        memmem(buf, (size_t)(head - buf), "\r\nTransfer-Encoding: chunked", 28);
    return !te || (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0);
}

llm_resp_t llm_send(int port, const char *method, const char *path, const char *hdrs,
                    const char *body, int timeout_ms)
{
    th_conn_t *c = th_must_connect(port);
    /* A refused body (413) may fail to leave: the answer is read anyway. */
    th_send_request(c, method, path, hdrs, body, body ? strlen(body) : 0);
    llm_resp_t r = {0};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    long long end = th_now_ms() + timeout_ms;
    bool eof = false, whole = false;
    while (!whole && !eof && th_now_ms() < end) {
        struct pollfd pfd = {.fd = th_conn_fd(c), .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - th_now_ms())) <= 0)
            continue;
        if (cap < len + 65537) /* a stream of megabytes: grow geometrically */
            buf = realloc(buf, cap = 2 * (len + 65537));
        ssize_t n = recv(pfd.fd, buf + len, 65536, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        eof = n <= 0;
        len += n > 0 ? (size_t)n : 0;
        buf[len] = '\0';
        if (s_may_be_whole(buf, len, eof))
            whole = s_parse(buf, len, eof, &r);
    }
    th_conn_close(&c);
    cr_assert(whole, "%s %s: no whole response within %d ms (got %zu bytes: %.300s)",
              method, path, timeout_ms, len, buf ? buf : "");
    free(buf);
    return r;
}

llm_resp_t llm_call(th_sv_t *sv, const char *path, const char *hdrs, const char *body,
                    int want)
{
    char h[1024];
    snprintf(h, sizeof h, "Content-Type: application/json\r\nTE: trailers\r\n%s%s",
             strcmp(path, LLM_ANT) == 0 ? "anthropic-version: 2023-06-01\r\n" : "",
             hdrs ? hdrs : "");
    llm_resp_t r = llm_send(sv->ports[0], "POST", path, h, body, 10000);
    cr_assert_eq(r.status, want, "POST %s: %d, want %d: %.400s", path, r.status, want,
                 r.body);
    return r;
}

char *llm_body(bool ant, const char *model, bool stream, int max_tokens)
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

const char *llm_field(const char *lines, const char *name, char *out, size_t n)
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

void llm_expect_field(const char *lines, const char *name, const char *want)
{
    char v[128];
    const char *got = llm_field(lines, name, v, sizeof v);
    cr_assert(got && strcmp(got, want) == 0, "%s: got %s, want %s (in:\n%s)", name,
              got ? got : "(none)", want, lines ? lines : "");
}

/* ---- what the router and the fake say ---- */

json_t *llm_get(th_sv_t *sv, const char *path)
{
    char *body = NULL;
    int st = th_call(sv->ports[0], "GET", path, NULL, NULL, &body, TH_IO_MS);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

long llm_fake_num(const th_proc_t *fake, const char *scope, const char *key)
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

void llm_fake_set(const th_proc_t *fake, const char *scope, const char *json)
{
    cr_assert_eq(th_fake_llm_config(fake, scope, json), 0,
                 "the fake did not take %s for scope %s", json, scope ? scope : "-");
}

long llm_fake_wait(const th_proc_t *fake, const char *scope, const char *key, long want,
                   int timeout_ms)
{
    long long end = th_now_ms() + timeout_ms;
    long v;
    while ((v = llm_fake_num(fake, scope, key)) < want && th_now_ms() < end)
        th_sleep_ms(20);
    return v;
}

json_t *llm_fake_last(const th_proc_t *fake, const char *scope)
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

llm_oai_stream_t llm_oai_stream(const char *body)
{
    llm_oai_stream_t s = {0};
    json_t *evs = s_sse(body), *ev;
    size_t i, n = json_array_size(evs);
    json_array_foreach(evs, i, ev)
    {
        const char *d = th_str(ev, "data");
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
            cr_assert_str_eq(th_str(ch, "object"), "chat.completion.chunk", "%s", d);
            json_t *choices = json_object_get(ch, "choices");
            json_t *c0 = json_array_get(choices, 0);
            const char *t = th_str(json_object_get(c0, "delta"), "content");
            strncat(s.text, t ? t : "", sizeof s.text - strlen(s.text) - 1);
            if (th_str(c0, "finish_reason"))
                snprintf(s.finish, sizeof s.finish, "%s", th_str(c0, "finish_reason"));
            if (json_array_size(choices) == 0 &&
                json_is_object(json_object_get(ch, "usage")))
                s.usage = json_incref(json_object_get(ch, "usage"));
        }
        json_decref(ch);
    }
    json_decref(evs);
    return s;
}

llm_ant_stream_t llm_ant_stream(const char *body)
{
    llm_ant_stream_t s = {.output_tokens = -1};
    json_t *evs = s_sse(body), *ev;
    size_t i;
    const char *prev = "";
    json_array_foreach(evs, i, ev)
    {
        const char *name = th_str(ev, "event"), *d = th_str(ev, "data");
        cr_assert(name && d, "an event without a name or data in:\n%s", body);
        json_t *j = json_loads(d, 0, NULL);
        cr_assert_not_null(j, "event %s: data is not JSON: %s", name, d);
        cr_assert_str_eq(th_str(j, "type"), name, "event %s has data %s", name, d);
        if (strcmp(name, "content_block_delta") == 0) {
            json_t *delta = json_object_get(j, "delta");
            cr_assert_str_eq(th_str(delta, "type"), "text_delta", "%s", d);
            strncat(s.text, th_str(delta, "text"), sizeof s.text - strlen(s.text) - 1);
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

void llm_expect_fallback(th_sv_t *sv, const char *provider, const char *model,
                         const char *attempts)
{
    char *body = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    const char *content =
        th_str(json_object_get(json_array_get(json_object_get(r.json, "choices"), 0),
                               "message"),
               "content");
    cr_assert_str_eq(content ?: "", LLM_REPLY, "%s", r.body);
    llm_expect_field(r.head, "X-Vapora-Provider", provider);
    llm_expect_field(r.head, "X-Vapora-Model", model);
    llm_expect_field(r.head, "X-Vapora-Attempts", attempts);
    llm_resp_clear(&r);
    free(body);
}

json_t *llm_usage(th_sv_t *sv, const char *query, const char *key, const char *value,
                  double want, json_t **entry)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/usage?%s", query);
    json_t *u = NULL;
    long long end = th_now_ms() + 5000;
    do {
        json_decref(u);
        u = llm_get(sv, path);
        *entry = th_find(u, key, value);
        if (*entry && th_num(*entry, "requests") == want)
            break;
        th_sleep_ms(100);
    } while (th_now_ms() < end);
    cr_assert_not_null(u, "GET %s failed", path);
    return u;
}
