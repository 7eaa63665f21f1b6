/*
 * The S3 backend's list: the names directly under a directory, from
 * ListObjectsV2 with delimiter '/', page after page by continuation token.
 * Objects are entries, common prefixes are directories (is_dir), each
 * named by its last path component. A missing directory is just an empty
 * listing (S3 has no directories, only keys that share a prefix).
 *
 * The abs backend lists the same way with List Blobs (restype=container,
 * comp=list, a marker for the next page; azure/blob_xml.h reads its page
 * into the same struct).
 *
 * Each page is parsed as it arrives (check_list_page), so that an answer
 * cut short is retried by the client like any failed attempt. A listing
 * whose token does not advance is an error rather than a loop.
 */
#include "backend/backend_s3_internal.h"
#include "util/fsutil.h"
#include "s3/sigv4.h"
#include "s3/xml.h"
#include "azure/blob_xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX_BODY (8 * 1024 * 1024)
#define MAX_LIST_PAGES 1000000

struct list_op {
	struct s3_backend *sb;
	char *dir;    /* as asked, for messages */
	char *prefix; /* of the object keys listed: "" or ending with '/' */
	char *token;  /* continuation token of the next page */
	long pages;
	/* The page the last answer held, parsed when it was checked. */
	struct s3_list_page page;
	struct s3_error page_err;
	int page_rc;
	char page_why[256];
	struct backend_list list;
	size_t cap;
	backend_list_cb cb;
	void *arg;
};

static void list_finish(struct list_op *op, int rc, const char *err)
{
	struct s3_backend *sb = op->sb;

	if (rc != 0)
		backend_list_free(&op->list);
	op->cb(op->arg, rc, rc ? err : NULL, &op->list);
	backend_list_free(&op->list);
	s3_list_page_free(&op->page);
	free(op->dir);
	free(op->prefix);
	free(op->token);
	free(op);
	backend_s3_op_end(sb);
}

static int list_add(struct list_op *op, const char *name, size_t len, uint64_t size, int64_t mtime,
		    bool is_dir)
{
	struct backend_entry *e;

	if (op->list.n == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 64;
		struct backend_entry *v = realloc(op->list.v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		op->list.v = v;
		op->cap = cap;
	}
	e = &op->list.v[op->list.n];
	e->name = strndup(name, len);
	if (e->name == NULL)
		return -ENOMEM;
	e->size = size;
	e->mtime_ms = mtime;
	e->is_dir = is_dir;
	op->list.n++;
	return 0;
}

/* Takes one page's entries; only names directly under the prefix count. */
static int list_take(struct list_op *op, const struct s3_list_page *p)
{
	size_t plen = strlen(op->prefix);
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < p->n_objects; i++) {
		const char *k = p->objects[i].key, *name = k + plen;

		/* A "dir/" marker object, or a key the delimiter should have folded. */
		if (strncmp(k, op->prefix, plen) != 0 || name[0] == '\0' || strchr(name, '/') != NULL)
			continue;
		rc = list_add(op, name, strlen(name), p->objects[i].size, p->objects[i].mtime_ms, false);
	}
	for (size_t i = 0; rc == 0 && i < p->n_prefixes; i++) {
		const char *k = p->prefixes[i], *name = k + plen;
		size_t len;

		if (strncmp(k, op->prefix, plen) != 0)
			continue;
		len = strlen(name);
		if (len > 0 && name[len - 1] == '/')
			len--;
		if (len == 0 || memchr(name, '/', len) != NULL)
			continue;
		rc = list_add(op, name, len, 0, 0, true);
	}
	return rc;
}

static void list_page(struct list_op *op);

/*
 * Parses an answer as it arrives: a ListBucketResult that does not parse
 * (cut short where HTTP could not tell) fails the attempt, which is then
 * retried. An <Error> document is kept for on_list_page() to report.
 */
