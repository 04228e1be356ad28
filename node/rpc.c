#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../lib/err.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "rpc.h"
#include "transport.h"

struct hv_rpc_conn {
	struct hv_rpc *rpc;
	uv_stream_t *stream;
	void (*free_handle)(void *);
	uv_timer_t timer;
	struct hv_rpc_peer peer;
	unsigned char hdr[4];
	size_t hdr_got;
	char *body;
	size_t body_len, body_got;
	bool served;  /* request handed to request_cb */
	bool replied; /* hv_rpc_reply() called */
	bool closing;
	bool closed; /* handles closed; freed once replied (or never served) */
	int pending_closes;
	uv_write_t write;
	char *out;
	struct hv_rpc_conn *next, *prev;
};

struct hv_rpc_call {
	struct hv_rpc *rpc;
	void *dial;          /* the transport's dial, until it reports */
	uv_stream_t *stream; /* then its stream (raft_malloc()ed) */
	uv_write_t write;
	uv_timer_t timer;
	char *out;
	size_t out_len;
	unsigned char hdr[4];
	size_t hdr_got;
	char *body;
	size_t body_len, body_got;
	hv_rpc_call_cb cb;
	void *data;
	bool done;
	int pending_closes;
	struct hv_rpc_call *next, *prev;
};

static void maybe_closed(struct hv_rpc *rpc)
{
	if (rpc->closing && rpc->conns == NULL && rpc->calls == NULL &&
	    rpc->closed_cb != NULL) {
		void (*cb)(struct hv_rpc *) = rpc->closed_cb;
		rpc->closed_cb = NULL;
		cb(rpc);
	}
}

/* Frame a JSON object: 4-byte length + text. Returns malloc()ed bytes. */
static char *frame(struct json_object *obj, size_t *len)
{
	size_t n;
	const char *text =
	    json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &n);
	char *buf;
	uint32_t be;

	if (text == NULL || n > HV_RPC_MAX)
		return NULL;
	buf = malloc(n + 4);
	if (buf == NULL)
		return NULL;
	be = htonl((uint32_t)n);
	memcpy(buf, &be, 4);
	memcpy(buf + 4, text, n);
	*len = n + 4;
	return buf;
}

struct json_object *hv_rpc_parse(const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(32);
	struct json_object *obj;

	if (tok == NULL)
		return NULL;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	                    tok->char_offset != (int)len ||
	                    !json_object_is_type(obj, json_type_object))) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

void hv_rpc_frame_alloc(unsigned char *hdr, size_t hdr_got, char **body, size_t body_len,
                        size_t body_got, uv_buf_t *buf)
{
	if (hdr_got < 4) {
		buf->base = (char *)hdr + hdr_got;
		buf->len = 4 - hdr_got;
	} else {
		buf->base = *body + body_got;
		buf->len = body_len - body_got;
	}
}

int hv_rpc_frame_advance(unsigned char *hdr, size_t *hdr_got, char **body,
                         size_t *body_len, size_t *body_got, size_t n)
{
	if (*hdr_got < 4) {
		uint32_t be;
		*hdr_got += n;
		if (*hdr_got < 4)
			return 0;
		memcpy(&be, hdr, 4);
		*body_len = ntohl(be);
		if (*body_len == 0 || *body_len > HV_RPC_MAX)
			return -1;
		*body = malloc(*body_len);
		if (*body == NULL)
			return -1;
		return 0;
	}
	*body_got += n;
	return *body_got == *body_len ? 1 : 0;
}

/* ---- server side ------------------------------------------------------- */

static void conn_handle_closed(uv_handle_t *h)
{
	struct hv_rpc_conn *c = h->data;

	if (h == (uv_handle_t *)c->stream)
		c->free_handle(c->stream);
	if (--c->pending_closes > 0)
		return;
	HV_LIST_UNLINK(c->rpc->conns, c);
	maybe_closed(c->rpc);
	c->closed = true;
	/* A request still being served keeps its conn until the answer. */
	if (c->served && !c->replied)
		return;
	free(c->body);
	free(c->out);
	free(c);
}

static void conn_close(struct hv_rpc_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->pending_closes = 2;
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)c->stream, conn_handle_closed);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct hv_rpc_conn *c = h->data;

	(void)suggested;
	hv_rpc_frame_alloc(c->hdr, c->hdr_got, &c->body, c->body_len, c->body_got, buf);
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hv_rpc_conn *c = s->data;
	struct json_object *req;
	int rv;

	(void)buf;
	if (n == 0)
		return;
	if (n < 0) {
		conn_close(c);
		return;
	}
	rv = hv_rpc_frame_advance(c->hdr, &c->hdr_got, &c->body, &c->body_len,
	                          &c->body_got, (size_t)n);
	if (rv == 0)
		return;
	uv_read_stop(s);
	uv_timer_stop(&c->timer);
	if (rv < 0 || (req = hv_rpc_parse(c->body, c->body_len)) == NULL) {
		hv_debug("rpc: dropping a malformed request");
		conn_close(c);
		return;
	}
	c->served = true;
	c->rpc->request_cb(c->rpc, c, req);
	json_object_put(req);
}

