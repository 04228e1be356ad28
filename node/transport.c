/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/list.h"
#include "../lib/log.h"
#include "tls.h"
#include "enroll.h"
#include "transport.h"

#define PREAMBLE_LEN (HV_MAGIC_LEN + 8 + 1 + 63)
#define HANDSHAKE_TIMEOUT_MS 5000
#define READ_CHUNK 65536
#define TLS_CHUNK 16384
#define LOW_WATER (HV_TRANSPORT_HIGH_WATER / 4)
#define MAX_ALLOW 32

enum cstate {
	C_CONNECTING, /* outbound: TCP connect in flight */
	C_TLS,        /* TLS handshake */
	C_PREAMBLE,   /* inbound: reading the preamble */
	C_OPEN,       /* handed over: copying */
	C_DRAINING,   /* the user closed its end: flushing, then shutdown */
	C_CLOSING,
};

enum ckind { K_UNKNOWN, K_RAFT, K_RPC };

struct impl;

/* One TCP connection and, once open, the socketpair end we keep. */
struct conn {
	struct impl *impl;
	enum cstate state;
	enum ckind kind;
	bool outbound;
	uv_tcp_t tcp;
	uv_pipe_t pipe; /* valid when pipe_open */
	uv_timer_t timer;
	uv_connect_t connect;
	uv_shutdown_t shutdown;
	SSL *ssl; /* NULL: plain */
	BIO *rbio, *wbio;
	raft_id id; /* Raft: claimed (inbound) or expected (outbound) */
	struct hv_transport_peer peer;
	unsigned char pre[PREAMBLE_LEN + 1]; /* + the address's NUL */
	size_t pre_want, pre_got;
	bool pipe_open, tcp_paused, pipe_paused, connected, got_bytes;
	int handles; /* handles not closed yet */
	int fail;    /* outbound: HV_* reported when it closes unopened */
	/* outbound completion: one of these, cleared once reported */
	struct raft_uv_connect *req;
	hv_transport_dial_cb dial_cb;
	void *dial_data;
	struct conn *next, *prev;
};

struct wreq {
	uv_write_t w;
	struct conn *c;
	char *base; /* freed when written */
};

struct impl {
	uv_loop_t *loop;
	raft_id id;
	char address[HV_ADDR_MAX + 1];
	struct hv_transport_config cfg;
	struct hv_cidr allow[MAX_ALLOW];
	int n_allow;
	uv_tcp_t listener;
	bool listening;
	raft_uv_accept_cb accept_cb;
	struct conn *conns;
	bool closing;
	int pending;
	struct raft_uv_transport *t;
	raft_uv_transport_close_cb close_cb;
};

static void maybe_closed(struct impl *impl)
{
	if (impl->closing && impl->pending == 0 && impl->conns == NULL &&
	    impl->close_cb != NULL) {
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

/* ---- networks ---------------------------------------------------------- */

int hv_cidr_parse(const char *list, struct hv_cidr *out, int max, char *why,
                  size_t whylen)
{
	char buf[1024], *save = NULL, *tok;
	int n = 0;

	if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) {
		snprintf(why, whylen, "the network list is too long");
		return -1;
	}
	for (tok = strtok_r(buf, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		struct hv_cidr *c = &out[n];
		char *slash = strchr(tok, '/'), *end;
		unsigned long bits;
		if (n == max) {
			snprintf(why, whylen, "more than %d networks", max);
			return -1;
		}
		if (slash != NULL)
			*slash = '\0';
		memset(c, 0, sizeof *c);
		if (inet_pton(AF_INET, tok, c->addr) == 1) {
			c->family = AF_INET;
			c->bits = 32;
		} else if (inet_pton(AF_INET6, tok, c->addr) == 1) {
			c->family = AF_INET6;
			c->bits = 128;
		} else {
			snprintf(why, whylen, "'%s' is not an IPv4 or IPv6 address", tok);
			return -1;
		}
		if (slash != NULL) {
			errno = 0;
			bits = strtoul(slash + 1, &end, 10);
			if (errno != 0 || end == slash + 1 || *end != '\0' ||
			    bits > c->bits) {
				snprintf(why, whylen,
				         "'%s/%s': the prefix length must be 0-%u", tok,
				         slash + 1, c->bits);
				return -1;
			}
			c->bits = (unsigned)bits;
		}
		n++;
	}
	return n;
}

static bool prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

bool hv_cidr_match(const struct hv_cidr *nets, int n, const struct sockaddr *sa)
{
	unsigned char a4[4], a6[16];
	bool v4 = false, v6 = false;

	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in4;
		memcpy(&in4, sa, sizeof in4);
		memcpy(a4, &in4.sin_addr, 4);
		v4 = true;
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof in6);
		memcpy(a6, &in6.sin6_addr, 16);
		v6 = true;
		if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
			memcpy(a4, a6 + 12, 4);
			v4 = true;
		}
	}
	for (int i = 0; i < n; i++) {
		if (nets[i].family == AF_INET && v4 &&
		    prefix_eq(a4, nets[i].addr, nets[i].bits))
			return true;
		if (nets[i].family == AF_INET6 && v6 &&
		    prefix_eq(a6, nets[i].addr, nets[i].bits))
			return true;
	}
	return false;
}

