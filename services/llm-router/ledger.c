/* ledger.c - spend per budget and window, and usage totals, in SQLite; see ledger.h. */
#define _GNU_SOURCE
#include "ledger.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "alloc.h"
#include "utf8.h"
#include "vp_error.h"

enum { Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SPENT, Q_ADD_SPENT, Q_ADD_USAGE, Q_COUNT };

/* Prepared once, transactions included: sqlite3_exec would parse BEGIN and
 * COMMIT again on every call. */
static const char *const s_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SPENT] = "SELECT spent FROM spend WHERE role = ?1 AND window_start = ?2",
    [Q_ADD_SPENT] = "INSERT INTO spend (role, window_start, spent) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (role, window_start) DO UPDATE SET spent = spent + ?3",
    [Q_ADD_USAGE] =
        "INSERT INTO usage (minute, role, provider, model, requests, errors, "
        "input_tokens, output_tokens, cost, estimated) "
        "VALUES (?1, ?2, ?3, ?4, ?10, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT (minute, role, provider, model) DO UPDATE SET "
        "requests = requests + ?10, errors = errors + ?5, input_tokens = input_tokens "
        "+ ?6, "
        "output_tokens = output_tokens + ?7, cost = cost + ?8, estimated = estimated + "
        "?9",
};

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS spend (role TEXT NOT NULL, window_start INTEGER NOT "
    "NULL,"
    " spent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (role, window_start));"
    "CREATE TABLE IF NOT EXISTS usage (minute INTEGER NOT NULL, role TEXT NOT NULL,"
    " provider TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL,"
    " errors INTEGER NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL, cost INTEGER NOT NULL, estimated INTEGER NOT "
    "NULL,"
    " PRIMARY KEY (minute, role, provider, model));";

struct ledger {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
};

/* Workers start together: sqldb_open sets the file up one at a time. */
ledger_t *ledger_open(const char *path, sqldb_sync_t sync, char *err, size_t errlen)
{
    ledger_t *l = xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    l->db = sqldb_open(path, s_schema, sync, err, errlen);
    for (int i = 0; l->db && i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(l->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->q[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "preparing a statement on %s: %s", path,
                     sqlite3_errmsg(l->db));
            ledger_destroy(&l);
            return NULL;
        }
    }
    if (!l->db)
        ledger_destroy(&l);
    return l;
}

void ledger_destroy(ledger_t **lp)
{
    ledger_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(l->q[i]);
    sqlite3_close(l->db);
    pthread_mutex_destroy(&l->lock);
    free(l);
    *lp = NULL;
}

static sqlite3_stmt *s_q(ledger_t *l, int i)
{
    sqlite3_reset(l->q[i]);
    sqlite3_clear_bindings(l->q[i]);
    return l->q[i];
}

/* Runs Q_BEGIN, Q_COMMIT or Q_ROLLBACK. */
static int s_tx(ledger_t *l, int q)
{
    sqlite3_stmt *st = s_q(l, q);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        log_warn("ledger: %s: %s", s_sql[q], sqlite3_errmsg(l->db));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : VP_ESTORE;
}

/* The integer of a one-value query (0 without a row) into *out. */
static int s_scalar(ledger_t *l, int q, const char *key, int64_t window, int64_t *out)
{
    sqlite3_stmt *st = s_q(l, q);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, window);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : VP_ESTORE;
}

static int s_apply_one(ledger_t *l, const ledger_entry_t *e)
{
    sqlite3_stmt *st;
    if (e->window_start && e->cost) {
        st = s_q(l, Q_ADD_SPENT);
        sqlite3_bind_text(st, 1, e->budget[0] ? e->budget : e->role, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, e->window_start);
        sqlite3_bind_int64(st, 3, e->cost);
        if (sqlite3_step(st) != SQLITE_DONE)
            return VP_ESTORE;
    }
    st = s_q(l, Q_ADD_USAGE);
    sqlite3_bind_int64(st, 1, e->minute);
    sqlite3_bind_text(st, 2, e->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, e->errors);
    sqlite3_bind_int64(st, 6, e->input_tokens);
    sqlite3_bind_int64(st, 7, e->output_tokens);
    sqlite3_bind_int64(st, 8, e->cost);
    sqlite3_bind_int64(st, 9, e->estimated);
    sqlite3_bind_int64(st, 10, e->requests);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : VP_ESTORE;
}

int ledger_apply(ledger_t *l, const ledger_entry_t *e, size_t n)
{
    pthread_mutex_lock(&l->lock);
    int rc = s_tx(l, Q_BEGIN);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = s_apply_one(l, &e[i])) < 0)
            log_warn("ledger: recording usage: %s", sqlite3_errmsg(l->db));
    if (rc == 0)
        rc = s_tx(l, Q_COMMIT);
    else
        s_tx(l, Q_ROLLBACK);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_reset(l->q[i]);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int ledger_spent(ledger_t *l, const char *budget, int64_t window_start, int64_t *spent)
{
    pthread_mutex_lock(&l->lock);
    int rc = s_scalar(l, Q_SPENT, budget, window_start, spent);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

json_t *ledger_usage(ledger_t *l, const char *group_by, int64_t since)
{
    const char *col = strcmp(group_by, "provider") == 0 ? "provider"
                      : strcmp(group_by, "model") == 0  ? "model"
                                                        : "role";
    char *sql = xasprintf("SELECT %s, SUM(requests), SUM(errors), SUM(input_tokens), "
                          "SUM(output_tokens), SUM(cost), SUM(estimated) FROM usage "
                          "WHERE minute >= ?1 GROUP BY 1 ORDER BY 1",
                          col);
    pthread_mutex_lock(&l->lock);
    sqlite3_stmt *st = NULL;
    json_t *out = NULL;
    if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, since / 60);
        out = json_array();
        while (sqlite3_step(st) == SQLITE_ROW) {
            /* A name stored before names were checked may not be UTF-8:
             * report it repaired rather than drop its row. */
            const char *name = (const char *)sqlite3_column_text(st, 0);
            char *text = utf8_repair(name ? name : "");
            json_array_append_new(
                out, json_pack("{s:s,s:I,s:I,s:I,s:I,s:f,s:I}", col, text, "requests",
                               (json_int_t)sqlite3_column_int64(st, 1), "errors",
                               (json_int_t)sqlite3_column_int64(st, 2), "input_tokens",
                               (json_int_t)sqlite3_column_int64(st, 3), "output_tokens",
                               (json_int_t)sqlite3_column_int64(st, 4), "cost_usd",
                               (double)sqlite3_column_int64(st, 5) / LEDGER_NANO,
                               "estimated", (json_int_t)sqlite3_column_int64(st, 6)));
            free(text);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    free(sql);
    return out;
}
