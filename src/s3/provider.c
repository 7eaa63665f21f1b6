/*
 * The credentials provider; see provider.h for the chain and the contract.
 *
 * Two kinds. A static provider holds what credentials.h found at creation
 * and, when S3 rejects it, looks the environment and the credentials file
 * up again through a hook (synchronous, cheap, rate-limited): nothing here
 * sends a request for it, and it holds no handle. A dynamic provider holds
 * the dynamic sources that are configured (source.h), one http client and
 * one timer, and the credentials of the last fetch that succeeded.
 *
 * The fetch cycle of a dynamic provider, driven by its one timer:
 *
 *   IDLE --(timer: renewal due, retry due, or asked)--> RUNNING --> IDLE
 *
 * fetch == FETCH_SOON means the timer is armed at 0 for a fetch someone
 * asked for (s3_provider_get() with nothing usable, a rejection); the
 * timer otherwise waits for the renewal (on success) or the next retry
 * (on failure). Before a source has answered, a fetch walks the sources
 * in order, moving on when one fails, and the first that answers becomes
 * the one in use; afterwards only that one is asked.
 *
 * get() never fetches inline: it arms the timer and says -EAGAIN, and the
 * listener hears of the outcome from the fetch's callback, so it never
 * runs inside a call into the provider.
 *
 * Closing: the timer and the http client close (the client cancels its
 * requests, which ends an HTTP fetch), a credential process is killed;
 * once every close callback and the fetch's end have come back the
 * provider is freed and the user's callback runs.
 */
#include "s3/provider.h"
#include "s3/source.h"

#include "net/http_client.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool s3_provider_announce = false;

#define MAX_SOURCES 4
#define N_SLOTS (1 + MAX_SOURCES)
#define ERROR_MAX 3072

enum prov_kind { PROV_STATIC, PROV_DYNAMIC };
enum fetch_state { FETCH_IDLE, FETCH_SOON, FETCH_RUNNING };

struct chain_text {
	/* Why each source gave nothing, in chain order: [0] the static ones,
	 * then one per entry of add_sources()'s table. */
	char notes[N_SLOTS][S3_SOURCE_WHY_MAX];
	char error[ERROR_MAX];       /* what get() says when there is nothing to sign with */
};

struct s3_provider {
	uv_loop_t *loop;
	enum prov_kind kind;
	bool closing;
	char *log_name;
	struct s3_credentials creds; /* valid when have */
	bool have;
	int64_t usable_until_ms;     /* wall clock; signing stops then */
	unsigned gen;
	/* static */
	int (*reload)(void *arg, struct s3_credentials *out);
	void *reload_arg;
	unsigned reloads;
	uint64_t reloaded_ms;        /* loop time of the last reload */
	/* dynamic */
	char *region;
	struct s3_source_ctx ctx;
	struct http_client *http;
	uv_timer_t timer;
	struct s3_source *sources[MAX_SOURCES];
	size_t n_sources;
	int in_use;                  /* index of the source that answered, -1 before */
	size_t trying;               /* the source of the fetch in flight */
	enum fetch_state fetch;
	bool rejected_wait;          /* a fetch after a rejection: get() waits for it */
	unsigned rejected_fetches;
	uint64_t rejected_fetch_ms;  /* loop time */
	int failures;                /* fetches failed in a row */
	int64_t next_try_ms;         /* wall clock: get() fetches again from then */
	int64_t last_log_ms;         /* wall clock of the last failure logged */
	/* A dynamic chain's words (6.6 KB): static keys, the usual case for a
	 * thousand replicas of a [dir], go without. NULL for those. */
	struct chain_text *text;
	size_t slot_of[MAX_SOURCES]; /* the note of each source in sources[] */
	int error_rc;
	void (*listen_cb)(void *arg);
	void *listen_arg;
	int closing_parts;
	void (*close_cb)(void *arg);
	void *close_arg;
	uint64_t rng;
};

static double jitter(struct s3_provider *p)
{
	/* xorshift64: spreading renewals, nothing secret depends on it. */
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	return (double)(p->rng % 1000) / 999.0;
}