/* ---- closing ----------------------------------------------------------- */

static void report_failure(struct conn *c)
{
	struct impl *impl = c->impl;
	int status = impl->closing ? HV_SHUTDOWN : c->fail != HV_OK ? c->fail : HV_IO;

	if (c->req != NULL) {
		struct raft_uv_connect *req = c->req;
		c->req = NULL;
		req->cb(req, NULL,
		        status == HV_SHUTDOWN ? RAFT_CANCELED : RAFT_NOCONNECTION);
	} else if (c->dial_cb != NULL) {
		hv_transport_dial_cb cb = c->dial_cb;
		c->dial_cb = NULL;
		cb(c->dial_data, status, NULL);
	}
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct impl *impl = c->impl;

	if (--c->handles > 0)
		return;
	/* Unopened outbound connections report here, never synchronously
	 * from the call that started them. */
	report_failure(c);
	SSL_free(c->ssl); /* frees both BIOs */
	HV_LIST_UNLINK(impl->conns, c);
	free(c);
	maybe_closed(impl);
}

static void conn_log(const struct conn *c, int level, const char *why)
{
	const char *who = c->peer.name[0] != '\0' ? c->peer.name : c->peer.addr;

	if (why == NULL)
		return;
	if (level == HV_LOG_WARN)
		hv_warn("transport: connection %s %s: %s", c->outbound ? "to" : "from",
		        who, why);
	else
		hv_debug("transport: connection %s %s closed: %s",
		         c->outbound ? "to" : "from", who, why);
}

/* Close everything; why (if any) is logged. Idempotent. */
static void conn_close(struct conn *c, int level, const char *why)
{
	if (c->state == C_CLOSING)
		return;
	conn_log(c, level, why);
	c->state = C_CLOSING;
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
	if (c->pipe_open)
		uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
}

static void shutdown_done(uv_shutdown_t *req, int status);

/* The network side ended or failed. */
static void net_gone_at(struct conn *c, int level, const char *why)
{
	struct impl *impl = c->impl;

	if (c->state == C_CLOSING)
		return;
	if (c->state == C_OPEN && c->kind == K_RAFT && impl->cfg.gone_cb != NULL &&
	    !impl->closing)
		impl->cfg.gone_cb(impl->cfg.data, c->id);
	if (c->state == C_OPEN && !impl->closing) {
		/* What arrived before the end is the user's: the pipe takes it
		 * all (shutdown waits for the queued writes), then we close. */
		conn_log(c, level, why);
		c->state = C_DRAINING;
		uv_read_stop((uv_stream_t *)&c->tcp);
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->shutdown.data = c;
		if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, shutdown_done) ==
		    0)
			return;
		why = NULL; /* said */
	}
	conn_close(c, level, why);
}

static void net_gone(struct conn *c, const char *why)
{
	net_gone_at(c, HV_LOG_DEBUG, why);
}

/* ---- writing ----------------------------------------------------------- */

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void alloc_chunk(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(READ_CHUNK);
	buf->len = buf->base != NULL ? READ_CHUNK : 0;
}

static size_t queued(uv_stream_t *s)
{
	return uv_stream_get_write_queue_size(s);
}

