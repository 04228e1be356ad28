/*
 * Maintenance in the replicated state machine: INVENTORY, MAINT, PLAN and
 * MOVED (consensus/state.c), their snapshot fields and their encoding
 * (consensus/codec.c), and the evacuation and return plans computed from the
 * state (migrate/plan.c).
 *
 * As in test_state.c, commands go through the real path (hv_cmd_encode, then
 * hv_state_apply on an exactly sized heap copy) unless a test says otherwise,
 * and a refused command must leave the state as it was but for the
 * `rejected` counter and `last_index` (expect_refused checks that on a copy
 * taken before the command).
 */
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../consensus/codec.h"
#include "../../consensus/state.h"
#include "../../lib/err.h"
#include "../../migrate/placement.h"
#include "../../migrate/plan.h"

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

static struct hv_cmd c_add(const char *name, uint64_t id)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_ADD, 1000 + id);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.address, sizeof c.address, "10.0.0.%llu:7000",
	         (unsigned long long)id % 256);
	c.id = id;
	c.role = HV_ROLE_VOTER;
	return c;
}

static struct hv_cmd c_remove(uint64_t id)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_REMOVE, 3000);

	c.id = id;
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

static struct hv_cmd c_break(const char *name, const char *by, const char *reason,
                             uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_LEASE_BREAK, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.by, sizeof c.by, "%s", by);
	snprintf(c.reason, sizeof c.reason, "%s", reason);
	return c;
}

static struct hv_cmd c_pause(const char *by, const char *reason)
{
	struct hv_cmd c = cmd(HV_CMD_PAUSE, 7000);

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

static struct hv_cmd c_inv(const char *name, uint32_t mem_cap, uint32_t vcpus_cap,
                           uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_INVENTORY, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	c.mem_cap_mib = mem_cap;
	c.vcpus_cap = vcpus_cap;
	return c;
}

static void guest_add(struct hv_cmd *c, const char *name, uint32_t mem, uint32_t vcpus,
                      int level, bool running, const char *hostdev)
{
	struct hv_cmd_guest *g;

	assert_true(c->n_guests < HV_MAX_GUESTS);
	g = &c->guests[c->n_guests++];
	memset(g, 0, sizeof *g);
	snprintf(g->name, sizeof g->name, "%s", name);
	g->mem_mib = mem;
	g->vcpus = vcpus;
	g->level = level;
	g->running = running;
	snprintf(g->hostdev, sizeof g->hostdev, "%s", hostdev != NULL ? hostdev : "");
}

static struct hv_cmd c_maint(const char *name, uint64_t token, const char *phase,
                             uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_MAINT, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.phase, sizeof c.phase, "%s", phase);
	c.token = token;
	return c;
}

static struct hv_cmd c_plan(const char *name, uint64_t token, uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_PLAN, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	c.token = token;
	return c;
}

static void move_set(struct hv_cmd_move *mv, const char *guest, const char *source,
                     const char *target, uint32_t mem, uint32_t vcpus, int action)
{
	memset(mv, 0, sizeof *mv);
	snprintf(mv->guest, sizeof mv->guest, "%s", guest);
	snprintf(mv->source, sizeof mv->source, "%s", source);
	snprintf(mv->target, sizeof mv->target, "%s", target);
	mv->mem_mib = mem;
	mv->vcpus = vcpus;
	mv->action = action;
}

static void move_add(struct hv_cmd *c, const char *guest, const char *source,
                     const char *target, uint32_t mem, uint32_t vcpus, int action)
{
	assert_true(c->n_moves < HV_MAX_PLAN);
	move_set(&c->moves[c->n_moves++], guest, source, target, mem, vcpus, action);
}

static struct hv_cmd c_moved(const char *name, uint64_t token, const char *guest,
                             const char *source, const char *target, int result,
                             const char *error, uint64_t ts)
{
	struct hv_cmd c = cmd(HV_CMD_MOVED, ts);

	snprintf(c.name, sizeof c.name, "%s", name);
	c.token = token;
	move_set(&c.move, guest, source, target, 0, 0, HV_ACT_MIGRATE);
	c.result = result;
	snprintf(c.error, sizeof c.error, "%s", error != NULL ? error : "");
	return c;
}

/* ---- a state and its log ------------------------------------------------ */

struct sm {
	struct hv_state *s;
	uint64_t index; /* index of the last command applied */
};

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

/* Start again from an empty state and an empty log. */
static void reset(struct sm *m)
{
	hv_state_init(m->s);
	m->index = 0;
}

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
static int apply_at(struct hv_state *s, uint64_t index, const struct hv_cmd *c,
                    uint64_t *token)
{
	void *buf;
	size_t len;
	int rv;

	rv = hv_cmd_encode(c, NULL, &buf, &len);
	if (rv != HV_OK)
		fail_msg("encoding %s: %s", hv_cmd_name(c->type), hv_errname(rv));
	rv = apply_buf_at(s, index, buf, len, token);
	free(buf);
	return rv;
}

static int run(struct sm *m, struct hv_cmd c, uint64_t *token)
{
	return apply_at(m->s, ++m->index, &c, token);
}

static void run_ok(struct sm *m, struct hv_cmd c)
{
	int rv = run(m, c, NULL);

	if (rv != HV_OK)
		fail_msg("%s %s at %llu: %s", hv_cmd_name(c.type), c.name,
		         (unsigned long long)m->index, hv_errname(rv));
}

static uint64_t grant(struct sm *m, const char *name)
{
	uint64_t token = 0;
	int rv = run(m, c_acquire(name, 4000 + m->index), &token);

	if (rv != HV_OK)
		fail_msg("acquire %s: %s", name, hv_errname(rv));
	assert_true(token == m->index);
	return token;
}

static void assert_only_counters_moved(const struct hv_state *before,
                                       const struct hv_state *after, uint64_t index)
{
	struct hv_state *want = state_copy(before);

	want->rejected++;
	if (index > want->last_index)
		want->last_index = index;
	assert_true(hv_state_equal(want, after));
	assert_memory_equal(want, after, sizeof *want);
	state_free(want);
}

static void expect_refused(struct sm *m, struct hv_cmd c, int code)
{
	struct hv_state *before = state_copy(m->s);
	uint64_t token = 12345;
	int rv = run(m, c, &token);

	if (rv != code)
		fail_msg("%s %s at %llu: got %s, want %s", hv_cmd_name(c.type), c.name,
		         (unsigned long long)m->index, hv_errname(rv), hv_errname(code));
	assert_true(token == 0);
	assert_only_counters_moved(before, m->s, m->index);
	state_free(before);
}

/* Apply a decoded command (no codec) as the next entry. */
static int run_cmd(struct sm *m, const struct hv_cmd *c)
{
	return hv_state_apply_cmd(m->s, ++m->index, c, NULL);
}

/* hv1..hvn, each with an inventory of mem_cap MiB, 64 vCPUs, no guest. */
static void cluster(struct sm *m, unsigned n, uint32_t mem_cap)
{
	char name[16];

	for (unsigned i = 1; i <= n; i++) {
		snprintf(name, sizeof name, "hv%u", i);
		run_ok(m, c_add(name, i));
		run_ok(m, c_inv(name, mem_cap, 64, 100));
	}
}

static struct hv_member *member(struct sm *m, const char *name)
{
	struct hv_member *mb = hv_state_member(m->s, name);

	if (mb == NULL)
		fail_msg("no member %s", name);
	return mb;
}

static uint64_t load_mem(struct sm *m, const char *name)
{
	uint64_t mem = 0;
	unsigned cpu = 0;

	hv_state_load(m->s, member(m, name), &mem, &cpu);
	return mem;
}

static unsigned load_cpu(struct sm *m, const char *name)
{
	uint64_t mem = 0;
	unsigned cpu = 0;

	hv_state_load(m->s, member(m, name), &mem, &cpu);
	return cpu;
}

/* Walk a holder through the phases, each step committed. */
static void maint_to(struct sm *m, const char *name, uint64_t token, int phase,
                     uint64_t ts)
{
	static const char *const path[HV__MAINT_N][4] = {
	    [HV_MAINT_NONE] = {NULL},
	    [HV_MAINT_ENTERING] = {"entering", NULL},
	    [HV_MAINT_EVACUATING] = {"entering", "evacuating", NULL},
	    [HV_MAINT_IN] = {"entering", "evacuating", "in", NULL},
	    [HV_MAINT_EXITING] = {"entering", "evacuating", "exiting", NULL},
	};

	for (unsigned i = 0; path[phase][i] != NULL; i++)
		run_ok(m, c_maint(name, token, path[phase][i], ts + i));
	assert_int_equal(member(m, name)->maint, phase);
}

static const struct hv_move *find_move(const struct hv_state *s, const char *holder,
                                       const char *guest)
{
	const struct hv_move *found = NULL;

	for (unsigned i = 0; i < s->n_moves; i++)
		if (strcmp(s->moves[i].holder, holder) == 0 &&
		    strcmp(s->moves[i].m.guest, guest) == 0)
			found = &s->moves[i];
	return found;
}

static const struct hv_cmd_guest *find_guest(const struct hv_member *mb, const char *name)
{
	for (unsigned i = 0; i < mb->n_guests; i++)
		if (strcmp(mb->guests[i].name, name) == 0)
			return &mb->guests[i];
	return NULL;
}

static void assert_guest_equal(const struct hv_cmd_guest *a, const struct hv_cmd_guest *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->mem_mib, b->mem_mib);
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->level, b->level);
	assert_int_equal(a->running, b->running);
	assert_string_equal(a->hostdev, b->hostdev);
}

static void assert_cmove_equal(const struct hv_cmd_move *a, const struct hv_cmd_move *b)
{
	assert_string_equal(a->guest, b->guest);
	assert_string_equal(a->source, b->source);
	assert_string_equal(a->target, b->target);
	assert_int_equal(a->mem_mib, b->mem_mib);
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->action, b->action);
}

static void assert_move_equal(const struct hv_move *a, const struct hv_move *b)
{
	assert_cmove_equal(&a->m, &b->m);
	assert_string_equal(a->holder, b->holder);
	assert_true(a->token == b->token);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->result, b->result);
	assert_true(a->planned_ms == b->planned_ms);
	assert_true(a->done_ms == b->done_ms);
	assert_true(a->downtime_ms == b->downtime_ms);
	assert_true(a->elapsed_ms == b->elapsed_ms);
	assert_true(a->bytes == b->bytes);
	assert_string_equal(a->error, b->error);
}

static const char *newest_event(const struct hv_state *s)
{
	const struct hv_event *e = hv_state_event(s, 0);

	assert_non_null(e);
	return e->text;
}

/* ---- INVENTORY ------------------------------------------------------------ */

static void test_inventory_unknown_removed(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;

	expect_refused(m, c_inv("ghost", 1000, 8, 10), HV_NOMEMBER);
	run_ok(m, c_add("hv1", 1));
	run_ok(m, c_add("hv2", 2));
	run_ok(m, c_remove(2));
	c = c_inv("hv2", 1000, 8, 10);
	guest_add(&c, "vm1", 512, 1, HV_LEVEL_PRODUCTION, true, NULL);
	expect_refused(m, c, HV_REMOVED);
	expect_refused(m, c_inv("hv3", 1000, 8, 10), HV_NOMEMBER);
	assert_int_equal(member(m, "hv2")->n_guests, 0);
	assert_int_equal(member(m, "hv2")->mem_cap_mib, 0);
	/* A known member is accepted. */
	run_ok(m, c_inv("hv1", 1000, 8, 10));
	assert_int_equal(member(m, "hv1")->mem_cap_mib, 1000);
}

