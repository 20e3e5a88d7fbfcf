/* agents_fixture.c - see agents_fixture.h. */
#define _GNU_SOURCE
#include "agents_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ag_agents(void)
{
    return "[agent:dev-a]\nrole = developer\nmodel = gpt-a\nmax_concurrent = 2\n"
           "system_prompt = You are developer A of a software team.\n\n"
           "[agent:dev-b]\nrole = developer\nmodel = gpt-a\nmax_concurrent = 2\n"
           "system_prompt = You are developer B of a software team.\n\n"
           "[agent:arch]\nrole = architect\nmodel = gpt-a\nmax_concurrent = 2\n"
           "task_types = architecture, design\n"
           "system_prompt = You are the architect.\n\n"
           "[agent:qa]\nrole = tester\nmodel = gpt-a\nmax_concurrent = 2\n"
           "system_prompt = You are the tester.\n\n";
}

char *ag_config(int fake, const ag_opts_t *o)
{
    return th_fmt(
        "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"
        "[backend]\nadmin_password = " AG_PW "\nagents_password = " AG_AGENTS_PW "\n\n"
        "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = 1\n\n"
        "[service:llm-router]\nlisten = 127.0.0.1:@PORT3@\nworkers = 1\n\n"
        "[service:agents]\nlisten = 127.0.0.1:@PORT4@\nworkers = %d\nshutdown_timeout = 30\n\n"
        "[program:nats]\ncommand = nats-server -js -a 127.0.0.1 -p @PORT2@ -sd @DATA@/nats\n\n"
        "[router]\ndefault_max_tokens = 1000\n\n"
        "[caller:agents]\nkey_file = @DATA@/router-key-agents\nroles = *\n\n"
        "[budget:default]\nlimit_usd = 1000000\n\n"
        "[provider:oai]\nkind = openai\nbase_url = http://127.0.0.1:%d/s/oai/v1\n"
        "api_key = sk-oai\nmodels = gpt-a\ntimeout = 30\n\n"
        "[model:gpt-a]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 2\n\n"
        "[routing]\ndefault_model = gpt-a\nfallback_chain = oai\nretries = 0\n\n"
        "[agents]\nrouter_url = http://127.0.0.1:@PORT3@\n"
        "backend_url = http://127.0.0.1:@PORT1@\nbackend_password = " AG_AGENTS_PW "\n"
        "ack_wait = 5\nmax_deliveries = 3\n%s\n%s",
        o->agents_workers ? o->agents_workers : 1, fake, o->agents ? o->agents : "",
        o->extra ? o->extra : ag_agents());
}

/* The backend makes the agents user at its first start; an older backend
 * does not, and then the admin does. */
static void s_agents_user(ag_env_t *e)
{
    th_resp_t *r = NULL;
    int rc = th_request(e->be, "POST", TH_BE_API "/auth/login", TH_JSON_CT,
                        "{\"username\":\"agents\",\"password\":\"" AG_AGENTS_PW "\"}", &r);
    bool ok = rc == 0 && r->status == 200;
    th_resp_free(&r);
    if (ok)
        return;
    th_be_call(e->be, "POST", "/api/v1/users", e->tok,
               "{\"username\":\"agents\",\"password\":\"" AG_AGENTS_PW
               "\",\"role\":\"member\"}",
               201);
}

/* Until the agents take assignments (their consumer is bound). */
static void s_wait_ready(ag_env_t *e)
{
    long long end = th_now_ms() + 20000;
    json_t *a = NULL;
    do {
        a = ag_get(e, "/api/v1/agents", 200);
        const char *st = th_str(json_array_get(json_object_get(a, "items"), 0), "status");
        if (st && strcmp(st, "offline") != 0)
            return;
        th_sleep_ms(100);
    } while (th_now_ms() < end);
    cr_assert_fail("the agents stayed offline: %s", th_dump(a));
}

