/* store_tasks.c - tasks; see store_tasks.h. Every write renders the task's
 * JSON into its row (doc) and queues its event, inside its transaction;
 * reads serve the stored JSON. */
#define _GNU_SOURCE
#include "store_tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "now.h"
#include "render.h"
#include "rules.h"
#include "store_internal.h"

static const char *const SQL_PROJECT_EXISTS = "SELECT 1 FROM projects WHERE id=?";
static const char *const SQL_TASK_INSERT =
    "INSERT INTO tasks(id,project_id,title,description,type,status,priority,progress,"
    "estimated_hours,created_at,updated_at,version,doc) "
    "VALUES(?,?,?,?,?,'todo',?,0,?,?,?,1,?)";
static const char *const SQL_TASK_GET =
    "SELECT " STORE_TASK_COLS " FROM tasks WHERE id=?";
static const char *const SQL_DEP_INSERT = "INSERT OR IGNORE INTO task_deps VALUES(?,?)";
static const char *const SQL_DEPS_DELETE = "DELETE FROM task_deps WHERE task_id=?";
static const char *const SQL_DEPS_DELETE_ALL =
    "DELETE FROM task_deps WHERE task_id=?1 OR blocked_by=?1";
static const char *const SQL_TASK_DELETE = "DELETE FROM tasks WHERE id=?";
static const char *const SQL_TASK_STATUS =
    "SELECT status, project_id FROM tasks WHERE id=?";
/* Whether ?2 is among the tasks ?1 waits on, directly or not. */
static const char *const SQL_DEP_REACHES =
    "WITH RECURSIVE up(id) AS (SELECT blocked_by FROM task_deps WHERE task_id=?1"
    " UNION SELECT d.blocked_by FROM task_deps d JOIN up ON d.task_id=up.id)"
    " SELECT 1 FROM up WHERE id=?2 LIMIT 1";
static const char *const SQL_DEPENDENTS =
    "SELECT task_id FROM task_deps WHERE blocked_by=?";
static const char *const SQL_TASK_TOUCH =
    "UPDATE tasks SET version=version+1, updated_at=? WHERE id=?";
static const char *const SQL_TASK_SAVE_DOC = "UPDATE tasks SET doc=? WHERE id=?";
static const char *const SQL_TASK_DOC = "SELECT doc FROM tasks WHERE id=?";
static const char *const SQL_TASK_PAGE =
    "SELECT seq, doc, id FROM tasks WHERE seq>?1 AND (?2 IS NULL OR project_id=?2)"
    " AND (?3 IS NULL OR status=?3) AND (?4 IS NULL OR priority=?4)"
    " AND (?5 IS NULL OR assigned_role=?5) ORDER BY seq LIMIT ?6";

/* ---- rows ---- */

/* Queues vapora.tasks.<what> for task id of project pid, doc its data. */
static bool s_emit(store_t *s, store_conn_t *c, const char *id, const char *pid,
                   const char *doc, const char *what)
{
    char subject[64] = "vapora.tasks.", type[64] = "task.";
    size_t n = strlen(what);
    VP_ASSERT(n < 32);
    memcpy(subject + 13, what, n + 1);
    memcpy(type + 5, what, n + 1);
    return store__emit_text(s, c, subject, type, id, pid, doc);
}

/* Task id's document (*doc, caller frees), read inside the write's
 * transaction (so it is what commits), and its project (pid). */
static int s_read_doc(store_conn_t *c, const char *id, char **doc,
                      char pid[STORE_ID_MAX], store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(c, SQL_TASK_GET, id, "task", &st, e);
    if (r != 0)
        return r;
    snprintf(pid, STORE_ID_MAX, "%s", (const char *)sqlite3_column_text(st, 2));
    *doc = store__task_doc(c, st);
    sqlite3_reset(st);
    return 0;
}

