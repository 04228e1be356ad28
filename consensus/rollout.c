/*
 * The patch rollout in the replicated state: which host patches now, and
 * each host's phase of the cycle (patchfsm/cycle.c is the table).
 *
 * Every replica applies the same steps, so every replica agrees on who is
 * next. The parts of a transition that only change the state are done here,
 * at apply time, in the same log entry: releasing the lease at DONE and
 * granting it to the next host (the handoff costs no extra round trip),
 * pausing the cluster on a failure, quarantining a patch that failed. The
 * host's driver (node/patch.c) does the rest (migrations, the boot bank,
 * the reboot) and commits each outcome as a PATCH_STEP.
 *
 * Rules:
 *  - one rollout at a time; a version below the highest ever submitted is
 *    refused (anti-rollback), and so is another bundle of the same version;
 *  - a quarantined patch is never submitted again nor handed on;
 *  - hosts go in name order, one at a time, and only while the cluster is
 *    not paused, the lease is free and no host is mid-cycle;
 *  - a step names the phase it leaves and the rollout it belongs to, and a
 *    leased phase needs the holder's current token: a stale or repeated
 *    step is refused and changes nothing;
 *  - a host's step reports an outcome (ok, fail, booted-new, booted-old):
 *    grants, pauses and aborts happen only here, never by a host's word.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/err.h"
#include "../patchfsm/version.h"
#include "state.h"

bool hv_state_quarantined(const struct hv_state *s, const char *digest)
{
	for (unsigned i = 0; i < s->n_quarantine; i++)
		if (strcmp(s->quarantine[i].digest, digest) == 0)
			return true;
	return false;
}

static bool digest_valid(const char *d)
{
	size_t n = strlen(d);

	if (n != HV_DIGEST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
			return false;
	return true;
}

/* Enter a phase, keeping the time spent in the one left. */
static void set_phase(struct hv_member *m, int phase, uint64_t t)
{
	if (t > m->cycle_since_ms && m->cycle_since_ms != 0 && m->cycle >= 0 &&
	    m->cycle < HV__PH_N)
		m->phase_ms[m->cycle] += t - m->cycle_since_ms;
	m->cycle = phase;
	m->cycle_since_ms = t;
	m->wd_cycles = 0; /* the watchdog watches one phase */
	m->wd_last_ms = 0;
}

static bool mid_cycle(const struct hv_member *m)
{
	return !m->removed && (hv_phase_flags(m->cycle) & HV_PHF_LEASED);
}

/* Mid-cycle, and not a failure the line went on after (max-failed-hosts)
 * whose host gave its lease back: that one blocks nothing. */
static bool occupied(const struct hv_state *s, const struct hv_member *m)
{
	return mid_cycle(m) &&
	       (m->cycle != HV_PH_FAILED || hv_state_holder(s, m->name) != NULL);
}

/* The canary of a new rollout (policy canary), recorded with an event. */
static void pick_canary(struct hv_state *s, uint64_t index, uint64_t t)
{
	struct hv_rollout *r = &s->rollout;
	const struct hv_member *best = hv_policy_canary(s, r->version);

	if (best == NULL)
		return;
	snprintf(r->canary, sizeof r->canary, "%s", best->name);
	hv_state_event_add(s, index, t, "canary: %s patches alone first%s", best->name,
	                   s->policy.soak_ms ? ", then a soak" : "");
}

const struct hv_member *hv_rollout_next(const struct hv_state *s)
{
	const struct hv_rollout *r = &s->rollout;
	const struct hv_member *next = NULL;

	if (!r->active || r->aborted)
		return NULL;
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		if (m->removed || m->cycle != HV_PH_WAIT_LEASE)
			continue;
		if (r->canary[0] != '\0' && strcmp(m->name, r->canary) == 0)
			return m; /* the canary goes first */
		if (next == NULL || strcmp(m->name, next->name) < 0)
			next = m;
	}
	return next;
}

