#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config/config.h"
#include "lib/config_helpers.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TOP_SRCDIR
#error "TOP_SRCDIR must name the source tree (see Makefile.am)"
#endif

/* cwd + "/" + rel, as the loader makes relative paths absolute. */
static void from_cwd(char *buf, size_t n, const char *rel)
{
	char *cwd = getcwd(NULL, 0);

	snprintf(buf, n, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, rel);
	free(cwd);
}

static void test_defaults(void **state)
{
	struct config c;
	struct db_config *db;
	struct replica_config *r;

	load_ok(*state,
		"[db app]\n"
		"path = /data/app.db\n"
		"\n"
		"[replica local]\n"
		"db = app\n"
		"type = file\n"
		"path = /backup/app\n"
		"[replica s3]\n"
		"db = app\n"
		"url = s3://my-bucket/app\n",
		&c);
	assert_string_equal(c.path, ((struct fixture *)*state)->path);
	assert_string_equal(c.socket, CONFIG_DEFAULT_SOCKET);
	assert_int_equal(c.socket_mode, 0600);
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
	assert_null(c.metrics_addr);
	assert_null(c.exec);
	assert_int_equal(c.shutdown_sync_timeout_ms, 30000);
	assert_int_equal(c.n_dbs, 1);

	db = &c.dbs[0];
	assert_string_equal(db->name, "app");
	assert_string_equal(db->path, "/data/app.db");
	assert_int_equal(db->line, 1);
	assert_int_equal(db->monitor_interval_ms, 1000);
	assert_int_equal(db->checkpoint_interval_ms, 60000);
	assert_int_equal(db->min_checkpoint_page_count, 1000);
	assert_int_equal(db->max_checkpoint_page_count, 10000);
	assert_int_equal(db->n_replicas, 2);

	r = &db->replicas[0];
	assert_string_equal(r->name, "local");
	assert_int_equal(r->type, REPLICA_FILE);
	assert_null(r->url);
	assert_string_equal(r->path, "/backup/app");
	assert_null(r->bucket);
	assert_null(r->region);
	assert_null(r->endpoint);
	assert_false(r->force_path_style);
	assert_false(r->skip_verify);
	assert_null(r->ca_file);
	assert_null(r->access_key_id);
	assert_null(r->secret_access_key);
	assert_int_equal(r->part_size, 8 * 1024 * 1024);
	assert_int_equal(r->sync_interval_ms, 0);
	assert_int_equal(r->retention_ms, 24 * 3600 * 1000);
	assert_int_equal(r->retention_check_interval_ms, 3600 * 1000);
	assert_int_equal(r->snapshot_interval_ms, 0);
	assert_int_equal(r->validation_interval_ms, 0);
	assert_int_equal(r->line, 4);

	r = &db->replicas[1];
	assert_string_equal(r->name, "s3");
	assert_int_equal(r->type, REPLICA_S3);
	assert_string_equal(r->url, "s3://my-bucket/app");
	assert_string_equal(r->bucket, "my-bucket");
	assert_string_equal(r->path, "app");
	assert_null(r->region);
	assert_null(r->endpoint);
	assert_false(r->force_path_style);
	assert_int_equal(r->part_size, 8 * 1024 * 1024);
	assert_int_equal(r->sync_interval_ms, 1000);
	assert_int_equal(r->retention_ms, 24 * 3600 * 1000);
	assert_int_equal(r->line, 8);
	config_free(&c);
	assert_null(c.dbs);
	assert_int_equal(c.n_dbs, 0);
}

