/*
 * Requests from the control socket and from peers.
 *
 * Reads (status) are answered by the leader after a barrier, so that its
 * state machine holds every committed entry; a follower forwards them and
 * relays the answer. When no leader answers within rpc-timeout, the node
 * answers from its own replica and says that there is no quorum.
 *
 * Writes (pause, resume, lease ..., join) are committed through the
 * leader: a follower forwards them once ("forwarded": true stops loops) and
 * relays the answer. Without a leader they are refused with NOQUORUM and
 * nothing changes.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../patchfsm/cycle.h"
#include "../migrate/placement.h"
#include "access.h"
#include "enroll.h"
#include "maint.h"
#include "node.h"
#include "patch.h"
#include "policy.h"

struct op_ctx {
	struct hv_node *n;
	struct hv_rpc_conn *conn;
	struct hv_cmd cmd;
};

static void fmt_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static unsigned voters(struct hv_node *n)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n->raft.configuration.n; i++)
		if (n->raft.configuration.servers[i].role == RAFT_VOTER)
			v++;
	return v;
}

static struct json_object *no_quorum(struct hv_node *n, const char *what)
{
	unsigned v = voters(n);

	if (v == 0)
		return hv_rpc_error(HV_NOQUORUM,
		                    "%s refused: %s is not a member of a cluster yet "
		                    "(still joining?); nothing was changed",
		                    what, n->cfg.name);
	return hv_rpc_error(
	    HV_NOQUORUM,
	    "%s refused: no quorum: no leader is elected, so nothing can be committed "
	    "until %u of the %u voters are up and connected; nothing was changed",
	    what, v / 2 + 1, v);
}

/* ---- status ------------------------------------------------------------ */