/* Stores task id's document and queues its event vapora.tasks.<what>. */
static bool s_save_doc(store_t *s, store_conn_t *c, const char *id, const char *pid,
                       const char *doc, const char *what)
{
    sqlite3_stmt *st = store__stmt(c, SQL_TASK_SAVE_DOC);
    if (!st)
        return false;
    sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
    store__bind_text(st, 2, id);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st); /* doc is the caller's */
    return ok && s_emit(s, c, id, pid, doc, what);
}

int store__task_get(store_conn_t *c, const char *id, json_t **out, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(c, SQL_TASK_GET, id, "task", &st, e);
    if (r != 0)
        return r;
    *out = store__task_row(c, st);
    sqlite3_reset(st);
    return 0;
}

int store_task_get(store_t *s, const char *id, json_t **out, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    return c ? store__task_get(c, id, out, e) : store__fail(c, e);
}

/* ---- blockers ---- */

static int s_invalid_blocker(store_err_t *e, const char *bid, const char *why)
{
    e->code = "invalid_blocked_by";
    snprintf(e->msg, sizeof e->msg, "blocked_by: %s %s", bid, why);
    return VP_EINVALID;
}

/* Checks one blocker bid of task `self` (NULL: a new task) in project: it
 * exists there, is not the task itself and does not wait on it. Clears
 * *all_done when it is not done. */
static int s_check_blocker(store_conn_t *c, const char *bid, const char *project,
                           const char *self, bool *all_done, store_err_t *e)
{
    sqlite3_stmt *st = store__stmt(c, SQL_TASK_STATUS);
    if (!st)
        return store__fail(c, e);
    store__bind_text(st, 1, bid);
    int rc = sqlite3_step(st);
    bool ok = rc == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 1), project) == 0 &&
              !(self && strcmp(bid, self) == 0);
    if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "done"))
        *all_done = false;
    sqlite3_reset(st);
    if (!ok)
        return s_invalid_blocker(e, bid, "is not another task of this project");
    if (self && store__step_id(c, SQL_DEP_REACHES, bid, self) == SQLITE_ROW)
        return s_invalid_blocker(e, bid, "already waits on this task (a cycle)");
    return 0;
}

/* Checks every blocker in ids; *all_done says whether they are all done. */
static int s_check_blockers(store_conn_t *c, const json_t *ids, const char *project,
                            const char *self, bool *all_done, store_err_t *e)
{
    size_t i;
    json_t *v;
    *all_done = true;
    json_array_foreach(ids, i, v)
    {
        int r = s_check_blocker(c, json_string_value(v), project, self, all_done, e);
        if (r != 0)
            return r;
    }
    return 0;
}

static bool s_insert_deps(store_conn_t *c, const char *id, const json_t *ids)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        sqlite3_stmt *st = store__stmt(c, SQL_DEP_INSERT);
        if (!st)
            return false;
        store__bind_text(st, 1, id);
        store__bind_text(st, 2, json_string_value(v));
        if (sqlite3_step(st) != SQLITE_DONE)
            return false;
    }
    return true;
}

/* Ends a write transaction that produced task id: reads it back (inside,
 * so the answer is what was committed), stores its document, queues
 * vapora.tasks.<what> and commits. *doc: the document. */
static int s_finish_task(store_t *s, store_conn_t *c, const char *id, const char *what,
                         char **doc, store_err_t *e)
{
    char pid[STORE_ID_MAX];
    int r = s_read_doc(c, id, doc, pid, e);
    if (r != 0) {
        store__rollback(c);
        return r;
    }
    if (!s_save_doc(s, c, id, pid, *doc, what) || !store__commit(c)) {
        store__rollback(c);
        free(*doc);
        *doc = NULL;
        return store__fail(c, e);
    }
    return 0;
}

/* ---- create ---- */

typedef struct task_create_op {
    store_write_t w;
    const store_task_new_t *t;
    char *id; /* the caller's, STORE_ID_MAX bytes */
} task_create_op_t;