static void test_every_key(void **state)
{
	struct config c;
	struct db_config *db;
	struct replica_config *r;
	char want[4096];

	load_ok(*state,
		"[litestream]\n"
		"socket = /run/ls/control.sock\n"
		"socket-mode = 0660\n"
		"metrics-addr = 127.0.0.1:9090\n"
		"log-level = debug\n"
		"log-format = JSON\n"
		"exec = /usr/bin/myapp -serve\n"
		"shutdown-sync-timeout = 2m\n"
		"[db app]\n"
		"path = /data/app.db\n"
		"monitor-interval = 500ms\n"
		"checkpoint-interval = 2m\n"
		"min-checkpoint-page-count = 50\n"
		"max-checkpoint-page-count = 60\n"
		"[replica remote]\n"
		"db = app\n"
		"type = s3\n"
		"bucket = backups\n"
		"path = /pre//fix/\n"
		"region = eu-west-1\n"
		"endpoint = minio.local:9000\n"
		"force-path-style = false\n"
		"skip-verify = yes\n"
		"ca-file = /etc/ssl/my-ca.pem\n"
		"access-key-id = AKIDEXAMPLE\n"
		"secret-access-key = wJalrXUtnFEMI/K7MDENG\n"
		"sync-interval = 10s\n"
		"retention = 72h\n"
		"retention-check-interval = 30m\n"
		"snapshot-interval = 6h\n"
		"validation-interval = 1h30m\n"
		"part-size = 16MiB\n"
		"[replica near]\n"
		"db = app\n"
		"type = file\n"
		"path = backups/app/\n"
		"sync-interval = 250ms\n"
		"age-recipients = age1x\n"
		"age-identities = /k.txt\n"
		"[replica blob]\n"
		"db = app\n"
		"type = abs\n"
		"account-name = acct1\n"
		"account-key = a2V5\n"
		"bucket = backups\n"
		"path = /app/\n"
		"endpoint = http://127.0.0.1:10000/acct1\n"
		"part-size = 1MiB\n"
		"[replica sas]\n"
		"db = app\n"
		"url = abs://acct2@box/p\n"
		"sas-token = ?sv=2021&sig=abc%3D\n"
		"[replica nas]\n"
		"db = app\n"
		"type = sftp\n"
		"host = nas.local:2222\n"
		"user = backup\n"
		"password = hunter2\n"
		"key-path = /etc/litestream/id_ed25519\n"
		"host-key = [nas.local]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== nas\n"
		"path = backups//app/\n"
		"[replica nas2]\n"
		"db = app\n"
		"url = sftp://b%40k:p%3Aw@[::1]:22/srv/x/../app\n"
		"known-hosts-file = /etc/litestream/known_hosts\n",
		&c);
	assert_string_equal(c.socket, "/run/ls/control.sock");
	assert_int_equal(c.socket_mode, 0660);
	assert_string_equal(c.metrics_addr, "127.0.0.1:9090");
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(c.log_format, LOG_FORMAT_JSON);
	assert_string_equal(c.exec, "/usr/bin/myapp -serve");
	assert_int_equal(c.shutdown_sync_timeout_ms, 120000);

	db = &c.dbs[0];
	assert_int_equal(db->monitor_interval_ms, 500);
	assert_int_equal(db->checkpoint_interval_ms, 120000);
	assert_int_equal(db->min_checkpoint_page_count, 50);
	assert_int_equal(db->max_checkpoint_page_count, 60);
	assert_int_equal(db->n_replicas, 6);

	r = &db->replicas[0];
	assert_string_equal(r->name, "remote");
	assert_int_equal(r->type, REPLICA_S3);
	assert_null(r->url);
	assert_string_equal(r->bucket, "backups");
	assert_string_equal(r->path, "pre/fix");
	assert_string_equal(r->region, "eu-west-1");
	assert_string_equal(r->endpoint, "https://minio.local:9000");
	assert_false(r->force_path_style);
	assert_true(r->skip_verify);
	assert_string_equal(r->ca_file, "/etc/ssl/my-ca.pem");
	assert_string_equal(r->access_key_id, "AKIDEXAMPLE");
	assert_string_equal(r->secret_access_key, "wJalrXUtnFEMI/K7MDENG");
	assert_int_equal(r->sync_interval_ms, 10000);
	assert_int_equal(r->retention_ms, 72 * 3600 * 1000LL);
	assert_int_equal(r->retention_check_interval_ms, 30 * 60 * 1000);
	assert_int_equal(r->snapshot_interval_ms, 6 * 3600 * 1000);
	assert_int_equal(r->validation_interval_ms, 90 * 60 * 1000);
	assert_int_equal(r->part_size, 16 * 1024 * 1024);

	r = &db->replicas[1];
	assert_string_equal(r->name, "near");
	assert_int_equal(r->type, REPLICA_FILE);
	from_cwd(want, sizeof(want), "backups/app");
	assert_string_equal(r->path, want);
	assert_int_equal(r->sync_interval_ms, 250);
	assert_string_equal(r->age_recipients, "age1x");
	assert_string_equal(r->age_identities, "/k.txt");

	r = &db->replicas[2];
	assert_int_equal(r->type, REPLICA_ABS);
	assert_string_equal(r->account_name, "acct1");
	assert_string_equal(r->account_key, "a2V5");
	assert_null(r->sas_token);
	assert_string_equal(r->bucket, "backups");
	assert_string_equal(r->path, "app");
	assert_string_equal(r->endpoint, "http://127.0.0.1:10000/acct1");
	assert_int_equal(r->part_size, 1024 * 1024);
	assert_int_equal(r->sync_interval_ms, 1000);

	r = &db->replicas[3];
	assert_int_equal(r->type, REPLICA_ABS);
	assert_string_equal(r->account_name, "acct2");
	assert_string_equal(r->bucket, "box");
	assert_string_equal(r->path, "p");
	assert_null(r->account_key);
	assert_string_equal(r->sas_token, "sv=2021&sig=abc%3D");
	assert_null(r->endpoint);
	assert_int_equal(r->part_size, 8 * 1024 * 1024);

	r = &db->replicas[4];
	assert_int_equal(r->type, REPLICA_SFTP);
	assert_string_equal(r->host, "nas.local:2222");
	assert_string_equal(r->user, "backup");
	assert_string_equal(r->password, "hunter2");
	assert_string_equal(r->key_path, "/etc/litestream/id_ed25519");
	assert_string_equal(r->host_key, "[nas.local]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== nas");
	assert_null(r->known_hosts_file);
	assert_string_equal(r->path, "backups/app"); /* from the login directory */
	assert_int_equal(r->sync_interval_ms, 1000);

	r = &db->replicas[5];
	assert_int_equal(r->type, REPLICA_SFTP);
	assert_string_equal(r->host, "[::1]:22");
	assert_string_equal(r->user, "b@k");
	assert_string_equal(r->password, "p:w");
	assert_string_equal(r->path, "/srv/app");
	assert_string_equal(r->known_hosts_file, "/etc/litestream/known_hosts");
	assert_null(r->key_path);
	assert_null(r->host_key);
	config_free(&c);
}

/* Every key in the table is exercised by test_every_key; keep them in step. */
static void test_key_table(void **state)
{
	static const char *const sections[] = {"litestream", "db", "replica", "dir"};
	size_t n = 0, per[4] = {0};
	const struct config_key *k;

	for (; (k = config_key_at(n)) != NULL; n++) {
		size_t i;

		for (i = 0; i < 4 && strcmp(k->section, sections[i]) != 0; i++)
			;
		assert_true(i < 4);
		per[i]++;
		for (size_t j = 0; j < n; j++) {
			const struct config_key *o = config_key_at(j);

			if (strcmp(o->section, k->section) == 0 && strcmp(o->key, k->key) == 0)
				fail_msg("key %s listed twice", k->key);
		}
	}
	assert_int_equal(per[0], 7);
	assert_int_equal(per[1], 5);
	assert_int_equal(per[2], 33);
	assert_int_equal(per[3], 8);
	assert_null(config_key_at(n));
}

