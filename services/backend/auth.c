/* auth.c - passwords (argon2id), tokens (JWT HS256) and the shared
 * secret; see auth.h. */
#define _GNU_SOURCE
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

/* OWASP's argon2id minimum: 19 MiB, 2 passes. */
#define AUTH_MEMLIMIT (19u * 1024u * 1024u)
#define AUTH_OPSLIMIT 2u
/* Tokens whose signature was verified, remembered (loop thread). */
#define AUTH_TOKEN_CACHE 1024

typedef struct token_slot {
    char *token;
    long exp;
    auth_claims_t claims;
    bool confirmed; /* its user held claims.ver under the users counter tag */
    bool revoked;   /* its user did not: for good */
    uint64_t tag;
} token_slot_t;

struct auth {
    unsigned char *key;
    size_t key_len;
    long token_ttl;
    token_slot_t tokens[AUTH_TOKEN_CACHE]; /* loop thread only */
};

int auth_role_rank(const char *role)
{
    static const char *const names[] = {"viewer", "member", "owner"};
    for (int i = 0; role && i < 3; i++)
        if (strcmp(role, names[i]) == 0)
            return i;
    return -1;
}

/* ---- passwords ---- */

char *auth_hash_password(const char *password)
{
    char *out = xmalloc(crypto_pwhash_STRBYTES);
    if (crypto_pwhash_str_alg(out, password, strlen(password), AUTH_OPSLIMIT,
                              AUTH_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

bool auth_verify_password(const char *hash, const char *password)
{
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

static pthread_once_t s_dummy_once = PTHREAD_ONCE_INIT;
static char *s_dummy;

static void s_make_dummy(void)
{
    unsigned char raw[16];
    char pw[40];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(pw, sizeof pw, raw, sizeof raw);
    s_dummy = auth_hash_password(pw);
}

/* A hash of a random password, verified when the user does not exist, so
 * unknown users cost what wrong passwords do. Made on first need (a pool
 * thread), not at start-up: an argon2id hash there delayed every worker's
 * readiness by ~15 ms. */
const char *auth_dummy_hash(void)
{
    pthread_once(&s_dummy_once, s_make_dummy);
    return s_dummy;
}

/* ---- the secret ---- */

/* Creates path (0600, O_EXCL so concurrent workers agree) holding the len
 * bytes of buf: 1 when made, 0 when another worker made it first, -1 with
 * a reason on failure. */
static int s_write_secret(const char *path, const unsigned char *buf, size_t len,
                          char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    bool ok = write(fd, buf, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    log_info("generated a new JWT secret in %s", path);
    return 1;
}

/* Reads the len bytes another worker is writing to path, waiting (up to a
 * second) until they are all there. */
static bool s_read_secret(const char *path, unsigned char *buf, size_t len, char *err,
                          size_t errlen)
{
    ssize_t n = -1;
    for (int i = 0; i < 200 && n != (ssize_t)len; i++) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        n = rfd >= 0 ? read(rfd, buf, len) : -1;
        if (rfd >= 0)
            close(rfd);
        if (n != (ssize_t)len)
            usleep(5000);
    }
    if (n != (ssize_t)len)
        snprintf(err, errlen, "cannot read %s (%zd of %zu bytes)", path, n, len);
    return n == (ssize_t)len;
}

/* Reads DATA_DIR/name, or creates it with len random bytes. Returns a heap
 * buffer of len bytes, or NULL with a reason. */
static unsigned char *s_secret_file(const char *dir, const char *name, size_t len,
                                    char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, name);
    unsigned char *buf = xmalloc(len);
    randombytes_buf(buf, len);
    int made = s_write_secret(path, buf, len, err, errlen);
    if (made < 0 || (made == 0 && !s_read_secret(path, buf, len, err, errlen))) {
        free(buf);
        buf = NULL;
    }
    free(path);
    return buf;
}

auth_t *auth_new_with_key(const void *key, size_t len, long token_ttl)
{
    auth_t *a = xcalloc(1, sizeof *a);
    a->key = xmalloc(len);
    memcpy(a->key, key, len);
    a->key_len = len;
    a->token_ttl = token_ttl;
    return a;
}

auth_t *auth_new(const char *secret, const char *data_dir, long token_ttl, char *err,
                 size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    if (secret && *secret) {
        if (strlen(secret) >= 32)
            return auth_new_with_key(secret, strlen(secret), token_ttl);
        snprintf(err, errlen,
                 "[backend] jwt_secret: use at least 32 characters (or leave it "
                 "empty to generate one)");
        return NULL;
    }
    unsigned char *key = s_secret_file(data_dir, "jwt-secret", 32, err, errlen);
    if (!key)
        return NULL;
    auth_t *a = auth_new_with_key(key, 32, token_ttl);
    sodium_memzero(key, 32);
    free(key);
    return a;
}

void auth_destroy(auth_t **ap)
{
    auth_t *a = ap ? *ap : NULL;
    if (!a)
        return;
    sodium_memzero(a->key, a->key_len);
    free(a->key);
    for (size_t i = 0; i < AUTH_TOKEN_CACHE; i++)
        free(a->tokens[i].token);
    free(a);
    *ap = NULL;
}

long auth_token_ttl(const auth_t *a)
{
    return a->token_ttl;
}

/* ---- tokens ---- */

char *auth_issue_token(const auth_t *a, const json_t *user, int64_t ver)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;
    time_t now = time(NULL);
    if (jwt_new(&jwt) == 0 &&
        jwt_add_grant(jwt, "sub", json_string_value(json_object_get(user, "id"))) ==
            0 &&
        jwt_add_grant(jwt, "username",
                      json_string_value(json_object_get(user, "username"))) == 0 &&
        jwt_add_grant(jwt, "role", json_string_value(json_object_get(user, "role"))) ==
            0 &&
        jwt_add_grant_int(jwt, "ver", (long)ver) == 0 &&
        jwt_add_grant_int(jwt, "iat", now) == 0 &&
        jwt_add_grant_int(jwt, "exp", now + a->token_ttl) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, a->key, (int)a->key_len) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

static int s_verify(const auth_t *a, const char *token, auth_claims_t *out,
                    long *exp_out)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, a->key, (int)a->key_len) != 0 || !jwt)
        return -EACCES;
    int rc = -EACCES;
    const char *sub = jwt_get_grant(jwt, "sub");
    const char *name = jwt_get_grant(jwt, "username");
    const char *role = jwt_get_grant(jwt, "role");
    long exp = jwt_get_grant_int(jwt, "exp");
    if (jwt_get_alg(jwt) == JWT_ALG_HS256 && sub && name && auth_role_rank(role) >= 0 &&
        exp > time(NULL)) {
        snprintf(out->sub, sizeof out->sub, "%s", sub);
        snprintf(out->username, sizeof out->username, "%s", name);
        snprintf(out->role, sizeof out->role, "%s", role);
        out->ver = jwt_get_grant_int(jwt, "ver"); /* 0 when absent: older tokens */
        out->current = false;
        *exp_out = exp;
        rc = 0;
    }
    jwt_free(jwt);
    return rc;
}

