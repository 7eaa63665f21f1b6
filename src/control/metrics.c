/*
 * Prometheus text exposition; see metrics.h for the names and why.
 *
 * Each family is written whole (HELP, TYPE, then every sample of every
 * database or replica), as the format requires. Numbers that are whole
 * are printed as integers, so byte counts up to 2^53 stay exact.
 */
#include "control/metrics.h"

#include "db/db.h"
#include "replica/replica.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

void metrics_buf_init(struct metrics_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void metrics_buf_free(struct metrics_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static bool reserve(struct metrics_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->failed)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void metrics_buf_append(struct metrics_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void append_str(struct metrics_buf *b, const char *s)
{
	metrics_buf_append(b, s, strlen(s));
}

/* Escapes \ and newline, and " too when quote is set. */
static void append_escaped(struct metrics_buf *b, const char *s, bool quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quote)
			esc = "\\\"";
		if (esc == NULL)
			continue;
		metrics_buf_append(b, run, (size_t)(s - run));
		append_str(b, esc);
		run = s + 1;
	}
	metrics_buf_append(b, run, (size_t)(s - run));
}

void metrics_escape_label(struct metrics_buf *b, const char *value)
{
	append_escaped(b, value, true);
}

void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	append_str(b, "# HELP ");
	append_str(b, name);
	append_str(b, " ");
	append_escaped(b, help, false);
	append_str(b, "\n# TYPE ");
	append_str(b, name);
	append_str(b, " ");
	append_str(b, type);
	append_str(b, "\n");
}

