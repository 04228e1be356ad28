/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Rollout policies on the node's side (consensus/policy.c keeps them in the
 * replicated state):
 *
 *  - `hvpeer policy set KEY VALUE` is checked here before it is proposed: a
 *    window is parsed with its zone and blackouts (patchfsm/window.h), a
 *    canary must be a member;
 *  - the leader's gate: when the next grant of a rollout needs one (a window
 *    is set, the canary's soak is pending, or the quorum guard is on), the
 *    leader, on its tick, checks the soak is over and the canary healthy,
 *    that with the next host down the voters left could lose one more and
 *    keep quorum, and that a window is open long enough for the next host's
 *    cycle, then commits a patch-gate naming that host. The grant follows
 *    in the same entry.
 *
 * A cycle's length is estimated as the mean of the cycles done in this
 * rollout, else the policy's cycle-estimate (30 min when unset), plus the
 * time to move the host's guests out and back at 100 MiB/s.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../consensus/state.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../migrate/placement.h"
#include "../migrate/plan.h"
#include "../patchfsm/version.h"
#include "../patchfsm/window.h"
#include "config.h"
#include "node.h"
#include "policy.h"

#define DEFAULT_CYCLE_MS (30ull * 60 * 1000)
#define MOVE_MIB_PER_S 100

int hv_policy_check(const struct hv_state *s, const char *key, const char *value,
                    char *why, size_t len)
{
	const struct hv_policy *p = &s->policy;
	struct hv_policy copy = *p;
	int rc;

	if (key == NULL)
		key = "";
	if (!strcmp(key, "max-concurrent")) {
		unsigned mc;
		if (hv_policy_max_concurrent(s, value, &mc) != HV_OK)
			return hv_errf(
			    why, len, HV_INVAL,
			    "max-concurrent: '%s' is not 1-%d, or is below the "
			    "%u host%s holding the lease now",
			    value, HV_MAX_HOLDERS, s->n_holders,
			    s->n_holders == 1 ? "" : "s");
		return HV_OK;
	}
	rc = hv_policy_apply(&copy, key, value);
	if (rc == HV_UNKNOWNCMD)
		return hv_errf(why, len, HV_INVAL,
		               "unknown policy '%s': window, zone, blackouts, canary, "
		               "soak, cycle-estimate, downtime-budget, "
		               "rollout-downtime-budget, quorum-guard, max-retries, "
		               "retry-delay, max-failed-hosts, max-concurrent",
		               key);
	if (strlen(value) > HV_POLICY_TEXT)
		return hv_errf(why, len, HV_INVAL, "%s: at most %d characters", key,
		               HV_POLICY_TEXT);
	if (!strcmp(key, "window") || !strcmp(key, "zone") || !strcmp(key, "blackouts")) {
		struct hv_window *w;
		if (copy.window[0] == '\0')
			return HV_OK; /* no window: zone and blackouts wait for one */
		if ((w = malloc(sizeof *w)) == NULL)
			return hv_errf(why, len, HV_NOMEM, "out of memory");
		rc = hv_window_parse(copy.window, copy.zone, copy.blackouts, w, why, len);
		free(w);
		return rc;
	}
	if (!strcmp(key, "canary")) {
		if (value[0] == '\0' || !strcmp(value, "auto"))
			return HV_OK;
		if (rc != HV_OK || hv_state_member((struct hv_state *)s, value) == NULL)
			return hv_errf(why, len, HV_INVAL,
			               "canary: '%s' is not a member ('auto' picks the "
			               "host with the fewest guests)",
			               value);
		return HV_OK;
	}
	if (rc != HV_OK && !strcmp(key, "quorum-guard"))
		return hv_errf(why, len, HV_INVAL, "quorum-guard: '%s' is not on or off",
		               value);
	if (rc != HV_OK)
		return hv_errf(
		    why, len, HV_INVAL,
		    "%s: '%s' is not a number in range (soak: seconds up to 30 "
		    "days; cycle-estimate: seconds up to a day; budgets: ms; "
		    "max-retries: 0-10; max-failed-hosts: 0-128)",
		    key, value);
	return HV_OK;
}

