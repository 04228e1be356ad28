/*
 * Deterministic in-memory clusters on libraft's fixture, each server with
 * its own struct hv_state behind a struct hv_fsm.
 *
 * Every fixture step is checked (a hook plus the FSMs' applied callback):
 *  - on every server: n_holders <= max_concurrent, last_token never goes
 *    down, a new grant's token is above every earlier one, a holder's token
 *    is at most last_token;
 *  - across servers: whatever two servers applied at the same log index is
 *    the same command with the same result (a committed entry is never
 *    replaced), and a fencing token always belongs to the same host.
 * A broken rule makes the next step fail the test, naming it.
 *
 * The fixture is set up with raft_fixture_initialize() and raft_fixture_grow()
 * (in 0.22 raft_fixture_init(f) is the same call), the API that libraft 0.15
 * also has: the Figure-8 test builds against 0.15 unchanged and fails there.
 * Set HV_SIM_TRACE=1 to see libraft's fixture trace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "../../consensus/codec.h"
#include "../../consensus/fsm.h"
#include "../../consensus/state.h"
#include "../../lib/err.h"

/* Only so that this file also builds against libraft 0.15 (see above). */
#ifndef RAFT_VERSION_NUMBER
#define RAFT_INSTALL_SNAPSHOT RAFT_IO_INSTALL_SNAPSHOT
#endif

#define MAX_SERVERS RAFT_FIXTURE_MAX_SERVERS
#define MAX_INDEX 4096 /* log indexes a test may reach */
#define MAX_OPS 512
#define MAX_STEPS 10000 /* per wait: each is one fixture event */

struct sim;

/* A raft_apply() (or raft_add/raft_assign) issued by a test. */
struct op {
	union {
		struct raft_apply apply;
		struct raft_change change;
	} req;
	struct hv_cmd cmd;
	unsigned server;
	bool done;
	int status;     /* libraft's */
	int code;       /* HV_*, when status is 0 */
	uint64_t token; /* from the apply result */
	uint64_t index; /* req.apply.index */
};

struct sim {
	struct raft_fixture fixture;
	unsigned n;
	struct hv_state *states[MAX_SERVERS];
	struct hv_fsm fsms[MAX_SERVERS];

	/* Per log index: a digest of the command and result applied there
	 * (0: nothing applied yet) and the first server that applied it. */
	uint64_t applied[MAX_INDEX];
	unsigned applied_by[MAX_INDEX];
	/* Per fencing token: a digest of the host it was granted to. */
	uint64_t owner[MAX_INDEX];

	uint64_t last_applied[MAX_SERVERS]; /* last index seen by the FSM */
	uint64_t last_token[MAX_SERVERS];   /* as seen at the last step */
	uint64_t last_grant[MAX_SERVERS];   /* highest token granted */
	unsigned long n_applied[MAX_SERVERS];

	struct op ops[MAX_OPS];
	unsigned n_ops;
	unsigned long steps;
	char violation[512];
};

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

static uint64_t digest_str(uint64_t h, const char *s)
{
	return fnv(h, s, strlen(s) + 1);
}

static uint64_t digest_name(const char *name)
{
	return digest_str(0xcbf29ce484222325ull, name) | 1;
}

static uint64_t digest_cmd(const struct hv_cmd *c, int rc)
{
	uint64_t h = 0xcbf29ce484222325ull;

	h = fnv(h, &rc, sizeof rc);
	if (c == NULL)
		return h | 1;
	h = fnv(h, &c->type, sizeof c->type);
	h = fnv(h, &c->time_ms, sizeof c->time_ms);
	h = fnv(h, &c->id, sizeof c->id);
	h = fnv(h, &c->token, sizeof c->token);
	h = fnv(h, &c->role, sizeof c->role);
	h = fnv(h, &c->max_concurrent, sizeof c->max_concurrent);
	h = digest_str(h, c->name);
	h = digest_str(h, c->address);
	h = digest_str(h, c->by);
	h = digest_str(h, c->phase);
	h = digest_str(h, c->version);
	h = digest_str(h, c->reason);
	return h | 1;
}

__attribute__((format(printf, 2, 3))) static void violation(struct sim *s,
                                                            const char *fmt, ...)
{
	va_list ap;

	if (s->violation[0] != '\0')
		return; /* keep the first */
	va_start(ap, fmt);
	vsnprintf(s->violation, sizeof s->violation, fmt, ap);
	va_end(ap);
}

static unsigned server_of(struct sim *s, struct hv_fsm *f)
{
	return (unsigned)(f - s->fsms);
}

static void check_owner(struct sim *s, unsigned i, uint64_t token, const char *name)
{
	uint64_t d = digest_name(name);

	if (token == 0 || token >= MAX_INDEX) {
		violation(s, "server %u: holder %s has token %llu", i, name,
		          (unsigned long long)token);
		return;
	}
	if (s->owner[token] == 0)
		s->owner[token] = d;
	else if (s->owner[token] != d)
		violation(s,
		          "token %llu held by %s on server %u, granted to "
		          "another host elsewhere",
		          (unsigned long long)token, name, i);
}

