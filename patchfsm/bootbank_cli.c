/*
 * `hvpeer bootbank`: the A/B boot banks of a dirbank (patchfsm/bootbank.h)
 * from the shell, for the lab and for operators: init, status, apply,
 * set-next, mark-good, rollback and boot (the simulated bootloader).
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "bootbank.h"
#include "cli.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 5 };

struct ctx {
	const char *dir;
	bool json;
	const char *version; /* --version */
	unsigned max_tries;  /* --max-tries */
	struct hv_bootbank b;
	char err[1024];
};

struct command {
	const char *name;
	int (*run)(struct ctx *c, const struct command *cmd, int argc, char **argv);
	const char *synopsis; /* after the name */
	const char *help;
};

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: hvpeer bootbank [--dir DIR] [--json] COMMAND [ARGS]\n"
	       "\n"
	       "The A/B boot banks of a directory bank (the lab's disk and bootloader).\n"
	       "\n"
	       "Commands:\n"
	       "  init --version V [--max-tries N]\n"
	       "                   make DIR a bank: bank a holds V, active and booted\n"
	       "  status           versions of both banks, the trial, the booted bank\n"
	       "  apply STAGING_DIR --version V\n"
	       "                   copy STAGING_DIR into the inactive bank\n"
	       "  set-next         the next boot tries the inactive bank, once\n"
	       "  mark-good        the booted trial bank becomes the active bank\n"
	       "  rollback         forget the trial: the next boot starts the active "
	       "bank\n"
	       "  boot             the simulated bootloader: start a bank (as at power "
	       "on)\n"
	       "\n"
	       "Options:\n"
	       "  -d, --dir DIR    the bank directory (default $HVPEER_BOOTBANK_DIR)\n"
	       "  -j, --json       print the outcome as JSON\n"
	       "  -h, --help       this help; 'hvpeer bootbank COMMAND --help' for one\n"
	       "\n"
	       "Exit status: 0 done; 1 refused in this state (nothing changed);\n"
	       "2 usage error; 5 I/O error or damaged state.\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hvpeer bootbank: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'hvpeer bootbank --help'.\n");
	return EXIT_USAGE;
}

/* ---- output ------------------------------------------------------------ */

static struct json_object *jstr_or_null(const char *s)
{
	return s[0] != '\0' ? json_object_new_string(s) : NULL;
}

static struct json_object *status_json(const struct hv_bootbank_status *st)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "active", jstr_or_null(st->active));
	json_object_object_add(o, "active_version", jstr_or_null(st->active_version));
	json_object_object_add(o, "other_version", jstr_or_null(st->other_version));
	json_object_object_add(o, "trial", jstr_or_null(st->tried));
	json_object_object_add(o, "tries", json_object_new_int64(st->tries));
	json_object_object_add(o, "max_tries", json_object_new_int64(st->max_tries));
	json_object_object_add(o, "booted", jstr_or_null(st->booted));
	json_object_object_add(o, "booted_version", jstr_or_null(st->booted_version));
	json_object_object_add(o, "booted_is_trial",
	                       json_object_new_boolean(st->booted_is_trial));
	return o;
}

static const char *or_none(const char *v)
{
	return v[0] != '\0' ? v : "(none)";
}

static void status_print(const struct hv_bootbank_status *st)
{
	char other = st->active[0] == 'a' ? 'b' : 'a';

	printf("active  bank %s  %s\n", st->active, or_none(st->active_version));
	printf("other   bank %c  %s\n", other, or_none(st->other_version));
	if (st->tried[0] != '\0')
		printf("trial   bank %s  (%u of %u boots used)\n", st->tried, st->tries,
		       st->max_tries);
	else
		printf("trial   none\n");
	printf("booted  bank %s  %s%s\n", st->booted, or_none(st->booted_version),
	       !st->booted_is_trial ? ""
	       : st->tried[0] != '\0'
	           ? "  (on trial: 'mark-good' keeps it; 'rollback' and a reboot drop it)"
	           : "  (rolled back: reboot to return to the active bank)");
}

