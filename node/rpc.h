/*
 * Request/response messages for the control socket and the peer RPC.
 *
 * A message is a 4-byte big-endian length and that many bytes of JSON (at
 * most HV_RPC_MAX). A connection carries one request and one response, then
 * closes. On TCP the request is preceded by the transport's RPC magic.
 *
 * Happy path (server): bytes arrive -> the frame is complete -> the JSON is
 * parsed -> request_cb(conn, req) -> later hv_rpc_reply(conn, resp) writes
 * the answer and closes. Failure modes: an oversized or unparsable frame, or
 * no complete request within HV_RPC_IDLE_MS, closes the connection without
 * an answer; a peer that hangs up while its request is being served gets no
 * answer and the connection is freed after the reply is dropped.
 *
 * Happy path (client): the transport dials (TCP, TLS, the RPC magic) ->
 * write the frame -> read the answer -> cb(HV_OK, resp). Failure modes:
 * cb(HV_UNREACHABLE) when the connection cannot be made (nothing was sent), cb(HV_IO)
 * when writing or reading fails, cb(HV_TIMEOUT) after timeout_ms, cb(HV_SHUTDOWN) when
 * the server object is closed first. The callback fires exactly once when hv_rpc_call()
 * returned 0, and never otherwise.
 */
#ifndef HV_RPC_H
#define HV_RPC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HV_RPC_MAX (1u << 20)
#define HV_RPC_IDLE_MS 10000

struct hv_rpc;
struct hv_rpc_conn;

typedef void (*hv_rpc_request_cb)(struct hv_rpc *rpc, struct hv_rpc_conn *c,
                                  struct json_object *req);
typedef void (*hv_rpc_call_cb)(void *data, int status, struct json_object *resp);

struct hv_rpc {
	uv_loop_t *loop;
	hv_rpc_request_cb request_cb;
	void *data;
	bool closing;
	struct hv_rpc_conn *conns;
	struct hv_rpc_call *calls;
	void (*closed_cb)(struct hv_rpc *rpc);
	int pending;
	struct raft_uv_transport *transport; /* dials peers (transport.h) */
};

/* Who sent a request. */
struct hv_rpc_peer {
	bool local; /* control socket (else a peer over TCP) */
	uid_t uid;  /* control socket: the client's uid */
	gid_t gid;
	char addr[64]; /* TCP: the remote address */
	char name[64]; /* TLS: the node name its certificate carries, else "" */
	uint64_t id;   /* TLS: the Raft id its certificate carries, else 0 */
	bool enroll;   /* a new host asking for its certificate (enroll.h) */
	bool readonly; /* the read-only control socket: reads only */
};

void hv_rpc_init(struct hv_rpc *rpc, uv_loop_t *loop, hv_rpc_request_cb cb, void *data);

/*
 * Serve one request on stream, which this module now owns: it is closed and
 * then freed with free_handle (free for control socket clients; local: the
 * client's uid and gid are read with SO_PEERCRED). readonly: it came through
 * the read-only socket.
 */
void hv_rpc_serve(struct hv_rpc *rpc, uv_stream_t *stream, bool local, bool readonly,
                  void (*free_handle)(void *));

/* Serve one request from a peer (a transport stream: freed with
 * free_handle, raft_free); addr, name and id say who it is (name "" and id 0
 * without TLS). */
void hv_rpc_serve_peer(struct hv_rpc *rpc, uv_stream_t *stream, const char *addr,
                       const char *name, uint64_t id, bool enroll,
                       void (*free_handle)(void *));

const struct hv_rpc_peer *hv_rpc_conn_peer(const struct hv_rpc_conn *c);

/* Answer c and close it. Takes ownership of resp. Call exactly once. */
void hv_rpc_reply(struct hv_rpc_conn *c, struct json_object *resp);

/* The transport hv_rpc_call() dials through; set before the first call. */
struct raft_uv_transport;
void hv_rpc_set_transport(struct hv_rpc *rpc, struct raft_uv_transport *t);

/* Send req (not consumed) to the peer at address ("ip:port"). */
int hv_rpc_call(struct hv_rpc *rpc, const char *address, struct json_object *req,
                unsigned timeout_ms, hv_rpc_call_cb cb, void *data);

/* Close every connection and cancel every call; closed_cb fires when all
 * handles are closed. */
void hv_rpc_close(struct hv_rpc *rpc, void (*closed_cb)(struct hv_rpc *rpc));

/* Build the common response shape: {"ok": bool, "error": NAME, "message"}. */
struct json_object *hv_rpc_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct json_object *hv_rpc_ok(void);

/* Fields of a request or an answer: the string (NULL when absent or not a
 * string), the boolean (false when absent), the unsigned integer (false
 * when absent or not one). */
const char *hv_json_str(struct json_object *o, const char *key);
bool hv_json_bool(struct json_object *o, const char *key);
bool hv_json_uint(struct json_object *o, const char *key, uint64_t *out);

/* Decode base64 (as EVP_EncodeBlock writes it, padding included: a
 * multiple of 4 characters of [A-Za-z0-9+/=]) into out, which holds cap
 * bytes. Returns 0 with the decoded length in *len, or -1 when b64 is
 * malformed or decodes to more than cap bytes. */
int hv_b64_decode(const char *b64, size_t blen, unsigned char *out, size_t cap,
                  size_t *len);

/*
 * The frame decoder both sides run, apart from the sockets (fuzz/fuzz_rpc.c
 * feeds it). hv_rpc_frame_alloc points buf at what to read next: into hdr
 * until its 4 bytes are in, then into *body, sized to exactly what is
 * missing, so no byte past the frame is consumed. hv_rpc_frame_advance
 * accounts n bytes just read there: 1 when the frame is complete, 0 when
 * more is needed, -1 on a bad frame (a length of 0 or above HV_RPC_MAX, or
 * no memory). It allocates *body (malloc) once the length is known; the
 * caller frees it, whatever the result.
 */
void hv_rpc_frame_alloc(unsigned char *hdr, size_t hdr_got, char **body, size_t body_len,
                        size_t body_got, uv_buf_t *buf);
int hv_rpc_frame_advance(unsigned char *hdr, size_t *hdr_got, char **body,
                         size_t *body_len, size_t *body_got, size_t n);

/* Parse a frame's body (len bytes, not '\0'-terminated): exactly one JSON
 * object and nothing after it, or NULL. The caller puts the result. */
struct json_object *hv_rpc_parse(const char *body, size_t len);

#endif
