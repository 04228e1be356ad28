/*
 * The transport (node/transport.c) on one libuv loop, plain and with mutual
 * TLS: allow-peers networks; 24 MiB through a tunnel whose reader stops
 * for a while (every byte arrives, in order, and the stall reaches the
 * writer: the tunnel does not buffer it all), then 2 MiB back from a writer
 * that closes at once (every byte before the end); a Raft connect to a server that
 * never completes the TLS handshake, cancelled by close(); a dial cancelled
 * by its caller. Every handle is closed at the end (uv_loop_close() == 0).
 *
 * The TLS cases need certificates: they are made with the hvpeer binary
 * next to this test (hvpeer ca), and skipped when it is not there.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../node/tls.h"
#include "../../node/transport.h"

#define TOTAL (24u * 1024 * 1024)
#define CHUNK (64u * 1024)
#define STALL_MS 300
#define REPLY (2u * 1024 * 1024) /* written, then the writer closes at once */

static char dir[] = "/tmp/hvpeer-transport.XXXXXX";
static char hvpeer[PATH_MAX];

/* ---- allow-peers --------------------------------------------------------- */

static struct sockaddr_storage sa_of(const char *ip)
{
	struct sockaddr_storage sa;

	memset(&sa, 0, sizeof sa);
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return sa;
}

static bool match(const struct hv_cidr *nets, int n, const char *ip)
{
	struct sockaddr_storage sa = sa_of(ip);

	return hv_cidr_match(nets, n, (struct sockaddr *)&sa);
}

static void test_cidr(void **state)
{
	struct hv_cidr nets[4];
	char why[128];
	int n;

	(void)state;
	n = hv_cidr_parse("10.1.0.0/16, 192.168.7.9,fd00::/8", nets, 4, why, sizeof why);
	assert_int_equal(n, 3);
	assert_true(match(nets, n, "10.1.200.3"));
	assert_false(match(nets, n, "10.2.0.1"));
	assert_true(match(nets, n, "192.168.7.9"));
	assert_false(match(nets, n, "192.168.7.8"));
	assert_true(match(nets, n, "fd12::1"));
	assert_false(match(nets, n, "fe80::1"));
	assert_true(match(nets, n, "::ffff:10.1.2.3")); /* IPv4-mapped */
	assert_false(match(nets, 0, "10.1.2.3"));

	n = hv_cidr_parse("10.0.0.0/9", nets, 4, why, sizeof why);
	assert_int_equal(n, 1);
	assert_true(match(nets, n, "10.127.255.255"));
	assert_false(match(nets, n, "10.128.0.0"));
	assert_int_equal(hv_cidr_parse("0.0.0.0/0", nets, 4, why, sizeof why), 1);
	assert_true(match(nets, 1, "203.0.113.5"));
	assert_false(match(nets, 1, "2001:db8::1"));

	assert_int_equal(hv_cidr_parse("", nets, 4, why, sizeof why), 0);
	assert_int_equal(hv_cidr_parse("10.0.0.0/33", nets, 4, why, sizeof why), -1);
	assert_non_null(strstr(why, "0-32"));
	assert_int_equal(hv_cidr_parse("fd00::/129", nets, 4, why, sizeof why), -1);
	assert_int_equal(hv_cidr_parse("10.0.0.0/", nets, 4, why, sizeof why), -1);
	assert_int_equal(hv_cidr_parse("10.0.0.0/8x", nets, 4, why, sizeof why), -1);
	assert_int_equal(hv_cidr_parse("host.example", nets, 4, why, sizeof why), -1);
	assert_non_null(strstr(why, "host.example"));
	assert_int_equal(hv_cidr_parse("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5", nets, 4,
	                               why, sizeof why),
	                 -1);
}

/* ---- a tunnel end to end --------------------------------------------------- */

struct side {
	struct raft_uv_transport t;
	struct hv_tls tls;
	bool tls_on;
	char address[64];
	bool closed;
};

struct run {
	uv_loop_t loop;
	struct side a, b; /* a listens, b dials */
	uv_stream_t *sa, *sb;
	uv_timer_t stall;
	uv_timer_t b_stall; /* b reads the reply only after a while */
	uv_write_t writes[TOTAL / CHUNK];
	unsigned char *data;
	size_t received;
	bool in_order;
	size_t sender_queued; /* b's queue when a starts reading */
	size_t reply_got;     /* of the REPLY bytes a writes back before closing */
	bool reply_eof;
	int dial_status;
	int dial_calls;
	int connect_status;
	int connect_calls;
	int rpc_calls;
};

static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void rpc_cb(void *data, uv_stream_t *stream, const struct hv_transport_peer *peer);

