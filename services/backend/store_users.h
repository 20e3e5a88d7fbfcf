/* store_users.h - users and their password hashes. Pool threads, the
 * writer (a write's token check) and the set-up thread; see store.h for
 * errors and ownership. */
#ifndef VAPORA_STORE_USERS_H
#define VAPORA_STORE_USERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Creates a user; VP_ECONFLICT username_taken. *out: the user (no hash). */
int store_user_create(store_t *s, const char *username, const char *hash,
                      const char *role, json_t **out, store_err_t *e);
/* The user, its password hash (*hash, caller frees) and its token
 * version (*ver: what its tokens must carry), by name. */
int store_user_by_name(store_t *s, const char *username, json_t **out, char **hash,
                       int64_t *ver, store_err_t *e);
/* The token version of user id: VP_ENOTFOUND when it was deleted. */
int store_user_token(store_t *s, const char *id, int64_t *ver, store_err_t *e);
/* Sets the role and/or the password hash of user id (NULL: unchanged);
 * *out: the user. A new role or password ends its tokens (its token
 * version grows; store_users_version moves). VP_ENOTFOUND; VP_ECONFLICT
 * last_owner when no owner would be left. */
int store_user_update(store_t *s, const char *id, const char *role, const char *hash,
                      json_t **out, store_err_t *e);
/* Deletes user id (what it made stays) and ends its tokens. VP_ENOTFOUND;
 * VP_ECONFLICT last_owner when it is the last owner. */
int store_user_delete(store_t *s, const char *id, store_err_t *e);
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
