/*
 * Server-side encryption and the storage class, as request headers.
 *
 *   sse = AES256           x-amz-server-side-encryption: AES256 (SSE-S3)
 *   sse = aws:kms          ... aws:kms, with sse-kms-key-id as
 *                          x-amz-server-side-encryption-aws-kms-key-id
 *   sse-customer-key = K   SSE-C: x-amz-server-side-encryption-customer-
 *                          algorithm (AES256), -customer-key (K, the base64
 *                          of 32 bytes) and -customer-key-MD5 (the base64
 *                          MD5 of those 32 bytes)
 *   storage-class = C      x-amz-storage-class: C
 *
 * Which request gets what (S3's rules): the requests that create an
 * object (PutObject, CreateMultipartUpload) get everything; those that
 * read or write an object's data (UploadPart, GetObject, HeadObject) get
 * the SSE-C headers alone, since S3 cannot read an SSE-C object without
 * its key; the rest (list, delete, complete, abort) get nothing.
 *
 * The values were checked when the configuration was read (config/); here
 * the key is decoded once more to compute its MD5. The customer key is a
 * secret: it is sent in a header, never logged, and wiped when freed.
 */
#ifndef LITESTREAM_S3_SSE_H
#define LITESTREAM_S3_SSE_H

#include "s3/sigv4.h"

#include <stdbool.h>
#include <stddef.h>

#define S3_SSE_C_KEY_BYTES 32
#define S3_SSE_MAX_HEADERS 6

struct s3_sse {
	char *mode;          /* "AES256", "aws:kms", or NULL */
	char *kms_key_id;    /* with aws:kms, or NULL */
	char *storage_class; /* or NULL */
	char *customer_key;  /* base64, or NULL */
	char customer_key_md5[SIGV4_MD5_BASE64_LEN + 1];
};

/*
 * The base64 MD5 of the 32-byte key whose base64 is key, for
 * x-amz-server-side-encryption-customer-key-MD5. 0; -EINVAL when key is
 * not base64 or not 32 bytes (why says which, never the key); -ENOMEM/-EIO.
 */
int s3_sse_c_key_md5(const char *key, char md5[SIGV4_MD5_BASE64_LEN + 1], char *why, size_t n);

/*
 * Copies the settings (any may be NULL or "") into *out. 0, -EINVAL (a bad
 * customer key, with why) or -ENOMEM; *out untouched on failure.
 */
int s3_sse_init(struct s3_sse *out, const char *mode, const char *kms_key_id,
		const char *storage_class, const char *customer_key, char *why, size_t n);

/* Wipes and frees what s holds; s is zeroed. */
void s3_sse_free(struct s3_sse *s);

/*
 * The headers for a request that creates an object (new_object) or reads
 * or writes its data (object_data) into h (room for S3_SSE_MAX_HEADERS);
 * the values point into s. Returns how many.
 */
size_t s3_sse_headers(const struct s3_sse *s, bool new_object, bool object_data,
		      struct sigv4_header *h);

#endif
