/*
 * One hvpeerd node: libraft on libuv with the cluster state machine, the
 * control socket and the peer RPC on the Raft port.
 *
 * Several nodes can live in one process (tests, benchmarks): there is no
 * global state; everything hangs off struct hv_node.
 */
#ifndef HV_NODE_H
#define HV_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <uv.h>

#include "../consensus/fsm.h"
#include "../consensus/state.h"
#include "config.h"
#include "rpc.h"
#include "metrics.h"
#include "tls.h"

struct hv_node;
struct hv_join;
struct hv_maint_job;
struct hv_hypervisor;
struct hv_bootbank;

typedef void (*hv_node_stop_cb)(struct hv_node *n);

struct hv_node {
	struct hv_config cfg;
	uv_loop_t *loop;
	raft_id id;

	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct hv_state state;
	struct hv_fsm fsm;
	struct hv_rpc rpc;
	uv_pipe_t ctl;
	uv_pipe_t ctl_ro; /* the read-only control socket */
	bool ctl_ro_open;
	uv_timer_t tick;
	bool raft_started;
	bool ctl_open;

	bool joined;          /* a member of the cluster (bootstrapped or joined) */
	struct hv_join *join; /* join in progress */
	const struct hv_hypervisor *hyp; /* the local hypervisor, or NULL */
	struct hv_bootbank *bank;        /* the boot banks, or NULL (no patching) */
	int patch_last_phase;            /* the patch driver's last job (patch.c) */
	int notify_phase;                /* the phase last queued for notify-command */
	struct hv_notify *notify_q;      /* waiting notifications (patch.c) */
	unsigned notify_n;
	bool notify_busy;
	uint64_t patch_last_rollout, patch_retry_ms;
	unsigned patch_fetch_failures;
	uv_timer_t kick;                /* runs the patch driver after an apply */
	struct hv_commit *commit_waits; /* forwarded commits not applied here yet */
	struct hv_maint_job *maint;     /* maintenance job in progress */
	bool change_busy;               /* a Raft configuration change is in flight */
	bool reconcile_busy;            /* a reconcile proposal is in flight */
	bool inventory_busy;            /* an inventory read or commit is in flight */
	uint64_t last_report_ms;
	uint64_t report_due_ms;        /* on the monotonic clock (hv_mono_ms) */
	uint64_t space_due_ms;         /* the next look at the data dir's space */
	bool data_full;                /* it was found full (logged) */
	struct raft_transfer transfer; /* a leadership transfer in flight */
	bool transfer_busy;
	/* the leader's rollout gate (policy.c) */
	bool gate_busy;
	char gate_wait[256]; /* why the next host waits, as last logged */
	/* the leader's watchdog (watchdog.c) */
	bool wd_busy;                  /* a BMC call or a commit in flight */
	uint64_t wd_poll_due_ms;       /* next power status of a rebooting holder */
	char wd_host[HV_NAME_MAX + 1]; /* the holder followed */
	int wd_phase;                  /* in this phase */
	int wd_power;                  /* its last power seen: 1, 0, -1 unknown */

	int lock_fd; /* flock()ed data_dir/lock */

	struct hv_tls tls; /* mutual TLS between peers (tls.ctx NULL: plain) */
	struct hv_metrics_counters metrics; /* metrics.h */
	uint64_t metrics_from; /* entries up to it were in the log at start */
	struct hv_metrics_server *metrics_srv; /* GET /metrics, or NULL */
	/* The leader's connection ended: a short election timeout until a
	 * leader is known again (node.c, on_peer_gone). */
	uv_check_t hint;
	bool hint_on;
	raft_id hint_leader;
	uint64_t hint_since_ms; /* monotonic */
	/* hv_node_lead_now_ms: the clocks when the term began */
	uint64_t lead_term, lead_wall0, lead_mono0;
	bool lead_jumped;

	bool stopping;
	int closing;
	hv_node_stop_cb stop_cb;
	char errmsg[1024];
};

/* Open the data dir, start Raft, listen. hyp is the local hypervisor (NULL:
 * none; no inventory, no maintenance). Returns 0, or -1 with errmsg. */
int hv_node_start(struct hv_node *n, uv_loop_t *loop, const struct hv_config *cfg,
                  const struct hv_hypervisor *hyp);

/* SIGHUP: read the TLS certificate, key, CA and CRL files again. */
void hv_node_reload(struct hv_node *n);

/* Stop everything; cb fires when every handle is closed. */
void hv_node_stop(struct hv_node *n, hv_node_stop_cb cb);

/* Wall clock in ms (the daemon's clock; never used inside the FSM). */
uint64_t hv_now_ms(void);
/* Monotonic clock in ms: for this process's own deadlines. */
uint64_t hv_mono_ms(void);
/* The leader's clock for what it judges against the committed times (the
 * rollout gate, the watchdog, voters gone silent): the wall clock, but never
 * ahead of the wall clock it had when its term began carried on by the
 * monotonic clock. A jump forward while it leads brings no deadline closer
 * (no soak ended, window opened or power cycle due early); a jump back
 * delays them, the safe side. Logged once per jump. */
