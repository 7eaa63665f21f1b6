/*
 * The S3 response parsers (src/s3/xml.h) on arbitrary bodies: every
 * document parser runs on the same input, since each first checks the root
 * element (Azure's List Blobs too, azure/blob_xml.h); then
 * s3_xml_parse_time() on the input as a string.
 */
#include "fuzz.h"

#include "azure/blob_xml.h"
#include "s3/xml.h"

#include <errno.h>

static void check_error(const struct s3_error *e)
{
	/* Every field is a NUL-terminated string inside its array. */
	FUZZ_CHECK(memchr(e->code, '\0', sizeof(e->code)) != NULL);
	FUZZ_CHECK(memchr(e->message, '\0', sizeof(e->message)) != NULL);
	FUZZ_CHECK(memchr(e->region, '\0', sizeof(e->region)) != NULL);
	FUZZ_CHECK(memchr(e->endpoint, '\0', sizeof(e->endpoint)) != NULL);
	FUZZ_CHECK(memchr(e->bucket, '\0', sizeof(e->bucket)) != NULL);
	FUZZ_CHECK(memchr(e->key, '\0', sizeof(e->key)) != NULL);
	FUZZ_CHECK(memchr(e->request_id, '\0', sizeof(e->request_id)) != NULL);
	(void)e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *xml = (const char *)data;
	/* The s3err out-parameter may be NULL: cover both. */
	bool with_err = (size & 1) == 0;
	struct s3_error e, *ep = with_err ? &e : NULL;
	char err[256];
	int rc;

	{
		struct s3_list_page p;
		rc = s3_xml_parse_list(xml, size, &p, ep, err, sizeof(err));
		if (rc == 0) {
			for (size_t i = 0; i < p.n_objects; i++) {
				FUZZ_CHECK(p.objects[i].key != NULL && p.objects[i].etag != NULL);
				(void)strlen(p.objects[i].key);
				(void)strlen(p.objects[i].etag);
			}
			for (size_t i = 0; i < p.n_prefixes; i++)
				(void)strlen(p.prefixes[i]);
			FUZZ_CHECK(!p.truncated || p.next_token != NULL);
			s3_list_page_free(&p);
		} else if (rc == -EREMOTEIO && with_err) {
			check_error(&e);
		}
	}
	{
		struct s3_list_page p;
		rc = abs_xml_parse_list(xml, size, &p, ep, err, sizeof(err));
		if (rc == 0) {
			for (size_t i = 0; i < p.n_objects; i++) {
				FUZZ_CHECK(p.objects[i].key != NULL && p.objects[i].etag != NULL);
				(void)strlen(p.objects[i].key);
			}
			for (size_t i = 0; i < p.n_prefixes; i++)
				FUZZ_CHECK(p.prefixes[i] != NULL && strlen(p.prefixes[i]) < 1u << 20);
			FUZZ_CHECK(!p.truncated || p.next_token != NULL);
			s3_list_page_free(&p);
		} else if (rc == -EREMOTEIO && with_err) {
			check_error(&e);
		}
	}
	{
		char *id = NULL;
		rc = s3_xml_parse_initiate(xml, size, &id, ep, err, sizeof(err));
		if (rc == 0) {
			FUZZ_CHECK(id != NULL && id[0] != '\0');
			free(id);
		} else if (rc == -EREMOTEIO && with_err) {
			check_error(&e);
		}
	}
	{
		char *etag = NULL;
		rc = s3_xml_parse_complete(xml, size, &etag, ep, err, sizeof(err));
		if (rc == 0) {
			FUZZ_CHECK(etag != NULL);
			free(etag);
		} else if (rc == -EREMOTEIO && with_err) {
			check_error(&e);
		}
	}
	{
		struct s3_delete_result r;
		rc = s3_xml_parse_delete(xml, size, &r, ep, err, sizeof(err));
		if (rc == 0) {
			for (size_t i = 0; i < r.n_failures; i++) {
				if (r.failures[i].key != NULL)
					(void)strlen(r.failures[i].key);
				if (r.failures[i].code != NULL)
					(void)strlen(r.failures[i].code);
				if (r.failures[i].message != NULL)
					(void)strlen(r.failures[i].message);
			}
			s3_delete_result_free(&r);
		} else if (rc == -EREMOTEIO && with_err) {
			check_error(&e);
		}
	}
	{
		struct s3_error e2;
		if (s3_xml_parse_error(xml, size, &e2) == 0)
			check_error(&e2);
	}
	{
		char *s = fuzz_cstr(data, size);
		int64_t ms;
		(void)s3_xml_parse_time(s, &ms);
		free(s);
	}
	return 0;
}
