/*
 * Committing a command from any node, and the fencing check.
 *
 * hv_node_commit(): on the leader the command is proposed directly; on a
 * follower it is sent to the leader as {"op": "commit", "cmd": base64 of
 * the msgpack encoding}, which the leader decodes (strictly, as any replica
 * would) and proposes. The callback gets the state machine's verdict.
 *
 * hv_node_fence(): a linearizable check that `name` holds the lease with
 * `token`, that the cluster is not paused and, for a patch phase's side
 * effect, that `name` is still in that phase: the leader runs a barrier,
 * so that its state machine holds every committed entry, then looks. (A
 * token stays the same for a whole cycle: a host whose own replica lags
 * behind, after a restart, would otherwise redo the side effect of a phase
 * that is over, a second reboot say.) A leader that predates the phase
 * ignores it.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../patchfsm/cycle.h"
#include "node.h"

struct hv_commit {
	struct hv_node *n;
	hv_propose_cb cb;
	void *data;
	char name[HV_NAME_MAX + 1];
	uint64_t token;
	/* committed by the leader, waiting for this node's apply */
	uint64_t index, deadline_ms; /* deadline: monotonic */
	struct hv_commit *next;
};

static int code_of(struct json_object *resp)
{
	struct json_object *v;
	int code;

	if (json_object_object_get_ex(resp, "ok", &v) && json_object_get_boolean(v))
		return HV_OK;
	if (!json_object_object_get_ex(resp, "error", &v))
		return HV_PROTO;
	code = hv_errcode(json_object_get_string(v));
	return code < 0 ? HV_PROTO : code;
}

static uint64_t u64_of(struct json_object *resp, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(resp, key, &v) ? json_object_get_uint64(v) : 0;
}

static void commit_answered(void *data, int status, struct json_object *resp)
{
	struct hv_commit *c = data;
	struct hv_node *n = c->n;
	int rc = status == HV_OK ? code_of(resp) : status;

	c->index = status == HV_OK ? u64_of(resp, "index") : 0;
	c->token = status == HV_OK ? u64_of(resp, "token") : 0;
	if (rc == HV_OK && !n->stopping && c->index > n->state.last_index) {
		/* The leader applied it, this node not yet: a caller that
		 * reads the state next must find its own write there. */
		c->deadline_ms = hv_mono_ms() + n->cfg.rpc_timeout_ms;
		c->next = n->commit_waits;
		n->commit_waits = c;
		return;
	}
	c->cb(n, c->data, rc, c->index, c->token);
	free(c);
}

void hv_node_commit_waits(struct hv_node *n, bool stopping)
{
	uint64_t now = hv_mono_ms();
	struct hv_commit **pp = &n->commit_waits, *c;

	while ((c = *pp) != NULL) {
		bool applied = c->index <= n->state.last_index;
		if (!stopping && !applied && now < c->deadline_ms) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (!stopping && !applied)
			hv_debug("commit at index %llu not applied here after %u ms: "
			         "answering anyway",
			         (unsigned long long)c->index, n->cfg.rpc_timeout_ms);
		c->cb(n, c->data, stopping ? HV_SHUTDOWN : HV_OK, c->index, c->token);
		free(c);
		pp = &n->commit_waits; /* the callback may have changed the list */
	}
}

int hv_node_commit(struct hv_node *n, struct hv_cmd *cmd, hv_propose_cb cb, void *data)
{
	struct json_object *req;
	struct hv_commit *c;
	const char *leader;
	unsigned char *b64;
	void *buf;
	size_t len;
	int rv;

	if (hv_node_is_leader(n))
		return hv_node_propose(n, cmd, cb, data);
	leader = hv_node_leader_address(n, NULL);
	if (leader == NULL)
		return HV_NOQUORUM;
	cmd->time_ms = hv_now_ms();
	rv = hv_cmd_encode(cmd, NULL, &buf, &len);
	if (rv != HV_OK)
		return rv;
	b64 = malloc(4 * ((len + 2) / 3) + 1);
	c = calloc(1, sizeof *c);
	if (b64 == NULL || c == NULL) {
		free(buf);
		free(b64);
		free(c);
		return HV_NOMEM;
	}
	EVP_EncodeBlock(b64, buf, (int)len);
	free(buf);
	c->n = n;
	c->cb = cb;
	c->data = data;
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("commit"));
	json_object_object_add(req, "forwarded", json_object_new_boolean(1));
	json_object_object_add(req, "cmd", json_object_new_string((char *)b64));
	free(b64);
	rv = hv_rpc_call(&n->rpc, leader, req, n->cfg.rpc_timeout_ms, commit_answered, c);
	json_object_put(req);
	if (rv != 0) {
		free(c);
		return rv;
	}
	return HV_OK;
}

/* ---- the leader's side ------------------------------------------------- */

struct pending {
	struct hv_node *n;
	struct hv_rpc_conn *conn;
	char name[HV_NAME_MAX + 1];
	uint64_t token;
};

static void committed(struct hv_node *n, void *data, int rc, uint64_t index,
                      uint64_t token)
{
	struct pending *p = data;
	struct json_object *o =
	    rc == HV_OK ? hv_rpc_ok() : hv_rpc_error(rc, "%s", hv_strerror(rc));

	(void)n;
	json_object_object_add(o, "index", json_object_new_uint64(index));
	json_object_object_add(o, "token", json_object_new_uint64(token));
	hv_rpc_reply(p->conn, o);
	free(p);
}

