/*
 * Membership: joining, and the leader's reconciliation of the Raft
 * configuration with the member list in the replicated state.
 *
 * Join (leader side): [remove the old id of a member rejoining with a wiped
 * data dir] -> raft_add (spare) -> raft_assign standby (it now replicates
 * the log) -> commit MEMBER_ADD -> answer. libraft allows one configuration
 * change at a time: a join that finds one in flight is refused with FULL and
 * the joiner retries. Promotion to voter happens in reconcile, for standbys
 * that report, up to max-voters; libraft catches the standby up before it
 * counts as a voter.
 *
 * Join (joiner side): every JOIN_RETRY_MS, ask the next --join peer (which
 * forwards to the leader) until one answers ok; then the node is a member
 * and remembers it in its data dir.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "node.h"

#define JOIN_RETRY_MS 500

void hv_node_mark_joined(struct hv_node *n);
void hv_node_join_cancel(struct hv_node *n);

struct join_op {
	struct raft_change change;
	struct hv_node *n;
	struct hv_rpc_conn *conn;
	char name[HV_NAME_MAX + 1];
	char address[HV_ADDR_MAX + 1];
	raft_id id;
	int step;
};

static void join_finish(struct join_op *op, struct json_object *resp)
{
	op->n->change_busy = false;
	hv_rpc_reply(op->conn, resp);
	free(op);
}

static void join_committed(struct hv_node *n, void *data, int rc, uint64_t index,
                           uint64_t token)
{
	struct join_op *op = data;

	(void)token;
	if (rc != HV_OK) {
		join_finish(
		    op, hv_rpc_error(rc, "join of %s: recording the member failed: %s",
		                     op->name, hv_strerror(rc)));
		return;
	}
	hv_info("member %s (id %llu, %s) joined at index %llu", op->name,
	        (unsigned long long)op->id, op->address, (unsigned long long)index);
	join_finish(op, hv_rpc_ok());
}

static void join_record(struct join_op *op)
{
	struct hv_cmd cmd = {.type = HV_CMD_MEMBER_ADD, .role = HV_ROLE_STANDBY};
	int role = hv_node_raft_role(op->n, op->id);
	int rc;

	if (role >= 0)
		cmd.role = role;
	cmd.id = op->id;
	snprintf(cmd.name, sizeof cmd.name, "%s", op->name);
	snprintf(cmd.address, sizeof cmd.address, "%s", op->address);
	rc = hv_node_propose(op->n, &cmd, join_committed, op);
	if (rc != HV_OK)
		join_finish(
		    op, hv_rpc_error(rc, "join of %s: %s", op->name, hv_strerror(rc)));
}

static void join_step(struct raft_change *req, int status);

static void join_next(struct join_op *op)
{
	struct hv_node *n = op->n;
	int rv = 0;

	op->change.data = op;
	switch (op->step++) {
	case 0: {
		/* A member rejoining under a new id (its data dir was wiped)
		 * first loses its old id: it forgot its term and vote. */
		struct hv_member *m = hv_state_member(&n->state, op->name);
		if (m != NULL && m->id != op->id && hv_node_raft_role(n, m->id) >= 0) {
			hv_info("member %s rejoins under a new id: removing old id %llu",
			        op->name, (unsigned long long)m->id);
			rv = raft_remove(&n->raft, &op->change, m->id, join_step);
			break;
		}
	}
		__attribute__((fallthrough));
	case 1:
		op->step = 2;
		if (hv_node_raft_role(n, op->id) < 0) {
			rv = raft_add(&n->raft, &op->change, op->id, op->address,
			              join_step);
			break;
		}
		__attribute__((fallthrough));
	case 2:
		op->step = 3;
		if (hv_node_raft_role(n, op->id) == RAFT_SPARE) {
			rv = raft_assign(&n->raft, &op->change, op->id, RAFT_STANDBY,
			                 join_step);
			break;
		}
		__attribute__((fallthrough));
	default:
		join_record(op);
		return;
	}
	if (rv != 0)
		join_finish(op,
		            hv_rpc_error(HV_RAFT,
		                         "join of %s: configuration change refused: %s",
		                         op->name, raft_strerror(rv)));
}

