/*
 * The listeners of the HTTP server (Unix socket and TCP) and accepting:
 * a new connection beyond max_conns evicts the connection idle for the
 * longest time, or is accepted only to be closed when none is idle. The
 * connections themselves are in http_server_conn.c; see http_server.h for
 * the contract.
 */
#include "net/http_server_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

const struct http_server_limits http_server_default_limits = {
	.max_head = 8192,
	.max_url = 2048,
	.max_body = 16384,
	.max_conns = 128,
	.idle_ms = 30000,
	.request_ms = 5000,
	.write_ms = 10000,
};

#define LISTEN_BACKLOG 1024

/* ---- accepting ----------------------------------------------------------- */

static void on_rejected_closed(uv_handle_t *h)
{
	free(h);
}

static int stream_init(struct http_server_listener *l, uv_stream_t *st)
{
	if (l->is_unix)
		return uv_pipe_init(l->server->loop, (uv_pipe_t *)st, 0);
	return uv_tcp_init(l->server->loop, (uv_tcp_t *)st);
}

/* Accepts the pending connection only to close it at once. */
static void reject(struct http_server_listener *l)
{
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} *h = malloc(sizeof(*h));

	if (h == NULL)
		return; /* stays in the backlog; accepted later */
	if (stream_init(l, (uv_stream_t *)h) != 0) {
		free(h);
		return;
	}
	(void)uv_accept(&l->u.stream, (uv_stream_t *)h);
	uv_close((uv_handle_t *)h, on_rejected_closed);
}

/* Bytes the client sent that we have not read yet: a request about to start. */
static bool has_unread_bytes(struct http_server_conn *c)
{
	uv_os_fd_t fd;
	int n = 0;

	return uv_fileno(&c->u.handle, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/*
 * The connection idle for the longest time, or NULL. One whose request
 * has arrived but not been read yet is not idle: a few candidates are
 * checked for that, so a burst of new connections does not drop a client
 * whose request was simply not read yet.
 */
static struct http_server_conn *oldest_idle(struct http_server *s)
{
	s->evict_round++;
	for (int tries = 0; tries < 8; tries++) {
		struct http_server_conn *best = NULL;
		for (struct http_server_conn *c = s->conns; c != NULL; c = c->next)
			if (c->state == CONN_READING && !c->reader.in_message && c->rlen == 0 &&
			    c->checked_round != s->evict_round &&
			    (best == NULL || c->idle_since <= best->idle_since))
				best = c;
		if (best == NULL || !has_unread_bytes(best))
			return best;
		best->checked_round = s->evict_round;
	}
	return NULL;
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct http_server_listener *l = ls->data;
	struct http_server *s = l->server;
	struct http_server_conn *c;

	if (status < 0 || s->closing)
		return;
	if (s->n_conns >= s->limits.max_conns) {
		struct http_server_conn *victim = oldest_idle(s);
		if (victim == NULL) {
			s->rejected++;
			reject(l);
			return;
		}
		s->evicted++;
		http_server_conn_close(victim);
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		reject(l);
		return;
	}
	if (http_server_reader_init(&c->reader, &s->limits) != 0) {
		free(c);
		reject(l);
		return;
	}
	if (stream_init(l, &c->u.stream) != 0) {
		http_server_reader_free(&c->reader);
		free(c);
		reject(l);
		return;
	}
	c->u.handle.data = c;
	c->server = s;
	c->listener = l;
	c->open_handles = 2;
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	s->open_handles++;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	c->state = CONN_READING;
	if (uv_accept(ls, &c->u.stream) != 0) {
		http_server_conn_close(c);
		return;
	}
	c->idle_since = uv_now(s->loop);
	http_server_conn_timer_set(c, s->limits.idle_ms);
	http_server_conn_read_start(c);
}

/* ---- listening ----------------------------------------------------------- */

void http_server_init(struct http_server *s, uv_loop_t *loop, const struct http_server_limits *limits,
		      http_server_handler handler, http_server_abort abort, void *arg)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->limits = limits ? *limits : http_server_default_limits;
	s->handler = handler;
	s->abort = abort;
	s->arg = arg;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct http_server_listener *l = h->data;

	http_server_handle_gone(l->server);
}

/* Closes a listener (removing its socket file if it is still ours). */
static void listener_drop(struct http_server_listener *l)
{
	struct stat st;

	if (l->closed)
		return;
	l->closed = true;
	if (l->path != NULL && stat(l->path, &st) == 0 && (uint64_t)st.st_ino == l->ino &&
	    (uint64_t)st.st_dev == l->dev)
		unlink(l->path); /* ours still: another process may have replaced it since */
	free(l->path);
	l->path = NULL;
	uv_close(&l->u.handle, on_listener_closed);
}

/*
 * Is someone answering on the socket at path? 0 when nobody does (a stale
 * file), -EADDRINUSE when a process does, another -errno if we cannot tell.
 */
static int probe_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN ||
	    errno == EINPROGRESS)
		rc = -EADDRINUSE;
	else if (errno != ECONNREFUSED)
		rc = -errno;
	close(fd);
	return rc;
}

