/*
 * The canonical request of AWS Signature V4 (see sigv4.h for its shape):
 * percent-encoding, the x-amz-date stamp, the query sorted by encoded name
 * then value, and the canonical headers (lowercased, sorted, repeated names
 * merged, values trimmed) with the signed-headers list.
 *
 * Every string is built in a growable buffer (struct strbuf) that latches
 * allocation failure, so the building code reads straight through and the
 * failure is checked once per string.
 */
#include "s3/sigv4_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ---- */

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_encode(struct strbuf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_unreserved(*p) || (keep_slash && *p == '/')) {
			strbuf_putc(b, (char)*p);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			strbuf_add(b, esc, 3);
		}
	}
}

static int encode(const char *s, bool keep_slash, char **out)
{
	struct strbuf b = { 0 };

	/* Reserving even for "" leaves a NUL-terminated buffer to hand out. */
	strbuf_reserve(&b, strlen(s));
	sb_encode(&b, s, keep_slash);
	if (b.oom) {
		strbuf_free(&b);
		return -ENOMEM;
	}
	*out = b.p;
	return 0;
}

int sigv4_encode_path(const char *s, char **out)
{
	return encode(s, true, out);
}

int sigv4_encode_component(const char *s, char **out)
{
	return encode(s, false, out);
}

/* ---- canonical pieces ---- */

static void put_digits(char *p, unsigned v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

int sigv4_amz_date(time_t t, char out[SIGV4_AMZ_DATE_LEN + 1])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -EINVAL;
	put_digits(out, (unsigned)tm.tm_year + 1900, 4);
	put_digits(out + 4, (unsigned)tm.tm_mon + 1, 2);
	put_digits(out + 6, (unsigned)tm.tm_mday, 2);
	out[8] = 'T';
	put_digits(out + 9, (unsigned)tm.tm_hour, 2);
	put_digits(out + 11, (unsigned)tm.tm_min, 2);
	put_digits(out + 13, (unsigned)tm.tm_sec, 2);
	out[15] = 'Z';
	out[16] = '\0';
	return 0;
}

struct qparam {
	char *name;  /* encoded */
	char *value; /* encoded; "" for a bare name */
	bool bare;
	size_t index; /* position given, so equal pairs keep their order */
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0)
		c = strcmp(x->value, y->value);
	if (c == 0)
		c = x->index < y->index ? -1 : x->index > y->index;
	return c;
}

/*
 * Sorted by encoded name, then encoded value (byte order), as AWS compares
 * them. The same order goes on the wire: a server does not care, and a
 * reader comparing the two sees the same thing.
 */
static int build_query(const struct sigv4_request *r, struct strbuf *canon, struct strbuf *target)
{
	struct qparam *q;
	int rc = 0;

	if (r->n_params == 0)
		return 0;
	q = calloc(r->n_params, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_params; i++) {
		const char *v = r->params[i].value;

		q[i].index = i;
		q[i].bare = v == NULL;
		rc = sigv4_encode_component(r->params[i].name, &q[i].name);
		if (rc == 0)
			rc = sigv4_encode_component(v ? v : "", &q[i].value);
		if (rc != 0)
			goto out;
	}
	qsort(q, r->n_params, sizeof(*q), qparam_cmp);
	strbuf_putc(target, '?');
	for (size_t i = 0; i < r->n_params; i++) {
		if (i > 0) {
			strbuf_putc(canon, '&');
			strbuf_putc(target, '&');
		}
		strbuf_puts(canon, q[i].name);
		strbuf_putc(canon, '=');
		strbuf_puts(canon, q[i].value);
		strbuf_puts(target, q[i].name);
		if (!q[i].bare) {
			strbuf_putc(target, '=');
			strbuf_puts(target, q[i].value);
		}
	}
out:
	for (size_t i = 0; i < r->n_params; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
	return rc;
}

struct cheader {
	char *name;        /* lowercased copy */
	const char *value; /* borrowed, untrimmed */
	size_t index;
};

static int cheader_cmp(const void *a, const void *b)
{
	const struct cheader *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0)
		c = x->index < y->index ? -1 : x->index > y->index;
	return c;
}

