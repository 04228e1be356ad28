/*
 * The patch rollout in the replicated state (consensus/rollout.c): submit,
 * the lease handed host to host in name order in the same entry as the
 * previous host's DONE, fenced steps, failures that pause and quarantine,
 * anti-rollback, abort, resume, and the snapshot round trip.
 *
 * Commands go through the codec (encode, then hv_state_apply), as on a
 * replica.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../consensus/codec.h"
#include "../../consensus/state.h"
#include "../../lib/err.h"
#include "../../patchfsm/cycle.h"
#include "../../patchfsm/gate.h"

#define D1 "1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "3333333333333333333333333333333333333333333333333333333333333333"

struct sm {
	struct hv_state *s;
	uint64_t index;
};

static int apply(struct sm *m, struct hv_cmd *c)
{
	void *buf = NULL;
	size_t len = 0;
	int rv;

	c->time_ms = 1000 * (m->index + 1);
	rv = hv_cmd_encode(c, NULL, &buf, &len);
	if (rv != HV_OK)
		return rv;
	rv = hv_state_apply(m->s, ++m->index, buf, len, NULL);
	free(buf);
	return rv;
}

static int add(struct sm *m, const char *name, uint64_t id, const char *version)
{
	struct hv_cmd c = {.type = HV_CMD_MEMBER_ADD, .id = id, .role = HV_ROLE_VOTER};
	struct hv_cmd r = {.type = HV_CMD_REPORT};
	int rv;

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.address, sizeof c.address, "10.0.0.%llu:7000", (unsigned long long)id);
	if ((rv = apply(m, &c)) != HV_OK)
		return rv;
	snprintf(r.name, sizeof r.name, "%s", name);
	snprintf(r.phase, sizeof r.phase, "idle");
	snprintf(r.version, sizeof r.version, "%s", version);
	return apply(m, &r);
}

static int submit(struct sm *m, const char *version, const char *digest)
{
	struct hv_cmd c = {.type = HV_CMD_PATCH_SUBMIT};

	snprintf(c.by, sizeof c.by, "op");
	snprintf(c.version, sizeof c.version, "%s", version);
	snprintf(c.bundle, sizeof c.bundle, "os");
	snprintf(c.digest, sizeof c.digest, "%s", digest);
	snprintf(c.key_id, sizeof c.key_id, "k1");
	snprintf(c.source, sizeof c.source, "h1");
	return apply(m, &c);
}

static struct hv_member *mem(struct sm *m, const char *name)
{
	return hv_state_member(m->s, name);
}

static uint64_t token_of(struct sm *m, const char *name)
{
	const struct hv_holder *h = hv_state_holder(m->s, name);

	return h != NULL ? h->token : 0;
}

/* The step the driver commits from name's current phase. */
static int step_tok(struct sm *m, const char *name, int event, uint64_t token,
                    const char *reason)
{
	struct hv_cmd c = {.type = HV_CMD_PATCH_STEP, .event = event, .token = token};

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.phase, sizeof c.phase, "%s", hv_phase_name(mem(m, name)->cycle));
	snprintf(c.reason, sizeof c.reason, "%s", reason);
	c.id = m->s->rollout.id;
	return apply(m, &c);
}

static int step(struct sm *m, const char *name, int event)
{
	return step_tok(m, name, event, token_of(m, name), "");
}

static int maint(struct sm *m, const char *name, const char *phase)
{
	struct hv_cmd c = {.type = HV_CMD_MAINT, .token = token_of(m, name)};

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.phase, sizeof c.phase, "%s", phase);
	return apply(m, &c);
}

