/*
 * Boot banks: the dirbank (a directory that plays disk and bootloader) and
 * exec (operator commands). The interface is in bootbank.h.
 *
 * dirbank layout:
 *   DIR/state          the bootloader's state (below), replaced atomically
 *   DIR/bank-a/        a bank: the patch's files and VERSION ("1.2\n")
 *   DIR/bank-b/
 *   DIR/bank-X.new/    apply's work in progress (X: the inactive bank)
 *   DIR/bank-X.old/    the inactive bank's previous content, being removed
 *   DIR/state.tmp      the next state, being written
 *
 * DIR/state, text, one "key value" per line, each key once, any order:
 *   format 1
 *   active a        the bank marked good
 *   trial -         the bank set for a trial boot, or "-"
 *   tries 0         boots of the trial bank so far
 *   max-tries 1     trial boots before the bootloader gives up on it
 *   booted a        the bank the last boot started
 *
 * Why a crash at any instant leaves a bootable state:
 *  - the state changes only by renaming a complete, fsynced state.tmp over
 *    it (then the directory is fsynced): a reader sees the old state or the
 *    new one, never a mix;
 *  - apply never writes bank-<active>, nor a bank the state names for a
 *    trial: it cancels a pending trial first (a state write), builds
 *    bank-X.new with VERSION written last, fsyncs it and swaps it in with
 *    two renames. Between them bank-X may be missing, but nothing points at
 *    it, and set_next refuses a bank without VERSION;
 *  - boot counts a trial in the state before it "runs" the bank, and starts
 *    a trial bank only while it has tries left and holds a VERSION: a trial
 *    that dies before mark_good is rolled back by the boot after;
 *  - leftovers (.new, .old, state.tmp) are removed by the next apply or
 *    boot; nothing reads them.
 * Operations on one DIR are serialised by flock(DIR): a second one is
 * refused at once rather than queued (a boot never waits for an apply). The
 * kernel drops the lock of a killed process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "bootbank.h"

/* Bounds on what is read back or walked. */
#define STATE_MAX 1024    /* bytes of DIR/state */
#define TREE_DEPTH_MAX 64 /* directory levels of a staged tree */
#define EXEC_OUT_MAX 4096 /* bytes of a command's stdout kept */
#define EXEC_TAIL_MAX 400 /* bytes of a command's stderr kept (the end) */
#define EXEC_TIMEOUT_MS 600000u

enum { CMD_APPLY, CMD_SET_NEXT, CMD_MARK_GOOD, CMD_ROLLBACK, CMD_STATUS, CMD_N };

static const char *const cmd_names[CMD_N] = {
    "apply-command",    "set-next-command", "mark-good-command",
    "rollback-command", "status-command",
};

bool hv_bootbank_version_valid(const char *v)
{
	size_t n;

	if (v == NULL)
		return false;
	for (n = 0; v[n] != '\0'; n++)
		if ((unsigned char)v[n] <= ' ' || (unsigned char)v[n] > '~')
			return false;
	return n > 0 && n < HV_BANK_VERSION_MAX;
}

#define say hv_errf /* lib/err.h */

/* ---- dirbank: one operation on a locked DIR ---------------------------- */

struct op {
	struct hv_bootbank *b;
	int dfd; /* DIR, flocked */
	char *err;
	size_t errlen;
};

struct state {
	char active; /* 'a' or 'b' */
	char trial;  /* 'a', 'b' or 0: none */
	unsigned tries, max_tries;
	char booted;
};

static char other(char bank)
{
	return bank == 'a' ? 'b' : 'a';
}

/* Every message of the dirbank starts with "bootbank DIR: ". */
__attribute__((format(printf, 3, 4))) static int fail(struct op *o, int code,
                                                      const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->err == NULL || o->errlen == 0)
		return code;
	n = snprintf(o->err, o->errlen, "bootbank %s: ", o->b->dir);
	if (n < 0 || (size_t)n >= o->errlen)
		return code;
	va_start(ap, fmt);
	vsnprintf(o->err + n, o->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return code;
}

/*
 * The test hook (bootbank.h): each durable step asks dead() first. Once the
 * simulated process has died, every later step fails too, so error paths
 * clean nothing up, as after a real kill -9.
 */
static bool dead(struct op *o)
{
	struct hv_bootbank *b = o->b;

	b->test.steps++;
	if (b->test.crash_at != 0 && b->test.steps >= b->test.crash_at) {
		errno = ECANCELED;
		return true;
	}
	return false;
}

static int d_mkdirat(struct op *o, int fd, const char *name, mode_t mode)
{
	return dead(o) ? -1 : mkdirat(fd, name, mode);
}

static int d_create(struct op *o, int fd, const char *name, int flags, mode_t mode)
{
	return dead(o) ? -1
	               : openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC | flags, mode);
}

static int d_fsync(struct op *o, int fd)
{
	return dead(o) ? -1 : fsync(fd);
}

static int d_fchmod(struct op *o, int fd, mode_t mode)
{
	return dead(o) ? -1 : fchmod(fd, mode);
}

static int d_rename(struct op *o, int fd, const char *from, const char *to)
{
	return dead(o) ? -1 : renameat(fd, from, fd, to);
}

static int d_unlinkat(struct op *o, int fd, const char *name, int flags)
{
	return dead(o) ? -1 : unlinkat(fd, name, flags);
}

static int d_symlinkat(struct op *o, const char *target, int fd, const char *name)
{
	return dead(o) ? -1 : symlinkat(target, fd, name);
}

