/*
 * log_throttle.c: see log_throttle.h. The first failure of a run is always
 * logged (an operator must see a new problem at once); later ones at most
 * every LOG_THROTTLE_MS; a success closes the run.
 */
#include "util/log_throttle.h"
#include "util/duration.h"

#include <stdio.h>
#include <string.h>

bool log_throttle_failure(struct log_throttle *t, int64_t now_ms, uint64_t *held)
{
	if (!t->failing) {
		memset(t, 0, sizeof(*t));
		t->failing = true;
		t->first_ms = t->logged_ms = now_ms;
		t->failures = 1;
		*held = 0;
		return true;
	}
	t->failures++;
	if (now_ms - t->logged_ms < LOG_THROTTLE_MS) {
		t->held++;
		return false;
	}
	*held = t->held;
	t->held = 0;
	t->logged_ms = now_ms;
	return true;
}

bool log_throttle_success(struct log_throttle *t, int64_t now_ms, uint64_t *failures,
			  int64_t *duration_ms)
{
	if (!t->failing)
		return false;
	*failures = t->failures;
	*duration_ms = now_ms - t->first_ms;
	memset(t, 0, sizeof(*t));
	return true;
}

void log_throttle_held_note(uint64_t held, char *buf, size_t n)
{
	if (held == 0)
		snprintf(buf, n, "%s", "");
	else
		snprintf(buf, n, " (still failing: %llu more failure%s since the last line)",
			 (unsigned long long)held, held == 1 ? "" : "s");
}

void log_throttle_run_note(uint64_t failures, int64_t duration_ms, char *buf, size_t n)
{
	char took[32];

	duration_format(duration_ms, took, sizeof(took));
	snprintf(buf, n, "%llu failure%s in %s", (unsigned long long)failures,
		 failures == 1 ? "" : "s", took);
}
