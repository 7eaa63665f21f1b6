/*
 * AWS's published Signature V4 test suite (aws-c-auth's copy), read from a
 * directory outside the repository and never copied into it: a clone
 * without it skips.
 *
 * Each case directory holds context.json (credentials, region, service,
 * time, and whether the path is normalised and the body signed),
 * request.txt (the raw HTTP request) and the expected results of the two
 * signing forms; the header form (header-canonical-request.txt,
 * header-string-to-sign.txt, header-signature.txt, and the Authorization
 * line of header-signed-request.txt) is what S3 uses and what is compared
 * here, byte for byte.
 *
 * The suite is for a generic service, so two of its rules are not S3's:
 * cases whose path would change under normalisation apply to other
 * services only (S3 signs paths as they are), and so does the case that
 * adds the session token after signing. Those are skipped with the reason.
 * Body signing off (most cases) maps to SIGV4_NO_CONTENT_SHA256.
 *
 * request.txt paths are raw (a space, UTF-8) and are given to the signer
 * raw; query strings may be percent-encoded, so their names and values are
 * decoded first and the signer encodes them again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/pct.h"
#include "s3/sigv4.h"
#include "s3/sigv4_tests.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

struct suite_case {
	char *dir;  /* the case directory */
	char *name; /* "suite/<case>", the test's name */
};

/* A whole file, NUL-terminated; NULL when it cannot be read. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf = NULL;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf != NULL) {
			buf[n] = '\0';
			if (len)
				*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static char *must_slurp(const char *dir, const char *name)
{
	char *s = slurp(dir, name, NULL);

	if (s == NULL)
		fail_msg("%s/%s: cannot read", dir, name);
	return s;
}

/* Percent-decodes s[0..n) into a new string; a bad escape stays as written. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);

	assert_non_null(out);
	(void)pct_decode(s, n, PCT_LENIENT, out);
	return out;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	assert_non_null(d);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* Would RFC 3986 dot-segment removal or slash merging change this path? */
static bool needs_normalising(const char *path)
{
	const char *seg = path;

	if (strstr(path, "//") != NULL)
		return true;
	while (*seg) {
		const char *end;
		size_t n;

		if (*seg == '/')
			seg++;
		end = strchr(seg, '/');
		n = end ? (size_t)(end - seg) : strlen(seg);
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return true;
		seg += n;
	}
	return false;
}

struct parsed {
	char *method, *path, *host;
	struct sigv4_param *params;
	size_t n_params;
	struct sigv4_header *headers;
	size_t n_headers;
	char *body;
	size_t body_len;
};

static void parsed_free(struct parsed *p)
{
	free(p->method);
	free(p->path);
	free(p->host);
	for (size_t i = 0; i < p->n_params; i++) {
		free((char *)p->params[i].name);
		free((char *)p->params[i].value);
	}
	free(p->params);
	for (size_t i = 0; i < p->n_headers; i++) {
		free((char *)p->headers[i].name);
		free((char *)p->headers[i].value);
	}
	free(p->headers);
	free(p->body);
}

static void parse_query(struct parsed *p, const char *q, size_t n)
{
	const char *end = q + n;

	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(stop - q));
		struct sigv4_param *grown;

		grown = realloc(p->params, (p->n_params + 1) * sizeof(*grown));
		assert_non_null(grown);
		p->params = grown;
		p->params[p->n_params].name = decode(q, (size_t)((eq ? eq : stop) - q));
		p->params[p->n_params].value = eq ? decode(eq + 1, (size_t)(stop - eq - 1)) : NULL;
		p->n_params++;
		q = amp ? amp + 1 : end;
	}
}

static void add_header(struct parsed *p, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	const char *v;
	struct sigv4_header *grown;

	assert_non_null(colon);
	v = colon + 1;
	if ((size_t)(colon - line) == 4 && strncasecmp(line, "host", 4) == 0) {
		while (*v == ' ' || *v == '\t')
			v++;
		p->host = dup_n(v, (size_t)(line + n - v));
		return;
	}
	grown = realloc(p->headers, (p->n_headers + 1) * sizeof(*grown));
	assert_non_null(grown);
	p->headers = grown;
	p->headers[p->n_headers].name = dup_n(line, (size_t)(colon - line));
	p->headers[p->n_headers].value = dup_n(v, (size_t)(line + n - v));
	p->n_headers++;
}

