/* store_projects.c - projects and the board; see store_projects.h. */
#define _GNU_SOURCE
#include "store_projects.h"

#include <stdio.h>
#include <string.h>

#include "now.h"
#include "rules.h"
#include "store_internal.h"

#define PROJECT_COLS "seq,id,name,description,created_at,updated_at"
static const char *const SQL_PROJECT_INSERT =
    "INSERT INTO projects(id,name,description,created_at,updated_at) VALUES(?,?,?,?,?)";
static const char *const SQL_PROJECT_GET =
    "SELECT " PROJECT_COLS " FROM projects WHERE id=?";
static const char *const SQL_PROJECT_LIST =
    "SELECT " PROJECT_COLS " FROM projects WHERE seq>? ORDER BY seq LIMIT ?";
static const char *const SQL_PROJECT_UPDATE =
    "UPDATE projects SET name=COALESCE(?,name), description=COALESCE(?,description),"
    " updated_at=? WHERE id=?";
static const char *const SQL_PROJECT_DELETE = "DELETE FROM projects WHERE id=?";
static const char *const SQL_PROJECT_TASKS = "SELECT COUNT(*) FROM tasks WHERE project_id=?";
static const char *const SQL_PROJECT_DEPS_DELETE =
    "DELETE FROM task_deps WHERE task_id IN (SELECT id FROM tasks WHERE project_id=?)"
    " OR blocked_by IN (SELECT id FROM tasks WHERE project_id=?)";
static const char *const SQL_PROJECT_TASKS_DELETE = "DELETE FROM tasks WHERE project_id=?";
static const char *const SQL_PROJECT_TASK_IDS =
    "SELECT id FROM tasks WHERE project_id=?1 ORDER BY seq";
static const char *const SQL_TASK_BOARD =
    "SELECT " STORE_TASK_COLS " FROM tasks WHERE project_id=? ORDER BY"
    " CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, seq";

static json_t *s_project_row(sqlite3_stmt *st)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:o}", "id", store__col_text(st, 1), "name",
                     store__col_text(st, 2), "description", store__col_text(st, 3),
                     "created_at", store__col_text(st, 4), "updated_at",
                     store__col_text(st, 5));
}

/* The project id (*out when out is not NULL): 0, VP_ENOTFOUND or VP_ESTORE. */
static int s_project_get(store_conn_t *c, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(c, SQL_PROJECT_GET, id, "project", &st, e);
    if (r != 0)
        return r;
    if (out)
        *out = s_project_row(st);
    return 0;
}

/* ---- create ---- */

typedef struct project_create_op {
    store_write_t w;
    const char *name, *desc;
} project_create_op_t;

static int s_create(store_write_t *w, store_t *s)
{
    project_create_op_t *op = container_of(w, project_create_op_t, w);
    const char *desc = op->desc ? op->desc : "";
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? store__stmt(c, SQL_PROJECT_INSERT) : NULL;
    if (!st)
        return store__fail(c, w->e);
    char id[37], ts[40];
    store__uuid(id);
    now_iso8601(ts, sizeof ts);
    store__bind_text(st, 1, id);
    store__bind_text(st, 2, op->name);
    store__bind_text(st, 3, desc);
    store__bind_text(st, 4, ts);
    store__bind_text(st, 5, ts);
    if (!store__begin(c))
        return store__fail(c, w->e);
    json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", id, "name", op->name,
                          "description", desc, "created_at", ts, "updated_at", ts);
    if (sqlite3_step(st) != SQLITE_DONE ||
        !store__emit(s, c, "vapora.projects.created", "project.created", p) ||
        !store__commit(c)) {
        json_decref(p);
        store__rollback(c);
        return store__fail(c, w->e);
    }
    *w->out = p;
    return 0;
}

int store_project_create(store_t *s, const char *name, const char *desc, json_t **out,
                         store_err_t *e)
{
    project_create_op_t op = {
        .w = {.run = s_create, .out = out, .e = e}, .name = name, .desc = desc};
    return store__write(s, &op.w);
}

/* ---- reads ---- */

