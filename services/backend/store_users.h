/* store_users.h - users and their password hashes. Pool threads (and the
 * set-up thread); see store.h for errors and ownership. */
#ifndef VAPORA_STORE_USERS_H
#define VAPORA_STORE_USERS_H

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

/* Creates a user; VP_ECONFLICT username_taken. *out: the user (no hash). */
int store_user_create(store_t *s, const char *username, const char *hash,
                      const char *role, json_t **out, store_err_t *e);
/* The user and its password hash (*hash, caller frees), by name. */
int store_user_by_name(store_t *s, const char *username, json_t **out, char **hash,
                       store_err_t *e);
int store_user_get(store_t *s, const char *id, json_t **out, store_err_t *e);
/* Every user, oldest first, as a JSON array. */
int store_user_list(store_t *s, json_t **out, store_err_t *e);

/* Users a first start makes (admin, agents) are made once: deleted, they
 * stay deleted. Whether username was (recorded in table meta), or exists
 * from before the record (which is then recorded). */
int store_user_seeded(store_t *s, const char *username, bool *seeded, store_err_t *e);
/* Makes username with hash and role and records that it was, in one
 * transaction, unless it was made before: *created says which. With hash
 * NULL, only records it. */
int store_user_seed(store_t *s, const char *username, const char *hash,
                    const char *role, bool *created, store_err_t *e);

#endif
