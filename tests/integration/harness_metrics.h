/* harness_metrics.h - reading the Prometheus text format that /metrics
 * answers (a worker's, or the supervisor's admin API): whether a metric is
 * there, and the value of one of its samples picked by label fragments.
 *
 * Pure functions of their arguments: thread-safe. */
#ifndef VAPORA_TEST_HARNESS_METRICS_H
#define VAPORA_TEST_HARNESS_METRICS_H

#include <stdbool.h>

/* Whether the Prometheus text has a sample of metric name (with or without
 * labels). */
bool th_metric_has(const char *text, const char *name);

/* The value of the first sample of name (with labels) whose label set
 * contains every fragment of labels (a NULL-terminated list, e.g.
 * {"service=\"web\"", "worker=\"1\"", NULL}), or -1 when there is none. */
double th_metric(const char *text, const char *name, const char *const *labels);

#endif