/* Trimall: no leading or trailing blanks, each inner run of blanks one space. */
static void sb_trimall(struct strbuf *b, const char *v)
{
	bool pending = false, any = false;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			pending = any;
			continue;
		}
		if (pending)
			strbuf_putc(b, ' ');
		pending = false;
		any = true;
		strbuf_putc(b, *v);
	}
}

/*
 * Canonical headers ("name:value\n" each, sorted by lowercase name, repeated
 * names merged in the order given) and the signed-headers list. Sorts h.
 */
static void build_headers(struct cheader *h, size_t n, struct strbuf *canon, struct strbuf *names)
{
	qsort(h, n, sizeof(*h), cheader_cmp);
	for (size_t i = 0; i < n; i++) {
		bool repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;

		if (repeat) {
			strbuf_putc(canon, ',');
		} else {
			if (i > 0) {
				strbuf_putc(canon, '\n');
				strbuf_putc(names, ';');
			}
			strbuf_puts(canon, h[i].name);
			strbuf_putc(canon, ':');
			strbuf_puts(names, h[i].name);
		}
		sb_trimall(canon, h[i].value);
	}
	strbuf_putc(canon, '\n');
}

static char *lower_dup(const char *s)
{
	char *d = strdup(s);

	if (d != NULL)
		for (char *p = d; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return d;
}

/*
 * The caller's headers plus the ones the signer owns, names lowercased, in
 * *out (r->n_headers + 4 slots); *nh counts the names to free, set on
 * failure too.
 */
static int collect_headers(const struct sigv4_request *r, const char *date, const char *payload,
			   struct cheader **out, size_t *nh)
{
	const char *token = r->session_token && *r->session_token ? r->session_token : NULL;
	const char *own[4][2] = {
		{ "host", r->host },
		{ "x-amz-date", date },
		{ "x-amz-content-sha256", r->flags & SIGV4_NO_CONTENT_SHA256 ? NULL : payload },
		{ "x-amz-security-token", token },
	};
	struct cheader *h = calloc(r->n_headers + 4, sizeof(*h));
	size_t n = 0;

	*out = h;
	*nh = 0;
	if (h == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_headers; i++, n++) {
		h[n].name = lower_dup(r->headers[i].name);
		h[n].value = r->headers[i].value;
		h[n].index = n;
		if (h[n].name == NULL) {
			*nh = n;
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < 4; i++) {
		if (own[i][1] == NULL)
			continue;
		h[n].name = strdup(own[i][0]);
		h[n].value = own[i][1];
		h[n].index = n;
		if (h[n++].name == NULL) {
			*nh = n;
			return -ENOMEM;
		}
	}
	*nh = n;
	return 0;
}

/* ---- the canonical request ---- */

int sigv4_canonical_request(const struct sigv4_request *r, const char *date, const char *payload,
			    struct strbuf *creq, struct strbuf *target, struct strbuf *names)
{
	struct strbuf headers = { 0 };
	struct cheader *h = NULL;
	size_t nh = 0;
	int rc;

	/* Path, then query: the canonical forms and the request-target. */
	if (r->flags & SIGV4_PATH_ENCODED)
		strbuf_puts(target, r->path);
	else
		sb_encode(target, r->path, true);
	strbuf_add(creq, r->method, strlen(r->method));
	strbuf_putc(creq, '\n');
	strbuf_add(creq, target->p ? target->p : "", target->len);
	strbuf_putc(creq, '\n');
	rc = build_query(r, creq, target);
	if (rc != 0)
		return rc;
	strbuf_putc(creq, '\n');

	rc = collect_headers(r, date, payload, &h, &nh);
	if (rc == 0) {
		build_headers(h, nh, &headers, names);
		strbuf_add(creq, headers.p, headers.len);
		strbuf_putc(creq, '\n');
		strbuf_add(creq, names->p, names->len);
		strbuf_putc(creq, '\n');
		strbuf_puts(creq, payload);
		if (creq->oom || target->oom || headers.oom || names->oom)
			rc = -ENOMEM;
	}
	for (size_t i = 0; i < nh; i++)
		free(h[i].name);
	free(h);
	strbuf_free(&headers);
	return rc;
}
