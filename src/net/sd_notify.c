/*
 * The service manager's notification socket; see sd_notify.h. A short
 * implementation of the documented protocol rather than libsystemd: the
 * whole of it is one sendto() of a datagram.
 */
#include "net/sd_notify.h"
#include "util/decimal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sd_notify_parse_addr(const char *env, struct sockaddr_un *addr, socklen_t *len)
{
	size_t n = env != NULL ? strlen(env) : 0;

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (n < 2 || n >= sizeof(addr->sun_path) || (env[0] != '/' && env[0] != '@'))
		return -EINVAL;
	memcpy(addr->sun_path, env, n);
	if (env[0] == '@')
		addr->sun_path[0] = '\0'; /* abstract: the length bounds the name */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (env[0] == '/' ? 1 : 0));
	return 0;
}

uint64_t sd_notify_parse_watchdog(const char *usec, const char *pid_str, long pid)
{
	uint64_t v, p;

	if (decimal_parse_u64(usec, &v) != 0 || v == 0)
		return 0;
	if (pid_str != NULL && (decimal_parse_u64(pid_str, &p) != 0 || p != (uint64_t)pid))
		return 0;
	return v;
}

int sd_notify_open(struct sd_notify *n, char *err, size_t errlen)
{
	const char *env = getenv("NOTIFY_SOCKET");
	int rc = 0;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	n->watchdog_usec =
	    sd_notify_parse_watchdog(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), (long)getpid());
	if (env != NULL) {
		if (sd_notify_parse_addr(env, &n->addr, &n->addr_len) != 0) {
			snprintf(err, errlen, "NOTIFY_SOCKET=\"%s\": want an absolute path or @name", env);
			rc = -EINVAL;
		} else if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
			rc = -errno;
			snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		}
	}
	if (n->fd < 0)
		n->watchdog_usec = 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return rc;
}

bool sd_notify_enabled(const struct sd_notify *n)
{
	return n->fd >= 0;
}

int sd_notify_send(struct sd_notify *n, const char *state)
{
	if (n->fd < 0)
		return 0;
	if (sendto(n->fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
		   n->addr_len) < 0)
		return -errno;
	return 0;
}

void sd_notify_close(struct sd_notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
