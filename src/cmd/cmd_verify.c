/*
 * `litestream verify`: checks that every generation of a database's
 * replicas (or of the one replica a URL names) can be restored, without
 * touching the database: the check an operator runs on a schedule, so that
 * a broken backup is found on a quiet day and not on the day it is needed.
 *
 * For each generation it runs the restore engine itself (restore.h) into a
 * scratch file that is removed after, so the checks are exactly those of a
 * restore, no more and no fewer: every object downloaded (up to
 * -parallelism at a time) and decompressed with its LZ4 checksums, WAL
 * headers, salts and checksum chains, contiguous offsets, no missing index,
 * PRAGMA integrity_check of the result. First the generation's latest
 * state; then each older snapshot with the segments of its own index
 * (restore up to that index), so that a snapshot nobody restores today is
 * known to be good before retention makes it the oldest left. Memory stays
 * that of one restore; disk needs room for one copy of the database in the
 * scratch directory (-scratch, default $TMPDIR or /tmp).
 *
 * Output: a table as the listing commands print (or, with -json, an
 * array of objects), one row per generation: name, generation, status (ok
 * or FAILED), snapshots, segments, start, end and how far it restores
 * (the last segment, or the newest index that restored, or "-"); each
 * problem goes to stderr as it is found, naming the object, and into the
 * object's "problems" in JSON. Exit 0 when every generation is whole, 1
 * when one is not (or a replica could not be listed), 2 for a usage error.
 */
#include "cmd/commands.h"
#include "cmd/listing.h"
#include "config/config.h"
#include "core/names.h"
#include "restore/restore_replicas.h"
#include "util/flags.h"
#include "util/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *config_path, *replica_name, *generation, *scratch_arg;
static bool json;
static long parallelism;

static const struct flag verify_flags[] = {
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to $LITESTREAM_CONFIG, else " CONFIG_DEFAULT_PATH "."},
	{"replica", FLAG_STRING, &replica_name, "NAME", "Verifies only this replica of the configured database."},
	{"generation", FLAG_STRING, &generation, "NAME", "Verifies only this generation."},
	{"parallelism", FLAG_INT, &parallelism, "NUM", "Downloads this many objects at a time (default 8)."},
	{"scratch", FLAG_STRING, &scratch_arg, "DIR", "Where each generation is restored while it is checked, then removed (default $TMPDIR, else /tmp); needs room for one copy of the database."},
	{"json", FLAG_BOOL, &json, NULL, "Prints a JSON array of objects instead of one line per generation."},
	{0},
};

static const struct command_help verify_help = {
	"verify",
	"[arguments] DB_PATH|REPLICA_URL",
	"The verify command checks that every generation of each replica of a database, or of one replica given by its URL, restores: it reads every object and checks everything a restore checks, without writing the database. It exits 0 when every generation is whole, 1 otherwise.",
	verify_flags,
};

struct verify_state {
	char *scratch;     /* our own directory under -scratch */
	size_t n_checked;  /* generations */
	size_t n_bad;
};

/* Restores gen of replica rc into the scratch directory, up to index (or
 * the latest state with index -1), then removes it. 0, or -errno with err. */
static int try_restore(struct verify_state *st, const struct replica_config *rc, const char *gen,
		       int64_t index, char *err, size_t errlen)
{
	struct restore_opts o = {0};
	char *out = str_printf("%s/%s.db", st->scratch, gen);
	int ret;

	if (out == NULL)
		return -ENOMEM;
	o.output = out;
	o.generation = gen;
	o.index = index;
	o.timestamp_ms = -1;
	o.parallelism = parallelism > 0 ? (int)parallelism : 8;
	unlink(out);
	ret = restore_from_replicas(&rc, 1, &o, err, errlen);
	unlink(out);
	free(out);
	return ret;
}

/* A problem found in generation g: on stderr (the table stays on stdout)
 * and in the generation's JSON object. */
static void problem(struct listing_out *out, cJSON *problems, const struct listing_replica *r,
		    const struct catalog_generation *g, const char *what, const char *err)
{
	char line[1280];

	snprintf(line, sizeof(line), "%s%s%s", what, err != NULL ? ": " : "", err != NULL ? err : "");
	fprintf(stderr, "litestream verify: %s %s: %s\n", r->cfg->name, g->name, line);
	if (problems != NULL && !cJSON_AddItemToArray(problems, cJSON_CreateString(line)))
		out->rc = -ENOMEM;
}

