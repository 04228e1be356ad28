/* The patch cycle's transition table: every legal and illegal move, and the
 * safety rules the table must keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../patchfsm/cycle.h"

/* The expected table, written out again: a change to one must change both. */
static const struct {
	int from, event, to;
	unsigned actions;
} want[] = {
    {HV_PH_IDLE, HV_EV_DUE, HV_PH_WAIT_LEASE, HV_ACT_ACQUIRE_LEASE},
    {HV_PH_DONE, HV_EV_DUE, HV_PH_WAIT_LEASE, HV_ACT_ACQUIRE_LEASE},
    {HV_PH_IDLE, HV_EV_PAUSE, HV_PH_PAUSED, 0},
    {HV_PH_DONE, HV_EV_PAUSE, HV_PH_PAUSED, 0},
    {HV_PH_WAIT_LEASE, HV_EV_PAUSE, HV_PH_PAUSED, 0},
    {HV_PH_WAIT_LEASE, HV_EV_ABORT, HV_PH_IDLE, 0},
    {HV_PH_WAIT_LEASE, HV_EV_GRANTED, HV_PH_PRECHECK, HV_ACT_PRECHECK},
    {HV_PH_PAUSED, HV_EV_RESUME, HV_PH_WAIT_LEASE, HV_ACT_ACQUIRE_LEASE},
    {HV_PH_PAUSED, HV_EV_ABORT, HV_PH_IDLE, 0},
    {HV_PH_PRECHECK, HV_EV_OK, HV_PH_ENTER_MAINT, HV_ACT_ENTER_MAINT},
    {HV_PH_PRECHECK, HV_EV_FAIL, HV_PH_PAUSED,
     HV_ACT_RELEASE_LEASE | HV_ACT_PAUSE_CLUSTER},
    {HV_PH_PRECHECK, HV_EV_ABORT, HV_PH_IDLE, HV_ACT_RELEASE_LEASE},
    {HV_PH_ENTER_MAINT, HV_EV_OK, HV_PH_EVACUATE, HV_ACT_EVACUATE},
    {HV_PH_ENTER_MAINT, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_EVACUATE, HV_EV_OK, HV_PH_STAGE, HV_ACT_STAGE},
    {HV_PH_EVACUATE, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_STAGE, HV_EV_OK, HV_PH_APPLY, HV_ACT_APPLY},
    {HV_PH_STAGE, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE},
    {HV_PH_APPLY, HV_EV_OK, HV_PH_REBOOT, HV_ACT_REBOOT},
    {HV_PH_APPLY, HV_EV_FAIL, HV_PH_ROLLBACK, HV_ACT_ROLLBACK},
    {HV_PH_REBOOT, HV_EV_BOOTED_NEW, HV_PH_VALIDATE, HV_ACT_VALIDATE},
    {HV_PH_REBOOT, HV_EV_BOOTED_OLD, HV_PH_FAILED,
     HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE},
    {HV_PH_REBOOT, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_VALIDATE, HV_EV_OK, HV_PH_EXIT_MAINT, HV_ACT_MARK_GOOD | HV_ACT_EXIT_MAINT},
    {HV_PH_VALIDATE, HV_EV_FAIL, HV_PH_ROLLBACK, HV_ACT_ROLLBACK | HV_ACT_REBOOT},
    {HV_PH_ROLLBACK, HV_EV_OK, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE},
    {HV_PH_ROLLBACK, HV_EV_BOOTED_OLD, HV_PH_FAILED,
     HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE},
    {HV_PH_ROLLBACK, HV_EV_BOOTED_NEW, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_ROLLBACK, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_EXIT_MAINT, HV_EV_OK, HV_PH_REBALANCE, HV_ACT_REBALANCE},
    {HV_PH_EXIT_MAINT, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_REBALANCE, HV_EV_OK, HV_PH_DONE, HV_ACT_RELEASE_LEASE},
    {HV_PH_REBALANCE, HV_EV_FAIL, HV_PH_FAILED, HV_ACT_PAUSE_CLUSTER},
    {HV_PH_FAILED, HV_EV_ABORT, HV_PH_IDLE, 0},
};

#define N_WANT (sizeof want / sizeof want[0])

static int find(int from, int event)
{
	for (unsigned i = 0; i < N_WANT; i++)
		if (want[i].from == from && want[i].event == event)
			return (int)i;
	return -1;
}

/* Every (phase, event) pair: the legal ones as written, the rest refused
 * without touching the outputs. */
static void test_every_pair(void **state)
{
	unsigned legal = 0;

	(void)state;
	for (int p = -1; p <= HV__PH_N; p++)
		for (int e = -1; e <= HV__EV_N; e++) {
			int next = 12345, w = find(p, e);
			unsigned acts = 0xdeadbeef;
			int rv = hv_cycle_step(p, e, &next, &acts);

			if (w < 0) {
				assert_int_equal(rv, HV_INVAL);
				assert_int_equal(next, 12345);
				assert_int_equal(acts, 0xdeadbeef);
				continue;
			}
			legal++;
			assert_int_equal(rv, HV_OK);
			assert_int_equal(next, want[w].to);
			assert_int_equal(acts, want[w].actions);
		}
	assert_int_equal(legal, N_WANT);
}

