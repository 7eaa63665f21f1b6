/*
 * The pure parts of the credential chain: the documents credentials
 * arrive in (STS XML and its error answers, the container endpoint's,
 * IMDS's and credential_process's JSON), the renewal schedule with its
 * jitter, the AWS config file's profiles, and the SSE-C headers (with
 * strict base64).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "s3/creds_parse.h"
#include "s3/provider.h"
#include "s3/sse.h"
#include "util/base64.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 2026-11-25T09:23:06Z */
#define T0 1795598586000LL

static const char STS_OK[] =
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	"  <AssumeRoleWithWebIdentityResult>\n"
	"    <SubjectFromWebIdentityToken>system:serviceaccount:default:app</SubjectFromWebIdentityToken>\n"
	"    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"
	"<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"
	"    <Credentials>\n"
	"      <SessionToken>FwoGZXIvYXdzE+/token==</SessionToken>\n"
	"      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>\n"
	"      <Expiration>2026-11-25T09:23:06Z</Expiration>\n"
	"      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>\n"
	"    </Credentials>\n"
	"    <Provider>oidc.eks.amazonaws.com</Provider>\n"
	"  </AssumeRoleWithWebIdentityResult>\n"
	"  <ResponseMetadata><RequestId>ad4156e9</RequestId></ResponseMetadata>\n"
	"</AssumeRoleWithWebIdentityResponse>\n";

static void test_sts_ok(void **state)
{
	struct s3_credentials c;
	struct s3_sts_error e;
	char err[256] = "";
	static const char rgw[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><GetSessionTokenResponse>"
		"<GetSessionTokenResult><Credentials><AccessKeyId>k</AccessKeyId>"
		"<Expiration>2026-11-25T09:23:06.910803+00:00</Expiration>"
		"<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken></Credentials>"
		"</GetSessionTokenResult></GetSessionTokenResponse>";

	(void)state;
	assert_int_equal(s3_sts_parse(STS_OK, strlen(STS_OK), &c, &e, err, sizeof(err)), 0);
	assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
	assert_string_equal(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	assert_string_equal(c.session_token, "FwoGZXIvYXdzE+/token==");
	assert_int_equal(c.expires_ms, T0);
	s3_credentials_free(&c);
	/* radosgw's GetSessionToken: fractions and an offset. */
	assert_int_equal(s3_sts_parse(rgw, strlen(rgw), &c, &e, err, sizeof(err)), 0);
	assert_int_equal(c.expires_ms, T0 + 910);
	s3_credentials_free(&c);
}

static void test_sts_errors(void **state)
{
	struct s3_credentials c;
	struct s3_sts_error e;
	char err[256] = "";
	static const char expired[] =
		"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
		"<Type>Sender</Type><Code>ExpiredTokenException</Code>"
		"<Message>Token expired: current date/time 1740 must be before the expiration date/time"
		" 1739</Message></Error><RequestId>x</RequestId></ErrorResponse>";
	static const char bare[] = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
	static const struct {
		const char *doc, *want;
	} bad[] = {
		{"", "malformed STS answer"},
		{"not xml", "malformed STS answer: line 1"},
		{"<ListBucketResult/>", "not an STS answer"},
		{"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult/>"
		 "</AssumeRoleWithWebIdentityResponse>", "no <Credentials>"},
		{"<R><XResult><Credentials><AccessKeyId>k</AccessKeyId></Credentials></XResult></R>",
		 "not an STS answer"},
		{"<XResponse><XResult><Credentials><AccessKeyId>k</AccessKeyId></Credentials>"
		 "</XResult></XResponse>", "has no <SecretAccessKey>"},
		{"<XResponse><XResult><Credentials><AccessKeyId>k</AccessKeyId><SecretAccessKey>s"
		 "</SecretAccessKey><Expiration>soon</Expiration></Credentials></XResult></XResponse>",
		 "<Expiration> is not an RFC 3339 time"},
		{"<!DOCTYPE x [<!ENTITY a \"b\">]><XResponse/>", "DOCTYPE"},
	};

	(void)state;
	assert_int_equal(s3_sts_parse(expired, strlen(expired), &c, &e, err, sizeof(err)),
			 -EREMOTEIO);
	assert_string_equal(e.type, "Sender");
	assert_string_equal(e.code, "ExpiredTokenException");
	assert_non_null(strstr(e.message, "Token expired"));
	assert_int_equal(s3_sts_parse(bare, strlen(bare), &c, &e, err, sizeof(err)), -EREMOTEIO);
	assert_string_equal(e.code, "AccessDenied");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(s3_sts_parse(bad[i].doc, strlen(bad[i].doc), &c, &e, err, sizeof(err)),
				 -EBADMSG);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].doc, err, bad[i].want);
	}
	/* No message ever holds a value: the secret of a broken answer stays out. */
	{
		static const char leaky[] =
			"<XResponse><XResult><Credentials><SecretAccessKey>TOPSECRET</SecretAccessKey>"
			"</Credentials></XResult></XResponse>";

		assert_int_equal(s3_sts_parse(leaky, strlen(leaky), &c, &e, err, sizeof(err)), -EBADMSG);
		assert_null(strstr(err, "TOPSECRET"));
	}
}

