/*
 * The server-side encryption parameters of a replica URL, and the form of
 * a URL that messages may show; see url.h. Apart from url.c because the
 * customer key is a secret: everything that touches its value is here (and
 * the redaction of an sftp:// password).
 */
#include "config/url.h"
#include "config/parse.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int replica_url_sse_param(const char *key, char **val, struct replica_url *u, char *why,
			  size_t n)
{
	char **field;
	int rc = 0;

	if (strcmp(key, "sse") == 0) {
		field = &u->sse;
		rc = parse_sse(*val, why, n);
	} else if (strcmp(key, "sse-kms-key-id") == 0) {
		field = &u->sse_kms_key_id;
	} else if (strcmp(key, "sse-customer-key") == 0) {
		field = &u->sse_customer_key;
		rc = parse_sse_customer_key(*val, why, n);
	} else if (strcmp(key, "storage-class") == 0) {
		field = &u->storage_class;
		rc = parse_storage_class(*val, why, n);
	} else {
		return -EINVAL;
	}
	if (rc != 0)
		return rc;
	free(*field);
	*field = *val;
	*val = NULL;
	return 0;
}

/* Adds url[0..end) to b, the password of scheme://USER:PASSWORD@ replaced by REDACTED. */
static void add_without_password(struct strbuf *b, const char *url, size_t end)
{
	const char *sep = strstr(url, "://"), *auth, *at = NULL, *colon;
	size_t alen;

	if (sep == NULL || (size_t)(sep - url) >= end) {
		strbuf_add(b, url, end);
		return;
	}
	auth = sep + 3;
	alen = strcspn(auth, "/?#");
	for (const char *c = auth; c < auth + alen; c++)
		if (*c == '@')
			at = c;
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon == NULL) {
		strbuf_add(b, url, end);
		return;
	}
	strbuf_add(b, url, (size_t)(colon - url) + 1);
	strbuf_puts(b, "REDACTED");
	strbuf_add(b, at, end - (size_t)(at - url));
}

char *replica_url_redacted(const char *url)
{
	static const char param[] = "sse-customer";
	const char *q = strchr(url, '?'), *p;
	struct strbuf b = {0};
	char *out = NULL;

	if (q == NULL) {
		add_without_password(&b, url, strlen(url));
		return strbuf_take(&b, &out, NULL) == 0 ? out : NULL;
	}
	add_without_password(&b, url, (size_t)(q - url));
	for (p = q; *p != '\0' && *p != '#';) {
		size_t n = strcspn(p + 1, "&#") + 1; /* one separator and its parameter */
		const char *eq = memchr(p + 1, '=', n - 1);

		if (strncmp(p + 1, param, sizeof(param) - 1) == 0 && eq != NULL) {
			strbuf_add(&b, p, (size_t)(eq - p) + 1);
			strbuf_puts(&b, "REDACTED");
		} else {
			strbuf_add(&b, p, n);
		}
		p += n;
	}
	strbuf_puts(&b, p);
	return strbuf_take(&b, &out, NULL) == 0 ? out : NULL;
}