/* One host's whole happy cycle, from PRECHECK to DONE. */
static void cycle_ok(struct sm *m, const char *name)
{
	assert_int_equal(mem(m, name)->cycle, HV_PH_PRECHECK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, name, "entering"), HV_OK);
	assert_int_equal(maint(m, name, "evacuating"), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> evacuate */
	assert_int_equal(maint(m, name, "in"), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> stage */
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> apply */
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> reboot */
	assert_int_equal(step(m, name, HV_EV_BOOTED_NEW), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> exit-maint */
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> rebalance */
	assert_int_equal(maint(m, name, "exiting"), HV_OK);
	assert_int_equal(maint(m, name, "none"), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK); /* -> done */
	assert_int_equal(mem(m, name)->cycle, HV_PH_DONE);
}

static int setup(void **state)
{
	struct sm *m = calloc(1, sizeof *m);

	m->s = malloc(sizeof *m->s);
	hv_state_init(m->s);
	assert_int_equal(add(m, "h2", 2, "1.0"), HV_OK);
	assert_int_equal(add(m, "h1", 1, "1.0"), HV_OK);
	assert_int_equal(add(m, "h3", 3, "1.0"), HV_OK);
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct sm *m = *state;

	free(m->s);
	free(m);
	return 0;
}

/* Hosts go in name order; each handoff is the DONE entry itself. */
static void test_rolling_order_and_handoff(void **state)
{
	struct sm *m = *state;
	uint64_t t1, t2, t3;

	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_true(m->s->rollout.active);
	t1 = token_of(m, "h1");
	assert_int_equal(t1, m->index); /* granted in the submit entry */
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_WAIT_LEASE);
	cycle_ok(m, "h1");
	t2 = token_of(m, "h2");
	assert_int_equal(t2, m->index); /* granted in h1's DONE entry */
	assert_int_equal(token_of(m, "h1"), 0);
	assert_true(t2 > t1);
	cycle_ok(m, "h2");
	t3 = token_of(m, "h3");
	assert_true(t3 > t2);
	cycle_ok(m, "h3");
	assert_false(m->s->rollout.active);
	assert_int_equal(m->s->rollout.done, 3);
	assert_int_equal(m->s->n_holders, 0);
	assert_string_equal(mem(m, "h3")->version, "1.0"); /* reports update it */
}

/* A step with a stale token, from the wrong phase, of another rollout or by
 * a host that is not the holder changes nothing. */
static void test_steps_are_fenced(void **state)
{
	struct sm *m = *state;
	uint64_t t1;
	int rej;

	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	t1 = token_of(m, "h1");
	rej = (int)m->s->rejected;
	assert_int_equal(step_tok(m, "h1", HV_EV_OK, t1 - 1, ""), HV_BADTOKEN);
	assert_int_equal(step_tok(m, "h2", HV_EV_GRANTED, 0, ""), HV_INVAL);
	assert_int_equal(step(m, "h1", HV_EV_BOOTED_NEW), HV_INVAL); /* not in reboot */
	{
		struct hv_cmd c = {
		    .type = HV_CMD_PATCH_STEP, .event = HV_EV_OK, .token = t1};
		snprintf(c.name, sizeof c.name, "h1");
		snprintf(c.phase, sizeof c.phase, "precheck");
		c.id = m->s->rollout.id + 1;
		assert_int_equal(apply(m, &c), HV_BADTOKEN);
		c.id = m->s->rollout.id;
		snprintf(c.phase, sizeof c.phase, "stage"); /* a repeated step */
		assert_int_equal(apply(m, &c), HV_INVAL);
	}
	assert_int_equal((int)m->s->rejected, rej + 5);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK);
	/* DONE needs the host out of maintenance */
	assert_int_equal(step(m, "h1", HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, "h1", "entering"), HV_OK);
	assert_int_equal(maint(m, "h1", "evacuating"), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_FAILED);
}

/* A failed validation rolls back; the boot into the old bank ends FAILED,
 * pauses the cluster, quarantines the patch, keeps the lease. */
static void test_validation_failure_quarantines(void **state)
{
	struct sm *m = *state;

	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, "h1", "entering"), HV_OK);
	assert_int_equal(maint(m, "h1", "evacuating"), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, "h1", "in"), HV_OK);
	for (int i = 0; i < 3; i++) /* stage, apply, reboot */
		assert_int_equal(step(m, "h1", HV_EV_OK), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_BOOTED_NEW), HV_OK);
	assert_int_equal(
	    step_tok(m, "h1", HV_EV_FAIL, token_of(m, "h1"), "health hook exited 1"),
	    HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_ROLLBACK);
	assert_false(m->s->paused);
	assert_int_equal(step(m, "h1", HV_EV_BOOTED_OLD), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_FAILED);
	assert_true(m->s->paused);
	assert_non_null(strstr(m->s->pause_reason, "h1"));
	assert_true(hv_state_quarantined(m->s, D1));
	assert_non_null(hv_state_holder(m->s, "h1")); /* never handed on */
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_WAIT_LEASE);
	/* a resume does not hand a quarantined patch on */
	{
		struct hv_cmd r = {.type = HV_CMD_RESUME};
		snprintf(r.by, sizeof r.by, "op");
		assert_int_equal(apply(m, &r), HV_OK);
	}
	assert_null(hv_state_holder(m->s, "h2"));
	/* nor can it be submitted again, after an abort */
	{
		struct hv_cmd a = {.type = HV_CMD_PATCH_ABORT};
		snprintf(a.by, sizeof a.by, "op");
		snprintf(a.reason, sizeof a.reason, "bad patch");
		assert_int_equal(apply(m, &a), HV_OK);
	}
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_IDLE);
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_IDLE);
	assert_int_equal(submit(m, "1.1", D1), HV_QUARANTINED);
}

/* Anti-rollback: older versions, and another bundle of the same version. */
static void test_anti_rollback(void **state)
{
	struct sm *m = *state;

	assert_int_equal(submit(m, "1.2", D1), HV_OK);
	assert_int_equal(submit(m, "1.3", D2), HV_EXISTS); /* one at a time */
	cycle_ok(m, "h1");
	cycle_ok(m, "h2");
	cycle_ok(m, "h3");
	assert_int_equal(submit(m, "1.1", D2), HV_ROLLBACK);
	assert_int_equal(submit(m, "1.2", D3), HV_ROLLBACK);
	assert_string_equal(m->s->floor_version, "1.2");
	assert_int_equal(submit(m, "1.10", D3), HV_OK); /* 1.10 > 1.2 */
}

/* A refused pre-check gives the lease back and stops the line; a resume
 * sends the host back to the queue. Hosts already on the version skip. */
static void test_precheck_failure_and_resume(void **state)
{
	struct sm *m = *state;
	struct hv_cmd r = {.type = HV_CMD_RESUME};

	{
		struct hv_cmd rep = {.type = HV_CMD_REPORT};
		snprintf(rep.name, sizeof rep.name, "h3");
		snprintf(rep.phase, sizeof rep.phase, "idle");
		snprintf(rep.version, sizeof rep.version, "2.0");
		assert_int_equal(apply(m, &rep), HV_OK);
	}
	assert_int_equal(submit(m, "2.0", D1), HV_OK);
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_DONE);
	assert_int_equal(step_tok(m, "h1", HV_EV_FAIL, token_of(m, "h1"), "no room"),
	                 HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PAUSED);
	assert_true(m->s->paused);
	assert_int_equal(m->s->n_holders, 0);
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_WAIT_LEASE);
	snprintf(r.by, sizeof r.by, "op");
	assert_int_equal(apply(m, &r), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK); /* back, first again */
	assert_int_equal(token_of(m, "h1"), m->index);
	cycle_ok(m, "h1");
	cycle_ok(m, "h2");
	assert_false(m->s->rollout.active);
	assert_int_equal(m->s->rollout.done, 3);
}

