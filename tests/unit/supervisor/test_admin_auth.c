/* test_admin_auth.c - unit tests for supervisor/admin_auth.c: the admin
 * API's token file (created once, 0600, kept; a configured token wins) and
 * the checks of Host, Origin, Content-Type and the bearer token. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_auth.h"
#include "file.h"

static char s_dir[64];

static void s_init(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/vapora-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static char *s_path(void)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", s_dir, SV_AUTH_TOKEN_FILE);
    return p;
}

static void s_fini(void)
{
    unlink(s_path());
    rmdir(s_dir);
}

static void s_write(const char *text, mode_t mode)
{
    FILE *f = fopen(s_path(), "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    chmod(s_path(), mode);
}

static mode_t s_mode(void)
{
    struct stat st;
    cr_assert_eq(stat(s_path(), &st), 0);
    return st.st_mode & 07777;
}

Test(admin_auth, token_is_generated_once_private_and_kept, .init = s_init,
     .fini = s_fini)
{
    umask(022);
    char err[256] = "";
    char *t1 = sv_auth_token_load(s_dir, NULL, err, sizeof err);
    cr_assert_not_null(t1, "%s", err);
    cr_assert_eq(strlen(t1), 64);
    cr_assert(sv_auth_token_valid(t1));
    cr_assert_eq(s_mode(), 0600, "mode %o", s_mode());
    char *t2 = sv_auth_token_load(s_dir, "", err, sizeof err);
    cr_assert_str_eq(t2, t1, "a restart keeps the token");
    char *file = file_read_all(s_path(), NULL);
    cr_assert_not_null(file);
    cr_assert_eq(strncmp(file, t1, 64), 0);
    free(file);
    free(t1);
    free(t2);
}

Test(admin_auth, configured_token_wins_and_is_written_for_vaporactl, .init = s_init,
     .fini = s_fini)
{
    char err[256] = "";
    char *gen = sv_auth_token_load(s_dir, NULL, err, sizeof err);
    cr_assert_not_null(gen, "%s", err);
    char *t = sv_auth_token_load(s_dir, "configured-token-0123", err, sizeof err);
    cr_assert_str_eq(t, "configured-token-0123");
    char *file = file_read_all(s_path(), NULL);
    cr_assert_str_eq(file, "configured-token-0123\n");
    cr_assert_eq(s_mode(), 0600);
    free(file);
    free(t);
    free(gen);
}

Test(admin_auth, a_file_open_to_others_is_narrowed, .init = s_init, .fini = s_fini)
{
    s_write("a-token-someone-wrote-0123\n", 0644);
    char err[256] = "";
    char *t = sv_auth_token_load(s_dir, NULL, err, sizeof err);
    cr_assert_str_eq(t, "a-token-someone-wrote-0123");
    cr_assert_eq(s_mode(), 0600, "mode %o", s_mode());
    free(t);
}

Test(admin_auth, a_file_without_a_token_is_refused, .init = s_init, .fini = s_fini)
{
    static const char *const bad[] = {"", "\n", "short\n", "has a blank in it 0123\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_write(bad[i], 0600);
        char err[256] = "";
        cr_assert_null(sv_auth_token_load(s_dir, NULL, err, sizeof err), "%zu", i);
        cr_assert(strstr(err, "not a token"), "%s", err);
    }
}

Test(admin_auth, bearer_must_match_exactly)
{
    const char *tok = "0123456789abcdef0123";
    cr_assert(sv_auth_bearer_ok("Bearer 0123456789abcdef0123", tok));
    cr_assert(sv_auth_bearer_ok("bearer 0123456789abcdef0123", tok));
    cr_assert_not(sv_auth_bearer_ok(NULL, tok));
    cr_assert_not(sv_auth_bearer_ok("", tok));
    cr_assert_not(sv_auth_bearer_ok("Bearer ", tok));
    cr_assert_not(sv_auth_bearer_ok("Bearer 0123456789abcdef012", tok));
    cr_assert_not(sv_auth_bearer_ok("Bearer 0123456789abcdef01234", tok));
    cr_assert_not(sv_auth_bearer_ok("Bearer 0123456789abcdef0124", tok));
    cr_assert_not(sv_auth_bearer_ok("Basic 0123456789abcdef0123", tok));
    cr_assert_not(sv_auth_bearer_ok("0123456789abcdef0123", tok));
}

Test(admin_auth, host_must_name_the_api)
{
    const char *admin = "127.0.0.1:8000";
    static const char *const ok[] = {"127.0.0.1:8000", "127.0.0.1",  "127.0.0.1:8101",
                                     "localhost:8000", "LOCALHOST",  "[::1]:8000",
                                     "[::1]",          "10.0.0.5:80"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert(sv_auth_host_ok(ok[i], admin), "%s refused", ok[i]);
    static const char *const bad[] = {NULL,           "",
                                      "evil.example", "evil.example:8000",
                                      "127.0.0.1:x",  "[::1",
                                      "[::1]x",       "localhost.evil.example",
                                      "::1",          "127.0.0.1:123456",
                                      "2130706433",   "127.0.0.1:"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_not(sv_auth_host_ok(bad[i], admin), "%s accepted",
                      bad[i] ? bad[i] : "NULL");
    /* A name in admin is that name. */
    cr_assert(sv_auth_host_ok("vapora-admin:8000", "vapora-admin:8000"));
    cr_assert(sv_auth_host_ok("Vapora-Admin", "vapora-admin:8000"));
    cr_assert_not(sv_auth_host_ok("other:8000", "vapora-admin:8000"));
    cr_assert_not(sv_auth_host_ok("evil.example", ":8000"));
}

