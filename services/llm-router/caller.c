/* caller.c - caller keys, key files, anonymous callers and the roles each
 * caller may spend from. See caller.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caller.h"
#include "alloc.h"
#include "config.h"
#include "file.h"
#include "log.h"

#define CALLER_MIN_KEY 16   /* characters of a [caller:NAME] key, at least */
#define CALLER_KEY_BYTES 24 /* random bytes of a generated key */

struct callers {
    caller_t *v; /* with keys: [caller:*] in file order, then api_keys */
    size_t n;
    caller_t anonymous;
    caller_anon_t anon;
};

/* ---- key files ---- */

/* A new random key: "vpk-" and hex. */
static char *s_random_key(void)
{
    unsigned char raw[CALLER_KEY_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        VP_ASSERT(n > 0 || errno == EINTR);
        got += n > 0 ? (size_t)n : 0;
    }
    char *key = xmalloc(4 + 2 * sizeof raw + 1);
    memcpy(key, "vpk-", 4);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(key + 4 + 2 * i, 3, "%02x", raw[i]);
    return key;
}

/* Writes key to path through a temporary file renamed over it, so that a
 * reader never sees half a key. 0 or -errno. */
static int s_write_key(const char *path, const char *key)
{
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && (write(fd, key, strlen(key)) != (ssize_t)strlen(key) ||
                    write(fd, "\n", 1) != 1 || fsync(fd) < 0))
        rc = errno ? -errno : -EIO;
    if (fd >= 0)
        close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* The key in path (its first line, trimmed), or NULL with errno set (0:
 * the file is empty). */
static char *s_read_key(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        log_warn("llm-router: the caller key file %s is readable by others "
                 "(chmod 600 it)",
                 path);
    char *text = file_read_all(path, NULL);
    if (!text)
        return NULL;
    text[strcspn(text, "\r\n")] = '\0';
    char *end = text + strlen(text);
    while (end > text && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    if (!*text) {
        free(text);
        errno = 0;
        return NULL;
    }
    return text;
}

/* The key of key_file path, created (random, 0600) when the file does not
 * exist. Under a lock, so that workers starting together agree. */
static char *s_key_file(const char *sec, const char *path, char *err, size_t len)
{
    char *dir = xstrdup(path);
    int rc = file_mkdirs(dirname(dir), 0700);
    free(dir);
    char *lock_path = xasprintf("%s.lock", path);
    int lock = rc < 0 ? rc : file_lock(lock_path);
    free(lock_path);
    char *key = NULL;
    if (lock < 0) {
        snprintf(err, len, "[%s] key_file: cannot lock %s: %s", sec, path,
                 strerror(-lock));
        return NULL;
    }
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        key = s_random_key();
        if ((rc = s_write_key(path, key)) < 0) {
            snprintf(err, len, "[%s] key_file: cannot write %s: %s", sec, path,
                     strerror(-rc));
            free(key);
            key = NULL;
        } else {
            log_info("llm-router: created a key for [%s] in %s (mode 0600)", sec, path);
        }
    } else if (!(key = s_read_key(path))) {
        snprintf(err, len, "[%s] key_file: cannot read a key from %s: %s", sec, path,
                 errno ? strerror(errno) : "the file is empty");
    }
    close(lock);
    return key;
}

/* ---- loading ---- */

static bool s_key_ok(const char *key)
{
    for (const char *p = key; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return *key != '\0';
}

/* roles = a, b | *; default_role. */
static int s_load_roles(const cfg_t *cfg, const char *sec, caller_t *c, char *err,
                        size_t len)
{
    const char *roles = cfg_get(cfg, sec, "roles");
    if (!roles || !*roles) {
        snprintf(err, len, "[%s] roles: required (a comma list of roles, or *)", sec);
        return -EINVAL;
    }
    if (strcmp(roles, "*") != 0)
        c->nroles = cfg_split_list(roles, &c->roles);
    for (size_t i = 0; i < c->nroles; i++) {
        if (!rt_role_name_ok(c->roles[i])) {
            snprintf(err, len,
                     "[%s] roles: '%s' is not a role (1 to 63 characters of A-Z, a-z, "
                     "0-9 and . _ : @ / -)",
                     sec, c->roles[i]);
            return -EINVAL;
        }
    }
    const char *def = cfg_get(cfg, sec, "default_role");
    if (!def || !*def)
        def = c->nroles ? c->roles[0] : "default";
    c->default_role = xstrdup(def);
    if (!rt_role_name_ok(def) || !caller_may_use(c, def)) {
        snprintf(err, len, "[%s] default_role: '%s' is not one of its roles", sec, def);
        return -EINVAL;
    }
    return 0;
}

static int s_load_caller(const cfg_t *cfg, const char *sec, caller_t *c, char *err,
                         size_t len)
{
    c->name = xstrdup(sec + strlen("caller:"));
    const char *key = cfg_get(cfg, sec, "key"), *file = cfg_get(cfg, sec, "key_file");
    bool has_key = key && *key, has_file = file && *file;
    if (has_key == has_file) {
        snprintf(err, len, "[%s] key, key_file: set exactly one of them", sec);
        return -EINVAL;
    }
    c->key = has_key ? xstrdup(key) : s_key_file(sec, file, err, len);
    if (!c->key)
        return -EINVAL;
    if (!s_key_ok(c->key) || strlen(c->key) < CALLER_MIN_KEY) {
        snprintf(err, len,
                 "[%s] key: at least %d characters, printable ASCII without spaces",
                 sec, CALLER_MIN_KEY);
        return -EINVAL;
    }
    return s_load_roles(cfg, sec, c, err, len);
}

/* A caller allowed every role, charged to `default` without X-Vapora-Role. */
static void s_any_role(caller_t *c, const char *name, const char *key)
{
    c->name = xstrdup(name);
    c->key = key ? xstrdup(key) : NULL;
    c->default_role = xstrdup("default");
}

static int s_load_anon(const cfg_t *cfg, callers_t *cs, char *err, size_t len)
{
    const char *a = cfg_get_str(cfg, "router", "anonymous", "loopback");
    if (strcmp(a, "loopback") == 0)
        cs->anon = CALLER_ANON_LOOPBACK;
    else if (strcmp(a, "yes") == 0)
        cs->anon = CALLER_ANON_YES;
    else if (strcmp(a, "no") == 0)
        cs->anon = CALLER_ANON_NO;
    else {
        snprintf(err, len, "[router] anonymous: must be loopback, yes or no, not '%s'",
                 a);
        return -EINVAL;
    }
    s_any_role(&cs->anonymous, "anonymous", NULL);
    return 0;
}

/* No two callers may share a key: the key alone says who calls (the
 * legacy api_keys, all alike, excepted). [caller:*] come first in cs->v. */
static int s_check_unique(const callers_t *cs, char *err, size_t len)
{
    for (size_t i = 0; i < cs->n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cs->v[i].key, cs->v[j].key) != 0 ||
                strcmp(cs->v[j].name, "api_keys") == 0)
                continue;
            bool legacy = strcmp(cs->v[i].name, "api_keys") == 0;
            snprintf(err, len, "[caller:%s] key: %s has the same key", cs->v[j].name,
                     legacy ? "[router] api_keys" : "another [caller:*] section");
            return -EINVAL;
        }
    }
    return 0;
}

