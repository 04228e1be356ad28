/*
 * The cluster state machine: every lease rule of state.h, the member
 * commands, the event history, and snapshots.
 *
 * Commands go through the real path (hv_cmd_encode, then hv_state_apply on
 * an exactly sized heap copy) unless a test needs a command the codec would
 * refuse. A refused command must leave the state as it was, except for the
 * `rejected` counter and `last_index`: expect_refused() checks that on a
 * copy taken before the command.
 */
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../consensus/codec.h"
#include "../../consensus/state.h"
#include "../../lib/err.h"

/* See test_codec.c: let the decoder see NULL from malloc as libc gives it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=256";
}

/* ---- commands ----------------------------------------------------------- */

static struct hv_cmd cmd(int type, uint64_t ts)
{
	struct hv_cmd c;

	memset(&c, 0, sizeof c);
	c.type = type;
	c.time_ms = ts;
	return c;
}

static struct hv_cmd c_add(const char *name, uint64_t id, int role)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_ADD, 1000 + id);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.address, sizeof c.address, "10.0.0.%llu:7000",
	         (unsigned long long)id % 256);
	c.id = id;
	c.role = role;
	return c;
}

static struct hv_cmd c_role(uint64_t id, int role)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_ROLE, 2000);

	c.id = id;
	c.role = role;
	return c;
}

static struct hv_cmd c_remove(uint64_t id)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_REMOVE, 3000);

	c.id = id;
	return c;
}

static struct hv_cmd c_report(const char *name, const char *phase, const char *version,
                              uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_REPORT, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.phase, sizeof c.phase, "%s", phase);
	snprintf(c.version, sizeof c.version, "%s", version);
	return c;
}

static struct hv_cmd c_acquire(const char *name, uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_LEASE_ACQUIRE, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	return c;
}

static struct hv_cmd c_release(const char *name, uint64_t token)
{
	struct hv_cmd c = cmd(HV_CMD_LEASE_RELEASE, 5000);

	snprintf(c.name, sizeof c.name, "%s", name);
	c.token = token;
	return c;
}

static struct hv_cmd c_break(const char *name, const char *by, const char *reason)
{
	struct hv_cmd c = cmd(HV_CMD_LEASE_BREAK, 6000);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.by, sizeof c.by, "%s", by);
	snprintf(c.reason, sizeof c.reason, "%s", reason);
	return c;
}

static struct hv_cmd c_pause(const char *by, const char *reason, uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_PAUSE, ts);

	snprintf(c.by, sizeof c.by, "%s", by);
	snprintf(c.reason, sizeof c.reason, "%s", reason);
	return c;
}

static struct hv_cmd c_resume(const char *by)
{
	struct hv_cmd c = cmd(HV_CMD_RESUME, 8000);

	snprintf(c.by, sizeof c.by, "%s", by);
	return c;
}

static struct hv_cmd c_settings(unsigned max)
{
	struct hv_cmd c = cmd(HV_CMD_SETTINGS, 9000);

	c.max_concurrent = max;
	return c;
}

/* ---- a state and its log ------------------------------------------------ */

struct sm {
	struct hv_state *s;
	uint64_t index; /* index of the last command applied */
};

/* States a test allocates; teardown frees what a failed test left. */
#define MAX_TRACKED 16
static struct hv_state *tracked[MAX_TRACKED];

static struct hv_state *state_alloc(void)
{
	for (unsigned i = 0; i < MAX_TRACKED; i++) {
		if (tracked[i] == NULL) {
			tracked[i] = malloc(sizeof *tracked[i]);
			assert_non_null(tracked[i]);
			return tracked[i];
		}
	}
	fail_msg("too many states");
	return NULL;
}

static void state_free(struct hv_state *s)
{
	for (unsigned i = 0; i < MAX_TRACKED; i++) {
		if (tracked[i] == s) {
			tracked[i] = NULL;
			free(s);
			return;
		}
	}
	fail_msg("state %p not tracked", (void *)s);
}

static struct hv_state *state_new(void)
{
	struct hv_state *s = state_alloc();

	hv_state_init(s);
	return s;
}

static struct hv_state *state_copy(const struct hv_state *s)
{
	struct hv_state *c = state_alloc();

	memcpy(c, s, sizeof *c);
	return c;
}

static int setup(void **state)
{
	struct sm *m = calloc(1, sizeof *m);

	if (m == NULL)
		return -1;
	m->s = state_new();
	m->index = 0;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct sm *m = *state;

	for (unsigned i = 0; i < MAX_TRACKED; i++) {
		free(tracked[i]);
		tracked[i] = NULL;
	}
	free(m);
	return 0;
}

/* Apply an encoded buffer at a given index, from an exactly sized copy. */
static int apply_buf_at(struct hv_state *s, uint64_t index, const void *buf, size_t len,
                        uint64_t *token)
{
	void *copy = malloc(len > 0 ? len : 1);
	int rv;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	rv = hv_state_apply(s, index, copy, len, token);
	free(copy);
	return rv;
}

/* Apply c at `index` through the codec. */
static int apply_at(struct hv_state *s, uint64_t index, struct hv_cmd c, uint64_t *token)
{
	void *buf;
	size_t len;
	int rv;

	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_OK);
	rv = apply_buf_at(s, index, buf, len, token);
	free(buf);
	return rv;
}

/* Apply c as the next log entry. */
static int run(struct sm *m, struct hv_cmd c, uint64_t *token)
{
	return apply_at(m->s, ++m->index, c, token);
}

static void run_ok(struct sm *m, struct hv_cmd c)
{
	int rv = run(m, c, NULL);

	if (rv != HV_OK)
		fail_msg("%s at %llu: %s", hv_cmd_name(c.type),
		         (unsigned long long)m->index, hv_errname(rv));
}

static uint64_t grant(struct sm *m, const char *name)
{
	uint64_t token = 0;
	int rv = run(m, c_acquire(name, 4000 + m->index), &token);

	if (rv != HV_OK)
		fail_msg("acquire %s: %s", name, hv_errname(rv));
	return token;
}

/* The state must equal `before` but for the two counters a refusal moves. */
static void assert_only_counters_moved(const struct hv_state *before,
                                       const struct hv_state *after, uint64_t index)
{
	struct hv_state *want = state_copy(before);

	want->rejected++;
	if (index > want->last_index)
		want->last_index = index;
	assert_true(hv_state_equal(want, after));
	/* Stricter than the encoding: nothing else was written at all. */
	assert_memory_equal(want, after, sizeof *want);
	state_free(want);
}

