/*
 * The parts of test_sigv4 that live in their own files: AWS's published
 * test suite (sigv4_suite.c) and the botocore oracle (sigv4_oracle.c).
 */
#ifndef LITESTREAM_TEST_SIGV4_TESTS_H
#define LITESTREAM_TEST_SIGV4_TESTS_H

#include <stddef.h>

struct CMUnitTest;

/*
 * Fills *tests with one cmocka test per case directory of the suite at dir
 * (each case runs, or skips saying why), or with a single test that skips
 * when dir is absent. The array and its names are freed by
 * sigv4_suite_free(). Returns the number of tests, or -1 out of memory.
 */
int sigv4_suite_tests(const char *dir, struct CMUnitTest **tests);
void sigv4_suite_free(struct CMUnitTest *tests, int n);

/* Signs generated requests and compares each with the botocore oracle. */
void sigv4_test_oracle(void **state);

#endif
