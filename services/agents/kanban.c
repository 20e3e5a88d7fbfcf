/* kanban.c - see kanban.h. */
#define _GNU_SOURCE
#include "kanban.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "file.h"
#include "hclient.h"
#include "list.h"
#include "log.h"

#define KANBAN_TIMEOUT_MS 15000
#define KANBAN_TOKEN_SLACK_MS 60000 /* log in again this long before expiry */

typedef struct call {
    kanban_t *k;
    const char *method;
    int64_t if_match; /* -1: none */
    char *path, *body;
    kanban_fn fn;
    void *ud;
    bool retried; /* after a 401, once */
    bool quiet;   /* a 2xx answer's body is not wanted (not parsed) */
    hclient_req_t *req;
    list_t link; /* k->waiting, or k->active */
} call_t;

struct kanban {
    loop_t *loop;
    curlm_t *m;
    const agents_config_t *cfg;
    char *token;
    uint64_t token_until; /* loop ms */
    bool logging_in;
    hclient_req_t *login;
    list_t waiting; /* calls waiting for a token */
    list_t active;  /* calls in flight */
};

static void s_call_free(call_t *c)
{
    list_remove(&c->link);
    free(c->path);
    free(c->body);
    free(c);
}

static void s_send(kanban_t *k, call_t *c);

static void s_call_done(hclient_req_t *r, long status, const char *body, size_t len,
                        CURLcode rc, void *ud)
{
    (void)r;
    call_t *c = ud;
    kanban_t *k = c->k;
    c->req = NULL;
    if (status == 401 && !c->retried) {
        c->retried = true;
        free(k->token);
        k->token = NULL; /* log in again, then resend */
        list_remove(&c->link);
        list_push_back(&k->waiting, &c->link);
        s_send(k, NULL);
        return;
    }
    bool wanted = !(c->quiet && status >= 200 && status < 300);
    json_t *j = len && wanted ? json_loadb(body, len, 0, NULL) : NULL;
    c->fn((int)status, j, status ? "" : curl_easy_strerror(rc), c->ud);
    json_decref(j);
    s_call_free(c);
}