/* Apply c as the next entry; it must be refused with `code` and change
 * nothing else. */
static void expect_refused(struct sm *m, struct hv_cmd c, int code)
{
	struct hv_state *before = state_copy(m->s);
	uint64_t token = 12345;
	int rv = run(m, c, &token);

	if (rv != code)
		fail_msg("%s at %llu: got %s, want %s", hv_cmd_name(c.type),
		         (unsigned long long)m->index, hv_errname(rv), hv_errname(code));
	assert_true(token == 0);
	assert_only_counters_moved(before, m->s, m->index);
	state_free(before);
}

/* Same with a command the codec would not encode. */
static void expect_refused_cmd(struct sm *m, struct hv_cmd c, int code)
{
	struct hv_state *before = state_copy(m->s);
	uint64_t token = 12345;
	int rv = hv_state_apply_cmd(m->s, ++m->index, &c, &token);

	assert_int_equal(rv, code);
	assert_true(token == 0);
	assert_only_counters_moved(before, m->s, m->index);
	state_free(before);
}

static void add_members(struct sm *m, unsigned n)
{
	char name[16];

	for (unsigned i = 1; i <= n; i++) {
		snprintf(name, sizeof name, "hv%u", i);
		run_ok(m, c_add(name, i, HV_ROLE_VOTER));
	}
}

static const char *newest_event(const struct hv_state *s)
{
	const struct hv_event *e = hv_state_event(s, 0);

	assert_non_null(e);
	return e->text;
}

/* ---- basics ------------------------------------------------------------- */

static void test_init(void **state)
{
	struct sm *m = *state;

	assert_int_equal(m->s->max_concurrent, 1);
	assert_int_equal(m->s->n_members, 0);
	assert_int_equal(m->s->n_holders, 0);
	assert_false(m->s->paused);
	assert_int_equal(m->s->ev_count, 0);
	assert_null(hv_state_event(m->s, 0));
	assert_true(m->s->last_token == 0 && m->s->last_index == 0);
	assert_true(m->s->rejected == 0);
}

static void test_grant(void **state)
{
	struct sm *m = *state;
	const struct hv_holder *h;
	uint64_t token = 0;
	char want[128];

	add_members(m, 2);
	assert_int_equal(run(m, c_acquire("hv1", 4242), &token), HV_OK);
	/* The fencing token is the log index of the grant. */
	assert_true(token == m->index);
	h = hv_state_holder(m->s, "hv1");
	assert_non_null(h);
	assert_true(h->token == m->index);
	assert_true(h->granted_ms == 4242);
	assert_true(m->s->last_token == m->index);
	assert_int_equal(m->s->n_holders, 1);
	assert_null(hv_state_holder(m->s, "hv2"));
	snprintf(want, sizeof want, "lease granted to hv1 (token %llu)",
	         (unsigned long long)m->index);
	assert_string_equal(newest_event(m->s), want);
	assert_true(hv_state_event(m->s, 0)->index == m->index);
	assert_true(hv_state_event(m->s, 0)->time_ms == 4242);
}

/* Default max_concurrent is 1: a second host is refused while one holds. */
static void test_one_holder_by_default(void **state)
{
	struct sm *m = *state;
	uint64_t t1;

	add_members(m, 3);
	t1 = grant(m, "hv1");
	expect_refused(m, c_acquire("hv2", 1), HV_LEASEFULL);
	expect_refused(m, c_acquire("hv3", 1), HV_LEASEFULL);
	assert_int_equal(m->s->n_holders, 1);
	run_ok(m, c_release("hv1", t1));
	assert_true(grant(m, "hv2") == m->index);
}

static void test_settings_two_holders(void **state)
{
	struct sm *m = *state;
	uint64_t t1, t2, t3;
	char want[HV_EVENT_TEXT];

	add_members(m, 3);
	run_ok(m, c_settings(2));
	assert_int_equal(m->s->max_concurrent, 2);
	assert_string_equal(newest_event(m->s), "max_concurrent 1 -> 2");
	t1 = grant(m, "hv1");
	t2 = grant(m, "hv2");
	assert_true(t2 > t1);
	assert_int_equal(m->s->n_holders, 2);
	expect_refused(m, c_acquire("hv3", 1), HV_LEASEFULL);

	run_ok(m, c_release("hv1", t1));
	t3 = grant(m, "hv3");
	assert_true(t3 > t2);
	assert_null(hv_state_holder(m->s, "hv1"));
	assert_true(hv_state_holder(m->s, "hv2")->token == t2);
	assert_true(hv_state_holder(m->s, "hv3")->token == t3);

	/* Same value again: accepted, no event. */
	snprintf(want, sizeof want, "%s", newest_event(m->s));
	run_ok(m, c_settings(2));
	assert_string_equal(newest_event(m->s), want);

	/* Out of range (the codec refuses these too). */
	expect_refused_cmd(m, c_settings(0), HV_INVAL);
	expect_refused_cmd(m, c_settings(HV_MAX_HOLDERS + 1), HV_INVAL);

	/* Up to HV_MAX_HOLDERS holders. */
	add_members(m, HV_MAX_HOLDERS + 1);
	run_ok(m, c_settings(HV_MAX_HOLDERS));
	for (unsigned i = 1; i <= HV_MAX_HOLDERS; i++) {
		char name[16];
		uint64_t token = 0;
		snprintf(name, sizeof name, "hv%u", i);
		assert_int_equal(run(m, c_acquire(name, 1), &token), HV_OK);
	}
	assert_int_equal(m->s->n_holders, HV_MAX_HOLDERS);
	expect_refused(m, c_acquire("hv17", 1), HV_LEASEFULL);
}

/*
 * Lowering max_concurrent below the number of current holders must not
 * leave a state with more holders than max_concurrent: that breaks the
 * "at most max_concurrent holders" rule, and hv_state_decode() refuses such
 * a snapshot, so a follower could never install it. Either refusing the
 * setting or keeping the invariant some other way is fine; the state must
 * stay consistent and snapshot-able.
 */
