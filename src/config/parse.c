/*
 * Booleans, sizes and the S3 encryption settings; parse.h has the forms.
 * Booleans and sizes compare whole strings against small tables, without
 * regard to case, so that what one accepts is plain from the table.
 */
#include "config/parse.h"
#include "util/base64.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
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

int parse_sse(const char *s, char *why, size_t n)
{
	if (strcmp(s, "AES256") == 0 || strcmp(s, "aws:kms") == 0)
		return 0;
	snprintf(why, n, "\"%.64s\": want AES256 or aws:kms", s);
	return -EINVAL;
}

int parse_sse_customer_key(const char *s, char *why, size_t n)
{
	unsigned char raw[32];
	size_t len = 0;
	int rc = base64_decode(s, raw, sizeof(raw), &len);

	explicit_bzero(raw, sizeof(raw));
	if (rc == -EINVAL) {
		snprintf(why, n, "not base64 (want the base64 of a 32-byte key, e.g. from "
			 "`head -c 32 /dev/urandom | base64`)");
		return -EINVAL;
	}
	if (rc != 0 || len != sizeof(raw)) {
		snprintf(why, n, "the key is %zu bytes long, want 32 (AES-256)", len);
		return -EINVAL;
	}
	return 0;
}

int parse_storage_class(const char *s, char *why, size_t n)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != len) {
		snprintf(why, n, "\"%.64s\" is not a storage class (e.g. STANDARD, STANDARD_IA, "
			 "INTELLIGENT_TIERING)", s);
		return -EINVAL;
	}
	if (strcmp(s, "GLACIER") == 0 || strcmp(s, "DEEP_ARCHIVE") == 0) {
		snprintf(why, n, "%s objects cannot be read back without a restore request, so "
			 "litestream could not restore from them (GLACIER_IR can)", s);
		return -EINVAL;
	}
	return 0;
}
