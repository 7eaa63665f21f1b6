/*
 * `litestream snapshots`: every snapshot of a database's replicas (or of
 * the one replica a URL names), as Litestream 0.3 lists them: columns
 * `replica generation index size created`, ordered by replica (file
 * order), generation, index; the index in decimal, the size as stored
 * (compressed), created as the object's modification time.
 */
#include "cmd/commands.h"
#include "config/config.h"
#include "util/flags.h"
#include "cmd/listing.h"

#include <inttypes.h>
#include <stdio.h>

static const char *config_path, *replica_name;
static bool json;

static const struct flag snapshots_flags[] = {
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to $LITESTREAM_CONFIG, else " CONFIG_DEFAULT_PATH "."},
	{"replica", FLAG_STRING, &replica_name, "NAME", "Lists only this replica of the configured database."},
	{"json", FLAG_BOOL, &json, NULL, "Prints a JSON array of objects instead of a table."},
	{0},
};

static const struct command_help snapshots_help = {
	"snapshots",
	"[arguments] DB_PATH|REPLICA_URL",
	"The snapshots command lists the snapshots held by each replica of a database, or by one replica given by its URL.",
	snapshots_flags,
};

static int emit(void *arg, struct listing_out *out, const struct listing_replica *r)
{
	for (size_t g = 0; g < r->cat->n_gens; g++) {
		const struct catalog_generation *gen = &r->cat->gens[g];
		for (size_t k = 0; k < gen->n_snapshots; k++) {
			const struct catalog_snapshot *s = &gen->snapshots[k];
			char index[16], size[24], created[LISTING_TIME_LEN];
			cJSON *obj;

			snprintf(index, sizeof(index), "%" PRIu32, s->index);
			snprintf(size, sizeof(size), "%" PRIu64, s->size);
			listing_format_time(s->created_ms, created, sizeof(created));
			listing_out_row(out, (const char *const[]){r->cfg->name, gen->name, index, size, created}, 5);
			obj = listing_out_object(out);
			listing_json_string(out, obj, "replica", r->cfg->name);
			listing_json_string(out, obj, "generation", gen->name);
			listing_json_int(out, obj, "index", s->index);
			listing_json_int(out, obj, "size", (int64_t)s->size);
			listing_json_time(out, obj, "created", "created_ms", s->created_ms, true);
		}
	}
	return out->rc;
}

int cmd_snapshots(int argc, char **argv)
{
	static const char *const header[] = {"replica", "generation", "index", "size", "created"};
	struct listing_args a = {"snapshots", NULL, NULL, NULL, NULL};
	struct listing_out out;
	int i, code;

	config_path = replica_name = NULL;
	json = false;
	i = flags_parse(&snapshots_help, argc, argv);
	if (i < 0)
		return flags_exit_code(i);
	if ((code = listing_one_arg(&snapshots_help, argc, argv, i, &a.target)) != 0)
		return code;
	a.config_path = config_path;
	a.replica_name = replica_name;
	if (listing_out_init(&out, json, header, 5) != 0) {
		fprintf(stderr, "litestream snapshots: out of memory\n");
		listing_out_free(&out);
		return 1;
	}
	return listing_run(&a, &out, emit, NULL);
}
