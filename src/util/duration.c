/*
 * Go-style duration strings; see duration.h.
 */
#include "util/duration.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

struct unit {
	const char *name;
	uint64_t ns;
};

/* Longest names first so "ms" is not read as "m" followed by "s". */
static const struct unit units[] = {
	{"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"ms", 1000000},
	{"h", 3600000000000ull}, {"m", 60000000000ull}, {"s", 1000000000ull},
};

static const struct unit *unit_at(const char *s, size_t *len)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t n = strlen(units[i].name);
		if (strncmp(s, units[i].name, n) == 0) {
			*len = n;
			return &units[i];
		}
	}
	return NULL;
}

#define NS_MAX ((uint64_t)INT64_MAX)

/*
 * As Go's time.ParseDuration: integer nanoseconds, the fraction scaled by
 * the unit (so "1.001s" is exactly 1001 ms and "8.2m" 492000 ms), then
 * truncated to milliseconds.
 */
int duration_parse(const char *s, int64_t *ms)
{
	uint64_t total = 0;
	bool neg = false;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (*s == '\0')
		return -EINVAL;
	while (*s != '\0') {
		uint64_t v = 0, f = 0, scale = 1, part;
		bool digits = false;
		size_t ulen;
		const struct unit *u;

		for (; *s >= '0' && *s <= '9'; s++) {
			if (v > (NS_MAX - 9) / 10)
				return -EINVAL;
			v = v * 10 + (uint64_t)(*s - '0');
			digits = true;
		}
		if (*s == '.') {
			for (s++; *s >= '0' && *s <= '9'; s++) {
				digits = true;
				if (f > (NS_MAX - 9) / 10 || scale > NS_MAX / 10)
					continue; /* beyond any precision that counts */
				f = f * 10 + (uint64_t)(*s - '0');
				scale *= 10;
			}
		}
		if (!digits || (u = unit_at(s, &ulen)) == NULL)
			return -EINVAL;
		s += ulen;
		if (v > NS_MAX / u->ns)
			return -EINVAL;
		part = v * u->ns;
		if (f > 0)
			part += (uint64_t)((double)f * ((double)u->ns / (double)scale));
		if (part > NS_MAX || total > NS_MAX - part)
			return -EINVAL;
		total += part;
	}
	*ms = (int64_t)(total / 1000000) * (neg ? -1 : 1);
	return 0;
}

void duration_format(int64_t ms, char *buf, size_t n)
{
	const char *sign = ms < 0 ? "-" : "";
	uint64_t v = ms < 0 ? 0 - (uint64_t)ms : (uint64_t)ms;
	unsigned long long h = v / 3600000, m = v / 60000 % 60, sec = v / 1000 % 60;
	unsigned frac = (unsigned)(v % 1000);
	char secs[32];

	if (v == 0) {
		snprintf(buf, n, "0s");
		return;
	}
	if (v < 1000) {
		snprintf(buf, n, "%s%llums", sign, (unsigned long long)v);
		return;
	}
	if (frac != 0) {
		/* Go trims trailing zeros: 1.5s, 1.25s, 1.001s. */
		int w = 3;
		while (frac % 10 == 0) {
			frac /= 10;
			w--;
		}
		snprintf(secs, sizeof(secs), "%llu.%0*us", sec, w, frac);
	} else {
		snprintf(secs, sizeof(secs), "%llus", sec);
	}
	if (h > 0)
		snprintf(buf, n, "%s%lluh%llum%s", sign, h, m, secs);
	else if (m > 0)
		snprintf(buf, n, "%s%llum%s", sign, m, secs);
	else
		snprintf(buf, n, "%s%s", sign, secs);
}
