/*
 * Maintenance of this host: evacuation by live migration and return.
 *
 * A job runs on a worker thread of its own, because libvirt's calls block
 * (a migration takes seconds). The worker never touches the node: it asks
 * the event loop, one request at a time, to commit a command, to run the
 * fencing check or to read the state, and waits for the answer. The
 * decisions (where each guest goes) are pure functions of the replicated
 * state (migrate/plan.c, migrate/placement.c).
 *
 * Enter: lease -> ENTERING -> inventory -> plan (refused: back to NONE,
 * lease released, the reason returned) -> EVACUATING -> for each move:
 * fence check, migrate (or save, or shut down), commit the outcome with
 * libvirt's figures; a failed migration is retried once on another target,
 * then the line stops (the cluster is paused with the reason, the host stays
 * EVACUATING with the lease held) -> IN.
 * Exit: EXITING -> each migrated guest comes back (fenced, committed) ->
 * saved and shut-down guests are started -> NONE -> lease released.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../migrate/hypervisor.h"
#include "../migrate/placement.h"
#include "../migrate/plan.h"
#include "job.h"
#include "maint.h"
#include "patch.h"
#include "node.h"

enum { REQ_NONE, REQ_COMMIT, REQ_FENCE, REQ_QUERY, REQ_CALL };

typedef hv_query_fn query_fn;

struct hv_maint_job {
	struct hv_node *n;
	hv_job_fn fn; /* a job of another kind (the patch cycle), or NULL */
	void *fn_arg;
	bool exit_op;
	bool rebalance; /* exit: spread the guests instead of bringing them home */
	struct hv_rpc_conn *conn; /* answered when the job ends, or NULL */

	uv_thread_t thread;
	uv_async_t async;
	uv_mutex_t lock;
	uv_cond_t cond;
	int refs;      /* async handle + requests in flight */
	bool cancel;   /* the node is stopping */
	bool finished; /* the worker returned */

	/* The worker's current request. */
	int kind;
	bool issued, done;
	struct hv_cmd cmd;
	int rc;
	uint64_t token;
	query_fn query;
	void *arg;
	const char *call_addr; /* REQ_CALL: a peer RPC */
	struct json_object *call_req, *call_resp;
	unsigned call_timeout_ms;

	/* The worker's own state. */
	uint64_t my_token;
	int my_phase;        /* the fence wants the host in it; -1: any */
	uv_mutex_t ask_lock; /* one request at a time from parallel movers */
	uv_mutex_t msg_lock; /* the first failure's message is kept */
	unsigned last_moves; /* moves of the last evacuation or return */
	int result;
	char message[1024];
};

static void job_unref(struct hv_maint_job *j)
{
	if (--j->refs > 0)
		return;
	uv_mutex_destroy(&j->lock);
	uv_mutex_destroy(&j->ask_lock);
	uv_mutex_destroy(&j->msg_lock);
	uv_cond_destroy(&j->cond);
	if (j->call_resp != NULL) /* a call answered after a cancel */
		json_object_put(j->call_resp);
	free(j);
}

/* ---- the loop's side ----------------------------------------------------- */

static void request_done(struct hv_maint_job *j, int rc, uint64_t token)
{
	uv_mutex_lock(&j->lock);
	j->rc = rc;
	j->token = token;
	j->done = true;
	uv_cond_signal(&j->cond);
	uv_mutex_unlock(&j->lock);
}

static void commit_cb(struct hv_node *n, void *data, int rc, uint64_t index,
                      uint64_t token)
{
	struct hv_maint_job *j = data;

	(void)n;
	(void)index;
	request_done(j, rc, token);
	job_unref(j);
}

static void fence_cb(struct hv_node *n, void *data, int rc)
{
	struct hv_maint_job *j = data;

	(void)n;
	request_done(j, rc, 0);
	job_unref(j);
}

static void call_cb(void *data, int status, struct json_object *resp)
{
	struct hv_maint_job *j = data;

	j->call_resp = status == HV_OK && resp != NULL ? json_object_get(resp) : NULL;
	request_done(j, status, 0);
	job_unref(j);
}

static void async_closed(uv_handle_t *h)
{
	job_unref(h->data);
}

static void job_end(struct hv_maint_job *j)
{
	struct hv_node *n = j->n;

	uv_thread_join(&j->thread);
	if (n->maint == j)
		n->maint = NULL;
	if (j->conn != NULL) {
		struct json_object *o = j->result == HV_OK
		                            ? hv_rpc_ok()
		                            : hv_rpc_error(j->result, "%s", j->message);
		if (j->result == HV_OK)
			json_object_object_add(o, "message",
			                       json_object_new_string(j->message));
		hv_rpc_reply(j->conn, o);
		j->conn = NULL;
	}
	if (j->result == HV_OK)
		hv_info("%s", j->message);
	else
		hv_warn("%s", j->message);
	uv_close((uv_handle_t *)&j->async, async_closed);
	hv_patch_job_ended(n);
	hv_patch_kick(n); /* the next phase may be due */
}