/* A manual lease holder blocks the rollout; its release lets it go on. */
static void test_manual_lease_blocks(void **state)
{
	struct sm *m = *state;
	struct hv_cmd a = {.type = HV_CMD_LEASE_ACQUIRE};
	struct hv_cmd rel = {.type = HV_CMD_LEASE_RELEASE};

	snprintf(a.name, sizeof a.name, "h3");
	assert_int_equal(apply(m, &a), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_null(hv_state_holder(m->s, "h1"));
	snprintf(rel.name, sizeof rel.name, "h3");
	rel.token = token_of(m, "h3");
	assert_int_equal(apply(m, &rel), HV_OK);
	assert_int_equal(token_of(m, "h1"), m->index);
}

/* Bring name from PRECHECK to REBOOT (its guests are gone, the trial bank
 * written). */
static void to_reboot(struct sm *m, const char *name)
{
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, name, "entering"), HV_OK);
	assert_int_equal(maint(m, name, "evacuating"), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, name, "in"), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK);
	assert_int_equal(step(m, name, HV_EV_OK), HV_OK);
	assert_int_equal(mem(m, name)->cycle, HV_PH_REBOOT);
}

static int report_bmc(struct sm *m, const char *name, const char *kind,
                      const char *address)
{
	struct hv_cmd r = {.type = HV_CMD_REPORT};

	snprintf(r.name, sizeof r.name, "%s", name);
	snprintf(r.phase, sizeof r.phase, "idle");
	snprintf(r.version, sizeof r.version, "%s", mem(m, name)->version);
	snprintf(r.bmc, sizeof r.bmc, "%s", kind);
	snprintf(r.bmc_address, sizeof r.bmc_address, "%s", address);
	return apply(m, &r);
}

static int wd(struct sm *m, const char *name, int event, uint64_t token)
{
	struct hv_cmd c = {.type = HV_CMD_PATCH_WATCHDOG, .event = event, .token = token};

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.phase, sizeof c.phase, "%s", hv_phase_name(mem(m, name)->cycle));
	snprintf(c.by, sizeof c.by, "h2");
	snprintf(c.reason, sizeof c.reason, "not back");
	c.id = m->s->rollout.id;
	return apply(m, &c);
}

/* The watchdog: due only for a rebooting holder past the timeout, counted
 * cycles, then the line stops with the lease held; a host that came back
 * refuses late events. */
static void test_watchdog(void **state)
{
	struct sm *m = *state;
	const struct hv_member *who = NULL;
	uint64_t tok = 0, since;
	int due;

	assert_int_equal(report_bmc(m, "h1", "ipmi", "10.0.0.101:623"), HV_OK);
	assert_string_equal(mem(m, "h1")->bmc, "ipmi");
	assert_string_equal(mem(m, "h1")->bmc_address, "10.0.0.101:623");
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	/* not rebooting: nothing is due, however late */
	assert_int_equal(
	    hv_rollout_watchdog_due(m->s, UINT64_MAX / 2, 1000, 2, &who, &tok), 0);
	assert_int_equal(wd(m, "h1", HV_WD_CYCLE, token_of(m, "h1")), HV_INVAL);
	to_reboot(m, "h1");
	since = mem(m, "h1")->cycle_since_ms;
	assert_int_equal(hv_rollout_watchdog_due(m->s, since + 999, 1000, 2, &who, &tok),
	                 0);
	due = hv_rollout_watchdog_due(m->s, since + 1000, 1000, 2, &who, &tok);
	assert_int_equal(due, HV_WD_CYCLE);
	assert_string_equal(who->name, "h1");
	assert_int_equal(tok, token_of(m, "h1"));
	/* fenced: a wrong token, another rollout */
	assert_int_equal(wd(m, "h1", HV_WD_CYCLE, tok + 1), HV_BADTOKEN);
	assert_int_equal(wd(m, "h1", HV_WD_CYCLE, tok), HV_OK);
	assert_int_equal(mem(m, "h1")->wd_cycles, 1);
	/* the next deadline counts from the cycle */
	since = mem(m, "h1")->wd_last_ms;
	assert_int_equal(hv_rollout_watchdog_due(m->s, since + 999, 1000, 2, &who, &tok),
	                 0);
	assert_int_equal(hv_rollout_watchdog_due(m->s, since + 1000, 1000, 2, &who, &tok),
	                 HV_WD_CYCLE);
	assert_int_equal(wd(m, "h1", HV_WD_FOLLOWED, tok), HV_OK);
	assert_int_equal(wd(m, "h1", HV_WD_CYCLE, tok), HV_OK);
	since = mem(m, "h1")->wd_last_ms;
	assert_int_equal(hv_rollout_watchdog_due(m->s, since + 1000, 1000, 2, &who, &tok),
	                 HV_WD_GAVE_UP);
	assert_int_equal(wd(m, "h1", HV_WD_GAVE_UP, tok), HV_OK);
	assert_true(m->s->paused);
	assert_string_equal(m->s->pause_reason, "not back");
	assert_int_equal(token_of(m, "h1"), tok); /* the lease stays */
	/* paused: nothing more is due, and no cycle is accepted */
	assert_int_equal(
	    hv_rollout_watchdog_due(m->s, UINT64_MAX / 2, 1000, 2, &who, &tok), 0);
	assert_int_equal(wd(m, "h1", HV_WD_CYCLE, tok), HV_PAUSED);
	/* a resume starts the watchdog over, from the resume */
	{
		struct hv_cmd r = {.type = HV_CMD_RESUME};
		snprintf(r.by, sizeof r.by, "op");
		assert_int_equal(apply(m, &r), HV_OK);
	}
	assert_int_equal(mem(m, "h1")->wd_cycles, 0);
	since = mem(m, "h1")->wd_last_ms;
	assert_int_equal(since, m->index * 1000);
	assert_int_equal(hv_rollout_watchdog_due(m->s, since + 999, 1000, 2, &who, &tok),
	                 0);
	assert_int_equal(hv_rollout_watchdog_due(m->s, since + 1000, 1000, 2, &who, &tok),
	                 HV_WD_CYCLE);
	/* the host comes back: its step resets the count, late events refused */
	assert_int_equal(step(m, "h1", HV_EV_BOOTED_NEW), HV_OK);
	assert_int_equal(mem(m, "h1")->wd_cycles, 0);
	assert_int_equal(wd(m, "h1", HV_WD_FOLLOWED, tok), HV_INVAL);
}

