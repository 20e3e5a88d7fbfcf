/* test_router.c - unit tests for the router's configuration (config.c)
 * and routing plans (plan.c). The ledger's are in test_ledger.c. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "plan.h"
#include "sqldb.h"

static const char s_conf[] = "[provider:claude]\n"
                             "kind = anthropic\n"
                             "base_url = http://127.0.0.1:1/\n"
                             "api_key = k-claude\n"
                             "models = opus, sonnet, haiku\n"
                             "[provider:oai]\n"
                             "kind = openai\n"
                             "base_url = http://127.0.0.1:2/v1\n"
                             "api_key = k-oai\n"
                             "models = gpt-big, gpt-mini\n"
                             "[provider:local]\n"
                             "kind = ollama\n"
                             "base_url = 127.0.0.1:11434\n"
                             "models = llama\n"
                             "[model:opus]\n"
                             "input_usd_per_mtok = 15\n"
                             "output_usd_per_mtok = 75\n"
                             "equivalents = gpt-mini, gpt-big\n"
                             "[model:sonnet]\n"
                             "input_usd_per_mtok = 3\n"
                             "output_usd_per_mtok = 15\n"
                             "[model:haiku]\n"
                             "input_usd_per_mtok = 1\n"
                             "output_usd_per_mtok = 1\n"
                             "[model:gpt-big]\n"
                             "input_usd_per_mtok = 2\n"
                             "output_usd_per_mtok = 10\n"
                             "[model:gpt-mini]\n"
                             "input_usd_per_mtok = 0.1\n"
                             "output_usd_per_mtok = 0.5\n"
                             "[routing]\n"
                             "default_model = sonnet\n"
                             "fallback_chain = claude, oai, local\n"
                             "cooldown_failures = 2\n"
                             "cooldown = 5\n"
                             "[route:arch]\n"
                             "task_types = architecture, design\n"
                             "model = opus\n"
                             "[budget:architect]\n"
                             "window = weekly\n"
                             "limit_usd = 10\n";

static rt_config_t *s_load(const char *text, char *err, size_t len)
{
    cfg_t *cfg = cfg_load_string(text, "test", err, len);
    cr_assert_not_null(cfg, "%s", err);
    rt_config_t *c = rt_config_load(cfg, err, len);
    cfg_destroy(&cfg);
    return c;
}

Test(router_config, loads_sections_and_references)
{
    char err[256] = "";
    rt_config_t *c = s_load(s_conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->nproviders, 3);
    cr_assert_str_eq(c->providers[0].base_url, "http://127.0.0.1:1");
    cr_assert_str_eq(c->providers[2].base_url, "http://127.0.0.1:11434");
    cr_assert_eq(c->providers[1].kind, WIRE_OPENAI);
    cr_assert_eq(c->nchain, 3);
    cr_assert_eq(c->retries, 2);
    cr_assert_eq(c->budgets[0].window, RT_WEEKLY);
    cr_assert_float_eq(c->budgets[0].near_percent, 80, 1e-9);
    cr_assert_float_eq(rt_cost(c, "opus", 1000000, 1000000), 90, 1e-9);
    cr_assert_float_eq(rt_cost(c, "llama", 1000000, 1000000), 0, 1e-9);
    rt_config_destroy(&c);
    cr_assert_null(c);
}

/* [router] synchronous: normal unless set; full; another word refused. */
Test(router_config, synchronous_for_the_ledger)
{
    char err[256] = "", text[4096];
    rt_config_t *c = s_load(s_conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->synchronous, SQLDB_SYNC_NORMAL);
    rt_config_destroy(&c);
    snprintf(text, sizeof text, "%s[router]\nsynchronous = full\n", s_conf);
    c = s_load(text, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->synchronous, SQLDB_SYNC_FULL);
    rt_config_destroy(&c);
    snprintf(text, sizeof text, "%s[router]\nsynchronous = off\n", s_conf);
    cr_assert_null(s_load(text, err, sizeof err));
    cr_assert_str_eq(err, "[router] synchronous: \"off\" is not one of normal, full");
}

Test(router_config, rejects_what_cannot_work)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"[provider:x]\nkind = foo\nbase_url = http://a\nmodels = m\n",
         "[provider:x] kind"},
        {"[provider:x]\nkind = openai\nbase_url = ftp://a\nmodels = m\n", "base_url"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\n", "[provider:x] models"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\nmodels = m\n[routing]\n"
         "fallback_chain = x, y\n",
         "no [provider:y]"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\nmodels = m\n[routing]\n"
         "default_model = nope\n",
         "default_model"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\nmodels = m\n[route:r]\n"
         "task_types = a\nmodel = nope\n",
         "[route:r] model"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\nmodels = m\n[budget:b]\n"
         "window = yearly\nlimit_usd = 1\n",
         "[budget:b] window"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\nmodels = m\n[budget:b]\n",
         "limit_usd"},
        {"[router]\n", "no [provider:NAME]"},
        {"[provider:x]\nkind = openai\nbase_url = http://a\nmodels = m\n"
         "[budget:team lead]\nlimit_usd = 1\n",
         "[budget:team lead]: a role is"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        rt_config_t *c = s_load(bad[i].text, err, sizeof err);
        cr_assert_null(c, "case %zu loaded", i);
        cr_assert(strstr(err, bad[i].want), "case %zu: '%s' lacks '%s'", i, err,
                  bad[i].want);
    }
}

