/*
 * The credentials of one S3 replica, on the loop: which source they come
 * from, the ones in use, and their renewal.
 *
 * The chain, in the AWS SDKs' order; the first source that yields
 * credentials wins:
 *
 *   1-4. the static sources of credentials.h: the replica's keys,
 *        LITESTREAM_*, AWS_ACCESS_KEY_ID (+ AWS_SESSION_TOKEN), the shared
 *        credentials file. Looked up at creation, synchronously, exactly
 *        as before: they cost no request.
 *   5.   web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (EKS
 *        IRSA), exchanged at STS (AssumeRoleWithWebIdentity); the token
 *        file is read again at every renewal.
 *   6.   credential_process of the profile in the AWS config file.
 *   7.   the container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *        (against 169.254.170.2) or _FULL_URI (ECS, EKS Pod Identity).
 *   8.   IMDSv2, the EC2 instance metadata service, unless
 *        AWS_EC2_METADATA_DISABLED=true.
 *
 * A static source found, or given half (a key without its secret), ends
 * the lookup at creation as before. So does a dynamic source configured
 * wrongly (AWS_ROLE_ARN without a token file, a FULL_URI on a host that
 * is not allowed): an error naming it. Otherwise the dynamic sources that
 * are configured are tried in order, on the loop, the first time
 * credentials are asked for; a failure moves on to the next source, and
 * when none yields credentials the error names every source and why it
 * gave none. The source that answered stays the one in use.
 *
 * Renewal (dynamic sources): credentials with an expiry are fetched again
 * about 5 minutes before it (s3_provider_refresh_delay_ms()), and when S3
 * rejects them (s3_provider_rejected()). A renewal that fails keeps the
 * credentials in hand until they lapse and is tried again with a backoff;
 * a failing source is logged at most once a minute. Requests wait while
 * credentials are being fetched and none are usable, and fail with the
 * source's error when there are none to be had.
 *
 * Static credentials rejected by S3 are looked up again in the
 * environment and the credentials file (not the replica's own keys), at
 * most every S3_CREDS_RELOAD_MIN_MS, as before.
 *
 * Contract: everything runs on the loop thread. The listener is called
 * from the loop, never from inside an s3_provider_* call. No source blocks
 * the loop: HTTP goes through http_client with short timeouts (1 s to
 * connect to a metadata endpoint), a credential process runs under
 * uv_spawn with a pipe; only small local files (a token, the config file)
 * are read in place. Secrets never appear in a message or a log line; the
 * source's name (s3_provider_source()) never holds one.
 *
 * Lifecycle: s3_provider_new() ... s3_provider_close(), which stops a fetch
 * in flight (a credential process is killed), closes every handle and
 * frees the provider before its callback runs: from the loop for a
 * dynamic provider, at once for a static one (it holds no handle).
 */
#ifndef LITESTREAM_S3_PROVIDER_H
#define LITESTREAM_S3_PROVIDER_H

#include "s3/credentials.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define S3_CREDS_RELOAD_MIN_MS 5000

/* Renew this long before expiry (less for short-lived credentials, below). */
#define S3_REFRESH_WINDOW_MS (5 * 60 * 1000)
/* A failing source is logged at most this often. */
#define S3_PROVIDER_LOG_EVERY_MS (60 * 1000)
/* Retries of a failed fetch back off from the first to the second. */
#define S3_PROVIDER_RETRY_MIN_MS 1000
#define S3_PROVIDER_RETRY_MAX_MS (60 * 1000)

struct s3_provider;

/*
 * Whether the source in use is logged at info level (set once by
 * `replicate` before any provider exists); otherwise at debug level, so
 * that the one-shot commands keep standard error for what went wrong.
 */
extern bool s3_provider_announce;

struct s3_provider_config {
	const char *access_key_id;     /* the replica's keys; NULL or "" when unset */
	const char *secret_access_key;
	const char *region;            /* the replica's, for STS when AWS_REGION is unset */
	const char *log_name;          /* how log lines name the replica, or NULL */
};