static void json_ok(enum s3_creds_json kind, const char *doc, const char *token, int64_t expires)
{
	struct s3_credentials c;
	char err[256] = "";

	if (s3_creds_json_parse(kind, doc, strlen(doc), &c, err, sizeof(err)) != 0)
		fail_msg("%s: %s", doc, err);
	assert_string_equal(c.access_key_id, "AKID");
	assert_string_equal(c.secret_access_key, "SECRET");
	if (token == NULL)
		assert_null(c.session_token);
	else
		assert_string_equal(c.session_token, token);
	assert_int_equal(c.expires_ms, expires);
	s3_credentials_free(&c);
}

static void json_bad(enum s3_creds_json kind, const char *doc, const char *want)
{
	struct s3_credentials c;
	char err[256] = "";

	assert_int_equal(s3_creds_json_parse(kind, doc, strlen(doc), &c, err, sizeof(err)), -EBADMSG);
	if (strstr(err, want) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", doc, err, want);
	assert_null(strstr(err, "SECRET"));
}

static void test_json(void **state)
{
	(void)state;
	/* ECS / EKS Pod Identity. */
	json_ok(S3_CREDS_CONTAINER,
		"{\"AccessKeyId\":\"AKID\",\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOK\","
		"\"Expiration\":\"2026-11-25T09:23:06Z\",\"RoleArn\":\"arn:aws:iam::1:role/r\"}",
		"TOK", T0);
	/* IMDS. */
	json_ok(S3_CREDS_IMDS,
		"{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-25T08:23:06Z\",\n"
		"  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"AKID\",\n"
		"  \"SecretAccessKey\" : \"SECRET\",\n  \"Token\" : \"TOK\",\n"
		"  \"Expiration\" : \"2026-11-25T09:23:06Z\"\n}",
		"TOK", T0);
	/* credential_process: SessionToken, Expiration optional (never expires). */
	json_ok(S3_CREDS_PROCESS,
		"{\"Version\": 1, \"AccessKeyId\": \"AKID\", \"SecretAccessKey\": \"SECRET\"}", NULL, 0);
	json_ok(S3_CREDS_PROCESS,
		"{\"Version\": 1, \"AccessKeyId\": \"AKID\", \"SecretAccessKey\": \"SECRET\","
		"\"SessionToken\": \"S\", \"Expiration\": \"2026-11-25T10:23:06+01:00\"}",
		"S", T0);

	json_bad(S3_CREDS_CONTAINER, "", "not JSON");
	json_bad(S3_CREDS_CONTAINER, "{\"AccessKeyId\":\"AKID\",", "not JSON");
	json_bad(S3_CREDS_CONTAINER, "[1]", "not a JSON object");
	json_bad(S3_CREDS_CONTAINER, "{\"SecretAccessKey\":\"SECRET\"}", "no \"AccessKeyId\"");
	json_bad(S3_CREDS_CONTAINER, "{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"SECRET\"}",
		 "\"AccessKeyId\" is empty");
	json_bad(S3_CREDS_CONTAINER, "{\"AccessKeyId\":1,\"SecretAccessKey\":\"SECRET\"}",
		 "\"AccessKeyId\" is not a string");
	json_bad(S3_CREDS_CONTAINER,
		 "{\"AccessKeyId\":\"AKID\",\"SecretAccessKey\":\"SECRET\",\"Expiration\":\"x\"}",
		 "\"Expiration\" is not an RFC 3339 time");
	json_bad(S3_CREDS_IMDS,
		 "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"AKID\","
		 "\"SecretAccessKey\":\"SECRET\"}",
		 "Code is \"AssumeRoleUnauthorizedAccess\"");
	json_bad(S3_CREDS_PROCESS, "{\"AccessKeyId\":\"AKID\",\"SecretAccessKey\":\"SECRET\"}",
		 "no \"Version\"");
	json_bad(S3_CREDS_PROCESS,
		 "{\"Version\":2,\"AccessKeyId\":\"AKID\",\"SecretAccessKey\":\"SECRET\"}",
		 "unsupported \"Version\"");
	json_bad(S3_CREDS_PROCESS, "{\"Version\":1,\"AccessKeyId\":\"AKID\"}",
		 "no \"SecretAccessKey\"");
}

static void test_json_error(void **state)
{
	char buf[256];

	(void)state;
	s3_creds_json_error("{\"code\":\"InvalidToken\",\"message\":\"bad token\"}", 46, buf,
			    sizeof(buf));
	assert_string_equal(buf, "InvalidToken: bad token");
	s3_creds_json_error("{\"Message\":\"no role\"}", 21, buf, sizeof(buf));
	assert_string_equal(buf, "no role");
	s3_creds_json_error("<html>", 6, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void test_refresh_delay(void **state)
{
	const int64_t hour = 3600 * 1000, min = 60 * 1000;

	(void)state;
	/* An hour left: 5 minutes before, up to a minute earlier by jitter. */
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + hour, 0.0), hour - 5 * min);
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + hour, 1.0), hour - 6 * min);
	for (double r = 0; r <= 1.0; r += 0.125) {
		int64_t d = s3_provider_refresh_delay_ms(T0, T0 + hour, r);

		assert_true(d >= hour - 6 * min && d <= hour - 5 * min);
	}
	/* Short-lived (the tests' 20 s): half the time left, a fifth of that earlier. */
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + 20000, 0.0), 10000);
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + 20000, 1.0), 8000);
	/* Jitter outside 0..1 is clamped. */
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + 20000, 5.0), 8000);
	/* Almost expired: not a busy loop, but not past the expiry either. */
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + 1500, 1.0), 1000);
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 + 300, 1.0), 300);
	/* Expired: now. */
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0, 0.5), 0);
	assert_int_equal(s3_provider_refresh_delay_ms(T0, T0 - hour, 0.5), 0);
}