static int d_write_all(struct op *o, int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (dead(o))
			return -1;
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int op_begin(struct op *o, struct hv_bootbank *b, char *err, size_t errlen)
{
	o->b = b;
	o->err = err;
	o->errlen = errlen;
	o->dfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dfd < 0)
		return fail(o, errno == ENOENT ? HV_INVAL : HV_IO,
		            "cannot open the boot bank directory: %s; check the path, or "
		            "create it with 'hvpeer bootbank --dir %s init --version V'",
		            strerror(errno), b->dir);
	if (flock(o->dfd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(o->dfd);
		o->dfd = -1;
		if (e == EWOULDBLOCK)
			return fail(
			    o, HV_INVAL,
			    "busy: another boot bank operation (apply, boot, ...) "
			    "holds its lock; wait for it to finish and retry");
		return fail(o, HV_IO, "cannot lock the directory: %s", strerror(e));
	}
	return HV_OK;
}

static void op_end(struct op *o)
{
	if (o->dfd >= 0)
		close(o->dfd);
	o->dfd = -1;
}

/* Read a small file relative to fd into buf (NUL-terminated). Returns 0,
 * or -1 with errno (EFBIG: longer than cap - 1 bytes). */
static int read_small(int fd, const char *name, char *buf, size_t cap, size_t *len)
{
	int f = openat(fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t n = 0;

	if (f < 0)
		return -1;
	for (;;) {
		ssize_t r = read(f, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(f);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			close(f);
			errno = EFBIG;
			return -1;
		}
	}
	close(f);
	buf[n] = '\0';
	*len = n;
	return 0;
}

/* The VERSION of bank-<bank> into v: 0 when it holds a valid one, 1 when
 * it has none (missing, empty or invalid: not bootable), -1 on an I/O
 * error (errno). */
static int read_version(struct op *o, char bank, char v[HV_BANK_VERSION_MAX])
{
	char path[] = "bank-?/VERSION";
	char buf[HV_BANK_VERSION_MAX + 2];
	size_t len;

	path[5] = bank;
	v[0] = '\0';
	if (read_small(o->dfd, path, buf, sizeof buf, &len) != 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == EFBIG ||
		    errno == ELOOP)
			return 1;
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (!hv_bootbank_version_valid(buf))
		return 1;
	memcpy(v, buf, len + 1);
	return 0;
}

/* Write "version\n" to fd/name and fsync it. 0, or -1 with errno. */
static int write_version(struct op *o, int fd, const char *name, int flags,
                         const char *version)
{
	char text[HV_BANK_VERSION_MAX + 1];
	int n = snprintf(text, sizeof text, "%s\n", version);
	int vfd = d_create(o, fd, name, flags | O_NOFOLLOW, 0644);
	int e;

	if (vfd < 0)
		return -1;
	if (d_write_all(o, vfd, text, (size_t)n) != 0 || d_fsync(o, vfd) != 0) {
		e = errno;
		close(vfd);
		errno = e;
		return -1;
	}
	return close(vfd);
}

/* ---- the state file ---------------------------------------------------- */

static int parse_bank(const char *v, bool none_ok, char *out)
{
	if (none_ok && strcmp(v, "-") == 0) {
		*out = 0;
		return 0;
	}
	if (strcmp(v, "a") == 0 || strcmp(v, "b") == 0) {
		*out = v[0];
		return 0;
	}
	return -1;
}

static int parse_count(const char *v, unsigned *out)
{
	char *end;
	unsigned long n;

	if (v[0] < '0' || v[0] > '9')
		return -1;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n > HV_BANK_MAX_TRIES_LIMIT)
		return -1;
	*out = (unsigned)n;
	return 0;
}

#define DAMAGED                                                                  \
	"; the state file is damaged: restore it, or move DIR aside and re-run " \
	"'hvpeer bootbank init'"

static int state_parse(struct op *o, char *text, struct state *s)
{
	enum { K_FORMAT, K_ACTIVE, K_TRIAL, K_TRIES, K_MAX, K_BOOTED, K_N };
	static const char *const keys[K_N] = {"format", "active",    "trial",
	                                      "tries",  "max-tries", "booted"};
	unsigned seen = 0, line = 0, format = 0;
	char *save = NULL, *l;

	memset(s, 0, sizeof *s);
	for (l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		char *v = strchr(l, ' ');
		int k, bad;

		line++;
		if (v == NULL)
			return fail(o, HV_MALFORMED, "state line %u: no value" DAMAGED,
			            line);
		*v++ = '\0';
		for (k = 0; k < K_N && strcmp(l, keys[k]) != 0; k++)
			;
		if (k == K_N)
			return fail(o, HV_MALFORMED,
			            "state line %u: unknown key '%.32s'" DAMAGED, line,
			            l);
		if (seen & (1u << k))
			return fail(o, HV_MALFORMED,
			            "state line %u: '%s' given twice" DAMAGED, line,
			            keys[k]);
		seen |= 1u << k;
		switch (k) {
		case K_FORMAT:
			bad = parse_count(v, &format) != 0 || format != 1;
			break;
		case K_ACTIVE:
			bad = parse_bank(v, false, &s->active);
			break;
		case K_TRIAL:
			bad = parse_bank(v, true, &s->trial);
			break;
		case K_TRIES:
			bad = parse_count(v, &s->tries);
			break;
		case K_MAX:
			bad = parse_count(v, &s->max_tries) != 0 || s->max_tries == 0;
			break;
		default:
			bad = parse_bank(v, false, &s->booted);
			break;
		}
		if (bad)
			return fail(o, HV_MALFORMED,
			            "state line %u: bad value '%.32s' for '%s'" DAMAGED,
			            line, v, keys[k]);
	}
	if (seen != (1u << K_N) - 1)
		return fail(o, HV_MALFORMED, "state: keys missing" DAMAGED);
	/* What the operations keep true; anything else was edited by hand. */
	if (s->trial == s->active || s->tries > s->max_tries ||
	    (s->trial == 0 && s->tries > 0) || (s->tries > 0 && s->booted != s->trial))
		return fail(o, HV_MALFORMED,
		            "state: inconsistent (active %c, trial %c, tries %u of %u, "
		            "booted %c)" DAMAGED,
		            s->active, s->trial ? s->trial : '-', s->tries, s->max_tries,
		            s->booted);
	return HV_OK;
}

static int state_load(struct op *o, struct state *s)
{
	char text[STATE_MAX];
	size_t len;

	if (read_small(o->dfd, "state", text, sizeof text, &len) != 0) {
		if (errno == ENOENT)
			return fail(
			    o, HV_INVAL,
			    "not initialised (no state file); run 'hvpeer bootbank "
			    "--dir %s init --version V' first",
			    o->b->dir);
		return fail(o, errno == EFBIG ? HV_MALFORMED : HV_IO,
		            "cannot read the state file: %s" DAMAGED, strerror(errno));
	}
	if (memchr(text, '\0', len) != NULL)
		return fail(o, HV_MALFORMED, "state: binary content" DAMAGED);
	return state_parse(o, text, s);
}

/* Replace DIR/state: write state.tmp, fsync, rename, fsync DIR. */
static int state_store(struct op *o, const struct state *s)
{
	char text[STATE_MAX];
	int n, fd, e;

	n = snprintf(text, sizeof text,
	             "format 1\nactive %c\ntrial %c\ntries %u\nmax-tries %u\nbooted %c\n",
	             s->active, s->trial ? s->trial : '-', s->tries, s->max_tries,
	             s->booted);
	fd = d_create(o, o->dfd, "state.tmp", O_TRUNC | O_NOFOLLOW, 0644);
	if (fd < 0)
		goto err;
	if (d_write_all(o, fd, text, (size_t)n) != 0 || d_fsync(o, fd) != 0)
		goto err_fd;
	if (close(fd) != 0)
		goto err_tmp;
	if (d_rename(o, o->dfd, "state.tmp", "state") != 0)
		goto err_tmp;
	/* Renamed: the new state is in force, durable once DIR is synced. */
	if (d_fsync(o, o->dfd) != 0)
		return fail(o, HV_IO,
		            "the state file is replaced, but fsync of the directory "
		            "failed: %s; a power loss may undo the change (check the "
		            "disk and retry)",
		            strerror(errno));
	return HV_OK;

err_fd:
	e = errno;
	close(fd);
	errno = e;
err_tmp:
	e = errno;
	d_unlinkat(o, o->dfd, "state.tmp", 0);
	errno = e;
err:
	return fail(o, HV_IO,
	            "cannot write the state file: %s; the previous state is still in "
	            "force (check the disk and retry)",
	            strerror(errno));
}

/* ---- trees ------------------------------------------------------------- */

/* rm -rf fd/name, never following symlinks. Missing is fine. */
static int rm_tree(struct op *o, int fd, const char *name, unsigned depth)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int sub;

	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return d_unlinkat(o, fd, name, 0);
	if (depth > TREE_DEPTH_MAX + 2) {
		errno = ELOOP;
		return -1;
	}
	sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return -1;
	/* A read-only directory (copied from the staging tree) must become
	 * writable before its entries can go. */
	if ((st.st_mode & 0700) != 0700 && d_fchmod(o, sub, st.st_mode | 0700) != 0) {
		close(sub);
		return -1;
	}
	d = fdopendir(sub);
	if (d == NULL) {
		close(sub);
		return -1;
	}
	while ((errno = 0, e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (rm_tree(o, dirfd(d), e->d_name, depth + 1) != 0) {
			int err = errno;

			closedir(d);
			errno = err;
			return -1;
		}
	}
	if (errno != 0) {
		int err = errno;

		closedir(d);
		errno = err;
		return -1;
	}
	closedir(d);
	return d_unlinkat(o, fd, name, AT_REMOVEDIR);
}

/* Remove what an interrupted apply or state write left behind. */
static int clean(struct op *o)
{
	static const char *const junk[] = {"bank-a.new", "bank-a.old", "bank-b.new",
	                                   "bank-b.old", "state.tmp"};
	struct stat st;
	bool any = false;

	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		if (fstatat(o->dfd, junk[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		any = true;
		if (rm_tree(o, o->dfd, junk[i], 0) != 0)
			return fail(
			    o, HV_IO,
			    "cannot remove %s (left by an interrupted operation): %s; "
			    "remove it by hand",
			    junk[i], strerror(errno));
	}
	if (any && d_fsync(o, o->dfd) != 0)
		return fail(o, HV_IO, "cannot fsync the directory: %s", strerror(errno));
	return HV_OK;
}

/* Copying a staged tree into a bank: path names the current entry
 * relative to the staging root, for messages. */
struct copy {
	struct op *o;
	const char *staging;
	char path[PATH_MAX];
	char target[PATH_MAX]; /* a symlink's, here rather than on the stack */
};

static int copy_fail(struct copy *c, int code, const char *why)
{
	return fail(c->o, code, "apply: %s/%s: %s", c->staging, c->path, why);
}

static int copy_file(struct copy *c, int sfd, int dfd, const char *name, mode_t mode)
{
	char buf[16384];
	int in, out, rc;

	in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return copy_fail(c, HV_IO, strerror(errno));
	out = d_create(c->o, dfd, name, O_EXCL | O_NOFOLLOW, 0600);
	if (out < 0)
		goto err_in;
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto err_out;
		if (n == 0)
			break;
		if (d_write_all(c->o, out, buf, (size_t)n) != 0)
			goto err_out;
	}
	/* The mode before the fsync, so that it is durable too. */
	if (d_fchmod(c->o, out, mode & 07777) != 0 || d_fsync(c->o, out) != 0)
		goto err_out;
	close(out);
	close(in);
	return HV_OK;

err_out:
	rc = copy_fail(c, HV_IO, strerror(errno));
	close(out);
	close(in);
	return rc;
err_in:
	rc = copy_fail(c, HV_IO, strerror(errno));
	close(in);
	return rc;
}

static int copy_dir(struct copy *c, int sfd, int dfd, unsigned depth);

/* One entry of a staged directory. */
static int copy_entry(struct copy *c, int sfd, int dfd, const char *name, unsigned depth)
{
	struct stat st;
	ssize_t n;
	int nsfd, ndfd, rc;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return copy_fail(c, HV_IO, strerror(errno));
	if (S_ISREG(st.st_mode))
		return copy_file(c, sfd, dfd, name, st.st_mode);
	if (S_ISLNK(st.st_mode)) {
		n = readlinkat(sfd, name, c->target, sizeof c->target);
		if (n < 0 || (size_t)n >= sizeof c->target)
			return copy_fail(c, HV_IO,
			                 n < 0 ? strerror(errno)
			                       : "symlink target too long");
		c->target[n] = '\0';
		if (d_symlinkat(c->o, c->target, dfd, name) != 0)
			return copy_fail(c, HV_IO, strerror(errno));
		return HV_OK;
	}
	if (!S_ISDIR(st.st_mode))
		return copy_fail(c, HV_INVAL,
		                 "not a file, directory or symlink (a bank holds only "
		                 "those); remove it from the staging tree");
	if (depth >= TREE_DEPTH_MAX)
		return copy_fail(c, HV_INVAL, "directories nested too deep (limit 64)");
	/* Writable while filled; its own mode once complete. */
	if (d_mkdirat(c->o, dfd, name, 0700) != 0)
		return copy_fail(c, HV_IO, strerror(errno));
	nsfd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (nsfd < 0)
		return copy_fail(c, HV_IO, strerror(errno));
	ndfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ndfd < 0) {
		rc = copy_fail(c, HV_IO, strerror(errno));
		close(nsfd);
		return rc;
	}
	rc = copy_dir(c, nsfd, ndfd, depth + 1);
	if (rc == HV_OK &&
	    (d_fchmod(c->o, ndfd, st.st_mode & 07777) != 0 || d_fsync(c->o, ndfd) != 0))
		rc = copy_fail(c, HV_IO, strerror(errno));
	close(ndfd);
	return rc;
}

/* Copy the directory sfd (owned: closed here) into dfd (borrowed). At the
 * top, a VERSION in the staging tree is skipped: apply writes its own. */
static int copy_dir(struct copy *c, int sfd, int dfd, unsigned depth)
{
	size_t base = strlen(c->path);
	struct dirent *e;
	int rc = HV_OK;
	DIR *d;

	d = fdopendir(sfd);
	if (d == NULL) {
		rc = copy_fail(c, HV_IO, strerror(errno));
		close(sfd);
		return rc;
	}
	while ((errno = 0, e = readdir(d)) != NULL) {
		int n;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (depth == 0 && !strcmp(e->d_name, "VERSION"))
			continue;
		n = snprintf(c->path + base, sizeof c->path - base, "%s%s",
		             base > 0 ? "/" : "", e->d_name);
		if (n < 0 || (size_t)n >= sizeof c->path - base) {
			c->path[base] = '\0';
			rc = copy_fail(c, HV_INVAL, "path too long");
			break;
		}
		rc = copy_entry(c, dirfd(d), dfd, e->d_name, depth);
		c->path[base] = '\0';
		if (rc != HV_OK)
			break;
	}
	if (rc == HV_OK && errno != 0)
		rc = copy_fail(c, HV_IO, strerror(errno));
	closedir(d);
	return rc;
}

/* ---- dirbank operations ------------------------------------------------ */

static void fill_status(struct op *o, const struct state *s,
                        struct hv_bootbank_status *st)
{
	memset(st, 0, sizeof *st);
	st->active[0] = s->active;
	st->tried[0] = s->trial;
	st->tries = s->tries;
	st->max_tries = s->max_tries;
	st->booted[0] = s->booted;
	st->booted_is_trial = s->booted != s->active;
	/* A bank without a readable VERSION shows as "". */
	read_version(o, s->active, st->active_version);
	read_version(o, other(s->active), st->other_version);
	read_version(o, s->booted, st->booted_version);
}

static int dir_status(struct hv_bootbank *b, struct hv_bootbank_status *st, char *err,
                      size_t errlen)
{
	struct op o;
	struct state s;
	int rc;

	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	rc = state_load(&o, &s);
	if (rc == HV_OK)
		fill_status(&o, &s, st);
	op_end(&o);
	return rc;
}

/* The host runs the active bank, or nothing may be written or tried. */
static int require_on_active(struct op *o, const struct state *s, const char *what)
{
	if (s->booted == s->active)
		return HV_OK;
	if (s->trial == s->booted)
		return fail(o, HV_INVAL,
		            "%s refused: the host runs bank %c on trial, not marked good "
		            "yet; validate it and run mark-good, or rollback and reboot "
		            "(boot) first",
		            what, s->booted);
	return fail(o, HV_INVAL,
	            "%s refused: the host still runs bank %c, which was rolled back; "
	            "reboot (boot) into bank %c first",
	            what, s->booted, s->active);
}

static int dir_apply(struct hv_bootbank *b, const char *staging, const char *version,
                     char *err, size_t errlen)
{
	char name_new[] = "bank-?.new", name_old[] = "bank-?.old", name[] = "bank-?";
	struct copy *c = NULL;
	struct state s;
	struct stat st;
	struct op o;
	int rc, sfd, nfd;
	char x;

	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	if (!hv_bootbank_version_valid(version)) {
		rc = fail(&o, HV_INVAL,
		          "apply: version '%.80s' is not valid: give 1..63 printable "
		          "characters without spaces",
		          version != NULL ? version : "");
		goto out;
	}
	rc = state_load(&o, &s);
	if (rc != HV_OK)
		goto out;
	rc = require_on_active(&o, &s, "apply");
	if (rc != HV_OK)
		goto out;
	x = other(s.active);
	name_new[5] = name_old[5] = name[5] = x;

	sfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		rc = fail(&o, errno == ENOENT || errno == ENOTDIR ? HV_INVAL : HV_IO,
		          "apply: staging directory %s: %s; unpack the patch there first",
		          staging, strerror(errno));
		goto out;
	}
	/* The bank a pending trial names is about to change under it. */
	if (s.trial != 0) {
		s.trial = 0;
		s.tries = 0;
		rc = state_store(&o, &s);
		if (rc != HV_OK)
			goto out_sfd;
	}
	rc = clean(&o);
	if (rc != HV_OK)
		goto out_sfd;

	if (d_mkdirat(&o, o.dfd, name_new, 0755) != 0) {
		rc = fail(&o, HV_IO, "apply: cannot create %s: %s", name_new,
		          strerror(errno));
		goto out_sfd;
	}
	nfd = openat(o.dfd, name_new, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (nfd < 0) {
		rc = fail(&o, HV_IO, "apply: cannot open %s: %s", name_new,
		          strerror(errno));
		goto out_new;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		rc = fail(&o, HV_NOMEM, "apply: out of memory");
		goto out_nfd;
	}
	c->o = &o;
	c->staging = staging;
	rc = copy_dir(c, sfd, nfd, 0);
	sfd = -1;
	if (rc != HV_OK)
		goto out_nfd;

	/* VERSION last: a bank with a VERSION is a complete bank. */
	if (write_version(&o, nfd, "VERSION", O_EXCL, version) != 0) {
		rc = fail(&o, HV_IO, "apply: cannot write %s/VERSION: %s", name_new,
		          strerror(errno));
		goto out_nfd;
	}
	if (d_fsync(&o, nfd) != 0 || d_fsync(&o, o.dfd) != 0) {
		rc = fail(&o, HV_IO, "apply: cannot fsync %s: %s", name_new,
		          strerror(errno));
		goto out_nfd;
	}
	close(nfd);

	/* The swap. The active bank is another name: never touched. */
	if (fstatat(o.dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    d_rename(&o, o.dfd, name, name_old) != 0) {
		rc = fail(&o, HV_IO, "apply: cannot rename %s to %s: %s", name, name_old,
		          strerror(errno));
		goto out;
	}
	if (d_rename(&o, o.dfd, name_new, name) != 0 || d_fsync(&o, o.dfd) != 0) {
		rc = fail(&o, HV_IO, "apply: cannot move %s into place: %s", name_new,
		          strerror(errno));
		goto out;
	}
	if (rm_tree(&o, o.dfd, name_old, 0) != 0 || d_fsync(&o, o.dfd) != 0)
		/* The new bank is in place; the next apply or boot retries. */
		rc = fail(&o, HV_IO,
		          "apply: bank %c is written, but removing %s failed: %s; the "
		          "next apply or boot retries",
		          x, name_old, strerror(errno));
	goto out;

out_nfd:
	close(nfd);
out_new:
	/* Tidy up after a refusal or an error (a no-op after a simulated
	 * crash; the next apply or boot would do it anyway). */
	rm_tree(&o, o.dfd, name_new, 0);
out_sfd:
	if (sfd >= 0)
		close(sfd);
out:
	free(c);
	op_end(&o);
	return rc;
}

static int dir_set_next(struct hv_bootbank *b, char *err, size_t errlen)
{
	char v[HV_BANK_VERSION_MAX];
	struct state s;
	struct op o;
	int rc, r;

	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	rc = state_load(&o, &s);
	if (rc != HV_OK)
		goto out;
	rc = require_on_active(&o, &s, "set-next");
	if (rc != HV_OK)
		goto out;
	r = read_version(&o, other(s.active), v);
	if (r != 0) {
		rc = r < 0
		         ? fail(&o, HV_IO, "set-next: cannot read bank-%c/VERSION: %s",
		                other(s.active), strerror(errno))
		         : fail(&o, HV_INVAL,
		                "set-next refused: bank %c holds no VERSION (never "
		                "written, or its apply was interrupted); run apply first",
		                other(s.active));
		goto out;
	}
	if (s.trial == other(s.active))
		goto out; /* already set */
	s.trial = other(s.active);
	s.tries = 0;
	rc = state_store(&o, &s);
out:
	op_end(&o);
	return rc;
}

static int dir_mark_good(struct hv_bootbank *b, char *err, size_t errlen)
{
	struct state s;
	struct op o;
	int rc;

	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	rc = state_load(&o, &s);
	if (rc != HV_OK)
		goto out;
	if (s.trial == 0 && s.booted == s.active)
		goto out; /* already good */
	if (s.trial == 0) {
		rc =
		    fail(&o, HV_INVAL,
		         "mark-good refused: bank %c was rolled back while the host runs "
		         "it; reboot (boot) into bank %c",
		         s.booted, s.active);
		goto out;
	}
	if (s.booted != s.trial) {
		rc = fail(
		    &o, HV_INVAL,
		    "mark-good refused: bank %c is set for a trial boot but the host "
		    "has not booted it yet (it runs bank %c); reboot (boot), "
		    "validate, then mark it good",
		    s.trial, s.booted);
		goto out;
	}
	s.active = s.trial;
	s.trial = 0;
	s.tries = 0;
	rc = state_store(&o, &s);
out:
	op_end(&o);
	return rc;
}

static int dir_rollback(struct hv_bootbank *b, char *err, size_t errlen)
{
	struct state s;
	struct op o;
	int rc;

	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	rc = state_load(&o, &s);
	if (rc == HV_OK && s.trial != 0) {
		s.trial = 0;
		s.tries = 0;
		rc = state_store(&o, &s);
	}
	op_end(&o);
	return rc;
}

static int dir_boot(struct hv_bootbank *b, struct hv_bootbank_status *st,
                    bool *rolled_back, char *err, size_t errlen)
{
	char v[HV_BANK_VERSION_MAX];
	bool dropped = false, on_trial = false;
	struct state s;
	struct op o;
	int rc, r;

	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	rc = state_load(&o, &s);
	if (rc != HV_OK)
		goto out;
	rc = clean(&o);
	if (rc != HV_OK)
		goto out;
	if (s.trial != 0 && s.tries < s.max_tries) {
		r = read_version(&o, s.trial, v);
		if (r < 0) {
			rc = fail(&o, HV_IO, "boot: cannot read bank-%c/VERSION: %s",
			          s.trial, strerror(errno));
			goto out;
		}
		/* A trial bank without VERSION is not bootable: a failed trial. */
		on_trial = r == 0;
		dropped = r != 0;
	} else if (s.trial != 0) {
		dropped = true; /* its trial boots were never marked good */
	}
	if (on_trial) {
		s.tries++;
		s.booted = s.trial;
	} else {
		if (dropped) {
			s.trial = 0;
			s.tries = 0;
		}
		s.booted = s.active;
		r = read_version(&o, s.active, v);
		if (r != 0) {
			rc = fail(
			    &o, HV_IO,
			    "boot: nothing to boot: the active bank %c holds no valid "
			    "VERSION (%s); the banks are damaged: restore bank-%c",
			    s.active, r < 0 ? strerror(errno) : "missing or invalid",
			    s.active);
			goto out;
		}
	}
	/* Counted before the bank "runs": a crash in it uses the try up. */
	rc = state_store(&o, &s);
	if (rc != HV_OK)
		goto out;
	if (rolled_back != NULL)
		*rolled_back = dropped;
	if (st != NULL)
		fill_status(&o, &s, st);
out:
	op_end(&o);
	return rc;
}

int hv_dirbank_init(struct hv_bootbank *b, const char *version, unsigned max_tries,
                    char *err, size_t errlen)
{
	struct state s = {.active = 'a', .booted = 'a'};
	struct stat st;
	struct op o = {.b = b, .dfd = -1, .err = err, .errlen = errlen};
	int rc, fd;

	if (b->kind == NULL || strcmp(b->kind, "dir") != 0)
		return say(err, errlen, HV_INVAL,
		           "bootbank: init is for dir: banks only");
	if (!hv_bootbank_version_valid(version))
		return fail(&o, HV_INVAL,
		            "init: version '%.80s' is not valid: give 1..63 printable "
		            "characters without spaces",
		            version != NULL ? version : "");
	if (max_tries > HV_BANK_MAX_TRIES_LIMIT)
		return fail(&o, HV_INVAL, "init: max-tries %u is not in 1..%u", max_tries,
		            HV_BANK_MAX_TRIES_LIMIT);
	s.max_tries = max_tries == 0 ? 1 : max_tries;
	if (d_mkdirat(&o, AT_FDCWD, b->dir, 0755) != 0 && errno != EEXIST)
		return fail(&o, HV_IO, "init: cannot create the directory: %s",
		            strerror(errno));
	rc = op_begin(&o, b, err, errlen);
	if (rc != HV_OK)
		return rc;
	if (fstatat(o.dfd, "state", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = fail(&o, HV_EXISTS,
		          "init refused: already initialised (a state file exists); "
		          "'hvpeer bootbank status' shows it");
		goto out;
	}
	if ((d_mkdirat(&o, o.dfd, "bank-a", 0755) != 0 && errno != EEXIST) ||
	    (d_mkdirat(&o, o.dfd, "bank-b", 0755) != 0 && errno != EEXIST)) {
		rc =
		    fail(&o, HV_IO, "init: cannot create the banks: %s", strerror(errno));
		goto out;
	}
	/* Until the state file exists nothing reads bank-a: no temp file. */
	if (write_version(&o, o.dfd, "bank-a/VERSION", O_TRUNC, version) != 0) {
		rc = fail(&o, HV_IO, "init: cannot write bank-a/VERSION: %s",
		          strerror(errno));
		goto out;
	}
	fd = openat(o.dfd, "bank-a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || d_fsync(&o, fd) != 0 || d_fsync(&o, o.dfd) != 0) {
		rc = fail(&o, HV_IO, "init: cannot fsync the banks: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	rc = state_store(&o, &s);
out:
	op_end(&o);
	return rc;
}

/* ---- exec -------------------------------------------------------------- */

struct run {
	char out[EXEC_OUT_MAX]; /* stdout, NUL-terminated, truncated */
	size_t outlen;
	char tail[EXEC_TAIL_MAX]; /* the last bytes of stderr */
	size_t taillen;
	bool tail_cut; /* stderr was longer */
	int status;
	bool timed_out;
	bool lost; /* reaped by someone else: no exit status */
};

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void keep_out(struct run *r, const char *p, size_t n)
{
	size_t room = sizeof r->out - 1 - r->outlen;

	if (n > room)
		n = room;
	memcpy(r->out + r->outlen, p, n);
	r->outlen += n;
	r->out[r->outlen] = '\0';
}

static void keep_tail(struct run *r, const char *p, size_t n)
{
	if (r->taillen + n > sizeof r->tail)
		r->tail_cut = true;
	if (n >= sizeof r->tail) {
		memcpy(r->tail, p + n - sizeof r->tail, sizeof r->tail);
		r->taillen = sizeof r->tail;
		return;
	}
	if (r->taillen + n > sizeof r->tail) {
		size_t drop = r->taillen + n - sizeof r->tail;

		memmove(r->tail, r->tail + drop, r->taillen - drop);
		r->taillen -= drop;
	}
	memcpy(r->tail + r->taillen, p, n);
	r->taillen += n;
}

/* Read what is there, up to 64 KiB (the fds are non-blocking, and a
 * command that writes without end must not keep us from its deadline);
 * closes *fd at EOF. */
static void pump(struct run *r, int *fd, bool is_out)
{
	char buf[4096];

	for (int i = 0; i < 16 && *fd >= 0; i++) {
		ssize_t n = read(*fd, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			return;
		}
		if (is_out)
			keep_out(r, buf, (size_t)n);
		else
			keep_tail(r, buf, (size_t)n);
	}
}

/* The environment of a command: ours, with HVPEER_STAGING and
 * HVPEER_VERSION replaced by the operation's (or removed). */
static char **make_env(const char *staging, const char *version, char *own[2])
{
	size_t n = 0, k = 0;
	char **env;

	while (environ != NULL && environ[n] != NULL)
		n++;
	env = calloc(n + 3, sizeof *env);
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "HVPEER_STAGING=", 15) != 0 &&
		    strncmp(environ[i], "HVPEER_VERSION=", 15) != 0)
			env[k++] = environ[i];
	if ((staging != NULL && asprintf(&own[0], "HVPEER_STAGING=%s", staging) < 0) ||
	    (version != NULL && asprintf(&own[1], "HVPEER_VERSION=%s", version) < 0)) {
		free(env);
		return NULL;
	}
	if (own[0] != NULL)
		env[k++] = own[0];
	if (own[1] != NULL)
		env[k++] = own[1];
	return env;
}

/* Start sh -c cmd in a process group of its own, stdout and stderr to
 * pipes. Returns 0 (errno-style code otherwise). */
static int spawn(const char *cmd, char **env, int out_w, int err_w, pid_t *pid)
{
	char a0[] = "sh", a1[] = "-c";
	char *argv[] = {a0, a1, (char *)cmd, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, dfl;
	int rc;

	rc = posix_spawn_file_actions_init(&fa);
	if (rc != 0)
		return rc;
	rc = posix_spawnattr_init(&sa);
	if (rc != 0)
		goto out_fa;
	sigemptyset(&none);
	/* The daemon may ignore or block these; the command gets defaults. */
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGCHLD);
	if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, out_w, 1)) ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2)) ||
	    (rc = posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP |
	                                            POSIX_SPAWN_SETSIGMASK |
	                                            POSIX_SPAWN_SETSIGDEF)) ||
	    (rc = posix_spawnattr_setpgroup(&sa, 0)) ||
	    (rc = posix_spawnattr_setsigmask(&sa, &none)) ||
	    (rc = posix_spawnattr_setsigdefault(&sa, &dfl)))
		goto out_sa;
	rc = posix_spawn(pid, "/bin/sh", &fa, &sa, argv, env);