static void test_settings_below_holders(void **state)
{
	struct sm *m = *state;
	struct hv_state *restored = state_new();
	void *buf = NULL;
	size_t len = 0;

	add_members(m, 2);
	run_ok(m, c_settings(2));
	grant(m, "hv1");
	grant(m, "hv2");
	(void)run(m, c_settings(1), NULL);
	if (m->s->n_holders > m->s->max_concurrent)
		fail_msg("settings max_concurrent=1 with 2 holders: accepted, "
		         "state has n_holders %u > max_concurrent %u",
		         m->s->n_holders, m->s->max_concurrent);
	assert_int_equal(hv_state_encode(m->s, NULL, &buf, &len), HV_OK);
	assert_int_equal(hv_state_decode(restored, buf, len), HV_OK);
	assert_true(hv_state_equal(m->s, restored));
	free(buf);
	state_free(restored);
}

static void test_paused(void **state)
{
	struct sm *m = *state;
	uint64_t t1, token = 0;
	char want[128];

	add_members(m, 2);
	t1 = grant(m, "hv1");
	run_ok(m, c_pause("alice", "change freeze", 7777));
	assert_true(m->s->paused);
	assert_string_equal(m->s->paused_by, "alice");
	assert_string_equal(m->s->pause_reason, "change freeze");
	assert_true(m->s->paused_ms == 7777);
	assert_string_equal(newest_event(m->s), "paused by alice: change freeze");

	/* No new grant while paused... */
	run_ok(m, c_release("hv1", t1));
	expect_refused(m, c_acquire("hv1", 1), HV_PAUSED);
	expect_refused(m, c_acquire("hv2", 1), HV_PAUSED);

	/* ...and no second pause, nor a pause without a reason or author. */
	expect_refused(m, c_pause("bob", "again", 1), HV_EXISTS);
	/* A resume names who resumed. */
	expect_refused(m, c_resume(""), HV_INVAL);
	assert_true(m->s->paused);
	run_ok(m, c_resume("carol"));
	assert_false(m->s->paused);
	assert_string_equal(m->s->paused_by, "");
	assert_string_equal(m->s->pause_reason, "");
	assert_true(m->s->paused_ms == 0);
	assert_string_equal(newest_event(m->s),
	                    "resumed by carol (paused by alice: change freeze)");
	expect_refused(m, c_resume("carol"), HV_NOTPAUSED);
	expect_refused(m, c_pause("bob", "", 1), HV_INVAL);
	expect_refused(m, c_pause("", "why", 1), HV_INVAL);

	/* Granting works again once resumed. */
	assert_int_equal(run(m, c_acquire("hv2", 1), &token), HV_OK);
	assert_true(token == m->index);
	snprintf(want, sizeof want, "lease granted to hv2 (token %llu)",
	         (unsigned long long)token);
	assert_string_equal(newest_event(m->s), want);
}

/* A holder retrying its acquire while paused keeps its grant: that is not a
 * new grant. */
static void test_paused_holder_retry(void **state)
{
	struct sm *m = *state;
	uint64_t t1, token = 0;

	add_members(m, 1);
	t1 = grant(m, "hv1");
	run_ok(m, c_pause("alice", "freeze", 1));
	assert_int_equal(run(m, c_acquire("hv1", 1), &token), HV_OK);
	assert_true(token == t1);
	assert_true(m->s->last_token == t1);
}

static void test_unknown_and_removed(void **state)
{
	struct sm *m = *state;

	expect_refused(m, c_acquire("hv1", 1), HV_NOMEMBER);
	add_members(m, 2);
	expect_refused(m, c_acquire("nobody", 1), HV_NOMEMBER);
	run_ok(m, c_remove(2));
	assert_true(hv_state_member(m->s, "hv2")->removed);
	expect_refused(m, c_acquire("hv2", 1), HV_REMOVED);
	/* Adding it back (same name and id) lifts the removal. */
	run_ok(m, c_add("hv2", 2, HV_ROLE_VOTER));
	assert_false(hv_state_member(m->s, "hv2")->removed);
	assert_true(grant(m, "hv2") == m->index);
}

/* Tokens are the grant's log index, and strictly increase. */
static void test_tokens_increase(void **state)
{
	struct sm *m = *state;
	uint64_t prev = 0;

	add_members(m, 3);
	for (unsigned i = 0; i < 100; i++) {
		char name[16];
		uint64_t token;

		snprintf(name, sizeof name, "hv%u", 1 + i % 3);
		/* Leave gaps, as barriers and configuration entries do. */
		m->index += i % 4;
		token = grant(m, name);
		assert_true(token == m->index);
		assert_true(token > prev);
		assert_true(m->s->last_token == token);
		prev = token;
		run_ok(m, c_release(name, token));
	}
}

/* A grant at an index not above the last token is refused: a replayed or
 * reordered entry must never issue a token twice or go backwards. */
static void test_token_not_above_last(void **state)
{
	struct sm *m = *state;
	struct hv_state *before;
	uint64_t t1, token = 99;

	add_members(m, 2);
	t1 = grant(m, "hv1");
	run_ok(m, c_release("hv1", t1));
	before = state_copy(m->s);
	assert_int_equal(apply_at(m->s, t1, c_acquire("hv2", 1), &token), HV_BADTOKEN);
	assert_true(token == 0);
	assert_only_counters_moved(before, m->s, t1);
	state_free(before);

	before = state_copy(m->s);
	assert_int_equal(apply_at(m->s, t1 - 1, c_acquire("hv2", 1), &token),
	                 HV_BADTOKEN);
	assert_only_counters_moved(before, m->s, t1 - 1);
	/* last_index never goes back. */
	assert_true(m->s->last_index == m->index);
	state_free(before);
}

static void test_reacquire_same_token(void **state)
{
	struct sm *m = *state;
	struct hv_state *before;
	uint64_t t1, token = 0;

	add_members(m, 2);
	t1 = grant(m, "hv1");
	before = state_copy(m->s);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(run(m, c_acquire("hv1", 99), &token), HV_OK);
		assert_true(token == t1);
	}
	/* Nothing changed but the applied index: no event, same grant. */
	before->last_index = m->index;
	assert_true(hv_state_equal(before, m->s));
	assert_true(hv_state_holder(m->s, "hv1")->granted_ms ==
	            hv_state_holder(before, "hv1")->granted_ms);
	state_free(before);
}

