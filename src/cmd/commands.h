/*
 * Entry points of the `litestream` subcommands, one file each
 * (cmd_NAME.c). Each takes argv with argv[0] the command name and returns
 * the process exit code: 0 success, 1 failure, 2 usage error.
 */
#ifndef LITESTREAM_COMMANDS_H
#define LITESTREAM_COMMANDS_H

int cmd_databases(int argc, char **argv);
int cmd_generations(int argc, char **argv);
int cmd_replicate(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_wal(int argc, char **argv);

#endif