struct json_object *hv_policy_json(const struct hv_state *s)
{
	const struct hv_policy *p = &s->policy;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "window", json_object_new_string(p->window));
	json_object_object_add(o, "zone", json_object_new_string(p->zone));
	json_object_object_add(o, "blackouts", json_object_new_string(p->blackouts));
	json_object_object_add(o, "canary", json_object_new_string(p->canary));
	json_object_object_add(o, "soak_s", json_object_new_uint64(p->soak_ms / 1000));
	json_object_object_add(o, "cycle_estimate_s",
	                       json_object_new_uint64(p->cycle_estimate_ms / 1000));
	json_object_object_add(o, "downtime_budget_ms",
	                       json_object_new_uint64(p->downtime_budget_ms));
	json_object_object_add(o, "rollout_downtime_budget_ms",
	                       json_object_new_uint64(p->rollout_downtime_ms));
	json_object_object_add(o, "max_retries", json_object_new_uint64(p->max_retries));
	json_object_object_add(o, "retry_delay_s",
	                       json_object_new_uint64(p->retry_delay_ms / 1000));
	json_object_object_add(o, "quorum_guard",
	                       json_object_new_boolean(p->quorum_guard));
	json_object_object_add(o, "max_failed_hosts",
	                       json_object_new_uint64(p->max_failed));
	json_object_object_add(o, "max_concurrent",
	                       json_object_new_uint64(s->max_concurrent));
	return o;
}

uint64_t hv_policy_estimate_ms(const struct hv_state *s, const struct hv_member *m)
{
	uint64_t sum = 0, mem = 0;
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *x = &s->members[i];
		if (!x->removed && x->cycle == HV_PH_DONE && x->cycle_start_ms != 0 &&
		    x->cycle_end_ms > x->cycle_start_ms) {
			sum += x->cycle_end_ms - x->cycle_start_ms;
			n++;
		}
	}
	for (unsigned g = 0; g < m->n_guests; g++)
		mem += m->guests[g].mem_mib;
	return (n > 0                         ? sum / n
	        : s->policy.cycle_estimate_ms ? s->policy.cycle_estimate_ms
	                                      : DEFAULT_CYCLE_MS) +
	       2 * mem * 1000 / MOVE_MIB_PER_S;
}

static void fmt_utc(uint64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%MZ", &tm);
}

static void gate_done(struct hv_node *n, void *data, int rc, uint64_t index,
                      uint64_t token)
{
	(void)data;
	(void)index;
	(void)token;
	n->gate_busy = false;
	if (rc != HV_OK)
		hv_debug("patch gate not committed: %s", hv_strerror(rc));
}

static void commit(struct hv_node *n, struct hv_cmd *cmd)
{
	snprintf(cmd->by, sizeof cmd->by, "%s", n->cfg.name);
	n->gate_busy = true;
	if (hv_node_commit(n, cmd, gate_done, NULL) != HV_OK)
		n->gate_busy = false;
}

/* Say once why the next host waits. */
static void waiting(struct hv_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void waiting(struct hv_node *n, const char *fmt, ...)
{
	char msg[sizeof n->gate_wait];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strcmp(msg, n->gate_wait) != 0) {
		hv_info("rollout: %s", msg);
		snprintf(n->gate_wait, sizeof n->gate_wait, "%s", msg);
	}
}

/* Concurrency (max-concurrent): may next start beside the holders? Not
 * beside the canary (it goes alone, then its soak); only when the capacity
 * plan admits it (migrate/plan.h); the reason goes into *why. */
static bool admit_beside(struct hv_node *n, const struct hv_member *next, uint64_t now,
                         uint64_t stale, char *why, size_t len)
{
	const struct hv_state *s = &n->state;
	const struct hv_member *c =
	    hv_state_member((struct hv_state *)s, s->rollout.canary);
	struct hv_cmd *plan;
	char reason[512];
	int rc;

	if (c != NULL && (c->cycle != HV_PH_DONE || s->rollout.soak_until_ms != 0))
		return false; /* the canary's own turn */
	if ((plan = malloc(sizeof *plan)) == NULL)
		return false;
	rc = hv_plan_admit(s, next->name, now, stale, plan, reason, sizeof reason);
	if (rc != HV_OK) {
		waiting(n, "%s waits to start beside %s: %s", next->name,
		        s->holders[0].name, reason);
	} else {
		snprintf(why, len,
		         "the capacity plan admits it beside %s: %u guest%s to move, "
		         "none onto a lease holder",
		         s->holders[0].name, plan->n_moves,
		         plan->n_moves == 1 ? "" : "s");
	}
	free(plan);
	return rc == HV_OK;
}

