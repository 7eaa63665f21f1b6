/*
 * Control request parameters; control_params.h has the forms. A query
 * string is split at '&' and '=' and each half percent-decoded (a '+' is
 * a space); a body is parsed by cJSON and must be an object. Both go
 * through set_param(), so a value means the same in either place; the
 * body also takes JSON booleans and numbers where they make sense.
 */
#include "control/control_params.h"

#include "util/duration.h"
#include "util/pct.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int set_wait(const char *v, struct control_params *p, char *err, size_t errlen)
{
	if (v[0] == '\0' || strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0) {
		p->wait = true;
		return 0;
	}
	if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0) {
		p->wait = false;
		return 0;
	}
	snprintf(err, errlen, "invalid value \"%s\" for wait (1 or 0)", v);
	return -EINVAL;
}

static int set_timeout_ms(int64_t ms, const char *as_written, struct control_params *p, char *err,
			  size_t errlen)
{
	if (ms <= 0 || ms > CONTROL_MAX_TIMEOUT_MS) {
		snprintf(err, errlen, "invalid timeout \"%s\" (more than 0, at most 10m)", as_written);
		return -EINVAL;
	}
	p->timeout_ms = ms;
	return 0;
}

static int set_timeout(const char *v, struct control_params *p, char *err, size_t errlen)
{
	int64_t ms;

	if (duration_parse(v, &ms) != 0) {
		snprintf(err, errlen, "invalid timeout \"%s\" (a duration such as 10s)", v);
		return -EINVAL;
	}
	return set_timeout_ms(ms, v, p, err, errlen);
}

static int set_mode(const char *v, struct control_params *p, char *err, size_t errlen)
{
	for (int m = 0; m < CHECKPOINT_MODES; m++)
		if (strcasecmp(v, db_checkpoint_mode_name((enum db_checkpoint_mode)m)) == 0) {
			p->mode = (enum db_checkpoint_mode)m;
			return 0;
		}
	snprintf(err, errlen, "invalid checkpoint mode \"%s\" (PASSIVE, FULL, RESTART or TRUNCATE)", v);
	return -EINVAL;
}

static int set_param(const char *k, const char *v, unsigned allowed, struct control_params *p,
		     char *err, size_t errlen)
{
	if ((allowed & CONTROL_PARAM_WAIT) && strcmp(k, "wait") == 0)
		return set_wait(v, p, err, errlen);
	if ((allowed & CONTROL_PARAM_TIMEOUT) && strcmp(k, "timeout") == 0)
		return set_timeout(v, p, err, errlen);
	if ((allowed & CONTROL_PARAM_MODE) && strcmp(k, "mode") == 0)
		return set_mode(v, p, err, errlen);
	snprintf(err, errlen, "unknown parameter \"%s\"", k);
	return -EINVAL;
}

int control_query_each(const char *q, control_query_fn fn, void *arg, char *err, size_t errlen)
{
	size_t n = strlen(q);
	char *buf = malloc(2 * n + 2), *k, *v;
	int rc = 0;

	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	k = buf;
	v = buf + n + 1;
	while (*q != '\0' && rc == 0) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
		const char *eq = memchr(q, '=', (size_t)(end - q));
		const char *kend = eq ? eq : end;

		if (end > q) {
			if (pct_decode(q, (size_t)(kend - q), PCT_PLUS_SPACE, k) != 0 ||
			    pct_decode(eq ? eq + 1 : end, eq ? (size_t)(end - eq - 1) : 0, PCT_PLUS_SPACE,
				       v) != 0) {
				snprintf(err, errlen, "malformed query string");
				rc = -EINVAL;
				break;
			}
			rc = fn(arg, k, v, err, errlen);
		}
		q = amp ? amp + 1 : end;
	}
	free(buf);
	return rc;
}

struct query_state {
	unsigned allowed;
	struct control_params *p;
};

static int on_query_param(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
	struct query_state *qs = arg;

	return set_param(k, v, qs->allowed, qs->p, err, errlen);
}

static int parse_query(const char *q, unsigned allowed, struct control_params *p, char *err,
		       size_t errlen)
{
	struct query_state qs = {allowed, p};

	return control_query_each(q, on_query_param, &qs, err, errlen);
}

static int parse_body(const char *body, size_t len, unsigned allowed, struct control_params *p,
		      char *err, size_t errlen)
{
	cJSON *root, *it;
	int rc = 0;
	size_t i;

	for (i = 0; i < len && strchr(" \t\r\n", body[i]) != NULL; i++)
		;
	if (i == len)
		return 0; /* empty */
	root = cJSON_ParseWithLength(body, len);
	if (root == NULL) {
		snprintf(err, errlen, "invalid JSON body");
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "the JSON body must be an object");
		cJSON_Delete(root);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, root)
	{
		const char *k = it->string ? it->string : "";
		bool known = ((allowed & CONTROL_PARAM_WAIT) && strcmp(k, "wait") == 0) ||
			     ((allowed & CONTROL_PARAM_TIMEOUT) && strcmp(k, "timeout") == 0) ||
			     ((allowed & CONTROL_PARAM_MODE) && strcmp(k, "mode") == 0);
		if (!known) {
			snprintf(err, errlen, "unknown parameter \"%s\"", k);
			rc = -EINVAL;
		} else if (strcmp(k, "wait") == 0 && cJSON_IsBool(it)) {
			p->wait = cJSON_IsTrue(it);
		} else if (strcmp(k, "wait") == 0 && cJSON_IsNumber(it)) {
			p->wait = it->valuedouble != 0;
		} else if (strcmp(k, "timeout") == 0 && cJSON_IsNumber(it)) {
			double s = it->valuedouble;
			rc = set_timeout_ms(s > 0 && s <= CONTROL_MAX_TIMEOUT_MS ? (int64_t)(s * 1000) : -1,
					    "(number)", p, err, errlen);
		} else if (cJSON_IsString(it)) {
			rc = set_param(k, it->valuestring, allowed, p, err, errlen);
		} else {
			snprintf(err, errlen, "invalid value for \"%s\"", k);
			rc = -EINVAL;
		}
		if (rc != 0)
			break;
	}
	cJSON_Delete(root);
	return rc;
}

int control_params_parse(const char *query, const char *body, size_t body_len, unsigned allowed,
			 struct control_params *p, char *err, size_t errlen)
{
	int rc;

	p->wait = false;
	p->timeout_ms = CONTROL_DEFAULT_TIMEOUT_MS;
	p->mode = CHECKPOINT_PASSIVE;
	rc = parse_query(query, allowed, p, err, errlen);
	if (rc == 0 && body != NULL)
		rc = parse_body(body, body_len, allowed, p, err, errlen);
	return rc;
}
