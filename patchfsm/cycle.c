#include <stddef.h>
#include <string.h>

#include "../lib/err.h"
#include "cycle.h"

static const struct {
	const char *name;
	unsigned flags;
} phases[HV__PH_N] = {
    [HV_PH_IDLE] = {"idle", HV_PHF_INITIAL | HV_PHF_FINAL},
    [HV_PH_WAIT_LEASE] = {"wait-lease", 0},
    [HV_PH_PRECHECK] = {"precheck", HV_PHF_LEASED},
    [HV_PH_ENTER_MAINT] = {"enter-maint", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_EVACUATE] = {"evacuate", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_STAGE] = {"stage", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_APPLY] = {"apply", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_REBOOT] = {"reboot", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_VALIDATE] = {"validate", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_EXIT_MAINT] = {"exit-maint", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_REBALANCE] = {"rebalance", HV_PHF_LEASED},
    [HV_PH_DONE] = {"done", HV_PHF_FINAL},
    [HV_PH_ROLLBACK] = {"rollback", HV_PHF_LEASED | HV_PHF_DRAINED},
    [HV_PH_FAILED] = {"failed", HV_PHF_FAILURE | HV_PHF_LEASED},
    [HV_PH_PAUSED] = {"paused", 0},
};

static const char *const events[HV__EV_N] = {
    [HV_EV_DUE] = "due",
    [HV_EV_GRANTED] = "granted",
    [HV_EV_OK] = "ok",
    [HV_EV_FAIL] = "fail",
    [HV_EV_BOOTED_NEW] = "booted-new",
    [HV_EV_BOOTED_OLD] = "booted-old",
    [HV_EV_PAUSE] = "pause",
    [HV_EV_RESUME] = "resume",
    [HV_EV_ABORT] = "abort",
};

static const char *const actions[] = {
    "acquire-lease", "precheck",  "enter-maint",   "evacuate",      "stage",
    "apply",         "reboot",    "validate",      "mark-good",     "rollback",
    "exit-maint",    "rebalance", "release-lease", "pause-cluster", "quarantine",
};

#define STOP (HV_ACT_PAUSE_CLUSTER)
#define STOP_BAD_PATCH (HV_ACT_PAUSE_CLUSTER | HV_ACT_QUARANTINE)

/* The specification. A failure keeps the lease (never handed on while the
 * host is drained or unvalidated); only a refused pre-check, before anything
 * moved, gives it back. */
static const struct {
	int from, event, to;
	unsigned actions;
} table[] = {
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
    /* Nothing moved yet: give the lease back and stop the line. */
    {HV_PH_PRECHECK, HV_EV_FAIL, HV_PH_PAUSED, HV_ACT_RELEASE_LEASE | STOP},
    {HV_PH_PRECHECK, HV_EV_ABORT, HV_PH_IDLE, HV_ACT_RELEASE_LEASE},

    {HV_PH_ENTER_MAINT, HV_EV_OK, HV_PH_EVACUATE, HV_ACT_EVACUATE},
    {HV_PH_ENTER_MAINT, HV_EV_FAIL, HV_PH_FAILED, STOP},
    {HV_PH_EVACUATE, HV_EV_OK, HV_PH_STAGE, HV_ACT_STAGE},
    {HV_PH_EVACUATE, HV_EV_FAIL, HV_PH_FAILED, STOP},
    {HV_PH_STAGE, HV_EV_OK, HV_PH_APPLY, HV_ACT_APPLY},
    {HV_PH_STAGE, HV_EV_FAIL, HV_PH_FAILED, STOP_BAD_PATCH},
    {HV_PH_APPLY, HV_EV_OK, HV_PH_REBOOT, HV_ACT_REBOOT},
    {HV_PH_APPLY, HV_EV_FAIL, HV_PH_ROLLBACK, HV_ACT_ROLLBACK},
    {HV_PH_REBOOT, HV_EV_BOOTED_NEW, HV_PH_VALIDATE, HV_ACT_VALIDATE},
    {HV_PH_REBOOT, HV_EV_BOOTED_OLD, HV_PH_FAILED, STOP_BAD_PATCH},
    {HV_PH_REBOOT, HV_EV_FAIL, HV_PH_FAILED, STOP},
    {HV_PH_VALIDATE, HV_EV_OK, HV_PH_EXIT_MAINT, HV_ACT_MARK_GOOD | HV_ACT_EXIT_MAINT},
    {HV_PH_VALIDATE, HV_EV_FAIL, HV_PH_ROLLBACK, HV_ACT_ROLLBACK | HV_ACT_REBOOT},
    {HV_PH_ROLLBACK, HV_EV_OK, HV_PH_FAILED, STOP_BAD_PATCH},
    {HV_PH_ROLLBACK, HV_EV_BOOTED_OLD, HV_PH_FAILED, STOP_BAD_PATCH},
    {HV_PH_ROLLBACK, HV_EV_BOOTED_NEW, HV_PH_FAILED, STOP},
    {HV_PH_ROLLBACK, HV_EV_FAIL, HV_PH_FAILED, STOP},
    {HV_PH_EXIT_MAINT, HV_EV_OK, HV_PH_REBALANCE, HV_ACT_REBALANCE},
    {HV_PH_EXIT_MAINT, HV_EV_FAIL, HV_PH_FAILED, STOP},
    {HV_PH_REBALANCE, HV_EV_OK, HV_PH_DONE, HV_ACT_RELEASE_LEASE},
    {HV_PH_REBALANCE, HV_EV_FAIL, HV_PH_FAILED, STOP},

    /* An operator's way out of a stopped line (the lease is broken with
     * `hvpeer lease break --force` separately, after they looked). */
    {HV_PH_FAILED, HV_EV_ABORT, HV_PH_IDLE, 0},
};

int hv_cycle_step(int phase, int event, int *next, unsigned *acts)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (table[i].from == phase && table[i].event == event) {
			*next = table[i].to;
			*acts = table[i].actions;
			return HV_OK;
		}
	return HV_INVAL;
}

unsigned hv_phase_flags(int phase)
{
	return phase >= 0 && phase < HV__PH_N ? phases[phase].flags : 0;
}

const char *hv_phase_name(int phase)
{
	return phase >= 0 && phase < HV__PH_N ? phases[phase].name : "unknown";
}

int hv_phase_parse(const char *s)
{
	for (int i = 0; i < HV__PH_N; i++)
		if (strcmp(phases[i].name, s) == 0)
			return i;
	return -1;
}

const char *hv_event_name(int event)
{
	return event >= 0 && event < HV__EV_N ? events[event] : "unknown";
}

const char *hv_action_name_bit(unsigned bit)
{
	for (unsigned i = 0; i < sizeof actions / sizeof actions[0]; i++)
		if (bit == 1u << i)
			return actions[i];
	return "unknown";
}