static struct json_object *status_json(struct hv_node *n, bool quorum)
{
	struct json_object *o = json_object_new_object();
	struct json_object *members = json_object_new_array();
	struct json_object *lease = json_object_new_object();
	struct json_object *holders = json_object_new_array();
	struct json_object *pause = json_object_new_object();
	struct json_object *events = json_object_new_array();
	struct json_object *leader = NULL;
	struct hv_state *s = &n->state;
	raft_id lid = 0;
	const char *laddr = hv_node_leader_address(n, &lid);

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "node", json_object_new_string(n->cfg.name));
	json_object_object_add(o, "quorum", json_object_new_boolean(quorum));
	if (laddr != NULL) {
		struct hv_member *lm = hv_state_member_by_id(s, lid);
		leader = json_object_new_object();
		json_object_object_add(
		    leader, "name", json_object_new_string(lm != NULL ? lm->name : "?"));
		json_object_object_add(leader, "id", json_object_new_uint64(lid));
		json_object_object_add(leader, "address", json_object_new_string(laddr));
	}
	json_object_object_add(o, "leader", leader);
	json_object_object_add(o, "term",
	                       json_object_new_uint64(raft_current_term(&n->raft)));
	json_object_object_add(o, "commit_index",
	                       json_object_new_uint64(raft_commit_index(&n->raft)));
	json_object_object_add(o, "applied_index",
	                       json_object_new_uint64(raft_last_applied(&n->raft)));

	for (unsigned i = 0; i < s->n_members; i++) {
		struct hv_member *m = &s->members[i];
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(m->name));
		json_object_object_add(j, "id", json_object_new_uint64(m->id));
		json_object_object_add(j, "address", json_object_new_string(m->address));
		json_object_object_add(
		    j, "role",
		    json_object_new_string(m->removed ? "removed"
		                                      : hv_role_name(m->role)));
		json_object_object_add(j, "leader",
		                       json_object_new_boolean(m->id == lid));
		json_object_object_add(j, "phase", json_object_new_string(m->phase));
		json_object_object_add(j, "version", json_object_new_string(m->version));
		json_object_object_add(j, "bmc", json_object_new_string(m->bmc));
		json_object_object_add(j, "bmc_address",
		                       json_object_new_string(m->bmc_address));
		json_object_object_add(j, "last_report_ms",
		                       json_object_new_uint64(m->report_ms));
		json_object_object_add(j, "maintenance",
		                       json_object_new_string(hv_maint_name(m->maint)));
		json_object_object_add(j, "maintenance_since_ms",
		                       json_object_new_uint64(m->maint != HV_MAINT_NONE
		                                                  ? m->maint_since_ms
		                                                  : 0));
		json_object_object_add(j, "maintenance_total_ms",
		                       json_object_new_uint64(m->maint_total_ms));
		json_object_object_add(j, "maintenance_count",
		                       json_object_new_uint64(m->maint_count));
		json_object_object_add(j, "mem_cap_mib",
		                       json_object_new_uint64(m->mem_cap_mib));
		json_object_object_add(j, "vcpus_cap",
		                       json_object_new_uint64(m->vcpus_cap));
		{
			uint64_t mem;
			unsigned cpu;
			struct json_object *gs = json_object_new_array();
			hv_state_load(s, m, &mem, &cpu);
			json_object_object_add(j, "mem_used_mib",
			                       json_object_new_uint64(mem));
			for (unsigned g = 0; g < m->n_guests; g++) {
				struct json_object *jg = json_object_new_object();
				json_object_object_add(
				    jg, "name",
				    json_object_new_string(m->guests[g].name));
				json_object_object_add(
				    jg, "mem_mib",
				    json_object_new_uint64(m->guests[g].mem_mib));
				json_object_object_add(
				    jg, "vcpus",
				    json_object_new_uint64(m->guests[g].vcpus));
				json_object_object_add(
				    jg, "level",
				    json_object_new_string(
				        hv_level_name(m->guests[g].level)));
				json_object_object_add(
				    jg, "running",
				    json_object_new_boolean(m->guests[g].running));
				json_object_object_add(
				    jg, "persistent",
				    json_object_new_boolean(m->guests[g].persistent));
				if (m->guests[g].hostdev[0])
					json_object_object_add(
					    jg, "hostdev",
					    json_object_new_string(m->guests[g].hostdev));
				if (m->guests[g].local_disk[0])
					json_object_object_add(
					    jg, "local_disk",
					    json_object_new_string(
					        m->guests[g].local_disk));
				json_object_array_add(gs, jg);
			}
			json_object_object_add(j, "guests", gs);
		}
		json_object_array_add(members, j);
	}
	json_object_object_add(o, "members", members);
	json_object_object_add(o, "rollout", hv_patch_status_json(s));
	json_object_object_add(o, "policy", hv_policy_json(s));

	json_object_object_add(lease, "max_concurrent",
	                       json_object_new_uint64(s->max_concurrent));
	json_object_object_add(lease, "last_token",
	                       json_object_new_uint64(s->last_token));
	for (unsigned i = 0; i < s->n_holders; i++) {
		struct json_object *h = json_object_new_object();
		json_object_object_add(h, "name",
		                       json_object_new_string(s->holders[i].name));
		json_object_object_add(h, "token",
		                       json_object_new_uint64(s->holders[i].token));
		json_object_object_add(h, "granted_ms",
		                       json_object_new_uint64(s->holders[i].granted_ms));
		json_object_array_add(holders, h);
	}
	json_object_object_add(lease, "holders", holders);
	json_object_object_add(o, "lease", lease);

	json_object_object_add(pause, "paused", json_object_new_boolean(s->paused));
	if (s->paused) {
		json_object_object_add(pause, "by", json_object_new_string(s->paused_by));
		json_object_object_add(pause, "reason",
		                       json_object_new_string(s->pause_reason));
		json_object_object_add(pause, "since_ms",
		                       json_object_new_uint64(s->paused_ms));
	}
	json_object_object_add(o, "pause", pause);

	for (unsigned i = 0; i < s->ev_count && i < 20; i++) {
		const struct hv_event *e = hv_state_event(s, i);
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "index", json_object_new_uint64(e->index));
		json_object_object_add(j, "time_ms", json_object_new_uint64(e->time_ms));
		json_object_object_add(j, "text", json_object_new_string(e->text));
		json_object_array_add(events, j);
	}
	json_object_object_add(o, "events", events);
	{
		struct json_object *moves = json_object_new_array();
		for (unsigned i = 0; i < s->n_moves + s->hist_count; i++) {
			const struct hv_move *mv =
			    i < s->n_moves ? &s->moves[i]
			                   : hv_state_history(s, i - s->n_moves);
			struct json_object *jm;
			if (i < s->n_moves && mv->status != HV_MOVE_PENDING)
				continue; /* finished ones are in the history */
			jm = json_object_new_object();
			json_object_object_add(jm, "guest",
			                       json_object_new_string(mv->m.guest));
			json_object_object_add(jm, "holder",
			                       json_object_new_string(mv->holder));
			json_object_object_add(jm, "source",
			                       json_object_new_string(mv->m.source));
			json_object_object_add(jm, "target",
			                       json_object_new_string(mv->m.target));
			json_object_object_add(
			    jm, "action",
			    json_object_new_string(hv_action_name(mv->m.action)));
			json_object_object_add(
			    jm, "status",
			    json_object_new_string(
			        mv->status == HV_MOVE_PENDING ? "pending"
			        : mv->status == HV_MOVE_DONE  ? "done"
			                                      : "failed"));
			json_object_object_add(jm, "mem_mib",
			                       json_object_new_uint64(mv->m.mem_mib));
			json_object_object_add(jm, "downtime_ms",
			                       json_object_new_uint64(mv->downtime_ms));
			json_object_object_add(jm, "elapsed_ms",
			                       json_object_new_uint64(mv->elapsed_ms));
			json_object_object_add(jm, "bytes",
			                       json_object_new_uint64(mv->bytes));
			json_object_object_add(jm, "planned_ms",
			                       json_object_new_uint64(mv->planned_ms));
			json_object_object_add(jm, "done_ms",
			                       json_object_new_uint64(mv->done_ms));
			if (mv->error[0])
				json_object_object_add(jm, "error",
				                       json_object_new_string(mv->error));
			json_object_array_add(moves, jm);
		}
		json_object_object_add(o, "moves", moves);
	}
	json_object_object_add(o, "rejected_commands",
	                       json_object_new_uint64(s->rejected));
	if (!quorum) {
		unsigned v = voters(n);
		char msg[256];
		if (v == 0)
			snprintf(msg, sizeof msg,
			         "no quorum: %s is not a member of a cluster yet (still "
			         "joining?)",
			         n->cfg.name);
		else
			snprintf(
			    msg, sizeof msg,
			    "no quorum: no leader answered; this is %s's own replica and "
			    "may be stale (a majority, %u of %u voters, is needed)",
			    n->cfg.name, v / 2 + 1, v);
		json_object_object_add(o, "message", json_object_new_string(msg));
	}
	return o;
}

