/* metrics.c - see metrics.h. */
#define _GNU_SOURCE
#include "metrics.h"
#include "alloc.h"
#include "sbuf.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metric_series {
    char *labels;
    double value;          /* counter/gauge value, or histogram sum */
    unsigned long count;   /* histogram observations */
    unsigned long *bucket; /* per-bound counts (not cumulative) */
    size_t nbounds;
    const double *bounds;
    metric_series_t *next;
};

struct metric_family {
    char *name;
    char *help;
    metric_type_t type;
    double *bounds;
    size_t nbounds;
    metric_series_t *head, *tail;
    metric_family_t *next;
};

typedef struct collector {
    metrics_collect_fn fn;
    void *ud;
} collector_t;

struct metrics {
    metric_family_t *head, *tail;
    collector_t *coll;
    size_t ncoll;
};

metrics_t *metrics_new(void)
{
    return xcalloc(1, sizeof(metrics_t));
}

void metrics_destroy(metrics_t **mp)
{
    metrics_t *m = mp ? *mp : NULL;
    if (!m)
        return;
    for (metric_family_t *f = m->head, *fn; f; f = fn) {
        fn = f->next;
        for (metric_series_t *s = f->head, *sn; s; s = sn) {
            sn = s->next;
            free(s->labels);
            free(s->bucket);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    free(m->coll);
    free(m);
    *mp = NULL;
}

metric_family_t *metrics_family(metrics_t *m, const char *name, const char *help,
                                metric_type_t type, const double *bounds,
                                size_t nbounds)
{
    for (metric_family_t *f = m->head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    metric_family_t *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->type = type;
    if (type == METRIC_HISTOGRAM && nbounds > 0) {
        f->bounds = xmalloc(nbounds * sizeof *bounds);
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    return f;
}

metric_series_t *metrics_series(metric_family_t *f, const char *labels)
{
    for (metric_series_t *s = f->head; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    metric_series_t *s = xcalloc(1, sizeof *s);
    s->labels = xstrdup(labels);
    if (f->type == METRIC_HISTOGRAM) {
        s->nbounds = f->nbounds;
        s->bounds = f->bounds;
        s->bucket = xcalloc(f->nbounds ? f->nbounds : 1, sizeof *s->bucket);
    }
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    return s;
}

void metric_inc(metric_series_t *s, double by)
{
    s->value += by;
}

void metric_set(metric_series_t *s, double v)
{
    s->value = v;
}

void metric_observe(metric_series_t *s, double v)
{
    s->value += v;
    s->count++;
    for (size_t i = 0; i < s->nbounds; i++) {
        if (v <= s->bounds[i]) {
            s->bucket[i]++;
            break;
        }
    }
}

double metric_value(const metric_series_t *s)
{
    return s->value;
}

unsigned long metric_count(const metric_series_t *s)
{
    return s->count;
}

void metrics_label(sbuf_t *out, const char *key, const char *value)
{
    if (out->len > 0)
        sbuf_append(out, ",", 1);
    sbuf_printf(out, "%s=\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            sbuf_puts(out, "\\\\");
        else if (*p == '"')
            sbuf_puts(out, "\\\"");
        else if (*p == '\n')
            sbuf_puts(out, "\\n");
        else
            sbuf_append(out, p, 1);
    }
    sbuf_append(out, "\"", 1);
}

void metrics_add_collector(metrics_t *m, metrics_collect_fn fn, void *ud)
{
    m->coll = xrealloc(m->coll, (m->ncoll + 1) * sizeof *m->coll);
    m->coll[m->ncoll++] = (collector_t){fn, ud};
}

/* %.17g round-trips; integers print without an exponent up to 2^53. */
static void s_num(sbuf_t *out, double v)
{
    if (isinf(v))
        sbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        sbuf_puts(out, "NaN");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        sbuf_printf(out, "%.0f", v);
    else {
        /* The shortest of %.15g / %.17g that reads back exactly. */
        char buf[32];
        snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, sizeof buf, "%.17g", v);
        sbuf_puts(out, buf);
    }
}

static void s_sample(sbuf_t *out, const char *name, const char *suffix,
                     const char *labels, const char *extra, double v)
{
    sbuf_printf(out, "%s%s", name, suffix);
    bool has = labels && *labels, hasx = extra && *extra;
    if (has || hasx)
        sbuf_printf(out, "{%s%s%s}", has ? labels : "", has && hasx ? "," : "",
                    hasx ? extra : "");
    sbuf_append(out, " ", 1);
    s_num(out, v);
    sbuf_append(out, "\n", 1);
}

static void s_render_histogram(sbuf_t *out, const metric_family_t *f,
                               const metric_series_t *s)
{
    unsigned long cum = 0;
    sbuf_t le = {0};
    for (size_t i = 0; i < s->nbounds; i++) {
        cum += s->bucket[i];
        sbuf_reset(&le);
        sbuf_puts(&le, "le=\"");
        s_num(&le, s->bounds[i]);
        sbuf_puts(&le, "\"");
        s_sample(out, f->name, "_bucket", s->labels, le.data, (double)cum);
    }
    sbuf_free(&le);
    s_sample(out, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
    s_sample(out, f->name, "_sum", s->labels, NULL, s->value);
    s_sample(out, f->name, "_count", s->labels, NULL, (double)s->count);
}

void metrics_render(metrics_t *m, sbuf_t *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (metric_family_t *f = m->head; f; f = f->next) {
        if (!f->head)
            continue;
        sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                    types[f->type]);
        for (metric_series_t *s = f->head; s; s = s->next) {
            if (f->type == METRIC_HISTOGRAM)
                s_render_histogram(out, f, s);
            else
                s_sample(out, f->name, "", s->labels, NULL, s->value);
        }
    }
    for (size_t i = 0; i < m->ncoll; i++)
        m->coll[i].fn(out, m->coll[i].ud);
}

void metrics_write_sample(sbuf_t *out, const char *name, const char *help,
                          const char *type, const char *labels, double v)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    s_sample(out, name, "", labels, NULL, v);
}
