/*
 * A deterministic simulation of the whole coordinator: every host's state
 * machine (consensus/: state, rollout, policy, codec) on libraft's in-memory
 * fixture, the patch cycle's table (patchfsm/cycle.c), the evacuation and
 * return plans (migrate/plan.c, placement.c), a model of each host's driver
 * (node/patch.c and node/maint.c: the same commands in the same order, the
 * same fencing before each side effect), fake hypervisors, fake boot banks
 * and a fake operator who follows docs/operations.md section 5.
 *
 * One seed, one world: a PRNG seeded with it picks the cluster (3-5 hosts,
 * their guests, max-concurrent 1 or 2), the rollout policies (a canary,
 * "auto" or named, and its soak; max-retries and retry-delay;
 * max-failed-hosts 0 or 1; the quorum guard with five hosts; a daily window
 * that opens a few minutes into the run; the leader's gate, patchfsm/gate.c,
 * decides on the virtual clock) and, during a bounded fault phase, injects
 * partitions, daemon crashes, process pauses (a frozen hvpeerd whose links
 * are cut and whose job resumes with its memory when it thaws), message
 * loss (single links cut for a moment), operator pauses, failed live
 * migrations, failed pre-checks, reboots that do not happen and boots that
 * fall back to the old bank. Then every fault heals and the operator brings
 * the line back (resume, maintenance exit of a failed host, a fixed bundle
 * when a patch was quarantined) until every host runs the target version.
 *
 * Checked after every fixture step (a hook): at most max_concurrent hosts in
 * maintenance on every replica; lease grants' tokens strictly increase, and
 * every replica applies the same thing at the same index; no side effect
 * (migration, boot bank write, reboot, mark good) is done with a token that
 * is not the host's current grant in the committed state; every guest runs
 * on exactly one host (a reboot with guests on it loses them). At every
 * grant, the policies (an oracle of the sim's own, not gate.c's code): not
 * before the window opens; nobody but the canary before the canary's cycle
 * is done and its soak over; a pre-check retried no sooner than retry-delay
 * after it failed and at most max-retries times. At every host failure:
 * past max-failed-hosts the line stops (paused, or the patch quarantined).
 * At the end: every host runs the target version, marked good, out of
 * maintenance, no lease held, nothing paused, every guest running; no host
 * booted into a version or finished its cycle for it more than once.
 *
 * A job (one phase's work) runs synchronously: while it waits for a commit
 * or a fence, the fixture steps (faults and checks go on), but other hosts'
 * drivers wait. A fence and the side effect it guards happen with no step in
 * between, as if the side effect were instantaneous.
 *
 * A side effect while the committed state is paused breaks the fencing
 * invariant too (the fence checks the pause). Every loop that steps the
 * fixture stops on a violation, the step budget, the time budget, or 2000
 * steps at one virtual instant (a livelock): a bad seed fails, never hangs.
 *
 *   tests/sim/test_world                 seeds 1..10000 (make check)
 *   tests/sim/test_world --seeds 1-200   a range (HV_SIM_SEEDS=1-200, or N)
 *   tests/sim/test_world --seed N -v     one seed with a trace: a failure
 *                                        prints this command
 *   HV_SIM_SEED=N tests/sim/test_world   the same
 *   tests/sim/test_world --inject-bug    seeds 1-200 with a driver that
 *                                        skips its fence: exit 0 only when
 *                                        the fencing invariant caught it
 *                                        (tests/sim/world-inject.sh)
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raft.h>
#include <raft/fixture.h>

#include "../../consensus/codec.h"
#include "../../consensus/fsm.h"
#include "../../consensus/state.h"
#include "../../lib/err.h"
#include "../../migrate/placement.h"
#include "../../migrate/plan.h"
#include "../../patchfsm/cycle.h"
#include "../../patchfsm/gate.h"

#define MAX_HOSTS 5
#define MAX_VMS 16
#define BASE_MS 1700000000000ull
#define REPORT_MS 5000ull /* report-interval */
#define STALE_MS (3 * REPORT_MS + 2000)
#define PRE_STALE_MS (3 * REPORT_MS + 5000)
#define RETRY_MS 2000ull /* HV_PATCH_RETRY_MS */
#define REBOOT_TIMEOUT_MS 20000ull
#define FAULT_MS 60000ull  /* the fault phase, virtual time */
#define MAX_STEPS 400000ul /* per seed */
#define MAX_TIME_MS 1500000ull
#define MAX_SAME_TIME_STEPS 2000ul /* steps at one virtual instant */
#define INJECT_SEEDS 200ull        /* --inject-bug's default range: 1-200 */
#define TICK_MS 200ull             /* node/node.c TICK_MS: the policy tick */
#define BOOT_TIMEOUT_MS 25000ull   /* boot-timeout: the leader's watchdog */
#define WATCHDOG_CYCLES 2u         /* watchdog-cycles */
#define HANG_CLEARS 700u           /* per mille: a power cycle ends a hang */

/* ---- the world ------------------------------------------------------------ */

struct vm {
	char name[16];
	uint32_t mem;
	unsigned vcpus;
};

struct job;
struct req;

/* A tick of the leader's (every TICK_MS) with one command in flight, given
 * up after 3 s (node/policy.c gate_busy, node/watchdog.c wd_busy). */
struct ticker {
	struct req *req;
	uint64_t until, next;
};

struct host {
	char name[16];
	/* the machine */
	bool down;        /* its hvpeerd is not running (crash or reboot) */
	uint64_t up_at;   /* when it comes back */
	bool rebooting;   /* down because of a reboot: boots on up_at */
	bool hung;        /* a reboot that does not come back by itself */
	bool bmc;         /* it has one: the leader's watchdog can power-cycle it */
	bool frozen;      /* SIGSTOPped */
	uint64_t thaw_at; /* when it resumes */
	uint64_t frozen_at;
	uint32_t mem_cap;
	/* boot banks (persistent) */
	char active[HV_VERSION_MAX + 1]; /* marked good */
	char trial[HV_VERSION_MAX + 1];  /* written by apply */
	bool trial_next;                 /* the next boot tries it */
	char booted[HV_VERSION_MAX + 1]; /* what runs */
	bool booted_trial;               /* booted the trial, not marked good yet */
	unsigned boot_id;
	/* the reboot marker (a file: persistent) */
	bool mk;
	uint64_t mk_rollout, mk_since;
	int mk_phase;
	unsigned mk_boot;
	bool reboot_lost; /* the reboot command did nothing */
	/* hvpeerd (volatile: gone with a crash) */
	unsigned gen;
	uint64_t next_report;
	int last_phase;
	uint64_t last_rollout, retry_at;
	struct job *job; /* running now (on the world's stack) */
};

struct world {
	struct raft_fixture f;
	unsigned n;
	struct hv_state *st[MAX_HOSTS];
	struct hv_fsm fsm[MAX_HOSTS];
	struct host h[MAX_HOSTS];
	unsigned n_vms;
	struct vm vms[MAX_VMS];
	bool runs[MAX_HOSTS][MAX_VMS]; /* the hypervisors' truth */

	uint64_t seed, rng;
	bool verbose, inject;
	unsigned max_concurrent;
	unsigned version; /* the target is 1.<version> */
	char target[HV_VERSION_MAX + 1];
	bool submitted;

	/* faults */
	bool faults;        /* in the fault phase */
	int grp[MAX_HOSTS]; /* partition group */
	uint64_t heal_at;   /* partition ends */
	bool loss[MAX_HOSTS][MAX_HOSTS];
	uint64_t loss_until;
	uint64_t op_pause_until;
	unsigned p_migfail, p_rebootfail, p_bootold, p_precheckfail,
	    p_hang; /* per mille */

	/* checks */
	uint64_t *digest; /* per index: what was applied there (0: nothing) */
	size_t n_digest;
	uint64_t max_grant;
	unsigned long steps;
	unsigned long effects, stale_effects;
	unsigned done_for[MAX_HOSTS][64]; /* cycles finished per version */
	unsigned boots_for[MAX_HOSTS][64];
	char violation[512];
	unsigned long n_commits, n_faults;
	uint64_t op_next;
	/* the leader's policy tick and its watchdog (node/watchdog.c) */
	struct ticker gate, wd;
	unsigned wd_host;
	int wd_event;
	uint64_t wd_token;
	bool wd_acted;
	unsigned long n_hangs, n_power_cycles, n_gave_up, n_breaks;
	bool impatient; /* the operator breaks the lease of a frozen holder */
	/* the rollout policies the seed picked (setup) */
	char canary[16]; /* "", "auto" or a host's name */
	uint64_t soak_ms, retry_delay_ms;
	unsigned max_retries, max_failed;
	bool guard;
	uint64_t window_opens; /* virtual ms a "daily" window opens at; 0: none */
	/* what the policies' invariants know of the rollout ro_id */
	uint64_t ro_id;
	uint64_t canary_done_ms; /* its canary's cycle ended done (0: not yet) */
	uint64_t precheck_failed_ms[MAX_HOSTS];
	int cycle_seen[MAX_HOSTS];
	unsigned failures; /* its hosts that failed */
	unsigned long n_gated_grants, n_retries, n_tolerated, n_soaked;
	/* virtual time must move on */
	uint64_t last_time;
	unsigned long same_time_steps;
};

