/*
 * The patch cycle's driver: what this host does in each phase of a rollout.
 *
 * The phase is in the replicated state (consensus/rollout.c), never only
 * here. After every applied command, when a job ends and on every tick, the
 * driver looks at this host's committed phase; when the phase has work and
 * no job runs, it starts one on a worker thread (node/job.h). The job does
 * the phase's work and commits its outcome as a PATCH_STEP, which moves the
 * phase on (and, at DONE, hands the lease to the next host in the same log
 * entry). A host that crashes or reboots finds its phase in the log and
 * does that phase's work again: every phase's work can be repeated.
 *
 *   precheck     fresh inventory, every peer reporting, an evacuation plan
 *   enter-maint  maintenance ENTERING, plan committed, EVACUATING
 *   evacuate     the plan's moves (fenced), IN
 *   stage        the bundle from bundle-dir, verified with this host's keys
 *   apply        inactive boot bank written, next boot tries it
 *   reboot       a marker with the boot id, then reboot-command; after the
 *                boot: booted-new or booted-old from the booted version
 *   validate     booted version, libvirt answers, health hooks
 *   exit-maint   the new bank marked good
 *   rebalance    guests back home, maintenance NONE (the state then releases
 *                the lease and grants it to the next host)
 *   rollback     the trial dropped; a reboot when the host runs it
 *
 * A job stopped by a pause, a lost lease, a lost quorum or shutdown commits
 * nothing: the phase stays and the work is retried when the line moves
 * again. Only a real failure of the phase's work commits a FAIL.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../migrate/hypervisor.h"
#include "../migrate/placement.h"
#include "../migrate/plan.h"
#include "../patchfsm/bootbank.h"
#include "../patchfsm/cycle.h"
#include "../patchfsm/hcl.h"
#include "config.h"
#include "job.h"
#include "node.h"
#include "patch.h"

/* ---- banks ---------------------------------------------------------------- */

int hv_patch_open(struct hv_node *n)
{
	struct hv_config *cfg = &n->cfg;
	struct hv_bootbank_status st;
	struct hv_bootbank_exec ex = {
	    .apply = cfg->bootbank_apply,
	    .set_next = cfg->bootbank_set_next,
	    .mark_good = cfg->bootbank_mark_good,
	    .rollback = cfg->bootbank_rollback,
	    .status = cfg->bootbank_status,
	};
	char err[512];

	if (cfg->bootbank[0] == '\0')
		return 0;
	n->bank = calloc(1, sizeof *n->bank);
	if (n->bank == NULL) {
		snprintf(n->errmsg, sizeof n->errmsg, "out of memory");
		return -1;
	}
	if (hv_bootbank_open(n->bank, cfg->bootbank, &ex, err, sizeof err) != HV_OK ||
	    n->bank->status(n->bank, &st, err, sizeof err) != HV_OK) {
		snprintf(n->errmsg, sizeof n->errmsg, "boot banks (%s): %s",
		         cfg->bootbank, err);
		hv_patch_close(n);
		return -1;
	}
	if (st.booted_version[0] != '\0')
		snprintf(cfg->host_version, sizeof cfg->host_version, "%s",
		         st.booted_version);
	hv_info("boot banks %s: booted %s%s", cfg->bootbank, cfg->host_version,
	        st.booted_is_trial ? " (on trial: not marked good yet)" : "");
	return 0;
}

void hv_patch_close(struct hv_node *n)
{
	free(n->notify_q);
	n->notify_q = NULL;
	n->notify_n = 0;
	if (n->bank != NULL) {
		hv_bootbank_close(n->bank);
		free(n->bank);
		n->bank = NULL;
	}
}

/* ---- what the job knows ---------------------------------------------------- */

struct phase_ctx {
	/* a copy of the committed state the job started from */
	int phase;
	uint64_t rollout, token;
	char version[HV_VERSION_MAX + 1], digest[HV_DIGEST_MAX + 1];
	char bundle[HV_NAME_MAX + 1];
	char source[HV_NAME_MAX + 1];
	char host[HV_NAME_MAX + 1]; /* this host's name, for hooks */
	/* filled by the job */
	int event;
	char reason[HV_REASON_MAX + 1];
	char booted[HV_VERSION_MAX + 1];
	/* notify-command: the phase now and before ("" otherwise) */
	char notify_phase[32], notify_prev[32];
};

__attribute__((format(printf, 2, 3))) static void reasonf(struct phase_ctx *p,
                                                          const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof p->reason, fmt, ap);
	va_end(ap);
}

static bool transient(int rc)
{
	return rc == HV_PAUSED || rc == HV_BADTOKEN || rc == HV_NOTHOLDER ||
	       rc == HV_SHUTDOWN || rc == HV_NOQUORUM || rc == HV_NOTLEADER ||
	       rc == HV_UNREACHABLE || rc == HV_TIMEOUT;
}

/* Where this host keeps bundles: bundle-dir, else DATA_DIR/bundles. */
static void bundle_store(const struct hv_config *cfg, char *out, size_t len)
{
	if (cfg->bundle_dir[0] != '\0')
		snprintf(out, len, "%s", cfg->bundle_dir);
	else
		snprintf(out, len, "%s/bundles", cfg->data_dir);
}

static void bundle_path(const struct hv_config *cfg, const char *digest, char *out,
                        size_t len)
{
	char dir[HV_PATH_MAX + 16];

	bundle_store(cfg, dir, sizeof dir);
	snprintf(out, len, "%s/%s.bundle", dir, digest);
}

static void staging_path(const struct hv_config *cfg, const char *digest, char *out,
                         size_t len)
{
	snprintf(out, len, "%s/staging/%.16s", cfg->data_dir, digest);
}

static void marker_path(const struct hv_config *cfg, char *out, size_t len)
{
	snprintf(out, len, "%s/reboot.marker", cfg->data_dir);
}

/* The phase a reboot marker was written in, or -1. */
static int marker_phase(const char *path)
{
	unsigned long long rollout;
	int phase = -1;
	FILE *f = fopen(path, "r");

	if (f != NULL) {
		if (fscanf(f, "%llu %d", &rollout, &phase) != 2)
			phase = -1;
		fclose(f);
	}
	return phase;
}

static int read_boot_id(const struct hv_config *cfg, char *out, size_t len)
{
	FILE *f = fopen(cfg->boot_id_file, "r");
	int rv = -1;

	out[0] = '\0';
	if (f != NULL) {
		if (fgets(out, (int)len, f) != NULL) {
			out[strcspn(out, "\n")] = '\0';
			rv = out[0] != '\0' ? 0 : -1;
		}
		fclose(f);
	}
	return rv;
}