void metrics_format_value(double v, char *buf, size_t n)
{
	if (isnan(v)) {
		snprintf(buf, n, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		snprintf(buf, n, "%.0f", v);
	} else {
		/* The shortest of %.15g..%.17g that reads back as v. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, n, "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
}

void metrics_sample(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
		    size_t n_labels, double value)
{
	char num[64];

	append_str(b, name);
	if (n_labels > 0) {
		append_str(b, "{");
		for (size_t i = 0; i < n_labels; i++) {
			if (i > 0)
				append_str(b, ",");
			append_str(b, labels[i].name);
			append_str(b, "=\"");
			metrics_escape_label(b, labels[i].value ? labels[i].value : "");
			append_str(b, "\"");
		}
		append_str(b, "}");
	}
	metrics_format_value(value, num, sizeof(num));
	append_str(b, " ");
	append_str(b, num);
	append_str(b, "\n");
}

/* ---- the process ---------------------------------------------------------- */

static double read_start_time(void)
{
	char buf[4096], *p;
	unsigned long long start_ticks = 0, btime = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;
	int field;

	if ((f = fopen("/proc/self/stat", "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* Field 3 (state) follows ") "; starttime is field 22. */
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start_ticks) != 1)
		return -1;
	if ((f = fopen("/proc/stat", "r")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	if (btime == 0 || hz <= 0)
		return -1;
	return (double)btime + (double)start_ticks / (double)hz;
}

void metrics_process_read(struct metrics_process *p)
{
	struct rusage ru;
	struct rlimit rl;
	unsigned long long vm_pages, rss_pages;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f;
	DIR *d;

	p->cpu_seconds = p->resident_bytes = p->virtual_bytes = -1;
	p->open_fds = p->max_fds = p->start_time = -1;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
				 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &vm_pages, &rss_pages) == 2 && page > 0) {
			p->virtual_bytes = (double)vm_pages * (double)page;
			p->resident_bytes = (double)rss_pages * (double)page;
		}
		fclose(f);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *e;
		double n = 0;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		p->open_fds = n - 1; /* not the descriptor reading the directory */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		p->max_fds = (double)rl.rlim_cur;
	p->start_time = read_start_time();
}

/* ---- litestream ----------------------------------------------------------- */

enum db_metric {
	M_DB_SIZE,
	M_WAL_SIZE,
	M_TOTAL_WAL_BYTES,
	M_SHADOW_WAL_INDEX,
	M_SHADOW_WAL_SIZE,
	M_SYNC_COUNT,
	M_SYNC_ERROR_COUNT,
	M_SYNC_SECONDS,
};

static const struct {
	const char *name, *type, *help;
} db_families[] = {
	[M_DB_SIZE] = {"litestream_db_size", "gauge", "The current size of the real DB"},
	[M_WAL_SIZE] = {"litestream_wal_size", "gauge", "The current size of the real WAL"},
	[M_TOTAL_WAL_BYTES] = {"litestream_total_wal_bytes", "counter",
			       "Total number of bytes written to shadow WAL"},
	[M_SHADOW_WAL_INDEX] = {"litestream_shadow_wal_index", "gauge",
				"The current index of the shadow WAL"},
	[M_SHADOW_WAL_SIZE] = {"litestream_shadow_wal_size", "gauge",
			       "Current size of shadow WAL, in bytes"},
	[M_SYNC_COUNT] = {"litestream_sync_count", "counter", "Number of sync operations performed"},
	[M_SYNC_ERROR_COUNT] = {"litestream_sync_error_count", "counter",
				"Number of sync errors that have occurred"},
	[M_SYNC_SECONDS] = {"litestream_sync_seconds", "counter",
			    "Time spent syncing shadow WAL, in seconds"},
};

/* The value of a per-database metric, or NAN when it has none yet. */
static double db_value(const struct db *db, enum db_metric m)
{
	switch (m) {
	case M_DB_SIZE: return (double)db->stats.db_size;
	case M_WAL_SIZE: return (double)db->stats.wal_size;
	case M_TOTAL_WAL_BYTES: return (double)db->stats.total_wal_bytes;
	case M_SHADOW_WAL_INDEX: return db->pos_valid ? (double)db->pos.index : NAN;
	case M_SHADOW_WAL_SIZE: return db->pos_valid ? (double)db->pos.offset : NAN;
	case M_SYNC_COUNT: return (double)db->stats.sync_count;
	case M_SYNC_ERROR_COUNT: return (double)db->stats.sync_error_count;
	case M_SYNC_SECONDS: return db->stats.sync_seconds;
	}
	return NAN;
}

static const char *db_label(const struct db *db)
{
	return db->path ? db->path : db->cfg->path;
}

static void write_db_families(struct metrics_buf *b, struct db *const *dbs, size_t n)
{
	static const struct {
		const char *name, *help;
	} ckpt[] = {
		{"litestream_checkpoint_count", "Number of checkpoint operations performed"},
		{"litestream_checkpoint_error_count", "Number of checkpoint errors that have occurred"},
		{"litestream_checkpoint_seconds", "Time spent checkpointing WAL, in seconds"},
	};

	for (size_t m = 0; m < sizeof(db_families) / sizeof(db_families[0]); m++) {
		metrics_family(b, db_families[m].name, db_families[m].type, db_families[m].help);
		for (size_t i = 0; i < n; i++) {
			struct metrics_label l = {"db", db_label(dbs[i])};
			double v = db_value(dbs[i], (enum db_metric)m);
			if (!isnan(v))
				metrics_sample(b, db_families[m].name, &l, 1, v);
		}
	}
	for (size_t k = 0; k < 3; k++) {
		metrics_family(b, ckpt[k].name, "counter", ckpt[k].help);
		for (size_t i = 0; i < n; i++) {
			for (int mode = 0; mode < CHECKPOINT_MODES; mode++) {
				const struct db_stats *st = &dbs[i]->stats;
				struct metrics_label l[2] = {
					{"db", db_label(dbs[i])},
					{"mode", db_checkpoint_mode_name((enum db_checkpoint_mode)mode)},
				};
				double v = k == 0   ? (double)st->checkpoint_count[mode]
					   : k == 1 ? (double)st->checkpoint_error_count[mode]
						    : st->checkpoint_seconds[mode];
				metrics_sample(b, ckpt[k].name, l, 2, v);
			}
		}
	}
}

enum replica_metric {
	R_WAL_INDEX,
	R_WAL_OFFSET,
	R_WAL_BYTES,
	R_LAG_SECONDS,
	R_PENDING_BYTES,
};

static const struct {
	const char *name, *type, *help;
} replica_families[] = {
	[R_WAL_INDEX] = {"litestream_replica_wal_index", "gauge", "The current WAL index"},
	[R_WAL_OFFSET] = {"litestream_replica_wal_offset", "gauge", "The current WAL offset"},
	[R_WAL_BYTES] = {"litestream_replica_wal_bytes", "counter", "The number wal bytes written"},
	[R_LAG_SECONDS] = {"litestream_replica_lag_seconds", "gauge",
			   "Seconds the replica has been behind its database, 0 when caught up"},
	[R_PENDING_BYTES] = {"litestream_replica_pending_bytes", "gauge",
			     "Bytes of the current shadow WAL index not yet shipped to the replica"},
};

/*
 * A counter of outcomes per replica, both always present (as Litestream
 * initialises them): ok and failed are offsets of two uint64_t counters
 * in struct replica_stats.
 */
static void write_outcome_family(struct metrics_buf *b, struct db *const *dbs, size_t n,
				 const char *name, const char *help, size_t ok, size_t failed)
{
	static const char *const statuses[] = {"ok", "error"};

	metrics_family(b, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < dbs[i]->n_replicas; j++)
			for (size_t k = 0; k < 2; k++) {
				const struct replica *r = dbs[i]->replicas[j];
				struct metrics_label l[3] = {
					{"db", db_label(dbs[i])},
					{"name", r->name},
					{"status", statuses[k]},
				};
				uint64_t v;

				memcpy(&v, (const char *)&r->stats + (k == 0 ? ok : failed), sizeof(v));
				metrics_sample(b, name, l, 3, (double)v);
			}
}

/* When the last verify that passed ended, per replica (absent: never). */
static void write_last_verify(struct metrics_buf *b, struct db *const *dbs, size_t n)
{
	metrics_family(b, "litestream_replica_last_verify_ok_timestamp_seconds", "gauge",
		       "Unix time at which the last verify that passed ended");
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < dbs[i]->n_replicas; j++) {
			const struct replica *r = dbs[i]->replicas[j];
			struct metrics_label l[2] = {{"db", db_label(dbs[i])}, {"name", r->name}};

			if (r->stats.last_verify_ok_ms > 0)
				metrics_sample(b, "litestream_replica_last_verify_ok_timestamp_seconds", l,
					       2, (double)r->stats.last_verify_ok_ms / 1000.0);
		}
}

static void write_replica_families(struct metrics_buf *b, struct db *const *dbs, size_t n,
				   metrics_wal_bytes_fn wal_bytes, void *arg)
{
	for (size_t m = 0; m < sizeof(replica_families) / sizeof(replica_families[0]); m++) {
		metrics_family(b, replica_families[m].name, replica_families[m].type,
			       replica_families[m].help);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < dbs[i]->n_replicas; j++) {
				const struct replica *r = dbs[i]->replicas[j];
				struct metrics_label l[2] = {{"db", db_label(dbs[i])}, {"name", r->name}};
				struct db_pos pos;
				bool known = replica_position(r, &pos) && pos.generation[0] != '\0';
				double v;

				switch ((enum replica_metric)m) {
				case R_WAL_INDEX:
					if (!known)
						continue;
					v = (double)pos.index;
					break;
				case R_WAL_OFFSET:
					if (!known)
						continue;
					v = (double)pos.offset;
					break;
				case R_WAL_BYTES:
					v = wal_bytes ? (double)wal_bytes(r, arg) : 0;
					break;
				case R_LAG_SECONDS:
					v = replica_lag_seconds(r);
					break;
				case R_PENDING_BYTES:
				default:
					v = (double)replica_pending_bytes(r);
					break;
				}
				metrics_sample(b, replica_families[m].name, l, 2, v);
			}
		}
	}
	write_outcome_family(b, dbs, n, "litestream_replica_validation_total",
			     "The number of validations performed",
			     offsetof(struct replica_stats, validations_ok),
			     offsetof(struct replica_stats, validations_failed));
	write_outcome_family(b, dbs, n, "litestream_replica_verify_total",
			     "The number of verifies run through the control socket",
			     offsetof(struct replica_stats, verifies_ok),
			     offsetof(struct replica_stats, verifies_failed));
	write_last_verify(b, dbs, n);
}

