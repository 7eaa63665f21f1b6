/*
 * The S3 client's policy, which the integration tests can only reach a few
 * cases of: which failures are retried, what errno an answer becomes, the
 * hints a user sees, the backoff schedule, and how an endpoint is split
 * into what is signed and sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "s3/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_retryable(void **state)
{
	static const int transport_yes[] = {-ECONNREFUSED, -ECONNRESET, -EPIPE, -ETIMEDOUT,
					    -EBADMSG, -EHOSTUNREACH, -ENETUNREACH};
	static const int transport_no[] = {-EPROTO, -ECANCELED, -EINVAL, -ENOMEM, -EFBIG, -EIO};
	static const long status_yes[] = {500, 502, 503, 504, 408, 429};
	static const long status_no[] = {200, 301, 400, 401, 403, 404, 409, 412, 501};

	for (size_t i = 0; i < sizeof(transport_yes) / sizeof(transport_yes[0]); i++)
		assert_true(s3_retryable(transport_yes[i], 0, ""));
	for (size_t i = 0; i < sizeof(transport_no) / sizeof(transport_no[0]); i++)
		assert_false(s3_retryable(transport_no[i], 0, ""));
	for (size_t i = 0; i < sizeof(status_yes) / sizeof(status_yes[0]); i++)
		assert_true(s3_retryable(0, status_yes[i], ""));
	for (size_t i = 0; i < sizeof(status_no) / sizeof(status_no[0]); i++)
		assert_false(s3_retryable(0, status_no[i], ""));
	/* By code, whatever the status (RequestTimeout comes as a 400). */
	assert_true(s3_retryable(0, 400, "RequestTimeout"));
	assert_true(s3_retryable(0, 503, "SlowDown"));
	assert_true(s3_retryable(0, 200, "InternalError"));
	assert_false(s3_retryable(0, 403, "SignatureDoesNotMatch"));
	assert_false(s3_retryable(0, 404, "NoSuchBucket"));
	assert_false(s3_retryable(0, 400, "AuthorizationHeaderMalformed"));
}

static void test_errno(void **state)
{
	assert_int_equal(s3_status_errno(403, "SignatureDoesNotMatch"), -EACCES);
	assert_int_equal(s3_status_errno(403, "Forbidden"), -EACCES);
	assert_int_equal(s3_status_errno(404, "NoSuchKey"), -ENOENT);
	assert_int_equal(s3_status_errno(404, "NotFound"), -ENOENT);
	assert_int_equal(s3_status_errno(404, "NoSuchBucket"), -ENXIO);
	assert_int_equal(s3_status_errno(400, "AuthorizationHeaderMalformed"), -EINVAL);
	assert_int_equal(s3_status_errno(301, "PermanentRedirect"), -EINVAL);
	assert_int_equal(s3_status_errno(503, "SlowDown"), -EIO);
	assert_int_equal(s3_status_errno(400, "BadDigest"), -EIO);
}

static void hint_is(long status, const char *code, const struct s3_error *e, const char *hdr,
		    const char *want)
{
	char buf[256];

	s3_hint(status, code, e, hdr, "us-east-1", "bkt", buf, sizeof(buf));
	if (want[0] == '\0' ? buf[0] != '\0' : strstr(buf, want) == NULL)
		fail_msg("%ld %s: hint \"%s\", want \"%s\"", status, code, buf, want);
}

static void test_hints(void **state)
{
	struct s3_error e;

	memset(&e, 0, sizeof(e));
	hint_is(403, "SignatureDoesNotMatch", &e, NULL, "check the access key and secret");
	hint_is(403, "InvalidAccessKeyId", &e, NULL, "check the access key and secret");
	hint_is(403, "Forbidden", NULL, NULL, "check the access key and secret");
	hint_is(403, "AccessDenied", &e, NULL, "bucket bkt");
	hint_is(404, "NoSuchBucket", &e, NULL, "bucket bkt does not exist");
	hint_is(404, "NoSuchKey", &e, NULL, "");
	hint_is(503, "SlowDown", &e, NULL, "");
	hint_is(400, "ExpiredToken", &e, NULL, "session token");
	hint_is(403, "RequestTimeTooSkewed", &e, NULL, "clock");
	hint_is(400, "EntityTooSmall", &e, NULL, "part-size");
	hint_is(400, "BadDigest", &e, NULL, "changed");
	/* Wrong region: named from the error document, or from the header. */
	snprintf(e.region, sizeof(e.region), "eu-west-3");
	hint_is(400, "AuthorizationHeaderMalformed", &e, NULL,
		"wrong region: bucket bkt is in eu-west-3, not us-east-1; set region = eu-west-3");
	hint_is(301, "PermanentRedirect", NULL, "ap-south-1", "bucket bkt is in ap-south-1");
	hint_is(301, "PermanentRedirect", NULL, NULL, "check region and endpoint");
	hint_is(301, "", NULL, NULL, "wrong region or endpoint");
}

