/* auth.h - who is calling: roles, passwords (argon2id), tokens (JWT HS256)
 * and the secret they are signed with.
 *
 * An auth_t holds the signing key and a cache of tokens that verified; it
 * is made at set-up and used by the loop thread (tokens) and pool threads
 * (issuing a token at login). Passwords are pool-thread work: hashing is
 * slow on purpose. */
#ifndef VAPORA_BACKEND_AUTH_H
#define VAPORA_BACKEND_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Roles, in increasing power. */
enum { AUTH_VIEWER = 0, AUTH_MEMBER = 1, AUTH_OWNER = 2 };
/* The rank of a role name ("viewer", "member", "owner"), or -1. */
int auth_role_rank(const char *role);

/* The verified claims of a request's token. */
typedef struct auth_claims {
    char sub[64];
    char username[128];
    char role[16];
    int64_t ver; /* claim "ver": its user's token version when it was issued */
    /* Set by auth_verify_token_cached: this worker saw the user hold ver
     * under the current users counter, so no database check is needed. */
    bool current;
} auth_claims_t;

typedef struct auth auth_t;

/* Signs with secret when it is set (at least 32 characters), else with the
 * random key kept in DATA_DIR/jwt-secret, made once (0600) and shared by
 * every worker. Tokens live token_ttl seconds. Start-up only (blocking file
 * work). NULL with a reason in err. */
auth_t *auth_new(const char *secret, const char *data_dir, long token_ttl, char *err,
                 size_t errlen);
/* The same with a key of len bytes (copied); never NULL. */
auth_t *auth_new_with_key(const void *key, size_t len, long token_ttl);
/* Wipes the key and frees everything. Accepts NULL; sets *ap = NULL. */
void auth_destroy(auth_t **ap);

long auth_token_ttl(const auth_t *a);
/* A signed token for user {"id","username","role"} whose token version is
 * ver: a heap string (caller frees), or NULL. Any thread. */
char *auth_issue_token(const auth_t *a, const json_t *user, int64_t ver);
/* Verifies signature, algorithm and expiry: 0 with *out, or -EACCES. Any
 * thread. */
int auth_verify_token(const auth_t *a, const char *token, auth_claims_t *out);
/* The same, remembering tokens that verified (expiry is checked on every
 * use): the signature of a client's token is checked once, not per
 * request. users_now is the users counter (store_users_version), or NULL
 * when it is not shared: out->current says whether auth_token_checked
 * confirmed the token under that very value. A token found revoked:
 * -EKEYREVOKED. Loop thread only. */
int auth_verify_token_cached(auth_t *a, const char *token, const uint64_t *users_now,
                             auth_claims_t *out);
/* What a database check found for the user of token, made with the users
 * counter at tag: it holds the token's version (uses under the same
 * counter need no check), or not (deleted, or its role or password
 * changed: the token is refused from now on). Loop thread only. */
void auth_token_checked(auth_t *a, const char *token, uint64_t tag, bool holds);

/* argon2id: a heap string (caller frees) or NULL. Pool threads. */
char *auth_hash_password(const char *password);
bool auth_verify_password(const char *hash, const char *password);
/* The hash verified for unknown users (same work, same time); made once,
 * on first use. Pool threads. */
const char *auth_dummy_hash(void);

#endif