static void trace(struct world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static uint64_t now_ms(struct world *w)
{
	return BASE_MS + raft_fixture_time(&w->f);
}

static void trace(struct world *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->verbose)
		return;
	printf("# %8llu ms  ", (unsigned long long)raft_fixture_time(&w->f));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

__attribute__((format(printf, 2, 3))) static void violation(struct world *w,
                                                            const char *fmt, ...)
{
	va_list ap;

	if (w->violation[0] != '\0')
		return; /* keep the first */
	va_start(ap, fmt);
	vsnprintf(w->violation, sizeof w->violation, fmt, ap);
	va_end(ap);
	trace(w, "VIOLATION: %s", w->violation);
}

static uint64_t rnd(struct world *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned below(struct world *w, unsigned n)
{
	return (unsigned)(rnd(w) % n);
}

static bool chance(struct world *w, unsigned per_mille)
{
	return below(w, 1000) < per_mille;
}

static struct raft *R(struct world *w, unsigned i)
{
	return raft_fixture_get(&w->f, i);
}

static unsigned host_of(struct world *w, const char *name)
{
	for (unsigned i = 0; i < w->n; i++)
		if (strcmp(w->h[i].name, name) == 0)
			return i;
	return MAX_HOSTS;
}

static unsigned vm_of(struct world *w, const char *name)
{
	for (unsigned g = 0; g < w->n_vms; g++)
		if (strcmp(w->vms[g].name, name) == 0)
			return g;
	return MAX_VMS;
}

static unsigned version_no(const char *v)
{
	unsigned n = 0;

	if (sscanf(v, "1.%u", &n) != 1 || n >= 64)
		return 0;
	return n;
}

/* The committed state as far as anyone applied it: every replica applies
 * the same entries in the same order, so the most advanced one is the
 * truth about what is committed. */
static const struct hv_state *truth(struct world *w)
{
	const struct hv_state *best = w->st[0];

	for (unsigned i = 1; i < w->n; i++)
		if (w->st[i]->last_index > best->last_index)
			best = w->st[i];
	return best;
}

/* ---- libraft 0.22.1's reads of memory it did not set ------------------------ */

/*
 * Two places in libraft 0.22.1 read memory whose value depends on where
 * things happen to be in memory, so one seed took another path from run to
 * run (address randomisation), or alone and within a range (what ran
 * before). This wrapper of raft_step, which libraft's own calls reach through
 * its PLT (the symbol is exported: tests_sim_test_world_LDFLAGS), takes both
 * out:
 *  - an AppendEntries of a stale term is rejected without setting the
 *    reply's last_log_index (src/recv_append_entries.c, "goto reply"), and a
 *    leader back in that term reads it: the stack's leftovers. Upstream sets
 *    it to 0 (cowsql/raft 9d911c1d, "Fix use of uninitialized memory in
 *    outgoing message of type 'append entries result'"); so does this.
 *  - a RequestVote result that reaches a server no longer a candidate reads
 *    candidate_state.in_pre_vote (src/recv_request_vote_result.c), which
 *    then overlaps follower_state.current_leader.address: a byte of a heap
 *    pointer decides whether the server takes the result's term. Such a
 *    stale result is dropped here, as the network may drop any message.
 */
int raft_step(struct raft *r, struct raft_event *event, struct raft_update *update);

int raft_step(struct raft *r, struct raft_event *event, struct raft_update *update)
{
	static int (*real)(struct raft *, struct raft_event *, struct raft_update *);
	const struct raft_message *in = NULL;
	raft_term term = r->current_term;
	int rv;

	if (real == NULL) {
		*(void **)&real = dlsym(RTLD_NEXT, "raft_step");
		if (real == NULL)
			abort();
	}
	if (event->type == RAFT_RECEIVE && event->receive.message != NULL &&
	    event->receive.message->type == RAFT_REQUEST_VOTE_RESULT &&
	    r->state != RAFT_CANDIDATE) {
		memset(update, 0, sizeof *update);
		return 0;
	}
	if (event->type == RAFT_RECEIVE && event->receive.message != NULL &&
	    event->receive.message->type == RAFT_APPEND_ENTRIES)
		in = event->receive.message;
	/* the message is the caller's: read the term before the step */
	{
		raft_term args_term = in != NULL ? in->append_entries.term : 0;
		raft_id from = in != NULL ? in->server_id : 0;
		rv = real(r, event, update);
		if (rv != 0 || in == NULL || args_term >= term ||
		    !(update->flags & RAFT_UPDATE_MESSAGES))
			return rv;
		for (unsigned i = 0; i < update->messages.n; i++) {
			struct raft_message *m = &update->messages.batch[i];
			if (m->type == RAFT_APPEND_ENTRIES_RESULT && m->server_id == from)
				m->append_entries_result.last_log_index = 0;
		}
	}
	return rv;
}

/* ---- invariants ----------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t digest_cmd(const struct hv_cmd *c, int rc)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, &rc, sizeof rc);

	if (c != NULL) {
		h = fnv(h, &c->type, sizeof c->type);
		h = fnv(h, &c->time_ms, sizeof c->time_ms);
		h = fnv(h, &c->token, sizeof c->token);
		h = fnv(h, c->name, strlen(c->name));
		h = fnv(h, c->phase, strlen(c->phase));
		h = fnv(h, &c->event, sizeof c->event);
	}
	return h | 1;
}

/* A grant to name, just applied in s: what the policies allow (an oracle of
 * the sim's own, not patchfsm/gate.c's code): no host before the window
 * opens; no host but the canary before the canary's cycle is done and its
 * soak over; a pre-check retried no sooner than retry-delay after it
 * failed, and no more than max-retries times. */
static void check_grant(struct world *w, const struct hv_state *s, const char *name)
{
	const struct hv_member *m = hv_state_member((struct hv_state *)s, name);
	uint64_t t = now_ms(w);
	unsigned i = host_of(w, name);

	if (!s->rollout.active || m == NULL || i == MAX_HOSTS)
		return;
	if (w->window_opens != 0 && t < w->window_opens)
		violation(w, "grant to %s %llu ms before the window opens", name,
		          (unsigned long long)(w->window_opens - t));
	if (s->rollout.canary[0] != '\0' && strcmp(name, s->rollout.canary) != 0 &&
	    (w->canary_done_ms == 0 || t < w->canary_done_ms + w->soak_ms))
		violation(w, "grant to %s before the canary %s is done and soaked (%s)",
		          name, s->rollout.canary,
		          w->canary_done_ms == 0 ? "not done" : "soaking");
	if (m->retries > w->max_retries)
		violation(w, "%s: retry %u of max-retries %u", name, m->retries,
		          w->max_retries);
	if (m->retries > 0 && t < w->precheck_failed_ms[i] + w->retry_delay_ms)
		violation(
		    w, "%s retried %llu ms after its pre-check failed, retry-delay %llu",
		    name, (unsigned long long)(t - w->precheck_failed_ms[i]),
		    (unsigned long long)w->retry_delay_ms);
	if (s->policy.window[0] != '\0' || s->policy.quorum_guard || m->retries > 0 ||
	    (s->rollout.canary[0] != '\0' && strcmp(name, s->rollout.canary) != 0))
		w->n_gated_grants++;
	w->n_retries += m->retries > 0;
}

/* After every command applied (its first replica: they all apply the same),
 * what the policies track: the rollout's canary done, pre-checks failed,
 * hosts failed. A failure past max-failed-hosts must stop the line (pause,
 * or a quarantined patch), whatever path it took (a step, a lease break). */
static void track_policies(struct world *w, const struct hv_state *s,
                           const struct hv_cmd *cmd)
{
	uint64_t t = cmd->time_ms; /* when it was proposed: the state's clock */

	if (s->rollout.id != w->ro_id) {
		w->ro_id = s->rollout.id;
		w->canary_done_ms = 0;
		w->failures = 0;
		memset(w->precheck_failed_ms, 0, sizeof w->precheck_failed_ms);
	}
	if (cmd->type == HV_CMD_PATCH_STEP && cmd->event == HV_EV_FAIL &&
	    strcmp(cmd->phase, hv_phase_name(HV_PH_PRECHECK)) == 0 &&
	    host_of(w, cmd->name) < MAX_HOSTS)
		w->precheck_failed_ms[host_of(w, cmd->name)] = t;
	for (unsigned i = 0; i < w->n; i++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, w->h[i].name);
		int c = m != NULL ? m->cycle : -1;
		if (c == w->cycle_seen[i])
			continue;
		w->cycle_seen[i] = c;
		if (c == HV_PH_DONE && strcmp(w->h[i].name, s->rollout.canary) == 0 &&
		    w->canary_done_ms == 0) {
			w->canary_done_ms = t;
			w->n_soaked += w->soak_ms != 0;
		}
		if (c != HV_PH_FAILED || s->rollout.id == 0)
			continue;
		if (++w->failures > w->max_failed && !s->paused &&
		    !hv_state_quarantined(s, s->rollout.digest))
			violation(w,
			          "%s failed, %u failures of max-failed-hosts %u, and "
			          "the line goes on",
			          w->h[i].name, w->failures, w->max_failed);
		else if (w->failures <= w->max_failed && !s->paused)
			w->n_tolerated++;
	}
}

static void on_applied(struct hv_fsm *f, uint64_t index, const struct hv_cmd *cmd, int rc)
{
	struct world *w = f->data;
	unsigned i = (unsigned)(f - w->fsm);
	uint64_t d = digest_cmd(cmd, rc);
	bool first;

	if (index >= w->n_digest) {
		size_t n = w->n_digest ? w->n_digest : 1024;
		while (n <= index)
			n *= 2;
		uint64_t *p = realloc(w->digest, n * sizeof *p);
		if (p == NULL)
			abort();
		memset(p + w->n_digest, 0, (n - w->n_digest) * sizeof *p);
		w->digest = p;
		w->n_digest = n;
	}
	first = w->digest[index] == 0;
	if (first)
		w->digest[index] = d;
	else if (w->digest[index] != d)
		violation(w, "index %llu: %s applied %s, another server something else",
		          (unsigned long long)index, w->h[i].name,
		          cmd ? hv_cmd_name(cmd->type) : "garbage");
	if (!first || rc != HV_OK || cmd == NULL)
		return;
	track_policies(w, f->state, cmd);
	/* A new grant has the entry's index as its token. */
	for (unsigned k = 0; k < f->state->n_holders; k++)
		if (f->state->holders[k].token == index) {
			if (index <= w->max_grant)
				violation(
				    w, "grant to %s with token %llu, not above %llu",
				    f->state->holders[k].name, (unsigned long long)index,
				    (unsigned long long)w->max_grant);
			w->max_grant = index;
			trace(w, "lease granted to %s, token %llu (%s)",
			      f->state->holders[k].name, (unsigned long long)index,
			      hv_cmd_name(cmd->type));
			check_grant(w, f->state, f->state->holders[k].name);
		}
	if (cmd->type == HV_CMD_PATCH_STEP) {
		const struct hv_member *m = hv_state_member(f->state, cmd->name);
		trace(w, "%s: %s --%s--> %s %s", cmd->name, cmd->phase,
		      hv_event_name(cmd->event), m ? hv_phase_name(m->cycle) : "?",
		      cmd->reason);
		if (m != NULL && m->cycle == HV_PH_DONE) {
			unsigned v = version_no(f->state->rollout.version);
			unsigned hi = host_of(w, cmd->name);
			if (hi < MAX_HOSTS && ++w->done_for[hi][v] > 1)
				violation(w, "%s finished a cycle for %s twice",
				          cmd->name, f->state->rollout.version);
		}
	}
}

static void check_step(struct world *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		const struct hv_state *s = w->st[i];
		unsigned in = 0;
		for (unsigned k = 0; k < s->n_members; k++) {
			const struct hv_member *m = &s->members[k];
			if (!m->removed && (m->maint != HV_MAINT_NONE ||
			                    (hv_phase_flags(m->cycle) & HV_PHF_DRAINED)))
				in++;
		}
		if (in > s->max_concurrent)
			violation(
			    w, "replica %s: %u hosts in maintenance, max-concurrent %u",
			    w->h[i].name, in, s->max_concurrent);
		if (s->n_holders > s->max_concurrent)
			violation(w, "replica %s: %u holders", w->h[i].name,
			          s->n_holders);
	}
	for (unsigned g = 0; g < w->n_vms; g++) {
		unsigned on = 0;
		for (unsigned i = 0; i < w->n; i++)
			on += w->runs[i][g];
		if (on != 1)
			violation(w, "guest %s runs on %u hosts", w->vms[g].name, on);
	}
}

/* Every side effect goes through here with the token it is done under,
 * and the patch phase it is done for (HV_PH_IDLE: none, maintenance by
 * hand): that phase must be the host's committed one. */
static void effect(struct world *w, unsigned hi, uint64_t token, int phase,
                   const char *what)
{
	const struct hv_state *t = truth(w);
	const struct hv_member *m = hv_state_member((struct hv_state *)t, w->h[hi].name);

	w->effects++;
	if (hv_state_fenced(t, w->h[hi].name, token) != HV_OK) {
		w->stale_effects++;
		violation(w, "%s: %s with token %llu, which is not its current grant",
		          w->h[hi].name, what, (unsigned long long)token);
	} else if (t->paused) {
		/* the fence also says the line is not stopped */
		w->stale_effects++;
		violation(w, "%s: %s while the cluster is paused (%s)", w->h[hi].name,
		          what, t->pause_reason);
	} else if (phase > HV_PH_IDLE && (m == NULL || m->cycle != phase)) {
		w->stale_effects++;
		violation(w, "%s: %s for the phase %s, which is over (now %s)",
		          w->h[hi].name, what, hv_phase_name(phase),
		          m ? hv_phase_name(m->cycle) : "?");
	}
}

