/* sockets.h - the listening sockets the supervisor owns.
 *
 * A socket is bound once per address and shared by reference: the service
 * that listens there and each of its workers (which got it as fd 3) hold a
 * reference, so a worker's death, a restart or a scale-down never closes
 * it; new connections wait in its backlog for the next worker. A reload
 * that moves a service keeps the old socket alive until the last worker
 * started on it is gone.
 *
 * Loop thread only. */
#ifndef VAPORA_SV_SOCKETS_H
#define VAPORA_SV_SOCKETS_H

#include <stddef.h>

typedef struct sv_socket {
    int fd;
    char *addr; /* "127.0.0.1:8001", as configured */
    unsigned refs;
} sv_socket_t;

/* Binds and listens on addr ("host:port"), close-on-exec and non-blocking.
 * Returns a socket with one reference (the caller's), or NULL with the
 * reason in err. */
sv_socket_t *sv_socket_open(const char *addr, char *err, size_t errlen);
/* Takes one more reference; returns s. */
sv_socket_t *sv_socket_ref(sv_socket_t *s);
/* Drops the reference *sp holds (NULL is fine) and sets *sp = NULL; the
 * last one closes the socket. */
void sv_socket_unref(sv_socket_t **sp);

#endif
