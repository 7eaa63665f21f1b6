/*
 * Server-side encryption headers; see sse.h. The raw key exists only in a
 * stack buffer while its MD5 is computed, and is wiped right after.
 */
#include "s3/sse.h"
#include "util/base64.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3_sse_c_key_md5(const char *key, char md5[SIGV4_MD5_BASE64_LEN + 1], char *why, size_t n)
{
	unsigned char raw[S3_SSE_C_KEY_BYTES];
	size_t len = 0;
	int rc = base64_decode(key, raw, sizeof(raw), &len);

	if (rc == -EINVAL) {
		snprintf(why, n, "not base64 (want the base64 of a %d-byte key)", S3_SSE_C_KEY_BYTES);
	} else if (rc == -ENOSPC || len != S3_SSE_C_KEY_BYTES) {
		snprintf(why, n, "a key of %zu bytes (want %d: AES-256)", len, S3_SSE_C_KEY_BYTES);
		rc = -EINVAL;
	} else {
		rc = sigv4_md5_base64(raw, len, md5);
	}
	explicit_bzero(raw, sizeof(raw));
	return rc;
}

static bool given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static char *dup_given(const char *s, bool *oom)
{
	char *d;

	if (!given(s))
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = true;
	return d;
}

int s3_sse_init(struct s3_sse *out, const char *mode, const char *kms_key_id,
		const char *storage_class, const char *customer_key, char *why, size_t n)
{
	struct s3_sse s;
	bool oom = false;
	int rc;

	memset(&s, 0, sizeof(s));
	if (given(customer_key) &&
	    (rc = s3_sse_c_key_md5(customer_key, s.customer_key_md5, why, n)) != 0)
		return rc;
	s.mode = dup_given(mode, &oom);
	s.kms_key_id = dup_given(kms_key_id, &oom);
	s.storage_class = dup_given(storage_class, &oom);
	s.customer_key = dup_given(customer_key, &oom);
	if (oom) {
		s3_sse_free(&s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void s3_sse_free(struct s3_sse *s)
{
	if (s->customer_key != NULL)
		explicit_bzero(s->customer_key, strlen(s->customer_key));
	free(s->customer_key);
	free(s->mode);
	free(s->kms_key_id);
	free(s->storage_class);
	memset(s, 0, sizeof(*s));
}

size_t s3_sse_headers(const struct s3_sse *s, bool new_object, bool object_data,
		      struct sigv4_header *h)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	if (new_object && s->mode != NULL)
		h[n++] = (struct sigv4_header){"x-amz-server-side-encryption", s->mode};
	if (new_object && s->kms_key_id != NULL)
		h[n++] = (struct sigv4_header){"x-amz-server-side-encryption-aws-kms-key-id",
					       s->kms_key_id};
	if (new_object && s->storage_class != NULL)
		h[n++] = (struct sigv4_header){"x-amz-storage-class", s->storage_class};
	if ((new_object || object_data) && s->customer_key != NULL) {
		h[n++] = (struct sigv4_header){"x-amz-server-side-encryption-customer-algorithm",
					       "AES256"};
		h[n++] = (struct sigv4_header){"x-amz-server-side-encryption-customer-key",
					       s->customer_key};
		h[n++] = (struct sigv4_header){"x-amz-server-side-encryption-customer-key-MD5",
					       s->customer_key_md5};
	}
	return n;
}
