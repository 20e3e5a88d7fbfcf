/* test_router_callers.c - who may spend what through the LLM router: a
 * new role name buys no fresh budget (roles without a budget of their own
 * share [budget:default], and without one they are refused); a caller key
 * spends only from its roles; key files are made once and shared by every
 * worker; key-less calls are taken from loopback only, and taking them
 * from anywhere is a warning in the log and in GET /health. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "router_fixture.h"

#define KEY_DEV "vpk-dev-0123456789abcdef"
#define KEY_ALL "vpk-all-0123456789abcdef"
#define CALLERS                                                                        \
    "[caller:dev]\nkey = " KEY_DEV "\nroles = developer, tester\n\n"                   \
    "[caller:all]\nkey = " KEY_ALL "\nroles = *\ndefault_role = ops\n\n"

/* A gpt-a call (max_tokens 20: 0.05 USD, its worst case too) with the
 * header lines hdrs, in the OpenAI format or Anthropic's; returns the
 * status. */
static int s_call(th_sv_t *sv, bool ant, const char *hdrs)
{
    char h[512];
    snprintf(h, sizeof h, "Content-Type: application/json\r\n%s%s",
             ant ? "anthropic-version: 2023-06-01\r\n" : "", hdrs ? hdrs : "");
    char *body = llm_body(ant, "gpt-a", false, 20);
    llm_resp_t r =
        llm_send(sv->ports[0], "POST", ant ? LLM_ANT : LLM_OAI, h, body, 10000);
    free(body);
    int st = r.status;
    llm_resp_clear(&r);
    return st;
}

/* Asserts a call with hdrs is refused with status and code (OpenAI format)
 * and the same status with Anthropic's error type ant_type. */
static void s_refused(th_sv_t *sv, const char *hdrs, int status, const char *code,
                      const char *type, const char *ant_type)
{
    char h[512];
    snprintf(h, sizeof h, "Content-Type: application/json\r\n%s", hdrs);
    char *body = llm_body(false, "gpt-a", false, 20);
    llm_resp_t r = llm_send(sv->ports[0], "POST", LLM_OAI, h, body, 10000);
    free(body);
    json_t *e = json_object_get(r.json, "error");
    cr_assert(r.status == status && e, "%s: %d %s", hdrs, r.status, r.body);
    cr_assert_str_eq(th_str(e, "code") ?: "", code, "%s", r.body);
    cr_assert_str_eq(th_str(e, "type") ?: "", type, "%s", r.body);
    llm_resp_clear(&r);
    snprintf(h, sizeof h,
             "Content-Type: application/json\r\n"
             "anthropic-version: 2023-06-01\r\n%s",
             hdrs);
    body = llm_body(true, "gpt-a", false, 20);
    r = llm_send(sv->ports[0], "POST", LLM_ANT, h, body, 10000);
    free(body);
    cr_assert_eq(r.status, status, "%s: %s", hdrs, r.body);
    cr_assert_str_eq(th_str(r.json, "type") ?: "", "error", "%s", r.body);
    cr_assert_str_eq(th_str(json_object_get(r.json, "error"), "type") ?: "", ant_type,
                     "%s", r.body);
    llm_resp_clear(&r);
}

/* The budget entry of GET /api/v1/budgets for role (caller decrefs). */
static json_t *s_budget(th_sv_t *sv, const char *role)
{
    json_t *all = llm_get(sv, "/api/v1/budgets");
    json_t *b = json_incref(th_find(all, "role", role));
    json_decref(all);
    cr_assert_not_null(b, "no budget %s", role);
    return b;
}

/* ---- a new role name buys no fresh budget ---- */

/* The attack: once role x has spent its budget, the same request
 * with another role name, or with none, still spends. Now every role
 * without a budget of its own shares [budget:default]: made-up names and
 * no name at all together spend no more than it allows. */
