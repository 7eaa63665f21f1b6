/*
 * Signature V4 and the payload digests: known vectors and hand-checked
 * canonical forms here, AWS's published suite in sigv4_suite.c, and a few
 * hundred generated requests compared with botocore in sigv4_oracle.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "s3/sigv4.h"
#include "s3/sigv4_tests.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SIGV4_SUITE_DIR
#define SIGV4_SUITE_DIR "../shared/sigv4-test-suite"
#endif

/* The credentials and clock of the worked examples in AWS's S3 documentation. */
#define DOC_ACCESS_KEY "AKIAIOSFODNN7EXAMPLE"
#define DOC_SECRET_KEY "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_TIME 1369353600 /* 2013-05-24T00:00:00Z */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static struct sigv4_request doc_request(const char *method, const char *path)
{
	struct sigv4_request r = {
		.method = method,
		.host = "examplebucket.s3.amazonaws.com",
		.path = path,
		.region = "us-east-1",
		.service = "s3",
		.access_key_id = DOC_ACCESS_KEY,
		.secret_key = DOC_SECRET_KEY,
		.time = DOC_TIME,
	};
	return r;
}

static struct sigv4_signed *sign_ok(const struct sigv4_request *r)
{
	struct sigv4_signed *s = NULL;
	const char *why = NULL;
	int rc = sigv4_sign(r, &s, &why);

	if (rc != 0)
		fail_msg("sigv4_sign: %d (%s)", rc, why ? why : "?");
	assert_non_null(s);
	assert_null(why);
	return s;
}

static const char *added(const struct sigv4_signed *s, const char *name)
{
	for (size_t i = 0; i < s->n_added; i++)
		if (strcmp(s->added[i].name, name) == 0)
			return s->added[i].value;
	return NULL;
}

/* The line of a canonical request at index i (0-based), copied into buf. */
static const char *line_at(const char *text, int i, char *buf, size_t n)
{
	const char *end;

	while (i-- > 0) {
		text = strchr(text, '\n');
		assert_non_null(text);
		text++;
	}
	end = strchr(text, '\n');
	if (end == NULL)
		end = text + strlen(text);
	assert_true((size_t)(end - text) < n);
	memcpy(buf, text, (size_t)(end - text));
	buf[end - text] = '\0';
	return buf;
}

/* ---- encoders ---- */

