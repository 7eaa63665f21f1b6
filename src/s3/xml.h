/*
 * The XML an S3 client reads and writes, parsed with expat.
 *
 * Read (each parser takes one whole response body):
 *
 *   ListBucketResult                ListObjectsV2: objects, common prefixes,
 *                                   IsTruncated, NextContinuationToken
 *   InitiateMultipartUploadResult   UploadId
 *   CompleteMultipartUploadResult   ETag (may be empty: rgw sends none)
 *   DeleteResult                    DeleteObjects: per-key errors
 *   Error                           Code, Message, Region, Endpoint, ...
 *
 * Every parser first looks at the root element: an <Error> document where a
 * result was expected (S3 answers CompleteMultipartUpload with 200 and an
 * Error body when it fails late) returns -EREMOTEIO and fills the
 * struct s3_error the caller passed. Anything else that is not the
 * expected document returns -EBADMSG with a message in err.
 *
 * Only element text is read; attributes are ignored, and so is the
 * namespace (S3 uses a default xmlns, which leaves names unprefixed). A
 * document with a DOCTYPE is refused, so no entity declaration (and no
 * entity expansion attack) ever reaches the parser's tables. Text nodes
 * are capped at S3_XML_TEXT_MAX bytes and documents nest at most
 * S3_XML_DEPTH_MAX deep: a body outside these bounds is -EBADMSG.
 *
 * Written: the bodies of CompleteMultipartUpload and DeleteObjects, with
 * keys escaped as XML text.
 *
 * Ownership: every result struct owns its strings; release it with its
 * _free function (which also zeroes it). Out-parameters are written only
 * on success (or, for -EREMOTEIO, only the struct s3_error).
 */
#ifndef LITESTREAM_S3_XML_H
#define LITESTREAM_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_XML_TEXT_MAX 4096
#define S3_XML_DEPTH_MAX 16

/* An S3 <Error> document; fields not present are "". */
struct s3_error {
	char code[64];
	char message[256];
	char region[64];    /* AuthorizationHeaderMalformed: the bucket's region */
	char endpoint[256]; /* PermanentRedirect: where the bucket lives */
	char bucket[128];
	char key[256];
	char request_id[128];
};

struct s3_object {
	char *key;
	uint64_t size;
	int64_t mtime_ms; /* LastModified; 0 when absent */
	char *etag;       /* as sent, quotes included; "" when absent */
};

struct s3_list_page {
	struct s3_object *objects;
	size_t n_objects;
	char **prefixes; /* CommonPrefixes, each ending with the delimiter */
	size_t n_prefixes;
	bool truncated;
	char *next_token; /* NextContinuationToken, or NULL */
};

struct s3_delete_failure {
	char *key;
	char *code;
	char *message;
};

struct s3_delete_result {
	size_t n_deleted;
	struct s3_delete_failure *failures;
	size_t n_failures;
};

/* One part of a multipart upload, for the CompleteMultipartUpload body. */
struct s3_part {
	int number;       /* 1 .. 10000 */
	const char *etag; /* as UploadPart returned it, quotes included */
};

/*
 * ListObjectsV2. With <EncodingType>url</EncodingType> in the document,
 * keys, prefixes and the token are percent-decoded.
 */
int s3_xml_parse_list(const char *xml, size_t len, struct s3_list_page *out, struct s3_error *s3err,
		      char *err, size_t errlen);
void s3_list_page_free(struct s3_list_page *p);

/* InitiateMultipartUpload: *upload_id is malloc'd. A missing or empty UploadId is -EBADMSG. */
int s3_xml_parse_initiate(const char *xml, size_t len, char **upload_id, struct s3_error *s3err,
			  char *err, size_t errlen);

/* CompleteMultipartUpload: *etag is malloc'd ("" when the server sent none). */
int s3_xml_parse_complete(const char *xml, size_t len, char **etag, struct s3_error *s3err,
			  char *err, size_t errlen);

/* DeleteObjects (quiet or verbose). */
int s3_xml_parse_delete(const char *xml, size_t len, struct s3_delete_result *out,
			struct s3_error *s3err, char *err, size_t errlen);
void s3_delete_result_free(struct s3_delete_result *r);

/*
 * An <Error> document: 0 and *out filled, or -EBADMSG when the body is not
 * one (empty, not XML, another root); *out is then zeroed.
 */
int s3_xml_parse_error(const char *xml, size_t len, struct s3_error *out);

/*
 * ISO 8601 as S3 writes LastModified: YYYY-MM-DDTHH:MM:SS[.fraction]Z (or
 * an explicit +HH:MM / -HH:MM offset). 0 or -EINVAL (*ms untouched).
 */
int s3_xml_parse_time(const char *s, int64_t *ms);

/*
 * Request bodies, malloc'd and NUL-terminated, *len without the NUL.
 * complete: parts in the order given (S3 wants ascending numbers).
 * delete: quiet mode (only failures come back), at most 1000 keys.
 * 0, -EINVAL (no parts or keys, too many keys) or -ENOMEM.
 */
int s3_xml_complete_body(const struct s3_part *parts, size_t n, char **out, size_t *len);
int s3_xml_delete_body(const char *const *keys, size_t n, char **out, size_t *len);

#endif
