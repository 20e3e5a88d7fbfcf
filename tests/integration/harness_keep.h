/* harness_keep.h - what a test makes and never frees itself: strings,
 * arrays and JSON documents handed to th_keep*() live until th_cleanup()
 * (harness.h), so a test can build messages and paths inline, and a test
 * that fails half way leaks nothing.
 *
 * Main thread only. Out of memory aborts (it is a test). */
#ifndef VAPORA_TEST_HARNESS_KEEP_H
#define VAPORA_TEST_HARNESS_KEEP_H

#include <jansson.h>

/* Keeps p (from malloc; NULL is fine) until th_cleanup(), which free()s
 * it; returns p. */
void *th_keep(void *p);

/* Keeps the reference j (NULL is fine) until th_cleanup(), which
 * json_decref()s it; returns j. */
json_t *th_keep_json(json_t *j);

/* A formatted string, kept. */
__attribute__((format(printf, 1, 2))) char *th_fmt(const char *fmt, ...);

/* For th_cleanup(): releases everything kept. */
void th__keep_release(void);

#endif
