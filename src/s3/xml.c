/*
 * S3's XML with expat; see xml.h for the contract.
 *
 * One small engine (xml_engine.c) serves every document: it keeps the names of the open
 * elements (a stack S3_XML_DEPTH_MAX deep), collects the text of the
 * element being read, and hands each closed element to the document's
 * end() hook with its depth, its parent's name and its text. A document
 * reads only the few paths it cares about, e.g. ListBucketResult >
 * Contents > Key at depth 3, and ignores everything else, so extra
 * elements a server adds (rgw's <Type>, AWS's <ChecksumAlgorithm>) are
 * harmless.
 *
 * When the root turns out to be <Error> the engine fills the caller's
 * struct s3_error instead and the parse ends with -EREMOTEIO.
 */
#include "s3/xml.h"
#include "s3/xml_engine.h"
#include "util/pct.h"
#include "util/decimal.h"
#include "util/strbuf.h"

#include "util/timefmt.h"

#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DELETE_KEYS 1000

/* ---- percent-decoding (EncodingType url) ---- */

/*
 * In place: %XX becomes the byte, '+' a space (as Go's QueryUnescape does
 * for S3); a '%' without two hex digits is kept as the server sent it.
 */
static void url_decode(char *s)
{
	(void)pct_decode(s, strlen(s), PCT_PLUS_SPACE | PCT_LENIENT, s);
}

/* ---- ListBucketResult ---- */

struct list_state {
	struct s3_list_page page;
	size_t objects_cap, prefixes_cap;
	bool url_encoded;
};

static void list_start(struct xml_ctx *x, int depth, const char *name)
{
	struct list_state *st = x->data;
	struct s3_list_page *p = &st->page;

	if (depth != 2 || strcmp(name, "Contents") != 0)
		return;
	if (p->n_objects == st->objects_cap) {
		size_t cap = st->objects_cap ? st->objects_cap * 2 : 64;
		struct s3_object *v = realloc(p->objects, cap * sizeof(*v));

		if (v == NULL) {
			s3_xml_fail(x, -ENOMEM, "out of memory");
			return;
		}
		p->objects = v;
		st->objects_cap = cap;
	}
	memset(&p->objects[p->n_objects], 0, sizeof(p->objects[0]));
	p->n_objects++;
}

static void list_end(struct xml_ctx *x, int depth, const char *name, const char *parent,
		     const char *text)
{
	struct list_state *st = x->data;
	struct s3_list_page *p = &st->page;

	if (depth == 2) {
		if (strcmp(name, "IsTruncated") == 0) {
			p->truncated = strcmp(text, "true") == 0;
		} else if (strcmp(name, "NextContinuationToken") == 0 && text[0] != '\0') {
			free(p->next_token);
			p->next_token = s3_xml_dup(x, text);
		} else if (strcmp(name, "EncodingType") == 0) {
			st->url_encoded = strcmp(text, "url") == 0;
		} else if (strcmp(name, "Contents") == 0) {
			if (p->objects[p->n_objects - 1].key == NULL)
				s3_xml_fail(x, -EBADMSG, "<Contents> without a <Key>");
		}
		return;
	}
	if (depth != 3)
		return;
	if (strcmp(parent, "Contents") == 0) {
		struct s3_object *o = &p->objects[p->n_objects - 1];

		if (strcmp(name, "Key") == 0) {
			free(o->key);
			o->key = s3_xml_dup(x, text);
		} else if (strcmp(name, "Size") == 0) {
			if (decimal_parse_u64(text, &o->size) != 0)
				s3_xml_fail(x, -EBADMSG, "invalid <Size> \"%.40s\"", text);
		} else if (strcmp(name, "LastModified") == 0) {
			if (s3_xml_parse_time(text, &o->mtime_ms) != 0)
				s3_xml_fail(x, -EBADMSG, "invalid <LastModified> \"%.40s\"", text);
		} else if (strcmp(name, "ETag") == 0) {
			free(o->etag);
			o->etag = s3_xml_dup(x, text);
		}
	} else if (strcmp(parent, "CommonPrefixes") == 0 && strcmp(name, "Prefix") == 0) {
		if (p->n_prefixes == st->prefixes_cap) {
			size_t cap = st->prefixes_cap ? st->prefixes_cap * 2 : 16;
			char **v = realloc(p->prefixes, cap * sizeof(*v));

			if (v == NULL) {
				s3_xml_fail(x, -ENOMEM, "out of memory");
				return;
			}
			p->prefixes = v;
			st->prefixes_cap = cap;
		}
		if ((p->prefixes[p->n_prefixes] = s3_xml_dup(x, text)) != NULL)
			p->n_prefixes++;
	}
}