static void status_barrier_done(struct hv_node *n, void *data, int rc)
{
	struct hv_rpc_conn *c = data;

	hv_rpc_reply(c, status_json(n, rc == HV_OK));
}

struct relay {
	struct hv_node *n;
	struct hv_rpc_conn *conn;
	bool status;
	char what[32];
	char leader[HV_ADDR_MAX + 1];
};

static void relay_answered(void *data, int status, struct json_object *resp)
{
	struct relay *r = data;

	if (status == HV_OK) {
		if (r->status)
			json_object_object_add(resp, "via",
			                       json_object_new_string(r->n->cfg.name));
		hv_rpc_reply(r->conn, json_object_get(resp));
	} else if (r->status) {
		hv_rpc_reply(r->conn, status_json(r->n, false));
	} else if (status == HV_UNREACHABLE) {
		hv_rpc_reply(
		    r->conn,
		    hv_rpc_error(
		        HV_NOQUORUM,
		        "%s refused: no quorum: the leader %s is unreachable (it may "
		        "have just failed; a new one is elected within about a second if "
		        "a majority is up); nothing was changed",
		        r->what, r->leader));
	} else if (status == HV_SHUTDOWN) {
		hv_rpc_reply(r->conn, hv_rpc_error(HV_SHUTDOWN,
		                                   "%s: node is shutting down", r->what));
	} else {
		hv_rpc_reply(
		    r->conn,
		    hv_rpc_error(HV_NOQUORUM,
		                 "%s refused: the leader did not answer (%s); it may "
		                 "have been committed or not: check hvpeer status",
		                 r->what, hv_strerror(status)));
	}
	free(r);
}

/* Forward req to the leader. Returns false when there is no leader. */
static bool forward(struct hv_node *n, struct hv_rpc_conn *c, struct json_object *req,
                    bool status, const char *what)
{
	const char *leader = hv_node_leader_address(n, NULL);
	struct relay *r;

	if (leader == NULL || hv_node_is_leader(n))
		return false;
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return false;
	r->n = n;
	r->conn = c;
	r->status = status;
	snprintf(r->what, sizeof r->what, "%s", what);
	snprintf(r->leader, sizeof r->leader, "%s", leader);
	json_object_object_add(req, "forwarded", json_object_new_boolean(1));
	if (hv_rpc_call(&n->rpc, leader, req, n->cfg.rpc_timeout_ms, relay_answered, r) !=
	    0) {
		free(r);
		return false;
	}
	return true;
}

static void op_status(struct hv_node *n, struct hv_rpc_conn *c, struct json_object *req,
                      bool forwarded)
{
	if (hv_node_is_leader(n)) {
		if (hv_node_barrier(n, status_barrier_done, c) != HV_OK)
			hv_rpc_reply(c, status_json(n, false));
		return;
	}
	if (forwarded || !forward(n, c, req, true, "status"))
		hv_rpc_reply(c, status_json(n, false));
}

/* ---- writes ------------------------------------------------------------ */

