/*
 * utf8.h: recognising well-formed UTF-8 (RFC 3629).
 *
 * Contract: utf8_seq_len() never reads past s[len - 1]. A sequence is
 * well-formed when it is the shortest encoding of a code point in
 * U+0000..U+10FFFF other than a surrogate; anything else (a stray
 * continuation byte, an overlong form, C0/C1/F5..FF lead bytes, a sequence
 * cut short) has length 0, and callers count or replace one byte of it.
 */
#ifndef LITESTREAM_UTIL_UTF8_H
#define LITESTREAM_UTIL_UTF8_H

#include <stddef.h>

/* The length (1..4) of the well-formed sequence at s[0..len), 0 if none. */
size_t utf8_seq_len(const unsigned char *s, size_t len);

#endif
