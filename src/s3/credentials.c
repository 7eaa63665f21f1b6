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

/*
 * What one scan of a file looks for: the values of keys[0..n) in one
 * profile. In the config file a profile's header is [profile NAME], with
 * [default] (and [profile default]) for the default profile.
 */
struct profile_scan {
	const char *profile;
	bool config_file;
	const char *const *keys;
	char **values;
	size_t n;
	bool found;
};

/* Takes one `key = value` line of the wanted profile. 0 or -ENOMEM. */
static int take_key(struct profile_scan *k, char *line)
{
	char *sep = strpbrk(line, "=:"), *name, *value;

	if (sep == NULL)
		return 0;
	*sep = '\0';
	name = trim(line);
	value = trim(sep + 1);
	for (size_t i = 0; i < k->n; i++) {
		if (strcasecmp(name, k->keys[i]) != 0)
			continue;
		wipe_free(k->values[i]);
		k->values[i] = strdup(value);
		return k->values[i] == NULL ? -ENOMEM : 0;
	}
	return 0;
}

/* Whether the section title (inside the brackets, trimmed) is k's profile. */
static bool profile_matches(const struct profile_scan *k, const char *title)
{
	if (!k->config_file)
		return strcmp(title, k->profile) == 0;
	if (strncmp(title, "profile", 7) == 0 && (title[7] == ' ' || title[7] == '\t')) {
		title += 7;
		while (*title == ' ' || *title == '\t')
			title++;
		return strcmp(title, k->profile) == 0;
	}
	return strcmp(k->profile, DEFAULT_PROFILE) == 0 && strcmp(title, DEFAULT_PROFILE) == 0;
}

static int read_profile(FILE *f, struct profile_scan *k)
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
			in_profile = profile_matches(k, trim(s + 1));
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

/* Runs k over the file at path. 0, or -errno from fopen or the read. */
static int scan_file(const char *path, struct profile_scan *k)
{
	FILE *f = fopen(path, "re");
	int rc;

	if (f == NULL)
		return -errno;
	rc = read_profile(f, k);
	fclose(f);
	return rc;
}

int s3_credentials_from_file(const char *path, const char *profile, struct s3_credentials *out,
			     char *err, size_t errlen)
{
	static const char *const keys[] = {"aws_access_key_id", "aws_secret_access_key",
					   "aws_session_token"};
	char *values[3] = {NULL, NULL, NULL};
	struct profile_scan k = {profile, false, keys, values, 3, false};
	char source[sizeof(out->source)];
	int rc = scan_file(path, &k);

	if (rc != 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
	} else if (!k.found) {
		snprintf(err, errlen, "profile [%s] not found in %s", profile, path);
		rc = -ENOENT;
	} else if (!set(values[0]) || !set(values[1])) {
		snprintf(err, errlen, "profile [%s] in %s has no %s", profile, path,
			 set(values[0]) ? "aws_secret_access_key" : "aws_access_key_id");
		rc = -EINVAL;
	} else {
		snprintf(source, sizeof(source), "%s [%s]", path, profile);
		rc = make(values[0], values[1], values[2], source, out);
	}
	for (size_t i = 0; i < 3; i++)
		wipe_free(values[i]);
	return rc;
}

int s3_config_file_value(const char *path, const char *profile, const char *key, char **out,
			 char *why, size_t whylen)
{
	const char *const keys[] = {key};
	char *value = NULL;
	struct profile_scan k = {profile, true, keys, &value, 1, false};
	int rc = scan_file(path, &k);

	if (rc == -ENOENT) {
		snprintf(why, whylen, "no %s", path);
		return 1;
	}
	if (rc != 0) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(-rc));
		wipe_free(value);
		return rc;
	}
	if (!set(value)) {
		if (k.found)
			snprintf(why, whylen, "no %s in profile [%s] of %s", key, profile, path);
		else
			snprintf(why, whylen, "no profile [%s] in %s", profile, path);
		wipe_free(value);
		return 1;
	}
	*out = value;
	return 0;
}

const char *s3_profile_name(void)
{
	const char *p = getenv("AWS_PROFILE");

	return set(p) ? p : DEFAULT_PROFILE;
}

int s3_credentials_copy(const struct s3_credentials *src, struct s3_credentials *dst)
{
	int rc = make(src->access_key_id, src->secret_access_key, src->session_token, src->source,
		      dst);

	if (rc == 0)
		dst->expires_ms = src->expires_ms;
	return rc;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

int s3_credentials_equal(const struct s3_credentials *a, const struct s3_credentials *b)
{
	return same_str(a->access_key_id, b->access_key_id) &&
	       same_str(a->secret_access_key, b->secret_access_key) &&
	       same_str(a->session_token, b->session_token);
}

/* ~/.aws/NAME, or NULL when no home directory is known. malloc'd. */
static char *home_file(const char *name)
{
	const char *home = getenv("HOME");
	char *p;

	if (!set(home)) {
		struct passwd *pw = getpwuid(getuid());

		home = pw != NULL ? pw->pw_dir : NULL;
	}
	if (!set(home))
		return NULL;
	p = malloc(strlen(home) + strlen(name) + sizeof("/.aws/"));
	if (p != NULL)
		sprintf(p, "%s/.aws/%s", home, name);
	return p;
}

char *s3_config_file_path(void)
{
	const char *env = getenv("AWS_CONFIG_FILE");

	return set(env) ? strdup(env) : home_file("config");
}

/* Whether the AWS config file has a section for profile. */
static bool config_has_profile(const char *profile)
{
	char *path = s3_config_file_path();
	struct profile_scan k = {profile, true, NULL, NULL, 0, false};
	bool found = path != NULL && scan_file(path, &k) == 0 && k.found;

	free(path);
	return found;
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
		path = home_file("credentials"); /* NULL: no home directory, so no file to read */
	}
	if (path != NULL && access(path, F_OK) == 0) {
		rc = s3_credentials_from_file(path, profile, out, why, sizeof(why));
		/* A profile named by AWS_PROFILE may live in the config file alone
		 * (credential_process, a role): then the chain goes on. */
		if (rc == 0 || rc != -ENOENT || (set(env_profile) && !config_has_profile(profile))) {
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