static struct s3_provider *provider_alloc(uv_loop_t *loop, const char *log_name)
{
	struct s3_provider *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->loop = loop;
	p->in_use = -1;
	p->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)p;
	if (p->rng == 0)
		p->rng = 0x9e3779b97f4a7c15ull;
	if (log_name != NULL && (p->log_name = strdup(log_name)) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

static void provider_free(struct s3_provider *p)
{
	for (size_t i = 0; i < p->n_sources; i++)
		p->sources[i]->ops->free(p->sources[i]);
	s3_credentials_free(&p->creds);
	free(p->text);
	free(p->region);
	free(p->log_name);
	free(p);
}

int s3_provider_new_static(uv_loop_t *loop, const struct s3_credentials *creds,
			   int (*reload)(void *arg, struct s3_credentials *out), void *reload_arg,
			   const char *log_name, struct s3_provider **out)
{
	struct s3_provider *p = provider_alloc(loop, log_name);

	if (p == NULL)
		return -ENOMEM;
	if (s3_credentials_copy(creds, &p->creds) != 0) {
		provider_free(p);
		return -ENOMEM;
	}
	p->kind = PROV_STATIC;
	p->have = true;
	p->usable_until_ms = INT64_MAX;
	p->reload = reload;
	p->reload_arg = reload_arg;
	*out = p;
	return 0;
}

void s3_provider_listen(struct s3_provider *p, void (*cb)(void *arg), void *arg)
{
	p->listen_cb = cb;
	p->listen_arg = arg;
}

const char *s3_provider_source(const struct s3_provider *p)
{
	if (p->kind == PROV_STATIC)
		return p->creds.source;
	return p->in_use >= 0 ? p->sources[p->in_use]->name : "";
}

/* ---- fetching ---- */

static void on_timer(uv_timer_t *t);

static void arm(struct s3_provider *p, int64_t delay_ms)
{
	if (!p->closing)
		uv_timer_start(&p->timer, on_timer, delay_ms > 0 ? (uint64_t)delay_ms : 0, 0);
}

static void fetch_soon(struct s3_provider *p)
{
	if (p->fetch != FETCH_IDLE)
		return;
	p->fetch = FETCH_SOON;
	arm(p, 0);
}

static void notify(struct s3_provider *p)
{
	if (p->listen_cb != NULL && !p->closing)
		p->listen_cb(p->listen_arg);
}

/* Takes c (moved) as the credentials in use; the renewal is scheduled. */
static void install(struct s3_provider *p, struct s3_credentials *c)
{
	int64_t now = clock_wall_ms();
	char when[40] = "";
	bool first = p->in_use < 0 || p->in_use != (int)p->trying;

	if (!p->have || !s3_credentials_equal(&p->creds, c))
		p->gen++;
	s3_credentials_free(&p->creds);
	p->creds = *c;
	memset(c, 0, sizeof(*c));
	p->have = true;
	p->usable_until_ms = s3_provider_usable_until_ms(now, p->creds.expires_ms);
	if (p->creds.expires_ms != 0)
		timefmt_format(p->creds.expires_ms, when, sizeof(when));
	p->in_use = (int)p->trying;
	if (first)
		LOG_AT(s3_provider_announce ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, p->log_name, NULL,
		       "s3 credentials from %s%s%s", p->sources[p->in_use]->name,
		       when[0] ? ", expiring at " : "", when);
	else if (p->failures > 0)
		LOG_INFO(p->log_name, NULL, "s3 credentials renewed from %s after %d failed attempt%s",
			 p->sources[p->in_use]->name, p->failures, p->failures == 1 ? "" : "s");
	else
		LOG_DEBUG(p->log_name, NULL, "s3 credentials renewed from %s%s%s",
			  p->sources[p->in_use]->name, when[0] ? ", expiring at " : "", when);
	p->failures = 0;
	p->text->error[0] = '\0';
	p->error_rc = 0;
	if (p->creds.expires_ms != 0)
		arm(p, s3_provider_refresh_delay_ms(now, p->creds.expires_ms, jitter(p)));
}

/* "no S3 credentials found: NOTE; NOTE; ..." with every source's note, in chain order. */
static void compose_error(struct s3_provider *p)
{
	bool first = true;

	snprintf(p->text->error, sizeof(p->text->error), "no S3 credentials found: ");
	for (size_t i = 0; i < N_SLOTS; i++) {
		size_t len = strlen(p->text->error);

		if (p->text->notes[i][0] == '\0')
			continue;
		snprintf(p->text->error + len, sizeof(p->text->error) - len, "%s%s", first ? "" : "; ",
			 p->text->notes[i]);
		first = false;
	}
}

/* A fetch failed for good (every source tried, or the one in use): back off, say so. */
static void failed(struct s3_provider *p, int rc, const char *why)
{
	int64_t now = clock_wall_ms(), left = p->have ? p->usable_until_ms - now : 0;
	int64_t delay;

	p->failures++;
	p->error_rc = rc == -ENOMEM ? rc : (p->in_use >= 0 ? -EACCES : -ENOENT);
	if (p->in_use >= 0)
		snprintf(p->text->error, sizeof(p->text->error),
			 "cannot renew s3 credentials from %s: %s", p->sources[p->in_use]->name, why);
	else
		compose_error(p);
	delay = s3_provider_retry_delay_ms(p->failures, left, jitter(p));
	p->next_try_ms = now + delay;
	if (s3_provider_should_log(now, p->last_log_ms)) {
		p->last_log_ms = now;
		LOG_WARN(p->log_name, NULL, "%s (%s; trying again in %" PRId64 " ms)", p->text->error,
			 p->have && left > 0 ? "the credentials in hand still serve" : "none in hand",
			 delay);
	} else {
		LOG_DEBUG(p->log_name, NULL, "%s", p->text->error);
	}
	arm(p, delay);
}

static void on_source_done(struct s3_source *s, int rc, struct s3_credentials *c, const char *why);
static void close_part(struct s3_provider *p);

/* Records why source i gave nothing in this walk. */
static void note_failure(struct s3_provider *p, size_t i, const char *why)
{
	snprintf(p->text->notes[p->slot_of[i]], sizeof(p->text->notes[0]), "%s: %s",
		 p->sources[i]->label, why);
}

/*
 * Starts a fetch from source `from` on: only that one once a source is in
 * use, else each in turn until one has a fetch in flight (true). False
 * when every one refused at once (the last refusal in *rc, *why).
 */
static bool walk_from(struct s3_provider *p, size_t from, int *rc, const char **why)
{
	for (p->trying = from; p->trying < p->n_sources; p->trying++) {
		struct s3_source *s = p->sources[p->trying];

		s->why[0] = '\0';
		if ((*rc = s->ops->fetch(s)) == 0)
			return true;
		*why = s->why[0] ? s->why : strerror(-*rc);
		if (p->in_use >= 0)
			return false;
		note_failure(p, p->trying, *why);
	}
	return false;
}

/* The end of a fetch that brought no credentials. */
static void fetch_failed(struct s3_provider *p, int rc, const char *why)
{
	p->fetch = FETCH_IDLE;
	p->rejected_wait = false;
	failed(p, rc, why);
	notify(p);
}

static void start_fetch(struct s3_provider *p)
{
	const char *why = NULL;
	int rc = 0;

	p->fetch = FETCH_RUNNING;
	if (p->in_use < 0)
		for (size_t i = 0; i < p->n_sources; i++)
			p->text->notes[p->slot_of[i]][0] = '\0';
	if (!walk_from(p, p->in_use >= 0 ? (size_t)p->in_use : 0, &rc, &why))
		fetch_failed(p, rc, why);
}

static void on_source_done(struct s3_source *s, int rc, struct s3_credentials *c, const char *why)
{
	struct s3_provider *p = s->owner;
	const char *next_why = why;
	int next_rc = rc;

	if (p->closing) {
		if (c != NULL)
			s3_credentials_free(c);
		p->fetch = FETCH_IDLE;
		close_part(p);
		return;
	}
	if (rc == 0) {
		p->fetch = FETCH_IDLE;
		p->rejected_wait = false;
		install(p, c);
		notify(p);
		return;
	}
	if (p->in_use < 0) {
		note_failure(p, p->trying, why);
		if (walk_from(p, p->trying + 1, &next_rc, &next_why))
			return;
	}
	fetch_failed(p, next_rc, next_why);
}

static void on_timer(uv_timer_t *t)
{
	struct s3_provider *p = t->data;

	if (p->closing || p->fetch == FETCH_RUNNING)
		return;
	start_fetch(p);
}

/* ---- asking ---- */

int s3_provider_get(struct s3_provider *p, const struct s3_credentials **creds, unsigned *gen,
		    const char **why)
{
	int64_t now;

	if (p->closing)
		return -ESHUTDOWN;
	if (p->kind == PROV_STATIC) {
		*creds = &p->creds;
		*gen = p->gen;
		return 0;
	}
	if (p->rejected_wait && p->fetch != FETCH_IDLE)
		return -EAGAIN;
	now = clock_wall_ms();
	if (p->have && now < p->usable_until_ms) {
		*creds = &p->creds;
		*gen = p->gen;
		return 0;
	}
	if (p->fetch != FETCH_IDLE)
		return -EAGAIN;
	if (p->failures == 0 || now >= p->next_try_ms) {
		fetch_soon(p);
		return -EAGAIN;
	}
	*why = p->text != NULL ? p->text->error : "no usable S3 credentials";
	return p->error_rc != 0 ? p->error_rc : -EACCES;
}

/* Static credentials rejected: the environment and the file again. */
static bool reload_static(struct s3_provider *p)
{
	struct s3_credentials fresh;
	uint64_t now = uv_now(p->loop);

	if (p->reload == NULL || (p->reloads > 0 && now - p->reloaded_ms < S3_CREDS_RELOAD_MIN_MS))
		return false;
	p->reloads++;
	p->reloaded_ms = now;
	memset(&fresh, 0, sizeof(fresh));
	if (p->reload(p->reload_arg, &fresh) != 0)
		return false;
	if (s3_credentials_equal(&fresh, &p->creds)) {
		s3_credentials_free(&fresh);
		return false;
	}
	s3_credentials_free(&p->creds);
	p->creds = fresh;
	p->gen++;
	LOG_INFO(p->log_name, NULL, "credentials reloaded from %s", p->creds.source);
	return true;
}

bool s3_provider_rejected(struct s3_provider *p, unsigned gen)
{
	uint64_t now = uv_now(p->loop);

	if (p->closing)
		return false;
	if (gen != p->gen)
		return true; /* signed before the last replacement */
	if (p->kind == PROV_STATIC)
		return reload_static(p);
	if (p->fetch != FETCH_IDLE) {
		p->rejected_wait = true;
		return true;
	}
	if (p->rejected_fetches > 0 && now - p->rejected_fetch_ms < S3_CREDS_RELOAD_MIN_MS)
		return false;
	p->rejected_fetches++;
	p->rejected_fetch_ms = now;
	p->rejected_wait = true;
	LOG_DEBUG(p->log_name, NULL, "S3 rejected the credentials from %s: fetching them again",
		  s3_provider_source(p));
	fetch_soon(p);
	return true;
}

/* ---- creation and closing ---- */

typedef int (*source_new_fn)(const struct s3_source_ctx *, struct s3_source **, char *, size_t);

/* The dynamic sources that are configured, in order. 0, or -EINVAL / -ENOMEM with err. */
static int add_sources(struct s3_provider *p, char *err, size_t errlen)
{
	static const struct {
		const char *label;
		source_new_fn make;
	} table[MAX_SOURCES] = {
		{"web identity", s3_source_web_identity_new},
		{"credential_process", s3_source_process_new},
		{"container endpoint", s3_source_container_new},
		{"IMDSv2", s3_source_imds_new},
	};

	for (size_t i = 0; i < MAX_SOURCES; i++) {
		char why[S3_SOURCE_WHY_MAX] = "";
		struct s3_source *s = NULL;
		int rc = table[i].make(&p->ctx, &s, why, sizeof(why));

		if (rc == 1) {
			snprintf(p->text->notes[1 + i], sizeof(p->text->notes[0]), "%s: %s", table[i].label, why);
			continue;
		}
		if (rc != 0) {
			snprintf(err, errlen, "%s: %s", table[i].label,
				 rc == -ENOMEM ? strerror(ENOMEM) : why);
			return rc;
		}
		s->done = on_source_done;
		s->owner = p;
		p->slot_of[p->n_sources] = 1 + i;
		p->sources[p->n_sources++] = s;
	}
	return 0;
}

/* The path of the shared credentials file and why it gave nothing. */
static void static_why(char *buf, size_t n)
{
	const char *env = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
	const char *profile = s3_profile_name();
	char path[512];

	if (env != NULL && env[0] != '\0')
		snprintf(path, sizeof(path), "%s", env);
	else if (home != NULL && home[0] != '\0')
		snprintf(path, sizeof(path), "%s/.aws/credentials", home);
	else
		snprintf(path, sizeof(path), "~/.aws/credentials");
	if (access(path, F_OK) != 0)
		snprintf(buf, n, "no %s", path);
	else
		snprintf(buf, n, "no [%s] profile in %s", profile, path);
}

static int new_dynamic(uv_loop_t *loop, const struct s3_provider_config *cfg,
		       struct s3_provider **out, char *err, size_t errlen)
{
	struct s3_provider *p = provider_alloc(loop, cfg->log_name);
	char why[640];
	int rc;

	if (p == NULL)
		return -ENOMEM;
	p->kind = PROV_DYNAMIC;
	if ((p->text = calloc(1, sizeof(*p->text))) == NULL ||
	    (cfg->region != NULL && (p->region = strdup(cfg->region)) == NULL)) {
		provider_free(p);
		return -ENOMEM;
	}
	/* What the static sources said, first in the list of every source tried. */
	static_why(why, sizeof(why));
	snprintf(p->text->notes[0], sizeof(p->text->notes[0]),
		 "access-key-id, LITESTREAM_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID: not set; %s", why);
	p->ctx.loop = loop;
	p->ctx.region = p->region;
	p->ctx.log_name = p->log_name;
	rc = add_sources(p, err, errlen);
	if (rc == 0 && p->n_sources == 0) {
		compose_error(p);
		snprintf(err, errlen, "%s", p->text->error);
		rc = -ENOENT;
	}
	if (rc == 0)
		rc = http_client_new(loop, &p->http);
	if (rc != 0) {
		provider_free(p);
		return rc;
	}
	p->ctx.http = p->http;
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	/* Fetch at once: the first request then finds credentials waiting. */
	fetch_soon(p);
	*out = p;
	return 0;
}

/* Looks the static sources up again, for a static provider's hook (not the replica's keys). */
static int reload_env(void *arg, struct s3_credentials *out)
{
	struct s3_provider *p = arg;
	char why[640];
	int rc = s3_credentials_resolve(NULL, NULL, out, why, sizeof(why));

	if (rc != 0)
		LOG_WARN(p->log_name, NULL, "reloading credentials: %s", why);
	return rc;
}

int s3_provider_new(uv_loop_t *loop, const struct s3_provider_config *cfg,
		    struct s3_provider **out, char *err, size_t errlen)
{
	struct s3_credentials creds;
	bool from_config = cfg->access_key_id != NULL && cfg->access_key_id[0] != '\0';
	char why[640];
	int rc = s3_credentials_resolve(cfg->access_key_id, cfg->secret_access_key, &creds, why,
					sizeof(why));

	if (rc == -ENOENT)
		return new_dynamic(loop, cfg, out, err, errlen);
	if (rc != 0) {
		snprintf(err, errlen, "%s", rc == -ENOMEM ? strerror(ENOMEM) : why);
		return rc;
	}
	rc = s3_provider_new_static(loop, &creds, NULL, NULL, cfg->log_name, out);
	s3_credentials_free(&creds);
	if (rc == 0 && !from_config) {
		(*out)->reload = reload_env;
		(*out)->reload_arg = *out;
	}
	if (rc == 0)
		LOG_AT(s3_provider_announce ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, cfg->log_name, NULL,
		       "s3 credentials from %s", (*out)->creds.source);
	return rc;
}

static void close_part(struct s3_provider *p)
{
	void (*cb)(void *);
	void *arg;

	if (--p->closing_parts > 0)
		return;
	cb = p->close_cb;
	arg = p->close_arg;
	provider_free(p);
	if (cb != NULL)
		cb(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	close_part(h->data);
}

static void on_http_closed(void *data)
{
	close_part(data);
}

void s3_provider_close(struct s3_provider *p, void (*cb)(void *arg), void *arg)
{
	if (p->closing)
		return;
	p->closing = true;
	p->close_cb = cb;
	p->close_arg = arg;
	if (p->kind == PROV_STATIC) {
		/* Nothing on the loop: done at once, as the contract allows for no handle. */
		provider_free(p);
		if (cb != NULL)
			cb(arg);
		return;
	}
	p->closing_parts = 2 + (p->fetch == FETCH_RUNNING);
	if (p->fetch == FETCH_RUNNING)
		p->sources[p->trying]->ops->cancel(p->sources[p->trying]);
	uv_close((uv_handle_t *)&p->timer, on_timer_closed);
	http_client_close(p->http, on_http_closed, p);
}
