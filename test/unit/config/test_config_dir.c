/*
 * [dir NAME] sections (config_dir.c): their keys and defaults, the
 * checks, which paths a dir takes, the configuration of one of its
 * databases (each replica's path gains the relative path), and
 * config_find_db() finding a database of a dir that does not exist yet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config/config.h"
#include "lib/config_helpers.h"

#include <string.h>

static void test_dir_keys(void **state)
{
	struct config c;
	struct dir_config *d;

	load_ok(*state,
		"[dir tenants]\n"
		"path = /srv/tenants/\n"
		"pattern = *.sqlite\n"
		"recursive = true\n"
		"watch = false\n"
		"monitor-interval = 5s\n"
		"checkpoint-interval = 2m\n"
		"min-checkpoint-page-count = 10\n"
		"max-checkpoint-page-count = 20\n"
		"[dir other]\n"
		"path = /srv/other\n"
		"[replica s3]\n"
		"db = tenants\n"
		"url = s3://bucket/tenants\n"
		"[replica near]\n"
		"db = tenants\n"
		"path = /backup/tenants\n"
		"type = file\n",
		&c);
	assert_int_equal(c.n_dbs, 0);
	assert_int_equal(c.n_dirs, 2);
	d = &c.dirs[0];
	assert_string_equal(d->name, "tenants");
	assert_string_equal(d->path, "/srv/tenants");
	assert_string_equal(d->pattern, "*.sqlite");
	assert_true(d->recursive);
	assert_false(d->watch);
	assert_int_equal(d->db.monitor_interval_ms, 5000);
	assert_int_equal(d->db.checkpoint_interval_ms, 120000);
	assert_int_equal(d->db.min_checkpoint_page_count, 10);
	assert_int_equal(d->db.max_checkpoint_page_count, 20);
	assert_int_equal(d->db.n_replicas, 2);
	assert_string_equal(d->db.replicas[0].path, "tenants");
	assert_string_equal(d->db.replicas[1].path, "/backup/tenants");
	d = &c.dirs[1];
	assert_string_equal(d->pattern, "*.db");
	assert_false(d->recursive);
	assert_true(d->watch);
	assert_int_equal(d->db.monitor_interval_ms, 1000);
	assert_int_equal(d->db.n_replicas, 0);
	config_free(&c);
}

static void test_dir_errors(void **state)
{
	load_bad(*state, "[dir t]\npattern = *.db\n", ":1: [dir t] path: missing (the directory of the databases)");
	load_bad(*state, "[dir t]\npath = /a\n[dir u]\npath = /a/\n",
		 ":4: [dir u] path: \"/a\" is also the path of [dir t] (line 1)");
	load_bad(*state, "[dir t]\npath = /a\npattern = x/*.db\n",
		 ":3: [dir t] pattern: \"x/*.db\": a pattern matches file names and cannot hold '/'");
	load_bad(*state, "[dir t]\npath = /a\n[db t]\npath = /b.db\n",
		 ":3: [db t]: [dir t] has the same name: a replica's db = t would name both");
	load_bad(*state, "[dir t]\npath = /a\nwatch = maybe\n",
		 ":3: [dir t] watch: invalid boolean \"maybe\" (want true or false)");
	load_bad(*state, "[dir t]\npath = /a\nmin-checkpoint-page-count = 5\nmax-checkpoint-page-count = 4\n",
		 ":3: [dir t] min-checkpoint-page-count: min-checkpoint-page-count (5) is greater than "
		 "max-checkpoint-page-count (4)");
	load_bad(*state, "[dir t]\npath = /a\nbucket = x\n", ":3: [dir t] bucket: unknown key");
}

static void test_dir_match(void **state)
{
	char name[] = "t", path[] = "/srv/t", root[] = "/", pattern[] = "*.db";
	struct dir_config d = {.name = name, .path = path, .pattern = pattern};
	const char *rel;

	(void)state;
	assert_true(config_dir_match(&d, "/srv/t/acme.db", &rel));
	assert_string_equal(rel, "acme.db");
	assert_false(config_dir_match(&d, "/srv/t/eu/acme.db", &rel)); /* not recursive */
	assert_false(config_dir_match(&d, "/srv/tx/acme.db", &rel));
	assert_false(config_dir_match(&d, "/srv/t/acme.sqlite", &rel));
	assert_false(config_dir_match(&d, "/srv/t/acme.db-wal", &rel));
	assert_false(config_dir_match(&d, "/srv/t/.hidden.db", &rel));
	assert_false(config_dir_match(&d, "/srv/t", &rel));
	assert_false(config_dir_match(&d, "/srv/t/", &rel));
	d.recursive = true;
	assert_true(config_dir_match(&d, "/srv/t/eu/acme.db", &rel));
	assert_string_equal(rel, "eu/acme.db");
	assert_false(config_dir_match(&d, "/srv/t/.acme.db-litestream/x.db", &rel));
	assert_false(config_dir_match(&d, "/srv/t/eu//acme.db", &rel));
	d.path = root;
	assert_true(config_dir_match(&d, "/x.db", &rel));
	assert_string_equal(rel, "x.db");
}