/* Whether the project exists and the blockers are tasks of it. */
static int s_check_new(store_conn_t *c, const store_task_new_t *t, store_err_t *e)
{
    sqlite3_stmt *st;
    int r = store__find_row(c, SQL_PROJECT_EXISTS, t->project_id, "project", &st, e);
    bool done;
    if (r == 0 && t->blocked_by)
        r = s_check_blockers(c, t->blocked_by, t->project_id, NULL, &done, e);
    return r;
}

/* Inserts the task, with its document when it is known (else NULL). */
static bool s_insert_task(store_conn_t *c, const char *id, const store_task_new_t *t,
                          const char *ts, const char *doc)
{
    sqlite3_stmt *st = store__stmt(c, SQL_TASK_INSERT);
    if (!st)
        return false;
    store__bind_text(st, 1, id);
    store__bind_text(st, 2, t->project_id);
    store__bind_text(st, 3, t->title);
    store__bind_text(st, 4, t->description ? t->description : "");
    store__bind_text(st, 5, t->type);
    store__bind_text(st, 6, t->priority);
    if (t->has_estimate)
        sqlite3_bind_double(st, 7, t->estimated_hours);
    store__bind_text(st, 8, ts);
    store__bind_text(st, 9, ts);
    sqlite3_bind_text(st, 10, doc, -1, SQLITE_STATIC); /* NULL binds NULL */
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st); /* doc is the caller's */
    return ok && (!t->blocked_by || s_insert_deps(c, id, t->blocked_by));
}

/* Queues the event of the new task id and commits; *doc: its document. */
static int s_finish_new(store_t *s, store_conn_t *c, const char *id, const char *pid,
                        char **doc, store_err_t *e)
{
    if (!s_emit(s, c, id, pid, *doc, "created") || !store__commit(c)) {
        store__rollback(c);
        free(*doc);
        *doc = NULL;
        return store__fail(c, e);
    }
    return 0;
}

static int s_create(store_write_t *w, store_t *s)
{
    task_create_op_t *op = container_of(w, task_create_op_t, w);
    const store_task_new_t *t = op->t;
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    int r = s_check_new(c, t, w->e);
    if (r != 0) {
        store__rollback(c);
        return r;
    }
    char *id = op->id, ts[40];
    store__uuid(id);
    store__now(ts);
    /* Without blockers, the new task's document follows from its values
     * alone: it goes in with the row, and nothing is read back. */
    char *doc =
        json_array_size(t->blocked_by) == 0 ? store__task_doc_new(id, t, ts) : NULL;
    if (!s_insert_task(c, id, t, ts, doc)) {
        free(doc);
        store__rollback(c);
        return store__fail(c, w->e);
    }
    if (!doc)
        return s_finish_task(s, c, id, "created", w->text, w->e);
    *w->text = doc;
    return s_finish_new(s, c, id, t->project_id, w->text, w->e);
}

int store_task_create(store_t *s, const store_task_new_t *t, char **doc,
                      char id[STORE_ID_MAX], store_err_t *e)
{
    task_create_op_t op = {
        .w = {.run = s_create, .text = doc, .e = e}, .t = t, .id = id};
    return store__write(s, &op.w);
}

/* ---- reads ---- */

/* The JSON text of task id built from its columns (a row from before
 * migration 3 has no stored document). */
static int s_render(store_conn_t *c, const char *id, char **doc, store_err_t *e)
{
    json_t *t = NULL;
    int r = store__task_get(c, id, &t, e);
    if (r == 0)
        *doc = render_json(t, JSON_COMPACT);
    json_decref(t);
    return r;
}

int store_task_get_doc(store_t *s, const char *id, char **doc, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st;
    int r = store__find_row(c, SQL_TASK_DOC, id, "task", &st, e);
    if (r != 0)
        return r;
    const char *d = (const char *)sqlite3_column_text(st, 0);
    if (!d)
        return s_render(c, id, doc, e);
    *doc = xstrdup(d);
    return 0;
}