static void join_step(struct raft_change *req, int status)
{
	struct join_op *op = req->data;

	if (status != 0) {
		join_finish(
		    op,
		    hv_rpc_error(status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST
		                     ? HV_NOQUORUM
		                     : HV_RAFT,
		                 "join of %s: configuration change failed: %s", op->name,
		                 raft_strerror(status)));
		return;
	}
	join_next(op);
}

void hv_membership_join(struct hv_node *n, struct hv_rpc_conn *c, const char *name,
                        raft_id id, const char *address)
{
	struct join_op *op;

	for (unsigned i = 0; i < n->raft.configuration.n; i++) {
		const struct raft_server *s = &n->raft.configuration.servers[i];
		struct hv_member *m = hv_state_member_by_id(&n->state, s->id);
		if (s->id != id && strcmp(s->address, address) == 0 &&
		    (m == NULL || strcmp(m->name, name) != 0)) {
			hv_rpc_reply(
			    c, hv_rpc_error(
			           HV_EXISTS,
			           "address %s is already used by member %s (id %llu)",
			           address, m != NULL ? m->name : "?",
			           (unsigned long long)s->id));
			return;
		}
	}
	if (n->change_busy) {
		hv_rpc_reply(
		    c, hv_rpc_error(HV_FULL,
		                    "another membership change is in progress; retry"));
		return;
	}
	op = calloc(1, sizeof *op);
	if (op == NULL) {
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
		return;
	}
	op->n = n;
	op->conn = c;
	op->id = id;
	snprintf(op->name, sizeof op->name, "%s", name);
	snprintf(op->address, sizeof op->address, "%s", address);
	n->change_busy = true;
	join_next(op);
}

/* ---- reconcile --------------------------------------------------------- */

struct promote_op {
	struct raft_change change;
	struct hv_node *n;
	raft_id id;
	int role;
};

static void reconcile_done(struct hv_node *n, void *data, int rc, uint64_t index,
                           uint64_t token)
{
	(void)data;
	(void)index;
	(void)token;
	n->reconcile_busy = false;
	if (rc != HV_OK && rc != HV_SHUTDOWN)
		hv_debug("reconcile: %s", hv_strerror(rc));
}

static void reconcile_propose(struct hv_node *n, struct hv_cmd *cmd)
{
	n->reconcile_busy = true;
	if (hv_node_propose(n, cmd, reconcile_done, NULL) != HV_OK)
		n->reconcile_busy = false;
}

static void assigned(struct raft_change *req, int status)
{
	struct promote_op *op = req->data;
	const char *to = op->role == RAFT_VOTER ? "voter" : "standby";

	op->n->change_busy = false;
	if (status != 0)
		hv_warn("changing id %llu to %s failed: %s", (unsigned long long)op->id,
		        to, raft_strerror(status));
	else
		hv_info("id %llu is a %s now", (unsigned long long)op->id, to);
	free(op);
}

static bool assign(struct hv_node *n, raft_id id, int role)
{
	struct promote_op *op = calloc(1, sizeof *op);

	if (op == NULL)
		return false;
	op->n = n;
	op->id = id;
	op->role = role;
	op->change.data = op;
	n->change_busy = true;
	if (raft_assign(&n->raft, &op->change, id, role, assigned) != 0) {
		n->change_busy = false;
		free(op);
		return false;
	}
	return true;
}

/* Has the server reported lately (this node always has)? A dead standby
 * promoted would count towards quorum without voting. */
static bool server_up(struct hv_node *n, raft_id id, uint64_t now)
{
	const struct hv_member *m = hv_state_member_by_id(&n->state, id);

	if (id == n->id)
		return true;
	return m != NULL && !m->removed && m->report_ms + hv_node_stale_ms(n) >= now;
}