static struct json_object *result_json(struct hv_node *n, const struct hv_cmd *cmd,
                                       int rc, uint64_t index, uint64_t token)
{
	struct hv_state *s = &n->state;
	struct json_object *o;
	char when[32];

	switch (rc) {
	case HV_OK:
		o = hv_rpc_ok();
		json_object_object_add(o, "index", json_object_new_uint64(index));
		switch (cmd->type) {
		case HV_CMD_LEASE_ACQUIRE:
			json_object_object_add(o, "token", json_object_new_uint64(token));
			json_object_object_add(o, "message",
			                       json_object_new_string_len("", 0));
			{
				char msg[160];
				if (token == index)
					snprintf(msg, sizeof msg,
					         "lease granted to %s (token %llu)",
					         cmd->name, (unsigned long long)token);
				else
					snprintf(
					    msg, sizeof msg,
					    "%s already holds the lease (token %llu)",
					    cmd->name, (unsigned long long)token);
				json_object_object_add(o, "message",
				                       json_object_new_string(msg));
			}
			break;
		case HV_CMD_LEASE_RELEASE: {
			char msg[160];
			snprintf(msg, sizeof msg, "lease released by %s (token %llu)",
			         cmd->name, (unsigned long long)cmd->token);
			json_object_object_add(o, "message", json_object_new_string(msg));
			break;
		}
		case HV_CMD_LEASE_BREAK: {
			char msg[600];
			snprintf(msg, sizeof msg, "lease of %s broken by %s: %s",
			         cmd->name[0] ? cmd->name : "every holder", cmd->by,
			         cmd->reason);
			json_object_object_add(o, "message", json_object_new_string(msg));
			break;
		}
		case HV_CMD_PAUSE: {
			char msg[600];
			snprintf(msg, sizeof msg, "cluster paused by %s: %s", cmd->by,
			         cmd->reason);
			json_object_object_add(o, "message", json_object_new_string(msg));
			break;
		}
		case HV_CMD_RESUME:
			json_object_object_add(o, "message",
			                       json_object_new_string("cluster resumed"));
			break;
		case HV_CMD_POLICY_SET: {
			char msg[400];
			if (cmd->reason[0] != '\0')
				snprintf(msg, sizeof msg, "policy %s = '%s'", cmd->name,
				         cmd->reason);
			else
				snprintf(msg, sizeof msg, "policy %s reset", cmd->name);
			json_object_object_add(o, "message", json_object_new_string(msg));
			break;
		}
		}
		return o;
	case HV_EXISTS:
		if (cmd->type == HV_CMD_PAUSE) {
			char msg[600];
			fmt_time(s->paused_ms, when, sizeof when);
			o = hv_rpc_ok();
			snprintf(msg, sizeof msg, "already paused by %s since %s: %s",
			         s->paused_by, when, s->pause_reason);
			json_object_object_add(o, "message", json_object_new_string(msg));
			return o;
		}
		break;
	case HV_NOTPAUSED:
		o = hv_rpc_ok();
		json_object_object_add(
		    o, "message",
		    json_object_new_string("cluster is not paused; nothing to resume"));
		return o;
	case HV_LEASEFULL: {
		char held[1024] = "";
		size_t off = 0;
		for (unsigned i = 0; i < s->n_holders && off < sizeof held - 1; i++) {
			fmt_time(s->holders[i].granted_ms, when, sizeof when);
			off += (size_t)snprintf(
			    held + off, sizeof held - off, "%s%s (token %llu, since %s)",
			    i ? ", " : "", s->holders[i].name,
			    (unsigned long long)s->holders[i].token, when);
		}
		return hv_rpc_error(rc,
		                    "lease refused to %s: held by %s; at most %u host%s "
		                    "may be in maintenance at once",
		                    cmd->name, held, s->max_concurrent,
		                    s->max_concurrent == 1 ? "" : "s");
	}
	case HV_PAUSED:
		fmt_time(s->paused_ms, when, sizeof when);
		return hv_rpc_error(rc,
		                    "lease refused to %s: the cluster is paused by %s "
		                    "since %s: %s; run 'hvpeer resume' when it is safe",
		                    cmd->name, s->paused_by, when, s->pause_reason);
	case HV_NOMEMBER:
		return hv_rpc_error(rc,
		                    "'%s' is not a member of this cluster ('hvpeer "
		                    "status' lists the members)",
		                    cmd->name[0] ? cmd->name : "?");
	case HV_REMOVED:
		return hv_rpc_error(rc, "member %s was removed from the cluster",
		                    cmd->name);
	case HV_NOTHOLDER:
		return hv_rpc_error(rc, "%s does not hold the maintenance lease",
		                    cmd->name[0] ? cmd->name : "nobody");
	case HV_BADTOKEN: {
		const struct hv_holder *h = hv_state_holder(s, cmd->name);
		return hv_rpc_error(rc,
		                    "token %llu is not %s's current lease token (%llu): "
		                    "a newer grant fenced it",
		                    (unsigned long long)cmd->token, cmd->name,
		                    h != NULL ? (unsigned long long)h->token : 0ull);
	}
	case HV_NOQUORUM:
		return hv_rpc_error(
		    rc,
		    "%s: leadership was lost before the command was committed; it may or "
		    "may not have taken effect: check 'hvpeer status'",
		    hv_cmd_name(cmd->type));
	}
	return hv_rpc_error(rc, "%s refused: %s", hv_cmd_name(cmd->type),
	                    hv_strerror(rc));
}

