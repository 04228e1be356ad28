/*
 * One TCP port for Raft and for peer RPC: a raft_uv_transport of our own.
 *
 * Every connection opens with an 8-byte magic. "HVRAFT01" is followed by the
 * connecting server's Raft id (8 bytes, big endian), the length of its
 * address (1 byte) and the address padded to 63 bytes; the stream is then
 * handed to libraft. "HVRPC001" hands the stream to the peer RPC server.
 * Anything else, or a handshake not complete within 5 s, is closed.
 *
 * The handshake is read with buffers sized to exactly what remains of it, so
 * no byte that follows it (Raft or RPC data) is consumed here.
 *
 * Streams given to libraft are allocated with raft_malloc(): libraft frees
 * them with raft_free() after closing them. close() stops the listener,
 * cancels pending connects (their callbacks fire with RAFT_CANCELED) and
 * drops pending handshakes, then fires its own callback.
 */
#ifndef HV_TRANSPORT_H
#define HV_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define HV_MAGIC_RAFT "HVRAFT01"
#define HV_MAGIC_RPC "HVRPC001"
#define HV_MAGIC_LEN 8

/* Called with an accepted RPC stream (a uv_tcp_t from raft_malloc()),
 * positioned after the magic. The callee owns it and frees it with
 * raft_free() after uv_close(). */
typedef void (*hv_transport_rpc_cb)(void *data, uv_stream_t *stream);

/* Initialise t as a raft_uv_transport on loop. */
int hv_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      hv_transport_rpc_cb rpc_cb, void *rpc_data);

/* Release what init allocated, after close() completed. */
void hv_transport_release(struct raft_uv_transport *t);

/* Parse "a.b.c.d:port" or "[v6]:port" into a sockaddr. */
int hv_sockaddr(const char *address, struct sockaddr_storage *sa);

#endif
