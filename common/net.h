/* net.h - listening sockets: binding a configured address, and taking one
 * handed over by a supervisor (systemd's LISTEN_FDS / LISTEN_PID convention,
 * first fd 3). */
#ifndef VAPORA_NET_H
#define VAPORA_NET_H

#include <stdbool.h>
#include <stddef.h>

#define NET_LISTEN_FDS_START 3

/* Parses "host:port" ("0.0.0.0:8001", "[::1]:8001", ":8001"). host receives
 * at most hostlen-1 bytes; an empty host means "all addresses"; port 0
 * (any free port) is accepted. Returns 0 or -EINVAL. */
int net_split_addr(const char *addr, char *host, size_t hostlen, int *port);

/* Binds and listens on "host:port" (IPv4 or IPv6 literal, or a name resolved
 * once). reuseport sets SO_REUSEPORT so several standalone processes may
 * bind the same port. The fd is non-blocking and close-on-exec. Returns the
 * fd, or -errno with a reason in err. */
int net_listen(const char *addr, int backlog, bool reuseport, char *err, size_t errlen);

/* When LISTEN_PID is this process and LISTEN_FDS >= 1, returns fd 3 (made
 * non-blocking and close-on-exec) and unsets both variables; else -1. */
int net_take_listen_fd(void);

/* The local port of a bound socket, or -errno. */
int net_local_port(int fd);

#endif
