/* admin_auth.c - see admin_auth.h. */
#define _GNU_SOURCE
#include "admin_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "fd.h"
#include "file.h"
#include "log.h"
#include "net.h"

#define SV_AUTH_TOKEN_MAX 256
#define SV_AUTH_RANDOM_BYTES 32

bool sv_auth_token_valid(const char *token)
{
    size_t n = token ? strlen(token) : 0;
    if (n < SV_AUTH_TOKEN_MIN || n > SV_AUTH_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (token[i] <= ' ' || token[i] > '~')
            return false;
    return true;
}

/* ---- the token's file ---- */

/* Writes token and a newline to path through path.tmp (0600) and rename,
 * so that a reader never sees half of one. Returns 0 or -errno. */
static int s_write_token(const char *path, const char *token)
{
    char *tmp = xasprintf("%s.tmp", path);
    char *line = xasprintf("%s\n", token);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : fd_write_all(fd, line, strlen(line));
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    free(line);
    free(tmp);
    return rc;
}

/* 256 random bits in hex; NULL with errno set when the kernel has none. */
static char *s_random_token(void)
{
    unsigned char raw[SV_AUTH_RANDOM_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR)
            return NULL;
        got += n > 0 ? (size_t)n : 0;
    }
    char *hex = xmalloc(2 * sizeof raw + 1);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    return hex;
}

/* The token in path (trailing blanks and newline dropped), or NULL with
 * errno set (EINVAL: not a valid token). A file open to others is made
 * 0600 first. */
static char *s_read_token(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        log_warn("%s was open to other users (mode %04o): now 0600", path,
                 (unsigned)(st.st_mode & 07777));
        if (chmod(path, 0600) < 0)
            log_err(errno, "chmod 0600 %s", path);
    }
    char *t = file_read_all(path, NULL);
    if (!t)
        return NULL;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
        t[--n] = '\0';
    if (!sv_auth_token_valid(t)) {
        free(t);
        errno = EINVAL;
        return NULL;
    }
    return t;
}

/* The configured token, written to path unless the file holds it. */
static char *s_configured(const char *path, const char *configured, char *err,
                          size_t errlen)
{
    char *had = s_read_token(path);
    int rc = had && strcmp(had, configured) == 0 ? 0 : s_write_token(path, configured);
    free(had);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        return NULL;
    }
    log_info("admin API token: [supervisor] admin_token (also in %s)", path);
    return xstrdup(configured);
}

/* The file's token, or a new one written there. */
static char *s_from_file(const char *path, char *err, size_t errlen)
{
    char *t = s_read_token(path);
    if (t) {
        log_info("admin API token: %s", path);
        return t;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", path,
                 errno == EINVAL ? "not a token (remove the file to have a new one "
                                   "generated)"
                                 : strerror(errno));
        return NULL;
    }
    t = s_random_token();
    int rc = t ? s_write_token(path, t) : -errno;
    if (rc < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(-rc));
        free(t);
        return NULL;
    }
    log_info("admin API token: generated into %s (mode 0600); vaporactl reads it "
             "from there",
             path);
    return t;
}

char *sv_auth_token_load(const char *data_dir, const char *configured, char *err,
                         size_t errlen)
{
    char *path = xasprintf("%s/%s", data_dir, SV_AUTH_TOKEN_FILE);
    char *t = configured && *configured ? s_configured(path, configured, err, errlen)
                                        : s_from_file(path, err, errlen);
    free(path);
    return t;
}

/* ---- request checks ---- */

bool sv_auth_bearer_ok(const char *authorization, const char *token)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t), m = strlen(token);
    unsigned char diff = n != m;
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < n ? t[i] : 0);
    return diff == 0;
}

/* Splits a Host value into its name (brackets dropped) and checks the
 * port, when there is one, is digits. Returns the name's length, or -1;
 * *v6 tells a bracketed IPv6 literal. */
static int s_host_name(const char *host, char *name, size_t len, bool *v6)
{
    const char *b = host, *e;
    *v6 = host[0] == '[';
    if (*v6) {
        b = host + 1;
        e = strchr(b, ']');
        if (!e)
            return -1;
    } else {
        e = strchrnul(host, ':');
    }
    const char *port = e + (*v6 ? 1 : 0);
    if (*port && (*port != ':' || !port[1] || strlen(port + 1) > 5 ||
                  strspn(port + 1, "0123456789") != strlen(port + 1)))
        return -1;
    size_t n = (size_t)(e - b);
    if (n == 0 || n >= len)
        return -1;
    memcpy(name, b, n);
    name[n] = '\0';
    return (int)n;
}

bool sv_auth_host_ok(const char *host, const char *admin)
{
    char name[256], admin_host[256];
    unsigned char addr[16];
    bool v6;
    int admin_port;
    if (!host || s_host_name(host, name, sizeof name, &v6) < 0)
        return false;
    if (v6)
        return inet_pton(AF_INET6, name, addr) == 1;
    if (inet_pton(AF_INET, name, addr) == 1 || strcasecmp(name, "localhost") == 0)
        return true;
    return net_split_addr(admin, admin_host, sizeof admin_host, &admin_port) == 0 &&
           admin_host[0] && strcasecmp(name, admin_host) == 0;
}

bool sv_auth_origin_ok(const char *origin, const char *host)
{
    if (!origin)
        return true;
    return host && strncasecmp(origin, "http://", 7) == 0 &&
           strcasecmp(origin + 7, host) == 0;
}

bool sv_auth_is_json(const char *content_type)
{
    static const char json[] = "application/json";
    if (!content_type || strncasecmp(content_type, json, sizeof json - 1) != 0)
        return false;
    char next = content_type[sizeof json - 1];
    return next == '\0' || next == ';' || next == ' ';
}

bool sv_auth_loopback(const char *admin)
{
    char host[256];
    int port;
    unsigned char a[16];
    if (net_split_addr(admin, host, sizeof host, &port) < 0 || !host[0])
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) != 1)
        return false;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char one[16] = {[15] = 1};
    return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
}