out_sa:
	posix_spawnattr_destroy(&sa);
out_fa:
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* Wait for the command, reading its output, until it exits or the
 * deadline passes (then its whole process group is killed). */
static void collect(struct run *r, pid_t pid, int *out_r, int *err_r, unsigned timeout_ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	for (;;) {
		struct pollfd p[2];
		nfds_t n = 0;
		pid_t w;
		long left;
		int slice;

		w = waitpid(pid, &r->status, WNOHANG);
		if (w == pid)
			break;
		/* Only when the process ignores SIGCHLD (auto-reaping). */
		if (w < 0 && errno == ECHILD) {
			r->lost = true;
			break;
		}
		left = ms_left(&deadline);
		if (left <= 0) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
				;
			r->timed_out = true;
			break;
		}
		if (*out_r >= 0)
			p[n++] = (struct pollfd){.fd = *out_r, .events = POLLIN};
		if (*err_r >= 0)
			p[n++] = (struct pollfd){.fd = *err_r, .events = POLLIN};
		/* Output or EOF wakes us; with both pipes at EOF the exit is a
		 * moment away: look again soon. */
		slice = n > 0 ? 100 : 5;
		poll(p, n, left < slice ? (int)left : slice);
		pump(r, out_r, true);
		pump(r, err_r, false);
	}
	/* What the command wrote before it ended; a straggler that still
	 * holds the pipes is not waited for. */
	pump(r, out_r, true);
	pump(r, err_r, false);
}

