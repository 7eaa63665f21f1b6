/*
 * The credentials lookup order, with real environment variables and
 * credentials files in a temporary directory. Every test starts from an
 * environment without any of the variables the lookup reads, and HOME
 * pointing at an empty temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "s3/credentials.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/test-s3-creds-XXXXXX";

static const char *const VARS[] = {
	"LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE",
	"AWS_CONFIG_FILE",
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *in_dir(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static int setup(void **state)
{
	char aws[256];

	for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++)
		unsetenv(VARS[i]);
	snprintf(aws, sizeof(aws), "%s/.aws", dir);
	mkdir(aws, 0700);
	unlink(in_dir(".aws/credentials"));
	setenv("HOME", dir, 1);
	return 0;
}

/* Resolves and checks what came out; secret "" means "no token". */
static void expect(const char *cfg_id, const char *cfg_secret, const char *id, const char *secret,
		   const char *token, const char *source)
{
	struct s3_credentials c;
	char err[512] = "";
	int rc = s3_credentials_resolve(cfg_id, cfg_secret, &c, err, sizeof(err));

	if (rc != 0)
		fail_msg("resolve: %d %s", rc, err);
	assert_string_equal(c.access_key_id, id);
	assert_string_equal(c.secret_access_key, secret);
	if (token == NULL)
		assert_null(c.session_token);
	else
		assert_string_equal(c.session_token, token);
	if (strstr(c.source, source) == NULL)
		fail_msg("source \"%s\" does not say \"%s\"", c.source, source);
	s3_credentials_free(&c);
	assert_null(c.access_key_id);
}

static void expect_error(const char *cfg_id, const char *cfg_secret, int want_rc, const char *want)
{
	struct s3_credentials c;
	char err[512] = "";
	int rc;

	memset(&c, 0x5a, sizeof(c));
	rc = s3_credentials_resolve(cfg_id, cfg_secret, &c, err, sizeof(err));
	assert_int_equal(rc, want_rc);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, want);
	assert_int_equal(((unsigned char *)&c)[0], 0x5a);
}

