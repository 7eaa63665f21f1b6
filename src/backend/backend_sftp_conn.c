/*
 * The sftp backend's connection (see backend_sftp_internal.h): one SSH
 * session and one SFTP session per replica, opened by the first job that
 * needs it and closed after a transport error, so that the next job (the
 * replica retries failed operations) opens a new one.
 *
 * The host key is checked before authentication sends anything: against
 * the pinned host-key (ssh_key_cmp, the offered algorithms limited to the
 * pinned key's type so that the server shows that key), else against the
 * known_hosts file (libssh's check, which also reads hashed entries). An
 * unknown, changed or mismatched key is refused with the host and the
 * key's SHA256 fingerprint as ssh-keygen -l shows it; nothing is ever
 * written to known_hosts. ~/.ssh/config is not read: the replica's keys
 * are the whole configuration.
 *
 * Blocking throughout: only the threadpool calls these.
 */
#include "backend/backend_sftp_internal.h"
#include "util/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sftp_conn_progress(struct sftp_backend *sb)
{
	__atomic_store_n(&sb->progress_ms, (int64_t)(uv_hrtime() / 1000000), __ATOMIC_RELAXED);
}

void sftp_conn_close(struct sftp_backend *sb)
{
	uv_mutex_lock(&sb->fd_lock);
	sb->fd = -1; /* before the descriptor goes: the watchdog never shuts a reused one */
	uv_mutex_unlock(&sb->fd_lock);
	if (sb->sftp != NULL)
		sftp_free(sb->sftp);
	sb->sftp = NULL;
	if (sb->ssh != NULL) {
		ssh_disconnect(sb->ssh);
		ssh_free(sb->ssh);
	}
	sb->ssh = NULL;
}

char *sftp_remote_path(const struct sftp_backend *sb, const char *key)
{
	size_t n = strlen(sb->root);

	if (key == NULL || key[0] == '\0')
		return strdup(n > 0 ? sb->root : ".");
	if (n == 0)
		return strdup(key);
	return str_printf("%s%s%s", sb->root, sb->root[n - 1] == '/' ? "" : "/", key);
}

/* "ssh-ed25519 SHA256:..." of key, into buf. */
static void describe_key(ssh_key key, char *buf, size_t n)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;

	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
		fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	snprintf(buf, n, "%s %s", ssh_key_type_to_char(ssh_key_type(key)), fp ? fp : "(no fingerprint)");
	ssh_clean_pubkey_hash(&hash);
	ssh_string_free_char(fp);
}

static int check_host_key(struct sftp_backend *sb, struct sftp_result *res)
{
	ssh_key key = NULL;
	char shown[256];
	enum ssh_known_hosts_e known;
	int rc = -EPERM;

	if (ssh_get_server_publickey(sb->ssh, &key) != SSH_OK) {
		snprintf(res->err, sizeof(res->err), "sftp %s: no host key: %s", sb->where,
			 ssh_get_error(sb->ssh));
		return -EPROTO;
	}
	describe_key(key, shown, sizeof(shown));
	if (sb->pinned != NULL) {
		if (ssh_key_cmp(key, sb->pinned, SSH_KEY_CMP_PUBLIC) == 0)
			rc = 0;
		else
			snprintf(res->err, sizeof(res->err),
				 "sftp %s: host key refused: the server offers %s, which is not the "
				 "pinned host-key",
				 sb->where, shown);
		ssh_key_free(key);
		return rc;
	}
	ssh_key_free(key);
	known = ssh_session_is_known_server(sb->ssh);
	switch (known) {
	case SSH_KNOWN_HOSTS_OK:
		return 0;
	case SSH_KNOWN_HOSTS_CHANGED:
		snprintf(res->err, sizeof(res->err),
			 "sftp %s: host key refused: it CHANGED: the server offers %s, and %s holds "
			 "another key for this host (a reinstalled server, or someone in between)",
			 sb->where, shown, sb->known_hosts);
		break;
	case SSH_KNOWN_HOSTS_OTHER:
		snprintf(res->err, sizeof(res->err),
			 "sftp %s: host key refused: the server offers %s, and %s holds a key of "
			 "another type for this host",
			 sb->where, shown, sb->known_hosts);
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		snprintf(res->err, sizeof(res->err),
			 "sftp %s: host key refused: unknown host, key %s is not in %s (check the "
			 "fingerprint, then add the key there or pin it with host-key)",
			 sb->where, shown, sb->known_hosts);
		break;
	default:
		snprintf(res->err, sizeof(res->err), "sftp %s: host key check against %s failed: %s",
			 sb->where, sb->known_hosts, ssh_get_error(sb->ssh));
		rc = -EIO;
	}
	return rc;
}

