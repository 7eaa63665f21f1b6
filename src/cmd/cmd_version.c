/*
 * `litestream version`: prints the version.
 */
#include "cmd/commands.h"
#include "util/flags.h"

#include <sqlite3.h>
#include <stdio.h>
#include <uv.h>

static bool verbose;

static const struct flag version_flags[] = {
	{"v", FLAG_BOOL, &verbose, NULL, "Also print the versions of the libraries in use."},
	{0},
};

static const struct command_help version_help = {
	"version", "[-v]", "Prints the version.", version_flags,
};

int cmd_version(int argc, char **argv)
{
	int i = flags_parse(&version_help, argc, argv);

	if (i < 0)
		return flags_exit_code(i);
	if (i != argc) {
		fprintf(stderr, "litestream version: unexpected argument \"%s\"\n", argv[i]);
		return 2;
	}
	printf("v%s\n", PACKAGE_VERSION);
	if (verbose)
		printf("sqlite %s\nlibuv %s\n", sqlite3_libversion(), uv_version_string());
	return 0;
}
