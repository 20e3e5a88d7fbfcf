/* metrics.h - a small Prometheus registry rendered in the text format 0.0.4.
 *
 * Families (counter, gauge, histogram) hold series keyed by their rendered
 * label set (`service="backend",route="/health"`). Hot paths look a series up
 * once and keep the pointer: series live as long as the registry. Collectors
 * append families computed at scrape time (process CPU, RSS, pool depth).
 *
 * Not thread-safe: the loop thread owns the registry. */
#ifndef VAPORA_METRICS_H
#define VAPORA_METRICS_H

#include <stddef.h>

#include "sbuf.h"

typedef struct metrics metrics_t;
typedef struct metric_family metric_family_t;
typedef struct metric_series metric_series_t;

typedef enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
} metric_type_t;

typedef void (*metrics_collect_fn)(sbuf_t *out, void *ud);

metrics_t *metrics_new(void);
void metrics_destroy(metrics_t **mp);

/* Returns the family called name, creating it on first use. For histograms,
 * bounds are the ascending upper bounds (copied; +Inf is implied). Asking
 * again for an existing name returns it unchanged. The registry owns it. */
metric_family_t *metrics_family(metrics_t *m, const char *name, const char *help,
                                metric_type_t type, const double *bounds,
                                size_t nbounds);

/* Returns the series with this label set ("" for none), creating it at 0.
 * labels must already be rendered and escaped (see metrics_label). */
metric_series_t *metrics_series(metric_family_t *f, const char *labels);

void metric_inc(metric_series_t *s, double by);
void metric_set(metric_series_t *s, double v);
void metric_observe(metric_series_t *s, double v);
double metric_value(const metric_series_t *s);
/* Histogram: the number of observations so far. */
unsigned long metric_count(const metric_series_t *s);

/* Appends `key="value"` (with a leading comma when out is not empty),
 * escaping backslash, quote and newline as the text format requires. */
void metrics_label(sbuf_t *out, const char *key, const char *value);

/* Adds a collector run on every render, after the families. */
void metrics_add_collector(metrics_t *m, metrics_collect_fn fn, void *ud);

/* Renders every family, then every collector, into out. */
void metrics_render(metrics_t *m, sbuf_t *out);

/* Appends a HELP/TYPE header then one sample: for collectors. type is
 * "gauge" or "counter"; labels may be "" or NULL. */
void metrics_write_sample(sbuf_t *out, const char *name, const char *help,
                          const char *type, const char *labels, double v);

#endif