static void test_dir_db(void **state)
{
	struct config c;
	struct db_config *db, copy;

	load_ok(*state,
		"[dir tenants]\n"
		"path = /srv/tenants\n"
		"recursive = true\n"
		"monitor-interval = 3s\n"
		"[db app]\n"
		"path = /srv/tenants/app.db\n"
		"[replica s3]\n"
		"db = tenants\n"
		"url = s3://bucket/tenants\n"
		"[replica root]\n"
		"db = tenants\n"
		"url = s3://bucket\n"
		"[replica near]\n"
		"db = tenants\n"
		"path = /backup/tenants\n"
		"type = file\n",
		&c);
	db = config_find_db(&c, "/srv/tenants/eu/acme.db");
	assert_non_null(db);
	assert_string_equal(db->name, "tenants/eu/acme.db");
	assert_string_equal(db->path, "/srv/tenants/eu/acme.db");
	assert_true(db->dir_events);
	assert_int_equal(db->monitor_interval_ms, 3000);
	assert_int_equal(db->n_replicas, 3);
	assert_string_equal(db->replicas[0].name, "s3");
	assert_string_equal(db->replicas[0].bucket, "bucket");
	assert_string_equal(db->replicas[0].path, "tenants/eu/acme.db");
	assert_null(db->replicas[0].url);
	assert_string_equal(db->replicas[1].path, "eu/acme.db");
	assert_string_equal(db->replicas[2].path, "/backup/tenants/eu/acme.db");
	assert_int_equal(c.n_dbs, 2);

	/* A [db] the dir also matches stays the [db]'s. */
	db = config_find_db(&c, "/srv/tenants/app.db");
	assert_non_null(db);
	assert_string_equal(db->name, "app");
	assert_null(config_find_db(&c, "/srv/tenants/eu/acme.txt"));
	assert_int_equal(c.n_dbs, 2);

	assert_int_equal(config_db_copy(&c.dbs[1], &copy), 0);
	assert_true(config_db_equal(&copy, &c.dbs[1]));
	assert_string_equal(copy.replicas[2].path, "/backup/tenants/eu/acme.db");
	copy.replicas[2].retention_ms++;
	assert_false(config_db_equal(&copy, &c.dbs[1]));
	config_db_free(&copy);
	config_free(&c);
}

/* A copy owns every string (age and Azure keys included) and compares equal;
 * a change to any of them makes the two differ. */
static void test_db_copy_every_string(void **state)
{
	struct config c;
	struct db_config copy;
	struct replica_config *o, *k;

	load_ok(*state,
		"[db app]\n"
		"path = /srv/app.db\n"
		"[replica f]\n"
		"db = app\n"
		"type = file\n"
		"path = /backup/app\n"
		"age-recipients = age1x\n"
		"age-identities = /k.txt\n"
		"[replica blob]\n"
		"db = app\n"
		"type = abs\n"
		"account-name = acct\n"
		"account-key = a2V5\n"
		"bucket = box\n"
		"path = p\n",
		&c);
	assert_int_equal(config_db_copy(&c.dbs[0], &copy), 0);
	assert_true(config_db_equal(&copy, &c.dbs[0]));
	o = &c.dbs[0].replicas[0];
	k = &copy.replicas[0];
	assert_ptr_not_equal(k->age_recipients, o->age_recipients);
	assert_ptr_not_equal(k->age_identities, o->age_identities);
	assert_string_equal(k->age_identities, "/k.txt");
	o = &c.dbs[0].replicas[1];
	k = &copy.replicas[1];
	assert_ptr_not_equal(k->account_name, o->account_name);
	assert_ptr_not_equal(k->account_key, o->account_key);
	assert_string_equal(k->account_key, "a2V5");
	k->account_key[0] = 'b';
	assert_false(config_db_equal(&copy, &c.dbs[0]));
	config_db_free(&copy);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_errors, setup, teardown),
		cmocka_unit_test(test_dir_match),
		cmocka_unit_test_setup_teardown(test_dir_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_copy_every_string, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