/* hv_fsm's applied callback: runs inside libraft, on every replica. */
static void on_applied(struct hv_fsm *f, uint64_t index, const struct hv_cmd *cmd, int rc)
{
	struct sim *s = f->data;
	unsigned i = server_of(s, f);
	uint64_t d = digest_cmd(cmd, rc);

	s->n_applied[i]++;
	if (index <= s->last_applied[i])
		violation(s, "server %u applied index %llu after %llu", i,
		          (unsigned long long)index,
		          (unsigned long long)s->last_applied[i]);
	s->last_applied[i] = index;
	if (index >= MAX_INDEX) {
		violation(s, "index %llu beyond the test's table",
		          (unsigned long long)index);
		return;
	}
	if (s->applied[index] == 0) {
		s->applied[index] = d;
		s->applied_by[index] = i;
	} else if (s->applied[index] != d) {
		violation(s,
		          "index %llu: server %u applied %s (%s), server %u "
		          "applied something else there: a committed entry "
		          "was replaced",
		          (unsigned long long)index, i,
		          cmd != NULL ? hv_cmd_name(cmd->type) : "garbage",
		          hv_errname(rc), s->applied_by[index]);
	}
	if (cmd != NULL && cmd->type == HV_CMD_LEASE_ACQUIRE && rc == HV_OK) {
		const struct hv_holder *h = hv_state_holder(f->state, cmd->name);

		if (h == NULL) {
			violation(s, "server %u: granted %s but no holder", i, cmd->name);
			return;
		}
		if (h->token == index) { /* a new grant */
			if (index <= s->last_grant[i])
				violation(s,
				          "server %u: grant token %llu not above "
				          "earlier grant %llu",
				          i, (unsigned long long)index,
				          (unsigned long long)s->last_grant[i]);
			s->last_grant[i] = index;
		} else if (h->token > index) {
			violation(s,
			          "server %u: holder token %llu from the "
			          "future at %llu",
			          i, (unsigned long long)h->token,
			          (unsigned long long)index);
		}
	}
}

static void check_state(struct sim *s, unsigned i)
{
	const struct hv_state *st = s->states[i];

	if (st->n_holders > st->max_concurrent)
		violation(s, "server %u: %u holders, max_concurrent %u", i, st->n_holders,
		          st->max_concurrent);
	if (st->last_token < s->last_token[i])
		violation(s, "server %u: last_token went from %llu to %llu", i,
		          (unsigned long long)s->last_token[i],
		          (unsigned long long)st->last_token);
	s->last_token[i] = st->last_token;
	if (st->last_token > s->last_grant[i])
		s->last_grant[i] = st->last_token; /* from a snapshot */
	for (unsigned h = 0; h < st->n_holders; h++) {
		if (st->holders[h].token > st->last_token)
			violation(s, "server %u: %s holds token %llu > last %llu", i,
			          st->holders[h].name,
			          (unsigned long long)st->holders[h].token,
			          (unsigned long long)st->last_token);
		check_owner(s, i, st->holders[h].token, st->holders[h].name);
	}
}

/* The fixture calls this after every step. */
static void on_step(struct raft_fixture *f, struct raft_fixture_event *event)
{
	struct sim *s = (struct sim *)((char *)f - offsetof(struct sim, fixture));

	(void)event;
	s->steps++;
	for (unsigned i = 0; i < s->n; i++)
		check_state(s, i);
}

/* ---- driving the cluster ------------------------------------------------ */

static struct raft *R(struct sim *s, unsigned i)
{
	return raft_fixture_get(&s->fixture, i);
}

static void step(struct sim *s)
{
	raft_fixture_step(&s->fixture);
	if (s->violation[0] != '\0')
		fail_msg("after step %lu (t=%llu ms): %s", s->steps,
		         (unsigned long long)raft_fixture_time(&s->fixture),
		         s->violation);
}

typedef bool (*cond_fn)(struct sim *s, const void *arg);

/* Step until cond holds; false when it did not within MAX_STEPS. */
static bool until(struct sim *s, cond_fn cond, const void *arg)
{
	for (unsigned n = 0; n < MAX_STEPS; n++) {
		if (cond(s, arg))
			return true;
		step(s);
	}
	return cond(s, arg);
}

