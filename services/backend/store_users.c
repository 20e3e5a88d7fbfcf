/* store_users.c - users; see store_users.h. */
#define _GNU_SOURCE
#include "store_users.h"

#include <stdio.h>

#include "alloc.h"
#include "now.h"
#include "store_internal.h"

static const char *const SQL_USER_INSERT =
    "INSERT INTO users(id,username,password_hash,role,created_at) VALUES(?,?,?,?,?)";
static const char *const SQL_USER_BY_NAME =
    "SELECT id,username,role,created_at,password_hash FROM users WHERE username=?";
static const char *const SQL_USER_BY_ID =
    "SELECT id,username,role,created_at FROM users WHERE id=?";
static const char *const SQL_USER_LIST =
    "SELECT id,username,role,created_at FROM users ORDER BY created_at, username";

static json_t *s_user_row(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o}", "id", store__col_text(st, 0), "username",
                     store__col_text(st, 1), "role", store__col_text(st, 2),
                     "created_at", store__col_text(st, 3));
}

static int s_insert_user(store_conn_t *c, const char *username, const char *hash,
                         const char *role, json_t **out)
{
    char id[37], ts[40];
    store__uuid(id);
    now_iso8601(ts, sizeof ts);
    sqlite3_stmt *st = store__stmt(c, SQL_USER_INSERT);
    if (!st)
        return SQLITE_ERROR;
    store__bind_text(st, 1, id);
    store__bind_text(st, 2, username);
    store__bind_text(st, 3, hash);
    store__bind_text(st, 4, role);
    store__bind_text(st, 5, ts);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE && out)
        *out = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "username", username, "role",
                         role, "created_at", ts);
    return rc;
}

int store_user_create(store_t *s, const char *username, const char *hash,
                      const char *role, json_t **out, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    if (!c)
        return store__fail(c, e);
    int rc = s_insert_user(c, username, hash, role, out);
    if (rc == SQLITE_CONSTRAINT) {
        e->code = "username_taken";
        snprintf(e->msg, sizeof e->msg, "a user named \"%s\" already exists", username);
        return VP_ECONFLICT;
    }
    return rc == SQLITE_DONE ? 0 : store__fail(c, e);
}

int store_user_ensure(store_t *s, const char *username, const char *hash,
                      const char *role, bool *created, store_err_t *e)
{
    json_t *u = NULL;
    int rc = store_user_create(s, username, hash, role, &u, e);
    json_decref(u);
    *created = rc == 0;
    return rc == VP_ECONFLICT ? 0 : rc;
}

int store_user_by_name(store_t *s, const char *username, json_t **out, char **hash,
                       store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(store__conn(s), SQL_USER_BY_NAME, username, "user named",
                            &st, e);
    if (r != 0)
        return r;
    *out = s_user_row(st);
    *hash = xstrdup((const char *)sqlite3_column_text(st, 4));
    return 0;
}

int store_user_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(store__conn(s), SQL_USER_BY_ID, id, "user", &st, e);
    if (r != 0)
        return r;
    *out = s_user_row(st);
    return 0;
}

int store_user_list(store_t *s, json_t **out, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? store__stmt(c, SQL_USER_LIST) : NULL;
    if (!st)
        return store__fail(c, e);
    json_t *items = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(items, s_user_row(st));
    if (rc != SQLITE_DONE) {
        json_decref(items);
        return store__fail(c, e);
    }
    *out = items;
    return 0;
}
