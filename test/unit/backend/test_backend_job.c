/*
 * The blocking backends' operation record: what it copies, and how it
 * answers (the right callback, a message for every failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "backend/backend_job.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct answer {
	int calls;
	int rc;
	char err[128];
	bool listed;
	bool had_list;
};

static void on_done(void *arg, int rc, const char *err)
{
	struct answer *a = arg;

	a->calls++;
	a->rc = rc;
	snprintf(a->err, sizeof(a->err), "%s", err ? err : "(null)");
}

static void on_listed(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct answer *a = arg;

	on_done(arg, rc, err);
	a->listed = true;
	a->had_list = list != NULL;
}

static void test_init_copies_the_arguments(void **state)
{
	char k1[] = "a/1", k2[] = "a/2";
	char *keys[] = {k1, k2};
	struct backend_job j;
	int owner;

	(void)state;
	assert_int_equal(backend_job_init(&j, &owner, BACKEND_JOB_REMOVE, NULL, NULL, keys, 2), 0);
	k1[0] = 'x';
	assert_ptr_equal(j.req.data, &owner);
	assert_int_equal(j.n_keys, 2);
	assert_string_equal(j.keys[0], "a/1");
	assert_string_equal(j.keys[1], "a/2");
	assert_null(j.key);
	backend_job_release(&j);
	assert_null(j.keys);
	assert_int_equal(j.n_keys, 0);

	assert_int_equal(backend_job_init(&j, &owner, BACKEND_JOB_PUT, "k", "/tmp/f", NULL, 0), 0);
	assert_string_equal(j.key, "k");
	assert_string_equal(j.local, "/tmp/f");
	backend_job_release(&j);
}

static void test_answer_calls_the_kind_s_callback(void **state)
{
	struct backend_job j;
	struct answer a = {0};

	(void)state;
	assert_int_equal(backend_job_init(&j, NULL, BACKEND_JOB_GET, "k", "/tmp/f", NULL, 0), 0);
	backend_job_callback(&j, on_done, NULL, &a);
	backend_job_answer(&j, 0, "ignored on success");
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.rc, 0);
	assert_string_equal(a.err, "(null)");
	backend_job_release(&j);

	memset(&a, 0, sizeof(a));
	assert_int_equal(backend_job_init(&j, NULL, BACKEND_JOB_LIST, "dir", NULL, NULL, 0), 0);
	backend_job_callback(&j, NULL, on_listed, &a);
	backend_job_answer(&j, -EACCES, "open dir: denied");
	assert_true(a.listed);
	assert_true(a.had_list);
	assert_int_equal(a.rc, -EACCES);
	assert_string_equal(a.err, "open dir: denied");
	backend_job_release(&j);
}

static void test_a_failure_without_a_message_gets_one(void **state)
{
	struct backend_job j;
	struct answer a = {0};

	(void)state;
	assert_int_equal(backend_job_init(&j, NULL, BACKEND_JOB_PUT, "k", "/f", NULL, 0), 0);
	backend_job_callback(&j, on_done, NULL, &a);
	backend_job_answer(&j, -ENOSPC, "");
	assert_int_equal(a.rc, -ENOSPC);
	assert_string_equal(a.err, strerror(ENOSPC));
	backend_job_release(&j);
}

static void test_refuse_answers_without_a_job(void **state)
{
	struct answer a = {0}, b = {0};

	(void)state;
	backend_job_refuse(on_done, NULL, &a, -ECANCELED, "cancelled");
	backend_job_refuse(NULL, on_listed, &b, -ENOMEM, "out of memory");
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.rc, -ECANCELED);
	assert_false(a.listed);
	assert_true(b.listed);
	assert_false(b.had_list);
	assert_string_equal(b.err, "out of memory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_copies_the_arguments),
		cmocka_unit_test(test_answer_calls_the_kind_s_callback),
		cmocka_unit_test(test_a_failure_without_a_message_gets_one),
		cmocka_unit_test(test_refuse_answers_without_a_job),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
