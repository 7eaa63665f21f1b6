#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "net/sd_notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void test_path_address(void **state)
{
	struct sockaddr_un a;
	socklen_t len;

	(void)state;
	assert_int_equal(sd_notify_parse_addr("/run/systemd/notify", &a, &len), 0);
	assert_string_equal(a.sun_path, "/run/systemd/notify");
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
}

static void test_abstract_address(void **state)
{
	struct sockaddr_un a;
	socklen_t len;

	(void)state;
	assert_int_equal(sd_notify_parse_addr("@notify-42", &a, &len), 0);
	assert_int_equal(a.sun_path[0], '\0');
	assert_memory_equal(a.sun_path + 1, "notify-42", 9);
	/* No terminating NUL: an abstract name is exactly its length. */
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 10);
}

static void test_bad_addresses(void **state)
{
	struct sockaddr_un a;
	socklen_t len;
	char longp[200];

	(void)state;
	assert_int_equal(sd_notify_parse_addr(NULL, &a, &len), -EINVAL);
	assert_int_equal(sd_notify_parse_addr("", &a, &len), -EINVAL);
	assert_int_equal(sd_notify_parse_addr("@", &a, &len), -EINVAL);
	assert_int_equal(sd_notify_parse_addr("relative/path", &a, &len), -EINVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(sd_notify_parse_addr(longp, &a, &len), -EINVAL);
}

static void test_watchdog(void **state)
{
	(void)state;
	assert_int_equal(sd_notify_parse_watchdog("30000000", NULL, 7), 30000000);
	assert_int_equal(sd_notify_parse_watchdog("30000000", "7", 7), 30000000);
	assert_int_equal(sd_notify_parse_watchdog("30000000", "8", 7), 0); /* another process's */
	assert_int_equal(sd_notify_parse_watchdog(NULL, NULL, 7), 0);
	assert_int_equal(sd_notify_parse_watchdog("0", NULL, 7), 0);
	assert_int_equal(sd_notify_parse_watchdog("12s", NULL, 7), 0);
	assert_int_equal(sd_notify_parse_watchdog("-5", NULL, 7), 0);
	assert_int_equal(sd_notify_parse_watchdog("100", "x", 7), 0);
}

/* A real datagram socket: the message arrives whole, and the environment is cleared. */
static void test_send(void **state)
{
	char dir[] = "/tmp/sdnotify-XXXXXX", path[128], buf[64];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct sd_notify n;
	char err[128];
	int fd;
	ssize_t got;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_int_equal(sd_notify_open(&n, err, sizeof(err)), 0);
	assert_true(sd_notify_enabled(&n));
	assert_int_equal(n.watchdog_usec, 2000000);
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_null(getenv("WATCHDOG_USEC"));
	assert_int_equal(sd_notify_send(&n, "READY=1\nSTATUS=ok"), 0);
	got = recv(fd, buf, sizeof(buf), 0);
	assert_int_equal(got, 17);
	assert_memory_equal(buf, "READY=1\nSTATUS=ok", 17);
	sd_notify_close(&n);
	close(fd);
	unlink(path);
	rmdir(dir);
}

static void test_without_manager(void **state)
{
	struct sd_notify n;
	char err[128];

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_int_equal(sd_notify_open(&n, err, sizeof(err)), 0);
	assert_false(sd_notify_enabled(&n));
	assert_int_equal(n.watchdog_usec, 0);
	assert_int_equal(sd_notify_send(&n, "READY=1"), 0);
	setenv("NOTIFY_SOCKET", "not/absolute", 1);
	assert_int_equal(sd_notify_open(&n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NOTIFY_SOCKET=\"not/absolute\""));
	sd_notify_close(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_address), cmocka_unit_test(test_abstract_address),
		cmocka_unit_test(test_bad_addresses), cmocka_unit_test(test_watchdog),
		cmocka_unit_test(test_send),          cmocka_unit_test(test_without_manager),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
