/* caller.h - who may call the router and which budgets each caller may
 * spend from: caller keys ([caller:NAME] with key or key_file, and the
 * legacy [router] api_keys), anonymous callers ([router] anonymous), and
 * the role a request is charged to.
 *
 * DESIGN. As LiteLLM's and Portkey's virtual keys do, a key carries the
 * roles it may spend from (roles = a, b, or * for any): X-Vapora-Role only
 * chooses among them, and a request without it is charged to the key's
 * default_role. A key-less request is an anonymous caller, allowed any
 * role, accepted always (anonymous = yes), never (no), or only from a
 * loopback peer (loopback, the default), so that curl on the host keeps
 * working while remote callers need a key. A key that matches no caller
 * is refused whatever the anonymous policy.
 *
 * A key_file is read at start-up; when it does not exist the first worker
 * to get its lock creates it (a random key, mode 0600) and the others read
 * that one, so every worker agrees. callers_load blocks on the file system:
 * set-up only. The result never changes afterwards: lookups from any
 * thread. */
#ifndef VAPORA_ROUTER_CALLER_H
#define VAPORA_ROUTER_CALLER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cfg.h"

/* [router] anonymous. */
typedef enum caller_anon {
    CALLER_ANON_LOOPBACK, /* key-less requests from 127.0.0.0/8 and ::1 only */
    CALLER_ANON_YES,      /* from anywhere */
    CALLER_ANON_NO,       /* never */
} caller_anon_t;

/* One caller: a key and the roles it may spend from. */
typedef struct caller {
    char *name;   /* [caller:NAME]'s NAME, "api_keys" or "anonymous" */
    char *key;    /* NULL for the anonymous caller */
    char **roles; /* may spend from these; none (nroles 0): any role */
    size_t nroles;
    char *default_role; /* when the request has no X-Vapora-Role */
} caller_t;

typedef struct callers callers_t;

/* Loads [caller:*], [router] api_keys and [router] anonymous, reading (or
 * creating) each key_file. NULL with a one-line reason naming the section
 * and key in err. The caller owns the result. */
callers_t *callers_load(const cfg_t *cfg, char *err, size_t errlen);
/* Frees cs (NULL is fine) and sets *csp to NULL. */
void callers_destroy(callers_t **csp);

/* How many callers have keys. */
size_t callers_count(const callers_t *cs);
/* The i-th caller with a key (i < callers_count). */
const caller_t *callers_get(const callers_t *cs, size_t i);
caller_anon_t callers_anonymous(const callers_t *cs);

/* What callers_identify found. */
typedef enum caller_id {
    CALLER_OK = 0,
    CALLER_KEY_REQUIRED, /* no key, and anonymous callers are not accepted */
    CALLER_KEY_INVALID,  /* a key that belongs to no caller */
} caller_id_t;

/* The caller presenting key (NULL or "": none) from a loopback peer or
 * not, into *out (borrowed from cs). Keys are compared in constant time. */
caller_id_t callers_identify(const callers_t *cs, const char *key, bool loopback,
                             const caller_t **out);

/* Whether c may spend from role. */
bool caller_may_use(const caller_t *c, const char *role);

/* Whether addr (NULL: unknown, false) is a loopback address: 127.0.0.0/8,
 * ::1, or an IPv4-mapped 127.x.y.z. */
bool caller_addr_is_loopback(const struct sockaddr *addr);

#endif
