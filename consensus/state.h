/*
 * The replicated cluster state machine.
 *
 * Every replica applies the same committed commands in the same order and so
 * holds the same state. The rules of the maintenance lease live here, not in
 * callers: whatever a proposer believes, a command that breaks a rule is
 * refused at apply time, identically on every replica.
 *
 * Lease rules:
 *  - at most max_concurrent holders (default 1);
 *  - no grant while the cluster is paused;
 *  - no grant to an unknown or removed member;
 *  - a grant's fencing token is the log index of the grant's entry, so tokens
 *    strictly increase;
 *  - a release needs the holder's current token; a break needs a reason and
 *    is recorded in the event history.
 *
 * Nothing here does I/O or reads a clock: times come inside the commands.
 */
#ifndef HV_STATE_H
#define HV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../patchfsm/cycle.h"
#include "codec.h"

#define HV_MAX_MEMBERS 128
#define HV_MAX_HOLDERS 16
#define HV_EVENTS 64
#define HV_EVENT_TEXT 200
#define HV_SNAPSHOT_FORMAT 1
#define HV_MAX_MOVES 128 /* moves of current maintenances, cluster-wide */
#define HV_HISTORY 128   /* finished moves kept for `hvpeer report` */
#define HV_QUARANTINE_MAX 16

/* Maintenance phases of a host; the transition table is in state.c. */
enum hv_maint {
	HV_MAINT_NONE = 0,   /* serving guests, a placement target */
	HV_MAINT_ENTERING,   /* lease held, pre-checks and plan */
	HV_MAINT_EVACUATING, /* moving its guests away */
	HV_MAINT_IN,         /* empty, in maintenance */
	HV_MAINT_EXITING,    /* bringing guests back */
	HV__MAINT_N
};

enum hv_move_status { HV_MOVE_PENDING = 0, HV_MOVE_DONE, HV_MOVE_FAILED };

struct hv_move {
	struct hv_cmd_move m;
	char holder[HV_NAME_MAX + 1]; /* the host whose maintenance this is */
	uint64_t token;               /* the holder's token when planned */
	int status;                   /* enum hv_move_status */
	int result;
	uint64_t planned_ms, done_ms;
	uint64_t downtime_ms, elapsed_ms, bytes;
	char error[HV_ERROR_MAX + 1];
};

struct hv_member {
	uint64_t id;
	char name[HV_NAME_MAX + 1];
	char address[HV_ADDR_MAX + 1];
	int role;
	bool removed;
	char phase[HV_PHASE_MAX + 1];
	char version[HV_VERSION_MAX + 1];
	uint64_t report_ms;

	/* Inventory, as the host last reported it. */
	uint32_t mem_cap_mib, vcpus_cap;
	uint64_t inventory_ms;
	uint64_t moved_index; /* last move in or out: older inventories are stale */
	unsigned n_guests;
	struct hv_cmd_guest guests[HV_MAX_GUESTS];

	int maint; /* enum hv_maint */
	uint64_t maint_since_ms, maint_total_ms;
	unsigned maint_count;

	/* Patch cycle (rollout.c): the phase of this host in the current
	 * rollout, when it entered it, the time spent in each phase. */
	int cycle; /* enum hv_phase */
	uint64_t cycle_since_ms, cycle_start_ms, cycle_end_ms;
	uint64_t phase_ms[HV__PH_N];
	char cycle_error[HV_REASON_MAX + 1];

	/* The host's BMC as it reports it ("" before a report that has one),
	 * and the leader's watchdog while it is down in a reboot: the power
	 * cycles done in the current phase and when the last was committed. */
	char bmc[HV_BMC_KIND_MAX + 1];
	char bmc_address[HV_ADDR_MAX + 1];
	unsigned wd_cycles;
	uint64_t wd_last_ms;
	/* Pre-checks of this rollout that failed and were retried (policy
	 * max-retries). */
	unsigned retries;
};