/*
 * Looks the static sources up and sets the dynamic ones up (nothing is
 * sent yet). 0 with *out; -EINVAL (half a pair, a source configured
 * wrongly), -ENOENT (no source at all: every one is named in err) or
 * -ENOMEM, with a message in err.
 */
int s3_provider_new(uv_loop_t *loop, const struct s3_provider_config *cfg,
		    struct s3_provider **out, char *err, size_t errlen);

/*
 * A provider of fixed credentials (copied), with an optional hook that
 * looks them up again when S3 rejects them (0 with *out filled, which the
 * provider then owns). 0 or -ENOMEM.
 */
int s3_provider_new_static(uv_loop_t *loop, const struct s3_credentials *creds,
			   int (*reload)(void *arg, struct s3_credentials *out), void *reload_arg,
			   const char *log_name, struct s3_provider **out);

/* cb(arg) is called from the loop each time credentials arrive or a fetch fails. */
void s3_provider_listen(struct s3_provider *p, void (*cb)(void *arg), void *arg);

/*
 * The credentials to sign with now. 0 with *creds (valid until the next
 * loop turn) and *gen (bumped each time they change); -EAGAIN while they
 * are being fetched (the listener is called when that ends); another
 * negative errno when there are none to be had for now, with *why (valid
 * until the next loop turn) saying what every source said. Starts a fetch
 * when none is usable and none is in flight, unless the last one failed
 * less than its backoff ago.
 */
int s3_provider_get(struct s3_provider *p, const struct s3_credentials **creds, unsigned *gen,
		    const char **why);

/*
 * S3 rejected credentials of generation gen. True when a request signed
 * with them is worth sending again: newer ones are in hand, or (dynamic
 * sources) being fetched now, in which case s3_provider_get() says -EAGAIN
 * until the fetch ends. At most one such fetch per S3_CREDS_RELOAD_MIN_MS.
 */
bool s3_provider_rejected(struct s3_provider *p, unsigned gen);

/* The name of the source in use ("AWS_ACCESS_KEY_ID", "container endpoint http://..."), "" before one answered. */
const char *s3_provider_source(const struct s3_provider *p);

/* See the lifecycle above; cb may be NULL. */
void s3_provider_close(struct s3_provider *p, void (*cb)(void *arg), void *arg);

/* ---- the schedule (provider_schedule.c), pure, for tests ---- */

/*
 * How long after now_ms to renew credentials that expire at expires_ms
 * (both wall clock ms): S3_REFRESH_WINDOW_MS before expiry, or half the
 * time left when that is shorter, and up to a fifth of that window earlier
 * by jitter r (0..1), so replicas started together do not renew together.
 * 0 when they have expired; at least a second otherwise, unless they
 * lapse sooner.
 */
int64_t s3_provider_refresh_delay_ms(int64_t now_ms, int64_t expires_ms, double r);

/*
 * Until when credentials received at received_ms and expiring at
 * expires_ms are used to sign (wall clock ms): a tenth of their lifetime
 * before they lapse, at most a minute, so that no request leaves with
 * credentials about to expire. INT64_MAX without an expiry.
 */
int64_t s3_provider_usable_until_ms(int64_t received_ms, int64_t expires_ms);

/*
 * The delay before fetching again after `failures` failed fetches in a row
 * (>= 1): S3_PROVIDER_RETRY_MIN_MS doubling to S3_PROVIDER_RETRY_MAX_MS,
 * but no more than half of remaining_ms (how long the credentials in hand
 * still last; <= 0 without any) so that several tries fit before they
 * lapse, with equal jitter from r (0..1).
 */
int64_t s3_provider_retry_delay_ms(int failures, int64_t remaining_ms, double r);

/* Whether a failure at now_ms is logged, the last one logged at last_ms (0: never). */
bool s3_provider_should_log(int64_t now_ms, int64_t last_ms);

#endif
