/*
 * `litestream status [-socket PATH] [-config PATH] [-json] [-max-lag DURATION]`:
 * asks a running `litestream replicate` for GET /v1/status on its control
 * socket and prints its databases and replicas as two tables (or the JSON
 * as received, with -json).
 *
 * Exit status, for health checks: 0 when every replica is healthy; 1 when
 * a replica reports an error, when one lags its database by more than
 * -max-lag (the rule of control/health.h, which GET /healthz applies
 * too), or when the socket does not answer; 2 for a usage error.
 *
 * The socket is -socket, else the `socket` of the configuration file
 * (-config, else $LITESTREAM_CONFIG, else the default file when it exists
 * and loads), else CONFIG_DEFAULT_SOCKET. The client blocks: it is a short-lived command,
 * not the loop. Every wait is bounded (10 s).
 */
#include "util/clock.h"
#include "cmd/commands.h"
#include "config/config.h"
#include "control/health.h"
#include "util/duration.h"
#include "util/flags.h"
#include "util/table.h"
#include "restore/target.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <http_parser.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define STATUS_TIMEOUT_MS 10000
#define STATUS_MAX_BODY (64 * 1024 * 1024)

static const char *socket_path, *config_path;
static bool json_out;
static int64_t max_lag_ms;

static const struct flag status_flags[] = {
	{"socket", FLAG_STRING, &socket_path, "PATH", "The control socket. Defaults to the configuration's socket, or " CONFIG_DEFAULT_SOCKET "."},
	{"config", FLAG_STRING, &config_path, "PATH", "Reads the socket from this configuration file. Defaults to $LITESTREAM_CONFIG, else " CONFIG_DEFAULT_PATH "."},
	{"json", FLAG_BOOL, &json_out, NULL, "Prints the status as JSON."},
	{"max-lag", FLAG_DURATION, &max_lag_ms, "DURATION", "Exits 1 when a replica lags its database by more than this."},
	{0},
};

static const struct command_help status_help = {
	"status",
	"[arguments]",
	"The status command shows the databases and replicas of a running replicate\n"
	"command, read from its control socket. It exits 1 when a replica reports an\n"
	"error or lags by more than -max-lag.",
	status_flags,
};

/* ---- the request ------------------------------------------------------------ */

struct response {
	int status;
	char *body;
	size_t len;
	bool complete;
	bool too_large;
};

static int on_resp_body(http_parser *p, const char *at, size_t len)
{
	struct response *r = p->data;
	char *nb;

	if (r->len + len > STATUS_MAX_BODY) {
		r->too_large = true;
		return -1;
	}
	nb = realloc(r->body, r->len + len + 1);
	if (nb == NULL)
		return -1;
	r->body = nb;
	memcpy(r->body + r->len, at, len);
	r->len += len;
	r->body[r->len] = '\0';
	return 0;
}

static int on_resp_complete(http_parser *p)
{
	struct response *r = p->data;

	r->complete = true;
	r->status = (int)p->status_code;
	return 0;
}

/* Waits until fd is ready for events or the deadline passes. 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int64_t left;
	int n;

	for (;;) {
		left = deadline - clock_mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Connects to the control socket at path. The fd, or -errno with err set. */
static int control_connect(const char *path, char *err, size_t errlen)
{
	struct timeval tv = {STATUS_TIMEOUT_MS / 1000, 0};
	struct sockaddr_un sa;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	/* Bounds connect() on a server whose backlog is full, and each send. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s (is litestream replicate running?)", path,
			 strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

/* Sends GET target. 0, or -errno with err set. */
static int send_request(int fd, const char *path, const char *target, char *err, size_t errlen)
{
	char req[512];
	size_t off = 0, n;

	n = (size_t)snprintf(req, sizeof(req),
			     "GET %s HTTP/1.1\r\nHost: litestream\r\nUser-Agent: litestream/%s\r\n"
			     "Accept: application/json\r\nConnection: close\r\n\r\n",
			     target, PACKAGE_VERSION);
	while (off < n) {
		ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int rc = -errno;

			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			return rc;
		}
		off += (size_t)w;
	}
	return 0;
}

