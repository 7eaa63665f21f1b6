/*
 * Replica URL parsing (src/url.h) and the helpers beside it, on the input
 * as a string; also config_replica_from_url(), which parses a URL into a
 * replica configuration with defaults.
 */
#include "fuzz.h"

#include "config/config.h"
#include "config/url.h"

#include <errno.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char err[512], *out = NULL;
	struct replica_url u;
	struct replica_config rc;

	(void)replica_url_is_url(s);
	(void)replica_url_bucket_valid(s);

	if (replica_url_parse(s, &u, err, sizeof(err)) == 0) {
		FUZZ_CHECK(u.path != NULL);
		if (u.type == REPLICA_S3) {
			FUZZ_CHECK(u.bucket != NULL && replica_url_bucket_valid(u.bucket));
			FUZZ_CHECK(u.path[0] != '/' && (u.path[0] == '\0' || u.path[strlen(u.path) - 1] != '/'));
		} else {
			FUZZ_CHECK(u.path[0] == '/');
		}
		if (u.region != NULL)
			(void)strlen(u.region);
		if (u.endpoint != NULL)
			(void)strlen(u.endpoint);
		replica_url_free(&u);
	} else {
		(void)strlen(err);
	}

	if (replica_url_abs_path(s, &out) == 0) {
		FUZZ_CHECK(out[0] == '/');
		free(out);
		out = NULL;
	}
	if (replica_url_s3_prefix(s, &out) == 0) {
		FUZZ_CHECK(out[0] != '/');
		free(out);
		out = NULL;
	}
	if (replica_url_endpoint(s, &out, err, sizeof(err)) == 0) {
		/* The scheme keeps its case ("HTTPS://" is accepted). */
		FUZZ_CHECK(strncasecmp(out, "http://", 7) == 0 || strncasecmp(out, "https://", 8) == 0);
		free(out);
		out = NULL;
	}

	memset(&rc, 0, sizeof(rc));
	if (config_replica_from_url(s, &rc, err, sizeof(err)) == 0)
		replica_config_free(&rc);
	free(s);
	return 0;
}
