/*
 * The signer against an independent one: botocore, driven by
 * test/tools/sigv4_oracle.py through a pair of pipes, one JSON request per
 * line and one JSON answer per line, in lock-step (so neither side can
 * fill a pipe while the other waits).
 *
 * The requests are generated from a fixed seed with a PRNG of our own, so
 * every run and every libc produces the same ones: object keys full of the
 * characters S3 clients get wrong (space, '+', '~', '=', '!', '*', '%',
 * UTF-8, dot segments, empty segments), the query parameters of the calls
 * the replica code makes (ListObjectsV2 with continuation tokens holding
 * '=' and '/', multipart uploadId/partNumber, ?delete, ?uploads, empty
 * values, repeated names), headers with untidy whitespace and repeated
 * names, empty and non-empty bodies, UNSIGNED-PAYLOAD, session tokens.
 *
 * The oracle gets the raw key and raw query values and does its own
 * encoding, so a wrong encoder here shows up as a mismatch instead of
 * being fed to both sides.
 *
 * Skips when /usr/bin/python3 is missing or cannot import botocore (Debian:
 * python3-botocore); fails when it can but the oracle misbehaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "s3/sigv4.h"
#include "s3/sigv4_tests.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SIGV4_ORACLE_SCRIPT
#define SIGV4_ORACLE_SCRIPT "test/tools/sigv4_oracle.py"
#endif
#define ORACLE_PYTHON "/usr/bin/python3"
#define ORACLE_REQUESTS 400
#define ORACLE_SEED 0x5167a4d2c0ffee01ull

extern char **environ;

/* ---- deterministic generation ---- */

static uint64_t rng_state;

/* splitmix64: tiny, and the same sequence everywhere. */
static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t pick(size_t n)
{
	return (size_t)(rng() % n);
}

static bool chance(unsigned percent)
{
	return pick(100) < percent;
}

#define PICK(array) (array)[pick(sizeof(array) / sizeof((array)[0]))]

/* Strings of one request live here; reset per request. */
struct arena {
	char buf[32768];
	size_t used;
};

static char *arena_add(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p;

	assert_true(a->used + n <= sizeof(a->buf));
	p = a->buf + a->used;
	memcpy(p, s, n);
	a->used += n;
	return p;
}

/* Appends to a string being built at the arena's end. */
struct builder {
	char buf[2048];
	size_t len;
};

static void b_add(struct builder *b, const char *s)
{
	size_t n = strlen(s);

	assert_true(b->len + n < sizeof(b->buf));
	memcpy(b->buf + b->len, s, n + 1);
	b->len += n;
}

static void b_reset(struct builder *b)
{
	b->len = 0;
	b->buf[0] = '\0';
}

static const char *const key_atoms[] = {
	"a", "Z", "0", "9", "-", "_", ".", "~", " ", "+", "=", "!", "*", "'", "(", ")",
	"&", "$", "@", ":", ",", ";", "?", "#", "%", "%20", "[", "]", "\"", "<", ">", "{",
	"}", "|", "\\", "^", "`", "  ", "\t",
	"\xc3\xa9",                 /* é */
	"\xe1\x88\xb4",             /* U+1234 */
	"\xe6\x97\xa5\xe6\x9c\xac", /* 日本 */
	"\xf0\x9f\x98\x80",         /* an emoji, four bytes */
	"..", "wal", "generations", "0123456789abcdef", "00000001.wal.lz4", "snapshots",
	"my file", "a+b", "x=y", "~tmp", "!bang", "*star",
};

static void gen_segment(struct builder *b)
{
	size_t n = 1 + pick(5);

	if (chance(8)) {
		b_add(b, chance(50) ? "." : "..");
		return;
	}
	for (size_t i = 0; i < n; i++)
		b_add(b, PICK(key_atoms));
}

/* A key of 1-5 segments; now and then an empty segment ("a//b"). */
static void gen_key(struct builder *b)
{
	size_t n = 1 + pick(5);

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			b_add(b, "/");
		if (!chance(5))
			gen_segment(b);
	}
	if (chance(10))
		b_add(b, "/");
}

