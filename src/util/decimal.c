/*
 * decimal.c: strict decimal numbers, for values other programs send us
 * (S3 listings' sizes, systemd's WATCHDOG_USEC and WATCHDOG_PID), where
 * strtoull's leniency (leading space, a sign, a trailing tail) would
 * accept what the sender did not mean.
 */
#include "util/decimal.h"

#include <errno.h>
#include <stdlib.h>

int decimal_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno != 0)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}