/*
 * Keep max-voters voters that are up. Below the count, or with a voter down
 * (rebooting for its patch, or dead), promote a standby that is up; above
 * it, demote a voter that is down to standby (it comes back as one). One
 * change at a time: each runs after the previous one committed.
 */
static bool balance_roles(struct hv_node *n)
{
	const struct raft_configuration *conf = &n->raft.configuration;
	uint64_t now = hv_node_lead_now_ms(n);
	unsigned voters = 0, up = 0;

	for (unsigned i = 0; i < conf->n; i++)
		if (conf->servers[i].role == RAFT_VOTER) {
			voters++;
			if (server_up(n, conf->servers[i].id, now))
				up++;
		}
	if (voters > n->cfg.max_voters && up >= n->cfg.max_voters)
		for (unsigned i = 0; i < conf->n; i++) {
			const struct raft_server *s = &conf->servers[i];
			if (s->role == RAFT_VOTER && !server_up(n, s->id, now)) {
				hv_info("voter id %llu is down and %u others are up: "
				        "demoted to standby",
				        (unsigned long long)s->id, up);
				return assign(n, s->id, RAFT_STANDBY);
			}
		}
	if (voters >= n->cfg.max_voters && up >= n->cfg.max_voters)
		return false;
	if (voters >= n->cfg.max_voters + 1)
		return false; /* one spare voter at most while one is down */
	for (unsigned i = 0; i < conf->n; i++) {
		const struct raft_server *s = &conf->servers[i];
		if (s->role != RAFT_STANDBY || !server_up(n, s->id, now))
			continue;
		if (voters >= n->cfg.max_voters)
			hv_info("%u of %u voters up: promoting standby id %llu", up,
			        voters, (unsigned long long)s->id);
		return assign(n, s->id, RAFT_VOTER);
	}
	return false;
}

/*
 * libraft (seen with 0.22.1) can leave a follower's
 * configuration_uncommitted_index set to a configuration entry it has
 * already applied: when it learns the entry is committed before its own copy
 * is stored. Elected leader, such a node refuses every configuration change
 * (RAFT_CANTCHANGE) for ever: no promotion, no join. An entry at or below
 * the commit index is committed, whatever the flag says; the leader puts the
 * fields back the way libraft keeps a committed configuration (its header's
 * scenario 2: the current configuration, which is that entry's, copied as
 * the committed one).
 */
static void unstick_committed_configuration(struct hv_node *n)
{
	struct raft *r = &n->raft;
	struct raft_configuration copy;
	raft_index idx = r->configuration_uncommitted_index;

	if (idx == 0 || idx > raft_commit_index(r) || idx > raft_last_applied(r))
		return;
	raft_configuration_init(&copy);
	for (unsigned i = 0; i < r->configuration.n; i++)
		if (raft_configuration_add(&copy, r->configuration.servers[i].id,
		                           r->configuration.servers[i].address,
		                           r->configuration.servers[i].role) != 0) {
			raft_configuration_close(&copy);
			return;
		}
	hv_warn("raft: the configuration at index %llu is committed (commit index %llu) "
	        "but was still marked uncommitted: marked committed",
	        (unsigned long long)idx, (unsigned long long)raft_commit_index(r));
	raft_configuration_close(&r->configuration_committed);
	r->configuration_committed = copy;
	r->configuration_committed_index = idx;
	r->configuration_uncommitted_index = 0;
}