#define WAIT(s, cond, arg)                                                         \
	do {                                                                       \
		if (!until(s, cond, arg))                                          \
			fail_msg("%s: not reached in %u steps", #cond, MAX_STEPS); \
	} while (0)

static unsigned grow(struct sim *s)
{
	unsigned i = s->n;
	struct raft *r;

	assert_true(i < MAX_SERVERS);
	s->states[i] = malloc(sizeof *s->states[i]);
	assert_non_null(s->states[i]);
	hv_state_init(s->states[i]);
	hv_fsm_init(&s->fsms[i], s->states[i]);
	s->fsms[i].applied = on_applied;
	s->fsms[i].data = s;
	assert_int_equal(raft_fixture_grow(&s->fixture, &s->fsms[i].fsm), 0);
	r = raft_fixture_get(&s->fixture, i);
	s->fsms[i].raft = r;
#ifdef RAFT_VERSION_NUMBER /* 0.15 needs a tracer; its fixture's is quiet */
	if (getenv("HV_SIM_TRACE") == NULL)
		r->tracer = NULL;
#endif
	s->n++;
	return i;
}

static struct sim *sim_new(unsigned n, bool pre_vote)
{
	struct raft_configuration conf;
	struct sim *s = calloc(1, sizeof *s);

	assert_non_null(s);
	assert_int_equal(raft_fixture_initialize(&s->fixture), 0);
	for (unsigned i = 0; i < n; i++) {
		grow(s);
		raft_set_pre_vote(R(s, i), pre_vote);
	}
	assert_int_equal(raft_fixture_configuration(&s->fixture, n, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&s->fixture, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&s->fixture), 0);
	raft_fixture_hook(&s->fixture, on_step);
	return s;
}

static void sim_free(struct sim *s)
{
	if (s == NULL)
		return;
	/* Pending requests fail with RAFT_SHUTDOWN here: s->ops must still
	 * be alive. */
	raft_fixture_close(&s->fixture);
	for (unsigned i = 0; i < s->n; i++)
		free(s->states[i]);
	free(s);
}

static int teardown(void **state)
{
	sim_free(*state);
	*state = NULL;
	return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct op *op = req->data;

	op->done = true;
	op->status = status;
	op->index = req->index;
	if (status == 0) {
		op->code = hv_fsm_result_code(result);
		op->token = hv_fsm_result_token(result);
	}
}

static struct op *new_op(struct sim *s, unsigned server)
{
	struct op *op;

	assert_true(s->n_ops < MAX_OPS);
	op = &s->ops[s->n_ops++];
	memset(op, 0, sizeof *op);
	op->server = server;
	op->code = -1;
	return op;
}

/* Propose c on server i. When raft_apply() refuses (not leader), the op is
 * done at once with that status. */
static struct op *submit(struct sim *s, unsigned i, struct hv_cmd c)
{
	struct op *op = new_op(s, i);
	struct raft_buffer buf;
	size_t len;
	int rv;

	op->cmd = c;
	assert_int_equal(hv_cmd_encode(&c, raft_malloc, &buf.base, &len), HV_OK);
	buf.len = len;
	op->req.apply.data = op;
	rv = raft_apply(R(s, i), &op->req.apply, &buf, 1, apply_cb);
	if (rv != 0) {
		raft_free(buf.base);
		op->done = true;
		op->status = rv;
	} else {
		op->index = op->req.apply.index;
	}
	return op;
}

static bool op_done(struct sim *s, const void *arg)
{
	(void)s;
	return ((const struct op *)arg)->done;
}

/* Submit on i and wait for the result, which must be applied (status 0). */
static struct op *run(struct sim *s, unsigned i, struct hv_cmd c)
{
	struct op *op = submit(s, i, c);

	assert_int_equal(op->status, 0);
	WAIT(s, op_done, op);
	if (op->status != 0)
		fail_msg("%s on server %u: raft status %d (%s)", hv_cmd_name(c.type), i,
		         op->status, raft_strerror(op->status));
	return op;
}

static bool has_leader(struct sim *s, const void *arg)
{
	(void)arg;
	return raft_fixture_leader_index(&s->fixture) < s->n;
}

static unsigned leader(struct sim *s)
{
	WAIT(s, has_leader, NULL);
	return raft_fixture_leader_index(&s->fixture);
}

struct server_index {
	unsigned i;
	uint64_t index;
};

static bool applied_on(struct sim *s, const void *arg)
{
	const struct server_index *a = arg;

	return raft_last_applied(R(s, a->i)) >= a->index;
}

/* Every alive server applied `index`. */
static bool applied_everywhere(struct sim *s, const void *arg)
{
	uint64_t index = *(const uint64_t *)arg;

	for (unsigned i = 0; i < s->n; i++)
		if (raft_fixture_alive(&s->fixture, i) &&
		    raft_last_applied(R(s, i)) < index)
			return false;
	return true;
}

/* A stable leader whose whole log is committed and applied everywhere. */
static bool converged(struct sim *s, const void *arg)
{
	unsigned l = raft_fixture_leader_index(&s->fixture);
	raft_index last;

	(void)arg;
	if (l >= s->n)
		return false;
	last = raft_last_index(R(s, l));
	if (R(s, l)->commit_index != last)
		return false;
	for (unsigned i = 0; i < s->n; i++)
		if (raft_last_applied(R(s, i)) != last)
			return false;
	return true;
}

static void assert_all_equal(struct sim *s)
{
	for (unsigned i = 1; i < s->n; i++)
		if (!hv_state_equal(s->states[0], s->states[i]))
			fail_msg("server %u's state differs from server 0's", i);
}

static void converge(struct sim *s)
{
	WAIT(s, converged, NULL);
	assert_all_equal(s);
}

/* Cut i off from every other server, both ways, or heal that. Links to a
 * dead server stay cut: killing a server is saturating its links, and a
 * revive restores them. */
static void isolate(struct sim *s, unsigned i, bool on)
{
	for (unsigned j = 0; j < s->n; j++) {
		if (j == i)
			continue;
		if (!on && !raft_fixture_alive(&s->fixture, j))
			continue;
		if (on) {
			raft_fixture_saturate(&s->fixture, i, j);
			raft_fixture_saturate(&s->fixture, j, i);
		} else {
			raft_fixture_desaturate(&s->fixture, i, j);
			raft_fixture_desaturate(&s->fixture, j, i);
		}
	}
}

static const char *state_name(int state)
{
	switch (state) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "?";
}

/* With HV_SIM_TRACE set, print where every server stands. */
static void dump(struct sim *s, const char *what)
{
	if (getenv("HV_SIM_TRACE") == NULL)
		return;
	fprintf(stderr, "---- t=%llu %s\n",
	        (unsigned long long)raft_fixture_time(&s->fixture), what);
	for (unsigned i = 0; i < s->n; i++) {
		struct raft *r = R(s, i);
		fprintf(stderr,
		        "  %u: %s %-9s term %llu last %llu commit %llu "
		        "applied %llu holders %u last_token %llu\n",
		        i, raft_fixture_alive(&s->fixture, i) ? "up  " : "dead",
		        state_name((int)raft_state(r)),
		        (unsigned long long)r->current_term,
		        (unsigned long long)raft_last_index(r),
		        (unsigned long long)r->commit_index,
		        (unsigned long long)raft_last_applied(r), s->states[i]->n_holders,
		        (unsigned long long)s->states[i]->last_token);
	}
}

/* ---- commands ----------------------------------------------------------- */

static uint64_t clock_ms = 1700000000000ull;

static struct hv_cmd cmd(int type)
{
	struct hv_cmd c;

	memset(&c, 0, sizeof c);
	c.type = type;
	c.time_ms = ++clock_ms; /* distinct per command */
	return c;
}

static struct hv_cmd c_add(const char *name, uint64_t id)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_ADD);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.address, sizeof c.address, "127.0.0.1:%llu",
	         (unsigned long long)(7000 + id));
	c.id = id;
	c.role = HV_ROLE_VOTER;
	return c;
}

