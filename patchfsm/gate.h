/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The rollout's gate: what the leader does about the next host, decided
 * from the committed state and a time, with no I/O (node/policy.c runs it
 * on every tick and commits what it says; tests/sim/test_world.c runs the
 * same decision on a virtual clock).
 */
#ifndef HV_PATCHFSM_GATE_H
#define HV_PATCHFSM_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../consensus/state.h"

enum hv_gate_act {
	HV_GATE_IDLE,   /* nothing to do */
	HV_GATE_WAIT,   /* the next host waits; why says for what */
	HV_GATE_COMMIT, /* commit *out; why says why */
};

/*
 * hv_gate_decide: on the leader, at now_ms (its wall clock, the clock of
 * the committed times), with stale_ms the age past which a member's report
 * is old (hv_node_stale_ms), in this order:
 *
 *  - a holder still in its pre-check that has not reported for stale_ms,
 *    neither since it was granted: COMMIT a patch-step failing that
 *    pre-check for it, fenced by its token (its hvpeerd is down, and
 *    nothing moved yet; retries, max-failed-hosts and the pause take it
 *    from there);
 *  - paused, no lease free, no gate needed (hv_policy_gated) with nobody
 *    holding, the patch quarantined, or nobody waiting: IDLE;
 *  - another host beside the holders: WAIT unless the canary is done and
 *    soaked and the capacity plan admits it (migrate/plan.h);
 *  - the canary's soak: WAIT until it ends; then a canary that is not done,
 *    runs another version or stopped reporting: COMMIT a pause;
 *  - a host retrying its pre-check: WAIT until retry-delay after its failure;
 *  - the quorum guard (and any second holder): WAIT while, with the next
 *    host and the holders down, the voters left would lose quorum (or, with
 *    the guard, could not lose one more);
 *  - the window: WAIT until one is open long enough for the host's
 *    estimated cycle;
 *  - else COMMIT a patch-gate naming the next host.
 *
 * out->by is left for the caller to fill. why gets a line for the log.
 */
int hv_gate_decide(const struct hv_state *s, uint64_t now_ms, uint64_t stale_ms,
                   struct hv_cmd *out, char *why, size_t len);

/* How long m's cycle should take: the mean of the cycles done in this
 * rollout, else the policy's cycle-estimate (30 min when unset), plus the
 * time to move its guests out and back at 100 MiB/s; in ms. */
uint64_t hv_policy_estimate_ms(const struct hv_state *s, const struct hv_member *m);

/* The earliest time from t on at which the window w lets a cycle of
 * need_ms start (t itself without a window: have_window false); 0 when
 * none within the horizon. */
struct hv_window;
uint64_t hv_gate_earliest(const struct hv_window *w, bool have_window, uint64_t t,
                          uint64_t need);

/* ms since the epoch as "YYYY-MM-DD HH:MMZ" (UTC). */
void hv_gate_fmt_utc(uint64_t ms, char *out, size_t len);

#endif
