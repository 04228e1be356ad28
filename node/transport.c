#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/list.h"
#include "../lib/log.h"
#include "config.h"
#include "transport.h"

#define HANDSHAKE_LEN (HV_MAGIC_LEN + 8 + 1 + 63)
#define HANDSHAKE_TIMEOUT_MS 5000

struct impl;

/* An accepted connection whose handshake is being read. */
struct incoming {
	struct impl *impl;
	uv_tcp_t *tcp; /* raft_malloc()ed: may end up owned by libraft */
	uv_timer_t timer;
	unsigned char buf[HANDSHAKE_LEN];
	size_t want, got;
	int pending_closes;
	struct incoming *next, *prev;
};

/* An outgoing Raft connection being set up. */
struct outgoing {
	struct impl *impl;
	struct raft_uv_connect *req;
	uv_tcp_t *tcp;
	uv_connect_t connect;
	uv_write_t write;
	unsigned char buf[HANDSHAKE_LEN];
	int status;
	struct outgoing *next, *prev;
};

struct impl {
	uv_loop_t *loop;
	raft_id id;
	char address[HV_ADDR_MAX + 1];
	uv_tcp_t listener;
	bool listening;
	raft_uv_accept_cb accept_cb;
	hv_transport_rpc_cb rpc_cb;
	void *rpc_data;
	struct incoming *incoming;
	struct outgoing *outgoing;
	bool closing;
	int pending;
	struct raft_uv_transport *t;
	raft_uv_transport_close_cb close_cb;
};

static void maybe_closed(struct impl *impl)
{
	if (impl->closing && impl->pending == 0 && impl->incoming == NULL &&
	    impl->outgoing == NULL && impl->close_cb != NULL) {
		raft_uv_transport_close_cb cb = impl->close_cb;
		impl->close_cb = NULL;
		cb(impl->t);
	}
}

int hv_sockaddr(const char *address, struct sockaddr_storage *sa)
{
	char host[HV_ADDR_MAX + 1];
	int port;

	memset(sa, 0, sizeof *sa);
	if (hv_addr_split(address, host, sizeof host, &port) != 0)
		return -1;
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0)
		return 0;
	return -1;
}

/* ---- incoming ---------------------------------------------------------- */

static void incoming_closed(uv_handle_t *h)
{
	struct incoming *in = h->data;

	if (h == (uv_handle_t *)in->tcp)
		raft_free(in->tcp);
	if (--in->pending_closes > 0)
		return;
	HV_LIST_UNLINK(in->impl->incoming, in);
	maybe_closed(in->impl);
	free(in);
}

static void incoming_abort(struct incoming *in, const char *why)
{
	if (why != NULL)
		hv_debug("transport: dropping connection: %s", why);
	in->pending_closes = 2;
	uv_close((uv_handle_t *)&in->timer, incoming_closed);
	uv_close((uv_handle_t *)in->tcp, incoming_closed);
}

/* Done with the handshake: the timer goes, the stream stays open. */
static void incoming_timer_closed(uv_handle_t *h)
{
	struct incoming *in = h->data;

	HV_LIST_UNLINK(in->impl->incoming, in);
	maybe_closed(in->impl);
	free(in);
}

static void incoming_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct incoming *in = h->data;

	(void)suggested;
	buf->base = (char *)in->buf + in->got;
	buf->len = in->want - in->got;
}

