/*
 * When credentials are renewed, until when they are used, and how a
 * failing source is retried and logged; see provider.h. Pure arithmetic on
 * wall clock milliseconds, kept apart from the provider's state so that
 * tests reach every case directly.
 */
#include "s3/provider.h"

#include <stdint.h>

static double clamp01(double r)
{
	return r < 0 ? 0 : (r > 1 ? 1 : r);
}

int64_t s3_provider_refresh_delay_ms(int64_t now_ms, int64_t expires_ms, double r)
{
	int64_t left = expires_ms - now_ms, window, jitter, d;

	if (left <= 0)
		return 0;
	window = left / 2 < S3_REFRESH_WINDOW_MS ? left / 2 : S3_REFRESH_WINDOW_MS;
	jitter = (int64_t)((double)(window / 5) * clamp01(r));
	d = left - window - jitter;
	if (d < 1000)
		d = left < 1000 ? left : 1000;
	return d;
}

int64_t s3_provider_usable_until_ms(int64_t received_ms, int64_t expires_ms)
{
	int64_t life, margin;

	if (expires_ms == 0)
		return INT64_MAX;
	life = expires_ms - received_ms;
	margin = life > 0 ? life / 10 : 0;
	if (margin > 60 * 1000)
		margin = 60 * 1000;
	return expires_ms - margin;
}

int64_t s3_provider_retry_delay_ms(int failures, int64_t remaining_ms, double r)
{
	int64_t d = S3_PROVIDER_RETRY_MIN_MS;

	for (int i = 1; i < failures && d < S3_PROVIDER_RETRY_MAX_MS; i++)
		d *= 2;
	if (d > S3_PROVIDER_RETRY_MAX_MS)
		d = S3_PROVIDER_RETRY_MAX_MS;
	if (remaining_ms > 0 && d > remaining_ms / 2)
		d = remaining_ms / 2;
	if (d < S3_PROVIDER_RETRY_MIN_MS)
		d = S3_PROVIDER_RETRY_MIN_MS;
	return d / 2 + (int64_t)((double)(d / 2) * clamp01(r));
}

bool s3_provider_should_log(int64_t now_ms, int64_t last_ms)
{
	return last_ms == 0 || now_ms - last_ms >= S3_PROVIDER_LOG_EVERY_MS;
}