ag_env_t ag_start(const ag_opts_t *o)
{
    ag_env_t e = {0};
    e.fake = th_fake_llm_start();
    cr_assert_not_null(e.fake, "the fake provider did not start");
    const char *fake_cfg = o->fake ? o->fake : "{\"reply\":\"" AG_REPLY "\"}";
    cr_assert_eq(th_fake_llm_config(e.fake, "oai", fake_cfg), 0);
    e.sv = th_must_sv_start(ag_config(e.fake->port, o));
    e.be = e.sv->ports[0];
    e.router = e.sv->ports[2];
    e.agents = e.sv->ports[3];
    e.tok = th_be_login(e.be, "admin", AG_PW, 20000);
    s_agents_user(&e);
    th_assert_settled(e.sv, "agents", o->agents_workers ? o->agents_workers : 1, 20000);
    th_assert_settled(e.sv, "llm-router", 1, 20000);
    e.project = th_be_call(e.be, "POST", "/api/v1/projects", e.tok,
                           "{\"name\":\"agents at work\"}", 201);
    s_wait_ready(&e);
    return e;
}

void ag_fini(void)
{
    th_cleanup();
    nats_CloseAndWait(2000);
}

json_t *ag_task(ag_env_t *e, const char *title, const char *desc)
{
    json_t *body = json_pack("{s:s,s:s}", "title", title, "description", desc ? desc : "");
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *t = th_be_call(e->be, "POST",
                           th_fmt("/api/v1/projects/%s/tasks", th_str(e->project, "id")),
                           e->tok, th_fmt("%s", txt), 201);
    free(txt);
    return t;
}

json_t *ag_assign(ag_env_t *e, const json_t *task, const char *body)
{
    return th_be_call(e->be, "POST", th_fmt("/api/v1/tasks/%s/assign", th_str(task, "id")),
                      e->tok, body, 202);
}

json_t *ag_wait_status(ag_env_t *e, const json_t *task, const char *status, int timeout_ms)
{
    long long end = th_now_ms() + timeout_ms;
    json_t *t = NULL;
    do {
        t = th_be_call(e->be, "GET", th_fmt("/api/v1/tasks/%s", th_str(task, "id")), e->tok,
                       NULL, 200);
        if (strcmp(th_str(t, "status"), status) == 0)
            return t;
        th_sleep_ms(50);
    } while (th_now_ms() < end);
    cr_assert_fail("the task stayed %s, not %s: %s", th_str(t, "status"), status, th_dump(t));
    return NULL;
}

json_t *ag_get(ag_env_t *e, const char *path, int status)
{
    return th_be_call(e->agents, "GET", path, e->tok, NULL, status);
}

json_t *ag_wait_run(ag_env_t *e, const json_t *task, const char *state, int timeout_ms)
{
    long long end = th_now_ms() + timeout_ms;
    json_t *runs = NULL;
    do {
        runs = ag_get(e, th_fmt("/api/v1/runs?task_id=%s", th_str(task, "id")), 200);
        json_t *r = th_find(json_object_get(runs, "items"), "state", state);
        if (r)
            return r;
        th_sleep_ms(50);
    } while (th_now_ms() < end);
    cr_assert_fail("no run of the task reached %s: %s", state, th_dump(runs));
    return NULL;
}

natsConnection *ag_nats(ag_env_t *e)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", e->sv->ports[1]);
    natsConnection *nc = NULL;
    for (int i = 0; i < 100 && natsConnection_ConnectTo(&nc, url) != NATS_OK; i++)
        th_sleep_ms(100);
    cr_assert_not_null(nc, "cannot connect to the suite's nats-server");
    return nc;
}

pid_t ag_pid(ag_env_t *e, const char *kind, const char *name)
{
    json_t *st = th_keep_json(th_sv_status(e->sv));
    json_t *x = th_sv_find(st, kind, name);
    if (strcmp(kind, "programs") == 0)
        return (pid_t)th_int(x, "pid");
    return (pid_t)th_int(json_array_get(json_object_get(x, "workers"), 0), "pid");
}

void ag_wait_streaming(ag_env_t *e)
{
    long long end = th_now_ms() + 20000;
    while (th_now_ms() < end) {
        json_t *st = th_keep_json(th_fake_llm_stats(e->fake, "oai"));
        if (th_int(st, "active_streams") > 0)
            return;
        th_sleep_ms(20);
    }
    cr_assert_fail("no stream started");
}

const char *ag_last_message(ag_env_t *e, size_t i)
{
    json_t *st = th_keep_json(th_fake_llm_stats(e->fake, "oai"));
    json_t *body = json_object_get(json_object_get(st, "last"), "body");
    return th_str(json_array_get(json_object_get(body, "messages"), i), "content");
}