static void write_done(struct hv_node *n, void *data, int rc, uint64_t index,
                       uint64_t token)
{
	struct op_ctx *ctx = data;

	if (rc == HV_OK)
		hv_info("%s committed at index %llu (by %s)", hv_cmd_name(ctx->cmd.type),
		        (unsigned long long)index,
		        ctx->cmd.by[0] ? ctx->cmd.by : ctx->cmd.name);
	hv_rpc_reply(ctx->conn, result_json(n, &ctx->cmd, rc, index, token));
	free(ctx);
}

/* Fill a command from a request. Returns an error response or NULL. */
static struct json_object *cmd_from(struct hv_node *n, const char *op,
                                    struct json_object *req, const char *by,
                                    struct hv_cmd *cmd)
{
	const char *name = hv_json_str(req, "name");
	const char *reason = hv_json_str(req, "reason");

	if (!strcmp(op, "pause")) {
		cmd->type = HV_CMD_PAUSE;
		if (reason == NULL || reason[0] == '\0')
			return hv_rpc_error(HV_INVAL,
			                    "pause needs a reason (--reason TEXT)");
	} else if (!strcmp(op, "resume")) {
		cmd->type = HV_CMD_RESUME;
	} else if (!strcmp(op, "lease-acquire")) {
		cmd->type = HV_CMD_LEASE_ACQUIRE;
	} else if (!strcmp(op, "lease-release")) {
		cmd->type = HV_CMD_LEASE_RELEASE;
		if (!hv_json_uint(req, "token", &cmd->token))
			cmd->token = 0; /* filled at the leader from the holder */
	} else if (!strcmp(op, "lease-break")) {
		cmd->type = HV_CMD_LEASE_BREAK;
		if (!hv_json_bool(req, "force"))
			return hv_rpc_error(
			    HV_INVAL, "lease break needs --force: it takes the lease "
			              "from a host that may still be in maintenance");
		if (reason == NULL || reason[0] == '\0')
			return hv_rpc_error(HV_INVAL,
			                    "lease break needs a reason (--reason TEXT)");
	} else if (!strcmp(op, "policy-set")) {
		const char *key = hv_json_str(req, "key");
		const char *value = hv_json_str(req, "value");
		char why[512];
		cmd->type = HV_CMD_POLICY_SET;
		if (value == NULL)
			value = "";
		if (hv_text_copy(cmd->by, sizeof cmd->by, by != NULL ? by : "?") != HV_OK)
			return hv_rpc_error(HV_INVAL, "bad 'by'");
		if (hv_policy_check(&n->state, key, value, why, sizeof why) != HV_OK)
			return hv_rpc_error(HV_INVAL, "%s", why);
		snprintf(cmd->name, sizeof cmd->name, "%s", key);
		snprintf(cmd->reason, sizeof cmd->reason, "%s", value);
		return NULL;
	} else {
		return hv_rpc_error(HV_INVAL, "unknown operation '%s'", op);
	}
	if (name == NULL && cmd->type != HV_CMD_LEASE_BREAK)
		name = n->cfg.name;
	if (name != NULL && (cmd->type != HV_CMD_LEASE_BREAK || name[0] != '\0') &&
	    cmd->type != HV_CMD_PAUSE && cmd->type != HV_CMD_RESUME) {
		if (!hv_name_valid(name))
			return hv_rpc_error(HV_INVAL, "'%s' is not a valid host name",
			                    name);
		snprintf(cmd->name, sizeof cmd->name, "%s", name);
	}
	if (reason != NULL &&
	    hv_text_copy(cmd->reason, sizeof cmd->reason, reason) != HV_OK)
		return hv_rpc_error(HV_INVAL, "reason: at most %d printable characters",
		                    HV_REASON_MAX);
	if (by != NULL && hv_text_copy(cmd->by, sizeof cmd->by, by) != HV_OK)
		return hv_rpc_error(HV_INVAL, "bad 'by'");
	return NULL;
}

