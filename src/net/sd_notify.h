/*
 * The service manager's notification protocol (systemd's sd_notify(3)):
 * one datagram of "KEY=VALUE" lines sent to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a path or, with a leading '@', an abstract name. Without
 * the variable every call does nothing, so the daemon calls it freely.
 *
 * sd_notify_open() reads the environment once and removes NOTIFY_SOCKET
 * and the WATCHDOG_ variables from it, so that a child started with -exec
 * does not speak for us. Loop thread; a send never blocks (a full socket
 * drops the message, as systemd's own library would time out on it).
 */
#ifndef LITESTREAM_SD_NOTIFY_H
#define LITESTREAM_SD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct sd_notify {
	int fd;                   /* -1: no service manager listens */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec;   /* 0: no watchdog asked for us */
};

/*
 * The address in env (a NOTIFY_SOCKET value): 0 with *addr and *len set,
 * -EINVAL when it is empty, too long or neither a path nor '@name'.
 */
int sd_notify_parse_addr(const char *env, struct sockaddr_un *addr, socklen_t *len);

/*
 * The watchdog interval for process pid from WATCHDOG_USEC and
 * WATCHDOG_PID (either may be NULL): 0 when none is set, it does not
 * parse, or WATCHDOG_PID names another process.
 */
uint64_t sd_notify_parse_watchdog(const char *usec, const char *pid_str, long pid);

/*
 * Reads and clears the environment (above). 0, or -errno when
 * NOTIFY_SOCKET is set but unusable (err says why; n->fd stays -1).
 */
int sd_notify_open(struct sd_notify *n, char *err, size_t errlen);

bool sd_notify_enabled(const struct sd_notify *n);

/* Sends state ("READY=1", "STATUS=...", lines joined by '\n'). 0 or -errno. */
int sd_notify_send(struct sd_notify *n, const char *state);

void sd_notify_close(struct sd_notify *n);

#endif