static void net_written(uv_write_t *w, int status)
{
	struct wreq *r = w->data;
	struct conn *c = r->c;

	free(r->base);
	free(r);
	if (c->state == C_CLOSING)
		return;
	if (status != 0) {
		net_gone(c, uv_strerror(status));
		return;
	}
	if (c->pipe_paused && c->state == C_OPEN &&
	    queued((uv_stream_t *)&c->tcp) < LOW_WATER) {
		c->pipe_paused = false;
		uv_read_start((uv_stream_t *)&c->pipe, alloc_chunk, pipe_read);
	}
}

/* Write len bytes at data (inside base, which is freed once written). */
static void net_write(struct conn *c, char *base, const char *data, size_t len)
{
	struct wreq *r;
	uv_buf_t b;

	if (c->state == C_CLOSING || (r = malloc(sizeof *r)) == NULL) {
		free(base);
		if (c->state != C_CLOSING)
			net_gone(c, "out of memory");
		return;
	}
	r->c = c;
	r->base = base;
	r->w.data = r;
	b = uv_buf_init((char *)data, (unsigned)len);
	if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, net_written) != 0) {
		free(base);
		free(r);
		net_gone(c, "write failed");
		return;
	}
	if (c->pipe_open && !c->pipe_paused && c->state == C_OPEN &&
	    queued((uv_stream_t *)&c->tcp) > HV_TRANSPORT_HIGH_WATER) {
		c->pipe_paused = true;
		uv_read_stop((uv_stream_t *)&c->pipe);
	}
}

/* TLS: send what OpenSSL has queued for the network. */
static void tls_flush(struct conn *c)
{
	size_t pending;
	char *buf;
	int n;

	while (c->ssl != NULL && (pending = BIO_ctrl_pending(c->wbio)) > 0) {
		if ((buf = malloc(pending)) == NULL) {
			net_gone(c, "out of memory");
			return;
		}
		n = BIO_read(c->wbio, buf, (int)pending);
		if (n <= 0) {
			free(buf);
			return;
		}
		net_write(c, buf, buf, (size_t)n);
	}
}

/* Send plaintext to the peer (base is freed once sent). */
static void send_plain(struct conn *c, char *base, const char *data, size_t len)
{
	if (c->ssl == NULL) {
		net_write(c, base, data, len);
		return;
	}
	if (len > 0 && SSL_write(c->ssl, data, (int)len) <= 0) {
		char why[256];
		hv_tls_error(c->ssl, SSL_ERROR_SSL, why, sizeof why);
		free(base);
		net_gone(c, why);
		return;
	}
	free(base);
	tls_flush(c);
}

static void pipe_written(uv_write_t *w, int status)
{
	struct wreq *r = w->data;
	struct conn *c = r->c;

	free(r->base);
	free(r);
	if (c->state == C_CLOSING || c->state == C_DRAINING)
		return;
	if (status != 0) {
		conn_close(c, HV_LOG_DEBUG, "local end closed");
		return;
	}
	if (c->tcp_paused && queued((uv_stream_t *)&c->pipe) < LOW_WATER) {
		c->tcp_paused = false;
		uv_read_start((uv_stream_t *)&c->tcp, alloc_chunk, tcp_read);
	}
}

