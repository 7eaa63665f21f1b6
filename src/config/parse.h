/*
 * Small value parsers shared by the config file (config_options.c) and the
 * replica URLs (url.c): booleans and sizes as both write them. They keep
 * no state, allocate nothing and are safe from any thread.
 */
#ifndef LITESTREAM_PARSE_H
#define LITESTREAM_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Booleans as the file and replica URLs write them: true/false, yes/no,
 * on/off, 1/0, in any case. 0 or -EINVAL (*out untouched).
 */
int parse_bool(const char *s, bool *out);

/*
 * Sizes in bytes: a decimal integer with an optional unit, B, K/KB/KiB,
 * M/MB/MiB or G/GB/GiB in any case, a space allowed before it. Every unit
 * is binary (MB = MiB = 1048576), as AWS's "5 MB" minimum part size means
 * 5 MiB. 0 or -EINVAL (*out untouched).
 */
int parse_size(const char *s, int64_t *out);

/*
 * The S3 server-side encryption settings (s3/sse.h has what each sends),
 * as the `sse`, `sse-customer-key` and `storage-class` keys and query
 * parameters take them. Each returns 0, or -EINVAL with what is wrong in
 * why (never the value of a customer key, which is a secret):
 *
 *   sse               AES256 or aws:kms, exactly
 *   sse-customer-key  the base64 of 32 bytes (an AES-256 key)
 *   storage-class     letters, digits, '_' and '-', at most 64 (stores
 *                     other than AWS name their own classes); GLACIER and
 *                     DEEP_ARCHIVE are refused, since an object there
 *                     cannot be read back without a restore request
 */
int parse_sse(const char *s, char *why, size_t n);
int parse_sse_customer_key(const char *s, char *why, size_t n);
int parse_storage_class(const char *s, char *why, size_t n);

#endif