/* Reads the answer into resp until it is complete, or deadline. 0, or -errno with err set. */
static int read_response(int fd, const char *path, int64_t deadline, struct response *resp,
			 char *err, size_t errlen)
{
	static const http_parser_settings settings = {
		.on_body = on_resp_body,
		.on_message_complete = on_resp_complete,
	};
	char buf[16384];
	http_parser parser;
	int rc;

	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = resp;
	while (!resp->complete) {
		ssize_t r;
		if ((rc = wait_fd(fd, POLLIN, deadline)) != 0) {
			snprintf(err, errlen, "%s: no answer within %d s", path, STATUS_TIMEOUT_MS / 1000);
			return rc;
		}
		r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			return rc;
		}
		/* At the end of the stream, zero bytes tell the parser so. */
		if (http_parser_execute(&parser, &settings, buf, (size_t)r) != (size_t)r ||
		    HTTP_PARSER_ERRNO(&parser) != HPE_OK) {
			snprintf(err, errlen, "%s: %s", path,
				 resp->too_large ? "answer too large"
						 : http_errno_description(HTTP_PARSER_ERRNO(&parser)));
			return -EPROTO;
		}
		if (r == 0 && !resp->complete) {
			snprintf(err, errlen, "%s: connection closed before a complete answer", path);
			return -EPROTO;
		}
	}
	return 0;
}

/* GET target over the control socket at path. 0, or -errno with err; resp->body is then NULL. */
static int request(const char *path, const char *target, struct response *resp, char *err,
		   size_t errlen)
{
	int64_t deadline = clock_mono_ms() + STATUS_TIMEOUT_MS;
	int fd, rc;

	memset(resp, 0, sizeof(*resp));
	fd = control_connect(path, err, errlen);
	if (fd < 0)
		return fd;
	rc = send_request(fd, path, target, err, errlen);
	if (rc == 0)
		rc = read_response(fd, path, deadline, resp, err, errlen);
	close(fd);
	if (rc != 0) {
		free(resp->body);
		resp->body = NULL;
	}
	return rc;
}

/* ---- printing ------------------------------------------------------------------ */

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Replaces NULL cells by "-" (in place) and returns cells. */
static const char *const *cells_or_dash(const char **cells, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cells[i] == NULL)
			cells[i] = "-";
	return cells;
}

static void format_pos(const cJSON *pos, char *buf, size_t n)
{
	const char *gen = str_of(pos, "generation");

	if (gen == NULL) {
		snprintf(buf, n, "-");
		return;
	}
	snprintf(buf, n, "%s/%08llx:%llu", gen, (unsigned long long)num_of(pos, "index", 0),
		 (unsigned long long)num_of(pos, "offset", 0));
}

