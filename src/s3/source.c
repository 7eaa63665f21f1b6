/*
 * What the dynamic credential sources share (source.h): the environment,
 * token files, requests with short timeouts, and a message for an answer
 * that brought no credentials.
 *
 * A token file is small and local (a projected Kubernetes volume, a file
 * an agent rotates), so it is read in place on the loop, like the shared
 * credentials file: no network, no lock, a bounded size.
 */
#include "s3/source.h"
#include "s3/creds_parse.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *s3_source_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

void s3_source_wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

int s3_source_read_token(const char *path, const char *what, char **out, char *why, size_t n)
{
	char *buf = malloc(S3_TOKEN_FILE_MAX + 2), *s, *e;
	ssize_t got = 0, r;
	int fd, rc = 0;

	if (buf == NULL)
		return -ENOMEM;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(why, n, "cannot read %s %s: %s", what, path, strerror(errno));
		free(buf);
		return rc;
	}
	while (got <= S3_TOKEN_FILE_MAX &&
	       (r = read(fd, buf + got, (size_t)(S3_TOKEN_FILE_MAX + 1 - got))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(why, n, "cannot read %s %s: %s", what, path, strerror(errno));
			break;
		}
		got += r;
	}
	close(fd);
	buf[got] = '\0';
	if (rc == 0 && got > S3_TOKEN_FILE_MAX) {
		snprintf(why, n, "%s %s is larger than %d bytes", what, path, S3_TOKEN_FILE_MAX);
		rc = -EFBIG;
	}
	for (s = buf; rc == 0 && isspace((unsigned char)*s); s++)
		;
	for (e = s + strlen(s); rc == 0 && e > s && isspace((unsigned char)e[-1]); e--)
		;
	if (rc == 0 && e == s) {
		snprintf(why, n, "%s %s is empty", what, path);
		rc = -ENODATA;
	}
	if (rc == 0) {
		*e = '\0';
		memmove(buf, s, (size_t)(e - s) + 1);
		*out = buf;
		return 0;
	}
	explicit_bzero(buf, S3_TOKEN_FILE_MAX + 2);
	free(buf);
	return rc;
}

int s3_source_request(struct s3_source *s, const struct http_request_opts *o, long connect_ms,
		      long total_ms, http_request_cb cb, void *data, struct http_request **out)
{
	struct http_request_opts opts = *o;
	int rc;

	opts.sink = HTTP_SINK_MEMORY;
	opts.max_body = S3_CREDS_DOC_MAX;
	opts.connect_timeout_ms = connect_ms;
	opts.timeout_ms = total_ms;
	rc = http_client_request(s->ctx->http, &opts, cb, data, out);
	if (rc != 0)
		snprintf(s->why, sizeof(s->why), "%s %s: %s", opts.method, opts.url,
			 rc == -EINVAL ? "invalid request" : strerror(-rc));
	return rc;
}

/* The body's first line, when it is short printable text, into buf. */
static void first_line(const char *body, size_t len, char *buf, size_t n)
{
	size_t i = 0;

	buf[0] = '\0';
	if (body == NULL)
		return;
	while (i < len && i < 160 && body[i] != '\n' && body[i] != '\r') {
		if (!isprint((unsigned char)body[i]))
			return;
		i++;
	}
	if (i == len || body[i] == '\n' || body[i] == '\r')
		snprintf(buf, n, "%.*s", (int)i, body);
}

void s3_source_describe(const struct http_response *r, const char *what, char *buf, size_t n)
{
	char said[256] = "";

	if (r->result != 0) {
		snprintf(buf, n, "%s: %s", what, r->error ? r->error : strerror(-r->result));
		return;
	}
	s3_creds_json_error(r->body, r->body_len, said, sizeof(said));
	if (said[0] == '\0' && r->body != NULL && r->body[0] != '<' && r->body[0] != '{')
		first_line(r->body, r->body_len, said, sizeof(said));
	snprintf(buf, n, "%s: HTTP %ld%s%s", what, r->status, said[0] ? ": " : "", said);
}
