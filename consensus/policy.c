/*
 * Rollout policies in the replicated state: the maintenance window, the
 * canary and its soak, the downtime budgets.
 *
 * What needs no clock is decided here, at apply time, identically on every
 * replica: which host is the canary, that the others wait for its soak, that
 * a guest stunned longer than the budget stops the line. What needs a clock
 * and a time zone (is a window open, and long enough for the next host's
 * cycle? is the soak over?) the leader evaluates (node/policy.c) and commits
 * as a patch-gate naming the host it lets go; the grant consumes the gate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "state.h"

#define SOAK_MAX_S (30ull * 86400)

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long n;

	if (v[0] == '\0') {
		*out = 0;
		return HV_OK;
	}
	if (v[0] < '0' || v[0] > '9')
		return HV_INVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || n > max)
		return HV_INVAL;
	*out = n;
	return HV_OK;
}

int hv_policy_apply(struct hv_policy *p, const char *k, const char *v)
{
	uint64_t u = 0;

	if (!strcmp(k, "window") || !strcmp(k, "zone") || !strcmp(k, "blackouts")) {
		char *dst = !strcmp(k, "window") ? p->window
		            : !strcmp(k, "zone") ? p->zone
		                                 : p->blackouts;
		if (strlen(v) > HV_POLICY_TEXT)
			return HV_INVAL;
		memcpy(dst, v, strlen(v) + 1);
	} else if (!strcmp(k, "canary")) {
		if (v[0] != '\0' && strcmp(v, "auto") != 0 && !hv_name_valid(v))
			return HV_INVAL;
		memcpy(p->canary, v, strlen(v) + 1); /* a name: it fits */
	} else if (!strcmp(k, "soak")) {
		if (parse_u64(v, SOAK_MAX_S, &u) != HV_OK)
			return HV_INVAL;
		p->soak_ms = u * 1000;
	} else if (!strcmp(k, "cycle-estimate")) {
		if (parse_u64(v, 86400, &u) != HV_OK)
			return HV_INVAL;
		p->cycle_estimate_ms = u * 1000;
	} else if (!strcmp(k, "downtime-budget")) {
		if (parse_u64(v, 3600000, &u) != HV_OK)
			return HV_INVAL;
		p->downtime_budget_ms = u;
	} else if (!strcmp(k, "max-retries")) {
		if (parse_u64(v, 10, &u) != HV_OK)
			return HV_INVAL;
		p->max_retries = (unsigned)u;
	} else if (!strcmp(k, "retry-delay")) {
		if (parse_u64(v, 86400, &u) != HV_OK)
			return HV_INVAL;
		p->retry_delay_ms = u * 1000;
	} else if (!strcmp(k, "quorum-guard")) {
		if (v[0] != '\0' && strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			return HV_INVAL;
		p->quorum_guard = strcmp(v, "on") == 0;
	} else if (!strcmp(k, "max-failed-hosts")) {
		if (parse_u64(v, HV_MAX_MEMBERS, &u) != HV_OK)
			return HV_INVAL;
		p->max_failed = (unsigned)u;
	} else if (!strcmp(k, "rollout-downtime-budget")) {
		if (parse_u64(v, 86400000, &u) != HV_OK)
			return HV_INVAL;
		p->rollout_downtime_ms = u;
	} else {
		return HV_UNKNOWNCMD;
	}
	return HV_OK;
}

int hv_policy_max_concurrent(const struct hv_state *s, const char *v, unsigned *out)
{
	uint64_t u;

	if (parse_u64(v, HV_MAX_HOLDERS, &u) != HV_OK)
		return HV_INVAL;
	if (v[0] == '\0')
		u = 1;
	if (u < 1 || u < s->n_holders)
		return HV_INVAL;
	*out = (unsigned)u;
	return HV_OK;
}

