/*
 * timefmt_parse() (src/timefmt.h) on the input as a string. With
 * -DFUZZ_INVARIANTS, a time within years 1000..9999 is formatted with
 * timefmt_format() and must read back as the same whole second. (Before
 * year 1000, strftime's %Y writes fewer than four digits, e.g. "1-01-01".)
 */
#include "fuzz.h"

#include "util/timefmt.h"

#define YEAR1000_MS (-30610224000000LL) /* 1000-01-01T00:00:00Z */
#define YEAR10000_MS 253402300800000LL /* 10000-01-01T00:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char buf[64];
	int64_t ms, ms2;

	if (timefmt_parse(s, &ms) == 0 && ms >= YEAR1000_MS && ms < YEAR10000_MS) {
		int64_t sec_ms = ms >= 0 ? ms / 1000 * 1000 : (ms - 999) / 1000 * 1000;
		timefmt_format(ms, buf, sizeof(buf));
		FUZZ_CHECK(timefmt_parse(buf, &ms2) == 0 && ms2 == sec_ms);
		(void)sec_ms;
		(void)ms2;
	}
	free(s);
	return 0;
}