static void check_encode(int (*fn)(const char *, char **), const char *in, const char *want)
{
	char *out = NULL;

	assert_int_equal(fn(in, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_encode_path(void **state)
{
	check_encode(sigv4_encode_path, "", "");
	check_encode(sigv4_encode_path, "/", "/");
	check_encode(sigv4_encode_path, "/bucket/db/generations/0123abcd/wal/00000001.wal.lz4",
		     "/bucket/db/generations/0123abcd/wal/00000001.wal.lz4");
	check_encode(sigv4_encode_path, "/my key/a+b=c", "/my%20key/a%2Bb%3Dc");
	check_encode(sigv4_encode_path, "~user/!*'()", "~user/%21%2A%27%28%29");
	check_encode(sigv4_encode_path, "a%20b", "a%2520b"); /* encoded once: '%' is data */
	check_encode(sigv4_encode_path, "/\xe1\x88\xb4", "/%E1%88%B4");
	check_encode(sigv4_encode_path, "/-._~AZaz09", "/-._~AZaz09");
	/* No normalisation: dot segments and empty segments are key bytes. */
	check_encode(sigv4_encode_path, "/a/./b/../c//d", "/a/./b/../c//d");
}

static void test_encode_component(void **state)
{
	check_encode(sigv4_encode_component, "", "");
	check_encode(sigv4_encode_component, "a/b", "a%2Fb");
	check_encode(sigv4_encode_component, "a b+c", "a%20b%2Bc");
	check_encode(sigv4_encode_component, "1/AbC+dEf==", "1%2FAbC%2BdEf%3D%3D");
	check_encode(sigv4_encode_component, "x~y.z_w-v", "x~y.z_w-v");
	check_encode(sigv4_encode_component, "\xc3\xa9", "%C3%A9");
}

/* Every byte: unreserved ones stay, the rest become %XX with uppercase hex. */
static void test_encode_every_byte(void **state)
{
	for (int c = 1; c < 256; c++) {
		char in[2] = { (char)c, '\0' }, want[4];
		char *path = NULL, *comp = NULL;
		int unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				 (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';

		if (unreserved)
			snprintf(want, sizeof(want), "%c", c);
		else
			snprintf(want, sizeof(want), "%%%02X", c);
		assert_int_equal(sigv4_encode_component(in, &comp), 0);
		assert_int_equal(sigv4_encode_path(in, &path), 0);
		assert_string_equal(comp, want);
		assert_string_equal(path, c == '/' ? "/" : want);
		free(path);
		free(comp);
	}
}

/* ---- digests ---- */

static void test_sha256_vectors(void **state)
{
	char hex[SIGV4_SHA256_HEX_LEN + 1];
	char *million = malloc(1000000);

	assert_int_equal(sigv4_sha256_hex("", 0, hex), 0);
	assert_string_equal(hex, EMPTY_SHA256);
	assert_int_equal(sigv4_sha256_hex(NULL, 0, hex), 0);
	assert_string_equal(hex, EMPTY_SHA256);
	assert_int_equal(sigv4_sha256_hex("abc", 3, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(sigv4_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
					  56, hex),
			 0);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_non_null(million);
	memset(million, 'a', 1000000);
	assert_int_equal(sigv4_sha256_hex(million, 1000000, hex), 0);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}

/* Feeding the bytes in pieces of any size gives the one-shot digest. */
static void test_sha256_incremental(void **state)
{
	unsigned char buf[3001];
	char whole[SIGV4_SHA256_HEX_LEN + 1], hex[SIGV4_SHA256_HEX_LEN + 1];
	struct sigv4_sha256 h;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 31 + 7);
	assert_int_equal(sigv4_sha256_hex(buf, sizeof(buf), whole), 0);
	for (size_t step = 1; step < 700; step += 37) {
		assert_int_equal(sigv4_sha256_init(&h), 0);
		for (size_t off = 0; off < sizeof(buf); off += step) {
			size_t n = sizeof(buf) - off < step ? sizeof(buf) - off : step;
			assert_int_equal(sigv4_sha256_update(&h, buf + off, n), 0);
		}
		assert_int_equal(sigv4_sha256_final(&h, hex), 0);
		assert_string_equal(hex, whole);
		assert_null(h.ctx);
		sigv4_sha256_close(&h); /* a no-op after final */
	}
	/* Abandoning a hash releases it (the sanitizer build checks the leak). */
	assert_int_equal(sigv4_sha256_init(&h), 0);
	assert_int_equal(sigv4_sha256_update(&h, "x", 1), 0);
	sigv4_sha256_close(&h);
	assert_int_equal(sigv4_sha256_update(&h, "x", 1), -EINVAL);
	assert_int_equal(sigv4_sha256_final(&h, hex), -EINVAL);
}

static void test_md5_vectors(void **state)
{
	char b64[SIGV4_MD5_BASE64_LEN + 1];
	const char *fox = "The quick brown fox jumps over the lazy dog";

	assert_int_equal(sigv4_md5_base64("", 0, b64), 0);
	assert_string_equal(b64, "1B2M2Y8AsgTpgAmY7PhCfg==");
	assert_int_equal(sigv4_md5_base64("abc", 3, b64), 0);
	assert_string_equal(b64, "kAFQmDzST7DWlj99KOF/cg==");
	assert_int_equal(sigv4_md5_base64(fox, strlen(fox), b64), 0);
	assert_string_equal(b64, "nhB9nTcrtoJr2B01QqQZ1g==");
}

static char *temp_file(const void *data, size_t n)
{
	static const char tmpl[] = "/tmp/litestream-sigv4-XXXXXX";
	char *path = strdup(tmpl);
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	return path;
}

static void test_file_digests(void **state)
{
	enum { N = 700 * 1024 + 13 }; /* several read chunks and a partial one */
	unsigned char *data = malloc(N);
	char sha[SIGV4_SHA256_HEX_LEN + 1], want_sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1], want_md5[SIGV4_MD5_BASE64_LEN + 1];
	char *path;
	int fd;

	assert_non_null(data);
	for (size_t i = 0; i < N; i++)
		data[i] = (unsigned char)((i * 2654435761u) >> 13);
	path = temp_file(data, N);

	/* Whole file, both ways of saying "to the end". */
	assert_int_equal(sigv4_sha256_hex(data, N, want_sha), 0);
	assert_int_equal(sigv4_md5_base64(data, N, want_md5), 0);
	assert_int_equal(sigv4_digest_file(path, 0, SIGV4_TO_EOF, sha, md5), 0);
	assert_string_equal(sha, want_sha);
	assert_string_equal(md5, want_md5);
	assert_int_equal(sigv4_sha256_file(path, 0, N, sha), 0);
	assert_string_equal(sha, want_sha);
	assert_int_equal(sigv4_md5_base64_file(path, 0, N, md5), 0);
	assert_string_equal(md5, want_md5);

	/* Ranges: a middle part, the tail, an empty one, one up to EOF. */
	{
		const struct {
			uint64_t off, len;
		} ranges[] = { { 1000, 300000 }, { 5, 1 }, { N - 10, 10 }, { 77, 0 }, { N, 0 } };
		for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
			assert_int_equal(sigv4_sha256_hex(data + ranges[i].off, ranges[i].len, want_sha), 0);
			assert_int_equal(sigv4_md5_base64(data + ranges[i].off, ranges[i].len, want_md5), 0);
			assert_int_equal(sigv4_digest_file(path, ranges[i].off, ranges[i].len, sha, md5), 0);
			assert_string_equal(sha, want_sha);
			assert_string_equal(md5, want_md5);
		}
	}
	assert_int_equal(sigv4_sha256_hex(data + 4096, N - 4096, want_sha), 0);
	assert_int_equal(sigv4_sha256_file(path, 4096, SIGV4_TO_EOF, sha), 0);
	assert_string_equal(sha, want_sha);
	assert_int_equal(sigv4_sha256_file(path, N + 100, SIGV4_TO_EOF, sha), 0);
	assert_string_equal(sha, EMPTY_SHA256);

	/* The fd form leaves the file position alone. */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 123, SEEK_SET), 123);
	assert_int_equal(sigv4_digest_fd(fd, 1000, 300000, sha, NULL), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 123);
	close(fd);

	/* Failures leave the outputs untouched. */
	memset(sha, 'x', sizeof(sha) - 1);
	sha[SIGV4_SHA256_HEX_LEN] = '\0';
	memset(md5, 'y', sizeof(md5) - 1);
	md5[SIGV4_MD5_BASE64_LEN] = '\0';
	assert_int_equal(sigv4_digest_file(path, N - 10, 11, sha, md5), -ENODATA);
	assert_int_equal(sigv4_digest_file(path, N + 1, 1, sha, md5), -ENODATA);
	assert_int_equal(sigv4_digest_file(path, (uint64_t)1 << 63, 1, sha, md5), -EINVAL);
	assert_int_equal(sigv4_digest_file(path, INT64_MAX, 2, sha, md5), -EINVAL);
	unlink(path);
	assert_int_equal(sigv4_digest_file(path, 0, SIGV4_TO_EOF, sha, md5), -ENOENT);
	assert_int_equal(sigv4_digest_fd(-1, 0, 1, sha, md5), -EBADF);
	assert_int_equal(strspn(sha, "x"), SIGV4_SHA256_HEX_LEN);
	assert_int_equal(strspn(md5, "y"), SIGV4_MD5_BASE64_LEN);
	free(path);
	free(data);
}