callers_t *callers_load(const cfg_t *cfg, char *err, size_t errlen)
{
    callers_t *cs = xcalloc(1, sizeof *cs);
    char **legacy;
    size_t nlegacy =
        cfg_split_list(cfg_get_str(cfg, "router", "api_keys", ""), &legacy);
    size_t nsec = cfg_section_count(cfg);
    cs->v = xcalloc(nsec + nlegacy + 1, sizeof *cs->v);
    int rc = s_load_anon(cfg, cs, err, errlen);
    for (size_t i = 0; rc == 0 && i < nsec; i++) {
        const char *sec = cfg_section_name(cfg, i);
        if (strncmp(sec, "caller:", 7) == 0 && sec[7])
            rc = s_load_caller(cfg, sec, &cs->v[cs->n++], err, errlen);
    }
    for (size_t i = 0; rc == 0 && i < nlegacy; i++)
        s_any_role(&cs->v[cs->n++], "api_keys", legacy[i]);
    cfg_list_free(legacy, nlegacy);
    if (rc == 0)
        rc = s_check_unique(cs, err, errlen);
    if (rc < 0)
        callers_destroy(&cs);
    return cs;
}

static void s_free_caller(caller_t *c)
{
    free(c->name);
    free(c->key);
    cfg_list_free(c->roles, c->nroles);
    free(c->default_role);
}

void callers_destroy(callers_t **csp)
{
    callers_t *cs = csp ? *csp : NULL;
    if (!cs)
        return;
    for (size_t i = 0; i < cs->n; i++)
        s_free_caller(&cs->v[i]);
    s_free_caller(&cs->anonymous);
    free(cs->v);
    free(cs);
    *csp = NULL;
}

/* ---- lookups ---- */

size_t callers_count(const callers_t *cs)
{
    return cs->n;
}

const caller_t *callers_get(const callers_t *cs, size_t i)
{
    return i < cs->n ? &cs->v[i] : NULL;
}

caller_anon_t callers_anonymous(const callers_t *cs)
{
    return cs->anon;
}

/* Compares without stopping at the first differing byte. */
static bool s_key_equal(const char *given, const char *key)
{
    size_t lg = strlen(given), lk = strlen(key);
    unsigned diff = lg != lk;
    for (size_t i = 0; i < lk; i++)
        diff |=
            (unsigned)((unsigned char)(i < lg ? given[i] : 0) ^ (unsigned char)key[i]);
    return diff == 0;
}

caller_id_t callers_identify(const callers_t *cs, const char *key, bool loopback,
                             const caller_t **out)
{
    *out = NULL;
    if (!key || !*key) {
        bool ok = cs->anon == CALLER_ANON_YES ||
                  (cs->anon == CALLER_ANON_LOOPBACK && loopback);
        *out = ok ? &cs->anonymous : NULL;
        return ok ? CALLER_OK : CALLER_KEY_REQUIRED;
    }
    for (size_t i = 0; i < cs->n; i++) /* every key is compared: no early exit */
        if (s_key_equal(key, cs->v[i].key) && !*out)
            *out = &cs->v[i];
    return *out ? CALLER_OK : CALLER_KEY_INVALID;
}

bool caller_may_use(const caller_t *c, const char *role)
{
    if (c->nroles == 0)
        return true;
    for (size_t i = 0; role && i < c->nroles; i++)
        if (strcmp(c->roles[i], role) == 0)
            return true;
    return false;
}

bool caller_addr_is_loopback(const struct sockaddr *addr)
{
    if (!addr)
        return false;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->sa_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
        return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}