/* Appends the document of the page's current row to items. */
static int s_append_doc(store_conn_t *c, sqlite3_stmt *st, sbuf_t *items,
                        store_err_t *e)
{
    const char *d = (const char *)sqlite3_column_text(st, 1);
    if (d) {
        sbuf_append(items, d, (size_t)sqlite3_column_bytes(st, 1));
        return 0;
    }
    char id[64], *txt = NULL;
    snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 2));
    int r = s_render(c, id, &txt, e);
    if (r == 0)
        sbuf_puts(items, txt);
    free(txt);
    return r;
}

static sqlite3_stmt *s_page_stmt(store_conn_t *c, const store_task_filter_t *f,
                                 int64_t after, int limit)
{
    sqlite3_stmt *st = store__stmt(c, SQL_TASK_PAGE);
    if (!st)
        return NULL;
    sqlite3_bind_int64(st, 1, after);
    store__bind_text(st, 2, f->project_id);
    store__bind_text(st, 3, f->status);
    store__bind_text(st, 4, f->priority);
    store__bind_text(st, 5, f->assigned_role);
    sqlite3_bind_int(st, 6, limit + 1); /* one more tells whether a page follows */
    return st;
}

int store_task_page(store_t *s, const store_task_filter_t *f, int64_t after, int limit,
                    sbuf_t *items, int64_t *next, store_err_t *e)
{
    store_conn_t *c = store__conn(s);
    sqlite3_stmt *st = c ? s_page_stmt(c, f, after, limit) : NULL;
    if (!st)
        return store__fail(c, e);
    int rc, n = 0;
    int64_t last = 0;
    *next = 0;
    sbuf_append(items, "[", 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *next = last;
            break;
        }
        if (n > 0)
            sbuf_append(items, ",", 1);
        if (s_append_doc(c, st, items, e) != 0) {
            sqlite3_reset(st);
            return VP_ESTORE;
        }
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store__fail(c, e);
    sbuf_append(items, "]", 1);
    return 0;
}

/* ---- update ---- */

/* The columns a PATCH may set, in the order of the UPDATE it builds. */
static const char *const s_task_fields[] = {
    "title",           "description",  "type",          "priority",
    "status",          "progress",     "assigned_role", "assigned_agent",
    "estimated_hours", "actual_hours", "result"};

static void s_bind_json(sqlite3_stmt *st, int i, const char *field, json_t *v)
{
    if (strcmp(field, "result") == 0) {
        if (json_is_null(v))
            sqlite3_bind_null(st, i);
        else
            sqlite3_bind_text(st, i, json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), -1,
                              free);
    } else if (json_is_string(v)) {
        store__bind_text(st, i, json_string_value(v));
    } else if (json_is_integer(v)) {
        sqlite3_bind_int64(st, i, json_integer_value(v));
    } else if (json_is_real(v)) {
        sqlite3_bind_double(st, i, json_real_value(v));
    } else {
        sqlite3_bind_null(st, i);
    }
}

/* Prepares UPDATE tasks SET <fields of patch>, version+1, updated_at. The
 * statement depends on the patch: prepared here, finalized by the caller. */
static sqlite3_stmt *s_patch_stmt(store_conn_t *c, const json_t *patch)
{
    sbuf_t sql = {0};
    sbuf_puts(&sql, "UPDATE tasks SET version=version+1, updated_at=?1");
    int n = 2;
    for (size_t i = 0; i < ARRAY_LEN(s_task_fields); i++)
        if (json_object_get(patch, s_task_fields[i]))
            sbuf_printf(&sql, ", %s=?%d", s_task_fields[i], n++);
    sbuf_printf(&sql, " WHERE id=?%d", n);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL) != SQLITE_OK)
        st = NULL;
    sbuf_free(&sql);
    return st;
}