static void test_inventory_replaces(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c = c_inv("hv1", 65536, 32, 111);
	struct hv_cmd d = c_inv("hv1", 131072, 64, 222);
	const struct hv_member *mb;

	run_ok(m, c_add("hv1", 1));
	mb = member(m, "hv1");
	assert_int_equal(mb->n_guests, 0);
	assert_true(mb->inventory_ms == 0);

	guest_add(&c, "db1", 16384, 8, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "build", 4096, 4, HV_LEVEL_DEV, false, "0000:3b:00.0");
	guest_add(&c, "old-erp", 8192, 2, HV_LEVEL_LEGACY, true, "usb 1d6b:0002");
	run_ok(m, c);
	assert_int_equal(mb->mem_cap_mib, 65536);
	assert_int_equal(mb->vcpus_cap, 32);
	assert_true(mb->inventory_ms == 111);
	assert_int_equal(mb->n_guests, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_guest_equal(&mb->guests[i], &c.guests[i]);

	/* The next report replaces the whole list, not adds to it. */
	guest_add(&d, "web7", 2048, 2, HV_LEVEL_LEGACY, true, NULL);
	run_ok(m, d);
	assert_int_equal(mb->mem_cap_mib, 131072);
	assert_int_equal(mb->vcpus_cap, 64);
	assert_true(mb->inventory_ms == 222);
	assert_int_equal(mb->n_guests, 1);
	assert_guest_equal(&mb->guests[0], &d.guests[0]);
	assert_null(find_guest(mb, "db1"));

	/* An empty list empties it. */
	run_ok(m, c_inv("hv1", 0, 0, 333));
	assert_int_equal(mb->n_guests, 0);
	assert_int_equal(mb->mem_cap_mib, 0);
	assert_true(mb->inventory_ms == 333);

	/* HV_MAX_GUESTS guests through the codec. */
	c = c_inv("hv1", 1u << 20, 256, 444);
	for (unsigned i = 0; i < HV_MAX_GUESTS; i++) {
		char name[16];
		snprintf(name, sizeof name, "g%02u", i);
		guest_add(&c, name, 100 + i, 1 + i % 4, (int)(i % 3), i % 5 != 0, NULL);
	}
	run_ok(m, c);
	assert_int_equal(mb->n_guests, HV_MAX_GUESTS);
	for (unsigned i = 0; i < HV_MAX_GUESTS; i++)
		assert_guest_equal(&mb->guests[i], &c.guests[i]);
	/* Other members are not touched. */
	assert_int_equal(m->s->n_members, 1);
}

static void test_inventory_load(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t2;

	cluster(m, 3, 100000);
	c = c_inv("hv1", 100000, 64, 200);
	guest_add(&c, "a", 1000, 2, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "b", 500, 1, HV_LEVEL_LEGACY, false, NULL); /* shut off */
	guest_add(&c, "c", 300, 1, HV_LEVEL_DEV, true, NULL);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv1"), 1300);
	assert_int_equal(load_cpu(m, "hv1"), 3);
	assert_int_equal(load_mem(m, "hv3"), 0);

	/* hv2 evacuates x onto hv1, y onto hv3, and saves z. */
	c = c_inv("hv2", 100000, 64, 200);
	guest_add(&c, "x", 700, 4, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "y", 900, 3, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "z", 5000, 5, HV_LEVEL_LEGACY, true, NULL);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv2"), 6600);
	t2 = grant(m, "hv2");
	maint_to(m, "hv2", t2, HV_MAINT_ENTERING, 300);
	c = c_plan("hv2", t2, 400);
	move_add(&c, "x", "hv2", "hv1", 700, 4, HV_ACT_MIGRATE);
	move_add(&c, "y", "hv2", "hv3", 900, 3, HV_ACT_MIGRATE);
	move_add(&c, "z", "hv2", "", 5000, 5, HV_ACT_SAVE);
	run_ok(m, c);
	/* The pending migration reserves room on its target... */
	assert_int_equal(load_mem(m, "hv1"), 2000);
	assert_int_equal(load_cpu(m, "hv1"), 7);
	assert_int_equal(load_mem(m, "hv3"), 900);
	assert_int_equal(load_cpu(m, "hv3"), 3);
	/* ...the source still counts what is leaving, a save reserves nothing. */
	assert_int_equal(load_mem(m, "hv2"), 6600);
	assert_int_equal(load_cpu(m, "hv2"), 12);

	/* Done: the guest is now in hv1's inventory, counted once. */
	run_ok(m, c_moved("hv2", t2, "x", "hv2", "hv1", HV_OK, NULL, 500));
	assert_int_equal(load_mem(m, "hv1"), 2000);
	assert_int_equal(load_cpu(m, "hv1"), 7);
	assert_int_equal(load_mem(m, "hv2"), 5900);
	/* Failed: the reservation is released. */
	run_ok(m, c_moved("hv2", t2, "y", "hv2", "hv3", HV_TIMEOUT, "timed out", 600));
	assert_int_equal(load_mem(m, "hv3"), 0);
	assert_int_equal(load_cpu(m, "hv3"), 0);
	assert_int_equal(load_mem(m, "hv2"), 5900);
	/* A save done relocates nothing. */
	run_ok(m, c_moved("hv2", t2, "z", "hv2", "", HV_OK, NULL, 700));
	assert_int_equal(load_mem(m, "hv2"), 5900);
	assert_non_null(find_guest(member(m, "hv2"), "z"));
}

/* ---- MAINT ------------------------------------------------------------------ */

static void test_maint_fencing(void **state)
{
	struct sm *m = *state;
	uint64_t t1;

	cluster(m, 2, 1000);
	expect_refused(m, c_maint("hv1", 0, "entering", 10), HV_NOTHOLDER);
	expect_refused(m, c_maint("ghost", 1, "entering", 10), HV_NOTHOLDER);
	t1 = grant(m, "hv1");
	expect_refused(m, c_maint("hv1", t1 + 1, "entering", 10), HV_BADTOKEN);
	expect_refused(m, c_maint("hv1", t1 - 1, "entering", 10), HV_BADTOKEN);
	expect_refused(m, c_maint("hv1", 0, "entering", 10), HV_BADTOKEN);
	/* Another member with the holder's token is not the holder. */
	expect_refused(m, c_maint("hv2", t1, "entering", 10), HV_NOTHOLDER);
	/* Fencing comes before the phase check. */
	expect_refused(m, c_maint("hv1", t1 + 1, "bogus", 10), HV_BADTOKEN);
	expect_refused(m, c_maint("hv2", t1, "bogus", 10), HV_NOTHOLDER);
	run_ok(m, c_maint("hv1", t1, "entering", 10));
	assert_int_equal(member(m, "hv1")->maint, HV_MAINT_ENTERING);

	/* A stale token from an earlier grant is refused. */
	run_ok(m, c_maint("hv1", t1, "none", 11));
	run_ok(m, c_release("hv1", t1));
	uint64_t t1b = grant(m, "hv1");
	assert_true(t1b > t1);
	expect_refused(m, c_maint("hv1", t1, "entering", 12), HV_BADTOKEN);
	run_ok(m, c_maint("hv1", t1b, "entering", 12));
}

static const char *const phase_names[HV__MAINT_N] = {"none", "entering", "evacuating",
                                                     "in", "exiting"};

static void test_maint_transitions(void **state)
{
	struct sm *m = *state;
	/* The legal transitions, written out independently of state.c. */
	static const bool legal[HV__MAINT_N][HV__MAINT_N] = {
	    /*               none   enter  evac   in     exit */
	    [HV_MAINT_NONE] = {false, true, false, false, false},
	    [HV_MAINT_ENTERING] = {true, false, true, false, false},
	    [HV_MAINT_EVACUATING] = {false, false, false, true, true},
	    [HV_MAINT_IN] = {false, false, false, false, true},
	    [HV_MAINT_EXITING] = {true, false, false, false, false},
	};
	unsigned n_legal = 0;

	for (int from = 0; from < HV__MAINT_N; from++) {
		for (int to = 0; to < HV__MAINT_N; to++) {
			uint64_t t;
			char want[128];

			reset(m);
			cluster(m, 1, 1000);
			t = grant(m, "hv1");
			maint_to(m, "hv1", t, from, 1000);
			if (from == to) {
				/* Re-commit: accepted, changes nothing, no event. */
				struct hv_state *before = state_copy(m->s);
				assert_int_equal(
				    run(m, c_maint("hv1", t, phase_names[to], 5000),
				        NULL),
				    HV_OK);
				before->last_index = m->index;
				assert_memory_equal(before, m->s, sizeof *before);
				state_free(before);
			} else if (legal[from][to]) {
				struct hv_member *mb = member(m, "hv1");
				unsigned count = mb->maint_count;
				run_ok(m, c_maint("hv1", t, phase_names[to], 5000));
				assert_int_equal(mb->maint, to);
				snprintf(want, sizeof want, "hv1: maintenance %s -> %s",
				         phase_names[from], phase_names[to]);
				assert_string_equal(newest_event(m->s), want);
				assert_int_equal(mb->maint_count,
				                 count + (to == HV_MAINT_NONE ? 1 : 0));
				n_legal++;
			} else {
				expect_refused(m,
				               c_maint("hv1", t, phase_names[to], 5000),
				               HV_INVAL);
				assert_int_equal(member(m, "hv1")->maint, from);
			}
		}
	}
	assert_int_equal(n_legal, 7);
}

static void test_maint_unknown_phase(void **state)
{
	struct sm *m = *state;
	static const char *const bad[] = {"",    "NONE", "Entering", "maintenance",
	                                  "in ", "exit", "evacuate", "unknown"};
	uint64_t t;

	for (int phase = 0; phase < HV__MAINT_N; phase++) {
		reset(m);
		cluster(m, 1, 1000);
		t = grant(m, "hv1");
		maint_to(m, "hv1", t, phase, 100);
		for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
			expect_refused(m, c_maint("hv1", t, bad[i], 200), HV_INVAL);
	}
}

static void test_maint_accounting(void **state)
{
	struct sm *m = *state;
	struct hv_member *mb;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 2, 100000);
	t = grant(m, "hv1");
	mb = member(m, "hv1");
	assert_int_equal(mb->maint, HV_MAINT_NONE);
	assert_true(mb->maint_since_ms == 0 && mb->maint_total_ms == 0);
	assert_int_equal(mb->maint_count, 0);

	run_ok(m, c_maint("hv1", t, "entering", 10000));
	assert_true(mb->maint_since_ms == 10000);
	run_ok(m, c_maint("hv1", t, "evacuating", 11000));
	run_ok(m, c_maint("hv1", t, "in", 12000));
	run_ok(m, c_maint("hv1", t, "exiting", 13000));
	assert_true(mb->maint_since_ms == 10000); /* only set when leaving none */
	assert_true(mb->maint_total_ms == 0);
	assert_int_equal(mb->maint_count, 0);
	run_ok(m, c_maint("hv1", t, "none", 15000));
	assert_int_equal(mb->maint, HV_MAINT_NONE);
	assert_true(mb->maint_total_ms == 5000);
	assert_int_equal(mb->maint_count, 1);

	/* A second, aborted maintenance adds to the totals. */
	run_ok(m, c_maint("hv1", t, "entering", 20000));
	assert_true(mb->maint_since_ms == 20000);
	run_ok(m, c_maint("hv1", t, "none", 20500));
	assert_true(mb->maint_total_ms == 5500);
	assert_int_equal(mb->maint_count, 2);

	/* A clock that went backwards adds nothing (no wrap-around). */
	run_ok(m, c_maint("hv1", t, "entering", 30000));
	run_ok(m, c_maint("hv1", t, "none", 29000));
	assert_true(mb->maint_total_ms == 5500);
	assert_int_equal(mb->maint_count, 3);

	/* Going back to none drops the holder's moves and their reservations. */
	run_ok(m, c_maint("hv1", t, "entering", 40000));
	c = c_plan("hv1", t, 40100);
	move_add(&c, "vm1", "hv1", "hv2", 4000, 2, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(m->s->n_moves, 1);
	assert_int_equal(load_mem(m, "hv2"), 4000);
	run_ok(m, c_maint("hv1", t, "none", 41000));
	assert_int_equal(m->s->n_moves, 0);
	assert_int_equal(load_mem(m, "hv2"), 0);
	assert_true(mb->maint_total_ms == 6500);
	assert_int_equal(mb->maint_count, 4);
	/* The other member's counters never moved. */
	assert_int_equal(member(m, "hv2")->maint_count, 0);
	assert_true(member(m, "hv2")->maint_total_ms == 0);
}

static void test_release_in_maint(void **state)
{
	struct sm *m = *state;
	uint64_t t;

	cluster(m, 1, 1000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_ENTERING, 100);
	expect_refused(m, c_release("hv1", t), HV_INMAINT);
	expect_refused(m, c_release("hv1", t + 1), HV_BADTOKEN); /* token first */
	run_ok(m, c_maint("hv1", t, "evacuating", 200));
	expect_refused(m, c_release("hv1", t), HV_INMAINT);
	run_ok(m, c_maint("hv1", t, "in", 300));
	expect_refused(m, c_release("hv1", t), HV_INMAINT);
	run_ok(m, c_maint("hv1", t, "exiting", 400));
	expect_refused(m, c_release("hv1", t), HV_INMAINT);
	assert_non_null(hv_state_holder(m->s, "hv1"));
	run_ok(m, c_maint("hv1", t, "none", 500));
	run_ok(m, c_release("hv1", t));
	assert_null(hv_state_holder(m->s, "hv1"));
	assert_int_equal(m->s->n_holders, 0);
}

static void test_break_resets_maint(void **state)
{
	struct sm *m = *state;
	struct hv_member *h1, *h2;
	struct hv_cmd c;
	uint64_t t1, t2;

	cluster(m, 3, 100000);
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	t2 = grant(m, "hv2");
	maint_to(m, "hv1", t1, HV_MAINT_EVACUATING, 5000);
	maint_to(m, "hv2", t2, HV_MAINT_ENTERING, 5500);
	c = c_plan("hv1", t1, 5600);
	move_add(&c, "g1", "hv1", "hv3", 1000, 1, HV_ACT_MIGRATE);
	move_add(&c, "g1b", "hv1", "hv3", 500, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	c = c_plan("hv2", t2, 5700);
	move_add(&c, "g2", "hv2", "hv3", 2000, 2, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t1, "g1b", "hv1", "hv3", HV_OK, NULL, 5800));
	assert_int_equal(load_mem(m, "hv3"), 3500);
	assert_int_equal(m->s->n_moves, 3);

	run_ok(m, c_break("hv1", "ops", "hv1 hung during evacuation", 9000));
	h1 = member(m, "hv1");
	h2 = member(m, "hv2");
	assert_null(hv_state_holder(m->s, "hv1"));
	assert_non_null(hv_state_holder(m->s, "hv2"));
	assert_int_equal(h1->maint, HV_MAINT_NONE);
	assert_int_equal(h1->maint_count, 1);
	assert_true(h1->maint_total_ms == 4000);
	/* hv1's moves are dropped, hv2's are kept. */
	assert_int_equal(m->s->n_moves, 1);
	assert_null(find_move(m->s, "hv1", "g1"));
	assert_null(find_move(m->s, "hv1", "g1b"));
	assert_non_null(find_move(m->s, "hv2", "g2"));
	/* g1's reservation is released; g1b, done, is in hv3's inventory. */
	assert_int_equal(load_mem(m, "hv3"), 2500);
	assert_int_equal(h2->maint, HV_MAINT_ENTERING);
	/* The history still has the finished move. */
	assert_int_equal(m->s->hist_count, 1);
	assert_string_equal(hv_state_history(m->s, 0)->m.guest, "g1b");
	/* The broken holder is fenced off. */
	expect_refused(m, c_moved("hv1", t1, "g1", "hv1", "hv3", HV_OK, NULL, 9100),
	               HV_NOTHOLDER);
	expect_refused(m, c_maint("hv1", t1, "none", 9100), HV_NOTHOLDER);
	c = c_plan("hv1", t1, 9100);
	move_add(&c, "g1", "hv1", "hv3", 1000, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_NOTHOLDER);

	/* Breaking every holder resets the other too. */
	run_ok(m, c_break("", "ops", "abort everything", 10000));
	assert_int_equal(m->s->n_holders, 0);
	assert_int_equal(h2->maint, HV_MAINT_NONE);
	assert_int_equal(h2->maint_count, 1);
	assert_true(h2->maint_total_ms == 10000 - 5500);
	assert_int_equal(m->s->n_moves, 0);
	assert_int_equal(load_mem(m, "hv3"), 500);

	/* A break of a holder not in maintenance leaves its counters alone. */
	t1 = grant(m, "hv1");
	run_ok(m, c_break("hv1", "ops", "test", 11000));
	assert_int_equal(h1->maint_count, 1);
	assert_true(h1->maint_total_ms == 4000);
}

/* ---- PLAN ------------------------------------------------------------------- */

static void test_plan_fencing(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t1, t1b;

	cluster(m, 3, 100000);
	c = c_plan("hv1", 0, 100);
	move_add(&c, "vm", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_NOTHOLDER);
	t1 = grant(m, "hv1");
	maint_to(m, "hv1", t1, HV_MAINT_ENTERING, 100);
	c.token = t1 + 1;
	expect_refused(m, c, HV_BADTOKEN);
	c.token = 0;
	expect_refused(m, c, HV_BADTOKEN);
	/* hv2 with hv1's token. */
	struct hv_cmd d = c_plan("hv2", t1, 100);
	move_add(&d, "vm", "hv2", "hv3", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, d, HV_NOTHOLDER);
	/* A token of an earlier grant. */
	run_ok(m, c_maint("hv1", t1, "none", 150));
	run_ok(m, c_release("hv1", t1));
	t1b = grant(m, "hv1");
	maint_to(m, "hv1", t1b, HV_MAINT_ENTERING, 200);
	c.token = t1;
	expect_refused(m, c, HV_BADTOKEN);
	c.token = t1b;
	run_ok(m, c);
	assert_true(find_move(m->s, "hv1", "vm")->token == t1b);
}

static void test_plan_paused(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 2, 100000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_ENTERING, 100);
	run_ok(m, c_pause("alice", "freeze"));
	c = c_plan("hv1", t, 200);
	move_add(&c, "vm", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_PAUSED);
	/* Fencing is checked before the pause. */
	c.token = t + 1;
	expect_refused(m, c, HV_BADTOKEN);
	c.token = t;
	/* MAINT and MOVED are not stopped by a pause. */
	run_ok(m, c_maint("hv1", t, "evacuating", 300));
	run_ok(m, c_resume("bob"));
	run_ok(m, c);
	run_ok(m, c_pause("alice", "freeze again"));
	run_ok(m, c_moved("hv1", t, "vm", "hv1", "hv2", HV_OK, NULL, 400));
	assert_int_equal(find_move(m->s, "hv1", "vm")->status, HV_MOVE_DONE);
}

