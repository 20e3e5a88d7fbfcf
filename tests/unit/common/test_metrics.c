/* test_metrics.c - unit tests for common/metrics.c: the Prometheus text
 * rendered for counters, gauges, histograms, label escaping and collectors. */
#include "metrics.h"
#include "sbuf.h"

#include <criterion/criterion.h>
#include <string.h>

static void s_collect(sbuf_t *out, void *ud)
{
    metrics_write_sample(out, "extra_gauge", "A collected gauge.", "gauge",
                         (const char *)ud, 2.5);
}

Test(metrics, counter_and_gauge_text)
{
    metrics_t *m = metrics_new();
    metric_family_t *c =
        metrics_family(m, "reqs_total", "Requests.", METRIC_COUNTER, NULL, 0);
    cr_assert_eq(metrics_family(m, "reqs_total", "x", METRIC_GAUGE, NULL, 0), c);
    metric_series_t *s = metrics_series(c, "route=\"/a\"");
    metric_inc(s, 1);
    metric_inc(s, 2);
    cr_assert_eq(metrics_series(c, "route=\"/a\""), s);
    metric_series_t *g =
        metrics_series(metrics_family(m, "temp", "T.", METRIC_GAUGE, NULL, 0), "");
    metric_set(g, 0.25);
    metrics_add_collector(m, s_collect, "service=\"x\"");
    sbuf_t out = {0};
    metrics_render(m, &out);
    cr_assert_str_eq(out.data, "# HELP reqs_total Requests.\n"
                               "# TYPE reqs_total counter\n"
                               "reqs_total{route=\"/a\"} 3\n"
                               "# HELP temp T.\n"
                               "# TYPE temp gauge\n"
                               "temp 0.25\n"
                               "# HELP extra_gauge A collected gauge.\n"
                               "# TYPE extra_gauge gauge\n"
                               "extra_gauge{service=\"x\"} 2.5\n");
    sbuf_free(&out);
    metrics_destroy(&m);
    cr_assert_null(m);
}

Test(metrics, histogram_buckets_are_cumulative)
{
    metrics_t *m = metrics_new();
    const double b[] = {0.1, 1};
    metric_series_t *s = metrics_series(
        metrics_family(m, "lat_seconds", "L.", METRIC_HISTOGRAM, b, 2), "r=\"x\"");
    metric_observe(s, 0.05);
    metric_observe(s, 0.5);
    metric_observe(s, 3);
    cr_assert_eq(metric_count(s), 3);
    sbuf_t out = {0};
    metrics_render(m, &out);
    cr_assert_str_eq(out.data, "# HELP lat_seconds L.\n"
                               "# TYPE lat_seconds histogram\n"
                               "lat_seconds_bucket{r=\"x\",le=\"0.1\"} 1\n"
                               "lat_seconds_bucket{r=\"x\",le=\"1\"} 2\n"
                               "lat_seconds_bucket{r=\"x\",le=\"+Inf\"} 3\n"
                               "lat_seconds_sum{r=\"x\"} 3.55\n"
                               "lat_seconds_count{r=\"x\"} 3\n");
    sbuf_free(&out);
    metrics_destroy(&m);
}

Test(metrics, label_values_are_escaped)
{
    sbuf_t l = {0};
    metrics_label(&l, "a", "x\"y\\z\nw");
    metrics_label(&l, "b", "plain");
    cr_assert_str_eq(l.data, "a=\"x\\\"y\\\\z\\nw\",b=\"plain\"");
    sbuf_free(&l);
}

Test(metrics, empty_families_are_not_rendered)
{
    metrics_t *m = metrics_new();
    metrics_family(m, "unused_total", "U.", METRIC_COUNTER, NULL, 0);
    sbuf_t out = {0};
    metrics_render(m, &out);
    cr_assert_eq(out.len, 0);
    sbuf_free(&out);
    metrics_destroy(&m);
}