static void test_syntax(void **state)
{
	struct config c;
	struct db_config *db;

	/* BOM, CRLF, comments, indentation, `key: value`, empty values. */
	load_ok(*state,
		"\xef\xbb\xbf; leading comment\r\n"
		"# another\r\n"
		"  [replica r]   ; a replica before its db\r\n"
		"\tdb = app\r\n"
		"    url = /backups/app ; inline comment\r\n"
		"\r\n"
		"[litestream]\n"
		"exec =\n"
		"metrics-addr:\n"
		"[db app]\n"
		"  path: /data/app.db\n"
		"   monitor-interval = 2s\n"
		"[db other]\n"
		"path=/data/other.db\n",
		&c);
	assert_null(c.exec);
	assert_null(c.metrics_addr);
	assert_int_equal(c.n_dbs, 2);
	db = &c.dbs[0];
	assert_string_equal(db->name, "app");
	assert_int_equal(db->line, 10);
	assert_string_equal(db->path, "/data/app.db");
	assert_int_equal(db->monitor_interval_ms, 2000);
	assert_int_equal(db->n_replicas, 1);
	assert_string_equal(db->replicas[0].path, "/backups/app");
	assert_string_equal(db->replicas[0].url, "/backups/app");
	assert_int_equal(db->replicas[0].line, 3);
	assert_string_equal(c.dbs[1].name, "other");
	assert_int_equal(c.dbs[1].n_replicas, 0);
	assert_null(c.dbs[1].replicas);
	config_free(&c);

	/* Nothing at all is a valid (if useless) file. */
	load_ok(*state, "", &c);
	assert_int_equal(c.n_dbs, 0);
	assert_string_equal(c.socket, CONFIG_DEFAULT_SOCKET);
	config_free(&c);

	/* Names may hold spaces; the kind and name are split at the first. */
	load_ok(*state, "[db  my app ]\npath = /x\n[replica  a b]\ndb = my app\ntype = file\npath = /y\n",
		&c);
	assert_string_equal(c.dbs[0].name, "my app");
	assert_string_equal(c.dbs[0].replicas[0].name, "a b");
	config_free(&c);
}

/* Replicas keep file order within each db, wherever their sections are. */
static void test_replica_order(void **state)
{
	struct config c;

	load_ok(*state,
		"[replica a1]\ndb = a\ntype = file\npath = /a1\n"
		"[db b]\npath = /b.db\n"
		"[replica b1]\ndb = b\ntype = file\npath = /b1\n"
		"[db a]\npath = /a.db\n"
		"[replica a2]\ndb = a\ntype = file\npath = /a2\n"
		"[replica b2]\ndb = b\ntype = file\npath = /b2\n",
		&c);
	assert_int_equal(c.n_dbs, 2);
	assert_string_equal(c.dbs[0].name, "b");
	assert_int_equal(c.dbs[0].n_replicas, 2);
	assert_string_equal(c.dbs[0].replicas[0].name, "b1");
	assert_string_equal(c.dbs[0].replicas[1].name, "b2");
	assert_string_equal(c.dbs[1].name, "a");
	assert_string_equal(c.dbs[1].replicas[0].name, "a1");
	assert_string_equal(c.dbs[1].replicas[1].name, "a2");
	config_free(&c);
}

static void test_env(void **state)
{
	struct config c;
	struct replica_config *r;

	setenv("LS_TEST_BUCKET", "env-bucket", 1);
	setenv("LS_TEST_KEY", "AKID", 1);
	setenv("LS_TEST_DIR", "/env/data", 1);
	setenv("LS_TEST_INTERVAL", "5s", 1);
	unsetenv("LS_TEST_UNSET");
	load_ok(*state,
		"[litestream]\n"
		"exec = echo $$ ${LS_TEST_KEY}x $LS_TEST_KEY.y $ end$ $1 [${LS_TEST_UNSET}] $LS_TEST_UNSET!\n"
		"[db app]\n"
		"path = ${LS_TEST_DIR}/app.db\n"
		"[replica s3]\n"
		"db = app\n"
		"url = s3://${LS_TEST_BUCKET}/$LS_TEST_KEY\n"
		"access-key-id = $LS_TEST_KEY\n"
		"secret-access-key = ${LS_TEST_UNSET}\n"
		"sync-interval = ${LS_TEST_INTERVAL}\n",
		&c);
	/* "$$" stays, as does a '$' before anything but a name or '{'; "1" is a name. */
	assert_string_equal(c.exec, "echo $$ AKIDx AKID.y $ end$  [] !");
	assert_string_equal(c.dbs[0].path, "/env/data/app.db");
	r = &c.dbs[0].replicas[0];
	assert_string_equal(r->bucket, "env-bucket");
	assert_string_equal(r->path, "AKID");
	assert_string_equal(r->url, "s3://env-bucket/AKID");
	assert_string_equal(r->access_key_id, "AKID");
	assert_null(r->secret_access_key); /* unset variable: as if not given */
	assert_int_equal(r->sync_interval_ms, 5000);
	config_free(&c);

	load_bad(*state, "[db app]\npath = ${LS_TEST_DIR\n",
		 ":2: [db app] path: unterminated \"${\" or empty \"${}\"");
	load_bad(*state, "[db app]\npath = /x/${}\n",
		 ":2: [db app] path: unterminated \"${\" or empty \"${}\"");
	/* An unset variable in a required key is an empty value. */
	load_bad(*state, "[db app]\npath = ${LS_TEST_UNSET}\n", ":2: [db app] path: empty value");
	load_bad(*state, "[db app]\npath = /x\nmonitor-interval = $LS_TEST_UNSET\n",
		 ":3: [db app] monitor-interval: invalid duration \"\"");
	unsetenv("LS_TEST_BUCKET");
	unsetenv("LS_TEST_KEY");
	unsetenv("LS_TEST_DIR");
	unsetenv("LS_TEST_INTERVAL");
}