void hv_ops_commit(struct hv_node *n, struct hv_rpc_conn *c, const char *b64)
{
	size_t blen = strlen(b64), len;
	unsigned char *buf;
	struct hv_cmd *cmd;
	struct pending *p;
	int rv;

	if (blen == 0 || blen % 4 != 0 || blen > 4 * ((HV_CMD_MAX + 2) / 3)) {
		hv_rpc_reply(c, hv_rpc_error(HV_MALFORMED, "commit: bad encoding"));
		return;
	}
	buf = malloc(blen / 4 * 3 + 1);
	cmd = malloc(sizeof *cmd);
	p = calloc(1, sizeof *p);
	if (buf == NULL || cmd == NULL || p == NULL) {
		free(buf);
		free(cmd);
		free(p);
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
		return;
	}
	rv = hv_b64_decode(b64, blen, buf, blen / 4 * 3, &len) != 0
	         ? HV_MALFORMED
	         : hv_cmd_decode(buf, len, cmd);
	free(buf);
	if (rv == HV_OK &&
	    (cmd->type == HV_CMD_MEMBER_ADD || cmd->type == HV_CMD_MEMBER_ROLE ||
	     cmd->type == HV_CMD_MEMBER_REMOVE || cmd->type == HV_CMD_SETTINGS))
		rv = HV_INVAL; /* membership goes through join and the leader */
	if (rv != HV_OK) {
		hv_rpc_reply(c, hv_rpc_error(rv, "commit: %s", hv_strerror(rv)));
		free(cmd);
		free(p);
		return;
	}
	p->n = n;
	p->conn = c;
	rv = hv_node_propose(n, cmd, committed, p);
	free(cmd);
	if (rv != HV_OK) {
		hv_rpc_reply(c, hv_rpc_error(rv, "commit: %s", hv_strerror(rv)));
		free(p);
	}
}

/* ---- fencing ----------------------------------------------------------- */

struct fence {
	struct hv_node *n;
	hv_barrier_cb cb;
	void *data;
	char name[HV_NAME_MAX + 1];
	uint64_t token;
	int phase; /* -1: any */
};

static int fence_verdict(struct hv_node *n, const char *name, uint64_t token, int phase)
{
	const struct hv_holder *h = hv_state_holder(&n->state, name);
	const struct hv_member *m;

	if (h == NULL)
		return HV_NOTHOLDER;
	if (h->token != token)
		return HV_BADTOKEN;
	if (n->state.paused)
		return HV_PAUSED;
	if (phase >= 0 &&
	    ((m = hv_state_member(&n->state, name)) == NULL || m->cycle != phase))
		return HV_PHASE;
	return HV_OK;
}

static void fence_barrier(struct hv_node *n, void *data, int rc)
{
	struct fence *f = data;

	f->cb(n, f->data,
	      rc == HV_OK ? fence_verdict(n, f->name, f->token, f->phase) : rc);
	free(f);
}

static void fence_answered(void *data, int status, struct json_object *resp)
{
	struct fence *f = data;

	f->cb(f->n, f->data, status == HV_OK ? code_of(resp) : status);
	free(f);
}

int hv_node_fence(struct hv_node *n, const char *name, uint64_t token, int phase,
                  hv_barrier_cb cb, void *data)
{
	struct fence *f = calloc(1, sizeof *f);
	const char *leader;
	int rv;

	if (f == NULL)
		return HV_NOMEM;
	f->n = n;
	f->cb = cb;
	f->data = data;
	snprintf(f->name, sizeof f->name, "%s", name);
	f->token = token;
	f->phase = phase;
	if (hv_node_is_leader(n)) {
		rv = hv_node_barrier(n, fence_barrier, f);
	} else if ((leader = hv_node_leader_address(n, NULL)) == NULL) {
		rv = HV_NOQUORUM;
	} else {
		struct json_object *req = json_object_new_object();
		json_object_object_add(req, "op", json_object_new_string("fence"));
		json_object_object_add(req, "forwarded", json_object_new_boolean(1));
		json_object_object_add(req, "name", json_object_new_string(name));
		json_object_object_add(req, "token", json_object_new_uint64(token));
		if (phase >= 0)
			json_object_object_add(
			    req, "phase", json_object_new_string(hv_phase_name(phase)));
		rv = hv_rpc_call(&n->rpc, leader, req, n->cfg.rpc_timeout_ms,
		                 fence_answered, f);
		json_object_put(req);
	}
	if (rv != HV_OK)
		free(f);
	return rv;
}

static void fence_reply(struct hv_node *n, void *data, int rc)
{
	struct hv_rpc_conn *c = data;

	(void)n;
	hv_rpc_reply(c, rc == HV_OK ? hv_rpc_ok()
	                            : hv_rpc_error(rc, "fence: %s", hv_strerror(rc)));
}

void hv_ops_fence(struct hv_node *n, struct hv_rpc_conn *c, const char *name,
                  uint64_t token, int phase)
{
	int rv;

	if (!hv_node_is_leader(n)) {
		hv_rpc_reply(
		    c, hv_rpc_error(HV_NOTLEADER, "fence: not the leader any more"));
		return;
	}
	rv = hv_node_fence(n, name, token, phase, fence_reply, c);
	if (rv != HV_OK)
		hv_rpc_reply(c, hv_rpc_error(rv, "fence: %s", hv_strerror(rv)));
}