/* A rebooting holder without a BMC: the watchdog can only stop the line. */
static void test_watchdog_no_bmc(void **state)
{
	struct sm *m = *state;
	const struct hv_member *who = NULL;
	uint64_t tok = 0;

	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	to_reboot(m, "h1");
	assert_int_equal(hv_rollout_watchdog_due(m->s,
	                                         mem(m, "h1")->cycle_since_ms + 1000,
	                                         1000, 2, &who, &tok),
	                 HV_WD_GAVE_UP);
	assert_int_equal(report_bmc(m, "h1", "none", ""), HV_OK);
	assert_int_equal(hv_rollout_watchdog_due(m->s,
	                                         mem(m, "h1")->cycle_since_ms + 1000,
	                                         1000, 2, &who, &tok),
	                 HV_WD_GAVE_UP);
}

static int policy(struct sm *m, const char *key, const char *value)
{
	struct hv_cmd c = {.type = HV_CMD_POLICY_SET};

	snprintf(c.name, sizeof c.name, "%s", key);
	snprintf(c.reason, sizeof c.reason, "%s", value);
	snprintf(c.by, sizeof c.by, "op");
	return apply(m, &c);
}

static int gate(struct sm *m, const char *name)
{
	struct hv_cmd c = {.type = HV_CMD_PATCH_GATE};

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.by, sizeof c.by, "h2");
	snprintf(c.reason, sizeof c.reason, "window open");
	c.id = m->s->rollout.id;
	return apply(m, &c);
}

/* The canary patches first, alone; the others wait for its soak, and then
 * for the leader's gate. */
static void test_canary_and_soak(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "canary", "h3"), HV_OK);
	assert_int_equal(policy(m, "soak", "600"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_string_equal(m->s->rollout.canary, "h3");
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_PRECHECK); /* not h1 */
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_WAIT_LEASE);
	cycle_ok(m, "h3");
	/* soaking: nobody is granted, however many commands go by */
	assert_true(m->s->rollout.soak_until_ms > 0);
	assert_true(hv_policy_gated(m->s));
	assert_int_equal(policy(m, "downtime-budget", "1000"), HV_OK);
	assert_null(hv_state_holder(m->s, "h1"));
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_WAIT_LEASE);
	/* a gate for a host that is not next is refused */
	assert_int_equal(gate(m, "h2"), HV_INVAL);
	assert_int_equal(gate(m, "h1"), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK);
	assert_int_equal(token_of(m, "h1"), m->index);
	assert_string_equal(m->s->rollout.gate, ""); /* consumed */
	assert_false(hv_policy_gated(m->s));
	cycle_ok(m, "h1");
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_PRECHECK); /* no window: no gate */
}

/* A window: every grant waits for the leader's gate, which is good once. */
static void test_window_gates_every_grant(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "window", "Mon-Fri 22:00-04:00"), HV_OK);
	assert_int_equal(policy(m, "zone", "Europe/Berlin"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_null(hv_state_holder(m->s, "h1"));
	assert_int_equal(gate(m, "h1"), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK);
	cycle_ok(m, "h1");
	assert_null(hv_state_holder(m->s, "h2")); /* the gate was used */
	assert_int_equal(gate(m, "h2"), HV_OK);
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_PRECHECK);
	cycle_ok(m, "h2");
	assert_null(hv_state_holder(m->s, "h3"));
	/* dropping the window lets the next host go at once, in that entry */
	assert_int_equal(policy(m, "window", ""), HV_OK);
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_PRECHECK);
	assert_int_equal(token_of(m, "h3"), m->index);
	cycle_ok(m, "h3");
	assert_false(m->s->rollout.active);
	assert_int_equal(gate(m, "h1"), HV_NOROLLOUT);
}