static void gen_token(struct builder *b, const char *alphabet, size_t min, size_t max)
{
	size_t n = min + pick(max - min + 1), len = strlen(alphabet);
	char one[2] = { 0, 0 };

	for (size_t i = 0; i < n; i++) {
		one[0] = alphabet[pick(len)];
		b_add(b, one);
	}
}

#define B64_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

struct gen_request {
	struct arena arena;
	struct sigv4_request req;
	struct sigv4_param params[12];
	struct sigv4_header headers[12];
	unsigned char body[3000];
	bool unsigned_payload;
};

static void add_param(struct gen_request *g, const char *name, const char *value)
{
	assert_true(g->req.n_params < sizeof(g->params) / sizeof(g->params[0]));
	g->params[g->req.n_params].name = arena_add(&g->arena, name);
	g->params[g->req.n_params].value = value ? arena_add(&g->arena, value) : NULL;
	g->req.n_params++;
}

static void add_header(struct gen_request *g, const char *name, const char *value)
{
	char cased[64];
	size_t n = strlen(name);

	/* Header names arrive in any case; the signer lowercases them. */
	assert_true(n < sizeof(cased));
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];
		if (c >= 'a' && c <= 'z' && chance(30))
			c = (char)(c - 'a' + 'A');
		cased[i] = c;
	}
	assert_true(g->req.n_headers < sizeof(g->headers) / sizeof(g->headers[0]));
	g->headers[g->req.n_headers].name = arena_add(&g->arena, cased);
	g->headers[g->req.n_headers].value = arena_add(&g->arena, value);
	g->req.n_headers++;
}

static void gen_query(struct gen_request *g)
{
	struct builder b;
	char num[32];

	switch (pick(7)) {
	case 0: /* ListObjectsV2, as the replica lists generations */
		add_param(g, "list-type", "2");
		b_reset(&b);
		gen_key(&b);
		add_param(g, "prefix", b.buf);
		if (chance(50))
			add_param(g, "delimiter", "/");
		if (chance(60)) {
			b_reset(&b);
			b_add(&b, "1");
			gen_token(&b, B64_CHARS, 10, 80);
			b_add(&b, chance(50) ? "==" : "=");
			add_param(g, "continuation-token", b.buf);
		}
		if (chance(30)) {
			snprintf(num, sizeof(num), "%zu", 1 + pick(1000));
			add_param(g, "max-keys", num);
		}
		if (chance(20))
			add_param(g, "encoding-type", "url");
		if (chance(20)) {
			b_reset(&b);
			gen_key(&b);
			add_param(g, "start-after", b.buf);
		}
		break;
	case 1: /* UploadPart */
		b_reset(&b);
		gen_token(&b, B64_CHARS "._-~=", 20, 120);
		add_param(g, "uploadId", b.buf);
		snprintf(num, sizeof(num), "%zu", 1 + pick(10000));
		add_param(g, "partNumber", num);
		break;
	case 2: /* Complete/AbortMultipartUpload, ListParts */
		b_reset(&b);
		gen_token(&b, B64_CHARS "._-~=", 20, 120);
		add_param(g, "uploadId", b.buf);
		if (chance(30)) {
			snprintf(num, sizeof(num), "%zu", pick(5000));
			add_param(g, "part-number-marker", num);
		}
		break;
	case 3: /* DeleteObjects, CreateMultipartUpload: bare or empty values */
		add_param(g, chance(50) ? "delete" : "uploads", chance(50) ? NULL : "");
		break;
	case 4: { /* anything: odd names, empty values, repeated names */
		static const char *const names[] = { "a", "A", "b", "x-id", "versionId", "key with space",
						     "k=v", "p/q", "~", "e\xc3\xa9" };
		size_t n = 1 + pick(5);

		for (size_t i = 0; i < n; i++) {
			const char *name = PICK(names);

			b_reset(&b);
			if (chance(80))
				gen_segment(&b);
			add_param(g, name, chance(10) ? NULL : b.buf);
			if (chance(15))
				add_param(g, name, "");
		}
		break;
	}
	default:
		break;
	}
}