static void test_url_merge(void **state)
{
	struct config c;
	struct replica_config *r;

	/* Explicit region/endpoint/force-path-style/skip-verify beat the url's. */
	load_ok(*state,
		"[db app]\npath = /a.db\n"
		"[replica do]\ndb = app\n"
		"url = s3://b.nyc3.digitaloceanspaces.com/p?skip-verify=true\n"
		"region = ams3\nforce-path-style = false\nskip-verify = false\n"
		"[replica minio]\ndb = app\nurl = s3://b/p\nendpoint = http://127.0.0.1:9000/\n"
		"[replica q]\ndb = app\nurl = s3://b/p?force-path-style=false\nendpoint = h:1\n"
		"[replica typed]\ndb = app\ntype = s3\nurl = s3://b.s3.us-east-2.amazonaws.com\n"
		"[replica f]\ndb = app\ntype = file\nurl = file:///srv/backup/\n",
		&c);
	assert_int_equal(c.dbs[0].n_replicas, 5);
	r = &c.dbs[0].replicas[0];
	assert_string_equal(r->bucket, "b");
	assert_string_equal(r->path, "p");
	assert_string_equal(r->region, "ams3");
	assert_string_equal(r->endpoint, "https://nyc3.digitaloceanspaces.com");
	assert_false(r->force_path_style);
	assert_false(r->skip_verify);
	r = &c.dbs[0].replicas[1];
	assert_string_equal(r->endpoint, "http://127.0.0.1:9000");
	assert_true(r->force_path_style); /* an endpoint is set */
	assert_null(r->region);
	r = &c.dbs[0].replicas[2];
	assert_string_equal(r->endpoint, "https://h:1");
	assert_false(r->force_path_style); /* the url said so */
	r = &c.dbs[0].replicas[3];
	assert_int_equal(r->type, REPLICA_S3);
	assert_string_equal(r->region, "us-east-2");
	assert_string_equal(r->path, "");
	r = &c.dbs[0].replicas[4];
	assert_int_equal(r->type, REPLICA_FILE);
	assert_string_equal(r->path, "/srv/backup");
	assert_int_equal(r->sync_interval_ms, 0);
	config_free(&c);
}

