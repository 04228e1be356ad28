/*
 * Boot banks (patchfsm/bootbank.c): the dirbank's rules (init, apply,
 * set-next, boot, mark-good, rollback and the automatic rollback of a trial
 * never marked good), its crash safety (a simulated crash at every durable
 * step of every operation, through the test hook in struct hv_bootbank),
 * the exec bank with small shell commands, and the `hvpeer bootbank` CLI.
 *
 * Every test works in a fresh directory under /tmp, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../patchfsm/bootbank.h"
#include "../../patchfsm/cli.h"

struct fixture {
	char base[64];       /* /tmp/hvbb-XXXXXX */
	char dir[128];       /* base/banks */
	char stage[128];     /* base/stage: the tree apply copies */
	char path[PATH_MAX]; /* scratch */
	struct hv_bootbank b;
	struct hv_bootbank_status st;
	char err[1024];
	char *old_a, *old_b, *new_b; /* test_crash_apply: the trees to expect */
};

/* ---- files -------------------------------------------------------------- */

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* The file's text, or "" when it is missing; into a static-free buffer. */
static const char *get(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, cap - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int unlock_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D)
		chmod(path, (st->st_mode & 07777) | 0700);
	return 0;
}

static void rm_rf(const char *path)
{
	if (!exists(path))
		return;
	/* Read-only directories first become writable, so that a non-root
	 * run can empty them too. */
	nftw(path, unlock_one, 16, FTW_PHYS);
	assert_int_equal(nftw(path, rm_one, 16, FTW_PHYS | FTW_DEPTH), 0);
}

/* A listing of the tree at path (names, types, modes, contents, symlink
 * targets), sorted: two equal listings mean equal trees. "" when missing.
 * The caller frees it. */
static void listing(const char *path, const char *rel, char **out, size_t *len)
{
	struct dirent **names;
	char sub[PATH_MAX], subrel[PATH_MAX], text[4096];
	int n;

	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		struct stat st;
		char *line = NULL;
		ssize_t k;

		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			free(names[i]);
			continue;
		}
		snprintf(sub, sizeof sub, "%s/%s", path, name);
		snprintf(subrel, sizeof subrel, "%s/%s", rel, name);
		assert_int_equal(lstat(sub, &st), 0);
		if (S_ISLNK(st.st_mode)) {
			k = readlink(sub, text, sizeof text - 1);
			assert_true(k >= 0);
			text[k] = '\0';
			assert_true(asprintf(&line, "%s link %s\n", subrel, text) > 0);
		} else if (S_ISDIR(st.st_mode)) {
			assert_true(asprintf(&line, "%s dir %o\n", subrel,
			                     (unsigned)(st.st_mode & 07777)) > 0);
		} else {
			assert_true(asprintf(&line, "%s file %o [%s]\n", subrel,
			                     (unsigned)(st.st_mode & 07777),
			                     get(sub, text, sizeof text)) > 0);
		}
		*out = realloc(*out, *len + strlen(line) + 1);
		assert_non_null(*out);
		memcpy(*out + *len, line, strlen(line) + 1);
		*len += strlen(line);
		free(line);
		if (S_ISDIR(st.st_mode))
			listing(sub, subrel, out, len);
		free(names[i]);
	}
	free(names);
}

static char *snapshot(const char *path)
{
	char *out = calloc(1, 1);
	size_t len = 0;

	assert_non_null(out);
	listing(path, "", &out, &len);
	return out;
}

/* ---- fixture ------------------------------------------------------------ */

static const char *bank_path(struct fixture *f, const char *rel)
{
	snprintf(f->path, sizeof f->path, "%s/%s", f->dir, rel);
	return f->path;
}

/* The staging tree of "version" v: a file in a directory and a symlink to
 * it (every kind of step apply takes); unless small, also more files (one
 * executable), an empty directory, a read-only one and a VERSION apply
 * must replace. */
static void stage_tree(struct fixture *f, const char *v, bool small)
{
	char p[PATH_MAX], text[128];

	rm_rf(f->stage);
	assert_int_equal(mkdir(f->stage, 0755), 0);
	snprintf(p, sizeof p, "%s/bin", f->stage);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/bin/tool", f->stage);
	snprintf(text, sizeof text, "#!/bin/sh\necho tool %s\n", v);
	put(p, text, 0755);
	snprintf(p, sizeof p, "%s/tool", f->stage);
	assert_int_equal(symlink("bin/tool", p), 0);
	if (small)
		return;
	snprintf(p, sizeof p, "%s/etc", f->stage);
	assert_int_equal(mkdir(p, 0750), 0);
	snprintf(p, sizeof p, "%s/etc/conf", f->stage);
	snprintf(text, sizeof text, "version=%s\n", v);
	put(p, text, 0640);
	snprintf(p, sizeof p, "%s/etc/empty.d", f->stage);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/ro", f->stage);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/ro/data", f->stage);
	put(p, "read only\n", 0444);
	snprintf(p, sizeof p, "%s/ro", f->stage);
	assert_int_equal(chmod(p, 0555), 0);
	snprintf(p, sizeof p, "%s/VERSION", f->stage);
	put(p, "not this one\n", 0644);
}

