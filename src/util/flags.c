/*
 * Go-style flag parsing; see flags.h.
 */
#include "util/flags.h"

#include "util/duration.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct flag *lookup(const struct flag *flags, const char *name, size_t len)
{
	for (const struct flag *f = flags; f != NULL && f->name != NULL; f++)
		if (strlen(f->name) == len && strncmp(f->name, name, len) == 0)
			return f;
	return NULL;
}

static int set_value(const struct command_help *cmd, const struct flag *f, const char *v)
{
	char *end;

	switch (f->type) {
	case FLAG_BOOL:
		if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
			*(bool *)f->value = true;
		else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
			*(bool *)f->value = false;
		else
			goto bad;
		return 0;
	case FLAG_STRING:
		*(const char **)f->value = v;
		return 0;
	case FLAG_INT:
		errno = 0;
		long n = strtol(v, &end, 10);
		if (errno != 0 || *v == '\0' || *end != '\0')
			goto bad;
		*(long *)f->value = n;
		return 0;
	case FLAG_DURATION:
		if (duration_parse(v, (int64_t *)f->value) != 0)
			goto bad;
		return 0;
	}
bad:
	fprintf(stderr, "litestream %s: invalid value \"%s\" for flag -%s\n", cmd->name, v, f->name);
	return -EINVAL;
}

int flags_parse(const struct command_help *cmd, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		const struct flag *f;
		size_t len;

		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0)
			return i + 1;
		name = a + 1 + (a[1] == '-');
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		if ((len == 1 && name[0] == 'h') || (len == 4 && strncmp(name, "help", 4) == 0)) {
			flags_print_help(cmd, stdout);
			return FLAGS_HELP;
		}
		f = lookup(cmd->flags, name, len);
		if (f == NULL) {
			fprintf(stderr, "litestream %s: flag provided but not defined: -%.*s\n", cmd->name,
				(int)len, name);
			goto usage;
		}
		if (eq != NULL) {
			if (set_value(cmd, f, eq + 1) != 0)
				goto usage;
		} else if (f->type == FLAG_BOOL) {
			*(bool *)f->value = true;
		} else if (i + 1 < argc) {
			if (set_value(cmd, f, argv[++i]) != 0)
				goto usage;
		} else {
			fprintf(stderr, "litestream %s: flag needs an argument: -%s\n", cmd->name, f->name);
			goto usage;
		}
	}
	return i;
usage:
	fprintf(stderr, "usage: litestream %s %s\nRun 'litestream %s -h' for details.\n", cmd->name,
		cmd->usage, cmd->name);
	return FLAGS_ERROR;
}

void flags_print_help(const struct command_help *cmd, FILE *out)
{
	fprintf(out, "%s\n\nUsage:\n\n\tlitestream %s %s\n", cmd->summary, cmd->name, cmd->usage);
	if (cmd->flags == NULL || cmd->flags[0].name == NULL)
		return;
	fprintf(out, "\nArguments:\n\n");
	for (const struct flag *f = cmd->flags; f->name != NULL; f++) {
		if (f->arg != NULL)
			fprintf(out, "\t-%s %s\n", f->name, f->arg);
		else
			fprintf(out, "\t-%s\n", f->name);
		fprintf(out, "\t    %s\n\n", f->help);
	}
}

int flags_exit_code(int rc)
{
	return rc == FLAGS_HELP ? 0 : 2;
}