/* Hand received plaintext to the user's end (base is freed once written). */
static void pipe_write(struct conn *c, char *base, const char *data, size_t len)
{
	struct wreq *r;
	uv_buf_t b;

	if (len == 0 || c->state != C_OPEN || (r = malloc(sizeof *r)) == NULL) {
		free(base);
		return;
	}
	r->c = c;
	r->base = base;
	r->w.data = r;
	b = uv_buf_init((char *)data, (unsigned)len);
	if (uv_write(&r->w, (uv_stream_t *)&c->pipe, &b, 1, pipe_written) != 0) {
		free(base);
		free(r);
		conn_close(c, HV_LOG_DEBUG, "local end closed");
		return;
	}
	if (!c->tcp_paused && queued((uv_stream_t *)&c->pipe) > HV_TRANSPORT_HIGH_WATER) {
		c->tcp_paused = true;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

/* ---- the user's end ---------------------------------------------------- */

static void shutdown_done(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	(void)status;
	conn_close(c, HV_LOG_DEBUG, NULL);
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (n == 0) {
		free(buf->base);
		return;
	}
	if (n < 0) {
		/* The user closed its end: send what is queued, then go. */
		free(buf->base);
		if (c->state != C_OPEN)
			return;
		uv_read_stop(s);
		c->state = C_DRAINING;
		if (c->ssl != NULL) {
			SSL_shutdown(c->ssl); /* close_notify */
			tls_flush(c);
		}
		c->shutdown.data = c;
		if (c->state == C_DRAINING &&
		    uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, shutdown_done) != 0)
			conn_close(c, HV_LOG_DEBUG, NULL);
		return;
	}
	send_plain(c, buf->base, buf->base, (size_t)n);
}

/* Make the socketpair: our end is read, the other is returned (raft_malloc). */
static uv_stream_t *open_pipe(struct conn *c)
{
	struct impl *impl = c->impl;
	uv_pipe_t *user;
	int fds[2];

	if ((user = raft_malloc(sizeof *user)) == NULL)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		raft_free(user);
		return NULL;
	}
	uv_pipe_init(impl->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->pipe_open = true;
	c->handles++;
	uv_pipe_init(impl->loop, user, 0);
	if (uv_pipe_open(&c->pipe, fds[0]) != 0) {
		close(fds[0]);
		close(fds[1]);
		uv_close((uv_handle_t *)user, (uv_close_cb)raft_free);
		return NULL;
	}
	if (uv_pipe_open(user, fds[1]) != 0) {
		close(fds[1]);
		uv_close((uv_handle_t *)user, (uv_close_cb)raft_free);
		return NULL;
	}
	uv_read_start((uv_stream_t *)&c->pipe, alloc_chunk, pipe_read);
	return (uv_stream_t *)user;
}

/* ---- opening ----------------------------------------------------------- */

/* Open the tunnel and hand the user's end over. */
static void conn_open(struct conn *c)
{
	struct impl *impl = c->impl;
	uv_stream_t *user = open_pipe(c);

	if (user == NULL) {
		c->fail = HV_IO;
		conn_close(c, HV_LOG_WARN, "out of file descriptors or memory");
		return;
	}
	uv_timer_stop(&c->timer);
	c->state = C_OPEN;
	if (c->req != NULL) {
		struct raft_uv_connect *req = c->req;
		c->req = NULL;
		req->cb(req, user, 0);
	} else if (c->dial_cb != NULL) {
		hv_transport_dial_cb cb = c->dial_cb;
		c->dial_cb = NULL;
		cb(c->dial_data, HV_OK, user);
	} else if (c->kind == K_RAFT) {
		impl->accept_cb(impl->t, c->id, (const char *)c->pre + HV_MAGIC_LEN + 9,
		                user);
	} else {
		impl->cfg.rpc_cb(impl->cfg.data, user, &c->peer);
	}
}

/* Outbound, connected and (TLS) verified: send the preamble, open. */
static void outbound_ready(struct conn *c)
{
	size_t len = c->kind == K_RAFT ? PREAMBLE_LEN : HV_MAGIC_LEN;
	char *p = malloc(len);

	if (p == NULL) {
		conn_close(c, HV_LOG_DEBUG, "out of memory");
		return;
	}
	memcpy(p, c->pre, len);
	send_plain(c, p, p, len);
	if (c->state != C_CLOSING)
		conn_open(c);
}

/* Inbound: the preamble is complete (or its magic is). */
static void preamble_done(struct conn *c)
{
	struct impl *impl = c->impl;
	uint64_t id;
	size_t alen;

	if (c->pre_want == HV_MAGIC_LEN) {
		if (memcmp(c->pre, HV_MAGIC_RAFT, HV_MAGIC_LEN) == 0) {
			c->kind = K_RAFT;
			c->pre_want = PREAMBLE_LEN;
			return;
		}
		if (memcmp(c->pre, HV_MAGIC_RPC, HV_MAGIC_LEN) == 0 &&
		    impl->cfg.rpc_cb != NULL) {
			c->kind = K_RPC;
			conn_open(c);
			return;
		}
		if (memcmp(c->pre, HV_MAGIC_JOIN, HV_MAGIC_LEN) == 0 &&
		    impl->cfg.rpc_cb != NULL) {
			/* Plaintext: the RPC side serves it `enroll` only. */
			c->kind = K_RPC;
			c->peer.enroll = true;
			conn_open(c);
			return;
		}
		conn_close(c, HV_LOG_WARN,
		           c->pre[0] == 0x16
		               ? "refused: a TLS handshake, but this node runs "
		                 "without TLS (no tls-cert set)"
		               : "refused: not an hvpeer connection");
		return;
	}
	memcpy(&id, c->pre + HV_MAGIC_LEN, 8);
	id = be64toh(id);
	alen = c->pre[HV_MAGIC_LEN + 8];
	if (id == 0 || alen == 0 || alen > HV_ADDR_MAX) {
		conn_close(c, HV_LOG_WARN, "refused: a bad Raft preamble");
		return;
	}
	if (c->ssl != NULL && id != c->peer.id) {
		char why[256];
		snprintf(why, sizeof why,
		         "refused: it claims Raft id %llu but its certificate is for %s "
		         "(id %llu)",
		         (unsigned long long)id, c->peer.name,
		         (unsigned long long)c->peer.id);
		conn_close(c, HV_LOG_WARN, why);
		return;
	}
	c->id = id;
	c->pre[HV_MAGIC_LEN + 9 + alen] = '\0';
	conn_open(c);
}

/* Received plaintext (inside base, which this frees or passes on). */
static void plain_in(struct conn *c, char *base, const char *data, size_t len)
{
	while (c->state == C_PREAMBLE && len > 0) {
		size_t take = c->pre_want - c->pre_got;
		if (take > len)
			take = len;
		memcpy(c->pre + c->pre_got, data, take);
		c->pre_got += take;
		data += take;
		len -= take;
		if (c->pre_got == c->pre_want)
			preamble_done(c);
	}
	if (c->state == C_OPEN && len > 0)
		pipe_write(c, base, data, len);
	else
		free(base);
}

/* TLS: the handshake is done; check who is at the other end. */
static void tls_verified(struct conn *c)
{
	char why[256];

	if (hv_tls_peer(c->ssl, c->peer.name, sizeof c->peer.name, &c->peer.id, why,
	                sizeof why) != 0) {
		c->fail = HV_IO;
		conn_close(c, HV_LOG_WARN, why);
		return;
	}
	if (!c->outbound) {
		c->state = C_PREAMBLE;
		return;
	}
	if (c->kind == K_RAFT && c->peer.id != c->id) {
		snprintf(why, sizeof why,
		         "refused: it presented a certificate for %s (id %llu), not for "
		         "Raft id %llu",
		         c->peer.name, (unsigned long long)c->peer.id,
		         (unsigned long long)c->id);
		c->fail = HV_IO;
		conn_close(c, HV_LOG_WARN, why);
		return;
	}
	outbound_ready(c);
}

/* TLS: feed OpenSSL what arrived and take out what it decrypted. */
static void tls_in(struct conn *c)
{
	char why[256];
	int r, e;

	if (c->state == C_TLS) {
		r = SSL_do_handshake(c->ssl);
		tls_flush(c);
		if (c->state == C_CLOSING)
			return;
		if (r != 1) {
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				return;
			hv_tls_error(c->ssl, e, why, sizeof why);
			c->fail = HV_IO;
			conn_close(c, HV_LOG_WARN, why);
			return;
		}
		tls_verified(c);
	}
	while (c->state == C_PREAMBLE || c->state == C_OPEN || c->state == C_DRAINING) {
		char *buf = malloc(TLS_CHUNK);
		if (buf == NULL) {
			net_gone(c, "out of memory");
			return;
		}
		r = SSL_read(c->ssl, buf, TLS_CHUNK);
		if (r <= 0) {
			free(buf);
			e = SSL_get_error(c->ssl, r);
			tls_flush(c);
			if (e == SSL_ERROR_WANT_READ)
				return;
			if (e == SSL_ERROR_ZERO_RETURN)
				snprintf(why, sizeof why, "closed by the peer");
			else
				hv_tls_error(c->ssl, e, why, sizeof why);
			/* A TLS alert (say, the peer refused our certificate)
			 * is worth a warning; a peer closing is not. */
			net_gone_at(c,
			            c->state == C_PREAMBLE || e == SSL_ERROR_SSL
			                ? HV_LOG_WARN
			                : HV_LOG_DEBUG,
			            why);
			return;
		}
		plain_in(c, buf, buf, (size_t)r);
	}
}

static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (n == 0) {
		free(buf->base);
		return;
	}
	if (n < 0) {
		free(buf->base);
		if (c->state == C_PREAMBLE || (c->state == C_TLS && !c->outbound))
			conn_close(c, c->got_bytes ? HV_LOG_WARN : HV_LOG_DEBUG,
			           "closed before its handshake was complete");
		else
			net_gone(c, n == UV_EOF ? "closed by the peer"
			                        : uv_strerror((int)n));
		return;
	}
	if (c->state == C_CLOSING) {
		free(buf->base);
		return;
	}
	if (c->ssl == NULL) {
		c->got_bytes = true;
		plain_in(c, buf->base, buf->base, (size_t)n);
		return;
	}
	if (!c->got_bytes && !c->outbound && n >= HV_MAGIC_LEN &&
	    (memcmp(buf->base, HV_MAGIC_RAFT, HV_MAGIC_LEN) == 0 ||
	     memcmp(buf->base, HV_MAGIC_RPC, HV_MAGIC_LEN) == 0)) {
		free(buf->base);
		conn_close(
		    c, HV_LOG_WARN,
		    "refused: a plaintext hvpeer connection, but this node requires TLS "
		    "(is tls-cert set on the peer?)");
		return;
	}
	if (!c->got_bytes && !c->outbound && n >= HV_MAGIC_LEN &&
	    memcmp(buf->base, HV_MAGIC_JOIN, HV_MAGIC_LEN) == 0) {
		/* A new host without a certificate yet: no TLS (enroll.h). */
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->state = C_PREAMBLE;
		c->got_bytes = true;
		plain_in(c, buf->base, buf->base, (size_t)n);
		return;
	}
	c->got_bytes = true;
	BIO_write(c->rbio, buf->base, (int)n);
	free(buf->base);
	tls_in(c);
}