static void test_release(void **state)
{
	struct sm *m = *state;
	uint64_t t1;
	char want[128];

	add_members(m, 2);
	t1 = grant(m, "hv1");
	expect_refused(m, c_release("hv1", t1 + 1), HV_BADTOKEN);
	expect_refused(m, c_release("hv1", t1 - 1), HV_BADTOKEN);
	expect_refused(m, c_release("hv1", 0), HV_BADTOKEN);
	assert_true(hv_state_holder(m->s, "hv1")->token == t1);
	expect_refused(m, c_release("hv2", t1), HV_NOTHOLDER);
	expect_refused(m, c_release("nobody", t1), HV_NOTHOLDER);

	run_ok(m, c_release("hv1", t1));
	assert_null(hv_state_holder(m->s, "hv1"));
	assert_int_equal(m->s->n_holders, 0);
	snprintf(want, sizeof want, "lease released by hv1 (token %llu)",
	         (unsigned long long)t1);
	assert_string_equal(newest_event(m->s), want);
	/* last_token stays: the next grant gets a bigger one. */
	assert_true(m->s->last_token == t1);
	expect_refused(m, c_release("hv1", t1), HV_NOTHOLDER);
}

static void test_break(void **state)
{
	struct sm *m = *state;
	uint64_t t1, t2, t3;
	char want[256];

	add_members(m, 3);
	t1 = grant(m, "hv1");

	/* A break needs a reason and an author. */
	expect_refused(m, c_break("hv1", "admin", ""), HV_INVAL);
	expect_refused(m, c_break("hv1", "", "stuck"), HV_INVAL);
	expect_refused(m, c_break("hv2", "admin", "stuck"), HV_NOTHOLDER);

	run_ok(m, c_break("hv1", "admin", "host stuck in reboot"));
	assert_null(hv_state_holder(m->s, "hv1"));
	snprintf(want, sizeof want,
	         "lease of hv1 (token %llu) broken by admin: host stuck in "
	         "reboot",
	         (unsigned long long)t1);
	assert_string_equal(newest_event(m->s), want);
	assert_true(hv_state_event(m->s, 0)->index == m->index);
	assert_true(hv_state_event(m->s, 0)->time_ms == 6000);

	/* "" breaks every holder, one event each. */
	run_ok(m, c_settings(3));
	t1 = grant(m, "hv1");
	t2 = grant(m, "hv2");
	t3 = grant(m, "hv3");
	unsigned before = m->s->ev_count;
	run_ok(m, c_break("", "ops", "datacenter power"));
	assert_int_equal(m->s->n_holders, 0);
	assert_int_equal(m->s->ev_count, before + 3);
	for (unsigned i = 0; i < 3; i++) {
		const char *text = hv_state_event(m->s, i)->text;
		assert_non_null(strstr(text, "broken by ops: datacenter power"));
		assert_true(hv_state_event(m->s, i)->index == m->index);
	}
	uint64_t toks[] = {t1, t2, t3};
	const char *names[] = {"hv1", "hv2", "hv3"};
	for (unsigned h = 0; h < 3; h++) {
		bool found = false;
		snprintf(want, sizeof want, "lease of %s (token %llu) broken", names[h],
		         (unsigned long long)toks[h]);
		for (unsigned i = 0; i < 3; i++)
			if (strncmp(hv_state_event(m->s, i)->text, want, strlen(want)) ==
			    0)
				found = true;
		assert_true(found);
	}
	expect_refused(m, c_break("", "ops", "again"), HV_NOTHOLDER);

	/* A new grant after a break gets a fresh, bigger token. */
	assert_true(grant(m, "hv2") > t3);
}

/* ---- members ------------------------------------------------------------ */

static void test_member_add(void **state)
{
	struct sm *m = *state;
	struct hv_member *hv;
	uint64_t t1;

	run_ok(m, c_add("hv1", 11, HV_ROLE_VOTER));
	hv = hv_state_member(m->s, "hv1");
	assert_non_null(hv);
	assert_true(hv->id == 11);
	assert_string_equal(hv->address, "10.0.0.11:7000");
	assert_int_equal(hv->role, HV_ROLE_VOTER);
	assert_false(hv->removed);
	assert_string_equal(hv->phase, "idle");
	assert_ptr_equal(hv_state_member_by_id(m->s, 11), hv);
	assert_null(hv_state_member(m->s, "hv2"));
	assert_null(hv_state_member_by_id(m->s, 12));
	assert_string_equal(newest_event(m->s),
	                    "member hv1 joined (id 11, 10.0.0.11:7000, voter)");

	/* The same again is a no-op: no event. */
	unsigned n_ev = m->s->ev_count;
	run_ok(m, c_add("hv1", 11, HV_ROLE_VOTER));
	assert_int_equal(m->s->ev_count, n_ev);
	assert_int_equal(m->s->n_members, 1);

	/* A rejoin under a new id (wiped data dir) keeps the lease. */
	t1 = grant(m, "hv1");
	run_ok(m, c_add("hv1", 21, HV_ROLE_STANDBY));
	hv = hv_state_member(m->s, "hv1");
	assert_true(hv->id == 21);
	assert_int_equal(hv->role, HV_ROLE_STANDBY);
	assert_null(hv_state_member_by_id(m->s, 11));
	assert_int_equal(m->s->n_members, 1);
	assert_non_null(hv_state_holder(m->s, "hv1"));
	assert_true(hv_state_holder(m->s, "hv1")->token == t1);
	assert_string_equal(newest_event(m->s),
	                    "member hv1 rejoined under new id 21 (was 11)");

	/* An id already used by another name is refused. */
	expect_refused(m, c_add("hv2", 21, HV_ROLE_VOTER), HV_EXISTS);
	run_ok(m, c_add("hv2", 22, HV_ROLE_VOTER));
	expect_refused(m, c_add("hv1", 22, HV_ROLE_VOTER), HV_EXISTS);
	/* ...even when that member was removed. */
	run_ok(m, c_remove(22));
	expect_refused(m, c_add("hv3", 22, HV_ROLE_VOTER), HV_EXISTS);
	/* Id 0 is no id. */
	expect_refused_cmd(m, c_add("hv3", 0, HV_ROLE_VOTER), HV_INVAL);
}

static void test_member_full(void **state)
{
	struct sm *m = *state;
	char name[16];

	add_members(m, HV_MAX_MEMBERS);
	assert_int_equal(m->s->n_members, HV_MAX_MEMBERS);
	expect_refused(m, c_add("extra", 1000, HV_ROLE_SPARE), HV_FULL);
	/* A removed member's slot is reused, the oldest removed first. */
	run_ok(m, c_remove(7));
	run_ok(m, c_remove(5));
	run_ok(m, c_add("extra", 1000, HV_ROLE_SPARE));
	assert_int_equal(m->s->n_members, HV_MAX_MEMBERS);
	assert_null(hv_state_member(m->s, "hv5"));
	assert_non_null(hv_state_member(m->s, "hv7"));
	assert_non_null(hv_state_member(m->s, "extra"));
	snprintf(name, sizeof name, "hv%u", HV_MAX_MEMBERS);
	assert_non_null(hv_state_member(m->s, name));
}

