/*
 * Command-line flags parsed the way Go's flag package (and so Litestream)
 * reads them: `-name value`, `-name=value`, `--name` works as `-name`,
 * booleans take no value (or `-name=true|false`), parsing stops at the
 * first argument that is not a flag or at `--`.
 */
#ifndef LITESTREAM_FLAGS_H
#define LITESTREAM_FLAGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum flag_type { FLAG_BOOL, FLAG_STRING, FLAG_INT, FLAG_DURATION };

struct flag {
	const char *name;  /* without the dash */
	enum flag_type type;
	void *value;       /* bool *, const char **, long *, int64_t * (ms) */
	const char *arg;   /* placeholder in help, e.g. "PATH" */
	const char *help;
};

/* A command's description for help and errors. */
struct command_help {
	const char *name;    /* "restore" */
	const char *usage;   /* "[flags] DB_PATH|REPLICA_URL" */
	const char *summary; /* one paragraph */
	const struct flag *flags; /* terminated by a zeroed entry */
};

enum { FLAGS_HELP = -1, FLAGS_ERROR = -2 };

/*
 * Parses argv[1..argc) (argv[0] is the command name). Returns the index of
 * the first positional argument, FLAGS_HELP after printing help to stdout
 * for -h/--help, or FLAGS_ERROR after printing an error and the usage to
 * stderr.
 */
int flags_parse(const struct command_help *cmd, int argc, char **argv);

void flags_print_help(const struct command_help *cmd, FILE *out);

/* Exit code for a flags_parse() failure: 0 for help, 2 for a usage error. */
int flags_exit_code(int rc);

#endif