static void gen_headers(struct gen_request *g, const char *md5)
{
	static const char *const messy[] = {
		"plain", "  leading", "trailing  ", "  inner   runs  of   spaces ", "tab\tinside",
		"\t tabs \t and  spaces\t", "", "   ", "a,b,c", "quoted \"a   b\"", "UPPER lower",
	};
	char num[32];

	if (chance(30))
		add_header(g, "content-type",
			   chance(50) ? "application/octet-stream" : "text/plain; charset=utf-8");
	if (md5 && chance(50))
		add_header(g, "content-md5", md5);
	if (chance(30)) {
		snprintf(num, sizeof(num), "%zu", g->req.body_len);
		add_header(g, "content-length", num);
	}
	if (chance(15))
		add_header(g, "range", "bytes=0-99");
	if (chance(15))
		add_header(g, "if-none-match", "*");
	if (chance(20))
		add_header(g, "x-amz-storage-class", chance(50) ? "STANDARD" : "REDUCED_REDUNDANCY");
	if (chance(40))
		add_header(g, "x-amz-meta-note", PICK(messy));
	if (chance(20)) {
		add_header(g, "x-amz-meta-dup", PICK(messy));
		add_header(g, "x-amz-meta-dup", PICK(messy));
	}
	if (chance(10))
		add_header(g, "cache-control", "no-cache");
}

static const char *const methods[] = { "GET", "PUT", "HEAD", "DELETE", "POST" };
static const char *const hosts[] = {
	"examplebucket.s3.amazonaws.com",
	"s3.us-west-2.amazonaws.com",
	"127.0.0.1:7480",
	"litestream.s3.localhost:9000",
	"minio:9000",
};
static const char *const regions[] = { "us-east-1", "us-west-2", "eu-central-1", "auto" };

static void gen_request(struct gen_request *g)
{
	struct builder b;
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	bool virtual_host;

	memset(g, 0, sizeof(*g));
	g->req.method = PICK(methods);
	g->req.host = PICK(hosts);
	g->req.service = "s3";
	g->req.region = PICK(regions);
	g->req.params = g->params;
	g->req.headers = g->headers;

	/* Path style "/bucket/key" or virtual-host style "/key"; sometimes just the bucket. */
	virtual_host = strstr(g->req.host, "bucket") != NULL || strstr(g->req.host, "litestream.") != NULL;
	b_reset(&b);
	b_add(&b, virtual_host ? "/" : "/bucket/");
	if (!chance(10))
		gen_key(&b);
	g->req.path = arena_add(&g->arena, b.buf);
	gen_query(g);

	if (chance(55)) {
		g->req.body_len = 1 + pick(sizeof(g->body));
		for (size_t i = 0; i < g->req.body_len; i++)
			g->body[i] = (unsigned char)rng();
		g->req.body = g->body;
	}
	g->unsigned_payload = chance(10);
	if (g->unsigned_payload)
		g->req.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
	assert_int_equal(sigv4_md5_base64(g->body, g->req.body_len, md5), 0);
	gen_headers(g, md5);

	b_reset(&b);
	b_add(&b, "AKIA");
	gen_token(&b, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 16);
	g->req.access_key_id = arena_add(&g->arena, b.buf);
	b_reset(&b);
	gen_token(&b, B64_CHARS, 40, 40);
	g->req.secret_key = arena_add(&g->arena, b.buf);
	if (chance(30)) {
		b_reset(&b);
		gen_token(&b, B64_CHARS, 100, 400);
		b_add(&b, "=");
		g->req.session_token = arena_add(&g->arena, b.buf);
	}
	/* Any second from 2013 on, for about twenty years. */
	g->req.time = (time_t)(1369353600 + pick(20u * 366 * 86400));
}

/* ---- JSON both ways ---- */