static const char *replica_type(const struct replica *r)
{
	if (r->backend != NULL && r->backend->ops != NULL && r->backend->ops->type != NULL)
		return r->backend->ops->type;
	if (r->cfg == NULL)
		return "file";
	return r->cfg->type == REPLICA_S3     ? "s3"
	       : r->cfg->type == REPLICA_ABS  ? "abs"
	       : r->cfg->type == REPLICA_SFTP ? "sftp"
					      : "file";
}

static void write_operation_families(struct metrics_buf *b, struct db *const *dbs, size_t n)
{
	static const char *const ops[] = {"GET", "PUT", "LIST", "DELETE"};
	const char *types[8];
	size_t n_types = 0;

	/* The replica types in use, each once. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < dbs[i]->n_replicas; j++) {
			const char *t = replica_type(dbs[i]->replicas[j]);
			size_t k;
			for (k = 0; k < n_types && strcmp(types[k], t) != 0; k++)
				;
			if (k == n_types && n_types < sizeof(types) / sizeof(types[0]))
				types[n_types++] = t;
		}
	for (int bytes = 0; bytes < 2; bytes++) {
		const char *name = bytes ? "litestream_replica_operation_bytes" : "litestream_replica_operation_total";
		metrics_family(b, name, "counter",
			       bytes ? "The number of bytes used by replica operations"
				     : "The number of replica operations performed");
		for (size_t t = 0; t < n_types; t++) {
			for (size_t o = 0; o < 4; o++) {
				double v = 0;
				struct metrics_label l[2] = {{"replica_type", types[t]}, {"operation", ops[o]}};
				if (bytes && o >= 2)
					continue; /* Litestream counts bytes of GET and PUT only */
				for (size_t i = 0; i < n; i++)
					for (size_t j = 0; j < dbs[i]->n_replicas; j++) {
						const struct replica *r = dbs[i]->replicas[j];
						const struct replica_stats *st = &r->stats;
						if (strcmp(replica_type(r), types[t]) != 0)
							continue;
						switch (o) {
						case 0: v += (double)(bytes ? st->get_bytes : st->get_count); break;
						case 1: v += (double)(bytes ? st->put_bytes : st->put_count); break;
						case 2: v += (double)st->list_count; break;
						default: v += (double)st->delete_count; break;
						}
					}
				metrics_sample(b, name, l, 2, v);
			}
		}
	}
}

