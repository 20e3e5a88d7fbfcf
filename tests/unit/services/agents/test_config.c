/* test_config.c - unit tests for services/agents/config.c: the shipped
 * shape loads with its defaults, and each bad value is refused with the
 * section and key named. */
#include "config.h"
#include "sqldb.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static agents_config_t *s_load(const char *text, char *err, size_t len)
{
    cfg_t *cfg = cfg_load_string(text, "test.conf", err, len);
    cr_assert_not_null(cfg, "%s", err);
    agents_config_t *c = agents_config_load(cfg, err, len);
    cfg_destroy(&cfg);
    return c;
}

Test(agents_config, agents_and_defaults)
{
    char err[256] = "";
    agents_config_t *c = s_load("[agents]\nrouter_url = http://10.0.0.1:9/\n"
                                "[agent:developer-fast]\nrole = developer\nmodel = gpt-4o-mini\n"
                                "max_concurrent = 4\ntemperature = 0.5\n"
                                "[agent:architect]\nrole = architect\n"
                                "task_types = architecture, design\n"
                                "system_prompt = You design.\n",
                                err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->router_url, "http://10.0.0.1:9");
    cr_assert_str_eq(c->backend_url, "http://127.0.0.1:8001");
    cr_assert_str_eq(c->database, "data/agents.db");
    cr_assert_eq(c->synchronous, SQLDB_SYNC_NORMAL);
    cr_assert_str_eq(c->default_role, "developer");
    cr_assert_eq(c->max_deliveries, 5);
    cr_assert_eq(c->nagents, 2);
    const agent_def_t *d = agents_config_find(c, "developer-fast");
    cr_assert_not_null(d);
    cr_assert_eq(d->max_concurrent, 4);
    cr_assert_float_eq(d->temperature, 0.5, 1e-9);
    cr_assert_str_eq(d->system_prompt, "You are the developer of a software team.");
    cr_assert(agent_def_claims(d, "bugfix"), "the role's default task types");
    cr_assert_eq(d->run_timeout_s, 600);
    const agent_def_t *a = agents_config_find(c, "architect");
    cr_assert(agent_def_claims(a, "Design"));
    cr_assert_not(agent_def_claims(a, "bugfix"));
    cr_assert_str_eq(a->model, "auto");
    cr_assert_null(agents_config_find(c, "nobody"));
    agents_config_destroy(&c);
    cr_assert_null(c);
}

static void s_refused(const char *text, const char *want)
{
    char err[256] = "";
    agents_config_t *c = s_load(text, err, sizeof err);
    cr_assert_null(c, "accepted: %s", text);
    cr_assert(strstr(err, want), "error \"%s\" does not say \"%s\"", err, want);
}

Test(agents_config, bad_values_name_section_and_key)
{
    s_refused("[agent:x]\nrole = wizard\n", "[agent:x] role");
    s_refused("[agent:x]\n", "[agent:x] role");
    s_refused("[agent:bad name]\nrole = tester\n", "[agent:bad name]");
    s_refused("[agent:x]\nrole = tester\nmax_concurrent = 0\n", "max_concurrent");
    s_refused("[agent:x]\nrole = tester\ntemperature = 3\n", "temperature");
    s_refused("[agent:x]\nrole = tester\nsystem_prompt_file = /no/such/file\n",
              "system_prompt_file");
    s_refused("[agent:x]\nrole = tester\nsystem_prompt = a\nsystem_prompt_file = b\n",
              "set one");
    s_refused("[agents]\nrouter_url = ftp://x\n", "[agents] router_url");
    s_refused("[agents]\ndefault_role = boss\n", "[agents] default_role");
    s_refused("[agents]\nmax_deliveries = 0\n", "max_deliveries");
    s_refused("[agents]\nsynchronous = fsync\n",
              "[agents] synchronous: \"fsync\" is not one of normal, full");
}

Test(agents_config, synchronous_full)
{
    char err[256] = "";
    agents_config_t *c = s_load("[agents]\nsynchronous = full\n", err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->synchronous, SQLDB_SYNC_FULL);
    agents_config_destroy(&c);
}

/* The shipped configuration: twelve agents, one per role, each with its
 * own prompt read from prompts_dir (the tests run from the repository). */
Test(agents_config, the_shipped_agents_load_with_their_prompts)
{
    char err[256] = "";
    cfg_t *cfg = cfg_load("etc/vapora.conf", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    agents_config_t *c = agents_config_load(cfg, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->nagents, 12);
    for (size_t i = 0; i < c->nagents; i++) {
        cr_assert_str_eq(c->agents[i].name, c->agents[i].role);
        cr_assert_gt(strlen(c->agents[i].system_prompt), 80, "%s: not its own prompt",
                     c->agents[i].name);
    }
    agents_config_destroy(&c);
    cfg_destroy(&cfg);
    s_refused("[agents]\nprompts_dir = /nowhere\n[agent:x]\nrole = tester\n"
              "system_prompt_file = x.md\n",
              "/nowhere/x.md");
}
