/* test_backend_auth.c - the backend's logins and tokens
 * (docs/backend.md): a login gives an HS256 bearer token with the
 * documented claims; wrong passwords and unknown users are one 401 that
 * costs the same, refused (429) after repeated failures; missing,
 * malformed, forged and expired tokens are 401; a generated admin password
 * is kept 0600, never logged and never stored in clear; the agents
 * service's user is made beside it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend_fixture.h"

/* ---- base64url and JWT pieces ---- */

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decodes n characters of base64url (no padding); kept, NUL-terminated. */
static char *s_b64url_decode(const char *in, size_t n)
{
    char *out = th_keep(calloc(1, n * 3 / 4 + 4));
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = strchr(s_b64, in[i]);
        cr_assert(p && in[i], "not base64url: %.*s", (int)n, in);
        acc = (acc << 6) | (unsigned)(p - s_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    return out;
}

/* Encodes a string as base64url without padding; kept. */
static char *s_b64url_encode(const char *in)
{
    size_t n = strlen(in);
    char *out = th_keep(calloc(1, n * 4 / 3 + 4));
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | (unsigned char)in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = s_b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = s_b64[(acc << (6 - bits)) & 63];
    return out;
}

/* Splits a JWT into its three parts; asserts it has them. */
static void s_jwt_split(const char *tok, const char **h, size_t *hn, const char **p,
                        size_t *pn, const char **sig)
{
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    cr_assert(d1 && d2 && !strchr(d2 + 1, '.'), "not a JWT: %s", tok);
    *h = tok;
    *hn = (size_t)(d1 - tok);
    *p = d1 + 1;
    *pn = (size_t)(d2 - d1 - 1);
    *sig = d2 + 1;
}

/* The decoded claims of a JWT (kept). */
static json_t *s_jwt_claims(const char *tok)
{
    const char *h, *p, *sig;
    size_t hn, pn;
    s_jwt_split(tok, &h, &hn, &p, &pn, &sig);
    json_t *c = json_loads(s_b64url_decode(p, pn), 0, NULL);
    cr_assert_not_null(c, "the JWT payload is not JSON: %s", tok);
    return th_keep_json(c);
}

/* GET /auth/me with raw header lines; asserts 401 unauthorized. */
static void s_assert_unauthorized(const char *headers, const char *what)
{
    th_resp_t *r = be_send_raw("GET", BE_API "/auth/me", headers, NULL);
    th_assert_error(r, 401, "unauthorized", what);
    th_resp_free(&r);
}

/* =================================================================== */
/* 1. Login and tokens                                                  */
/* =================================================================== */

Test(backend_auth, login_returns_a_bearer_token_and_the_owner, .timeout = 60,
     .fini = be_fini)
{
    th_proc_t *p = be_start(NULL);
    json_t *j = be_login_doc("admin", BE_PW);
    cr_assert_str_eq(th_str(j, "token_type") ? th_str(j, "token_type") : "(none)",
                     "Bearer", "%s", th_dump(j));
    cr_assert(json_is_integer(json_object_get(j, "expires_in")) &&
                  th_int(j, "expires_in") == 3600,
              "expires_in in %s", th_dump(j));
    json_t *u = json_object_get(j, "user");
    cr_assert(json_is_object(u), "no user in %s", th_dump(j));
    const char *uid = be_id(u);
    cr_assert_str_eq(th_str(u, "username") ? th_str(u, "username") : "", "admin");
    cr_assert_str_eq(th_str(u, "role") ? th_str(u, "role") : "", "owner");
    cr_assert(!strstr(th_dump(j), "password"),
              "the login answer mentions a password: %s", th_dump(j));

    /* The token is an HS256 JWT with the documented claims. */
    const char *tok = th_str(j, "access_token");
    const char *h, *pl, *sig;
    size_t hn, pn;
    s_jwt_split(tok, &h, &hn, &pl, &pn, &sig);
    json_t *hdr = th_keep_json(json_loads(s_b64url_decode(h, hn), 0, NULL));
    cr_assert_str_eq(th_str(hdr, "alg") ? th_str(hdr, "alg") : "", "HS256", "header %s",
                     th_dump(hdr));
    json_t *c = s_jwt_claims(tok);
    cr_assert_str_eq(th_str(c, "sub") ? th_str(c, "sub")
                                      : th_dump(json_object_get(c, "sub")),
                     uid, "claims %s", th_dump(c));
    cr_assert_str_eq(th_str(c, "username") ? th_str(c, "username") : "", "admin");
    cr_assert_str_eq(th_str(c, "role") ? th_str(c, "role") : "", "owner");
    json_int_t iat = th_int(c, "iat"), exp = th_int(c, "exp");
    cr_assert_eq(exp - iat, 3600, "exp - iat = %lld in %s", (long long)(exp - iat),
                 th_dump(c));
    long long now = (long long)time(NULL);
    cr_assert(iat >= now - 60 && iat <= now + 5, "iat %lld, now %lld", (long long)iat,
              now);

    /* GET /auth/me with it is the caller. */
    json_t *me = be_api(200, "GET", BE_API "/auth/me", tok, NULL);
    json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
    cr_assert_str_eq(be_id(mu), uid, "/auth/me: %s", th_dump(me));
    cr_assert_str_eq(th_str(mu, "username") ? th_str(mu, "username") : "", "admin");
    cr_assert_str_eq(th_str(mu, "role") ? th_str(mu, "role") : "", "owner");

    /* The configured password is never logged in clear. */
    char *log = th_keep(th_log(p));
    cr_assert(!strstr(log, BE_PW), "the admin password is in the log:\n%s", log);
}

Test(backend_auth, wrong_password_and_unknown_user_are_the_same_401, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    th_resp_t *r = be_login_resp("admin", "not-the-password");
    const char *m1 = th_assert_error(r, 401, "invalid_credentials", "wrong password");
    th_resp_free(&r);
    r = be_login_resp("nobody-here", BE_PW);
    const char *m2 = th_assert_error(r, 401, "invalid_credentials", "unknown user");
    th_resp_free(&r);
    cr_assert_str_eq(m1, m2, "the messages differ: \"%s\" vs \"%s\"", m1, m2);
    /* Neither is a token; the right password still works. */
    be_login("admin", BE_PW);
}

/* Milliseconds a failed login of user takes (asserts it fails with 401). */
static long long s_failed_login_ms(const char *user, const char *pass)
{
    long long t0 = th_now_ms();
    th_resp_t *r = be_login_resp(user, pass);
    long long ms = th_now_ms() - t0;
    th_assert_error(r, 401, "invalid_credentials", th_fmt("login of %s", user));
    th_resp_free(&r);
    return ms;
}

Test(backend_auth, unknown_user_costs_a_hash_and_failures_slow_down, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    /* Same work: an unknown user is not answered much faster than a wrong
     * password (a dummy argon2id hash is verified). */
    long long wrong = 0, unknown = 0;
    for (int i = 0; i < 3; i++) {
        wrong += s_failed_login_ms("admin", "wrong-password");
        unknown += s_failed_login_ms(th_fmt("ghost-%d", i), "wrong-password");
    }
    cr_log_info("3 wrong passwords: %lld ms, 3 unknown users: %lld ms", wrong, unknown);
    cr_assert_geq(unknown * 3, wrong,
                  "unknown users: %lld ms, wrong passwords: %lld ms", unknown, wrong);

    /* Two more failures make five for admin; then attempts are refused
     * unchecked until a delay has passed (test_backend_throttle.c follows
     * the delay as it doubles). */
    for (int i = 0; i < 2; i++)
        s_failed_login_ms("admin", "wrong-password");
    th_resp_t *r = be_login_resp("admin", "wrong-password");
    th_assert_error(r, 429, "too_many_attempts", "the 6th login of admin");
    const char *ra = th_resp_header(r, "Retry-After");
    cr_assert_not_null(ra, "429 without Retry-After");
    int secs = atoi(ra);
    th_resp_free(&r);
    /* Another username is not slowed down by admin's failures. */
    s_failed_login_ms("someone-else", "wrong-password");
    /* The right password logs in once the delay has passed. */
    th_sleep_ms(secs * 1000);
    be_login("admin", BE_PW);
}

Test(backend_auth, missing_malformed_and_forged_tokens_are_401, .timeout = 60,
     .fini = be_fini)
{
    be_start(NULL);
    const char *adm = be_login("admin", BE_PW);
    be_user(adm, "vera", "viewer-pass-1", "viewer");
    const char *tok = be_login("vera", "viewer-pass-1");
    be_api(200, "GET", BE_API "/auth/me", tok, NULL);

    s_assert_unauthorized(NULL, "no Authorization");
    const char *noauth[][3] = {
        {"GET", BE_API "/projects", NULL},
        {"GET", BE_API "/tasks", NULL},
        {"GET", BE_API "/users", NULL},
        {"POST", BE_API "/projects", "{\"name\":\"x\"}"},
        {"POST", BE_API "/users",
         "{\"username\":\"x\",\"password\":\"xxxxxxxxx\","
         "\"role\":\"owner\"}"},
    };
    for (size_t i = 0; i < sizeof noauth / sizeof *noauth; i++)
        be_api_err(401, "unauthorized", noauth[i][0], noauth[i][1], NULL, noauth[i][2]);
    s_assert_unauthorized("Authorization: Bearer\r\n", "Bearer without a token");
    s_assert_unauthorized("Authorization: Bearer abc\r\n", "Bearer abc");
    s_assert_unauthorized("Authorization: Bearer a.b.c\r\n", "Bearer a.b.c");
    s_assert_unauthorized(th_fmt("Authorization: %s\r\n", tok), "no Bearer scheme");
    s_assert_unauthorized("Authorization: Basic YWRtaW46czNjcmV0\r\n", "Basic");

    /* One character of the signature changed (not the last, whose low bits
     * a lenient decoder may ignore). */
    const char *h, *pl, *sig;
    size_t hn, pn;
    s_jwt_split(tok, &h, &hn, &pl, &pn, &sig);
    cr_assert_gt(strlen(sig), 8);
    char *forged = th_keep(strdup(tok));
    char *c = forged + (sig - tok) + 5;
    *c = *c == 'A' ? 'B' : 'A';
    s_assert_unauthorized(th_fmt("Authorization: Bearer %s\r\n", forged),
                          "a signature character flipped");

    /* The viewer's claims rewritten to owner, the signature kept. */
    json_t *cl = json_deep_copy(s_jwt_claims(tok));
    th_keep_json(cl);
    json_object_set_new(cl, "role", json_string("owner"));
    char *cls = th_keep(json_dumps(cl, JSON_COMPACT));
    const char *raised = th_fmt("%.*s.%s.%s", (int)hn, h, s_b64url_encode(cls), sig);
    s_assert_unauthorized(th_fmt("Authorization: Bearer %s\r\n", raised),
                          "claims rewritten to owner");
    be_api_err(401, "unauthorized", "GET", BE_API "/users", raised, NULL);

    /* alg none, unsigned. */
    const char *none = th_fmt(
        "%s.%.*s.", s_b64url_encode("{\"alg\":\"none\",\"typ\":\"JWT\"}"), (int)pn, pl);
    s_assert_unauthorized(th_fmt("Authorization: Bearer %s\r\n", none), "alg none");

    /* The good token still works. */
    json_t *me = be_api(200, "GET", BE_API "/auth/me", tok, NULL);
    json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
    cr_assert_str_eq(th_str(mu, "role") ? th_str(mu, "role") : "", "viewer");
}

Test(backend_auth, expired_token_is_401, .timeout = 60, .fini = be_fini)
{
    /* token_ttl = 2, not 1: the token must be used once while valid (so a
     * worker that remembers verified tokens has it in its cache), and with
     * one second a login in the last milliseconds of a second would give a
     * token that has already expired by the time it is used. */
    be_start("admin_password = " BE_PW "\ntoken_ttl = 2\n");
    json_t *j = be_login_doc("admin", BE_PW);
    const char *tok = th_str(j, "access_token");
    json_t *c = s_jwt_claims(tok);
    json_int_t exp = th_int(c, "exp");
    cr_assert_eq(exp - th_int(c, "iat"), 2, "claims %s with token_ttl = 2", th_dump(c));
    be_api(200, "GET", BE_API "/auth/me", tok, NULL);
    be_api(200, "GET", BE_API "/projects", tok, NULL);
    /* Wait until a second past exp by the wall clock (JWT times are). */
    long long left_ms = ((long long)exp + 1 - (long long)time(NULL)) * 1000 + 200;
    cr_assert_leq(left_ms, 4000, "exp %lld is too far ahead", (long long)exp);
    th_sleep_ms((int)left_ms);
    s_assert_unauthorized(th_fmt("Authorization: Bearer %s\r\n", tok), "expired token");
    be_api_err(401, "unauthorized", "GET", BE_API "/projects", tok, NULL);
    /* A new login gives a token that works again. */
    be_api(200, "GET", BE_API "/auth/me", be_login("admin", BE_PW), NULL);
}

/* =================================================================== */
/* 2. The generated admin password and secret                           */
/* =================================================================== */

/* Asserts path exists with permissions 0600. */
static void s_assert_0600(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    cr_assert_eq(st.st_mode & 07777, 0600, "%s has mode %04o, want 0600", path,
                 (unsigned)(st.st_mode & 07777));
    cr_assert_gt(st.st_size, 0, "%s is empty", path);
}

/* Whether the file at path (absent: no) contains needle. */
static bool s_file_has(const char *path, const void *needle, size_t n)
{
    size_t len = 0;
    char *data = th_read_file(path, &len);
    bool has = data && memmem(data, len, needle, n) != NULL;
    free(data);
    return has;
}

Test(backend_auth, random_admin_password_is_kept_0600_and_never_stored_in_clear,
     .timeout = 60, .fini = be_fini)
{
    const char *dir = be_new_dir();
    th_proc_t *p = be_start_in(dir, "admin_password =\n");
    const char *pwf = th_fmt("%s/admin-password", dir);
    s_assert_0600(pwf);
    char *pw = th_keep(th_read_file(pwf, NULL));
    cr_assert_not_null(pw);
    pw[strcspn(pw, "\r\n")] = '\0';
    cr_assert_geq(strlen(pw), 8, "the generated password \"%s\" is short", pw);
    const char *tok = be_login("admin", pw);
    json_t *me = be_api(200, "GET", BE_API "/auth/me", tok, NULL);
    json_t *mu = json_object_get(me, "user") ? json_object_get(me, "user") : me;
    cr_assert_str_eq(th_str(mu, "role") ? th_str(mu, "role") : "", "owner");

    /* Hashed with argon2id, not stored in clear (the WAL counts too). */
    const char *db = th_fmt("%s/vapora.db", dir);
    struct stat st;
    cr_assert_eq(stat(db, &st), 0, "no database at %s", db);
    const char *files[] = {db, th_fmt("%s-wal", db), th_fmt("%s-journal", db)};
    bool argon = false;
    for (size_t i = 0; i < 3; i++) {
        cr_assert(!s_file_has(files[i], pw, strlen(pw)), "the password is in %s",
                  files[i]);
        argon |= s_file_has(files[i], "$argon2id$", 10);
    }
    cr_assert(argon, "no $argon2id$ hash in the database files");

    /* Never logged: the log says where the file is (logs travel further
     * than a 0600 file). */
    cr_assert_eq(th_log_count(p, pw), 0, "the password is in the log %d times:\n%s",
                 th_log_count(p, pw), (char *)th_keep(th_log(p)));
    th_assert_log(p, pwf, "warn");
    s_assert_0600(th_fmt("%s/jwt-secret", dir));
    char *secret = th_keep(th_read_file(th_fmt("%s/jwt-secret", dir), NULL));

    /* A second start keeps both: the same password logs in, the old token
     * validates, and the password is not logged again. */
    cr_assert_eq(th_stop(p, SIGTERM, 10000), 0, "SIGTERM: not a clean exit");
    p = be_start_in(dir, "admin_password =\n");
    char *pw2 = th_keep(th_read_file(pwf, NULL));
    pw2[strcspn(pw2, "\r\n")] = '\0';
    cr_assert_str_eq(pw2, pw, "admin-password changed on a restart");
    char *secret2 = th_keep(th_read_file(th_fmt("%s/jwt-secret", dir), NULL));
    cr_assert_str_eq(secret2 ? secret2 : "", secret ? secret : "",
                     "jwt-secret changed");
    be_api(200, "GET", BE_API "/auth/me", tok, NULL);
    be_login("admin", pw);
    char *log = th_keep(th_log(p));
    cr_assert(!strstr(log, pw), "the password was logged again on a restart");
}

Test(backend_auth, the_agents_user_is_made_with_a_password_of_its_own, .timeout = 60,
     .fini = be_fini)
{
    /* Generated: in DATA_DIR/agents-password, never logged. */
    const char *dir = be_new_dir();
    th_proc_t *p = be_start_in(dir, "admin_password = " BE_PW "\n");
    const char *pwf = th_fmt("%s/agents-password", dir);
    s_assert_0600(pwf);
    char *pw = th_keep(th_read_file(pwf, NULL));
    cr_assert_geq(strlen(pw), 16, "the generated password \"%s\" is short", pw);
    json_t *j = be_login_doc("agents", pw);
    cr_assert_str_eq(th_str(json_object_get(j, "user"), "role"), "member");
    cr_assert_eq(th_log_count(p, pw), 0, "the agents password is in the log");
    th_assert_log(p, pwf, "warn");
    /* A member: writes projects, does not manage users. */
    const char *tok = th_str(j, "access_token");
    be_project(tok, "made by the agents");
    be_api_err(403, "forbidden", "GET", BE_API "/users", tok, NULL);

    /* Configured: that password, and no file. */
    const char *dir2 = be_new_dir();
    th_proc_t *q = be_start_in(dir2, "admin_password = " BE_PW
                                     "\nagents_password = agents-Secret-9\n");
    be_login("agents", "agents-Secret-9");
    struct stat st;
    cr_assert_neq(stat(th_fmt("%s/agents-password", dir2), &st), 0,
                  "agents-password written although the password is configured");
    cr_assert_eq(th_log_count(q, "agents-Secret-9"), 0, "the password is in the log");
}
