/* store_task_doc.c - a task from its row (STORE_TASK_COLS) and its
 * blockers: as jansson values (store__task_row), or straight as its JSON
 * document (store__task_doc), the text every write stores, answers and
 * queues as its event. Both give the same JSON, byte for byte what
 * json_dumps(JSON_COMPACT) makes of the values; the text is written
 * without building the values, which cost a task write more than its SQL.
 * See store_internal.h. */
#define _GNU_SOURCE
#include <stdio.h>

#include "render.h"
#include "store_internal.h"
#include "store_tasks.h"

static const char *const SQL_DEPS_OF =
    "SELECT blocked_by FROM task_deps WHERE task_id=?";

/* The result column: any JSON, stored encoded; null when absent. */
static json_t *s_col_result(sqlite3_stmt *st, int i)
{
    const char *rt = (const char *)sqlite3_column_text(st, i);
    json_t *r = rt ? json_loads(rt, JSON_DECODE_ANY, NULL) : NULL;
    return r ? r : json_null();
}

/* The ids task id waits on. */
static json_t *s_blockers(store_conn_t *c, const char *id)
{
    json_t *deps = store__ids(c, SQL_DEPS_OF, id);
    return deps ? deps : json_array();
}

json_t *store__task_row(store_conn_t *c, sqlite3_stmt *st)
{
    json_t *t = json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "id",
        store__col_text(st, 1), "project_id", store__col_text(st, 2), "title",
        store__col_text(st, 3), "description", store__col_text(st, 4), "type",
        store__col_text(st, 5), "status", store__col_text(st, 6), "priority",
        store__col_text(st, 7), "progress", sqlite3_column_int(st, 8), "assigned_role",
        store__col_text(st, 9), "assigned_agent", store__col_text(st, 10),
        "estimated_hours", store__col_real(st, 11), "actual_hours",
        store__col_real(st, 12), "result", s_col_result(st, 13), "created_at",
        store__col_text(st, 14), "updated_at", store__col_text(st, 15), "version",
        (json_int_t)sqlite3_column_int64(st, 16));
    json_object_set_new(t, "blocked_by",
                        s_blockers(c, json_string_value(json_object_get(t, "id"))));
    return t;
}

/* ---- the document as text ---- */

/* `,"key":` (no comma before the first). */
static void s_key(sbuf_t *b, const char *key)
{
    if (b->len > 1)
        sbuf_append(b, ",", 1);
    render_string(b, key);
    sbuf_append(b, ":", 1);
}

static void s_text(sbuf_t *b, const char *key, sqlite3_stmt *st, int i)
{
    s_key(b, key);
    render_string(b, (const char *)sqlite3_column_text(st, i));
}

/* Column i through jansson (a real, or the result), or null. */
static void s_value(sbuf_t *b, const char *key, json_t *v)
{
    s_key(b, key);
    if (v)
        render_value(b, v);
    else
        sbuf_append(b, "null", 4);
    json_decref(v);
}

static void s_real(sbuf_t *b, const char *key, sqlite3_stmt *st, int i)
{
    bool null = sqlite3_column_type(st, i) == SQLITE_NULL;
    s_value(b, key, null ? NULL : json_real(sqlite3_column_double(st, i)));
}

/* `"blocked_by":[...]`, from the dependencies of task id; false when
 * they cannot be read (store__task_row has an empty array then too). */
static void s_blocked_by(store_conn_t *c, sbuf_t *b, const char *id)
{
    s_key(b, "blocked_by");
    sbuf_append(b, "[", 1);
    sqlite3_stmt *st = store__stmt(c, SQL_DEPS_OF);
    if (st) {
        store__bind_text(st, 1, id);
        for (int n = 0; sqlite3_step(st) == SQLITE_ROW; n++) {
            if (n > 0)
                sbuf_append(b, ",", 1);
            render_string(b, (const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_reset(st);
    }
    sbuf_append(b, "]", 1);
}

char *store__task_doc(store_conn_t *c, sqlite3_stmt *st)
{
    static const char *const text[] = {NULL,          "id",   "project_id", "title",
                                       "description", "type", "status",     "priority"};
    sbuf_t b = {0};
    sbuf_reserve(&b, 1023);
    sbuf_append(&b, "{", 1);
    for (int i = 1; i < (int)ARRAY_LEN(text); i++)
        s_text(&b, text[i], st, i);
    s_key(&b, "progress");
    render_int(&b, sqlite3_column_int(st, 8));
    s_text(&b, "assigned_role", st, 9);
    s_text(&b, "assigned_agent", st, 10);
    s_real(&b, "estimated_hours", st, 11);
    s_real(&b, "actual_hours", st, 12);
    const char *rt = (const char *)sqlite3_column_text(st, 13);
    s_value(&b, "result", rt ? json_loads(rt, JSON_DECODE_ANY, NULL) : NULL);
    s_text(&b, "created_at", st, 14);
    s_text(&b, "updated_at", st, 15);
    s_key(&b, "version");
    render_int(&b, sqlite3_column_int64(st, 16));
    s_blocked_by(c, &b, (const char *)sqlite3_column_text(st, 1));
    sbuf_append(&b, "}", 1);
    return sbuf_steal(&b);
}

/* A string member. */
static void s_str(sbuf_t *b, const char *key, const char *v)
{
    s_key(b, key);
    render_string(b, v);
}

char *store__task_doc_new(const char *id, const store_task_new_t *t, const char *ts)
{
    sbuf_t b = {0};
    sbuf_reserve(&b, 1023);
    sbuf_append(&b, "{", 1);
    s_str(&b, "id", id);
    s_str(&b, "project_id", t->project_id);
    s_str(&b, "title", t->title);
    s_str(&b, "description", t->description ? t->description : "");
    s_str(&b, "type", t->type);
    s_str(&b, "status", "todo");
    s_str(&b, "priority", t->priority);
    sbuf_puts(&b, ",\"progress\":0,\"assigned_role\":null,\"assigned_agent\":null");
    /* SQLite keeps -0.0 as the integer 0: it reads back as 0.0. */
    s_value(&b, "estimated_hours",
            t->has_estimate ? json_real(t->estimated_hours + 0.0) : NULL);
    sbuf_puts(&b, ",\"actual_hours\":null,\"result\":null");
    s_str(&b, "created_at", ts);
    s_str(&b, "updated_at", ts);
    sbuf_puts(&b, ",\"version\":1,\"blocked_by\":[]}");
    return sbuf_steal(&b);
}