int store_project_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    return c ? s_project_get(c, id, out, e) : store__fail(c, e);
}

int store_project_list(store_t *s, int64_t after, int limit, json_t **items,
                       int64_t *next, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? store__stmt(c, SQL_PROJECT_LIST) : NULL;
    if (!st)
        return store__fail(c, e);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, limit + 1); /* one more tells whether a page follows */
    json_t *a = json_array();
    int rc, n = 0;
    int64_t last = 0;
    *next = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *next = last;
            break;
        }
        json_array_append_new(a, s_project_row(st));
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(a);
        return store__fail(c, e);
    }
    *items = a;
    return 0;
}

/* An empty column per status, in board order (cols[i]: borrowed). */
static json_t *s_board_columns(json_t **cols)
{
    json_t *columns = json_array();
    for (unsigned i = 0; i < rules_nstatuses; i++) {
        cols[i] = json_array();
        json_array_append_new(columns, json_pack("{s:s,s:o}", "status",
                                                 rules_statuses[i], "tasks", cols[i]));
    }
    return columns;
}

/* A task of the board: its result left out unless asked. */
static json_t *s_board_task(store_conn_t *c, sqlite3_stmt *st, unsigned flags)
{
    json_t *t = store__task_row(c, st);
    if (!(flags & STORE_BOARD_RESULTS)) {
        json_object_set_new(t, "has_result",
                            json_boolean(!json_is_null(json_object_get(t, "result"))));
        json_object_del(t, "result");
    }
    return t;
}

/* Sets each column's "count". */
static void s_board_counts(json_t *columns, const size_t *counts)
{
    for (unsigned i = 0; i < rules_nstatuses; i++)
        json_object_set_new(json_array_get(columns, i), "count",
                            json_integer((json_int_t)counts[i]));
}

int store_project_board(store_t *s, const char *id, unsigned flags, json_t **out,
                        store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    int r = c ? s_project_get(c, id, NULL, e) : store__fail(c, e);
    if (r != 0)
        return r;
    sqlite3_stmt *st = store__stmt(c, SQL_TASK_BOARD);
    if (!st)
        return store__fail(c, e);
    json_t *cols[8];
    size_t counts[8] = {0};
    json_t *columns = s_board_columns(cols);
    store__bind_text(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 6);
        for (unsigned i = 0; i < rules_nstatuses; i++) {
            if (strcmp(status, rules_statuses[i]) != 0)
                continue;
            counts[i]++;
            if ((flags & STORE_BOARD_ARCHIVED) || strcmp(status, "archived") != 0)
                json_array_append_new(cols[i], s_board_task(c, st, flags));
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(columns);
        return store__fail(c, e);
    }
    s_board_counts(columns, counts);
    *out = json_pack("{s:s,s:o}", "project_id", id, "columns", columns);
    return 0;
}

/* ---- update ---- */

typedef struct project_update_op {
    store_write_t w;
    const char *id;
    const json_t *patch;
} project_update_op_t;

