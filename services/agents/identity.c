/* identity.c - see identity.h. */
#define _GNU_SOURCE
#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hclient.h"
#include "list.h"

#define IDENTITY_SLOTS 256
#define IDENTITY_TOKEN_MAX 4096

typedef struct verdict {
    char *token;
    int role;        /* ROLE_NONE: refused */
    uint64_t until;  /* loop ms */
} verdict_t;

typedef struct ask {
    identity_t *id;
    http_req_t *req;
    int min_role;
    identity_fn fn;
    void *ud;
    char *token;
    hclient_req_t *hr;
    list_t link;
    bool gone;
} ask_t;

struct identity {
    loop_t *loop;
    curlm_t *m;
    const agents_config_t *cfg;
    verdict_t slots[IDENTITY_SLOTS];
    list_t asks;
};

static int s_role(const char *r)
{
    return !r ? ROLE_NONE
           : strcmp(r, "owner") == 0  ? ROLE_OWNER
           : strcmp(r, "member") == 0 ? ROLE_MEMBER
           : strcmp(r, "viewer") == 0 ? ROLE_VIEWER
                                      : ROLE_NONE;
}

static verdict_t *s_slot(identity_t *id, const char *token)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = token; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &id->slots[h % IDENTITY_SLOTS];
}

static void s_decide(http_req_t *req, int role, int min_role, identity_fn fn, void *ud)
{
    if (role == ROLE_NONE)
        http_reply_error(req, 401, "unauthorized", "the token is invalid or expired");
    else if (role < min_role)
        http_reply_error(req, 403, "forbidden", "your role may not do this");
    else
        fn(req, ud);
}

static void s_ask_free(ask_t *a)
{
    list_remove(&a->link);
    free(a->token);
    free(a);
}

static void s_asked(hclient_req_t *r, long status, const char *body, size_t len,
                    CURLcode rc, void *ud)
{
    (void)r;
    (void)rc;
    ask_t *a = ud;
    identity_t *id = a->id;
    a->hr = NULL;
    json_t *j = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    int role = s_role(json_string_value(json_object_get(j, "role")));
    json_decref(j);
    if (status == 200 || status == 401) {
        verdict_t *v = s_slot(id, a->token);
        free(v->token);
        *v = (verdict_t){xstrdup(a->token), role, loop_now_ms(id->loop) + IDENTITY_TTL_MS};
    }
    if (status == 200 || status == 401)
        s_decide(a->req, role, a->min_role, a->fn, a->ud);
    else
        http_reply_error(a->req, 503, "backend_unavailable",
                         "the backend, which checks tokens, cannot be asked");
    s_ask_free(a);
}

static void s_ask(identity_t *id, http_req_t *req, const char *token, int min_role,
                  identity_fn fn, void *ud)
{
    ask_t *a = xcalloc(1, sizeof *a);
    *a = (ask_t){.id = id, .req = req, .min_role = min_role, .fn = fn, .ud = ud,
                 .token = xstrdup(token)};
    list_push_back(&id->asks, &a->link);
    char url[1024], auth[IDENTITY_TOKEN_MAX + 32];
    snprintf(url, sizeof url, "%s/api/v1/auth/me", id->cfg->backend_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *hdr[] = {auth, NULL};
    hclient_opts_t o = {.method = "GET", .url = url, .headers = hdr, .timeout_ms = 5000};
    a->hr = hclient_start(id->m, &o, s_asked, a);
    if (!a->hr) {
        http_reply_error(req, 503, "backend_unavailable", "the backend cannot be asked");
        s_ask_free(a);
    }
}

void identity_check(identity_t *id, http_req_t *req, int min_role, identity_fn fn, void *ud)
{
    const char *h = http_req_header(req, "Authorization");
    const char *tok = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    if (!tok)
        tok = http_req_query(req, "token"); /* browsers' EventSource sets no header */
    if (!tok || !*tok || strlen(tok) > IDENTITY_TOKEN_MAX ||
        strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
            strlen(tok)) {
        http_reply_error(req, 401, "unauthorized", "a valid bearer token is required");
        return;
    }
    verdict_t *v = s_slot(id, tok);
    if (v->token && strcmp(v->token, tok) == 0 && loop_now_ms(id->loop) < v->until) {
        s_decide(req, v->role, min_role, fn, ud);
        return;
    }
    s_ask(id, req, tok, min_role, fn, ud);
}

identity_t *identity_new(loop_t *loop, curlm_t *m, const agents_config_t *cfg)
{
    identity_t *id = xcalloc(1, sizeof *id);
    id->loop = loop;
    id->m = m;
    id->cfg = cfg;
    list_init(&id->asks);
    return id;
}

void identity_destroy(identity_t **ip)
{
    identity_t *id = ip ? *ip : NULL;
    if (!id)
        return;
    list_for_each_safe(it, nx, &id->asks) {
        ask_t *a = list_item(it, ask_t, link);
        hclient_abort(id->m, &a->hr);
        s_ask_free(a);
    }
    for (size_t i = 0; i < IDENTITY_SLOTS; i++)
        free(id->slots[i].token);
    free(id);
    *ip = NULL;
}
