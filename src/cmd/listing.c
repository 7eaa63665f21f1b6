/*
 * The listing commands' shared machinery; see listing.h.
 *
 * One libuv loop serves every replica of a run, one backend at a time:
 * listings are small and sequential, and a failure of one replica must
 * not hide the others (Litestream 0.3 logs it and goes on; here the exit
 * status also says so).
 */
#include "cmd/listing.h"

#include "backend/backend.h"
#include "util/timefmt.h"
#include "config/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define NS_PER_MS 1000000LL
#define NS_PER_US 1000LL
#define NS_PER_S 1000000000LL

void listing_format_time(int64_t ms, char *buf, size_t n)
{
	/*
	 * strftime's %Y does not pad years below 1000, and Go's zero time is
	 * the only such time printed here (an empty generation).
	 */
	if (ms == LISTING_GO_ZERO_TIME_MS)
		snprintf(buf, n, "0001-01-01T00:00:00Z");
	else
		timefmt_format(ms, buf, n);
}

/* Writes v's last prec digits as ".ddd" before *w, dropping trailing zeros (and the point if all are). */
static uint64_t put_frac(char *buf, size_t *w, uint64_t v, int prec)
{
	int print = 0;

	for (int i = 0; i < prec; i++) {
		unsigned digit = (unsigned)(v % 10);
		print = print || digit != 0;
		if (print)
			buf[--*w] = (char)('0' + digit);
		v /= 10;
	}
	if (print)
		buf[--*w] = '.';
	return v;
}

