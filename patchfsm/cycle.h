/*
 * The per-host patch cycle as a table of transitions: pure logic, no I/O.
 *
 *   hv_cycle_step(phase, event) -> next phase + actions
 *
 * The table in cycle.c is the specification: every transition that is not
 * in it is illegal and refused (the caller asserts). The driver (a later
 * part of node/) commits each transition to the log before it performs the
 * actions, and checks its fencing token before each side effect, so that a
 * host that crashes resumes from the committed phase.
 *
 * Safety rules the table keeps (tests/unit/test_cycle.c checks them):
 *  - the lease is released only before maintenance starts (a refused
 *    pre-check) or at the very end, after the validated host has left
 *    maintenance: never while the host is drained, rebooting or unvalidated;
 *    out of FAILED only an operator gets, and the lease then goes with an
 *    explicit `hvpeer lease break --force`;
 *  - every failure after the lease is held stops the line (pauses the
 *    cluster); a failure of the patch itself also quarantines it;
 *  - the new boot bank is marked good only after validation passed.
 */
#ifndef HV_CYCLE_H
#define HV_CYCLE_H

enum hv_phase {
	HV_PH_IDLE = 0,    /* no patch for this host */
	HV_PH_WAIT_LEASE,  /* a patch is due; waiting for the lease */
	HV_PH_PRECHECK,    /* lease held: cluster healthy, room for the guests... */
	HV_PH_ENTER_MAINT, /* entering maintenance */
	HV_PH_EVACUATE,    /* live-migrating the guests away */
	HV_PH_STAGE,       /* fetching and verifying the bundle */
	HV_PH_APPLY,       /* writing the alternate boot bank */
	HV_PH_REBOOT,      /* rebooting into it */
	HV_PH_VALIDATE,    /* booted version, health hooks, sensors, rejoin */
	HV_PH_EXIT_MAINT,  /* leaving maintenance */
	HV_PH_REBALANCE,   /* guests back home or rebalanced */
	HV_PH_DONE,        /* patched; lease released */
	HV_PH_ROLLBACK,    /* back to the previous bank */
	HV_PH_FAILED,      /* the line is stopped; an operator acts */
	HV_PH_PAUSED,      /* the cluster is paused before this host started */
	HV__PH_N
};

enum hv_cycle_event {
	HV_EV_DUE = 0,    /* a patch was submitted and this host's turn may come */
	HV_EV_GRANTED,    /* the lease was granted */
	HV_EV_OK,         /* the current phase's work succeeded */
	HV_EV_FAIL,       /* it failed */
	HV_EV_BOOTED_NEW, /* the host came back on the new bank */
	HV_EV_BOOTED_OLD, /* the host came back on the previous bank */
	HV_EV_PAUSE,      /* the cluster was paused */
	HV_EV_RESUME,     /* the cluster was resumed */
	HV_EV_ABORT,      /* an operator aborted this host's cycle */
	HV__EV_N
};

/* Actions, a bit set: what the driver does after committing the move. */
enum {
	HV_ACT_ACQUIRE_LEASE = 1u << 0,
	HV_ACT_PRECHECK = 1u << 1,
	HV_ACT_ENTER_MAINT = 1u << 2,
	HV_ACT_EVACUATE = 1u << 3,
	HV_ACT_STAGE = 1u << 4,
	HV_ACT_APPLY = 1u << 5,
	HV_ACT_REBOOT = 1u << 6,
	HV_ACT_VALIDATE = 1u << 7,
	HV_ACT_MARK_GOOD = 1u << 8,
	HV_ACT_ROLLBACK = 1u << 9,
	HV_ACT_EXIT_MAINT = 1u << 10,
	HV_ACT_REBALANCE = 1u << 11,
	HV_ACT_RELEASE_LEASE = 1u << 12,
	HV_ACT_PAUSE_CLUSTER = 1u << 13,
	HV_ACT_QUARANTINE = 1u << 14,
	HV__ACT_ALL = (1u << 15) - 1
};

/* Phase flags. */
enum {
	HV_PHF_INITIAL = 1u << 0, /* where a host starts */
	HV_PHF_FINAL = 1u << 1,   /* the cycle is over (a new patch starts again) */
	HV_PHF_FAILURE = 1u << 2, /* the line is stopped */
	HV_PHF_LEASED = 1u << 3,  /* the host holds the lease in this phase */
	HV_PHF_DRAINED = 1u << 4, /* the host is in maintenance in this phase */
};

/*
 * One step. Returns HV_OK with *next and *actions set, or HV_INVAL for a
 * transition the table does not allow (then *next and *actions are
 * untouched).
 */
int hv_cycle_step(int phase, int event, int *next, unsigned *actions);

unsigned hv_phase_flags(int phase);
const char *hv_phase_name(int phase); /* "evacuate"; "unknown" */
int hv_phase_parse(const char *s);    /* -1 when unknown */
const char *hv_event_name(int event);
const char *hv_action_name_bit(unsigned bit); /* one bit: "reboot" */

#endif
