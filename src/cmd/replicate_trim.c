/*
 * Gives the heap's free memory back to the system after bursts.
 *
 * Starting a thousand databases (a snapshot each, their uploads, the LIST
 * answers) and a SIGHUP that adds many leave megabytes of freed chunks
 * in glibc's arenas, which glibc keeps resident: with 300 databases on S3
 * the live heap was 16 MB and the anonymous RSS 36 MB. Ten seconds after
 * the start and then once a minute (one wake-up for the whole process, not
 * per database) the free bytes are read with mallinfo2(), and past
 * TRIM_FREE_MIN malloc_trim() returns the free pages of every arena
 * (madvise) to the kernel.
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <malloc.h>

#define TRIM_FIRST_MS 10000 /* start-up bursts are over by then, mostly */
#define TRIM_EVERY_MS 60000
#define TRIM_FREE_MIN (4u << 20)

static void on_trim(uv_timer_t *t)
{
	struct mallinfo2 mi = mallinfo2();

	(void)t;
	if (mi.fordblks < TRIM_FREE_MIN)
		return;
	malloc_trim(0);
	LOG_DEBUG(NULL, NULL, "heap: %zu KiB free in the arenas given back (%zu KiB in use)",
		  mi.fordblks / 1024, mi.uordblks / 1024);
}

void replicate_trim_start(struct app *app)
{
	uv_timer_init(&app->loop, &app->trim_timer);
	/* Not a reason to keep the loop alive on its own. */
	uv_unref((uv_handle_t *)&app->trim_timer);
	uv_timer_start(&app->trim_timer, on_trim, TRIM_FIRST_MS, TRIM_EVERY_MS);
}

void replicate_trim_close(struct app *app)
{
	uv_close((uv_handle_t *)&app->trim_timer, NULL);
}