/* An obsolete line folding: the continuation joins the value after one space. */
static void continue_header(struct parsed *p, const char *line, size_t n)
{
	const char *old;
	size_t len;
	char *joined;

	assert_true(p->n_headers > 0);
	old = p->headers[p->n_headers - 1].value;
	len = strlen(old);
	joined = malloc(len + 1 + n + 1);
	assert_non_null(joined);
	memcpy(joined, old, len);
	joined[len] = ' ';
	memcpy(joined + len + 1, line, n);
	joined[len + 1 + n] = '\0';
	free((char *)old);
	p->headers[p->n_headers - 1].value = joined;
}

static void parse_request(const char *text, size_t text_len, struct parsed *p)
{
	const char *end = text + text_len, *line = text, *nl, *sp1, *sp2, *qm;
	size_t n;

	memset(p, 0, sizeof(*p));
	nl = memchr(line, '\n', (size_t)(end - line));
	assert_non_null(nl);
	n = (size_t)(nl - line);
	if (n > 0 && line[n - 1] == '\r')
		n--;
	/* METHOD SP target SP HTTP/1.1, where the target may hold spaces. */
	sp1 = memchr(line, ' ', n);
	assert_non_null(sp1);
	sp2 = line + n;
	while (sp2 > sp1 && *--sp2 != ' ')
		;
	assert_true(sp2 > sp1);
	p->method = dup_n(line, (size_t)(sp1 - line));
	qm = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
	p->path = dup_n(sp1 + 1, (size_t)((qm ? qm : sp2) - sp1 - 1));
	if (qm)
		parse_query(p, qm + 1, (size_t)(sp2 - qm - 1));

	for (line = nl + 1; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;
		n = (size_t)(nl - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0) {
			/* The body is everything after the blank line, as is. */
			if (nl < end) {
				p->body_len = (size_t)(end - nl - 1);
				p->body = dup_n(nl + 1, p->body_len);
			}
			break;
		}
		if (line[0] == ' ' || line[0] == '\t')
			continue_header(p, line, n);
		else
			add_header(p, line, n);
		if (nl == end)
			break;
	}
	assert_non_null(p->host);
}

/* The value of the first "Name:" line of a signed request, into buf. */
static bool signed_header(const char *text, const char *name, char *buf, size_t cap)
{
	size_t len = strlen(name);
	const char *line = text;

	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		if (n > len && line[len] == ':' && strncasecmp(line, name, len) == 0) {
			n -= len + 1;
			if (n > 0 && line[len + 1 + n - 1] == '\r')
				n--;
			assert_true(n < cap);
			memcpy(buf, line + len + 1, n);
			buf[n] = '\0';
			return true;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return false;
}

static const char *added_value(const struct sigv4_signed *s, const char *name)
{
	for (size_t i = 0; i < s->n_added; i++)
		if (strcmp(s->added[i].name, name) == 0)
			return s->added[i].value;
	fail_msg("no %s among the added headers", name);
	return NULL;
}

static const char *json_str(const cJSON *obj, const char *key, const char *dir)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(item))
		fail_msg("%s/context.json: no string \"%s\"", dir, key);
	return item->valuestring;
}