static void side_init(struct run *r, struct side *s, raft_id id, const char *cert_name)
{
	struct hv_transport_config cfg = {.rpc_cb = rpc_cb, .data = r};
	char why[256], cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];

	if (cert_name != NULL) {
		snprintf(cert, sizeof cert, "%s/%s.crt", dir, cert_name);
		snprintf(key, sizeof key, "%s/%s.key", dir, cert_name);
		snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
		assert_int_equal(hv_tls_init(&s->tls, cert, key, ca, "", why, sizeof why),
		                 0);
		s->tls_on = true;
		cfg.tls = &s->tls;
	}
	snprintf(s->address, sizeof s->address, "127.0.0.1:%d", free_port());
	assert_int_equal(hv_transport_init(&s->t, &r->loop, &cfg, why, sizeof why), 0);
	assert_int_equal(s->t.init(&s->t, id, s->address), 0);
}

static void accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
	(void)t;
	(void)id;
	(void)address;
	uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
}

static void stream_closed(uv_handle_t *h)
{
	raft_free(h);
}

static void a_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char mem[CHUNK];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(mem, sizeof mem);
}

static void b_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void b_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* The reply's end reached b's tunnel while b was not reading: what it holds
 * must still come before the end. */
static void b_resume(uv_timer_t *t)
{
	struct run *r = t->data;

	uv_read_start(r->sb, b_alloc, b_read);
}

static void ack_written(uv_write_t *w, int status)
{
	(void)status;
	uv_close((uv_handle_t *)w->handle, stream_closed);
	free(w);
}

static void a_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct run *r = s->data;

	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)buf->base[i] != r->data[r->received + (size_t)i])
			r->in_order = false;
	r->received += (size_t)n;
	if (r->received == TOTAL) {
		uv_write_t *w = malloc(sizeof *w);
		uv_buf_t b = uv_buf_init((char *)r->data, REPLY);
		uv_read_stop(s);
		assert_int_equal(uv_write(w, s, &b, 1, ack_written), 0);
		uv_timer_start(&r->b_stall, b_resume, STALL_MS, 0);
	}
}

static void stall_over(uv_timer_t *t)
{
	struct run *r = t->data;

	r->sender_queued = uv_stream_get_write_queue_size(r->sb);
	uv_read_start(r->sa, a_alloc, a_read);
}

static void rpc_cb(void *data, uv_stream_t *stream, const struct hv_transport_peer *peer)
{
	struct run *r = data;

	r->rpc_calls++;
	if (r->a.tls_on) {
		assert_string_equal(peer->name, "b");
		assert_int_equal(peer->id, 2);
	} else {
		assert_string_equal(peer->name, "");
	}
	assert_string_equal(peer->addr, "127.0.0.1");
	r->sa = stream;
	stream->data = r;
	/* Read nothing for a while: the writer must feel it. */
	uv_timer_start(&r->stall, stall_over, STALL_MS, 0);
}

static void side_closed(struct raft_uv_transport *t)
{
	struct side *s = (struct side *)t;

	s->closed = true;
}

static void close_all(struct run *r)
{
	uv_close((uv_handle_t *)&r->stall, NULL);
	uv_close((uv_handle_t *)&r->b_stall, NULL);
	r->a.t.close(&r->a.t, side_closed);
	r->b.t.close(&r->b.t, side_closed);
}

static void b_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char mem[CHUNK];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(mem, sizeof mem);
}

static void b_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct run *r = s->data;

	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)buf->base[i] != r->data[r->reply_got + (size_t)i])
			r->in_order = false;
	if (n > 0)
		r->reply_got += (size_t)n;
	if (n < 0) {
		r->reply_eof = true;
		uv_close((uv_handle_t *)s, stream_closed);
		close_all(r);
	}
}

static void written(uv_write_t *w, int status)
{
	(void)w;
	assert_int_equal(status, 0);
}

static void dial_cb(void *data, int status, uv_stream_t *stream)
{
	struct run *r = data;

	r->dial_calls++;
	r->dial_status = status;
	assert_int_equal(status, HV_OK);
	r->sb = stream;
	stream->data = r;
	for (unsigned i = 0; i < TOTAL / CHUNK; i++) {
		uv_buf_t b = uv_buf_init((char *)r->data + (size_t)i * CHUNK, CHUNK);
		assert_int_equal(uv_write(&r->writes[i], stream, &b, 1, written), 0);
	}
}

static void run_init(struct run *r, bool tls)
{
	memset(r, 0, sizeof *r);
	assert_int_equal(uv_loop_init(&r->loop), 0);
	uv_timer_init(&r->loop, &r->stall);
	uv_timer_init(&r->loop, &r->b_stall);
	r->stall.data = r;
	r->b_stall.data = r;
	r->in_order = true;
	side_init(r, &r->a, 1, tls ? "a" : NULL);
	side_init(r, &r->b, 2, tls ? "b" : NULL);
}

static void run_done(struct run *r)
{
	assert_true(r->a.closed);
	assert_true(r->b.closed);
	hv_transport_release(&r->a.t);
	hv_transport_release(&r->b.t);
	if (r->a.tls_on) {
		hv_tls_close(&r->a.tls);
		hv_tls_close(&r->b.tls);
	}
	assert_int_equal(uv_loop_close(&r->loop), 0);
}