static void format_bytes(double v, char *buf, size_t n)
{
	if (v < 0)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* Prints the tables; returns the number of unhealthy replicas (reasons on stderr). */
static int report(const cJSON *root, bool print)
{
	static const char *const dhead[] = {"database", "path", "state", "position", "db size",
					    "wal size", "last sync", "error"};
	static const char *const rhead[] = {"replica", "database", "type", "position", "lag",
					    "lag bytes", "pending", "last sync", "error"};
	const cJSON *dbs = cJSON_GetObjectItemCaseSensitive(root, "dbs"), *db, *r;
	const struct health_limits limits = {max_lag_ms, NULL};
	struct table dt, rt;
	int bad = 0;

	table_init(&dt);
	table_init(&rt);
	table_add_row(&dt, dhead, 8);
	table_add_row(&rt, rhead, 9);
	cJSON_ArrayForEach(db, dbs)
	{
		char pos[96], dbsz[32], walsz[32];
		const char *row[8];

		format_pos(cJSON_GetObjectItemCaseSensitive(db, "position"), pos, sizeof(pos));
		format_bytes(num_of(db, "db_size", -1), dbsz, sizeof(dbsz));
		format_bytes(num_of(db, "wal_size", -1), walsz, sizeof(walsz));
		row[0] = str_of(db, "name");
		row[1] = str_of(db, "path");
		row[2] = str_of(db, "state");
		row[3] = pos;
		row[4] = dbsz;
		row[5] = walsz;
		row[6] = str_of(db, "last_sync");
		row[7] = str_of(db, "last_error");
		table_add_row(&dt, cells_or_dash(row, 8), 8);
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(db, "replicas"))
		{
			char rpos[96], lag[32], lagb[32], pend[32], why[640];
			double lag_s = num_of(r, "lag_seconds", 0);
			const char *e = str_of(r, "last_error"), *rrow[9];

			if (!health_replica_ok(&limits, e, lag_s, why, sizeof(why))) {
				fprintf(stderr, "litestream status: %s(%s): %s\n", str_of(db, "path"),
					str_of(r, "name"), why);
				bad++;
			}
			format_pos(cJSON_GetObjectItemCaseSensitive(r, "position"), rpos, sizeof(rpos));
			duration_format((int64_t)(lag_s * 1000), lag, sizeof(lag));
			format_bytes(num_of(r, "lag_bytes", -1), lagb, sizeof(lagb));
			format_bytes(num_of(r, "pending_bytes", -1), pend, sizeof(pend));
			rrow[0] = str_of(r, "name");
			rrow[1] = str_of(db, "name");
			rrow[2] = str_of(r, "type");
			rrow[3] = rpos;
			rrow[4] = lag;
			rrow[5] = lagb;
			rrow[6] = pend;
			rrow[7] = str_of(r, "last_sync");
			rrow[8] = e;
			table_add_row(&rt, cells_or_dash(rrow, 9), 9);
		}
	}
	if (print) {
		table_write(&dt, stdout);
		printf("\n");
		table_write(&rt, stdout);
	}
	table_free(&dt);
	table_free(&rt);
	return bad;
}

/* -socket, else the configuration's socket, else the default. NULL after an error. */
static char *resolve_socket(void)
{
	const char *path = target_config_path(config_path);
	bool explicit = strcmp(path, CONFIG_DEFAULT_PATH) != 0;
	struct config cfg;
	char err[1024];
	char *s;

	if (socket_path != NULL)
		return strdup(socket_path);
	if (!explicit && access(path, R_OK) != 0)
		return strdup(CONFIG_DEFAULT_SOCKET);
	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		if (explicit) {
			fprintf(stderr, "litestream status: %s\n", err);
			return NULL;
		}
		return strdup(CONFIG_DEFAULT_SOCKET); /* the default file is only a hint here */
	}
	s = strdup(cfg.socket ? cfg.socket : CONFIG_DEFAULT_SOCKET);
	config_free(&cfg);
	return s;
}

int cmd_status(int argc, char **argv)
{
	struct response resp;
	char err[1024], *path;
	cJSON *root;
	int first, bad, rc;

	socket_path = config_path = NULL;
	json_out = false;
	max_lag_ms = -1;
	first = flags_parse(&status_help, argc, argv);
	if (first < 0)
		return flags_exit_code(first);
	if (first < argc) {
		fprintf(stderr, "litestream status: unexpected argument \"%s\"\n", argv[first]);
		return 2;
	}
	if ((path = resolve_socket()) == NULL)
		return 1;
	rc = request(path, "/v1/status", &resp, err, sizeof(err));
	free(path);
	if (rc != 0) {
		fprintf(stderr, "litestream status: %s\n", err);
		return 1;
	}
	root = resp.body ? cJSON_Parse(resp.body) : NULL;
	if (resp.status != 200 || root == NULL) {
		const char *e = root ? str_of(root, "error") : NULL;
		fprintf(stderr, "litestream status: HTTP %d: %s\n", resp.status,
			e ? e : "the answer is not the expected JSON");
		cJSON_Delete(root);
		free(resp.body);
		return 1;
	}
	if (json_out) {
		char *s = cJSON_Print(root);
		if (s != NULL)
			printf("%s\n", s);
		free(s);
	}
	bad = report(root, !json_out);
	cJSON_Delete(root);
	free(resp.body);
	return bad > 0 ? 1 : 0;
}