static void test_member_role(void **state)
{
	struct sm *m = *state;

	add_members(m, 2);
	run_ok(m, c_role(2, HV_ROLE_SPARE));
	assert_int_equal(hv_state_member(m->s, "hv2")->role, HV_ROLE_SPARE);
	assert_string_equal(newest_event(m->s), "member hv2 is now spare");
	unsigned n_ev = m->s->ev_count;
	run_ok(m, c_role(2, HV_ROLE_SPARE));
	assert_int_equal(m->s->ev_count, n_ev);
	expect_refused(m, c_role(9, HV_ROLE_VOTER), HV_NOMEMBER);
	run_ok(m, c_remove(2));
	expect_refused(m, c_role(2, HV_ROLE_VOTER), HV_NOMEMBER);
}

static void test_member_remove(void **state)
{
	struct sm *m = *state;

	add_members(m, 2);
	run_ok(m, c_remove(1));
	assert_true(hv_state_member(m->s, "hv1")->removed);
	assert_string_equal(newest_event(m->s), "member hv1 removed (id 1)");
	expect_refused(m, c_remove(1), HV_NOMEMBER);
	expect_refused(m, c_remove(3), HV_NOMEMBER);
	expect_refused(m, c_report("hv1", "patching", "2.0", 1), HV_REMOVED);
}

static void test_report(void **state)
{
	struct sm *m = *state;
	struct hv_member *hv;

	add_members(m, 1);
	run_ok(m, c_report("hv1", "draining", "1.0", 111));
	hv = hv_state_member(m->s, "hv1");
	assert_string_equal(hv->phase, "draining");
	assert_string_equal(hv->version, "1.0");
	assert_true(hv->report_ms == 111);
	assert_string_equal(newest_event(m->s), "hv1: phase idle -> draining");

	run_ok(m, c_report("hv1", "draining", "1.1", 222));
	assert_string_equal(hv->version, "1.1");
	assert_true(hv->report_ms == 222);
	assert_string_equal(newest_event(m->s), "hv1: version 1.0 -> 1.1");

	unsigned n_ev = m->s->ev_count;
	run_ok(m, c_report("hv1", "draining", "1.1", 333));
	assert_int_equal(m->s->ev_count, n_ev);
	assert_true(hv->report_ms == 333);

	expect_refused(m, c_report("nobody", "x", "y", 1), HV_NOMEMBER);
}

/* ---- events ------------------------------------------------------------- */

static void test_event_ring(void **state)
{
	struct sm *m = *state;
	const unsigned total = 3 * HV_EVENTS + 5;

	add_members(m, 1); /* one event */
	for (unsigned i = 1; i < total; i++) {
		char phase[16];
		snprintf(phase, sizeof phase, "p%u", i);
		run_ok(m, c_report("hv1", phase, "", 10 * i));
		assert_int_equal(m->s->ev_count, i + 1 < HV_EVENTS ? i + 1 : HV_EVENTS);
	}
	assert_int_equal(m->s->ev_count, HV_EVENTS);
	/* Newest first, each one entry older than the one before. */
	for (unsigned i = 0; i < HV_EVENTS; i++) {
		const struct hv_event *e = hv_state_event(m->s, i);
		char want[64];

		assert_non_null(e);
		assert_true(e->index == m->index - i);
		snprintf(want, sizeof want, "hv1: phase p%u -> p%u", total - 2 - i,
		         total - 1 - i);
		assert_string_equal(e->text, want);
		assert_true(e->time_ms == 10 * (total - 1 - i));
	}
	assert_null(hv_state_event(m->s, HV_EVENTS));
	assert_null(hv_state_event(m->s, UINT32_MAX));
}

/* ---- refusals and bad input ----------------------------------------------- */

/* A rich state, then one refused command of every kind. */
static void test_refused_changes_nothing(void **state)
{
	struct sm *m = *state;
	uint64_t t1;

	add_members(m, 4);
	run_ok(m, c_remove(4));
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	grant(m, "hv2");
	run_ok(m, c_report("hv3", "patching", "2.0", 10));

	expect_refused(m, c_acquire("hv3", 1), HV_LEASEFULL);
	expect_refused(m, c_acquire("hv4", 1), HV_REMOVED);
	expect_refused(m, c_acquire("hv9", 1), HV_NOMEMBER);
	expect_refused(m, c_release("hv1", t1 + 1), HV_BADTOKEN);
	expect_refused(m, c_release("hv3", t1), HV_NOTHOLDER);
	expect_refused(m, c_break("hv3", "a", "b"), HV_NOTHOLDER);
	expect_refused(m, c_break("hv1", "a", ""), HV_INVAL);
	expect_refused(m, c_resume("a"), HV_NOTPAUSED);
	expect_refused(m, c_pause("a", "", 1), HV_INVAL);
	expect_refused(m, c_add("hv5", 1, HV_ROLE_VOTER), HV_EXISTS);
	expect_refused(m, c_role(99, HV_ROLE_VOTER), HV_NOMEMBER);
	expect_refused(m, c_remove(4), HV_NOMEMBER);
	expect_refused(m, c_report("hv4", "x", "y", 1), HV_REMOVED);
	expect_refused(m, c_report("hv9", "x", "y", 1), HV_NOMEMBER);
	expect_refused_cmd(m, c_settings(0), HV_INVAL);
	expect_refused_cmd(m, cmd(0, 1), HV_UNKNOWNCMD);
	expect_refused_cmd(m, cmd(HV__CMD_LAST + 1, 1), HV_UNKNOWNCMD);
	run_ok(m, c_pause("a", "b", 1));
	expect_refused(m, c_pause("a", "b", 1), HV_EXISTS);
	expect_refused(m, c_acquire("hv3", 1), HV_PAUSED);
	assert_true(m->s->rejected == 19);
}