void metrics_write_process(struct metrics_buf *b, const struct metrics_process *p)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fams[] = {
		{"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
		 offsetof(struct metrics_process, cpu_seconds)},
		{"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		 offsetof(struct metrics_process, resident_bytes)},
		{"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		 offsetof(struct metrics_process, virtual_bytes)},
		{"process_open_fds", "gauge", "Number of open file descriptors.",
		 offsetof(struct metrics_process, open_fds)},
		{"process_max_fds", "gauge", "Maximum number of open file descriptors.",
		 offsetof(struct metrics_process, max_fds)},
		{"process_start_time_seconds", "gauge",
		 "Start time of the process since unix epoch in seconds.",
		 offsetof(struct metrics_process, start_time)},
	};

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		double v;
		memcpy(&v, (const char *)p + fams[i].off, sizeof(v));
		if (v < 0)
			continue;
		metrics_family(b, fams[i].name, fams[i].type, fams[i].help);
		metrics_sample(b, fams[i].name, NULL, 0, v);
	}
}

void metrics_write(struct metrics_buf *b, struct db *const *dbs, size_t n_dbs,
		   metrics_wal_bytes_fn wal_bytes, void *arg, const struct metrics_process *proc)
{
	write_db_families(b, dbs, n_dbs);
	write_replica_families(b, dbs, n_dbs, wal_bytes, arg);
	write_operation_families(b, dbs, n_dbs);
	if (proc != NULL)
		metrics_write_process(b, proc);
}
