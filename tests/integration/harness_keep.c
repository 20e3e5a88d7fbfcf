/* harness_keep.c - see harness_keep.h. */
#define _GNU_SOURCE
#include "harness_keep.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct s_kept {
    void *p;
    bool json; /* json_decref, not free */
} s_kept_t;

static s_kept_t *s_kept;
static size_t s_nkept, s_cap;

static void *s_push(void *p, bool json)
{
    if (s_nkept == s_cap) {
        s_cap = s_cap ? s_cap * 2 : 64;
        s_kept = realloc(s_kept, s_cap * sizeof *s_kept);
        if (!s_kept)
            abort();
    }
    s_kept[s_nkept++] = (s_kept_t){p, json};
    return p;
}

void *th_keep(void *p)
{
    return s_push(p, false);
}

json_t *th_keep_json(json_t *j)
{
    return s_push(j, true);
}

char *th_fmt(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return th_keep(s);
}

void th__keep_release(void)
{
    for (size_t i = 0; i < s_nkept; i++) {
        if (s_kept[i].json)
            json_decref(s_kept[i].p);
        else
            free(s_kept[i].p);
    }
    free(s_kept);
    s_kept = NULL;
    s_nkept = s_cap = 0;
}