/* Bad buffers straight into hv_state_apply: counted, nothing else. */
static void test_malformed_buffers(void **state)
{
	struct sm *m = *state;
	static const unsigned char junk[][6] = {
	    {0xc1},
	    {0x90},
	    {0x80},
	    {0x81, 0xa1, 'v', 0x01},
	    {0x83, 0xa1, 'v', 0x02, 0xa1, 't'},
	    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	};
	static const size_t junk_len[] = {1, 1, 1, 4, 6, 6};
	struct hv_cmd good = c_acquire("hv1", 1);
	void *buf;
	size_t len;

	add_members(m, 2);
	grant(m, "hv2");
	for (size_t i = 0; i < sizeof junk_len / sizeof *junk_len; i++) {
		struct hv_state *before = state_copy(m->s);
		uint64_t token = 77;
		int rv = apply_buf_at(m->s, ++m->index, junk[i], junk_len[i], &token);
		assert_int_not_equal(rv, HV_OK);
		assert_true(token == 0);
		assert_only_counters_moved(before, m->s, m->index);
		state_free(before);
	}

	/* Every truncation of a good command. */
	assert_int_equal(hv_cmd_encode(&good, NULL, &buf, &len), HV_OK);
	for (size_t cut = 0; cut < len - 8; cut++) {
		struct hv_state *before = state_copy(m->s);
		int rv = apply_buf_at(m->s, ++m->index, buf, cut, NULL);
		assert_int_not_equal(rv, HV_OK);
		assert_only_counters_moved(before, m->s, m->index);
		state_free(before);
	}
	free(buf);

	/* NULL buffer. */
	struct hv_state *before = state_copy(m->s);
	assert_int_equal(hv_state_apply(m->s, ++m->index, NULL, 0, NULL), HV_MALFORMED);
	assert_only_counters_moved(before, m->s, m->index);
	state_free(before);
}

/* ---- snapshots ------------------------------------------------------------ */

/* Many members (some removed, all roles), 3 holders, paused, refusals, and
 * enough events to wrap the ring a few times. */
static void make_rich(struct sm *m)
{
	char name[16];

	add_members(m, 40);
	for (unsigned i = 1; i <= 40; i++) {
		snprintf(name, sizeof name, "hv%u", i);
		run_ok(m, c_role(i, (int)(i % 3)));
		run_ok(m, c_report(name, i % 2 ? "patching" : "done",
		                   i % 5 ? "6.1.0-18" : "6.1.0-17", 100 + i));
	}
	for (unsigned i = 31; i <= 40; i += 3)
		run_ok(m, c_remove(i));
	run_ok(m, c_settings(4));
	grant(m, "hv3");
	grant(m, "hv1");
	grant(m, "hv22");
	expect_refused(m, c_acquire("hv31", 1), HV_REMOVED);
	run_ok(m, c_pause("alice", "quarterly freeze: no patching", 424242));
	expect_refused(m, c_acquire("hv5", 1), HV_PAUSED);
	assert_true(m->s->ev_count == HV_EVENTS);
	assert_true(m->s->ev_next != 0); /* the ring wrapped somewhere */
}

static void snapshot(const struct hv_state *s, void **buf, size_t *len)
{
	assert_int_equal(hv_state_encode(s, NULL, buf, len), HV_OK);
	assert_non_null(*buf);
	assert_true(*len > 0);
}

static void test_snapshot_roundtrip(void **state)
{
	struct sm *m = *state;
	struct hv_state *r = state_new();
	void *buf;
	size_t len;

	make_rich(m);
	snapshot(m->s, &buf, &len);
	assert_int_equal(hv_state_decode(r, buf, len), HV_OK);
	assert_true(hv_state_equal(m->s, r));
	free(buf);

	/* Field by field, not only through the encoding. */
	assert_int_equal(r->n_members, m->s->n_members);
	for (unsigned i = 0; i < r->n_members; i++) {
		const struct hv_member *a = &m->s->members[i], *b = &r->members[i];
		assert_true(a->id == b->id);
		assert_string_equal(a->name, b->name);
		assert_string_equal(a->address, b->address);
		assert_int_equal(a->role, b->role);
		assert_int_equal(a->removed, b->removed);
		assert_string_equal(a->phase, b->phase);
		assert_string_equal(a->version, b->version);
		assert_true(a->report_ms == b->report_ms);
	}
	assert_int_equal(r->max_concurrent, 4);
	assert_int_equal(r->n_holders, 3);
	for (unsigned i = 0; i < r->n_holders; i++) {
		assert_string_equal(r->holders[i].name, m->s->holders[i].name);
		assert_true(r->holders[i].token == m->s->holders[i].token);
		assert_true(r->holders[i].granted_ms == m->s->holders[i].granted_ms);
	}
	assert_true(r->last_token == m->s->last_token);
	assert_true(r->paused);
	assert_string_equal(r->paused_by, "alice");
	assert_string_equal(r->pause_reason, "quarterly freeze: no patching");
	assert_true(r->paused_ms == 424242);
	assert_int_equal(r->ev_count, HV_EVENTS);
	for (unsigned i = 0; i < HV_EVENTS; i++) {
		const struct hv_event *a = hv_state_event(m->s, i);
		const struct hv_event *b = hv_state_event(r, i);
		assert_true(a->index == b->index);
		assert_true(a->time_ms == b->time_ms);
		assert_string_equal(a->text, b->text);
	}
	assert_true(r->last_index == m->s->last_index);
	assert_true(r->rejected == m->s->rejected);
	assert_true(r->rejected == 2);

	/* The restored state goes on exactly like the original. */
	uint64_t index = m->index;
	struct hv_cmd next[] = {
	    c_resume("bob"),
	    c_acquire("hv5", 1),
	    c_report("hv2", "x", "y", 9),
	    c_release("hv3", 999),
	    c_break("", "ops", "done"),
	    c_add("hv99", 99, HV_ROLE_SPARE),
	};
	for (size_t i = 0; i < sizeof next / sizeof *next; i++) {
		uint64_t ta = 0, tb = 0;
		int ra = apply_at(m->s, ++index, next[i], &ta);
		int rb = apply_at(r, index, next[i], &tb);
		assert_int_equal(ra, rb);
		assert_true(ta == tb);
		assert_true(hv_state_equal(m->s, r));
	}
	for (unsigned i = 0; i < HV_EVENTS; i++)
		assert_string_equal(hv_state_event(m->s, i)->text,
		                    hv_state_event(r, i)->text);
	state_free(r);
}