static void conn_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

void hv_rpc_init(struct hv_rpc *rpc, uv_loop_t *loop, hv_rpc_request_cb cb, void *data)
{
	memset(rpc, 0, sizeof *rpc);
	rpc->loop = loop;
	rpc->request_cb = cb;
	rpc->data = data;
}

static void serve(struct hv_rpc *rpc, uv_stream_t *stream, const struct hv_rpc_peer *peer,
                  void (*free_handle)(void *))
{
	struct hv_rpc_conn *c = calloc(1, sizeof *c);

	if (c == NULL) {
		stream->data = stream;
		uv_close((uv_handle_t *)stream, NULL); /* leaks on OOM only */
		return;
	}
	c->rpc = rpc;
	c->stream = stream;
	c->free_handle = free_handle;
	c->peer = *peer;
	stream->data = c;
	uv_timer_init(rpc->loop, &c->timer);
	c->timer.data = c;
	HV_LIST_LINK(rpc->conns, c);
	if (rpc->closing) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, conn_timeout, HV_RPC_IDLE_MS, 0);
	if (uv_read_start(stream, conn_alloc, conn_read) != 0)
		conn_close(c);
}

void hv_rpc_serve(struct hv_rpc *rpc, uv_stream_t *stream, bool local, bool readonly,
                  void (*free_handle)(void *))
{
	struct hv_rpc_peer peer = {.local = local, .readonly = readonly};
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;

	if (local && uv_fileno((uv_handle_t *)stream, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		peer.uid = cred.uid;
		peer.gid = cred.gid;
	}
	serve(rpc, stream, &peer, free_handle);
}

void hv_rpc_serve_peer(struct hv_rpc *rpc, uv_stream_t *stream, const char *addr,
                       const char *name, uint64_t id, bool enroll,
                       void (*free_handle)(void *))
{
	struct hv_rpc_peer peer = {.local = false, .id = id, .enroll = enroll};

	snprintf(peer.addr, sizeof peer.addr, "%s", addr);
	snprintf(peer.name, sizeof peer.name, "%s", name);
	serve(rpc, stream, &peer, free_handle);
}

const struct hv_rpc_peer *hv_rpc_conn_peer(const struct hv_rpc_conn *c)
{
	return &c->peer;
}

static void conn_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

void hv_rpc_reply(struct hv_rpc_conn *c, struct json_object *resp)
{
	size_t len;
	uv_buf_t b;

	c->replied = true;
	if (c->closing) {
		json_object_put(resp);
		if (c->closed) {
			free(c->body);
			free(c->out);
			free(c);
		}
		return;
	}
	c->out = frame(resp, &len);
	json_object_put(resp);
	if (c->out == NULL) {
		conn_close(c);
		return;
	}
	b = uv_buf_init(c->out, (unsigned)len);
	c->write.data = c;
	if (uv_write(&c->write, c->stream, &b, 1, conn_written) != 0)
		conn_close(c);
}

/* ---- client side ------------------------------------------------------- */

static void call_release(struct hv_rpc_call *call)
{
	if (--call->pending_closes > 0)
		return;
	HV_LIST_UNLINK(call->rpc->calls, call);
	maybe_closed(call->rpc);
	free(call->out);
	free(call->body);
	free(call);
}

static void call_timer_closed(uv_handle_t *h)
{
	call_release(h->data);
}

static void call_stream_closed(uv_handle_t *h)
{
	struct hv_rpc_call *call = h->data;

	raft_free(h);
	call_release(call);
}

/* Fire the callback once, then close. */
static void call_finish(struct hv_rpc_call *call, int status, struct json_object *resp)
{
	if (call->done) {
		json_object_put(resp);
		return;
	}
	call->done = true;
	call->pending_closes = 1;
	uv_close((uv_handle_t *)&call->timer, call_timer_closed);
	if (call->dial != NULL) {
		hv_transport_dial_cancel(call->dial);
		call->dial = NULL;
	}
	if (call->stream != NULL) {
		call->pending_closes++;
		uv_close((uv_handle_t *)call->stream, call_stream_closed);
	}
	call->cb(call->data, status, resp);
	json_object_put(resp);
}

static void call_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct hv_rpc_call *call = h->data;

	(void)suggested;
	hv_rpc_frame_alloc(call->hdr, call->hdr_got, &call->body, call->body_len,
	                   call->body_got, buf);
}