static void handshake_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	c->fail = c->connected ? HV_IO : HV_UNREACHABLE;
	conn_close(c, c->outbound ? HV_LOG_DEBUG : HV_LOG_WARN, "handshake timed out");
}

static struct conn *conn_new(struct impl *impl, bool outbound)
{
	struct conn *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	if (impl->cfg.tls != NULL) {
		c->ssl = SSL_new(impl->cfg.tls->ctx);
		c->rbio = BIO_new(BIO_s_mem());
		c->wbio = BIO_new(BIO_s_mem());
		if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			SSL_free(c->ssl);
			free(c);
			ERR_clear_error();
			return NULL;
		}
		SSL_set_bio(c->ssl, c->rbio, c->wbio);
		if (outbound)
			SSL_set_connect_state(c->ssl);
		else
			SSL_set_accept_state(c->ssl);
	}
	c->impl = impl;
	c->outbound = outbound;
	c->state = outbound ? C_CONNECTING : c->ssl != NULL ? C_TLS : C_PREAMBLE;
	c->pre_want = HV_MAGIC_LEN;
	c->fail = HV_OK;
	uv_tcp_init(impl->loop, &c->tcp);
	uv_timer_init(impl->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles = 2;
	HV_LIST_LINK(impl->conns, c);
	uv_timer_start(&c->timer, handshake_timeout, HANDSHAKE_TIMEOUT_MS, 0);
	return c;
}

