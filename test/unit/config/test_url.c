#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* NULL-aware string equality, so "no region" is checked as exactly that. */
static void assert_str(const char *got, const char *want, const char *what)
{
	if (got == NULL && want == NULL)
		return;
	if (got == NULL || want == NULL || strcmp(got, want) != 0)
		fail_msg("%s: got %s%s%s, want %s%s%s", what, got ? "\"" : "", got ? got : "NULL",
			 got ? "\"" : "", want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
}

static struct replica_url parse_ok(const char *url)
{
	struct replica_url u;
	char err[512] = "";

	if (replica_url_parse(url, &u, err, sizeof(err)) != 0)
		fail_msg("%s: %s", url, err);
	return u;
}

/* Parsing fails with -EINVAL, leaves the output alone and says want. */
static void parse_bad(const char *url, const char *want)
{
	struct replica_url u, before;
	char err[512] = "";

	memset(&u, 0xa5, sizeof(u));
	before = u;
	if (replica_url_parse(url, &u, err, sizeof(err)) != -EINVAL)
		fail_msg("%s: accepted", url);
	assert_memory_equal(&u, &before, sizeof(u));
	if (strstr(err, want) == NULL)
		fail_msg("%s: error \"%s\" does not say \"%s\"", url, err, want);
}

struct s3_case {
	const char *url, *bucket, *path, *region, *endpoint;
	bool force_path_style;
};

static void check_s3(const struct s3_case *c)
{
	struct replica_url u = parse_ok(c->url);

	if (u.type != REPLICA_S3)
		fail_msg("%s: not s3", c->url);
	assert_str(u.bucket, c->bucket, c->url);
	assert_str(u.path, c->path, c->url);
	assert_str(u.region, c->region, c->url);
	assert_str(u.endpoint, c->endpoint, c->url);
	if (u.force_path_style != c->force_path_style)
		fail_msg("%s: force_path_style %d", c->url, u.force_path_style);
	replica_url_free(&u);
}

static void test_file(void **state)
{
	static const struct {
		const char *url, *path;
	} cases[] = {
		{"/var/backups/app", "/var/backups/app"},
		{"/var/backups/app/", "/var/backups/app"},
		{"/var//backups/./x/../app", "/var/backups/app"},
		{"/", "/"},
		{"file:///var/backups/app", "/var/backups/app"},
		{"file:///var/backups/app/", "/var/backups/app"},
		{"FILE:///x", "/x"},
		{"file://localhost/srv/x", "/srv/x"},
		{"file:///a%20b/c", "/a b/c"},
		{"file:///a/../../b", "/b"},
		/* A plain path is taken literally: no escapes, '?' is a character. */
		{"/a%20b?c", "/a%20b?c"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct replica_url u = parse_ok(cases[i].url);

		assert_int_equal(u.type, REPLICA_FILE);
		assert_str(u.path, cases[i].path, cases[i].url);
		assert_null(u.bucket);
		assert_null(u.endpoint);
		assert_false(u.force_path_style);
		replica_url_free(&u);
		assert_null(u.path);
	}
}

static void test_file_relative(void **state)
{
	char *cwd = getcwd(NULL, 0), want[4096];
	struct replica_url u;
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	snprintf(want, sizeof(want), "%s/backups/app", strcmp(cwd, "/") == 0 ? "" : cwd);
	u = parse_ok("backups/x/../app/");
	assert_str(u.path, want, "relative");
	replica_url_free(&u);
	u = parse_ok("./backups/app");
	assert_str(u.path, want, "./relative");
	replica_url_free(&u);

	setenv("HOME", "/home/tester", 1);
	u = parse_ok("~/backups");
	assert_str(u.path, "/home/tester/backups", "~/");
	replica_url_free(&u);
	u = parse_ok("~");
	assert_str(u.path, "/home/tester", "~");
	replica_url_free(&u);
	/* "~user" is not expanded: it is a relative name. */
	snprintf(want, sizeof(want), "%s/~user/x", strcmp(cwd, "/") == 0 ? "" : cwd);
	u = parse_ok("~user/x");
	assert_str(u.path, want, "~user");
	replica_url_free(&u);

	if (home != NULL)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	free(home);
	free(cwd);
}

static void test_s3_aws(void **state)
{
	static const struct s3_case cases[] = {
		{"s3://my-bucket", "my-bucket", "", NULL, NULL, false},
		{"s3://my-bucket/", "my-bucket", "", NULL, NULL, false},
		{"s3://my-bucket/db", "my-bucket", "db", NULL, NULL, false},
		{"s3://my-bucket//a//b/./c/", "my-bucket", "a/b/c", NULL, NULL, false},
		{"s3://my-bucket/../a/x/../b", "my-bucket", "a/b", NULL, NULL, false},
		{"s3://my-bucket/pre%20fix", "my-bucket", "pre fix", NULL, NULL, false},
		{"s3://my-bucket/p#fragment", "my-bucket", "p", NULL, NULL, false},
		{"s3://my.dotted.bucket/p", "my.dotted.bucket", "p", NULL, NULL, false},
		{"S3://my-bucket/p", "my-bucket", "p", NULL, NULL, false},
		{"s3://my-bucket.s3.amazonaws.com/p", "my-bucket", "p", NULL, NULL, false},
		{"s3://my.bucket.s3.amazonaws.com/p", "my.bucket", "p", NULL, NULL, false},
		{"s3://my-bucket.s3.us-west-2.amazonaws.com/p", "my-bucket", "p", "us-west-2", NULL,
		 false},
		{"s3://my-bucket.s3-eu-west-1.amazonaws.com/p", "my-bucket", "p", "eu-west-1", NULL,
		 false},
		{"s3://my-bucket.S3.US-WEST-2.AmazonAWS.com", "my-bucket", "", "US-WEST-2", NULL, false},
		/* The service host alone: the bucket is the path's first segment. */
		{"s3://s3.amazonaws.com/my-bucket/a/b", "my-bucket", "a/b", NULL, NULL, false},
		{"s3://s3.us-east-2.amazonaws.com/my-bucket", "my-bucket", "", "us-east-2", NULL, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_s3(&cases[i]);
}

static void test_s3_providers(void **state)
{
	static const struct s3_case cases[] = {
		{"s3://b.nyc3.digitaloceanspaces.com/p", "b", "p", "nyc3",
		 "https://nyc3.digitaloceanspaces.com", true},
		{"s3://my.b.nyc3.digitaloceanspaces.com", "my.b", "", "nyc3",
		 "https://nyc3.digitaloceanspaces.com", true},
		{"s3://nyc3.digitaloceanspaces.com/b/p", "b", "p", "nyc3",
		 "https://nyc3.digitaloceanspaces.com", true},
		{"s3://b.us-east-1.linodeobjects.com/p", "b", "p", "us-east-1",
		 "https://us-east-1.linodeobjects.com", true},
		{"s3://b.s3.us-west-002.backblazeb2.com/p", "b", "p", "us-west-002",
		 "https://s3.us-west-002.backblazeb2.com", true},
		{"s3://b.s3.fr-par.scw.cloud/p", "b", "p", "fr-par", "https://s3.fr-par.scw.cloud", true},
		{"s3://b.s3.filebase.com/p", "b", "p", NULL, "https://s3.filebase.com", true},
		{"s3://b.storage.googleapis.com/p", "b", "p", NULL, "https://storage.googleapis.com", true},
		{"s3://storage.googleapis.com/b/p/q", "b", "p/q", NULL, "https://storage.googleapis.com",
		 true},
		/* A port on a provider host stays on its endpoint. */
		{"s3://b.nyc3.digitaloceanspaces.com:8443/p", "b", "p", "nyc3",
		 "https://nyc3.digitaloceanspaces.com:8443", true},
		{"s3://b.localhost/p", "b", "p", NULL, "http://localhost", true},
		{"s3://b.localhost:9000/p", "b", "p", NULL, "http://localhost:9000", true},
		{"s3://localhost:9000/b/p", "b", "p", NULL, "http://localhost:9000", true},
		{"s3://localhost/b", "b", "", NULL, "http://localhost", true},
		/* Any other host with a port: a server of its own, bucket in the path. */
		{"s3://127.0.0.1:7480/b/x/y", "b", "x/y", NULL, "http://127.0.0.1:7480", true},
		{"s3://minio:9000/backups/app", "backups", "app", NULL, "http://minio:9000", true},
		{"s3://[::1]:9000/b", "b", "", NULL, "http://[::1]:9000", true},
		/* Not a provider form: a bucket whose name merely looks like one. */
		{"s3://b.example.com/p", "b.example.com", "p", NULL, NULL, false},
		{"s3://digitaloceanspaces.com/p", "digitaloceanspaces.com", "p", NULL, NULL, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_s3(&cases[i]);
}

static void test_s3_query(void **state)
{
	static const struct s3_case cases[] = {
		{"s3://b/p?endpoint=minio.local:9000", "b", "p", NULL, "https://minio.local:9000", true},
		{"s3://b/p?endpoint=http://127.0.0.1:7480/", "b", "p", NULL, "http://127.0.0.1:7480",
		 true},
		{"s3://b/p?endpoint=http%3A%2F%2Fh%3A1", "b", "p", NULL, "http://h:1", true},
		{"s3://b?endpoint=https://h&force-path-style=false", "b", "", NULL, "https://h", false},
		{"s3://b?force-path-style=true", "b", "", NULL, NULL, true},
		{"s3://b?forcePathStyle=yes", "b", "", NULL, NULL, true},
		{"s3://b?region=eu-central-1", "b", "", "eu-central-1", NULL, false},
		/* The query wins over what the host says. */
		{"s3://b.nyc3.digitaloceanspaces.com/p?region=x&endpoint=http://e:1", "b", "p", "x",
		 "http://e:1", true},
		{"s3://localhost:9000/b/p?endpoint=http://other:1", "b", "p", NULL, "http://other:1",
		 true},
		{"s3://b/p?&region=r&", "b", "p", "r", NULL, false},
		{"s3://b/p?region=a+b%21", "b", "p", "a b!", NULL, false},
	};
	struct replica_url u;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_s3(&cases[i]);

	u = parse_ok("s3://b?skip-verify=true&force-path-style=off");
	assert_true(u.skip_verify);
	assert_false(u.force_path_style);
	assert_true(u.force_path_style_set);
	replica_url_free(&u);
	u = parse_ok("s3://b?skipVerify=1");
	assert_true(u.skip_verify);
	assert_false(u.force_path_style_set);
	replica_url_free(&u);
	u = parse_ok("s3://b?skip-verify=FALSE");
	assert_false(u.skip_verify);
	replica_url_free(&u);
}

/* gcs:// is S3 on storage.googleapis.com, region "auto"; the query may say otherwise. */
static void test_gcs(void **state)
{
	static const struct s3_case cases[] = {
		{"gcs://b/p/q", "b", "p/q", "auto", "https://storage.googleapis.com", true},
		{"gcs://my.bucket.example.com", "my.bucket.example.com", "", "auto",
		 "https://storage.googleapis.com", true},
		{"gcs://b/p?endpoint=http://127.0.0.1:7480&region=us", "b", "p", "us",
		 "http://127.0.0.1:7480", true},
	};
	struct replica_url u;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_s3(&cases[i]);
	u = parse_ok("GCS://b/p");
	assert_true(u.gcs);
	replica_url_free(&u);
	u = parse_ok("s3://b.storage.googleapis.com/p");
	assert_false(u.gcs);
	replica_url_free(&u);
}

static void test_errors(void **state)
{
	static const struct {
		const char *url, *want;
	} cases[] = {
		{"", "empty replica URL"},
		{"gs://b/p", "replica URL \"gs://b/p\": unsupported scheme \"gs\" (want file, s3, gcs, abs or sftp)"},
		{"gcs:///p", "want gcs://BUCKET/PATH"},
		{"gcs://b:443/p", "want gcs://BUCKET/PATH (a bucket, no port or user)"},
		{"gcs://u@b/p", "want gcs://BUCKET/PATH"},
		{"gcs://b/p?endpont=x", "endpont"},
		{"ftp://h/p", "unsupported scheme \"ftp\""},
		{"s3://", "replica URL \"s3://\": no bucket (want s3://BUCKET/PREFIX)"},
		{"s3:///p", "no bucket"},
		{"s3://?region=x", "no bucket"},
		{"s3://localhost:9000", "no bucket (want s3://HOST/BUCKET/PREFIX)"},
		{"s3://localhost:9000/", "no bucket (want s3://HOST/BUCKET/PREFIX)"},
		{"s3://storage.googleapis.com/", "no bucket"},
		{"s3://b.s3.amazonaws.com:443/p", "a port on an AWS host is not supported"},
		{"s3://b:abc/p", "replica URL \"s3://b:abc/p\": invalid port"},
		{"s3://b:/p", "invalid port"},
		{"s3://b:0/p", "invalid port"},
		{"s3://b:65536/p", "invalid port"},
		{"s3://b:1:2/p", "invalid port"},
		{"s3://[::1/p", "invalid host"},
		{"s3://[::1]/b", "invalid bucket name \"[::1]\""},
		{"s3://b%20c/p", "invalid bucket name"},
		{"s3://b/%zz", "invalid escape in the path"},
		{"s3://b/%2", "invalid escape in the path"},
		{"s3://b/a%00b", "invalid escape in the path"},
		{"s3://b/p?endpoint=%zz", "invalid escape in the query"},
		{"s3://b/p?foo=1",
		 "replica URL \"s3://b/p?foo=1\": unknown query parameter \"foo\" (want endpoint, "
		 "region, force-path-style, skip-verify, sse, sse-kms-key-id, sse-customer-key or "
		 "storage-class)"},
		{"s3://b/p?sse=none", "replica URL \"s3://b/p?sse=none\": sse: \"none\": want AES256 or aws:kms"},
		{"s3://b/p?storage-class=DEEP_ARCHIVE", "storage-class: DEEP_ARCHIVE objects cannot be read back"},
		{"s3://b/p?sse-customer-key=c2VjcmV0#frag", "replica URL \"s3://b/p?sse-customer-key=REDACTED#frag\": sse-customer-key: the key is 6 bytes long"},
		{"s3://b/p?sse-customer-keyz=c2VjcmV0", "\"s3://b/p?sse-customer-keyz=REDACTED\": unknown query parameter"},
		{"s3://b/p?region=", "query parameter \"region\" has no value"},
		{"s3://b/p?region", "query parameter \"region\" has no value"},
		{"s3://b/p?region=a&region=b", "query parameter \"region\" given twice"},
		{"s3://b/p?forcePathStyle=1&force-path-style=1", "given twice"},
		{"s3://b/p?skip-verify=maybe", "skip-verify: invalid boolean \"maybe\""},
		{"s3://b/p?force-path-style=2", "force-path-style: invalid boolean \"2\""},
		{"s3://b/p?endpoint=ftp://h", "invalid endpoint \"ftp://h\": the scheme must be http or https"},
		{"s3://b/p?endpoint=https://", "invalid endpoint \"https://\": no host"},
		{"file://relative/x", "a file URL needs an absolute path (file:///PATH)"},
		{"file://", "a file URL needs an absolute path"},
		{"file:///x?y", "a file URL takes no query or fragment"},
		{"file:///x#y", "a file URL takes no query or fragment"},
		{"file:///x%zz", "invalid escape in the path"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_bad(cases[i].url, cases[i].want);
}

/* abs://ACCOUNT@CONTAINER/PATH, as Litestream 0.3.13 reads it. */
static void test_abs(void **state)
{
	struct replica_url u;
	char err[512];

	(void)state;
	u = parse_ok("abs://devstoreaccount1@backups/a//b/../app/");
	assert_int_equal(u.type, REPLICA_ABS);
	assert_str(u.account_name, "devstoreaccount1", "account");
	assert_str(u.bucket, "backups", "container");
	assert_str(u.path, "a/app", "path");
	assert_str(u.endpoint, NULL, "endpoint");
	replica_url_free(&u);
	u = parse_ok("ABS://my-container");
	assert_int_equal(u.type, REPLICA_ABS);
	assert_str(u.account_name, NULL, "account");
	assert_str(u.bucket, "my-container", "container");
	assert_str(u.path, "", "path");
	replica_url_free(&u);

	parse_bad("abs://acct@Backups/p", "invalid container name \"Backups\"");
	parse_bad("abs://acct@b/p", "invalid container name \"b\"");
	parse_bad("abs://acct@-bad/p", "invalid container name");
	parse_bad("abs://Acct@backups/p", "invalid account name \"Acct\"");
	parse_bad("abs://acct@backups:10000/p", "takes no port");
	parse_bad("abs://acct@backups/p?endpoint=x", "abs:// takes no query");
	parse_bad("abs://acct@backups/%zz", "invalid escape in the path");
	/* A key in the URL is refused without being echoed. */
	assert_int_equal(replica_url_parse("abs://acct:s3cr3tkey@backups/p", &u, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "takes no password"));
	assert_null(strstr(err, "s3cr3tkey"));
	assert_true(replica_url_container_valid("abc-123"));
	assert_false(replica_url_container_valid("ab"));
}

/* sftp://USER[:PASSWORD]@HOST[:PORT]/PATH, as Litestream 0.3.13 reads it. */
static void test_sftp(void **state)
{
	struct replica_url u;
	char err[512], *host = NULL, *red;
	int port = 0;

	(void)state;
	u = parse_ok("sftp://backup:s%40cr%3At@nas.local:2222/srv//backups/../app/");
	assert_int_equal(u.type, REPLICA_SFTP);
	assert_str(u.user, "backup", "user");
	assert_str(u.password, "s@cr:t", "password");
	assert_str(u.host, "nas.local:2222", "host");
	assert_str(u.path, "/srv/app", "path");
	replica_url_free(&u);
	/* An unescaped '@' in the password: the last '@' ends the user information. */
	u = parse_ok("SFTP://me:a@b@[::1]/x");
	assert_str(u.user, "me", "user");
	assert_str(u.password, "a@b", "password");
	assert_str(u.host, "[::1]", "host");
	assert_str(u.path, "/x", "path");
	replica_url_free(&u);
	u = parse_ok("sftp://me@h");
	assert_str(u.password, NULL, "no password");
	assert_str(u.path, "", "the login directory");
	replica_url_free(&u);
	u = parse_ok("sftp://h/p");
	assert_str(u.user, NULL, "no user");
	replica_url_free(&u);

	parse_bad("sftp://u@h:0/p", "invalid port in \"h:0\"");
	parse_bad("sftp://u@h:99999/p", "invalid port");
	parse_bad("sftp://u@/p", "no host");
	parse_bad("sftp://@h/p", "an empty user before '@'");
	parse_bad("sftp://u%zz@h/p", "invalid escape in the user");
	parse_bad("sftp://u@h/p?key-path=/k", "sftp:// takes no query");
	parse_bad("sftp://u@h/%zz", "invalid escape in the path");
	/* A password never shows in a message. */
	assert_int_equal(replica_url_parse("sftp://u:s3cr3t@h:0/p", &u, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "s3cr3t"));
	assert_non_null(strstr(err, "sftp://u:REDACTED@h:0/p"));
	assert_int_equal(replica_url_parse("sftp://u:s3cr3t%zz@h/p", &u, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "s3cr3t"));
	assert_non_null(strstr(err, "invalid escape in the password"));
	red = replica_url_redacted("sftp://u:a@b@h/p?x=1");
	assert_string_equal(red, "sftp://u:REDACTED@h/p?x=1");
	free(red);
	red = replica_url_redacted("sftp://u@h/p:x@y");
	assert_string_equal(red, "sftp://u@h/p:x@y");
	free(red);

	assert_int_equal(replica_url_sftp_host("h", &host, &port, err, sizeof(err)), 0);
	assert_string_equal(host, "h");
	assert_int_equal(port, 22);
	free(host);
	assert_int_equal(replica_url_sftp_host("[::1]:2022", &host, &port, err, sizeof(err)), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 2022);
	free(host);
	assert_int_equal(replica_url_sftp_host("::1", NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(replica_url_sftp_host("h:", NULL, NULL, err, sizeof(err)), -EINVAL);
}

/* Credentials in a URL are refused without being echoed. */
static void test_userinfo(void **state)
{
	struct replica_url u;
	char err[512];

	assert_int_equal(replica_url_parse("s3://AKIA:s3cr3t@b/p", &u, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "s3cr3t"));
	assert_null(strstr(err, "AKIA"));
	assert_non_null(strstr(err, "user information"));
	/* An '@' in the path is only a character. */
	u = parse_ok("s3://b/a@b");
	assert_str(u.path, "a@b", "@ in path");
	replica_url_free(&u);
}

static void test_is_url(void **state)
{
	assert_true(replica_url_is_url("s3://b"));
	assert_true(replica_url_is_url("file:///x"));
	assert_true(replica_url_is_url("gs://b"));
	assert_true(replica_url_is_url("a_1://"));
	assert_false(replica_url_is_url("/var/x"));
	assert_false(replica_url_is_url("s3:b"));
	assert_false(replica_url_is_url("://x"));
	assert_false(replica_url_is_url("s-3://x"));
	assert_false(replica_url_is_url(""));
}

static void test_abs_path(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"/", "/"},
		{"//", "/"},
		{"/a/b/", "/a/b"},
		{"/a/./b/../c", "/a/c"},
		{"/../a", "/a"},
		{"/a/..", "/"},
		{"/a/...", "/a/..."},
		{"/a/.b", "/a/.b"},
	};
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	char *out = (char *)"untouched";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = NULL;

		assert_int_equal(replica_url_abs_path(cases[i].in, &p), 0);
		assert_str(p, cases[i].out, cases[i].in);
		free(p);
	}
	assert_int_equal(replica_url_abs_path("", &out), -EINVAL);
	assert_string_equal(out, "untouched");

	/* Without a usable $HOME the password database answers. */
	setenv("HOME", "", 1);
	assert_int_equal(replica_url_abs_path("~/x", &out), 0);
	assert_true(out[0] == '/');
	assert_non_null(strstr(out, "/x"));
	free(out);
	setenv("HOME", "relative/home", 1);
	assert_int_equal(replica_url_abs_path("~/x", &out), 0);
	assert_true(out[0] == '/');
	assert_null(strstr(out, "relative"));
	free(out);
	setenv("HOME", "/h/", 1);
	assert_int_equal(replica_url_abs_path("~/../y", &out), 0);
	assert_string_equal(out, "/y");
	free(out);

	if (home != NULL)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	free(home);
}

static void test_endpoint(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"minio:9000", "https://minio:9000"},
		{"http://127.0.0.1:7480", "http://127.0.0.1:7480"},
		{"http://127.0.0.1:7480//", "http://127.0.0.1:7480"},
		{"HTTPS://Example.com", "HTTPS://Example.com"},
		{"https://h/base", "https://h/base"},
	};
	static const char *const bad[] = {"ftp://h", "https://", "http:///x", "", "/x", "h x",
					  "s3://b"};
	char err[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *e = NULL;

		assert_int_equal(replica_url_endpoint(ok[i].in, &e, err, sizeof(err)), 0);
		assert_str(e, ok[i].out, ok[i].in);
		free(e);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = (char *)"untouched";

		err[0] = '\0';
		if (replica_url_endpoint(bad[i], &e, err, sizeof(err)) != -EINVAL)
			fail_msg("endpoint \"%s\" accepted", bad[i]);
		assert_string_equal(e, "untouched");
		assert_non_null(strstr(err, "invalid endpoint"));
	}
}

static void test_prefix_and_bucket(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"", ""}, {"/", ""}, {"a", "a"}, {"/a/b/", "a/b"}, {"a//b/./c", "a/b/c"},
		{"../a", "a"}, {"a/../..", ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = NULL;

		assert_int_equal(replica_url_s3_prefix(cases[i].in, &p), 0);
		assert_str(p, cases[i].out, cases[i].in);
		free(p);
	}
	assert_true(replica_url_bucket_valid("my-bucket.v2_old"));
	assert_false(replica_url_bucket_valid(""));
	assert_false(replica_url_bucket_valid("a b"));
	assert_false(replica_url_bucket_valid("a/b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_file_relative),
		cmocka_unit_test(test_s3_aws),
		cmocka_unit_test(test_s3_providers),
		cmocka_unit_test(test_s3_query),
		cmocka_unit_test(test_gcs),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_abs),
		cmocka_unit_test(test_sftp),
		cmocka_unit_test(test_userinfo),
		cmocka_unit_test(test_is_url),
		cmocka_unit_test(test_abs_path),
		cmocka_unit_test(test_endpoint),
		cmocka_unit_test(test_prefix_and_bucket),
	};
	return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