/* A patch being rolled out across the cluster, one host at a time. */
struct hv_rollout {
	uint64_t id; /* log index of its submit; 0: none yet */
	bool active; /* hosts still to patch */
	bool aborted;
	char bundle[HV_NAME_MAX + 1];
	char version[HV_VERSION_MAX + 1];
	char digest[HV_DIGEST_MAX + 1];
	char key_id[HV_KEYID_MAX + 1];
	char source[HV_NAME_MAX + 1]; /* the member that holds the bundle */
	char by[HV_NAME_MAX + 1];
	uint64_t submitted_ms, finished_ms;
	unsigned done, failed;
	/* Policies (policy.c): the canary, when its soak ends, the host the
	 * leader let go next (a gate is good for one grant), the stun time of
	 * the rollout's live migrations so far. */
	char canary[HV_NAME_MAX + 1];
	uint64_t soak_until_ms;
	char gate[HV_NAME_MAX + 1];
	uint64_t downtime_ms;
};

/* A patch that failed on a host: no host tries it again. */
struct hv_quarantine {
	uint64_t index;
	char digest[HV_DIGEST_MAX + 1];
	char version[HV_VERSION_MAX + 1];
	char reason[HV_REASON_MAX + 1];
};

/*
 * Rollout policies (policy.c), set with policy-set and kept in the state so
 * that every host agrees. The leader evaluates what needs a clock (windows,
 * the soak) and commits its decision as a patch-gate.
 */
#define HV_POLICY_TEXT HV_REASON_MAX
struct hv_policy {
	char window[HV_POLICY_TEXT + 1];    /* patchfsm/window.h; "" = any time */
	char zone[HV_POLICY_TEXT + 1];      /* IANA zone of window; "" = UTC */
	char blackouts[HV_POLICY_TEXT + 1]; /* local dates without windows */
	char canary[HV_NAME_MAX + 1];       /* "", "auto" or a member's name */
	uint64_t soak_ms;                   /* after the canary, before the rest */
	uint64_t cycle_estimate_ms;         /* a cycle's length before one is known */
	uint64_t downtime_budget_ms;        /* one guest's stun; 0 = no limit */
	uint64_t rollout_downtime_ms;       /* all stuns of a rollout; 0 = no limit */
	bool quorum_guard;       /* no grant that leaves quorum one failure from lost */
	unsigned max_retries;    /* pre-check failures retried before the line stops */
	uint64_t retry_delay_ms; /* between them (0 = 60 s) */
	unsigned max_failed;     /* host failures of a rollout the line goes on after */
};

struct hv_holder {
	char name[HV_NAME_MAX + 1];
	uint64_t token;
	uint64_t granted_ms;
};

struct hv_event {
	uint64_t index;
	uint64_t time_ms;
	char text[HV_EVENT_TEXT];
};

struct hv_state {
	unsigned n_members;
	struct hv_member members[HV_MAX_MEMBERS];

	unsigned max_concurrent;
	unsigned n_holders;
	struct hv_holder holders[HV_MAX_HOLDERS];
	uint64_t last_token;

	bool paused;
	char paused_by[HV_NAME_MAX + 1];
	char pause_reason[HV_REASON_MAX + 1];
	uint64_t paused_ms;

	unsigned ev_next;  /* slot of the next event */
	unsigned ev_count; /* events held, <= HV_EVENTS */
	struct hv_event events[HV_EVENTS];

	unsigned n_moves;
	struct hv_move moves[HV_MAX_MOVES];
	unsigned hist_next, hist_count;
	struct hv_move history[HV_HISTORY];

	struct hv_rollout rollout;
	struct hv_policy policy;
	/* Anti-rollback: the highest version ever submitted, and its digest. */
	char floor_version[HV_VERSION_MAX + 1];
	char floor_digest[HV_DIGEST_MAX + 1];
	unsigned n_quarantine;
	struct hv_quarantine quarantine[HV_QUARANTINE_MAX];

	uint64_t last_index; /* log index of the last command applied */
	uint64_t rejected;   /* commands refused (rules or bad encoding) */
};

void hv_state_init(struct hv_state *s);