static bool json_bool(const cJSON *obj, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static time_t parse_timestamp(const char *s, const char *dir)
{
	struct tm tm = { 0 };

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		fail_msg("%s/context.json: timestamp \"%s\" is not YYYY-MM-DDTHH:MM:SSZ", dir, s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static void expect_equal(const char *what, const char *dir, const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("%s: %s differs\n--- expected\n%s\n--- got\n%s\n---", dir, what, want, got);
}

static void test_case(void **state)
{
	const struct suite_case *c = *state;
	char *ctx_text, *req_text, *creq, *sts, *sig, *signed_req;
	size_t req_len = 0;
	cJSON *ctx, *creds;
	const cJSON *token_item;
	struct parsed p;
	struct sigv4_request r = { 0 };
	struct sigv4_signed *s = NULL;
	const char *why = NULL;
	char want[2048];
	int rc;

	ctx_text = must_slurp(c->dir, "context.json");
	ctx = cJSON_Parse(ctx_text);
	if (ctx == NULL)
		fail_msg("%s/context.json: not JSON", c->dir);
	creds = cJSON_GetObjectItemCaseSensitive(ctx, "credentials");
	if (!cJSON_IsObject(creds))
		fail_msg("%s/context.json: no credentials", c->dir);
	req_text = slurp(c->dir, "request.txt", &req_len);
	if (req_text == NULL)
		fail_msg("%s/request.txt: cannot read", c->dir);
	parse_request(req_text, req_len, &p);

	if (json_bool(ctx, "normalize") && needs_normalising(p.path)) {
		print_message("skip %s: expects path normalisation, which S3 does not do "
			      "(its -unnormalized twin applies)\n",
			      c->name);
		goto skip;
	}
	if (json_bool(ctx, "omit_session_token")) {
		print_message("skip %s: adds the session token after signing; S3 signs it\n", c->name);
		goto skip;
	}

	r.method = p.method;
	r.host = p.host;
	r.path = p.path;
	r.params = p.params;
	r.n_params = p.n_params;
	r.headers = p.headers;
	r.n_headers = p.n_headers;
	r.body = p.body;
	r.body_len = p.body_len;
	r.region = json_str(ctx, "region", c->dir);
	r.service = json_str(ctx, "service", c->dir);
	r.access_key_id = json_str(creds, "access_key_id", c->dir);
	r.secret_key = json_str(creds, "secret_access_key", c->dir);
	token_item = cJSON_GetObjectItemCaseSensitive(creds, "token");
	r.session_token = cJSON_IsString(token_item) ? token_item->valuestring : NULL;
	r.time = parse_timestamp(json_str(ctx, "timestamp", c->dir), c->dir);
	r.flags = json_bool(ctx, "sign_body") ? 0 : SIGV4_NO_CONTENT_SHA256;

	rc = sigv4_sign(&r, &s, &why);
	if (rc != 0)
		fail_msg("%s: sigv4_sign: %d (%s)", c->dir, rc, why);

	creq = must_slurp(c->dir, "header-canonical-request.txt");
	sts = must_slurp(c->dir, "header-string-to-sign.txt");
	sig = must_slurp(c->dir, "header-signature.txt");
	signed_req = must_slurp(c->dir, "header-signed-request.txt");
	expect_equal("canonical request", c->dir, s->canonical_request, creq);
	expect_equal("string to sign", c->dir, s->string_to_sign, sts);
	expect_equal("signature", c->dir, s->signature, sig);
	assert_true(signed_header(signed_req, "Authorization", want, sizeof(want)));
	expect_equal("Authorization", c->dir, s->authorization, want);
	assert_true(signed_header(signed_req, "X-Amz-Date", want, sizeof(want)));
	expect_equal("X-Amz-Date", c->dir, s->amz_date, want);
	if (r.session_token) {
		assert_true(signed_header(signed_req, "X-Amz-Security-Token", want, sizeof(want)));
		expect_equal("X-Amz-Security-Token", c->dir, added_value(s, "X-Amz-Security-Token"), want);
	}
	if (!(r.flags & SIGV4_NO_CONTENT_SHA256)) {
		assert_true(signed_header(signed_req, "X-Amz-Content-SHA256", want, sizeof(want)));
		expect_equal("X-Amz-Content-SHA256", c->dir, added_value(s, "X-Amz-Content-SHA256"), want);
	}
	free(creq);
	free(sts);
	free(sig);
	free(signed_req);
	sigv4_signed_free(s);
	parsed_free(&p);
	free(req_text);
	cJSON_Delete(ctx);
	free(ctx_text);
	return;
skip:
	parsed_free(&p);
	free(req_text);
	cJSON_Delete(ctx);
	free(ctx_text);
	skip();
}

static void test_absent(void **state)
{
	print_message("skip: AWS's SigV4 test suite is not at %s (it lives outside the repository)\n",
		      (const char *)*state);
	skip();
}

static int is_case_dir(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

int sigv4_suite_tests(const char *dir, struct CMUnitTest **tests)
{
	struct dirent **names = NULL;
	struct CMUnitTest *t;
	int n, count = 0;

	n = scandir(dir, &names, is_case_dir, alphasort);
	if (n < 0) {
		t = calloc(1, sizeof(*t));
		if (t == NULL)
			return -1;
		t->name = "suite";
		t->test_func = test_absent;
		t->initial_state = (void *)dir;
		*tests = t;
		return 1;
	}
	t = calloc((size_t)n + 1, sizeof(*t));
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		struct suite_case *c;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (t != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (c = calloc(1, sizeof(*c))) != NULL) {
			c->dir = strdup(path);
			c->name = malloc(strlen(names[i]->d_name) + 7);
			if (c->dir && c->name) {
				sprintf(c->name, "suite/%s", names[i]->d_name);
				t[count].name = c->name;
				t[count].test_func = test_case;
				t[count].initial_state = c;
				count++;
			} else {
				free(c->dir);
				free(c->name);
				free(c);
			}
		}
		free(names[i]);
	}
	free(names);
	if (t == NULL)
		return -1;
	*tests = t;
	return count;
}

void sigv4_suite_free(struct CMUnitTest *tests, int n)
{
	for (int i = 0; i < n; i++) {
		if (tests[i].test_func == test_case) {
			struct suite_case *c = tests[i].initial_state;

			free(c->dir);
			free(c->name);
			free(c);
		}
	}
	free(tests);
}