static void incoming_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct incoming *in = s->data;
	struct impl *impl = in->impl;
	uint64_t id;
	size_t alen;
	char address[HV_ADDR_MAX + 1];

	(void)buf;
	if (n < 0) {
		uv_read_stop(s);
		incoming_abort(in, uv_strerror((int)n));
		return;
	}
	in->got += (size_t)n;
	if (in->got < in->want)
		return;
	if (in->want == HV_MAGIC_LEN) {
		if (memcmp(in->buf, HV_MAGIC_RAFT, HV_MAGIC_LEN) == 0) {
			in->want = HANDSHAKE_LEN;
			return;
		}
		uv_read_stop(s);
		if (memcmp(in->buf, HV_MAGIC_RPC, HV_MAGIC_LEN) == 0 &&
		    impl->rpc_cb != NULL) {
			/* The RPC side takes this raft_malloc()ed handle and
			 * frees it with raft_free() after closing it. */
			uv_tcp_t *tcp = in->tcp;
			in->tcp = NULL;
			tcp->data = NULL;
			uv_close((uv_handle_t *)&in->timer, incoming_timer_closed);
			impl->rpc_cb(impl->rpc_data, (uv_stream_t *)tcp);
			return;
		}
		incoming_abort(in, "unknown protocol magic");
		return;
	}
	uv_read_stop(s);
	memcpy(&id, in->buf + HV_MAGIC_LEN, 8);
	id = be64toh(id);
	alen = in->buf[HV_MAGIC_LEN + 8];
	if (id == 0 || alen == 0 || alen > HV_ADDR_MAX) {
		incoming_abort(in, "bad raft handshake");
		return;
	}
	memcpy(address, in->buf + HV_MAGIC_LEN + 9, alen);
	address[alen] = '\0';
	{
		uv_tcp_t *tcp = in->tcp;
		in->tcp = NULL;
		uv_close((uv_handle_t *)&in->timer, incoming_timer_closed);
		impl->accept_cb(impl->t, id, address, (uv_stream_t *)tcp);
	}
}

static void incoming_timeout(uv_timer_t *timer)
{
	struct incoming *in = timer->data;

	uv_read_stop((uv_stream_t *)in->tcp);
	incoming_abort(in, "handshake timed out");
}

static void on_connection(uv_stream_t *server, int status)
{
	struct impl *impl = server->data;
	struct incoming *in;

	if (status != 0 || impl->closing)
		return;
	in = calloc(1, sizeof *in);
	if (in == NULL)
		return;
	in->tcp = raft_malloc(sizeof *in->tcp);
	if (in->tcp == NULL) {
		free(in);
		return;
	}
	in->impl = impl;
	in->want = HV_MAGIC_LEN;
	uv_tcp_init(impl->loop, in->tcp);
	uv_timer_init(impl->loop, &in->timer);
	in->tcp->data = in;
	in->timer.data = in;
	HV_LIST_LINK(impl->incoming, in);
	if (uv_accept(server, (uv_stream_t *)in->tcp) != 0) {
		incoming_abort(in, "accept failed");
		return;
	}
	uv_tcp_nodelay(in->tcp, 1);
	uv_timer_start(&in->timer, incoming_timeout, HANDSHAKE_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)in->tcp, incoming_alloc, incoming_read);
}

/* ---- outgoing ---------------------------------------------------------- */

static void outgoing_closed(uv_handle_t *h)
{
	struct outgoing *out = h->data;
	struct impl *impl = out->impl;

	raft_free(out->tcp);
	HV_LIST_UNLINK(impl->outgoing, out);
	out->req->cb(out->req, NULL, out->status);
	free(out);
	maybe_closed(impl);
}

static void outgoing_fail(struct outgoing *out, int status)
{
	out->status = status;
	uv_close((uv_handle_t *)out->tcp, outgoing_closed);
}

static void outgoing_written(uv_write_t *w, int status)
{
	struct outgoing *out = w->data;
	struct impl *impl = out->impl;

	if (uv_is_closing((uv_handle_t *)out->tcp))
		return; /* close() cancelled it; outgoing_closed reports */
	if (impl->closing) {
		outgoing_fail(out, RAFT_CANCELED);
		return;
	}
	if (status != 0) {
		outgoing_fail(out, RAFT_NOCONNECTION);
		return;
	}
	HV_LIST_UNLINK(impl->outgoing, out);
	out->tcp->data = NULL;
	out->req->cb(out->req, (uv_stream_t *)out->tcp, 0);
	free(out);
	maybe_closed(impl);
}

