/*
 * What the SigV4 files share; not part of sigv4.h's contract.
 *
 *   sigv4.c            key derivation, the string to sign, the signature
 *                      and packing the result (sigv4_sign).
 *   sigv4_canonical.c  percent-encoding, the date and the canonical request
 *                      (path, sorted query, canonical and signed headers).
 *   sigv4_validate.c   what a struct sigv4_request may hold.
 *   sigv4_digest.c     hex SHA-256 and base64 MD5 of buffers and files.
 *
 * Same rules as sigv4.h: no mutable global state, any thread, 0 or a
 * negative errno; out-parameters are written only on success unless said.
 */
#ifndef LITESTREAM_S3_SIGV4_INTERNAL_H
#define LITESTREAM_S3_SIGV4_INTERNAL_H

#include "s3/sigv4.h"
#include "util/strbuf.h"

#include <stddef.h>
#include <time.h>

/* n bytes as lowercase hex into out (2n + 1 bytes, NUL-terminated). */
void sigv4_hex(const unsigned char *in, size_t n, char *out);

/* 0, or -EINVAL with *why saying which field of r cannot be signed. */
int sigv4_validate(const struct sigv4_request *r, const char **why);

/* t as YYYYMMDDTHHMMSSZ (UTC); -EINVAL outside years 0000-9999. */
int sigv4_amz_date(time_t t, char out[SIGV4_AMZ_DATE_LEN + 1]);

/*
 * Appends r's canonical request to creq (its last line the payload hash
 * given), the request-target (encoded path and query) to target and the
 * signed-headers list to names; date and payload are also signed as the
 * x-amz-date and x-amz-content-sha256 headers. r must have passed
 * sigv4_validate. 0 or -ENOMEM; the caller frees the three buffers either way.
 */
int sigv4_canonical_request(const struct sigv4_request *r, const char *date, const char *payload,
			    struct strbuf *creq, struct strbuf *target, struct strbuf *names);

#endif
