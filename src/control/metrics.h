/*
 * Prometheus metrics in the text exposition format 0.0.4, served by the
 * control server at GET /metrics.
 *
 * Names, types and labels are Litestream 0.3.13's, so existing dashboards
 * and alerts keep working:
 *
 *   per database, label db (the database's path):
 *     litestream_db_size, litestream_wal_size (gauges, bytes)
 *     litestream_total_wal_bytes (counter) bytes copied to the shadow WAL
 *     litestream_shadow_wal_index, litestream_shadow_wal_size (gauges)
 *     litestream_sync_count, litestream_sync_error_count,
 *     litestream_sync_seconds (counters)
 *     litestream_checkpoint_count, litestream_checkpoint_error_count,
 *     litestream_checkpoint_seconds (counters, labels db and mode:
 *     PASSIVE, FULL, RESTART, TRUNCATE)
 *   per replica, labels db and name (the replica's name):
 *     litestream_replica_wal_index, litestream_replica_wal_offset (gauges)
 *     litestream_replica_wal_bytes (counter) WAL bytes shipped
 *     litestream_replica_validation_total (counter, label status: ok, error)
 *   per replica type, labels replica_type (file, s3) and operation (GET,
 *   PUT, LIST, DELETE):
 *     litestream_replica_operation_total, litestream_replica_operation_bytes
 *
 * Litestream's counters keep their names although they lack the _total
 * suffix (and two end in _count): promtool's lint says so, on purpose.
 * What is new here follows Prometheus naming:
 *
 *   litestream_replica_lag_seconds (gauge) how long the replica has been
 *     behind its database, 0 when it holds everything
 *   litestream_replica_pending_bytes (gauge) bytes of the database's
 *     current shadow WAL index not yet shipped
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *   process_start_time_seconds: the standard process metrics.
 *
 * Every family has HELP and TYPE lines, every family with samples is
 * written as one group, label values are escaped (\\, \", \n).
 * litestream_shadow_wal_size is the size of the current shadow WAL index
 * (Litestream sums the generation's files; here only the current one is
 * known without touching the disk).
 *
 * Formatting is pure and unit-tested; metrics_write() reads the loop-owned
 * state of the databases and replicas, so it runs on the loop thread.
 */
#ifndef LITESTREAM_METRICS_H
#define LITESTREAM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct replica;

/* A growing text buffer; after an allocation failure it stays failed. */
struct metrics_buf {
	char *data; /* NUL-terminated, owned */
	size_t len;
	size_t cap;
	bool failed;
};

void metrics_buf_init(struct metrics_buf *b);
void metrics_buf_free(struct metrics_buf *b);
void metrics_buf_append(struct metrics_buf *b, const char *s, size_t n);

/* Writes "# HELP name help" (help escaped) and "# TYPE name type". */
void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help);

/* One label: name="value". */
struct metrics_label {
	const char *name;
	const char *value;
};

/* Writes `name{l1="v1",...} value` (no braces without labels). */
void metrics_sample(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
		    size_t n_labels, double value);

/* Appends value escaped for a label value (\\, \", \n). */
void metrics_escape_label(struct metrics_buf *b, const char *value);

/*
 * A sample value: integers exactly ("12345"), others in the shortest form
 * that reads back the same, "NaN", "+Inf", "-Inf".
 */
void metrics_format_value(double v, char *buf, size_t n);

/* The process, as /proc describes it; fields are -1 when unknown. */
struct metrics_process {
	double cpu_seconds;
	double resident_bytes;
	double virtual_bytes;
	double open_fds;
	double max_fds;
	double start_time; /* seconds since the epoch */
};

void metrics_process_read(struct metrics_process *p);

/* The process_* families of p (those it knows). */
void metrics_write_process(struct metrics_buf *b, const struct metrics_process *p);

/* WAL bytes a replica has shipped since the process started. */
typedef uint64_t (*metrics_wal_bytes_fn)(const struct replica *r, void *arg);

/*
 * Every metric above, for the given databases (and their replicas).
 * proc may be NULL (no process metrics). Loop thread only.
 */
void metrics_write(struct metrics_buf *b, struct db *const *dbs, size_t n_dbs,
		   metrics_wal_bytes_fn wal_bytes, void *arg, const struct metrics_process *proc);

#endif