/* The stderr tail as one line for a message: newlines become "; ",
 * control characters '?'. */
static void tail_line(const struct run *r, char *buf, size_t cap)
{
	size_t i = 0, k = 0, end = r->taillen;

	while (end > 0 && (r->tail[end - 1] == '\n' || r->tail[end - 1] == ' ' ||
	                   r->tail[end - 1] == '\r' || r->tail[end - 1] == '\t'))
		end--;
	if (r->tail_cut && k + 3 < cap) {
		memcpy(buf, "...", 3);
		k = 3;
	}
	for (; i < end && k + 3 < cap; i++) {
		unsigned char ch = (unsigned char)r->tail[i];

		if (ch == '\n') {
			buf[k++] = ';';
			buf[k++] = ' ';
		} else if (ch < ' ' || ch == 0x7f) {
			buf[k++] = '?';
		} else {
			buf[k++] = (char)ch;
		}
	}
	buf[k] = '\0';
	if (k == 0)
		snprintf(buf, cap, "(nothing on stderr)");
}

/* Run command `which`; its stdout (bounded) in r->out. */
static int exec_run(struct hv_bootbank *b, int which, const char *staging,
                    const char *version, struct run *r, char *err, size_t errlen)
{
	const char *name = cmd_names[which];
	char *own[2] = {NULL, NULL};
	char line[EXEC_TAIL_MAX * 2 + 8];
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	char **env;
	pid_t pid;
	int rc;

	memset(r, 0, sizeof *r);
	if (b->cmd[which] == NULL)
		return say(err, errlen, HV_INVAL,
		           "bootbank exec: no %s configured; set %s in the configuration",
		           name, name);
	env = make_env(staging, version, own);
	if (env == NULL) {
		rc = say(err, errlen, HV_NOMEM, "bootbank exec: %s: out of memory", name);
		goto out_env;
	}
	if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		rc = say(err, errlen, HV_IO, "bootbank exec: %s: cannot make a pipe: %s",
		         name, strerror(errno));
		goto out_pipes;
	}
	rc = spawn(b->cmd[which], env, outp[1], errp[1], &pid);
	if (rc != 0) {
		rc =
		    say(err, errlen, HV_IO, "bootbank exec: %s: cannot start /bin/sh: %s",
		        name, strerror(rc));
		goto out_pipes;
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	collect(r, pid, &outp[0], &errp[0], b->timeout_ms);

	tail_line(r, line, sizeof line);
	if (r->timed_out)
		rc = say(err, errlen, HV_TIMEOUT,
		         "bootbank exec: %s timed out after %u ms (its process group was "
		         "killed): %s; check the command, or allow it more time",
		         name, b->timeout_ms, line);
	else if (r->lost)
		rc = say(err, errlen, HV_IO,
		         "bootbank exec: %s: its exit status was lost (SIGCHLD is "
		         "ignored in this process): %s; do not ignore SIGCHLD",
		         name, line);
	else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0)
		rc = HV_OK;
	else if (WIFEXITED(r->status))
		rc = say(err, errlen, HV_IO, "bootbank exec: %s exited %d: %s", name,
		         WEXITSTATUS(r->status), line);
	else
		rc = say(err, errlen, HV_IO, "bootbank exec: %s killed by signal %d: %s",
		         name, WTERMSIG(r->status), line);