Test(router_callers, a_new_role_name_buys_no_fresh_budget, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.chain = "oai",
                                      .extra = "[budget:x]\nlimit_usd = 0.1\n",
                                      .default_budget = "0.15"});
    cr_assert_eq(s_call(sv, false, "X-Vapora-Role: x\r\n"), 200);
    cr_assert_eq(s_call(sv, true, "X-Vapora-Role: x\r\n"), 200);
    cr_assert_eq(s_call(sv, false, "X-Vapora-Role: x\r\n"), 429, "x is spent");
    int ok = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        char h[64];
        snprintf(h, sizeof h, "X-Vapora-Role: made-up-%d\r\n", i);
        int st = s_call(sv, i % 3 == 2, i % 2 ? h : NULL);
        ok += st == 200;
        refused += st == 429;
    }
    cr_assert(ok == 3 && refused == 7,
              "%d answered, %d refused: the default budget "
              "allows 3 calls",
              ok, refused);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 5);
    json_t *d = s_budget(sv, "default"), *x = s_budget(sv, "x");
    cr_assert(th_num(d, "spent_usd") + th_num(d, "reserved_usd") <= 0.15 + 1e-9,
              "default overspent");
    cr_assert(th_num(x, "spent_usd") + th_num(x, "reserved_usd") <= 0.1 + 1e-9,
              "x overspent");
    json_decref(d);
    json_decref(x);
    /* The refusal says which budget the role shares. */
    char *body = llm_body(false, "gpt-a", false, 20);
    llm_resp_t r = llm_call(sv, LLM_OAI, "X-Vapora-Role: another\r\n", body, 429);
    const char *msg = th_str(json_object_get(r.json, "error"), "message");
    cr_assert(msg && strstr(msg, "'another'") && strstr(msg, "'default'"), "%s",
              r.body);
    llm_resp_clear(&r);
    free(body);
}

Test(router_callers, without_a_default_budget_unknown_roles_are_refused, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.extra = "[budget:developer]\nlimit_usd = 10\n",
                                      .default_budget = ""});
    cr_assert_eq(s_call(sv, false, "X-Vapora-Role: developer\r\n"), 200);
    s_refused(sv, "X-Vapora-Role: made-up\r\n", 403, "no_budget", "permission_error",
              "permission_error");
    s_refused(sv, "", 403, "no_budget", "permission_error", "permission_error");
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 1);
}

/* ---- a key spends only from its roles ---- */

Test(router_callers, a_key_spends_only_from_its_roles, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.extra = CALLERS});
    /* No X-Vapora-Role: the key's default role (its first). */
    cr_assert_eq(s_call(sv, false, "Authorization: Bearer " KEY_DEV "\r\n"), 200);
    cr_assert_eq(
        s_call(sv, true, "x-api-key: " KEY_DEV "\r\nX-Vapora-Role: tester\r\n"), 200);
    s_refused(sv, "Authorization: Bearer " KEY_DEV "\r\nX-Vapora-Role: architect\r\n",
              403, "role_not_allowed", "permission_error", "permission_error");
    /* roles = *: any role; default_role ops. */
    cr_assert_eq(s_call(sv, false, "Authorization: Bearer " KEY_ALL "\r\n"), 200);
    cr_assert_eq(s_call(sv, false,
                        "Authorization: Bearer " KEY_ALL
                        "\r\nX-Vapora-Role: architect\r\n"),
                 200);
    /* A wrong key is refused, whatever the anonymous policy. */
    s_refused(sv, "Authorization: Bearer vpk-wrong-0123456789abcdef\r\n", 401,
              "invalid_api_key", "authentication_error", "authentication_error");
    /* No key, from loopback: an anonymous caller, role default. */
    cr_assert_eq(s_call(sv, false, NULL), 200);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 5);
    static const char *roles[][2] = {{"developer", "1"},
                                     {"tester", "1"},
                                     {"ops", "1"},
                                     {"architect", "1"},
                                     {"default", "1"}};
    for (size_t i = 0; i < 5; i++) {
        json_t *e, *u = llm_usage(sv, "group_by=role", "role", roles[i][0], 1, &e);
        cr_assert(e && th_num(e, "requests") == 1, "role %s: %s", roles[i][0],
                  th_dump(u));
        json_decref(u);
    }
}

/* ---- key files ---- */

/* A key_file that does not exist is made by the first worker, 0600, and
 * the others read that one: every worker takes the same key, and a restart
 * keeps it. */