/*
 * Apply the command committed at log index `index`. Returns HV_OK, or the
 * HV_* code of the rule or decoding check that refused it; a refused command
 * leaves the state unchanged but for the `rejected` counter and last_index.
 * For a lease acquire, *token (when not NULL) receives the holder's token.
 */
int hv_state_apply(struct hv_state *s, uint64_t index, const void *buf, size_t len,
                   uint64_t *token);

/* Same as hv_state_apply for a command already decoded. */
int hv_state_apply_cmd(struct hv_state *s, uint64_t index, const struct hv_cmd *cmd,
                       uint64_t *token);

/* Lookups; NULL when absent. */
struct hv_member *hv_state_member(struct hv_state *s, const char *name);
struct hv_member *hv_state_member_by_id(struct hv_state *s, uint64_t id);
const struct hv_holder *hv_state_holder(const struct hv_state *s, const char *name);

/* The i-th most recent finished move (0 = newest), or NULL. */
const struct hv_move *hv_state_history(const struct hv_state *s, unsigned i);

/* Memory and vCPUs a member's guests use plus what pending moves reserve on
 * it (moves leaving it are still counted until they are done). */
void hv_state_load(const struct hv_state *s, const struct hv_member *m, uint64_t *mem_mib,
                   unsigned *vcpus);

const char *hv_maint_name(int maint);

/* True when the digest is quarantined. */
bool hv_state_quarantined(const struct hv_state *s, const char *digest);

/* The patch rollout (rollout.c), called by the apply dispatcher. advance
 * hands the lease to the next waiting host when nothing blocks it; it runs
 * after every command that may unblock the line (a step, a release, a
 * break, a resume, a settings change). */
int hv_rollout_submit(struct hv_state *s, uint64_t index, const struct hv_cmd *c);
int hv_rollout_step(struct hv_state *s, uint64_t index, const struct hv_cmd *c);
int hv_rollout_abort(struct hv_state *s, uint64_t index, const struct hv_cmd *c);
/* The lease of M was broken (state.c, lease_break): a cycle it was in the
 * middle of failed (WHY), the line stops as the policy says. */
void hv_rollout_lease_broken(struct hv_state *s, uint64_t index, struct hv_member *m,
                             const char *why, uint64_t t);
void hv_rollout_advance(struct hv_state *s, uint64_t index, uint64_t time_ms);

/*
 * The watchdog: a lease holder that reboots (REBOOT, or the reboot of a
 * ROLLBACK) and has not come back. The leader asks hv_rollout_watchdog_due
 * what is due at now_ms: 0 (nothing), HV_WD_CYCLE (a holder has been in
 * that phase timeout_ms since it entered it or since the last power cycle,
 * has a BMC and fewer than max_cycles cycles) or HV_WD_GAVE_UP (the same,
 * with the cycles spent or no BMC); *who and *token name the holder.
 * Nothing is due while the cluster is paused. The leader commits that
 * event (PATCH_WATCHDOG) before it acts; hv_rollout_watchdog applies it:
 * CYCLE counts the cycle (refused when paused), FOLLOWED only records what
 * the BMC showed, GAVE_UP pauses the cluster with the reason and leaves
 * the lease where it is. All three need the holder's current token and
 * the phase it is still in: once it came back, a late event is refused.
 * A resume starts the watchdog over (no cycles spent, the timeout counted
 * from the resume): the operator has looked at the host.
 */
int hv_rollout_watchdog(struct hv_state *s, uint64_t index, const struct hv_cmd *c);
int hv_rollout_watchdog_due(const struct hv_state *s, uint64_t now_ms,
                            uint64_t timeout_ms, unsigned max_cycles,
                            const struct hv_member **who, uint64_t *token);
void hv_rollout_resume(struct hv_state *s, uint64_t index, uint64_t time_ms);

