/*
 * Internal to the HTTP server: the connection type and the functions its
 * files share. Nothing outside src/net/http_server*.c includes this.
 *
 *   http_server.c         listeners (Unix socket, TCP) and accepting,
 *                         with the max_conns limit and eviction
 *   http_server_conn.c    connections: reading, handing requests to the
 *                         owner, writing responses, timeouts, pipelining
 *   http_server_reader.c  the request parser (http-parser callbacks)
 *
 * Contract: everything runs on the loop thread. The server owns its
 * connections; a connection is freed in the last of its two close
 * callbacks, after which http_server_handle_gone() is called for it.
 */
#ifndef LITESTREAM_HTTP_SERVER_INTERNAL_H
#define LITESTREAM_HTTP_SERVER_INTERNAL_H

#include "net/http_server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define READ_BUF_SIZE 4096

enum conn_state { CONN_READING, CONN_HANDLING, CONN_WRITING, CONN_LINGER, CONN_CLOSING };

struct http_server_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} u;
	uv_timer_t timer;
	struct http_server *server;
	struct http_server_listener *listener;
	struct http_server_conn *prev, *next;
	enum conn_state state;
	struct http_server_reader reader;
	bool reading;
	bool close_after;     /* end the connection once the response is out */
	bool continue_sent;
	uint64_t idle_since;  /* uv_now() when it last became idle */
	uint64_t checked_round; /* oldest_idle() saw unread bytes in this round */
	int open_handles;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	char *wbuf;
	size_t roff, rlen;    /* unparsed bytes waiting in rbuf */
	char rbuf[READ_BUF_SIZE];
};

/* --- http_server_conn.c ---------------------------------------------------- */

/* One of the server's handles (a listener or a connection) is closed; the
 * last one after http_server_close() runs its callback. */
void http_server_handle_gone(struct http_server *s);
/* Unlinks the connection, tells the owner if it held a request, and closes
 * both handles; a no-op when already CLOSING. */
void http_server_conn_close(struct http_server_conn *c);
/* Starts reading if not already; closes the connection if it cannot. */
void http_server_conn_read_start(struct http_server_conn *c);
/* (Re)arms the connection's single timer, whatever the state. */
void http_server_conn_timer_set(struct http_server_conn *c, uint64_t ms);

#endif
