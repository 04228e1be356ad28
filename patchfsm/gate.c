/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The rollout's gate (gate.h): the leader's decision about the next host of
 * a rollout, from the committed state and a time. The state machine grants
 * a gated host only through the patch-gate this commits (consensus/policy.c
 * hv_policy_gate), so every policy the state cannot judge on its own (it
 * has no clock but the committed times: the soak's end, a retry's delay,
 * the window, the capacity plan, the quorum guard) is judged here.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../consensus/state.h"
#include "../lib/err.h"
#include "../migrate/plan.h"
#include "gate.h"
#include "window.h"

#define DEFAULT_CYCLE_MS (30ull * 60 * 1000)
#define DEFAULT_RETRY_MS 60000ull
#define MOVE_MIB_PER_S 100

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

void hv_gate_fmt_utc(uint64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%MZ", &tm);
}

static int waits(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int waits(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return HV_GATE_WAIT;
}

/* A host granted the lease while its hvpeerd was down (or that died in its
 * pre-check) would hold it for ever: nothing has moved yet, so the leader
 * fails that pre-check on its behalf, fenced by its token. */
static bool silent_precheck(const struct hv_state *s, uint64_t now, uint64_t stale,
                            struct hv_cmd *out)
{
	for (unsigned i = 0; i < s->n_holders; i++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, s->holders[i].name);
		if (m == NULL || m->removed || m->cycle != HV_PH_PRECHECK ||
		    m->report_ms + stale >= now || m->cycle_since_ms + stale >= now)
			continue;
		memset(out, 0, sizeof *out);
		out->type = HV_CMD_PATCH_STEP;
		out->event = HV_EV_FAIL;
		snprintf(out->name, sizeof out->name, "%s", m->name);
		snprintf(out->phase, sizeof out->phase, "%s", hv_phase_name(m->cycle));
		snprintf(out->reason, sizeof out->reason,
		         "pre-check: %s did not start it: it has not reported for %llu s "
		         "(is hvpeerd running there?)",
		         m->name, (unsigned long long)((now - m->report_ms) / 1000));
		out->token = s->holders[i].token;
		out->id = s->rollout.id;
		return true;
	}
	return false;
}

/* Concurrency (max-concurrent): may next start beside the holders? Not
 * beside the canary (it goes alone, then its soak); only when the capacity
 * plan admits it. */
static int beside(const struct hv_state *s, const struct hv_member *next, uint64_t now,
                  uint64_t stale, char *why, size_t len)
{
	const struct hv_member *c =
	    hv_state_member((struct hv_state *)s, s->rollout.canary);
	struct hv_cmd *plan;
	char reason[512];
	int rc;

	if (c != NULL && (c->cycle != HV_PH_DONE || s->rollout.soak_until_ms != 0))
		return HV_GATE_IDLE; /* the canary's own turn */
	if ((plan = malloc(sizeof *plan)) == NULL)
		return HV_GATE_IDLE;
	rc = hv_plan_admit(s, next->name, now, stale, plan, reason, sizeof reason);
	if (rc != HV_OK)
		waits(why, len, "%s waits to start beside %s: %s", next->name,
		      s->holders[0].name, reason);
	else
		snprintf(why, len,
		         "the capacity plan admits it beside %s: %u guest%s to move, "
		         "none onto a lease holder",
		         s->holders[0].name, plan->n_moves,
		         plan->n_moves == 1 ? "" : "s");
	free(plan);
	return rc == HV_OK ? HV_GATE_COMMIT : HV_GATE_WAIT;
}

/* The canary's soak: WAIT, COMMIT (a pause in out) or IDLE (over, healthy). */
static int soak(const struct hv_state *s, const struct hv_member *next, uint64_t now,
                uint64_t stale, struct hv_cmd *out, char *why, size_t len)
{
	const struct hv_rollout *r = &s->rollout;
	const struct hv_member *c = hv_state_member((struct hv_state *)s, r->canary);
	char until[32];

	if (now < r->soak_until_ms) {
		hv_gate_fmt_utc(r->soak_until_ms, until, sizeof until);
		return waits(why, len, "%s waits for the canary %s's soak (until %s)",
		             next->name, r->canary, until);
	}
	if (c != NULL && c->cycle == HV_PH_DONE && strcmp(c->version, r->version) == 0 &&
	    now <= c->report_ms + stale)
		return HV_GATE_IDLE;
	memset(out, 0, sizeof *out);
	out->type = HV_CMD_PAUSE;
	snprintf(out->reason, sizeof out->reason,
	         "canary %s is not healthy after its soak (%s): the others do not start",
	         r->canary,
	         c == NULL                             ? "gone"
	         : strcmp(c->version, r->version) != 0 ? "runs another version"
	         : c->cycle != HV_PH_DONE              ? "its cycle is not done"
	                                               : "it stopped reporting");
	snprintf(why, len, "%s", out->reason);
	return HV_GATE_COMMIT;
}

/* With next down (and every holder: each may reboot), do the voters left
 * keep quorum, and with the guard on, could they lose one more and keep it? */