static void on_async(uv_async_t *a)
{
	struct hv_maint_job *j = a->data;
	struct hv_node *n = j->n;
	int kind, rv = HV_OK;

	uv_mutex_lock(&j->lock);
	kind = j->issued || j->done ? REQ_NONE : j->kind;
	if (kind != REQ_NONE)
		j->issued = true;
	uv_mutex_unlock(&j->lock);

	switch (kind) {
	case REQ_COMMIT:
		j->refs++;
		rv = n->stopping ? HV_SHUTDOWN : hv_node_commit(n, &j->cmd, commit_cb, j);
		if (rv != HV_OK) {
			j->refs--;
			request_done(j, rv, 0);
		}
		break;
	case REQ_FENCE:
		j->refs++;
		rv = n->stopping ? HV_SHUTDOWN
		                 : hv_node_fence(n, n->cfg.name, j->my_token, j->my_phase,
		                                 fence_cb, j);
		if (rv != HV_OK) {
			j->refs--;
			request_done(j, rv, 0);
		}
		break;
	case REQ_QUERY:
		j->query(n, j->arg);
		request_done(j, HV_OK, 0);
		break;
	case REQ_CALL:
		j->refs++;
		rv = n->stopping ? HV_SHUTDOWN
		                 : hv_rpc_call(&n->rpc, j->call_addr, j->call_req,
		                               j->call_timeout_ms, call_cb, j);
		if (rv != HV_OK) {
			j->refs--;
			request_done(j, rv, 0);
		}
		break;
	}
	if (j->finished && !uv_is_closing((uv_handle_t *)&j->async))
		job_end(j);
}

/* ---- the worker's side --------------------------------------------------- */

/* One request to the loop; the caller holds ask_lock (movers may run in
 * parallel, the loop takes their requests one at a time). */
static int ask_locked(struct hv_maint_job *j, int kind)
{
	int rc;

	uv_mutex_lock(&j->lock);
	j->kind = kind;
	j->issued = false;
	j->done = false;
	uv_mutex_unlock(&j->lock);
	uv_async_send(&j->async);
	uv_mutex_lock(&j->lock);
	while (!j->done && !j->cancel)
		uv_cond_wait(&j->cond, &j->lock);
	rc = j->done ? j->rc : HV_SHUTDOWN;
	j->kind = REQ_NONE;
	uv_mutex_unlock(&j->lock);
	return rc;
}