static void peer_addr(struct conn *c)
{
	struct sockaddr_storage sa;
	int len = sizeof sa;

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) != 0)
		return;
	if (sa.ss_family == AF_INET)
		uv_ip4_name((struct sockaddr_in *)&sa, c->peer.addr, sizeof c->peer.addr);
	else
		uv_ip6_name((struct sockaddr_in6 *)&sa, c->peer.addr,
		            sizeof c->peer.addr);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct impl *impl = server->data;
	struct sockaddr_storage sa;
	int len = sizeof sa;
	struct conn *c;

	if (status != 0 || impl->closing)
		return;
	if ((c = conn_new(impl, false)) == NULL)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c, HV_LOG_DEBUG, "accept failed");
		return;
	}
	peer_addr(c);
	if (impl->n_allow > 0 &&
	    (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) != 0 ||
	     !hv_cidr_match(impl->allow, impl->n_allow, (struct sockaddr *)&sa))) {
		conn_close(c, HV_LOG_WARN, "refused: its address is not in allow-peers");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_chunk, tcp_read);
}

/* ---- outbound ---------------------------------------------------------- */

static void outbound_connected(uv_connect_t *req, int status)
{
	struct conn *c = req->data;

	if (c->state == C_CLOSING)
		return;
	if (status != 0) {
		c->fail = HV_UNREACHABLE;
		conn_close(c, HV_LOG_DEBUG, uv_strerror(status));
		return;
	}
	c->connected = true;
	uv_read_start((uv_stream_t *)&c->tcp, alloc_chunk, tcp_read);
	if (c->ssl == NULL) {
		outbound_ready(c);
		return;
	}
	c->state = C_TLS;
	tls_in(c); /* the ClientHello */
}