/* rm -rf of a staging directory (ours, under the data dir). */
static void remove_tree(const char *path)
{
	char cmd[HV_PATH_MAX * 2 + 32];
	pid_t pid;

	snprintf(cmd, sizeof cmd, "%s", path);
	pid = fork();
	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", "--", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* Run a command with /bin/sh -c, a timeout, the output appended to err. */
static int run_hook(const char *what, const char *cmdline, unsigned timeout_s,
                    const char *dir, const struct phase_ctx *p, char *err, size_t errlen)
{
	int fds[2];
	pid_t pid;
	char out[512] = "";
	size_t got = 0;
	int status = 0;
	uint64_t deadline = hv_mono_ms() + (uint64_t)timeout_s * 1000; /* no jumps */

	if (pipe(fds) != 0) {
		snprintf(err, errlen, "%s: pipe: %s", what, strerror(errno));
		return HV_IO;
	}
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		snprintf(err, errlen, "%s: fork: %s", what, strerror(errno));
		return HV_IO;
	}
	if (pid == 0) {
		setpgid(0, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		if (dir != NULL && chdir(dir) != 0)
			_exit(126);
		if (p != NULL) { /* what the hook is run for */
			char id[32];
			snprintf(id, sizeof id, "%llu", (unsigned long long)p->rollout);
			setenv("HVPEER_ROLLOUT", id, 1);
			snprintf(id, sizeof id, "%llu", (unsigned long long)p->token);
			setenv("HVPEER_TOKEN", id, 1);
			setenv("HVPEER_HOOK", what, 1);
			setenv("HVPEER_VERSION", p->version, 1);
			setenv("HVPEER_BUNDLE", p->bundle, 1);
			setenv("HVPEER_HOST", p->host, 1);
			if (p->notify_phase[0] != '\0') {
				setenv("HVPEER_PHASE", p->notify_phase, 1);
				setenv("HVPEER_PREV_PHASE", p->notify_prev, 1);
				setenv("HVPEER_REASON", p->reason, 1);
			}
		}
		execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t r;
		char buf[256];
		pid_t w = waitpid(pid, &status, WNOHANG);
		while ((r = read(fds[0], buf, sizeof buf)) > 0)
			for (ssize_t i = 0; i < r; i++) {
				if (got == sizeof out - 1) { /* keep the tail */
					memmove(out, out + 128, got - 128);
					got -= 128;
				}
				out[got++] = buf[i] == '\n' ? ' ' : buf[i];
			}
		out[got] = '\0';
		if (w == pid)
			break;
		if (hv_mono_ms() > deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(fds[0]);
			snprintf(err, errlen, "%s timed out after %u s: %s", what,
			         timeout_s, out);
			return HV_TIMEOUT;
		}
		usleep(20000);
	}
	close(fds[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return HV_OK;
	if (WIFEXITED(status))
		snprintf(err, errlen, "%s exited %d: %s", what, WEXITSTATUS(status), out);
	else
		snprintf(err, errlen, "%s killed by signal %d: %s", what,
		         WIFSIGNALED(status) ? WTERMSIG(status) : 0, out);
	return HV_IO;
}

/* Start a command that is not waited for (a reboot kills us). */
static int spawn_detached(const char *cmdline)
{
	pid_t pid = fork();

	if (pid < 0)
		return HV_IO;
	if (pid == 0) {
		if (fork() != 0)
			_exit(0);
		setsid();
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return HV_OK;
}

/* ---- queries (on the loop) ------------------------------------------------ */

struct q_precheck {
	uint64_t stale_ms;
	struct hv_cmd plan;
	int rc;
	char why[512];
};

/* The peers a pre-check leaves out: another lease holder (max-concurrent),
 * which may be down in its own cycle, and with precheck-peers = up a peer
 * that has not reported lately. */
static bool precheck_skips(struct hv_node *n, const struct hv_member *m, uint64_t now)
{
	if (strcmp(m->name, n->cfg.name) != 0 &&
	    hv_state_holder(&n->state, m->name) != NULL)
		return true;
	return !n->cfg.precheck_all_peers &&
	       m->report_ms + hv_node_precheck_stale_ms(n) < now;
}

static void q_precheck_fn(struct hv_node *n, void *arg)
{
	struct q_precheck *q = arg;
	uint64_t now = hv_now_ms();

	q->rc = HV_OK;
	for (unsigned i = 0; i < n->state.n_members; i++) {
		const struct hv_member *m = &n->state.members[i];
		if (m->removed || precheck_skips(n, m, now))
			continue;
		if (m->report_ms + q->stale_ms < now) {
			q->rc = HV_UNREACHABLE;
			snprintf(
			    q->why, sizeof q->why,
			    "peer %s has not reported for %llu s: the cluster is not "
			    "healthy (check that hvpeerd runs there)",
			    m->name, (unsigned long long)((now - m->report_ms) / 1000));
			return;
		}
	}
	q->rc = hv_plan_evacuation(&n->state, n->cfg.name, now, q->stale_ms, NULL, NULL,
	                           &q->plan, q->why, sizeof q->why);
}

/* ---- the phases (worker thread) ------------------------------------------ */

static int check_clocks(struct hv_maint_job *j, char *why, size_t len);
static int check_mtu(struct hv_maint_job *j, char *why, size_t len);
static int check_cpus(struct hv_maint_job *j, const struct hv_cmd *plan, char *why,
                      size_t len);
static int start_hooks(struct hv_maint_job *j, const struct phase_ctx *p, char *why,
                       size_t len);
static int check_space(struct hv_maint_job *j, const struct phase_ctx *p, char *why,
                       size_t len);

/* With an HCL (config hcl), this host's storage and network controllers
 * must be on it for the version it is about to boot. The file is read at
 * each pre-check: an operator who adds a part and resumes is heard. */
static int check_hcl(const struct hv_config *cfg, const char *version, char *why,
                     size_t len)
{
	struct hv_hcl_part *parts;
	unsigned n = 0;
	char *text = NULL, err[256];
	int rc;

	if (cfg->hcl[0] == '\0')
		return HV_OK;
	if (hv_hcl_read(cfg->hcl, &text, err, sizeof err) != HV_OK)
		return hv_errf(why, len, HV_IO, "hardware compatibility list: %s", err);
	if ((parts = calloc(HV_HCL_MAX_PARTS, sizeof *parts)) == NULL) {
		free(text);
		return hv_errf(why, len, HV_NOMEM, "out of memory");
	}
	rc = hv_hcl_scan(cfg->hcl_sysfs, parts, HV_HCL_MAX_PARTS, &n, err, sizeof err);
	if (rc == HV_OK)
		rc = hv_hcl_check(text, version, parts, n, err, sizeof err);
	if (rc != HV_OK)
		hv_errf(why, len, rc,
		        "%s (%s): check the vendor's list for this version, "
		        "then add the part to it or replace the part",
		        err, cfg->hcl);
	free(parts);
	free(text);
	return rc;
}

static int do_precheck(struct hv_maint_job *j, struct phase_ctx *p)
{
	struct hv_node *n = hv_job_node(j);
	struct q_precheck *q = calloc(1, sizeof *q);
	int rc;

	if (q == NULL)
		return HV_NOMEM;
	/* a fresh inventory first: the plan must see today's guests */
	rc = hv_maint_refresh_inventory(j);
	if (rc != HV_OK) {
		free(q);
		return transient(rc) ? rc : (p->event = HV_EV_FAIL, HV_OK);
	}
	q->stale_ms = hv_node_precheck_stale_ms(n);
	hv_job_query(j, q_precheck_fn, q);
	if (q->rc == HV_OK)
		q->rc = check_hcl(&n->cfg, p->version, q->why, sizeof q->why);
	if (q->rc == HV_OK)
		q->rc = check_clocks(j, q->why, sizeof q->why);
	if (q->rc == HV_OK)
		q->rc = check_space(j, p, q->why, sizeof q->why);
	if (q->rc == HV_OK)
		q->rc = check_mtu(j, q->why, sizeof q->why);
	if (q->rc == HV_OK)
		q->rc = check_cpus(j, &q->plan, q->why, sizeof q->why);
	if (q->rc == HV_OK)
		q->rc = start_hooks(j, p, q->why, sizeof q->why);
	if (q->rc == HV_SHUTDOWN || q->rc == HV_PAUSED) {
		rc = q->rc;
		free(q);
		return rc;
	}
	if (q->rc != HV_OK) {
		p->event = HV_EV_FAIL;
		reasonf(p, "pre-check: %s", q->why);
	} else {
		p->event = HV_EV_OK;
		reasonf(p, "%u guest%s to move", q->plan.n_moves,
		        q->plan.n_moves == 1 ? "" : "s");
	}
	free(q);
	return HV_OK;
}

/* ---- checking a bundle: in hvpeer-bundle, not here --------------------- */

/* What a verified bundle's manifest says (from hvpeer-bundle --json). */
struct verified {
	char name[HV_NAME_MAX + 1];
	char version[HV_VERSION_MAX + 1];
	char key_id[HV_KEYID_MAX + 1];
	char digest[HV_DIGEST_MAX + 1];
	char validate_hook[HV_PATH_MAX];
	unsigned n_files;
};

static void jcopy(struct json_object *o, const char *key, char *out, size_t len)
{
	const char *v = hv_json_str(o, key);

	snprintf(out, len, "%s", v != NULL ? v : "");
}

/*
 * Verify (and with extract, unpack) a bundle with hvpeer-bundle, whose
 * archive code runs in a process of its own. Its manifest goes to
 * manifest_out (for the validate hook later) when that is not NULL.
 * Returns HV_OK, the refusal's code with its message in err, or HV_IO.
 */
static int verify_bundle(const struct hv_config *cfg, const char *path, const char *floor,
                         const char *extract, const char *manifest_out,
                         struct verified *v, char *err, size_t errlen)
{
	char tool[HV_PATH_MAX * 2];
	const char *argv[16];
	int status = 0, argc = 0, rc;
	char *out = NULL;
	struct json_object *o = NULL, *m, *x;

	memset(v, 0, sizeof *v);
	hv_program_path("hvpeer-bundle", tool, sizeof tool);
	argv[argc++] = tool;
	argv[argc++] = "--json";
	argv[argc++] = "verify";
	argv[argc++] = "--keys";
	argv[argc++] = cfg->trusted_keys;
	argv[argc++] = "--host-class";
	argv[argc++] = cfg->host_class;
	if (floor != NULL && floor[0] != '\0') {
		argv[argc++] = "--floor";
		argv[argc++] = floor;
	}
	if (extract != NULL) {
		argv[argc++] = "--extract";
		argv[argc++] = extract;
	}
	argv[argc++] = path;
	argv[argc] = NULL;
	if (hv_program_run(argv, 1 << 20, &out, &status) != 0)
		return hv_errf(err, errlen, HV_IO, "cannot run %s: %s", tool,
		               strerror(errno));
	o = json_tokener_parse(out);
	free(out);
	if (o == NULL || !json_object_object_get_ex(o, "ok", &x)) {
		json_object_put(o);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			return hv_errf(err, errlen, HV_IO, "cannot run %s", tool);
		return hv_errf(err, errlen, HV_IO, "%s gave no answer (status %d)", tool,
		               status);
	}
	if (!json_object_get_boolean(x)) {
		char name[32], msg[512];
		jcopy(o, "error", name, sizeof name);
		jcopy(o, "message", msg, sizeof msg);
		rc = hv_errcode(name);
		json_object_put(o);
		/* The runbook's words for these, so that its troubleshooting
		 * matrix finds them; an expired bundle may be a wrong clock. */
		if (rc == HV_BADSIG || rc == HV_UNKNOWNKEY)
			return hv_errf(err, errlen, rc, "Signature Validation Failed: %s",
			               msg);
		if (rc == HV_EXPIRED)
			return hv_errf(err, errlen, rc,
			               "Signature Validation Failed: %s (if the bundle "
			               "is current, check this host's clock)",
			               msg);
		return hv_errf(err, errlen, rc > 0 ? rc : HV_IO, "%s", msg);
	}
	if (!json_object_object_get_ex(o, "manifest", &m)) {
		json_object_put(o);
		return hv_errf(err, errlen, HV_PROTO, "%s: no manifest in its answer",
		               tool);
	}
	jcopy(m, "name", v->name, sizeof v->name);
	jcopy(m, "version", v->version, sizeof v->version);
	jcopy(m, "key-id", v->key_id, sizeof v->key_id);
	jcopy(m, "digest", v->digest, sizeof v->digest);
	if (json_object_object_get_ex(m, "files", &x))
		v->n_files = (unsigned)json_object_array_length(x);
	if (json_object_object_get_ex(m, "hooks", &x))
		jcopy(x, "validate", v->validate_hook, sizeof v->validate_hook);
	rc = HV_OK;
	if (manifest_out != NULL &&
	    json_object_to_file_ext(manifest_out, m, JSON_C_TO_STRING_PLAIN) != 0)
		rc = hv_errf(err, errlen, HV_IO, "cannot write %s", manifest_out);
	json_object_put(o);
	return rc;
}

/* ---- fetching a bundle from a peer --------------------------------------- */

#define CHUNK (384u * 1024) /* raw bytes per answer: ~512 KiB of base64 */

struct q_peers {
	const char *source;
	bool up_only; /* only the peers a pre-check asks (precheck_skips) */
	unsigned n;
	char names[HV_MAX_MEMBERS][HV_NAME_MAX + 1];
	char addrs[HV_MAX_MEMBERS][HV_ADDR_MAX + 1];
};

/* The members to ask, the bundle's source first. */
static void q_peers_fn(struct hv_node *n, void *arg)
{
	struct q_peers *q = arg;
	uint64_t now = hv_now_ms();

	q->n = 0;
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < n->state.n_members; i++) {
			const struct hv_member *m = &n->state.members[i];
			bool src = strcmp(m->name, q->source) == 0;
			if (m->removed || strcmp(m->name, n->cfg.name) == 0 ||
			    (pass == 0) != src ||
			    (q->up_only && precheck_skips(n, m, now)))
				continue;
			snprintf(q->names[q->n], sizeof q->names[0], "%s", m->name);
			snprintf(q->addrs[q->n], sizeof q->addrs[0], "%s", m->address);
			q->n++;
		}
}

/* The members to ask, source first; up_only: those a pre-check asks (see
 * precheck_skips). NULL when out of memory; free it. */
static struct q_peers *peers_query(struct hv_maint_job *j, const char *source,
                                   bool up_only)
{
	struct q_peers *q = calloc(1, sizeof *q);

	if (q != NULL) {
		q->source = source;
		q->up_only = up_only;
		hv_job_query(j, q_peers_fn, q);
	}
	return q;
}

static struct q_peers *peers_of(struct hv_maint_job *j, const char *source)
{
	return peers_query(j, source, false);
}

static struct q_peers *peers_up(struct hv_maint_job *j)
{
	return peers_query(j, "", true);
}

/* Every peer's wall clock, asked over the peer port, within max-clock-skew
 * of this host's: signatures and certificates that look expired or not yet
 * valid are what a skewed clock causes. A peer that does not answer fails
 * the check too. */
static int check_clocks(struct hv_maint_job *j, char *why, size_t len)
{
	struct hv_node *n = hv_job_node(j);
	const struct hv_config *cfg = &n->cfg;
	struct q_peers *q;
	int rc = HV_OK;

	if (cfg->max_clock_skew_s == 0)
		return HV_OK;
	if ((q = peers_up(j)) == NULL)
		return hv_errf(why, len, HV_NOMEM, "out of memory");
	for (unsigned i = 0; i < q->n && rc == HV_OK; i++) {
		struct json_object *req = json_object_new_object(), *resp = NULL;
		uint64_t t0 = hv_now_ms(), t1, peer = 0;
		int64_t skew;
		int c;
		json_object_object_add(req, "op", json_object_new_string("ping"));
		c = hv_job_call(j, q->addrs[i], req, 5000, &resp);
		json_object_put(req);
		t1 = hv_now_ms();
		if (c == HV_SHUTDOWN || hv_job_cancelled(j)) {
			rc = HV_SHUTDOWN;
		} else if (c != HV_OK) {
			rc = hv_errf(why, len, HV_UNREACHABLE,
			             "peer %s does not answer on %s (%s): Host Not "
			             "Reachable; check the network between the hosts",
			             q->names[i], q->addrs[i], hv_strerror(c));
		} else if (hv_json_uint(resp, "now_ms", &peer)) {
			skew = (int64_t)peer - (int64_t)((t0 + t1) / 2);
			if (skew > (int64_t)cfg->max_clock_skew_s * 1000 ||
			    -skew > (int64_t)cfg->max_clock_skew_s * 1000)
				rc = hv_errf(
				    why, len, HV_INVAL,
				    "the clock of %s is %lld s %s this host's, over "
				    "the %u s limit (max-clock-skew): signatures "
				    "and certificates look expired or not yet valid "
				    "when clocks disagree; fix time sync (NTP) on "
				    "the hosts",
				    q->names[i],
				    (long long)(skew > 0 ? skew : -skew) / 1000,
				    skew > 0 ? "ahead of" : "behind",
				    cfg->max_clock_skew_s);
		}
		json_object_put(resp);
	}
	free(q);
	return rc;
}

/* With migration-mtu set, packets of that size, unfragmented, reach every
 * peer (ping -M do): jumbo frames that a switch port drops make live
 * migration hang or crawl. When they do not pass, a 1500-byte one tells a
 * too-small MTU on the path from a peer that does not answer at all. */
static int check_mtu(struct hv_maint_job *j, char *why, size_t len)
{
	const struct hv_config *cfg = &hv_job_node(j)->cfg;
	struct q_peers *q;
	int rc = HV_OK;

	if (cfg->migration_mtu == 0)
		return HV_OK;
	if ((q = peers_up(j)) == NULL)
		return hv_errf(why, len, HV_NOMEM, "out of memory");
	for (unsigned i = 0; i < q->n && rc == HV_OK; i++) {
		char host[HV_ADDR_MAX + 1], cmd[HV_ADDR_MAX + 96], err[256];
		int port;
		if (hv_addr_split(q->addrs[i], host, sizeof host, &port) != 0)
			continue;
		snprintf(cmd, sizeof cmd,
		         "exec ping -n -q -M do -c 2 -i 0.2 -W 1 -s %u '%s'",
		         cfg->migration_mtu - 28, host);
		if (run_hook("ping", cmd, 10, NULL, NULL, err, sizeof err) == HV_OK)
			continue;
		snprintf(cmd, sizeof cmd,
		         "exec ping -n -q -M do -c 2 -i 0.2 -W 1 -s 1472 '%s'", host);
		if (run_hook("ping", cmd, 10, NULL, NULL, err, sizeof err) == HV_OK)
			rc = hv_errf(
			    why, len, HV_UNREACHABLE,
			    "packets of %u bytes (migration-mtu) do not reach %s "
			    "(%s) unfragmented, 1500-byte ones do: an interface or "
			    "a switch port on the path has a smaller MTU; live "
			    "migration would stall",
			    cfg->migration_mtu, q->names[i], host);
		else
			rc =
			    hv_errf(why, len, HV_UNREACHABLE,
			            "%s (%s) does not answer ping: Host Not Reachable on "
			            "the migration network (%s)",
			            q->names[i], host, err);
	}
	free(q);
	return rc;
}

/* Each guest the plan live-migrates: can its target's hypervisor run its
 * CPU as it is defined (libvirt's comparison)? A guest whose CPU needs
 * features the target lacks fails the migration once it has started. */
static int check_cpus(struct hv_maint_job *j, const struct hv_cmd *plan, char *why,
                      size_t len)
{
	struct hv_node *n = hv_job_node(j);
	struct q_peers *q;
	int rc = HV_OK;

	if (n->hyp == NULL || n->hyp->cpu_check == NULL || plan->n_moves == 0)
		return HV_OK;
	if ((q = peers_up(j)) == NULL)
		return hv_errf(why, len, HV_NOMEM, "out of memory");
	for (unsigned k = 0; k < plan->n_moves && rc == HV_OK; k++) {
		const struct hv_cmd_move *mv = &plan->moves[k];
		char uri[HV_PATH_MAX + HV_ADDR_MAX], err[400];
		int c;
		if (mv->action != HV_ACT_MIGRATE)
			continue;
		for (unsigned i = 0; i < q->n; i++)
			if (strcmp(q->names[i], mv->target) == 0) {
				hv_peer_uri(&n->cfg, q->addrs[i], uri, sizeof uri);
				c = n->hyp->cpu_check(n->cfg.libvirt_uri, mv->guest, uri,
				                      err, sizeof err);
				if (c == HV_INVAL)
					rc = hv_errf(
					    why, len, HV_INVAL,
					    "Incompatible CPU flags: guest %s cannot run "
					    "on %s: %s (give it a CPU model every host "
					    "has, e.g. a named model instead of "
					    "host-model)",
					    mv->guest, mv->target, err);
				else if (c != HV_OK)
					hv_warn("CPU check of %s on %s: %s", mv->guest,
					        mv->target, err);
				break;
			}
	}
	free(q);
	return rc;
}

/* Room to stage the patch: the bundle (unless it is here already) where
 * bundles are kept, and its payload unpacked in the data dir, with a
 * margin. "No space left on device" caught before anything moves. */
static int check_space(struct hv_maint_job *j, const struct phase_ctx *p, char *why,
                       size_t len)
{
	struct hv_node *n = hv_job_node(j);
	const struct hv_config *cfg = &n->cfg;
	char path[HV_PATH_MAX + 96], store[HV_PATH_MAX + 16];
	struct statvfs vs, vd;
	struct stat st;
	uint64_t size = 0, need_store = 0, need_data, free_s, free_d;
	const uint64_t margin = 16ull << 20;

	bundle_path(cfg, p->digest, path, sizeof path);
	if (stat(path, &st) == 0) {
		size = (uint64_t)st.st_size;
	} else {
		/* ask the source how large it is (an offset past the end) */
		struct q_peers *q = peers_of(j, p->source);
		if (q == NULL)
			return hv_errf(why, len, HV_NOMEM, "out of memory");
		for (unsigned i = 0; i < q->n && size == 0; i++) {
			struct json_object *req = json_object_new_object(), *resp = NULL;
			json_object_object_add(req, "op",
			                       json_object_new_string("bundle-get"));
			json_object_object_add(req, "digest",
			                       json_object_new_string(p->digest));
			json_object_object_add(req, "offset",
			                       json_object_new_uint64(1ull << 62));
			if (hv_job_call(j, q->addrs[i], req, 5000, &resp) == HV_OK &&
			    !hv_json_uint(resp, "size", &size))
				size = 0;
			json_object_put(req);
			json_object_put(resp);
		}
		free(q);
		if (size == 0)
			return HV_OK; /* nobody says: the stage finds out */
		need_store = size;
	}
	need_data = size + margin;
	bundle_store(cfg, store, sizeof store);
	if (hv_mkdir_p(store, 0700) != 0 || statvfs(store, &vs) != 0 ||
	    statvfs(cfg->data_dir, &vd) != 0)
		return HV_OK; /* the stage reports what is wrong with the dirs */
	free_s = (uint64_t)vs.f_bavail * vs.f_frsize;
	free_d = (uint64_t)vd.f_bavail * vd.f_frsize;
	if (vs.f_fsid == vd.f_fsid) {
		need_data += need_store;
		need_store = 0;
	}
	if (need_store > 0 && free_s < need_store + margin)
		return hv_errf(
		    why, len, HV_FULL,
		    "not enough disk space to stage the patch: %s has %llu MiB "
		    "free, the bundle needs %llu MiB (the stage would fail with "
		    "No space left on device); free space there or set "
		    "bundle-dir",
		    store, (unsigned long long)(free_s >> 20),
		    (unsigned long long)((need_store + margin) >> 20));
	if (free_d < need_data)
		return hv_errf(
		    why, len, HV_FULL,
		    "not enough disk space to stage the patch: %s has %llu MiB "
		    "free, staging needs %llu MiB (the stage would fail with "
		    "No space left on device); free space in the data dir",
		    vs.f_fsid == vd.f_fsid ? store : cfg->data_dir,
		    (unsigned long long)(free_d >> 20),
		    (unsigned long long)(need_data >> 20));
	return HV_OK;
}

/* Is this host the rollout's first (no host started a cycle yet), or its
 * last (nobody waits after it)? */
struct q_turn {
	const char *self;
	bool first, last;
};

static void q_turn_fn(struct hv_node *n, void *arg)
{
	struct q_turn *q = arg;

	q->first = q->last = true;
	for (unsigned i = 0; i < n->state.n_members; i++) {
		const struct hv_member *m = &n->state.members[i];
		if (m->removed || strcmp(m->name, q->self) == 0)
			continue;
		if (m->cycle_start_ms != 0)
			q->first = false;
		if (m->cycle == HV_PH_WAIT_LEASE || m->cycle == HV_PH_PAUSED)
			q->last = false;
	}
	if (n->state.rollout.aborted)
		q->last = true;
}

/* A hook is a side effect the operator wrote (it may drain a load
 * balancer, page someone, snapshot a database): fenced like the others. A
 * holder whose token is no longer current runs none and stops
 * (HV_PAUSED: the phase is not committed). */
static int fence_hooks(struct hv_maint_job *j, char *why, size_t len)
{
	int rc = hv_job_fence(j);

	if (rc != HV_OK)
		return hv_errf(why, len, HV_PAUSED,
		               "the fencing check refused the hooks: %s",
		               hv_strerror(rc));
	return HV_OK;
}

/* At the end of a clean pre-check: the rollout's start hook on its first
 * host, then this host's pre-maintenance hook. A failure fails the
 * pre-check: nothing moved, the line stops. */
static int start_hooks(struct hv_maint_job *j, const struct phase_ctx *p, char *why,
                       size_t len)
{
	const struct hv_config *cfg = &hv_job_node(j)->cfg;
	struct q_turn q = {.self = cfg->name};
	int rc;

	hv_job_query(j, q_turn_fn, &q);
	if (((q.first && cfg->rollout_start_hook[0] != '\0') ||
	     cfg->pre_maint_hook[0] != '\0') &&
	    (rc = fence_hooks(j, why, len)) != HV_OK)
		return rc;
	if (q.first && cfg->rollout_start_hook[0] != '\0' &&
	    (rc = run_hook("rollout-start-hook", cfg->rollout_start_hook,
	                   cfg->hook_timeout_s, NULL, p, why, len)) != HV_OK)
		return rc;
	if (cfg->pre_maint_hook[0] != '\0' &&
	    (rc = run_hook("pre-maintenance-hook", cfg->pre_maint_hook,
	                   cfg->hook_timeout_s, NULL, p, why, len)) != HV_OK)
		return rc;
	return HV_OK;
}

/* After the guests came back: this host's post-maintenance hook, then the
 * rollout's end hook on its last host. A failure fails the step (the host
 * keeps the lease; the line stops). */
static int end_hooks(struct hv_maint_job *j, const struct phase_ctx *p, char *why,
                     size_t len)
{
	const struct hv_config *cfg = &hv_job_node(j)->cfg;
	struct q_turn q = {.self = cfg->name};
	int rc;

	hv_job_query(j, q_turn_fn, &q);
	if (((q.last && cfg->rollout_end_hook[0] != '\0') ||
	     cfg->post_maint_hook[0] != '\0') &&
	    (rc = fence_hooks(j, why, len)) != HV_OK)
		return rc;
	if (cfg->post_maint_hook[0] != '\0' &&
	    (rc = run_hook("post-maintenance-hook", cfg->post_maint_hook,
	                   cfg->hook_timeout_s, NULL, p, why, len)) != HV_OK)
		return rc;
	if (q.last && cfg->rollout_end_hook[0] != '\0' &&
	    (rc = run_hook("rollout-end-hook", cfg->rollout_end_hook, cfg->hook_timeout_s,
	                   NULL, p, why, len)) != HV_OK)
		return rc;
	return HV_OK;
}

static int fetch_from(struct hv_maint_job *j, const char *addr, const char *digest,
                      const char *tmp, char *err, size_t errlen)
{
	struct hv_node *n = hv_job_node(j);
	uint64_t off = 0, size = UINT64_MAX;
	unsigned char *buf = malloc(CHUNK + 4);
	FILE *f = fopen(tmp, "wb");
	int rc = HV_OK;

	if (buf == NULL || f == NULL) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		rc = HV_IO;
		goto out;
	}
	while (off < size && rc == HV_OK) {
		struct json_object *req = json_object_new_object(), *resp = NULL, *v;
		const char *b64;
		size_t blen, got;
		int dl;
		json_object_object_add(req, "op", json_object_new_string("bundle-get"));
		json_object_object_add(req, "digest", json_object_new_string(digest));
		json_object_object_add(req, "offset", json_object_new_uint64(off));
		rc = hv_job_call(j, addr, req, 10000, &resp);
		json_object_put(req);
		if (rc != HV_OK) {
			snprintf(err, errlen, "%s: %s", addr, hv_strerror(rc));
			break;
		}
		if (!json_object_object_get_ex(resp, "data", &v) ||
		    (b64 = json_object_get_string(v)) == NULL ||
		    !json_object_object_get_ex(resp, "size", &v)) {
			json_object_object_get_ex(resp, "message", &v);
			snprintf(err, errlen, "%s: %s", addr,
			         v != NULL ? json_object_get_string(v) : "bad answer");
			json_object_put(resp);
			rc = HV_PROTO;
			break;
		}
		size = (uint64_t)json_object_get_uint64(v);
		blen = strlen(b64);
		dl = hv_b64_decode(b64, blen, buf, CHUNK + 4, &got) == 0 ? (int)got : -1;
		json_object_put(resp);
		if (dl < 0 || (dl == 0 && off < size) || off + (uint64_t)dl > size ||
		    size > (8ull << 30) + (1u << 20) /* payload + manifest limits */) {
			snprintf(err, errlen, "%s: a bad chunk at offset %llu", addr,
			         (unsigned long long)off);
			rc = HV_PROTO;
			break;
		}
		if (fwrite(buf, 1, (size_t)dl, f) != (size_t)dl) {
			snprintf(err, errlen, "cannot write %s: %s", tmp,
			         strerror(errno));
			rc = HV_IO;
			break;
		}
		off += (uint64_t)dl;
		if (n->stopping || hv_job_cancelled(j))
			rc = HV_SHUTDOWN;
	}
	if (rc == HV_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		rc = HV_IO;
	}
out:
	if (f != NULL)
		fclose(f);
	free(buf);
	if (rc != HV_OK)
		unlink(tmp);
	return rc;
}

/* Get the bundle into this host's bundle store from a peer that has it.
 * The digest is checked after (stage), so a peer cannot slip another in. */
static int fetch_bundle(struct hv_maint_job *j, const struct phase_ctx *p,
                        const char *path, const char *source, char *err, size_t errlen)
{
	struct hv_node *n = hv_job_node(j);
	struct q_peers *q = peers_of(j, source);
	char tmp[HV_PATH_MAX + 160], dir[HV_PATH_MAX + 160];
	int rc = HV_UNREACHABLE;

	if (q == NULL)
		return HV_NOMEM;
	bundle_store(&n->cfg, dir, sizeof dir);
	hv_mkdir_p(dir, 0755);
	snprintf(tmp, sizeof tmp, "%s.part", path);
	snprintf(err, errlen, "no peer to fetch it from");
	for (unsigned i = 0; i < q->n && rc != HV_OK && rc != HV_SHUTDOWN; i++) {
		rc = fetch_from(j, q->addrs[i], p->digest, tmp, err, errlen);
		if (rc == HV_OK && rename(tmp, path) != 0) {
			snprintf(err, errlen, "cannot rename %s: %s", tmp,
			         strerror(errno));
			rc = HV_IO;
		}
		if (rc == HV_OK)
			hv_info("patch %s: bundle fetched from %s", p->version,
			        q->names[i]);
		else
			hv_warn("patch %s: fetching the bundle from %s: %s", p->version,
			        q->names[i], err);
	}
	free(q);
	return rc;
}

/* Serve a chunk of a bundle this host keeps ("bundle-get", to peers). */
void hv_patch_serve_bundle(struct hv_node *n, struct hv_rpc_conn *c, const char *digest,
                           uint64_t offset)
{
	char path[HV_PATH_MAX + 128];
	unsigned char *buf = NULL;
	char *b64 = NULL;
	struct json_object *o;
	struct stat st;
	size_t got = 0;
	FILE *f = NULL;

	if (digest == NULL || strlen(digest) != HV_DIGEST_MAX ||
	    strspn(digest, "0123456789abcdef") != HV_DIGEST_MAX) {
		hv_rpc_reply(
		    c, hv_rpc_error(HV_INVAL, "bundle-get: a digest is 64 hex digits"));
		return;
	}
	bundle_path(&n->cfg, digest, path, sizeof path);
	f = fopen(path, "rb");
	if (f == NULL || fstat(fileno(f), &st) != 0) {
		hv_rpc_reply(c,
		             hv_rpc_error(HV_NOMEMBER, "%s does not have bundle %.16s...",
		                          n->cfg.name, digest));
		goto out;
	}
	buf = malloc(CHUNK);
	b64 = malloc((CHUNK / 3 + 1) * 4 + 1);
	if (buf == NULL || b64 == NULL) {
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
		goto out;
	}
	if ((uint64_t)st.st_size > offset && fseeko(f, (off_t)offset, SEEK_SET) == 0)
		got = fread(buf, 1, CHUNK, f);
	EVP_EncodeBlock((unsigned char *)b64, buf, (int)got);
	o = hv_rpc_ok();
	json_object_object_add(o, "size", json_object_new_uint64((uint64_t)st.st_size));
	json_object_object_add(o, "data", json_object_new_string(b64));
	hv_rpc_reply(c, o);
out:
	if (f != NULL)
		fclose(f);
	free(buf);
	free(b64);
}

static void manifest_path(const struct hv_config *cfg, const char *digest, char *out,
                          size_t len)
{
	snprintf(out, len, "%s/staging/%.16s.manifest.json", cfg->data_dir, digest);
}

/* A stage that failed on this host's own disk (full, read-only: staging
 * dir not created, extraction not written) is not the patch's fault, which
 * would quarantine it for every host: the line stops with the reason, the
 * host keeps its phase and lease, and the stage runs again once the
 * operator freed space and resumed. */
static int stage_stop_line(struct hv_maint_job *j, struct phase_ctx *p, const char *err)
{
	struct hv_node *n = hv_job_node(j);
	struct hv_cmd cmd = {.type = HV_CMD_PAUSE};
	int rc;

	snprintf(cmd.by, sizeof cmd.by, "hvpeerd@%.40s", n->cfg.name);
	snprintf(cmd.reason, sizeof cmd.reason,
	         "%.24s: patch %.24s: stage: %.140s (this host's disk: free "
	         "space, then resume)",
	         n->cfg.name, p->version, err);
	rc = hv_job_commit(j, &cmd, NULL);
	hv_warn("patch %s: stage: %s: the line stops", p->version, err);
	return rc == HV_OK ? HV_PAUSED : rc;
}

static int do_stage(struct hv_maint_job *j, struct phase_ctx *p)
{
	struct hv_node *n = hv_job_node(j);
	const struct hv_config *cfg = &n->cfg;
	char path[HV_PATH_MAX + 128], stage[HV_PATH_MAX + 64], mpath[HV_PATH_MAX + 64];
	char err[512];
	struct verified v;
	int rc;

	bundle_path(cfg, p->digest, path, sizeof path);
	staging_path(cfg, p->digest, stage, sizeof stage);
	manifest_path(cfg, p->digest, mpath, sizeof mpath);
	p->event = HV_EV_FAIL;
	if (access(path, R_OK) != 0 &&
	    (rc = fetch_bundle(j, p, path, p->source, err, sizeof err)) != HV_OK) {
		if (rc == HV_SHUTDOWN || ++n->patch_fetch_failures < 5)
			return HV_UNREACHABLE; /* tried again shortly */
		reasonf(p, "stage: bundle %s is not in %s and no peer gave it: %s",
		        p->bundle, path, err);
		return HV_OK;
	}
	n->patch_fetch_failures = 0;
	remove_tree(stage);
	if (hv_mkdir_p(stage, 0755) != 0) {
		snprintf(err, sizeof err, "cannot create %s: %s", stage, strerror(errno));
		return stage_stop_line(j, p, err);
	}
	/* This host's keys and class; equal or older installed versions are
	 * fine (the floor is the cluster's, checked at submit). */
	rc = verify_bundle(cfg, path, NULL, stage, mpath, &v, err, sizeof err);
	if (rc == HV_IO && strstr(err, "cannot run") != NULL)
		return HV_UNREACHABLE; /* not the bundle's fault: tried again */
	if (rc == HV_IO) {             /* this host's disk, not the bundle */
		remove_tree(stage);
		return stage_stop_line(j, p, err);
	}
	if (rc != HV_OK) {
		remove_tree(stage);
		reasonf(p, "stage: %s", err);
		return HV_OK;
	}
	if (strcmp(v.digest, p->digest) != 0) {
		remove_tree(stage);
		reasonf(p,
		        "stage: %s has digest %.16s..., the cluster committed %.16s...",
		        path, v.digest, p->digest);
		return HV_OK;
	}
	if (strcmp(v.version, p->version) != 0) {
		remove_tree(stage);
		reasonf(p, "stage: the bundle says version %s, the cluster committed %s",
		        v.version, p->version);
		return HV_OK;
	}
	p->event = HV_EV_OK;
	reasonf(p, "bundle verified (key %s, %u files)", v.key_id, v.n_files);
	return HV_OK;
}

static int do_apply(struct hv_maint_job *j, struct phase_ctx *p)
{
	struct hv_node *n = hv_job_node(j);
	char stage[HV_PATH_MAX + 64], err[512];

	staging_path(&n->cfg, p->digest, stage, sizeof stage);
	if (hv_job_fence(j) != HV_OK) /* the banks change: holder only */
		return HV_PAUSED;
	p->event = HV_EV_FAIL;
	if (n->bank->apply(n->bank, stage, p->version, err, sizeof err) != HV_OK ||
	    n->bank->set_next(n->bank, err, sizeof err) != HV_OK) {
		reasonf(p, "apply: %s", err);
		return HV_OK;
	}
	p->event = HV_EV_OK;
	reasonf(p, "version %s written to the other bank", p->version);
	return HV_OK;
}

static bool by_bmc(const struct hv_config *cfg)
{
	return strcmp(cfg->reboot, "bmc") == 0;
}

struct q_lead {
	bool asked, leader;
};

/* Is this node the leader? The first time it is, ask it to hand on. */
static void q_lead_fn(struct hv_node *n, void *arg)
{
	struct q_lead *q = arg;

	q->leader = hv_node_is_leader(n);
	if (q->leader && !q->asked) {
		q->asked = true;
		if (hv_node_transfer_leadership(n) != HV_OK)
			q->leader = false; /* nobody to hand it to: reboot anyway */
	}
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* The reboot phase (and the rollback's reboot): before the reboot, write a
 * marker with the boot id and reboot; after it (a new boot id), report the
 * version that booted. Returns HV_OK with p->event set, or HV_EXISTS while
 * the reboot is under way (nothing to commit). */
static int reboot_step(struct hv_maint_job *j, struct phase_ctx *p, bool rollback)
{
	struct hv_node *n = hv_job_node(j);
	const struct hv_config *cfg = &n->cfg;
	struct hv_bootbank_status st;
	char marker[HV_PATH_MAX + 32], boot_id[128], then[128] = "", err[512];
	unsigned long long rollout = 0, since = 0;
	int phase = -1;
	FILE *f;

	marker_path(cfg, marker, sizeof marker);
	if (read_boot_id(cfg, boot_id, sizeof boot_id) != 0) {
		p->event = HV_EV_FAIL;
		reasonf(p, "reboot: cannot read the boot id (%s)", cfg->boot_id_file);
		return HV_OK;
	}
	f = fopen(marker, "r");
	if (f != NULL) {
		if (fscanf(f, "%llu %d %llu %127s", &rollout, &phase, &since, then) !=
		        4 ||
		    phase != p->phase)
			then[0] = '\0'; /* another phase's (a crash before its removal) */
		fclose(f);
	}
	if (then[0] != '\0' && rollout == p->rollout && strcmp(then, boot_id) != 0) {
		/* We are past the reboot. */
		if (n->bank->status(n->bank, &st, err, sizeof err) != HV_OK) {
			p->event = HV_EV_FAIL;
			reasonf(p, "after the reboot: %s", err);
			return HV_OK;
		}
		snprintf(p->booted, sizeof p->booted, "%s", st.booted_version);
		if (strcmp(st.booted_version, p->version) == 0) {
			p->event = HV_EV_BOOTED_NEW;
			reasonf(p, "booted %s", st.booted_version);
		} else {
			p->event = HV_EV_BOOTED_OLD;
			reasonf(p, "booted %s, not %s%s", st.booted_version, p->version,
			        rollback
			            ? " (rolled back)"
			            : ": the new bank did not come up (rolled back)");
		}
		return HV_OK;
	}
	if (then[0] != '\0' && rollout == p->rollout) {
		/* Reboot issued in this boot and we still run. */
		if (hv_now_ms() / 1000 > since + cfg->reboot_timeout_s) {
			p->event = HV_EV_FAIL;
			if (by_bmc(cfg))
				reasonf(p,
				        "reboot: the power cycle through the BMC %s did "
				        "not reboot the host within %u s",
				        cfg->bmc_address, cfg->reboot_timeout_s);
			else
				reasonf(
				    p, "reboot: '%s' did not reboot the host within %u s",
				    cfg->reboot_command, cfg->reboot_timeout_s);
			return HV_OK;
		}
		return HV_EXISTS;
	}
	/* A power cycle may have done the reboot already: the banks know. */
	if (n->bank->status(n->bank, &st, err, sizeof err) == HV_OK &&
	    (rollback
	         ? !st.booted_is_trial && strcmp(st.booted_version, p->version) != 0
	         : st.booted_is_trial && strcmp(st.booted_version, p->version) == 0)) {
		snprintf(p->booted, sizeof p->booted, "%s", st.booted_version);
		p->event = rollback ? HV_EV_BOOTED_OLD : HV_EV_BOOTED_NEW;
		reasonf(p, "booted %s (after a power cycle)", st.booted_version);
		return HV_OK;
	}
	/* Leading, hand it on first: the cluster does not wait an election
	 * timeout for a leader, and one is there to watch this reboot. */
	{
		struct q_lead q = {false, false};
		for (int i = 0; i < 30; i++) {
			if (hv_job_query(j, q_lead_fn, &q) != HV_OK || !q.leader)
				break;
			nap_ms(100);
		}
	}
	/* Fenced, then marked, then rebooted: a crash in between re-issues. */
	if (hv_job_fence(j) != HV_OK)
		return HV_PAUSED;
	f = fopen(marker, "w");
	if (f == NULL ||
	    fprintf(f, "%llu %d %llu %s\n", (unsigned long long)p->rollout, p->phase,
	            (unsigned long long)(hv_now_ms() / 1000), boot_id) < 0 ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		if (f != NULL)
			fclose(f);
		p->event = HV_EV_FAIL;
		reasonf(p, "reboot: cannot write %s: %s", marker, strerror(errno));
		return HV_OK;
	}
	fclose(f);
	if (by_bmc(cfg)) {
		struct json_object *answer = NULL;
		hv_info("patch %s: power-cycling this host through its BMC %s",
		        p->version, cfg->bmc_address);
		if (hv_bmc_call(cfg, cfg->bmc, cfg->bmc_address, "cycle", &answer, err,
		                sizeof err) != HV_OK) {
			unlink(marker); /* no reboot under way */
			p->event = HV_EV_FAIL;
			reasonf(p, "reboot: power cycle through the BMC: %s", err);
			return HV_OK;
		}
		json_object_put(answer);
		return HV_EXISTS;
	}
	hv_info("patch %s: rebooting with '%s'", p->version, cfg->reboot_command);
	if (spawn_detached(cfg->reboot_command) != HV_OK) {
		p->event = HV_EV_FAIL;
		reasonf(p, "reboot: cannot run '%s'", cfg->reboot_command);
		return HV_OK;
	}
	return HV_EXISTS;
}

/* The BMC's sensors against their thresholds: HV_OK, or HV_IO with the
 * sensors out of range named in err ("CPU Temp 95 C (critical)"). A breach
 * must show in two readings 2 s apart: a BMC may still hold a reading from
 * before the power came back. */
static int check_sensors(const struct hv_config *cfg, char *err, size_t errlen)
{
	bool critical_only = strcmp(cfg->bmc_sensor_check, "critical") == 0;
	int rc = HV_OK;

	for (int attempt = 0; attempt < 2; attempt++) {
		struct json_object *answer = NULL, *list;
		size_t used = 0, bad = 0;

		if (attempt > 0)
			sleep(2);
		rc = hv_bmc_call(cfg, cfg->bmc, cfg->bmc_address, "sensors", &answer, err,
		                 errlen);
		if (rc != HV_OK)
			return rc;
		err[0] = '\0';
		if (json_object_object_get_ex(answer, "sensors", &list) &&
		    json_object_is_type(list, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(list); i++) {
				struct json_object *o =
				    json_object_array_get_idx(list, i);
				char name[64] = "", state[16] = "", unit[16] = "";
				char value[32] = "";
				jcopy(o, "name", name, sizeof name);
				jcopy(o, "state", state, sizeof state);
				jcopy(o, "unit", unit, sizeof unit);
				struct json_object *v = NULL;
				if (json_object_object_get_ex(o, "value", &v) &&
				    v != NULL)
					snprintf(value, sizeof value, "%s",
					         json_object_get_string(v));
				if (strcmp(state, "critical") != 0 &&
				    (critical_only || strcmp(state, "warning") != 0))
					continue;
				if (used < errlen)
					used += (size_t)snprintf(
					    err + used, errlen - used, "%s%s %s%s%s (%s)",
					    bad > 0 ? ", " : "", name, value,
					    unit[0] ? " " : "", unit, state);
				bad++;
			}
		}
		json_object_put(answer);
		if (bad == 0)
			return HV_OK;
		rc = HV_IO;
	}
	return rc;
}

static int do_validate(struct hv_maint_job *j, struct phase_ctx *p)
{
	struct hv_node *n = hv_job_node(j);
	const struct hv_config *cfg = &n->cfg;
	struct hv_bootbank_status st;
	char err[512], stage[HV_PATH_MAX + 64], hook[HV_PATH_MAX + 128];

	p->event = HV_EV_FAIL;
	if (n->bank->status(n->bank, &st, err, sizeof err) != HV_OK) {
		reasonf(p, "validate: %s", err);
		return HV_OK;
	}
	if (strcmp(st.booted_version, p->version) != 0) {
		reasonf(p, "validate: booted %s, not %s", st.booted_version, p->version);
		return HV_OK;
	}
	if (n->hyp->ping(cfg->libvirt_uri, err, sizeof err) != HV_OK) {
		reasonf(p, "validate: %s", err);
		return HV_OK;
	}
	if (strcmp(cfg->bmc, "none") != 0 && strcmp(cfg->bmc_sensor_check, "off") != 0) {
		int rc = check_sensors(cfg, err, sizeof err);
		if (rc == HV_IO) {
			reasonf(p, "validate: BMC sensors out of their thresholds: %s",
			        err);
			return HV_OK;
		}
		if (rc != HV_OK) {
			reasonf(p, "validate: cannot read the BMC's sensors: %s", err);
			return HV_OK;
		}
	}
	staging_path(cfg, p->digest, stage, sizeof stage);
	snprintf(hook, sizeof hook, "%s/hooks/validate", stage);
	{
		/* the bundle's validate hook, as its manifest (kept at stage) names it */
		char mpath[HV_PATH_MAX + 64], vh[HV_PATH_MAX] = "";
		struct json_object *m, *h;
		manifest_path(cfg, p->digest, mpath, sizeof mpath);
		m = json_object_from_file(mpath);
		if (m != NULL && json_object_object_get_ex(m, "hooks", &h))
			jcopy(h, "validate", vh, sizeof vh);
		json_object_put(m);
		if (vh[0] != '\0') {
			snprintf(hook, sizeof hook, "./%s", vh);
			if (run_hook("the bundle's validate hook", hook,
			             cfg->hook_timeout_s, stage, p, err,
			             sizeof err) != HV_OK) {
				reasonf(p, "validate: %s", err);
				return HV_OK;
			}
		}
	}
	if (cfg->health_hook[0] != '\0' &&
	    run_hook("health-hook", cfg->health_hook, cfg->hook_timeout_s, NULL, p, err,
	             sizeof err) != HV_OK) {
		reasonf(p, "validate: %s", err);
		return HV_OK;
	}
	p->event = HV_EV_OK;
	reasonf(p, "booted %s, libvirt answers, %shooks passed", st.booted_version,
	        strcmp(cfg->bmc, "none") != 0 && strcmp(cfg->bmc_sensor_check, "off") != 0
	            ? "sensors in range, "
	            : "");
	return HV_OK;
}

static int do_rollback(struct hv_maint_job *j, struct phase_ctx *p)
{
	struct hv_node *n = hv_job_node(j);
	struct hv_bootbank_status st;
	char err[512], marker[HV_PATH_MAX + 32];

	marker_path(&n->cfg, marker, sizeof marker);
	if (marker_phase(marker) == HV_PH_ROLLBACK) /* its reboot is under way or done */
		return reboot_step(j, p, true);
	if (hv_job_fence(j) != HV_OK)
		return HV_PAUSED;
	if (n->bank->status(n->bank, &st, err, sizeof err) != HV_OK ||
	    n->bank->rollback(n->bank, err, sizeof err) != HV_OK) {
		p->event = HV_EV_FAIL;
		reasonf(p, "rollback: %s", err);
		return HV_OK;
	}
	if (st.booted_is_trial)
		return reboot_step(j, p, true);
	p->event = HV_EV_OK;
	reasonf(p, "rolled back: the next boot starts %s", st.active_version);
	return HV_OK;
}

static void phase_job(struct hv_maint_job *j, void *arg)
{
	struct phase_ctx *p = arg;
	struct hv_node *n = hv_job_node(j);
	char err[512];
	int rc = HV_OK;

	hv_job_set_token(j, p->token);
	hv_job_set_phase(j, p->phase);
	p->event = -1;
	switch (p->phase) {
	case HV_PH_PRECHECK:
		rc = do_precheck(j, p);
		break;
	case HV_PH_ENTER_MAINT:
		rc = hv_maint_plan_out(j);
		break;
	case HV_PH_EVACUATE:
		rc = hv_maint_move_out(j);
		break;
	case HV_PH_STAGE:
		rc = do_stage(j, p);
		break;
	case HV_PH_APPLY:
		rc = do_apply(j, p);
		break;
	case HV_PH_REBOOT:
		rc = reboot_step(j, p, false);
		break;
	case HV_PH_VALIDATE:
		rc = do_validate(j, p);
		break;
	case HV_PH_EXIT_MAINT:
		if ((rc = hv_job_fence(j)) != HV_OK)
			break;
		if (n->bank->mark_good(n->bank, err, sizeof err) != HV_OK) {
			p->event = HV_EV_FAIL;
			reasonf(p, "mark good: %s", err);
		}
		break;
	case HV_PH_REBALANCE:
		rc = hv_maint_move_back(j, false);
		break;
	case HV_PH_ROLLBACK:
		rc = do_rollback(j, p);
		break;
	}
	if (p->phase == HV_PH_ENTER_MAINT || p->phase == HV_PH_EVACUATE ||
	    p->phase == HV_PH_REBALANCE) {
		/* maintenance steps report through the job's message */
		int res = hv_job_result(j, err, sizeof err);
		if (rc == HV_OK && res == HV_OK) {
			p->event = HV_EV_OK;
		} else if (!transient(rc) && !transient(res)) {
			p->event = HV_EV_FAIL;
			reasonf(p, "%s", err[0] ? err : hv_strerror(rc));
		}
		rc = HV_OK;
	} else if (p->phase == HV_PH_EXIT_MAINT && p->event < 0 && rc == HV_OK) {
		p->event = HV_EV_OK;
	}
	if (p->phase == HV_PH_REBALANCE && p->event == HV_EV_OK &&
	    (rc = end_hooks(j, p, err, sizeof err)) != HV_OK) {
		if (rc == HV_PAUSED) { /* fenced out: commit nothing */
			p->event = -1;
		} else {
			p->event = HV_EV_FAIL;
			reasonf(p, "%s", err);
			rc = HV_OK;
		}
	}
	if (rc == HV_OK && p->event >= 0) {
		struct hv_cmd cmd = {.type = HV_CMD_PATCH_STEP,
		                     .token = p->token,
		                     .id = p->rollout,
		                     .event = p->event};
		snprintf(cmd.name, sizeof cmd.name, "%s", n->cfg.name);
		snprintf(cmd.phase, sizeof cmd.phase, "%s", hv_phase_name(p->phase));
		snprintf(cmd.version, sizeof cmd.version, "%s", p->booted);
		snprintf(cmd.reason, sizeof cmd.reason, "%s", p->reason);
		rc = hv_job_commit(j, &cmd, NULL);
		if (rc == HV_OK) {
			char marker[HV_PATH_MAX + 32];
			if (p->event == HV_EV_BOOTED_NEW ||
			    p->event == HV_EV_BOOTED_OLD) {
				marker_path(&n->cfg, marker, sizeof marker);
				unlink(marker);
			}
			hv_job_done(j, "patch %s: %s: %s%s%s", p->version,
			            hv_phase_name(p->phase), hv_event_name(p->event),
			            p->reason[0] ? ": " : "", p->reason);
		} else {
			hv_job_fail(j, rc, "patch %s: committing %s of %s: %s",
			            p->version, hv_event_name(p->event),
			            hv_phase_name(p->phase), hv_strerror(rc));
		}
	} else if (rc == HV_EXISTS) {
		hv_job_done(j, "patch %s: %s: under way", p->version,
		            hv_phase_name(p->phase));
	} else {
		hv_job_fail(j, rc == HV_OK ? HV_PAUSED : rc,
		            "patch %s: %s stopped (%s); it resumes when the line moves",
		            p->version, hv_phase_name(p->phase),
		            hv_strerror(rc == HV_OK ? HV_PAUSED : rc));
	}
	free(p);
}

/* ---- the kick (loop) ------------------------------------------------------ */

static bool has_work(int phase)
{
	switch (phase) {
	case HV_PH_PRECHECK:
	case HV_PH_ENTER_MAINT:
	case HV_PH_EVACUATE:
	case HV_PH_STAGE:
	case HV_PH_APPLY:
	case HV_PH_REBOOT:
	case HV_PH_VALIDATE:
	case HV_PH_EXIT_MAINT:
	case HV_PH_REBALANCE:
	case HV_PH_ROLLBACK:
		return true;
	}
	return false;
}

void hv_patch_job_ended(struct hv_node *n)
{
	n->patch_retry_ms = hv_mono_ms() + HV_PATCH_RETRY_MS;
}

void hv_patch_kick(struct hv_node *n)
{
	const struct hv_state *s = &n->state;
	const struct hv_member *m;
	const struct hv_holder *h;
	struct phase_ctx *p;
	char err[256];
	uint64_t now = hv_mono_ms(); /* patch_retry_ms */

	if (n->stopping || n->maint != NULL || n->bank == NULL || n->hyp == NULL ||
	    s->rollout.id == 0)
		return;
	m = hv_state_member(&n->state, n->cfg.name);
	if (m == NULL || m->id != n->id || !has_work(m->cycle) || s->paused)
		return;
	/* the same phase again only after a pause (a job that moved nothing) */
	if (m->cycle == n->patch_last_phase && s->rollout.id == n->patch_last_rollout &&
	    now < n->patch_retry_ms)
		return;
	h = hv_state_holder(s, n->cfg.name);
	if (h == NULL)
		return; /* a leased phase without the lease: an operator broke it */
	if (n->cfg.test_hold_dir[0] != '\0') {
		char hold[HV_PATH_MAX + 32];
		snprintf(hold, sizeof hold, "%s/%s", n->cfg.test_hold_dir,
		         hv_phase_name(m->cycle));
		if (access(hold, F_OK) == 0)
			return; /* a test's breakpoint */
	}
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return;
	p->phase = m->cycle;
	p->rollout = s->rollout.id;
	p->token = h->token;
	snprintf(p->version, sizeof p->version, "%s", s->rollout.version);
	snprintf(p->digest, sizeof p->digest, "%s", s->rollout.digest);
	snprintf(p->bundle, sizeof p->bundle, "%s", s->rollout.bundle);
	snprintf(p->source, sizeof p->source, "%s", s->rollout.source);
	snprintf(p->host, sizeof p->host, "%s", n->cfg.name);
	n->patch_last_phase = m->cycle;
	n->patch_last_rollout = s->rollout.id;
	n->patch_retry_ms = now + HV_PATCH_RETRY_MS;
	if (hv_job_start(n, phase_job, p, err, sizeof err) != HV_OK) {
		hv_warn("patch %s: %s: %s", p->version, hv_phase_name(p->phase), err);
		free(p);
		return;
	}
	hv_debug("patch %s: %s: started", p->version, hv_phase_name(p->phase));
}

/* ---- notify-command ---------------------------------------------------------- */

struct hv_notify {
	struct phase_ctx p;
};

struct notify_work {
	uv_work_t req;
	struct hv_node *n;
	struct phase_ctx p;
	char cmd[HV_PATH_MAX];
	unsigned timeout_s;
	int rc;
	char err[512];
};

static void notify_next(struct hv_node *n);

static void notify_run(uv_work_t *req)
{
	struct notify_work *w = req->data;

	w->rc = run_hook("notify-command", w->cmd, w->timeout_s, NULL, &w->p, w->err,
	                 sizeof w->err);
}

static void notify_done(uv_work_t *req, int status)
{
	struct notify_work *w = req->data;
	struct hv_node *n = w->n;

	n->notify_busy = false;
	n->metrics.notify_runs++;
	if (status != 0 || w->rc != HV_OK) {
		n->metrics.notify_failures++;
		hv_warn("notify-command for %s -> %s: %s", w->p.notify_prev,
		        w->p.notify_phase, status != 0 ? "cancelled" : w->err);
	}
	free(w);
	if (!n->stopping)
		notify_next(n);
}

static void notify_next(struct hv_node *n)
{
	struct notify_work *w;

	if (n->notify_busy || n->notify_n == 0 || n->stopping)
		return;
	if ((w = calloc(1, sizeof *w)) == NULL)
		return;
	w->n = n;
	w->p = n->notify_q[0].p;
	memmove(&n->notify_q[0], &n->notify_q[1],
	        (n->notify_n - 1) * sizeof n->notify_q[0]);
	n->notify_n--;
	snprintf(w->cmd, sizeof w->cmd, "%s", n->cfg.notify_command);
	w->timeout_s = n->cfg.hook_timeout_s;
	w->req.data = w;
	n->notify_busy = true;
	if (uv_queue_work(n->loop, &w->req, notify_run, notify_done) != 0) {
		n->notify_busy = false;
		free(w);
	}
}

void hv_patch_notify(struct hv_node *n)
{
	const struct hv_state *s = &n->state;
	const struct hv_member *m;
	struct phase_ctx *p;

	if (n->cfg.notify_command[0] == '\0' || n->stopping)
		return;
	m = hv_state_member(&n->state, n->cfg.name);
	if (m == NULL || m->id != n->id || m->cycle == n->notify_phase)
		return;
	if (n->notify_q == NULL &&
	    (n->notify_q = calloc(HV_NOTIFY_QUEUE, sizeof *n->notify_q)) == NULL)
		return;
	if (n->notify_n == HV_NOTIFY_QUEUE) {
		n->metrics.notify_failures++;
		hv_warn("notify-command: %d notifications waiting; %s -> %s dropped",
		        HV_NOTIFY_QUEUE, hv_phase_name(n->notify_phase),
		        hv_phase_name(m->cycle));
	} else {
		p = &n->notify_q[n->notify_n++].p;
		memset(p, 0, sizeof *p);
		p->phase = m->cycle;
		p->rollout = s->rollout.id;
		snprintf(p->version, sizeof p->version, "%s", s->rollout.version);
		snprintf(p->bundle, sizeof p->bundle, "%s", s->rollout.bundle);
		snprintf(p->host, sizeof p->host, "%s", n->cfg.name);
		snprintf(p->reason, sizeof p->reason, "%s", m->cycle_error);
		snprintf(p->notify_phase, sizeof p->notify_phase, "%s",
		         hv_phase_name(m->cycle));
		snprintf(p->notify_prev, sizeof p->notify_prev, "%s",
		         hv_phase_name(n->notify_phase));
	}
	n->notify_phase = m->cycle;
	notify_next(n);
}

/* ---- operations ----------------------------------------------------------- */

struct submit_work {
	uv_work_t req;
	struct hv_node *n;
	struct hv_rpc_conn *conn;
	char path[HV_PATH_MAX];
	int rc;
	char err[1024];
	char floor[HV_VERSION_MAX + 1]; /* the state's, read on the loop */
	struct verified m;
	struct hv_cmd cmd;
};

static void submit_answered(struct hv_node *n, void *data, int rc, uint64_t index,
                            uint64_t token)
{
	struct submit_work *w = data;
	const struct hv_state *s = &n->state;
	struct json_object *o;

	(void)token;
	if (rc == HV_OK) {
		char msg[256];
		o = hv_rpc_ok();
		snprintf(msg, sizeof msg,
		         "patch %.63s %.63s submitted (log index %llu): the hosts patch "
		         "themselves one at a time, in name order; 'hvpeer patch status' "
		         "follows it",
		         w->m.name, w->m.version, (unsigned long long)index);
		json_object_object_add(o, "message", json_object_new_string(msg));
		json_object_object_add(o, "index", json_object_new_uint64(index));
		json_object_object_add(o, "digest", json_object_new_string(w->m.digest));
		json_object_object_add(o, "version",
		                       json_object_new_string(w->m.version));
	} else if (rc == HV_ROLLBACK) {
		o = hv_rpc_error(rc,
		                 "patch %s refused: the cluster has already committed "
		                 "version %s (anti-rollback); submit a newer version",
		                 w->m.version, s->floor_version);
	} else if (rc == HV_QUARANTINED) {
		o = hv_rpc_error(rc,
		                 "patch %s (digest %.16s...) is quarantined: it failed "
		                 "before; build a fixed bundle with a new version",
		                 w->m.version, w->m.digest);
	} else if (rc == HV_EXISTS) {
		o = hv_rpc_error(
		    rc,
		    "a rollout is in progress (patch %s %s): wait for it, or "
		    "'hvpeer patch abort'",
		    s->rollout.bundle, s->rollout.version);
	} else {
		o = hv_rpc_error(rc, "patch submit refused: %s", hv_strerror(rc));
	}
	hv_rpc_reply(w->conn, o);
	free(w);
}

/* Verify the bundle the operator names, then keep a copy in bundle-dir. */
static void submit_verify(uv_work_t *req)
{
	struct submit_work *w = req->data;
	const struct hv_config *cfg = &w->n->cfg;
	char dst[HV_PATH_MAX + 128], tmp[HV_PATH_MAX + 160], dir[HV_PATH_MAX + 16];
	FILE *in = NULL, *out = NULL;
	char buf[65536];
	size_t r;

	/* Copy first, then check the copy: what is checked is what is kept. */
	bundle_store(cfg, dir, sizeof dir);
	hv_mkdir_p(dir, 0755);
	snprintf(tmp, sizeof tmp, "%s/submit.%d.part", dir, (int)getpid());
	in = fopen(w->path, "rb");
	out = in != NULL ? fopen(tmp, "wb") : NULL;
	w->rc = HV_IO;
	if (in == NULL || out == NULL) {
		snprintf(w->err, sizeof w->err, "cannot copy %s to %s: %s", w->path, tmp,
		         strerror(errno));
		goto out;
	}
	while ((r = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, r, out) != r)
			break;
	if (ferror(in) || fflush(out) != 0 || fsync(fileno(out)) != 0) {
		snprintf(w->err, sizeof w->err, "cannot copy %s to %s: %s", w->path, tmp,
		         strerror(errno));
		goto out;
	}
	fclose(out);
	out = NULL;
	/* This host's class too: a bundle for another class would fail on
	 * every host of this one, so it is refused here already. */
	w->rc =
	    verify_bundle(cfg, tmp, w->floor, NULL, NULL, &w->m, w->err, sizeof w->err);
	if (w->rc != HV_OK) {
		/* name the operator's file, not the copy */
		char msg[sizeof w->err], *at;
		while ((at = strstr(w->err, tmp)) != NULL) {
			snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - w->err), w->err,
			         w->path, at + strlen(tmp));
			memcpy(w->err, msg, sizeof msg);
		}
		goto out;
	}
	bundle_path(cfg, w->m.digest, dst, sizeof dst);
	if (rename(tmp, dst) != 0) {
		snprintf(w->err, sizeof w->err, "cannot rename %s: %s", tmp,
		         strerror(errno));
		w->rc = HV_IO;
	}
out:
	if (in != NULL)
		fclose(in);
	if (out != NULL)
		fclose(out);
	if (w->rc != HV_OK)
		unlink(tmp);
}

static void submit_verified(uv_work_t *req, int status)
{
	struct submit_work *w = req->data;
	struct hv_node *n = w->n;
	int rc;

	if (status != 0 || n->stopping) {
		hv_rpc_reply(w->conn, hv_rpc_error(HV_SHUTDOWN, "node is shutting down"));
		free(w);
		return;
	}
	if (w->rc != HV_OK) {
		hv_rpc_reply(w->conn, hv_rpc_error(w->rc, "%s", w->err));
		free(w);
		return;
	}
	w->cmd.type = HV_CMD_PATCH_SUBMIT;
	snprintf(w->cmd.by, sizeof w->cmd.by, "%s", n->cfg.name);
	snprintf(w->cmd.version, sizeof w->cmd.version, "%s", w->m.version);
	snprintf(w->cmd.bundle, sizeof w->cmd.bundle, "%s", w->m.name);
	snprintf(w->cmd.digest, sizeof w->cmd.digest, "%s", w->m.digest);
	snprintf(w->cmd.key_id, sizeof w->cmd.key_id, "%s", w->m.key_id);
	snprintf(w->cmd.source, sizeof w->cmd.source, "%s", n->cfg.name);
	rc = hv_node_commit(n, &w->cmd, submit_answered, w);
	if (rc != HV_OK) {
		hv_rpc_reply(w->conn,
		             hv_rpc_error(rc, "patch submit: %s%s", hv_strerror(rc),
		                          rc == HV_NOQUORUM
		                              ? " (no leader: nothing changed)"
		                              : ""));
		free(w);
	}
}

struct abort_ctx {
	struct hv_rpc_conn *conn;
	struct hv_cmd cmd;
};

static void abort_answered(struct hv_node *n, void *data, int rc, uint64_t index,
                           uint64_t token)
{
	struct abort_ctx *a = data;
	struct json_object *o;

	(void)token;
	(void)index;
	if (rc == HV_OK) {
		o = hv_rpc_ok();
		json_object_object_add(
		    o, "message",
		    json_object_new_string(
		        "aborted: no further host starts; a host "
		        "mid-cycle finishes it ('hvpeer pause' stops it "
		        "at the next safe point)"));
	} else if (rc == HV_INVAL && n->state.rollout.id != 0 &&
	           !n->state.rollout.active) {
		o = hv_rpc_error(rc, "no rollout in progress");
	} else {
		o = hv_rpc_error(rc, "patch abort refused: %s", hv_strerror(rc));
	}
	hv_rpc_reply(a->conn, o);
	free(a);
}

void hv_patch_op(struct hv_node *n, struct hv_rpc_conn *c, const char *op,
                 struct json_object *req)
{
	if (!strcmp(op, "patch-submit")) {
		const char *path = hv_json_str(req, "path");
		struct submit_work *w;
		if (path == NULL || path[0] != '/' || strlen(path) >= HV_PATH_MAX) {
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL,
			                    "patch submit needs the bundle's absolute "
			                    "path"));
			return;
		}
		w = calloc(1, sizeof *w);
		if (w == NULL) {
			hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
			return;
		}
		w->n = n;
		w->conn = c;
		w->req.data = w;
		snprintf(w->path, sizeof w->path, "%s", path);
		snprintf(w->floor, sizeof w->floor, "%s", n->state.floor_version);
		if (uv_queue_work(n->loop, &w->req, submit_verify, submit_verified) !=
		    0) {
			hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "cannot queue the work"));
			free(w);
		}
	} else if (!strcmp(op, "patch-abort")) {
		const char *reason = hv_json_str(req, "reason");
		struct abort_ctx *a;
		int rc;
		if (reason == NULL || reason[0] == '\0') {
			hv_rpc_reply(
			    c, hv_rpc_error(HV_INVAL, "patch abort needs --reason TEXT"));
			return;
		}
		a = calloc(1, sizeof *a);
		if (a == NULL) {
			hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
			return;
		}
		a->conn = c;
		a->cmd.type = HV_CMD_PATCH_ABORT;
		snprintf(a->cmd.by, sizeof a->cmd.by, "%s", n->cfg.name);
		if (hv_text_copy(a->cmd.reason, sizeof a->cmd.reason, reason) != HV_OK) {
			hv_rpc_reply(c, hv_rpc_error(HV_INVAL,
			                             "reason: at most %d printable "
			                             "characters",
			                             HV_REASON_MAX));
			free(a);
			return;
		}
		rc = hv_node_commit(n, &a->cmd, abort_answered, a);
		if (rc != HV_OK) {
			hv_rpc_reply(
			    c, hv_rpc_error(rc, "patch abort: %s", hv_strerror(rc)));
			free(a);
		}
	} else {
		hv_rpc_reply(c, hv_rpc_error(HV_INVAL, "unknown operation '%s'", op));
	}
}

