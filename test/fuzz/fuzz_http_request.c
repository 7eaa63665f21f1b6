/*
 * The HTTP request reader under each server connection
 * (http_server_reader_* in src/http_server.h), without sockets: the input
 * is fed as a client would send it, possibly in pieces and with pipelined
 * requests, until the input ends or the reader reports an error.
 *
 *   byte 0  bits 0..5: piece size (0: everything at once)
 *           bit 6: the server's default limits instead of small ones
 *   rest    the bytes the client sends
 */
#include "fuzz.h"

#include "net/http_server.h"

static const struct http_server_limits small = {
	.max_head = 256,
	.max_url = 64,
	.max_body = 32,
	.max_conns = 4,
	.idle_ms = 1000,
	.request_ms = 300,
	.write_ms = 1000,
};

static void check_request(const struct http_server_reader *r, const struct http_server_limits *l)
{
	const struct http_server_request *q = &r->req;

	FUZZ_CHECK(q->target != NULL && q->path != NULL && q->query != NULL);
	FUZZ_CHECK(strlen(q->target) <= l->max_url);
	(void)strlen(q->path);
	(void)strlen(q->query);
	if (q->body != NULL) {
		FUZZ_CHECK(q->body_len <= l->max_body);
		FUZZ_CHECK(q->body[q->body_len] == '\0');
	}
	(void)q;
	(void)l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct http_server_limits *l;
	struct http_server_reader r;
	size_t step, off = 0, stalls = 0;

	if (size < 1)
		return 0;
	step = data[0] & 0x3f;
	l = (data[0] & 0x40) ? &http_server_default_limits : &small;
	data++;
	size--;
	if (http_server_reader_init(&r, l) != 0)
		return 0;
	while (off < size) {
		size_t n = size - off, used = 0;
		enum http_server_feed st;

		if (step != 0 && n > step)
			n = step;
		/* The piece in its own allocation, so a read past it is caught. */
		char *piece = malloc(n);
		if (piece == NULL)
			abort();
		memcpy(piece, data + off, n);
		st = http_server_reader_feed(&r, piece, n, &used);
		free(piece);
		if (used > n) {
			fprintf(stderr, "reader consumed %zu of %zu bytes\n", used, n);
			abort();
		}
		off += used;
		if (st == HTTP_SERVER_FEED_ERROR) {
			FUZZ_CHECK(r.error_status >= 400 && r.error_status <= 599);
			FUZZ_CHECK(r.error_msg != NULL);
			break;
		}
		if (st == HTTP_SERVER_FEED_REQUEST) {
			check_request(&r, l);
			http_server_reader_next(&r);
		} else if (used != n) {
			fprintf(stderr, "MORE after consuming %zu of %zu bytes\n", used, n);
			abort();
		}
		/* A reader that neither consumes nor reports would spin the connection forever. */
		stalls = used == 0 ? stalls + 1 : 0;
		if (stalls > 2) {
			fprintf(stderr, "reader makes no progress at offset %zu\n", off);
			abort();
		}
	}
	http_server_reader_free(&r);
	return 0;
}