int http_server_listen_unix(struct http_server *s, const char *path, int mode, int tag, char *err,
			    size_t errlen)
{
	struct http_server_listener *l;
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int rc;

	if (s->n_listeners >= HTTP_SERVER_MAX_LISTENERS)
		return -ENOSPC;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long (at most %zu bytes)", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket", path);
			return -EEXIST;
		}
		rc = probe_unix(path);
		if (rc == -EADDRINUSE) {
			snprintf(err, errlen, "%s: another process is listening on this socket", path);
			return rc;
		}
		if (rc != 0) {
			snprintf(err, errlen, "%s: cannot tell whether the socket is in use: %s", path,
				 strerror(-rc));
			return rc;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot remove the stale socket: %s", path, strerror(errno));
			return rc;
		}
	}
	l = &s->listeners[s->n_listeners];
	memset(l, 0, sizeof(*l));
	l->server = s;
	l->tag = tag;
	l->is_unix = true;
	if ((rc = uv_pipe_init(s->loop, &l->u.pipe, 0)) != 0) {
		snprintf(err, errlen, "%s: %s", path, uv_strerror(rc));
		return rc;
	}
	l->u.handle.data = l;
	s->n_listeners++;
	s->open_handles++;
	/* Created with the mode at once (no moment with looser permissions), then made exact. */
	old = umask((mode_t)(~mode & 0777));
	rc = uv_pipe_bind(&l->u.pipe, path);
	umask(old);
	if (rc == 0 && chmod(path, (mode_t)mode) != 0)
		rc = -errno;
	if (rc == 0 && stat(path, &st) == 0) {
		l->path = strdup(path);
		l->ino = (uint64_t)st.st_ino;
		l->dev = (uint64_t)st.st_dev;
	}
	if (rc == 0)
		rc = uv_listen(&l->u.stream, LISTEN_BACKLOG, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", path, uv_strerror(rc));
		listener_drop(l);
		return rc;
	}
	return 0;
}

static int parse_hostport(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[256];
	const char *colon, *port_s;
	char *end;
	long port;
	size_t hl;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - addr - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, addr + 1, hl);
		port_s = rb + 2;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - addr);
		if (hl >= sizeof(host) || memchr(addr, ':', hl) != NULL)
			goto bad;
		memcpy(host, addr, hl);
		port_s = colon + 1;
	}
	host[hl] = '\0';
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (*port_s == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535)
		goto bad;
	memset(ss, 0, sizeof(*ss));
	if (hl == 0)
		return uv_ip4_addr("0.0.0.0", (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : -EINVAL;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	snprintf(err, errlen, "%s: the host must be an IP address or localhost", addr);
	return -EINVAL;
bad:
	snprintf(err, errlen, "%s: expected HOST:PORT, [IPV6]:PORT or :PORT", addr);
	return -EINVAL;
}

int http_server_listen_tcp(struct http_server *s, const char *addr, int tag, char *err, size_t errlen)
{
	struct http_server_listener *l;
	struct sockaddr_storage ss;
	int rc;

	if (s->n_listeners >= HTTP_SERVER_MAX_LISTENERS)
		return -ENOSPC;
	if ((rc = parse_hostport(addr, &ss, err, errlen)) != 0)
		return rc;
	l = &s->listeners[s->n_listeners];
	memset(l, 0, sizeof(*l));
	l->server = s;
	l->tag = tag;
	if ((rc = uv_tcp_init(s->loop, &l->u.tcp)) != 0) {
		snprintf(err, errlen, "%s: %s", addr, uv_strerror(rc));
		return rc;
	}
	l->u.handle.data = l;
	s->n_listeners++;
	s->open_handles++;
	rc = uv_tcp_bind(&l->u.tcp, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen(&l->u.stream, LISTEN_BACKLOG, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", addr, uv_strerror(rc));
		listener_drop(l);
		return rc;
	}
	return 0;
}

int http_server_local_port(const struct http_server *s, int tag)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		const struct http_server_listener *l = &s->listeners[i];
		struct sockaddr_storage ss;
		int n = sizeof(ss);

		if (l->tag != tag || l->is_unix || l->closed)
			continue;
		if (uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &n) != 0)
			return -1;
		if (ss.ss_family == AF_INET)
			return ntohs(((struct sockaddr_in *)&ss)->sin_port);
		if (ss.ss_family == AF_INET6)
			return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		return -1;
	}
	return -1;
}

void http_server_close(struct http_server *s, void (*cb)(struct http_server *s))
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	/* Counts as a handle until the end of this function, so cb runs once, last. */
	s->open_handles++;
	for (size_t i = 0; i < s->n_listeners; i++)
		listener_drop(&s->listeners[i]);
	while (s->conns != NULL)
		http_server_conn_close(s->conns);
	http_server_handle_gone(s);
}