int hv_rollout_submit(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_rollout *r = &s->rollout;
	const struct hv_member *src = hv_state_member(s, c->source);
	unsigned waiting = 0;

	if (c->by[0] == '\0' || !hv_version_valid(c->version) || !digest_valid(c->digest))
		return HV_INVAL;
	if (src == NULL)
		return HV_NOMEMBER;
	if (src->removed)
		return HV_REMOVED;
	if (r->active)
		return HV_EXISTS;
	for (unsigned i = 0; i < s->n_members; i++)
		if (occupied(s, &s->members[i]))
			return HV_EXISTS; /* a failed host still holds its phase */
	if (hv_state_quarantined(s, c->digest))
		return HV_QUARANTINED;
	if (s->floor_version[0] != '\0') {
		int cmp = hv_version_cmp(c->version, s->floor_version);
		if (cmp < 0 || (cmp == 0 && strcmp(c->digest, s->floor_digest) != 0))
			return HV_ROLLBACK;
	}
	memset(r, 0, sizeof *r);
	r->id = index;
	r->active = true;
	snprintf(r->bundle, sizeof r->bundle, "%s", c->bundle);
	snprintf(r->version, sizeof r->version, "%s", c->version);
	snprintf(r->digest, sizeof r->digest, "%s", c->digest);
	snprintf(r->key_id, sizeof r->key_id, "%s", c->key_id);
	snprintf(r->source, sizeof r->source, "%s", c->source);
	snprintf(r->by, sizeof r->by, "%s", c->by);
	r->submitted_ms = c->time_ms;
	snprintf(s->floor_version, sizeof s->floor_version, "%s", c->version);
	snprintf(s->floor_digest, sizeof s->floor_digest, "%s", c->digest);
	for (unsigned i = 0; i < s->n_members; i++) {
		struct hv_member *m = &s->members[i];
		if (m->removed)
			continue;
		memset(m->phase_ms, 0, sizeof m->phase_ms);
		m->cycle_error[0] = '\0';
		m->cycle_start_ms = m->cycle_end_ms = 0;
		m->retries = 0;
		m->cycle_since_ms = c->time_ms;
		if (strcmp(m->version, c->version) == 0) {
			m->cycle = HV_PH_DONE; /* already there */
			r->done++;
		} else {
			m->cycle = HV_PH_WAIT_LEASE;
			waiting++;
		}
	}
	hv_state_event_add(
	    s, index, c->time_ms,
	    "patch %s %s (digest %.12s) submitted by %s: %u host%s to patch", c->bundle,
	    c->version, c->digest, c->by, waiting, waiting == 1 ? "" : "s");
	pick_canary(s, index, c->time_ms);
	hv_rollout_advance(s, index, c->time_ms);
	return HV_OK;
}

/* The state's own part of a transition's actions. */
static void state_actions(struct hv_state *s, uint64_t index, struct hv_member *m,
                          unsigned acts, const char *why, uint64_t t)
{
	struct hv_rollout *r = &s->rollout;
	const struct hv_holder *h;

	if ((acts & HV_ACT_RELEASE_LEASE) && (h = hv_state_holder(s, m->name)) != NULL) {
		hv_state_event_add(s, index, t, "lease released by %s (token %llu)",
		                   m->name, (unsigned long long)h->token);
		hv_state_holder_remove(s, (unsigned)(h - s->holders));
	}
	if ((acts & HV_ACT_QUARANTINE) && !hv_state_quarantined(s, r->digest)) {
		struct hv_quarantine *q;
		if (s->n_quarantine == HV_QUARANTINE_MAX) {
			memmove(&s->quarantine[0], &s->quarantine[1],
			        (HV_QUARANTINE_MAX - 1) * sizeof s->quarantine[0]);
			s->n_quarantine--;
		}
		q = &s->quarantine[s->n_quarantine++];
		q->index = index;
		snprintf(q->digest, sizeof q->digest, "%s", r->digest);
		snprintf(q->version, sizeof q->version, "%s", r->version);
		snprintf(q->reason, sizeof q->reason, "%s: %s", m->name, why);
		hv_state_event_add(s, index, t, "patch %s %s quarantined: failed on %s",
		                   r->bundle, r->version, m->name);
	}
	if ((acts & HV_ACT_PAUSE_CLUSTER) && !s->paused) {
		s->paused = true;
		snprintf(s->paused_by, sizeof s->paused_by, "hvpeerd@%.40s", m->name);
		snprintf(s->pause_reason, sizeof s->pause_reason,
		         "%s: patch %s failed: %s", m->name, r->version,
		         why[0] ? why : "no reason given");
		s->paused_ms = t;
		hv_state_event_add(s, index, t, "paused by %s: %s", s->paused_by,
		                   s->pause_reason);
	}
}