static bool quorum_holds(const struct hv_state *s, const struct hv_member *next,
                         uint64_t now, uint64_t stale, char *why, size_t len)
{
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
	if (up >= need)
		return true;
	waits(why, len, "%s waits: with it%s down, %u of %u voters would be up, %s",
	      next->name, s->n_holders > 0 ? " and the holders" : "", up, voters,
	      s->policy.quorum_guard
	          ? "one failure from losing quorum (policy quorum-guard)"
	          : "without quorum");
	return false;
}

/* The window: IDLE when one is open long enough for next's cycle (why then
 * says until when), else WAIT. */
static int window(const struct hv_state *s, const struct hv_member *next, uint64_t now,
                  char *why, size_t len)
{
	struct hv_window w;
	char err[256], until[32];
	int64_t opens = 0, closes = 0;
	uint64_t need = hv_policy_estimate_ms(s, next);

	if (hv_window_parse(s->policy.window, s->policy.zone, s->policy.blackouts, &w,
	                    err, sizeof err) != HV_OK)
		return waits(why, len, "the window policy does not parse here: %s", err);
	hv_window_next_change(&w, (int64_t)now, &opens, &closes);
	if (!hv_window_fits(&w, (int64_t)now, (int64_t)need)) {
		uint64_t at = hv_gate_earliest(&w, true, now, need);
		if (at != 0)
			hv_gate_fmt_utc(at, until, sizeof until);
		else
			snprintf(until, sizeof until, "none within %d days",
			         HV_WINDOW_HORIZON_DAYS);
		return waits(why, len,
		             "%s waits for a maintenance window of %" PRIu64
		             " min (its cycle's estimate): next %s",
		             next->name, (need + 59999) / 60000, until);
	}
	if (closes > 0)
		hv_gate_fmt_utc((uint64_t)closes, until, sizeof until);
	else
		snprintf(until, sizeof until, "beyond the horizon");
	snprintf(why, len, "window open until %s; %s's cycle needs about %" PRIu64 " min",
	         until, next->name, (need + 59999) / 60000);
	return HV_GATE_IDLE;
}

/* The earliest time from t on at which the window lets a cycle of need_ms
 * start (t itself without a window); 0 when none within the horizon. */
uint64_t hv_gate_earliest(const struct hv_window *w, bool have_window, uint64_t t,
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

int hv_gate_decide(const struct hv_state *s, uint64_t now, uint64_t stale,
                   struct hv_cmd *out, char *why, size_t len)
{
	const struct hv_rollout *r = &s->rollout;
	const struct hv_member *next;
	char admitted[256] = "";
	int act;

	why[0] = '\0';
	if (!r->active)
		return HV_GATE_IDLE;
	if (!s->paused && silent_precheck(s, now, stale, out)) {
		snprintf(why, len, "%s", out->reason);
		return HV_GATE_COMMIT;
	}
	if (s->paused || (s->n_holders == 0 && !hv_policy_gated(s)) ||
	    s->n_holders >= s->max_concurrent || hv_state_quarantined(s, r->digest))
		return HV_GATE_IDLE;
	next = hv_rollout_next(s);
	if (next == NULL || strcmp(r->gate, next->name) == 0)
		return HV_GATE_IDLE;
	if (s->n_holders > 0 && (act = beside(s, next, now, stale, admitted,
	                                      sizeof admitted)) != HV_GATE_COMMIT) {
		snprintf(why, len, "%s", admitted);
		return act;
	}
	if (r->soak_until_ms != 0 &&
	    (act = soak(s, next, now, stale, out, why, len)) != HV_GATE_IDLE)
		return act;
	if (next->retries > 0) {
		uint64_t at = next->cycle_since_ms + (s->policy.retry_delay_ms
		                                          ? s->policy.retry_delay_ms
		                                          : DEFAULT_RETRY_MS);
		char until[32];
		if (now < at) {
			hv_gate_fmt_utc(at, until, sizeof until);
			return waits(
			    why, len, "%s retries its pre-check at %s (retry %u of %u)",
			    next->name, until, next->retries, s->policy.max_retries);
		}
	}
	if ((s->policy.quorum_guard || s->n_holders > 0) &&
	    !quorum_holds(s, next, now, stale, why, len))
		return HV_GATE_WAIT;
	snprintf(why, len, "%s",
	         admitted[0] != '\0'     ? admitted
	         : r->soak_until_ms != 0 ? "the canary's soak is over"
	         : next->retries > 0     ? "its retry is due"
	                                 : "the quorum guard allows it");
	if (s->policy.window[0] != '\0' &&
	    (act = window(s, next, now, why, len)) != HV_GATE_IDLE)
		return act;
	memset(out, 0, sizeof *out);
	out->type = HV_CMD_PATCH_GATE;
	out->id = r->id;
	snprintf(out->name, sizeof out->name, "%s", next->name);
	snprintf(out->reason, sizeof out->reason, "%s", why);
	return HV_GATE_COMMIT;
}
