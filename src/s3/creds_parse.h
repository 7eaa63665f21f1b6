/*
 * The documents that temporary credentials arrive in, parsed into a
 * struct s3_credentials (credentials.h) with its expiry:
 *
 *   STS (XML, expat)     AssumeRoleWithWebIdentityResponse >
 *                        AssumeRoleWithWebIdentityResult > Credentials >
 *                        AccessKeyId, SecretAccessKey, SessionToken,
 *                        Expiration; any other *Response > *Result >
 *                        Credentials reads the same (AssumeRole,
 *                        GetSessionToken). An ErrorResponse > Error (Type,
 *                        Code, Message) is an error answer.
 *   container (JSON)     AccessKeyId, SecretAccessKey, Token, Expiration
 *                        (ECS, EKS Pod Identity); an error answer is
 *                        {"code": ..., "message": ...}.
 *   IMDS (JSON)          Code ("Success"), AccessKeyId, SecretAccessKey,
 *                        Token, Expiration (EC2 instance metadata).
 *   process (JSON)       Version (1), AccessKeyId, SecretAccessKey,
 *                        SessionToken, Expiration (credential_process).
 *
 * Expiration is RFC 3339 ("2026-11-25T09:23:06Z", fractions and offsets
 * allowed) and optional: without it the credentials never expire. A key
 * id and a secret are required; the token is optional (NULL when absent or
 * empty). A field of the wrong type is an error, not skipped.
 *
 * Messages (err) name the document and the field, never a value: every
 * value here may be a secret. Documents are capped at
 * S3_CREDS_DOC_MAX bytes. Pure functions: no I/O, any thread. *out is
 * written only on success and then owns its strings (s3_credentials_free).
 */
#ifndef LITESTREAM_S3_CREDS_PARSE_H
#define LITESTREAM_S3_CREDS_PARSE_H

#include "s3/credentials.h"

#include <stddef.h>

#define S3_CREDS_DOC_MAX (64 * 1024)

/* The <Error> of an STS ErrorResponse; fields not present are "". */
struct s3_sts_error {
	char type[32];
	char code[64];
	char message[256];
};

/*
 * An STS answer. 0 with *out; -EREMOTEIO for an ErrorResponse (*e filled);
 * -EBADMSG (not XML, another document, a field missing) or -ENOMEM with
 * a message in err.
 */
int s3_sts_parse(const char *xml, size_t len, struct s3_credentials *out, struct s3_sts_error *e,
		 char *err, size_t errlen);

enum s3_creds_json {
	S3_CREDS_CONTAINER, /* the container credentials endpoint */
	S3_CREDS_IMDS,      /* the instance metadata service */
	S3_CREDS_PROCESS,   /* credential_process output, Version 1 */
};

/* One JSON document of kind. 0 with *out, or -EBADMSG / -ENOMEM with err. */
int s3_creds_json_parse(enum s3_creds_json kind, const char *json, size_t len,
			struct s3_credentials *out, char *err, size_t errlen);

/*
 * What an error answer of the container endpoint (or IMDS) says: "CODE:
 * MESSAGE" from {"code", "message"} (either case: "Code", "Message") into
 * buf, or "" when the body is not such a document.
 */
void s3_creds_json_error(const char *json, size_t len, char *buf, size_t n);

#endif