int hv_policy_set(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	unsigned mc;

	if (c->by[0] == '\0')
		return HV_INVAL;
	if (!strcmp(c->name, "max-concurrent")) {
		/* kept where the lease rules read it (and SETTINGS sets it) */
		if (hv_policy_max_concurrent(s, c->reason, &mc) != HV_OK)
			return HV_INVAL;
		s->max_concurrent = mc;
		hv_state_event_add(s, index, c->time_ms,
		                   "policy max-concurrent = %u (by %s)", mc, c->by);
		hv_rollout_advance(s, index, c->time_ms);
		return HV_OK;
	}
	if (hv_policy_apply(&s->policy, c->name, c->reason) != HV_OK)
		return HV_INVAL;
	hv_state_event_add(s, index, c->time_ms, "policy %s = '%s' (by %s)", c->name,
	                   c->reason, c->by);
	return HV_OK;
}

const struct hv_member *hv_policy_canary(const struct hv_state *s, const char *target)
{
	const struct hv_member *best = NULL;

	if (s->policy.canary[0] == '\0')
		return NULL;
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		if (m->removed || strcmp(m->version, target) == 0)
			continue;
		if (strcmp(s->policy.canary, "auto") != 0) {
			if (strcmp(m->name, s->policy.canary) == 0)
				best = m;
		} else if (best == NULL || m->n_guests < best->n_guests ||
		           (m->n_guests == best->n_guests &&
		            strcmp(m->name, best->name) < 0)) {
			best = m;
		}
	}
	return best;
}

bool hv_policy_gated(const struct hv_state *s)
{
	const struct hv_member *next = hv_rollout_next(s);

	return s->policy.window[0] != '\0' || s->rollout.soak_until_ms != 0 ||
	       s->policy.quorum_guard || (next != NULL && next->retries > 0);
}

int hv_policy_gate(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_rollout *r = &s->rollout;
	const struct hv_member *next = hv_rollout_next(s);

	if (c->by[0] == '\0')
		return HV_INVAL;
	if (r->id == 0 || c->id != r->id || !r->active)
		return HV_NOROLLOUT;
	if (next == NULL || strcmp(next->name, c->name) != 0)
		return HV_INVAL; /* not the host that goes next */
	if (s->n_holders >= s->max_concurrent)
		return HV_LEASEFULL; /* no lease to give it */
	snprintf(r->gate, sizeof r->gate, "%s", c->name);
	r->soak_until_ms = 0; /* the leader saw it over */
	hv_state_event_add(s, index, c->time_ms, "gate open for %s (by %s): %s", c->name,
	                   c->by, c->reason);
	hv_rollout_advance(s, index, c->time_ms);
	return HV_OK;
}

void hv_policy_downtime(struct hv_state *s, uint64_t index, uint64_t time_ms,
                        const char *host, const char *guest, uint64_t downtime_ms)
{
	const struct hv_policy *p = &s->policy;
	char why[HV_REASON_MAX + 1] = "";

	if (s->rollout.active)
		s->rollout.downtime_ms += downtime_ms;
	if (p->downtime_budget_ms != 0 && downtime_ms > p->downtime_budget_ms)
		snprintf(
		    why, sizeof why,
		    "%s: guest %s was stunned %llu ms by its live migration, over the "
		    "downtime budget of %llu ms",
		    host, guest, (unsigned long long)downtime_ms,
		    (unsigned long long)p->downtime_budget_ms);
	else if (s->rollout.active && p->rollout_downtime_ms != 0 &&
	         s->rollout.downtime_ms > p->rollout_downtime_ms)
		snprintf(
		    why, sizeof why,
		    "the rollout's live migrations stunned guests %llu ms in all, over "
		    "its downtime budget of %llu ms",
		    (unsigned long long)s->rollout.downtime_ms,
		    (unsigned long long)p->rollout_downtime_ms);
	if (why[0] == '\0' || s->paused)
		return;
	s->paused = true;
	snprintf(s->paused_by, sizeof s->paused_by, "policy");
	snprintf(s->pause_reason, sizeof s->pause_reason, "%s", why);
	s->paused_ms = time_ms;
	hv_state_event_add(s, index, time_ms, "paused by policy: %s", why);
}