static const struct xml_doc list_doc = {"ListBucketResult", list_start, list_end};

void s3_list_page_free(struct s3_list_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_objects; i++) {
		free(p->objects[i].key);
		free(p->objects[i].etag);
	}
	free(p->objects);
	for (size_t i = 0; i < p->n_prefixes; i++)
		free(p->prefixes[i]);
	free(p->prefixes);
	free(p->next_token);
	memset(p, 0, sizeof(*p));
}

int s3_xml_parse_list(const char *xml, size_t len, struct s3_list_page *out, struct s3_error *s3err,
		      char *err, size_t errlen)
{
	struct list_state st;
	int rc;

	memset(&st, 0, sizeof(st));
	rc = s3_xml_run(&list_doc, &st, xml, len, s3err, err, errlen);
	if (rc == 0 && st.page.truncated && st.page.next_token == NULL) {
		snprintf(err, errlen, "malformed ListBucketResult document: truncated without a "
				      "NextContinuationToken");
		rc = -EBADMSG;
	}
	if (rc != 0) {
		s3_list_page_free(&st.page);
		return rc;
	}
	for (size_t i = 0; i < st.page.n_objects; i++) {
		if (st.page.objects[i].etag == NULL && (st.page.objects[i].etag = strdup("")) == NULL)
			rc = -ENOMEM;
		else if (st.url_encoded)
			url_decode(st.page.objects[i].key);
	}
	if (rc != 0) {
		s3_list_page_free(&st.page);
		return rc;
	}
	if (st.url_encoded) {
		for (size_t i = 0; i < st.page.n_prefixes; i++)
			url_decode(st.page.prefixes[i]);
		if (st.page.next_token != NULL)
			url_decode(st.page.next_token);
	}
	*out = st.page;
	return 0;
}

/* ---- one field under the root: UploadId, ETag ---- */

struct field_state {
	const char *want; /* element name at depth 2 */
	char *value;
	bool seen;
};

static void field_end(struct xml_ctx *x, int depth, const char *name, const char *parent,
		      const char *text)
{
	struct field_state *st = x->data;

	(void)parent;
	if (depth == 2 && strcmp(name, st->want) == 0 && !st->seen) {
		st->seen = true;
		st->value = s3_xml_dup(x, text);
	}
}

static const struct xml_doc initiate_doc = {"InitiateMultipartUploadResult", NULL, field_end};
static const struct xml_doc complete_doc = {"CompleteMultipartUploadResult", NULL, field_end};

int s3_xml_parse_initiate(const char *xml, size_t len, char **upload_id, struct s3_error *s3err,
			  char *err, size_t errlen)
{
	struct field_state st = {"UploadId", NULL, false};
	int rc = s3_xml_run(&initiate_doc, &st, xml, len, s3err, err, errlen);

	if (rc == 0 && (st.value == NULL || st.value[0] == '\0')) {
		snprintf(err, errlen, "malformed InitiateMultipartUploadResult document: no UploadId");
		rc = -EBADMSG;
	}
	if (rc != 0) {
		free(st.value);
		return rc;
	}
	*upload_id = st.value;
	return 0;
}

int s3_xml_parse_complete(const char *xml, size_t len, char **etag, struct s3_error *s3err,
			  char *err, size_t errlen)
{
	struct field_state st = {"ETag", NULL, false};
	int rc = s3_xml_run(&complete_doc, &st, xml, len, s3err, err, errlen);

	if (rc == 0 && st.value == NULL && (st.value = strdup("")) == NULL)
		rc = -ENOMEM;
	if (rc != 0) {
		free(st.value);
		return rc;
	}
	*etag = st.value;
	return 0;
}

/* ---- DeleteResult ---- */

struct delete_state {
	struct s3_delete_result res;
	size_t cap;
};

static void delete_start(struct xml_ctx *x, int depth, const char *name)
{
	struct delete_state *st = x->data;
	struct s3_delete_result *r = &st->res;

	if (depth != 2)
		return;
	if (strcmp(name, "Deleted") == 0) {
		r->n_deleted++;
	} else if (strcmp(name, "Error") == 0) {
		if (r->n_failures == st->cap) {
			size_t cap = st->cap ? st->cap * 2 : 8;
			struct s3_delete_failure *v = realloc(r->failures, cap * sizeof(*v));

			if (v == NULL) {
				s3_xml_fail(x, -ENOMEM, "out of memory");
				return;
			}
			r->failures = v;
			st->cap = cap;
		}
		memset(&r->failures[r->n_failures], 0, sizeof(r->failures[0]));
		r->n_failures++;
	}
}