int hv_rollout_step(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_rollout *r = &s->rollout;
	struct hv_member *m = hv_state_member(s, c->name);
	char why[HV_REASON_MAX + 1];
	unsigned acts;
	int next, from, rv;

	if (m == NULL)
		return HV_NOMEMBER;
	if (m->removed)
		return HV_REMOVED;
	if (r->id == 0 || c->id != r->id)
		return HV_BADTOKEN; /* a step of another rollout */
	/* A host reports outcomes; grants, pauses and aborts are the state's. */
	if (c->event != HV_EV_OK && c->event != HV_EV_FAIL &&
	    c->event != HV_EV_BOOTED_NEW && c->event != HV_EV_BOOTED_OLD)
		return HV_INVAL;
	from = hv_phase_parse(c->phase);
	if (from < 0 || from != m->cycle)
		return HV_INVAL; /* not the phase the host is in: stale or repeated */
	if ((hv_phase_flags(from) & HV_PHF_LEASED) &&
	    (rv = hv_state_fenced(s, m->name, c->token)) != HV_OK)
		return rv;
	if (hv_cycle_step(from, c->event, &next, &acts) != HV_OK)
		return HV_INVAL;
	/* A pre-check that failed is tried again (policy max-retries): back in
	 * line, the lease given back, the cluster not paused; the leader's gate
	 * lets it go after retry-delay. */
	if (from == HV_PH_PRECHECK && c->event == HV_EV_FAIL &&
	    m->retries < s->policy.max_retries) {
		m->retries++;
		state_actions(s, index, m, HV_ACT_RELEASE_LEASE, "", c->time_ms);
		set_phase(m, HV_PH_WAIT_LEASE, c->time_ms);
		hv_state_event_add(s, index, c->time_ms,
		                   "%s: patch %s: pre-check failed, retry %u of %u: %s",
		                   m->name, r->version, m->retries, s->policy.max_retries,
		                   c->reason);
		hv_rollout_advance(s, index, c->time_ms);
		return HV_OK;
	}
	/* A canary that fails quarantines the patch, whatever failed. */
	if (strcmp(m->name, r->canary) == 0 &&
	    (c->event == HV_EV_FAIL || c->event == HV_EV_BOOTED_OLD))
		acts |= HV_ACT_QUARANTINE;
	/* A failure the policy lets the line go on after (max-failed-hosts):
	 * not the patch's fault (that quarantines it), and the next host can
	 * get a lease: this one gives it back (a pre-check, nothing moved), or
	 * another is free (max-concurrent). The host stays failed, drained if
	 * it was, for an operator; the others go on. */
	if ((acts & HV_ACT_PAUSE_CLUSTER) && !(acts & HV_ACT_QUARANTINE) &&
	    r->failed < s->policy.max_failed &&
	    ((acts & HV_ACT_RELEASE_LEASE) || s->n_holders < s->max_concurrent)) {
		acts &= ~(unsigned)HV_ACT_PAUSE_CLUSTER;
		next = HV_PH_FAILED;
		hv_state_event_add(
		    s, index, c->time_ms,
		    "%s failed (%u of max-failed-hosts %u): the line goes on", m->name,
		    r->failed + 1, s->policy.max_failed);
	}
	/* Leaving the lease needs the host out of maintenance. */
	if ((acts & HV_ACT_RELEASE_LEASE) && m->maint != HV_MAINT_NONE)
		return HV_INMAINT;
	/* The first failure stays in front: a rollback's outcome follows it. */
	if (from == HV_PH_ROLLBACK && m->cycle_error[0] != '\0')
		snprintf(why, sizeof why, "%.150s; rollback: %.90s", m->cycle_error,
		         c->reason);
	else
		snprintf(why, sizeof why, "%s", c->reason);
	if (c->event == HV_EV_FAIL || c->event == HV_EV_BOOTED_OLD)
		snprintf(m->cycle_error, sizeof m->cycle_error, "%s", why);
	if (from == HV_PH_PRECHECK && next == HV_PH_ENTER_MAINT)
		m->cycle_start_ms = c->time_ms;
	if (c->version[0] != '\0')
		snprintf(m->version, sizeof m->version, "%s", c->version);
	state_actions(s, index, m, acts, why, c->time_ms);
	set_phase(m, next, c->time_ms);
	if (next == HV_PH_DONE) {
		m->cycle_end_ms = c->time_ms;
		r->done++;
		if (strcmp(m->name, r->canary) == 0 && s->policy.soak_ms != 0) {
			r->soak_until_ms = c->time_ms + s->policy.soak_ms;
			hv_state_event_add(
			    s, index, c->time_ms,
			    "canary %s done: a soak of %llu s before the "
			    "others",
			    m->name, (unsigned long long)(s->policy.soak_ms / 1000));
		}
	} else if (next == HV_PH_FAILED) {
		m->cycle_end_ms = c->time_ms;
		r->failed++;
	}
	hv_state_event_add(s, index, c->time_ms, "%s: patch %s: %s -> %s%s%s", m->name,
	                   r->version, hv_phase_name(from), hv_phase_name(next),
	                   c->reason[0] ? ": " : "", c->reason);
	hv_rollout_advance(s, index, c->time_ms);
	return HV_OK;
}

