/*
 * The XML engine under every document the S3 and Azure clients read; see
 * xml_engine.h. expat does the parsing; this keeps the stack of open
 * element names, the text of the element being read, turns a root
 * <Error> into a struct s3_error, and refuses a DOCTYPE, deep nesting and
 * long text.
 */
#include "s3/xml_engine.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void s3_xml_fail(struct xml_ctx *x, int rc, const char *fmt, ...)
{
	va_list ap;

	if (x->rc != 0)
		return;
	x->rc = rc;
	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
	XML_StopParser(x->parser, XML_FALSE);
}

/* One line: Azure's messages run over several (RequestId, Time). */
static void copy_field(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src);
	for (char *p = dst; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

static void error_end(struct xml_ctx *x, int depth, const char *name, const char *text)
{
	struct s3_error *e = x->s3err ? x->s3err : &x->scratch;

	if (depth != 2)
		return;
	if (strcmp(name, "Code") == 0)
		copy_field(e->code, sizeof(e->code), text);
	else if (strcmp(name, "Message") == 0)
		copy_field(e->message, sizeof(e->message), text);
	else if (strcmp(name, "Region") == 0)
		copy_field(e->region, sizeof(e->region), text);
	else if (strcmp(name, "Endpoint") == 0)
		copy_field(e->endpoint, sizeof(e->endpoint), text);
	else if (strcmp(name, "BucketName") == 0)
		copy_field(e->bucket, sizeof(e->bucket), text);
	else if (strcmp(name, "Key") == 0)
		copy_field(e->key, sizeof(e->key), text);
	else if (strcmp(name, "RequestId") == 0)
		copy_field(e->request_id, sizeof(e->request_id), text);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct xml_ctx *x = ud;

	(void)attrs;
	if (x->rc != 0)
		return;
	if (x->depth >= S3_XML_DEPTH_MAX) {
		s3_xml_fail(x, -EBADMSG, "elements nested deeper than %d", S3_XML_DEPTH_MAX);
		return;
	}
	snprintf(x->names[x->depth], NAME_MAX_CHARS, "%s", name);
	x->depth++;
	x->text_len = 0;
	x->text[0] = '\0';
	if (x->depth == 1) {
		if (strcmp(name, "Error") == 0) {
			x->is_error = true;
			if (x->s3err != NULL)
				memset(x->s3err, 0, sizeof(*x->s3err));
			return;
		}
		if (x->doc->root == NULL || strcmp(name, x->doc->root) != 0) {
			s3_xml_fail(x, -EBADMSG, "expected <%s>, found <%.40s>",
				 x->doc->root ? x->doc->root : "Error", name);
			return;
		}
	}
	if (!x->is_error && x->doc->start != NULL)
		x->doc->start(x, x->depth, name);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xml_ctx *x = ud;
	int depth = x->depth;

	if (x->rc != 0)
		return;
	x->text[x->text_len] = '\0';
	if (x->is_error)
		error_end(x, depth, x->names[depth - 1], x->text);
	else if (x->doc->end != NULL)
		x->doc->end(x, depth, x->names[depth - 1], depth >= 2 ? x->names[depth - 2] : "",
			    x->text);
	(void)name;
	x->depth--;
	x->text_len = 0;
	x->text[0] = '\0';
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xml_ctx *x = ud;

	if (x->rc != 0 || len <= 0)
		return;
	if (x->text_len + (size_t)len > S3_XML_TEXT_MAX) {
		s3_xml_fail(x, -EBADMSG, "a text node longer than %d bytes", S3_XML_TEXT_MAX);
		return;
	}
	memcpy(x->text + x->text_len, s, (size_t)len);
	x->text_len += (size_t)len;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	s3_xml_fail(ud, -EBADMSG, "a DOCTYPE is not allowed");
}

/* Runs doc over xml; returns 0, -EREMOTEIO (an <Error>), -EBADMSG or -ENOMEM. */
int s3_xml_run(const struct xml_doc *doc, void *data, const char *xml, size_t len,
		   struct s3_error *s3err, char *err, size_t errlen)
{
	struct xml_ctx *x = calloc(1, sizeof(*x));
	int rc;

	if (x == NULL)
		return -ENOMEM;
	if (len > INT_MAX) {
		free(x);
		snprintf(err, errlen, "XML document of %zu bytes is too large", len);
		return -EBADMSG;
	}
	x->doc = doc;
	x->data = data;
	x->s3err = s3err;
	x->parser = XML_ParserCreate(NULL);
	if (x->parser == NULL) {
		free(x);
		return -ENOMEM;
	}
	XML_SetUserData(x->parser, x);
	XML_SetElementHandler(x->parser, on_start, on_end);
	XML_SetCharacterDataHandler(x->parser, on_text);
	XML_SetStartDoctypeDeclHandler(x->parser, on_doctype);
	if (XML_Parse(x->parser, xml ? xml : "", (int)len, XML_TRUE) != XML_STATUS_OK && x->rc == 0) {
		enum XML_Error code = XML_GetErrorCode(x->parser);

		x->rc = code == XML_ERROR_NO_MEMORY ? -ENOMEM : -EBADMSG;
		snprintf(x->why, sizeof(x->why), "line %lu: %s",
			 (unsigned long)XML_GetCurrentLineNumber(x->parser), XML_ErrorString(code));
	}
	rc = x->rc;
	if (rc == 0 && x->is_error)
		rc = -EREMOTEIO;
	if (rc != 0 && rc != -EREMOTEIO)
		snprintf(err, errlen, "malformed %s document: %s", doc->root ? doc->root : "Error",
			 x->why);
	XML_ParserFree(x->parser);
	free(x);
	return rc;
}


char *s3_xml_dup(struct xml_ctx *x, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		s3_xml_fail(x, -ENOMEM, "out of memory");
	return d;
}
