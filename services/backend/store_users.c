/* store_users.c - users; see store_users.h. */
#define _GNU_SOURCE
#include "store_users.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "now.h"
#include "store_internal.h"

static const char *const SQL_USER_INSERT =
    "INSERT INTO users(id,username,password_hash,role,created_at) VALUES(?,?,?,?,?)";
static const char *const SQL_USER_BY_NAME = "SELECT id,username,role,created_at,"
                                            "password_hash,token_version FROM users "
                                            "WHERE username=?";
static const char *const SQL_USER_BY_ID =
    "SELECT id,username,role,created_at FROM users WHERE id=?";
static const char *const SQL_USER_LIST =
    "SELECT id,username,role,created_at FROM users ORDER BY created_at, username";
static const char *const SQL_USER_TOKEN =
    "SELECT token_version,role FROM users WHERE id=?";
static const char *const SQL_OWNERS = "SELECT COUNT(*) FROM users WHERE role='owner'";
static const char *const SQL_USER_UPDATE =
    "UPDATE users SET role=COALESCE(?1,role), password_hash=COALESCE(?2,password_hash),"
    " token_version=token_version+?3 WHERE id=?4";
static const char *const SQL_USER_DELETE = "DELETE FROM users WHERE id=?";
static const char *const SQL_USER_EXISTS = "SELECT 1 FROM users WHERE username=?";
static const char *const SQL_META_GET = "SELECT value FROM meta WHERE key=?";
static const char *const SQL_META_PUT =
    "INSERT OR REPLACE INTO meta(key,value) VALUES(?,?)";

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

typedef struct user_create_op {
    store_write_t w;
    const char *username, *hash, *role;
} user_create_op_t;

static int s_create(store_write_t *w, store_t *s)
{
    user_create_op_t *op = container_of(w, user_create_op_t, w);
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    int rc = s_insert_user(c, op->username, op->hash, op->role, w->out);
    if (rc == SQLITE_DONE && store__commit(c))
        return 0;
    store__rollback(c);
    if (rc == SQLITE_DONE && w->out) { /* made, then not committed */
        json_decref(*w->out);
        *w->out = NULL;
    }
    if (rc != SQLITE_CONSTRAINT)
        return store__fail(c, w->e);
    w->e->code = "username_taken";
    snprintf(w->e->msg, sizeof w->e->msg, "a user named \"%s\" already exists",
             op->username);
    return VP_ECONFLICT;
}

/* In the writer's next batch, as every write: an INSERT of the pool
 * thread's own took SQLite's write lock past the workers' flock. */
int store_user_create(store_t *s, const char *username, const char *hash,
                      const char *role, json_t **out, store_err_t *e)
{
    user_create_op_t op = {.w = {.run = s_create, .out = out, .e = e},
                           .username = username,
                           .hash = hash,
                           .role = role};
    return store__write(s, &op.w);
}

int store_user_by_name(store_t *s, const char *username, json_t **out, char **hash,
                       int64_t *ver, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(store__conn(s), SQL_USER_BY_NAME, username, "user named",
                            &st, e);
    if (r != 0)
        return r;
    *out = s_user_row(st);
    *hash = xstrdup((const char *)sqlite3_column_text(st, 4));
    *ver = sqlite3_column_int64(st, 5);
    sqlite3_reset(st); /* no snapshot kept through the password's check */
    return 0;
}

int store_user_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(store__conn(s), SQL_USER_BY_ID, id, "user", &st, e);
    if (r != 0)
        return r;
    *out = s_user_row(st);
    sqlite3_reset(st);
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

int store_user_token(store_t *s, const char *id, int64_t *ver, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(store__conn(s), SQL_USER_TOKEN, id, "user", &st, e);
    if (r == 0) {
        *ver = sqlite3_column_int64(st, 0);
        sqlite3_reset(st); /* the job goes on (a password hashed): no snapshot */
    }
    return r;
}

/* ---- changes: roles, passwords, deletion ---- */

typedef struct user_change_op {
    store_write_t w;
    const char *id;
    const char *role, *hash; /* NULL: unchanged */
    bool remove;             /* delete the user */
} user_change_op_t;

/* VP_ECONFLICT last_owner when the change would leave no owner: user id
 * (role `was`) is removed, or an owner given another role. */
static int s_keep_an_owner(store_conn_t *c, const user_change_op_t *op, const char *was,
                           store_err_t *e)
{
    if (strcmp(was, "owner") != 0 ||
        (!op->remove && (!op->role || !strcmp(op->role, "owner"))))
        return 0;
    sqlite3_stmt *st = store__stmt(c, SQL_OWNERS);
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return store__fail(c, e);
    if (sqlite3_column_int64(st, 0) > 1)
        return 0;
    e->code = "last_owner";
    snprintf(e->msg, sizeof e->msg,
             "the last owner can be neither removed nor demoted: make another owner "
             "first");
    return VP_ECONFLICT;
}