/* An operator broke the lease of a host mid-cycle (lease break --force,
 * e.g. a host the watchdog gave up on): whatever it was doing, its cycle
 * failed. Without this it would stay in a leased phase with no lease, and
 * the line would wait for it forever. The line stops, as after any
 * failure, unless the policy lets it go on (max-failed-hosts); the
 * canary's, as any failure of the canary, quarantines the patch: the
 * others must never start on a patch whose canary did not finish. */
void hv_rollout_lease_broken(struct hv_state *s, uint64_t index, struct hv_member *m,
                             const char *why, uint64_t t)
{
	struct hv_rollout *r = &s->rollout;
	int from = m->cycle;

	if (r->id == 0 || !mid_cycle(m) || from == HV_PH_FAILED)
		return;
	snprintf(m->cycle_error, sizeof m->cycle_error, "%s", why);
	set_phase(m, HV_PH_FAILED, t);
	m->cycle_end_ms = t;
	hv_state_event_add(s, index, t, "%s: patch %s: %s -> %s: %s", m->name, r->version,
	                   hv_phase_name(from), hv_phase_name(HV_PH_FAILED), why);
	if (strcmp(m->name, r->canary) == 0)
		state_actions(s, index, m, HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE, why,
		              t);
	else if (r->failed < s->policy.max_failed)
		hv_state_event_add(
		    s, index, t,
		    "%s failed (%u of max-failed-hosts %u): the line goes on", m->name,
		    r->failed + 1, s->policy.max_failed);
	else
		state_actions(s, index, m, HV_ACT_PAUSE_CLUSTER, why, t);
	r->failed++;
}

int hv_rollout_abort(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_rollout *r = &s->rollout;
	unsigned stopped = 0;

	if (c->by[0] == '\0' || c->reason[0] == '\0')
		return HV_INVAL;
	if (r->id == 0)
		return HV_NOROLLOUT;
	for (unsigned i = 0; i < s->n_members; i++) {
		struct hv_member *m = &s->members[i];
		int next;
		unsigned acts;
		if (m->removed ||
		    hv_cycle_step(m->cycle, HV_EV_ABORT, &next, &acts) != HV_OK)
			continue;
		state_actions(s, index, m, acts & HV_ACT_RELEASE_LEASE, "", c->time_ms);
		set_phase(m, next, c->time_ms);
		stopped++;
	}
	if (!r->active && stopped == 0)
		return HV_NOROLLOUT; /* nothing to abort */
	r->aborted = true;
	hv_state_event_add(
	    s, index, c->time_ms, "patch %s %s aborted by %s: %s (%u host%s stopped)",
	    r->bundle, r->version, c->by, c->reason, stopped, stopped == 1 ? "" : "s");
	hv_rollout_advance(s, index, c->time_ms);
	return HV_OK;
}

/* The phases in which a holder reboots, and may not come back. */
static bool rebooting(int phase)
{
	return phase == HV_PH_REBOOT || phase == HV_PH_ROLLBACK;
}

int hv_rollout_watchdog(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_rollout *r = &s->rollout;
	struct hv_member *m = hv_state_member(s, c->name);
	int rv;

	if (c->by[0] == '\0' || c->reason[0] == '\0')
		return HV_INVAL;
	if (m == NULL)
		return HV_NOMEMBER;
	if (m->removed)
		return HV_REMOVED;
	if (r->id == 0 || c->id != r->id)
		return HV_BADTOKEN;
	if (hv_phase_parse(c->phase) != m->cycle || !rebooting(m->cycle))
		return HV_INVAL; /* it came back meanwhile: nothing to do */
	if ((rv = hv_state_fenced(s, m->name, c->token)) != HV_OK)
		return rv;
	switch (c->event) {
	case HV_WD_CYCLE:
		if (s->paused)
			return HV_PAUSED; /* the line stopped: hands off */
		m->wd_cycles++;
		m->wd_last_ms = c->time_ms;
		hv_state_event_add(
		    s, index, c->time_ms,
		    "watchdog (%s): %s: %s; power cycle %u through its BMC", c->by,
		    m->name, c->reason, m->wd_cycles);
		return HV_OK;
	case HV_WD_FOLLOWED:
		hv_state_event_add(s, index, c->time_ms, "watchdog (%s): %s: %s", c->by,
		                   m->name, c->reason);
		return HV_OK;
	case HV_WD_GAVE_UP:
		snprintf(m->cycle_error, sizeof m->cycle_error, "%s", c->reason);
		hv_state_event_add(s, index, c->time_ms,
		                   "watchdog (%s): %s: %s; the lease stays with it",
		                   c->by, m->name, c->reason);
		if (!s->paused) {
			s->paused = true;
			snprintf(s->paused_by, sizeof s->paused_by, "watchdog@%.40s",
			         c->by);
			snprintf(s->pause_reason, sizeof s->pause_reason, "%s",
			         c->reason);
			s->paused_ms = c->time_ms;
			hv_state_event_add(s, index, c->time_ms, "paused by %s: %s",
			                   s->paused_by, s->pause_reason);
		}
		return HV_OK;
	}
	return HV_INVAL;
}