/* ---- links, faults -------------------------------------------------------- */

static void links_apply(struct world *w)
{
	for (unsigned i = 0; i < w->n; i++)
		for (unsigned j = 0; j < w->n; j++) {
			bool cut;
			if (i == j || !raft_fixture_alive(&w->f, i) ||
			    !raft_fixture_alive(&w->f, j))
				continue;
			cut = w->grp[i] != w->grp[j] || w->h[i].frozen ||
			      w->h[j].frozen || w->loss[i][j];
			if (cut && !raft_fixture_saturated(&w->f, i, j))
				raft_fixture_saturate(&w->f, i, j);
			else if (!cut && raft_fixture_saturated(&w->f, i, j))
				raft_fixture_desaturate(&w->f, i, j);
		}
}

static void host_down(struct world *w, unsigned i, uint64_t for_ms, bool reboot)
{
	struct host *h = &w->h[i];

	raft_fixture_kill(&w->f, i);
	h->down = true;
	h->rebooting = reboot;
	h->frozen = false;
	h->up_at = raft_fixture_time(&w->f) + for_ms;
	h->gen++; /* the driver's memory is gone */
	h->job = NULL;
}

/* The host comes back: after a reboot, from the bank the bootloader picks. */
static void host_up(struct world *w, unsigned i)
{
	struct host *h = &w->h[i];

	if (h->rebooting) {
		h->boot_id++;
		if (h->trial_next && !chance(w, w->faults ? w->p_bootold : 0)) {
			memcpy(h->booted, h->trial, sizeof h->booted);
			h->booted_trial = true;
			unsigned v = version_no(h->trial);
			if (++w->boots_for[i][v] > 1)
				violation(w, "%s booted into %s twice", h->name,
				          h->trial);
		} else {
			memcpy(h->booted, h->active, sizeof h->booted);
			h->booted_trial = false;
		}
		h->trial_next = false; /* one-shot */
		trace(w, "%s boots %s (boot %u)", h->name, h->booted, h->boot_id);
	} else {
		trace(w, "%s: hvpeerd restarts", h->name);
	}
	h->down = false;
	h->rebooting = false;
	h->gen++;
	h->next_report = 0;
	h->last_phase = -1;
	raft_fixture_revive(&w->f, i);
	links_apply(w);
}

static void heal(struct world *w)
{
	memset(w->grp, 0, sizeof w->grp);
	memset(w->loss, 0, sizeof w->loss);
	for (unsigned i = 0; i < w->n; i++)
		w->h[i].frozen = false;
	links_apply(w);
}

/* Called between fixture steps: timers of the world, then random faults. */
static void world_tick(struct world *w)
{
	uint64_t t = raft_fixture_time(&w->f);

	for (unsigned i = 0; i < w->n; i++) {
		struct host *h = &w->h[i];
		if (h->down && t >= h->up_at)
			host_up(w, i);
		if (h->frozen && t >= h->thaw_at) {
			h->frozen = false;
			trace(w, "%s thaws", h->name);
			links_apply(w);
		}
	}
	if (w->heal_at != 0 && t >= w->heal_at) {
		w->heal_at = 0;
		memset(w->grp, 0, sizeof w->grp);
		trace(w, "partition heals");
		links_apply(w);
	}
	if (w->loss_until != 0 && t >= w->loss_until) {
		w->loss_until = 0;
		memset(w->loss, 0, sizeof w->loss);
		links_apply(w);
	}
	if (!w->faults)
		return;
	if (t >= FAULT_MS) {
		w->faults = false;
		w->heal_at = w->loss_until = 0;
		heal(w);
		for (unsigned i = 0; i < w->n; i++)
			if (w->h[i].down && !w->h[i].rebooting && w->h[i].up_at > t)
				w->h[i].up_at = t;
		trace(w, "faults end: everything heals");
		return;
	}
	if (!chance(w, 4))
		return;
	w->n_faults++;
	switch (below(w, 4)) {
	case 0: /* partition */
		if (w->heal_at != 0)
			break;
		for (unsigned i = 0; i < w->n; i++)
			w->grp[i] = (int)below(w, 2);
		w->heal_at = t + 500 + below(w, 6000);
		trace(w, "partition until %llu", (unsigned long long)w->heal_at);
		links_apply(w);
		break;
	case 1: { /* crash of an hvpeerd */
		unsigned i = below(w, w->n);
		if (w->h[i].down)
			break;
		trace(w, "%s: hvpeerd crashes", w->h[i].name);
		host_down(w, i, 200 + below(w, 5000), false);
		break;
	}
	case 2: { /* a frozen process */
		unsigned i = below(w, w->n);
		if (w->h[i].down || w->h[i].frozen)
			break;
		w->h[i].frozen = true;
		w->h[i].frozen_at = t;
		w->h[i].thaw_at = t + 200 + below(w, 5000);
		trace(w, "%s freezes", w->h[i].name);
		links_apply(w);
		break;
	}
	case 3: /* message loss */
		if (w->loss_until != 0)
			break;
		for (unsigned k = 0; k < 3; k++) {
			unsigned i = below(w, w->n), j = below(w, w->n);
			if (i != j)
				w->loss[i][j] = true;
		}
		w->loss_until = t + 50 + below(w, 1000);
		links_apply(w);
		break;
	}
}

static void watchdog_act(struct world *w);

static void step(struct world *w)
{
	raft_fixture_step(&w->f);
	w->steps++;
	if (raft_fixture_time(&w->f) != w->last_time) {
		w->last_time = raft_fixture_time(&w->f);
		w->same_time_steps = 0;
	} else if (++w->same_time_steps == MAX_SAME_TIME_STEPS) {
		violation(w,
		          "livelock: %lu steps without virtual time moving on at %llu ms",
		          w->same_time_steps, (unsigned long long)w->last_time);
	}
	check_step(w);
	watchdog_act(w);
	world_tick(w);
}

/* ---- talking to the cluster ------------------------------------------------ */

struct req {
	union {
		struct raft_apply apply;
		struct raft_barrier barrier;
	} r;
	struct world *w;
	unsigned server;
	bool done, abandoned;
	int status, code;
	uint64_t token;
};

static void req_apply_cb(struct raft_apply *a, int status, void *result)
{
	struct req *q = a->data;

	if (q->abandoned) {
		free(q);
		return;
	}
	q->done = true;
	q->status = status;
	if (status == 0) {
		q->code = hv_fsm_result_code(result);
		q->token = hv_fsm_result_token(result);
	}
}

static void req_barrier_cb(struct raft_barrier *b, int status)
{
	struct req *q = b->data;

	if (q->abandoned) {
		free(q);
		return;
	}
	q->done = true;
	q->status = status;
}

/* Done with q: freed now, or by its callback when it comes. */
static void req_drop(struct req *q)
{
	if (q == NULL)
		return;
	if (q->done)
		free(q);
	else
		q->abandoned = true; /* its callback frees it */
}

static bool linked(struct world *w, unsigned i, unsigned j)
{
	return i == j || (!raft_fixture_saturated(&w->f, i, j) &&
	                  !raft_fixture_saturated(&w->f, j, i));
}

/* The leader host i can reach (hvpeerd forwards to it), or MAX_HOSTS. */
static unsigned leader_for(struct world *w, unsigned i)
{
	unsigned best = MAX_HOSTS;

	for (unsigned l = 0; l < w->n; l++)
		if (raft_fixture_alive(&w->f, l) && raft_state(R(w, l)) == RAFT_LEADER &&
		    linked(w, i, l) && !w->h[l].frozen &&
		    (best == MAX_HOSTS ||
		     R(w, l)->current_term > R(w, best)->current_term))
			best = l;
	return best;
}

/* The seed is over: a violation, or its step or time budget spent. Every
 * loop that steps the fixture stops on it, so no seed runs for ever. */
static bool over(struct world *w)
{
	return w->violation[0] != '\0' || w->steps >= MAX_STEPS ||
	       raft_fixture_time(&w->f) >= MAX_TIME_MS;
}

/* Is host i (the proposer) still the process that started this? */
static bool alive_as(struct world *w, unsigned i, unsigned gen)
{
	return !w->h[i].down && w->h[i].gen == gen;
}

/* Step until q is done, the host died or the time ran out. While the host
 * is frozen its job does not go on. */
static int wait_req(struct world *w, unsigned i, unsigned gen, struct req *q,
                    uint64_t timeout_ms)
{
	uint64_t until = raft_fixture_time(&w->f) + timeout_ms;

	while (!q->done || w->h[i].frozen) {
		if (!alive_as(w, i, gen) || over(w) ||
		    (!w->h[i].frozen && raft_fixture_time(&w->f) > until && !q->done)) {
			if (!q->done) {
				q->abandoned = true;
				return alive_as(w, i, gen) ? HV_TIMEOUT : HV_SHUTDOWN;
			}
			break;
		}
		step(w);
	}
	if (!alive_as(w, i, gen)) {
		free(q);
		return HV_SHUTDOWN;
	}
	return HV_OK;
}

static void nap(struct world *w, unsigned i, unsigned gen, uint64_t ms)
{
	uint64_t until = raft_fixture_time(&w->f) + ms;

	while ((raft_fixture_time(&w->f) < until || w->h[i].frozen) &&
	       alive_as(w, i, gen) && !over(w))
		step(w);
}

static bool transient(int rc)
{
	return rc == HV_NOQUORUM || rc == HV_NOTLEADER || rc == HV_UNREACHABLE ||
	       rc == HV_TIMEOUT || rc == HV_IO;
}

/* One attempt: through the leader host i reaches. */
static int commit_once(struct world *w, unsigned i, unsigned gen, struct hv_cmd *c,
                       uint64_t *token)
{
	unsigned l = leader_for(w, i);
	struct raft_buffer buf;
	struct req *q;
	size_t len;
	int rc;

	if (l == MAX_HOSTS)
		return HV_NOQUORUM;
	c->time_ms = now_ms(w);
	if ((q = calloc(1, sizeof *q)) == NULL)
		abort();
	if (hv_cmd_encode(c, raft_malloc, &buf.base, &len) != HV_OK)
		abort();
	buf.len = len;
	q->r.apply.data = q;
	q->server = l;
	if (raft_apply(R(w, l), &q->r.apply, &buf, 1, req_apply_cb) != 0) {
		raft_free(buf.base);
		free(q);
		return HV_NOTLEADER;
	}
	w->n_commits++;
	if ((rc = wait_req(w, i, gen, q, 3000)) != HV_OK)
		return rc;
	rc = q->status != 0 ? HV_NOQUORUM : q->code;
	if (token != NULL)
		*token = q->token;
	free(q);
	return rc;
}

/* node/maint.c commit(): retried while the cluster has no leader. */
static int commit(struct world *w, unsigned i, unsigned gen, struct hv_cmd *c,
                  uint64_t *token)
{
	int rc = HV_NOQUORUM;

	for (int attempt = 0; attempt < 40 && alive_as(w, i, gen); attempt++) {
		rc = commit_once(w, i, gen, c, token);
		if (!transient(rc))
			break;
		nap(w, i, gen, 250);
	}
	return alive_as(w, i, gen) ? rc : HV_SHUTDOWN;
}

/* The fencing check (node/commit.c): a barrier on the leader, then does
 * name hold the lease with this token, is the cluster not paused, and (a
 * patch phase's job) is name still in that phase? */