static void op_write(struct hv_node *n, struct hv_rpc_conn *c, const char *op,
                     struct json_object *req, bool forwarded)
{
	const struct hv_rpc_peer *peer = hv_rpc_conn_peer(c);
	char by[HV_NAME_MAX + 1];
	struct json_object *err;
	struct op_ctx *ctx;
	int rc;

	if (peer->local) {
		struct passwd pw, *res = NULL;
		char buf[1024];
		if (getpwuid_r(peer->uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL)
			snprintf(by, sizeof by, "%.20s@%.40s", pw.pw_name, n->cfg.name);
		else
			snprintf(by, sizeof by, "uid%u@%.40s", (unsigned)peer->uid,
			         n->cfg.name);
		json_object_object_add(req, "by", json_object_new_string(by));
		/* "this host" means the host whose socket was used, not the
		 * leader that will commit the command. */
		if (hv_json_str(req, "name") == NULL)
			json_object_object_add(req, "name",
			                       json_object_new_string(n->cfg.name));
	} else {
		const char *b = hv_json_str(req, "by");
		const char *at = b != NULL ? strrchr(b, '@') : NULL;
		/* With TLS, a peer speaks for its own host only. */
		if (peer->name[0] != '\0' &&
		    (at == NULL || strcmp(at + 1, peer->name) != 0)) {
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL,
			                    "refused: %s forwarded a write done by "
			                    "'%s', not by a user of %s",
			                    peer->name, b != NULL ? b : "?", peer->name));
			return;
		}
		snprintf(by, sizeof by, "%s", b != NULL ? b : "?");
	}
	ctx = calloc(1, sizeof *ctx);
	if (ctx == NULL) {
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
		return;
	}
	err = cmd_from(n, op, req, by, &ctx->cmd);
	if (err != NULL) {
		hv_rpc_reply(c, err);
		free(ctx);
		return;
	}
	if (ctx->cmd.type == HV_CMD_LEASE_RELEASE && ctx->cmd.token == 0) {
		/* Without --token a host releases its own lease with the token
		 * its replica knows (a stale one is refused at apply time). Any
		 * other host's lease needs its token, or a logged break. */
		const struct hv_holder *h = hv_state_holder(&n->state, ctx->cmd.name);
		if (!peer->local || strcmp(ctx->cmd.name, n->cfg.name) != 0) {
			hv_rpc_reply(
			    c, hv_rpc_error(
			           HV_INVAL,
			           "releasing %s's lease from %s needs its --token N (or "
			           "'hvpeer lease break --force --reason TEXT %s')",
			           ctx->cmd.name, n->cfg.name, ctx->cmd.name));
			free(ctx);
			return;
		}
		if (h == NULL) {
			hv_rpc_reply(c, result_json(n, &ctx->cmd, HV_NOTHOLDER, 0, 0));
			free(ctx);
			return;
		}
		ctx->cmd.token = h->token;
		json_object_object_add(req, "token", json_object_new_uint64(h->token));
	}
	if (!hv_node_is_leader(n)) {
		free(ctx);
		if (forwarded)
			hv_rpc_reply(c, hv_rpc_error(HV_NOTLEADER,
			                             "%s: not the leader any more; retry",
			                             op));
		else if (!forward(n, c, req, false, op))
			hv_rpc_reply(c, no_quorum(n, op));
		return;
	}
	ctx->n = n;
	ctx->conn = c;
	rc = hv_node_propose(n, &ctx->cmd, write_done, ctx);
	if (rc != HV_OK) {
		hv_rpc_reply(c, rc == HV_NOTLEADER
		                    ? no_quorum(n, op)
		                    : hv_rpc_error(rc, "%s: %s", op, hv_strerror(rc)));
		free(ctx);
	}
}

static void op_join(struct hv_node *n, struct hv_rpc_conn *c, struct json_object *req,
                    bool forwarded)
{
	const char *name = hv_json_str(req, "name"),
	           *address = hv_json_str(req, "address");
	uint64_t id;

	if (name == NULL || !hv_name_valid(name) || address == NULL ||
	    strlen(address) > HV_ADDR_MAX || !hv_json_uint(req, "id", &id) || id == 0) {
		hv_rpc_reply(c, hv_rpc_error(HV_INVAL,
		                             "join: needs a valid name, id and address"));
		return;
	}
	/* With TLS, the joiner (the first hop) is who its certificate says. */
	if (!forwarded && !hv_rpc_conn_peer(c)->local &&
	    hv_rpc_conn_peer(c)->name[0] != '\0' &&
	    (strcmp(hv_rpc_conn_peer(c)->name, name) != 0 ||
	     hv_rpc_conn_peer(c)->id != id)) {
		hv_warn("join: refused %s (id %llu): its certificate is for %s (id %llu)",
		        name, (unsigned long long)id, hv_rpc_conn_peer(c)->name,
		        (unsigned long long)hv_rpc_conn_peer(c)->id);
		hv_rpc_reply(c,
		             hv_rpc_error(HV_INVAL,
		                          "join: refused: the certificate is for %s (id "
		                          "%llu), not %s (id %llu)",
		                          hv_rpc_conn_peer(c)->name,
		                          (unsigned long long)hv_rpc_conn_peer(c)->id,
		                          name, (unsigned long long)id));
		return;
	}
	if (hv_node_is_leader(n)) {
		hv_membership_join(n, c, name, id, address);
		return;
	}
	if (forwarded)
		hv_rpc_reply(c, hv_rpc_error(HV_NOTLEADER,
		                             "join: not the leader any more; retry"));
	else if (!forward(n, c, req, false, "join"))
		hv_rpc_reply(c, no_quorum(n, "join"));
}

