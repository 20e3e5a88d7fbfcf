/* test_auth.c - unit tests for services/backend/auth.c: tokens, passwords
 * and roles. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "auth.h"

/* A token key of 32 bytes of `fill`. */
static auth_t *s_auth(unsigned char fill, long ttl)
{
    cr_assert_geq(sodium_init(), 0);
    unsigned char key[32];
    memset(key, fill, sizeof key);
    return auth_new_with_key(key, sizeof key, ttl);
}

Test(auth, tokens_verify_and_reject_forgeries)
{
    auth_t *a = s_auth(7, 3600);
    json_t *u =
        json_pack("{s:s,s:s,s:s}", "id", "u1", "username", "ann", "role", "member");
    char *tok = auth_issue_token(a, u, 0);
    cr_assert_not_null(tok);
    auth_claims_t c;
    cr_assert_eq(auth_verify_token(a, tok, &c), 0);
    cr_assert_str_eq(c.sub, "u1");
    cr_assert_str_eq(c.username, "ann");
    cr_assert_str_eq(c.role, "member");
    char *forged = strdup(tok);
    size_t n = strlen(forged);
    forged[n - 2] = forged[n - 2] == 'A' ? 'B' : 'A';
    cr_assert_eq(auth_verify_token(a, forged, &c), -EACCES);
    cr_assert_eq(auth_verify_token(a, "not.a.token", &c), -EACCES);
    auth_t *other = s_auth(8, 3600); /* another secret */
    cr_assert_eq(auth_verify_token(other, tok, &c), -EACCES);
    free(forged);
    free(tok);
    auth_t *expired = s_auth(7, -10); /* tokens already expired */
    tok = auth_issue_token(expired, u, 0);
    cr_assert_eq(auth_verify_token(expired, tok, &c), -EACCES);
    cr_assert_eq(auth_verify_token(a, tok, &c), -EACCES, "same key, still expired");
    free(tok);
    json_decref(u);
    auth_destroy(&expired);
    auth_destroy(&other);
    auth_destroy(&a);
    cr_assert_null(a);
}

Test(auth, passwords_hash_with_argon2id)
{
    char *h = auth_hash_password("correct horse");
    cr_assert_not_null(h);
    cr_assert(strncmp(h, "$argon2id$", 10) == 0, "%s", h);
    cr_assert_null(strstr(h, "correct horse"));
    cr_assert(auth_verify_password(h, "correct horse"));
    cr_assert_not(auth_verify_password(h, "correct horsE"));
    free(h);
}

Test(roles, ranks)
{
    cr_assert_lt(auth_role_rank("viewer"), auth_role_rank("member"));
    cr_assert_lt(auth_role_rank("member"), auth_role_rank("owner"));
    cr_assert_eq(auth_role_rank("root"), -1);
    cr_assert_eq(auth_role_rank(NULL), -1);
}

/* A token of member ann (u1) under claim version ver. */
static char *s_ann_token(auth_t *a, int64_t ver)
{
    json_t *u =
        json_pack("{s:s,s:s,s:s}", "id", "u1", "username", "ann", "role", "member");
    char *tok = auth_issue_token(a, u, ver);
    cr_assert_not_null(tok);
    json_decref(u);
    return tok;
}

Test(auth, a_token_is_current_only_under_the_users_counter_it_was_checked_at)
{
    auth_t *a = s_auth(7, 3600);
    char *tok = s_ann_token(a, 3);
    auth_claims_t c;
    uint64_t users = 7;
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), 0);
    cr_assert_eq(c.ver, 3, "claim ver: %lld", (long long)c.ver);
    cr_assert_not(c.current, "never checked");
    auth_token_checked(a, tok, 7, true);
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), 0);
    cr_assert(c.current);
    cr_assert_eq(auth_verify_token_cached(a, tok, NULL, &c), 0);
    cr_assert_not(c.current, "the counter is not shared");
    users = 8; /* a user changed somewhere */
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), 0);
    cr_assert_not(c.current);
    auth_token_checked(a, tok, 8, false);
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), -EKEYREVOKED);
    users = 9;
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), -EKEYREVOKED,
                 "for good");
    free(tok);
    auth_destroy(&a);
}

/* The cache finds a token's slot from its last bytes (its signature): a
 * token that differs before them, though it lands in the cached one's
 * slot, is verified on its own (a forgery is refused), and neither
 * replaces nor marks the cached token. */
Test(auth, a_token_sharing_a_cached_ones_signature_is_verified_on_its_own)
{
    auth_t *a = s_auth(7, 3600);
    char *tok = s_ann_token(a, 3);
    auth_claims_t c;
    uint64_t users = 7;
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), 0);
    auth_token_checked(a, tok, 7, true);
    char *forged = strdup(tok);
    char *payload = strchr(forged, '.') + 1;
    payload[4] = payload[4] == 'A' ? 'B' : 'A'; /* the claims, not the signature */
    cr_assert_eq(auth_verify_token_cached(a, forged, &users, &c), -EACCES);
    auth_token_checked(a, forged, 7, false);
    cr_assert_eq(auth_verify_token_cached(a, tok, &users, &c), 0);
    cr_assert(c.current, "the forgery touched the cached token");
    cr_assert_str_eq(c.sub, "u1");
    free(forged);
    free(tok);
    auth_destroy(&a);
}