static rt_config_t *s_cfg(void)
{
    char err[256];
    rt_config_t *c = s_load(s_conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

static void s_expect(const rt_plan_t *p, const char *want)
{
    char got[256] = "";
    for (size_t i = 0; i < p->n; i++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%s/%s", i ? " " : "",
                 p->attempts[i].provider->name, p->attempts[i].model);
    }
    cr_assert_str_eq(got, want);
}

Test(router_plan, model_rules_and_fallback_order)
{
    rt_config_t *c = s_cfg();
    rt_plan_t plans[3];
    rt_request_t rq = {.model = "opus"};
    cr_assert_eq(rt_plan(c, &rq, 1000, plans), 0);
    /* opus's equivalents pick gpt-mini on oai; local has only llama. */
    s_expect(&plans[RT_NORMAL], "claude/opus oai/gpt-mini local/llama");
    s_expect(&plans[RT_NEAR], "local/llama claude/haiku oai/gpt-mini");
    s_expect(&plans[RT_EXCEEDED], "local/llama");

    rq = (rt_request_t){.model = "auto", .task_type = "Design"};
    rt_plan(c, &rq, 1000, plans);
    cr_assert_str_eq(plans[RT_NORMAL].attempts[0].model, "opus");
    rq = (rt_request_t){.model = NULL, .task_type = "coding"};
    rt_plan(c, &rq, 1000, plans);
    s_expect(&plans[RT_NORMAL], "claude/sonnet oai/gpt-big local/llama");

    rq = (rt_request_t){.model = "gpt-mini", .provider = "claude"};
    rt_plan(c, &rq, 1000, plans);
    s_expect(&plans[RT_NORMAL], "claude/opus"); /* override: that provider alone */
    rq = (rt_request_t){.model = "nope"};
    cr_assert_eq(rt_plan(c, &rq, 1000, plans), VP_EUNKNOWN_MODEL);
    rq = (rt_request_t){.model = "opus", .provider = "nope"};
    cr_assert_eq(rt_plan(c, &rq, 1000, plans), VP_EUNKNOWN_PROVIDER);
    rt_config_destroy(&c);
}

/* A provider whose kind needs a key and has none is in no plan: not in
 * the chain, not as an override, not even when every other one is in
 * cooldown. */
Test(router_plan, providers_without_their_key_are_left_out)
{
    char err[256] = "";
    char *text = strdup(s_conf);
    char *k = strstr(text, "api_key = k-claude\n"); /* claude loses its key */
    memmove(k, k + strlen("api_key = k-claude\n"), strlen(k + 19) + 1);
    rt_config_t *c = s_load(text, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert(rt_provider_find(c, "claude")->keyless);
    cr_assert_not(rt_provider_find(c, "local")->keyless, "ollama needs no key");
    sbuf_t names = {0};
    cr_assert_eq(rt_keyless_names(c, &names), 1);
    cr_assert_str_eq(names.data, "claude");
    sbuf_free(&names);
    rt_plan_t plans[3];
    rt_request_t rq = {.model = "opus"};
    cr_assert_eq(rt_plan(c, &rq, 1000, plans), 0);
    s_expect(&plans[RT_NORMAL], "oai/gpt-mini local/llama");
    rt_provider_failure(c, rt_provider_find(c, "oai"), 1000);
    rt_provider_failure(c, rt_provider_find(c, "oai"), 1000);
    rt_provider_failure(c, rt_provider_find(c, "local"), 1000);
    rt_provider_failure(c, rt_provider_find(c, "local"), 1000);
    rt_plan(c, &rq, 2000, plans); /* all in cooldown: all usable ones again */
    s_expect(&plans[RT_NORMAL], "oai/gpt-mini local/llama");
    rq = (rt_request_t){.model = "opus", .provider = "claude"};
    cr_assert_eq(rt_plan(c, &rq, 1000, plans), 0);
    cr_assert_eq(plans[RT_NORMAL].n + plans[RT_NEAR].n + plans[RT_EXCEEDED].n, 0);
    rt_config_destroy(&c);
    free(text);
}

/* Roles without a budget of their own share [budget:default]. */
Test(router_config, roles_without_a_budget_share_the_default)
{
    char err[256] = "";
    rt_config_t *c = s_load(s_conf, err, sizeof err);
    cr_assert_eq(rt_budget_for(c, "architect"), rt_budget_find(c, "architect"));
    cr_assert_null(rt_budget_for(c, "made-up"), "no default: no budget");
    rt_config_destroy(&c);
    char *text = NULL;
    cr_assert_gt(asprintf(&text, "%s[budget:default]\nlimit_usd = 5\n", s_conf), 0);
    c = s_load(text, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    const rt_budget_t *d = rt_budget_find(c, "default");
    cr_assert_not_null(d);
    cr_assert_eq(rt_budget_for(c, "made-up"), d);
    cr_assert_eq(rt_budget_for(c, "other"), d);
    cr_assert_eq(rt_budget_for(c, "architect"), rt_budget_find(c, "architect"));
    rt_config_destroy(&c);
    free(text);
}

Test(router_plan, cooldown_leaves_a_provider_out_until_it_ends)
{
    rt_config_t *c = s_cfg();
    rt_provider_t *claude = rt_provider_find(c, "claude");
    rt_provider_failure(c, claude, 1000);
    cr_assert(rt_provider_available(claude, 1000));
    rt_provider_failure(c, claude, 1000);
    cr_assert_not(rt_provider_available(claude, 1000));
    rt_plan_t plans[3];
    rt_request_t rq = {.model = "sonnet"};
    rt_plan(c, &rq, 2000, plans);
    /* Only claude serves sonnet, but it cools down: stand-ins elsewhere. */
    s_expect(&plans[RT_NORMAL], "oai/gpt-big local/llama");
    rq.model = "gpt-big";
    rt_plan(c, &rq, 2000, plans);
    s_expect(&plans[RT_NORMAL], "oai/gpt-big local/llama");
    rt_plan(c, &rq, 6000, plans); /* 5 s later */
    s_expect(&plans[RT_NORMAL], "oai/gpt-big claude/opus local/llama");
    rt_provider_success(c, claude, 12.5);
    cr_assert_eq(claude->failures, 0);
    cr_assert_float_eq(claude->latency_ewma_ms, 12.5, 1e-9);
    rt_config_destroy(&c);
}

Test(router_plan, windows_are_utc_calendar_periods)
{
    int64_t s, e;
    /* 2026-11-25 (a Wednesday) 13:14:15 UTC */
    int64_t t = 1795612455;
    rt_window_bounds(RT_DAILY, t, &s, &e);
    cr_assert_eq(s, 1795564800);
    cr_assert_eq(e, 1795564800 + 86400);
    rt_window_bounds(RT_WEEKLY, t, &s, &e);
    cr_assert_eq(s, 1795564800 - 2 * 86400); /* Monday 23rd */
    cr_assert_eq(e - s, 7 * 86400);
    rt_window_bounds(RT_MONTHLY, t, &s, &e);
    cr_assert_eq(s, 1793491200); /* 2026-11-01 */
    cr_assert_eq(e, 1796083200); /* 2026-12-01 */
}

/* Without [routing] fallback_chain the chain is every provider, in order. */
Test(router_config, no_chain_means_every_provider)
{
    char err[256] = "";
    rt_config_t *c =
        s_load("[provider:a]\nkind = openai\nbase_url = http://a/v1\nmodels = m1\n"
               "[provider:b]\nkind = ollama\nbase_url = http://b\nmodels = m2\n"
               "[provider:c]\nkind = gemini\nbase_url = http://c\nmodels = m3\n",
               err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->nchain, 3);
    cr_assert_str_eq(c->chain[2]->name, "c");
    cr_assert_str_eq(c->default_model, "m1");
    rt_config_destroy(&c);
}

/* A plan names models by the config's own strings, never by the request's:
 * a stream drops its request once it has started. */
Test(router_plan, plans_never_point_into_the_request)
{
    rt_config_t *c = s_cfg();
    char *asked = strdup("opus");
    rt_plan_t plans[3];
    rt_request_t rq = {.model = asked};
    cr_assert_eq(rt_plan(c, &rq, 1000, plans), 0);
    for (int st = 0; st < 3; st++)
        for (size_t i = 0; i < plans[st].n; i++)
            cr_assert_neq((void *)plans[st].attempts[i].model, (void *)asked);
    rq.provider = "claude";
    rt_plan(c, &rq, 1000, plans);
    cr_assert_neq((void *)plans[RT_NORMAL].attempts[0].model, (void *)asked);
    cr_assert_str_eq(plans[RT_NORMAL].attempts[0].model, "opus");
    free(asked);
    rt_config_destroy(&c);
}