static struct conn *outbound(struct impl *impl, const char *address, enum ckind kind,
                             int *err)
{
	struct sockaddr_storage sa;
	struct conn *c;

	if (impl->closing) {
		*err = HV_SHUTDOWN;
		return NULL;
	}
	if (hv_sockaddr(address, &sa) != 0) {
		*err = HV_INVAL;
		return NULL;
	}
	if ((c = conn_new(impl, true)) == NULL) {
		*err = HV_NOMEM;
		return NULL;
	}
	c->kind = kind;
	snprintf(c->peer.addr, sizeof c->peer.addr, "%s", address);
	if (kind == K_RAFT) {
		uint64_t be = htobe64(impl->id);
		size_t alen = strlen(impl->address);
		memcpy(c->pre, HV_MAGIC_RAFT, HV_MAGIC_LEN);
		memcpy(c->pre + HV_MAGIC_LEN, &be, 8);
		c->pre[HV_MAGIC_LEN + 8] = (unsigned char)alen;
		memcpy(c->pre + HV_MAGIC_LEN + 9, impl->address, alen);
	} else {
		memcpy(c->pre, HV_MAGIC_RPC, HV_MAGIC_LEN);
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->connect.data = c;
	if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&sa,
	                   outbound_connected) != 0) {
		/* Reported asynchronously, once the handles are closed. */
		c->fail = HV_UNREACHABLE;
		conn_close(c, HV_LOG_DEBUG, "connect failed");
	}
	*err = HV_OK;
	return c;
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                     const char *address, raft_uv_connect_cb cb)
{
	struct impl *impl = t->impl;
	struct conn *c;
	int err;

	req->cb = cb;
	c = outbound(impl, address, K_RAFT, &err);
	if (c == NULL)
		return err == HV_SHUTDOWN ? RAFT_CANCELED
		       : err == HV_NOMEM  ? RAFT_NOMEM
		                          : RAFT_NOCONNECTION;
	c->id = id;
	c->req = req;
	return 0;
}

int hv_transport_dial(struct raft_uv_transport *t, const char *address,
                      hv_transport_dial_cb cb, void *data, void **handle)
{
	struct conn *c;
	int err;

	c = outbound(t->impl, address, K_RPC, &err);
	if (c == NULL)
		return err;
	c->dial_cb = cb;
	c->dial_data = data;
	*handle = c;
	return 0;
}

int hv_transport_recheck(struct raft_uv_transport *t)
{
	struct impl *impl = t->impl;
	char why[300], msg[360];
	int closed = 0;

	if (impl->cfg.tls == NULL)
		return 0;
	/* conn_close() frees nothing before the loop runs: next stays valid. */
	for (struct conn *c = impl->conns; c != NULL; c = c->next) {
		if (c->ssl == NULL || c->state == C_CONNECTING || c->state == C_TLS ||
		    c->state == C_CLOSING)
			continue;
		if (hv_tls_recheck(impl->cfg.tls, c->ssl, why, sizeof why) == 0)
			continue;
		snprintf(msg, sizeof msg, "closed after a reload: %s", why);
		conn_close(c, HV_LOG_WARN, msg);
		closed++;
	}
	return closed;
}

void hv_transport_dial_cancel(void *handle)
{
	struct conn *c = handle;

	c->dial_cb = NULL;
	conn_close(c, HV_LOG_DEBUG, NULL);
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
	for (struct conn *c = impl->conns; c != NULL; c = c->next)
		conn_close(c, HV_LOG_DEBUG, NULL);
	maybe_closed(impl);
}

int hv_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      const struct hv_transport_config *cfg, char *why, size_t whylen)
{
	struct impl *impl = calloc(1, sizeof *impl);

	if (impl == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	impl->loop = loop;
	impl->cfg = *cfg;
	impl->cfg.allow = NULL;
	if (cfg->allow != NULL && cfg->allow[0] != '\0') {
		impl->n_allow =
		    hv_cidr_parse(cfg->allow, impl->allow, MAX_ALLOW, why, whylen);
		if (impl->n_allow < 0) {
			free(impl);
			return -1;
		}
	}
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