static void test_snapshot_empty(void **state)
{
	struct sm *m = *state;
	struct hv_state *r = state_new(), *fresh = state_new();
	void *buf;
	size_t len;

	/* Decoding an empty state's snapshot over a rich one replaces it
	 * entirely. */
	make_rich(m);
	memcpy(r, m->s, sizeof *r);
	snapshot(fresh, &buf, &len);
	assert_int_equal(hv_state_decode(r, buf, len), HV_OK);
	assert_true(hv_state_equal(r, fresh));
	assert_int_equal(r->n_members, 0);
	assert_int_equal(r->ev_count, 0);
	assert_int_equal(r->max_concurrent, 1);
	free(buf);
	state_free(r);
	state_free(fresh);
}

static void test_snapshot_truncated(void **state)
{
	struct sm *m = *state;
	struct hv_state *target = state_new(), *orig;
	void *buf;
	size_t len;

	make_rich(m);
	snapshot(m->s, &buf, &len);
	/* The target holds some other state, which must survive. */
	add_members(&(struct sm){target, 0}, 3);
	orig = state_copy(target);
	for (size_t cut = 0; cut < len; cut++) {
		void *copy = malloc(cut > 0 ? cut : 1);
		int rv;

		assert_non_null(copy);
		memcpy(copy, buf, cut);
		rv = hv_state_decode(target, copy, cut);
		free(copy);
		if (rv == HV_OK)
			fail_msg("snapshot prefix %zu of %zu decoded", cut, len);
		assert_memory_equal(target, orig, sizeof *target);
	}
	assert_int_equal(hv_state_decode(target, NULL, 0), HV_MALFORMED);
	assert_memory_equal(target, orig, sizeof *target);
	free(buf);
	state_free(target);
	state_free(orig);
}

/*
 * Crafted snapshots, written here with msgpack-c from the format in state.c
 * (a map; members, holders, events, paused as arrays), so that single
 * fields can be corrupted.
 */
struct snap_opts {
	uint64_t version;
	int max_concurrent;      /* as written */
	const char *member_name; /* for member 0, when not NULL */
	const char *holder_name; /* for holder 0, when not NULL */
	unsigned extra_holders;  /* copies of holder 0 appended */
	const char *drop_key;    /* leave this key out */
	bool wrong_type;         /* write last_token as a string */
	bool trailing;           /* one byte after the map */
	unsigned extra_events;   /* copies of event 0 appended */
};

/* Every key of a snapshot, all required. */
static const char *const snap_keys[] = {
    "v",      "members",    "max_concurrent", "holders", "last_token", "paused",
    "events", "last_index", "rejected",       "moves",   "history",
};
#define N_SNAP_KEYS (sizeof snap_keys / sizeof *snap_keys)

static void pk_s(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void pk_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void craft(const struct hv_state *s, const struct snap_opts *o,
                  msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	unsigned n = 0;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	for (size_t k = 0; k < N_SNAP_KEYS; k++)
		if (o->drop_key == NULL || strcmp(o->drop_key, snap_keys[k]) != 0)
			n++;
	msgpack_pack_map(&pk, n);
	for (size_t k = 0; k < N_SNAP_KEYS; k++) {
		const char *key = snap_keys[k];

		if (o->drop_key != NULL && strcmp(o->drop_key, key) == 0)
			continue;
		pk_s(&pk, key);
		if (strcmp(key, "v") == 0) {
			msgpack_pack_uint64(&pk, o->version);
		} else if (strcmp(key, "members") == 0) {
			msgpack_pack_array(&pk, s->n_members);
			for (unsigned i = 0; i < s->n_members; i++) {
				const struct hv_member *mb = &s->members[i];
				msgpack_pack_array(&pk, 17);
				msgpack_pack_uint64(&pk, mb->id);
				pk_s(&pk, i == 0 && o->member_name != NULL
				              ? o->member_name
				              : mb->name);
				pk_s(&pk, mb->address);
				msgpack_pack_uint64(&pk, (uint64_t)mb->role);
				pk_bool(&pk, mb->removed);
				pk_s(&pk, mb->phase);
				pk_s(&pk, mb->version);
				msgpack_pack_uint64(&pk, mb->report_ms);
				msgpack_pack_uint64(&pk, mb->mem_cap_mib);
				msgpack_pack_uint64(&pk, mb->vcpus_cap);
				msgpack_pack_uint64(&pk, mb->inventory_ms);
				msgpack_pack_array(&pk, mb->n_guests);
				for (unsigned g = 0; g < mb->n_guests; g++)
					hv_cmd_pack_guest(&pk, &mb->guests[g]);
				msgpack_pack_uint64(&pk, (uint64_t)mb->maint);
				msgpack_pack_uint64(&pk, mb->maint_since_ms);
				msgpack_pack_uint64(&pk, mb->maint_total_ms);
				msgpack_pack_uint64(&pk, mb->maint_count);
				msgpack_pack_uint64(&pk, mb->moved_index);
			}
		} else if (strcmp(key, "max_concurrent") == 0) {
			msgpack_pack_int64(&pk, o->max_concurrent);
		} else if (strcmp(key, "holders") == 0) {
			unsigned nh = s->n_holders + o->extra_holders;
			msgpack_pack_array(&pk, nh);
			for (unsigned i = 0; i < nh; i++) {
				const struct hv_holder *h =
				    &s->holders[i < s->n_holders ? i : 0];
				msgpack_pack_array(&pk, 3);
				pk_s(&pk, i == 0 && o->holder_name != NULL
				              ? o->holder_name
				              : h->name);
				msgpack_pack_uint64(&pk, h->token);
				msgpack_pack_uint64(&pk, h->granted_ms);
			}
		} else if (strcmp(key, "last_token") == 0) {
			if (o->wrong_type)
				pk_s(&pk, "7");
			else
				msgpack_pack_uint64(&pk, s->last_token);
		} else if (strcmp(key, "paused") == 0) {
			msgpack_pack_array(&pk, 4);
			pk_bool(&pk, s->paused);
			pk_s(&pk, s->paused_by);
			pk_s(&pk, s->pause_reason);
			msgpack_pack_uint64(&pk, s->paused_ms);
		} else if (strcmp(key, "events") == 0) {
			msgpack_pack_array(&pk, s->ev_count + o->extra_events);
			for (unsigned i = s->ev_count; i-- > 0;) {
				const struct hv_event *e = hv_state_event(s, i);
				msgpack_pack_array(&pk, 3);
				msgpack_pack_uint64(&pk, e->index);
				msgpack_pack_uint64(&pk, e->time_ms);
				pk_s(&pk, e->text);
			}
			for (unsigned i = 0; i < o->extra_events; i++) {
				msgpack_pack_array(&pk, 3);
				msgpack_pack_uint64(&pk, 1);
				msgpack_pack_uint64(&pk, 1);
				pk_s(&pk, "x");
			}
		} else if (strcmp(key, "last_index") == 0) {
			msgpack_pack_uint64(&pk, s->last_index);
		} else if (strcmp(key, "rejected") == 0) {
			msgpack_pack_uint64(&pk, s->rejected);
		} else if (strcmp(key, "moves") == 0 || strcmp(key, "history") == 0) {
			/* the rich state of these tests has no moves */
			msgpack_pack_array(&pk, 0);
		}
	}
	if (o->trailing)
		msgpack_pack_nil(&pk);
}

static struct snap_opts good_opts(const struct hv_state *s)
{
	return (struct snap_opts){.version = HV_SNAPSHOT_FORMAT,
	                          .max_concurrent = (int)s->max_concurrent};
}

/* Decode a crafted snapshot into a target holding another state, which
 * must stay untouched on failure. *equal tells whether the result equals s. */
static int decode_crafted(const struct hv_state *s, const struct snap_opts *o,
                          bool *equal)
{
	struct hv_state *target = state_new(), *orig;
	msgpack_sbuffer sb;
	int rv;

	add_members(&(struct sm){target, 0}, 2);
	orig = state_copy(target);
	craft(s, o, &sb);
	rv = hv_state_decode(target, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (rv != HV_OK)
		assert_memory_equal(target, orig, sizeof *target);
	if (equal != NULL)
		*equal = hv_state_equal(target, s);
	state_free(target);
	state_free(orig);
	return rv;
}

static void test_snapshot_corrupt(void **state)
{
	struct sm *m = *state;
	struct snap_opts o;

	make_rich(m);
	run_ok(m, c_resume("bob")); /* paused_by "" must round-trip too */

	/* The crafted writer matches the real one, so the corruptions below
	 * are the only difference. */
	bool equal = false;
	o = good_opts(m->s);
	assert_int_equal(decode_crafted(m->s, &o, &equal), HV_OK);
	assert_true(equal);

	o = good_opts(m->s);
	o.version = 2;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_VERSION);
	o.version = 0;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_VERSION);

	/* More holders than max_concurrent. */
	o = good_opts(m->s);
	o.max_concurrent = 2; /* 3 holders */
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	o = good_opts(m->s);
	o.extra_holders = 2; /* 5 holders, max 4 */
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	o = good_opts(m->s);
	o.max_concurrent = 0;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	o.max_concurrent = HV_MAX_HOLDERS + 1;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	o.max_concurrent = -1;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);

	/* Bad member names. */
	static const char *bad_names[] = {"", "a b", "a/b", "x\ny", "\xc3\xa9"};
	for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
		o = good_opts(m->s);
		o.member_name = bad_names[i];
		assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	}
	o = good_opts(m->s);
	o.member_name = "0123456789012345678901234567890123456789"
	                "012345678901234567890123"; /* 64 */
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);

	/* Every key is required. */
	for (size_t k = 0; k < N_SNAP_KEYS; k++) {
		o = good_opts(m->s);
		o.drop_key = snap_keys[k];
		assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	}

	o = good_opts(m->s);
	o.wrong_type = true;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	o = good_opts(m->s);
	o.trailing = true;
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
	o = good_opts(m->s);
	o.extra_events = 1; /* HV_EVENTS + 1 */
	assert_int_equal(decode_crafted(m->s, &o, NULL), HV_MALFORMED);
}

