/*
 * The parameters of the control server's POST requests (control.h lists
 * the requests): wait, timeout and mode, from the query string and from a
 * JSON object body ({"wait": true, "timeout": "10s", "mode": "FULL"}).
 * Each request allows some of them; any other is an error, so that a typo
 * is not silently ignored. No I/O and no state: the caller answers 400
 * with the message.
 */
#ifndef LITESTREAM_CONTROL_PARAMS_H
#define LITESTREAM_CONTROL_PARAMS_H

#include "db/db.h" /* enum db_checkpoint_mode */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which parameters a request takes (control_params_parse()'s allowed). */
enum { CONTROL_PARAM_WAIT = 1, CONTROL_PARAM_TIMEOUT = 2, CONTROL_PARAM_MODE = 4 };

#define CONTROL_DEFAULT_TIMEOUT_MS 30000
#define CONTROL_MAX_TIMEOUT_MS (10 * 60 * 1000)

struct control_params {
	bool wait;                    /* default false */
	int64_t timeout_ms;           /* default CONTROL_DEFAULT_TIMEOUT_MS, at most the max */
	enum db_checkpoint_mode mode; /* default CHECKPOINT_PASSIVE */
};

/*
 * Sets *p to the defaults, then applies query (what follows the '?',
 * percent-encoded, "" for none) and then the JSON body body[0..body_len)
 * (body NULL, or nothing but white space, for none), so that the body
 * wins. Values: wait is 1/true/yes or empty for true, 0/false/no for
 * false (a JSON boolean or number too); timeout a duration such as "10s"
 * (a JSON number: seconds), more than 0 and at most 10m; mode a checkpoint
 * mode in any case. Returns 0, or -EINVAL (-ENOMEM) with the message in
 * err ("unknown parameter \"x\"", "invalid timeout ..."); *p may then be
 * partly set.
 */
int control_params_parse(const char *query, const char *body, size_t body_len, unsigned allowed,
			 struct control_params *p, char *err, size_t errlen);

/*
 * Splits query (what follows the '?') at '&' and '=', percent-decodes
 * each key and value ('+' is a space) and calls fn(arg, key, value, err,
 * errlen) for each pair in order ("k" alone has the value ""; empty pairs
 * are skipped). Stops at the first fn that returns non-zero and returns
 * that; -EINVAL with "malformed query string" for a bad escape, -ENOMEM.
 */
typedef int (*control_query_fn)(void *arg, const char *key, const char *value, char *err,
				size_t errlen);
int control_query_each(const char *query, control_query_fn fn, void *arg, char *err, size_t errlen);

#endif
