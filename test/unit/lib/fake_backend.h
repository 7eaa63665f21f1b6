/*
 * A scripted in-memory backend for unit tests (struct backend_ops of
 * backend.h). Objects live in a struct store that the test owns, so that a
 * second backend on the same store sees what a first one stored (a
 * restart). Every operation answers from the loop on a later turn, never
 * inside the call; puts answer as the test scripted them: stored at once,
 * failed with an error, or held until fake_backend_release(). Every put is
 * recorded in the store, in order, answered or not. Failures of the test's
 * own expectations (a malformed upload) fail the test (cmocka).
 */
#ifndef LITESTREAM_TEST_FAKE_BACKEND_H
#define LITESTREAM_TEST_FAKE_BACKEND_H

#include "backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FAKE_MAX_OBJECTS 256
#define FAKE_MAX_PUTS 256

struct store {
	char *keys[FAKE_MAX_OBJECTS];
	uint8_t *data[FAKE_MAX_OBJECTS];
	size_t size[FAKE_MAX_OBJECTS];
	size_t n;
	/* Every put that reached a backend, in order, answered or not. */
	char *puts[FAKE_MAX_PUTS];
	uint64_t put_wal_bytes[FAKE_MAX_PUTS]; /* uncompressed bytes, once stored */
	int put_rc[FAKE_MAX_PUTS];
	size_t n_puts;
};

/* Frees what the store holds and zeroes it. */
void store_clear(struct store *s);

enum fake_outcome { ANSWER_OK, ANSWER_FAIL, ANSWER_HOLD };

struct fake;

/* A backend on store (borrowed). Closed with backend_close(), then freed by its owner. */
struct fake *fake_backend_new(uv_loop_t *loop, struct store *store);
struct backend *fake_backend_base(struct fake *f);

/* How the next put not yet scripted answers (rc for ANSWER_FAIL); then ANSWER_OK. */
void fake_backend_script_put(struct fake *f, enum fake_outcome how, int rc);

/* Answers the oldest held put: stored (rc 0) or failed with rc. */
void fake_backend_release(struct fake *f, int rc);

/* Puts held; whether nothing at all waits for an answer. */
size_t fake_backend_held(const struct fake *f);
bool fake_backend_idle(const struct fake *f);

#endif