static const char *check_list_page(const struct http_response *h, void *arg, char *buf, size_t n)
{
	struct list_op *op = arg;

	s3_list_page_free(&op->page);
	memset(&op->page, 0, sizeof(op->page));
	if (op->sb->abs)
		op->page_rc = abs_xml_parse_list(h->body, h->body_len, &op->page, &op->page_err,
						 op->page_why, sizeof(op->page_why));
	else
		op->page_rc = s3_xml_parse_list(h->body, h->body_len, &op->page, &op->page_err,
						op->page_why, sizeof(op->page_why));
	if (op->page_rc == 0 || op->page_rc == -EREMOTEIO)
		return NULL;
	snprintf(buf, n, "%s", op->page_why);
	return buf;
}

static void on_list_page(void *arg, const struct s3_response *r)
{
	struct list_op *op = arg;
	struct s3_list_page *page = &op->page;
	char msg[640];
	int rc;

	if (r->rc != 0) {
		list_finish(op, r->rc, r->message);
		return;
	}
	if (op->page_rc != 0) {
		if (op->page_rc == -EREMOTEIO)
			snprintf(msg, sizeof(msg), "LIST %s/: %s %s", op->dir, op->page_err.code,
				 op->page_err.message);
		else
			snprintf(msg, sizeof(msg), "LIST %s/: %s", op->dir, op->page_why);
		list_finish(op, op->page_rc == -EREMOTEIO ? -EIO : op->page_rc, msg);
		return;
	}
	rc = list_take(op, page);
	if (rc != 0) {
		list_finish(op, rc, "out of memory");
		return;
	}
	if (!page->truncated) {
		list_finish(op, 0, NULL);
		return;
	}
	/* A server that hands back the same token would loop forever. */
	if (page->next_token == NULL ||
	    (op->token != NULL && strcmp(op->token, page->next_token) == 0) ||
	    ++op->pages >= MAX_LIST_PAGES) {
		snprintf(msg, sizeof(msg), "LIST %s/: the listing does not advance", op->dir);
		list_finish(op, -EIO, msg);
		return;
	}
	free(op->token);
	op->token = page->next_token;
	page->next_token = NULL;
	list_page(op);
}

static void list_page(struct list_op *op)
{
	bool abs = op->sb->abs;
	struct sigv4_param params[6] = {
		{abs ? "restype" : "list-type", abs ? "container" : "2"},
		{"prefix", op->prefix},
		{"delimiter", "/"},
		{abs ? "comp" : "prefix", abs ? "list" : op->prefix},
		{abs ? "maxresults" : "max-keys", op->sb->max_keys},
		{abs ? "marker" : "continuation-token", op->token},
	};
	size_t n = abs ? 4 : 3;
	struct s3_request req = {0};
	char msg[512];
	int rc;

	req.method = "GET";
	req.op = "LIST";
	req.label = op->dir;
	/* Unused entries go to the end: max-keys when unset, then the token. */
	if (op->sb->max_keys[0] != '\0')
		params[n++] = params[4];
	if (op->token != NULL)
		params[n++] = params[5];
	req.params = params;
	req.n_params = n;
	req.sink = S3_SINK_MEMORY;
	req.max_body = LIST_MAX_BODY;
	req.check = check_list_page;
	req.check_arg = op;
	rc = backend_s3_send(op->sb, &req, on_list_page, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "LIST %s/: %s", op->dir, backend_s3_refused(rc));
		list_finish(op, rc, msg);
	}
}

void backend_s3_list(struct backend *b, const char *dir, backend_list_cb cb, void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct list_op *op = calloc(1, sizeof(*op));
	char *full = NULL;

	if (op != NULL) {
		op->sb = sb;
		op->cb = cb;
		op->arg = arg;
		op->dir = strdup(dir);
		full = backend_s3_key(sb, dir);
		if (full != NULL)
			op->prefix = full[0] == '\0' || full[strlen(full) - 1] == '/'
					     ? strdup(full)
					     : str_printf("%s/", full);
		free(full);
	}
	if (op == NULL || op->dir == NULL || op->prefix == NULL) {
		if (op != NULL) {
			free(op->dir);
			free(op->prefix);
			free(op);
		}
		cb(arg, -ENOMEM, "out of memory", NULL);
		return;
	}
	backend_s3_op_begin(sb);
	list_page(op);
}
