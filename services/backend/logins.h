/* logins.h - the login throttle: login attempts counted per username and
 * per client address, and whether the next one may be checked now.
 *
 * DESIGN. An attempt is counted when it is admitted, before its password
 * is checked, so parallel attempts cannot outrun the count; a success
 * takes its attempt back (and forgets the username's count). Counts last
 * 15 minutes from the first. Once a count reaches its allowance (5 for a
 * username, [backend] login_address_failures for an address), every
 * further attempt is refused unchecked until a delay has passed: 250 ms
 * after the attempt that reached it (from its admission, and again from
 * its failure, once the password check said so), doubling with each
 * attempt admitted since, at most 8 s. Refused attempts are not counted.
 * A username and address that logged in are a trusted pair for 30 days
 * (from the last success, until 5 failures of the pair): the username's
 * delay does not apply to them, so failures from elsewhere cannot lock a
 * user out (the address's count still does).
 *
 * The counts live in a table every worker of a host maps
 * (DATA_DIR/login-throttle: preallocated, so a full disk cannot turn a
 * write into SIGBUS), changed under an flock of that file. A username or
 * address finds its entry by a keyed hash (SipHash, with a random key kept
 * in the file: nobody can aim at another's entry) within a short run of
 * slots; an entry is taken over only once its count has lapsed, so no
 * name or address can push another's count out. When every slot of a run
 * is counting, the newcomer shares one overflow entry with every other
 * newcomer of its kind: under a flood of new names those are held up
 * together, while the names already counted keep their counts. When the
 * file cannot be mapped (logged) the table is private memory and counts
 * per worker. Loop thread only. */
#ifndef VAPORA_BACKEND_LOGINS_H
#define VAPORA_BACKEND_LOGINS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Attempts a username may fail within the window before the delay. */
#define LOGINS_USER_FREE 5
/* The default of [backend] login_address_failures. */
#define LOGINS_ADDRESS_FREE 20

typedef struct logins logins_t;

/* Opens (creating) the shared table of data_dir; never NULL. Set-up, one
 * worker at a time (the backend's set-up lock). address_free: attempts an
 * address may fail before the delay (0: addresses are not counted). */
logins_t *logins_new(const char *data_dir, unsigned address_free);
/* Accepts NULL; sets *lp = NULL. */
void logins_destroy(logins_t **lp);
/* Whether the table is shared with the other workers. */
bool logins_shared(const logins_t *l);
/* Whether a login of username from peer (NULL: unknown) may be checked
 * now: 0, and the attempt is counted; or how long (ms) until one may be,
 * and nothing is counted. */
uint64_t logins_admit(logins_t *l, const char *username, const struct sockaddr *peer);
/* An admitted login failed: a username or address at its allowance is
 * held for its delay from now (the check took time). */
void logins_failed(logins_t *l, const char *username, const struct sockaddr *peer);
/* An admitted login succeeded: forgets username's count and takes the
 * attempt back from peer's (its earlier failures stay counted). */
void logins_succeeded(logins_t *l, const char *username, const struct sockaddr *peer);
/* An admitted login was never checked (the server was too busy, stopping,
 * or its store failed): the attempt is given back. */
void logins_release(logins_t *l, const char *username, const struct sockaddr *peer);

#endif