static void outgoing_connected(uv_connect_t *c, int status)
{
	struct outgoing *out = c->data;
	uv_buf_t b = uv_buf_init((char *)out->buf, HANDSHAKE_LEN);

	if (uv_is_closing((uv_handle_t *)out->tcp))
		return; /* close() cancelled it; outgoing_closed reports */
	if (out->impl->closing) {
		outgoing_fail(out, RAFT_CANCELED);
		return;
	}
	if (status != 0) {
		outgoing_fail(out, RAFT_NOCONNECTION);
		return;
	}
	out->write.data = out;
	if (uv_write(&out->write, (uv_stream_t *)out->tcp, &b, 1, outgoing_written) != 0)
		outgoing_fail(out, RAFT_NOCONNECTION);
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                     const char *address, raft_uv_connect_cb cb)
{
	struct impl *impl = t->impl;
	struct outgoing *out;
	struct sockaddr_storage sa;
	uint64_t be;
	size_t alen = strlen(impl->address);

	(void)id;
	if (impl->closing)
		return RAFT_CANCELED;
	if (hv_sockaddr(address, &sa) != 0)
		return RAFT_NOCONNECTION;
	out = calloc(1, sizeof *out);
	if (out == NULL)
		return RAFT_NOMEM;
	out->tcp = raft_malloc(sizeof *out->tcp);
	if (out->tcp == NULL) {
		free(out);
		return RAFT_NOMEM;
	}
	out->impl = impl;
	out->req = req;
	req->cb = cb;
	memcpy(out->buf, HV_MAGIC_RAFT, HV_MAGIC_LEN);
	be = htobe64(impl->id);
	memcpy(out->buf + HV_MAGIC_LEN, &be, 8);
	out->buf[HV_MAGIC_LEN + 8] = (unsigned char)alen;
	memcpy(out->buf + HV_MAGIC_LEN + 9, impl->address, alen);
	uv_tcp_init(impl->loop, out->tcp);
	uv_tcp_nodelay(out->tcp, 1);
	out->tcp->data = out;
	out->connect.data = out;
	HV_LIST_LINK(impl->outgoing, out);
	if (uv_tcp_connect(&out->connect, out->tcp, (struct sockaddr *)&sa,
	                   outgoing_connected) != 0) {
		/* Still fire the callback, asynchronously, through close. */
		outgoing_fail(out, RAFT_NOCONNECTION);
	}
	return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct impl *impl = t->impl;

	if (strlen(address) > HV_ADDR_MAX)
		return RAFT_INVALID;
	impl->id = id;
	snprintf(impl->address, sizeof impl->address, "%s", address);
	return 0;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct impl *impl = t->impl;
	struct sockaddr_storage sa;
	int rv;

	impl->accept_cb = cb;
	if (hv_sockaddr(impl->address, &sa) != 0) {
		snprintf(t->errmsg, sizeof t->errmsg, "bad listen address %s",
		         impl->address);
		return RAFT_INVALID;
	}
	uv_tcp_init(impl->loop, &impl->listener);
	impl->listener.data = impl;
	impl->listening = true;
	rv = uv_tcp_bind(&impl->listener, (struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&impl->listener, 128, on_connection);
	if (rv != 0) {
		snprintf(t->errmsg, sizeof t->errmsg, "listen on %s: %s", impl->address,
		         uv_strerror(rv));
		return RAFT_IOERR;
	}
	return 0;
}

static void listener_closed(uv_handle_t *h)
{
	struct impl *impl = h->data;

	impl->pending--;
	maybe_closed(impl);
}

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct impl *impl = t->impl;

	impl->closing = true;
	impl->close_cb = cb;
	if (impl->listening) {
		impl->pending++;
		uv_close((uv_handle_t *)&impl->listener, listener_closed);
	}
	for (struct incoming *in = impl->incoming; in != NULL; in = in->next)
		if (in->pending_closes == 0 && in->tcp != NULL) {
			uv_read_stop((uv_stream_t *)in->tcp);
			uv_timer_stop(&in->timer);
			incoming_abort(in, NULL);
		}
	for (struct outgoing *out = impl->outgoing; out != NULL; out = out->next)
		if (!uv_is_closing((uv_handle_t *)out->tcp)) {
			out->status = RAFT_CANCELED;
			uv_close((uv_handle_t *)out->tcp, outgoing_closed);
		}
	maybe_closed(impl);
}

int hv_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      hv_transport_rpc_cb rpc_cb, void *rpc_data)
{
	struct impl *impl = calloc(1, sizeof *impl);

	if (impl == NULL)
		return RAFT_NOMEM;
	impl->loop = loop;
	impl->rpc_cb = rpc_cb;
	impl->rpc_data = rpc_data;
	impl->t = t;
	t->version = 1;
	t->impl = impl;
	t->init = t_init;
	t->listen = t_listen;
	t->connect = t_connect;
	t->close = t_close;
	return 0;
}

void hv_transport_release(struct raft_uv_transport *t)
{
	free(t->impl);
	t->impl = NULL;
}
