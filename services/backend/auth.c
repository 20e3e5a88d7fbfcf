/* auth.c - passwords (argon2id), tokens (JWT HS256), the shared secret and
 * the first admin user. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "alloc.h"
#include "now.h"
#include "file.h"
#include "store_users.h"

/* OWASP's argon2id minimum: 19 MiB, 2 passes. */
#define AUTH_MEMLIMIT (19u * 1024u * 1024u)
#define AUTH_OPSLIMIT 2u
#define AUTH_FAIL_FREE 5
#define AUTH_FAIL_WINDOW_MS (15u * 60u * 1000u)

int role_rank(const char *role)
{
    static const char *const names[] = {"viewer", "member", "owner"};
    for (int i = 0; role && i < 3; i++)
        if (strcmp(role, names[i]) == 0)
            return i;
    return -1;
}

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

/* Reads DATA_DIR/name, or creates it (0600, O_EXCL so concurrent workers
 * agree) with len random bytes. Returns a heap buffer. */
static unsigned char *s_secret_file(const char *dir, const char *name, size_t len,
                                    size_t *outlen, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, name);
    unsigned char *buf = xmalloc(len);
    randombytes_buf(buf, len);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        bool ok = write(fd, buf, len) == (ssize_t)len && fsync(fd) == 0;
        close(fd);
        if (!ok) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            unlink(path);
            free(path);
            free(buf);
            return NULL;
        }
        log_info("generated a new JWT secret in %s", path);
    } else {
        /* Another worker made it: wait until it is whole, then read it. */
        ssize_t n = -1;
        for (int i = 0; i < 200 && n != (ssize_t)len; i++) {
            int rfd = open(path, O_RDONLY | O_CLOEXEC);
            n = rfd >= 0 ? read(rfd, buf, len) : -1;
            if (rfd >= 0)
                close(rfd);
            if (n != (ssize_t)len)
                usleep(5000);
        }
        if (n != (ssize_t)len) {
            snprintf(err, errlen, "cannot read %s (%zd of %zu bytes)", path, n, len);
            free(path);
            free(buf);
            return NULL;
        }
    }
    free(path);
    *outlen = len;
    return buf;
}

static int s_load_secret(backend_t *b, char *err, size_t errlen)
{
    const char *cfg = cfg_get(worker_cfg(b->w), "backend", "jwt_secret");
    if (cfg && *cfg) {
        if (strlen(cfg) < 32) {
            snprintf(err, errlen,
                     "[backend] jwt_secret: use at least 32 characters (or leave it "
                     "empty to generate one)");
            return -EINVAL;
        }
        b->jwt_key_len = strlen(cfg);
        b->jwt_key = xmalloc(b->jwt_key_len);
        memcpy(b->jwt_key, cfg, b->jwt_key_len);
        return 0;
    }
    b->jwt_key =
        s_secret_file(b->data_dir, "jwt-secret", 32, &b->jwt_key_len, err, errlen);
    return b->jwt_key ? 0 : -EIO;
}

/* Creates the admin user at first start. */
static int s_bootstrap_admin(backend_t *b, char *err, size_t errlen)
{
    const char *pw = cfg_get(worker_cfg(b->w), "backend", "admin_password");
    char generated[33];
    bool random_pw = !pw || !*pw;
    if (random_pw) {
        unsigned char raw[18];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(generated, sizeof generated, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        pw = generated;
    }
    json_t *u = NULL;
    char *h = NULL;
    store_err_t e;
    if (store_user_by_name(b->store, "admin", &u, &h, &e) == 0) {
        json_decref(u);
        free(h);
        store_end(b->store);
        return 0; /* not the first start */
    }
    char *hash = auth_hash_password(pw);
    bool created = false;
    int rc =
        hash ? store_user_ensure(b->store, "admin", hash, "owner", &created, &e)
             : VP_ESTORE;
    free(hash);
    store_end(b->store);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create the admin user: %s",
                 hash ? e.msg : "hashing failed");
        return -EIO;
    }
    if (created && random_pw) {
        char *path = xasprintf("%s/admin-password", b->data_dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && write(fd, pw, strlen(pw)) == (ssize_t)strlen(pw);
        if (fd >= 0)
            close(fd);
        log_warn("created user admin with the generated password %s (also in %s%s)", pw,
                 path, ok ? "" : ": could not be written");
        free(path);
    } else if (created) {
        log_info("created user admin with [backend] admin_password");
    }
    sodium_memzero(generated, sizeof generated);
    return 0;
}

void auth_failures_open(backend_t *b)
{
    size_t len = BACKEND_LOGIN_SLOTS * sizeof(login_fail_t);
    char *path = xasprintf("%s/login-failures", b->data_dir);
    b->fails_fd = -1;
    void *p = file_map_shared(path, len, &b->fails_fd);
    if (!p) {
        log_err(errno, "auth: sharing %s (login failures are counted per worker)", path);
        b->fails = xcalloc(BACKEND_LOGIN_SLOTS, sizeof *b->fails);
    } else {
        b->fails = p;
        b->fails_shared = true;
    }
    free(path);
}