/* ---- status --------------------------------------------------------------- */

struct json_object *hv_patch_status_json(const struct hv_state *s)
{
	const struct hv_rollout *r = &s->rollout;
	struct json_object *o = json_object_new_object();
	struct json_object *hosts = json_object_new_array();
	struct json_object *q = json_object_new_array();

	json_object_object_add(o, "id", json_object_new_uint64(r->id));
	json_object_object_add(o, "active", json_object_new_boolean(r->active));
	json_object_object_add(o, "aborted", json_object_new_boolean(r->aborted));
	json_object_object_add(o, "bundle", json_object_new_string(r->bundle));
	json_object_object_add(o, "version", json_object_new_string(r->version));
	json_object_object_add(o, "digest", json_object_new_string(r->digest));
	json_object_object_add(o, "key_id", json_object_new_string(r->key_id));
	json_object_object_add(o, "by", json_object_new_string(r->by));
	json_object_object_add(o, "submitted_ms",
	                       json_object_new_uint64(r->submitted_ms));
	json_object_object_add(o, "finished_ms", json_object_new_uint64(r->finished_ms));
	json_object_object_add(o, "done", json_object_new_uint64(r->done));
	json_object_object_add(o, "failed", json_object_new_uint64(r->failed));
	json_object_object_add(o, "floor_version",
	                       json_object_new_string(s->floor_version));
	json_object_object_add(o, "canary", json_object_new_string(r->canary));
	json_object_object_add(o, "soak_until_ms",
	                       json_object_new_uint64(r->soak_until_ms));
	json_object_object_add(o, "gate", json_object_new_string(r->gate));
	json_object_object_add(o, "downtime_ms", json_object_new_uint64(r->downtime_ms));
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		struct json_object *h, *ph;
		if (m->removed)
			continue;
		h = json_object_new_object();
		ph = json_object_new_object();
		json_object_object_add(h, "name", json_object_new_string(m->name));
		json_object_object_add(h, "phase",
		                       json_object_new_string(hv_phase_name(m->cycle)));
		json_object_object_add(h, "version", json_object_new_string(m->version));
		json_object_object_add(h, "since_ms",
		                       json_object_new_uint64(m->cycle_since_ms));
		json_object_object_add(h, "start_ms",
		                       json_object_new_uint64(m->cycle_start_ms));
		json_object_object_add(h, "end_ms",
		                       json_object_new_uint64(m->cycle_end_ms));
		json_object_object_add(h, "error",
		                       json_object_new_string(m->cycle_error));
		json_object_object_add(h, "watchdog_cycles",
		                       json_object_new_uint64(m->wd_cycles));
		json_object_object_add(h, "retries", json_object_new_uint64(m->retries));
		for (int k = 0; k < HV__PH_N; k++)
			if (m->phase_ms[k] != 0)
				json_object_object_add(
				    ph, hv_phase_name(k),
				    json_object_new_uint64(m->phase_ms[k]));
		json_object_object_add(h, "phase_ms", ph);
		json_object_array_add(hosts, h);
	}
	json_object_object_add(o, "hosts", hosts);
	for (unsigned i = 0; i < s->n_quarantine; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "digest",
		                       json_object_new_string(s->quarantine[i].digest));
		json_object_object_add(e, "version",
		                       json_object_new_string(s->quarantine[i].version));
		json_object_object_add(e, "reason",
		                       json_object_new_string(s->quarantine[i].reason));
		json_object_array_add(q, e);
	}
	json_object_object_add(o, "quarantine", q);
	return o;
}
