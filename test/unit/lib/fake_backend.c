/*
 * The scripted in-memory backend; see fake_backend.h. Operations wait in
 * two FIFO lists: ready (answered by a zero timer on the next loop turn)
 * and held (moved to ready by fake_backend_release()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lib/fake_backend.h"
#include "core/lz4io.h"
#include "lib/sqlite_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum op_kind { OP_LIST, OP_PUT, OP_GET, OP_REMOVE };

struct op {
	struct op *next;
	enum op_kind kind;
	char *key;   /* list: the directory */
	char *local;
	size_t put;  /* index in store->puts */
	int rc;
	backend_done_cb done;
	backend_list_cb listed;
	void *arg;
};

struct fake {
	struct backend base;
	struct store *store;
	uv_timer_t timer; /* answers the ready ops on the next loop turn */
	struct op *ready, *held;
	enum fake_outcome script[16]; /* the next puts' answers; then ANSWER_OK */
	int script_rc[16];
	size_t n_script;
	size_t n_held;
	bool closing;
};

void store_clear(struct store *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->keys[i]);
		free(s->data[i]);
	}
	for (size_t i = 0; i < s->n_puts; i++)
		free(s->puts[i]);
	memset(s, 0, sizeof(*s));
}

static ssize_t store_find(const struct store *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return (ssize_t)i;
	return -1;
}

static void append(struct op **list, struct op *op)
{
	while (*list != NULL)
		list = &(*list)->next;
	op->next = NULL;
	*list = op;
}

static uint64_t uncompressed_size(const char *path)
{
	int in = open(path, O_RDONLY), out = open("/dev/null", O_WRONLY);
	uint64_t n = 0;
	char err[128];

	assert_true(in >= 0 && out >= 0);
	assert_int_equal(lz4io_decompress(in, out, &n, err, sizeof(err)), 0);
	close(in);
	close(out);
	return n;
}

static int do_put(struct fake *f, struct op *op)
{
	struct store *s = f->store;
	size_t n;
	uint8_t *buf = th_read_file(op->local, &n);
	ssize_t i = store_find(s, op->key);

	s->put_wal_bytes[op->put] = uncompressed_size(op->local);
	if (i < 0) {
		assert_true(s->n < FAKE_MAX_OBJECTS);
		i = (ssize_t)s->n++;
		s->keys[i] = strdup(op->key);
	} else {
		free(s->data[i]);
	}
	s->data[i] = buf;
	s->size[i] = n;
	return 0;
}

static int do_get(struct fake *f, struct op *op)
{
	ssize_t i = store_find(f->store, op->key);

	if (i < 0)
		return -ENOENT;
	th_write_file(op->local, f->store->data[i], f->store->size[i]);
	return 0;
}

/* Names directly under op->key, directories once each. */
static void do_list(struct fake *f, struct op *op, struct backend_list *l)
{
	const struct store *s = f->store;
	size_t n = strlen(op->key);

	l->v = calloc(s->n + 1, sizeof(*l->v));
	l->n = 0;
	for (size_t i = 0; i < s->n; i++) {
		const char *k = s->keys[i];
		if (strncmp(k, op->key, n) != 0 || k[n] != '/')
			continue;
		const char *rest = k + n + 1, *slash = strchr(rest, '/');
		size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
		bool dup = false;
		for (size_t j = 0; j < l->n; j++)
			dup |= strlen(l->v[j].name) == len && strncmp(l->v[j].name, rest, len) == 0;
		if (dup)
			continue;
		l->v[l->n].name = strndup(rest, len);
		l->v[l->n].is_dir = slash != NULL;
		l->v[l->n].size = s->size[i];
		l->n++;
	}
}

static void answer(struct fake *f, struct op *op)
{
	struct backend_list l = {0};
	int rc = op->rc;

	switch (op->kind) {
	case OP_PUT:
		if (rc == 0)
			rc = do_put(f, op);
		f->store->put_rc[op->put] = rc;
		op->done(op->arg, rc, rc ? "scripted failure" : NULL);
		break;
	case OP_GET:
		rc = do_get(f, op);
		op->done(op->arg, rc, rc ? "not found" : NULL);
		break;
	case OP_LIST:
		do_list(f, op, &l);
		op->listed(op->arg, 0, NULL, &l);
		backend_list_free(&l);
		break;
	case OP_REMOVE:
		op->done(op->arg, 0, NULL);
		break;
	}
	free(op->key);
	free(op->local);
	free(op);
}