static struct hv_cmd c_acquire(const char *name)
{
	struct hv_cmd c = cmd(HV_CMD_LEASE_ACQUIRE);

	snprintf(c.name, sizeof c.name, "%s", name);
	return c;
}

static struct hv_cmd c_release(const char *name, uint64_t token)
{
	struct hv_cmd c = cmd(HV_CMD_LEASE_RELEASE);

	snprintf(c.name, sizeof c.name, "%s", name);
	c.token = token;
	return c;
}

static struct hv_cmd c_report(const char *name, unsigned n)
{
	struct hv_cmd c = cmd(HV_CMD_REPORT);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.phase, sizeof c.phase, "phase%u", n % 7);
	snprintf(c.version, sizeof c.version, "1.%u", n);
	return c;
}

static struct hv_cmd c_settings(unsigned max)
{
	struct hv_cmd c = cmd(HV_CMD_SETTINGS);

	c.max_concurrent = max;
	return c;
}

static void add_members(struct sim *s, unsigned l, unsigned n)
{
	char name[16];

	for (unsigned i = 1; i <= n; i++) {
		snprintf(name, sizeof name, "hv%u", i);
		assert_int_equal(run(s, l, c_add(name, i))->code, HV_OK);
	}
}

/* ---- a) the fencing token is the log index -------------------------------- */

static void token_is_index(void **state, unsigned n)
{
	struct sim *s = sim_new(n, false);
	struct op *a, *b, *again, *rel, *c, *d;
	unsigned l;

	*state = s;
	l = leader(s);
	add_members(s, l, n);

	a = run(s, l, c_acquire("hv1"));
	assert_int_equal(a->code, HV_OK);
	assert_true(a->index > 0);
	assert_true(a->token == a->index);

	/* The lease is held: a second host is refused, without a token. */
	b = run(s, l, c_acquire("hv2"));
	assert_int_equal(b->code, HV_LEASEFULL);
	assert_true(b->token == 0);

	/* The holder retrying gets its original token, not its new index. */
	again = run(s, l, c_acquire("hv1"));
	assert_int_equal(again->code, HV_OK);
	assert_true(again->index > a->index);
	assert_true(again->token == a->index);

	rel = run(s, l, c_release("hv1", a->token));
	assert_int_equal(rel->code, HV_OK);
	c = run(s, l, c_acquire("hv2"));
	assert_int_equal(c->code, HV_OK);
	assert_true(c->token == c->index);
	assert_true(c->token > a->token);

	/* Several proposals in flight at once: a host's first grant gets its
	 * own entry's index, whatever was applied around it; its retries get
	 * that same token back. */
	struct op *batch[8];
	run(s, l, c_settings(4));
	run(s, l, c_release("hv2", c->token));
	for (unsigned k = 0; k < 8; k++) {
		char name[16];
		snprintf(name, sizeof name, "hv%u", 1 + (k / 2 * 2) % n);
		batch[k] = submit(s, l, k % 2 ? c_report(name, k) : c_acquire(name));
		assert_int_equal(batch[k]->status, 0);
	}
	for (unsigned k = 0; k < 8; k++) {
		const struct op *first = NULL;

		WAIT(s, op_done, batch[k]);
		assert_int_equal(batch[k]->status, 0);
		assert_int_equal(batch[k]->code, HV_OK);
		if (batch[k]->cmd.type != HV_CMD_LEASE_ACQUIRE)
			continue;
		for (unsigned j = 0; j < k && first == NULL; j += 2)
			if (strcmp(batch[j]->cmd.name, batch[k]->cmd.name) == 0)
				first = batch[j];
		if (first == NULL)
			assert_true(batch[k]->token == batch[k]->index);
		else
			assert_true(batch[k]->token == first->index);
	}
	d = batch[7];

	/* Every server applied the same thing and holds the same state. */
	WAIT(s, applied_everywhere, &d->index);
	converge(s);
	for (unsigned i = 0; i < n; i++) {
		assert_true(s->states[i]->last_token >= c->index);
		assert_true(s->n_applied[i] > 0);
	}
	assert_true(s->applied[a->index] == digest_cmd(&a->cmd, HV_OK));
}