/* The methods the server still allows after a failure, for the message. */
static const char *allowed(ssh_session s, char *buf, size_t n)
{
	int m = ssh_userauth_list(s, NULL);

	snprintf(buf, n, "%s%s%s", m & SSH_AUTH_METHOD_PUBLICKEY ? ", publickey" : "",
		 m & SSH_AUTH_METHOD_PASSWORD ? ", password" : "",
		 m & SSH_AUTH_METHOD_INTERACTIVE ? ", keyboard-interactive" : "");
	return buf[0] != '\0' ? buf + 2 : "none";
}

static int authenticate(struct sftp_backend *sb, struct sftp_result *res)
{
	char why[256] = "", methods[96];
	int rc = SSH_AUTH_DENIED;

	if (sb->key_path != NULL) {
		ssh_key key = NULL;

		if (ssh_pki_import_privkey_file(sb->key_path, NULL, NULL, NULL, &key) != SSH_OK) {
			snprintf(res->err, sizeof(res->err),
				 "sftp %s: key-path %s: cannot read the private key (missing, not a "
				 "key, or protected by a passphrase)",
				 sb->where, sb->key_path);
			return -EACCES;
		}
		rc = ssh_userauth_publickey(sb->ssh, NULL, key);
		ssh_key_free(key);
		if (rc != SSH_AUTH_SUCCESS)
			snprintf(why, sizeof(why), "the key in key-path %s was refused", sb->key_path);
	}
	if (rc != SSH_AUTH_SUCCESS && sb->password != NULL) {
		rc = ssh_userauth_password(sb->ssh, NULL, sb->password);
		if (rc != SSH_AUTH_SUCCESS)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), "%sthe password was refused",
				 why[0] ? ", and " : "");
	}
	if (sb->key_path == NULL && sb->password == NULL) {
		rc = ssh_userauth_publickey_auto(sb->ssh, NULL, NULL);
		if (rc != SSH_AUTH_SUCCESS)
			snprintf(why, sizeof(why),
				 "no key-path or password is set, and neither ssh-agent nor the keys in "
				 "~/.ssh were accepted");
	}
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	if (rc == SSH_AUTH_ERROR) {
		snprintf(res->err, sizeof(res->err), "sftp %s: authentication as %s failed: %s",
			 sb->where, sb->user, ssh_get_error(sb->ssh));
		return -ECONNRESET;
	}
	snprintf(res->err, sizeof(res->err),
		 "sftp %s: authentication as %s failed: %s (the server allows: %s)", sb->where,
		 sb->user, why, allowed(sb->ssh, methods, sizeof(methods)));
	return -EACCES;
}

/*
 * TCP_NODELAY: every SFTP write waits for its status, so Nagle's algorithm
 * against the peer's delayed ACK would cost tens of milliseconds a chunk.
 */
static int session_new(struct sftp_backend *sb, struct sftp_result *res)
{
	int off = 0, on = 1;

	if ((sb->ssh = ssh_new()) == NULL)
		return -ENOMEM;
	if (ssh_options_set(sb->ssh, SSH_OPTIONS_HOST, sb->host) != 0 ||
	    ssh_options_set(sb->ssh, SSH_OPTIONS_PORT, &sb->port) != 0 ||
	    ssh_options_set(sb->ssh, SSH_OPTIONS_USER, sb->user) != 0 ||
	    ssh_options_set(sb->ssh, SSH_OPTIONS_TIMEOUT, &sb->timeout_s) != 0 ||
	    ssh_options_set(sb->ssh, SSH_OPTIONS_PROCESS_CONFIG, &off) != 0 ||
	    ssh_options_set(sb->ssh, SSH_OPTIONS_NODELAY, &on) != 0 ||
	    (sb->known_hosts != NULL &&
	     ssh_options_set(sb->ssh, SSH_OPTIONS_KNOWNHOSTS, sb->known_hosts) != 0) ||
	    (sb->pinned_algos != NULL &&
	     ssh_options_set(sb->ssh, SSH_OPTIONS_HOSTKEYS, sb->pinned_algos) != 0)) {
		snprintf(res->err, sizeof(res->err), "sftp %s: %s", sb->where, ssh_get_error(sb->ssh));
		return -EINVAL;
	}
	return 0;
}

