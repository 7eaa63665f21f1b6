/*
 * The bytes of a replica object (snapshot or WAL segment): an LZ4 frame
 * (lz4io.h), encrypted with age (age.h) when the replica has recipients,
 * exactly as Litestream 0.3.10-0.3.13 store them, under the same names.
 *
 * Writing: with recipients the frame streams through the age writer as it
 * is compressed; a replica with recipients never writes plaintext.
 * Reading sniffs the first bytes: an age file is opened with the
 * identities (none configured, or none that opens it: -ENOKEY, "encrypted
 * with age, ..."), anything else is read as an LZ4 frame. A plaintext
 * object in an encrypted replica is read as it is (an older generation,
 * written before encryption was turned on). Memory stays bounded (the
 * buffers of lz4io and age), whatever the object's size.
 *
 * Blocking, for the threadpool; k is borrowed and only read.
 */
#ifndef LITESTREAM_OBJECT_CODEC_H
#define LITESTREAM_OBJECT_CODEC_H

#include "core/age_keys.h"
#include "core/lz4io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether objects written with k are encrypted. */
bool object_codec_encrypts(const struct age_keys *k);

/*
 * Encodes len bytes of in from off into out (at its offset); *out_size
 * gets the object's size. 0, -EIO when in is shorter than asked, or
 * another -errno.
 */
int object_encode(int in, uint64_t off, uint64_t len, int out, const struct age_keys *k,
		  uint64_t *out_size);

/*
 * Decodes an object read through read_fn (lz4io_read_fn) into out:
 * *size gets the content's size. 0, -ENOKEY, -EBADMSG or -errno with a
 * reason in err ("write: ..." when out failed, as lz4io does).
 */
int object_decode_from(lz4io_read_fn read_fn, void *ctx, int out, const struct age_keys *k,
		       uint64_t *size, char *err, size_t errlen);

/* The same from a descriptor at its current offset. */
int object_decode(int in, int out, const struct age_keys *k, uint64_t *size, char *err,
		  size_t errlen);

#endif