static int fence_once(struct world *w, unsigned i, unsigned gen, uint64_t token,
                      int phase)
{
	unsigned l = leader_for(w, i);
	struct req *q;
	int rc;

	if (l == MAX_HOSTS)
		return HV_NOQUORUM;
	if ((q = calloc(1, sizeof *q)) == NULL)
		abort();
	q->r.barrier.data = q;
	if (raft_barrier(R(w, l), &q->r.barrier, req_barrier_cb) != 0) {
		free(q);
		return HV_NOTLEADER;
	}
	if ((rc = wait_req(w, i, gen, q, 3000)) != HV_OK)
		return rc;
	if (q->status != 0) {
		free(q);
		return HV_NOQUORUM;
	}
	free(q);
	if (raft_state(R(w, l)) != RAFT_LEADER)
		return HV_NOTLEADER;
	rc = hv_state_fenced(w->st[l], w->h[i].name, token);
	if (rc == HV_OK && w->st[l]->paused)
		rc = HV_PAUSED;
	if (rc == HV_OK && phase > HV_PH_IDLE) {
		const struct hv_member *m = hv_state_member(w->st[l], w->h[i].name);
		if (m == NULL || m->cycle != phase)
			rc = HV_PHASE;
	}
	return rc;
}

static int fence(struct world *w, unsigned i, unsigned gen, uint64_t token, int phase)
{
	int rc = HV_NOQUORUM;

	if (w->inject)
		return HV_OK; /* the bug the self-test plants */
	for (int attempt = 0; attempt < 40 && alive_as(w, i, gen); attempt++) {
		rc = fence_once(w, i, gen, token, phase);
		if (!transient(rc))
			break;
		nap(w, i, gen, 250);
	}
	return alive_as(w, i, gen) ? rc : HV_SHUTDOWN;
}

/* Propose c through the leader host i reaches, without waiting: the
 * request (NULL when it could not be proposed), or NULL when forget is set
 * and its callback frees it. */
static struct req *send_cmd(struct world *w, unsigned i, struct hv_cmd *c, bool forget)
{
	unsigned l = leader_for(w, i);
	struct raft_buffer buf;
	struct req *q;
	size_t len;

	if (l == MAX_HOSTS)
		return NULL;
	c->time_ms = now_ms(w);
	if ((q = calloc(1, sizeof *q)) == NULL)
		abort();
	if (hv_cmd_encode(c, raft_malloc, &buf.base, &len) != HV_OK)
		abort();
	buf.len = len;
	q->r.apply.data = q;
	q->abandoned = forget;
	if (raft_apply(R(w, l), &q->r.apply, &buf, 1, req_apply_cb) != 0) {
		raft_free(buf.base);
		free(q);
		return NULL;
	}
	w->n_commits++;
	return forget ? NULL : q;
}

/* Fire and forget (reports, inventories from the tick). */
static void post(struct world *w, unsigned i, struct hv_cmd *c)
{
	send_cmd(w, i, c, true);
}

static void inventory_cmd(struct world *w, unsigned i, struct hv_cmd *c)
{
	memset(c, 0, sizeof *c);
	c->type = HV_CMD_INVENTORY;
	snprintf(c->name, sizeof c->name, "%s", w->h[i].name);
	c->seen_index = raft_last_applied(R(w, i));
	c->mem_cap_mib = w->h[i].mem_cap;
	c->vcpus_cap = 64;
	for (unsigned g = 0; g < w->n_vms; g++)
		if (w->runs[i][g]) {
			struct hv_cmd_guest *q = &c->guests[c->n_guests++];
			snprintf(q->name, sizeof q->name, "%s", w->vms[g].name);
			q->mem_mib = w->vms[g].mem;
			q->vcpus = w->vms[g].vcpus;
			q->level = HV_LEVEL_PRODUCTION;
			q->running = true;
			q->persistent = true;
		}
}

/* The node's tick: report and inventory every report interval. */
static void report_tick(struct world *w, unsigned i)
{
	struct host *h = &w->h[i];
	struct hv_cmd c;

	if (h->down || h->frozen || raft_fixture_time(&w->f) < h->next_report)
		return;
	h->next_report = raft_fixture_time(&w->f) + REPORT_MS;
	memset(&c, 0, sizeof c);
	c.type = HV_CMD_REPORT;
	snprintf(c.name, sizeof c.name, "%s", h->name);
	snprintf(c.phase, sizeof c.phase, "idle");
	snprintf(c.version, sizeof c.version, "%s", h->booted);
	if (h->bmc) {
		snprintf(c.bmc, sizeof c.bmc, "ipmi");
		snprintf(c.bmc_address, sizeof c.bmc_address, "10.0.1.%u:623", i + 1);
	}
	post(w, i, &c);
	inventory_cmd(w, i, &c);
	post(w, i, &c);
}

/* ---- the hypervisor's side effects ----------------------------------------- */

static uint32_t mem_used(struct world *w, unsigned i)
{
	uint32_t m = 0;

	for (unsigned g = 0; g < w->n_vms; g++)
		if (w->runs[i][g])
			m += w->vms[g].mem;
	return m;
}

/* A live migration: atomic, or it fails and the guest stays. */
static int migrate(struct world *w, unsigned i, uint64_t token, int phase,
                   const struct hv_cmd_move *mv, char *err, size_t len)
{
	unsigned g = vm_of(w, mv->guest), s = host_of(w, mv->source),
	         d = host_of(w, mv->target);

	if (g == MAX_VMS || s == MAX_HOSTS || d == MAX_HOSTS || s == d) {
		snprintf(err, len, "bad move");
		return HV_IO;
	}
	if (!w->runs[s][g] && w->runs[d][g])
		return HV_OK; /* it moved before a restart (already_moved) */
	effect(w, i, token, phase, "live migration");
	if (!w->runs[s][g]) {
		snprintf(err, len, "domain %s not found on %s", mv->guest, mv->source);
		return HV_IO;
	}
	if (w->h[d].down || (w->faults && chance(w, w->p_migfail))) {
		snprintf(err, len, "migration to %s failed (injected)", mv->target);
		return HV_IO;
	}
	if (mem_used(w, d) + w->vms[g].mem > w->h[d].mem_cap) {
		snprintf(err, len, "%s lacks memory", mv->target);
		return HV_IO;
	}
	w->runs[s][g] = false;
	w->runs[d][g] = true;
	trace(w, "%s moved %s -> %s", mv->guest, mv->source, mv->target);
	return HV_OK;
}

/* ---- a driver's job (node/patch.c phase_job, node/maint.c) ---------------------- */

/* node/patch.c transient(): a job stopped by these commits nothing. */
static bool job_transient(int rc)
{
	return rc == HV_PAUSED || rc == HV_BADTOKEN || rc == HV_NOTHOLDER ||
	       rc == HV_SHUTDOWN || rc == HV_NOQUORUM || rc == HV_NOTLEADER ||
	       rc == HV_UNREACHABLE || rc == HV_TIMEOUT;
}

struct job {
	unsigned i, gen;
	int phase;
	uint64_t token, rollout;
	char version[HV_VERSION_MAX + 1];
	int event;
	char reason[HV_REASON_MAX + 1];
	char booted[HV_VERSION_MAX + 1];
	int result; /* the first failure (hv_job_fail) */
	char message[256];
	struct hv_cmd cmd, plan;
};