/* Applies op to the row (its role is `was`); whether the user's tokens end
 * in *ends. */
static int s_change_row(store_conn_t *c, const user_change_op_t *op, const char *was,
                        bool *ends, store_err_t *e)
{
    *ends = op->remove || op->hash || (op->role && strcmp(op->role, was) != 0);
    sqlite3_stmt *st = store__stmt(c, op->remove ? SQL_USER_DELETE : SQL_USER_UPDATE);
    if (!st)
        return store__fail(c, e);
    if (op->remove) {
        store__bind_text(st, 1, op->id);
    } else {
        store__bind_text(st, 1, op->role);
        store__bind_text(st, 2, op->hash);
        sqlite3_bind_int(st, 3, *ends ? 1 : 0);
        store__bind_text(st, 4, op->id);
    }
    return sqlite3_step(st) == SQLITE_DONE ? 0 : store__fail(c, e);
}

static int s_change(store_write_t *w, store_t *s)
{
    user_change_op_t *op = container_of(w, user_change_op_t, w);
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    sqlite3_stmt *st;
    int r = store__find_row(c, SQL_USER_TOKEN, op->id, "user", &st, w->e);
    char was[16] = "";
    if (r == 0) {
        snprintf(was, sizeof was, "%s", (const char *)sqlite3_column_text(st, 1));
        sqlite3_reset(st);
    }
    bool ends = false;
    if (r == 0)
        r = s_keep_an_owner(c, op, was, w->e);
    if (r == 0)
        r = s_change_row(c, op, was, &ends, w->e);
    if (r == 0 && w->out)
        r = store_user_get(s, op->id, w->out, w->e);
    if (r != 0) {
        store__rollback(c);
    } else if (!store__commit(c)) {
        r = store__fail(c, w->e);
    } else {
        c->users_changed |= ends;
        return 0;
    }
    if (w->out) {
        json_decref(*w->out);
        *w->out = NULL;
    }
    return r;
}

int store_user_update(store_t *s, const char *id, const char *role, const char *hash,
                      json_t **out, store_err_t *e)
{
    user_change_op_t op = {.w = {.run = s_change, .out = out, .e = e},
                           .id = id,
                           .role = role,
                           .hash = hash};
    return store__write(s, &op.w);
}

int store_user_delete(store_t *s, const char *id, store_err_t *e)
{
    user_change_op_t op = {.w = {.run = s_change, .e = e}, .id = id, .remove = true};
    return store__write(s, &op.w);
}

/* ---- users a first start makes ---- */

typedef struct seed_op {
    store_write_t w;
    const char *username, *hash, *role; /* hash NULL: only record it */
    bool *created;
} seed_op_t;

/* Whether sql (one "?" for key) gives a row; SQLITE_ROW, SQLITE_DONE or an
 * error. */
static int s_has_row(store_conn_t *c, const char *sql, const char *key)
{
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        return SQLITE_ERROR;
    store__bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int s_seed(store_write_t *w, store_t *s)
{
    seed_op_t *op = container_of(w, seed_op_t, w);
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    char key[96], ts[40];
    snprintf(key, sizeof key, "seeded:%s", op->username);
    now_iso8601(ts, sizeof ts);
    int rc = s_has_row(c, SQL_META_GET, key);
    if (rc == SQLITE_DONE && op->hash) {
        rc = s_insert_user(c, op->username, op->hash, op->role, NULL);
        *op->created = rc == SQLITE_DONE;
    }
    sqlite3_stmt *st = rc == SQLITE_DONE ? store__stmt(c, SQL_META_PUT) : NULL;
    if (st) {
        store__bind_text(st, 1, key);
        store__bind_text(st, 2, ts);
        rc = sqlite3_step(st);
    }
    if ((rc != SQLITE_DONE && rc != SQLITE_ROW) || !store__commit(c)) {
        store__rollback(c);
        *op->created = false;
        return store__fail(c, w->e);
    }
    return 0;
}

int store_user_seeded(store_t *s, const char *username, bool *seeded, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    char key[96];
    snprintf(key, sizeof key, "seeded:%s", username);
    int rc = c ? s_has_row(c, SQL_META_GET, key) : SQLITE_ERROR;
    if (rc == SQLITE_ROW) {
        *seeded = true;
        return 0;
    }
    if (rc == SQLITE_DONE)
        rc = s_has_row(c, SQL_USER_EXISTS, username);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store__fail(c, e);
    *seeded = rc == SQLITE_ROW;
    bool made = false;
    /* A user from before the record: record it now, so that deleting it
     * later is for good. */
    return *seeded ? store_user_seed(s, username, NULL, NULL, &made, e) : 0;
}

int store_user_seed(store_t *s, const char *username, const char *hash,
                    const char *role, bool *created, store_err_t *e)
{
    *created = false;
    seed_op_t op = {.w = {.run = s_seed, .e = e},
                    .username = username,
                    .hash = hash,
                    .role = role,
                    .created = created};
    return store__write(s, &op.w);
}
