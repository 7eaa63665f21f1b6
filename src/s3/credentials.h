/*
 * Where an S3 replica's credentials come from. The first source that has
 * an access key wins:
 *
 *   1. the replica's configuration: access-key-id and secret-access-key;
 *   2. LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY;
 *   3. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN
 *      when set (temporary credentials);
 *   4. the shared credentials file, AWS_SHARED_CREDENTIALS_FILE or
 *      ~/.aws/credentials, profile AWS_PROFILE or "default"
 *      (aws_access_key_id, aws_secret_access_key, aws_session_token).
 *
 * A source given only half (a key id without its secret, or the reverse)
 * is an error naming the missing half rather than a reason to look
 * further: a typo should not silently pick up other credentials. An empty
 * value counts as unset. Nothing found is -ENOENT with a message listing
 * every place looked at. The environment and the file are read when the
 * function is called (once, when a backend is created).
 *
 * Secrets: no message written here ever contains a secret key or a token;
 * s3_credentials_free() wipes them before freeing.
 */
#ifndef LITESTREAM_S3_CREDENTIALS_H
#define LITESTREAM_S3_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>

struct s3_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL with long-term credentials */
	/* When temporary credentials lapse, ms since the Unix epoch (UTC);
	 * 0 when they do not (long-term keys, or a source that gave none). */
	int64_t expires_ms;
	/* Where they came from, for logs (never a secret): "the replica
	 * configuration", "LITESTREAM_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID",
	 * "/root/.aws/credentials [default]". */
	char source[512];
};

/*
 * Looks the credentials up in the order above; config_key_id and
 * config_secret are the replica's keys (NULL or "" when unset). On success
 * fills *out (which then owns its strings) and returns 0. On failure
 * returns -ENOENT (nothing found), -EINVAL (half a pair, a profile without
 * its keys or an AWS_PROFILE that is in neither the file nor the AWS
 * config file; one only in the config file is -ENOENT), -ENOMEM or an error
 * reading the file, with a message in err; *out is untouched.
 */
int s3_credentials_resolve(const char *config_key_id, const char *config_secret,
			   struct s3_credentials *out, char *err, size_t errlen);

/*
 * One profile of a shared credentials file (INI: [profile] sections, key =
 * value lines, '#' and ';' comment lines, indented lines belong to a
 * nested block and are skipped; keys are case-insensitive). 0; -ENOENT when
 * the file or the profile does not exist; -EINVAL when the profile lacks
 * aws_access_key_id or aws_secret_access_key; -ENOMEM or a read error.
 * err says which. *out is untouched on failure.
 */
int s3_credentials_from_file(const char *path, const char *profile, struct s3_credentials *out,
			     char *err, size_t errlen);

/*
 * One value of a profile in the AWS config file (AWS_CONFIG_FILE or
 * ~/.aws/config), where a profile is [profile NAME] ([default] or [profile
 * default] for "default"); the same line rules as the credentials file.
 * 0 with *out malloc'd; 1 when the file, the profile or the key is not
 * there (why says which); -ENOMEM or a read error (why set).
 */
int s3_config_file_value(const char *path, const char *profile, const char *key, char **out,
			 char *why, size_t whylen);

/* The AWS config file to read: AWS_CONFIG_FILE, else ~/.aws/config; malloc'd, NULL without a home. */
char *s3_config_file_path(void);

/* The profile in use: AWS_PROFILE, else "default" (static or the environment's). */
const char *s3_profile_name(void);

/* A copy of src into *dst (strings duplicated). 0 or -ENOMEM (*dst untouched). */
int s3_credentials_copy(const struct s3_credentials *src, struct s3_credentials *dst);

/* Whether a and b hold the same key, secret and token. */
int s3_credentials_equal(const struct s3_credentials *a, const struct s3_credentials *b);

/* Wipes and frees the strings of c and zeroes it; c itself is the caller's. */
void s3_credentials_free(struct s3_credentials *c);

#endif
