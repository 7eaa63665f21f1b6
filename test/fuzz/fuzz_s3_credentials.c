/*
 * The shared credentials file reader (s3_credentials_from_file() in
 * src/s3/credentials.h) on an arbitrary file. Input: one byte L, then L
 * bytes of profile name (cut at the first NUL), then the file's contents.
 * The file is read both for that profile and for "default".
 */
#include "fuzz.h"

#include "s3/credentials.h"

static void try_profile(const char *path, const char *profile)
{
	struct s3_credentials c;
	char err[512];

	memset(&c, 0, sizeof(c));
	if (s3_credentials_from_file(path, profile, &c, err, sizeof(err)) == 0) {
		FUZZ_CHECK(c.access_key_id != NULL && c.access_key_id[0] != '\0');
		FUZZ_CHECK(c.secret_access_key != NULL && c.secret_access_key[0] != '\0');
		(void)strlen(c.source);
		if (c.session_token != NULL)
			(void)strlen(c.session_token);
		s3_credentials_free(&c);
	} else {
		(void)strlen(err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t plen;
	char *profile, path[64];
	int fd;

	if (size < 1)
		return 0;
	plen = data[0] % 64;
	if (plen > size - 1)
		plen = size - 1;
	profile = fuzz_cstr(data + 1, plen);
	fd = fuzz_memfd(data + 1 + plen, size - 1 - plen, path, sizeof(path));
	if (fd >= 0) {
		try_profile(path, profile);
		try_profile(path, "default");
		close(fd);
	}
	free(profile);
	return 0;
}