static void test_token_is_index_3(void **state)
{
	token_is_index(state, 3);
}

static void test_token_is_index_5(void **state)
{
	token_is_index(state, 5);
}

/* Bytes that are no command reach every replica the same way: refused and
 * counted, never fatal to the log. */
static struct op *submit_raw(struct sim *s, unsigned i, const void *bytes, size_t len)
{
	struct op *op = new_op(s, i);
	struct raft_buffer buf;

	buf.len = len;
	buf.base = raft_malloc(len);
	assert_non_null(buf.base);
	memcpy(buf.base, bytes, len);
	op->req.apply.data = op;
	assert_int_equal(raft_apply(R(s, i), &op->req.apply, &buf, 1, apply_cb), 0);
	op->index = op->req.apply.index;
	return op;
}

static void test_garbage_entries(void **state)
{
	static const unsigned char junk[8] = {0xc1, 1, 2, 3, 4, 5, 6, 7};
	static const unsigned char v2[] = {0x83, 0xa1, 'v', 0x02, 0xa1, 't',
	                                   0x05, 0xa2, 't', 's',  0x01};
	struct sim *s = sim_new(3, false);
	struct op *bad, *ver, *ok;
	unsigned l;

	*state = s;
	l = leader(s);
	add_members(s, l, 3);
	bad = submit_raw(s, l, junk, sizeof junk);
	ver = submit_raw(s, l, v2, sizeof v2);
	ok = submit(s, l, c_acquire("hv2"));
	WAIT(s, op_done, ok);
	assert_int_equal(bad->status, 0);
	assert_int_equal(bad->code, HV_MALFORMED);
	assert_true(bad->token == 0);
	assert_int_equal(ver->status, 0);
	assert_int_equal(ver->code, HV_VERSION);
	assert_int_equal(ok->code, HV_OK);
	assert_true(ok->token == ok->index);
	WAIT(s, applied_everywhere, &ok->index);
	converge(s);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(s->states[i]->rejected == 2);
		assert_true(s->states[i]->last_index == ok->index);
	}
}

/* ---- b) lease safety through isolation, re-election and heal --------------- */

struct not_state {
	unsigned i;
	int state;
};

static bool state_is_not(struct sim *s, const void *arg)
{
	const struct not_state *a = arg;

	return (int)raft_state(R(s, a->i)) != a->state;
}

/* A stable leader other than `old`. */
static bool other_leader(struct sim *s, const void *arg)
{
	unsigned old = *(const unsigned *)arg;
	unsigned l = raft_fixture_leader_index(&s->fixture);

	return l < s->n && l != old;
}

static void lease_through_partition(void **state, unsigned n, bool pre_vote)
{
	struct sim *s = sim_new(n, pre_vote);
	struct op *grant, *stale_acq, *stale_rel, *refused, *late, *rel, *next;
	unsigned old, l;

	*state = s;
	old = leader(s);
	add_members(s, old, n);
	grant = run(s, old, c_acquire("hv1"));
	assert_int_equal(grant->code, HV_OK);
	WAIT(s, applied_everywhere, &grant->index);

	/* The leader is cut off but does not know it yet: what it accepts now
	 * can never commit. */
	isolate(s, old, true);
	stale_rel = submit(s, old, c_release("hv1", grant->token));
	stale_acq = submit(s, old, c_acquire("hv2"));
	assert_int_equal(stale_rel->status, 0);
	assert_int_equal(stale_acq->status, 0);

	/* The others elect a new leader, which still knows the lease. */
	WAIT(s, other_leader, &old);
	l = raft_fixture_leader_index(&s->fixture);
	refused = run(s, l, c_acquire("hv2"));
	assert_int_equal(refused->code, HV_LEASEFULL);
	assert_true(refused->token == 0);
	for (unsigned i = 0; i < n; i++) {
		const struct hv_holder *h;
		if (i == old)
			continue;
		h = hv_state_holder(s->states[i], "hv1");
		if (raft_last_applied(R(s, i)) >= refused->index) {
			assert_non_null(h);
			assert_true(h->token == grant->token);
		}
	}

	/* The old leader steps down on its own; its pending proposals fail and
	 * new ones are refused. */
	struct not_state nl = {old, RAFT_LEADER};
	WAIT(s, state_is_not, &nl);
	WAIT(s, op_done, stale_rel);
	WAIT(s, op_done, stale_acq);
	assert_int_equal(stale_rel->status, RAFT_LEADERSHIPLOST);
	assert_int_equal(stale_acq->status, RAFT_LEADERSHIPLOST);
	late = submit(s, old, c_acquire("hv2"));
	assert_true(late->done);
	assert_int_equal(late->status, RAFT_NOTLEADER);
	/* Nothing of it reached the old leader's state either. */
	assert_non_null(hv_state_holder(s->states[old], "hv1"));
	assert_null(hv_state_holder(s->states[old], "hv2"));

	/* Heal: everyone converges on the majority's history. */
	isolate(s, old, false);
	converge(s);
	for (unsigned i = 0; i < n; i++) {
		const struct hv_holder *h = hv_state_holder(s->states[i], "hv1");
		assert_non_null(h);
		assert_true(h->token == grant->token);
		assert_null(hv_state_holder(s->states[i], "hv2"));
		assert_int_equal(s->states[i]->n_holders, 1);
	}

	/* And the lease moves on normally, with a bigger token. */
	l = leader(s);
	rel = run(s, l, c_release("hv1", grant->token));
	assert_int_equal(rel->code, HV_OK);
	next = run(s, l, c_acquire("hv2"));
	assert_int_equal(next->code, HV_OK);
	assert_true(next->token == next->index);
	assert_true(next->token > grant->token);
	converge(s);
}