uint64_t hv_node_lead_now_ms(struct hv_node *n);

/* mkdir -p, new directories with mode. Returns 0, or -1 with errno. */
int hv_mkdir_p(const char *dir, mode_t mode);

/* ---- proposals (node/ops.c uses these) ---------------------------------- */

typedef void (*hv_propose_cb)(struct hv_node *n, void *data, int rc, uint64_t index,
                              uint64_t token);

/* Propose cmd (time stamped here) through Raft. Must be the leader. cb fires
 * once when rc is 0 is returned. */
int hv_node_propose(struct hv_node *n, struct hv_cmd *cmd, hv_propose_cb cb, void *data);

typedef void (*hv_barrier_cb)(struct hv_node *n, void *data, int rc);
int hv_node_barrier(struct hv_node *n, hv_barrier_cb cb, void *data);

/* The current leader's address, or NULL when none is known. */
const char *hv_node_leader_address(struct hv_node *n, raft_id *id);
bool hv_node_is_leader(struct hv_node *n);

/* When this node leads, hand leadership to another voter (libraft picks an
 * up-to-date one): before this host reboots, so that the cluster does not
 * wait an election timeout for a new leader. HV_OK when asked (or nothing
 * to do), HV_NOMEMBER when there is no voter to take it, HV_IO. */
int hv_node_transfer_leadership(struct hv_node *n);

/* Raft role of the member with id in the current configuration, or -1. */
int hv_node_raft_role(struct hv_node *n, raft_id id);

/* How long a member may go without a report (or an inventory) before it
 * counts as down or stale: three report intervals and 2 s. A pre-check,
 * which may run while a report is still in flight, allows 5 s. */
uint64_t hv_node_stale_ms(const struct hv_node *n);
uint64_t hv_node_precheck_stale_ms(const struct hv_node *n);

/* Commit cmd through the leader from any node (node/commit.c). Returns 0
 * and fires cb once, or an HV_* code (no leader: HV_NOQUORUM) and never.
 * A success is delivered once this node has applied the entry too (so that
 * the caller reads its own write), or after rpc-timeout if it lags. */
int hv_node_commit(struct hv_node *n, struct hv_cmd *cmd, hv_propose_cb cb, void *data);
/* Deliver the commits this node has now applied (or waited for too long);
 * with stopping, all of them, HV_SHUTDOWN. Run after applies and on ticks. */
void hv_node_commit_waits(struct hv_node *n, bool stopping);

/* Linearizable fencing check: name holds the lease with token, the
 * cluster is not paused, and (phase >= 0) name's patch cycle is in that
 * phase. cb gets HV_OK or the reason. */
int hv_node_fence(struct hv_node *n, const char *name, uint64_t token, int phase,
                  hv_barrier_cb cb, void *data);

/* The leader's side of "commit" and "fence" requests. */
void hv_ops_commit(struct hv_node *n, struct hv_rpc_conn *c, const char *b64);
void hv_ops_fence(struct hv_node *n, struct hv_rpc_conn *c, const char *name,
                  uint64_t token, int phase);

/* `hvpeer bmc ACTION` on this host (node/bmcop.c); force: power off,
 * cycle, reset or soft even when the host serves guests. */
void hv_bmc_op(struct hv_node *n, struct hv_rpc_conn *c, const char *action, bool force);

/*
 * One call on the BMC of kind ("ipmi", "redfish") at address through
 * hvpeer-bmc, with this host's credentials file and [bmc] settings: for a
 * worker thread (it blocks for the BMC's answers). action: status, sensors,
 * on, off, cycle, reset or soft. HV_OK with hvpeer-bmc's JSON answer in
 * *answer (the caller puts it), or an HV_* code with the message in err
 * (the BMC's own words; never a password).
 */
int hv_bmc_call(const struct hv_config *cfg, const char *kind, const char *address,
                const char *action, struct json_object **answer, char *err,
                size_t errlen);

/* The leader's watchdog over lease holders that reboot (node/watchdog.c):
 * called on every tick; commits and acts on what hv_rollout_watchdog_due
 * says is due, one host at a time. */
void hv_watchdog_tick(struct hv_node *n);

/* Handle one request (control socket or peer): node/ops.c. */
void hv_ops_request(struct hv_rpc *rpc, struct hv_rpc_conn *c, struct json_object *req);

/* Start an asynchronous join of this node through the configured peers. */
void hv_node_join_start(struct hv_node *n);

/* The leader's side of a join request: node/membership.c. */
void hv_membership_join(struct hv_node *n, struct hv_rpc_conn *c, const char *name,
                        raft_id id, const char *address);

/* Leader housekeeping on every tick: membership and roles. */
void hv_membership_reconcile(struct hv_node *n);

#endif