/* A canary that fails, even before anything moved, quarantines the patch. */
static void test_canary_failure_quarantines(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "canary", "auto"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_string_equal(m->s->rollout.canary, "h1"); /* no guests anywhere: by name */
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK);
	assert_true(hv_state_quarantined(m->s, D1));
	assert_true(m->s->paused);
}

/* A failed pre-check is retried (max-retries) before the line stops; the
 * retry waits for the leader's gate. */
static void test_precheck_retries(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "max-retries", "11"), HV_INVAL);
	assert_int_equal(policy(m, "max-retries", "1"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK);
	assert_false(m->s->paused);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_WAIT_LEASE);
	assert_int_equal(mem(m, "h1")->retries, 1);
	assert_null(hv_state_holder(m->s, "h1"));
	assert_true(hv_policy_gated(m->s)); /* the retry waits for the gate */
	assert_int_equal(gate(m, "h1"), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK);
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK); /* out of retries */
	assert_true(m->s->paused);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PAUSED);
	assert_false(hv_state_quarantined(m->s, D1));
}

/* Policy values are checked; a guest stunned over the budget stops the line. */
static void test_policy_values_and_budget(void **state)
{
	struct sm *m = *state;
	struct hv_cmd mv = {.type = HV_CMD_MOVED};
	struct hv_cmd plan = {.type = HV_CMD_PLAN};

	assert_int_equal(policy(m, "soak", "-1"), HV_INVAL);
	assert_int_equal(policy(m, "soak", "99999999"), HV_INVAL);
	assert_int_equal(policy(m, "soak", "1x"), HV_INVAL);
	assert_int_equal(policy(m, "canary", "no such/name"), HV_INVAL);
	assert_int_equal(policy(m, "colour", "blue"), HV_INVAL);
	assert_int_equal(policy(m, "quorum-guard", "maybe"), HV_INVAL);
	assert_int_equal(policy(m, "quorum-guard", "on"), HV_OK);
	assert_true(m->s->policy.quorum_guard);
	assert_true(hv_policy_gated(m->s));
	assert_int_equal(policy(m, "quorum-guard", ""), HV_OK);
	assert_false(hv_policy_gated(m->s));
	assert_int_equal(policy(m, "downtime-budget", "500"), HV_OK);
	assert_int_equal(m->s->policy.downtime_budget_ms, 500);
	/* h1 holds the lease, plans a move of g1 to h2, which stuns it 800 ms */
	{
		struct hv_cmd a = {.type = HV_CMD_LEASE_ACQUIRE};
		snprintf(a.name, sizeof a.name, "h1");
		assert_int_equal(apply(m, &a), HV_OK);
	}
	{
		struct hv_cmd inv = {.type = HV_CMD_INVENTORY,
		                     .mem_cap_mib = 4096,
		                     .vcpus_cap = 16,
		                     .n_guests = 1};
		snprintf(inv.name, sizeof inv.name, "h1");
		snprintf(inv.guests[0].name, sizeof inv.guests[0].name, "g1");
		inv.guests[0].mem_mib = 256;
		inv.guests[0].vcpus = 1;
		inv.guests[0].running = true;
		assert_int_equal(apply(m, &inv), HV_OK);
	}
	assert_int_equal(maint(m, "h1", "entering"), HV_OK);
	snprintf(plan.name, sizeof plan.name, "h1");
	plan.token = token_of(m, "h1");
	plan.n_moves = 1;
	snprintf(plan.moves[0].guest, sizeof plan.moves[0].guest, "g1");
	snprintf(plan.moves[0].source, sizeof plan.moves[0].source, "h1");
	snprintf(plan.moves[0].target, sizeof plan.moves[0].target, "h2");
	plan.moves[0].mem_mib = 256;
	plan.moves[0].vcpus = 1;
	assert_int_equal(apply(m, &plan), HV_OK);
	snprintf(mv.name, sizeof mv.name, "h1");
	mv.token = token_of(m, "h1");
	mv.move = plan.moves[0];
	mv.result = HV_OK;
	mv.downtime_ms = 800;
	assert_int_equal(apply(m, &mv), HV_OK);
	assert_true(m->s->paused);
	assert_string_equal(m->s->paused_by, "policy");
	assert_non_null(strstr(m->s->pause_reason, "g1 was stunned 800 ms"));
}

/* max-concurrent 2: a second host starts beside the first only through the
 * leader's gate (its capacity plan), never a third; a gate with no lease
 * free is refused. */
static void test_concurrency(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "max-concurrent", "0"), HV_INVAL);
	assert_int_equal(policy(m, "max-concurrent", "17"), HV_INVAL);
	assert_int_equal(policy(m, "max-concurrent", "2"), HV_OK);
	assert_int_equal(m->s->max_concurrent, 2);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_non_null(hv_state_holder(m->s, "h1"));
	/* h2 waits for the gate while h1 holds */
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_WAIT_LEASE);
	assert_int_equal(step(m, "h1", HV_EV_OK), HV_OK);
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_WAIT_LEASE);
	assert_int_equal(gate(m, "h3"), HV_INVAL); /* not next */
	assert_int_equal(gate(m, "h2"), HV_OK);
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_PRECHECK);
	assert_int_equal(m->s->n_holders, 2);
	assert_true(token_of(m, "h2") > token_of(m, "h1"));
	/* no lease left for h3 */
	assert_int_equal(gate(m, "h3"), HV_LEASEFULL);
	assert_int_equal(policy(m, "max-concurrent", "1"), HV_INVAL); /* 2 hold */
	/* h2 finishes first: h3 still needs the gate (h1 is mid-cycle) */
	cycle_ok(m, "h2");
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_WAIT_LEASE);
	assert_int_equal(gate(m, "h3"), HV_OK);
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_PRECHECK);
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK); /* enter-maint failed */
	assert_true(m->s->paused);
	cycle_ok(m, "h3");
	assert_true(m->s->rollout.active); /* h1 failed, holding its lease */
}