static void test_backoff(void **state)
{
	uint64_t prev_max = 0;

	for (int attempt = 1; attempt <= 10; attempt++) {
		uint64_t lo = s3_backoff_ms(attempt, 0.0), hi = s3_backoff_ms(attempt, 1.0);

		assert_true(lo <= hi);
		assert_true(hi <= S3_BACKOFF_MAX_MS);
		assert_true(lo >= hi / 2);
		assert_true(hi >= prev_max); /* never shrinks */
		prev_max = hi;
	}
	assert_int_equal(s3_backoff_ms(1, 1.0), S3_BACKOFF_BASE_MS);
	assert_int_equal(s3_backoff_ms(2, 1.0), 2 * S3_BACKOFF_BASE_MS);
	assert_int_equal(s3_backoff_ms(30, 1.0), S3_BACKOFF_MAX_MS);
	assert_int_equal(s3_backoff_ms(30, 0.0), S3_BACKOFF_MAX_MS / 2);
	/* Out-of-range jitter is clamped. */
	assert_int_equal(s3_backoff_ms(1, 7.0), S3_BACKOFF_BASE_MS);
	assert_int_equal(s3_backoff_ms(1, -1.0), S3_BACKOFF_BASE_MS / 2);
}

static void split_is(const char *endpoint, const char *scheme, const char *authority, const char *base)
{
	char *s, *a, *b;

	if (s3_endpoint_split(endpoint, &s, &a, &b) != 0)
		fail_msg("%s: refused", endpoint);
	assert_string_equal(s, scheme);
	assert_string_equal(a, authority);
	assert_string_equal(b, base);
	free(s);
	free(a);
	free(b);
}

static void test_endpoint(void **state)
{
	char *s, *a, *b;

	split_is("http://127.0.0.1:7480", "http", "127.0.0.1:7480", "");
	split_is("HTTPS://s3.example.com/", "https", "s3.example.com", "");
	split_is("http://minio:80", "http", "minio", "");
	split_is("https://minio:443/", "https", "minio", "");
	split_is("http://minio:443", "http", "minio:443", "");
	split_is("https://gw.example.com:9000/s3/", "https", "gw.example.com:9000", "/s3");
	split_is("http://[::1]:9000", "http", "[::1]:9000", "");
	assert_int_equal(s3_endpoint_split("ftp://x", &s, &a, &b), -EINVAL);
	assert_int_equal(s3_endpoint_split("x:9000", &s, &a, &b), -EINVAL);
	assert_int_equal(s3_endpoint_split("http://", &s, &a, &b), -EINVAL);
	assert_int_equal(s3_endpoint_split("http://user:pw@host", &s, &a, &b), -EINVAL);
}

static void test_content_range(void **state)
{
	uint64_t f, l, t;

	(void)state;
	assert_int_equal(s3_parse_content_range("bytes 0-1023/4096", &f, &l, &t), 0);
	assert_true(f == 0 && l == 1023 && t == 4096);
	assert_int_equal(s3_parse_content_range("Bytes 4095-4095/4096", &f, &l, &t), 0);
	assert_true(f == 4095 && l == 4095 && t == 4096);
	assert_int_equal(s3_parse_content_range("bytes 0-1470000000/18446744073709551615", &f, &l, &t),
			 0);
	assert_true(t == UINT64_MAX);
	/* A 416's form. */
	assert_int_equal(s3_parse_content_range("bytes */0", &f, &l, &t), 0);
	assert_true(f == UINT64_MAX && l == UINT64_MAX && t == 0);
	/* Malformed, inconsistent or unknown totals. */
	const char *bad[] = {"", "bytes", "bytes 0-10", "bytes 0-10/", "bytes 0-10/*",
			     "bytes 10-5/20", "bytes 0-20/20", "items 0-1/2", "bytes -1-2/3",
			     "bytes 0-1/2 ", "bytes 0-1/2x", "bytes 0-99999999999999999999/1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(s3_parse_content_range(bad[i], &f, &l, &t), -EINVAL);
	assert_int_equal(s3_parse_content_range(NULL, &f, &l, &t), -EINVAL);
}

static void test_creds_rejected(void **state)
{
	(void)state;
	assert_true(s3_creds_rejected(403, "SignatureDoesNotMatch"));
	assert_true(s3_creds_rejected(403, "InvalidAccessKeyId"));
	assert_true(s3_creds_rejected(400, "ExpiredToken"));
	assert_true(s3_creds_rejected(400, "TokenRefreshRequired"));
	assert_true(s3_creds_rejected(403, "AccessDenied"));
	assert_true(s3_creds_rejected(401, ""));
	assert_false(s3_creds_rejected(403, "RequestTimeTooSkewed"));
	assert_false(s3_creds_rejected(400, "AuthorizationHeaderMalformed"));
	assert_false(s3_creds_rejected(404, "NoSuchBucket"));
	assert_false(s3_creds_rejected(503, "SlowDown"));
	assert_false(s3_creds_rejected(403, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retryable),
		cmocka_unit_test(test_errno),
		cmocka_unit_test(test_hints),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_endpoint),
		cmocka_unit_test(test_content_range),
		cmocka_unit_test(test_creds_rejected),
	};
	return cmocka_run_group_tests_name("s3_client", tests, NULL, NULL);
}
