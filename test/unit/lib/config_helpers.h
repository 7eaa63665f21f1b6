/*
 * Helpers for the unit tests of the configuration loader (test_config.c,
 * test_config_ini.c): a scratch directory per test holding one file, and
 * loading text through config_load(). Every helper fails the test (cmocka
 * fail_msg) when what it checks does not hold.
 */
#ifndef LITESTREAM_TEST_CONFIG_HELPERS_H
#define LITESTREAM_TEST_CONFIG_HELPERS_H

#include "config/config.h"

#include <stddef.h>

/* Each test gets a scratch directory holding its config file. */
struct fixture {
	char dir[256];
	char path[300]; /* dir + "/litestream.conf" */
};

/* cmocka setup and teardown: *state is a struct fixture. */
int setup(void **state);
int teardown(void **state);

/* Writes n bytes of text to path. */
void write_file(const char *path, const char *text, size_t n);

/* Writes text as the fixture's config file and loads it. */
int load(struct fixture *f, const char *text, struct config *c, char *err, size_t errlen);

/* The load succeeds (*c is then the caller's to free). */
void load_ok(struct fixture *f, const char *text, struct config *c);

/* The load fails with -EINVAL, *out is zeroed, and the message is PATH + want. */
void load_bad(struct fixture *f, const char *text, const char *want);

#endif