/* Updates the row: 0, VP_ENOTFOUND or VP_ESTORE. */
static int s_update_row(store_conn_t *c, const char *id, const json_t *patch,
                        store_err_t *e)
{
    sqlite3_stmt *st = store__stmt(c, SQL_PROJECT_UPDATE);
    if (!st)
        return store__fail(c, e);
    char ts[40];
    now_iso8601(ts, sizeof ts);
    store__bind_text(st, 1, json_string_value(json_object_get(patch, "name")));
    store__bind_text(st, 2, json_string_value(json_object_get(patch, "description")));
    store__bind_text(st, 3, ts);
    store__bind_text(st, 4, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store__fail(c, e);
    return sqlite3_changes(c->db) == 0 ? store__not_found(e, "project", id) : 0;
}

static int s_update(store_write_t *w, store_t *s)
{
    project_update_op_t *op = container_of(w, project_update_op_t, w);
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    int r = s_update_row(c, op->id, op->patch, w->e);
    if (r == 0)
        r = s_project_get(c, op->id, w->out, w->e);
    if (r == 0 &&
        !store__emit(s, c, "vapora.projects.updated", "project.updated", *w->out)) {
        store__rollback(c);
        r = store__fail(c, w->e);
    } else if (r != 0) {
        store__rollback(c);
        return r;
    } else if (!store__commit(c)) { /* it rolled back */
        r = store__fail(c, w->e);
    }
    if (r != 0) {
        json_decref(*w->out);
        *w->out = NULL;
    }
    return r;
}

int store_project_update(store_t *s, const char *id, const json_t *patch, json_t **out,
                         store_err_t *e)
{
    project_update_op_t op = {
        .w = {.run = s_update, .out = out, .e = e}, .id = id, .patch = patch};
    return store__write(s, &op.w);
}

/* ---- delete ---- */

typedef struct project_delete_op {
    store_write_t w;
    const char *id;
    bool cascade;
} project_delete_op_t;

/* The number of tasks of project id, or -1 when the database fails. */
static int64_t s_task_count(store_conn_t *c, const char *id)
{
    sqlite3_stmt *st = store__stmt(c, SQL_PROJECT_TASKS);
    if (!st)
        return -1;
    store__bind_text(st, 1, id);
    return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
}

/* Every task of project id as the API shows it (for their events); NULL
 * when the database fails. */
static json_t *s_task_docs(store_conn_t *c, const char *id, store_err_t *e)
{
    json_t *ids = store__ids(c, SQL_PROJECT_TASK_IDS, id);
    json_t *docs = ids ? json_array() : NULL;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        json_t *t = NULL;
        if (store__task_get(c, json_string_value(v), &t, e) != 0) {
            json_decref(docs);
            docs = NULL;
            break;
        }
        json_array_append_new(docs, t);
    }
    json_decref(ids);
    return docs;
}

/* Deletes project id, its tasks and their dependencies, and queues a
 * task.deleted per task (blocked_by stays within a project, so no task
 * elsewhere changes), then the project.deleted. */
static bool s_delete_all(store_t *s, store_conn_t *c, const char *id, bool cascade,
                         store_err_t *e)
{
    json_t *docs = s_task_docs(c, id, e);
    bool ok = docs && store__step_id(c, SQL_PROJECT_DEPS_DELETE, id, id) == SQLITE_DONE &&
              store__step_id(c, SQL_PROJECT_TASKS_DELETE, id, NULL) == SQLITE_DONE &&
              store__step_id(c, SQL_PROJECT_DELETE, id, NULL) == SQLITE_DONE;
    size_t i;
    json_t *v;
    json_array_foreach(ok ? docs : NULL, i, v)
        ok = ok && store__emit(s, c, "vapora.tasks.deleted", "task.deleted", v);
    json_t *gone = json_pack("{s:s,s:b}", "id", id, "cascade", cascade);
    ok = ok && store__emit(s, c, "vapora.projects.deleted", "project.deleted", gone);
    json_decref(gone);
    json_decref(docs);
    return ok;
}

static int s_delete(store_write_t *w, store_t *s)
{
    project_delete_op_t *op = container_of(w, project_delete_op_t, w);
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    int r = s_project_get(c, op->id, NULL, w->e);
    int64_t tasks = r == 0 ? s_task_count(c, op->id) : 0;
    if (r == 0 && tasks > 0 && !op->cascade) {
        w->e->code = "project_has_tasks";
        snprintf(w->e->msg, sizeof w->e->msg,
                 "the project has %lld task(s); delete them first or pass cascade=true",
                 (long long)tasks);
        r = VP_ECONFLICT;
    }
    if (r != 0) {
        store__rollback(c);
        return r;
    }
    if (tasks < 0 || !s_delete_all(s, c, op->id, tasks > 0, w->e) ||
        !store__commit(c)) {
        store__rollback(c);
        return store__fail(c, w->e);
    }
    return 0;
}

int store_project_delete(store_t *s, const char *id, bool cascade, store_err_t *e)
{
    project_delete_op_t op = {
        .w = {.run = s_delete, .e = e}, .id = id, .cascade = cascade};
    return store__write(s, &op.w);
}