static void test_usable_until(void **state)
{
	(void)state;
	assert_int_equal(s3_provider_usable_until_ms(T0, 0), INT64_MAX);
	/* A tenth of the lifetime, at most a minute. */
	assert_int_equal(s3_provider_usable_until_ms(T0, T0 + 20000), T0 + 18000);
	assert_int_equal(s3_provider_usable_until_ms(T0, T0 + 3600000), T0 + 3600000 - 60000);
	/* Received expired: unusable at once. */
	assert_int_equal(s3_provider_usable_until_ms(T0, T0 - 5), T0 - 5);
}

static void test_retry_delay(void **state)
{
	(void)state;
	/* 1 s doubling to 60 s, equal jitter. */
	assert_int_equal(s3_provider_retry_delay_ms(1, 0, 1.0), 1000);
	assert_int_equal(s3_provider_retry_delay_ms(1, 0, 0.0), 500);
	assert_int_equal(s3_provider_retry_delay_ms(2, 0, 1.0), 2000);
	assert_int_equal(s3_provider_retry_delay_ms(4, 0, 1.0), 8000);
	assert_int_equal(s3_provider_retry_delay_ms(30, 0, 1.0), 60000);
	assert_int_equal(s3_provider_retry_delay_ms(30, 0, 0.0), 30000);
	/* With credentials in hand for 10 s more: at most 5 s, so retries fit. */
	assert_int_equal(s3_provider_retry_delay_ms(30, 10000, 1.0), 5000);
	/* Never below the floor. */
	assert_int_equal(s3_provider_retry_delay_ms(30, 100, 1.0), 1000);
	/* Logged at most once a minute. */
	assert_true(s3_provider_should_log(T0, 0));
	assert_false(s3_provider_should_log(T0 + 59999, T0));
	assert_true(s3_provider_should_log(T0 + 60000, T0));
}

static void test_config_file(void **state)
{
	char path[] = "/tmp/test-s3-provider-XXXXXX", why[256], *v = NULL;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	(void)state;
	assert_non_null(f);
	fputs("[default]\nregion = us-east-1\ncredential_process = /bin/echo default\n"
	      "[profile app]\ncredential_process = /usr/bin/creds --role \"a b\"\n"
	      "s3 =\n  max_concurrent_requests = 10\n"
	      "[app]\ncredential_process = not this one (the credentials file's form)\n"
	      "[profile empty]\nregion = x\n",
	      f);
	fclose(f);
	assert_int_equal(s3_config_file_value(path, "default", "credential_process", &v, why,
					      sizeof(why)), 0);
	assert_string_equal(v, "/bin/echo default");
	free(v);
	assert_int_equal(s3_config_file_value(path, "app", "credential_process", &v, why,
					      sizeof(why)), 0);
	assert_string_equal(v, "/usr/bin/creds --role \"a b\"");
	free(v);
	assert_int_equal(s3_config_file_value(path, "empty", "credential_process", &v, why,
					      sizeof(why)), 1);
	assert_non_null(strstr(why, "no credential_process in profile [empty]"));
	assert_int_equal(s3_config_file_value(path, "nope", "credential_process", &v, why,
					      sizeof(why)), 1);
	assert_non_null(strstr(why, "no profile [nope]"));
	unlink(path);
	assert_int_equal(s3_config_file_value(path, "default", "credential_process", &v, why,
					      sizeof(why)), 1);
	assert_non_null(strstr(why, "no /tmp/test-s3-provider-"));
}