/* ---- signing key ---- */

/* AWS's documented example of deriving a signing key (IAM, 2012-02-15). */
static void test_signing_key(void **state)
{
	unsigned char key[SIGV4_SIGNING_KEY_LEN];
	char hex[2 * SIGV4_SIGNING_KEY_LEN + 1];

	assert_int_equal(sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
					   "us-east-1", "iam", key),
			 0);
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

/* ---- the worked examples of AWS's S3 documentation ---- */

static void test_doc_get_object(void **state)
{
	struct sigv4_header h[] = { { "Range", "bytes=0-9" } };
	struct sigv4_request r = doc_request("GET", "/test.txt");
	struct sigv4_signed *s;

	r.headers = h;
	r.n_headers = 1;
	s = sign_ok(&r);
	assert_string_equal(s->canonical_request,
			    "GET\n/test.txt\n\n"
			    "host:examplebucket.s3.amazonaws.com\n"
			    "range:bytes=0-9\n"
			    "x-amz-content-sha256:" EMPTY_SHA256 "\n"
			    "x-amz-date:20130524T000000Z\n"
			    "\n"
			    "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256);
	assert_string_equal(s->string_to_sign,
			    "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
			    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	assert_string_equal(s->signature,
			    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	assert_string_equal(s->authorization,
			    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
			    "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
			    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	assert_string_equal(s->target, "/test.txt");
	assert_int_equal(s->n_added, 3);
	assert_string_equal(s->added[0].name, "X-Amz-Date");
	assert_string_equal(s->added[0].value, "20130524T000000Z");
	assert_string_equal(s->added[1].name, "X-Amz-Content-SHA256");
	assert_string_equal(s->added[1].value, EMPTY_SHA256);
	assert_string_equal(s->added[2].name, "Authorization");
	assert_string_equal(s->added[2].value, s->authorization);
	sigv4_signed_free(s);
}

/* The '$' in the key is encoded; the body is hashed here; Date is signed as given. */
static void test_doc_put_object(void **state)
{
	const char *body = "Welcome to Amazon S3.";
	struct sigv4_header h[] = { { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
				    { "x-amz-storage-class", "REDUCED_REDUNDANCY" } };
	struct sigv4_request r = doc_request("PUT", "/test$file.text");
	struct sigv4_signed *s;

	r.headers = h;
	r.n_headers = 2;
	r.body = body;
	r.body_len = strlen(body);
	s = sign_ok(&r);
	assert_string_equal(s->target, "/test%24file.text");
	assert_string_equal(s->payload_hash,
			    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	assert_string_equal(s->signature,
			    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	sigv4_signed_free(s);
}

static void test_doc_get_lifecycle(void **state)
{
	struct sigv4_param q[] = { { "lifecycle", NULL } };
	struct sigv4_request r = doc_request("GET", "/");
	struct sigv4_signed *s;
	char line[128];

	r.params = q;
	r.n_params = 1;
	s = sign_ok(&r);
	assert_string_equal(line_at(s->canonical_request, 2, line, sizeof(line)), "lifecycle=");
	assert_string_equal(s->target, "/?lifecycle");
	assert_string_equal(s->signature,
			    "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	sigv4_signed_free(s);
}

static void test_doc_list_objects(void **state)
{
	struct sigv4_param q[] = { { "prefix", "J" }, { "max-keys", "2" } };
	struct sigv4_request r = doc_request("GET", "/");
	struct sigv4_signed *s;

	r.params = q;
	r.n_params = 2;
	s = sign_ok(&r);
	assert_string_equal(s->target, "/?max-keys=2&prefix=J");
	assert_string_equal(s->signature,
			    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	sigv4_signed_free(s);
}

/* ---- canonical forms ---- */

static void test_canonical_headers(void **state)
{
	struct sigv4_header h[] = {
		{ "X-Amz-Meta-Note", "  two   spaces\tand\t\ttabs  " },
		{ "content-type", "text/plain" },
		{ "X-AMZ-META-DUP", "first" },
		{ "x-amz-meta-empty", "   " },
		{ "x-amz-meta-dup", " second  value " },
		{ "Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==" },
	};
	struct sigv4_request r = doc_request("PUT", "/k");
	struct sigv4_signed *s;

	r.headers = h;
	r.n_headers = sizeof(h) / sizeof(h[0]);
	s = sign_ok(&r);
	assert_string_equal(s->canonical_request,
			    "PUT\n/k\n\n"
			    "content-md5:1B2M2Y8AsgTpgAmY7PhCfg==\n"
			    "content-type:text/plain\n"
			    "host:examplebucket.s3.amazonaws.com\n"
			    "x-amz-content-sha256:" EMPTY_SHA256 "\n"
			    "x-amz-date:20130524T000000Z\n"
			    "x-amz-meta-dup:first,second value\n"
			    "x-amz-meta-empty:\n"
			    "x-amz-meta-note:two spaces and tabs\n"
			    "\n"
			    "content-md5;content-type;host;x-amz-content-sha256;x-amz-date;"
			    "x-amz-meta-dup;x-amz-meta-empty;x-amz-meta-note\n" EMPTY_SHA256);
	assert_non_null(strstr(s->authorization,
			       ", SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;"
			       "x-amz-date;x-amz-meta-dup;x-amz-meta-empty;x-amz-meta-note, "));
	sigv4_signed_free(s);
}

static void test_canonical_query(void **state)
{
	struct sigv4_param q[] = {
		{ "prefix", "db/generations/" },
		{ "list-type", "2" },
		{ "continuation-token", "1/AbC+dEf==" },
		{ "delete", NULL },
		{ "uploads", "" },
		{ "a", "z" },
		{ "a", "b" },
		{ "key with space", "v~1" },
	};
	struct sigv4_request r = doc_request("GET", "/bucket");
	struct sigv4_signed *s;
	char line[512];

	r.params = q;
	r.n_params = sizeof(q) / sizeof(q[0]);
	s = sign_ok(&r);
	assert_string_equal(line_at(s->canonical_request, 2, line, sizeof(line)),
			    "a=b&a=z&continuation-token=1%2FAbC%2BdEf%3D%3D&delete=&"
			    "key%20with%20space=v~1&list-type=2&prefix=db%2Fgenerations%2F&uploads=");
	assert_string_equal(s->target,
			    "/bucket?a=b&a=z&continuation-token=1%2FAbC%2BdEf%3D%3D&delete&"
			    "key%20with%20space=v~1&list-type=2&prefix=db%2Fgenerations%2F&uploads=");
	sigv4_signed_free(s);
}

/* S3 paths are not normalised and are encoded exactly once. */
static void test_path_as_is(void **state)
{
	struct sigv4_request r = doc_request("GET", "/bucket/a/./b/../c//d e+f%");
	struct sigv4_signed *s, *t;
	char line[128];

	s = sign_ok(&r);
	assert_string_equal(line_at(s->canonical_request, 1, line, sizeof(line)),
			    "/bucket/a/./b/../c//d%20e%2Bf%25");
	assert_string_equal(s->target, "/bucket/a/./b/../c//d%20e%2Bf%25");
	/* The same path given already encoded signs the same. */
	r.path = "/bucket/a/./b/../c//d%20e%2Bf%25";
	r.flags = SIGV4_PATH_ENCODED;
	t = sign_ok(&r);
	assert_string_equal(t->canonical_request, s->canonical_request);
	assert_string_equal(t->signature, s->signature);
	sigv4_signed_free(s);
	sigv4_signed_free(t);
}

static void test_session_token(void **state)
{
	struct sigv4_request r = doc_request("GET", "/k");
	struct sigv4_signed *s;
	char line[256];

	r.session_token = "FQoGZXIvYXdzE/token+with=chars";
	s = sign_ok(&r);
	assert_string_equal(line_at(s->canonical_request, 6, line, sizeof(line)),
			    "x-amz-security-token:FQoGZXIvYXdzE/token+with=chars");
	assert_string_equal(line_at(s->canonical_request, 8, line, sizeof(line)),
			    "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
	assert_int_equal(s->n_added, 4);
	assert_string_equal(added(s, "X-Amz-Security-Token"), "FQoGZXIvYXdzE/token+with=chars");
	sigv4_signed_free(s);

	/* An empty token is no token. */
	r.session_token = "";
	s = sign_ok(&r);
	assert_null(added(s, "X-Amz-Security-Token"));
	assert_null(strstr(s->canonical_request, "x-amz-security-token"));
	sigv4_signed_free(s);
}

static void test_payload_hash_given(void **state)
{
	struct sigv4_request r = doc_request("PUT", "/k");
	struct sigv4_signed *s;
	char line[128];

	r.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
	r.body = "ignored when a hash is given";
	r.body_len = 5;
	s = sign_ok(&r);
	assert_string_equal(added(s, "X-Amz-Content-SHA256"), "UNSIGNED-PAYLOAD");
	assert_string_equal(line_at(s->canonical_request, 4, line, sizeof(line)),
			    "x-amz-content-sha256:UNSIGNED-PAYLOAD");
	assert_string_equal(line_at(s->canonical_request, 8, line, sizeof(line)), "UNSIGNED-PAYLOAD");
	sigv4_signed_free(s);

	r.payload_hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	s = sign_ok(&r);
	assert_string_equal(s->payload_hash, r.payload_hash);
	sigv4_signed_free(s);

	/* Without the header, for services other than S3. */
	r.flags = SIGV4_NO_CONTENT_SHA256;
	s = sign_ok(&r);
	assert_null(added(s, "X-Amz-Content-SHA256"));
	assert_null(strstr(s->canonical_request, "x-amz-content-sha256"));
	assert_int_equal(s->n_added, 2);
	sigv4_signed_free(s);
}

/* Each malformed request fails with -EINVAL, a reason, and *out untouched. */
static void test_invalid(void **state)
{
	struct sigv4_header bad_headers[][1] = {
		{ { "Host", "x" } },
		{ { "authorization", "x" } },
		{ { "X-Amz-Date", "x" } },
		{ { "x-amz-content-sha256", "x" } },
		{ { "X-Amz-Security-Token", "x" } },
		{ { "bad name", "x" } },
		{ { "", "x" } },
		{ { "x-ok", "line\r\nInjected: yes" } },
		{ { "x-ok", "nul\x01" } },
		{ { "x-ok", NULL } },
	};
	struct sigv4_param bad_param[] = { { NULL, "v" } };
	static struct sigv4_signed dummy;
	struct sigv4_signed *sentinel = &dummy, *s;
	struct sigv4_request r;
	const char *why;

#define EXPECT_INVALID(mutate)                                           \
	do {                                                             \
		r = doc_request("GET", "/k");                            \
		mutate;                                                  \
		s = sentinel;                                            \
		why = NULL;                                              \
		assert_int_equal(sigv4_sign(&r, &s, &why), -EINVAL);     \
		assert_ptr_equal(s, sentinel);                           \
		assert_non_null(why);                                    \
	} while (0)

	for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++)
		EXPECT_INVALID((r.headers = bad_headers[i], r.n_headers = 1));
	EXPECT_INVALID(r.method = NULL);
	EXPECT_INVALID(r.method = "G T");
	EXPECT_INVALID(r.host = NULL);
	EXPECT_INVALID(r.host = "");
	EXPECT_INVALID(r.host = "a b");
	EXPECT_INVALID(r.path = NULL);
	EXPECT_INVALID(r.path = "k");
	EXPECT_INVALID((r.path = "/a b", r.flags = SIGV4_PATH_ENCODED));
	EXPECT_INVALID((r.path = "/a?b", r.flags = SIGV4_PATH_ENCODED));
	EXPECT_INVALID(r.flags = 0x100);
	EXPECT_INVALID((r.params = bad_param, r.n_params = 1));
	EXPECT_INVALID(r.n_params = 1);
	EXPECT_INVALID(r.n_headers = 1);
	EXPECT_INVALID(r.payload_hash = "");
	EXPECT_INVALID(r.payload_hash = "has space");
	EXPECT_INVALID(r.payload_hash =
			       "0000000000000000000000000000000000000000000000000000000000000000a");
	EXPECT_INVALID(r.body_len = 3);
	EXPECT_INVALID(r.region = NULL);
	EXPECT_INVALID(r.region = "us/east");
	EXPECT_INVALID(r.service = "");
	EXPECT_INVALID(r.access_key_id = "AKIA EXAMPLE");
	EXPECT_INVALID(r.secret_key = NULL);
	EXPECT_INVALID(r.secret_key = "");
	EXPECT_INVALID(r.session_token = "a\nb");
	EXPECT_INVALID(r.time = (time_t)253402300800); /* 10000-01-01 */
	EXPECT_INVALID(r.time = (time_t)-62167219201); /* one second before year 0000 */
#undef EXPECT_INVALID

	/* why may be NULL. */
	r = doc_request("GET", "k");
	s = sentinel;
	assert_int_equal(sigv4_sign(&r, &s, NULL), -EINVAL);
	assert_ptr_equal(s, sentinel);
}

/* Nothing the signer returns holds the secret key, whole or in part. */
static void test_secret_not_exposed(void **state)
{
	struct sigv4_header h[] = { { "x-amz-meta-a", "b" } };
	struct sigv4_param q[] = { { "uploadId", "x" } };
	struct sigv4_request r = doc_request("PUT", "/k");
	struct sigv4_signed *s;
	const char *fields[7];

	r.headers = h;
	r.n_headers = 1;
	r.params = q;
	r.n_params = 1;
	r.session_token = "tok";
	s = sign_ok(&r);
	fields[0] = s->canonical_request;
	fields[1] = s->string_to_sign;
	fields[2] = s->signature;
	fields[3] = s->authorization;
	fields[4] = s->target;
	fields[5] = s->amz_date;
	fields[6] = s->payload_hash;
	for (size_t i = 0; i < 7; i++) {
		assert_null(strstr(fields[i], DOC_SECRET_KEY));
		assert_null(strstr(fields[i], "bPxRfiCY"));
	}
	for (size_t i = 0; i < s->n_added; i++)
		assert_null(strstr(s->added[i].value, "bPxRfiCY"));
	sigv4_signed_free(s);
}

/* ---- threads ---- */

struct thread_arg {
	const char *want;
	int mismatches;
};

static void *sign_many(void *p)
{
	struct thread_arg *a = p;
	struct sigv4_header h[] = { { "Range", "bytes=0-9" } };
	struct sigv4_request r = doc_request("GET", "/test.txt");

	r.headers = h;
	r.n_headers = 1;
	for (int i = 0; i < 300; i++) {
		struct sigv4_signed *s = NULL;

		if (sigv4_sign(&r, &s, NULL) != 0 || strcmp(s->signature, a->want) != 0)
			a->mismatches++;
		sigv4_signed_free(s);
	}
	return NULL;
}

/* No shared state: signing on several threads at once gives the same answer. */
static void test_threads(void **state)
{
	pthread_t t[4];
	struct thread_arg a[4];

	for (int i = 0; i < 4; i++) {
		a[i].want = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
		a[i].mismatches = 0;
		assert_int_equal(pthread_create(&t[i], NULL, sign_many, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].mismatches, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_path),
		cmocka_unit_test(test_encode_component),
		cmocka_unit_test(test_encode_every_byte),
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_incremental),
		cmocka_unit_test(test_md5_vectors),
		cmocka_unit_test(test_file_digests),
		cmocka_unit_test(test_signing_key),
		cmocka_unit_test(test_doc_get_object),
		cmocka_unit_test(test_doc_put_object),
		cmocka_unit_test(test_doc_get_lifecycle),
		cmocka_unit_test(test_doc_list_objects),
		cmocka_unit_test(test_canonical_headers),
		cmocka_unit_test(test_canonical_query),
		cmocka_unit_test(test_path_as_is),
		cmocka_unit_test(test_session_token),
		cmocka_unit_test(test_payload_hash_given),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_secret_not_exposed),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(sigv4_test_oracle),
	};
	struct CMUnitTest *suite = NULL;
	int n, failed;

	failed = cmocka_run_group_tests_name("sigv4", tests, NULL, NULL);
	n = sigv4_suite_tests(SIGV4_SUITE_DIR, &suite);
	if (n < 0) {
		fprintf(stderr, "sigv4: out of memory listing the test suite\n");
		return 1;
	}
	failed += _cmocka_run_group_tests("sigv4 aws suite", suite, (size_t)n, NULL, NULL);
	sigv4_suite_free(suite, n);
	return failed;
}