Test(router_callers, key_files_are_made_once_and_shared_by_every_worker, .timeout = 90,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    char *tmpl = llm_config(
        fake->port,
        &(llm_opts_t){.extra = "[caller:agents]\nkey_file = @DATA@/keys/router-key\n"
                               "roles = *\n"});
    th_sv_t *sv = llm_start_in(NULL, tmpl, 2);
    char *path = NULL;
    cr_assert_gt(asprintf(&path, "%s/keys/router-key", sv->data_dir), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s was not made", path);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    FILE *f = fopen(path, "r");
    char key[128] = "";
    cr_assert(f && fgets(key, sizeof key, f));
    fclose(f);
    key[strcspn(key, "\n")] = '\0';
    cr_assert(strncmp(key, "vpk-", 4) == 0 && strlen(key) == 52, "key %s", key);
    cr_assert_eq(th_log_count(sv->proc, "created a key for [caller:agents]"), 1);
    char h[192];
    snprintf(h, sizeof h, "Authorization: Bearer %s\r\n", key);
    for (int i = 0; i < 12; i++) /* new connections: both workers take part */
        cr_assert_eq(s_call(sv, false, h), 200, "call %d with the file's key", i);
    cr_assert_eq(s_call(sv, false, "Authorization: Bearer vpk-0123456789abcdef\r\n"),
                 401);
    char *dir = strdup(sv->data_dir);
    th_sv_free(&sv);
    sv = llm_start_in(dir, tmpl, 2);
    f = fopen(path, "r");
    char again[128] = "";
    cr_assert(f && fgets(again, sizeof again, f));
    fclose(f);
    again[strcspn(again, "\n")] = '\0';
    cr_assert_str_eq(again, key, "a restart made a new key");
    cr_assert_eq(s_call(sv, false, h), 200);
    cr_assert_eq(th_log_count(sv->proc, "created a key"), 0);
    free(dir);
    free(path);
    free(tmpl);
}

/* ---- anonymous callers ---- */

/* A local IPv4 address that is not loopback (copied to ip), or false. */
static bool s_outside_address(char *ip, size_t len)
{
    struct ifaddrs *ifs, *i;
    bool found = false;
    if (getifaddrs(&ifs) < 0)
        return false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
            !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip,
                  (socklen_t)len);
        found = strncmp(ip, "127.", 4) != 0;
    }
    freeifaddrs(ifs);
    return found;
}

/* The status of a gpt-a call sent to ip:port (so that the router sees the
 * peer ip), or -1. */
static int s_call_to(const char *ip, int port, const char *hdrs)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    inet_pton(AF_INET, ip, &sa.sin_addr);
    char *body = llm_body(false, "gpt-a", false, 20), *req = NULL;
    int n =
        asprintf(&req,
                 "POST " LLM_OAI " HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                 ip, hdrs ? hdrs : "", strlen(body), body);
    int st = -1;
    char buf[64] = "";
    if (n > 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        send(fd, req, (size_t)n, MSG_NOSIGNAL) == n &&
        recv(fd, buf, sizeof buf - 1, 0) > 0)
        sscanf(buf, "HTTP/1.1 %d", &st);
    close(fd);
    free(req);
    free(body);
    return st;
}

/* anonymous = loopback (the default): a router listening on every address
 * takes key-less calls from the host itself only; remote callers need a
 * key. */
Test(router_callers, key_less_calls_are_taken_from_loopback_only, .timeout = 60,
     .fini = th_cleanup)
{
    char ip[INET_ADDRSTRLEN];
    if (!s_outside_address(ip, sizeof ip))
        cr_skip_test("this host has no IPv4 address besides loopback");
    th_proc_t *fake = llm_fake();
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.listen_host = "0.0.0.0", .extra = CALLERS});
    cr_assert_eq(s_call_to(ip, sv->ports[0], NULL), 401, "a key-less call from %s", ip);
    cr_assert_eq(s_call_to(ip, sv->ports[0], "Authorization: Bearer " KEY_DEV "\r\n"),
                 200);
    cr_assert_eq(s_call_to("127.0.0.1", sv->ports[0], NULL), 200);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 2);
}

/* anonymous = yes beyond loopback: anyone who reaches the router may spend.
 * Allowed, but said loudly: in the log at start and in GET /health. */
Test(router_callers, anonymous_callers_beyond_loopback_are_a_warning, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.listen_host = "0.0.0.0", .router = "anonymous = yes\n"});
    th_assert_log(sv->proc, "anonymous = yes and the router listens beyond loopback",
                  "warn");
    for (int i = 0; i < 4; i++) { /* each worker says it */
        char *body = NULL;
        cr_assert_eq(th_call(sv->ports[0], "GET", "/health", NULL, NULL, &body, 5000),
                     200);
        json_t *h = json_loads(body, 0, NULL);
        json_t *w = json_array_get(json_object_get(h, "warnings"), 0);
        cr_assert(json_is_string(w) && strstr(json_string_value(w), "anonymous = yes"),
                  "%s", body);
        cr_assert_str_eq(th_str(h, "status"), "healthy", "%s", body);
        json_decref(h);
        free(body);
    }
}
