/* bootstrap.c - the users a first start makes; see bootstrap.h. */
#define _GNU_SOURCE
#include "bootstrap.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "log.h"
#include "store_users.h"

/* Writes pw to path, mode 0600 (also when the file was there), synced. */
static int s_write_password(const char *path, const char *pw)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    size_t n = strlen(pw);
    int rc = fchmod(fd, 0600) == 0 && write(fd, pw, n) == (ssize_t)n && fsync(fd) == 0
                 ? 0
                 : -errno;
    close(fd);
    if (rc < 0)
        unlink(path);
    return rc;
}

/* Hashes password and makes the user; 0 or -EIO with a reason. */
static int s_make(store_t *s, const char *name, const char *role, const char *password,
                  char *err, size_t errlen)
{
    char *hash = auth_hash_password(password);
    bool created = false;
    store_err_t e = {0};
    int rc = hash ? store_user_seed(s, name, hash, role, &created, &e) : -EIO;
    free(hash);
    store_end(s);
    if (rc != 0 || !created) {
        snprintf(err, errlen, "cannot create the user %s: %s", name,
                 !hash ? "hashing failed"
                 : rc  ? e.msg
                       : "it was made meanwhile");
        return -EIO;
    }
    return 0;
}

/* Makes user name (role) unless it was made before, with password or,
 * when that is empty, a generated one kept in DATA_DIR/<name>-password. */
static int s_seed(store_t *s, const char *data_dir, const char *name, const char *role,
                  const char *password, char *err, size_t errlen)
{
    bool seeded = false;
    store_err_t e = {0};
    int rc = store_user_seeded(s, name, &seeded, &e);
    store_end(s);
    if (rc != 0) {
        snprintf(err, errlen, "cannot look up the user %s: %s", name, e.msg);
        return -EIO;
    }
    if (seeded)
        return 0;
    if (password && *password) {
        rc = s_make(s, name, role, password, err, errlen);
        if (rc == 0)
            log_info("created user %s (role %s) with [backend] %s_password", name, role,
                     name);
        return rc;
    }
    unsigned char raw[24];
    char pw[sodium_base64_ENCODED_LEN(sizeof raw,
                                      sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(pw, sizeof pw, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *path = xasprintf("%s/%s-password", data_dir, name);
    rc = s_write_password(path, pw);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
    else if ((rc = s_make(s, name, role, pw, err, errlen)) < 0)
        unlink(path);
    else
        log_warn("created user %s (role %s) with a generated password, kept in %s "
                 "(mode 0600)",
                 name, role, path);
    sodium_memzero(pw, sizeof pw);
    free(path);
    return rc < 0 ? -EIO : 0;
}

int bootstrap_users(store_t *s, const char *data_dir, const char *admin_password,
                    const char *agents_password, char *err, size_t errlen)
{
    if (s_seed(s, data_dir, "admin", "owner", admin_password, err, errlen) < 0 ||
        s_seed(s, data_dir, "agents", "member", agents_password, err, errlen) < 0)
        return -EIO;
    return 0;
}