static void call_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hv_rpc_call *call = s->data;
	struct json_object *resp;
	int rv;

	(void)buf;
	if (n == 0 || call->done)
		return;
	if (n < 0) {
		call_finish(call, HV_IO, NULL);
		return;
	}
	rv = hv_rpc_frame_advance(call->hdr, &call->hdr_got, &call->body, &call->body_len,
	                          &call->body_got, (size_t)n);
	if (rv == 0)
		return;
	uv_read_stop(s);
	if (rv < 0 || (resp = hv_rpc_parse(call->body, call->body_len)) == NULL) {
		call_finish(call, HV_PROTO, NULL);
		return;
	}
	call_finish(call, HV_OK, resp);
}

static void call_written(uv_write_t *w, int status)
{
	struct hv_rpc_call *call = w->data;

	if (call->done)
		return;
	if (status != 0) {
		call_finish(call, HV_IO, NULL);
		return;
	}
	if (uv_read_start(call->stream, call_alloc, call_read) != 0)
		call_finish(call, HV_IO, NULL);
}

/* The transport connected (and, with TLS, checked the peer). */
static void call_dialed(void *data, int status, uv_stream_t *stream)
{
	struct hv_rpc_call *call = data;
	uv_buf_t b;

	call->dial = NULL;
	if (status != HV_OK) {
		/* Nothing of the request was sent. */
		call_finish(call, status == HV_SHUTDOWN ? HV_SHUTDOWN : HV_UNREACHABLE,
		            NULL);
		return;
	}
	call->stream = stream;
	stream->data = call;
	b = uv_buf_init(call->out, (unsigned)call->out_len);
	call->write.data = call;
	if (uv_write(&call->write, stream, &b, 1, call_written) != 0)
		call_finish(call, HV_IO, NULL);
}

static void call_timeout(uv_timer_t *t)
{
	call_finish(t->data, HV_TIMEOUT, NULL);
}

void hv_rpc_set_transport(struct hv_rpc *rpc, struct raft_uv_transport *t)
{
	rpc->transport = t;
}

int hv_rpc_call(struct hv_rpc *rpc, const char *address, struct json_object *req,
                unsigned timeout_ms, hv_rpc_call_cb cb, void *data)
{
	struct hv_rpc_call *call;
	struct sockaddr_storage sa;
	int rv;

	if (rpc->closing || rpc->transport == NULL)
		return HV_SHUTDOWN;
	if (hv_sockaddr(address, &sa) != 0)
		return HV_INVAL;
	call = calloc(1, sizeof *call);
	if (call == NULL || (call->out = frame(req, &call->out_len)) == NULL) {
		free(call);
		return HV_NOMEM;
	}
	call->rpc = rpc;
	call->cb = cb;
	call->data = data;
	rv = hv_transport_dial(rpc->transport, address, call_dialed, call, &call->dial);
	if (rv != 0) {
		free(call->out);
		free(call);
		return rv;
	}
	uv_timer_init(rpc->loop, &call->timer);
	call->timer.data = call;
	HV_LIST_LINK(rpc->calls, call);
	uv_timer_start(&call->timer, call_timeout, timeout_ms, 0);
	return 0;
}

void hv_rpc_close(struct hv_rpc *rpc, void (*closed_cb)(struct hv_rpc *rpc))
{
	rpc->closing = true;
	rpc->closed_cb = closed_cb;
	for (struct hv_rpc_conn *c = rpc->conns; c != NULL; c = c->next)
		conn_close(c);
	for (struct hv_rpc_call *call = rpc->calls; call != NULL;) {
		struct hv_rpc_call *next = call->next;
		call_finish(call, HV_SHUTDOWN, NULL);
		call = next;
	}
	maybe_closed(rpc);
}

/* ---- responses --------------------------------------------------------- */

struct json_object *hv_rpc_ok(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

struct json_object *hv_rpc_error(int code, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(hv_errname(code)));
	json_object_object_add(o, "message", json_object_new_string(msg));
	return o;
}

const char *hv_json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool hv_json_bool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

bool hv_json_uint(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return false;
	errno = 0;
	*out = json_object_get_uint64(v);
	return errno == 0;
}

int hv_b64_decode(const char *b64, size_t blen, unsigned char *out, size_t cap,
                  size_t *len)
{
	int dl;

	if (blen % 4 != 0 || blen / 4 * 3 > cap || blen > INT_MAX)
		return -1;
	/* EVP_DecodeBlock skips white space and '-' at either end, which
	 * would leave the '=' padding uncounted below: none of them. */
	for (size_t i = 0; i < blen; i++) {
		char c = b64[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
			return -1;
	}
	dl = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)blen);
	if (dl < 0)
		return -1;
	/* EVP_DecodeBlock counts the '=' padding as zero bytes. */
	if (dl > 0 && b64[blen - 1] == '=')
		dl--;
	if (dl > 0 && blen > 1 && b64[blen - 2] == '=')
		dl--;
	*len = (size_t)dl;
	return 0;
}