void hv_membership_reconcile(struct hv_node *n)
{
	struct hv_member *self;

	if (n->change_busy || n->reconcile_busy || n->stopping)
		return;
	unstick_committed_configuration(n);
	/* The raft configuration must be committed before we compare. */
	if (n->raft.configuration_uncommitted_index != 0 ||
	    raft_last_applied(&n->raft) < raft_commit_index(&n->raft))
		return;

	self = hv_state_member(&n->state, n->cfg.name);
	if (self == NULL || self->id != n->id || self->removed) {
		struct hv_cmd cmd = {.type = HV_CMD_MEMBER_ADD};
		if (n->state.n_members == 0 &&
		    n->cfg.max_concurrent != n->state.max_concurrent) {
			struct hv_cmd set = {.type = HV_CMD_SETTINGS,
			                     .max_concurrent = n->cfg.max_concurrent};
			reconcile_propose(n, &set);
			return;
		}
		cmd.id = n->id;
		cmd.role = hv_node_raft_role(n, n->id);
		if (cmd.role < 0)
			return;
		snprintf(cmd.name, sizeof cmd.name, "%s", n->cfg.name);
		snprintf(cmd.address, sizeof cmd.address, "%s", n->cfg.listen);
		reconcile_propose(n, &cmd);
		return;
	}
	for (unsigned i = 0; i < n->state.n_members; i++) {
		struct hv_member *m = &n->state.members[i];
		int role;
		if (m->removed)
			continue;
		role = hv_node_raft_role(n, m->id);
		if (role < 0) {
			struct hv_cmd cmd = {.type = HV_CMD_MEMBER_REMOVE, .id = m->id};
			reconcile_propose(n, &cmd);
			return;
		}
		if (role != m->role) {
			struct hv_cmd cmd = {
			    .type = HV_CMD_MEMBER_ROLE, .id = m->id, .role = role};
			reconcile_propose(n, &cmd);
			return;
		}
	}
	balance_roles(n);
}

/* ---- joiner side ------------------------------------------------------- */

struct hv_join {
	struct hv_node *n;
	uv_timer_t timer;
	unsigned next;
	bool in_flight;
	unsigned attempts;
};

static void join_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void join_stop(struct hv_node *n)
{
	struct hv_join *j = n->join;

	if (j == NULL)
		return;
	n->join = NULL;
	uv_close((uv_handle_t *)&j->timer, join_timer_closed);
}

void hv_node_join_cancel(struct hv_node *n)
{
	join_stop(n);
}

static void join_answered(void *data, int status, struct json_object *resp)
{
	struct hv_node *n = data;
	struct hv_join *j = n->join;
	struct json_object *ok, *msg;

	if (j == NULL)
		return; /* cancelled */
	j->in_flight = false;
	if (status == HV_OK && json_object_object_get_ex(resp, "ok", &ok) &&
	    json_object_get_boolean(ok)) {
		hv_info("joined the cluster through %s",
		        n->cfg.join[(j->next + n->cfg.n_join - 1) % n->cfg.n_join]);
		hv_node_mark_joined(n);
		join_stop(n);
		return;
	}
	if (status == HV_OK && json_object_object_get_ex(resp, "message", &msg))
		hv_warn("join: %s", json_object_get_string(msg));
	else
		hv_warn("join: peer %s: %s",
		        n->cfg.join[(j->next + n->cfg.n_join - 1) % n->cfg.n_join],
		        hv_strerror(status));
}

static void join_try(uv_timer_t *t)
{
	struct hv_join *j = t->data;
	struct hv_node *n = j->n;
	struct json_object *req;
	const char *peer;

	if (j->in_flight)
		return;
	peer = n->cfg.join[j->next];
	j->next = (j->next + 1) % n->cfg.n_join;
	j->attempts++;
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("join"));
	json_object_object_add(req, "name", json_object_new_string(n->cfg.name));
	json_object_object_add(req, "id", json_object_new_uint64(n->id));
	json_object_object_add(req, "address", json_object_new_string(n->cfg.listen));
	if (hv_rpc_call(&n->rpc, peer, req, n->cfg.rpc_timeout_ms, join_answered, n) == 0)
		j->in_flight = true;
	else
		hv_warn("join: cannot ask %s", peer);
	json_object_put(req);
}

void hv_node_join_start(struct hv_node *n)
{
	struct hv_join *j;

	if (n->cfg.n_join == 0) {
		hv_error("this node is not a member yet and has no --join peer to ask");
		return;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL)
		return;
	j->n = n;
	uv_timer_init(n->loop, &j->timer);
	j->timer.data = j;
	n->join = j;
	uv_timer_start(&j->timer, join_try, 0, JOIN_RETRY_MS);
}
