/*
 * S3 credentials lookup; see credentials.h for the order and the contract.
 *
 * The shared credentials file is read line by line rather than with inih:
 * a session token is often longer than inih's line buffer, and the file's
 * rules are botocore's (ConfigParser), not those of our own config file.
 * Lines read from the file hold secrets, so every buffer that saw one is
 * wiped before it is freed.
 */
#include "s3/credentials.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_PROFILE "default"

static void wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void s3_credentials_free(struct s3_credentials *c)
{
	if (c == NULL)
		return;
	wipe_free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	memset(c, 0, sizeof(*c));
}

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* Fills *out from a key pair; token may be NULL. 0 or -ENOMEM. */
static int make(const char *id, const char *secret, const char *token, const char *source,
		struct s3_credentials *out)
{
	struct s3_credentials c;

	memset(&c, 0, sizeof(c));
	c.access_key_id = strdup(id);
	c.secret_access_key = strdup(secret);
	c.session_token = set(token) ? strdup(token) : NULL;
	snprintf(c.source, sizeof(c.source), "%s", source);
	if (c.access_key_id == NULL || c.secret_access_key == NULL ||
	    (set(token) && c.session_token == NULL)) {
		s3_credentials_free(&c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

/* A pair from two places: both, neither (1), or an error for half of it. */
static int pair(const char *id, const char *secret, const char *id_name, const char *secret_name,
		char *err, size_t errlen)
{
	if (set(id) && set(secret))
		return 0;
	if (!set(id) && !set(secret))
		return 1;
	snprintf(err, errlen, "%s is set but %s is not", set(id) ? id_name : secret_name,
		 set(id) ? secret_name : id_name);
	return -EINVAL;
}

/* ---- the shared credentials file ---- */

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

struct profile_keys {
	char *id, *secret, *token;
	bool found;
};

/* Takes one `key = value` line of the wanted profile. 0 or -ENOMEM. */
static int take_key(struct profile_keys *k, char *line)
{
	char *sep = strpbrk(line, "=:"), *name, *value, **slot = NULL;

	if (sep == NULL)
		return 0;
	*sep = '\0';
	name = trim(line);
	value = trim(sep + 1);
	if (strcasecmp(name, "aws_access_key_id") == 0)
		slot = &k->id;
	else if (strcasecmp(name, "aws_secret_access_key") == 0)
		slot = &k->secret;
	else if (strcasecmp(name, "aws_session_token") == 0)
		slot = &k->token;
	if (slot == NULL)
		return 0;
	wipe_free(*slot);
	*slot = strdup(value);
	return *slot == NULL ? -ENOMEM : 0;
}

static int read_profile(FILE *f, const char *profile, struct profile_keys *k)
{
	char *line = NULL;
	size_t cap = 0;
	bool in_profile = false;
	int rc = 0;

	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		char *s;

		/* Indented lines continue a value or hold a nested block (s3 = ...). */
		if (line[0] == ' ' || line[0] == '\t')
			continue;
		s = trim(line);
		if (s[0] == '\0' || s[0] == '#' || s[0] == ';')
			continue;
		if (s[0] == '[') {
			char *close = strrchr(s, ']');

			if (close == NULL)
				continue;
			*close = '\0';
			in_profile = strcmp(trim(s + 1), profile) == 0;
			k->found = k->found || in_profile;
			continue;
		}
		if (in_profile)
			rc = take_key(k, s);
	}
	if (rc == 0 && ferror(f))
		rc = -EIO;
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	return rc;
}

int s3_credentials_from_file(const char *path, const char *profile, struct s3_credentials *out,
			     char *err, size_t errlen)
{
	struct profile_keys k = {0};
	char source[sizeof(out->source)];
	FILE *f = fopen(path, "re");
	int rc;

	if (f == NULL) {
		rc = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	rc = read_profile(f, profile, &k);
	fclose(f);
	if (rc != 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
	} else if (!k.found) {
		snprintf(err, errlen, "profile [%s] not found in %s", profile, path);
		rc = -ENOENT;
	} else if (!set(k.id) || !set(k.secret)) {
		snprintf(err, errlen, "profile [%s] in %s has no %s", profile, path,
			 set(k.id) ? "aws_secret_access_key" : "aws_access_key_id");
		rc = -EINVAL;
	} else {
		snprintf(source, sizeof(source), "%s [%s]", path, profile);
		rc = make(k.id, k.secret, k.token, source, out);
	}
	wipe_free(k.id);
	wipe_free(k.secret);
	wipe_free(k.token);
	return rc;
}

/* ~/.aws/credentials, or NULL when no home directory is known. malloc'd. */
static char *default_file(void)
{
	const char *home = getenv("HOME");
	char *p;

	if (!set(home)) {
		struct passwd *pw = getpwuid(getuid());

		home = pw != NULL ? pw->pw_dir : NULL;
	}
	if (!set(home))
		return NULL;
	p = malloc(strlen(home) + sizeof("/.aws/credentials"));
	if (p != NULL)
		sprintf(p, "%s/.aws/credentials", home);
	return p;
}

int s3_credentials_resolve(const char *config_key_id, const char *config_secret,
			   struct s3_credentials *out, char *err, size_t errlen)
{
	const char *env_profile = getenv("AWS_PROFILE");
	const char *env_file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *profile = set(env_profile) ? env_profile : DEFAULT_PROFILE;
	char *path = NULL;
	char why[512] = "";
	int rc;

	rc = pair(config_key_id, config_secret, "access-key-id", "secret-access-key", why,
		  sizeof(why));
	if (rc <= 0) {
		if (rc == 0)
			return make(config_key_id, config_secret, NULL, "the replica configuration",
				    out);
		snprintf(err, errlen, "replica configuration: %s", why);
		return rc;
	}
	rc = pair(getenv("LITESTREAM_ACCESS_KEY_ID"), getenv("LITESTREAM_SECRET_ACCESS_KEY"),
		  "LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", err, errlen);
	if (rc <= 0)
		return rc == 0 ? make(getenv("LITESTREAM_ACCESS_KEY_ID"),
				      getenv("LITESTREAM_SECRET_ACCESS_KEY"), NULL,
				      "LITESTREAM_ACCESS_KEY_ID", out)
			       : rc;
	rc = pair(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), "AWS_ACCESS_KEY_ID",
		  "AWS_SECRET_ACCESS_KEY", err, errlen);
	if (rc <= 0)
		return rc == 0 ? make(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"),
				      getenv("AWS_SESSION_TOKEN"), "AWS_ACCESS_KEY_ID", out)
			       : rc;

	if (set(env_file)) {
		if ((path = strdup(env_file)) == NULL)
			return -ENOMEM;
	} else {
		path = default_file(); /* NULL: no home directory, so no file to read */
	}
	if (path != NULL && access(path, F_OK) == 0) {
		rc = s3_credentials_from_file(path, profile, out, why, sizeof(why));
		if (rc == 0 || rc != -ENOENT || set(env_profile)) {
			if (rc != 0)
				snprintf(err, errlen, "%s", why);
			free(path);
			return rc == -ENOENT ? -EINVAL : rc;
		}
	}
	snprintf(err, errlen,
		 "no S3 credentials found: set access-key-id and secret-access-key in the replica "
		 "configuration, LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY, "
		 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a [%s] profile in %s",
		 profile, path ? path : "~/.aws/credentials");
	free(path);
	return -ENOENT;
}
