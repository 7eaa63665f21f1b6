/*
 * Azure Blob Storage's request signing, in the shape of sigv4_sign() so
 * that the S3 client (s3/client.h: s3_client_config.sign) sends Azure
 * requests through the same queue, retries and timeouts as S3's.
 *
 * Shared Key (the account key): the request is reduced to the string to
 * sign
 *
 *   VERB \n Content-Encoding \n Content-Language \n Content-Length \n
 *   Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match \n
 *   If-None-Match \n If-Unmodified-Since \n Range \n
 *   x-ms-name:value \n ...            (every x-ms- header, lowercased, sorted)
 *   /ACCOUNT/ENCODED-PATH \n name:value ...   (query names lowercased, sorted)
 *
 * where Content-Length is empty for a zero-length body (version 2015-02-21
 * on) and Date is empty (x-ms-date is sent instead); its HMAC-SHA256 with
 * the base64-decoded key, in base64, goes into
 * "Authorization: SharedKey ACCOUNT:SIGNATURE". The path is the one on the
 * wire: with an endpoint such as Azurite's http://127.0.0.1:10000/ACCOUNT
 * it holds the account too, and is signed so (as Azure's SDKs do).
 *
 * SAS (a shared access signature token): nothing is signed here; the
 * token's parameters are appended to the query and no Authorization is
 * sent.
 *
 * Who is who in struct sigv4_request: access_key_id is the account name,
 * secret_key the base64 account key (NULL or "" with a SAS token),
 * session_token the SAS token ("sv=...&sig=...", no '?'), time the signing
 * time; region, service, payload_hash and flags are ignored. The result is
 * a struct sigv4_signed: target, string_to_sign, signature and
 * authorization ("" with SAS), amz_date the x-ms-date value, added[] the
 * headers to send (x-ms-date, x-ms-version, then Authorization with Shared
 * Key). Free it with sigv4_signed_free().
 *
 * Thread safety: no state; any thread. Secrets: the decoded key is wiped
 * before returning; the SAS token is in the result's target (it is sent).
 */
#ifndef LITESTREAM_AZURE_SHARED_KEY_H
#define LITESTREAM_AZURE_SHARED_KEY_H

#include "s3/sigv4.h"

#include <stdint.h>

/* The REST API version every request names (x-ms-version). */
#define ABS_API_VERSION "2021-08-06"

/*
 * Signs req, whose body is content_length bytes. 0 with *out; -EINVAL
 * with *why (static text) for a malformed request or a key that is not
 * base64; -ENOMEM or -EIO (libcrypto).
 */
int abs_sign(const struct sigv4_request *req, uint64_t content_length, struct sigv4_signed **out,
	     const char **why);

/* x-ms-date's form of t: "Mon, 07 Dec 2026 02:28:32 GMT" (29 characters and a NUL). */
void abs_http_date(time_t t, char buf[30]);

/* Parses that form back (List Blobs' Last-Modified). 0 with *ms, or -EINVAL. */
int abs_parse_http_date(const char *s, int64_t *ms);

#endif