/*
 * Policies (policy.c). policy-set takes a key and its value as text:
 *   window, zone, blackouts  the maintenance window (checked by the proposer
 *                            with patchfsm/window.h; stored as given)
 *   canary                   "" (none), "auto" (the waiting host with the
 *                            fewest guests) or a member's name
 *   soak                     seconds after the canary is done, 0-2592000
 *   cycle-estimate           seconds a cycle takes before one was measured
 *   downtime-budget          ms one guest may be stunned by a live migration
 *   rollout-downtime-budget  ms of stun for a whole rollout
 *   max-retries              pre-check failures of a host retried (after
 *                            retry-delay, by the leader's gate) before the
 *                            line stops, 0-10
 *   retry-delay              seconds between them (default 60)
 *   quorum-guard             "on": the next host goes only if, with it down,
 *                            the voters left could lose one more and keep
 *                            quorum (the leader checks); "off" or ""
 *   max-failed-hosts         host failures of a rollout the line goes on
 *                            after, 0-128 (default 0: the first stops it). A
 *                            failure that quarantines the patch (the canary's,
 *                            a bad bundle, a boot or validation that rolled
 *                            back) always stops it; so does one whose host
 *                            keeps the lease (drained) with no lease left
 *                            for the next host.
 *   max-concurrent           hosts holding the lease at once, 1-16 (not
 *                            below the holders now); a second one starts only
 *                            when the leader's capacity plan admits it
 * An empty value resets a key. HV_INVAL for an unknown key or a bad value.
 *
 * hv_policy_gated: does the next grant of the rollout need the leader's
 * gate (a window is set, or a soak is pending)? patch-gate names the host
 * the leader lets go; the grant consumes it.
 */
int hv_policy_set(struct hv_state *s, uint64_t index, const struct hv_cmd *c);
/* One policy's value into p (policy-set, and the proposer's check on a
 * copy): HV_OK, HV_INVAL for a bad value, HV_UNKNOWNCMD for an unknown key. */
int hv_policy_apply(struct hv_policy *p, const char *key, const char *value);
/* max-concurrent's value v for s: 1-16, "" for 1, not below the holders. */
int hv_policy_max_concurrent(const struct hv_state *s, const char *v, unsigned *out);
/* The canary a rollout to target picks among the hosts not on it yet: the
 * host named by the policy, or with "auto" the one with the fewest guests
 * (then by name); NULL for none. */
const struct hv_member *hv_policy_canary(const struct hv_state *s, const char *target);
int hv_policy_gate(struct hv_state *s, uint64_t index, const struct hv_cmd *c);
bool hv_policy_gated(const struct hv_state *s);
/* The next host the rollout grants to (canary first), or NULL. */
const struct hv_member *hv_rollout_next(const struct hv_state *s);
/* A live migration's stun, against the budgets (moved, in state.c). */
void hv_policy_downtime(struct hv_state *s, uint64_t index, uint64_t time_ms,
                        const char *host, const char *guest, uint64_t downtime_ms);

/* Shared with rollout.c. */
void hv_state_event_add(struct hv_state *s, uint64_t index, uint64_t time_ms,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Add a holder whose token is index (the caller checked the lease rules:
 * room, not paused, index above last_token). */
void hv_state_grant(struct hv_state *s, const char *name, uint64_t index,
                    uint64_t time_ms);
void hv_state_holder_remove(struct hv_state *s, unsigned i);
int hv_state_fenced(const struct hv_state *s, const char *name, uint64_t token);

/* The i-th most recent event (0 = newest), or NULL. */
const struct hv_event *hv_state_event(const struct hv_state *s, unsigned i);

/*
 * Snapshot: encode the whole state (msgpack, format HV_SNAPSHOT_FORMAT) into
 * a buffer from `alloc` (malloc when NULL) owned by the caller.
 */
int hv_state_encode(const struct hv_state *s, void *(*alloc)(size_t), void **buf,
                    size_t *len);

/* Restore: decode into s. On failure s is left untouched. */
int hv_state_decode(struct hv_state *s, const void *buf, size_t len);

/* True when both states are equal (for tests and the simulation). */
bool hv_state_equal(const struct hv_state *a, const struct hv_state *b);

#endif