static void on_fake_timer(uv_timer_t *t)
{
	struct fake *f = t->data;
	struct op *op;

	while ((op = f->ready) != NULL) {
		f->ready = op->next;
		answer(f, op);
	}
}

static void submit(struct fake *f, struct op *op, enum fake_outcome how)
{
	if (how == ANSWER_HOLD) {
		append(&f->held, op);
		f->n_held++;
		return;
	}
	append(&f->ready, op);
	uv_timer_start(&f->timer, on_fake_timer, 0, 0);
}

static struct op *op_new(enum op_kind kind, const char *key, const char *local, void *arg)
{
	struct op *op = calloc(1, sizeof(*op));

	op->kind = kind;
	op->key = key ? strdup(key) : NULL;
	op->local = local ? strdup(local) : NULL;
	op->arg = arg;
	return op;
}

static void fake_list(struct backend *b, const char *dir, backend_list_cb cb, void *arg)
{
	struct op *op = op_new(OP_LIST, dir, NULL, arg);

	op->listed = cb;
	submit((struct fake *)b, op, ANSWER_OK);
}

static void fake_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		     void *arg)
{
	struct fake *f = (struct fake *)b;
	struct store *s = f->store;
	struct op *op = op_new(OP_PUT, key, local_path, arg);
	enum fake_outcome how = ANSWER_OK;

	op->done = cb;
	assert_true(s->n_puts < FAKE_MAX_PUTS);
	op->put = s->n_puts;
	s->puts[s->n_puts++] = strdup(key);
	if (f->n_script > 0) {
		how = f->script[0];
		op->rc = how == ANSWER_FAIL ? f->script_rc[0] : 0;
		memmove(f->script, f->script + 1, --f->n_script * sizeof(f->script[0]));
		memmove(f->script_rc, f->script_rc + 1, f->n_script * sizeof(f->script_rc[0]));
	}
	submit(f, op, how);
}

static void fake_get(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		     void *arg)
{
	struct op *op = op_new(OP_GET, key, local_path, arg);

	op->done = cb;
	submit((struct fake *)b, op, ANSWER_OK);
}

static void fake_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb, void *arg)
{
	struct op *op = op_new(OP_REMOVE, NULL, NULL, arg);

	op->done = cb;
	submit((struct fake *)b, op, ANSWER_OK);
}

struct close_req {
	void (*cb)(void *arg);
	void *arg;
};

static void on_fake_timer_closed(uv_handle_t *h)
{
	struct close_req *c = h->data;

	c->cb(c->arg);
	free(c);
}

static void fake_close(struct backend *b, void (*cb)(void *arg), void *arg)
{
	struct fake *f = (struct fake *)b;
	struct close_req *c = calloc(1, sizeof(*c));

	assert_null(f->ready);
	assert_null(f->held);
	c->cb = cb;
	c->arg = arg;
	f->closing = true;
	f->timer.data = c;
	uv_close((uv_handle_t *)&f->timer, on_fake_timer_closed);
}

static void fake_free(struct backend *b)
{
	struct fake *f = (struct fake *)b;

	assert_true(f->closing);
	free(f->base.describe);
	free(f);
}

static const struct backend_ops fake_ops = {
	.type = "fake",
	.list = fake_list,
	.put = fake_put,
	.get = fake_get,
	.remove = fake_remove,
	.close = fake_close,
	.free = fake_free,
};

struct fake *fake_backend_new(uv_loop_t *loop, struct store *store)
{
	struct fake *f = calloc(1, sizeof(*f));

	f->base.ops = &fake_ops;
	f->base.loop = loop;
	f->base.describe = strdup("fake://");
	f->store = store;
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	return f;
}

void fake_backend_script_put(struct fake *f, enum fake_outcome how, int rc)
{
	assert_true(f->n_script < 16);
	f->script[f->n_script] = how;
	f->script_rc[f->n_script++] = rc;
}

void fake_backend_release(struct fake *f, int rc)
{
	struct op *op = f->held;

	assert_non_null(op);
	f->held = op->next;
	f->n_held--;
	op->rc = rc;
	append(&f->ready, op);
	uv_timer_start(&f->timer, on_fake_timer, 0, 0);
}

struct backend *fake_backend_base(struct fake *f)
{
	return &f->base;
}

size_t fake_backend_held(const struct fake *f)
{
	return f->n_held;
}

bool fake_backend_idle(const struct fake *f)
{
	return f->ready == NULL && f->held == NULL;
}