static void test_base64(void **state)
{
	unsigned char out[8];
	size_t len = 0;

	(void)state;
	assert_int_equal(base64_decode("aGVsbG8=", out, sizeof(out), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(base64_decode("aGk=", out, sizeof(out), &len), 0);
	assert_int_equal(len, 2);
	assert_int_equal(base64_decode("aA==", out, sizeof(out), &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(base64_decode("", out, sizeof(out), &len), -EINVAL);
	assert_int_equal(base64_decode("aGVsbG8", out, sizeof(out), &len), -EINVAL);
	assert_int_equal(base64_decode("aGVs bG8=", out, sizeof(out), &len), -EINVAL);
	assert_int_equal(base64_decode("aG=sbG8=", out, sizeof(out), &len), -EINVAL);
	assert_int_equal(base64_decode("aGk9\n", out, sizeof(out), &len), -EINVAL);
	/* Leftover bits must be zero: "aGl=" would also decode to "hi". */
	assert_int_equal(base64_decode("aGl=", out, sizeof(out), &len), -EINVAL);
	assert_int_equal(base64_decode("aB==", out, sizeof(out), &len), -EINVAL);
	assert_int_equal(base64_decode("aGVsbG8gd29ybGQ=", out, sizeof(out), &len), -ENOSPC);
	assert_int_equal(len, 11);
}

static void test_sse_c_headers(void **state)
{
	/* The AWS CLI's example key: 32 bytes "0123456789abcdef0123456789abcdef". */
	static const char key[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
	struct s3_sse s;
	struct sigv4_header h[S3_SSE_MAX_HEADERS];
	char md5[SIGV4_MD5_BASE64_LEN + 1], why[256];
	size_t n;

	(void)state;
	assert_int_equal(s3_sse_c_key_md5(key, md5, why, sizeof(why)), 0);
	/* base64(md5("0123456789abcdef0123456789abcdef")), as openssl computes it. */
	assert_string_equal(md5, "hRasmdxgYDKV3nvbahU1MA==");
	assert_int_equal(s3_sse_c_key_md5("c2VjcmV0", md5, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "6 bytes"));
	assert_int_equal(s3_sse_c_key_md5("!!", md5, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not base64"));

	assert_int_equal(s3_sse_init(&s, NULL, NULL, "STANDARD_IA", key, why, sizeof(why)), 0);
	/* PutObject, CreateMultipartUpload: the class and the three SSE-C headers. */
	n = s3_sse_headers(&s, true, false, h);
	assert_int_equal(n, 4);
	assert_string_equal(h[0].name, "x-amz-storage-class");
	assert_string_equal(h[1].name, "x-amz-server-side-encryption-customer-algorithm");
	assert_string_equal(h[1].value, "AES256");
	assert_string_equal(h[2].value, key);
	assert_string_equal(h[3].name, "x-amz-server-side-encryption-customer-key-MD5");
	assert_string_equal(h[3].value, "hRasmdxgYDKV3nvbahU1MA==");
	/* UploadPart, GetObject, HeadObject: SSE-C only. */
	n = s3_sse_headers(&s, false, true, h);
	assert_int_equal(n, 3);
	assert_string_equal(h[0].name, "x-amz-server-side-encryption-customer-algorithm");
	/* Everything else: nothing. */
	assert_int_equal(s3_sse_headers(&s, false, false, h), 0);
	s3_sse_free(&s);
	assert_null(s.customer_key);

	assert_int_equal(s3_sse_init(&s, "aws:kms", "k1", NULL, "", why, sizeof(why)), 0);
	n = s3_sse_headers(&s, true, false, h);
	assert_int_equal(n, 2);
	assert_string_equal(h[0].name, "x-amz-server-side-encryption");
	assert_string_equal(h[0].value, "aws:kms");
	assert_string_equal(h[1].name, "x-amz-server-side-encryption-aws-kms-key-id");
	assert_int_equal(s3_sse_headers(&s, false, true, h), 0);
	s3_sse_free(&s);
	assert_int_equal(s3_sse_headers(NULL, true, true, h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sts_ok),
		cmocka_unit_test(test_sts_errors),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_error),
		cmocka_unit_test(test_refresh_delay),
		cmocka_unit_test(test_usable_until),
		cmocka_unit_test(test_retry_delay),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_sse_c_headers),
	};
	return cmocka_run_group_tests_name("s3_provider", tests, NULL, NULL);
}
