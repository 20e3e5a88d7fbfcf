/* llm.c - see llm.h. */
#define _GNU_SOURCE
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hclient.h"
#include "sbuf.h"

/* An answer past this many bytes per max_tokens is cut (4 bytes a token
 * is typical; a provider ignoring max_tokens is not followed far). */
#define LLM_BYTES_PER_TOKEN 16

struct llm_call {
    hclient_req_t *req;
    llm_token_fn on_token;
    llm_done_fn done;
    void *ud;
    sbuf_t line;    /* the SSE event being assembled */
    sbuf_t content; /* the answer */
    char *model;
    json_t *usage;
    char *stream_error; /* an error event inside the stream */
    long max_bytes;
    bool cut;       /* stopped: over max_bytes */
};

json_t *llm_body(const llm_request_t *rq)
{
    const agent_def_t *a = rq->agent;
    return json_pack("{s:s,s:b,s:{s:b},s:f,s:I,s:[{s:s,s:s},{s:s,s:s}]}", "model", a->model,
                     "stream", 1, "stream_options", "include_usage", 1, "temperature",
                     a->temperature, "max_tokens", (json_int_t)a->max_tokens, "messages",
                     "role", "system", "content", a->system_prompt, "role", "user",
                     "content", rq->user_message);
}

static void s_chunk(llm_call_t *c, json_t *j)
{
    json_t *err = json_object_get(j, "error");
    if (err) {
        const char *m = json_string_value(json_object_get(err, "message"));
        free(c->stream_error);
        c->stream_error = xstrdup(m ? m : "the stream ended with an error");
        return;
    }
    const char *model = json_string_value(json_object_get(j, "model"));
    if (model && !c->model)
        c->model = xstrdup(model);
    json_t *u = json_object_get(j, "usage");
    if (json_is_object(u)) {
        json_decref(c->usage);
        c->usage = json_incref(u);
    }
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    const char *text = json_string_value(json_object_get(json_object_get(ch, "delta"),
                                                         "content"));
    size_t n = text ? strlen(text) : 0;
    if (n) {
        sbuf_append(&c->content, text, n);
        c->on_token(text, n, c->ud);
    }
}

/* One complete SSE line of the stream. */
static void s_line(llm_call_t *c, const char *line, size_t len)
{
    if (len < 5 || strncmp(line, "data:", 5) != 0)
        return; /* comments, event names, blank lines */
    line += 5, len -= 5;
    while (len && *line == ' ')
        line++, len--;
    if (len == 6 && strncmp(line, "[DONE]", 6) == 0)
        return;
    json_t *j = json_loadb(line, len, 0, NULL);
    if (j)
        s_chunk(c, j);
    json_decref(j);
}

static int s_on_data(const char *data, size_t len, void *ud)
{
    llm_call_t *c = ud;
    sbuf_append(&c->line, data, len);
    char *start = c->line.data, *nl;
    while ((nl = memchr(start, '\n', c->line.len - (size_t)(start - c->line.data)))) {
        size_t n = (size_t)(nl - start);
        s_line(c, start, n && start[n - 1] == '\r' ? n - 1 : n);
        start = nl + 1;
    }
    size_t rest = c->line.len - (size_t)(start - c->line.data);
    memmove(c->line.data, start, rest);
    c->line.len = rest;
    c->line.data[rest] = '\0';
    if (c->line.len > (1u << 20) || (long)c->content.len > c->max_bytes) {
        c->cut = true;
        return -1;
    }
    return 0;
}