int sftp_conn_open(struct sftp_backend *sb, struct sftp_result *res)
{
	int rc;

	if (sb->sftp != NULL)
		return 0;
	sftp_conn_close(sb);
	if ((rc = session_new(sb, res)) != 0)
		goto fail;
	if (ssh_connect(sb->ssh) != SSH_OK) {
		snprintf(res->err, sizeof(res->err), "sftp %s: cannot connect: %s", sb->where,
			 ssh_get_error(sb->ssh));
		rc = -ECONNREFUSED;
		goto fail;
	}
	uv_mutex_lock(&sb->fd_lock);
	sb->fd = ssh_get_fd(sb->ssh);
	uv_mutex_unlock(&sb->fd_lock);
	sftp_conn_progress(sb);
	if ((rc = check_host_key(sb, res)) != 0 || (rc = authenticate(sb, res)) != 0)
		goto fail;
	sftp_conn_progress(sb);
	if ((sb->sftp = sftp_new(sb->ssh)) == NULL || sftp_init(sb->sftp) != SSH_OK) {
		snprintf(res->err, sizeof(res->err),
			 "sftp %s: no SFTP session (is the sftp subsystem enabled?): %s", sb->where,
			 ssh_get_error(sb->ssh));
		rc = -EPROTO;
		goto fail;
	}
	res->connected = true;
	return 0;
fail:
	sftp_conn_close(sb);
	return rc;
}

/* The SFTP status as -errno and words. */
static int status_errno(int st, const char **words, bool *file_level)
{
	static const struct {
		int st, rc;
		const char *words;
	} map[] = {
		{SSH_FX_NO_SUCH_FILE, -ENOENT, "no such file (SSH_FX_NO_SUCH_FILE)"},
		{SSH_FX_PERMISSION_DENIED, -EACCES, "permission denied (SSH_FX_PERMISSION_DENIED)"},
		{SSH_FX_FAILURE, -EIO,
		 "the server failed (SSH_FX_FAILURE: it gives no reason; a full disk or quota is one)"},
		{SSH_FX_OP_UNSUPPORTED, -ENOTSUP, "not supported by the server (SSH_FX_OP_UNSUPPORTED)"},
		{SSH_FX_NO_SUCH_PATH, -ENOENT, "no such path (SSH_FX_NO_SUCH_PATH)"},
		{SSH_FX_FILE_ALREADY_EXISTS, -EEXIST, "file exists (SSH_FX_FILE_ALREADY_EXISTS)"},
		{SSH_FX_WRITE_PROTECT, -EROFS, "write protected (SSH_FX_WRITE_PROTECT)"},
		{SSH_FX_NO_MEDIA, -ENOSPC, "no media (SSH_FX_NO_MEDIA)"},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].st == st) {
			*words = map[i].words;
			*file_level = true;
			return map[i].rc;
		}
	}
	*file_level = false;
	*words = NULL;
	return -ECONNRESET;
}

int sftp_conn_fail(struct sftp_backend *sb, struct sftp_result *res, const char *what,
		   const char *path)
{
	int st = sb->sftp != NULL ? sftp_get_error(sb->sftp) : SSH_FX_NO_CONNECTION;
	const char *words;
	bool file_level;
	int rc = status_errno(st, &words, &file_level);

	if (file_level && sb->ssh != NULL && ssh_is_connected(sb->ssh)) {
		snprintf(res->err, sizeof(res->err), "%s %s on %s: %s", what, path, sb->where, words);
		return rc;
	}
	snprintf(res->err, sizeof(res->err), "%s %s on %s: connection lost (SFTP status %d): %s",
		 what, path, sb->where, st, sb->ssh != NULL ? ssh_get_error(sb->ssh) : "no session");
	sb->broken = true; /* closed when the job ends, after its file handles */
	return rc;
}