static int jfail(struct job *j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int jfail(struct job *j, int rc, const char *fmt, ...)
{
	va_list ap;

	if (j->result == HV_OK) {
		j->result = rc;
		va_start(ap, fmt);
		vsnprintf(j->message, sizeof j->message, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static struct hv_state *local(struct world *w, struct job *j)
{
	return w->st[j->i];
}

static int jcommit(struct world *w, struct job *j, struct hv_cmd *c, uint64_t *token)
{
	return commit(w, j->i, j->gen, c, token);
}

static int commit_maint(struct world *w, struct job *j, int maint)
{
	struct hv_cmd *c = &j->cmd;

	memset(c, 0, sizeof *c);
	c->type = HV_CMD_MAINT;
	c->token = j->token;
	snprintf(c->name, sizeof c->name, "%s", w->h[j->i].name);
	snprintf(c->phase, sizeof c->phase, "%s", hv_maint_name(maint));
	return jcommit(w, j, c, NULL);
}

static int read_inventory(struct world *w, struct job *j)
{
	int rc;

	inventory_cmd(w, j->i, &j->cmd);
	rc = jcommit(w, j, &j->cmd, NULL);
	if (rc != HV_OK)
		return jfail(j, rc, "recording the inventory: %s", hv_strerror(rc));
	return HV_OK;
}

static bool plan_landed(struct world *w, struct job *j, const struct hv_cmd *plan)
{
	const struct hv_state *s = local(w, j);
	unsigned found = 0;

	for (unsigned k = 0; k < plan->n_moves; k++)
		for (unsigned m = 0; m < s->n_moves; m++)
			if (s->moves[m].status == HV_MOVE_PENDING &&
			    strcmp(s->moves[m].holder, w->h[j->i].name) == 0 &&
			    strcmp(s->moves[m].m.guest, plan->moves[k].guest) == 0 &&
			    strcmp(s->moves[m].m.target, plan->moves[k].target) == 0) {
				found++;
				break;
			}
	return found == plan->n_moves;
}

static int commit_plan(struct world *w, struct job *j, struct hv_cmd *plan)
{
	int rc = jcommit(w, j, plan, NULL);

	if (rc == HV_INVAL && plan_landed(w, j, plan))
		rc = HV_OK; /* an earlier attempt landed */
	for (unsigned k = 0; k < plan->n_moves; k++)
		trace(w, "%s: plan: %s %s -> %s: %s", w->h[j->i].name,
		      plan->moves[k].guest, plan->moves[k].source, plan->moves[k].target,
		      hv_errname(rc));
	return rc;
}

static bool move_pending(struct world *w, struct job *j, const char *guest)
{
	const struct hv_state *s = local(w, j);

	for (unsigned m = 0; m < s->n_moves; m++)
		if (s->moves[m].status == HV_MOVE_PENDING &&
		    strcmp(s->moves[m].holder, w->h[j->i].name) == 0 &&
		    strcmp(s->moves[m].m.guest, guest) == 0)
			return true;
	return false;
}

/* This host's pending moves, into j->plan. */
static void pending_plan(struct world *w, struct job *j)
{
	const struct hv_state *s = local(w, j);

	memset(&j->plan, 0, sizeof j->plan);
	for (unsigned m = 0; m < s->n_moves && j->plan.n_moves < HV_MAX_PLAN; m++)
		if (s->moves[m].status == HV_MOVE_PENDING &&
		    strcmp(s->moves[m].holder, w->h[j->i].name) == 0)
			j->plan.moves[j->plan.n_moves++] = s->moves[m].m;
}

static int my_maint(struct world *w, struct job *j)
{
	const struct hv_member *m = hv_state_member(local(w, j), w->h[j->i].name);

	return m != NULL ? m->maint : HV_MAINT_NONE;
}

static int record(struct world *w, struct job *j, const struct hv_cmd_move *mv,
                  int result, const char *err)
{
	struct hv_cmd *c = &j->cmd;
	int rc;

	memset(c, 0, sizeof *c);
	c->type = HV_CMD_MOVED;
	c->token = j->token;
	snprintf(c->name, sizeof c->name, "%s", w->h[j->i].name);
	c->move = *mv;
	c->result = result;
	c->downtime_ms = 30;
	snprintf(c->error, sizeof c->error, "%s", err);
	rc = jcommit(w, j, c, NULL);
	if (rc == HV_INVAL && !move_pending(w, j, mv->guest))
		rc = HV_OK;
	return rc;
}

/* node/maint.c run_move: fenced; a failed migration tried once elsewhere. */
static int run_move(struct world *w, struct job *j, struct hv_cmd_move mv, bool retry)
{
	char err[256] = "";
	int rc = fence(w, j->i, j->gen, j->token, j->phase), out;

	if (rc != HV_OK) {
		trace(w, "%s: fence before moving %s: %s", w->h[j->i].name, mv.guest,
		      hv_errname(rc));
		return jfail(j, rc, "stopped before moving %s: %s", mv.guest,
		             hv_strerror(rc));
	}
	out = migrate(w, j->i, j->token, j->phase, &mv, err, sizeof err);
	if (out != HV_OK)
		trace(w, "%s: moving %s to %s failed: %s", w->h[j->i].name, mv.guest,
		      mv.target, err);
	rc = record(w, j, &mv, out, err);
	trace(w, "%s: move of %s recorded: %s", w->h[j->i].name, mv.guest,
	      hv_errname(rc));
	if (rc != HV_OK)
		return jfail(j, rc, "recording the move of %s: %s", mv.guest,
		             hv_strerror(rc));
	if (out == HV_OK)
		return HV_OK;
	if (retry) {
		struct hv_cmd *p = malloc(sizeof *p);
		char why[256];
		if (p == NULL)
			abort();
		if (hv_plan_evacuation(local(w, j), w->h[j->i].name, now_ms(w), STALE_MS,
		                       mv.target, mv.guest, p, why,
		                       sizeof why) == HV_OK &&
		    p->n_moves == 1) {
			p->token = j->token;
			rc = commit_plan(w, j, p);
			if (rc == HV_OK) {
				struct hv_cmd_move again = p->moves[0];
				free(p);
				rc = run_move(w, j, again, false);
				if (rc == HV_OK || rc != HV_IO)
					return rc;
				return jfail(j, HV_IO, "guest %s could not be moved: %s",
				             mv.guest, err);
			}
		}
		free(p);
	}
	return jfail(j, HV_IO,
	             "guest %s could not be moved to %s: %s (it keeps running on %s)",
	             mv.guest, mv.target, err, mv.source);
}

static int stop_line(struct world *w, struct job *j)
{
	struct hv_cmd *c = &j->cmd;

	memset(c, 0, sizeof *c);
	c->type = HV_CMD_PAUSE;
	snprintf(c->by, sizeof c->by, "hvpeerd@%s", w->h[j->i].name);
	snprintf(c->reason, sizeof c->reason, "%.200s", j->message);
	jcommit(w, j, c, NULL);
	return j->result;
}

static int run_moves(struct world *w, struct job *j, bool retry)
{
	int rc = HV_OK;

	for (unsigned k = 0; k < j->plan.n_moves && rc == HV_OK; k++)
		rc = run_move(w, j, j->plan.moves[k], retry);
	if (rc != HV_OK && rc != HV_PAUSED && rc != HV_BADTOKEN && rc != HV_NOTHOLDER &&
	    rc != HV_SHUTDOWN)
		stop_line(w, j);
	return rc;
}

/* hv_maint_plan_out */
static int plan_out(struct world *w, struct job *j)
{
	char why[256];
	int rc;

	pending_plan(w, j);
	if (my_maint(w, j) == HV_MAINT_EVACUATING || my_maint(w, j) == HV_MAINT_IN)
		return HV_OK;
	if (commit_maint(w, j, HV_MAINT_ENTERING) != HV_OK)
		return jfail(j, HV_INVAL,
		             "cannot enter maintenance from its current phase");
	if (j->plan.n_moves == 0) {
		if ((rc = read_inventory(w, j)) != HV_OK)
			return rc;
		rc = hv_plan_evacuation(local(w, j), w->h[j->i].name, now_ms(w), STALE_MS,
		                        NULL, NULL, &j->plan, why, sizeof why);
		if (rc != HV_OK)
			return jfail(j, rc, "Failed to enter maintenance mode: %s", why);
		if (j->plan.n_moves > 0) {
			j->plan.token = j->token;
			rc = commit_plan(w, j, &j->plan);
			if (rc != HV_OK)
				return jfail(j, rc, "the plan was refused: %s",
				             hv_strerror(rc));
		}
	}
	rc = commit_maint(w, j, HV_MAINT_EVACUATING);
	if (rc != HV_OK)
		jfail(j, rc, "recording the evacuation: %s", hv_strerror(rc));
	return rc;
}

/* hv_maint_move_out */
static int move_out(struct world *w, struct job *j)
{
	int rc;

	pending_plan(w, j);
	if (my_maint(w, j) == HV_MAINT_IN)
		return HV_OK;
	rc = run_moves(w, j, true);
	if (rc == HV_OK && (rc = commit_maint(w, j, HV_MAINT_IN)) == HV_INVAL)
		jfail(j, rc, "not in maintenance: a guest still runs here");
	return rc;
}

/* hv_maint_move_back(j, false) */
static int move_back(struct world *w, struct job *j)
{
	int rc;

	if (my_maint(w, j) == HV_MAINT_NONE)
		return HV_OK;
	if (commit_maint(w, j, HV_MAINT_EXITING) != HV_OK)
		return jfail(j, HV_INVAL,
		             "cannot leave maintenance from its current phase");
	pending_plan(w, j);
	if (j->plan.n_moves == 0) {
		hv_plan_return(local(w, j), w->h[j->i].name, &j->plan);
		if (j->plan.n_moves > 0) {
			j->plan.token = j->token;
			rc = commit_plan(w, j, &j->plan);
			if (rc != HV_OK)
				return jfail(j, rc, "the return plan was refused: %s",
				             hv_strerror(rc));
		}
	}
	if (j->plan.n_moves > 0 && (rc = run_moves(w, j, false)) != HV_OK)
		return rc;
	rc = commit_maint(w, j, HV_MAINT_NONE);
	if (rc != HV_OK)
		jfail(j, rc, "recording the end of maintenance: %s", hv_strerror(rc));
	return rc;
}

static void reasonf(struct job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reasonf(struct job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->reason, sizeof j->reason, fmt, ap);
	va_end(ap);
}

/* reboot_step: HV_OK with j->event, HV_EXISTS while under way. */
static int reboot_step(struct world *w, struct job *j, bool rollback)
{
	struct host *h = &w->h[j->i];

	if (h->mk && h->mk_phase == j->phase && h->mk_rollout == j->rollout &&
	    h->mk_boot != h->boot_id) {
		snprintf(j->booted, sizeof j->booted, "%s", h->booted);
		if (strcmp(h->booted, j->version) == 0) {
			j->event = HV_EV_BOOTED_NEW;
			reasonf(j, "booted %s", h->booted);
		} else {
			j->event = HV_EV_BOOTED_OLD;
			reasonf(j, "booted %s, not %s%s", h->booted, j->version,
			        rollback ? " (rolled back)"
			                 : ": the new bank did not come up");
		}
		return HV_OK;
	}
	if (h->mk && h->mk_phase == j->phase && h->mk_rollout == j->rollout) {
		if (raft_fixture_time(&w->f) > h->mk_since + REBOOT_TIMEOUT_MS) {
			j->event = HV_EV_FAIL;
			reasonf(j, "reboot: the host did not reboot within %llu s",
			        REBOOT_TIMEOUT_MS / 1000);
			return HV_OK;
		}
		return HV_EXISTS;
	}
	/* A power cycle may have done the reboot already: the banks know. */
	if (rollback ? !h->booted_trial && strcmp(h->booted, j->version) != 0
	             : h->booted_trial && strcmp(h->booted, j->version) == 0) {
		snprintf(j->booted, sizeof j->booted, "%s", h->booted);
		j->event = rollback ? HV_EV_BOOTED_OLD : HV_EV_BOOTED_NEW;
		reasonf(j, "booted %s (after a power cycle)", h->booted);
		return HV_OK;
	}
	if (fence(w, j->i, j->gen, j->token, j->phase) != HV_OK)
		return HV_PAUSED;
	h->mk = true;
	h->mk_phase = j->phase;
	h->mk_rollout = j->rollout;
	h->mk_boot = h->boot_id;
	h->mk_since = raft_fixture_time(&w->f);
	effect(w, j->i, j->token, j->phase, "reboot");
	if (w->faults && chance(w, w->p_rebootfail)) {
		trace(w, "%s: the reboot command does nothing (injected)", h->name);
		return HV_EXISTS;
	}
	for (unsigned g = 0; g < w->n_vms; g++)
		if (w->runs[j->i][g]) {
			violation(w, "%s reboots with guest %s on it: lost", h->name,
			          w->vms[g].name);
			w->runs[j->i][g] = false;
		}
	trace(w, "%s reboots", h->name);
	host_down(w, j->i, 1000 + below(w, 6000), true);
	if (w->faults && chance(w, w->p_hang)) {
		h->hung = true;
		h->up_at = UINT64_MAX;
		w->n_hangs++;
		trace(w, "%s hangs in its reboot (injected)", h->name);
	}
	return HV_EXISTS;
}

static void phase_job(struct world *w, struct job *j)
{
	struct host *h = &w->h[j->i];
	int rc = HV_OK;

	j->event = -1;
	switch (j->phase) {
	case HV_PH_PRECHECK: {
		char why[256];
		struct hv_cmd *p = &j->plan;
		if ((rc = read_inventory(w, j)) != HV_OK) {
			if (!job_transient(rc))
				j->event = HV_EV_FAIL, rc = HV_OK;
			break;
		}
		rc = hv_plan_evacuation(local(w, j), h->name, now_ms(w), PRE_STALE_MS,
		                        NULL, NULL, p, why, sizeof why);
		if (rc != HV_OK) {
			j->event = HV_EV_FAIL;
			reasonf(j, "pre-check: %s", why);
		} else if (w->faults && chance(w, w->p_precheckfail)) {
			j->event = HV_EV_FAIL;
			reasonf(j,
			        "pre-check: clock skew of 3 s with %s (more than "
			        "2 s; injected)",
			        w->h[(j->i + 1) % w->n].name);
		} else {
			j->event = HV_EV_OK;
			reasonf(j, "%u guests to move", p->n_moves);
		}
		rc = HV_OK;
		break;
	}
	case HV_PH_ENTER_MAINT:
		rc = plan_out(w, j);
		break;
	case HV_PH_EVACUATE:
		rc = move_out(w, j);
		break;
	case HV_PH_STAGE:
		j->event = HV_EV_OK;
		break;
	case HV_PH_APPLY:
		if (fence(w, j->i, j->gen, j->token, j->phase) != HV_OK) {
			rc = HV_PAUSED;
			break;
		}
		effect(w, j->i, j->token, j->phase, "boot bank write");
		memcpy(h->trial, j->version, sizeof h->trial);
		h->trial_next = true;
		j->event = HV_EV_OK;
		break;
	case HV_PH_REBOOT:
		rc = reboot_step(w, j, false);
		break;
	case HV_PH_VALIDATE:
		j->event = strcmp(h->booted, j->version) == 0 ? HV_EV_OK : HV_EV_FAIL;
		if (j->event == HV_EV_FAIL)
			reasonf(j, "validate: booted %s, not %s", h->booted, j->version);
		break;
	case HV_PH_EXIT_MAINT:
		if ((rc = fence(w, j->i, j->gen, j->token, j->phase)) != HV_OK)
			break;
		effect(w, j->i, j->token, j->phase, "mark good");
		if (h->booted_trial) {
			memcpy(h->active, h->booted, sizeof h->active);
			h->booted_trial = false;
		}
		break;
	case HV_PH_REBALANCE:
		rc = move_back(w, j);
		break;
	case HV_PH_ROLLBACK:
		if (h->mk && h->mk_phase == HV_PH_ROLLBACK) {
			rc = reboot_step(w, j, true);
			break;
		}
		if (fence(w, j->i, j->gen, j->token, j->phase) != HV_OK) {
			rc = HV_PAUSED;
			break;
		}
		effect(w, j->i, j->token, j->phase, "rollback");
		h->trial_next = false;
		if (h->booted_trial) {
			rc = reboot_step(w, j, true);
			break;
		}
		j->event = HV_EV_OK;
		reasonf(j, "rolled back");
		break;
	}
	if (!alive_as(w, j->i, j->gen))
		return;
	if (j->phase == HV_PH_ENTER_MAINT || j->phase == HV_PH_EVACUATE ||
	    j->phase == HV_PH_REBALANCE) {
		if (rc == HV_OK && j->result == HV_OK) {
			j->event = HV_EV_OK;
		} else if (!job_transient(rc) && !job_transient(j->result)) {
			j->event = HV_EV_FAIL;
			reasonf(j, "%s", j->message[0] ? j->message : hv_strerror(rc));
		}
		rc = HV_OK;
	} else if (j->phase == HV_PH_EXIT_MAINT && j->event < 0 && rc == HV_OK) {
		j->event = HV_EV_OK;
	}
	if (rc == HV_OK && j->event >= 0) {
		struct hv_cmd *c = &j->cmd;
		memset(c, 0, sizeof *c);
		c->type = HV_CMD_PATCH_STEP;
		c->token = j->token;
		c->id = j->rollout;
		c->event = j->event;
		snprintf(c->name, sizeof c->name, "%s", h->name);
		snprintf(c->phase, sizeof c->phase, "%s", hv_phase_name(j->phase));
		snprintf(c->version, sizeof c->version, "%s", j->booted);
		snprintf(c->reason, sizeof c->reason, "%s", j->reason);
		rc = jcommit(w, j, c, NULL);
		if (rc == HV_OK &&
		    (j->event == HV_EV_BOOTED_NEW || j->event == HV_EV_BOOTED_OLD))
			h->mk = false; /* the marker is removed */
	}
}

static bool has_work(int phase)
{
	return phase >= HV_PH_PRECHECK && phase <= HV_PH_REBALANCE
	           ? true
	           : phase == HV_PH_ROLLBACK;
}

/* hv_patch_kick: the committed phase of this host, on its own replica. */
static void kick(struct world *w, unsigned i)
{
	struct host *h = &w->h[i];
	const struct hv_state *s = w->st[i];
	const struct hv_member *m;
	const struct hv_holder *hd;
	uint64_t t = raft_fixture_time(&w->f);
	struct job *j;

	if (h->down || h->frozen || s->rollout.id == 0)
		return;
	m = hv_state_member(w->st[i], h->name);
	if (m == NULL || !has_work(m->cycle) || s->paused)
		return;
	if (m->cycle == h->last_phase && s->rollout.id == h->last_rollout &&
	    t < h->retry_at)
		return;
	hd = hv_state_holder(s, h->name);
	if (hd == NULL)
		return;
	if ((j = calloc(1, sizeof *j)) == NULL)
		abort();
	j->i = i;
	j->gen = h->gen;
	j->phase = m->cycle;
	j->rollout = s->rollout.id;
	j->token = hd->token;
	snprintf(j->version, sizeof j->version, "%s", s->rollout.version);
	h->last_phase = m->cycle;
	h->last_rollout = s->rollout.id;
	h->retry_at = t + RETRY_MS;
	trace(w, "%s: job %s (token %llu)", h->name, hv_phase_name(j->phase),
	      (unsigned long long)j->token);
	phase_job(w, j);
	if (alive_as(w, i, j->gen))
		h->retry_at = raft_fixture_time(&w->f) + RETRY_MS;
	free(j);
}

/* ---- the leader's ticks ----------------------------------------------------- */

/* The leader that ticks now with k, or MAX_HOSTS: not time yet, k's
 * command still in flight, or the leader down or frozen. */
static unsigned tick_leader(struct world *w, struct ticker *k)
{
	unsigned l = raft_fixture_leader_index(&w->f);
	uint64_t t = raft_fixture_time(&w->f);

	if (k->req != NULL) {
		if (!k->req->done && t < k->until)
			return MAX_HOSTS;
		req_drop(k->req);
		k->req = NULL;
	}
	if (t < k->next)
		return MAX_HOSTS;
	k->next = t + TICK_MS;
	if (l >= w->n || w->h[l].down || w->h[l].frozen)
		return MAX_HOSTS;
	return l;
}

/* Propose c through the leader l as k's command in flight. */
static void tick_send(struct world *w, struct ticker *k, unsigned l, struct hv_cmd *c)
{
	k->req = send_cmd(w, l, c, false);
	k->until = raft_fixture_time(&w->f) + 3000;
}

/* ---- the leader's gate (node/policy.c, patchfsm/gate.c) -------------------- */

/* node/policy.c hv_policy_tick, run every TICK_MS by the leader, with one
 * command in flight at a time (gate_busy): the same decision
 * (hv_gate_decide) on the virtual clock. */
static void leader_tick(struct world *w)
{
	unsigned l = tick_leader(w, &w->gate);
	struct hv_cmd *c;
	char why[512];

	if (l == MAX_HOSTS)
		return;
	if ((c = malloc(sizeof *c)) == NULL)
		abort();
	if (hv_gate_decide(w->st[l], now_ms(w), STALE_MS, c, why, sizeof why) ==
	    HV_GATE_COMMIT) {
		snprintf(c->by, sizeof c->by, "%s", w->h[l].name);
		trace(w, "leader %s: %s %s: %s", w->h[l].name, hv_cmd_name(c->type),
		      c->name, why);
		tick_send(w, &w->gate, l, c);
	}
	free(c);
}

/* ---- the leader's watchdog (node/watchdog.c) ------------------------------- */

/* node/watchdog.c hv_watchdog_tick, every TICK_MS on the leader, one
 * command in flight (wd_busy): what hv_rollout_watchdog_due says is due
 * for a holder that has not come back from its reboot, committed first; a
 * power cycle is done once it is (watchdog_act). */
static void watchdog_tick(struct world *w)
{
	unsigned l = tick_leader(w, &w->wd);
	uint64_t token = 0;
	const struct hv_member *m = NULL;
	struct hv_cmd c;
	int due;

	if (l == MAX_HOSTS)
		return;
	due = hv_rollout_watchdog_due(w->st[l], now_ms(w), BOOT_TIMEOUT_MS,
	                              WATCHDOG_CYCLES, &m, &token);
	if (due == 0 || host_of(w, m->name) == MAX_HOSTS)
		return;
	memset(&c, 0, sizeof c);
	c.type = HV_CMD_PATCH_WATCHDOG;
	c.event = due;
	c.token = token;
	c.id = w->st[l]->rollout.id;
	snprintf(c.name, sizeof c.name, "%s", m->name);
	snprintf(c.phase, sizeof c.phase, "%s", hv_phase_name(m->cycle));
	snprintf(c.by, sizeof c.by, "%s", w->h[l].name);
	if (due == HV_WD_CYCLE)
		snprintf(c.reason, sizeof c.reason, "not back %llu s after %s",
		         (unsigned long long)(BOOT_TIMEOUT_MS / 1000),
		         m->wd_cycles ? "a power cycle" : "it began to reboot");
	else
		snprintf(c.reason, sizeof c.reason,
		         "%s has not come back%s: check it by hand", m->name,
		         m->bmc[0] != '\0' ? " after its power cycles" : ", no BMC");
	trace(w, "leader %s: watchdog %s: %s", w->h[l].name, c.name, c.reason);
	w->wd_host = host_of(w, m->name);
	w->wd_event = due;
	w->wd_token = token;
	w->wd_acted = false;
	tick_send(w, &w->wd, l, &c);
}

/* Right after the step in which the leader applied a committed power
 * cycle: the BMC does it, fenced by the token in that entry. A host that
 * hangs comes back (most times); one on its way up starts over; one that
 * was up (it came back, but could not say so yet) reboots, and its
 * one-shot trial bank is spent. */
static void watchdog_act(struct world *w)
{
	struct req *q = w->wd.req;
	struct host *h;
	uint64_t t = raft_fixture_time(&w->f);
	const struct hv_member *m;

	if (q == NULL || !q->done || w->wd_acted)
		return;
	w->wd_acted = true;
	if (q->status != 0 || q->code != HV_OK)
		return;
	if (w->wd_event == HV_WD_GAVE_UP) {
		w->n_gave_up++;
		return;
	}
	h = &w->h[w->wd_host];
	m = hv_state_member((struct hv_state *)truth(w), h->name);
	if (m == NULL || (m->cycle != HV_PH_REBOOT && m->cycle != HV_PH_ROLLBACK))
		violation(w, "watchdog: power cycle of %s in phase %s", h->name,
		          m ? hv_phase_name(m->cycle) : "?");
	effect(w, w->wd_host, w->wd_token, m != NULL ? m->cycle : HV_PH_IDLE,
	       "power cycle");
	w->n_power_cycles++;
	if (!h->bmc)
		violation(w, "watchdog: power cycle of %s, which has no BMC", h->name);
	if (!h->down) {
		for (unsigned g = 0; g < w->n_vms; g++)
			if (w->runs[w->wd_host][g]) {
				violation(w,
				          "%s is power-cycled with guest %s on it: lost",
				          h->name, w->vms[g].name);
				w->runs[w->wd_host][g] = false;
			}
		trace(w, "%s is power-cycled while up", h->name);
		host_down(w, w->wd_host, 1000 + below(w, 4000), true);
		return;
	}
	h->rebooting = true;
	if (h->hung && !chance(w, HANG_CLEARS)) {
		trace(w, "%s is power-cycled and still hangs", h->name);
		return;
	}
	h->hung = false;
	h->up_at = t + 1000 + below(w, 4000);
	trace(w, "%s is power-cycled: up at %llu", h->name, (unsigned long long)h->up_at);
}

/* ---- the operator ---------------------------------------------------------- */

static int op_commit(struct world *w, struct hv_cmd *c)
{
	unsigned via = 0;

	for (unsigned i = 0; i < w->n; i++)
		if (!w->h[i].down && !w->h[i].frozen && leader_for(w, i) < MAX_HOSTS) {
			via = i;
			break;
		}
	return commit(w, via, w->h[via].gen, c, NULL);
}

static void digest_of(unsigned v, char *out, size_t len)
{
	snprintf(out, len, "%064x", 0xabc00 + v);
}

static void submit(struct world *w)
{
	struct hv_cmd c;
	int rc;

	memset(&c, 0, sizeof c);
	c.type = HV_CMD_PATCH_SUBMIT;
	snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
	snprintf(c.version, sizeof c.version, "%s", w->target);
	snprintf(c.bundle, sizeof c.bundle, "hv-os");
	digest_of(w->version, c.digest, sizeof c.digest);
	snprintf(c.key_id, sizeof c.key_id, "ops");
	snprintf(c.source, sizeof c.source, "%s", w->h[0].name);
	rc = op_commit(w, &c);
	trace(w, "operator: patch submit %s: %s", w->target, hv_errname(rc));
	if (rc == HV_QUARANTINED || rc == HV_ROLLBACK) {
		/* a fixed bundle, the next version */
		w->version++;
		snprintf(w->target, sizeof w->target, "1.%u", w->version);
	}
}

/* An impatient operator (some worlds): a lease holder whose hvpeerd has
 * been frozen (SIGSTOP) for a second, before its reboot, loses its lease:
 * `hvpeer lease break --force HOST`. It stays frozen until the break is
 * committed; then its job goes on with a token that is no longer its
 * grant, and every fence must refuse it (the fencing invariant). */
static void break_frozen(struct world *w)
{
	const struct hv_state *s = truth(w);
	uint64_t t = raft_fixture_time(&w->f);

	for (unsigned k = 0; k < s->n_holders; k++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, s->holders[k].name);
		unsigned i = host_of(w, s->holders[k].name);
		struct host *h = &w->h[i % MAX_HOSTS];
		struct hv_cmd c;
		int rc;
		if (i == MAX_HOSTS || m == NULL || !h->frozen ||
		    t < h->frozen_at + 1000 || m->cycle < HV_PH_PRECHECK ||
		    m->cycle > HV_PH_APPLY)
			continue;
		if (h->thaw_at < t + 60000)
			h->thaw_at = t + 60000; /* thawed below */
		memset(&c, 0, sizeof c);
		c.type = HV_CMD_LEASE_BREAK;
		snprintf(c.name, sizeof c.name, "%s", h->name);
		snprintf(c.by, sizeof c.by, "root@%s", w->h[(i + 1) % w->n].name);
		snprintf(c.reason, sizeof c.reason, "hvpeerd on %s does not answer",
		         h->name);
		rc = op_commit(w, &c);
		trace(w, "operator: lease break --force %s (frozen, %s, token %llu): %s",
		      h->name, hv_phase_name(m->cycle),
		      (unsigned long long)s->holders[k].token, hv_errname(rc));
		w->n_breaks += rc == HV_OK;
		h->thaw_at = raft_fixture_time(&w->f) + 1;
		return;
	}
}

/* docs/operations.md section 5: look, resume, take a failed host out of
 * maintenance (its guests come back, its lease is released), and submit
 * again (a fixed bundle when the patch was quarantined). */
static void operator(struct world *w)
{
	const struct hv_state *s = truth(w);
	struct hv_cmd c;
	bool all = true;

	for (unsigned i = 0; i < w->n && s->paused; i++)
		if (w->h[i].hung) {
			/* the line stopped (the watchdog gave up, or
			 * something else): the operator looks, and powers a
			 * host that hangs on by hand; else the watchdog acts */
			w->h[i].hung = false;
			w->h[i].up_at = raft_fixture_time(&w->f) + 1000;
			trace(w, "operator: powers %s on by hand", w->h[i].name);
			return;
		}
	for (unsigned i = 0; i < w->n; i++)
		if (w->h[i].down || w->h[i].frozen)
			return; /* wait for the hosts */
	if (s->paused) {
		memset(&c, 0, sizeof c);
		c.type = HV_CMD_RESUME;
		snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
		trace(w, "operator: resume (%s)", s->pause_reason);
		op_commit(w, &c);
		return;
	}
	for (unsigned k = 0; k < s->n_members; k++) {
		const struct hv_member *m = &s->members[k];
		const struct hv_holder *hd = hv_state_holder(s, m->name);
		unsigned i = host_of(w, m->name);
		if (m->cycle != HV_PH_FAILED || hd == NULL || i == MAX_HOSTS)
			continue;
		if (m->maint == HV_MAINT_EVACUATING || m->maint == HV_MAINT_IN ||
		    m->maint == HV_MAINT_EXITING) {
			/* hvpeer maintenance exit HOST, run by its hvpeerd */
			struct job *j = calloc(1, sizeof *j);
			uint64_t token = hd->token;
			if (j == NULL)
				abort();
			j->i = i;
			j->gen = w->h[i].gen;
			j->token = token;
			trace(w, "operator: maintenance exit %s", m->name);
			if (move_back(w, j) == HV_OK && alive_as(w, i, j->gen)) {
				memset(&c, 0, sizeof c);
				c.type = HV_CMD_LEASE_RELEASE;
				c.token = token;
				snprintf(c.name, sizeof c.name, "%s", m->name);
				jcommit(w, j, &c, NULL);
			}
			free(j);
		} else {
			memset(&c, 0, sizeof c);
			c.type = HV_CMD_LEASE_BREAK;
			snprintf(c.name, sizeof c.name, "%s", m->name);
			snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
			snprintf(c.reason, sizeof c.reason, "failed before maintenance");
			trace(w, "operator: lease break %s", m->name);
			op_commit(w, &c);
		}
		return;
	}
	if (s->rollout.active && s->n_holders == 0 &&
	    hv_state_quarantined(s, s->rollout.digest)) {
		/* the line cannot go on: hvpeer patch abort, then a fixed
		 * bundle */
		memset(&c, 0, sizeof c);
		c.type = HV_CMD_PATCH_ABORT;
		snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
		snprintf(c.reason, sizeof c.reason, "the patch is quarantined");
		trace(w, "operator: patch abort");
		op_commit(w, &c);
		return;
	}
	if (s->rollout.active)
		return;
	for (unsigned i = 0; i < w->n; i++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, w->h[i].name);
		if (m == NULL || strcmp(m->version, w->target) != 0 ||
		    strcmp(w->h[i].booted, w->target) != 0)
			all = false;
	}
	if (!all)
		submit(w);
}

/* ---- one seed ---------------------------------------------------------------- */

static bool converged(struct world *w)
{
	const struct hv_state *s = truth(w);

	if (s->paused || s->rollout.active || s->n_holders > 0)
		return false;
	for (unsigned i = 0; i < w->n; i++) {
		const struct host *h = &w->h[i];
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, h->name);
		if (h->down || h->frozen || m == NULL || m->maint != HV_MAINT_NONE ||
		    strcmp(h->booted, w->target) != 0 ||
		    strcmp(h->active, w->target) != 0 ||
		    strcmp(m->version, w->target) != 0)
			return false;
	}
	return true;
}

static void world_free(struct world *w)
{
	req_drop(w->gate.req);
	req_drop(w->wd.req);
	raft_fixture_close(&w->f);
	for (unsigned i = 0; i < w->n; i++)
		free(w->st[i]);
	free(w->digest);
}

static void policy_set(struct world *w, const char *key, const char *value)
{
	struct hv_cmd c;
	int rc;

	memset(&c, 0, sizeof c);
	c.type = HV_CMD_POLICY_SET;
	snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
	snprintf(c.name, sizeof c.name, "%s", key);
	snprintf(c.reason, sizeof c.reason, "%s", value);
	rc = op_commit(w, &c);
	trace(w, "operator: policy set %s '%s': %s", key, value, hv_errname(rc));
}

/* The rollout policies the seed picked (docs/operations.md section 4). The
 * quorum guard only with five voters: with fewer, one host down already
 * leaves quorum one failure from lost, and nothing would ever go. The
 * window is "daily 22:MM-24:00" UTC, opening 40-280 s into the run (the
 * virtual clock starts at 22:13:20). */
static void policies(struct world *w)
{
	char v[64];

	if (w->canary[0] != '\0') {
		policy_set(w, "canary", w->canary);
		snprintf(v, sizeof v, "%llu", (unsigned long long)(w->soak_ms / 1000));
		policy_set(w, "soak", v);
	}
	snprintf(v, sizeof v, "%u", w->max_retries);
	policy_set(w, "max-retries", v);
	snprintf(v, sizeof v, "%llu", (unsigned long long)(w->retry_delay_ms / 1000));
	policy_set(w, "retry-delay", v);
	snprintf(v, sizeof v, "%u", w->max_failed);
	policy_set(w, "max-failed-hosts", v);
	if (w->guard)
		policy_set(w, "quorum-guard", "on");
	if (w->window_opens != 0) {
		snprintf(v, sizeof v, "daily 22:%02llu-24:00",
		         (unsigned long long)((w->window_opens - BASE_MS) / 1000 + 800) /
		             60);
		policy_set(w, "window", v);
	}
}

static void setup(struct world *w)
{
	struct hv_cmd c;

	w->n = 3 + below(w, 3);
	w->max_concurrent = w->n >= 4 && chance(w, 300) ? 2 : 1;
	w->p_migfail = below(w, 3) * 40;
	w->p_rebootfail = below(w, 3) * 60;
	w->p_bootold = below(w, 3) * 40;
	w->p_precheckfail = below(w, 3) * 150;
	w->p_hang = below(w, 3) * 150;
	w->impatient = chance(w, 300);
	if (chance(w, 300)) {
		if (chance(w, 500))
			snprintf(w->canary, sizeof w->canary, "auto");
		else
			snprintf(w->canary, sizeof w->canary, "hv%u", 1 + below(w, w->n));
		w->soak_ms = below(w, 5) * 1000ull;
	}
	w->max_retries = below(w, 3);
	w->retry_delay_ms = (1 + below(w, 3)) * 1000ull;
	w->max_failed = chance(w, 300) ? 1 : 0;
	w->guard = w->n == 5 && chance(w, 300);
	if (chance(w, 200))
		w->window_opens = BASE_MS + ((14 + below(w, 5)) * 60 - 800) * 1000ull;
	w->version = 1;
	snprintf(w->target, sizeof w->target, "1.%u", w->version);
	if (raft_fixture_initialize(&w->f) != 0)
		abort();
	for (unsigned i = 0; i < w->n; i++) {
		struct host *h = &w->h[i];
		if ((w->st[i] = malloc(sizeof *w->st[i])) == NULL)
			abort();
		hv_state_init(w->st[i]);
		hv_fsm_init(&w->fsm[i], w->st[i]);
		w->fsm[i].applied = on_applied;
		w->fsm[i].data = w;
		if (raft_fixture_grow(&w->f, &w->fsm[i].fsm) != 0)
			abort();
		w->fsm[i].raft = R(w, i);
		if (getenv("HV_SIM_TRACE") == NULL)
			R(w, i)->tracer = NULL; /* the fixture's own trace */
		raft_set_pre_vote(R(w, i), true);
		raft_set_snapshot_threshold(R(w, i), 1000000);
		snprintf(h->name, sizeof h->name, "hv%u", i + 1);
		snprintf(h->active, sizeof h->active, "1.0");
		snprintf(h->booted, sizeof h->booted, "1.0");
		h->mem_cap = 8192;
		h->last_phase = -1;
		h->bmc = !chance(w, 150);
	}
	w->n_vms = w->n * (1 + below(w, 3));
	for (unsigned g = 0; g < w->n_vms; g++) {
		snprintf(w->vms[g].name, sizeof w->vms[g].name, "vm%u", g + 1);
		w->vms[g].mem = 512u * (1 + below(w, 4));
		w->vms[g].vcpus = 1 + below(w, 2);
		w->runs[g % w->n][g] = true;
	}
	/* A world where some host cannot be emptied is refused by the
	 * pre-check for ever (docs/operations.md: free capacity): keep the
	 * guests' memory at most what the hosts left when max-concurrent hold
	 * the lease could take in any order, less the largest guest on each:
	 * then every guest finds room whatever the layout. */
	for (;;) {
		uint32_t total = 0, bound = (w->n - w->max_concurrent) * (8192u - 2048u);
		unsigned big = 0;
		for (unsigned g = 0; g < w->n_vms; g++) {
			total += w->vms[g].mem;
			if (w->vms[g].mem > w->vms[big].mem)
				big = g;
		}
		if (total <= bound || w->vms[big].mem <= 512)
			break;
		w->vms[big].mem -= 512;
	}
	/* Every server starts from a snapshot at index 1 (the configuration and
	 * an empty state) rather than a bootstrap entry: the fixture copies and
	 * compares its leader's log from index 1 at every step, which costs
	 * O(log) per step when index 1 is in the log and nothing when it is in
	 * a snapshot. No snapshot is taken later (the fixture's in-memory disk
	 * mishandles a truncation after an installed snapshot). */
	for (unsigned i = 0; i < w->n; i++) {
		struct raft_snapshot *snap = raft_calloc(1, sizeof *snap);
		struct hv_state *empty = malloc(sizeof *empty);
		void *base;
		size_t len;
		if (snap == NULL || empty == NULL ||
		    raft_fixture_configuration(&w->f, w->n, &snap->configuration) != 0)
			abort();
		hv_state_init(empty);
		if (hv_state_encode(empty, raft_malloc, &base, &len) != HV_OK)
			abort();
		free(empty);
		snap->index = 1;
		snap->term = 1;
		snap->configuration_index = 1;
		if ((snap->bufs = raft_malloc(sizeof *snap->bufs)) == NULL)
			abort();
		snap->bufs[0].base = base;
		snap->bufs[0].len = len;
		snap->n_bufs = 1;
		raft_fixture_set_snapshot(&w->f, i, snap);
		raft_fixture_set_term(&w->f, i, 1);
	}
	if (raft_fixture_start(&w->f) != 0)
		abort();
	while (raft_fixture_leader_index(&w->f) >= w->n && w->steps < 10000)
		step(w);
	memset(&c, 0, sizeof c);
	c.type = HV_CMD_SETTINGS;
	c.max_concurrent = w->max_concurrent;
	op_commit(w, &c);
	for (unsigned i = 0; i < w->n; i++) {
		memset(&c, 0, sizeof c);
		c.type = HV_CMD_MEMBER_ADD;
		snprintf(c.name, sizeof c.name, "%s", w->h[i].name);
		snprintf(c.address, sizeof c.address, "10.0.0.%u:7440", i + 1);
		c.id = i + 1;
		c.role = HV_ROLE_VOTER;
		op_commit(w, &c);
	}
	policies(w);
	for (unsigned i = 0; i < w->n; i++) {
		w->h[i].next_report = 0;
		report_tick(w, i);
	}
	trace(w,
	      "seed %llu: %u hosts, %u guests, max-concurrent %u, failures per mille: "
	      "migration %u, reboot %u, old bank %u, pre-check %u; canary '%s' soak %llu "
	      "s, "
	      "max-retries %u, max-failed-hosts %u, quorum guard %s, window %s",
	      (unsigned long long)w->seed, w->n, w->n_vms, w->max_concurrent,
	      w->p_migfail, w->p_rebootfail, w->p_bootold, w->p_precheckfail, w->canary,
	      (unsigned long long)(w->soak_ms / 1000), w->max_retries, w->max_failed,
	      w->guard ? "on" : "off", w->window_opens ? "set" : "none");
}

/* What the policies did, over every seed run (the summary line). */
static struct {
	unsigned long gated, retries, tolerated, soaked;
	unsigned long hangs, power_cycles, gave_up, breaks;
} policy_totals;

/* 0: converged with every check held; 1: a violation (w->violation); 2: the
 * fencing invariant's (a side effect without the lease or while paused). */
static int run_seed(uint64_t seed, bool verbose, bool inject, bool quiet,
                    unsigned long *steps)
{
	struct world *w = calloc(1, sizeof *w);
	int rv = 0;

	if (w == NULL)
		abort();
	w->seed = seed;
	w->rng = seed * 0x2545f4914f6cdd1dull + 1;
	w->verbose = verbose;
	w->inject = inject;
	setup(w);
	w->faults = true;
	while (!over(w)) {
		unsigned first = below(w, w->n);
		if (!w->faults && converged(w))
			break;
		if (!w->submitted && raft_fixture_time(&w->f) > 1000) {
			w->submitted = true;
			submit(w);
		}
		for (unsigned k = 0; k < w->n; k++) {
			report_tick(w, (first + k) % w->n);
			kick(w, (first + k) % w->n);
		}
		leader_tick(w);
		watchdog_tick(w);
		if (w->faults && w->impatient)
			break_frozen(w);
		if (w->faults && chance(w, 2) && w->op_pause_until == 0) {
			struct hv_cmd c = {.type = HV_CMD_PAUSE};
			snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
			snprintf(c.reason, sizeof c.reason,
			         "operator looks at something");
			w->op_pause_until =
			    raft_fixture_time(&w->f) + 500 + below(w, 5000);
			trace(w, "operator: pause");
			op_commit(w, &c);
		}
		if (w->op_pause_until != 0 &&
		    raft_fixture_time(&w->f) >= w->op_pause_until) {
			struct hv_cmd c = {.type = HV_CMD_RESUME};
			w->op_pause_until = 0;
			snprintf(c.by, sizeof c.by, "root@%s", w->h[0].name);
			trace(w, "operator: resume");
			op_commit(w, &c);
		}
		if (!w->faults && raft_fixture_time(&w->f) >= w->op_next) {
			w->op_next = raft_fixture_time(&w->f) + 2000;
			operator(w);
		}
		step(w);
	}
	if (w->violation[0] == '\0' && !converged(w)) {
		const struct hv_state *s = truth(w);
		char where[256] = "";
		size_t off = 0;
		for (unsigned k = 0; k < s->n_members && off < sizeof where; k++)
			off += (size_t)snprintf(
			    where + off, sizeof where - off, " %s:%s/%s/%s",
			    s->members[k].name, hv_phase_name(s->members[k].cycle),
			    hv_maint_name(s->members[k].maint), w->h[k].booted);
		violation(
		    w,
		    "not every host patched to %s after the faults healed (%lu steps, "
		    "t=%llu ms; paused %d: %s; rollout %s):%s",
		    w->target, w->steps, (unsigned long long)raft_fixture_time(&w->f),
		    s->paused, s->pause_reason, s->rollout.active ? "active" : "over",
		    where);
	}
	if (w->violation[0] != '\0') {
		if (!quiet)
			printf("# seed %llu: %s\n", (unsigned long long)seed,
			       w->violation);
		rv = w->stale_effects > 0 ? 2 : 1;
	}
	if (verbose)
		printf(
		    "# seed %llu: %lu steps, %llu ms, %lu commits, %lu faults, %lu side "
		    "effects (%lu stale), target %s\n",
		    (unsigned long long)seed, w->steps,
		    (unsigned long long)raft_fixture_time(&w->f), w->n_commits,
		    w->n_faults, w->effects, w->stale_effects, w->target);
	*steps = w->steps;
	policy_totals.gated += w->n_gated_grants;
	policy_totals.retries += w->n_retries;
	policy_totals.tolerated += w->n_tolerated;
	policy_totals.soaked += w->n_soaked;
	policy_totals.hangs += w->n_hangs;
	policy_totals.power_cycles += w->n_power_cycles;
	policy_totals.gave_up += w->n_gave_up;
	policy_totals.breaks += w->n_breaks;
	world_free(w);
	free(w);
	return rv;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: test_world [--seeds A-B] [--seed N] [-v] [--inject-bug]\n"
	        "  HV_SIM_SEED=N: one seed with a trace; HV_SIM_SEEDS=A-B: a range\n");
	exit(2);
}