static void test_lease_partition_3(void **state)
{
	lease_through_partition(state, 3, false);
}

static void test_lease_partition_5_prevote(void **state)
{
	lease_through_partition(state, 5, true);
}

/* The leader crashes (killed) instead of being cut off, twice in a row. */
static void test_lease_leader_crashes(void **state)
{
	struct sim *s = sim_new(5, false);
	struct op *grant, *pending, *refused;
	unsigned l1, l2, l3;

	*state = s;
	l1 = leader(s);
	add_members(s, l1, 5);
	grant = run(s, l1, c_acquire("hv3"));
	pending = submit(s, l1, c_acquire("hv4"));
	raft_fixture_kill(&s->fixture, l1);

	WAIT(s, other_leader, &l1);
	l2 = raft_fixture_leader_index(&s->fixture);
	refused = run(s, l2, c_acquire("hv5"));
	assert_int_equal(refused->code, HV_LEASEFULL);
	raft_fixture_kill(&s->fixture, l2);

	/* Three of five left: still a majority. */
	WAIT(s, other_leader, &l2);
	l3 = raft_fixture_leader_index(&s->fixture);
	assert_int_not_equal(l3, l1);
	refused = run(s, l3, c_acquire("hv5"));
	assert_int_equal(refused->code, HV_LEASEFULL);

	raft_fixture_revive(&s->fixture, l1);
	raft_fixture_revive(&s->fixture, l2);
	converge(s);
	WAIT(s, op_done, pending);
	assert_int_equal(pending->status, RAFT_LEADERSHIPLOST);
	for (unsigned i = 0; i < 5; i++) {
		assert_true(hv_state_holder(s->states[i], "hv3")->token == grant->token);
		assert_int_equal(s->states[i]->n_holders, 1);
	}
}

/* ---- c) Figure 8 ------------------------------------------------------------ */

/* Leader = server i, in the raft sense (not the fixture's "stable"). */
static bool is_leader(struct sim *s, const void *arg)
{
	return raft_state(R(s, *(const unsigned *)arg)) == RAFT_LEADER;
}

static bool leader_among(struct sim *s, const void *arg)
{
	const unsigned *set = arg; /* set[0] = count */

	for (unsigned k = 1; k <= set[0]; k++)
		if (raft_state(R(s, set[k])) == RAFT_LEADER)
			return true;
	return false;
}

static bool appended_on(struct sim *s, const void *arg)
{
	const struct server_index *a = arg;

	return raft_last_index(R(s, a->i)) >= a->index;
}

static bool committed_on(struct sim *s, const void *arg)
{
	const struct server_index *a = arg;

	return R(s, a->i)->commit_index >= a->index;
}

/*
 * The Raft paper's Figure 8 on three servers A, B, C, with the crashes done
 * by killing servers (a dead server keeps its log and term):
 *
 *  (a) A leads; the log is committed everywhere up to k. A appends X at k+1
 *      (a grant of the lease to hv1) and crashes before sending it.
 *  (b) B (or C) is elected, appends Y at k+1 (a grant to hv2) in a later
 *      term, and crashes before sending it.
 *  (c) A comes back and wins with the third server's vote (its log is
 *      longer), and replicates X, an entry of an older term, to it. A
 *      leader may only commit it once an entry of its own term is on a
 *      majority too (libraft >= 0.17.1 appends a barrier for that); a
 *      libraft that counts replicas (0.15) commits and applies X now. A
 *      crashes right when its commit index covers X.
 *  (d) The server with Y comes back. If X was committed correctly, the
 *      third server's log has an entry of A's term and it cannot vote for
 *      Y's author; with 0.15 it can, Y overwrites the committed X, and the
 *      same fencing token k+1 is granted to two different hosts.
 *
 * Whatever was applied at k+1 anywhere must be what every server applies
 * there (checked at every step), and in the end all servers hold the same
 * state with hv1 holding token k+1.
 */