static void test_plan_phase(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	for (int phase = 0; phase < HV__MAINT_N; phase++) {
		reset(m);
		cluster(m, 3, 100000);
		t = grant(m, "hv1");
		maint_to(m, "hv1", t, phase, 100);
		c = c_plan("hv1", t, 200);
		if (phase == HV_MAINT_EXITING)
			move_add(&c, "vm", "hv2", "hv1", 100, 1, HV_ACT_MIGRATE);
		else
			move_add(&c, "vm", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
		/* Exiting moves only guests the evacuation moved away, and vm
		 * never was (test_plan_source_target has the accepted case). */
		if (phase == HV_MAINT_NONE || phase == HV_MAINT_IN ||
		    phase == HV_MAINT_EXITING) {
			expect_refused(m, c, HV_INVAL);
		} else {
			run_ok(m, c);
			assert_int_equal(m->s->n_moves, 1);
		}
		/* An empty plan is refused in every phase. */
		expect_refused(m, c_plan("hv1", t, 300), HV_INVAL);
	}
}

static void test_plan_source_target(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t1, t4;

	cluster(m, 5, 100000);
	run_ok(m, c_add("hv6", 6));
	run_ok(m, c_inv("hv6", 100000, 64, 100));
	run_ok(m, c_remove(6));
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	t4 = grant(m, "hv4");
	maint_to(m, "hv1", t1, HV_MAINT_EVACUATING, 100);
	maint_to(m, "hv4", t4, HV_MAINT_ENTERING, 100);

	/* Evacuation moves must leave the holder. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv2", "hv3", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "ghost", "hv3", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv6", "hv3", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv2", "", 100, 1, HV_ACT_SAVE); /* a save elsewhere */
	expect_refused(m, c, HV_INVAL);
	/* The target must exist, not be removed, not be the source. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv1", "ghost", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv1", "hv6", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv1", "hv1", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv1", "", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	/* ...and not be in maintenance. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "vm", "hv1", "hv4", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INMAINT);
	/* One bad move refuses the whole plan: the good ones before it too. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "ok1", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	move_add(&c, "ok2", "hv1", "", 100, 1, HV_ACT_SAVE);
	move_add(&c, "vm", "hv1", "hv4", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INMAINT);
	assert_int_equal(m->s->n_moves, 0);

	/* Saves and shutdowns need no target. */
	c = c_plan("hv1", t1, 300);
	move_add(&c, "mig", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	move_add(&c, "sav", "hv1", "", 200, 1, HV_ACT_SAVE);
	move_add(&c, "off", "hv1", "", 300, 1, HV_ACT_SHUTDOWN);
	run_ok(m, c);
	assert_int_equal(m->s->n_moves, 3);
	assert_int_equal(load_mem(m, "hv2"), 100);

	/* Exiting: only guests the evacuation moved away move, home (into
	 * the holder although it is in maintenance) or to another host that
	 * is not in maintenance (rebalance). */
	run_ok(m, c_moved("hv1", t1, "mig", "hv1", "hv2", HV_OK, NULL, 350));
	{
		struct hv_cmd e = c_inv("hv4", 100000, 64, 100);
		guest_add(&e, "back2", 100, 1, HV_LEVEL_PRODUCTION, true, NULL);
		run_ok(m, e);
	}
	run_ok(m, c_maint("hv1", t1, "exiting", 400));
	c = c_plan("hv1", t1, 500);
	move_add(&c, "back", "hv2", "hv3", 100, 1, HV_ACT_MIGRATE); /* never evacuated */
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "back2", "hv4", "hv1", 100, 1, HV_ACT_MIGRATE); /* not hv1's */
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "mig", "hv2", "hv4", 100, 1,
	         HV_ACT_MIGRATE); /* hv4 in maintenance */
	expect_refused(m, c, HV_INMAINT);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "mig", "hv2", "hv2", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "back", "hv6", "hv1", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "back", "ghost", "hv1", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "back", "hv2", "", 100, 1, HV_ACT_SAVE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "mig", "hv2", "hv3", 100, 1, HV_ACT_MIGRATE); /* rebalance */
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv3"), 100);
	run_ok(m, c_moved("hv1", t1, "mig", "hv2", "hv3", HV_OK, NULL, 550));
	c = c_plan("hv1", t1, 600);
	move_add(&c, "mig", "hv3", "hv1", 100, 1, HV_ACT_MIGRATE); /* then home */
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv1"), 100);
	/* ...while another host in maintenance is still no target. */
	c = c_plan("hv4", t4, 600);
	move_add(&c, "x", "hv4", "hv1", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INMAINT);
}

