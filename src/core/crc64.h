/*
 * CRC-64 as Go's hash/crc64 computes it with the ISO table
 * (CRC-64/GO-ISO: polynomial 0x1b reflected, init and final xor all ones;
 * check value of "123456789" is 0xb90956c775a41001). Litestream compares
 * primary and replica databases with it.
 *
 * Usage: crc = 0; crc = crc64_update(crc, buf, n); ... the value is the
 * CRC of everything passed so far (the xors are applied inside, as Go's
 * crc64.Update does). Thread-safe after crc64_init() (called implicitly,
 * guarded by pthread_once).
 */
#ifndef LITESTREAM_CRC64_H
#define LITESTREAM_CRC64_H

#include <stddef.h>
#include <stdint.h>

uint64_t crc64_update(uint64_t crc, const void *buf, size_t n);

/* CRC-64 of a whole file. Returns 0 or -errno. */
int crc64_file(const char *path, uint64_t *out);

#endif