/* Checks one generation; true when it is whole. */
static bool verify_generation(struct verify_state *st, struct listing_out *out,
			      const struct listing_replica *r, const struct catalog_generation *g)
{
	char err[1024], what[64], nsnap[24], nseg[24], to[NAME_MAX_LEN + 16];
	char start_s[LISTING_TIME_LEN], end_s[LISTING_TIME_LEN];
	const struct catalog_segment *last = g->n_segments ? &g->segments[g->n_segments - 1] : NULL;
	bool latest_ok = false, any = g->n_snapshots + g->n_segments > 0;
	int64_t good_index = -1; /* the newest index known restorable */
	size_t bad = 0;
	cJSON *obj = listing_out_object(out);
	cJSON *problems = obj != NULL ? cJSON_AddArrayToObject(obj, "problems") : NULL;

	if (g->n_snapshots == 0) {
		problem(out, problems, r, g, "no snapshot: nothing in this generation can be restored", NULL);
		bad++;
	} else if (try_restore(st, r->cfg, g->name, -1, err, sizeof(err)) == 0) {
		latest_ok = true;
	} else {
		problem(out, problems, r, g, "latest state", err);
		bad++;
	}
	/* Each older snapshot with its own index's segments (the newest one
	 * was just restored with everything after it). */
	for (size_t i = 0; i + 1 < g->n_snapshots; i++) {
		uint32_t idx = g->snapshots[i].index;

		if (try_restore(st, r->cfg, g->name, idx, err, sizeof(err)) == 0) {
			good_index = idx;
			continue;
		}
		snprintf(what, sizeof(what), "snapshot %08x", idx);
		problem(out, problems, r, g, what, err);
		bad++;
	}
	if (latest_ok && last != NULL && last->index >= g->snapshots[g->n_snapshots - 1].index)
		snprintf(to, sizeof(to), "%s", last->name);
	else if (latest_ok)
		snprintf(to, sizeof(to), "snapshot %08x", g->snapshots[g->n_snapshots - 1].index);
	else if (good_index >= 0)
		snprintf(to, sizeof(to), "index %08x", (unsigned)good_index);
	else
		snprintf(to, sizeof(to), "-");
	snprintf(nsnap, sizeof(nsnap), "%zu", g->n_snapshots);
	snprintf(nseg, sizeof(nseg), "%zu", g->n_segments);
	listing_format_time(any ? g->created_ms : LISTING_GO_ZERO_TIME_MS, start_s, sizeof(start_s));
	listing_format_time(any ? g->updated_ms : LISTING_GO_ZERO_TIME_MS, end_s, sizeof(end_s));
	listing_out_row(out, (const char *const[]){r->cfg->name, g->name, bad ? "FAILED" : "ok", nsnap,
						   nseg, start_s, end_s, to}, 8);
	listing_json_string(out, obj, "name", r->cfg->name);
	listing_json_string(out, obj, "generation", g->name);
	listing_json_string(out, obj, "status", bad ? "failed" : "ok");
	listing_json_int(out, obj, "snapshots", (int64_t)g->n_snapshots);
	listing_json_int(out, obj, "segments", (int64_t)g->n_segments);
	listing_json_time(out, obj, "start", "start_ms", g->created_ms, any);
	listing_json_time(out, obj, "end", "end_ms", g->updated_ms, any);
	if (to[0] != '-')
		listing_json_string(out, obj, "restorable_to", to);
	else
		listing_json_null(out, obj, "restorable_to");
	return bad == 0;
}

static int emit(void *arg, struct listing_out *out, const struct listing_replica *r)
{
	struct verify_state *st = arg;

	for (size_t g = 0; g < r->cat->n_gens && out->rc == 0; g++) {
		st->n_checked++;
		if (!verify_generation(st, out, r, &r->cat->gens[g]))
			st->n_bad++;
	}
	return out->rc;
}

static char *make_scratch(void)
{
	const char *base = scratch_arg;
	char *tmpl;

	if (base == NULL)
		base = getenv("TMPDIR") != NULL && getenv("TMPDIR")[0] != '\0' ? getenv("TMPDIR") : "/tmp";
	tmpl = str_printf("%s/litestream-verify-XXXXXX", base);
	if (tmpl == NULL)
		return NULL;
	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "litestream verify: cannot create a scratch directory in %s: %s\n", base,
			strerror(errno));
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

int cmd_verify(int argc, char **argv)
{
	static const char *const header[] = {"name", "generation", "status", "snapshots", "segments",
					     "start", "end", "restorable"};
	struct listing_args a = {"verify", NULL, NULL, NULL, NULL};
	struct verify_state st = {0};
	struct listing_out out;
	int i, code;

	config_path = replica_name = generation = scratch_arg = NULL;
	json = false;
	parallelism = 0;
	i = flags_parse(&verify_help, argc, argv);
	if (i < 0)
		return flags_exit_code(i);
	if ((code = listing_one_arg(&verify_help, argc, argv, i, &a.target)) != 0)
		return code;
	if (parallelism < 0 || parallelism > 64) {
		fprintf(stderr, "litestream verify: -parallelism must be between 1 and 64, not %ld\n", parallelism);
		return 2;
	}
	a.config_path = config_path;
	a.replica_name = replica_name;
	if (generation != NULL && generation[0] != '\0' && !generation_valid(generation)) {
		fprintf(stderr, "litestream verify: invalid generation name \"%s\" (16 lowercase hex digits)\n",
			generation);
		return 2;
	}
	a.generation = generation != NULL && generation[0] != '\0' ? generation : NULL;
	if ((st.scratch = make_scratch()) == NULL)
		return 1;
	if (listing_out_init(&out, json, header, 8) != 0) {
		fprintf(stderr, "litestream verify: out of memory\n");
		listing_out_free(&out);
		fs_remove_tree(st.scratch);
		free(st.scratch);
		return 1;
	}
	code = listing_run(&a, &out, emit, &st);
	fs_remove_tree(st.scratch);
	free(st.scratch);
	if (code == 0 && st.n_bad > 0)
		code = 1;
	if (code == 0 && st.n_checked == 0) {
		fprintf(stderr, "litestream verify: no generation to verify\n");
		code = 1;
	}
	return code;
}