int hv_rollout_watchdog_due(const struct hv_state *s, uint64_t now_ms,
                            uint64_t timeout_ms, unsigned max_cycles,
                            const struct hv_member **who, uint64_t *token)
{
	const struct hv_rollout *r = &s->rollout;

	if (r->id == 0 || s->paused)
		return 0;
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		const struct hv_holder *h = hv_state_holder(s, m->name);
		uint64_t since =
		    m->wd_last_ms > m->cycle_since_ms ? m->wd_last_ms : m->cycle_since_ms;
		if (m->removed || h == NULL || !rebooting(m->cycle) ||
		    now_ms < since + timeout_ms)
			continue;
		*who = m;
		*token = h->token;
		if (m->wd_cycles < max_cycles && m->bmc[0] != '\0' &&
		    strcmp(m->bmc, "none") != 0 && m->bmc_address[0] != '\0')
			return HV_WD_CYCLE;
		return HV_WD_GAVE_UP;
	}
	return 0;
}

void hv_rollout_resume(struct hv_state *s, uint64_t index, uint64_t time_ms)
{
	(void)index;
	for (unsigned i = 0; i < s->n_members; i++) {
		struct hv_member *m = &s->members[i];
		int next;
		unsigned acts;
		if (!m->removed && m->cycle == HV_PH_PAUSED &&
		    hv_cycle_step(m->cycle, HV_EV_RESUME, &next, &acts) == HV_OK)
			set_phase(m, next, time_ms);
		/* The operator looked at a host that did not come back: the
		 * watchdog starts over from now, with its whole budget. */
		if (!m->removed && rebooting(m->cycle)) {
			m->wd_cycles = 0;
			m->wd_last_ms = time_ms;
		}
	}
}

void hv_rollout_advance(struct hv_state *s, uint64_t index, uint64_t time_ms)
{
	struct hv_rollout *r = &s->rollout;
	struct hv_member *next = NULL;
	unsigned busy = 0;

	if (!r->active)
		return;
	for (unsigned i = 0; i < s->n_members; i++)
		if (occupied(s, &s->members[i]))
			busy++;
	{
		const struct hv_member *nx = hv_rollout_next(s);
		next = nx != NULL ? hv_state_member(s, nx->name) : NULL;
	}
	if (next == NULL) {
		bool paused_hosts = false;
		if (busy > 0)
			return;
		for (unsigned i = 0; i < s->n_members; i++)
			if (!s->members[i].removed && s->members[i].cycle == HV_PH_PAUSED)
				paused_hosts = true;
		if (paused_hosts && !r->aborted)
			return; /* they go on after a resume */
		r->active = false;
		r->finished_ms = time_ms;
		hv_state_event_add(
		    s, index, time_ms, "patch %s %s %s: %u host%s patched, %u failed",
		    r->bundle, r->version, r->aborted ? "aborted" : "rolled out", r->done,
		    r->done == 1 ? "" : "s", r->failed);
		return;
	}
	if (s->paused || s->n_holders >= s->max_concurrent ||
	    hv_state_quarantined(s, r->digest) || index <= s->last_token)
		return;
	/* A host mid-cycle: another starts beside it only when the leader's
	 * capacity plan admitted it (max-concurrent), by a gate naming it. A
	 * window or a soak: only the host the leader let go. */
	if ((busy > 0 || s->n_holders > 0 || hv_policy_gated(s)) &&
	    strcmp(r->gate, next->name) != 0)
		return;
	r->gate[0] = '\0';
	/* The grant: the same entry that unblocked the line. */
	{
		int phase;
		unsigned acts;
		hv_state_grant(s, next->name, index, time_ms);
		hv_cycle_step(HV_PH_WAIT_LEASE, HV_EV_GRANTED, &phase, &acts);
		set_phase(next, phase, time_ms);
		hv_state_event_add(s, index, time_ms,
		                   "lease granted to %s (token %llu) for patch %s%s",
		                   next->name, (unsigned long long)index, r->version,
		                   s->n_holders > 1 ? " (beside another holder)" : "");
	}
}