/* A host granted the lease while its hvpeerd was down (or that died in its
 * pre-check) would hold it for ever: nothing has moved yet, so the leader
 * fails that pre-check on its behalf, fenced by its token, and the policy
 * (retries, max-failed-hosts, the pause) takes it from there. */
static bool fail_silent_precheck(struct hv_node *n, uint64_t now, uint64_t stale)
{
	const struct hv_state *s = &n->state;

	for (unsigned i = 0; i < s->n_holders; i++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, s->holders[i].name);
		struct hv_cmd cmd = {.type = HV_CMD_PATCH_STEP, .event = HV_EV_FAIL};
		if (m == NULL || m->removed || m->cycle != HV_PH_PRECHECK ||
		    m->report_ms + stale >= now || m->cycle_since_ms + stale >= now)
			continue;
		snprintf(cmd.name, sizeof cmd.name, "%s", m->name);
		snprintf(cmd.phase, sizeof cmd.phase, "%s", hv_phase_name(m->cycle));
		snprintf(cmd.reason, sizeof cmd.reason,
		         "pre-check: %s did not start it: it has not reported for %llu s "
		         "(is hvpeerd running there?)",
		         m->name, (unsigned long long)((now - m->report_ms) / 1000));
		cmd.token = s->holders[i].token;
		cmd.id = s->rollout.id;
		hv_warn("rollout: %s", cmd.reason);
		commit(n, &cmd);
		return true;
	}
	return false;
}