/* A holder must be a valid name just like a member: the state machine can
 * never produce anything else, so such a snapshot is corrupt. */
static void test_snapshot_bad_holder_name(void **state)
{
	struct sm *m = *state;
	static const char *bad[] = {"", "a b", "x\ny"};

	make_rich(m);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct snap_opts o = good_opts(m->s);
		int rv;

		o.holder_name = bad[i];
		rv = decode_crafted(m->s, &o, NULL);
		if (rv == HV_OK)
			fail_msg("snapshot with holder name \"%s\" accepted", bad[i]);
	}
}

/* Same as test_codec's test_huge_container_counts, for snapshots. */
static void test_snapshot_huge_counts(void **state)
{
	static const unsigned char cases[][5] = {
	    {0xdd, 0xff, 0xff, 0xff, 0xff},
	    {0xdf, 0xff, 0xff, 0xff, 0xff},
	};
	struct sm *m = *state;
	struct hv_state *orig;

	add_members(m, 2);
	orig = state_copy(m->s);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int rv = hv_state_decode(m->s, cases[i], sizeof cases[i]);
		assert_memory_equal(m->s, orig, sizeof *orig);
		if (rv != HV_MALFORMED)
			fail_msg("5-byte snapshot claiming 2^32-1 elements: %s, "
			         "want MALFORMED",
			         hv_errname(rv));
	}
	state_free(orig);
}

static void test_equal(void **state)
{
	struct sm *m = *state;
	struct hv_state *a = state_new(), *b = state_new();

	(void)m;
	assert_true(hv_state_equal(a, b));
	b->rejected = 1;
	assert_false(hv_state_equal(a, b));
	b->rejected = 0;
	b->last_index = 1;
	assert_false(hv_state_equal(a, b));
	b->last_index = 0;
	b->paused = true;
	assert_false(hv_state_equal(a, b));
	state_free(a);
	state_free(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_init),
	    T(test_grant),
	    T(test_one_holder_by_default),
	    T(test_settings_two_holders),
	    T(test_settings_below_holders),
	    T(test_paused),
	    T(test_paused_holder_retry),
	    T(test_unknown_and_removed),
	    T(test_tokens_increase),
	    T(test_token_not_above_last),
	    T(test_reacquire_same_token),
	    T(test_release),
	    T(test_break),
	    T(test_member_add),
	    T(test_member_full),
	    T(test_member_role),
	    T(test_member_remove),
	    T(test_report),
	    T(test_event_ring),
	    T(test_refused_changes_nothing),
	    T(test_malformed_buffers),
	    T(test_snapshot_roundtrip),
	    T(test_snapshot_empty),
	    T(test_snapshot_truncated),
	    T(test_snapshot_corrupt),
	    T(test_snapshot_bad_holder_name),
	    T(test_snapshot_huge_counts),
	    T(test_equal),
	};

	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
