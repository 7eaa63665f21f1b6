/*
 * log_throttle.h: one error line a minute for a failure that repeats.
 *
 * A replica whose disk is full, or a bucket that is gone, fails at every
 * retry for as long as the fault lasts; one line per retry would bury the
 * rest of the log (and fill the disk that is already full). A throttle
 * lets the first failure through at once and then one a minute, counting
 * what it held back, and says when the failures end.
 *
 * Contract: the caller owns the struct (zeroed = idle) and gives the time
 * from clock_mono_ms(). No allocation, no locking: one loop thread.
 */
#ifndef LITESTREAM_UTIL_LOG_THROTTLE_H
#define LITESTREAM_UTIL_LOG_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_THROTTLE_MS 60000

struct log_throttle {
	int64_t first_ms;     /* when the current run of failures began */
	int64_t logged_ms;    /* when a line last went out */
	uint64_t failures;    /* in the current run */
	uint64_t held;        /* failures not logged since the last line */
	bool failing;
};

/* A failure at now_ms: true when it is to be logged; *held then gets how
 * many were held back since the last logged one. */
bool log_throttle_failure(struct log_throttle *t, int64_t now_ms, uint64_t *held);

/* A success at now_ms: true when it ends a run of failures, with that run's
 * count and duration for the "healthy again" line; the throttle is idle after. */
bool log_throttle_success(struct log_throttle *t, int64_t now_ms, uint64_t *failures,
			  int64_t *duration_ms);

/* What a logged failure line ends with: "" for the first of a run, else
 * " (still failing: N more failures since the last line)". */
void log_throttle_held_note(uint64_t held, char *buf, size_t n);

/* The end of a recovery line: "N failure(s) in DURATION". */
void log_throttle_run_note(uint64_t failures, int64_t duration_ms, char *buf, size_t n);

#endif
