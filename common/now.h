/* now.h - the time: monotonic milliseconds and nanoseconds, and the
 * wall-clock time as RFC 3339 text. Any thread. */
#ifndef VAPORA_NOW_H
#define VAPORA_NOW_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds / nanoseconds on CLOCK_MONOTONIC. */
uint64_t now_ms(void);
uint64_t now_ns(void);
/* Writes an RFC 3339 UTC timestamp with milliseconds ("2026-11-24T10:00:00.123Z")
 * of the current wall-clock time into buf (at least 32 bytes). */
void now_iso8601(char *buf, size_t len);

#endif