static void test_figure8(void **state)
{
	struct sim *s = sim_new(3, false);
	const unsigned A = 0;
	struct op *x, *y;
	unsigned p, q, l;
	uint64_t k;

	*state = s;
	l = leader(s);
	assert_int_equal(l, A);
	add_members(s, A, 3);
	k = raft_last_index(R(s, A));
	WAIT(s, applied_everywhere, &k);

	/* (a) */
	x = submit(s, A, c_acquire("hv1"));
	assert_int_equal(x->status, 0);
	assert_true(x->index == k + 1);
	raft_fixture_kill(&s->fixture, A);
	dump(s, "(a) A appended X and crashed");

	/* (b) */
	unsigned bc[] = {2, 1, 2};
	WAIT(s, leader_among, bc);
	p = raft_state(R(s, 1)) == RAFT_LEADER ? 1 : 2;
	q = 3 - p;
	assert_true(R(s, p)->current_term > R(s, A)->current_term);
	y = submit(s, p, c_acquire("hv2"));
	assert_int_equal(y->status, 0);
	raft_fixture_kill(&s->fixture, p);
	assert_int_equal(raft_last_index(R(s, q)), k);
	dump(s, "(b) a new leader appended Y and crashed");

	/* (c) */
	raft_fixture_revive(&s->fixture, A);
	WAIT(s, is_leader, &A);
	struct server_index xc = {A, x->index};
	WAIT(s, committed_on, &xc);
	raft_fixture_kill(&s->fixture, A);
	dump(s, "(c) A came back, committed X and crashed");

	/* (d) */
	raft_fixture_revive(&s->fixture, p);
	unsigned pq[] = {2, p, q};
	WAIT(s, leader_among, pq);
	l = raft_state(R(s, p)) == RAFT_LEADER ? p : q;
	struct server_index lc = {l, x->index};
	WAIT(s, applied_on, &lc);
	dump(s, "(d) Y's author came back");

	/* Heal. */
	raft_fixture_revive(&s->fixture, A);
	converge(s);
	WAIT(s, op_done, y);
	assert_int_not_equal(y->status, 0); /* Y never committed */
	if (x->done && x->status == 0) {
		assert_int_equal(x->code, HV_OK);
		assert_true(x->token == x->index);
	}
	for (unsigned i = 0; i < 3; i++) {
		const struct hv_holder *h = hv_state_holder(s->states[i], "hv1");
		assert_non_null(h);
		assert_true(h->token == x->index);
		assert_null(hv_state_holder(s->states[i], "hv2"));
		assert_true(s->states[i]->last_token == x->index);
	}
	assert_true(s->applied[x->index] == digest_cmd(&x->cmd, HV_OK));
}

/*
 * The same on five servers, as drawn in the paper: S1 replicates index k+1
 * to S2 only; S5 wins with S3 and S4 and appends its own k+1; S1 comes back
 * with S2, S3 and replicates its k+1 to S3; then S5 runs again.
 */
static void test_figure8_5(void **state)
{
	struct sim *s = sim_new(5, false);
	const unsigned S1 = 0, S2 = 1, S3 = 2, S4 = 3, S5 = 4;
	struct op *x, *y;
	unsigned l;
	uint64_t k;

	*state = s;
	assert_int_equal(leader(s), S1);
	/* From now on S5 and S1 are the first to time out, the others much
	 * later (the fixture feeds these to raft's next random pick; they
	 * must lie in [election timeout, 2 x election timeout] or the
	 * fixture's seed search never ends). */
	for (unsigned i = S2; i <= S4; i++)
		raft_fixture_set_randomized_election_timeout(&s->fixture, i,
		                                             1600 + 100 * i);
	raft_fixture_set_randomized_election_timeout(&s->fixture, S5, 1000);
	raft_fixture_set_randomized_election_timeout(&s->fixture, S1, 1050);
	add_members(s, S1, 5);
	k = raft_last_index(R(s, S1));
	WAIT(s, applied_everywhere, &k);

	/* (a) S1 sends X to S2 only, then crashes. */
	raft_fixture_saturate(&s->fixture, S1, S3);
	raft_fixture_saturate(&s->fixture, S1, S4);
	raft_fixture_saturate(&s->fixture, S1, S5);
	x = submit(s, S1, c_acquire("hv1"));
	assert_int_equal(x->status, 0);
	struct server_index on_s2 = {S2, x->index};
	WAIT(s, appended_on, &on_s2);
	raft_fixture_kill(&s->fixture, S1); /* its links stay cut till revived */
	dump(s, "(a) S1 sent X to S2 and crashed");

	/* (b) S5 is elected by S3, S4 (S2, with X, would not vote for it),
	 * appends Y and crashes. */
	isolate(s, S2, true);
	WAIT(s, is_leader, &S5);
	y = submit(s, S5, c_acquire("hv2"));
	assert_int_equal(y->status, 0);
	raft_fixture_kill(&s->fixture, S5);
	isolate(s, S2, false);
	dump(s, "(b) S5 appended Y and crashed");

	/* (c) S1 restarts, wins, and replicates X to S3; S4 hears nothing. */
	raft_fixture_revive(&s->fixture, S1);
	raft_fixture_kill(&s->fixture, S4);
	WAIT(s, is_leader, &S1);
	struct server_index xc = {S1, x->index};
	WAIT(s, committed_on, &xc);
	raft_fixture_kill(&s->fixture, S1);
	dump(s, "(c) S1 came back, committed X and crashed");

	/* (d) S5 restarts with S2, S3, S4 around. */
	raft_fixture_revive(&s->fixture, S4);
	raft_fixture_revive(&s->fixture, S5);
	unsigned others[] = {4, S2, S3, S4, S5};
	WAIT(s, leader_among, others);
	for (l = S2; l <= S5; l++)
		if (raft_state(R(s, l)) == RAFT_LEADER)
			break;
	struct server_index lc = {l, x->index};
	WAIT(s, applied_on, &lc);
	dump(s, "(d) S5 came back");

	raft_fixture_revive(&s->fixture, S1);
	converge(s);
	WAIT(s, op_done, y);
	assert_int_not_equal(y->status, 0);
	for (unsigned i = 0; i < 5; i++) {
		const struct hv_holder *h = hv_state_holder(s->states[i], "hv1");
		assert_non_null(h);
		assert_true(h->token == x->index);
		assert_null(hv_state_holder(s->states[i], "hv2"));
	}
}

/* ---- d) snapshots ------------------------------------------------------------ */

