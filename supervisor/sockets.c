/* sockets.c - see sockets.h. */
#define _GNU_SOURCE
#include "sockets.h"

#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "net.h"

sv_socket_t *sv_socket_open(const char *addr, char *err, size_t errlen)
{
    int fd = net_listen(addr, 4096, false, err, errlen);
    if (fd < 0)
        return NULL;
    sv_socket_t *s = xcalloc(1, sizeof *s);
    s->fd = fd;
    s->addr = xstrdup(addr);
    s->refs = 1;
    return s;
}

sv_socket_t *sv_socket_ref(sv_socket_t *s)
{
    s->refs++;
    return s;
}

void sv_socket_unref(sv_socket_t **sp)
{
    sv_socket_t *s = *sp;
    *sp = NULL;
    if (s && --s->refs == 0) {
        close(s->fd);
        free(s->addr);
        free(s);
    }
}