void hv_policy_tick(struct hv_node *n)
{
	const struct hv_state *s = &n->state;
	const struct hv_rollout *r = &s->rollout;
	const struct hv_member *next;
	struct hv_cmd cmd = {.type = HV_CMD_PATCH_GATE};
	uint64_t now = hv_now_ms();

	uint64_t stale = hv_node_stale_ms(n);
	char beside[256] = "";

	if (n->gate_busy || n->stopping || !hv_node_is_leader(n) || !r->active)
		return;
	if (!s->paused && fail_silent_precheck(n, now, stale))
		return;
	if (s->paused || (s->n_holders == 0 && !hv_policy_gated(s)) ||
	    s->n_holders >= s->max_concurrent || hv_state_quarantined(s, r->digest))
		return;
	next = hv_rollout_next(s);
	if (next == NULL || strcmp(r->gate, next->name) == 0)
		return;
	if (s->n_holders > 0 && !admit_beside(n, next, now, stale, beside, sizeof beside))
		return;
	if (r->soak_until_ms != 0) {
		const struct hv_member *c =
		    hv_state_member((struct hv_state *)s, r->canary);
		char until[32];
		if (now < r->soak_until_ms) {
			fmt_utc(r->soak_until_ms, until, sizeof until);
			waiting(n, "%s waits for the canary %s's soak (until %s)",
			        next->name, r->canary, until);
			return;
		}
		if (c == NULL || c->cycle != HV_PH_DONE ||
		    strcmp(c->version, r->version) != 0 || now > c->report_ms + stale) {
			struct hv_cmd p = {.type = HV_CMD_PAUSE};
			snprintf(
			    p.reason, sizeof p.reason,
			    "canary %s is not healthy after its soak (%s): the others "
			    "do not start",
			    r->canary,
			    c == NULL                             ? "gone"
			    : strcmp(c->version, r->version) != 0 ? "runs another version"
			    : c->cycle != HV_PH_DONE ? "its cycle is not done"
			                             : "it stopped reporting");
			commit(n, &p);
			return;
		}
	}
	if (next->retries > 0) {
		uint64_t at =
		    next->cycle_since_ms +
		    (s->policy.retry_delay_ms ? s->policy.retry_delay_ms : 60000);
		char until[32];
		if (now < at) {
			fmt_utc(at, until, sizeof until);
			waiting(n, "%s retries its pre-check at %s (retry %u of %u)",
			        next->name, until, next->retries, s->policy.max_retries);
			return;
		}
	}
	if (s->policy.quorum_guard || s->n_holders > 0) {
		/* With next down (and every holder: each may reboot), do the
		 * voters left keep quorum, and with the guard on, could they
		 * lose one more and keep it? */
		unsigned voters = 0, up = 0, need;
		for (unsigned i = 0; i < s->n_members; i++) {
			const struct hv_member *m = &s->members[i];
			if (m->removed || m->role != HV_ROLE_VOTER)
				continue;
			voters++;
			if (m->report_ms + stale >= now && m != next &&
			    hv_state_holder(s, m->name) == NULL)
				up++;
		}
		need = voters / 2 + (s->policy.quorum_guard ? 2 : 1);
		if (up < need) {
			waiting(
			    n,
			    "%s waits: with it%s down, %u of %u voters would be up, "
			    "%s",
			    next->name, s->n_holders > 0 ? " and the holders" : "", up,
			    voters,
			    s->policy.quorum_guard
			        ? "one failure from losing quorum (policy quorum-guard)"
			        : "without quorum");
			return;
		}
	}
	snprintf(cmd.reason, sizeof cmd.reason, "%s",
	         beside[0] != '\0'       ? beside
	         : r->soak_until_ms != 0 ? "the canary's soak is over"
	         : next->retries > 0     ? "its retry is due"
	                                 : "the quorum guard allows it");
	if (s->policy.window[0] != '\0') {
		struct hv_window w;
		char err[256], until[32];
		int64_t opens = 0, closes = 0;
		uint64_t need = hv_policy_estimate_ms(s, next);
		if (hv_window_parse(s->policy.window, s->policy.zone, s->policy.blackouts,
		                    &w, err, sizeof err) != HV_OK) {
			waiting(n, "the window policy does not parse here: %s", err);
			return;
		}
		hv_window_next_change(&w, (int64_t)now, &opens, &closes);
		if (!hv_window_fits(&w, (int64_t)now, (int64_t)need)) {
			if (opens > (int64_t)now)
				fmt_utc((uint64_t)opens, until, sizeof until);
			else
				snprintf(until, sizeof until, "a longer window");
			waiting(n,
			        "%s waits for a maintenance window of %" PRIu64
			        " min (its cycle's estimate): next %s",
			        next->name, (need + 59999) / 60000, until);
			return;
		}
		if (closes > 0)
			fmt_utc((uint64_t)closes, until, sizeof until);
		else
			snprintf(until, sizeof until, "beyond the horizon");
		snprintf(cmd.reason, sizeof cmd.reason,
		         "window open until %s; %s's cycle needs about %" PRIu64 " min",
		         until, next->name, (need + 59999) / 60000);
	}
	n->gate_wait[0] = '\0';
	hv_info("rollout: letting %s go: %s", next->name, cmd.reason);
	snprintf(cmd.name, sizeof cmd.name, "%s", next->name);
	cmd.id = r->id;
	commit(n, &cmd);
}

/* ---- hvpeer plan: the dry run -------------------------------------------- */

/* The earliest time from t on at which the window lets a cycle of need_ms
 * start (t itself without a window); 0 when none within the horizon. */
static uint64_t earliest_start(const struct hv_window *w, bool have_window, uint64_t t,
                               uint64_t need)
{
	if (!have_window)
		return t;
	for (int i = 0; i < 800; i++) {
		int64_t opens = 0, closes = 0;
		bool open;
		if (hv_window_fits(w, (int64_t)t, (int64_t)need))
			return t;
		open = hv_window_next_change(w, (int64_t)t, &opens, &closes);
		if (open)
			t = closes > 0 ? (uint64_t)closes
			               : 0; /* too short: the next one */
		else
			t = opens > 0 ? (uint64_t)opens : 0;
		if (t == 0)
			return 0;
	}
	return 0; /* none in 800 windows */
}

