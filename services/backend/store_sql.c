/* store_sql.c - values in and out of SQLite statements: ids, text and
 * numbers as JSON, finding one row. See store_internal.h. */
#define _GNU_SOURCE
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store_internal.h"
#include "now.h"

/* 16 random bytes. Fetched 1 KiB at a time per thread: asking libsodium
 * for each id was a getrandom() system call per write. */
static void s_random16(unsigned char b[16])
{
    static __thread unsigned char pool[1024];
    static __thread size_t used = sizeof pool;
    if (used == sizeof pool) {
        randombytes_buf(pool, sizeof pool);
        used = 0;
    }
    memcpy(b, pool + used, 16);
    sodium_memzero(pool + used, 16); /* an id is never handed out twice */
    used += 16;
}

/* A UUID of version 7 (RFC 9562): the time in ms in its first 48 bits,
 * then 74 random ones. Ids made one after the other sort together, so a
 * new row's entry goes to the last page of the id index: random (version
 * 4) ids touched a page of their own each, which doubled the pages every
 * write wrote to the WAL and, once another worker had written, read back
 * (the page cache does not outlive another process's commit). */
void store__uuid(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    s_random16(b);
    uint64_t ms = (uint64_t)now_wall_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

void store__now(char out[STORE_TS_MAX])
{
    /* The date and time of the last second this thread formatted: most
     * writes of a second need only its milliseconds. */
    static __thread time_t sec = -1;
    static __thread char head[64]; /* 2026-01-02T03:04:05. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        sec = ts.tv_sec;
    }
    size_t n = strlen(head);
    long ms = ts.tv_nsec / 1000000;
    memcpy(out, head, n);
    out[n] = (char)('0' + ms / 100);
    out[n + 1] = (char)('0' + ms / 10 % 10);
    out[n + 2] = (char)('0' + ms % 10);
    out[n + 3] = 'Z';
    out[n + 4] = '\0';
}

void store__bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

json_t *store__col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

json_t *store__col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
               ? json_null()
               : json_real(sqlite3_column_double(st, i));
}

int store__find_row(store_conn_t *c, const char *sql, const char *key, const char *what,
                    sqlite3_stmt **row, store_err_t *e)
{
    sqlite3_stmt *st = c ? store__stmt(c, sql) : NULL;
    if (!st)
        return store__fail(c, e);
    store__bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return store__not_found(e, what, key);
    if (rc != SQLITE_ROW)
        return store__fail(c, e);
    *row = st;
    return 0;
}

int store__step_id(store_conn_t *c, const char *sql, const char *id, const char *id2)
{
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        return SQLITE_ERROR;
    store__bind_text(st, 1, id);
    if (id2)
        store__bind_text(st, 2, id2);
    return sqlite3_step(st);
}

json_t *store__ids(store_conn_t *c, const char *sql, const char *id)
{
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        return NULL;
    json_t *out = json_array();
    store__bind_text(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(out, store__col_text(st, 0));
    sqlite3_reset(st);
    return out;
}