/* Print the outcome of an operation; message NULL for status. */
static int report(struct ctx *c, int rc, const char *message, bool have_status,
                  const struct hv_bootbank_status *st, int rolled_back)
{
	struct json_object *o;

	if (!c->json) {
		if (rc != HV_OK) {
			fprintf(stderr, "hvpeer: %s\n", c->err);
		} else {
			if (message != NULL)
				printf("%s\n", message);
			if (message == NULL && have_status)
				status_print(st);
		}
	} else {
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(rc == HV_OK));
		if (rc != HV_OK) {
			json_object_object_add(o, "error",
			                       json_object_new_string(hv_errname(rc)));
			json_object_object_add(o, "message",
			                       json_object_new_string(c->err));
		} else {
			if (message != NULL)
				json_object_object_add(o, "message",
				                       json_object_new_string(message));
			if (rolled_back >= 0)
				json_object_object_add(
				    o, "rolled_back",
				    json_object_new_boolean(rolled_back));
			if (have_status)
				json_object_object_add(o, "status", status_json(st));
		}
		printf("%s\n",
		       json_object_to_json_string_ext(
		           o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	}
	switch (rc) {
	case HV_OK:
		return EXIT_OK;
	case HV_INVAL:
	case HV_EXISTS:
		return EXIT_REFUSED;
	default:
		return EXIT_INTERNAL;
	}
}

/* ---- option parsing ---------------------------------------------------- */

static void command_help(const struct command *cmd)
{
	printf("usage: hvpeer bootbank [--dir DIR] [--json] %s%s%s\n\n%s\n", cmd->name,
	       cmd->synopsis[0] != '\0' ? " " : "", cmd->synopsis, cmd->help);
}

/* The options of a command (--dir and --json are accepted anywhere).
 * Returns the index of the first operand, -1 on a usage error, -2 after
 * --help. */
static int parse(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"version", required_argument, NULL, 'v'},
	    {"max-tries", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0; /* full reinitialisation of GNU getopt for a new argv */
	while ((ch = getopt_long(argc, argv, "d:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c->dir = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case 'v':
			if (strcmp(cmd->name, "init") != 0 &&
			    strcmp(cmd->name, "apply") != 0) {
				usage_error("%s takes no --version", cmd->name);
				return -1;
			}
			if (!hv_bootbank_version_valid(optarg)) {
				usage_error(
				    "--version '%s': give 1..63 printable characters "
				    "without spaces",
				    optarg);
				return -1;
			}
			c->version = optarg;
			break;
		case 'm': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (strcmp(cmd->name, "init") != 0) {
				usage_error("--max-tries goes with init");
				return -1;
			}
			if (*end != '\0' || end == optarg || v < 1 ||
			    v > HV_BANK_MAX_TRIES_LIMIT) {
				usage_error("--max-tries '%s' is not a number in 1..%d",
				            optarg, HV_BANK_MAX_TRIES_LIMIT);
				return -1;
			}
			c->max_tries = (unsigned)v;
			break;
		}
		case 'h':
			command_help(cmd);
			return -2;
		default:
			fprintf(stderr, "Try 'hvpeer bootbank %s --help'.\n", cmd->name);
			return -1;
		}
	}
	return optind;
}

/* Parse, check the operand count, open the bank. Returns -1 when done (the
 * exit code in *code) or the index of the first operand. */
static int setup(struct ctx *c, const struct command *cmd, int argc, char **argv,
                 int operands, int *code)
{
	int i = parse(c, cmd, argc, argv), rc;

	if (i < 0) {
		*code = i == -2 ? EXIT_OK : EXIT_USAGE;
		return -1;
	}
	if (argc - i != operands) {
		*code = usage_error("%s takes %s", cmd->name,
		                    operands == 0 ? "no operand"
		                                  : "one operand, the "
		                                    "staging directory");
		return -1;
	}
	if (c->dir == NULL || c->dir[0] == '\0') {
		*code = usage_error("no bank directory: give --dir DIR (or set "
		                    "HVPEER_BOOTBANK_DIR)");
		return -1;
	}
	rc = hv_bootbank_open_dir(&c->b, c->dir, c->err, sizeof c->err);
	if (rc != HV_OK) {
		*code = report(c, rc, NULL, false, NULL, -1);
		return -1;
	}
	return i;
}

/* The status after a change, for the report; false when unreadable. */
static bool after(struct ctx *c, struct hv_bootbank_status *st)
{
	char err[sizeof c->err];

	return c->b.status(&c->b, st, err, sizeof err) == HV_OK;
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_init(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	char msg[256];
	int code, rc;

	if (setup(c, cmd, argc, argv, 0, &code) < 0)
		return code;
	if (c->version == NULL)
		return usage_error("init needs --version V (the version bank a holds)");
	rc = hv_dirbank_init(&c->b, c->version, c->max_tries, c->err, sizeof c->err);
	snprintf(msg, sizeof msg,
	         "bootbank %s: initialised: bank a holds %s (active, booted), bank b is "
	         "empty",
	         c->dir, c->version);
	return report(c, rc, msg, rc == HV_OK && after(c, &st), &st, -1);
}

static int cmd_status(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	int code, rc;

	if (setup(c, cmd, argc, argv, 0, &code) < 0)
		return code;
	rc = c->b.status(&c->b, &st, c->err, sizeof c->err);
	return report(c, rc, NULL, rc == HV_OK, &st, -1);
}

static int cmd_apply(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	char msg[512];
	int code, rc, i;

	i = setup(c, cmd, argc, argv, 1, &code);
	if (i < 0)
		return code;
	if (c->version == NULL)
		return usage_error("apply needs --version V (the version of the patch)");
	rc = c->b.apply(&c->b, argv[i], c->version, c->err, sizeof c->err);
	if (rc == HV_OK && after(c, &st)) {
		snprintf(msg, sizeof msg,
		         "bank %c now holds %s (the active bank %s is untouched); next: "
		         "hvpeer bootbank set-next",
		         st.active[0] == 'a' ? 'b' : 'a', c->version, st.active);
		return report(c, rc, msg, true, &st, -1);
	}
	return report(c, rc, "apply done", false, NULL, -1);
}

static int cmd_set_next(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	char msg[512];
	int code, rc;

	if (setup(c, cmd, argc, argv, 0, &code) < 0)
		return code;
	rc = c->b.set_next(&c->b, c->err, sizeof c->err);
	if (rc == HV_OK && after(c, &st)) {
		snprintf(
		    msg, sizeof msg,
		    "the next boot tries bank %s (%s); unless it is marked good, the "
		    "boot after it starts bank %s (%s) again",
		    st.tried, or_none(st.other_version), st.active,
		    or_none(st.active_version));
		return report(c, rc, msg, true, &st, -1);
	}
	return report(c, rc, "set-next done", false, NULL, -1);
}

static int cmd_mark_good(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	bool was_good;
	char msg[256];
	int code, rc;

	if (setup(c, cmd, argc, argv, 0, &code) < 0)
		return code;
	/* Tell "marked now" from "was good already" (both succeed). */
	was_good = after(c, &st) && !st.booted_is_trial && st.tried[0] == '\0';
	rc = c->b.mark_good(&c->b, c->err, sizeof c->err);
	if (rc == HV_OK && after(c, &st)) {
		snprintf(msg, sizeof msg, "bank %s (%s) %s the active bank", st.active,
		         or_none(st.active_version),
		         was_good ? "runs and is good already:" : "is marked good: now");
		return report(c, rc, msg, true, &st, -1);
	}
	return report(c, rc, "mark-good done", false, NULL, -1);
}

static int cmd_rollback(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	char msg[256];
	int code, rc;

	if (setup(c, cmd, argc, argv, 0, &code) < 0)
		return code;
	rc = c->b.rollback(&c->b, c->err, sizeof c->err);
	if (rc == HV_OK && after(c, &st)) {
		if (st.booted_is_trial)
			snprintf(
			    msg, sizeof msg,
			    "trial dropped: the next boot starts bank %s (%s); this host "
			    "runs bank %s: reboot it",
			    st.active, or_none(st.active_version), st.booted);
		else
			snprintf(msg, sizeof msg,
			         "no trial pending: the next boot starts bank %s (%s)",
			         st.active, or_none(st.active_version));
		return report(c, rc, msg, true, &st, -1);
	}
	return report(c, rc, "rollback done", false, NULL, -1);
}

static int cmd_boot(struct ctx *c, const struct command *cmd, int argc, char **argv)
{
	struct hv_bootbank_status st;
	bool rolled_back = false;
	char msg[512];
	int code, rc;

	if (setup(c, cmd, argc, argv, 0, &code) < 0)
		return code;
	rc = c->b.boot(&c->b, &st, &rolled_back, c->err, sizeof c->err);
	if (rc != HV_OK)
		return report(c, rc, NULL, false, NULL, -1);
	if (rolled_back)
		snprintf(msg, sizeof msg,
		         "the trial bank was never marked good: rolled back; booted bank "
		         "%s (%s)",
		         st.booted, or_none(st.booted_version));
	else if (st.booted_is_trial)
		snprintf(msg, sizeof msg, "booted bank %s (%s) on trial (boot %u of %u)",
		         st.booted, or_none(st.booted_version), st.tries, st.max_tries);
	else
		snprintf(msg, sizeof msg, "booted bank %s (%s)", st.booted,
		         or_none(st.booted_version));
	return report(c, rc, msg, true, &st, rolled_back);
}

static const struct command commands[] = {
    {"init", cmd_init, "--version V [--max-tries N]",
     "Make DIR (created if missing) a bank directory: bank-a holds version V\n"
     "and is active and booted, bank-b is empty. Files already in DIR/bank-a\n"
     "are kept. A trial bank gets N boots (default 1) to be marked good before\n"
     "the bootloader rolls it back. Refused when DIR is initialised already."},
    {"status", cmd_status, "",
     "Show the active bank, the other bank, the trial and the booted bank with\n"
     "their versions."},
    {"apply", cmd_apply, "STAGING_DIR --version V",
     "Copy the files, directories and symlinks under STAGING_DIR into the\n"
     "inactive bank, with V as its VERSION. The active bank is never touched;\n"
     "a crash leaves it as it was. Cancels a pending set-next. Refused while\n"
     "the host runs a bank not marked good."},
    {"set-next", cmd_set_next, "",
     "Set the inactive bank (it must hold a VERSION) for one trial boot."},
    {"mark-good", cmd_mark_good, "",
     "Make the booted trial bank the active bank, for good. Refused when the\n"
     "host did not boot the trial bank; does nothing when it runs the active\n"
     "bank already."},
    {"rollback", cmd_rollback, "",
     "Forget the trial: the next boot starts the active bank. When the host\n"
     "runs the trial bank, reboot it afterwards."},
    {"boot", cmd_boot, "",
     "The simulated bootloader, run at power on: starts the trial bank while\n"
     "it has boots left, else drops the trial (an automatic rollback) and\n"
     "starts the active bank. Prints what it booted."},
};

int hv_bootbank_main(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctx *c;
	const char *name;
	int ch, code;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		fprintf(stderr, "hvpeer bootbank: out of memory\n");
		return EXIT_INTERNAL;
	}
	c->json = json;
	c->dir = getenv("HVPEER_BOOTBANK_DIR");
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+d:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c->dir = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			code = EXIT_OK;
			goto out;
		default:
			fprintf(stderr, "Try 'hvpeer bootbank --help'.\n");
			code = EXIT_USAGE;
			goto out;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		code = EXIT_USAGE;
		goto out;
	}
	name = argv[optind];
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, name) == 0) {
			code = commands[i].run(c, &commands[i], argc - optind,
			                       argv + optind);
			goto out;
		}
	code = usage_error("unknown bootbank command '%s' (init, status, apply, "
	                   "set-next, mark-good, rollback, boot)",
	                   name);
out:
	hv_bootbank_close(&c->b);
	free(c);
	return code;
}