static void set_snapshots(struct sim *s, unsigned i)
{
	raft_set_snapshot_threshold(R(s, i), 8);
	raft_set_snapshot_trailing(R(s, i), 2);
}

/* Enough varied commands that the log is snapshotted and truncated a few
 * times over; returns the index of the last one. */
static uint64_t churn(struct sim *s, unsigned l, unsigned n_members, unsigned rounds)
{
	struct op *op = NULL;

	for (unsigned r = 0; r < rounds; r++) {
		char name[16];
		struct op *g;

		snprintf(name, sizeof name, "hv%u", 1 + r % n_members);
		g = run(s, l, c_acquire(name));
		assert_int_equal(g->code, HV_OK);
		run(s, l, c_report(name, r));
		op = run(s, l, c_release(name, g->token));
		assert_int_equal(op->code, HV_OK);
	}
	/* End with a lease held, so the snapshot carries a holder. */
	op = run(s, l, c_acquire("hv1"));
	assert_int_equal(op->code, HV_OK);
	return op->index;
}

/* A follower misses so much that the leader no longer has the entries: it
 * must catch up from a snapshot and end up with the leader's state. */
static void test_snapshot_lagging_follower(void **state)
{
	/* With pre-vote the revived follower does not bump its term: without
	 * it, libraft 0.22.1 answers the leader's stale-term AppendEntries with
	 * an uninitialised last_log_index (valgrind flags it, see
	 * recv_append_entries.c, "local term is higher -> reject"). */
	struct sim *s = sim_new(3, true);
	unsigned l, lag;
	uint64_t last;

	*state = s;
	for (unsigned i = 0; i < 3; i++)
		set_snapshots(s, i);
	l = leader(s);
	lag = (l + 2) % 3;
	add_members(s, l, 3);
	raft_fixture_kill(&s->fixture, lag);
	last = churn(s, l, 3, 20);
	assert_true(last > 40);
	assert_true(raft_last_applied(R(s, lag)) < last - 30);
	assert_int_equal(raft_fixture_n_recv(&s->fixture, lag, RAFT_INSTALL_SNAPSHOT), 0);
	unsigned long before = s->n_applied[lag];

	raft_fixture_revive(&s->fixture, lag);
	WAIT(s, applied_everywhere, &last);
	converge(s);
	assert_true(raft_fixture_n_recv(&s->fixture, lag, RAFT_INSTALL_SNAPSHOT) >= 1);
	/* It did not replay the log: most entries came in the snapshot. */
	assert_true(s->n_applied[lag] - before < 20);
	assert_true(hv_state_equal(s->states[l], s->states[lag]));
	assert_non_null(hv_state_holder(s->states[lag], "hv1"));

	/* And it goes on applying normally after the install. */
	struct op *more = run(s, l, c_report("hv2", 99));
	WAIT(s, applied_everywhere, &more->index);
	converge(s);
}

static void change_cb(struct raft_change *req, int status)
{
	struct op *op = req->data;

	op->done = true;
	op->status = status;
}

/* A brand-new server joins a cluster whose log was compacted long ago. */
static void test_snapshot_new_server(void **state)
{
	struct sim *s = sim_new(3, true);
	struct op *add, *assign;
	unsigned l, nw;
	uint64_t last;

	*state = s;
	for (unsigned i = 0; i < 3; i++)
		set_snapshots(s, i);
	l = leader(s);
	add_members(s, l, 3);
	last = churn(s, l, 3, 15);
	(void)last;

	nw = grow(s);
	set_snapshots(s, nw);
	assert_int_equal(raft_start(R(s, nw)), 0);
	run(s, l, c_add("hv4", nw + 1));

	add = new_op(s, l);
	add->req.change.data = add;
	assert_int_equal(
	    raft_add(R(s, l), &add->req.change, nw + 1, R(s, nw)->address, change_cb), 0);
	WAIT(s, op_done, add);
	assert_int_equal(add->status, 0);
	assign = new_op(s, l);
	assign->req.change.data = assign;
	assert_int_equal(
	    raft_assign(R(s, l), &assign->req.change, nw + 1, RAFT_VOTER, change_cb), 0);
	WAIT(s, op_done, assign);
	assert_int_equal(assign->status, 0);

	converge(s);
	assert_true(raft_fixture_n_recv(&s->fixture, nw, RAFT_INSTALL_SNAPSHOT) >= 1);
	assert_true(hv_state_equal(s->states[l], s->states[nw]));
	assert_non_null(hv_state_member(s->states[nw], "hv4"));

	/* The new server is a full voter: with one of the old three down it
	 * is part of the majority, which still knows the lease. */
	unsigned gone = (l + 1) % 3;
	raft_fixture_kill(&s->fixture, gone);
	l = leader(s);
	struct op *g = run(s, l, c_acquire("hv4"));
	assert_int_equal(g->code, HV_LEASEFULL);
	raft_fixture_revive(&s->fixture, gone);
	converge(s);
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_token_is_index_3),
	    T(test_token_is_index_5),
	    T(test_garbage_entries),
	    T(test_lease_partition_3),
	    T(test_lease_partition_5_prevote),
	    T(test_lease_leader_crashes),
	    T(test_figure8),
	    T(test_figure8_5),
	    T(test_snapshot_lagging_follower),
	    T(test_snapshot_new_server),
	};

	return cmocka_run_group_tests_name("fixture", tests, NULL, NULL);
}