out_pipes:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
out_env:
	free(env);
	free(own[0]);
	free(own[1]);
	return rc;
}

static int exec_simple(struct hv_bootbank *b, int which, char *err, size_t errlen)
{
	struct run *r = malloc(sizeof *r);
	int rc;

	if (r == NULL)
		return say(err, errlen, HV_NOMEM, "bootbank exec: out of memory");
	rc = exec_run(b, which, NULL, NULL, r, err, errlen);
	free(r);
	return rc;
}

static int exec_status(struct hv_bootbank *b, struct hv_bootbank_status *st, char *err,
                       size_t errlen)
{
	struct run *r = malloc(sizeof *r);
	char *save = NULL, *l1, *l2, *l3;
	int rc;

	if (r == NULL)
		return say(err, errlen, HV_NOMEM, "bootbank exec: out of memory");
	rc = exec_run(b, CMD_STATUS, NULL, NULL, r, err, errlen);
	if (rc != HV_OK)
		goto out;
	l1 = strtok_r(r->out, "\r\n", &save);
	l2 = l1 != NULL ? strtok_r(NULL, "\r\n", &save) : NULL;
	l3 = l2 != NULL ? strtok_r(NULL, "\r\n", &save) : NULL;
	if (l1 == NULL || !hv_bootbank_version_valid(l1) ||
	    (l2 != NULL && strcmp(l2, "trial") != 0 && strcmp(l2, "good") != 0) ||
	    l3 != NULL) {
		rc = say(err, errlen, HV_PROTO,
		         "bootbank exec: status-command printed '%.80s%s': expected the "
		         "booted version (1..63 printable characters) on the first line "
		         "and optionally 'trial' on a second; fix the command",
		         l1 != NULL ? l1 : "", l2 != NULL ? "\\n..." : "");
		goto out;
	}
	memset(st, 0, sizeof *st);
	snprintf(st->booted_version, sizeof st->booted_version, "%s", l1);
	st->booted_is_trial = l2 != NULL && strcmp(l2, "trial") == 0;
out:
	free(r);
	return rc;
}

