/*
 * What the listing commands (databases, generations, snapshots, wal) share:
 * the walk over a target's replicas, the output in either of two forms,
 * and Go's ways of printing times and durations that Litestream 0.3.13's
 * columns use.
 *
 * Output: a text table (table.h, laid out as Litestream's tabwriter does)
 * or, with -json, one JSON array of objects with the same fields: numbers
 * as numbers, times as RFC 3339 strings beside a `*_ms` integer (Unix
 * milliseconds), absent values as null. A command adds each row in both
 * forms; the one not asked for is a no-op, so commands stay one code path.
 *
 * Exit codes follow commands.h: a target that does not resolve prints one
 * message and nothing on stdout (1, or 2 for a usage error); a replica
 * that cannot be listed is reported on stderr, the others are still
 * listed, and the command exits 1 (with nothing on stdout when no
 * replica could be listed at all).
 */
#ifndef LITESTREAM_LISTING_H
#define LITESTREAM_LISTING_H

#include "backend/catalog.h"
#include "util/flags.h"
#include "util/table.h"
#include "restore/target.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Go's zero time.Time (0001-01-01T00:00:00Z) in Unix milliseconds. */
#define LISTING_GO_ZERO_TIME_MS (-62135596800000LL)

/* Buffer sizes that always suffice. */
#define LISTING_TIME_LEN 32
#define LISTING_DURATION_LEN 40

/*
 * ms as Go's Time.Format(time.RFC3339) prints a UTC time:
 * "2024-05-01T12:34:56Z", fractions of a second dropped (toward the past,
 * as Go does): timefmt_format(), plus Go's zero time.
 */
void listing_format_time(int64_t ms, char *buf, size_t n);

/*
 * ns as Go's Duration.String() prints it: "0s", "1.5s", "2h0m3s",
 * "-12ms", "250µs" (U+00B5), "17ns".
 */
void listing_format_duration(int64_t ns, char *buf, size_t n);

/*
 * Litestream 0.3.13's truncation of the generations lag: to whole seconds
 * above 10s, tenths above 1s, milliseconds above 1ms, microseconds above
 * 1µs (mirrored below zero), toward zero.
 */
int64_t listing_truncate_lag(int64_t ns);

/* What `generations` prints as lag: ref_ns minus updated_ms, saturating as Go's Time.Sub does. */
int64_t listing_lag_ns(int64_t ref_ns, int64_t updated_ms);

struct listing_out {
	bool json;
	struct table table;
	cJSON *array;
	int rc; /* first failure (-ENOMEM) while adding; sticky */
};

/* Starts an output with its header row (text only). 0 or -ENOMEM. */
int listing_out_init(struct listing_out *o, bool json, const char *const *header, size_t n);

/* Adds a text row (a no-op with -json). */
void listing_out_row(struct listing_out *o, const char *const *cells, size_t n);

/*
 * A new object appended to the JSON array, or NULL in text mode or when
 * out of memory (then o->rc is set). The listing_json_* helpers take a
 * NULL obj as a no-op, so callers need not check.
 */
cJSON *listing_out_object(struct listing_out *o);
void listing_json_string(struct listing_out *o, cJSON *obj, const char *key, const char *v);
void listing_json_int(struct listing_out *o, cJSON *obj, const char *key, int64_t v);
void listing_json_null(struct listing_out *o, cJSON *obj, const char *key);
/* key as an RFC 3339 string and key_ms as an integer, or both null when !valid. */
void listing_json_time(struct listing_out *o, cJSON *obj, const char *key, const char *key_ms,
		       int64_t ms, bool valid);

/*
 * Prints the output to stdout and frees it. Returns code, or 1 when
 * printing failed or o->rc was set (with a message naming cmd).
 */
int listing_out_finish(struct listing_out *o, const char *cmd, int code);

/* Frees without printing. */
void listing_out_free(struct listing_out *o);

/*
 * Checks that exactly one positional argument (DB_PATH|REPLICA_URL) is
 * left at argv[i]; *arg receives it. 0, or 2 after a usage message.
 */
int listing_one_arg(const struct command_help *help, int argc, char **argv, int i,
		    const char **arg);

struct listing_args {
	const char *cmd;          /* command name, for messages */
	const char *target;       /* DB_PATH or REPLICA_URL */
	const char *config_path;  /* -config, or NULL */
	const char *replica_name; /* -replica, or NULL for every replica */
	const char *generation;   /* only this generation (valid name), or NULL */
};

/* One replica's contents, valid during the emit callback only. */
struct listing_replica {
	const struct target *target;
	const struct replica_config *cfg;
	const struct catalog *cat;
};

/* Adds r's rows to out; 0 or -errno (stops the walk). */
typedef int (*listing_emit_fn)(void *arg, struct listing_out *out,
			       const struct listing_replica *r);

/*
 * Resolves a->target, lists every selected replica in turn (its catalog,
 * restricted to a->generation) and hands each to emit; then prints out
 * (see listing_out_finish()). Returns the exit code; out is freed either
 * way.
 */
int listing_run(const struct listing_args *a, struct listing_out *out, listing_emit_fn emit,
		void *arg);

#endif
