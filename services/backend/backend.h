/* backend.h - the backend service's state: what its modules share, made by
 * main.c at set-up and torn down there. The modules have their own
 * headers: auth.h, logins.h, validate.h, api.h (the handlers' plumbing),
 * users.h, projects.h, tasks.h (the routes), events.h, live.h, cache.h,
 * web.h and relay.h (the web board) and the store (store.h). */
#ifndef VAPORA_BACKEND_H
#define VAPORA_BACKEND_H

#include "auth.h"
#include "cache.h"
#include "logins.h"
#include "mailbox.h"
#include "store.h"
#include "worker.h"

typedef struct backend {
    worker_t *w;
    store_t *store;
    char *data_dir;     /* [supervisor] data_dir */
    auth_t *auth;       /* the token key and cache */
    logins_t *logins;   /* the login throttle */
    rcache_t *cache;    /* task documents; NULL: off */
    mailbox_t *written; /* the writer's finished jobs, to the loop (api.c) */
} backend_t;

#endif