static void s_start_call(kanban_t *k, call_t *c)
{
    char url[1024], auth[2048];
    snprintf(url, sizeof url, "%s%s", k->cfg->backend_url, c->path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", k->token);
    const char *hdr[] = {auth, "Content-Type: application/json", NULL, NULL};
    char ifm[64];
    if (c->if_match >= 0) {
        snprintf(ifm, sizeof ifm, "If-Match: %lld", (long long)c->if_match);
        hdr[2] = ifm;
    }
    hclient_opts_t o = {.method = c->method, .url = url, .headers = hdr, .body = c->body,
                        .body_len = c->body ? strlen(c->body) : 0,
                        .timeout_ms = KANBAN_TIMEOUT_MS};
    list_push_back(&k->active, &c->link);
    c->req = hclient_start(k->m, &o, s_call_done, c);
    if (!c->req) {
        c->fn(0, NULL, "the request could not be started", c->ud);
        s_call_free(c);
    }
}

static void s_fail_waiting(kanban_t *k, const char *why)
{
    list_for_each_safe(it, nx, &k->waiting) {
        call_t *c = list_item(it, call_t, link);
        c->fn(0, NULL, why, c->ud);
        s_call_free(c);
    }
}

static void s_login_done(hclient_req_t *r, long status, const char *body, size_t len,
                         CURLcode rc, void *ud)
{
    (void)r;
    kanban_t *k = ud;
    k->login = NULL;
    k->logging_in = false;
    json_t *j = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    json_int_t ttl = json_integer_value(json_object_get(j, "expires_in"));
    if (!tok) {
        char why[256];
        snprintf(why, sizeof why, "cannot log in to the backend as %s: %s",
                 k->cfg->backend_user,
                 status ? (status == 401 ? "wrong password" : "unexpected answer")
                        : curl_easy_strerror(rc));
        log_warn("agents: %s (HTTP %ld)", why, status);
        json_decref(j);
        s_fail_waiting(k, why);
        return;
    }
    free(k->token);
    k->token = xstrdup(tok);
    uint64_t life = ttl > 0 ? (uint64_t)ttl * 1000 : 300000;
    k->token_until = loop_now_ms(k->loop) + (life > 2 * KANBAN_TOKEN_SLACK_MS
                                                 ? life - KANBAN_TOKEN_SLACK_MS
                                                 : life / 2);
    json_decref(j);
    list_for_each_safe(it, nx, &k->waiting) {
        call_t *c = list_item(it, call_t, link);
        list_remove(it);
        s_start_call(k, c);
    }
}

/* The password: from the config, else from the file the backend wrote. */
static char *s_password(const kanban_t *k)
{
    if (k->cfg->backend_password[0])
        return xstrdup(k->cfg->backend_password);
    const char *path = k->cfg->backend_password_file;
    char *pw = file_read_all(path, NULL);
    if (!pw)
        log_warn("agents: cannot read %s: %s", path, strerror(errno));
    if (pw)
        pw[strcspn(pw, "\r\n")] = '\0';
    return pw;
}

static void s_login(kanban_t *k)
{
    char *pw = s_password(k);
    if (!pw) {
        s_fail_waiting(k, "no password for the backend (set [agents] backend_password)");
        return;
    }
    json_t *b = json_pack("{s:s,s:s}", "username", k->cfg->backend_user, "password", pw);
    char *body = json_dumps(b, JSON_COMPACT);
    char url[1024];
    snprintf(url, sizeof url, "%s/api/v1/auth/login", k->cfg->backend_url);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    hclient_opts_t o = {.method = "POST", .url = url, .headers = hdr, .body = body,
                        .body_len = strlen(body), .timeout_ms = KANBAN_TIMEOUT_MS};
    k->logging_in = true;
    k->login = hclient_start(k->m, &o, s_login_done, k);
    if (!k->login) {
        k->logging_in = false;
        s_fail_waiting(k, "the login request could not be started");
    }
    free(body);
    json_decref(b);
    free(pw);
}

/* Sends c (NULL: only what waits) once there is a fresh token. */
static void s_send(kanban_t *k, call_t *c)
{
    bool fresh = k->token && loop_now_ms(k->loop) < k->token_until;
    if (c && fresh) {
        s_start_call(k, c);
        return;
    }
    if (c)
        list_push_back(&k->waiting, &c->link);
    if (!k->logging_in && !list_empty(&k->waiting))
        s_login(k);
}

static void s_queue(kanban_t *k, const char *method, int64_t if_match, char *path,
                    char *body, bool quiet, kanban_fn fn, void *ud)
{
    call_t *c = xcalloc(1, sizeof *c);
    *c = (call_t){.k = k, .method = method, .if_match = if_match, .path = path,
                  .body = body, .quiet = quiet, .fn = fn, .ud = ud};
    list_init(&c->link);
    s_send(k, c);
}

void kanban_get_task(kanban_t *k, const char *id, kanban_fn fn, void *ud)
{
    s_queue(k, "GET", -1, xasprintf("/api/v1/tasks/%s", id), NULL, false, fn, ud);
}

void kanban_patch_task(kanban_t *k, const char *id, int64_t version, const json_t *patch,
                       kanban_fn fn, void *ud)
{
    s_queue(k, "PATCH", version, xasprintf("/api/v1/tasks/%s", id),
            json_dumps(patch, JSON_COMPACT), false, fn, ud);
}

void kanban_patch_task_quiet(kanban_t *k, const char *id, int64_t version,
                             const json_t *patch, kanban_fn fn, void *ud)
{
    s_queue(k, "PATCH", version, xasprintf("/api/v1/tasks/%s", id),
            json_dumps(patch, JSON_COMPACT), true, fn, ud);
}

kanban_t *kanban_new(loop_t *loop, curlm_t *m, const agents_config_t *cfg)
{
    kanban_t *k = xcalloc(1, sizeof *k);
    k->loop = loop;
    k->m = m;
    k->cfg = cfg;
    list_init(&k->waiting);
    list_init(&k->active);
    return k;
}

void kanban_destroy(kanban_t **kp)
{
    kanban_t *k = kp ? *kp : NULL;
    if (!k)
        return;
    hclient_abort(k->m, &k->login);
    list_for_each_safe(it, nx, &k->active) {
        call_t *c = list_item(it, call_t, link);
        hclient_abort(k->m, &c->req);
        s_call_free(c);
    }
    list_for_each_safe(it, nx, &k->waiting)
        s_call_free(list_item(it, call_t, link));
    free(k->token);
    free(k);
    *kp = NULL;
}