/* max-failed-hosts: a host's failure the line goes on after (its lease
 * given back, or another free); the limit, a quarantining failure and a
 * drained failure with no lease free still stop it. */
static void test_failed_hosts_tolerated(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "max-failed-hosts", "200"), HV_INVAL);
	assert_int_equal(policy(m, "max-failed-hosts", "2"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step_tok(m, "h1", HV_EV_FAIL, token_of(m, "h1"), "no room"),
	                 HV_OK);
	assert_false(m->s->paused);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_FAILED);
	assert_null(hv_state_holder(m->s, "h1"));
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_PRECHECK); /* the line went on */
	assert_int_equal(m->s->rollout.failed, 1);
	/* h2 fails drained (its evacuation): it keeps its lease, none is free */
	assert_int_equal(step(m, "h2", HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, "h2", "entering"), HV_OK);
	assert_int_equal(maint(m, "h2", "evacuating"), HV_OK);
	assert_int_equal(step(m, "h2", HV_EV_OK), HV_OK);
	assert_int_equal(step(m, "h2", HV_EV_FAIL), HV_OK);
	assert_true(m->s->paused);
	assert_non_null(hv_state_holder(m->s, "h2"));
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_WAIT_LEASE);
}

/* With the failures tolerated, the rollout ends with them counted and the
 * next submit is not blocked by a failed host that gave its lease back. */
static void test_failed_hosts_rollout_ends(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "max-failed-hosts", "1"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK);
	assert_false(m->s->paused);
	cycle_ok(m, "h2");
	/* the limit is reached: the next failure stops the line */
	assert_int_equal(step(m, "h3", HV_EV_FAIL), HV_OK);
	assert_true(m->s->paused);
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_PAUSED);
	{
		struct hv_cmd r = {.type = HV_CMD_RESUME};
		snprintf(r.by, sizeof r.by, "op");
		assert_int_equal(apply(m, &r), HV_OK);
	}
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_PRECHECK);
	cycle_ok(m, "h3");
	assert_false(m->s->rollout.active);
	assert_int_equal(m->s->rollout.done, 2);
	assert_int_equal(m->s->rollout.failed, 1);
	assert_int_equal(submit(m, "1.2", D2), HV_OK); /* h1 starts over */
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK);
}

/* The snapshot keeps the rollout, the quarantine and every host's phase. */
static int lease_break(struct sm *m, const char *name, const char *reason)
{
	struct hv_cmd c = {.type = HV_CMD_LEASE_BREAK};

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.by, sizeof c.by, "op");
	snprintf(c.reason, sizeof c.reason, "%s", reason);
	return apply(m, &c);
}

static void resume(struct sm *m)
{
	struct hv_cmd r = {.type = HV_CMD_RESUME};

	snprintf(r.by, sizeof r.by, "op");
	assert_int_equal(apply(m, &r), HV_OK);
}

/* The lease of a host mid-cycle broken (a host that did not come back from
 * its reboot): its cycle failed, the line stops; resumed, the next host
 * goes and the rollout ends. Its late steps are refused. */
static void test_lease_break_mid_cycle(void **state)
{
	struct sm *m = *state;
	uint64_t tok;

	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	to_reboot(m, "h1");
	tok = token_of(m, "h1");
	assert_int_equal(lease_break(m, "h1", "dead PSU"), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_FAILED);
	assert_int_equal(mem(m, "h1")->maint, HV_MAINT_NONE);
	assert_non_null(
	    strstr(mem(m, "h1")->cycle_error, "lease broken by op: dead PSU"));
	assert_int_equal(m->s->rollout.failed, 1);
	assert_true(m->s->paused);
	assert_non_null(strstr(m->s->pause_reason, "h1: patch 1.1 failed: lease broken"));
	assert_int_equal(m->s->n_holders, 0);
	{ /* h1 comes back late and reports its boot: refused */
		struct hv_cmd c = {
		    .type = HV_CMD_PATCH_STEP, .event = HV_EV_BOOTED_NEW, .token = tok};
		snprintf(c.name, sizeof c.name, "h1");
		snprintf(c.phase, sizeof c.phase, "reboot");
		c.id = m->s->rollout.id;
		assert_int_equal(apply(m, &c), HV_INVAL);
		assert_int_equal(mem(m, "h1")->cycle, HV_PH_FAILED);
	}
	resume(m);
	assert_true(token_of(m, "h2") > tok);
	cycle_ok(m, "h2");
	cycle_ok(m, "h3");
	assert_false(m->s->rollout.active);
	assert_int_equal(m->s->rollout.done, 2);
	assert_int_equal(m->s->rollout.failed, 1);
}

/* With max-failed-hosts room the line goes on at once: the next host gets
 * the lease in the break's own entry. A break outside any cycle (a manual
 * lease) fails nothing. */