static void delete_end(struct xml_ctx *x, int depth, const char *name, const char *parent,
		       const char *text)
{
	struct delete_state *st = x->data;
	struct s3_delete_failure *f;
	char **slot = NULL;

	if (depth != 3 || strcmp(parent, "Error") != 0 || st->res.n_failures == 0)
		return;
	f = &st->res.failures[st->res.n_failures - 1];
	if (strcmp(name, "Key") == 0)
		slot = &f->key;
	else if (strcmp(name, "Code") == 0)
		slot = &f->code;
	else if (strcmp(name, "Message") == 0)
		slot = &f->message;
	if (slot != NULL) {
		free(*slot);
		*slot = s3_xml_dup(x, text);
	}
}

static const struct xml_doc delete_doc = {"DeleteResult", delete_start, delete_end};

void s3_delete_result_free(struct s3_delete_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_failures; i++) {
		free(r->failures[i].key);
		free(r->failures[i].code);
		free(r->failures[i].message);
	}
	free(r->failures);
	memset(r, 0, sizeof(*r));
}

int s3_xml_parse_delete(const char *xml, size_t len, struct s3_delete_result *out,
			struct s3_error *s3err, char *err, size_t errlen)
{
	struct delete_state st;
	int rc;

	memset(&st, 0, sizeof(st));
	rc = s3_xml_run(&delete_doc, &st, xml, len, s3err, err, errlen);
	/* Every failure names its key and code, so callers need no NULL checks. */
	for (size_t i = 0; rc == 0 && i < st.res.n_failures; i++) {
		struct s3_delete_failure *f = &st.res.failures[i];

		if ((f->key == NULL && (f->key = strdup("")) == NULL) ||
		    (f->code == NULL && (f->code = strdup("")) == NULL) ||
		    (f->message == NULL && (f->message = strdup("")) == NULL))
			rc = -ENOMEM;
	}
	if (rc != 0) {
		s3_delete_result_free(&st.res);
		return rc;
	}
	*out = st.res;
	return 0;
}

/* ---- Error ---- */

static const struct xml_doc error_doc = {NULL, NULL, NULL};

int s3_xml_parse_error(const char *xml, size_t len, struct s3_error *out)
{
	struct s3_error e;
	char err[64];
	int rc;

	memset(&e, 0, sizeof(e));
	rc = s3_xml_run(&error_doc, NULL, xml, len, &e, err, sizeof(err));
	if (rc != -EREMOTEIO) {
		memset(out, 0, sizeof(*out));
		return rc == -ENOMEM ? -ENOMEM : -EBADMSG;
	}
	*out = e;
	return 0;
}

/* ---- time ---- */

/* LastModified is RFC 3339, which timefmt parses for every command. */
int s3_xml_parse_time(const char *s, int64_t *ms)
{
	return timefmt_parse(s, ms);
}

/* ---- request bodies ---- */

/* XML text: the five special characters become entities. */
static void add_xml_escaped(struct strbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			strbuf_puts(b, "&amp;");
			break;
		case '<':
			strbuf_puts(b, "&lt;");
			break;
		case '>':
			strbuf_puts(b, "&gt;");
			break;
		case '"':
			strbuf_puts(b, "&quot;");
			break;
		case '\'':
			strbuf_puts(b, "&apos;");
			break;
		default:
			strbuf_add(b, s, 1);
			break;
		}
	}
}

int s3_xml_complete_body(const struct s3_part *parts, size_t n, char **out, size_t *len)
{
	struct strbuf b = {0};
	char num[16];

	if (n == 0 || n > 10000)
		return -EINVAL;
	strbuf_puts(&b, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%d", parts[i].number);
		strbuf_puts(&b, "<Part><PartNumber>");
		strbuf_puts(&b, num);
		strbuf_puts(&b, "</PartNumber><ETag>");
		add_xml_escaped(&b, parts[i].etag);
		strbuf_puts(&b, "</ETag></Part>");
	}
	strbuf_puts(&b, "</CompleteMultipartUpload>");
	return strbuf_take(&b, out, len);
}

int s3_xml_delete_body(const char *const *keys, size_t n, char **out, size_t *len)
{
	struct strbuf b = {0};

	if (n == 0 || n > MAX_DELETE_KEYS)
		return -EINVAL;
	strbuf_puts(&b, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
	for (size_t i = 0; i < n; i++) {
		strbuf_puts(&b, "<Object><Key>");
		add_xml_escaped(&b, keys[i]);
		strbuf_puts(&b, "</Key></Object>");
	}
	strbuf_puts(&b, "</Delete>");
	return strbuf_take(&b, out, len);
}
