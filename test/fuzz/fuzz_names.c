/*
 * Replica and shadow file names (src/names.h): every parser on the input
 * as a string. With -DFUZZ_INVARIANTS, a name that parses is formatted
 * again and that name must parse to the same values.
 */
#include "fuzz.h"

#include "core/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char buf[NAME_MAX_LEN];
	uint32_t idx, idx2;
	uint64_t off, off2;
	enum segment_form form, form2;

	(void)generation_valid(s);
	if (snapshot_name_parse(s, &idx) == 0) {
		FUZZ_CHECK(idx <= WAL_INDEX_MAX);
		snapshot_name(buf, sizeof(buf), idx);
		FUZZ_CHECK(snapshot_name_parse(buf, &idx2) == 0 && idx2 == idx);
	}
	if (segment_name_parse(s, &idx, &off, &form) == 0) {
		FUZZ_CHECK(idx <= WAL_INDEX_MAX);
		if (form == SEGMENT_OFFSET) {
			segment_name(buf, sizeof(buf), idx, off);
			FUZZ_CHECK(segment_name_parse(buf, &idx2, &off2, &form2) == 0 && idx2 == idx &&
				   off2 == off && form2 == form);
		}
	}
	if (shadow_wal_name_parse(s, &idx) == 0) {
		FUZZ_CHECK(idx <= WAL_INDEX_MAX);
		shadow_wal_name(buf, sizeof(buf), idx);
		FUZZ_CHECK(shadow_wal_name_parse(buf, &idx2) == 0 && idx2 == idx);
	}
	(void)index_parse(s, &idx);
	(void)idx2;
	(void)off2;
	(void)form2;
	(void)buf;
	free(s);
	return 0;
}