static void put_int(char *buf, size_t *w, uint64_t v)
{
	do {
		buf[--*w] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
}

void listing_format_duration(int64_t ns, char *buf, size_t n)
{
	char tmp[LISTING_DURATION_LEN];
	size_t w = sizeof(tmp) - 1;
	/* Negate in unsigned arithmetic so INT64_MIN works too. */
	uint64_t u = ns < 0 ? -(uint64_t)ns : (uint64_t)ns;

	tmp[w] = '\0';
	if (u < (uint64_t)NS_PER_S) {
		int prec;
		tmp[--w] = 's';
		if (u == 0) {
			snprintf(buf, n, "0s");
			return;
		} else if (u < (uint64_t)NS_PER_US) {
			prec = 0;
			tmp[--w] = 'n';
		} else if (u < (uint64_t)NS_PER_MS) {
			prec = 3;
			tmp[--w] = (char)0xb5; /* U+00B5 MICRO SIGN, as Go writes it */
			tmp[--w] = (char)0xc2;
		} else {
			prec = 6;
			tmp[--w] = 'm';
		}
		u = put_frac(tmp, &w, u, prec);
		put_int(tmp, &w, u);
	} else {
		tmp[--w] = 's';
		u = put_frac(tmp, &w, u, 9);
		put_int(tmp, &w, u % 60);
		u /= 60;
		if (u > 0) {
			tmp[--w] = 'm';
			put_int(tmp, &w, u % 60);
			u /= 60;
			/* Hours are the largest unit: days vary in length. */
			if (u > 0) {
				tmp[--w] = 'h';
				put_int(tmp, &w, u);
			}
		}
	}
	if (ns < 0)
		tmp[--w] = '-';
	snprintf(buf, n, "%s", tmp + w);
}

int64_t listing_truncate_lag(int64_t ns)
{
	int64_t m;

	if (ns < 0) {
		if (ns < -10 * NS_PER_S)
			m = NS_PER_S;
		else if (ns < -NS_PER_S)
			m = NS_PER_S / 10;
		else if (ns < -NS_PER_MS)
			m = NS_PER_MS;
		else if (ns < -NS_PER_US)
			m = NS_PER_US;
		else
			return ns;
	} else {
		if (ns > 10 * NS_PER_S)
			m = NS_PER_S;
		else if (ns > NS_PER_S)
			m = NS_PER_S / 10;
		else if (ns > NS_PER_MS)
			m = NS_PER_MS;
		else if (ns > NS_PER_US)
			m = NS_PER_US;
		else
			return ns;
	}
	/* C's % truncates toward zero, as Go's Duration.Truncate does. */
	return ns - ns % m;
}

int64_t listing_lag_ns(int64_t ref_ns, int64_t updated_ms)
{
	/* Go's Time.Sub saturates instead of wrapping (an empty generation's zero time). */
	if (updated_ms < INT64_MIN / NS_PER_MS || updated_ms > INT64_MAX / NS_PER_MS)
		return updated_ms < 0 ? INT64_MAX : INT64_MIN;
	int64_t u = updated_ms * NS_PER_MS;
	if (u < 0 && ref_ns > INT64_MAX + u)
		return INT64_MAX;
	if (u > 0 && ref_ns < INT64_MIN + u)
		return INT64_MIN;
	return ref_ns - u;
}

int listing_out_init(struct listing_out *o, bool json, const char *const *header, size_t n)
{
	memset(o, 0, sizeof(*o));
	o->json = json;
	table_init(&o->table);
	if (json) {
		o->array = cJSON_CreateArray();
		return o->array ? 0 : -ENOMEM;
	}
	return table_add_row(&o->table, header, n);
}

void listing_out_row(struct listing_out *o, const char *const *cells, size_t n)
{
	int rc;

	if (o->json || o->rc != 0)
		return;
	if ((rc = table_add_row(&o->table, cells, n)) != 0)
		o->rc = rc;
}

cJSON *listing_out_object(struct listing_out *o)
{
	cJSON *obj;

	if (!o->json || o->rc != 0)
		return NULL;
	obj = cJSON_CreateObject();
	if (obj == NULL || !cJSON_AddItemToArray(o->array, obj)) {
		cJSON_Delete(obj);
		o->rc = -ENOMEM;
		return NULL;
	}
	return obj;
}

void listing_json_string(struct listing_out *o, cJSON *obj, const char *key, const char *v)
{
	if (obj != NULL && cJSON_AddStringToObject(obj, key, v) == NULL)
		o->rc = -ENOMEM;
}

void listing_json_int(struct listing_out *o, cJSON *obj, const char *key, int64_t v)
{
	/* A double holds every value here exactly (sizes and ms times stay below 2^53). */
	if (obj != NULL && cJSON_AddNumberToObject(obj, key, (double)v) == NULL)
		o->rc = -ENOMEM;
}

void listing_json_null(struct listing_out *o, cJSON *obj, const char *key)
{
	if (obj != NULL && cJSON_AddNullToObject(obj, key) == NULL)
		o->rc = -ENOMEM;
}

void listing_json_time(struct listing_out *o, cJSON *obj, const char *key, const char *key_ms,
		       int64_t ms, bool valid)
{
	char t[LISTING_TIME_LEN];

	if (!valid) {
		listing_json_null(o, obj, key);
		listing_json_null(o, obj, key_ms);
		return;
	}
	listing_format_time(ms, t, sizeof(t));
	listing_json_string(o, obj, key, t);
	listing_json_int(o, obj, key_ms, ms);
}

void listing_out_free(struct listing_out *o)
{
	table_free(&o->table);
	cJSON_Delete(o->array);
	o->array = NULL;
}

/*
 * One object per line inside the brackets: valid JSON that is still easy
 * to read and to grep, which cJSON_Print's nested tabs are not.
 */
static int print_json(const cJSON *array, FILE *out)
{
	const cJSON *item;
	bool first = true;

	if (cJSON_GetArraySize(array) == 0)
		return fputs("[]\n", out) == EOF || fflush(out) != 0 ? -EIO : 0;
	fputs("[\n", out);
	cJSON_ArrayForEach(item, array)
	{
		char *text = cJSON_PrintUnformatted(item);
		if (text == NULL)
			return -ENOMEM;
		fprintf(out, "%s  %s", first ? "" : ",\n", text);
		free(text);
		first = false;
	}
	fputs("\n]\n", out);
	return ferror(out) || fflush(out) != 0 ? -EIO : 0;
}

int listing_out_finish(struct listing_out *o, const char *cmd, int code)
{
	int rc = o->rc;

	if (rc == 0 && o->json) {
		rc = print_json(o->array, stdout);
	} else if (rc == 0) {
		rc = table_write(&o->table, stdout);
	}
	listing_out_free(o);
	if (rc != 0) {
		fprintf(stderr, "litestream %s: %s\n", cmd,
			rc == -ENOMEM ? "out of memory" : "cannot write to standard output");
		return 1;
	}
	return code;
}

int listing_one_arg(const struct command_help *help, int argc, char **argv, int i,
		    const char **arg)
{
	if (i >= argc || argv[i][0] == '\0') {
		fprintf(stderr, "litestream %s: database path or replica URL required\n", help->name);
		return 2;
	}
	if (i + 1 < argc) {
		fprintf(stderr, "litestream %s: too many arguments\n", help->name);
		return 2;
	}
	*arg = argv[i];
	return 0;
}

/* One line naming the replica once, whether or not err already does. */
static void report(const char *cmd, const char *name, int rc, const char *err)
{
	size_t len = strlen(name);

	/* Some paths fail without a message (allocation failures). */
	if (err[0] == '\0')
		err = strerror(-rc);
	if (strncmp(err, "replica ", 8) == 0 && strncmp(err + 8, name, len) == 0 &&
	    err[8 + len] == ':')
		fprintf(stderr, "litestream %s: %s\n", cmd, err);
	else
		fprintf(stderr, "litestream %s: replica %s: %s\n", cmd, name, err);
}

/* Lists one replica and hands it to emit. 0, 1 (reported, go on) or -errno from emit. */
static int list_replica(const struct listing_args *a, uv_loop_t *loop, const struct target *t,
			const struct replica_config *cfg, struct listing_out *out,
			listing_emit_fn emit, void *arg)
{
	struct listing_replica r = {t, cfg, NULL};
	struct catalog cat = {0};
	struct backend *b = NULL;
	char err[1024] = "";
	int rc;

	if ((rc = backend_new(loop, cfg, &b, err, sizeof(err))) != 0) {
		report(a->cmd, cfg->name, rc, err);
		return 1;
	}
	rc = catalog_load(b, a->generation, &cat, err, sizeof(err));
	b->ops->free(b);
	/* Let the backend's handles close before the next one opens. */
	uv_run(loop, UV_RUN_DEFAULT);
	if (rc != 0) {
		report(a->cmd, cfg->name, rc, err);
		return 1;
	}
	r.cat = &cat;
	rc = emit(arg, out, &r);
	catalog_free(&cat);
	return rc;
}

int listing_run(const struct listing_args *a, struct listing_out *out, listing_emit_fn emit,
		void *arg)
{
	struct target t;
	uv_loop_t loop;
	char err[1024];
	size_t failed = 0;
	bool all_failed;
	int rc;
	/* Go's flag package leaves an empty value meaning "not given". */
	const char *config_path = a->config_path && a->config_path[0] ? a->config_path : NULL;
	const char *replica_name = a->replica_name && a->replica_name[0] ? a->replica_name : NULL;

	if (config_path != NULL && replica_url_is_url(a->target)) {
		fprintf(stderr, "litestream %s: cannot specify a replica URL and the -config flag\n",
			a->cmd);
		listing_out_free(out);
		return 2;
	}
	if (target_resolve(&t, a->target, config_path, replica_name, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream %s: %s\n", a->cmd, err);
		listing_out_free(out);
		return 1;
	}
	if (t.cfg.path != NULL)
		log_output_format = t.cfg.log_format; /* for the backends' warnings */
	if ((rc = uv_loop_init(&loop)) != 0) {
		fprintf(stderr, "litestream %s: %s\n", a->cmd, uv_strerror(rc));
		target_free(&t);
		listing_out_free(out);
		return 1;
	}
	for (size_t i = 0; i < t.n_replicas; i++) {
		rc = list_replica(a, &loop, &t, t.replicas[i], out, emit, arg);
		if (rc < 0) {
			/* Only emit fails this way, and only for memory: stop here. */
			out->rc = rc;
			break;
		}
		if (rc > 0)
			failed++;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		fprintf(stderr, "litestream %s: a replica left a handle open\n", a->cmd);
	all_failed = t.n_replicas > 0 && failed == t.n_replicas;
	target_free(&t);
	/* Partial results are worth printing; an empty table after errors is not. */
	if (all_failed) {
		listing_out_free(out);
		return 1;
	}
	return listing_out_finish(out, a->cmd, failed ? 1 : 0);
}
