/*
 * Header and endpoint parsing of the S3 client (src/s3/client.h):
 * s3_parse_content_range() and s3_endpoint_split().
 */
#include "fuzz.h"

#include "s3/client.h"

#include <stdbool.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	uint64_t first = 0, last = 0, total = 0;
	char *scheme = NULL, *authority = NULL, *base = NULL;

	if (s3_parse_content_range(s, &first, &last, &total) == 0) {
		/* The 416 form ('*' for FIRST-LAST) sets both to UINT64_MAX; else FIRST <= LAST < TOTAL. */
		bool star = first == UINT64_MAX && last == UINT64_MAX;
		FUZZ_CHECK(star || (first <= last && last < total));
		(void)star;
	}
	if (s3_endpoint_split(s, &scheme, &authority, &base) == 0) {
		FUZZ_CHECK(strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
		FUZZ_CHECK(authority[0] != '\0');
		FUZZ_CHECK(base[0] == '\0' || (base[0] == '/' && base[strlen(base) - 1] != '/'));
		free(scheme);
		free(authority);
		free(base);
	}
	free(s);
	return 0;
}