/* Runs UPDATE tasks SET <fields of patch>, version+1, updated_at. */
static bool s_apply_patch(store_conn_t *c, const char *id, const json_t *patch)
{
    sqlite3_stmt *st = s_patch_stmt(c, patch);
    if (!st)
        return false;
    char ts[40];
    store__now(ts);
    store__bind_text(st, 1, ts);
    int n = 2;
    for (size_t i = 0; i < ARRAY_LEN(s_task_fields); i++) {
        json_t *v = json_object_get(patch, s_task_fields[i]);
        if (v)
            s_bind_json(st, n++, s_task_fields[i], v);
    }
    store__bind_text(st, n, id);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok;
}

/* Whether the patch changes anything but status (and blocked_by counts). */
static bool s_other_fields(const json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (strcmp(k, "status") != 0)
            return true;
    }
    return false;
}

/* The checks of an update, inside its transaction. */
static int s_check_update(store_conn_t *c, const json_t *cur, const json_t *patch,
                          int64_t if_match, store_err_t *e)
{
    const char *id = json_string_value(json_object_get(cur, "id"));
    json_int_t version = json_integer_value(json_object_get(cur, "version"));
    if (if_match >= 0 && if_match != version) {
        e->code = "version_mismatch";
        snprintf(e->msg, sizeof e->msg, "the task is at version %lld, not %lld",
                 (long long)version, (long long)if_match);
        return VP_EPRECONDITION;
    }
    json_t *blockers = json_object_get(patch, "blocked_by");
    if (!blockers)
        blockers = json_object_get(cur, "blocked_by");
    bool done = true;
    int r = s_check_blockers(c, blockers,
                             json_string_value(json_object_get(cur, "project_id")), id,
                             &done, e);
    if (r != 0)
        return r;
    const char *code =
        rules_check_change(json_string_value(json_object_get(cur, "status")),
                           json_string_value(json_object_get(patch, "status")),
                           s_other_fields(patch), done, e->msg, sizeof e->msg);
    if (code) {
        e->code = code;
        return VP_ECONFLICT;
    }
    return 0;
}

/* Whether applying patch to the task cur changes anything. */
static bool s_patch_changes(const json_t *cur, const json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        json_t *old = json_object_get(cur, k);
        if (!old || !json_equal(old, v))
            return true;
    }
    return false;
}

/* Whether a patch of cur is an assignment: POST /assign always (force);
 * a PATCH only when it gives the task a role it did not have. Clearing
 * the role, or sending the one it has, starts no agent. */
static bool s_assigns(const json_t *cur, const json_t *patch, bool force)
{
    if (force)
        return true;
    const char *to = json_string_value(json_object_get(patch, "assigned_role"));
    const char *was = json_string_value(json_object_get(cur, "assigned_role"));
    return to && (!was || strcmp(to, was) != 0);
}

/* Writes the patch: the columns, the dependencies, and an assignment's
 * event of its own. */
static bool s_write_patch(store_t *s, store_conn_t *c, const char *id,
                          const json_t *patch, bool assigns, store_err_t *e)
{
    json_t *blockers = json_object_get(patch, "blocked_by");
    if (!s_apply_patch(c, id, patch) ||
        (blockers && (store__step_id(c, SQL_DEPS_DELETE, id, NULL) != SQLITE_DONE ||
                      !s_insert_deps(c, id, blockers))))
        return false;
    if (!assigns)
        return true;
    /* An assignment is an update, and an event of its own. */
    char *doc = NULL, pid[STORE_ID_MAX];
    bool ok =
        s_read_doc(c, id, &doc, pid, e) == 0 && s_emit(s, c, id, pid, doc, "assigned");
    free(doc);
    return ok;
}

typedef struct task_update_op {
    store_write_t w;
    const char *id;
    const json_t *patch;
    int64_t if_match;
    bool force; /* a new version (and its events) even when nothing changes */
} task_update_op_t;

