/* test_caller.c - unit tests for the router's callers (caller.c): keys
 * and their roles, the legacy api_keys, what is refused at load, the
 * anonymous policy, key files made once with mode 0600, and which peers
 * are loopback. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caller.h"

#define KEY_A "vpk-aaaaaaaaaaaaaaaa"
#define KEY_B "vpk-bbbbbbbbbbbbbbbb"

static callers_t *s_load(const char *text, char *err, size_t len)
{
    cfg_t *cfg = cfg_load_string(text, "test", err, len);
    cr_assert_not_null(cfg, "%s", err);
    callers_t *cs = callers_load(cfg, err, len);
    cfg_destroy(&cfg);
    return cs;
}

Test(router_caller, keys_carry_their_roles)
{
    char err[256] = "";
    callers_t *cs =
        s_load("[router]\napi_keys = legacy-1, legacy-2\n"
               "[caller:dev]\nkey = " KEY_A "\nroles = developer, tester\n"
               "[caller:ops]\nkey = " KEY_B "\nroles = *\ndefault_role = ops\n",
               err, sizeof err);
    cr_assert_not_null(cs, "%s", err);
    cr_assert_eq(callers_count(cs), 4);
    cr_assert_eq(callers_anonymous(cs), CALLER_ANON_LOOPBACK);
    const caller_t *c;
    cr_assert_eq(callers_identify(cs, KEY_A, false, &c), CALLER_OK);
    cr_assert_str_eq(c->name, "dev");
    cr_assert_str_eq(c->default_role, "developer");
    cr_assert(caller_may_use(c, "tester") && !caller_may_use(c, "architect"));
    cr_assert_eq(callers_identify(cs, KEY_B, false, &c), CALLER_OK);
    cr_assert(caller_may_use(c, "anything"));
    cr_assert_str_eq(c->default_role, "ops");
    cr_assert_eq(callers_identify(cs, "legacy-2", false, &c), CALLER_OK);
    cr_assert_str_eq(c->name, "api_keys");
    cr_assert_str_eq(c->default_role, "default");
    cr_assert(caller_may_use(c, "architect"));
    /* A wrong key, or a right one cut short or made longer, is no caller. */
    cr_assert_eq(callers_identify(cs, "vpk-aaaaaaaaaaaaaaa", true, &c),
                 CALLER_KEY_INVALID);
    cr_assert_eq(callers_identify(cs, KEY_A "a", true, &c), CALLER_KEY_INVALID);
    cr_assert_null(c);
    callers_destroy(&cs);
    cr_assert_null(cs);
}

