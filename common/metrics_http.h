/* metrics_http.h - GET /metrics: a metrics registry served in the
 * Prometheus text format 0.0.4, for every worker and the supervisor's
 * admin API alike.
 *
 * Kept apart from metrics.c, which http.c itself uses: a route in
 * metrics.c would make the two call each other in a circle.
 *
 * Loop thread only. */
#ifndef VAPORA_METRICS_HTTP_H
#define VAPORA_METRICS_HTTP_H

#include "http.h"
#include "metrics.h"

/* Adds GET /metrics to srv, rendering m (borrowed: it must outlive srv) on
 * every scrape. Returns what http_route returns. */
int metrics_http_route(http_server_t *srv, metrics_t *m);

#endif
