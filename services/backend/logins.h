/* logins.h - the login slow-down: failed logins counted by username, and
 * the delay before answering the next failure.
 *
 * DESIGN. The table is shared by every worker of a host: a mapping of
 * DATA_DIR/login-failures, updated under an flock of that file (a few
 * non-blocking tries: the holder is another worker inside a few
 * instructions), so that spreading guesses over the workers buys no more of
 * them. When the file cannot be mapped (logged) the table is private memory
 * and counts per worker. Loop thread only. */
#ifndef VAPORA_BACKEND_LOGINS_H
#define VAPORA_BACKEND_LOGINS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct logins logins_t;

/* Opens (creating) the shared table of data_dir; never NULL. Set-up. */
logins_t *logins_new(const char *data_dir);
/* Accepts NULL; sets *lp = NULL. */
void logins_destroy(logins_t **lp);
/* Whether the table is shared with the other workers. */
bool logins_shared(const logins_t *l);
/* Records a failure of username and returns how long (ms) to wait before
 * answering it: 0 for the first 5 within 15 minutes, then 250 ms doubling,
 * at most 8 s. */
uint64_t logins_failure_delay(logins_t *l, const char *username);
/* Forgets the failures of username (it logged in). */
void logins_forget(logins_t *l, const char *username);

#endif