static void test_sse_keys(void **state)
{
	struct config c;
	struct replica_config *r;

	/* Keys and query parameters; an explicit key beats the url's. */
	load_ok(*state,
		"[db app]\npath = /a.db\n"
		"[replica kms]\ndb = app\ntype = s3\nbucket = b\nsse = aws:kms\n"
		"sse-kms-key-id = arn:aws:kms:us-east-1:1:key/k\nstorage-class = STANDARD_IA\n"
		"[replica c]\ndb = app\nurl = s3://b/p?sse-customer-key=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY%3D&storage-class=ONEZONE_IA\n"
		"storage-class = INTELLIGENT_TIERING\n"
		"[replica s3]\ndb = app\nurl = s3://b/p?sse=AES256\n",
		&c);
	r = &c.dbs[0].replicas[0];
	assert_string_equal(r->sse, "aws:kms");
	assert_string_equal(r->sse_kms_key_id, "arn:aws:kms:us-east-1:1:key/k");
	assert_string_equal(r->storage_class, "STANDARD_IA");
	assert_null(r->sse_customer_key);
	r = &c.dbs[0].replicas[1];
	assert_null(r->sse);
	assert_string_equal(r->sse_customer_key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
	assert_string_equal(r->storage_class, "INTELLIGENT_TIERING");
	r = &c.dbs[0].replicas[2];
	assert_string_equal(r->sse, "AES256");
	assert_null(r->storage_class);
	config_free(&c);
}

/* The age keys: taken as written (after expansion), on any replica type; checked by backend_new(). */
static void test_age_keys(void **state)
{
	struct config c;
	struct replica_config *r;

	setenv("TEST_AGE_ID", "/etc/ls/key.txt", 1);
	load_ok(*state,
		"[db app]\npath = /a.db\n"
		"[replica f]\ndb = app\ntype = file\npath = /r\n"
		"age-recipients = age1one, age1two\nage-identities = ${TEST_AGE_ID}\n"
		"[replica s]\ndb = app\nurl = s3://b/p\nage-recipients = age1three\n"
		"[replica p]\ndb = app\nurl = s3://b/q\nage-identities = ${TEST_AGE_UNSET}\n",
		&c);
	r = &c.dbs[0].replicas[0];
	assert_string_equal(r->age_recipients, "age1one, age1two");
	assert_string_equal(r->age_identities, "/etc/ls/key.txt");
	r = &c.dbs[0].replicas[1];
	assert_string_equal(r->age_recipients, "age1three");
	assert_null(r->age_identities);
	/* An unset variable: not set, a plaintext replica. */
	assert_null(c.dbs[0].replicas[2].age_identities);
	config_free(&c);
	unsetenv("TEST_AGE_ID");
}

static void test_paths(void **state)
{
	struct config c;
	char want[4096], *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	setenv("HOME", "/home/tester", 1);
	load_ok(*state,
		"[db rel]\npath = data/../data/app.db\n"
		"[db home]\npath = ~/app.db\n"
		"[replica r]\ndb = home\ntype = file\npath = ~/backups/\n"
		"[replica s]\ndb = home\ntype = s3\nbucket = b\nca-file = ca.pem\n",
		&c);
	from_cwd(want, sizeof(want), "data/app.db");
	assert_string_equal(c.dbs[0].path, want);
	assert_string_equal(c.dbs[1].path, "/home/tester/app.db");
	assert_string_equal(c.dbs[1].replicas[0].path, "/home/tester/backups");
	assert_string_equal(c.dbs[1].replicas[1].path, "");
	from_cwd(want, sizeof(want), "ca.pem");
	assert_string_equal(c.dbs[1].replicas[1].ca_file, want);
	assert_true(config_find_db(&c, "data/app.db") == &c.dbs[0]);
	assert_true(config_find_db(&c, "/home/tester/./app.db") == &c.dbs[1]);
	assert_null(config_find_db(&c, "/nope.db"));
	config_free(&c);

	load_bad(*state, "[db a]\npath = /data/app.db\n[db b]\npath = /data/./x/../app.db\n",
		 ":4: [db b] path: \"/data/app.db\" is also the path of [db a] (line 1)");
	load_bad(*state, "[db a]\npath = ~/app.db\n[db b]\npath = /home/tester/app.db\n",
		 ":4: [db b] path: \"/home/tester/app.db\" is also the path of [db a] (line 1)");
	if (home != NULL)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	free(home);
}

static void test_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		/* Sections. */
		{"[foo]\n", ":1: [foo]: unknown section (want [litestream], [db NAME], [dir NAME] or [replica NAME])"},
		{"[db a]\npath = /x\n\n[dbs a]\n", ":4: [dbs a]: unknown section (want [litestream], [db NAME], [dir NAME] or [replica NAME])"},
		{"[db a]\npath = /x\n[db a]\npath = /y\n", ":3: [db a]: duplicate section (first on line 1)"},
		{"[litestream]\n[litestream]\n", ":2: [litestream]: duplicate section (first on line 1)"},
		{"[db]\npath = /x\n", ":1: [db]: needs a name: [db NAME]"},
		{"[replica ]\n", ":1: [replica]: needs a name: [replica NAME]"},
		{"[litestream x]\n", ":1: [litestream x]: [litestream] takes no name"},
		/* Syntax. */
		{"path = /x\n", ":1: path: not in any section"},
		{"[db a]\npath = /x\njunk\n", ":3: [db a]: syntax error: want \"key = value\""},
		{"[db a]\n= /x\n", ":2: [db a]: syntax error: want \"key = value\""},
		{"[db a\npath = /x\n", ":1: syntax error: no ']' closing the section"},
		{"[db a ;]\n", ":1: syntax error: no ']' closing the section"},
		{"[db a] b\n", ":1: syntax error: text after ']'"},
		/* Keys. */
		{"[db a]\npath = /x\nfoo = 1\n", ":3: [db a] foo: unknown key"},
		{"[litestream]\npath = /x\n", ":2: [litestream] path: unknown key"},
		{"[db a]\npath = /x\ndb = a\n", ":3: [db a] db: unknown key"},
		{"[db a]\npath = /x\n\npath = /y\n", ":4: [db a] path: set twice (first on line 2)"},
		{"[db a]\npath =\n", ":2: [db a] path: empty value"},
		{"[litestream]\nsocket =\n", ":2: [litestream] socket: empty value"},
		/* Values. */
		{"[db a]\npath = /x\nmonitor-interval = 5x\n", ":3: [db a] monitor-interval: invalid duration \"5x\""},
		{"[db a]\npath = /x\ncheckpoint-interval = 10\n", ":3: [db a] checkpoint-interval: invalid duration \"10\""},
		{"[db a]\npath = /x\ncheckpoint-interval = -1m\n", ":3: [db a] checkpoint-interval: invalid duration \"-1m\": negative"},
		{"[db a]\npath = /x\nmin-checkpoint-page-count = ten\n", ":3: [db a] min-checkpoint-page-count: invalid integer \"ten\""},
		{"[db a]\npath = /x\nmin-checkpoint-page-count = 10k\n", ":3: [db a] min-checkpoint-page-count: invalid integer \"10k\""},
		{"[db a]\npath = /x\nmax-checkpoint-page-count = 99999999999999999999\n", ":3: [db a] max-checkpoint-page-count: invalid integer \"99999999999999999999\""},
		{"[db a]\npath = /x\nmin-checkpoint-page-count = 0\n", ":3: [db a] min-checkpoint-page-count: 0: must be greater than 0"},
		{"[db a]\npath = /x\nmax-checkpoint-page-count = -5\n", ":3: [db a] max-checkpoint-page-count: -5: must be greater than 0"},
		{"[db a]\npath = /x\nmin-checkpoint-page-count = 20000\n", ":3: [db a] min-checkpoint-page-count: min-checkpoint-page-count (20000) is greater than max-checkpoint-page-count (10000)"},
		{"[db a]\npath = /x\nmax-checkpoint-page-count = 500\n", ":3: [db a] max-checkpoint-page-count: min-checkpoint-page-count (1000) is greater than max-checkpoint-page-count (500)"},
		{"[db a]\npath = /x\nmax-checkpoint-page-count = 5\nmin-checkpoint-page-count = 6\n", ":4: [db a] min-checkpoint-page-count: min-checkpoint-page-count (6) is greater than max-checkpoint-page-count (5)"},
		{"[litestream]\nsocket-mode = 0800\n", ":2: [litestream] socket-mode: invalid mode \"0800\" (want octal, e.g. 0600)"},
		{"[litestream]\nsocket-mode = rw\n", ":2: [litestream] socket-mode: invalid mode \"rw\" (want octal, e.g. 0600)"},
		{"[litestream]\nsocket-mode = 01777\n", ":2: [litestream] socket-mode: invalid mode \"01777\" (want octal, e.g. 0600)"},
		/* Found by fuzzing: a long number overflowed before its length was checked. */
		{"[litestream]\nsocket-mode = 16000000000000000000000000000\n",
		 ":2: [litestream] socket-mode: invalid mode \"16000000000000000000000000000\" (want octal, e.g. 0600)"},
		{"[litestream]\nlog-level = loud\n", ":2: [litestream] log-level: invalid log level \"loud\" (want debug, info, warn or error)"},
		{"[litestream]\n\nlog-format = yaml\n", ":3: [litestream] log-format: invalid log format \"yaml\" (want text or json)"},
		{"[litestream]\nlog-format =\n", ":2: [litestream] log-format: invalid log format \"\" (want text or json)"},
		{"[litestream]\nlog-format = json\nlog-format = text\n", ":3: [litestream] log-format: set twice (first on line 2)"},
		{"[db a]\npath = /x\nlog-format = json\n", ":3: [db a] log-format: unknown key"},
		{"[litestream]\nmetrics-addr = 9090\n", ":2: [litestream] metrics-addr: invalid address \"9090\" (want HOST:PORT)"},
		{"[litestream]\nmetrics-addr = localhost:http\n", ":2: [litestream] metrics-addr: invalid address \"localhost:http\" (want HOST:PORT)"},
		{"[litestream]\nmetrics-addr = :99999\n", ":2: [litestream] metrics-addr: invalid address \":99999\" (want HOST:PORT)"},
		/* The example from config.h, line for line. */
		{"[db app]\npath = /x\n\n\n\n\n\n\n\n\n[replica s3]\nsync-interval = 5x\n",
		 ":12: [replica s3] sync-interval: invalid duration \"5x\""},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nskip-verify = maybe\n", ":7: [replica r] skip-verify: invalid boolean \"maybe\" (want true or false)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\npart-size = 8XB\n", ":7: [replica r] part-size: invalid size \"8XB\" (e.g. 8388608, 8MB, 8MiB)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\npart-size = 4MiB\n", ":7: [replica r] part-size: 4194304 bytes is outside S3's part sizes (5MiB to 5GiB)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\npart-size = 6GB\n", ":7: [replica r] part-size: 6442450944 bytes is outside S3's part sizes (5MiB to 5GiB)"},
		/* Replicas, checked once the file is read. */
		{"[db a]\npath = /x\n[replica r]\ntype = file\npath = /y\n", ":3: [replica r] db: missing (the name of this replica's [db NAME] section)"},
		{"[db a]\npath = /x\n[replica r]\ndb = b\ntype = file\npath = /y\n", ":4: [replica r] db: no section [db b] or [dir b]"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\npath = /y\n", ":3: [replica r] type: missing (a replica needs type or url)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = gcs\n", ":3: [replica r] bucket: missing (or give a url)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nurl = gcs://b/p\n", ":5: [replica r] type: \"s3\" does not match the url, which names a gcs replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\nurl = s3://b/p\n", ":5: [replica r] type: \"file\" does not match the url, which names an s3 replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = s3://b/p\npath = q\n", ":6: [replica r] path: cannot be set beside url"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = /y\npath = /z\n", ":6: [replica r] path: cannot be set beside url"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nbucket = c\nurl = s3://b/p\n", ":5: [replica r] bucket: cannot be set beside url"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = gs://b/p\n", ":5: [replica r] url: replica URL \"gs://b/p\": unsupported scheme \"gs\" (want file, s3, gcs, abs or sftp)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = s3://b/p?endpont=x\n", ":5: [replica r] url: replica URL \"s3://b/p?endpont=x\": unknown query parameter \"endpont\" (want endpoint, region, force-path-style, skip-verify, sse, sse-kms-key-id, sse-customer-key or storage-class)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\n", ":3: [replica r] path: missing (the replica's directory)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\npath = s3://b/p\n", ":6: [replica r] path: \"s3://b/p\" is a URL: give it as url"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\npath = s3://b/p\n", ":7: [replica r] path: \"s3://b/p\" is a URL: give it as url"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\npath = /y\nbucket = b\n", ":7: [replica r] bucket: only for s3 and abs replicas, and this is a file replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = /y\npart-size = 8MiB\n", ":6: [replica r] part-size: only for s3 and abs replicas, and this is a file replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\n", ":3: [replica r] bucket: missing (or give a url)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = my bucket\n", ":6: [replica r] bucket: invalid bucket name \"my bucket\""},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = s3://b\nendpoint = ftp://h\n", ":6: [replica r] endpoint: invalid endpoint \"ftp://h\": the scheme must be http or https"},
		/* Server-side encryption and the storage class. */
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nsse = aes256\n", ":7: [replica r] sse: \"aes256\": want AES256 or aws:kms"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nsse-kms-key-id = k\n", ":7: [replica r] sse-kms-key-id: sse-kms-key-id needs sse = aws:kms"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nsse = AES256\nsse-kms-key-id = k\n", ":8: [replica r] sse-kms-key-id: sse-kms-key-id needs sse = aws:kms"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nsse-customer-key = c2VjcmV0\n", ":7: [replica r] sse-customer-key: the key is 6 bytes long, want 32 (AES-256)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nsse-customer-key = not*base64\n", ":7: [replica r] sse-customer-key: not base64 (want the base64 of a 32-byte key, e.g. from `head -c 32 /dev/urandom | base64`)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nsse = AES256\nsse-customer-key = MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", ":8: [replica r] sse-customer-key: sse-customer-key (SSE-C) cannot be combined with sse = AES256: choose one"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nstorage-class = GLACIER\n", ":7: [replica r] storage-class: GLACIER objects cannot be read back without a restore request, so litestream could not restore from them (GLACIER_IR can)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nstorage-class = STANDARD IA\n", ":7: [replica r] storage-class: \"STANDARD IA\" is not a storage class (e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\npath = /y\nsse = AES256\n", ":7: [replica r] sse: only for s3 replicas, and this is a file replica"},
		/* abs. */
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = abs\nbucket = box\naccount-name = acc\nregion = x\n", ":8: [replica r] region: only for s3 replicas, and this is an abs replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = box\naccount-key = a2V5\n", ":7: [replica r] account-key: only for abs replicas, and this is an s3 replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\npath = /y\nsas-token = sv=1\n", ":7: [replica r] sas-token: only for abs replicas, and this is a file replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = abs\nbucket = box\n", ":3: [replica r] account-name: missing (the storage account; or abs://ACCOUNT@CONTAINER/PATH)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = abs\naccount-name = acc\n", ":3: [replica r] bucket: missing (the container; or give a url)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = abs\naccount-name = acc\nbucket = Box\n", ":7: [replica r] bucket: invalid container name \"Box\" (want 3 to 63 of a-z, 0-9, '-')"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = abs://acc@box/p\naccount-key = not base64!\n", ":6: [replica r] account-key: not base64 (want the key the portal or `az storage account keys list` shows)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = abs://acc@box/p\naccount-key = a2V5\nsas-token = sv=1\n", ":7: [replica r] sas-token: cannot be combined with account-key: choose one"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = abs://acc@box/p\npart-size = 512KiB\n", ":6: [replica r] part-size: 524288 bytes is outside the block sizes allowed (1MiB to 4000MiB)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nurl = abs://acc@box/p\n", ":5: [replica r] type: \"s3\" does not match the url, which names an abs replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = blob\n", ":5: [replica r] type: unknown replica type \"blob\" (want file, s3, gcs, abs or sftp)"},
		/* sftp. */
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = sftp\nuser = u\n", ":3: [replica r] host: missing (HOST[:PORT]; or sftp://USER@HOST/PATH)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = sftp\nhost = h\n", ":3: [replica r] user: missing (the SSH user; or sftp://USER@HOST/PATH)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = sftp\nhost = h:0\nuser = u\n", ":6: [replica r] host: invalid port in \"h:0\" (want 1 to 65535)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = sftp\nhost = h:x\nuser = u\n", ":6: [replica r] host: invalid port in \"h:x\" (want 1 to 65535)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = sftp\nhost = [::1\nuser = u\n", ":6: [replica r] host: invalid host \"[::1\" (want HOST, HOST:PORT or [IPV6]:PORT)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = sftp://u@h/p\nhost-key = AAAA\n", ":6: [replica r] host-key: \"AAAA\" is not a known_hosts line or public key (want e.g. \"ssh-ed25519 AAAA...\", as ssh-keyscan prints it)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = sftp://u@h/p\nhost-key = h ssh-ed25519 not*base64\n", ":6: [replica r] host-key: \"h ssh-ed25519 not*base64\" is not a known_hosts line or public key (want e.g. \"ssh-ed25519 AAAA...\", as ssh-keyscan prints it)"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = sftp://u@h/p\nhost-key = ssh-ed25519 AAAA\nknown-hosts-file = /k\n", ":7: [replica r] known-hosts-file: cannot be combined with host-key: choose one"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = sftp://u@h/p\nbucket = b\n", ":6: [replica r] bucket: cannot be set beside url"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = sftp://u@h/p\nregion = b\n", ":6: [replica r] region: only for s3 replicas, and this is an sftp replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nbucket = b\nkey-path = /k\n", ":7: [replica r] key-path: only for sftp replicas, and this is an s3 replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = file\npath = /y\npassword = x\n", ":7: [replica r] password: only for sftp replicas, and this is a file replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\ntype = s3\nurl = sftp://u@h/p\n", ":5: [replica r] type: \"s3\" does not match the url, which names an sftp replica"},
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = s3://b/p?sse-kms-key-id=k\n", ":5: [replica r] sse-kms-key-id: sse-kms-key-id needs sse = aws:kms"},
		/* The customer key is a secret: a bad one in a url is not shown. */
		{"[db a]\npath = /x\n[replica r]\ndb = a\nurl = s3://b/p?sse-customer-key=c2VjcmV0&region=x\n", ":5: [replica r] url: replica URL \"s3://b/p?sse-customer-key=REDACTED&region=x\": sse-customer-key: the key is 6 bytes long, want 32 (AES-256)"},
		/* Databases. */
		{"[db a]\nmonitor-interval = 1s\n", ":1: [db a] path: missing (the database file)"},
		/* The first error wins: line 3 is read before line 5 is checked. */
		{"[db a]\npath = /x\nretention = 1h\n[replica r]\nsync-interval = x\n", ":3: [db a] retention: unknown key"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		load_bad(*state, cases[i].text, cases[i].want);
}

static void test_name_by_file(void **state)
{
	static const char *const paths[] = {"/a/app.db", "/b/app.db", "/c/app.db-2", "/d/app.db",
					    "/e/other", "/f/app.db-2", "weird"};
	static const char *const want[] = {"app.db", "app.db-2", "app.db-2-2", "app.db-3",
					   "other", "app.db-2-3", "weird"};
	struct config c;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.n_dbs = sizeof(paths) / sizeof(paths[0]);
	c.dbs = calloc(c.n_dbs, sizeof(*c.dbs));
	assert_non_null(c.dbs);
	for (size_t i = 0; i < c.n_dbs; i++) {
		c.dbs[i].path = strdup(paths[i]);
		c.dbs[i].name = strdup("section");
	}
	assert_int_equal(config_name_by_file(&c), 0);
	for (size_t i = 0; i < c.n_dbs; i++)
		if (strcmp(c.dbs[i].name, want[i]) != 0)
			fail_msg("%s: named \"%s\", want \"%s\"", paths[i], c.dbs[i].name, want[i]);
	config_free(&c);
}

static void test_from_args(void **state)
{
	char *const urls[] = {
		(char *)"/backups/one", (char *)"s3://b/p?endpoint=http://127.0.0.1:9000",
		(char *)"file:///backups/two", (char *)"s3://c", (char *)"rel/three",
	};
	struct config c, zero;
	struct db_config *db;
	char err[512], want[4096];

	assert_int_equal(config_from_args("data/app.db", urls, 5, &c, err, sizeof(err)), 0);
	assert_null(c.path);
	assert_string_equal(c.socket, CONFIG_DEFAULT_SOCKET);
	assert_int_equal(c.socket_mode, 0600);
	assert_int_equal(c.n_dbs, 1);
	db = &c.dbs[0];
	from_cwd(want, sizeof(want), "data/app.db");
	assert_string_equal(db->path, want);
	assert_string_equal(db->name, "app.db");
	assert_int_equal(db->line, 0);
	assert_int_equal(db->monitor_interval_ms, 1000);
	assert_int_equal(db->n_replicas, 5);
	assert_string_equal(db->replicas[0].name, "file");
	assert_string_equal(db->replicas[0].path, "/backups/one");
	assert_string_equal(db->replicas[0].url, "/backups/one");
	assert_int_equal(db->replicas[0].sync_interval_ms, 0);
	assert_int_equal(db->replicas[0].line, 0);
	assert_string_equal(db->replicas[1].name, "s3");
	assert_string_equal(db->replicas[1].endpoint, "http://127.0.0.1:9000");
	assert_true(db->replicas[1].force_path_style);
	assert_int_equal(db->replicas[1].sync_interval_ms, 1000);
	assert_int_equal(db->replicas[1].retention_ms, 24 * 3600 * 1000);
	assert_string_equal(db->replicas[2].name, "file2");
	assert_string_equal(db->replicas[2].path, "/backups/two");
	assert_string_equal(db->replicas[3].name, "s3-2");
	assert_string_equal(db->replicas[3].bucket, "c");
	assert_string_equal(db->replicas[4].name, "file3");
	from_cwd(want, sizeof(want), "rel/three");
	assert_string_equal(db->replicas[4].path, want);
	assert_true(config_find_db(&c, "data/app.db") == db);
	config_free(&c);

	memset(&zero, 0, sizeof(zero));
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(config_from_args("/a.db", urls, 0, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "at least one replica URL is required for /a.db");
	assert_memory_equal(&c, &zero, sizeof(c));

	memset(&c, 0x5a, sizeof(c));
	{
		char *const bad[] = {(char *)"/ok", (char *)"s3://b?x=1"};

		assert_int_equal(config_from_args("/a.db", bad, 2, &c, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "replica URL \"s3://b?x=1\": unknown query parameter \"x\" "
					 "(want endpoint, region, force-path-style, skip-verify, sse, "
					 "sse-kms-key-id, sse-customer-key or storage-class)");
		assert_memory_equal(&c, &zero, sizeof(c));
	}
	assert_int_equal(config_from_args("", urls, 1, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "database path \"\""));
}

static void test_replica_from_url(void **state)
{
	struct replica_config r, zero;
	char err[512];

	assert_int_equal(
		config_replica_from_url("s3://b.s3.us-west-2.amazonaws.com/db", &r, err, sizeof(err)), 0);
	assert_string_equal(r.name, "s3");
	assert_int_equal(r.type, REPLICA_S3);
	assert_string_equal(r.url, "s3://b.s3.us-west-2.amazonaws.com/db");
	assert_string_equal(r.bucket, "b");
	assert_string_equal(r.path, "db");
	assert_string_equal(r.region, "us-west-2");
	assert_null(r.endpoint);
	assert_false(r.force_path_style);
	assert_int_equal(r.sync_interval_ms, 1000);
	assert_int_equal(r.part_size, 8 * 1024 * 1024);
	replica_config_free(&r);
	assert_null(r.name);

	assert_int_equal(config_replica_from_url("file:///srv/b", &r, err, sizeof(err)), 0);
	assert_string_equal(r.name, "file");
	assert_string_equal(r.path, "/srv/b");
	replica_config_free(&r);

	memset(&zero, 0, sizeof(zero));
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(config_replica_from_url("s3://", &r, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "replica URL \"s3://\": no bucket (want s3://BUCKET/PREFIX)");
	assert_memory_equal(&r, &zero, sizeof(r));
}

static char *read_text(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		fail_msg("open %s: %m", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		fail_msg("read %s", path);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/*
 * Whether the example names key inside a section of the given kind, set or
 * commented out (";key = ..." under "[kind ..." or ";[kind ...").
 */
static bool example_mentions(const char *text, const char *section, const char *key)
{
	const char *line = text;
	bool in = false;

	while (*line != '\0') {
		size_t len = strcspn(line, "\n"), klen = strlen(key), slen = strlen(section);
		const char *c = line;

		if (*c == ';')
			c++;
		if (*c == '[')
			in = strncmp(c + 1, section, slen) == 0 &&
			     (c[1 + slen] == ']' || c[1 + slen] == ' ');
		else if (in && strncmp(c, key, klen) == 0) {
			const char *e = c + klen;

			while (*e == ' ')
				e++;
			if (*e == '=')
				return true;
		}
		line += len + (line[len] == '\n');
	}
	return false;
}

static void test_example_config(void **state)
{
	const char *path = TOP_SRCDIR "/conf/litestream.conf";
	struct config c;
	char err[1024] = "";
	const struct config_key *k;
	char *text;

	if (config_load(path, &c, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(c.n_dbs, 1);
	assert_string_equal(c.dbs[0].name, "app");
	assert_string_equal(c.dbs[0].path, "/var/lib/app/app.db");
	assert_int_equal(c.dbs[0].n_replicas, 1);
	assert_string_equal(c.dbs[0].replicas[0].name, "local");
	assert_string_equal(c.dbs[0].replicas[0].path, "/var/backups/app");
	config_free(&c);

	text = read_text(path);
	for (size_t i = 0; (k = config_key_at(i)) != NULL; i++)
		if (!example_mentions(text, k->section, k->key))
			fail_msg("conf/litestream.conf does not mention [%s] %s", k->section, k->key);
	/* The check itself must be able to fail. */
	assert_false(example_mentions(text, "db", "bucket"));
	assert_false(example_mentions(text, "litestream", "no-such-key"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
		cmocka_unit_test(test_key_table),
		cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replica_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_url_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sse_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_age_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test(test_name_by_file),
		cmocka_unit_test(test_from_args),
		cmocka_unit_test(test_replica_from_url),
		cmocka_unit_test(test_example_config),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