static int exec_apply(struct hv_bootbank *b, const char *staging, const char *version,
                      char *err, size_t errlen)
{
	struct run *r;
	int rc;

	if (!hv_bootbank_version_valid(version) || staging == NULL || staging[0] == '\0')
		return say(err, errlen, HV_INVAL,
		           "bootbank exec: apply: needs a staging directory and a valid "
		           "version (1..63 printable characters without spaces)");
	r = malloc(sizeof *r);
	if (r == NULL)
		return say(err, errlen, HV_NOMEM, "bootbank exec: out of memory");
	rc = exec_run(b, CMD_APPLY, staging, version, r, err, errlen);
	free(r);
	return rc;
}

static int exec_set_next(struct hv_bootbank *b, char *err, size_t errlen)
{
	return exec_simple(b, CMD_SET_NEXT, err, errlen);
}

static int exec_mark_good(struct hv_bootbank *b, char *err, size_t errlen)
{
	return exec_simple(b, CMD_MARK_GOOD, err, errlen);
}

static int exec_rollback(struct hv_bootbank *b, char *err, size_t errlen)
{
	return exec_simple(b, CMD_ROLLBACK, err, errlen);
}

static int exec_boot(struct hv_bootbank *b, struct hv_bootbank_status *st,
                     bool *rolled_back, char *err, size_t errlen)
{
	return say(err, errlen, HV_INVAL,
	           "bootbank exec: boot is the job of the host's own bootloader; "
	           "reboot the host");
}

