/*
 * `litestream databases`: the databases of the configuration file and
 * their replicas' names, as Litestream 0.3 lists them (columns `path
 * replicas`, names comma-separated, file order). With -json the replicas
 * are an array of names. Reads the file only: no replica is contacted.
 */
#include "cmd/commands.h"
#include "config/config.h"
#include "util/flags.h"
#include "cmd/listing.h"
#include "restore/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *config_path;
static bool json;

static const struct flag databases_flags[] = {
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to $LITESTREAM_CONFIG, else " CONFIG_DEFAULT_PATH "."},
	{"json", FLAG_BOOL, &json, NULL, "Prints a JSON array of objects instead of a table."},
	{0},
};

static const struct command_help databases_help = {
	"databases",
	"[arguments]",
	"The databases command lists the databases of the configuration file with the names of their replicas.",
	databases_flags,
};

/* The replicas' names joined with ',' (malloc'd), or NULL when out of memory. */
static char *join_names(const struct db_config *dc)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < dc->n_replicas; i++)
		len += strlen(dc->replicas[i].name) + 1;
	s = malloc(len);
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < dc->n_replicas; i++) {
		if (i > 0)
			strcat(s, ",");
		strcat(s, dc->replicas[i].name);
	}
	return s;
}

static void add_db(struct listing_out *out, const struct db_config *dc)
{
	cJSON *obj, *names;
	char *joined;

	if (!out->json) {
		joined = join_names(dc);
		if (joined == NULL) {
			out->rc = -ENOMEM;
			return;
		}
		listing_out_row(out, (const char *const[]){dc->path, joined}, 2);
		free(joined);
		return;
	}
	obj = listing_out_object(out);
	listing_json_string(out, obj, "path", dc->path);
	if (obj == NULL)
		return;
	names = cJSON_AddArrayToObject(obj, "replicas");
	if (names == NULL) {
		out->rc = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < dc->n_replicas; i++) {
		cJSON *name = cJSON_CreateString(dc->replicas[i].name);
		if (name == NULL || !cJSON_AddItemToArray(names, name)) {
			cJSON_Delete(name);
			out->rc = -ENOMEM;
			return;
		}
	}
}

int cmd_databases(int argc, char **argv)
{
	static const char *const header[] = {"path", "replicas"};
	struct config cfg = {0};
	struct listing_out out;
	char err[1024];
	int i;

	config_path = NULL;
	json = false;
	i = flags_parse(&databases_help, argc, argv);
	if (i < 0)
		return flags_exit_code(i);
	if (i < argc) {
		fprintf(stderr, "litestream databases: too many arguments\n");
		return 2;
	}
	if (config_load(target_config_path(config_path), &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream databases: %s\n", err);
		return 1;
	}
	if (listing_out_init(&out, json, header, 2) != 0) {
		fprintf(stderr, "litestream databases: out of memory\n");
		listing_out_free(&out);
		config_free(&cfg);
		return 1;
	}
	for (size_t d = 0; d < cfg.n_dbs && out.rc == 0; d++)
		add_db(&out, &cfg.dbs[d]);
	config_free(&cfg);
	return listing_out_finish(&out, "databases", 0);
}