static int s_update(store_write_t *w, store_t *s)
{
    task_update_op_t *op = container_of(w, task_update_op_t, w);
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    json_t *cur = NULL;
    int r = store__task_get(c, op->id, &cur, w->e);
    if (r == 0)
        r = s_check_update(c, cur, op->patch, op->if_match, w->e);
    if (r == 0 && !op->force && !s_patch_changes(cur, op->patch)) {
        /* Nothing changes: no new version, no event. */
        store__rollback(c);
        *w->text = render_json(cur, JSON_COMPACT);
        json_decref(cur);
        return 0;
    }
    bool assigns = r == 0 && s_assigns(cur, op->patch, op->force);
    json_decref(cur);
    if (r != 0) {
        store__rollback(c);
        return r;
    }
    if (!s_write_patch(s, c, op->id, op->patch, assigns, w->e)) {
        store__rollback(c);
        return store__fail(c, w->e);
    }
    return s_finish_task(s, c, op->id, "updated", w->text, w->e);
}

int store_task_update(store_t *s, const char *id, const json_t *patch, int64_t if_match,
                      char **doc, store_err_t *e)
{
    task_update_op_t op = {.w = {.run = s_update, .text = doc, .e = e},
                           .id = id,
                           .patch = patch,
                           .if_match = if_match};
    return store__write(s, &op.w);
}

int store_task_assign(store_t *s, const char *id, const json_t *patch, char **doc,
                      store_err_t *e)
{
    task_update_op_t op = {.w = {.run = s_update, .text = doc, .e = e},
                           .id = id,
                           .patch = patch,
                           .if_match = -1,
                           .force = true};
    return store__write(s, &op.w);
}

/* ---- delete ---- */

/* A task whose blocked_by lost a deleted task changed: a new version, its
 * stored document and a task.updated event. */
static bool s_touch_dependent(store_t *s, store_conn_t *c, const char *id,
                              store_err_t *e)
{
    char ts[40], pid[STORE_ID_MAX], *doc = NULL;
    store__now(ts);
    sqlite3_stmt *u = store__stmt(c, SQL_TASK_TOUCH);
    if (u) {
        store__bind_text(u, 1, ts);
        store__bind_text(u, 2, id);
    }
    bool ok = u && sqlite3_step(u) == SQLITE_DONE &&
              s_read_doc(c, id, &doc, pid, e) == 0 &&
              s_save_doc(s, c, id, pid, doc, "updated");
    free(doc);
    return ok;
}

/* Deletes the task t (read inside the transaction) and bumps the tasks it
 * blocked. */
static bool s_delete_task(store_t *s, store_conn_t *c, const char *id, const json_t *t,
                          store_err_t *e)
{
    /* The tasks it blocked change too: their blocked_by loses it. */
    json_t *deps = store__ids(c, SQL_DEPENDENTS, id);
    bool ok = deps && store__step_id(c, SQL_DEPS_DELETE_ALL, id, NULL) == SQLITE_DONE &&
              store__step_id(c, SQL_TASK_DELETE, id, NULL) == SQLITE_DONE &&
              store__emit(s, c, "vapora.tasks.deleted", "task.deleted", t);
    size_t i;
    json_t *d;
    json_array_foreach(ok ? deps : NULL, i, d)
    {
        if (!(ok = s_touch_dependent(s, c, json_string_value(d), e)))
            break;
    }
    json_decref(deps);
    return ok;
}

typedef struct task_delete_op {
    store_write_t w;
    const char *id;
} task_delete_op_t;

static int s_delete(store_write_t *w, store_t *s)
{
    const char *id = container_of(w, task_delete_op_t, w)->id;
    store_conn_t *c = store__conn(s);
    if (!c || !store__begin(c))
        return store__fail(c, w->e);
    json_t *t = NULL;
    int r = store__task_get(c, id, &t, w->e);
    if (r != 0) {
        store__rollback(c);
        return r;
    }
    bool ok = s_delete_task(s, c, id, t, w->e) && store__commit(c);
    json_decref(t);
    if (!ok) {
        store__rollback(c);
        return store__fail(c, w->e);
    }
    return 0;
}

int store_task_delete(store_t *s, const char *id, store_err_t *e)
{
    task_delete_op_t op = {.w = {.run = s_delete, .e = e}, .id = id};
    return store__write(s, &op.w);
}
