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
/* Inserts the user only when no user of that name exists; *created says
 * whether this call created it. */
int store_user_ensure(store_t *s, const char *username, const char *hash,
                      const char *role, bool *created, store_err_t *e);
/* The user and its password hash (*hash, caller frees), by name. */
int store_user_by_name(store_t *s, const char *username, json_t **out, char **hash,
                       store_err_t *e);
int store_user_get(store_t *s, const char *id, json_t **out, store_err_t *e);
/* Every user, oldest first, as a JSON array. */
int store_user_list(store_t *s, json_t **out, store_err_t *e);

#endif