struct json_object *hv_policy_plan_json(const struct hv_state *s, const char *version,
                                        uint64_t now, uint64_t stale_ms)
{
	struct json_object *o = json_object_new_object(),
	                   *hosts = json_object_new_array();
	const struct hv_rollout *r = &s->rollout;
	const char *target = version != NULL && version[0] ? version
	                     : r->active                   ? r->version
	                                                   : "";
	struct hv_window w;
	bool have_window = false;
	char err[256] = "", canary[HV_NAME_MAX + 1] = "";
	const char *order[HV_MAX_MEMBERS];
	const struct hv_member *c;
	unsigned n = 0;
	uint64_t t = now, hist = 0, hist_n = 0;
	struct hv_cmd *plan = malloc(sizeof *plan);

	if (plan == NULL)
		return o;
	if (s->policy.window[0] != '\0') {
		if (hv_window_parse(s->policy.window, s->policy.zone, s->policy.blackouts,
		                    &w, err, sizeof err) == HV_OK)
			have_window = true;
		else
			json_object_object_add(o, "window_error",
			                       json_object_new_string(err));
	}
	for (unsigned i = 0; i < s->hist_count; i++) {
		const struct hv_move *mv = hv_state_history(s, i);
		if (mv->status == HV_MOVE_DONE && mv->m.action == HV_ACT_MIGRATE) {
			hist += mv->downtime_ms;
			hist_n++;
		}
	}
	/* the hosts to patch: the canary first (the rollout's, or the one a
	 * submit would pick), then name order */
	if (r->active)
		snprintf(canary, sizeof canary, "%s", r->canary);
	else if ((c = hv_policy_canary(s, target)) != NULL)
		snprintf(canary, sizeof canary, "%s", c->name);
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		unsigned k;
		if (m->removed || (target[0] && strcmp(m->version, target) == 0) ||
		    (r->active && target == r->version && m->cycle == HV_PH_DONE))
			continue;
		for (k = n; k > 0 && strcmp(order[k - 1], m->name) > 0; k--)
			order[k] = order[k - 1];
		order[k] = m->name;
		n++;
	}
	for (unsigned i = 0; canary[0] && i < n; i++)
		if (!strcmp(order[i], canary)) {
			memmove(&order[1], &order[0], i * sizeof order[0]);
			order[0] = hv_state_member((struct hv_state *)s, canary)->name;
			break;
		}
	for (unsigned i = 0; i < n; i++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, order[i]);
		struct json_object *h = json_object_new_object(),
		                   *mv = json_object_new_array();
		uint64_t need = hv_policy_estimate_ms(s, m), start;
		char why[512] = "";
		int rc;

		json_object_object_add(h, "name", json_object_new_string(m->name));
		json_object_object_add(h, "version", json_object_new_string(m->version));
		json_object_object_add(h, "canary",
		                       json_object_new_boolean(!strcmp(m->name, canary)));
		rc = hv_plan_evacuation(s, m->name, now, stale_ms, NULL, NULL, plan, why,
		                        sizeof why);
		json_object_object_add(h, "precheck",
		                       json_object_new_string(rc == HV_OK ? "ok" : why));
		for (unsigned k = 0; rc == HV_OK && k < plan->n_moves; k++) {
			struct json_object *x = json_object_new_object();
			json_object_object_add(
			    x, "guest", json_object_new_string(plan->moves[k].guest));
			json_object_object_add(x, "action",
			                       json_object_new_string(hv_action_name(
			                           plan->moves[k].action)));
			json_object_object_add(
			    x, "target", json_object_new_string(plan->moves[k].target));
			json_object_object_add(
			    x, "mem_mib", json_object_new_uint64(plan->moves[k].mem_mib));
			json_object_array_add(mv, x);
		}
		json_object_object_add(h, "moves", mv);
		json_object_object_add(h, "estimate_ms", json_object_new_uint64(need));
		start = t == 0 ? 0 : earliest_start(&w, have_window, t, need);
		json_object_object_add(h, "start_ms", json_object_new_uint64(start));
		json_object_object_add(h, "end_ms",
		                       json_object_new_uint64(start ? start + need : 0));
		t = start ? start + need : 0;
		if (t && !strcmp(m->name, canary))
			t += s->policy.soak_ms;
		json_object_array_add(hosts, h);
	}
	json_object_object_add(o, "version", json_object_new_string(target));
	json_object_object_add(o, "canary", json_object_new_string(canary));
	json_object_object_add(o, "now_ms", json_object_new_uint64(now));
	json_object_object_add(o, "end_ms", json_object_new_uint64(t));
	json_object_object_add(o, "downtime_ms_expected",
	                       json_object_new_uint64(hist_n ? hist / hist_n : 0));
	json_object_object_add(o, "downtime_samples", json_object_new_uint64(hist_n));
	json_object_object_add(o, "hosts", hosts);
	json_object_object_add(o, "policy", hv_policy_json(s));
	free(plan);
	return o;
}