static void test_lease_break_tolerated(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "max-failed-hosts", "1"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_OK), HV_OK);
	assert_int_equal(maint(m, "h1", "entering"), HV_OK);
	assert_int_equal(lease_break(m, "h1", "stuck"), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_FAILED);
	assert_false(m->s->paused);
	assert_int_equal(token_of(m, "h2"), m->index);
	cycle_ok(m, "h2");
	assert_int_equal(lease_break(m, "h3", "test"), HV_OK); /* h3's grant */
	assert_int_equal(mem(m, "h3")->cycle, HV_PH_FAILED);
	assert_true(m->s->paused); /* the budget is spent */
	assert_int_equal(m->s->rollout.failed, 2);
	resume(m);
	assert_false(m->s->rollout.active);
	assert_int_equal(lease_break(m, "h1", "none"), HV_NOTHOLDER);
}

/* The canary's lease broken: whatever max-failed-hosts allows, the others
 * never start on a patch whose canary did not finish. */
static void test_lease_break_canary(void **state)
{
	struct sm *m = *state;

	assert_int_equal(policy(m, "max-failed-hosts", "2"), HV_OK);
	assert_int_equal(policy(m, "canary", "h2"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step(m, "h2", HV_EV_OK), HV_OK);
	assert_int_equal(lease_break(m, "h2", "hvpeerd frozen"), HV_OK);
	assert_int_equal(mem(m, "h2")->cycle, HV_PH_FAILED);
	assert_true(hv_state_quarantined(m->s, D1));
	assert_true(m->s->paused);
	resume(m);
	assert_null(hv_state_holder(m->s, "h1"));
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_WAIT_LEASE);
}

/* ---- the leader's gate (patchfsm/gate.c), on the same states ---------- */

struct decision {
	int act;
	struct hv_cmd out;
	char why[512];
};

static struct decision *decide(struct sm *m, uint64_t now, uint64_t stale)
{
	static struct decision d;

	memset(&d, 0, sizeof d);
	d.act = hv_gate_decide(m->s, now, stale, &d.out, d.why, sizeof d.why);
	return &d;
}

#define LONG_AGO 1000000000000ull /* a stale_ms by which every report is fresh */

/* The soak holds the next host back until it ends; then a healthy canary
 * lets it go, and one that stopped reporting stops the line. */
