/*
 * Go-style duration strings; see duration.h.
 */
#include "duration.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct unit {
	const char *name;
	double ms;
};

/* Longest names first so "ms" is not read as "m" followed by "s". */
static const struct unit units[] = {
	{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1.0},
	{"h", 3600e3}, {"m", 60e3},  {"s", 1e3},
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

int duration_parse(const char *s, int64_t *ms)
{
	double total = 0;
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
		double v = 0, scale = 1;
		bool digits = false;
		size_t ulen;
		const struct unit *u;

		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (*s++ - '0');
			digits = true;
		}
		if (*s == '.') {
			s++;
			while (*s >= '0' && *s <= '9') {
				scale /= 10;
				v += (*s++ - '0') * scale;
				digits = true;
			}
		}
		if (!digits || (u = unit_at(s, &ulen)) == NULL)
			return -EINVAL;
		s += ulen;
		total += v * u->ms;
		if (total > 9.2e15)
			return -EINVAL;
	}
	*ms = (int64_t)total * (neg ? -1 : 1);
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
