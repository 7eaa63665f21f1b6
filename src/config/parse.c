/*
 * Booleans and sizes; parse.h has the forms. Both compare whole strings
 * against small tables, without regard to case, so that what one accepts
 * is plain from the table.
 */
#include "config/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <strings.h>

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_size(const char *s, int64_t *out)
{
	static const struct {
		const char *name;
		int64_t mult;
	} units[] = {
		{"", 1},
		{"b", 1},
		{"k", 1LL << 10}, {"kb", 1LL << 10}, {"kib", 1LL << 10},
		{"m", 1LL << 20}, {"mb", 1LL << 20}, {"mib", 1LL << 20},
		{"g", 1LL << 30}, {"gb", 1LL << 30}, {"gib", 1LL << 30},
	};
	int64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (INT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (*s - '0');
	}
	if (*s == ' ')
		s++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].name) == 0) {
			if (v > INT64_MAX / units[i].mult)
				return -EINVAL;
			*out = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}
