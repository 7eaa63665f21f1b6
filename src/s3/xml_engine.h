/*
 * The expat engine the XML documents of s3/xml.c and azure/blob_xml.c are
 * read with (not for use elsewhere). A document is a struct xml_doc: the
 * root element it expects and two hooks, start() as an element opens and
 * end() as it closes, with its depth (the root is 1), its name, its
 * parent's name and its text (at most S3_XML_TEXT_MAX bytes). A root of
 * <Error> fills the caller's struct s3_error instead (Code, Message, ...).
 * Hooks report a failure with s3_xml_fail(), which stops the parse.
 * No state outside a struct xml_ctx: any thread, one parse per context.
 */
#ifndef LITESTREAM_S3_XML_ENGINE_H
#define LITESTREAM_S3_XML_ENGINE_H

#include "s3/xml.h"

#include <expat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAME_MAX_CHARS 64

struct xml_ctx;

struct xml_doc {
	const char *root;
	void (*start)(struct xml_ctx *x, int depth, const char *name);
	void (*end)(struct xml_ctx *x, int depth, const char *name, const char *parent,
		    const char *text);
};

struct xml_ctx {
	XML_Parser parser;
	const struct xml_doc *doc;
	void *data;
	char names[S3_XML_DEPTH_MAX][NAME_MAX_CHARS];
	int depth;
	char text[S3_XML_TEXT_MAX + 1];
	size_t text_len;
	bool is_error;          /* the root is <Error> */
	struct s3_error *s3err; /* filled when is_error; may be NULL */
	struct s3_error scratch;
	int rc;                 /* first failure, 0 while all is well */
	char why[160];
};

/* Records the first failure (rc, message) and stops the parser. */
void s3_xml_fail(struct xml_ctx *x, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Runs doc over xml with data for its hooks (x->data); 0, -EREMOTEIO (an
 * <Error>, in s3err when not NULL), -EBADMSG with err, or -ENOMEM.
 */
int s3_xml_run(const struct xml_doc *doc, void *data, const char *xml, size_t len,
	       struct s3_error *s3err, char *err, size_t errlen);

/* strdup(s), failing x when out of memory (NULL then). */
char *s3_xml_dup(struct xml_ctx *x, const char *s);

#endif
