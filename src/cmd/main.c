/*
 * `litestream COMMAND [flags]`: dispatches to the command's entry point.
 */
#include "cmd/commands.h"

#include <stdio.h>
#include <string.h>

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"databases", cmd_databases, "lists the databases of the configuration file"},
	{"generations", cmd_generations, "lists a database's generations and their lag"},
	{"replicate", cmd_replicate, "runs a server to replicate databases"},
	{"restore", cmd_restore, "recovers database backup from a replica"},
	{"snapshots", cmd_snapshots, "lists a database's snapshots"},
	{"status", cmd_status, "shows the status of a running replicate command"},
	{"verify", cmd_verify, "checks that every generation of a replica restores"},
	{"version", cmd_version, "prints the binary version"},
	{"wal", cmd_wal, "lists a database's WAL segments"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out, "litestream is a tool for replicating SQLite databases.\n\n"
		     "Usage:\n\n\tlitestream <command> [arguments]\n\nThe commands are:\n\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "\t%-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'litestream <command> -h' for a command's arguments.\n");
}

int main(int argc, char **argv)
{
	const char *name;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	name = argv[1];
	if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(name, "-version") == 0 || strcmp(name, "--version") == 0)
		name = "version";
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "litestream: unknown command \"%s\"\n\n", name);
	usage(stderr);
	return 2;
}