static void tunnel(bool tls)
{
	struct run *r = malloc(sizeof *r);
	void *handle;

	run_init(r, tls);
	r->data = malloc(TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		r->data[i] = (unsigned char)(i * 2654435761u >> 13);
	assert_int_equal(r->a.t.listen(&r->a.t, accept_cb), 0);
	assert_int_equal(hv_transport_dial(&r->b.t, r->a.address, dial_cb, r, &handle),
	                 0);
	assert_int_equal(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r->dial_calls, 1);
	assert_int_equal(r->rpc_calls, 1);
	assert_int_equal(r->received, TOTAL);
	assert_true(r->in_order);
	/* All of the reply came before the end of the stream. */
	assert_true(r->reply_eof);
	assert_int_equal(r->reply_got, REPLY);
	/* The stall came back to the writer: the tunnel held at most a few
	 * of its high-water marks, not the whole stream. */
	printf("sender queued %zu of %u bytes when the reader resumed\n",
	       r->sender_queued, TOTAL);
	assert_true(r->sender_queued > 0);
	assert_true(TOTAL - r->sender_queued < 16u * 1024 * 1024);
	run_done(r);
	free(r->data);
	free(r);
}

static bool have_certs;

static void test_tunnel_plain(void **state)
{
	(void)state;
	tunnel(false);
}

static void test_tunnel_tls(void **state)
{
	(void)state;
	if (!have_certs)
		skip();
	tunnel(true);
}

/* ---- cancellation ---------------------------------------------------------- */

static void connect_cb(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	struct run *r = req->data;

	assert_null(stream);
	r->connect_calls++;
	r->connect_status = status;
}

static void never_dial_cb(void *data, int status, uv_stream_t *stream)
{
	(void)data;
	(void)status;
	(void)stream;
	fail_msg("a cancelled dial reported");
}

static void closing_soon(uv_timer_t *t)
{
	struct run *r = t->data;

	close_all(r);
}

/* A server that accepts TCP (the kernel's backlog) and never speaks. */
static int mute_server(char *address, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t slen = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
	snprintf(address, len, "127.0.0.1:%d", ntohs(sa.sin_port));
	return fd;
}

static void test_cancel(void **state)
{
	struct run *r = malloc(sizeof *r);
	struct raft_uv_connect req;
	char mute[64];
	int fd = mute_server(mute, sizeof mute);
	void *handle;

	(void)state;
	run_init(r, have_certs);
	/* A dial its caller gives up: its callback never fires. */
	assert_int_equal(hv_transport_dial(&r->b.t, mute, never_dial_cb, r, &handle), 0);
	hv_transport_dial_cancel(handle);
	/* A dial to a bad address fails at once, with no callback. */
	assert_int_equal(hv_transport_dial(&r->b.t, "nowhere", never_dial_cb, r, &handle),
	                 HV_INVAL);
	/* A Raft connect that cannot finish (TLS: the server never answers
	 * the ClientHello; plain: nothing listens there) ends with close(). */
	req.data = r;
	assert_int_equal(r->b.t.connect(&r->b.t, &req, 1,
	                                have_certs ? mute : r->a.address, connect_cb),
	                 0);
	uv_timer_start(&r->stall, closing_soon, 100, 0);
	assert_int_equal(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r->connect_calls, 1);
	assert_int_equal(r->connect_status,
	                 have_certs ? RAFT_CANCELED : RAFT_NOCONNECTION);
	/* After close(), nothing new starts. */
	assert_int_equal(hv_transport_dial(&r->b.t, mute, never_dial_cb, r, &handle),
	                 HV_SHUTDOWN);
	run_done(r);
	free(r);
	close(fd);
}

/* ---- certificates ------------------------------------------------------------ */

static int setup(void **state)
{
	char self[1024], cmd[8 * PATH_MAX];
	ssize_t n;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 0;
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	/* BUILDDIR/tests/unit/test_transport, or its .libs/ */
	snprintf(hvpeer, sizeof hvpeer, "%s/../../hvpeer", self);
	if (access(hvpeer, X_OK) != 0)
		snprintf(hvpeer, sizeof hvpeer, "%s/../../../hvpeer", self);
	if (access(hvpeer, X_OK) != 0)
		hvpeer[0] = '\0';
	if (hvpeer[0] == '\0')
		return 0;
	snprintf(cmd, sizeof cmd,
	         "'%s' ca init --dir %s/ca && '%s' ca issue --dir %s/ca --name a --id 1 "
	         "--out %s/a && '%s' ca issue --dir %s/ca --name b --id 2 --out %s/b",
	         hvpeer, dir, hvpeer, dir, dir, hvpeer, dir, dir);
	have_certs = system(cmd) == 0;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_tunnel_plain),
	    cmocka_unit_test(test_tunnel_tls),
	    cmocka_unit_test(test_cancel),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