/* Maintenance runs on the host itself: a request for another host goes to
 * that host's hvpeerd, and the answer comes back when the job ends. */
/* An operation about another host runs on that host: forward it there.
 * Returns true when the request was handled here (forwarded or refused). */
static bool forward_to_host(struct hv_node *n, struct hv_rpc_conn *c, const char *op,
                            struct json_object *req, const char *name, bool forwarded)
{
	struct hv_member *m;
	struct relay *r;

	if (strcmp(name, n->cfg.name) == 0)
		return false;
	m = hv_state_member(&n->state, name);
	if (forwarded || m == NULL || m->removed) {
		hv_rpc_reply(c,
		             hv_rpc_error(HV_NOMEMBER,
		                          "'%s' is not a member of this cluster", name));
		return true;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
		return true;
	}
	r->n = n;
	r->conn = c;
	snprintf(r->what, sizeof r->what, "%s", op);
	snprintf(r->leader, sizeof r->leader, "%s", m->address);
	json_object_object_add(req, "forwarded", json_object_new_boolean(1));
	if (hv_rpc_call(&n->rpc, m->address, req, 3600 * 1000, relay_answered, r) != 0) {
		free(r);
		hv_rpc_reply(
		    c, hv_rpc_error(HV_UNREACHABLE, "%s: cannot reach %s", op, name));
	}
	return true;
}

static void op_maint(struct hv_node *n, struct hv_rpc_conn *c, const char *op,
                     struct json_object *req, bool forwarded)
{
	const char *name = hv_json_str(req, "name");
	bool exit_op = !strcmp(op, "maint-exit");
	char err[512];
	int rc;

	if (forward_to_host(n, c, op, req, name != NULL ? name : n->cfg.name, forwarded))
		return;
	rc = hv_maint_start(n, exit_op, hv_json_bool(req, "rebalance"), c, err,
	                    sizeof err);
	if (rc != HV_OK)
		hv_rpc_reply(c, hv_rpc_error(rc, "%s", err));
}

static void op_bmc(struct hv_node *n, struct hv_rpc_conn *c, struct json_object *req,
                   bool forwarded)
{
	const char *name = hv_json_str(req, "name");
	const char *action = hv_json_str(req, "action");

	if (forward_to_host(n, c, "bmc", req, name != NULL ? name : n->cfg.name,
	                    forwarded))
		return;
	hv_bmc_op(n, c, action != NULL ? action : "status", hv_json_bool(req, "force"));
}

