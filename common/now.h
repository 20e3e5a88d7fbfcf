/* now.h - the time: monotonic milliseconds and nanoseconds, the
 * wall-clock time as Unix milliseconds and as RFC 3339 text, and a
 * deadline for pthread_cond_timedwait. Any thread. */
#ifndef VAPORA_NOW_H
#define VAPORA_NOW_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds / nanoseconds on CLOCK_MONOTONIC. */
uint64_t now_ms(void);
uint64_t now_ns(void);
/* Unix time in milliseconds (CLOCK_REALTIME): what rows and files record. */
int64_t now_wall_ms(void);
/* The CLOCK_REALTIME time ms from now (pthread_cond_timedwait's clock). */
struct timespec now_deadline(int64_t ms);
/* Writes an RFC 3339 UTC timestamp with milliseconds ("2026-11-24T10:00:00.123Z")
 * of the current wall-clock time into buf (at least 32 bytes). */
void now_iso8601(char *buf, size_t len);

#endif