/* The router's error answer: {"error":{"message","type","code"}}. */
static void s_error_body(const char *body, size_t len, char *code, size_t clen, char *msg,
                         size_t mlen)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *t = json_string_value(json_object_get(e, "type"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(code, clen, "%s", t ? t : "router_error");
    snprintf(msg, mlen, "%s", m ? m : "the router refused the request");
    json_decref(j);
}

static void s_fill_failure(llm_result_t *res, long status, CURLcode rc, const char *body,
                           size_t len, char *code, size_t clen, char *msg, size_t mlen)
{
    if (status == 0) {
        bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
        snprintf(code, clen, "%s", timeout ? "timeout" : "unreachable");
        snprintf(msg, mlen, "the router %s: %s", timeout ? "did not answer in time"
                                                         : "could not be reached",
                 curl_easy_strerror(rc));
        res->retriable = true;
        return;
    }
    s_error_body(body, len, code, clen, msg, mlen);
    res->retriable = strcmp(code, "budget_exceeded") != 0 &&
                     (status >= 500 || status == 429 || status == 408);
}

static void s_on_done(hclient_req_t *r, long status, const char *body, size_t len,
                      CURLcode rc, void *ud)
{
    llm_call_t *c = ud;
    char code[64] = "", msg[512] = "";
    const char *cost = hclient_header(r, "X-Vapora-Cost-USD");
    llm_result_t res = {.status = status, .content = c->content.data ? c->content.data : "",
                        .model = c->model ? c->model : "",
                        .provider = hclient_header(r, "X-Vapora-Provider"),
                        .usage = c->usage, .cost_usd = cost ? atof(cost) : 0,
                        .output_bytes = (long)c->content.len};
    if (c->cut) {
        snprintf(code, sizeof code, "token_limit");
        snprintf(msg, sizeof msg, "the answer went past the agent's max_tokens");
    } else if (rc == CURLE_OK && status == 200 && c->stream_error) {
        snprintf(code, sizeof code, "upstream_error");
        snprintf(msg, sizeof msg, "%s", c->stream_error);
        res.retriable = true;
    } else if (rc == CURLE_OK && status == 200) {
        res.ok = true;
    } else {
        s_fill_failure(&res, rc == CURLE_OK ? status : 0, rc, body, len, code, sizeof code,
                       msg, sizeof msg);
    }
    res.error_code = code;
    res.error = msg;
    if (!res.provider)
        res.provider = "";
    c->req = NULL;
    c->done(&res, c->ud);
    llm_cancel(NULL, &c);
}

llm_call_t *llm_start(curlm_t *m, const agents_config_t *cfg, const llm_request_t *rq,
                      llm_token_fn on_token, llm_done_fn done, void *ud)
{
    llm_call_t *c = xcalloc(1, sizeof *c);
    *c = (llm_call_t){.on_token = on_token, .done = done, .ud = ud,
                      .max_bytes = rq->agent->max_tokens * LLM_BYTES_PER_TOKEN};
    json_t *b = llm_body(rq);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    char url[1024], role[128], type[200], auth[600];
    snprintf(url, sizeof url, "%s/v1/chat/completions", cfg->router_url);
    snprintf(role, sizeof role, "X-Vapora-Role: %s", rq->agent->role);
    snprintf(type, sizeof type, "X-Vapora-Task-Type: %s", rq->task_type);
    const char *key = rq->router_key ? rq->router_key : "";
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *hdr[] = {"Content-Type: application/json", "Accept: text/event-stream", role,
                         type, key[0] ? auth : NULL, NULL};
    hclient_opts_t o = {.method = "POST", .url = url, .headers = hdr, .body = body,
                        .body_len = strlen(body), .timeout_ms = rq->timeout_ms,
                        .on_data = s_on_data};
    c->req = hclient_start(m, &o, s_on_done, c);
    free(body);
    if (!c->req)
        llm_cancel(NULL, &c);
    return c;
}

void llm_cancel(curlm_t *m, llm_call_t **cp)
{
    llm_call_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    if (c->req)
        hclient_abort(m, &c->req);
    sbuf_free(&c->line);
    sbuf_free(&c->content);
    free(c->model);
    free(c->stream_error);
    json_decref(c->usage);
    free(c);
    *cp = NULL;
}
