/*
 * `litestream generations`: every generation of a database's replicas (or
 * of the one replica a URL names), as Litestream 0.3.13 lists them:
 * columns `name generation lag start end`, ordered by replica (file
 * order) and generation name.
 *
 * - start and end are the oldest and newest modification times among the
 *   generation's snapshots and segments.
 * - lag is how far end is behind the database: the database's last update
 *   (the later of DB_PATH's and DB_PATH-wal's modification times) minus
 *   end, truncated and printed as Go prints a Duration (listing.h). It is
 *   usually slightly negative: a segment is shipped just after the write
 *   that touched the WAL. With a REPLICA_URL there is no database, and the
 *   reference is the current time, as in Litestream. Litestream fails when
 *   the database file is missing; here the current time stands in, since
 *   that is exactly when one lists generations to restore from.
 * - A generation with no object prints as Litestream prints it: Go's zero
 *   time for start and end and the largest Duration as lag
 *   (2562047h47m16s); in JSON those are null.
 *
 * Precision: replica times come with millisecond resolution (catalog.h),
 * the reference with nanoseconds; a lag under one second can differ from
 * Litestream's by that last millisecond.
 */
#include "util/clock.h"
#include "cmd/commands.h"
#include "config/config.h"
#include "util/flags.h"
#include "cmd/listing.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *config_path, *replica_name;
static bool json;

static const struct flag generations_flags[] = {
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to $LITESTREAM_CONFIG, else " CONFIG_DEFAULT_PATH "."},
	{"replica", FLAG_STRING, &replica_name, "NAME", "Lists only this replica of the configured database."},
	{"json", FLAG_BOOL, &json, NULL, "Prints a JSON array of objects instead of a table."},
	{0},
};

static const struct command_help generations_help = {
	"generations",
	"[arguments] DB_PATH|REPLICA_URL",
	"The generations command lists the generations held by each replica of a database, or by one replica given by its URL, with the time range each covers and how far its last update lags behind the database.",
	generations_flags,
};

struct gen_state {
	bool have_ref;
	int64_t ref_ns; /* the database's last update, Unix ns */
};

static bool mtime_ns(const char *path, int64_t *out)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return false;
	*out = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	return true;
}

/* When the database last changed: its file or its WAL, whichever is later. */
static int64_t db_updated_ns(const char *db_path)
{
	char wal[4096];
	int64_t t, w;

	if (db_path == NULL || !mtime_ns(db_path, &t))
		return clock_wall_ns();
	if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", db_path) < sizeof(wal) && mtime_ns(wal, &w) &&
	    w > t)
		t = w;
	return t;
}

static int emit(void *arg, struct listing_out *out, const struct listing_replica *r)
{
	struct gen_state *st = arg;

	/* Once per run, as Litestream takes it once before listing. */
	if (!st->have_ref) {
		st->ref_ns = db_updated_ns(r->target->db_path);
		st->have_ref = true;
	}
	for (size_t g = 0; g < r->cat->n_gens; g++) {
		const struct catalog_generation *gen = &r->cat->gens[g];
		bool empty = gen->n_snapshots == 0 && gen->n_segments == 0;
		int64_t start = empty ? LISTING_GO_ZERO_TIME_MS : gen->created_ms;
		int64_t end = empty ? LISTING_GO_ZERO_TIME_MS : gen->updated_ms;
		int64_t lag = listing_lag_ns(st->ref_ns, end);
		char lag_s[LISTING_DURATION_LEN], start_s[LISTING_TIME_LEN], end_s[LISTING_TIME_LEN];
		cJSON *obj;

		listing_format_duration(listing_truncate_lag(lag), lag_s, sizeof(lag_s));
		listing_format_time(start, start_s, sizeof(start_s));
		listing_format_time(end, end_s, sizeof(end_s));
		listing_out_row(out, (const char *const[]){r->cfg->name, gen->name, lag_s, start_s, end_s}, 5);
		obj = listing_out_object(out);
		listing_json_string(out, obj, "name", r->cfg->name);
		listing_json_string(out, obj, "generation", gen->name);
		if (empty) {
			listing_json_null(out, obj, "lag");
			listing_json_null(out, obj, "lag_ms");
		} else {
			listing_json_string(out, obj, "lag", lag_s);
			/* Untruncated, toward zero: the text column's rounding is for eyes. */
			listing_json_int(out, obj, "lag_ms", lag / 1000000);
		}
		listing_json_time(out, obj, "start", "start_ms", start, !empty);
		listing_json_time(out, obj, "end", "end_ms", end, !empty);
	}
	return out->rc;
}

int cmd_generations(int argc, char **argv)
{
	static const char *const header[] = {"name", "generation", "lag", "start", "end"};
	struct listing_args a = {"generations", NULL, NULL, NULL, NULL};
	struct gen_state st = {false, 0};
	struct listing_out out;
	int i, code;

	config_path = replica_name = NULL;
	json = false;
	i = flags_parse(&generations_help, argc, argv);
	if (i < 0)
		return flags_exit_code(i);
	if ((code = listing_one_arg(&generations_help, argc, argv, i, &a.target)) != 0)
		return code;
	a.config_path = config_path;
	a.replica_name = replica_name;
	if (listing_out_init(&out, json, header, 5) != 0) {
		fprintf(stderr, "litestream generations: out of memory\n");
		listing_out_free(&out);
		return 1;
	}
	return listing_run(&a, &out, emit, &st);
}
