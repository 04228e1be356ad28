/*
 * A/B boot banks: where a patch is written and how the next boot picks it.
 *
 * One interface (a table of operations, struct hv_bootbank), two
 * implementations:
 *
 *  - "dir:PATH", the dirbank: a directory with bank-a/, bank-b/ and a state
 *    file, plus a simulated bootloader (boot). The lab and the tests use it.
 *  - "exec": operator commands (rpm-ostree, grub-reboot, ...) for real
 *    hosts, run with /bin/sh -c under a timeout.
 *
 * The cycle: apply (write the inactive bank; the active one is never
 * touched) -> set_next (one trial boot of it) -> reboot -> validate ->
 * mark_good (the trial bank becomes the active one) or rollback (the next
 * boot starts the active bank again). A trial boot that is never marked good
 * (crash, hang, failed validation) is rolled back by the bootloader on the
 * boot after it.
 *
 * Every operation blocks (apply copies a tree and fsyncs it; exec waits for
 * a command): call them off the event loop, one at a time per bank (a
 * dirbank refuses a second operation on the same directory, from this
 * process or another, as busy). Each returns HV_OK or an HV_*
 * code (lib/err.h) with a message in the caller's err buffer that names the
 * bank, the cause and what to do. HV_INVAL means "refused in this state"
 * (nothing changed), HV_IO an I/O failure or a failed command, HV_TIMEOUT a
 * command killed by its timeout, HV_MALFORMED a damaged state file,
 * HV_PROTO a status command's output that makes no sense.
 *
 * Crash safety of the dirbank: a kill -9 at any instant of any operation
 * leaves a state in which boot starts a bank that holds a VERSION, and the
 * active bank's files untouched. See bootbank.c for the layout.
 */
#ifndef HV_BOOTBANK_H
#define HV_BOOTBANK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* A bank's version string: 1..63 printable ASCII characters, no spaces. */
#define HV_BANK_VERSION_MAX 64

/* Trial boots allowed before the bootloader gives up on a trial bank. */
#define HV_BANK_MAX_TRIES_LIMIT 100

struct hv_bootbank_status {
	char active[2]; /* "a"/"b": the bank marked good, booted by default */
	char tried[2];  /* bank set for (or booted on) trial; "" = none */
	unsigned tries; /* boots of the trial bank so far */
	unsigned max_tries;
	char booted[2]; /* the bank the last boot started */
	char booted_version[HV_BANK_VERSION_MAX];
	char active_version[HV_BANK_VERSION_MAX];
	char other_version[HV_BANK_VERSION_MAX]; /* the inactive bank; "" = none */
	bool booted_is_trial; /* booted a bank not (or no longer) marked good */
};

/*
 * The exec implementation's commands, each run with /bin/sh -c, stdin from
 * /dev/null, in a process group of its own that is killed (SIGKILL) when
 * the command outlives timeout_ms. apply gets HVPEER_STAGING and
 * HVPEER_VERSION in its environment. status prints the booted version on
 * its first line and, when that deployment is not marked good yet, "trial"
 * on a second one. A NULL or empty command makes its operation fail with
 * HV_INVAL. A command must not leave processes holding its stdout/stderr.
 */
struct hv_bootbank_exec {
	const char *apply;     /* apply-command */
	const char *set_next;  /* set-next-command */
	const char *mark_good; /* mark-good-command */
	const char *rollback;  /* rollback-command */
	const char *status;    /* status-command */
	unsigned timeout_ms;   /* per command; 0 = 600000 (10 min) */
};

struct hv_bootbank {
	const char *kind; /* "dir" or "exec" */

	/* What the banks hold and which one booted. For exec only
	 * booted_version and booted_is_trial are known; the rest is empty. */
	int (*status)(struct hv_bootbank *b, struct hv_bootbank_status *st, char *err,
	              size_t errlen);

	/* Write the tree under staging_dir into the inactive bank, with
	 * version as its VERSION (a top-level VERSION file in staging_dir is
	 * replaced). Refused while the host runs a bank not marked good. A
	 * pending set_next is cancelled first (the bank it named changes). */
	int (*apply)(struct hv_bootbank *b, const char *staging_dir, const char *version,
	             char *err, size_t errlen);

	/* One-shot: the next boot tries the inactive bank (which must hold a
	 * VERSION); if that boot is not marked good, the one after starts the
	 * active bank again. Idempotent. */
	int (*set_next)(struct hv_bootbank *b, char *err, size_t errlen);

	/* The booted trial bank becomes the active one, for good. Refused when
	 * the host did not boot the trial bank; HV_OK when it already runs the
	 * active bank. */
	int (*mark_good)(struct hv_bootbank *b, char *err, size_t errlen);

	/* Forget the trial: the next boot starts the active bank. When the
	 * host runs the trial bank (status: booted_is_trial), the caller
	 * reboots afterwards. HV_OK when there is nothing to forget. */
	int (*rollback)(struct hv_bootbank *b, char *err, size_t errlen);

	/* The simulated bootloader (dirbank only; exec returns HV_INVAL: the
	 * host's own bootloader boots). Starts the trial bank while it has
	 * tries left, else drops the trial and starts the active bank
	 * (*rolled_back then true). Cleans what an interrupted apply left.
	 * Fills st (may be NULL) with the status after the boot. */
	int (*boot)(struct hv_bootbank *b, struct hv_bootbank_status *st,
	            bool *rolled_back, char *err, size_t errlen);

	/* Private to bootbank.c. */
	char dir[PATH_MAX];
	char *cmd[5]; /* exec: apply, set-next, mark-good, rollback, status */
	unsigned timeout_ms;

	/*
	 * Test hook: simulated crashes of the dirbank. Every durable step
	 * (create, write, fsync, mkdir, symlink, chmod, rename, remove) counts
	 * one in steps; once steps reaches crash_at (0 = never), that step and
	 * every later one fails with ECANCELED and nothing is cleaned up, as
	 * if the process had died right before it. Tests reset steps, set
	 * crash_at = 1, 2, ... and check what boot makes of the remains.
	 */
	struct {
		unsigned crash_at;
		unsigned steps;
	} test;
};

/* Is v a valid bank version (see HV_BANK_VERSION_MAX)? */
bool hv_bootbank_version_valid(const char *v);

/*
 * Open a bank by spec: "dir:PATH" (exec may be NULL) or "exec" (exec must
 * not be NULL). A dirbank need not be initialised yet (see
 * hv_dirbank_init); its operations then fail with HV_INVAL. The strings in
 * exec are copied: the caller keeps ownership. Close with hv_bootbank_close
 * even after a failed open.
 */
int hv_bootbank_open(struct hv_bootbank *b, const char *spec,
                     const struct hv_bootbank_exec *exec, char *err, size_t errlen);
int hv_bootbank_open_dir(struct hv_bootbank *b, const char *dir, char *err,
                         size_t errlen);
int hv_bootbank_open_exec(struct hv_bootbank *b, const struct hv_bootbank_exec *exec,
                          char *err, size_t errlen);

/* Free what open allocated; b may be opened again afterwards. */
void hv_bootbank_close(struct hv_bootbank *b);

/*
 * Make b's directory (created if missing) a dirbank: bank-a holds version
 * and is active and booted, bank-b is empty, max_tries trial boots (0 = 1)
 * before a rollback. Files already in DIR/bank-a are kept. Refused
 * (HV_EXISTS) when DIR/state exists. An interrupted init leaves no state
 * file and may simply be run again.
 */
int hv_dirbank_init(struct hv_bootbank *b, const char *version, unsigned max_tries,
                    char *err, size_t errlen);

#endif
