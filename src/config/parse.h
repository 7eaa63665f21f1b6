/*
 * Small value parsers shared by the config file (config_options.c) and the
 * replica URLs (url.c): booleans and sizes as both write them. They keep
 * no state, allocate nothing and are safe from any thread.
 */
#ifndef LITESTREAM_PARSE_H
#define LITESTREAM_PARSE_H

#include <stdbool.h>
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

#endif