/* ---- open / close ------------------------------------------------------ */

int hv_bootbank_open_dir(struct hv_bootbank *b, const char *dir, char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	b->kind = "dir";
	b->status = dir_status;
	b->apply = dir_apply;
	b->set_next = dir_set_next;
	b->mark_good = dir_mark_good;
	b->rollback = dir_rollback;
	b->boot = dir_boot;
	if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof b->dir)
		return say(err, errlen, HV_INVAL,
		           "bootbank: the bank directory is %s; give a path",
		           dir == NULL || dir[0] == '\0' ? "empty" : "too long");
	memcpy(b->dir, dir, strlen(dir) + 1);
	return HV_OK;
}

int hv_bootbank_open_exec(struct hv_bootbank *b, const struct hv_bootbank_exec *exec,
                          char *err, size_t errlen)
{
	const char *cmds[CMD_N];

	memset(b, 0, sizeof *b);
	b->kind = "exec";
	b->status = exec_status;
	b->apply = exec_apply;
	b->set_next = exec_set_next;
	b->mark_good = exec_mark_good;
	b->rollback = exec_rollback;
	b->boot = exec_boot;
	if (exec == NULL)
		return say(err, errlen, HV_INVAL,
		           "bootbank exec: no commands configured");
	cmds[CMD_APPLY] = exec->apply;
	cmds[CMD_SET_NEXT] = exec->set_next;
	cmds[CMD_MARK_GOOD] = exec->mark_good;
	cmds[CMD_ROLLBACK] = exec->rollback;
	cmds[CMD_STATUS] = exec->status;
	b->timeout_ms = exec->timeout_ms != 0 ? exec->timeout_ms : EXEC_TIMEOUT_MS;
	for (int i = 0; i < CMD_N; i++) {
		if (cmds[i] == NULL || cmds[i][0] == '\0')
			continue;
		b->cmd[i] = strdup(cmds[i]);
		if (b->cmd[i] == NULL) {
			hv_bootbank_close(b);
			return say(err, errlen, HV_NOMEM, "bootbank exec: out of memory");
		}
	}
	return HV_OK;
}

int hv_bootbank_open(struct hv_bootbank *b, const char *spec,
                     const struct hv_bootbank_exec *exec, char *err, size_t errlen)
{
	if (spec != NULL && strncmp(spec, "dir:", 4) == 0)
		return hv_bootbank_open_dir(b, spec + 4, err, errlen);
	if (spec != NULL && strcmp(spec, "exec") == 0)
		return hv_bootbank_open_exec(b, exec, err, errlen);
	memset(b, 0, sizeof *b);
	return say(err, errlen, HV_INVAL,
	           "bootbank: unknown bank '%.80s': use 'dir:PATH' or 'exec'",
	           spec != NULL ? spec : "");
}

void hv_bootbank_close(struct hv_bootbank *b)
{
	for (int i = 0; i < CMD_N; i++) {
		free(b->cmd[i]);
		b->cmd[i] = NULL;
	}
}
