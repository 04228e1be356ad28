/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * One TCP port for Raft and for peer RPC: a raft_uv_transport of our own,
 * plain or mutual TLS 1.3.
 *
 * Every connection is a tunnel: this module owns the TCP stream and gives
 * its user (libraft, or the RPC code) one end of an AF_UNIX socketpair. It
 * copies bytes between the two, through OpenSSL (memory BIOs) when TLS is
 * on, and stops reading one side while the other has more than
 * HV_TRANSPORT_HIGH_WATER bytes queued (backpressure).
 *
 * A connection opens (after the TLS handshake, inside it) with a preamble:
 * an 8-byte magic. "HVRAFT01" is followed by the connecting server's Raft id
 * (8 bytes, big endian), the length of its address (1 byte) and the address
 * padded to 63 bytes; the tunnel is then handed to libraft. "HVRPC001" hands
 * it to the peer RPC server. Anything else, a handshake or preamble not
 * complete within 5 s, or (TLS) a certificate that fails verification is
 * refused and the reason logged. With TLS, the Raft id a connection claims
 * must be the one its certificate carries, and a connection we make to
 * server ID must reach a certificate for ID: a valid certificate that claims
 * another node's identity is refused.
 *
 * Happy path (outbound): TCP connect -> TLS handshake -> the peer's identity
 * checked -> preamble written -> the socketpair end handed over. Failure
 * modes: the connect callback fires with RAFT_NOCONNECTION (the dial
 * callback with HV_UNREACHABLE when the TCP connection could not be made,
 * HV_IO otherwise), or RAFT_CANCELED/HV_SHUTDOWN when close() came first.
 *
 * Streams handed over are uv_pipe_t allocated with raft_malloc(): their user
 * closes them and frees them with raft_free(). When the network side of an
 * open Raft tunnel ends (the peer closed it or died), gone_cb names the
 * peer: a hint that a leader may be gone (node.c). close() stops the
 * listener, cancels pending connects and dials and closes every tunnel,
 * then fires its own callback.
 */
#ifndef HV_TRANSPORT_H
#define HV_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"

#define HV_MAGIC_RAFT "HVRAFT01"
#define HV_MAGIC_RPC "HVRPC001"
#define HV_MAGIC_LEN 8
#define HV_TRANSPORT_HIGH_WATER (1024 * 1024)

struct hv_tls;

/* Who is at the other end of a connection. */
struct hv_transport_peer {
	char addr[64];              /* remote IP address */
	char name[HV_NAME_MAX + 1]; /* TLS: its certificate's node name, else "" */
	uint64_t id;                /* TLS: its certificate's Raft id, else 0 */
	bool enroll;                /* a new host asking for its certificate (enroll.h) */
};

/* Called with an accepted RPC stream. The callee owns it and frees it with
 * raft_free() after uv_close(). */
typedef void (*hv_transport_rpc_cb)(void *data, uv_stream_t *stream,
                                    const struct hv_transport_peer *peer);

/* The network side of an open Raft connection with server id ended. */
typedef void (*hv_transport_gone_cb)(void *data, raft_id id);

/* A dial's outcome: status HV_OK with a stream the callee owns (as above),
 * or an error (HV_UNREACHABLE, HV_IO, HV_SHUTDOWN) and no stream. */
typedef void (*hv_transport_dial_cb)(void *data, int status, uv_stream_t *stream);

struct hv_transport_config {
	struct hv_tls *tls; /* NULL: plain TCP */
	hv_transport_rpc_cb rpc_cb;
	hv_transport_gone_cb gone_cb;
	void *data; /* for the callbacks */
	/* Peer connections accepted only from these networks
	 * ("10.0.0.0/8,fd00::/8"; "" = from anywhere). */
	const char *allow;
};

/* Initialise t as a raft_uv_transport on loop. 0, or -1 with why. */
int hv_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      const struct hv_transport_config *cfg, char *why, size_t whylen);

/* Release what init allocated, after close() completed. */
void hv_transport_release(struct raft_uv_transport *t);

/* Open an RPC connection to address. 0 and cb fires once, later (unless
 * cancelled), or an error code and it never fires. *handle identifies the
 * dial until cb fires. */
int hv_transport_dial(struct raft_uv_transport *t, const char *address,
                      hv_transport_dial_cb cb, void *data, void **handle);

/* After a TLS reload: check every established connection's peer again
 * (hv_tls_recheck) and close those that no longer pass, with the reason
 * logged. Returns how many were closed. */
int hv_transport_recheck(struct raft_uv_transport *t);

/* Give up a dial whose callback has not fired: it never will. */
void hv_transport_dial_cancel(void *handle);

/* Parse "a.b.c.d:port" or "[v6]:port" into a sockaddr. */
int hv_sockaddr(const char *address, struct sockaddr_storage *sa);

/* Networks: parse a comma-separated list of CIDRs ("10.0.0.0/8", "::1",
 * "fd00::/8") into at most max entries. Returns the count, or -1 with why. */
struct hv_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};
int hv_cidr_parse(const char *list, struct hv_cidr *out, int max, char *why,
                  size_t whylen);
/* Whether sa falls in one of the n networks (an IPv4-mapped IPv6 address
 * counts as IPv4). */
bool hv_cidr_match(const struct hv_cidr *nets, int n, const struct sockaddr *sa);

#endif
