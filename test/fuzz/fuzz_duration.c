/*
 * duration_parse() (src/duration.h) on the input as a string. With
 * -DFUZZ_INVARIANTS, what it reads is formatted with duration_format() and
 * must read back as the same number of milliseconds.
 */
#include "fuzz.h"

#include "util/duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char buf[64];
	int64_t ms, ms2;

	if (duration_parse(s, &ms) == 0) {
		duration_format(ms, buf, sizeof(buf));
		FUZZ_CHECK(duration_parse(buf, &ms2) == 0 && ms2 == ms);
		(void)ms2;
	}
	free(s);
	return 0;
}