int auth_verify_token(const auth_t *a, const char *token, auth_claims_t *out)
{
    long exp;
    return s_verify(a, token, out, &exp);
}

/* The cache slot of token: a hash of its last 32 bytes, which are its
 * signature's (a MAC of the rest: tokens that differ differ there). Only
 * the slot depends on it; a hit still compares the whole token. Hashing
 * all of a ~300-byte token, a byte at a time, twice per request, cost
 * about 1.5 % of the loop thread's time per POST. */
static token_slot_t *s_slot(auth_t *a, const char *token)
{
    size_t n = strlen(token);
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = token + (n > 32 ? n - 32 : 0); *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &a->tokens[h % AUTH_TOKEN_CACHE];
}

int auth_verify_token_cached(auth_t *a, const char *token, const uint64_t *users_now,
                             auth_claims_t *out)
{
    token_slot_t *slot = s_slot(a, token);
    if (slot->token && strcmp(slot->token, token) == 0) {
        if (slot->exp <= time(NULL))
            return -EACCES;
        if (slot->revoked)
            return -EKEYREVOKED;
        *out = slot->claims;
        out->current = users_now && slot->confirmed && slot->tag == *users_now;
        return 0;
    }
    long exp;
    if (s_verify(a, token, out, &exp) < 0)
        return -EACCES;
    free(slot->token);
    *slot = (token_slot_t){.token = xstrdup(token), .exp = exp, .claims = *out};
    return 0;
}

void auth_token_checked(auth_t *a, const char *token, uint64_t tag, bool holds)
{
    token_slot_t *slot = s_slot(a, token);
    if (!slot->token || strcmp(slot->token, token) != 0)
        return; /* another token took the slot meanwhile */
    slot->revoked |= !holds;
    slot->confirmed = holds;
    slot->tag = tag;
}