void hv_ops_request(struct hv_rpc *rpc, struct hv_rpc_conn *c, struct json_object *req)
{
	struct hv_node *n = rpc->data;
	const struct hv_rpc_peer *peer = hv_rpc_conn_peer(c);
	const char *op = hv_json_str(req, "op");
	bool forwarded = hv_json_bool(req, "forwarded");

	if (op == NULL) {
		hv_rpc_reply(c, hv_rpc_error(HV_INVAL, "request without 'op'"));
		return;
	}
	if (n->stopping) {
		hv_rpc_reply(c, hv_rpc_error(HV_SHUTDOWN, "node is shutting down"));
		return;
	}
	/* The read-only control socket: reads only (access.h). */
	if (peer->readonly && !hv_access_readonly(op, hv_json_str(req, "action"))) {
		char cmd[96];
		hv_access_command(op, hv_json_str(req, "action"), cmd, sizeof cmd);
		hv_info("control: '%s' refused on the read-only socket (uid %u)", cmd,
		        (unsigned)peer->uid);
		hv_rpc_reply(
		    c,
		    hv_rpc_error(HV_READONLY,
		                 "'%s' needs the control socket %s; this "
		                 "socket is read-only (" HV_ACCESS_READONLY_COMMANDS ")",
		                 cmd, n->cfg.socket));
		return;
	}
	/* A new host without a certificate may only ask for one. */
	if (peer->enroll != !strcmp(op, "enroll")) {
		hv_rpc_reply(
		    c, hv_rpc_error(HV_INVAL, peer->enroll
		                                  ? "a join connection serves enroll "
		                                    "only"
		                                  : "enroll is served on a join "
		                                    "connection only"));
		return;
	}
	if (peer->enroll) {
		hv_enroll_serve(n, c, req);
	} else if (!strcmp(op, "token-create")) {
		uint64_t ttl = HV_TOKEN_TTL_DEFAULT_S;
		if (!peer->local)
			hv_rpc_reply(c,
			             hv_rpc_error(HV_INVAL,
			                          "token-create is not served to peers"));
		else if (hv_json_uint(req, "ttl", &ttl) &&
		         (ttl < 60 || ttl > HV_TOKEN_TTL_MAX_S))
			hv_rpc_reply(c, hv_rpc_error(HV_INVAL,
			                             "--ttl: 60 s to %d s (7 days)",
			                             HV_TOKEN_TTL_MAX_S));
		else
			hv_enroll_token_create(n, c, ttl);
	} else if (!strcmp(op, "status")) {
		op_status(n, c, req, forwarded);
	} else if (!strcmp(op, "plan")) {
		struct json_object *o =
		    hv_policy_plan_json(&n->state, hv_json_str(req, "version"),
		                        hv_now_ms(), hv_node_precheck_stale_ms(n));
		json_object_object_add(o, "ok", json_object_new_boolean(1));
		hv_rpc_reply(c, o);
	} else if (!strcmp(op, "ping")) {
		struct json_object *o = hv_rpc_ok();
		json_object_object_add(o, "node", json_object_new_string(n->cfg.name));
		json_object_object_add(o, "member", json_object_new_boolean(n->joined));
		/* for the peers' clock-skew pre-check (test-clock-skew: tests) */
		json_object_object_add(
		    o, "now_ms",
		    json_object_new_uint64(hv_now_ms() +
		                           n->cfg.test_clock_skew_s * 1000ull));
		hv_rpc_reply(c, o);
	} else if (!strcmp(op, "join")) {
		op_join(n, c, req, forwarded);
	} else if (!strcmp(op, "bundle-get")) {
		uint64_t off = 0;
		hv_json_uint(req, "offset", &off);
		hv_patch_serve_bundle(n, c, hv_json_str(req, "digest"), off);
	} else if (!strncmp(op, "patch-", 6)) {
		if (!peer->local)
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL,
			                    "operation '%s' is not served to peers", op));
		else
			hv_patch_op(n, c, op, req);
	} else if (!strcmp(op, "bmc")) {
		if (!peer->local && !forwarded)
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL,
			                    "operation '%s' is not served to peers", op));
		else
			op_bmc(n, c, req, forwarded);
	} else if (!strcmp(op, "maint-enter") || !strcmp(op, "maint-exit")) {
		if (!peer->local && !forwarded)
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL,
			                    "operation '%s' is not served to peers", op));
		else
			op_maint(n, c, op, req, forwarded);
	} else if ((!strcmp(op, "commit") || !strcmp(op, "fence")) && peer->local) {
		hv_rpc_reply(c,
		             hv_rpc_error(HV_INVAL, "%s is used between peers only", op));
	} else if (!strcmp(op, "commit")) {
		const char *b64 = hv_json_str(req, "cmd");
		if (!hv_node_is_leader(n))
			hv_rpc_reply(
			    c, hv_rpc_error(HV_NOTLEADER, "commit: not the leader"));
		else
			hv_ops_commit(n, c, b64 != NULL ? b64 : "");
	} else if (!strcmp(op, "fence")) {
		const char *name = hv_json_str(req, "name");
		const char *phase = hv_json_str(req, "phase");
		uint64_t token = 0;
		int ph = phase != NULL ? hv_phase_parse(phase) : -1;
		if (name == NULL || !hv_json_uint(req, "token", &token))
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL, "fence: needs name and token"));
		else if (phase != NULL && ph < 0)
			hv_rpc_reply(c, hv_rpc_error(HV_INVAL,
			                             "fence: unknown phase '%s'", phase));
		else
			hv_ops_fence(n, c, name, token, ph);
	} else if (!peer->local && !forwarded) {
		/* Peers only forward; operators use the control socket. */
		hv_rpc_reply(
		    c,
		    hv_rpc_error(HV_INVAL, "operation '%s' is not served to peers", op));
	} else {
		op_write(n, c, op, req, forwarded);
	}
}