/* The lease changes hands only through the actions that say so. */
static void test_lease_rules(void **state)
{
	(void)state;
	for (unsigned i = 0; i < N_WANT; i++) {
		unsigned from = hv_phase_flags(want[i].from),
		         to = hv_phase_flags(want[i].to);
		bool released = want[i].actions & HV_ACT_RELEASE_LEASE;

		/* Gaining the lease only through a grant. */
		if (!(from & HV_PHF_LEASED) && (to & HV_PHF_LEASED))
			assert_int_equal(want[i].event, HV_EV_GRANTED);
		/* Losing it only by releasing it, or an operator's abort of a
		 * stopped line (the lease then goes with `lease break`). */
		if ((from & HV_PHF_LEASED) && !(to & HV_PHF_LEASED) &&
		    !(want[i].from == HV_PH_FAILED && want[i].event == HV_EV_ABORT))
			assert_true(released);
		/* Never released while drained, rebooting or unvalidated. */
		if (released)
			assert_false(from & HV_PHF_DRAINED);
		/* Released means the next phase holds no lease. */
		if (released)
			assert_false(to & HV_PHF_LEASED);
	}
}

/* Every failure after the grant stops the line; the bank is marked good
 * only after validation; a patch that failed itself is quarantined. */
static void test_failure_rules(void **state)
{
	(void)state;
	for (unsigned i = 0; i < N_WANT; i++) {
		unsigned acts = want[i].actions;
		if (want[i].to == HV_PH_FAILED)
			assert_true(acts & HV_ACT_PAUSE_CLUSTER);
		if (want[i].event == HV_EV_FAIL &&
		    (hv_phase_flags(want[i].from) & HV_PHF_LEASED))
			assert_true((acts & HV_ACT_PAUSE_CLUSTER) ||
			            want[i].to == HV_PH_ROLLBACK);
		if (acts & HV_ACT_MARK_GOOD)
			assert_true(want[i].from == HV_PH_VALIDATE &&
			            want[i].event == HV_EV_OK);
		if (want[i].event == HV_EV_BOOTED_OLD)
			assert_true(acts & HV_ACT_QUARANTINE);
	}
}

/* From IDLE every phase is reachable, and from every phase a final phase
 * (bounded search over the table). */
static void test_reachability(void **state)
{
	bool reach[HV__PH_N] = {false};
	bool changed = true;

	(void)state;
	reach[HV_PH_IDLE] = true;
	for (int round = 0; round < HV__PH_N && changed; round++) {
		changed = false;
		for (unsigned i = 0; i < N_WANT; i++)
			if (reach[want[i].from] && !reach[want[i].to]) {
				reach[want[i].to] = true;
				changed = true;
			}
	}
	for (int p = 0; p < HV__PH_N; p++)
		assert_true(reach[p]);
	for (int p = 0; p < HV__PH_N; p++) {
		bool seen[HV__PH_N] = {false};
		bool final = false;
		seen[p] = true;
		changed = true;
		for (int round = 0; round < HV__PH_N && changed && !final; round++) {
			changed = false;
			for (unsigned i = 0; i < N_WANT; i++)
				if (seen[want[i].from] && !seen[want[i].to]) {
					seen[want[i].to] = true;
					changed = true;
				}
			for (int q = 0; q < HV__PH_N; q++)
				if (seen[q] && (hv_phase_flags(q) & HV_PHF_FINAL))
					final = true;
		}
		assert_true(final);
	}
}

/* The happy path, step by step, with the actions a driver performs. */
static void test_happy_path(void **state)
{
	static const int events[] = {HV_EV_DUE, HV_EV_GRANTED, HV_EV_OK, HV_EV_OK,
	                             HV_EV_OK,  HV_EV_OK,      HV_EV_OK, HV_EV_BOOTED_NEW,
	                             HV_EV_OK,  HV_EV_OK,      HV_EV_OK};
	static const int phases_after[] = {
	    HV_PH_WAIT_LEASE, HV_PH_PRECHECK,  HV_PH_ENTER_MAINT, HV_PH_EVACUATE,
	    HV_PH_STAGE,      HV_PH_APPLY,     HV_PH_REBOOT,      HV_PH_VALIDATE,
	    HV_PH_EXIT_MAINT, HV_PH_REBALANCE, HV_PH_DONE};
	unsigned all = 0;
	int p = HV_PH_IDLE;

	(void)state;
	for (unsigned i = 0; i < sizeof events / sizeof events[0]; i++) {
		unsigned acts;
		assert_int_equal(hv_cycle_step(p, events[i], &p, &acts), HV_OK);
		assert_int_equal(p, phases_after[i]);
		all |= acts;
	}
	assert_false(all & (HV_ACT_ROLLBACK | HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE));
	assert_true(all & HV_ACT_MARK_GOOD);
	assert_true(all & HV_ACT_RELEASE_LEASE);
}

static void test_names(void **state)
{
	(void)state;
	for (int p = 0; p < HV__PH_N; p++) {
		assert_string_not_equal(hv_phase_name(p), "unknown");
		assert_int_equal(hv_phase_parse(hv_phase_name(p)), p);
	}
	assert_string_equal(hv_phase_name(HV__PH_N), "unknown");
	assert_int_equal(hv_phase_parse("nope"), -1);
	for (int e = 0; e < HV__EV_N; e++)
		assert_string_not_equal(hv_event_name(e), "unknown");
	for (unsigned b = 1; b < HV__ACT_ALL; b <<= 1)
		assert_string_not_equal(hv_action_name_bit(b), "unknown");
	assert_string_equal(hv_action_name_bit(HV_ACT_REBOOT), "reboot");
	assert_string_equal(hv_action_name_bit(3), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_pair),    cmocka_unit_test(test_lease_rules),
	    cmocka_unit_test(test_failure_rules), cmocka_unit_test(test_reachability),
	    cmocka_unit_test(test_happy_path),    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