static void test_gate_soak(void **state)
{
	struct sm *m = *state;
	struct decision *d;
	uint64_t until;

	assert_int_equal(policy(m, "canary", "h3"), HV_OK);
	assert_int_equal(policy(m, "soak", "600"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(decide(m, 0, LONG_AGO)->act, HV_GATE_IDLE); /* h3 holds it */
	cycle_ok(m, "h3");
	/* the driver's booted-new step carries the version; cycle_ok's do not */
	snprintf(mem(m, "h3")->version, sizeof mem(m, "h3")->version, "1.1");
	until = m->s->rollout.soak_until_ms;
	d = decide(m, until - 1, LONG_AGO);
	assert_int_equal(d->act, HV_GATE_WAIT);
	assert_non_null(strstr(d->why, "h1 waits for the canary h3's soak"));
	d = decide(m, until, LONG_AGO);
	assert_int_equal(d->act, HV_GATE_COMMIT);
	assert_int_equal(d->out.type, HV_CMD_PATCH_GATE);
	assert_string_equal(d->out.name, "h1");
	assert_int_equal(d->out.id, m->s->rollout.id);
	/* h3's last report is older than 1 s at the soak's end */
	d = decide(m, until, 1000);
	assert_int_equal(d->act, HV_GATE_COMMIT);
	assert_int_equal(d->out.type, HV_CMD_PAUSE);
	assert_non_null(strstr(d->out.reason, "canary h3 is not healthy after its soak "
	                                      "(it stopped reporting)"));
	/* paused: nothing */
	snprintf(d->out.by, sizeof d->out.by, "h2");
	assert_int_equal(apply(m, &d->out), HV_OK);
	assert_int_equal(decide(m, until, LONG_AGO)->act, HV_GATE_IDLE);
}

/* A failed pre-check is retried retry-delay after it failed, not before. */
static void test_gate_retry_delay(void **state)
{
	struct sm *m = *state;
	struct decision *d;
	uint64_t failed;

	assert_int_equal(policy(m, "max-retries", "2"), HV_OK);
	assert_int_equal(policy(m, "retry-delay", "30"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(step(m, "h1", HV_EV_FAIL), HV_OK);
	failed = mem(m, "h1")->cycle_since_ms;
	d = decide(m, failed + 29999, LONG_AGO);
	assert_int_equal(d->act, HV_GATE_WAIT);
	assert_non_null(strstr(d->why, "h1 retries its pre-check at"));
	assert_non_null(strstr(d->why, "(retry 1 of 2)"));
	d = decide(m, failed + 30000, LONG_AGO);
	assert_int_equal(d->act, HV_GATE_COMMIT);
	assert_int_equal(d->out.type, HV_CMD_PATCH_GATE);
	assert_string_equal(d->out.name, "h1");
	assert_string_equal(d->why, "its retry is due");
	snprintf(d->out.by, sizeof d->out.by, "h2");
	assert_int_equal(apply(m, &d->out), HV_OK);
	assert_int_equal(mem(m, "h1")->cycle, HV_PH_PRECHECK);
}

/* A holder that never started its pre-check (hvpeerd down) has it failed
 * for it, fenced by its token, once neither its report nor its grant is
 * newer than stale_ms. */
static void test_gate_silent_precheck(void **state)
{
	struct sm *m = *state;
	struct decision *d;
	uint64_t granted;

	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	granted = mem(m, "h1")->cycle_since_ms;
	assert_int_equal(decide(m, granted + 5000, 5000)->act, HV_GATE_IDLE);
	d = decide(m, granted + 5001, 5000);
	assert_int_equal(d->act, HV_GATE_COMMIT);
	assert_int_equal(d->out.type, HV_CMD_PATCH_STEP);
	assert_int_equal(d->out.event, HV_EV_FAIL);
	assert_string_equal(d->out.name, "h1");
	assert_int_equal(d->out.token, token_of(m, "h1"));
	assert_non_null(strstr(d->out.reason, "pre-check: h1 did not start it"));
	snprintf(d->out.by, sizeof d->out.by, "h2");
	assert_int_equal(apply(m, &d->out), HV_OK);
	assert_true(m->s->paused); /* no retries: the line stops */
	assert_null(hv_state_holder(m->s, "h1"));
}

/* The quorum guard: with three voters, one down leaves quorum one failure
 * from lost, so nobody goes; with five, the next host may. */
static void test_gate_quorum_guard(void **state)
{
	struct sm *m = *state;
	struct decision *d;

	assert_int_equal(policy(m, "quorum-guard", "on"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_null(hv_state_holder(m->s, "h1")); /* gated */
	d = decide(m, 0, LONG_AGO);
	assert_int_equal(d->act, HV_GATE_WAIT);
	assert_string_equal(d->why,
	                    "h1 waits: with it down, 2 of 3 voters would be up, "
	                    "one failure from losing quorum (policy quorum-guard)");
	assert_int_equal(add(m, "h4", 4, "1.0"), HV_OK);
	assert_int_equal(add(m, "h5", 5, "1.0"), HV_OK);
	d = decide(m, 0, LONG_AGO);
	assert_int_equal(d->act, HV_GATE_COMMIT);
	assert_string_equal(d->out.name, "h1");
	assert_string_equal(d->why, "the quorum guard allows it");
}

/* A window: the next host goes while one is open long enough for its
 * cycle's estimate, and waits for the next one otherwise. The epoch is a
 * Thursday 00:00 UTC, inside Wednesday's 22:00-04:00. */
static void test_gate_window(void **state)
{
	struct sm *m = *state;
	struct decision *d;

	assert_int_equal(policy(m, "window", "Mon-Fri 22:00-04:00"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	d = decide(m, 3600000, LONG_AGO); /* 01:00: 3 h left, 30 min needed */
	assert_int_equal(d->act, HV_GATE_COMMIT);
	assert_string_equal(d->out.name, "h1");
	assert_string_equal(d->why, "window open until 1970-01-01 04:00Z; h1's cycle "
	                            "needs about 30 min");
	d = decide(m, 3 * 3600000 + 1800001, LONG_AGO); /* 03:30 and 1 ms */
	assert_int_equal(d->act, HV_GATE_WAIT);
	assert_string_equal(d->why, "h1 waits for a maintenance window of 30 min (its "
	                            "cycle's estimate): next 1970-01-01 22:00Z");
}

static void test_snapshot_round_trip(void **state)
{
	struct sm *m = *state;
	struct hv_state *copy = malloc(sizeof *copy);
	void *buf = NULL;
	size_t len = 0;

	assert_int_equal(report_bmc(m, "h2", "redfish", "bmc-h2.example:8443"), HV_OK);
	assert_int_equal(policy(m, "window", "Sat,Sun 00:00-24:00"), HV_OK);
	assert_int_equal(policy(m, "canary", "h1"), HV_OK);
	assert_int_equal(policy(m, "soak", "60"), HV_OK);
	assert_int_equal(policy(m, "max-failed-hosts", "3"), HV_OK);
	assert_int_equal(submit(m, "1.1", D1), HV_OK);
	assert_int_equal(gate(m, "h1"), HV_OK);
	to_reboot(m, "h1");
	assert_int_equal(wd(m, "h1", HV_WD_CYCLE, token_of(m, "h1")), HV_OK);
	assert_int_equal(hv_state_encode(m->s, NULL, &buf, &len), HV_OK);
	hv_state_init(copy);
	assert_int_equal(hv_state_decode(copy, buf, len), HV_OK);
	assert_true(hv_state_equal(m->s, copy));
	assert_int_equal(hv_state_member(copy, "h1")->cycle, HV_PH_REBOOT);
	assert_int_equal(hv_state_member(copy, "h1")->wd_cycles, 1);
	assert_int_equal(hv_state_member(copy, "h1")->wd_last_ms,
	                 mem(m, "h1")->wd_last_ms);
	assert_string_equal(hv_state_member(copy, "h2")->bmc_address,
	                    "bmc-h2.example:8443");
	assert_string_equal(copy->rollout.digest, D1);
	assert_string_equal(copy->floor_version, "1.1");
	assert_int_equal(copy->policy.max_failed, 3);
	free(buf);
	free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rolling_order_and_handoff, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_steps_are_fenced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_validation_failure_quarantines, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_anti_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_precheck_failure_and_resume, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_manual_lease_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watchdog, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watchdog_no_bmc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_canary_and_soak, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_window_gates_every_grant, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_canary_failure_quarantines, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_precheck_retries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_values_and_budget, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_hosts_tolerated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_hosts_rollout_ends, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_break_mid_cycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_break_tolerated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_break_canary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gate_soak, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gate_retry_delay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gate_silent_precheck, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gate_quorum_guard, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gate_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