static bool transient(int rc)
{
	return rc == HV_NOQUORUM || rc == HV_NOTLEADER || rc == HV_UNREACHABLE ||
	       rc == HV_TIMEOUT || rc == HV_IO;
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Commit cmd, retrying while the cluster has no leader (bounded). */
static int commit(struct hv_maint_job *j, const struct hv_cmd *cmd, uint64_t *token)
{
	int rc = HV_NOQUORUM;

	for (int attempt = 0; attempt < 40 && !j->cancel; attempt++) {
		uv_mutex_lock(&j->ask_lock); /* recursive use below: see ask_locked */
		j->cmd = *cmd;
		rc = ask_locked(j, REQ_COMMIT);
		if (token != NULL)
			*token = j->token;
		uv_mutex_unlock(&j->ask_lock);
		if (!transient(rc))
			break;
		nap_ms(250);
	}
	return rc;
}

static int query(struct hv_maint_job *j, query_fn fn, void *arg)
{
	int rc;

	uv_mutex_lock(&j->ask_lock);
	j->query = fn;
	j->arg = arg;
	rc = ask_locked(j, REQ_QUERY);
	uv_mutex_unlock(&j->ask_lock);
	return rc;
}

static int fence(struct hv_maint_job *j)
{
	int rc = HV_NOQUORUM;

	for (int attempt = 0; attempt < 40 && !j->cancel; attempt++) {
		uv_mutex_lock(&j->ask_lock);
		rc = ask_locked(j, REQ_FENCE);
		uv_mutex_unlock(&j->ask_lock);
		if (!transient(rc))
			break;
		nap_ms(250);
	}
	/* The token each side effect is done under, or why it was refused:
	 * what an audit of the logs (tests/lab/invariants.sh) checks. */
	if (rc == HV_OK)
		hv_info("fence: token %llu of %s is current",
		        (unsigned long long)j->my_token, j->n->cfg.name);
	else if (rc != HV_SHUTDOWN)
		hv_warn("fence: token %llu of %s refused (%s): %s",
		        (unsigned long long)j->my_token, j->n->cfg.name, hv_errname(rc),
		        hv_strerror(rc));
	return rc;
}

int hv_job_fail(struct hv_maint_job *j, int rc, const char *fmt, ...)
{
	char msg[sizeof j->message];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	uv_mutex_lock(&j->msg_lock);
	if (j->result == HV_OK) { /* parallel movers: the first failure counts */
		memcpy(j->message, msg, sizeof msg);
		j->result = rc;
	}
	uv_mutex_unlock(&j->msg_lock);
	return rc;
}

#define fail hv_job_fail

static int commit_maint(struct hv_maint_job *j, int phase)
{
	struct hv_cmd cmd = {.type = HV_CMD_MAINT, .token = j->my_token};

	snprintf(cmd.name, sizeof cmd.name, "%s", j->n->cfg.name);
	snprintf(cmd.phase, sizeof cmd.phase, "%s", hv_maint_name(phase));
	return commit(j, &cmd, NULL);
}

static int release_lease(struct hv_maint_job *j)
{
	struct hv_cmd cmd = {.type = HV_CMD_LEASE_RELEASE, .token = j->my_token};

	snprintf(cmd.name, sizeof cmd.name, "%s", j->n->cfg.name);
	return commit(j, &cmd, NULL);
}

/* The libvirt URI of a member, from the template and its address. */
void hv_peer_uri(const struct hv_config *cfg, const char *address, char *out, size_t len)
{
	char host[HV_ADDR_MAX + 1];
	int port;
	const char *p = strstr(cfg->migrate_uri, "%h");

	if (hv_addr_split(address, host, sizeof host, &port) != 0)
		snprintf(host, sizeof host, "%s", address);
	snprintf(out, len, "%.*s%s%s", (int)(p - cfg->migrate_uri), cfg->migrate_uri,
	         host, p + 2);
}

/* Queries: the worker's copies of what it needs from the state. */
struct q_plan {
	bool exit_op, rebalance;
	const char *exclude, *only;
	uint64_t stale_ms;
	struct hv_cmd cmd;
	int rc;
	char why[512];
	/* member addresses, for the URIs */
	unsigned n;
	char names[HV_MAX_MEMBERS][HV_NAME_MAX + 1];
	char addrs[HV_MAX_MEMBERS][HV_ADDR_MAX + 1];
	int maint;
	uint64_t token;
	bool holder;
};

static void q_plan_fn(struct hv_node *n, void *arg)
{
	struct q_plan *q = arg;
	const struct hv_holder *h = hv_state_holder(&n->state, n->cfg.name);
	const struct hv_member *self = hv_state_member(&n->state, n->cfg.name);

	q->holder = h != NULL;
	q->token = h != NULL ? h->token : 0;
	q->maint = self != NULL ? self->maint : HV_MAINT_NONE;
	if (q->exit_op && q->rebalance)
		q->rc = hv_plan_rebalance(&n->state, n->cfg.name, &q->cmd, q->why,
		                          sizeof q->why);
	else if (q->exit_op)
		q->rc = hv_plan_return(&n->state, n->cfg.name, &q->cmd);
	else
		q->rc = hv_plan_evacuation(&n->state, n->cfg.name, hv_now_ms(),
		                           q->stale_ms, q->exclude, q->only, &q->cmd,
		                           q->why, sizeof q->why);
	q->n = n->state.n_members;
	for (unsigned i = 0; i < n->state.n_members; i++) {
		snprintf(q->names[i], sizeof q->names[i], "%s", n->state.members[i].name);
		snprintf(q->addrs[i], sizeof q->addrs[i], "%s",
		         n->state.members[i].address);
	}
}

static const char *addr_of(const struct q_plan *q, const char *name)
{
	for (unsigned i = 0; i < q->n; i++)
		if (strcmp(q->names[i], name) == 0)
			return q->addrs[i];
	return NULL;
}

struct q_pending {
	const char *guest;
	bool pending;
};

static void q_pending_fn(struct hv_node *n, void *arg)
{
	struct q_pending *q = arg;

	q->pending = false;
	for (unsigned i = 0; i < n->state.n_moves; i++)
		if (n->state.moves[i].status == HV_MOVE_PENDING &&
		    strcmp(n->state.moves[i].holder, n->cfg.name) == 0 &&
		    strcmp(n->state.moves[i].m.guest, q->guest) == 0)
			q->pending = true;
}

/* Is every move of plan pending, as it says, under this host? */
static void q_plan_landed_fn(struct hv_node *n, void *arg)
{
	struct hv_cmd *plan = arg;
	unsigned found = 0;

	for (unsigned k = 0; k < plan->n_moves; k++)
		for (unsigned i = 0; i < n->state.n_moves; i++) {
			const struct hv_move *mv = &n->state.moves[i];
			if (mv->status == HV_MOVE_PENDING &&
			    strcmp(mv->holder, n->cfg.name) == 0 &&
			    strcmp(mv->m.guest, plan->moves[k].guest) == 0 &&
			    strcmp(mv->m.target, plan->moves[k].target) == 0) {
				found++;
				break;
			}
		}
	plan->result = found == plan->n_moves ? HV_OK : HV_INVAL;
}

/* Commit a plan. A commit retried after a timeout or a lost leader may
 * find its first attempt applied, and the plan refused as a duplicate: that
 * is success. */
static int commit_plan(struct hv_maint_job *j, const struct hv_cmd *cmd, uint64_t *token)
{
	struct hv_cmd *probe;
	int rc = commit(j, cmd, token);

	if (rc != HV_INVAL || (probe = malloc(sizeof *probe)) == NULL)
		return rc;
	*probe = *cmd;
	if (query(j, q_plan_landed_fn, probe) == HV_OK && probe->result == HV_OK) {
		hv_info("%s: the plan of %u move%s was committed by an earlier attempt",
		        j->n->cfg.name, cmd->n_moves, cmd->n_moves == 1 ? "" : "s");
		rc = HV_OK;
		if (token != NULL)
			*token = cmd->token;
	}
	free(probe);
	return rc;
}

/* ---- enter ----------------------------------------------------------------- */

static int record(struct hv_maint_job *j, const struct hv_cmd_move *mv,
                  const struct hv_outcome *o)
{
	struct hv_cmd cmd = {.type = HV_CMD_MOVED, .token = j->my_token};
	struct q_pending qp = {.guest = mv->guest};
	int rc;

	snprintf(cmd.name, sizeof cmd.name, "%s", j->n->cfg.name);
	cmd.move = *mv;
	cmd.result = o->rc;
	cmd.downtime_ms = o->downtime_ms;
	cmd.elapsed_ms = o->elapsed_ms;
	cmd.bytes = o->bytes;
	snprintf(cmd.error, sizeof cmd.error, "%s", o->error);
	rc = commit(j, &cmd, NULL);
	/* A retried commit may find its first attempt applied. */
	if (rc == HV_INVAL && query(j, q_pending_fn, &qp) == HV_OK && !qp.pending)
		rc = HV_OK;
	return rc;
}

static void q_seen_fn(struct hv_node *n, void *arg)
{
	*(uint64_t *)arg = raft_last_applied(&n->raft);
}

static int read_inventory(struct hv_maint_job *j)
{
	struct hv_node *n = j->n;
	struct hv_inventory *inv = malloc(sizeof *inv);
	struct hv_cmd cmd = {.type = HV_CMD_INVENTORY};
	char err[512];
	int rc;

	if (inv == NULL)
		return fail(j, HV_NOMEM, "out of memory");
	query(j, q_seen_fn, &cmd.seen_index);
	rc = n->hyp->inventory(n->cfg.libvirt_uri, n->cfg.guest_memory_mib,
	                       n->cfg.vcpu_ratio, n->cfg.shared_storage, inv, err,
	                       sizeof err);
	if (rc != HV_OK) {
		free(inv);
		return fail(j, rc, "%s: %s", n->cfg.name, err);
	}
	snprintf(cmd.name, sizeof cmd.name, "%s", n->cfg.name);
	cmd.mem_cap_mib = inv->mem_cap_mib;
	cmd.vcpus_cap = inv->vcpus_cap;
	cmd.n_guests = inv->n_guests;
	memcpy(cmd.guests, inv->guests, inv->n_guests * sizeof inv->guests[0]);
	free(inv);
	rc = commit(j, &cmd, NULL);
	if (rc != HV_OK)
		return fail(j, rc, "%s: recording the inventory: %s", n->cfg.name,
		            hv_strerror(rc));
	return HV_OK;
}

int hv_maint_refresh_inventory(struct hv_maint_job *j)
{
	return read_inventory(j);
}

/* Give up entering: back to NONE, lease released, the reason kept. */
static int refuse(struct hv_maint_job *j)
{
	commit_maint(j, HV_MAINT_NONE);
	release_lease(j);
	return j->result;
}

/* Stop the line: pause the cluster with the reason; the lease stays. */
static int stop_line(struct hv_maint_job *j)
{
	struct hv_cmd cmd = {.type = HV_CMD_PAUSE};

	snprintf(cmd.by, sizeof cmd.by, "hvpeerd@%.40s", j->n->cfg.name);
	snprintf(cmd.reason, sizeof cmd.reason, "%.255s", j->message);
	commit(j, &cmd, NULL);
	return j->result;
}

/* One move, fenced; a failed migration is tried once more elsewhere. */
struct failure {
	char target[HV_NAME_MAX + 1];
	char error[HV_ERROR_MAX + 1];
};

/* True when the guest is gone from the source and runs on the target. */
static bool already_moved(const struct hv_hypervisor *h, const char *src, const char *dst,
                          const char *guest)
{
	bool sp, sr, dp, dr;
	char err[256];

	return h->guest_state(src, guest, &sp, &sr, err, sizeof err) == HV_OK && !sp &&
	       h->guest_state(dst, guest, &dp, &dr, err, sizeof err) == HV_OK && dr;
}

/* A migration an earlier hvpeerd started (killed mid-move) may still be
 * running, and libvirt refuses another: while the target holds an active
 * copy (the incoming one, paused) and the source still has it, wait
 * (bounded by migrate-timeout). True when it finished there. */
static bool earlier_move_finished(const struct hv_hypervisor *h, const char *src,
                                  const char *dst, const char *guest, unsigned timeout_s)
{
	for (unsigned i = 0; i < timeout_s * 5; i++) {
		bool dp, dr;
		char err[256];
		if (already_moved(h, src, dst, guest))
			return true;
		if (h->guest_state(dst, guest, &dp, &dr, err, sizeof err) != HV_OK ||
		    !dp || !dr)
			return false; /* no migration under way to dst */
		nap_ms(200);
	}
	return false;
}

/* nested: a retry; a failed migration is left to the caller to report. */
static int run_move(struct hv_maint_job *j, struct q_plan *q, struct hv_cmd_move mv,
                    bool retry, struct failure *last, bool nested)
{
	const struct hv_config *cfg = &j->n->cfg;
	char src_uri[HV_PATH_MAX + HV_ADDR_MAX], dst_uri[HV_PATH_MAX + HV_ADDR_MAX];
	struct hv_outcome o;
	int rc = fence(j);

	if (rc != HV_OK)
		return fail(
		    j, rc, "%s: stopped before moving %s: %s", cfg->name, mv.guest,
		    rc == HV_PAUSED ? "the cluster is paused"
		    : rc == HV_BADTOKEN || rc == HV_NOTHOLDER
		        ? "this host no longer holds the maintenance lease (fenced)"
		        : hv_strerror(rc));
	if (mv.action != HV_ACT_MIGRATE) {
		j->n->hyp->park(cfg->libvirt_uri, mv.guest, mv.action,
		                cfg->shutdown_timeout_s, &o);
	} else {
		const char *sa = addr_of(q, mv.source), *da = addr_of(q, mv.target);
		if (strcmp(mv.source, cfg->name) == 0)
			snprintf(src_uri, sizeof src_uri, "%s", cfg->libvirt_uri);
		else
			hv_peer_uri(cfg, sa != NULL ? sa : mv.source, src_uri,
			            sizeof src_uri);
		hv_peer_uri(cfg, da != NULL ? da : mv.target, dst_uri, sizeof dst_uri);
		struct hv_migration m = {.guest = mv.guest,
		                         .src_uri = src_uri,
		                         .dst_uri = dst_uri,
		                         .downtime_ms = cfg->migrate_downtime_ms,
		                         .timeout_s = cfg->migrate_timeout_s};
		if (already_moved(j->n->hyp, src_uri, dst_uri, mv.guest)) {
			/* A migration that finished while this job was cut short
			 * (hvpeerd restarted mid-move): libvirt completed it. */
			memset(&o, 0, sizeof o);
			hv_info("%s is already on %s (moved before a restart)", mv.guest,
			        mv.target);
		} else {
			hv_info("moving %s: %s -> %s", mv.guest, mv.source, mv.target);
			j->n->hyp->migrate(&m, &o);
			if (o.rc != HV_OK && !o.timed_out &&
			    earlier_move_finished(j->n->hyp, src_uri, dst_uri, mv.guest,
			                          cfg->migrate_timeout_s)) {
				memset(&o, 0, sizeof o);
				hv_info("%s is on %s: a migration started before a "
				        "restart finished",
				        mv.guest, mv.target);
			}
		}
		if (o.timed_out)
			hv_warn("migration of %s still running after %u s: aborted",
			        mv.guest, cfg->migrate_timeout_s);
	}
	rc = record(j, &mv, &o);
	if (rc != HV_OK)
		return fail(j, rc, "%s: recording the move of %s: %s", cfg->name,
		            mv.guest, hv_strerror(rc));
	if (o.rc == HV_OK)
		return HV_OK;
	hv_warn("moving %s to %s failed: %s", mv.guest, mv.target, o.error);
	snprintf(last->target, sizeof last->target, "%s", mv.target);
	snprintf(last->error, sizeof last->error, "%s", o.error);
	if (retry && mv.action == HV_ACT_MIGRATE && !j->exit_op) {
		struct q_plan *q2 = calloc(1, sizeof *q2);
		if (q2 == NULL)
			return fail(j, HV_NOMEM, "out of memory");
		q2->exclude = mv.target;
		q2->only = mv.guest;
		q2->stale_ms = hv_node_stale_ms(j->n);
		query(j, q_plan_fn, q2);
		if (q2->rc == HV_OK && q2->cmd.n_moves == 1) {
			uint64_t tok;
			q2->cmd.token = j->my_token;
			rc = commit_plan(j, &q2->cmd, &tok);
			if (rc == HV_OK) {
				struct hv_cmd_move again = q2->cmd.moves[0];
				hv_info("retrying %s on %s", mv.guest, again.target);
				struct failure second = {.target = ""};
				rc = run_move(j, q2, again, false, &second, true);
				free(q2);
				if (rc == HV_OK)
					return HV_OK;
				if (rc != HV_IO) /* fenced, paused or stopping */
					return rc;
				return fail(j, HV_IO,
				            "%s: guest %s could not be moved: to %s: %s; "
				            "retried on %s: %s; it keeps running on %s",
				            cfg->name, mv.guest, mv.target, o.error,
				            second.target, second.error, mv.source);
			}
		}
		free(q2);
	}
	if (nested)
		return HV_IO;
	return fail(j, HV_IO,
	            "%s: guest %s could not be moved to %s: %s (it keeps running on %s)",
	            cfg->name, mv.guest, mv.target[0] ? mv.target : "-", o.error,
	            mv.source);
}

/* Movers: up to migrate-parallel threads take the plan's moves in order;
 * after the first failure no new move starts. */
struct movers {
	struct hv_maint_job *j;
	struct q_plan *q;
	bool retry;
	uv_mutex_t lock;
	unsigned next;
	int rc;
};

static void mover(void *arg)
{
	struct movers *m = arg;

	for (;;) {
		struct failure last = {.target = ""};
		unsigned i;
		int rc;

		uv_mutex_lock(&m->lock);
		if (m->rc != HV_OK || m->next >= m->q->cmd.n_moves) {
			uv_mutex_unlock(&m->lock);
			return;
		}
		i = m->next++;
		uv_mutex_unlock(&m->lock);
		rc = run_move(m->j, m->q, m->q->cmd.moves[i], m->retry, &last, false);
		if (rc != HV_OK) {
			uv_mutex_lock(&m->lock);
			if (m->rc == HV_OK)
				m->rc = rc;
			uv_mutex_unlock(&m->lock);
		}
	}
}

static int run_moves(struct hv_maint_job *j, struct q_plan *q, bool retry)
{
	struct movers m = {.j = j, .q = q, .retry = retry, .rc = HV_OK};
	uv_thread_t t[16];
	unsigned n = j->n->cfg.migrate_parallel, started = 0;

	uv_mutex_init(&m.lock);
	if (n > q->cmd.n_moves)
		n = q->cmd.n_moves;
	for (unsigned i = 1; i < n && i < 16; i++)
		if (uv_thread_create(&t[started], mover, &m) == 0)
			started++;
	mover(&m); /* this thread is a mover too */
	for (unsigned i = 0; i < started; i++)
		uv_thread_join(&t[i]);
	uv_mutex_destroy(&m.lock);
	if (m.rc != HV_OK && m.rc != HV_PAUSED && m.rc != HV_BADTOKEN &&
	    m.rc != HV_NOTHOLDER && m.rc != HV_SHUTDOWN)
		stop_line(j);
	return m.rc;
}

/* Why the lease was refused, in the words of the state. */
struct q_refusal {
	int rc;
	char text[512];
};

static void q_refusal_fn(struct hv_node *n, void *arg)
{
	struct q_refusal *q = arg;
	const struct hv_state *s = &n->state;
	size_t off = 0;

	q->text[0] = '\0';
	if (q->rc == HV_PAUSED && s->paused) {
		snprintf(q->text, sizeof q->text,
		         "the cluster is paused by %s: %s; run 'hvpeer resume' when it "
		         "is safe",
		         s->paused_by, s->pause_reason);
	} else if (q->rc == HV_LEASEFULL) {
		off = (size_t)snprintf(q->text, sizeof q->text,
		                       "the maintenance lease is held by");
		for (unsigned i = 0; i < s->n_holders && off < sizeof q->text; i++)
			off += (size_t)snprintf(q->text + off, sizeof q->text - off,
			                        "%s %s (token %llu)", i ? "," : "",
			                        s->holders[i].name,
			                        (unsigned long long)s->holders[i].token);
	}
}

/* Pending moves of this host's plan, with member addresses (a plan
 * committed before a crash is resumed from the state). */
static void q_pending_plan_fn(struct hv_node *n, void *arg)
{
	struct q_plan *q = arg;

	q_plan_fn(n, q); /* addresses, token, phase */
	q->rc = HV_OK;
	q->cmd.n_moves = 0;
	for (unsigned i = 0; i < n->state.n_moves && q->cmd.n_moves < HV_MAX_PLAN; i++) {
		const struct hv_move *mv = &n->state.moves[i];
		if (mv->status == HV_MOVE_PENDING && strcmp(mv->holder, n->cfg.name) == 0)
			q->cmd.moves[q->cmd.n_moves++] = mv->m;
	}
}

int hv_maint_plan_out(struct hv_maint_job *j)
{
	struct hv_node *n = j->n;
	struct q_plan *q = calloc(1, sizeof *q);
	int rc = HV_OK;

	if (q == NULL)
		return fail(j, HV_NOMEM, "out of memory");
	query(j, q_pending_plan_fn, q);
	if (q->maint == HV_MAINT_EVACUATING || q->maint == HV_MAINT_IN)
		goto out; /* done before a restart */
	if (commit_maint(j, HV_MAINT_ENTERING) != HV_OK) {
		rc = fail(j, HV_INVAL,
		          "%s: cannot enter maintenance from its current phase",
		          n->cfg.name);
		goto out;
	}
	if (q->cmd.n_moves == 0) { /* no plan committed yet */
		if ((rc = read_inventory(j)) != HV_OK)
			goto out;
		memset(q, 0, sizeof *q);
		q->stale_ms = hv_node_stale_ms(n);
		query(j, q_plan_fn, q);
		if (q->rc != HV_OK) {
			rc = fail(j, q->rc, "Failed to enter maintenance mode: %s: %s",
			          n->cfg.name, q->why);
			goto out;
		}
		if (q->cmd.n_moves > 0) {
			q->cmd.token = j->my_token;
			rc = commit_plan(j, &q->cmd, NULL);
			if (rc != HV_OK) {
				fail(j, rc,
				     "Failed to enter maintenance mode: %s: the plan was "
				     "refused: %s",
				     n->cfg.name, hv_strerror(rc));
				goto out;
			}
		}
	}
	rc = commit_maint(j, HV_MAINT_EVACUATING);
	if (rc != HV_OK)
		fail(j, rc, "%s: recording the evacuation: %s", n->cfg.name,
		     hv_strerror(rc));
out:
	free(q);
	return rc;
}

/* A running guest of this host's inventory that no move of its maintenance
 * took off it (the state refuses "in" while there is one). */
struct q_left {
	char guest[HV_NAME_MAX + 1];
};

static void q_left_fn(struct hv_node *n, void *arg)
{
	struct q_left *q = arg;
	const struct hv_member *m = hv_state_member(&n->state, n->cfg.name);

	q->guest[0] = '\0';
	for (unsigned g = 0; m != NULL && g < m->n_guests && q->guest[0] == '\0'; g++) {
		bool done = false;
		if (!m->guests[g].running)
			continue;
		for (unsigned i = 0; i < n->state.n_moves && !done; i++) {
			const struct hv_move *mv = &n->state.moves[i];
			done = mv->status == HV_MOVE_DONE &&
			       strcmp(mv->holder, n->cfg.name) == 0 &&
			       strcmp(mv->m.guest, m->guests[g].name) == 0;
		}
		if (!done)
			snprintf(q->guest, sizeof q->guest, "%s", m->guests[g].name);
	}
}

int hv_maint_move_out(struct hv_maint_job *j)
{
	struct q_plan *q = calloc(1, sizeof *q);
	int rc;

	if (q == NULL)
		return fail(j, HV_NOMEM, "out of memory");
	query(j, q_pending_plan_fn, q);
	if (q->maint == HV_MAINT_IN) {
		free(q);
		return HV_OK;
	}
	rc = run_moves(j, q, true);
	if (rc == HV_OK && (rc = commit_maint(j, HV_MAINT_IN)) == HV_INVAL) {
		struct q_left left;
		query(j, q_left_fn, &left);
		fail(j, rc,
		     "%s: not in maintenance: guest %s still runs here (its move "
		     "failed or was never planned); it keeps running on %s",
		     j->n->cfg.name, left.guest[0] ? left.guest : "?", j->n->cfg.name);
	}
	j->last_moves = q->cmd.n_moves;
	free(q);
	return rc;
}

static void enter(struct hv_maint_job *j)
{
	struct hv_node *n = j->n;
	struct hv_cmd cmd = {.type = HV_CMD_LEASE_ACQUIRE};

	snprintf(cmd.name, sizeof cmd.name, "%s", n->cfg.name);
	int rc = commit(j, &cmd, &j->my_token);
	if (rc != HV_OK) {
		struct q_refusal qr = {.rc = rc};
		query(j, q_refusal_fn, &qr);
		fail(j, rc, "%s: cannot enter maintenance: %s", n->cfg.name,
		     qr.text[0] ? qr.text : hv_strerror(rc));
		return;
	}
	if (hv_maint_plan_out(j) != HV_OK) {
		if (j->result != HV_PAUSED && j->result != HV_BADTOKEN &&
		    j->result != HV_NOTHOLDER && j->result != HV_SHUTDOWN)
			refuse(j);
		return;
	}
	if (hv_maint_move_out(j) != HV_OK)
		return;
	j->result = HV_OK;
	snprintf(j->message, sizeof j->message,
	         "%s is in maintenance: %u guest%s moved away (token %llu)", n->cfg.name,
	         j->last_moves, j->last_moves == 1 ? "" : "s",
	         (unsigned long long)j->my_token);
}

/* ---- exit ------------------------------------------------------------------ */

/* The guests this maintenance saved or shut down (and nothing else). */
struct q_parked {
	unsigned n;
	char names[HV_MAX_GUESTS][HV_NAME_MAX + 1];
};

static void q_parked_fn(struct hv_node *n, void *arg)
{
	struct q_parked *q = arg;

	q->n = 0;
	for (unsigned i = 0; i < n->state.n_moves && q->n < HV_MAX_GUESTS; i++) {
		const struct hv_move *mv = &n->state.moves[i];
		if (strcmp(mv->holder, n->cfg.name) == 0 && mv->status == HV_MOVE_DONE &&
		    mv->m.action != HV_ACT_MIGRATE)
			snprintf(q->names[q->n++], sizeof q->names[0], "%s", mv->m.guest);
	}
}

/* Saved guests restore (libvirt's managed save); shut-down ones boot. */
static void start_parked(struct hv_maint_job *j)
{
	struct q_parked q;
	char err[512];

	if (query(j, q_parked_fn, &q) != HV_OK)
		return;
	for (unsigned i = 0; i < q.n; i++)
		if (j->n->hyp->start(j->n->cfg.libvirt_uri, q.names[i], err,
		                     sizeof err) != HV_OK)
			hv_warn("starting %s again: %s", q.names[i], err);
}

int hv_maint_move_back(struct hv_maint_job *j, bool rebalance)
{
	struct hv_node *n = j->n;
	struct q_plan *q = calloc(1, sizeof *q);
	int rc = HV_OK;

	if (q == NULL)
		return fail(j, HV_NOMEM, "out of memory");
	q->exit_op = true;
	query(j, q_plan_fn, q);
	if (q->maint == HV_MAINT_NONE)
		goto out; /* done before a restart */
	if (commit_maint(j, HV_MAINT_EXITING) != HV_OK) {
		rc = fail(j, HV_INVAL,
		          "%s: cannot leave maintenance from its current phase",
		          n->cfg.name);
		goto out;
	}
	q->rebalance = rebalance;
	query(j, q_pending_plan_fn, q); /* a return plan committed before a restart */
	if (q->cmd.n_moves == 0) {
		query(j, q_plan_fn,
		      q); /* the return plan, now that the host is EXITING */
		if (q->rc != HV_OK) {
			rc = fail(j, q->rc, "%s: cannot plan the %s: %s", n->cfg.name,
			          rebalance ? "rebalance" : "return", q->why);
			goto out;
		}
		if (q->cmd.n_moves > 0) {
			q->cmd.token = j->my_token;
			rc = commit_plan(j, &q->cmd, NULL);
			if (rc != HV_OK) {
				fail(j, rc, "%s: the return plan was refused: %s",
				     n->cfg.name, hv_strerror(rc));
				goto out;
			}
		}
	}
	j->last_moves = q->cmd.n_moves;
	if (q->cmd.n_moves > 0 && (rc = run_moves(j, q, false)) != HV_OK)
		goto out;
	start_parked(j);
	rc = commit_maint(j, HV_MAINT_NONE);
	if (rc != HV_OK)
		fail(j, rc, "%s: recording the end of maintenance: %s", n->cfg.name,
		     hv_strerror(rc));
out:
	free(q);
	return rc;
}

static void leave(struct hv_maint_job *j)
{
	struct hv_node *n = j->n;
	struct q_plan *q = calloc(1, sizeof *q);
	int rc;

	if (q == NULL) {
		fail(j, HV_NOMEM, "out of memory");
		return;
	}
	q->exit_op = true;
	query(j, q_plan_fn, q);
	if (!q->holder || (q->maint != HV_MAINT_IN && q->maint != HV_MAINT_EVACUATING &&
	                   q->maint != HV_MAINT_EXITING)) {
		fail(j, HV_INVAL, "%s is not in maintenance", n->cfg.name);
		free(q);
		return;
	}
	j->my_token = q->token;
	free(q);
	if (hv_maint_move_back(j, j->rebalance) != HV_OK)
		return;
	rc = release_lease(j);
	j->result = HV_OK;
	snprintf(j->message, sizeof j->message, "%s left maintenance: %u guest%s %s%s",
	         n->cfg.name, j->last_moves, j->last_moves == 1 ? "" : "s",
	         j->rebalance ? "moved to rebalance" : "brought back",
	         rc == HV_OK ? ", lease released" : "");
}

static void worker(void *arg)
{
	struct hv_maint_job *j = arg;

	if (j->fn != NULL)
		j->fn(j, j->fn_arg);
	else if (j->exit_op)
		leave(j);
	else
		enter(j);
	uv_mutex_lock(&j->lock);
	j->finished = true;
	uv_mutex_unlock(&j->lock);
	uv_async_send(&j->async);
}

/* ---- interface ------------------------------------------------------------ */

static int job_start(struct hv_node *n, hv_job_fn fn, void *arg, bool exit_op,
                     bool rebalance, struct hv_rpc_conn *conn, char *err, size_t errlen)
{
	struct hv_maint_job *j;

	if (n->hyp == NULL) {
		snprintf(err, errlen, "%s has no hypervisor configured (--libvirt-uri)",
		         n->cfg.name);
		return HV_INVAL;
	}
	if (n->maint != NULL) {
		snprintf(err, errlen, "%s: a maintenance operation is already running",
		         n->cfg.name);
		return HV_EXISTS;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL) {
		snprintf(err, errlen, "out of memory");
		return HV_NOMEM;
	}
	j->n = n;
	j->fn = fn;
	j->fn_arg = arg;
	j->my_phase = -1;
	j->exit_op = exit_op;
	j->rebalance = rebalance;
	j->conn = conn;
	j->refs = 1;
	uv_mutex_init(&j->lock);
	uv_mutex_init(&j->ask_lock);
	uv_mutex_init(&j->msg_lock);
	uv_cond_init(&j->cond);
	uv_async_init(n->loop, &j->async, on_async);
	j->async.data = j;
	if (uv_thread_create(&j->thread, worker, j) != 0) {
		j->conn = NULL;
		uv_close((uv_handle_t *)&j->async, async_closed);
		snprintf(err, errlen, "cannot start a worker thread");
		return HV_NOMEM;
	}
	n->maint = j;
	return HV_OK;
}

int hv_maint_start(struct hv_node *n, bool exit_op, bool rebalance,
                   struct hv_rpc_conn *conn, char *err, size_t errlen)
{
	return job_start(n, NULL, NULL, exit_op, rebalance, conn, err, errlen);
}

int hv_job_start(struct hv_node *n, hv_job_fn fn, void *arg, char *err, size_t errlen)
{
	return job_start(n, fn, arg, false, false, NULL, err, errlen);
}

/* ---- for other jobs (node/patch.c) ---------------------------------------- */

struct hv_node *hv_job_node(struct hv_maint_job *j)
{
	return j->n;
}

int hv_job_commit(struct hv_maint_job *j, const struct hv_cmd *cmd, uint64_t *token)
{
	return commit(j, cmd, token);
}

int hv_job_query(struct hv_maint_job *j, hv_query_fn fn, void *arg)
{
	return query(j, fn, arg);
}

int hv_job_fence(struct hv_maint_job *j)
{
	return fence(j);
}

int hv_job_call(struct hv_maint_job *j, const char *address, struct json_object *req,
                unsigned timeout_ms, struct json_object **resp)
{
	int rc;

	uv_mutex_lock(&j->ask_lock);
	j->call_addr = address;
	j->call_req = req;
	j->call_resp = NULL;
	j->call_timeout_ms = timeout_ms;
	rc = ask_locked(j, REQ_CALL);
	*resp = j->call_resp;
	j->call_resp = NULL;
	uv_mutex_unlock(&j->ask_lock);
	if (rc != HV_OK && *resp != NULL) {
		json_object_put(*resp);
		*resp = NULL;
	}
	return rc;
}

void hv_job_set_token(struct hv_maint_job *j, uint64_t token)
{
	j->my_token = token;
}

void hv_job_set_phase(struct hv_maint_job *j, int phase)
{
	j->my_phase = phase;
}

int hv_job_result(struct hv_maint_job *j, char *msg, size_t len)
{
	int rc;

	uv_mutex_lock(&j->msg_lock);
	rc = j->result;
	snprintf(msg, len, "%s", j->message);
	uv_mutex_unlock(&j->msg_lock);
	return rc;
}

void hv_job_done(struct hv_maint_job *j, const char *fmt, ...)
{
	va_list ap;

	uv_mutex_lock(&j->msg_lock);
	j->result = HV_OK;
	va_start(ap, fmt);
	vsnprintf(j->message, sizeof j->message, fmt, ap);
	va_end(ap);
	uv_mutex_unlock(&j->msg_lock);
}

void hv_job_reset(struct hv_maint_job *j)
{
	uv_mutex_lock(&j->msg_lock);
	j->result = HV_OK;
	j->message[0] = '\0';
	uv_mutex_unlock(&j->msg_lock);
}

bool hv_job_cancelled(struct hv_maint_job *j)
{
	bool c;

	uv_mutex_lock(&j->lock);
	c = j->cancel;
	uv_mutex_unlock(&j->lock);
	return c;
}

void hv_maint_cancel(struct hv_node *n)
{
	struct hv_maint_job *j = n->maint;

	if (j == NULL)
		return;
	uv_mutex_lock(&j->lock);
	j->cancel = true;
	uv_cond_signal(&j->cond);
	uv_mutex_unlock(&j->lock);
	/* The worker returns at its next request; a libvirt call in progress
	 * finishes first (bounded by migrate-timeout). */
	job_end(j);
}
