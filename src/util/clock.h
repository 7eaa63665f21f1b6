/*
 * The two clocks the program reads, in the units it keeps times in.
 *
 *   monotonic  for deadlines, timeouts and elapsed times: never jumps
 *              when the wall clock is set; its origin is arbitrary, so its
 *              values mean something only relative to one another.
 *   wall       for what is shown or stored as a date (log lines, object
 *              times, status): UTC since the Unix epoch, and it may jump.
 *
 * Loop callbacks that need "now" for a loop timer use uv_now() instead,
 * which is the loop's own cached monotonic time. Every function may be
 * called from any thread and cannot fail (clock_gettime() on these clocks
 * cannot fail on Linux).
 */
#ifndef LITESTREAM_CLOCK_H
#define LITESTREAM_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t clock_mono_ms(void);

/* Microseconds of CLOCK_MONOTONIC: for the short spins of a lock wait. */
int64_t clock_mono_us(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME), rounded down. */
int64_t clock_wall_ms(void);

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME): to compare with file mtimes. */
int64_t clock_wall_ns(void);

#endif
