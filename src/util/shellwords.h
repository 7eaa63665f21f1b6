/*
 * Splits a command line into words the way a POSIX shell would for a
 * plain command, without running one: `replicate -exec CMD` and the
 * `exec` key start CMD directly, as Litestream 0.3 does.
 *
 *   - words are separated by spaces, tabs and newlines;
 *   - '...' keeps everything inside literally;
 *   - "..." keeps everything inside, a backslash escaping only \ " $ `
 *     and a newline (which it removes);
 *   - outside quotes a backslash keeps the next character literally (a
 *     backslash-newline joins lines);
 *   - "" and '' make an empty word.
 *
 * No variables, globs, pipes or redirections: $, *, |, > and the like are
 * ordinary characters.
 */
#ifndef LITESTREAM_SHELLWORDS_H
#define LITESTREAM_SHELLWORDS_H

#include <stddef.h>

/*
 * On success returns 0 with *out a malloc'd, NULL-terminated array of
 * malloc'd words (free it with shellwords_free()) and *n their count (at
 * least 1). -EINVAL with a message in err for an unterminated quote, a
 * trailing backslash or no word at all; -ENOMEM.
 */
int shellwords_split(const char *s, char ***out, size_t *n, char *err, size_t errlen);

void shellwords_free(char **words);

#endif
