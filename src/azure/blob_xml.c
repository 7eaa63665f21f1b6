/*
 * Azure's List Blobs result and Put Block List body; see blob_xml.h. The
 * document reads only the paths it needs:
 *
 *   EnumerationResults > NextMarker                          depth 2
 *   ... > Blobs > Blob > Name, Blobs > BlobPrefix > Name      depth 4
 *   ... > Blob > Properties > Content-Length, Last-Modified, Etag   depth 5
 *
 * and ignores the rest (Prefix, Marker, MaxResults, the other properties).
 */
#include "azure/blob_xml.h"
#include "azure/shared_key.h"
#include "s3/xml_engine.h"
#include "util/decimal.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct blobs_state {
	struct s3_list_page page;
	size_t objects_cap, prefixes_cap;
};

static bool grow(struct xml_ctx *x, void **v, size_t n, size_t *cap, size_t size)
{
	void *g;
	size_t c;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 64;
	g = realloc(*v, c * size);
	if (g == NULL) {
		s3_xml_fail(x, -ENOMEM, "out of memory");
		return false;
	}
	*v = g;
	*cap = c;
	return true;
}

static void blobs_start(struct xml_ctx *x, int depth, const char *name)
{
	struct blobs_state *st = x->data;
	struct s3_list_page *p = &st->page;

	if (depth != 3 || strcmp(x->names[1], "Blobs") != 0)
		return;
	if (strcmp(name, "Blob") == 0) {
		if (!grow(x, (void **)&p->objects, p->n_objects, &st->objects_cap,
			  sizeof(p->objects[0])))
			return;
		memset(&p->objects[p->n_objects++], 0, sizeof(p->objects[0]));
	} else if (strcmp(name, "BlobPrefix") == 0) {
		if (!grow(x, (void **)&p->prefixes, p->n_prefixes, &st->prefixes_cap,
			  sizeof(p->prefixes[0])))
			return;
		p->prefixes[p->n_prefixes++] = NULL;
	}
}

/* An element inside Blob: its Name, or one of its Properties. */
static void blob_field(struct xml_ctx *x, struct s3_object *o, int depth, const char *name,
		       const char *parent, const char *text)
{
	if (depth == 4 && strcmp(name, "Name") == 0) {
		free(o->key);
		o->key = s3_xml_dup(x, text);
	} else if (depth == 5 && strcmp(parent, "Properties") == 0) {
		if (strcmp(name, "Content-Length") == 0 && decimal_parse_u64(text, &o->size) != 0)
			s3_xml_fail(x, -EBADMSG, "invalid <Content-Length> \"%.40s\"", text);
		else if (strcmp(name, "Last-Modified") == 0 &&
			 abs_parse_http_date(text, &o->mtime_ms) != 0)
			s3_xml_fail(x, -EBADMSG, "invalid <Last-Modified> \"%.40s\"", text);
		else if (strcmp(name, "Etag") == 0) {
			free(o->etag);
			o->etag = s3_xml_dup(x, text);
		}
	}
}

static void blobs_end(struct xml_ctx *x, int depth, const char *name, const char *parent,
		      const char *text)
{
	struct blobs_state *st = x->data;
	struct s3_list_page *p = &st->page;

	if (depth == 2 && strcmp(name, "NextMarker") == 0) {
		free(p->next_token);
		p->next_token = text[0] != '\0' ? s3_xml_dup(x, text) : NULL;
		p->truncated = text[0] != '\0';
		return;
	}
	if (depth < 3 || strcmp(x->names[1], "Blobs") != 0)
		return;
	if (strcmp(x->names[2], "Blob") == 0 && p->n_objects > 0) {
		struct s3_object *o = &p->objects[p->n_objects - 1];

		if (depth == 3 && o->key == NULL)
			s3_xml_fail(x, -EBADMSG, "<Blob> without a <Name>");
		else if (depth == 3 && o->etag == NULL)
			o->etag = s3_xml_dup(x, ""); /* as s3/xml.h has it: "" when absent */
		else
			blob_field(x, o, depth, name, parent, text);
	} else if (strcmp(x->names[2], "BlobPrefix") == 0 && p->n_prefixes > 0) {
		char **slot = &p->prefixes[p->n_prefixes - 1];

		if (depth == 4 && strcmp(name, "Name") == 0) {
			free(*slot);
			*slot = s3_xml_dup(x, text);
		} else if (depth == 3 && *slot == NULL) {
			s3_xml_fail(x, -EBADMSG, "<BlobPrefix> without a <Name>");
		}
	}
}

static const struct xml_doc blobs_doc = {"EnumerationResults", blobs_start, blobs_end};

int abs_xml_parse_list(const char *xml, size_t len, struct s3_list_page *out,
		       struct s3_error *err_doc, char *err, size_t errlen)
{
	struct blobs_state st;
	int rc;

	memset(&st, 0, sizeof(st));
	rc = s3_xml_run(&blobs_doc, &st, xml, len, err_doc, err, errlen);
	if (rc != 0) {
		s3_list_page_free(&st.page);
		return rc;
	}
	*out = st.page;
	return 0;
}

int abs_xml_block_list(const char *const *ids, size_t n, char **out, size_t *len)
{
	struct strbuf b = {0};

	if (n == 0)
		return -EINVAL;
	strbuf_puts(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
	for (size_t i = 0; i < n; i++) {
		strbuf_puts(&b, "<Latest>");
		strbuf_puts(&b, ids[i]);
		strbuf_puts(&b, "</Latest>");
	}
	strbuf_puts(&b, "</BlockList>");
	return strbuf_take(&b, out, len);
}