static bool parse_range(const char *s, unsigned long long *from, unsigned long long *to)
{
	char end;

	if (sscanf(s, "%llu-%llu%c", from, to, &end) == 2)
		return *from >= 1 && *from <= *to;
	if (sscanf(s, "%llu%c", to, &end) == 1) {
		*from = 1; /* N: seeds 1-N */
		return *to >= 1;
	}
	return false;
}

static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long long from = 1, to = 10000;
	bool verbose = false, inject = false, seeds_given = false;
	const char *one = getenv("HV_SIM_SEED"), *range = getenv("HV_SIM_SEEDS");
	unsigned long failed = 0, fencing = 0, total_steps = 0;
	unsigned long long first_failed = 0, n;
	double t0 = wall_s();

	if (range != NULL && *range != '\0' && !parse_range(range, &from, &to)) {
		fprintf(stderr, "test_world: HV_SIM_SEEDS=%s: want A-B or N\n", range);
		return 2;
	}
	if (one != NULL && *one != '\0') {
		from = to = strtoull(one, NULL, 10);
		verbose = seeds_given = true;
	}
	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "-v") == 0) {
			verbose = true;
		} else if (strcmp(argv[a], "--inject-bug") == 0) {
			inject = true;
		} else if (strcmp(argv[a], "--seed") == 0 && a + 1 < argc) {
			from = to = strtoull(argv[++a], NULL, 10);
			seeds_given = true;
		} else if (strcmp(argv[a], "--seeds") == 0 && a + 1 < argc) {
			if (!parse_range(argv[++a], &from, &to))
				usage();
			seeds_given = true;
		} else {
			usage();
		}
	}
	/* The planted bug's range is its own (HV_SIM_SEEDS is the world's). */
	if (inject && !seeds_given)
		from = 1, to = INJECT_SEEDS;
	n = to - from + 1;
	printf("1..1\n");
	printf("# seeds %llu-%llu (%llu worlds)%s\n", from, to, n,
	       inject ? ", a driver that skips its fencing (--inject-bug)" : "");
	fflush(stdout);
	for (unsigned long long seed = from; seed <= to; seed++) {
		unsigned long steps = 0;
		/* With the planted bug most seeds fail: say only how many. */
		int rv = run_seed(seed, verbose, inject, inject && !verbose, &steps);
		if (rv != 0) {
			if (failed++ == 0 && !inject)
				first_failed = seed;
			if (rv == 2 && fencing++ == 0 && inject)
				first_failed = seed;
			if (!inject && failed <= 20)
				printf(
				    "# reproduce: tests/sim/test_world --seed %llu -v\n",
				    seed);
			fflush(stdout);
		}
		total_steps += steps;
	}
	if (inject) {
		/* The checks must be able to fail: a driver without its fence
		 * does side effects without a lease or while the line is
		 * stopped, and the fencing invariant has to see it. */
		printf("%s 1 - inject-bug: seeds %llu-%llu: the fencing invariant "
		       "caught the planted bug in %lu, another check in %lu, "
		       "%llu passed (%.1f s)\n",
		       fencing > 0 ? "ok" : "not ok", from, to, fencing, failed - fencing,
		       n - failed, wall_s() - t0);
		if (fencing > 0)
			printf(
			    "# e.g. tests/sim/test_world --inject-bug --seed %llu -v\n",
			    first_failed);
		return fencing > 0 ? 0 : 1;
	}
	printf("%s 1 - world: seeds %llu-%llu: %llu passed, %lu failed (%lu steps, "
	       "%.1f s)\n",
	       failed ? "not ok" : "ok", from, to, n - failed, failed, total_steps,
	       wall_s() - t0);
	printf("# policies: %lu grants through the leader's gate, %lu pre-check "
	       "retries, %lu failures the line went on after, %lu canaries soaked\n",
	       policy_totals.gated, policy_totals.retries, policy_totals.tolerated,
	       policy_totals.soaked);
	printf("# watchdog: %lu reboots hung, %lu power cycles, %lu times it gave up; "
	       "%lu leases of frozen holders broken by the operator\n",
	       policy_totals.hangs, policy_totals.power_cycles, policy_totals.gave_up,
	       policy_totals.breaks);
	if (failed)
		printf(
		    "# first failed seed: %llu; reproduce: tests/sim/test_world --seed "
		    "%llu -v\n",
		    first_failed, first_failed);
	return failed ? 1 : 0;
}
