/*
 * The documents role credentials arrive in (src/s3/creds_parse.h) on
 * arbitrary bodies: the STS answer (XML) and the three JSON shapes
 * (container endpoint, IMDS, credential_process), plus the container
 * endpoint's error body; then the SSE-C key check (src/s3/sse.h) and
 * strict base64 (src/util/base64.h) on the input as a string.
 */
#include "fuzz.h"

#include "s3/creds_parse.h"
#include "s3/sse.h"
#include "util/base64.h"

#include <errno.h>

static void check_creds(const struct s3_credentials *c)
{
	FUZZ_CHECK(c->access_key_id != NULL && c->access_key_id[0] != '\0');
	FUZZ_CHECK(c->secret_access_key != NULL && c->secret_access_key[0] != '\0');
	FUZZ_CHECK(c->session_token == NULL || c->session_token[0] != '\0');
	(void)strlen(c->access_key_id);
	(void)c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *doc = (const char *)data;
	struct s3_credentials c;
	struct s3_sts_error e;
	char err[256], md5[SIGV4_MD5_BASE64_LEN + 1], *s;
	unsigned char raw[64];
	size_t len = 0;
	int rc;

	rc = s3_sts_parse(doc, size, &c, (size & 1) ? &e : NULL, err, sizeof(err));
	if (rc == 0) {
		check_creds(&c);
		s3_credentials_free(&c);
	} else if (rc == -EREMOTEIO && (size & 1)) {
		FUZZ_CHECK(memchr(e.code, '\0', sizeof(e.code)) != NULL);
	} else {
		(void)strlen(err);
	}
	for (int kind = S3_CREDS_CONTAINER; kind <= S3_CREDS_PROCESS; kind++) {
		rc = s3_creds_json_parse((enum s3_creds_json)kind, doc, size, &c, err, sizeof(err));
		if (rc == 0) {
			check_creds(&c);
			s3_credentials_free(&c);
		} else {
			(void)strlen(err);
		}
	}
	s3_creds_json_error(doc, size, err, sizeof(err));
	(void)strlen(err);
	s = fuzz_cstr(data, size);
	rc = base64_decode(s, raw, sizeof(raw), &len);
	FUZZ_CHECK(rc != 0 || len <= sizeof(raw));
	if (s3_sse_c_key_md5(s, md5, err, sizeof(err)) == 0)
		FUZZ_CHECK(strlen(md5) == SIGV4_MD5_BASE64_LEN);
	free(s);
	return 0;
}
