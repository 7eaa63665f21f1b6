/*
 * The XML of Azure Blob Storage that the abs backend reads and writes:
 *
 *   EnumerationResults   List Blobs (restype=container&comp=list with a
 *                        delimiter): Blobs > Blob (Name, Properties >
 *                        Content-Length, Last-Modified, Etag) and Blobs >
 *                        BlobPrefix > Name, then NextMarker
 *   BlockList            the body of Put Block List (written)
 *
 * A listing page comes back as the S3 client's struct s3_list_page
 * (s3/xml.h), so that the S3 backend's list operation serves both:
 * objects are the blobs, prefixes the blob prefixes, truncated and
 * next_token say whether NextMarker is set and what it is. The engine is
 * s3/xml_engine.h's, with its bounds, its refusal of a DOCTYPE and its
 * <Error> handling (-EREMOTEIO with the struct s3_error filled).
 * Pure; any thread.
 */
#ifndef LITESTREAM_AZURE_BLOB_XML_H
#define LITESTREAM_AZURE_BLOB_XML_H

#include "s3/xml.h"

#include <stddef.h>

/* List Blobs. 0, -EREMOTEIO (an <Error>), -EBADMSG with err, or -ENOMEM. */
int abs_xml_parse_list(const char *xml, size_t len, struct s3_list_page *out,
		       struct s3_error *err_doc, char *err, size_t errlen);

/*
 * <BlockList><Latest>ID</Latest>...</BlockList> for n block IDs (base64,
 * nothing to escape), malloc'd and NUL-terminated, *len without the NUL.
 * 0, -EINVAL (n is 0) or -ENOMEM.
 */
int abs_xml_block_list(const char *const *ids, size_t n, char **out, size_t *len);

#endif