Test(admin_auth, origin_must_be_the_api_itself)
{
    cr_assert(sv_auth_origin_ok(NULL, "127.0.0.1:8000"));
    cr_assert(sv_auth_origin_ok("http://127.0.0.1:8000", "127.0.0.1:8000"));
    cr_assert(sv_auth_origin_ok("HTTP://LOCALHOST:8000", "localhost:8000"));
    cr_assert_not(sv_auth_origin_ok("http://evil.example", "127.0.0.1:8000"));
    cr_assert_not(sv_auth_origin_ok("http://127.0.0.1:9999", "127.0.0.1:8000"));
    cr_assert_not(sv_auth_origin_ok("https://127.0.0.1:8000", "127.0.0.1:8000"));
    cr_assert_not(sv_auth_origin_ok("null", "127.0.0.1:8000"));
    cr_assert_not(sv_auth_origin_ok("", "127.0.0.1:8000"));
    cr_assert_not(sv_auth_origin_ok("http://127.0.0.1:8000", NULL));
}

Test(admin_auth, only_json_is_json)
{
    cr_assert(sv_auth_is_json("application/json"));
    cr_assert(sv_auth_is_json("Application/JSON; charset=utf-8"));
    cr_assert_not(sv_auth_is_json(NULL));
    cr_assert_not(sv_auth_is_json("text/plain"));
    cr_assert_not(sv_auth_is_json("application/x-www-form-urlencoded"));
    cr_assert_not(sv_auth_is_json("multipart/form-data; boundary=x"));
    cr_assert_not(sv_auth_is_json("application/jsonp"));
}

Test(admin_auth, loopback_addresses)
{
    static const char *const yes[] = {"127.0.0.1:8000", "127.1.2.3:1", "[::1]:8000",
                                      "localhost:8000", "[::ffff:127.0.0.1]:8000"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        cr_assert(sv_auth_loopback(yes[i]), "%s", yes[i]);
    static const char *const no[] = {"0.0.0.0:8000",     ":8000",
                                     "[::]:8000",        "10.0.0.1:8000",
                                     "example.com:8000", "bad"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        cr_assert_not(sv_auth_loopback(no[i]), "%s", no[i]);
}
