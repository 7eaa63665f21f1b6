/*
 * The configuration file reader (config_load() in src/config.h) on an
 * arbitrary file, kept in a memfd, and the value parsers it uses
 * (parse_bool(), parse_size() in src/parse.h) on the input as a string.
 */
#include "fuzz.h"

#include "config/config.h"
#include "config/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[512], path[64];
	int fd = fuzz_memfd(data, size, path, sizeof(path));

	if (fd >= 0) {
		memset(&c, 0xa5, sizeof(c)); /* *out must be set on every path */
		if (config_load(path, &c, err, sizeof(err)) == 0) {
			for (size_t i = 0; i < c.n_dbs; i++) {
				struct db_config *d = &c.dbs[i];
				FUZZ_CHECK(d->path != NULL && d->path[0] == '/');
				FUZZ_CHECK(config_find_db(&c, d->path) == d);
				for (size_t j = 0; j < d->n_replicas; j++) {
					(void)strlen(d->replicas[j].name);
					(void)strlen(d->replicas[j].path);
				}
			}
			config_free(&c);
		} else {
			(void)strlen(err);
			config_free(&c); /* zeroed on failure: a no-op */
		}
		close(fd);
	}

	char *s = fuzz_cstr(data, size);
	bool b;
	int64_t n;
	(void)parse_bool(s, &b);
	if (parse_size(s, &n) == 0)
		FUZZ_CHECK(n >= 0);
	free(s);
	return 0;
}