/* A few non-blocking tries: the holder is another worker inside a few
 * instructions; the loop thread never waits on it. */
static bool s_fails_lock(backend_t *b)
{
    for (int i = 0; b->fails_fd >= 0 && i < 1000; i++)
        if (flock(b->fails_fd, LOCK_EX | LOCK_NB) == 0)
            return true;
    return false;
}

static void s_fails_unlock(backend_t *b, bool locked)
{
    if (locked)
        flock(b->fails_fd, LOCK_UN);
}

int auth_init(backend_t *b, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -EIO;
    }
    if (s_load_secret(b, err, errlen) < 0 || s_bootstrap_admin(b, err, errlen) < 0)
        return -EIO;
    auth_failures_open(b);
    return 0;
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

void auth_fini(backend_t *b)
{
    if (b->jwt_key)
        sodium_memzero(b->jwt_key, b->jwt_key_len);
    free(b->jwt_key);
    for (size_t i = 0; i < BACKEND_TOKEN_CACHE; i++) {
        free(b->tokens[i].token);
        free(b->tokens[i].claims);
        b->tokens[i].token = NULL;
        b->tokens[i].claims = NULL;
    }
    b->jwt_key = NULL;
    auth_failures_close(b);
}

void auth_failures_close(backend_t *b)
{
    if (!b->fails)
        return; /* never opened */
    if (b->fails_shared)
        munmap(b->fails, BACKEND_LOGIN_SLOTS * sizeof *b->fails);
    else
        free(b->fails);
    if (b->fails_fd >= 0)
        close(b->fails_fd);
    b->fails = NULL;
    b->fails_fd = -1;
    b->fails_shared = false;
}

char *auth_issue_token(backend_t *b, const json_t *user)
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
        jwt_add_grant_int(jwt, "iat", now) == 0 &&
        jwt_add_grant_int(jwt, "exp", now + b->token_ttl) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, b->jwt_key, (int)b->jwt_key_len) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

static int s_verify(backend_t *b, const char *token, claims_t *out, long *exp_out)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, b->jwt_key, (int)b->jwt_key_len) != 0 || !jwt)
        return -1;
    int rc = -1;
    const char *sub = jwt_get_grant(jwt, "sub");
    const char *name = jwt_get_grant(jwt, "username");
    const char *role = jwt_get_grant(jwt, "role");
    long exp = jwt_get_grant_int(jwt, "exp");
    if (jwt_get_alg(jwt) == JWT_ALG_HS256 && sub && name && role_rank(role) >= 0 &&
        exp > time(NULL)) {
        snprintf(out->sub, sizeof out->sub, "%s", sub);
        snprintf(out->username, sizeof out->username, "%s", name);
        snprintf(out->role, sizeof out->role, "%s", role);
        *exp_out = exp;
        rc = 0;
    }
    jwt_free(jwt);
    return rc;
}

int auth_verify_token(backend_t *b, const char *token, claims_t *out)
{
    long exp;
    return s_verify(b, token, out, &exp);
}

int auth_verify_token_cached(backend_t *b, const char *token, claims_t *out)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = token; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    token_slot_t *slot = &b->tokens[h % BACKEND_TOKEN_CACHE];
    if (slot->token && strcmp(slot->token, token) == 0) {
        if (slot->exp <= time(NULL))
            return -1;
        *out = *slot->claims;
        return 0;
    }
    long exp;
    if (s_verify(b, token, out, &exp) < 0)
        return -1;
    free(slot->token);
    slot->token = xstrdup(token);
    slot->exp = exp;
    if (!slot->claims)
        slot->claims = xmalloc(sizeof *slot->claims);
    *slot->claims = *out;
    return 0;
}

static login_fail_t *s_slot(backend_t *b, const char *username)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = username; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &b->fails[h % BACKEND_LOGIN_SLOTS];
}

uint64_t auth_failure_delay(backend_t *b, const char *username)
{
    login_fail_t *f = s_slot(b, username);
    uint64_t now = now_ms(); /* CLOCK_MONOTONIC: one clock for all workers */
    bool locked = s_fails_lock(b);
    if (strncmp(f->username, username, sizeof f->username) != 0 ||
        now - f->first_ms > AUTH_FAIL_WINDOW_MS) {
        snprintf(f->username, sizeof f->username, "%s", username);
        f->count = 0;
        f->first_ms = now;
    }
    unsigned count = ++f->count;
    s_fails_unlock(b, locked);
    if (count <= AUTH_FAIL_FREE)
        return 0;
    unsigned over = count - AUTH_FAIL_FREE - 1;
    uint64_t d = 250ull << (over < 5 ? over : 5);
    return d > 8000 ? 8000 : d;
}

void auth_forget_failures(backend_t *b, const char *username)
{
    login_fail_t *f = s_slot(b, username);
    bool locked = s_fails_lock(b);
    if (strncmp(f->username, username, sizeof f->username) == 0)
        memset(f, 0, sizeof *f);
    s_fails_unlock(b, locked);
}