static void stage(struct fixture *f, const char *v)
{
	stage_tree(f, v, false);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->base, sizeof f->base, "/tmp/hvbb-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->dir, sizeof f->dir, "%s/banks", f->base);
	snprintf(f->stage, sizeof f->stage, "%s/stage", f->base);
	assert_int_equal(hv_bootbank_open_dir(&f->b, f->dir, f->err, sizeof f->err),
	                 HV_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	hv_bootbank_close(&f->b);
	rm_rf(f->base);
	free(f->old_a);
	free(f->old_b);
	free(f->new_b);
	free(f);
	return 0;
}

/* A fresh, uninitialised bank directory (the staging tree stays). */
static void fresh(struct fixture *f)
{
	rm_rf(f->dir);
	hv_bootbank_close(&f->b);
	assert_int_equal(hv_bootbank_open_dir(&f->b, f->dir, f->err, sizeof f->err),
	                 HV_OK);
}

#define OK(call)                                                                \
	do {                                                                    \
		int rc_ = (call);                                               \
		if (rc_ != HV_OK)                                               \
			fail_msg("%s: %s: %s", #call, hv_errname(rc_), f->err); \
	} while (0)

static void init(struct fixture *f, const char *v)
{
	OK(hv_dirbank_init(&f->b, v, 0, f->err, sizeof f->err));
}

static void apply(struct fixture *f, const char *v)
{
	stage(f, v);
	OK(f->b.apply(&f->b, f->stage, v, f->err, sizeof f->err));
}

static void status(struct fixture *f)
{
	OK(f->b.status(&f->b, &f->st, f->err, sizeof f->err));
}

/* Boot, and check which bank came up with which version. */
static void boot(struct fixture *f, const char *bank, const char *v, bool trial,
                 bool rolled_back)
{
	bool rb = !rolled_back;

	OK(f->b.boot(&f->b, &f->st, &rb, f->err, sizeof f->err));
	assert_string_equal(f->st.booted, bank);
	assert_string_equal(f->st.booted_version, v);
	assert_int_equal(f->st.booted_is_trial, trial);
	assert_int_equal(rb, rolled_back);
}

static void expect_refused(struct fixture *f, int rc, const char *words)
{
	assert_int_equal(rc, HV_INVAL);
	if (strstr(f->err, words) == NULL)
		fail_msg("message '%s' lacks '%s'", f->err, words);
}

/* ---- the rules ---------------------------------------------------------- */

static void test_init(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	int rc;

	/* Not initialised: every operation says what to do. */
	rc = f->b.status(&f->b, &f->st, f->err, sizeof f->err);
	expect_refused(f, rc, "init --version");
	init(f, "1.0");
	status(f);
	assert_string_equal(f->st.active, "a");
	assert_string_equal(f->st.booted, "a");
	assert_string_equal(f->st.tried, "");
	assert_string_equal(f->st.active_version, "1.0");
	assert_string_equal(f->st.booted_version, "1.0");
	assert_string_equal(f->st.other_version, "");
	assert_int_equal(f->st.max_tries, 1);
	assert_false(f->st.booted_is_trial);
	assert_string_equal(get(bank_path(f, "bank-a/VERSION"), buf, sizeof buf),
	                    "1.0\n");
	assert_string_equal(get(bank_path(f, "state"), buf, sizeof buf),
	                    "format 1\nactive a\ntrial -\ntries 0\nmax-tries 1\nbooted "
	                    "a\n");
	/* Once only. */
	rc = hv_dirbank_init(&f->b, "2.0", 0, f->err, sizeof f->err);
	assert_int_equal(rc, HV_EXISTS);
	assert_non_null(strstr(f->err, "already initialised"));
	/* Bad versions. */
	fresh(f);
	rc = hv_dirbank_init(&f->b, "1 0", 0, f->err, sizeof f->err);
	expect_refused(f, rc, "not valid");
	rc = hv_dirbank_init(&f->b, "", 0, f->err, sizeof f->err);
	expect_refused(f, rc, "not valid");
	assert_false(exists(bank_path(f, "state")));
}

/* The whole cycle: apply, set-next, boot on trial, mark good. */
static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	char *want, *got, buf[128];

	init(f, "1");
	apply(f, "2");
	status(f);
	assert_string_equal(f->st.active, "a");
	assert_string_equal(f->st.other_version, "2");
	assert_string_equal(f->st.tried, "");
	/* The bank holds the staged tree, modes and links included, with
	 * apply's VERSION instead of the staged one. */
	assert_string_equal(get(bank_path(f, "bank-b/VERSION"), buf, sizeof buf), "2\n");
	put(strcat(strcpy(buf, f->stage), "/VERSION"), "2\n", 0644);
	want = snapshot(f->stage);
	got = snapshot(bank_path(f, "bank-b"));
	assert_string_equal(got, want);
	free(want);
	free(got);

	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	OK(f->b.set_next(&f->b, f->err, sizeof f->err)); /* idempotent */
	status(f);
	assert_string_equal(f->st.tried, "b");
	assert_int_equal(f->st.tries, 0);
	assert_string_equal(f->st.booted, "a");

	boot(f, "b", "2", true, false);
	assert_string_equal(f->st.tried, "b");
	assert_int_equal(f->st.tries, 1);
	assert_string_equal(f->st.active, "a");

	OK(f->b.mark_good(&f->b, f->err, sizeof f->err));
	status(f);
	assert_string_equal(f->st.active, "b");
	assert_string_equal(f->st.active_version, "2");
	assert_string_equal(f->st.other_version, "1");
	assert_string_equal(f->st.tried, "");
	assert_false(f->st.booted_is_trial);
	OK(f->b.mark_good(&f->b, f->err, sizeof f->err)); /* idempotent */

	/* Good for good: every later boot starts it. */
	boot(f, "b", "2", false, false);
	boot(f, "b", "2", false, false);

	/* And the next patch goes to bank a. */
	apply(f, "3");
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	boot(f, "a", "3", true, false);
	OK(f->b.mark_good(&f->b, f->err, sizeof f->err));
	boot(f, "a", "3", false, false);
}

/* A trial boot never marked good (crash, hang, failed validation): the
 * boot after it starts the old bank. */
static void test_automatic_rollback(void **state)
{
	struct fixture *f = *state;

	init(f, "1");
	apply(f, "2");
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	boot(f, "b", "2", true, false);
	boot(f, "a", "1", false, true);
	assert_string_equal(f->st.tried, "");
	assert_int_equal(f->st.tries, 0);
	assert_string_equal(f->st.active, "a");
	/* Nothing to mark: it runs the good bank. */
	OK(f->b.mark_good(&f->b, f->err, sizeof f->err));
	status(f);
	assert_string_equal(f->st.active, "a");
	boot(f, "a", "1", false, false);

	/* With max-tries 2 the trial bank gets a second boot. */
	fresh(f);
	OK(hv_dirbank_init(&f->b, "1", 2, f->err, sizeof f->err));
	apply(f, "2");
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	boot(f, "b", "2", true, false);
	boot(f, "b", "2", true, false);
	assert_int_equal(f->st.tries, 2);
	boot(f, "a", "1", false, true);
}

static void test_rollback(void **state)
{
	struct fixture *f = *state;
	int rc;

	init(f, "1");
	OK(f->b.rollback(&f->b, f->err, sizeof f->err)); /* nothing to forget */
	apply(f, "2");

	/* Before the trial boot: the next boot starts the active bank. */
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	OK(f->b.rollback(&f->b, f->err, sizeof f->err));
	status(f);
	assert_string_equal(f->st.tried, "");
	boot(f, "a", "1", false, false);

	/* During it: the host keeps running the trial bank until a reboot,
	 * and nothing else may happen meanwhile. */
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	boot(f, "b", "2", true, false);
	OK(f->b.rollback(&f->b, f->err, sizeof f->err));
	status(f);
	assert_string_equal(f->st.tried, "");
	assert_string_equal(f->st.booted, "b");
	assert_true(f->st.booted_is_trial);
	rc = f->b.mark_good(&f->b, f->err, sizeof f->err);
	expect_refused(f, rc, "rolled back");
	rc = f->b.set_next(&f->b, f->err, sizeof f->err);
	expect_refused(f, rc, "rolled back");
	rc = f->b.apply(&f->b, f->stage, "3", f->err, sizeof f->err);
	expect_refused(f, rc, "rolled back");
	OK(f->b.rollback(&f->b, f->err, sizeof f->err)); /* again: still fine */
	boot(f, "a", "1", false, false);
	assert_string_equal(f->st.active, "a");
	assert_string_equal(f->st.other_version, "2");
}

/* Refusals, each with the way out in its message. */
static void test_refusals(void **state)
{
	struct fixture *f = *state;
	char *before, *after, fifo[PATH_MAX];
	int rc;

	init(f, "1");
	/* Nothing in bank b to try. */
	rc = f->b.set_next(&f->b, f->err, sizeof f->err);
	expect_refused(f, rc, "run apply first");

	/* Marked good before the trial boot. */
	apply(f, "2");
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	rc = f->b.mark_good(&f->b, f->err, sizeof f->err);
	expect_refused(f, rc, "has not booted it yet");

	/* apply while the trial bank runs unmarked: bank b stays as it is. */
	boot(f, "b", "2", true, false);
	before = snapshot(bank_path(f, "bank-b"));
	stage(f, "3");
	rc = f->b.apply(&f->b, f->stage, "3", f->err, sizeof f->err);
	expect_refused(f, rc, "on trial, not marked good");
	assert_non_null(strstr(f->err, "mark-good"));
	after = snapshot(bank_path(f, "bank-b"));
	assert_string_equal(after, before);
	free(before);
	free(after);

	/* Bad input to apply. */
	OK(f->b.mark_good(&f->b, f->err, sizeof f->err));
	rc = f->b.apply(&f->b, f->stage, "bad version", f->err, sizeof f->err);
	expect_refused(f, rc, "not valid");
	rc = f->b.apply(&f->b, "/nonexistent/stage", "3", f->err, sizeof f->err);
	expect_refused(f, rc, "/nonexistent/stage");
	assert_non_null(strstr(f->err, "No such file"));
	snprintf(fifo, sizeof fifo, "%s/fifo", f->stage);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	rc = f->b.apply(&f->b, f->stage, "3", f->err, sizeof f->err);
	expect_refused(f, rc, "fifo: not a file, directory or symlink");
	assert_false(exists(bank_path(f, "bank-a.new"))); /* tidied up */
	/* The refused apply left bank a (inactive now) in a usable state. */
	assert_int_equal(unlink(fifo), 0);
	apply(f, "3");
	status(f);
	assert_string_equal(f->st.other_version, "3");

	/* A damaged state file is reported, not guessed at. */
	put(bank_path(f, "state"), "format 1\nactive c\n", 0644);
	rc = f->b.status(&f->b, &f->st, f->err, sizeof f->err);
	assert_int_equal(rc, HV_MALFORMED);
	assert_non_null(strstr(f->err, "damaged"));
	put(bank_path(f, "state"),
	    "format 1\nactive a\ntrial b\ntries 1\nmax-tries 1\nbooted a\n", 0644);
	rc = f->b.boot(&f->b, NULL, NULL, f->err, sizeof f->err);
	assert_int_equal(rc, HV_MALFORMED);
	assert_non_null(strstr(f->err, "inconsistent"));
}

/* apply writes only the inactive bank, whichever it is. */
static void test_apply_keeps_active(void **state)
{
	struct fixture *f = *state;
	char *before, *after, p[PATH_MAX];

	/* Files already in bank-a are kept by init: the active bank. */
	assert_int_equal(mkdir(f->dir, 0755), 0);
	assert_int_equal(mkdir(bank_path(f, "bank-a"), 0755), 0);
	snprintf(p, sizeof p, "%s/bank-a/kernel", f->dir);
	put(p, "old kernel\n", 0644);
	init(f, "1");
	before = snapshot(bank_path(f, "bank-a"));
	apply(f, "2");
	apply(f, "2.1"); /* over the previous content of bank b */
	after = snapshot(bank_path(f, "bank-a"));
	assert_string_equal(after, before);
	free(before);
	free(after);
	status(f);
	assert_string_equal(f->st.other_version, "2.1");

	/* A pending set-next is cancelled by a new apply. */
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	apply(f, "2.2");
	status(f);
	assert_string_equal(f->st.tried, "");
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	boot(f, "b", "2.2", true, false);
	OK(f->b.mark_good(&f->b, f->err, sizeof f->err));

	/* Bank b is now the active one: the next apply leaves it alone. */
	before = snapshot(bank_path(f, "bank-b"));
	apply(f, "3");
	after = snapshot(bank_path(f, "bank-b"));
	assert_string_equal(after, before);
	free(before);
	free(after);
	assert_false(exists(bank_path(f, "bank-a/kernel")));
	assert_false(exists(bank_path(f, "bank-a.new")));
	assert_false(exists(bank_path(f, "bank-a.old")));
}

/* ---- crashes ------------------------------------------------------------ */

/*
 * Run op on a bank prepared by prep, with a simulated crash at step 1, 2,
 * ... of it (up to step upto, 0: all of them), then without a crash, and
 * let check judge the remains each time (crashed: whether the op died).
 * Returns the number of durable steps the complete op took.
 */
static unsigned crash_steps(struct fixture *f, void (*prep)(struct fixture *f),
                            int (*op)(struct fixture *f),
                            void (*check)(struct fixture *f, bool crashed), unsigned upto)
{
	for (unsigned n = 1; n < 2000; n++) {
		unsigned steps;
		bool crashed;
		int rc;

		fresh(f);
		prep(f);
		f->b.test.steps = 0;
		f->b.test.crash_at = upto == 0 || n <= upto ? n : 0;
		rc = op(f);
		steps = f->b.test.steps;
		crashed = f->b.test.crash_at != 0 && steps >= n;
		f->b.test.crash_at = 0;
		if (crashed) {
			assert_int_not_equal(rc, HV_OK);
			assert_non_null(strstr(f->err, strerror(ECANCELED)));
		} else {
			OK(rc);
		}
		check(f, crashed);
		if (!crashed)
			return steps;
	}
	fail_msg("the operation never completed");
	return 0;
}

static unsigned crash_every_step(struct fixture *f, void (*prep)(struct fixture *f),
                                 int (*op)(struct fixture *f),
                                 void (*check)(struct fixture *f, bool crashed))
{
	return crash_steps(f, prep, op, check, 0);
}

/* Leftovers are gone after a boot. */
static void assert_clean(struct fixture *f)
{
	static const char *const junk[] = {"bank-a.new", "bank-a.old", "bank-b.new",
	                                   "bank-b.old", "state.tmp"};

	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
		if (exists(bank_path(f, junk[i])))
			fail_msg("%s left over after a boot", junk[i]);
}

static void prep_applied(struct fixture *f)
{
	char p[PATH_MAX];

	assert_int_equal(mkdir(f->dir, 0755), 0);
	assert_int_equal(mkdir(bank_path(f, "bank-a"), 0755), 0);
	snprintf(p, sizeof p, "%s/bank-a/kernel", f->dir);
	put(p, "old kernel\n", 0644);
	init(f, "1");
	stage_tree(f, "0.9", true);
	OK(f->b.apply(&f->b, f->stage, "0.9", f->err, sizeof f->err));
	stage_tree(f, "2", true); /* bank b has content to replace */
}

static void prep_applied_trial(struct fixture *f)
{
	prep_applied(f);
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
}

static int op_apply(struct fixture *f)
{
	return f->b.apply(&f->b, f->stage, "2", f->err, sizeof f->err);
}

/* After any crash of apply: bank a untouched, bank b the old one, the new
 * one or (between the two renames) missing; boot starts bank a (or the
 * pending trial of the old bank b, then bank a); apply then works. */
static void check_apply(struct fixture *f, bool crashed)
{
	char *a = snapshot(bank_path(f, "bank-a"));
	char *b = snapshot(bank_path(f, "bank-b"));
	bool rb;

	assert_string_equal(a, f->old_a);
	if (strcmp(b, f->old_b) != 0 && strcmp(b, f->new_b) != 0 && b[0] != '\0')
		fail_msg("bank b after a crash is neither old nor new:\n%s", b);
	if (!crashed)
		assert_string_equal(b, f->new_b);
	free(a);
	free(b);

	OK(f->b.boot(&f->b, &f->st, &rb, f->err, sizeof f->err));
	if (strcmp(f->st.booted, "b") == 0) {
		/* Died before the pending trial was cancelled. */
		assert_true(crashed);
		assert_string_equal(f->st.booted_version, "0.9");
		boot(f, "a", "1", false, true);
	} else {
		assert_string_equal(f->st.booted, "a");
		assert_string_equal(f->st.booted_version, "1");
	}
	assert_clean(f);
	stage_tree(f, "2", true);
	OK(f->b.apply(&f->b, f->stage, "2", f->err, sizeof f->err));
	b = snapshot(bank_path(f, "bank-b"));
	assert_string_equal(b, f->new_b);
	free(b);
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	boot(f, "b", "2", true, false);
}

static void test_crash_apply(void **state)
{
	struct fixture *f = *state;
	unsigned steps;

	/* The trees to expect, from a run without crashes. */
	fresh(f);
	prep_applied(f);
	f->old_a = snapshot(bank_path(f, "bank-a"));
	f->old_b = snapshot(bank_path(f, "bank-b"));
	OK(op_apply(f));
	f->new_b = snapshot(bank_path(f, "bank-b"));
	assert_string_not_equal(f->old_b, f->new_b);

	/* Every one a crash point: mkdir bank-b.new (1); bin: mkdir, tool
	 * (create, write, chmod, fsync), chmod, fsync (7); the symlink (1);
	 * VERSION: create, write, fsync (3); fsync bank-b.new and DIR (2);
	 * two renames and fsync DIR (3); removal of the old bank (bin/tool,
	 * bin, tool, VERSION, itself) and fsync DIR (6). */
	steps = crash_every_step(f, prep_applied, op_apply, check_apply);
	assert_int_equal(steps, 23);
	/* With a trial pending, the state write that cancels it comes first
	 * (5 steps); the rest are the steps above, crashed into already. */
	steps = crash_steps(f, prep_applied_trial, op_apply, check_apply, 6);
	assert_int_equal(steps, 28);
}

static void prep_init(struct fixture *f)
{
	(void)f;
}

static int op_init(struct fixture *f)
{
	return hv_dirbank_init(&f->b, "1", 0, f->err, sizeof f->err);
}

/* An interrupted init leaves no state, and can be run again. */
static void check_init(struct fixture *f, bool crashed)
{
	if (f->b.status(&f->b, &f->st, f->err, sizeof f->err) != HV_OK) {
		assert_true(crashed);
		assert_false(exists(bank_path(f, "state")));
		init(f, "1");
	}
	boot(f, "a", "1", false, false);
}

static void prep_ready(struct fixture *f)
{
	init(f, "1");
	apply(f, "2");
}

static void prep_next(struct fixture *f)
{
	prep_ready(f);
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
}

static void prep_trial(struct fixture *f)
{
	prep_next(f);
	boot(f, "b", "2", true, false);
}

static int op_set_next(struct fixture *f)
{
	return f->b.set_next(&f->b, f->err, sizeof f->err);
}

static int op_boot(struct fixture *f)
{
	return f->b.boot(&f->b, NULL, NULL, f->err, sizeof f->err);
}

static int op_mark_good(struct fixture *f)
{
	return f->b.mark_good(&f->b, f->err, sizeof f->err);
}

static int op_rollback(struct fixture *f)
{
	return f->b.rollback(&f->b, f->err, sizeof f->err);
}

/* The new bank runs on trial at most once, never without a VERSION, and
 * the boot after an unmarked trial starts the old bank. */
static void check_trial_or_old(struct fixture *f, bool crashed)
{
	bool rb;

	OK(f->b.boot(&f->b, &f->st, &rb, f->err, sizeof f->err));
	if (strcmp(f->st.booted, "b") == 0) {
		assert_string_equal(f->st.booted_version, "2");
		assert_true(f->st.booted_is_trial);
		boot(f, "a", "1", false, true);
	} else {
		assert_string_equal(f->st.booted, "a");
		assert_string_equal(f->st.booted_version, "1");
		assert_false(f->st.booted_is_trial);
	}
	assert_clean(f);
	(void)crashed;
}

/* set_next either happened (a trial) or not. */
static void check_set_next(struct fixture *f, bool crashed)
{
	if (!crashed) {
		status(f);
		assert_string_equal(f->st.tried, "b");
	}
	check_trial_or_old(f, crashed);
}

/* A crash in the trial boot uses the try up, or the boot never happened. */
static void check_boot_trial(struct fixture *f, bool crashed)
{
	check_trial_or_old(f, crashed);
}

/* mark_good either happened (bank b is good for good) or not (the trial
 * boot was not marked: rolled back). */
static void check_mark_good(struct fixture *f, bool crashed)
{
	status(f);
	if (strcmp(f->st.active, "b") == 0) {
		boot(f, "b", "2", false, false);
		boot(f, "b", "2", false, false);
	} else {
		assert_true(crashed);
		boot(f, "a", "1", false, true);
	}
}

/* rollback or not: the next boot starts bank a. */
static void check_rollback(struct fixture *f, bool crashed)
{
	bool rb;

	OK(f->b.boot(&f->b, &f->st, &rb, f->err, sizeof f->err));
	assert_string_equal(f->st.booted, "a");
	assert_string_equal(f->st.booted_version, "1");
	assert_false(f->st.booted_is_trial);
	/* Dropped by rollback, or (crashed before its rename) by the boot. */
	if (!crashed)
		assert_false(rb);
}

/* A plain boot (no trial): bank a either way. */
static void check_boot_plain(struct fixture *f, bool crashed)
{
	(void)crashed;
	boot(f, "a", "1", false, false);
}

static void test_crash_state_ops(void **state)
{
	struct fixture *f = *state;

	/* init: mkdir DIR, bank-a, bank-b, VERSION (create, write, fsync),
	 * fsyncs, the state file (create, write, fsync, rename, fsync). */
	assert_true(crash_every_step(f, prep_init, op_init, check_init) >= 12);
	/* A state write alone: create, write, fsync, rename, fsync DIR. */
	assert_int_equal(crash_every_step(f, prep_ready, op_set_next, check_set_next), 5);
	assert_int_equal(crash_every_step(f, prep_next, op_boot, check_boot_trial), 5);
	assert_int_equal(crash_every_step(f, prep_trial, op_mark_good, check_mark_good),
	                 5);
	assert_int_equal(crash_every_step(f, prep_trial, op_rollback, check_rollback), 5);
	assert_int_equal(crash_every_step(f, prep_ready, op_boot, check_boot_plain), 5);
}

/* What a crashed apply leaves is removed by the next boot (also when the
 * crash came between the two renames and bank b is missing). */
static void test_leftovers(void **state)
{
	struct fixture *f = *state;
	unsigned steps;

	fresh(f);
	prep_applied(f);
	f->b.test.steps = 0;
	OK(op_apply(f));
	steps = f->b.test.steps;
	/* Find the crash point between the two renames. */
	for (unsigned n = 1; n < steps; n++) {
		fresh(f);
		prep_applied(f);
		f->b.test.steps = 0;
		f->b.test.crash_at = n;
		assert_int_not_equal(op_apply(f), HV_OK);
		f->b.test.crash_at = 0;
		if (exists(bank_path(f, "bank-b")))
			continue;
		/* Between the renames. */
		assert_true(exists(bank_path(f, "bank-b.old")));
		assert_true(exists(bank_path(f, "bank-b.new")));
		status(f);
		assert_string_equal(f->st.other_version, "");
		expect_refused(f, f->b.set_next(&f->b, f->err, sizeof f->err),
		               "holds no VERSION");
		boot(f, "a", "1", false, false);
		assert_clean(f);
		apply(f, "2");
		OK(f->b.set_next(&f->b, f->err, sizeof f->err));
		boot(f, "b", "2", true, false);
		return;
	}
	fail_msg("no crash point between the renames");
}

/* Two operations at once: the second is refused, not queued. */
static void test_lock(void **state)
{
	struct fixture *f = *state;
	struct hv_bootbank other;
	char spec[256];
	int fd, rc;

	init(f, "1");
	rc = hv_bootbank_open(&other, f->dir, NULL, f->err, sizeof f->err);
	expect_refused(f, rc, "use 'dir:PATH' or 'exec'");
	hv_bootbank_close(&other);
	snprintf(spec, sizeof spec, "dir:%s", f->dir);
	OK(hv_bootbank_open(&other, spec, NULL, f->err, sizeof f->err));
	assert_string_equal(other.kind, "dir");
	fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	rc = other.boot(&other, NULL, NULL, f->err, sizeof f->err);
	expect_refused(f, rc, "busy");
	close(fd);
	OK(other.boot(&other, NULL, NULL, f->err, sizeof f->err));
	hv_bootbank_close(&other);
}

/* ---- exec ----------------------------------------------------------------- */

static void open_exec(struct fixture *f, const char *apply_cmd, const char *status_cmd,
                      unsigned timeout_ms)
{
	struct hv_bootbank_exec ex = {
	    .apply = apply_cmd,
	    .set_next = "true",
	    .mark_good = "exit 4",
	    .rollback = "",
	    .status = status_cmd,
	    .timeout_ms = timeout_ms,
	};

	hv_bootbank_close(&f->b);
	OK(hv_bootbank_open(&f->b, "exec", &ex, f->err, sizeof f->err));
	assert_string_equal(f->b.kind, "exec");
}

static void test_exec(void **state)
{
	struct fixture *f = *state;
	char cmd[512];
	int rc;

	snprintf(cmd, sizeof cmd,
	         "test \"$HVPEER_STAGING\" = /stage/x && test \"$HVPEER_VERSION\" = 7.1 "
	         "&& echo \"$HVPEER_VERSION\" > %s/applied",
	         f->base);
	open_exec(f, cmd, "echo 7.1; echo trial", 5000);
	/* An inherited HVPEER_VERSION does not leak into the commands. */
	setenv("HVPEER_VERSION", "stale", 1);
	OK(f->b.apply(&f->b, "/stage/x", "7.1", f->err, sizeof f->err));
	unsetenv("HVPEER_VERSION");
	snprintf(f->path, sizeof f->path, "%s/applied", f->base);
	assert_string_equal(get(f->path, cmd, sizeof cmd), "7.1\n");
	OK(f->b.set_next(&f->b, f->err, sizeof f->err));
	status(f);
	assert_string_equal(f->st.booted_version, "7.1");
	assert_true(f->st.booted_is_trial);

	/* Failures carry the command's name, exit status and stderr. */
	rc = f->b.mark_good(&f->b, f->err, sizeof f->err);
	assert_int_equal(rc, HV_IO);
	assert_string_equal(f->err, "bootbank exec: mark-good-command exited 4: (nothing "
	                            "on stderr)");
	rc = f->b.rollback(&f->b, f->err, sizeof f->err);
	assert_int_equal(rc, HV_INVAL);
	assert_non_null(strstr(f->err, "no rollback-command configured"));
	rc = f->b.boot(&f->b, &f->st, NULL, f->err, sizeof f->err);
	assert_int_equal(rc, HV_INVAL);

	open_exec(f, "echo working; echo 'disk full' >&2; echo 'try again' >&2; exit 3",
	          "echo 7.0", 5000);
	rc = f->b.apply(&f->b, "/stage/x", "7.1", f->err, sizeof f->err);
	assert_int_equal(rc, HV_IO);
	assert_string_equal(
	    f->err, "bootbank exec: apply-command exited 3: disk full; try again");
	status(f);
	assert_string_equal(f->st.booted_version, "7.0");
	assert_false(f->st.booted_is_trial);

	/* Only the tail of a long stderr is kept. */
	open_exec(f,
	          "i=0; while [ $i -lt 2000 ]; do echo line $i >&2; i=$((i+1)); done; "
	          "exit 2",
	          "echo '7 0'", 5000);
	rc = f->b.apply(&f->b, "/stage/x", "7.1", f->err, sizeof f->err);
	assert_int_equal(rc, HV_IO);
	assert_non_null(strstr(f->err, "exited 2: ..."));
	assert_non_null(strstr(f->err, "line 1999"));
	assert_null(strstr(f->err, "line 1000;"));
	assert_true(strlen(f->err) < 1000);
	/* A status that makes no sense. */
	rc = f->b.status(&f->b, &f->st, f->err, sizeof f->err);
	assert_int_equal(rc, HV_PROTO);
	assert_non_null(strstr(f->err, "status-command printed '7 0'"));

	/* A missing program, a signal. */
	open_exec(f, "/nonexistent/hvpeer-apply", "kill -TERM $$", 5000);
	rc = f->b.apply(&f->b, "/stage/x", "7.1", f->err, sizeof f->err);
	assert_int_equal(rc, HV_IO);
	assert_non_null(strstr(f->err, "exited 127: "));
	assert_non_null(strstr(f->err, "not found"));
	rc = f->b.status(&f->b, &f->st, f->err, sizeof f->err);
	assert_int_equal(rc, HV_IO);
	assert_non_null(strstr(f->err, "killed by signal 15"));
}

static bool process_gone(pid_t pid)
{
	char p[64], buf[256];
	const char *s;

	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	get(p, buf, sizeof buf);
	if (buf[0] == '\0')
		return true;
	s = strrchr(buf, ')');
	return s != NULL && (s[2] == 'Z' || s[2] == 'X');
}

/* A command past its timeout is killed with everything it started. */
static void test_exec_timeout(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	char cmd[PATH_MAX + 64], buf[64];
	long ms;
	int rc;

	snprintf(f->path, sizeof f->path, "%s/pid", f->base);
	snprintf(cmd, sizeof cmd, "echo started >&2; sleep 30 & echo $! > %s; wait",
	         f->path);
	open_exec(f, cmd, "sleep 30", 200);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = f->b.apply(&f->b, "/stage/x", "7.1", f->err, sizeof f->err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(rc, HV_TIMEOUT);
	assert_true(ms >= 190 && ms < 2000);
	assert_string_equal(f->err, "bootbank exec: apply-command timed out after 200 ms "
	                            "(its process group was killed): started; check "
	                            "the command, or allow it more time");
	/* The background sleep went with it (reaped by init: a bounded
	 * wait). */
	{
		pid_t pid = (pid_t)atoi(get(f->path, buf, sizeof buf));
		int i;

		assert_true(pid > 0);
		for (i = 0; i < 200 && !process_gone(pid); i++)
			usleep(5000);
		assert_true(process_gone(pid));
	}
	open_exec(f, "true", "sleep 30", 50);
	rc = f->b.status(&f->b, &f->st, f->err, sizeof f->err);
	assert_int_equal(rc, HV_TIMEOUT);
	assert_non_null(strstr(f->err, "status-command timed out after 50 ms"));
}

/* ---- the CLI -------------------------------------------------------------- */

/* Run `hvpeer bootbank --dir DIR ARGS...` with its output discarded. */
static int cli(struct fixture *f, ...)
{
	char *argv[16] = {"bootbank", "--dir", f->dir};
	int argc = 3, rc, out, err, null;
	va_list ap;

	va_start(ap, f);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	out = dup(1);
	err = dup(2);
	null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	dup2(null, 2);
	rc = hv_bootbank_main(argc, argv, false);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	close(null);
	return rc;
}

static void test_cli(void **state)
{
	struct fixture *f = *state;

	stage(f, "2");
	assert_int_equal(cli(f, "status", NULL), 1); /* not initialised */
	assert_int_equal(cli(f, "init", NULL), 2);   /* no --version */
	assert_int_equal(cli(f, "init", "--version", "1", "--max-tries", "0", NULL), 2);
	assert_int_equal(cli(f, "init", "--version", "1", NULL), 0);
	assert_int_equal(cli(f, "init", "--version", "1", NULL), 1);
	assert_int_equal(cli(f, "status", NULL), 0);
	assert_int_equal(cli(f, "--json", "status", NULL), 0);
	assert_int_equal(cli(f, "set-next", NULL), 1); /* bank b is empty */
	assert_int_equal(cli(f, "apply", "--version", "2", NULL), 2);
	assert_int_equal(cli(f, "apply", f->stage, NULL), 2);
	assert_int_equal(cli(f, "apply", f->stage, "--version", "a b", NULL), 2);
	assert_int_equal(cli(f, "apply", f->stage, "--version", "2", NULL), 0);
	assert_int_equal(cli(f, "set-next", "extra", NULL), 2);
	assert_int_equal(cli(f, "set-next", "--json", NULL), 0);
	assert_int_equal(cli(f, "boot", NULL), 0);
	assert_int_equal(cli(f, "apply", f->stage, "--version", "3", NULL), 1);
	assert_int_equal(cli(f, "mark-good", NULL), 0);
	assert_int_equal(cli(f, "rollback", NULL), 0);
	assert_int_equal(cli(f, "boot", "--help", NULL), 0);
	assert_int_equal(cli(f, "frobnicate", NULL), 2);
	assert_int_equal(cli(f, "boot", "--bogus", NULL), 2);
	OK(f->b.status(&f->b, &f->st, f->err, sizeof f->err));
	assert_string_equal(f->st.active, "b");
	assert_string_equal(f->st.booted_version, "2");
	put(bank_path(f, "state"), "garbage\n", 0644);
	assert_int_equal(cli(f, "boot", NULL), 5);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_init),
	    T(test_round_trip),
	    T(test_automatic_rollback),
	    T(test_rollback),
	    T(test_refusals),
	    T(test_apply_keeps_active),
	    T(test_crash_apply),
	    T(test_crash_state_ops),
	    T(test_leftovers),
	    T(test_lock),
	    T(test_exec),
	    T(test_exec_timeout),
	    T(test_cli),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