static char *request_json(const struct gen_request *g, const char *amz_date)
{
	cJSON *o = cJSON_CreateObject(), *q = cJSON_CreateArray(), *h = cJSON_CreateArray();
	char *b64, *line;
	size_t cap = 4 * ((g->req.body_len + 2) / 3) + 1;

	assert_non_null(o);
	b64 = malloc(cap);
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, g->body, (int)g->req.body_len);
	cJSON_AddStringToObject(o, "method", g->req.method);
	cJSON_AddStringToObject(o, "host", g->req.host);
	cJSON_AddStringToObject(o, "path", g->req.path);
	for (size_t i = 0; i < g->req.n_params; i++) {
		cJSON *pair = cJSON_CreateArray();

		cJSON_AddItemToArray(pair, cJSON_CreateString(g->params[i].name));
		cJSON_AddItemToArray(pair, g->params[i].value ? cJSON_CreateString(g->params[i].value)
							      : cJSON_CreateNull());
		cJSON_AddItemToArray(q, pair);
	}
	cJSON_AddItemToObject(o, "query", q);
	for (size_t i = 0; i < g->req.n_headers; i++) {
		cJSON *pair = cJSON_CreateArray();

		cJSON_AddItemToArray(pair, cJSON_CreateString(g->headers[i].name));
		cJSON_AddItemToArray(pair, cJSON_CreateString(g->headers[i].value));
		cJSON_AddItemToArray(h, pair);
	}
	cJSON_AddItemToObject(o, "headers", h);
	cJSON_AddStringToObject(o, "body_b64", b64);
	cJSON_AddBoolToObject(o, "unsigned", g->unsigned_payload);
	cJSON_AddStringToObject(o, "region", g->req.region);
	cJSON_AddStringToObject(o, "service", g->req.service);
	cJSON_AddStringToObject(o, "access_key", g->req.access_key_id);
	cJSON_AddStringToObject(o, "secret_key", g->req.secret_key);
	if (g->req.session_token)
		cJSON_AddStringToObject(o, "token", g->req.session_token);
	else
		cJSON_AddNullToObject(o, "token");
	cJSON_AddStringToObject(o, "amz_date", amz_date);
	line = cJSON_PrintUnformatted(o);
	assert_non_null(line);
	cJSON_Delete(o);
	free(b64);
	return line;
}