static void test_plan_capacity(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t1, t3;

	cluster(m, 4, 100000);
	c = c_inv("hv2", 4000, 64, 100);
	guest_add(&c, "own", 1000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "off", 50000, 1, HV_LEVEL_PRODUCTION, false, NULL);
	run_ok(m, c);
	run_ok(m, c_add("hv5", 5));
	run_ok(m, c_inv("hv5", 0, 0, 100)); /* 0 = no limit */
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	t3 = grant(m, "hv3");
	maint_to(m, "hv1", t1, HV_MAINT_EVACUATING, 100);
	maint_to(m, "hv3", t3, HV_MAINT_EVACUATING, 100);
	/* Another holder's pending move reserves 500 on hv2. */
	c = c_plan("hv3", t3, 150);
	move_add(&c, "r", "hv3", "hv2", 500, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv2"), 1500);

	/* 1000 + 500 + 1500 + 1001 > 4000: refused, nothing recorded. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "a", "hv1", "hv2", 1500, 1, HV_ACT_MIGRATE);
	move_add(&c, "b", "hv1", "hv2", 1001, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	/* One move alone over the cap. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "big", "hv1", "hv2", 2501, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	/* Earlier moves of the plan to other targets and saves do not count. */
	c = c_plan("hv1", t1, 200);
	move_add(&c, "a", "hv1", "hv2", 1500, 1, HV_ACT_MIGRATE);
	move_add(&c, "x", "hv1", "hv4", 90000, 1, HV_ACT_MIGRATE);
	move_add(&c, "s", "hv1", "", 90000, 1, HV_ACT_SAVE);
	move_add(&c, "b", "hv1", "hv2", 1001, 1, HV_ACT_MIGRATE); /* still full */
	expect_refused(m, c, HV_FULL);
	assert_int_equal(m->s->n_moves, 1);

	/* Exactly the cap fits. */
	c = c_plan("hv1", t1, 300);
	move_add(&c, "a", "hv1", "hv2", 1500, 1, HV_ACT_MIGRATE);
	move_add(&c, "x", "hv1", "hv4", 90000, 1, HV_ACT_MIGRATE);
	move_add(&c, "s", "hv1", "", 90000, 1, HV_ACT_SAVE);
	move_add(&c, "b", "hv1", "hv2", 1000, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv2"), 4000);
	assert_int_equal(load_mem(m, "hv4"), 90000);
	/* Now hv2 is full for anyone, hv4 has 10000 left. */
	c = c_plan("hv3", t3, 400);
	move_add(&c, "one", "hv3", "hv2", 1, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	c = c_plan("hv3", t3, 400);
	move_add(&c, "y", "hv3", "hv4", 10001, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	c = c_plan("hv3", t3, 400);
	move_add(&c, "y", "hv3", "hv4", 10000, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	/* mem_cap 0 means no limit. */
	c = c_plan("hv3", t3, 500);
	move_add(&c, "huge", "hv3", "hv5", UINT32_MAX, 1, HV_ACT_MIGRATE);
	move_add(&c, "huge2", "hv3", "hv5", UINT32_MAX, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_true(load_mem(m, "hv5") == 2ull * UINT32_MAX);
	/* A failed move frees its room again. */
	run_ok(m, c_moved("hv1", t1, "b", "hv1", "hv2", HV_IO, "lost connection", 600));
	assert_int_equal(load_mem(m, "hv2"), 3000);
	c = c_plan("hv3", t3, 700);
	move_add(&c, "z", "hv3", "hv2", 1000, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
}

static void test_plan_duplicate(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 3, 100000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "g1", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	/* The same guest again, elsewhere or saved: refused. */
	c = c_plan("hv1", t, 300);
	move_add(&c, "g2", "hv1", "hv3", 100, 1, HV_ACT_MIGRATE);
	move_add(&c, "g1", "hv1", "hv3", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
	c = c_plan("hv1", t, 300);
	move_add(&c, "g1", "hv1", "", 100, 1, HV_ACT_SAVE);
	expect_refused(m, c, HV_INVAL);
	/* Once the move failed the guest may be planned again. */
	run_ok(m, c_moved("hv1", t, "g1", "hv1", "hv2", HV_TIMEOUT, "timeout", 400));
	c = c_plan("hv1", t, 500);
	move_add(&c, "g1", "hv1", "hv3", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(m->s->n_moves, 2);
	assert_int_equal(find_move(m->s, "hv1", "g1")->status, HV_MOVE_PENDING);
	assert_string_equal(find_move(m->s, "hv1", "g1")->m.target, "hv3");
	/* Once it is done, too (a guest may travel again). */
	run_ok(m, c_moved("hv1", t, "g1", "hv1", "hv3", HV_OK, NULL, 600));
	c = c_plan("hv1", t, 700);
	move_add(&c, "g1", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
}

/* Two moves of the same guest in one plan would leave two pending moves for
 * it: the second one could never be reported (MOVED finds the first). */
static void test_plan_duplicate_in_one_plan(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 3, 100000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "g1", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	move_add(&c, "g1", "hv1", "hv3", 100, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_INVAL);
}

static void test_plan_max_moves(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char name[16];
	unsigned g = 0;
	uint64_t t1, t2;

	/* No memory limit; targets rotate over hv3..hv8 so that no host's
	 * guest list (HV_MAX_GUESTS) fills up first. */
	static const char *const tgt[] = {"hv3", "hv4", "hv5", "hv6", "hv7", "hv8"};
	cluster(m, 8, 0);
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	t2 = grant(m, "hv2");
	maint_to(m, "hv1", t1, HV_MAINT_EVACUATING, 100);
	maint_to(m, "hv2", t2, HV_MAINT_EVACUATING, 100);
	/* 3 full plans: 96 moves. */
	for (unsigned p = 0; p < 3; p++) {
		c = c_plan("hv1", t1, 200 + p);
		for (unsigned i = 0; i < HV_MAX_PLAN; i++) {
			snprintf(name, sizeof name, "g%03u", g++);
			move_add(&c, name, "hv1", i % 2 ? tgt[g % 6] : "", 10, 1,
			         i % 2 ? HV_ACT_MIGRATE : HV_ACT_SAVE);
		}
		run_ok(m, c);
	}
	assert_int_equal(m->s->n_moves, 96);
	/* Done moves still count: report a few. */
	run_ok(m, c_moved("hv1", t1, "g001", "hv1", tgt[1], HV_OK, NULL, 300));
	run_ok(m, c_moved("hv1", t1, "g000", "hv1", "", HV_IO, "disk full", 300));
	/* The cap is cluster-wide: hv2's full plan fills it exactly. */
	c = c_plan("hv2", t2, 400);
	for (unsigned i = 0; i < HV_MAX_PLAN; i++) {
		snprintf(name, sizeof name, "h%03u", i);
		move_add(&c, name, "hv2", tgt[i % 6], 10, 1, HV_ACT_MIGRATE);
	}
	assert_true(96 + HV_MAX_PLAN == HV_MAX_MOVES);
	run_ok(m, c); /* exactly HV_MAX_MOVES */
	assert_int_equal(m->s->n_moves, HV_MAX_MOVES);
	c = c_plan("hv1", t1, 500);
	move_add(&c, "one-more", "hv1", "hv3", 10, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	c = c_plan("hv2", t2, 500);
	move_add(&c, "one-more", "hv2", "", 10, 1, HV_ACT_SHUTDOWN);
	expect_refused(m, c, HV_FULL);
	/* hv2 leaves maintenance: its 32 moves go, room for 32 again. */
	run_ok(m, c_maint("hv2", t2, "exiting", 600));
	run_ok(m, c_maint("hv2", t2, "none", 700));
	assert_int_equal(m->s->n_moves, 96);
	c = c_plan("hv1", t1, 750);
	move_add(&c, "single", "hv1", "hv3", 10, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	/* 97 + 32 > 128: the whole plan is refused, not cut. */
	c = c_plan("hv1", t1, 800);
	for (unsigned i = 0; i < HV_MAX_PLAN; i++) {
		snprintf(name, sizeof name, "k%03u", i);
		move_add(&c, name, "hv1", tgt[i % 6], 10, 1, HV_ACT_MIGRATE);
	}
	expect_refused(m, c, HV_FULL);
	c.n_moves = HV_MAX_PLAN - 1;
	run_ok(m, c);
	assert_int_equal(m->s->n_moves, HV_MAX_MOVES);
}

static void test_plan_records(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c, d;
	const struct hv_move *mv;
	uint64_t t1, t2;

	cluster(m, 3, 100000);
	run_ok(m, c_inv("hv3", 10000, 64, 100));
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	t2 = grant(m, "hv2");
	maint_to(m, "hv1", t1, HV_MAINT_ENTERING, 100);
	maint_to(m, "hv2", t2, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t1, 12345);
	move_add(&c, "g1", "hv1", "hv3", 4000, 2, HV_ACT_MIGRATE);
	move_add(&c, "g1s", "hv1", "", 7000, 3, HV_ACT_SAVE);
	run_ok(m, c);
	assert_string_equal(newest_event(m->s), "hv1: plan of 2 moves committed");
	d = c_plan("hv2", t2, 23456);
	move_add(&d, "g2", "hv2", "hv3", 5000, 4, HV_ACT_MIGRATE);
	run_ok(m, d);
	assert_string_equal(newest_event(m->s), "hv2: plan of 1 move committed");

	assert_int_equal(m->s->n_moves, 3);
	mv = &m->s->moves[0];
	assert_cmove_equal(&mv->m, &c.moves[0]);
	assert_string_equal(mv->holder, "hv1");
	assert_true(mv->token == t1);
	assert_int_equal(mv->status, HV_MOVE_PENDING);
	assert_true(mv->planned_ms == 12345);
	assert_true(mv->done_ms == 0 && mv->bytes == 0);
	assert_string_equal(mv->error, "");
	mv = &m->s->moves[1];
	assert_cmove_equal(&mv->m, &c.moves[1]);
	assert_string_equal(mv->holder, "hv1");
	mv = &m->s->moves[2];
	assert_cmove_equal(&mv->m, &d.moves[0]);
	assert_string_equal(mv->holder, "hv2");
	assert_true(mv->token == t2);
	assert_true(mv->planned_ms == 23456);

	/* Both reservations on hv3, across holders. */
	assert_int_equal(load_mem(m, "hv3"), 9000);
	assert_int_equal(load_cpu(m, "hv3"), 6);
	/* Room left: 1000. */
	c = c_plan("hv1", t1, 30000);
	move_add(&c, "g3", "hv1", "hv3", 1001, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	c = c_plan("hv2", t2, 30000);
	move_add(&c, "g3", "hv2", "hv3", 1001, 1, HV_ACT_MIGRATE);
	expect_refused(m, c, HV_FULL);
	c = c_plan("hv1", t1, 30000);
	move_add(&c, "g3", "hv1", "hv3", 1000, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv3"), 10000);
	/* Plans of holders in maintenance are targets of nobody. */
	assert_int_equal(load_mem(m, "hv1"), 0);
	assert_int_equal(load_mem(m, "hv2"), 0);
}

/* ---- MOVED ------------------------------------------------------------------ */

static void test_moved_fencing(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 2, 100000);
	expect_refused(m, c_moved("hv1", 0, "g1", "hv1", "hv2", HV_OK, NULL, 10),
	               HV_NOTHOLDER);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "g1", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	expect_refused(m, c_moved("hv1", t + 1, "g1", "hv1", "hv2", HV_OK, NULL, 300),
	               HV_BADTOKEN);
	expect_refused(m, c_moved("hv1", t - 1, "g1", "hv1", "hv2", HV_OK, NULL, 300),
	               HV_BADTOKEN);
	expect_refused(m, c_moved("hv2", t, "g1", "hv1", "hv2", HV_OK, NULL, 300),
	               HV_NOTHOLDER);
	expect_refused(m, c_moved("ghost", t, "g1", "hv1", "hv2", HV_OK, NULL, 300),
	               HV_NOTHOLDER);
	assert_int_equal(find_move(m->s, "hv1", "g1")->status, HV_MOVE_PENDING);
}

static void test_moved_not_pending(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t1, t2;

	cluster(m, 3, 100000);
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	t2 = grant(m, "hv2");
	maint_to(m, "hv1", t1, HV_MAINT_EVACUATING, 100);
	maint_to(m, "hv2", t2, HV_MAINT_EVACUATING, 100);
	/* Nothing planned at all. */
	expect_refused(m, c_moved("hv1", t1, "g1", "hv1", "hv3", HV_OK, NULL, 150),
	               HV_INVAL);
	c = c_plan("hv1", t1, 200);
	move_add(&c, "g1", "hv1", "hv3", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	c = c_plan("hv2", t2, 200);
	move_add(&c, "g2", "hv2", "hv3", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	/* Unknown guest. */
	expect_refused(m, c_moved("hv1", t1, "nope", "hv1", "hv3", HV_OK, NULL, 300),
	               HV_INVAL);
	/* Another holder's guest. */
	expect_refused(m, c_moved("hv1", t1, "g2", "hv2", "hv3", HV_OK, NULL, 300),
	               HV_INVAL);
	/* Done once; the second report finds nothing pending. */
	run_ok(m, c_moved("hv1", t1, "g1", "hv1", "hv3", HV_OK, NULL, 300));
	expect_refused(m, c_moved("hv1", t1, "g1", "hv1", "hv3", HV_OK, NULL, 400),
	               HV_INVAL);
	expect_refused(m, c_moved("hv1", t1, "g1", "hv1", "hv3", HV_IO, "x", 400),
	               HV_INVAL);
	/* Failed once, likewise. */
	run_ok(m, c_moved("hv2", t2, "g2", "hv2", "hv3", HV_IO, "x", 500));
	expect_refused(m, c_moved("hv2", t2, "g2", "hv2", "hv3", HV_OK, NULL, 600),
	               HV_INVAL);
	assert_int_equal(m->s->hist_count, 2);
}

static void test_moved_done(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c, inv1, inv2;
	const struct hv_move *mv, *h;
	const struct hv_member *h1, *h2;
	struct hv_cmd moved;
	uint64_t t;

	cluster(m, 3, 100000);
	inv1 = c_inv("hv1", 100000, 64, 100);
	guest_add(&inv1, "db", 8000, 4, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&inv1, "web", 2000, 2, HV_LEVEL_LEGACY, true, NULL);
	guest_add(&inv1, "ci", 1000, 1, HV_LEVEL_DEV, true, "0000:af:00.1");
	run_ok(m, inv1);
	inv2 = c_inv("hv2", 100000, 64, 100);
	guest_add(&inv2, "mon", 500, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, inv2);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "db", "hv1", "hv2", 8000, 4, HV_ACT_MIGRATE);
	move_add(&c, "web", "hv1", "hv3", 2000, 2, HV_ACT_MIGRATE);
	move_add(&c, "ci", "hv1", "", 1000, 1, HV_ACT_SHUTDOWN);
	move_add(&c, "nowhere", "hv1", "hv3", 300, 3, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv2"), 8500);

	moved = c_moved("hv1", t, "db", "hv1", "hv2", HV_OK, NULL, 7777);
	moved.downtime_ms = 42;
	moved.elapsed_ms = 12345;
	moved.bytes = 1ull << 33;
	run_ok(m, moved);
	mv = find_move(m->s, "hv1", "db");
	assert_int_equal(mv->status, HV_MOVE_DONE);
	assert_int_equal(mv->result, HV_OK);
	assert_true(mv->done_ms == 7777);
	assert_true(mv->downtime_ms == 42);
	assert_true(mv->elapsed_ms == 12345);
	assert_true(mv->bytes == 1ull << 33);
	assert_string_equal(mv->error, "");
	assert_true(mv->planned_ms == 200);
	/* Relocated: gone from hv1, on hv2 with every field kept. */
	h1 = member(m, "hv1");
	h2 = member(m, "hv2");
	assert_null(find_guest(h1, "db"));
	assert_int_equal(h1->n_guests, 2);
	assert_string_equal(h1->guests[0].name, "web");
	assert_string_equal(h1->guests[1].name, "ci");
	assert_int_equal(h2->n_guests, 2);
	assert_guest_equal(find_guest(h2, "db"), &inv1.guests[0]);
	assert_guest_equal(find_guest(h2, "mon"), &inv2.guests[0]);
	/* Counted once on hv2 now, no longer on hv1. */
	assert_int_equal(load_mem(m, "hv2"), 8500);
	assert_int_equal(load_cpu(m, "hv2"), 5);
	assert_int_equal(load_mem(m, "hv1"), 3000);
	/* In the history. */
	assert_int_equal(m->s->hist_count, 1);
	h = hv_state_history(m->s, 0);
	assert_non_null(h);
	assert_move_equal(h, mv);
	assert_null(hv_state_history(m->s, 1));
	assert_string_equal(newest_event(m->s),
	                    "hv1: db moved hv1 -> hv2 (downtime 42 ms)");

	/* The next one is the newest in the history. */
	run_ok(m, c_moved("hv1", t, "web", "hv1", "hv3", HV_OK, NULL, 8888));
	assert_int_equal(m->s->hist_count, 2);
	assert_string_equal(hv_state_history(m->s, 0)->m.guest, "web");
	assert_string_equal(hv_state_history(m->s, 1)->m.guest, "db");
	assert_guest_equal(find_guest(member(m, "hv3"), "web"), &inv1.guests[1]);
	assert_int_equal(load_mem(m, "hv3"), 2300);

	/* A shutdown done relocates nothing. */
	run_ok(m, c_moved("hv1", t, "ci", "hv1", "", HV_OK, NULL, 9999));
	assert_non_null(find_guest(member(m, "hv1"), "ci"));
	assert_true(strncmp(newest_event(m->s), "hv1: ci shut down", 17) == 0);
	assert_int_equal(hv_state_history(m->s, 0)->m.action, HV_ACT_SHUTDOWN);

	/* A guest missing from the source's inventory still arrives. */
	run_ok(m, c_moved("hv1", t, "nowhere", "hv1", "hv3", HV_OK, NULL, 10000));
	{
		const struct hv_cmd_guest *g = find_guest(member(m, "hv3"), "nowhere");
		assert_non_null(g);
		assert_int_equal(g->mem_mib, 300);
		assert_int_equal(g->vcpus, 3);
		assert_true(g->running);
	}
	assert_int_equal(load_mem(m, "hv3"), 2300);
	assert_int_equal(m->s->hist_count, 4);
}

static void test_moved_failed(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	const struct hv_move *mv, *h;
	struct hv_cmd moved;
	char err[HV_ERROR_MAX + 1];
	uint64_t t;

	cluster(m, 2, 100000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "db", 8000, 4, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "db", "hv1", "hv2", 8000, 4, HV_ACT_MIGRATE);
	run_ok(m, c);
	memset(err, 'e', HV_ERROR_MAX);
	err[HV_ERROR_MAX] = '\0';
	memcpy(err, "migration timed out: ", 21);
	moved = c_moved("hv1", t, "db", "hv1", "hv2", HV_TIMEOUT, err, 5000);
	moved.elapsed_ms = 600000;
	moved.bytes = 123456789;
	run_ok(m, moved);
	mv = find_move(m->s, "hv1", "db");
	assert_int_equal(mv->status, HV_MOVE_FAILED);
	assert_int_equal(mv->result, HV_TIMEOUT);
	assert_string_equal(mv->error, err);
	assert_true(mv->done_ms == 5000);
	assert_true(mv->elapsed_ms == 600000);
	assert_true(mv->bytes == 123456789);
	/* Not relocated, nothing reserved any more. */
	assert_non_null(find_guest(member(m, "hv1"), "db"));
	assert_int_equal(member(m, "hv2")->n_guests, 0);
	assert_int_equal(load_mem(m, "hv2"), 0);
	assert_int_equal(load_mem(m, "hv1"), 8000);
	h = hv_state_history(m->s, 0);
	assert_non_null(h);
	assert_move_equal(h, mv);
	assert_int_equal(h->status, HV_MOVE_FAILED);
	assert_true(strncmp(newest_event(m->s), "hv1: moving db to hv2 failed: migration",
	                    39) == 0);
}

/*
 * "in" means empty: not while the holder's inventory lists a running guest
 * that no move of this maintenance took off it. The gap this closes: a move
 * fails and its failure is committed, the driver dies before it retries the
 * guest elsewhere, and the driver that comes back (or the operator's resume)
 * reruns the evacuation, which takes only the pending moves: none. "in" was
 * accepted, and the reboot that follows killed the guest.
 */
static void test_in_refused_with_guest_left(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 3, 100000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "db", 8000, 4, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "web", 1000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "leg", 1000, 1, HV_LEVEL_LEGACY, true, NULL);
	guest_add(&c, "off", 1000, 1, HV_LEVEL_PRODUCTION, false, NULL);
	run_ok(m, c);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "db", "hv1", "hv2", 8000, 4, HV_ACT_MIGRATE);
	move_add(&c, "web", "hv1", "hv2", 1000, 1, HV_ACT_MIGRATE);
	move_add(&c, "leg", "hv1", "", 1000, 1, HV_ACT_SAVE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "web", "hv1", "hv2", HV_OK, NULL, 300));
	c = c_moved("hv1", t, "leg", "hv1", "", HV_OK, NULL, 310);
	c.move.action = HV_ACT_SAVE;
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "db", "hv1", "hv2", HV_IO, "injected", 320));
	/* Nothing pending, but db still runs on hv1: its move failed. */
	assert_int_equal(find_move(m->s, "hv1", "db")->status, HV_MOVE_FAILED);
	expect_refused(m, c_maint("hv1", t, "in", 400), HV_INVAL);
	assert_int_equal(member(m, "hv1")->maint, HV_MAINT_EVACUATING);
	/* Planned again (elsewhere) and moved: now it may go in. The saved
	 * guest and the one that is not running do not hold it back. */
	c = c_plan("hv1", t, 500);
	move_add(&c, "db", "hv1", "hv3", 8000, 4, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "db", "hv1", "hv3", HV_OK, NULL, 600));
	run_ok(m, c_maint("hv1", t, "in", 700));
	assert_int_equal(member(m, "hv1")->maint, HV_MAINT_IN);
}

/*
 * A driver that read its plan from a replica behind the leader: the move of
 * db to hv3 failed and its retry to hv2 is pending, but the driver (a new
 * process, its replica not caught up) still sees the move to hv3 pending
 * and runs it, with success. The guest runs on hv3: the state must say so
 * (it said hv2, and the way home started from a host it never reached). A
 * failure of such an old move changes nothing.
 */
static void test_moved_other_target(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	const struct hv_move *mv;
	struct hv_cmd ret;
	uint64_t t;

	cluster(m, 3, 100000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "db", 8000, 4, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "db", "hv1", "hv3", 8000, 4, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "db", "hv1", "hv3", HV_IO, "injected", 300));
	c = c_plan("hv1", t, 400);
	move_add(&c, "db", "hv1", "hv2", 8000, 4, HV_ACT_MIGRATE);
	run_ok(m, c);
	assert_int_equal(load_mem(m, "hv2"), 8000); /* reserved */
	/* The old move fails again: nothing changes. */
	expect_refused(m, c_moved("hv1", t, "db", "hv1", "hv3", HV_IO, "again", 450),
	               HV_INVAL);
	/* A report naming a host that is no member changes nothing either. */
	expect_refused(m, c_moved("hv1", t, "db", "hv1", "hv9", HV_OK, NULL, 460),
	               HV_INVAL);
	/* It succeeds: db runs on hv3, and that is what the state says. */
	run_ok(m, c_moved("hv1", t, "db", "hv1", "hv3", HV_OK, NULL, 500));
	mv = find_move(m->s, "hv1", "db");
	assert_non_null(mv);
	assert_int_equal(mv->status, HV_MOVE_DONE);
	assert_string_equal(mv->m.target, "hv3");
	assert_null(find_guest(member(m, "hv1"), "db"));
	assert_null(find_guest(member(m, "hv2"), "db"));
	assert_non_null(find_guest(member(m, "hv3"), "db"));
	assert_int_equal(load_mem(m, "hv2"), 0);
	assert_int_equal(load_mem(m, "hv3"), 8000);
	run_ok(m, c_maint("hv1", t, "in", 600));
	/* The way home starts from hv3. */
	run_ok(m, c_maint("hv1", t, "exiting", 700));
	hv_plan_return(m->s, "hv1", &ret);
	assert_int_equal(ret.n_moves, 1);
	assert_string_equal(ret.moves[0].source, "hv3");
	assert_string_equal(ret.moves[0].target, "hv1");
}

/* A running guest no plan took care of (started after the plan): no "in". */
static void test_in_refused_with_guest_unplanned(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t;

	cluster(m, 2, 100000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_inv("hv1", 100000, 64, 200);
	guest_add(&c, "late", 1000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	expect_refused(m, c_maint("hv1", t, "in", 300), HV_INVAL);
	/* Once it is off (the host's next inventory), the host is empty. */
	c = c_inv("hv1", 100000, 64, 400);
	guest_add(&c, "late", 1000, 1, HV_LEVEL_PRODUCTION, false, NULL);
	run_ok(m, c);
	run_ok(m, c_maint("hv1", t, "in", 500));
}

/*
 * A target whose inventory is full (HV_MAX_GUESTS entries): either the plan
 * is refused (HV_FULL), or once the migration is done the guest is still
 * counted on its target. It must not vanish from the replicated state, or the
 * next plan would place guests into memory that is in use.
 */
static void test_moved_target_inventory_full(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char name[16];
	uint64_t t, before;
	int rv;

	cluster(m, 2, 100000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "mover", 4000, 2, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	c = c_inv("hv2", 100000, 64, 100);
	for (unsigned i = 0; i < HV_MAX_GUESTS; i++) {
		snprintf(name, sizeof name, "full%02u", i);
		guest_add(&c, name, 100, 1, HV_LEVEL_PRODUCTION, true, NULL);
	}
	run_ok(m, c);
	before = load_mem(m, "hv2");
	assert_int_equal(before, 100 * HV_MAX_GUESTS);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "mover", "hv1", "hv2", 4000, 2, HV_ACT_MIGRATE);
	rv = run(m, c, NULL);
	if (rv != HV_OK) {
		assert_int_equal(rv, HV_FULL);
		return;
	}
	assert_int_equal(load_mem(m, "hv2"), before + 4000);
	run_ok(m, c_moved("hv1", t, "mover", "hv1", "hv2", HV_OK, NULL, 300));
	assert_null(find_guest(member(m, "hv1"), "mover"));
	if (load_mem(m, "hv2") != before + 4000)
		fail_msg("after a done migration onto a host with %u guests, the "
		         "guest is in no inventory: hv2's load is %llu MiB, want %llu",
		         HV_MAX_GUESTS, (unsigned long long)load_mem(m, "hv2"),
		         (unsigned long long)(before + 4000));
}

/* Run holder through `cycles` maintenances of HV_MAX_PLAN moves each, every
 * move reported (saves done, migrations failed), named w000, w001, ... */
static void churn(struct sm *m, const char *holder, uint64_t token, const char *target,
                  unsigned cycles, unsigned *serial)
{
	char name[16];

	for (unsigned k = 0; k < cycles; k++) {
		struct hv_cmd c = c_plan(holder, token, 100000 + k);
		unsigned first = *serial;

		run_ok(m, c_maint(holder, token, "entering", 100000 + k));
		for (unsigned i = 0; i < HV_MAX_PLAN; i++) {
			snprintf(name, sizeof name, "w%03u", (*serial)++);
			move_add(&c, name, holder, i % 2 ? target : "", 100 + i, 1,
			         i % 2 ? HV_ACT_MIGRATE : HV_ACT_SAVE);
		}
		run_ok(m, c);
		for (unsigned i = 0; i < HV_MAX_PLAN; i++) {
			struct hv_cmd d;
			snprintf(name, sizeof name, "w%03u", first + i);
			d = c_moved(holder, token, name, holder, i % 2 ? target : "",
			            i % 2 ? HV_UNREACHABLE : HV_OK,
			            i % 2 ? "peer gone" : NULL, 200000 + first + i);
			d.downtime_ms = first + i;
			run_ok(m, d);
		}
		run_ok(m, c_maint(holder, token, "none", 300000 + k));
	}
}

static void test_history_wraps(void **state)
{
	struct sm *m = *state;
	unsigned serial = 0;
	char want[16];
	uint64_t t;

	cluster(m, 2, 100000);
	t = grant(m, "hv1");
	churn(m, "hv1", t, "hv2", 3, &serial);
	assert_int_equal(serial, 96);
	assert_int_equal(m->s->hist_count, 96);
	assert_string_equal(hv_state_history(m->s, 0)->m.guest, "w095");
	assert_string_equal(hv_state_history(m->s, 95)->m.guest, "w000");
	assert_null(hv_state_history(m->s, 96));
	churn(m, "hv1", t, "hv2", 2, &serial);
	assert_int_equal(serial, 160);
	assert_int_equal(m->s->hist_count, HV_HISTORY);
	assert_int_equal(m->s->hist_next, 160 % HV_HISTORY);
	for (unsigned i = 0; i < HV_HISTORY; i++) {
		const struct hv_move *h = hv_state_history(m->s, i);
		assert_non_null(h);
		snprintf(want, sizeof want, "w%03u", 159 - i);
		assert_string_equal(h->m.guest, want);
		assert_true(h->downtime_ms == 159 - i);
		assert_int_equal(h->status,
		                 (159 - i) % 2 ? HV_MOVE_FAILED : HV_MOVE_DONE);
	}
	assert_null(hv_state_history(m->s, HV_HISTORY));
	assert_null(hv_state_history(m->s, UINT32_MAX));
	assert_int_equal(m->s->n_moves, 0);
	assert_int_equal(member(m, "hv1")->maint_count, 5);
}

/* ---- snapshots -------------------------------------------------------------- */

struct rich {
	uint64_t t1, t2, t3;
};

/* Inventories, every phase but "in" held somewhere, pending, done and failed
 * moves, a wrapped history, a removed member and a pause. */
static struct rich make_rich(struct sm *m)
{
	struct rich r;
	struct hv_cmd c;
	unsigned serial = 0;
	uint64_t t4;

	cluster(m, 6, 100000);
	c = c_inv("hv1", 262144, 96, 123456);
	guest_add(&c, "db", 16384, 8, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "web", 4096, 4, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "erp", 8192, 2, HV_LEVEL_LEGACY, true, NULL);
	guest_add(&c, "ci", 2048, 2, HV_LEVEL_DEV, true, "0000:3b:00.0");
	guest_add(&c, "off", 1024, 1, HV_LEVEL_DEV, false, "");
	run_ok(m, c);
	c = c_inv("hv2", 131072, 48, 123457);
	guest_add(&c, "app", 2048, 2, HV_LEVEL_PRODUCTION, true, "usb 1d6b:0002");
	run_ok(m, c);
	run_ok(m, c_remove(6));
	run_ok(m, c_settings(4));
	t4 = grant(m, "hv4");
	churn(m, "hv4", t4, "hv5", 5, &serial); /* 160 moves: the ring wrapped */
	run_ok(m, c_release("hv4", t4));
	r.t1 = grant(m, "hv1");
	r.t2 = grant(m, "hv2");
	r.t3 = grant(m, "hv3");
	maint_to(m, "hv1", r.t1, HV_MAINT_EVACUATING, 500000);
	c = c_plan("hv1", r.t1, 500100);
	move_add(&c, "db", "hv1", "hv4", 16384, 8, HV_ACT_MIGRATE);
	move_add(&c, "web", "hv1", "hv5", 4096, 4, HV_ACT_MIGRATE);
	move_add(&c, "erp", "hv1", "", 8192, 2, HV_ACT_SAVE);
	move_add(&c, "ci", "hv1", "", 2048, 2, HV_ACT_SHUTDOWN);
	run_ok(m, c);
	c = c_moved("hv1", r.t1, "db", "hv1", "hv4", HV_OK, NULL, 500200);
	c.downtime_ms = 31;
	c.elapsed_ms = 45000;
	c.bytes = 17179869184ull;
	run_ok(m, c);
	run_ok(m, c_moved("hv1", r.t1, "web", "hv1", "hv5", HV_PROTO,
	                  "unsupported migration cookie", 500300));
	run_ok(m, c_moved("hv1", r.t1, "erp", "hv1", "", HV_OK, NULL, 500400));
	/* ci stays pending; hv1 goes on to exiting. */
	run_ok(m, c_maint("hv1", r.t1, "exiting", 500500));
	maint_to(m, "hv2", r.t2, HV_MAINT_ENTERING, 510000);
	c = c_plan("hv2", r.t2, 510100);
	move_add(&c, "app", "hv2", "hv4", 2048, 2, HV_ACT_MIGRATE);
	run_ok(m, c);
	maint_to(m, "hv3", r.t3, HV_MAINT_IN, 520000);
	run_ok(m, c_pause("alice", "look at hv1"));
	assert_int_equal(m->s->n_moves, 5);
	assert_int_equal(m->s->hist_count, HV_HISTORY);
	assert_true(m->s->hist_next != 0);
	return r;
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
	struct rich rich = make_rich(m);
	struct hv_cmd ret;
	void *buf;
	size_t len;

	/* The target holds something else first. */
	{
		struct sm other = {r, 0};
		cluster(&other, 2, 1);
	}
	snapshot(m->s, &buf, &len);
	assert_int_equal(hv_state_decode(r, buf, len), HV_OK);
	free(buf);
	assert_true(hv_state_equal(m->s, r));

	/* Field by field, the new ones. */
	assert_int_equal(r->n_members, m->s->n_members);
	for (unsigned i = 0; i < r->n_members; i++) {
		const struct hv_member *a = &m->s->members[i], *b = &r->members[i];
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->removed, b->removed);
		assert_int_equal(a->mem_cap_mib, b->mem_cap_mib);
		assert_int_equal(a->vcpus_cap, b->vcpus_cap);
		assert_true(a->inventory_ms == b->inventory_ms);
		assert_int_equal(a->n_guests, b->n_guests);
		for (unsigned g = 0; g < a->n_guests; g++)
			assert_guest_equal(&a->guests[g], &b->guests[g]);
		assert_int_equal(a->maint, b->maint);
		assert_true(a->maint_since_ms == b->maint_since_ms);
		assert_true(a->maint_total_ms == b->maint_total_ms);
		assert_int_equal(a->maint_count, b->maint_count);
	}
	assert_int_equal(hv_state_member(r, "hv1")->maint, HV_MAINT_EXITING);
	assert_int_equal(hv_state_member(r, "hv2")->maint, HV_MAINT_ENTERING);
	assert_int_equal(hv_state_member(r, "hv3")->maint, HV_MAINT_IN);
	assert_int_equal(hv_state_member(r, "hv4")->maint_count, 5);
	assert_true(hv_state_member(r, "hv4")->maint_total_ms > 0);
	assert_int_equal(hv_state_member(r, "hv2")->n_guests, 1);
	assert_string_equal(hv_state_member(r, "hv2")->guests[0].hostdev,
	                    "usb 1d6b:0002");
	assert_int_equal(r->n_moves, m->s->n_moves);
	for (unsigned i = 0; i < r->n_moves; i++)
		assert_move_equal(&r->moves[i], &m->s->moves[i]);
	assert_int_equal(r->hist_count, HV_HISTORY);
	for (unsigned i = 0; i < HV_HISTORY; i++)
		assert_move_equal(hv_state_history(r, i), hv_state_history(m->s, i));
	assert_null(hv_state_history(r, HV_HISTORY));
	/* The reservations are the same. */
	for (unsigned i = 0; i < r->n_members; i++) {
		uint64_t ma, mb;
		unsigned ca, cb;
		hv_state_load(m->s, &m->s->members[i], &ma, &ca);
		hv_state_load(r, &r->members[i], &mb, &cb);
		assert_true(ma == mb);
		assert_int_equal(ca, cb);
	}

	/* The restored state goes on exactly like the original. */
	assert_int_equal(hv_plan_return(m->s, "hv1", &ret), HV_OK);
	assert_int_equal(ret.n_moves, 1);
	ret.token = rich.t1;
	ret.time_ms = 600000;
	struct hv_cmd next[] = {
	    c_resume("bob"),
	    ret,
	    c_moved("hv1", rich.t1, "db", "hv4", "hv1", HV_OK, NULL, 600100),
	    c_moved("hv1", rich.t1, "ci", "hv1", "", HV_OK, NULL, 600200),
	    c_moved("hv2", rich.t2, "app", "hv2", "hv4", HV_IO, "io", 600300),
	    c_maint("hv1", rich.t1, "none", 600400),
	    c_maint("hv3", rich.t3, "exiting", 600500),
	    c_break("hv2", "ops", "enough", 600600),
	    c_release("hv1", rich.t1),
	};
	uint64_t index = m->index;
	for (size_t i = 0; i < sizeof next / sizeof *next; i++) {
		int ra = apply_at(m->s, ++index, &next[i], NULL);
		int rb = apply_at(r, index, &next[i], NULL);
		if (ra != HV_OK)
			fail_msg("step %zu: %s", i, hv_errname(ra));
		assert_int_equal(ra, rb);
		assert_true(hv_state_equal(m->s, r));
	}
	for (unsigned i = 0; i < HV_HISTORY; i++)
		assert_move_equal(hv_state_history(r, i), hv_state_history(m->s, i));
	assert_string_equal(hv_state_history(r, 0)->m.guest, "app");
	assert_non_null(find_guest(hv_state_member(r, "hv1"), "db"));
	state_free(r);
}

static void test_snapshot_truncated(void **state)
{
	struct sm *m = *state;
	struct hv_state *target = state_new(), *orig;
	void *buf;
	size_t len;

	make_rich(m);
	snapshot(m->s, &buf, &len);
	{
		struct sm other = {target, 0};
		uint64_t t;
		cluster(&other, 3, 5000);
		t = grant(&other, "hv2");
		maint_to(&other, "hv2", t, HV_MAINT_ENTERING, 1);
	}
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
	/* The whole one decodes. */
	assert_int_equal(hv_state_decode(target, buf, len), HV_OK);
	assert_true(hv_state_equal(target, m->s));
	free(buf);
	state_free(target);
	state_free(orig);
}

/* A history that has not wrapped yet goes on where it was after a restore. */
static void test_snapshot_short_history(void **state)
{
	struct sm *m = *state;
	struct hv_state *r = state_new();
	struct hv_cmd c;
	uint64_t t;
	void *buf;
	size_t len;

	cluster(m, 2, 100000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "a", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	move_add(&c, "b", "hv1", "", 100, 1, HV_ACT_SAVE);
	move_add(&c, "c", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "a", "hv1", "hv2", HV_OK, NULL, 300));
	run_ok(m, c_moved("hv1", t, "b", "hv1", "", HV_IO, "no space", 400));
	snapshot(m->s, &buf, &len);
	assert_int_equal(hv_state_decode(r, buf, len), HV_OK);
	free(buf);
	assert_true(hv_state_equal(m->s, r));
	assert_int_equal(r->hist_count, 2);
	c = c_moved("hv1", t, "c", "hv1", "hv2", HV_OK, NULL, 500);
	assert_int_equal(apply_at(m->s, m->index + 1, &c, NULL), HV_OK);
	assert_int_equal(apply_at(r, m->index + 1, &c, NULL), HV_OK);
	assert_true(hv_state_equal(m->s, r));
	assert_int_equal(r->hist_count, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_move_equal(hv_state_history(r, i), hv_state_history(m->s, i));
	assert_string_equal(hv_state_history(r, 0)->m.guest, "c");
	assert_string_equal(hv_state_history(r, 1)->m.guest, "b");
	assert_string_equal(hv_state_history(r, 2)->m.guest, "a");
	state_free(r);
}

/* Whatever MOVED result the state accepts, its snapshot must restore: a
 * replica that cannot load the leader's snapshot can never catch up. */
static void test_snapshot_moved_result_range(void **state)
{
	struct sm *m = *state;
	static const int results[] = {HV__NERR - 1, HV__NERR, 200, 255};

	for (size_t i = 0; i < sizeof results / sizeof *results; i++) {
		struct hv_state *r;
		struct hv_cmd c;
		uint64_t t;
		void *buf;
		size_t len;
		int rv;

		reset(m);
		cluster(m, 2, 100000);
		t = grant(m, "hv1");
		maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
		c = c_plan("hv1", t, 200);
		move_add(&c, "vm", "hv1", "hv2", 100, 1, HV_ACT_MIGRATE);
		run_ok(m, c);
		c = c_moved("hv1", t, "vm", "hv1", "hv2", results[i], "odd code", 300);
		rv = run(m, c, NULL);
		if (rv != HV_OK)
			continue; /* refusing it is fine too */
		r = state_new();
		snapshot(m->s, &buf, &len);
		rv = hv_state_decode(r, buf, len);
		free(buf);
		if (rv != HV_OK)
			fail_msg("MOVED with result %d was applied, but the snapshot "
			         "does not decode: %s",
			         results[i], hv_errname(rv));
		assert_true(hv_state_equal(m->s, r));
		state_free(r);
	}
}

/* ---- codec ------------------------------------------------------------------ */

static int decode_exact(const void *buf, size_t len, struct hv_cmd *out)
{
	void *copy = malloc(len > 0 ? len : 1);
	int rv;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	rv = hv_cmd_decode(copy, len, out);
	free(copy);
	return rv;
}

static int roundtrip(const struct hv_cmd *c, struct hv_cmd *out)
{
	void *buf;
	size_t len;
	int rv = hv_cmd_encode(c, NULL, &buf, &len);

	if (rv != HV_OK)
		return rv;
	assert_true(len % 8 == 0);
	assert_true(len <= HV_CMD_MAX + 8);
	rv = decode_exact(buf, len, out);
	free(buf);
	return rv;
}

static void fill_name(char *dst, size_t n, unsigned i)
{
	static const char set[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

	for (size_t k = 0; k < n; k++)
		dst[k] = set[(i * 7 + k) % (sizeof set - 1)];
	dst[n] = '\0';
}

static void test_codec_inventory(void **state)
{
	struct hv_cmd c = c_inv("hv-01.rack_3", UINT32_MAX, 4096, 1700000000123ull);
	struct hv_cmd out;

	(void)state;
	for (unsigned i = 0; i < HV_MAX_GUESTS; i++) {
		struct hv_cmd_guest *g = &c.guests[c.n_guests++];
		memset(g, 0, sizeof *g);
		fill_name(g->name, i == 0 ? HV_NAME_MAX : 1 + i, i);
		g->mem_mib = i == 1 ? UINT32_MAX : 512 * i;
		g->vcpus = i == 2 ? 4096 : i;
		g->level = (int)(i % 3);
		g->running = i % 2 == 0;
		if (i % 4 == 0)
			memset(g->hostdev, 'd', HV_DEV_MAX); /* the longest */
		else if (i % 4 == 1)
			snprintf(g->hostdev, sizeof g->hostdev, "0000:%02x:00.0", i);
	}
	/* Token and moves are not INVENTORY fields: they do not travel. */
	c.token = 99;
	assert_int_equal(roundtrip(&c, &out), HV_OK);
	assert_int_equal(out.type, HV_CMD_INVENTORY);
	assert_true(out.time_ms == 1700000000123ull);
	assert_string_equal(out.name, "hv-01.rack_3");
	assert_int_equal(out.mem_cap_mib, UINT32_MAX);
	assert_int_equal(out.vcpus_cap, 4096);
	assert_true(out.token == 0);
	assert_int_equal(out.n_moves, 0);
	assert_int_equal(out.n_guests, HV_MAX_GUESTS);
	for (unsigned i = 0; i < HV_MAX_GUESTS; i++)
		assert_guest_equal(&out.guests[i], &c.guests[i]);
	/* No guest at all. */
	c.n_guests = 0;
	assert_int_equal(roundtrip(&c, &out), HV_OK);
	assert_int_equal(out.n_guests, 0);
}

static void test_codec_plan(void **state)
{
	struct hv_cmd c = c_plan("hv7", 0xfedcba9876543210ull, 42);
	struct hv_cmd out;

	(void)state;
	for (unsigned i = 0; i < HV_MAX_PLAN; i++) {
		struct hv_cmd_move *mv = &c.moves[c.n_moves++];
		memset(mv, 0, sizeof *mv);
		fill_name(mv->guest, HV_NAME_MAX, i);
		fill_name(mv->source, HV_NAME_MAX, i + 100);
		mv->action = (int)(i % 3);
		if (mv->action == HV_ACT_MIGRATE)
			fill_name(mv->target, HV_NAME_MAX, i + 200);
		mv->mem_mib = i == 0 ? UINT32_MAX : i * 1000;
		mv->vcpus = i == 0 ? 4096 : i;
	}
	assert_int_equal(roundtrip(&c, &out), HV_OK);
	assert_int_equal(out.type, HV_CMD_PLAN);
	assert_string_equal(out.name, "hv7");
	assert_true(out.token == 0xfedcba9876543210ull);
	assert_true(out.time_ms == 42);
	assert_int_equal(out.n_moves, HV_MAX_PLAN);
	assert_int_equal(out.n_guests, 0);
	for (unsigned i = 0; i < HV_MAX_PLAN; i++)
		assert_cmove_equal(&out.moves[i], &c.moves[i]);
}

static void test_codec_moved(void **state)
{
	struct hv_cmd c =
	    c_moved("hv3", 77, "db_01", "hv3", "hv4", HV_UNREACHABLE, NULL, 1234567);
	struct hv_cmd out;

	(void)state;
	c.move.mem_mib = 65536;
	c.move.vcpus = 16;
	c.downtime_ms = 87;
	c.elapsed_ms = 99999;
	c.bytes = UINT64_MAX;
	memset(c.error, 'x', HV_ERROR_MAX);
	c.error[HV_ERROR_MAX] = '\0';
	memcpy(c.error, "peer hv4: connection refused; ", 31);
	assert_int_equal(roundtrip(&c, &out), HV_OK);
	assert_int_equal(out.type, HV_CMD_MOVED);
	assert_string_equal(out.name, "hv3");
	assert_true(out.token == 77);
	assert_true(out.time_ms == 1234567);
	assert_cmove_equal(&out.move, &c.move);
	assert_int_equal(out.result, HV_UNREACHABLE);
	assert_true(out.downtime_ms == 87);
	assert_true(out.elapsed_ms == 99999);
	assert_true(out.bytes == UINT64_MAX);
	assert_string_equal(out.error, c.error);
	/* A save: no target. Success: no error. */
	move_set(&c.move, "old", "hv3", "", 1, 1, HV_ACT_SAVE);
	c.result = HV_OK;
	c.error[0] = '\0';
	assert_int_equal(roundtrip(&c, &out), HV_OK);
	assert_cmove_equal(&out.move, &c.move);
	assert_int_equal(out.result, HV_OK);
	assert_string_equal(out.error, "");
	/* An error text with a control character is refused. */
	snprintf(c.error, sizeof c.error, "line1\nline2");
	assert_int_equal(roundtrip(&c, &out), HV_INVAL);
	/* MAINT carries its phase. */
	c = c_maint("hv3", 5, "evacuating", 6);
	assert_int_equal(roundtrip(&c, &out), HV_OK);
	assert_string_equal(out.phase, "evacuating");
	assert_true(out.token == 5);
}

/* Hand-packed commands, so that the decoder sees what the encoder would
 * not write. */
struct mp {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void mp_init(struct mp *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void mp_str(struct mp *p, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(&p->pk, n);
	msgpack_pack_str_body(&p->pk, s, n);
}

static void mp_kv_u(struct mp *p, const char *k, uint64_t v)
{
	mp_str(p, k);
	msgpack_pack_uint64(&p->pk, v);
}

static void mp_kv_s(struct mp *p, const char *k, const char *v)
{
	mp_str(p, k);
	mp_str(p, v);
}

static void mp_guest(struct mp *p, const char *name, uint64_t level)
{
	msgpack_pack_array(&p->pk, 8);
	mp_str(p, name);
	msgpack_pack_uint64(&p->pk, 1024);
	msgpack_pack_uint64(&p->pk, 2);
	msgpack_pack_uint64(&p->pk, level);
	msgpack_pack_true(&p->pk);
	mp_str(p, "");             /* hostdev */
	mp_str(p, "");             /* local disk */
	msgpack_pack_true(&p->pk); /* persistent */
}

static void mp_move(struct mp *p, const char *guest, uint64_t action)
{
	msgpack_pack_array(&p->pk, 6);
	mp_str(p, guest);
	mp_str(p, "hv1");
	mp_str(p, action == 0 ? "hv2" : "");
	msgpack_pack_uint64(&p->pk, 1024);
	msgpack_pack_uint64(&p->pk, 2);
	msgpack_pack_uint64(&p->pk, action);
}

/* INVENTORY of n guests; guest `bad` (if < n) gets the name and level given. */
static int crafted_inventory(unsigned n, unsigned bad, const char *bad_name,
                             uint64_t bad_level)
{
	struct mp p;
	struct hv_cmd out;
	char name[16];
	int rv;

	mp_init(&p);
	msgpack_pack_map(&p.pk, 7);
	mp_kv_u(&p, "v", HV_CMD_FORMAT);
	mp_kv_u(&p, "t", HV_CMD_INVENTORY);
	mp_kv_u(&p, "ts", 1);
	mp_kv_s(&p, "name", "hv1");
	mp_kv_u(&p, "mem_cap", 1000);
	mp_kv_u(&p, "vcpus_cap", 8);
	mp_str(&p, "guests");
	msgpack_pack_array(&p.pk, n);
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof name, "g%u", i);
		if (i == bad)
			mp_guest(&p, bad_name, bad_level);
		else
			mp_guest(&p, name, i % 3);
	}
	rv = decode_exact(p.sb.data, p.sb.size, &out);
	if (rv == HV_OK)
		assert_int_equal(out.n_guests, n);
	msgpack_sbuffer_destroy(&p.sb);
	return rv;
}

/* PLAN (or, with moved, MOVED of move 0) of n moves; move `bad` gets the
 * guest name and action given. */
static int crafted_plan(bool moved, unsigned n, unsigned bad, const char *bad_guest,
                        uint64_t bad_action)
{
	struct mp p;
	struct hv_cmd out;
	char name[16];
	int rv;

	mp_init(&p);
	msgpack_pack_map(&p.pk, moved ? 11 : 6);
	mp_kv_u(&p, "v", HV_CMD_FORMAT);
	mp_kv_u(&p, "t", moved ? HV_CMD_MOVED : HV_CMD_PLAN);
	mp_kv_u(&p, "ts", 1);
	mp_kv_s(&p, "name", "hv1");
	mp_kv_u(&p, "token", 7);
	if (moved) {
		mp_str(&p, "move");
		if (bad == 0)
			mp_move(&p, bad_guest, bad_action);
		else
			mp_move(&p, "g0", 0);
		mp_kv_u(&p, "result", 0);
		mp_kv_u(&p, "downtime_ms", 1);
		mp_kv_u(&p, "elapsed_ms", 2);
		mp_kv_u(&p, "bytes", 3);
		mp_kv_s(&p, "error", "");
	} else {
		mp_str(&p, "moves");
		msgpack_pack_array(&p.pk, n);
		for (unsigned i = 0; i < n; i++) {
			snprintf(name, sizeof name, "g%u", i);
			if (i == bad)
				mp_move(&p, bad_guest, bad_action);
			else
				mp_move(&p, name, i % 3);
		}
	}
	rv = decode_exact(p.sb.data, p.sb.size, &out);
	if (rv == HV_OK && !moved)
		assert_int_equal(out.n_moves, n);
	msgpack_sbuffer_destroy(&p.sb);
	return rv;
}

static void test_codec_refusals(void **state)
{
	struct hv_cmd c, out;
	void *buf = NULL;
	size_t len = 0;
	int rv;

	(void)state;
	/* Controls: the crafted encodings decode when nothing is wrong. */
	assert_int_equal(crafted_inventory(HV_MAX_GUESTS, UINT32_MAX, NULL, 0), HV_OK);
	assert_int_equal(crafted_inventory(3, 1, "fine", 2), HV_OK);
	assert_int_equal(crafted_plan(false, HV_MAX_PLAN, UINT32_MAX, NULL, 0), HV_OK);
	assert_int_equal(crafted_plan(false, 3, 1, "fine", 2), HV_OK);
	assert_int_equal(crafted_plan(true, 1, 0, "fine", 2), HV_OK);

	/* Too many. */
	assert_int_equal(crafted_inventory(HV_MAX_GUESTS + 1, UINT32_MAX, NULL, 0),
	                 HV_MALFORMED);
	assert_int_equal(crafted_plan(false, HV_MAX_PLAN + 1, UINT32_MAX, NULL, 0),
	                 HV_MALFORMED);
	/* Bad names. */
	assert_int_equal(crafted_inventory(3, 1, "bad name", 0), HV_MALFORMED);
	assert_int_equal(crafted_inventory(3, 2, "", 0), HV_MALFORMED);
	assert_int_equal(crafted_inventory(3, 0, "a/b", 0), HV_MALFORMED);
	assert_int_equal(crafted_plan(false, 3, 1, "bad name", 0), HV_MALFORMED);
	assert_int_equal(crafted_plan(false, 3, 1, "", 0), HV_MALFORMED);
	assert_int_equal(crafted_plan(true, 1, 0, "x;y", 0), HV_MALFORMED);
	/* Level and action out of range. */
	assert_int_equal(crafted_inventory(3, 1, "lvl", 3), HV_MALFORMED);
	assert_int_equal(crafted_inventory(3, 1, "lvl", UINT64_MAX), HV_MALFORMED);
	assert_int_equal(crafted_plan(false, 3, 2, "act", 3), HV_MALFORMED);
	assert_int_equal(crafted_plan(false, 3, 2, "act", UINT64_MAX), HV_MALFORMED);
	assert_int_equal(crafted_plan(true, 1, 0, "act", 3), HV_MALFORMED);

	/* The encoder refuses what it knows to be wrong... */
	c = c_inv("hv1", 1000, 8, 1);
	for (unsigned i = 0; i < HV_MAX_GUESTS; i++)
		guest_add(&c, "g", 1, 1, 0, true, NULL);
	c.n_guests = HV_MAX_GUESTS + 1;
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_TOOBIG);
	c.n_guests = 2;
	snprintf(c.guests[1].name, HV_NAME_MAX + 1, "bad name");
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_INVAL);
	c.guests[1].name[0] = '\0';
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_INVAL);
	c = c_plan("hv1", 1, 1);
	for (unsigned i = 0; i < HV_MAX_PLAN; i++)
		move_add(&c, "g", "hv1", "hv2", 1, 1, 0);
	c.n_moves = HV_MAX_PLAN + 1;
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_TOOBIG);
	assert_null(buf);

	/* ...and whatever it lets through, the decoder refuses. */
	c = c_inv("hv1", 1000, 8, 1);
	guest_add(&c, "g", 1, 1, 3, true, NULL);
	rv = roundtrip(&c, &out);
	assert_true(rv == HV_INVAL || rv == HV_MALFORMED);
	c.guests[0].level = -1;
	rv = roundtrip(&c, &out);
	assert_true(rv == HV_INVAL || rv == HV_MALFORMED);
	c = c_plan("hv1", 1, 1);
	move_add(&c, "g", "hv1", "hv2", 1, 1, 3);
	rv = roundtrip(&c, &out);
	assert_true(rv == HV_INVAL || rv == HV_MALFORMED);
	c = c_plan("hv1", 1, 1);
	move_add(&c, "bad name", "hv1", "hv2", 1, 1, 0);
	rv = roundtrip(&c, &out);
	assert_true(rv == HV_INVAL || rv == HV_MALFORMED);
	c = c_moved("hv1", 1, "g", "hv1", "hv2", HV_OK, NULL, 1);
	c.move.action = 3;
	rv = roundtrip(&c, &out);
	assert_true(rv == HV_INVAL || rv == HV_MALFORMED);
}

/* ---- migrate/plan.c --------------------------------------------------------- */

#define NOW 1000000ull
#define STALE 60000ull

/*
 * hv1: the holder, with guests a (prod 3000), b (prod 2000), c (legacy 1000),
 * d (dev 500) running and e (8000) shut off.
 * hv2, hv7: eligible, 8000 MiB each.
 * hv3 removed, hv4 in maintenance, hv5 stale, hv6 the excluded host: each has
 * 100000 MiB, so placement would prefer any of them.
 */
static uint64_t evac_cluster(struct sm *m, uint64_t *t4)
{
	struct hv_cmd c;
	uint64_t t1;

	for (unsigned i = 1; i <= 7; i++) {
		char name[8];
		snprintf(name, sizeof name, "hv%u", i);
		run_ok(m, c_add(name, i));
	}
	c = c_inv("hv1", 100000, 0, NOW);
	guest_add(&c, "a", 3000, 2, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "b", 2000, 2, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "c", 1000, 1, HV_LEVEL_LEGACY, true, NULL);
	guest_add(&c, "d", 500, 1, HV_LEVEL_DEV, true, NULL);
	guest_add(&c, "e", 8000, 4, HV_LEVEL_PRODUCTION, false, NULL);
	run_ok(m, c);
	run_ok(m, c_inv("hv2", 8000, 0, NOW));
	run_ok(m, c_inv("hv3", 100000, 0, NOW));
	run_ok(m, c_inv("hv4", 100000, 0, NOW));
	run_ok(m, c_inv("hv5", 100000, 0, NOW - STALE - 1));
	run_ok(m, c_inv("hv6", 100000, 0, NOW));
	run_ok(m, c_inv("hv7", 8000, 0, NOW - STALE)); /* just fresh enough */
	run_ok(m, c_remove(3));
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");
	*t4 = grant(m, "hv4");
	maint_to(m, "hv1", t1, HV_MAINT_ENTERING, NOW);
	maint_to(m, "hv4", *t4, HV_MAINT_ENTERING, NOW);
	return t1;
}

static bool targets(const struct hv_cmd *c, const char *host)
{
	for (unsigned i = 0; i < c->n_moves; i++)
		if (strcmp(c->moves[i].target, host) == 0)
			return true;
	return false;
}

/*
 * Concurrency: a second holder only once the first one's evacuation is
 * planned, never onto a host the first one's plan uses, and only when its
 * own guests fit on hosts that hold no lease; a holder is never a target.
 */
static void test_plan_admit(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c, *scratch = malloc(sizeof *scratch);
	char why[512];
	uint64_t t1, t2;

	for (unsigned i = 1; i <= 4; i++) {
		char name[8];
		snprintf(name, sizeof name, "hv%u", i);
		run_ok(m, c_add(name, i));
	}
	c = c_inv("hv1", 4000, 0, NOW);
	guest_add(&c, "a", 1500, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	c = c_inv("hv2", 9000, 0, NOW); /* the most room: placement's first pick */
	guest_add(&c, "b", 1500, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	run_ok(m, c_inv("hv3", 4000, 0, NOW));
	run_ok(m, c_inv("hv4", 4000, 0, NOW));
	run_ok(m, c_settings(2));
	t1 = grant(m, "hv1");

	/* hv1 has not planned: its guests' room is not reserved yet. */
	assert_int_equal(hv_plan_admit(m->s, "hv2", NOW, STALE, scratch, why, sizeof why),
	                 HV_LEASEFULL);
	assert_non_null(strstr(why, "hv1's evacuation is not planned yet"));

	/* hv1's plan puts a on hv2 (the most room): the two would need each
	 * other. */
	maint_to(m, "hv1", t1, HV_MAINT_ENTERING, NOW);
	assert_int_equal(
	    hv_plan_evacuation(m->s, "hv1", NOW, STALE, NULL, NULL, &c, why, sizeof why),
	    HV_OK);
	assert_string_equal(c.moves[0].target, "hv2");
	c.token = t1;
	c.time_ms = NOW + 1;
	assert_int_equal(run_cmd(m, &c), HV_OK);
	run_ok(m, c_maint("hv1", t1, "evacuating", NOW + 2));
	assert_int_equal(hv_plan_admit(m->s, "hv2", NOW, STALE, scratch, why, sizeof why),
	                 HV_LEASEFULL);
	assert_non_null(strstr(why, "hv1's guest a was placed on hv2"));
	/* hv3 may go: b's room... hv3 has no guest, nothing to place. */
	assert_int_equal(hv_plan_admit(m->s, "hv3", NOW, STALE, scratch, why, sizeof why),
	                 HV_OK);
	assert_int_equal(scratch->n_moves, 0);

	/* Once hv2 holds a lease, no plan of another holder targets it, even
	 * with the most room. */
	t2 = grant(m, "hv2");
	assert_true(t2 > t1);
	c = c_inv("hv3", 4000, 0, NOW);
	guest_add(&c, "g", 1000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	assert_int_equal(
	    hv_plan_evacuation(m->s, "hv3", NOW, STALE, NULL, NULL, &c, why, sizeof why),
	    HV_OK);
	assert_int_equal(c.n_moves, 1);
	assert_string_equal(c.moves[0].target, "hv4");

	/* hv2 unplanned blocks a third; planned (b onto hv4), a guest that
	 * would fit only on a holder is refused with the placement's reason. */
	run_ok(m, c_settings(3));
	assert_int_equal(hv_plan_admit(m->s, "hv3", NOW, STALE, scratch, why, sizeof why),
	                 HV_LEASEFULL);
	maint_to(m, "hv2", t2, HV_MAINT_ENTERING, NOW);
	assert_int_equal(
	    hv_plan_evacuation(m->s, "hv2", NOW, STALE, NULL, NULL, &c, why, sizeof why),
	    HV_OK);
	assert_string_equal(c.moves[0].target, "hv4"); /* hv3: g; hv1, itself: no */
	c.token = t2;
	c.time_ms = NOW + 3;
	assert_int_equal(run_cmd(m, &c), HV_OK);
	run_ok(m, c_maint("hv2", t2, "evacuating", NOW + 4));
	c = c_inv("hv3", 4000, 0, NOW);
	guest_add(&c, "huge", 3000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	assert_int_equal(hv_plan_admit(m->s, "hv3", NOW, STALE, scratch, why, sizeof why),
	                 HV_FULL);
	assert_non_null(strstr(why, "huge"));
	free(scratch);
}

static void test_evac_eligible(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char why[512];
	uint64_t t1, t4;
	int rv;

	t1 = evac_cluster(m, &t4);
	rv =
	    hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_string_equal(why, "");
	assert_int_equal(c.type, HV_CMD_PLAN);
	assert_string_equal(c.name, "hv1");
	assert_int_equal(c.n_moves, 4);
	/* Largest first, worst fit onto hv2 and hv7 only. */
	static const char *const want[4][2] = {
	    {"a", "hv2"}, {"b", "hv7"}, {"c", "hv7"}, {"d", "hv2"}};
	for (unsigned i = 0; i < 4; i++) {
		assert_string_equal(c.moves[i].guest, want[i][0]);
		assert_string_equal(c.moves[i].source, "hv1");
		assert_string_equal(c.moves[i].target, want[i][1]);
		assert_int_equal(c.moves[i].action, HV_ACT_MIGRATE);
	}
	assert_int_equal(c.moves[0].mem_mib, 3000);
	assert_int_equal(c.moves[0].vcpus, 2);
	assert_int_equal(c.moves[3].mem_mib, 500);

	/* Each excluded host becomes a target once its reason is gone. */
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_true(targets(&c, "hv6"));
	assert_false(targets(&c, "hv5") || targets(&c, "hv4") || targets(&c, "hv3"));
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE + 1, "hv6", NULL, &c, why,
	                        sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_true(targets(&c, "hv5"));
	assert_false(targets(&c, "hv6") || targets(&c, "hv4") || targets(&c, "hv3"));
	/* At now - stale - 1, hv7 too is stale. */
	rv = hv_plan_evacuation(m->s, "hv1", NOW + 1, STALE, "hv6", NULL, &c, why,
	                        sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_false(targets(&c, "hv7"));
	assert_true(targets(&c, "hv2"));

	/* The plan is accepted as it is, end to end. */
	rv =
	    hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	c.token = t1;
	c.time_ms = NOW + 10;
	assert_int_equal(run_cmd(m, &c), HV_OK);
	assert_int_equal(m->s->n_moves, 4);
	assert_int_equal(load_mem(m, "hv2"), 3500);
	assert_int_equal(load_mem(m, "hv7"), 3000);
	run_ok(m, c_maint("hv1", t1, "evacuating", NOW + 20));
	{
		/* not "in" (empty) while a move of its plan is pending */
		struct hv_cmd in = c_maint("hv1", t1, "in", NOW + 21);
		assert_int_equal(run_cmd(m, &in), HV_INVAL);
		assert_int_equal(member(m, "hv1")->maint, HV_MAINT_EVACUATING);
	}
	for (unsigned i = 0; i < c.n_moves; i++) {
		struct hv_cmd d = c_moved("hv1", t1, c.moves[i].guest, "hv1",
		                          c.moves[i].target, HV_OK, NULL, NOW + 30 + i);
		run_ok(m, d);
	}
	{
		const struct hv_member *h1 = member(m, "hv1");
		assert_int_equal(h1->n_guests, 1);
		assert_string_equal(h1->guests[0].name, "e");
	}
	assert_non_null(find_guest(member(m, "hv2"), "a"));
	assert_non_null(find_guest(member(m, "hv2"), "d"));
	assert_non_null(find_guest(member(m, "hv7"), "b"));
	assert_non_null(find_guest(member(m, "hv7"), "c"));
	assert_int_equal(load_mem(m, "hv2"), 3500);
	assert_int_equal(load_mem(m, "hv7"), 3000);
	assert_int_equal(load_mem(m, "hv1"), 0);
	run_ok(m, c_maint("hv1", t1, "in", NOW + 100));

	/* Nothing left to move. */
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 0);

	/* hv1, now in maintenance, is no target of hv4's plan; hv3 back is. */
	run_ok(m, c_add("hv3", 3));
	c = c_inv("hv4", 100000, 0, NOW);
	guest_add(&c, "z", 100, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	rv =
	    hv_plan_evacuation(m->s, "hv4", NOW, STALE, "hv6", NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 1);
	assert_string_equal(c.moves[0].target, "hv3");
	c.token = t4;
	assert_int_equal(run_cmd(m, &c), HV_OK);
}

static void test_evac_reservations(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char why[512];
	uint64_t t1, t4;
	int rv;

	t1 = evac_cluster(m, &t4);
	/* hv4's plan reserves 7000 on hv2 and 1000 on hv7. */
	c = c_plan("hv4", t4, NOW);
	move_add(&c, "r1", "hv4", "hv2", 7000, 1, HV_ACT_MIGRATE);
	move_add(&c, "r2", "hv4", "hv7", 1000, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	/* 1000 free on hv2, 7000 on hv7: a, b and c go to hv7 (6000), d to
	 * hv2. */
	rv =
	    hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 4);
	for (unsigned i = 0; i < 3; i++)
		assert_string_equal(c.moves[i].target, "hv7");
	assert_string_equal(c.moves[3].target, "hv2");
	c.token = t1;
	assert_int_equal(run_cmd(m, &c), HV_OK);
	assert_int_equal(load_mem(m, "hv7"), 7000);
	assert_int_equal(load_mem(m, "hv2"), 7500);
}

static void test_evac_only_guest(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char why[512];
	uint64_t t1, t4;
	int rv;

	t1 = evac_cluster(m, &t4);
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", "c", &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 1);
	assert_string_equal(c.moves[0].guest, "c");
	assert_string_equal(c.moves[0].source, "hv1");
	assert_int_equal(c.moves[0].mem_mib, 1000);
	assert_int_equal(c.moves[0].action, HV_ACT_MIGRATE);
	c.token = t1;
	assert_int_equal(run_cmd(m, &c), HV_OK);
	/* A shut-off or unknown guest: nothing to plan. */
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", "e", &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 0);
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", "nope", &c, why,
	                        sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 0);
	/* An unknown holder. */
	rv = hv_plan_evacuation(m->s, "ghost", NOW, STALE, NULL, NULL, &c, why,
	                        sizeof why);
	assert_int_equal(rv, HV_NOMEMBER);
	assert_non_null(strstr(why, "ghost"));
	assert_int_equal(c.n_moves, 0);
}

static void test_evac_no_guests(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char why[64];
	int rv;

	cluster(m, 3, 100000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "off1", 1000, 1, HV_LEVEL_PRODUCTION, false, "0000:01:00.0");
	guest_add(&c, "off2", 1000, 1, HV_LEVEL_LEGACY, false, NULL);
	run_ok(m, c);
	memset(why, 'x', sizeof why);
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 0);
	assert_int_equal(c.type, HV_CMD_PLAN);
	assert_string_equal(c.name, "hv1");
	assert_string_equal(why, "");
	/* No guest at all. */
	rv = hv_plan_evacuation(m->s, "hv2", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 0);
}

static void test_evac_refusals(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	char why[512];
	int rv;

	cluster(m, 3, 8000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "gpu", 1000, 1, HV_LEVEL_PRODUCTION, true, "0000:3b:00.0");
	guest_add(&c, "small", 1000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_INVAL);
	assert_non_null(strstr(why, "Device or resource busy"));
	assert_non_null(strstr(why, "gpu"));
	assert_int_equal(c.n_moves, 0);
	/* Without it, the rest plans. */
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, "small", &c, why,
	                        sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 1);
	/* A legacy guest with a hostdev refuses too; a dev one is shut down. */
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "tape", 1000, 1, HV_LEVEL_LEGACY, true, "usb 0781:5567");
	run_ok(m, c);
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_INVAL);
	assert_non_null(strstr(why, "tape"));
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "lab", 1000, 1, HV_LEVEL_DEV, true, "0000:3b:00.0");
	run_ok(m, c);
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 1);
	assert_int_equal(c.moves[0].action, HV_ACT_SHUTDOWN);
	assert_string_equal(c.moves[0].target, "");

	/* Capacity: 2 x 8000 free, a 9000 production guest fits nowhere. */
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "huge-db", 9000, 4, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "tiny", 10, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_FULL);
	assert_non_null(strstr(why, "huge-db"));
	assert_int_equal(c.n_moves, 0);
	/* A legacy guest that fits nowhere is saved instead. */
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "huge-erp", 9000, 4, HV_LEVEL_LEGACY, true, NULL);
	run_ok(m, c);
	rv = hv_plan_evacuation(m->s, "hv1", 100, 1000, NULL, NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.moves[0].action, HV_ACT_SAVE);
	/* No eligible host at all: every other one is stale. */
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "db", 100, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	rv = hv_plan_evacuation(m->s, "hv1", 100 + 1000 + 1, 1000, NULL, NULL, &c, why,
	                        sizeof why);
	assert_int_equal(rv, HV_FULL);
	assert_non_null(strstr(why, "db"));
}

/* An inventory read before a guest moved in or out would undo the move. */
static void test_inventory_stale(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c;
	uint64_t t, moved_at;

	cluster(m, 2, 1000);
	c = c_inv("hv1", 1000, 64, 100);
	guest_add(&c, "a", 400, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "a", "hv1", "hv2", 400, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "a", "hv1", "hv2", HV_OK, NULL, 300));
	moved_at = m->index;
	assert_int_equal(member(m, "hv1")->moved_index, moved_at);
	assert_int_equal(member(m, "hv2")->moved_index, moved_at);
	/* hv1 read libvirt before the move was applied: still lists a. */
	c = c_inv("hv1", 1000, 64, 400);
	guest_add(&c, "a", 400, 1, HV_LEVEL_PRODUCTION, true, NULL);
	c.seen_index = moved_at - 1;
	expect_refused(m, c, HV_TIMEOUT);
	assert_int_equal(load_mem(m, "hv1"), 0);
	/* A read that started after the move counts. */
	c = c_inv("hv1", 1000, 64, 500);
	c.seen_index = moved_at;
	run_ok(m, c);
	c = c_inv("hv2", 1000, 64, 500);
	c.seen_index = moved_at - 1;
	expect_refused(m, c, HV_TIMEOUT);
	assert_int_equal(load_mem(m, "hv2"), 400);
}

static void test_plan_rebalance(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c, plan;
	char why[256];
	uint64_t t;

	cluster(m, 3, 1000);
	c = c_inv("hv1", 1000, 64, 100);
	guest_add(&c, "a", 400, 1, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "b", 300, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "a", "hv1", "hv2", 400, 1, HV_ACT_MIGRATE);
	move_add(&c, "b", "hv1", "hv2", 300, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "a", "hv1", "hv2", HV_OK, NULL, 300));
	run_ok(m, c_moved("hv1", t, "b", "hv1", "hv2", HV_OK, NULL, 300));
	run_ok(m, c_maint("hv1", t, "in", 400));
	run_ok(m, c_maint("hv1", t, "exiting", 500));
	/* As if a and b were nowhere, every host has 1000 free: a (largest)
	 * goes to hv1 (ties: name order), then b to hv2, where it already is. */
	assert_int_equal(hv_plan_rebalance(m->s, "hv1", &plan, why, sizeof why), HV_OK);
	assert_string_equal(why, "");
	assert_int_equal(plan.n_moves, 1);
	assert_string_equal(plan.moves[0].guest, "a");
	assert_string_equal(plan.moves[0].source, "hv2");
	assert_string_equal(plan.moves[0].target, "hv1");
	plan.token = t;
	plan.time_ms = 600;
	run_ok(m, plan);
	/* Nothing moved away: nothing to rebalance. */
	reset(m);
	cluster(m, 2, 1000);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EXITING, 100);
	assert_int_equal(hv_plan_rebalance(m->s, "hv1", &plan, why, sizeof why), HV_OK);
	assert_int_equal(plan.n_moves, 0);
}

