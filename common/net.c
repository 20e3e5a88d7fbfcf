/* net.c - see net.h. */
#define _GNU_SOURCE
#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd.h"
#include "parse.h"

int net_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        h = addr + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - addr);
    }
    if (hl >= hostlen)
        return -EINVAL;
    long p;
    if (parse_long(colon + 1, 0, 65535, &p) < 0)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int net_listen(const char *addr, int backlog, bool reuseport, char *err, size_t errlen)
{
    char host[256], portstr[8];
    int port;
    if (net_split_addr(addr, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "listen address \"%s\" is not host:port", addr);
        return -EINVAL;
    }
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(gai));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    int one = 1;
    if (rc == 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rc == 0 && reuseport &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        rc = -errno;
    if (rc == 0 && bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        rc = -errno;
    if (rc == 0 && listen(fd, backlog) < 0)
        rc = -errno;
    freeaddrinfo(res);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(-rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    return fd;
}

int net_take_listen_fd(void)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    long p, n;
    if (!pid || !fds || parse_long(pid, 1, 0x7fffffff, &p) < 0 ||
        parse_long(fds, 1, 1024, &n) < 0 || (pid_t)p != getpid())
        return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    int fd = NET_LISTEN_FDS_START;
    if (fd_set_nonblock(fd) < 0 || fd_set_cloexec(fd) < 0)
        return -1;
    return fd;
}

int net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}
