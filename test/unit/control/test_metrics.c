#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "db/db.h"
#include "control/metrics.h"
#include "replica/replica.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_format_value(void **state)
{
	static const struct {
		double v;
		const char *out;
	} cases[] = {
		{0, "0"}, {1, "1"}, {-3, "-3"}, {4096, "4096"}, {12345678901234.0, "12345678901234"},
		{9007199254740991.0, "9007199254740991"}, {0.5, "0.5"}, {0.1, "0.1"}, {1e-7, "1e-07"},
		{2.25, "2.25"}, {1.0 / 3.0, "0.3333333333333333"}, {1e300, "1e+300"},
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		metrics_format_value(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
		assert_true(strtod(buf, NULL) == cases[i].v); /* reads back exactly */
	}
	metrics_format_value(NAN, buf, sizeof(buf));
	assert_string_equal(buf, "NaN");
	metrics_format_value(INFINITY, buf, sizeof(buf));
	assert_string_equal(buf, "+Inf");
	metrics_format_value(-INFINITY, buf, sizeof(buf));
	assert_string_equal(buf, "-Inf");
}

static void test_escape(void **state)
{
	struct metrics_buf b;

	metrics_buf_init(&b);
	metrics_escape_label(&b, "a\\b\"c\nd");
	assert_string_equal(b.data, "a\\\\b\\\"c\\nd");
	metrics_buf_free(&b);

	metrics_buf_init(&b);
	metrics_escape_label(&b, "plain/path.db");
	assert_string_equal(b.data, "plain/path.db");
	metrics_buf_free(&b);

	/* HELP escapes backslash and newline but not quotes. */
	metrics_buf_init(&b);
	metrics_family(&b, "x_total", "counter", "say \"hi\"\\\nbye");
	assert_string_equal(b.data, "# HELP x_total say \"hi\"\\\\\\nbye\n# TYPE x_total counter\n");
	metrics_buf_free(&b);
}

static void test_sample(void **state)
{
	struct metrics_buf b;
	struct metrics_label l[2] = {{"db", "/tmp/we\"ird\ndb"}, {"mode", "PASSIVE"}};

	metrics_buf_init(&b);
	metrics_sample(&b, "litestream_checkpoint_count", l, 2, 7);
	metrics_sample(&b, "process_open_fds", NULL, 0, 12);
	metrics_sample(&b, "litestream_sync_seconds", l, 1, 0.25);
	assert_string_equal(b.data, "litestream_checkpoint_count{db=\"/tmp/we\\\"ird\\ndb\",mode=\"PASSIVE\"} 7\n"
				    "process_open_fds 12\n"
				    "litestream_sync_seconds{db=\"/tmp/we\\\"ird\\ndb\"} 0.25\n");
	metrics_buf_free(&b);
}

static void test_buffer_growth(void **state)
{
	struct metrics_buf b;
	char chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	metrics_buf_init(&b);
	for (int i = 0; i < 100; i++)
		metrics_buf_append(&b, chunk, sizeof(chunk));
	assert_false(b.failed);
	assert_int_equal(b.len, 100000);
	assert_int_equal(strlen(b.data), 100000);
	metrics_buf_free(&b);
}

/* ---- the whole exposition, from hand-made databases and replicas ---------- */

static const struct backend_ops file_ops = {.type = "file"};
static const struct backend_ops s3_ops = {.type = "s3"};

struct fixture {
	struct db_config cfg[2];
	struct replica_config rcfg[3];
	struct db db[2];
	struct replica rep[3];
	struct replica *reps_a[2], *reps_b[1];
	struct backend be[3];
};

static uint64_t fake_wal_bytes(const struct replica *r, void *arg)
{
	return strcmp(r->name, "a-file") == 0 ? 5000 : 0;
}

static void make_fixture(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->cfg[0].name = (char *)"a";
	f->cfg[0].path = (char *)"/data/a.db";
	f->cfg[1].name = (char *)"b";
	f->cfg[1].path = (char *)"/data/we\"ird.db";
	for (int i = 0; i < 2; i++) {
		f->db[i].cfg = &f->cfg[i];
		f->db[i].path = f->cfg[i].path;
	}
	f->db[0].pos_valid = true;
	strcpy(f->db[0].pos.generation, "0123456789abcdef");
	f->db[0].pos.index = 3;
	f->db[0].pos.offset = 8272;
	f->db[0].stats.db_size = 4096 * 10;
	f->db[0].stats.wal_size = 8272;
	f->db[0].stats.total_wal_bytes = 123456;
	f->db[0].stats.sync_count = 42;
	f->db[0].stats.sync_error_count = 1;
	f->db[0].stats.sync_seconds = 0.5;
	f->db[0].stats.checkpoint_count[CHECKPOINT_PASSIVE] = 3;
	f->db[0].stats.checkpoint_count[CHECKPOINT_TRUNCATE] = 1;
	f->db[0].stats.checkpoint_error_count[CHECKPOINT_TRUNCATE] = 1;
	f->db[0].stats.checkpoint_seconds[CHECKPOINT_PASSIVE] = 0.125;

	const char *names[3] = {"a-file", "a-s3", "b-file"};
	for (int i = 0; i < 3; i++) {
		f->rcfg[i].name = (char *)names[i];
		f->rep[i].name = names[i];
		f->rep[i].cfg = &f->rcfg[i];
		f->be[i].ops = i == 1 ? &s3_ops : &file_ops;
		f->rep[i].backend = &f->be[i];
		f->rep[i].db = i < 2 ? &f->db[0] : &f->db[1];
	}
	/* a-file holds 3:4152 of the database's 3:8272; a-s3 does not know its position yet. */
	f->rep[0].located = true;
	f->rep[0].pos = f->db[0].pos;
	f->rep[0].pos.offset = 4152;
	f->rep[0].stats.put_count = 10;
	f->rep[0].stats.put_bytes = 2000;
	f->rep[0].stats.list_count = 4;
	f->rep[0].stats.validations_ok = 9;
	f->rep[0].stats.validations_failed = 2;
	f->rep[0].stats.verifies_ok = 3;
	f->rep[0].stats.verifies_failed = 1;
	f->rep[0].stats.last_verify_ok_ms = 1700000000500;
	f->rep[1].stats.put_count = 5;
	f->rep[1].stats.get_count = 2;
	f->rep[1].stats.get_bytes = 300;
	f->rep[2].stats.put_count = 1;
	f->rep[2].stats.delete_count = 6;
	f->reps_a[0] = &f->rep[0];
	f->reps_a[1] = &f->rep[1];
	f->reps_b[0] = &f->rep[2];
	f->db[0].replicas = f->reps_a;
	f->db[0].n_replicas = 2;
	f->db[1].replicas = f->reps_b;
	f->db[1].n_replicas = 1;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void test_write_all(void **state)
{
	struct fixture f;
	struct db *dbs[2];
	struct metrics_buf b;
	struct metrics_process proc = {1.5, 1048576, 2097152, 7, 1024, 1700000000.25};

	make_fixture(&f);
	dbs[0] = &f.db[0];
	dbs[1] = &f.db[1];
	metrics_buf_init(&b);
	metrics_write(&b, dbs, 2, fake_wal_bytes, NULL, &proc);
	assert_false(b.failed);

	/* Litestream's names, types and labels. */
	static const char *const expect[] = {
		"# TYPE litestream_db_size gauge",
		"litestream_db_size{db=\"/data/a.db\"} 40960",
		"litestream_db_size{db=\"/data/we\\\"ird.db\"} 0",
		"litestream_wal_size{db=\"/data/a.db\"} 8272",
		"# TYPE litestream_total_wal_bytes counter",
		"litestream_total_wal_bytes{db=\"/data/a.db\"} 123456",
		"litestream_shadow_wal_index{db=\"/data/a.db\"} 3",
		"litestream_shadow_wal_size{db=\"/data/a.db\"} 8272",
		"# TYPE litestream_sync_count counter",
		"litestream_sync_count{db=\"/data/a.db\"} 42",
		"litestream_sync_error_count{db=\"/data/a.db\"} 1",
		"litestream_sync_seconds{db=\"/data/a.db\"} 0.5",
		"litestream_checkpoint_count{db=\"/data/a.db\",mode=\"PASSIVE\"} 3",
		"litestream_checkpoint_count{db=\"/data/a.db\",mode=\"FULL\"} 0",
		"litestream_checkpoint_count{db=\"/data/a.db\",mode=\"TRUNCATE\"} 1",
		"litestream_checkpoint_error_count{db=\"/data/a.db\",mode=\"TRUNCATE\"} 1",
		"litestream_checkpoint_seconds{db=\"/data/a.db\",mode=\"PASSIVE\"} 0.125",
		"# TYPE litestream_replica_wal_index gauge",
		"litestream_replica_wal_index{db=\"/data/a.db\",name=\"a-file\"} 3",
		"litestream_replica_wal_offset{db=\"/data/a.db\",name=\"a-file\"} 4152",
		"litestream_replica_wal_bytes{db=\"/data/a.db\",name=\"a-file\"} 5000",
		"litestream_replica_wal_bytes{db=\"/data/a.db\",name=\"a-s3\"} 0",
		"litestream_replica_lag_seconds{db=\"/data/a.db\",name=\"a-file\"} 0",
		"litestream_replica_pending_bytes{db=\"/data/a.db\",name=\"a-file\"} 4120",
		"litestream_replica_validation_total{db=\"/data/a.db\",name=\"a-file\",status=\"ok\"} 9",
		"litestream_replica_validation_total{db=\"/data/a.db\",name=\"a-file\",status=\"error\"} 2",
		"litestream_replica_validation_total{db=\"/data/a.db\",name=\"a-s3\",status=\"error\"} 0",
		"litestream_replica_verify_total{db=\"/data/a.db\",name=\"a-file\",status=\"ok\"} 3",
		"litestream_replica_verify_total{db=\"/data/a.db\",name=\"a-file\",status=\"error\"} 1",
		"litestream_replica_verify_total{db=\"/data/a.db\",name=\"a-s3\",status=\"ok\"} 0",
		"litestream_replica_last_verify_ok_timestamp_seconds{db=\"/data/a.db\",name=\"a-file\"} 1700000000.5",
		"# TYPE litestream_replica_operation_total counter",
		"litestream_replica_operation_total{replica_type=\"file\",operation=\"PUT\"} 11",
		"litestream_replica_operation_total{replica_type=\"file\",operation=\"LIST\"} 4",
		"litestream_replica_operation_total{replica_type=\"file\",operation=\"DELETE\"} 6",
		"litestream_replica_operation_total{replica_type=\"s3\",operation=\"PUT\"} 5",
		"litestream_replica_operation_total{replica_type=\"s3\",operation=\"GET\"} 2",
		"litestream_replica_operation_bytes{replica_type=\"file\",operation=\"PUT\"} 2000",
		"litestream_replica_operation_bytes{replica_type=\"s3\",operation=\"GET\"} 300",
		"# TYPE process_cpu_seconds_total counter",
		"process_cpu_seconds_total 1.5",
		"process_resident_memory_bytes 1048576",
		"process_virtual_memory_bytes 2097152",
		"process_open_fds 7",
		"process_max_fds 1024",
		"process_start_time_seconds 1700000000.25",
	};
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		if (!has_line(b.data, expect[i]))
			fail_msg("missing line: %s\n--- output ---\n%s", expect[i], b.data);

	/* Positions unknown: no index/offset sample, and no shadow index without a position. */
	assert_null(strstr(b.data, "litestream_replica_wal_index{db=\"/data/a.db\",name=\"a-s3\"}"));
	assert_null(strstr(b.data, "litestream_shadow_wal_index{db=\"/data/we"));
	/* Bytes are counted for GET and PUT only. */
	assert_null(strstr(b.data, "litestream_replica_operation_bytes{replica_type=\"file\",operation=\"LIST\"}"));

	/*
	 * Shape: each family's samples come right after its HELP and TYPE,
	 * every sample belongs to the family declared last.
	 */
	char family[128] = "";
	int helps = 0, types = 0;
	for (char *line = b.data; *line != '\0';) {
		char *nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			helps++;
			sscanf(line + 7, "%127s", family);
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[128];
			types++;
			sscanf(line + 7, "%127s", name);
			assert_string_equal(name, family);
		} else {
			size_t n = strlen(family);
			assert_true(n > 0);
			if (strncmp(line, family, n) != 0 || (line[n] != '{' && line[n] != ' '))
				fail_msg("sample outside its family %s: %s", family, line);
		}
		line = nl + 1;
	}
	assert_int_equal(helps, types);
	/* Never verified: no timestamp sample. */
	assert_null(strstr(b.data, "litestream_replica_last_verify_ok_timestamp_seconds{db=\"/data/a.db\",name=\"a-s3\"}"));
	assert_int_equal(helps, 11 + 5 + 1 + 2 + 2 + 6);
	metrics_buf_free(&b);
}

static void test_process_read(void **state)
{
	struct metrics_process p;

	metrics_process_read(&p);
	assert_true(p.cpu_seconds >= 0);
	assert_true(p.resident_bytes > 0);
	assert_true(p.open_fds >= 3);
	assert_true(p.start_time > 1500000000.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_value),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_buffer_growth),
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_process_read),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
