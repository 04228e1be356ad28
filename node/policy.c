/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Rollout policies on the node's side (consensus/policy.c keeps them in the
 * replicated state):
 *
 *  - `hvpeer policy set KEY VALUE` is checked here before it is proposed: a
 *    window is parsed with its zone and blackouts (patchfsm/window.h), a
 *    canary must be a member;
 *  - the leader's gate: on every tick the leader asks patchfsm/gate.h what
 *    to do about the next host of a rollout (wait for the canary's soak, a
 *    retry's delay, the quorum guard, a window, the capacity plan; fail a
 *    silent pre-check; pause for an unhealthy canary; let it go) and
 *    commits what it says, one command at a time, saying once in the log
 *    why the next host waits;
 *  - `hvpeer plan`, the dry run.
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
#include "../patchfsm/gate.h"
#include "../patchfsm/version.h"
#include "../patchfsm/window.h"
#include "config.h"
#include "node.h"
#include "policy.h"

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

void hv_policy_tick(struct hv_node *n)
{
	struct hv_cmd cmd;
	char why[sizeof n->gate_wait];

	if (n->gate_busy || n->stopping || !hv_node_is_leader(n))
		return;
	switch (hv_gate_decide(&n->state, hv_node_lead_now_ms(n), hv_node_stale_ms(n),
	                       &cmd, why, sizeof why)) {
	case HV_GATE_WAIT:
		waiting(n, "%s", why);
		return;
	case HV_GATE_COMMIT:
		if (cmd.type == HV_CMD_PATCH_GATE) {
			n->gate_wait[0] = '\0';
			hv_info("rollout: letting %s go: %s", cmd.name, why);
		} else {
			hv_warn("rollout: %s", why);
		}
		commit(n, &cmd);
		return;
	default:
		return;
	}
}

/* ---- hvpeer plan: the dry run -------------------------------------------- */

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
		start = t == 0 ? 0 : hv_gate_earliest(&w, have_window, t, need);
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