static void test_order(void **state)
{
	write_file(in_dir(".aws/credentials"),
		   "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n");
	expect(NULL, NULL, "FILEKEY", "filesecret", NULL, ".aws/credentials [default]");

	setenv("AWS_ACCESS_KEY_ID", "AWSKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "awssecret", 1);
	expect(NULL, NULL, "AWSKEY", "awssecret", NULL, "AWS_ACCESS_KEY_ID");
	setenv("AWS_SESSION_TOKEN", "tok", 1);
	expect(NULL, NULL, "AWSKEY", "awssecret", "tok", "AWS_ACCESS_KEY_ID");

	setenv("LITESTREAM_ACCESS_KEY_ID", "LSKEY", 1);
	setenv("LITESTREAM_SECRET_ACCESS_KEY", "lssecret", 1);
	expect(NULL, NULL, "LSKEY", "lssecret", NULL, "LITESTREAM_ACCESS_KEY_ID");

	expect("CFGKEY", "cfgsecret", "CFGKEY", "cfgsecret", NULL, "replica configuration");
	/* Empty config values (an unset ${VAR}) count as unset. */
	expect("", "", "LSKEY", "lssecret", NULL, "LITESTREAM_ACCESS_KEY_ID");
	setenv("LITESTREAM_ACCESS_KEY_ID", "", 1);
	setenv("LITESTREAM_SECRET_ACCESS_KEY", "", 1);
	expect(NULL, NULL, "AWSKEY", "awssecret", "tok", "AWS_ACCESS_KEY_ID");
}

static void test_half_pairs(void **state)
{
	expect_error("CFGKEY", NULL, -EINVAL, "access-key-id is set but secret-access-key is not");
	expect_error(NULL, "s", -EINVAL, "secret-access-key is set but access-key-id is not");
	setenv("LITESTREAM_ACCESS_KEY_ID", "LSKEY", 1);
	expect_error(NULL, NULL, -EINVAL,
		     "LITESTREAM_ACCESS_KEY_ID is set but LITESTREAM_SECRET_ACCESS_KEY is not");
	unsetenv("LITESTREAM_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
	expect_error(NULL, NULL, -EINVAL, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
}

static void test_nothing(void **state)
{
	expect_error(NULL, NULL, -ENOENT, "no S3 credentials found");
	expect_error(NULL, NULL, -ENOENT, ".aws/credentials");
	setenv("AWS_SHARED_CREDENTIALS_FILE", in_dir("missing"), 1);
	expect_error(NULL, NULL, -ENOENT, "a [default] profile in /tmp/test-s3-creds-");
	/* A file without the default profile: nothing found either. */
	write_file(in_dir("creds"), "[other]\naws_access_key_id = A\naws_secret_access_key = B\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", in_dir("creds"), 1);
	expect_error(NULL, NULL, -ENOENT, "no S3 credentials found");
}

static void test_file_profiles(void **state)
{
	write_file(in_dir("creds"),
		   "# comment\n"
		   "; another\n"
		   "[default]\n"
		   "aws_access_key_id=DEFKEY\n"
		   "aws_secret_access_key=defsecret\n"
		   "\n"
		   "[ prod ]\n"
		   "AWS_ACCESS_KEY_ID = PRODKEY   \n"
		   "aws_secret_access_key: prod/secret+with=chars\r\n"
		   "aws_session_token = FwoGZXIvYXdzE" "0123456789012345678901234567890123456789"
		   "0123456789012345678901234567890123456789012345678901234567890123456789"
		   "0123456789012345678901234567890123456789012345678901234567890123456789\n"
		   "s3 =\n"
		   "  aws_access_key_id = NESTED\n"
		   "[half]\n"
		   "aws_access_key_id = HALF\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", in_dir("creds"), 1);
	expect(NULL, NULL, "DEFKEY", "defsecret", NULL, "creds [default]");
	setenv("AWS_PROFILE", "prod", 1);
	expect(NULL, NULL, "PRODKEY", "prod/secret+with=chars",
	       "FwoGZXIvYXdzE" "0123456789012345678901234567890123456789"
	       "0123456789012345678901234567890123456789012345678901234567890123456789"
	       "0123456789012345678901234567890123456789012345678901234567890123456789",
	       "creds [prod]");
	setenv("AWS_PROFILE", "half", 1);
	expect_error(NULL, NULL, -EINVAL, "profile [half]");
	expect_error(NULL, NULL, -EINVAL, "has no aws_secret_access_key");
	setenv("AWS_PROFILE", "nope", 1);
	expect_error(NULL, NULL, -EINVAL, "profile [nope] not found in");
	/* A profile of the config file alone (credential_process, a role) is
	 * not a typo: the static sources have nothing, the chain goes on. */
	write_file(in_dir("config"), "[profile nope]\ncredential_process = /bin/true\n");
	setenv("AWS_CONFIG_FILE", in_dir("config"), 1);
	expect_error(NULL, NULL, -ENOENT, "no S3 credentials found");
	unsetenv("AWS_CONFIG_FILE");
	/* The environment still wins over the file. */
	setenv("AWS_ACCESS_KEY_ID", "AWSKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "awssecret", 1);
	expect(NULL, NULL, "AWSKEY", "awssecret", NULL, "AWS_ACCESS_KEY_ID");
}

static void test_home_file(void **state)
{
	write_file(in_dir(".aws/credentials"),
		   "[work]\naws_access_key_id = W\naws_secret_access_key = w\n");
	setenv("AWS_PROFILE", "work", 1);
	expect(NULL, NULL, "W", "w", NULL, ".aws/credentials [work]");
}

static void test_secrets_never_in_messages(void **state)
{
	struct s3_credentials c;
	char err[512] = "";

	write_file(in_dir("creds"), "[default]\naws_secret_access_key = TOPSECRET\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", in_dir("creds"), 1);
	assert_int_equal(s3_credentials_resolve(NULL, NULL, &c, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "TOPSECRET"));
	assert_int_equal(s3_credentials_resolve("ID", NULL, &c, err, sizeof(err)), -EINVAL);
	setenv("AWS_SECRET_ACCESS_KEY", "TOPSECRET", 1);
	assert_int_equal(s3_credentials_resolve(NULL, NULL, &c, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "TOPSECRET"));
	assert_int_equal(s3_credentials_resolve("ID", "TOPSECRET", &c, err, sizeof(err)), 0);
	assert_null(strstr(c.source, "TOPSECRET"));
	s3_credentials_free(&c);
}

static int group_setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	unlink(in_dir("creds"));
	unlink(in_dir(".aws/credentials"));
	rmdir(in_dir(".aws"));
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_order, setup),
		cmocka_unit_test_setup(test_half_pairs, setup),
		cmocka_unit_test_setup(test_nothing, setup),
		cmocka_unit_test_setup(test_file_profiles, setup),
		cmocka_unit_test_setup(test_home_file, setup),
		cmocka_unit_test_setup(test_secrets_never_in_messages, setup),
	};
	return cmocka_run_group_tests_name("s3_credentials", tests, group_setup, group_teardown);
}