static const char *reply_str(const cJSON *o, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

static const char *added_value(const struct sigv4_signed *s, const char *name)
{
	for (size_t i = 0; i < s->n_added; i++)
		if (strcmp(s->added[i].name, name) == 0)
			return s->added[i].value;
	return NULL;
}

/* The first difference between our result and the oracle's, or NULL. */
static const char *compare(const struct sigv4_signed *s, const cJSON *reply, const char **ours,
			   const char **theirs)
{
	const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(reply, "headers");
	const struct {
		const char *what, *ours, *theirs;
	} fields[] = {
		{ "canonical request", s->canonical_request, reply_str(reply, "creq") },
		{ "string to sign", s->string_to_sign, reply_str(reply, "sts") },
		{ "signature", s->signature, reply_str(reply, "signature") },
		{ "Authorization", s->authorization, reply_str(reply, "authorization") },
		{ "request-target", s->target, reply_str(reply, "target") },
		{ "X-Amz-Date", added_value(s, "X-Amz-Date"), reply_str(hdrs, "x-amz-date") },
		{ "X-Amz-Content-SHA256", added_value(s, "X-Amz-Content-SHA256"),
		  reply_str(hdrs, "x-amz-content-sha256") },
		{ "X-Amz-Security-Token", added_value(s, "X-Amz-Security-Token"),
		  reply_str(hdrs, "x-amz-security-token") },
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		bool same = fields[i].ours && fields[i].theirs ? strcmp(fields[i].ours, fields[i].theirs) == 0
							       : fields[i].ours == fields[i].theirs;
		if (!same) {
			*ours = fields[i].ours ? fields[i].ours : "(none)";
			*theirs = fields[i].theirs ? fields[i].theirs : "(none)";
			return fields[i].what;
		}
	}
	return NULL;
}

/* ---- the oracle process ---- */

struct oracle {
	pid_t pid;
	FILE *to;
	FILE *from;
};

static int oracle_start(struct oracle *o)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	char *argv[] = { (char *)ORACLE_PYTHON, (char *)SIGV4_ORACLE_SCRIPT, NULL };
	int rc;

	/* Close-on-exec, so the oracle holds only its own ends (dup2 clears the flag). */
	if (pipe(in) != 0 || pipe(out) != 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		fcntl(in[i], F_SETFD, FD_CLOEXEC);
		fcntl(out[i], F_SETFD, FD_CLOEXEC);
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	rc = posix_spawn(&o->pid, ORACLE_PYTHON, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		close(in[1]);
		close(out[0]);
		return -rc;
	}
	o->to = fdopen(in[1], "w");
	o->from = fdopen(out[0], "r");
	assert_non_null(o->to);
	assert_non_null(o->from);
	return 0;
}

static void oracle_stop(struct oracle *o)
{
	int status;

	fclose(o->to); /* EOF on its stdin ends it */
	fclose(o->from);
	while (waitpid(o->pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* One answer line as JSON, or NULL at EOF. */
static cJSON *oracle_read(struct oracle *o)
{
	char *line = NULL;
	size_t cap = 0;
	cJSON *j = NULL;

	if (getline(&line, &cap, o->from) > 0)
		j = cJSON_Parse(line);
	free(line);
	return j;
}

void sigv4_test_oracle(void **state)
{
	struct oracle o;
	struct gen_request *g;
	cJSON *hello;
	char failure[8192] = "";
	void (*old_pipe)(int);
	int matched = 0, with_body = 0, with_token = 0, unsigned_payload = 0, with_query = 0;

	if (access(ORACLE_PYTHON, X_OK) != 0) {
		print_message("skip: %s is not there; the oracle needs Debian's python3-botocore\n",
			      ORACLE_PYTHON);
		skip();
	}
	/* A dead oracle must fail the test, not kill it with SIGPIPE. */
	old_pipe = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(oracle_start(&o), 0);
	hello = oracle_read(&o);
	if (hello == NULL) {
		oracle_stop(&o);
		signal(SIGPIPE, old_pipe);
		fail_msg("the oracle %s said nothing (is the script there?)", SIGV4_ORACLE_SCRIPT);
	}
	if (reply_str(hello, "skip")) {
		print_message("skip: %s\n", reply_str(hello, "skip"));
		cJSON_Delete(hello);
		oracle_stop(&o);
		signal(SIGPIPE, old_pipe);
		skip();
	}
	print_message("oracle: botocore %s\n", reply_str(hello, "botocore") ? reply_str(hello, "botocore") : "?");
	cJSON_Delete(hello);

	g = malloc(sizeof(*g));
	assert_non_null(g);
	rng_state = ORACLE_SEED;
	for (int i = 0; i < ORACLE_REQUESTS && failure[0] == '\0'; i++) {
		struct sigv4_signed *s = NULL;
		const char *why = NULL, *what, *ours = NULL, *theirs = NULL;
		char *line;
		cJSON *reply;
		int rc;

		gen_request(g);
		rc = sigv4_sign(&g->req, &s, &why);
		if (rc != 0) {
			snprintf(failure, sizeof(failure), "request %d: sigv4_sign: %d (%s)", i, rc, why);
			break;
		}
		line = request_json(g, s->amz_date);
		if (fputs(line, o.to) < 0 || fputc('\n', o.to) < 0 || fflush(o.to) != 0) {
			snprintf(failure, sizeof(failure), "request %d: cannot write to the oracle", i);
		} else if ((reply = oracle_read(&o)) == NULL) {
			snprintf(failure, sizeof(failure), "request %d: the oracle stopped answering", i);
		} else {
			if (reply_str(reply, "error"))
				snprintf(failure, sizeof(failure), "request %d: oracle error: %s\n%s", i,
					 reply_str(reply, "error"), line);
			else if ((what = compare(s, reply, &ours, &theirs)) != NULL)
				snprintf(failure, sizeof(failure),
					 "request %d: %s differs from botocore's\n--- ours\n%s\n"
					 "--- botocore\n%s\n--- request\n%s",
					 i, what, ours, theirs, line);
			else
				matched++;
			with_body += g->req.body_len > 0;
			with_token += g->req.session_token != NULL;
			unsigned_payload += g->unsigned_payload;
			with_query += g->req.n_params > 0;
			cJSON_Delete(reply);
		}
		cJSON_free(line);
		sigv4_signed_free(s);
	}
	free(g);
	oracle_stop(&o);
	signal(SIGPIPE, old_pipe);
	if (failure[0] != '\0')
		fail_msg("%s", failure);
	assert_int_equal(matched, ORACLE_REQUESTS);
	print_message("oracle: %d generated requests signed identically by botocore "
		      "(%d with a body, %d UNSIGNED-PAYLOAD, %d with a session token, %d with a query)\n",
		      matched, with_body, unsigned_payload, with_token, with_query);
}