static void test_plan_return(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c, ret;
	char why[512];
	uint64_t t1, t4;
	int rv;

	t1 = evac_cluster(m, &t4);
	/* hv4, the other holder, has a migration of its own done: it is not
	 * part of hv1's return. */
	c = c_plan("hv4", t4, NOW);
	move_add(&c, "other", "hv4", "hv7", 100, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv4", t4, "other", "hv4", "hv7", HV_OK, NULL, NOW));
	rv =
	    hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv6", NULL, &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	c.token = t1;
	/* Make c a save and d a shutdown, as if they had not fitted. */
	for (unsigned i = 0; i < c.n_moves; i++) {
		if (strcmp(c.moves[i].guest, "c") == 0) {
			c.moves[i].action = HV_ACT_SAVE;
			c.moves[i].target[0] = '\0';
		} else if (strcmp(c.moves[i].guest, "d") == 0) {
			c.moves[i].action = HV_ACT_SHUTDOWN;
			c.moves[i].target[0] = '\0';
		}
	}
	assert_int_equal(run_cmd(m, &c), HV_OK);
	run_ok(m, c_maint("hv1", t1, "evacuating", NOW + 1));
	/* a done (-> hv2), b failed, c saved, d shut down. */
	run_ok(m, c_moved("hv1", t1, "a", "hv1", "hv2", HV_OK, NULL, NOW + 2));
	run_ok(m, c_moved("hv1", t1, "b", "hv1", "hv7", HV_IO, "broken pipe", NOW + 3));
	run_ok(m, c_moved("hv1", t1, "c", "hv1", "", HV_OK, NULL, NOW + 4));
	run_ok(m, c_moved("hv1", t1, "d", "hv1", "", HV_OK, NULL, NOW + 5));
	/* b is retried away from hv7 (hv6, the roomiest, is no longer
	 * excluded), and done. */
	rv = hv_plan_evacuation(m->s, "hv1", NOW, STALE, "hv7", "b", &c, why, sizeof why);
	assert_int_equal(rv, HV_OK);
	assert_int_equal(c.n_moves, 1);
	assert_string_equal(c.moves[0].target, "hv6");
	c.token = t1;
	assert_int_equal(run_cmd(m, &c), HV_OK);
	run_ok(m, c_moved("hv1", t1, "b", "hv1", "hv6", HV_OK, NULL, NOW + 6));
	run_ok(m, c_maint("hv1", t1, "in", NOW + 7));
	run_ok(m, c_maint("hv1", t1, "exiting", NOW + 8));

	assert_int_equal(hv_plan_return(m->s, "hv1", &ret), HV_OK);
	assert_int_equal(ret.type, HV_CMD_PLAN);
	assert_string_equal(ret.name, "hv1");
	assert_int_equal(ret.n_moves, 2);
	/* In the order of the moves: a, then b. */
	assert_string_equal(ret.moves[0].guest, "a");
	assert_string_equal(ret.moves[0].source, "hv2");
	assert_string_equal(ret.moves[0].target, "hv1");
	assert_int_equal(ret.moves[0].mem_mib, 3000);
	assert_int_equal(ret.moves[0].vcpus, 2);
	assert_int_equal(ret.moves[0].action, HV_ACT_MIGRATE);
	assert_string_equal(ret.moves[1].guest, "b");
	assert_string_equal(ret.moves[1].source, "hv6");
	assert_string_equal(ret.moves[1].target, "hv1");
	assert_int_equal(ret.moves[1].mem_mib, 2000);
	/* Neither the failed move, the save, the shutdown, nor hv4's move. */
	for (unsigned i = 0; i < ret.n_moves; i++)
		assert_int_equal(ret.moves[i].action, HV_ACT_MIGRATE);

	ret.token = t1;
	ret.time_ms = NOW + 9;
	assert_int_equal(run_cmd(m, &ret), HV_OK);
	assert_int_equal(load_mem(m, "hv1"), 1000 + 500 + 3000 + 2000);
	run_ok(m, c_moved("hv1", t1, "a", "hv2", "hv1", HV_OK, NULL, NOW + 10));
	run_ok(m, c_moved("hv1", t1, "b", "hv6", "hv1", HV_OK, NULL, NOW + 11));
	assert_non_null(find_guest(member(m, "hv1"), "a"));
	assert_non_null(find_guest(member(m, "hv1"), "b"));
	assert_null(find_guest(member(m, "hv2"), "a"));
	assert_null(find_guest(member(m, "hv6"), "b"));
	assert_int_equal(load_mem(m, "hv2"), 0);
	run_ok(m, c_maint("hv1", t1, "none", NOW + 12));
	run_ok(m, c_release("hv1", t1));
	assert_int_equal(member(m, "hv1")->n_guests, 5);

	/* hv4's own return plan: "other" is done, from hv7. */
	assert_int_equal(hv_plan_return(m->s, "hv4", &ret), HV_OK);
	assert_int_equal(ret.n_moves, 1);
	assert_string_equal(ret.moves[0].guest, "other");
	assert_string_equal(ret.moves[0].source, "hv7");
	assert_string_equal(ret.moves[0].target, "hv4");
	/* Nothing of theirs: an empty return plan. */
	assert_int_equal(hv_plan_return(m->s, "hv2", &ret), HV_OK);
	assert_int_equal(ret.n_moves, 0);
	assert_int_equal(hv_plan_return(m->s, "nobody", &ret), HV_OK);
	assert_int_equal(ret.n_moves, 0);
}

/*
 * A second return plan, as `maintenance exit` computes when it is run again
 * after a return failed: a guest already back home (its return move done)
 * or on its way (its return move pending) is no longer where its evacuation
 * put it, so only the guest whose return failed is planned again.
 */
static void test_plan_return_retry(void **state)
{
	struct sm *m = *state;
	struct hv_cmd c, ret;
	uint64_t t;

	cluster(m, 3, 100000);
	c = c_inv("hv1", 100000, 64, 100);
	guest_add(&c, "a", 1000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "b", 2000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	guest_add(&c, "c", 3000, 1, HV_LEVEL_PRODUCTION, true, NULL);
	run_ok(m, c);
	t = grant(m, "hv1");
	maint_to(m, "hv1", t, HV_MAINT_EVACUATING, 100);
	c = c_plan("hv1", t, 200);
	move_add(&c, "a", "hv1", "hv2", 1000, 1, HV_ACT_MIGRATE);
	move_add(&c, "b", "hv1", "hv2", 2000, 1, HV_ACT_MIGRATE);
	move_add(&c, "c", "hv1", "hv3", 3000, 1, HV_ACT_MIGRATE);
	run_ok(m, c);
	run_ok(m, c_moved("hv1", t, "a", "hv1", "hv2", HV_OK, NULL, 300));
	run_ok(m, c_moved("hv1", t, "b", "hv1", "hv2", HV_OK, NULL, 300));
	run_ok(m, c_moved("hv1", t, "c", "hv1", "hv3", HV_OK, NULL, 300));
	run_ok(m, c_maint("hv1", t, "exiting", 400));

	assert_int_equal(hv_plan_return(m->s, "hv1", &ret), HV_OK);
	assert_int_equal(ret.n_moves, 3);
	ret.token = t;
	assert_int_equal(run_cmd(m, &ret), HV_OK);
	/* a is back, b's return failed, c's is still under way. */
	run_ok(m, c_moved("hv1", t, "a", "hv2", "hv1", HV_OK, NULL, 500));
	run_ok(m, c_moved("hv1", t, "b", "hv2", "hv1", HV_TIMEOUT, "timeout", 500));
	assert_non_null(find_guest(member(m, "hv1"), "a"));
	assert_non_null(find_guest(member(m, "hv2"), "b"));
	assert_non_null(find_guest(member(m, "hv3"), "c"));

	assert_int_equal(hv_plan_return(m->s, "hv1", &ret), HV_OK);
	for (unsigned i = 0; i < ret.n_moves; i++)
		if (strcmp(ret.moves[i].guest, "b") != 0)
			fail_msg("return plan again moves %s from %s, where it no "
			         "longer is (only b's return failed)",
			         ret.moves[i].guest, ret.moves[i].source);
	assert_int_equal(ret.n_moves, 1);
	assert_string_equal(ret.moves[0].source, "hv2");
	assert_string_equal(ret.moves[0].target, "hv1");
	ret.token = t;
	assert_int_equal(run_cmd(m, &ret), HV_OK);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_inventory_unknown_removed),
	    T(test_inventory_replaces),
	    T(test_inventory_load),
	    T(test_maint_fencing),
	    T(test_maint_transitions),
	    T(test_maint_unknown_phase),
	    T(test_maint_accounting),
	    T(test_release_in_maint),
	    T(test_break_resets_maint),
	    T(test_plan_fencing),
	    T(test_plan_paused),
	    T(test_plan_phase),
	    T(test_plan_source_target),
	    T(test_plan_capacity),
	    T(test_plan_duplicate),
	    T(test_plan_duplicate_in_one_plan),
	    T(test_plan_max_moves),
	    T(test_plan_rebalance),
	    T(test_inventory_stale),
	    T(test_plan_records),
	    T(test_moved_fencing),
	    T(test_moved_not_pending),
	    T(test_moved_done),
	    T(test_moved_failed),
	    T(test_in_refused_with_guest_left),
	    T(test_in_refused_with_guest_unplanned),
	    T(test_moved_other_target),
	    T(test_moved_target_inventory_full),
	    T(test_history_wraps),
	    T(test_snapshot_roundtrip),
	    T(test_snapshot_truncated),
	    T(test_snapshot_short_history),
	    T(test_snapshot_moved_result_range),
	    T(test_codec_inventory),
	    T(test_codec_plan),
	    T(test_codec_moved),
	    T(test_codec_refusals),
	    T(test_evac_eligible),
	    T(test_plan_admit),
	    T(test_evac_reservations),
	    T(test_evac_only_guest),
	    T(test_evac_no_guests),
	    T(test_evac_refusals),
	    T(test_plan_return),
	    T(test_plan_return_retry),
	};

	return cmocka_run_group_tests_name("maint", tests, NULL, NULL);
}