Test(router_caller, anonymous_policy)
{
    static const struct {
        const char *conf;
        bool loopback_ok, remote_ok;
    } cases[] = {
        {"", true, false},
        {"[router]\nanonymous = loopback\n", true, false},
        {"[router]\nanonymous = yes\n", true, true},
        {"[router]\nanonymous = no\n", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        callers_t *cs = s_load(cases[i].conf, err, sizeof err);
        cr_assert_not_null(cs, "%s", err);
        const caller_t *c;
        caller_id_t local = callers_identify(cs, NULL, true, &c);
        cr_assert_eq(local == CALLER_OK, cases[i].loopback_ok, "case %zu", i);
        if (local == CALLER_OK) {
            cr_assert_str_eq(c->name, "anonymous");
            cr_assert(caller_may_use(c, "any-role"));
            cr_assert_str_eq(c->default_role, "default");
        }
        caller_id_t remote = callers_identify(cs, "", false, &c);
        cr_assert_eq(remote, cases[i].remote_ok ? CALLER_OK : CALLER_KEY_REQUIRED,
                     "case %zu", i);
        callers_destroy(&cs);
    }
}

Test(router_caller, refuses_what_cannot_work)
{
    static const struct {
        const char *conf, *err;
    } cases[] = {
        {"[caller:a]\nroles = *\n", "[caller:a] key, key_file: set exactly one"},
        {"[caller:a]\nkey = " KEY_A "\nkey_file = /tmp/x\nroles = *\n",
         "[caller:a] key, key_file: set exactly one"},
        {"[caller:a]\nkey = " KEY_A "\n", "[caller:a] roles: required"},
        {"[caller:a]\nkey = short\nroles = *\n", "[caller:a] key: at least 16"},
        {"[caller:a]\nkey = vpk with spaces in it\nroles = *\n", "[caller:a] key:"},
        {"[caller:a]\nkey = " KEY_A "\nroles = a, b c\n", "[caller:a] roles: 'b c'"},
        {"[caller:a]\nkey = " KEY_A "\nroles = a\ndefault_role = b\n",
         "[caller:a] default_role: 'b'"},
        {"[caller:a]\nkey = " KEY_A "\nroles = *\n[caller:b]\nkey = " KEY_A
         "\nroles = *\n",
         "[caller:a] key: another [caller:*] section has the same key"},
        {"[router]\napi_keys = " KEY_A "\n[caller:a]\nkey = " KEY_A "\nroles = *\n",
         "[caller:a] key: [router] api_keys has the same key"},
        {"[router]\nanonymous = maybe\n", "[router] anonymous: must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        callers_t *cs = s_load(cases[i].conf, err, sizeof err);
        cr_assert_null(cs, "case %zu was accepted", i);
        cr_assert(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
                  "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
    }
}

static char s_dir[] = "/tmp/vapora-caller-XXXXXX";

static void s_dir_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_dir_fini(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

/* A missing key_file is made (its directory too), 0600, with a random
 * key; loading again reads the same key; an empty file is refused. */
Test(router_caller, key_files_are_made_once, .init = s_dir_init, .fini = s_dir_fini)
{
    char conf[256], err[256] = "", path[128];
    snprintf(path, sizeof path, "%s/sub/key", s_dir);
    snprintf(conf, sizeof conf, "[caller:agents]\nkey_file = %s\nroles = *\n", path);
    callers_t *cs = s_load(conf, err, sizeof err);
    cr_assert_not_null(cs, "%s", err);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    char *key = strdup(callers_get(cs, 0)->key);
    cr_assert(strncmp(key, "vpk-", 4) == 0 && strlen(key) == 52, "%s", key);
    callers_destroy(&cs);
    cs = s_load(conf, err, sizeof err);
    cr_assert_not_null(cs, "%s", err);
    cr_assert_str_eq(callers_get(cs, 0)->key, key, "a second load made a new key");
    callers_destroy(&cs);
    FILE *f = fopen(path, "w"); /* emptied */
    fclose(f);
    cr_assert_null(s_load(conf, err, sizeof err));
    cr_assert(strstr(err, "[caller:agents] key_file") && strstr(err, "empty"), "%s",
              err);
    free(key);
}

static bool s_loopback(int family, const char *text)
{
    struct sockaddr_storage ss = {0};
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, text, &in->sin_addr);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &in6->sin6_addr);
    }
    return caller_addr_is_loopback((struct sockaddr *)&ss);
}

Test(router_caller, loopback_peers)
{
    cr_assert(s_loopback(AF_INET, "127.0.0.1"));
    cr_assert(s_loopback(AF_INET, "127.255.1.2"));
    cr_assert_not(s_loopback(AF_INET, "10.0.0.1"));
    cr_assert_not(s_loopback(AF_INET, "0.0.0.0"));
    cr_assert_not(s_loopback(AF_INET, "128.0.0.1"));
    cr_assert(s_loopback(AF_INET6, "::1"));
    cr_assert(s_loopback(AF_INET6, "::ffff:127.0.0.1"));
    cr_assert_not(s_loopback(AF_INET6, "::ffff:10.0.0.1"));
    cr_assert_not(s_loopback(AF_INET6, "::"));
    cr_assert_not(s_loopback(AF_INET6, "fe80::1"));
    cr_assert_not(caller_addr_is_loopback(NULL));
}
