/*
 * Placement: exact plans for small hand-made clusters, every refusal with its
 * exact text, and properties over thousands of random cluster shapes.
 *
 * Plans are compared as text, one "guest>host", "guest:save" or
 * "guest:shutdown" per move in run order, so a failing test shows the whole
 * plan. Every call goes through place(), which also checks that the inputs
 * are left as they were and that a second call gives the same answer.
 *
 * The random shapes come from a fixed-seed PRNG, so a failure names a shape
 * number that reproduces it. check_run() is the specification in executable
 * form: it replays the plan pass by pass and checks each decision against
 * the rules of placement.c, independently of the planner's own code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../migrate/placement.h"

#define GIB 1024ull

/* ---- building clusters -------------------------------------------------- */

static struct hv_place_host host(const char *name, uint64_t cap, uint64_t used,
                                 unsigned vcap, unsigned vused, bool eligible)
{
	struct hv_place_host h;

	memset(&h, 0, sizeof h);
	snprintf(h.name, sizeof h.name, "%s", name);
	h.mem_cap_mib = cap;
	h.mem_used_mib = used;
	h.vcpus_cap = vcap;
	h.vcpus_used = vused;
	h.eligible = eligible;
	return h;
}

/* An eligible host with free memory and no vCPU cap. */
static struct hv_place_host free_host(const char *name, uint64_t mib)
{
	return host(name, mib, 0, 0, 0, true);
}

static struct hv_place_guest guest(const char *name, uint64_t mem, unsigned vcpus,
                                   int level)
{
	struct hv_place_guest g;

	memset(&g, 0, sizeof g);
	snprintf(g.name, sizeof g.name, "%s", name);
	g.mem_mib = mem;
	g.vcpus = vcpus;
	g.level = level;
	g.running = true;
	return g;
}

static struct hv_place_guest with_hostdev(struct hv_place_guest g, const char *dev)
{
	snprintf(g.hostdev, sizeof g.hostdev, "%s", dev);
	return g;
}

static struct hv_place_guest shut_off(struct hv_place_guest g)
{
	g.running = false;
	return g;
}

/* ---- running the planner ------------------------------------------------ */

struct run {
	int rc;
	unsigned n;
	struct hv_place_move moves[HV_PLACE_MAX_GUESTS];
	char why[512];
	char plan[4096];
};

static void render(const struct hv_place_host *hosts, const struct hv_place_guest *guests,
                   struct run *r)
{
	size_t len = 0;

	r->plan[0] = '\0';
	for (unsigned i = 0; i < r->n && len < sizeof r->plan; i++) {
		const struct hv_place_move *m = &r->moves[i];
		const char *sep = i == 0 ? "" : " ";

		if (m->action == HV_ACT_MIGRATE)
			len += (size_t)snprintf(r->plan + len, sizeof r->plan - len,
			                        "%s%s>%s", sep, guests[m->guest].name,
			                        hosts[m->target].name);
		else
			len += (size_t)snprintf(r->plan + len, sizeof r->plan - len,
			                        "%s%s:%s", sep, guests[m->guest].name,
			                        hv_action_name(m->action));
	}
}

static void *copy_of(const void *p, size_t size)
{
	void *q = malloc(size == 0 ? 1 : size);

	assert_non_null(q);
	if (size > 0)
		memcpy(q, p, size);
	return q;
}

/* hv_place, checked to leave its inputs alone and to answer the same twice. */
static struct run *place(const struct hv_place_host *hosts, unsigned nh,
                         const struct hv_place_guest *guests, unsigned ng)
{
	struct run *r = calloc(1, sizeof *r), *again = calloc(1, sizeof *again);
	struct hv_place_host *hcopy = copy_of(hosts, nh * sizeof *hosts);
	struct hv_place_guest *gcopy = copy_of(guests, ng * sizeof *guests);

	assert_non_null(r);
	assert_non_null(again);
	memset(r->why, 'x', sizeof r->why);
	r->rc = hv_place(hosts, nh, guests, ng, r->moves, &r->n, r->why, sizeof r->why);
	if (nh > 0)
		assert_memory_equal(hcopy, hosts, nh * sizeof *hosts);
	if (ng > 0)
		assert_memory_equal(gcopy, guests, ng * sizeof *guests);
	assert_non_null(memchr(r->why, '\0', sizeof r->why));
	if (r->rc == HV_OK)
		assert_string_equal(r->why, "");
	else
		assert_int_equal(r->n, 0);

	again->rc = hv_place(hosts, nh, guests, ng, again->moves, &again->n, again->why,
	                     sizeof again->why);
	assert_int_equal(again->rc, r->rc);
	assert_int_equal(again->n, r->n);
	assert_string_equal(again->why, r->why);
	if (r->rc == HV_OK && r->n > 0)
		assert_memory_equal(again->moves, r->moves, r->n * sizeof r->moves[0]);
	if (r->rc == HV_OK)
		render(hosts, guests, r);
	free(again);
	free(hcopy);
	free(gcopy);
	return r;
}

#define N(a) (unsigned)(sizeof(a) / sizeof((a)[0]))

static void expect_plan(const struct hv_place_host *hosts, unsigned nh,
                        const struct hv_place_guest *guests, unsigned ng,
                        const char *plan)
{
	struct run *r = place(hosts, nh, guests, ng);

	assert_string_equal(r->why, "");
	assert_int_equal(r->rc, HV_OK);
	assert_string_equal(r->plan, plan);
	free(r);
}

static void expect_refusal(const struct hv_place_host *hosts, unsigned nh,
                           const struct hv_place_guest *guests, unsigned ng, int rc,
                           const char *why)
{
	struct run *r = place(hosts, nh, guests, ng);

	assert_string_equal(r->why, why);
	assert_int_equal(r->rc, rc);
	free(r);
}

/* ---- names -------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(hv_level_name(HV_LEVEL_PRODUCTION), "production");
	assert_string_equal(hv_level_name(HV_LEVEL_LEGACY), "legacy");
	assert_string_equal(hv_level_name(HV_LEVEL_DEV), "dev");
	assert_string_equal(hv_level_name(3), "unknown");
	assert_string_equal(hv_level_name(-1), "unknown");
	for (int l = HV_LEVEL_PRODUCTION; l <= HV_LEVEL_DEV; l++)
		assert_int_equal(hv_level_parse(hv_level_name(l)), l);
	assert_int_equal(hv_level_parse("Production"), -1);
	assert_int_equal(hv_level_parse("prod"), -1);
	assert_int_equal(hv_level_parse(""), -1);
	assert_int_equal(hv_level_parse("unknown"), -1);
	assert_int_equal(hv_level_parse(NULL), -1);
	assert_string_equal(hv_action_name(HV_ACT_MIGRATE), "migrate");
	assert_string_equal(hv_action_name(HV_ACT_SAVE), "save");
	assert_string_equal(hv_action_name(HV_ACT_SHUTDOWN), "shutdown");
	assert_string_equal(hv_action_name(3), "unknown");
	assert_string_equal(hv_action_name(-1), "unknown");
}

/* ---- exact plans -------------------------------------------------------- */

static void test_nothing_to_move(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 8 * GIB)};
	struct hv_place_guest off[] = {
	    shut_off(guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION)),
	    shut_off(with_hostdev(guest("gpu", 4 * GIB, 2, HV_LEVEL_PRODUCTION),
	                          "0000:3b:00.0")),
	    shut_off(guest("huge", 64 * GIB, 2, HV_LEVEL_PRODUCTION)),
	};
	unsigned n = 99;

	(void)state;
	expect_plan(hosts, 1, off, 0, "");
	expect_plan(NULL, 0, NULL, 0, "");
	/* Shut-off guests need no room, even a production one with a hostdev. */
	expect_plan(hosts, 1, off, N(off), "");
	expect_plan(NULL, 0, off, N(off), "");
	assert_int_equal(hv_place(NULL, 0, NULL, 0, NULL, &n, NULL, 0), HV_OK);
	assert_int_equal(n, 0);
}

static void test_spread_largest_first(void **state)
{
	struct hv_place_host hosts[] = {
	    free_host("h1", 16 * GIB),
	    free_host("h2", 16 * GIB),
	    free_host("h3", 16 * GIB),
	};
	struct hv_place_guest guests[] = {
	    guest("d", 1 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("b", 4 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("a", 8 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("c", 2 * GIB, 1, HV_LEVEL_PRODUCTION),
	};

	(void)state;
	/* a: all tie, h1 by name; b: h2 and h3 tie; c: h3; d: h3 (14 GiB). */
	expect_plan(hosts, N(hosts), guests, N(guests), "a>h1 b>h2 c>h3 d>h3");
}

static void test_most_free_memory_wins(void **state)
{
	struct hv_place_host hosts[] = {
	    host("big", 256 * GIB, 250 * GIB, 0, 0, true), /* 6 GiB free */
	    host("small", 8 * GIB, 0, 0, 0, true),         /* 8 GiB free */
	};
	struct hv_place_guest guests[] = {
	    guest("web1", 2 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("web2", 2 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("web3", 2 * GIB, 1, HV_LEVEL_PRODUCTION),
	};

	(void)state;
	/* small 8 -> 6; then a 6/6 tie goes to big by name; then small. */
	expect_plan(hosts, N(hosts), guests, N(guests), "web1>small web2>big web3>small");
}

static void test_tie_more_free_vcpus(void **state)
{
	struct hv_place_host hosts[] = {
	    host("h1", 8 * GIB, 0, 16, 12, true), /* 4 vCPUs free */
	    host("h2", 8 * GIB, 0, 16, 2, true),  /* 14 vCPUs free */
	    host("h3", 8 * GIB, 0, 0, 500, true), /* no cap: beats any cap */
	};
	struct hv_place_guest g[] = {guest("web1", 1 * GIB, 2, HV_LEVEL_PRODUCTION)};

	(void)state;
	expect_plan(hosts, 2, g, 1, "web1>h2");
	expect_plan(hosts, 3, g, 1, "web1>h3");
}

static void test_tie_name_order(void **state)
{
	struct hv_place_host hosts[] = {
	    free_host("hb", 8 * GIB),
	    free_host("hc", 8 * GIB),
	    free_host("ha", 8 * GIB),
	};
	struct hv_place_host numbered[] = {
	    free_host("h2", 8 * GIB),
	    free_host("h10", 8 * GIB),
	};
	struct hv_place_guest g[] = {guest("web1", 1 * GIB, 1, HV_LEVEL_PRODUCTION)};

	(void)state;
	expect_plan(hosts, N(hosts), g, 1, "web1>ha");
	/* Byte order (strcmp), not natural order: "h10" < "h2". */
	expect_plan(numbered, N(numbered), g, 1, "web1>h10");
}

static void test_guest_ties(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 64 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("x", 2 * GIB, 2, HV_LEVEL_PRODUCTION),
	    guest("y", 2 * GIB, 4, HV_LEVEL_DEV),
	    guest("w", 2 * GIB, 2, HV_LEVEL_LEGACY),
	    guest("z", 3 * GIB, 1, HV_LEVEL_DEV),
	};

	(void)state;
	/* Run order is by size whatever the level: memory, vCPUs, name. */
	expect_plan(hosts, 1, guests, N(guests), "z>h1 y>h1 w>h1 x>h1");
}

static void test_vcpu_cap(void **state)
{
	struct hv_place_host hosts[] = {
	    host("big", 64 * GIB, 0, 8, 8, true),    /* no vCPU left */
	    host("mid", 32 * GIB, 0, 16, 12, true),  /* 4 vCPUs left */
	    host("small", 16 * GIB, 0, 0, 40, true), /* no cap */
	};
	struct hv_place_guest guests[] = {
	    guest("a", 4 * GIB, 4, HV_LEVEL_PRODUCTION),
	    guest("b", 3 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("c", 2 * GIB, 0, HV_LEVEL_PRODUCTION),
	};

	(void)state;
	/* a: mid (4 of 4 vCPUs); b: small, as mid has no vCPU left; c needs no
	 * vCPU, so the host with the most memory takes it. */
	expect_plan(hosts, N(hosts), guests, N(guests), "a>mid b>small c>big");
}

static void test_vcpus_used_above_cap(void **state)
{
	struct hv_place_host hosts[] = {
	    host("h1", 64 * GIB, 0, 8, 12, true),
	    host("h2", 8 * GIB, 0, 8, 7, true),
	};
	struct hv_place_guest guests[] = {guest("web1", 1 * GIB, 1, HV_LEVEL_PRODUCTION)};

	(void)state;
	expect_plan(hosts, N(hosts), guests, 1, "web1>h2");
}

static void test_ineligible_never_targeted(void **state)
{
	struct hv_place_host hosts[] = {
	    host("src", 512 * GIB, 0, 0, 0, false),
	    host("maint", 512 * GIB, 0, 0, 0, false),
	    free_host("h2", 8 * GIB),
	};
	struct hv_place_guest guests[] = {
	    guest("a", 4 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("b", 4 * GIB, 1, HV_LEVEL_LEGACY),
	    guest("c", 4 * GIB, 1, HV_LEVEL_DEV),
	};

	(void)state;
	expect_plan(hosts, N(hosts), guests, N(guests), "a>h2 b>h2 c:shutdown");
	guests[1].level = HV_LEVEL_PRODUCTION;
	guests[2].level = HV_LEVEL_PRODUCTION;
	expect_refusal(hosts, N(hosts), guests, N(guests), HV_FULL,
	               "cannot place guest c (4096 MiB, 1 vCPU): the most free memory "
	               "on an eligible host is 0 MiB (h2); the cluster lacks 4096 MiB");
}

static void test_reserved_memory(void **state)
{
	struct hv_place_host exact[] = {host("h1", 8 * GIB, 4 * GIB, 0, 0, true)};
	struct hv_place_host over[] = {host("h1", 4 * GIB, 5 * GIB, 0, 0, true)};
	struct hv_place_guest fit[] = {guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION)};
	struct hv_place_guest one_more[] = {
	    guest("db1", 4 * GIB + 1, 2, HV_LEVEL_PRODUCTION)};

	(void)state;
	expect_plan(exact, 1, fit, 1, "db1>h1");
	expect_refusal(exact, 1, one_more, 1, HV_FULL,
	               "cannot place guest db1 (4097 MiB, 2 vCPU): the most free memory "
	               "on an eligible host is 4096 MiB (h1); the cluster lacks 1 MiB");
	/* Used above capacity (other plans' reservations): no room, no wrap. */
	expect_refusal(over, 1, fit, 1, HV_FULL,
	               "cannot place guest db1 (4096 MiB, 2 vCPU): the most free memory "
	               "on an eligible host is 0 MiB (h1); the cluster lacks 4096 MiB");
}

static void test_plan_reserves_as_it_goes(void **state)
{
	struct hv_place_host hosts[] = {
	    free_host("h1", 10000),
	    free_host("h2", 9000),
	};
	struct hv_place_guest guests[] = {
	    guest("a", 6000, 1, HV_LEVEL_PRODUCTION),
	    guest("b", 5000, 1, HV_LEVEL_PRODUCTION),
	    guest("c", 4500, 1, HV_LEVEL_LEGACY),
	    guest("d", 4000, 1, HV_LEVEL_DEV),
	    guest("e", 4001, 1, HV_LEVEL_DEV),
	};

	(void)state;
	/* a -> h1 (4000 left); b -> h2 (4000 left); c has no room; e runs
	 * before d but fits nowhere; d takes h1 by name. */
	expect_plan(hosts, N(hosts), guests, N(guests),
	            "a>h1 b>h2 c:save e:shutdown d>h1");
}

static void test_huge_numbers(void **state)
{
	struct hv_place_host hosts[] = {
	    host("h1", UINT64_MAX, 0, UINT32_MAX, 0, true),
	    host("h2", UINT64_MAX, UINT64_MAX - 1, 0, 0, true),
	};
	struct hv_place_guest guests[] = {
	    guest("a", UINT64_MAX, UINT32_MAX, HV_LEVEL_PRODUCTION),
	    guest("b", 1, 1, HV_LEVEL_PRODUCTION),
	    guest("c", UINT64_MAX, 1, HV_LEVEL_PRODUCTION),
	};
	struct run *r;

	(void)state;
	expect_plan(hosts, N(hosts), guests, 2, "a>h1 b>h2");
	r = place(hosts, N(hosts), guests, N(guests));
	assert_int_equal(r->rc, HV_FULL);
	assert_string_equal(
	    r->why, "cannot place guest c (18446744073709551615 MiB, 1 vCPU): the "
	            "most free memory on an eligible host is 1 MiB (h2); the "
	            "eligible hosts have 18446744073709551615 MiB free for "
	            "18446744073709551615 MiB of production guests, but too "
	            "little on any one host");
	free(r);
}

/* ---- levels ------------------------------------------------------------- */

static void test_legacy_saved_when_no_room(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 8 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("web", 6 * GIB, 2, HV_LEVEL_PRODUCTION),
	    guest("old", 4 * GIB, 1, HV_LEVEL_LEGACY),
	    guest("tiny", 1 * GIB, 1, HV_LEVEL_LEGACY),
	};

	(void)state;
	expect_plan(hosts, 1, guests, N(guests), "web>h1 old:save tiny>h1");
	guests[1].mem_mib = 2 * GIB;
	expect_plan(hosts, 1, guests, 2, "web>h1 old>h1");
}

static void test_production_before_larger_legacy(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 8 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("leg", 8 * GIB, 1, HV_LEVEL_LEGACY),
	    guest("prod", 6 * GIB, 1, HV_LEVEL_PRODUCTION),
	};

	(void)state;
	/* The legacy guest runs first (larger) but is placed after. */
	expect_plan(hosts, 1, guests, N(guests), "leg:save prod>h1");
}

static void test_dev_after_legacy(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 8 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("dv", 8 * GIB, 1, HV_LEVEL_DEV),
	    guest("lg", 4 * GIB, 1, HV_LEVEL_LEGACY),
	    guest("dv2", 4 * GIB, 1, HV_LEVEL_DEV),
	};

	(void)state;
	expect_plan(hosts, 1, guests, N(guests), "dv:shutdown dv2>h1 lg>h1");
	hosts[0].mem_cap_mib = 16 * GIB;
	expect_plan(hosts, 1, guests, 2, "dv>h1 lg>h1");
}

static void test_dev_with_hostdev_shut_down(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 64 * GIB)};
	struct hv_place_guest guests[] = {
	    with_hostdev(guest("gpu", 4 * GIB, 4, HV_LEVEL_DEV), "0000:3b:00.0"),
	    with_hostdev(guest("token", 1 * GIB, 1, HV_LEVEL_DEV), "usb 1d6b:0002"),
	    guest("web", 2 * GIB, 1, HV_LEVEL_DEV),
	};

	(void)state;
	/* Room enough, but a passthrough device cannot follow a migration. */
	expect_plan(hosts, 1, guests, N(guests), "gpu:shutdown web>h1 token:shutdown");
}

static void test_no_eligible_host_without_production(void **state)
{
	struct hv_place_host hosts[] = {host("h1", 64 * GIB, 0, 0, 0, false)};
	struct hv_place_guest guests[] = {
	    guest("lg", 4 * GIB, 1, HV_LEVEL_LEGACY),
	    guest("dv", 2 * GIB, 1, HV_LEVEL_DEV),
	    shut_off(guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION)),
	};

	(void)state;
	expect_plan(hosts, 1, guests, N(guests), "lg:save dv:shutdown");
	expect_plan(NULL, 0, guests, N(guests), "lg:save dv:shutdown");
}

/* ---- refusals ----------------------------------------------------------- */

static void test_hostdev_refused(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 64 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("web", 2 * GIB, 1, HV_LEVEL_PRODUCTION),
	    with_hostdev(guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION), "0000:3b:00.0"),
	    with_hostdev(guest("old", 4 * GIB, 2, HV_LEVEL_LEGACY), "usb 1d6b:0002"),
	};

	(void)state;
	expect_refusal(hosts, 1, guests, N(guests), HV_INVAL,
	               "guest db1 holds hostdev 0000:3b:00.0 (Device or resource busy); "
	               "detach it or set its level to dev");
	guests[1].running = false;
	expect_refusal(hosts, 1, guests, N(guests), HV_INVAL,
	               "guest old holds hostdev usb 1d6b:0002 (Device or resource busy); "
	               "detach it or set its level to dev");
	guests[2].level = HV_LEVEL_DEV;
	expect_plan(hosts, 1, guests, N(guests), "old:shutdown web>h1");
}

static struct hv_place_guest with_local_disk(struct hv_place_guest g, const char *path)
{
	snprintf(g.local_disk, sizeof g.local_disk, "%s", path);
	return g;
}

static void test_local_disk(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 64 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("web", 2 * GIB, 1, HV_LEVEL_PRODUCTION),
	    with_local_disk(guest("old", 4 * GIB, 2, HV_LEVEL_LEGACY),
	                    "/var/lib/libvirt/images/old.qcow2"),
	    with_local_disk(guest("scratch", 1 * GIB, 1, HV_LEVEL_DEV),
	                    "/dev/vg0/scratch"),
	    with_local_disk(guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION),
	                    "/var/lib/libvirt/images/db1.qcow2"),
	};

	(void)state;
	expect_refusal(
	    hosts, 1, guests, N(guests), HV_INVAL,
	    "guest db1 has a disk on local storage (/var/lib/libvirt/images/db1.qcow2) "
	    "and cannot be live-migrated; move the disk to shared storage or set "
	    "its level to legacy or dev");
	/* Room enough, but a local disk cannot follow: saved, shut down. */
	guests[3].running = false;
	expect_plan(hosts, 1, guests, N(guests), "old:save web>h1 scratch:shutdown");
}

static void test_full_example(void **state)
{
	struct hv_place_host hosts[] = {
	    host("h1", 256 * GIB, 0, 0, 0, false),
	    host("h2", 32 * GIB, 32 * GIB, 0, 0, true),
	    host("h3", 32 * GIB, 31 * GIB, 0, 0, true),
	};
	struct hv_place_guest guests[] = {
	    guest("web", 512, 1, HV_LEVEL_PRODUCTION),
	    guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION),
	    guest("lg", 512, 1, HV_LEVEL_LEGACY),
	};

	(void)state;
	expect_refusal(
	    hosts, N(hosts), guests, N(guests), HV_FULL,
	    "cannot place guest db1 (4096 MiB, 2 vCPU): the most free memory "
	    "on an eligible host is 1024 MiB (h3); the cluster lacks 3584 MiB");
	expect_refusal(
	    hosts, N(hosts), &guests[1], 1, HV_FULL,
	    "cannot place guest db1 (4096 MiB, 2 vCPU): the most free memory "
	    "on an eligible host is 1024 MiB (h3); the cluster lacks 3072 MiB");
}

static void test_full_shortfall_counts_every_guest(void **state)
{
	struct hv_place_host hosts[] = {
	    free_host("h1", 8 * GIB),
	    free_host("h2", 4 * GIB),
	};
	struct hv_place_guest guests[] = {
	    guest("a", 6 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("b", 4 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("c", 4 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("d", 1 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("big", 64 * GIB, 1, HV_LEVEL_LEGACY),
	};

	(void)state;
	/* a -> h1, b -> h2, c fits nowhere; c and d need 5 GiB, 2 GiB is left. */
	expect_refusal(
	    hosts, N(hosts), guests, N(guests), HV_FULL,
	    "cannot place guest c (4096 MiB, 1 vCPU): the most free memory "
	    "on an eligible host is 2048 MiB (h1); the cluster lacks 3072 MiB");
}

static void test_full_vcpus(void **state)
{
	struct hv_place_host hosts[] = {
	    host("h1", 16 * GIB, 0, 8, 4, true),
	    host("h2", 16 * GIB, 0, 16, 10, true),
	    host("h3", 64 * GIB, 0, 0, 0, false),
	    host("h4", 2 * GIB, 0, 0, 0, true),
	};
	struct hv_place_guest guests[] = {guest("big", 4 * GIB, 8, HV_LEVEL_PRODUCTION)};

	(void)state;
	expect_refusal(hosts, N(hosts), guests, 1, HV_FULL,
	               "cannot place guest big (4096 MiB, 8 vCPU): the eligible hosts "
	               "with room for 4096 MiB have at most 6 vCPU free (h2)");
}

static void test_full_no_eligible_host(void **state)
{
	struct hv_place_host hosts[] = {
	    host("h1", 64 * GIB, 0, 0, 0, false),
	    host("h2", 64 * GIB, 0, 0, 0, false),
	};
	struct hv_place_guest guests[] = {
	    guest("db1", 4 * GIB, 2, HV_LEVEL_PRODUCTION),
	    guest("dv", 8 * GIB, 2, HV_LEVEL_DEV),
	};
	const char *why = "cannot place guest db1 (4096 MiB, 2 vCPU): no eligible host "
	                  "(all are in maintenance, draining, offline or the source)";

	(void)state;
	expect_refusal(hosts, N(hosts), guests, N(guests), HV_FULL, why);
	expect_refusal(NULL, 0, guests, N(guests), HV_FULL, why);
}

/*
 * The planner is greedy: here it spreads a, b, c, d and leaves e no host,
 * although h1 = a + b and h2 = c + d + e would fit exactly.
 */
static void test_greedy_is_not_optimal(void **state)
{
	struct hv_place_host hosts[] = {
	    free_host("h1", 10 * GIB),
	    free_host("h2", 10 * GIB),
	};
	struct hv_place_guest guests[] = {
	    guest("a", 6 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("b", 4 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("c", 4 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("d", 3 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("e", 3 * GIB, 1, HV_LEVEL_PRODUCTION),
	};

	(void)state;
	expect_refusal(hosts, N(hosts), guests, N(guests), HV_FULL,
	               "cannot place guest e (3072 MiB, 1 vCPU): the most free memory "
	               "on an eligible host is 2048 MiB (h2); the eligible hosts have "
	               "20480 MiB free for 20480 MiB of production guests, but too "
	               "little on any one host");
	/* Turning one guest down to legacy lets the rest through. */
	guests[4].level = HV_LEVEL_LEGACY;
	expect_plan(hosts, N(hosts), guests, N(guests), "a>h1 b>h2 c>h2 d>h1 e:save");
}

static void test_invalid_arguments(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 8 * GIB)};
	struct hv_place_guest guests[] = {guest("db1", 1 * GIB, 1, HV_LEVEL_PRODUCTION)};
	struct hv_place_move moves[1];
	char why[128];
	unsigned n = 7;

	(void)state;
	assert_int_equal(hv_place(hosts, 1, guests, 1, moves, NULL, why, sizeof why),
	                 HV_INVAL);
	assert_string_equal(why, "a NULL array or count pointer");
	assert_int_equal(hv_place(NULL, 1, guests, 1, moves, &n, why, sizeof why),
	                 HV_INVAL);
	assert_string_equal(why, "a NULL array or count pointer");
	assert_int_equal(n, 0);
	assert_int_equal(hv_place(hosts, 1, NULL, 1, moves, &n, why, sizeof why),
	                 HV_INVAL);
	assert_int_equal(hv_place(hosts, 1, guests, 1, NULL, &n, why, sizeof why),
	                 HV_INVAL);
	assert_string_equal(why, "a NULL array or count pointer");
	/* why is optional, and too short a buffer cuts the reason. */
	assert_int_equal(hv_place(hosts, 1, guests, 1, NULL, &n, NULL, 0), HV_INVAL);
	memset(why, 'x', sizeof why);
	assert_int_equal(hv_place(hosts, 1, guests, 1, NULL, &n, why, 0), HV_INVAL);
	assert_int_equal(why[0], 'x');
	assert_int_equal(hv_place(hosts, 1, guests, 1, NULL, &n, why, 7), HV_INVAL);
	assert_string_equal(why, "a NULL");
	guests[0].mem_mib = 9 * GIB;
	assert_int_equal(hv_place(hosts, 1, guests, 1, moves, &n, NULL, 0), HV_FULL);
	assert_int_equal(n, 0);
	assert_int_equal(hv_place(hosts, 1, guests, 1, moves, &n, why, 1), HV_FULL);
	assert_string_equal(why, "");
}

static void test_too_many(void **state)
{
	struct hv_place_host *hosts = calloc(HV_PLACE_MAX_HOSTS + 1, sizeof *hosts);
	struct hv_place_guest *guests = calloc(HV_PLACE_MAX_GUESTS + 1, sizeof *guests);
	struct run *r;

	(void)state;
	assert_non_null(hosts);
	assert_non_null(guests);
	for (unsigned i = 0; i <= HV_PLACE_MAX_HOSTS; i++) {
		char name[HV_PLACE_NAME];

		snprintf(name, sizeof name, "h%03u", i);
		hosts[i] = free_host(name, 64 * GIB);
	}
	for (unsigned i = 0; i <= HV_PLACE_MAX_GUESTS; i++) {
		char name[HV_PLACE_NAME];

		snprintf(name, sizeof name, "g%04u", i);
		guests[i] = guest(name, 1 + i % 13, 1, (int)(i % 3));
	}
	expect_refusal(hosts, HV_PLACE_MAX_HOSTS + 1, guests, 1, HV_INVAL,
	               "too many hosts: 257 (at most 256)");
	expect_refusal(hosts, 1, guests, HV_PLACE_MAX_GUESTS + 1, HV_INVAL,
	               "too many guests: 1025 (at most 1024)");

	/* At the limits: all fit, spread over every host, largest first. */
	r = place(hosts, HV_PLACE_MAX_HOSTS, guests, HV_PLACE_MAX_GUESTS);
	assert_int_equal(r->rc, HV_OK);
	assert_int_equal(r->n, HV_PLACE_MAX_GUESTS);
	assert_int_equal(guests[r->moves[0].guest].mem_mib, 13);
	assert_int_equal(guests[r->moves[HV_PLACE_MAX_GUESTS - 1].guest].mem_mib, 1);
	for (unsigned i = 0; i < r->n; i++)
		assert_int_equal(r->moves[i].action, HV_ACT_MIGRATE);
	free(r);
	free(hosts);
	free(guests);
}

static void test_bad_names_and_levels(void **state)
{
	struct hv_place_host hosts[] = {free_host("h1", 8 * GIB),
	                                free_host("h2", 8 * GIB)};
	struct hv_place_guest guests[] = {
	    guest("db1", 1 * GIB, 1, HV_LEVEL_PRODUCTION),
	    guest("web1", 1 * GIB, 1, HV_LEVEL_PRODUCTION),
	};

	(void)state;
	hosts[1].name[0] = '\0';
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "host #1 has an empty or unterminated name");
	memset(hosts[1].name, 'h', sizeof hosts[1].name);
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "host #1 has an empty or unterminated name");
	hosts[1] = free_host("h1", 4 * GIB);
	expect_refusal(hosts, 2, guests, 2, HV_INVAL, "host h1 is listed twice");
	hosts[1] = host("h2", 8 * GIB, 0, 0, 0, false);

	guests[0].name[0] = '\0';
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "guest #0 has an empty or unterminated name");
	memset(guests[0].name, 'g', sizeof guests[0].name);
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "guest #0 has an empty or unterminated name");
	guests[0] = guest("db1", 1 * GIB, 1, HV_LEVEL_PRODUCTION);
	memset(guests[1].hostdev, 'p', sizeof guests[1].hostdev);
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "guest web1 has an unterminated hostdev");
	guests[1] = shut_off(guest("web1", 1 * GIB, 1, 3));
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "guest web1 has unknown level 3 (not production, legacy or dev)");
	guests[1].level = -1;
	expect_refusal(hosts, 2, guests, 2, HV_INVAL,
	               "guest web1 has unknown level -1 (not production, legacy or dev)");
	guests[1] = shut_off(guest("db1", 1 * GIB, 1, HV_LEVEL_DEV));
	expect_refusal(hosts, 2, guests, 2, HV_INVAL, "guest db1 is listed twice");
	/* Bad input is refused before any placement is tried. */
	guests[0].mem_mib = 64 * GIB;
	expect_refusal(hosts, 2, guests, 2, HV_INVAL, "guest db1 is listed twice");
	guests[1] = guest("web1", 1 * GIB, 1, HV_LEVEL_DEV);
	expect_refusal(
	    hosts, 2, guests, 2, HV_FULL,
	    "cannot place guest db1 (65536 MiB, 1 vCPU): the most free memory "
	    "on an eligible host is 8192 MiB (h1); the cluster lacks 57344 MiB");
}

/* ---- properties over random shapes -------------------------------------- */

#define SHAPE_HOSTS 8
#define SHAPE_GUESTS 40

struct shape {
	unsigned nh, ng;
	struct hv_place_host hosts[SHAPE_HOSTS];
	struct hv_place_guest guests[SHAPE_GUESTS];
};

struct stats {
	unsigned ok, full, inval, migrate, save, shutdown;
	unsigned full_proven; /* HV_FULL, and no assignment exists at all */
	unsigned greedy_miss; /* HV_FULL, but some assignment exists */
	unsigned guaranteed;  /* shapes inside the documented guarantee */
};

static uint64_t next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned below(uint64_t *s, unsigned n)
{
	return (unsigned)(next(s) % n);
}

static void random_shape(struct shape *sh, uint64_t *s, unsigned nh, unsigned ng)
{
	static const uint64_t caps[] = {16 * GIB, 32 * GIB, 64 * GIB, 128 * GIB};
	static const uint64_t sizes[] = {512,     1 * GIB,  2 * GIB, 4 * GIB,
	                                 8 * GIB, 16 * GIB, 3000,    6144};
	static const unsigned vcaps[] = {0, 0, 0, 8, 16, 32, 64};
	unsigned load = below(s, 100); /* how full this cluster already is */

	memset(sh, 0, sizeof *sh);
	sh->nh = nh;
	sh->ng = ng;
	for (unsigned i = 0; i < nh; i++) {
		struct hv_place_host *h = &sh->hosts[i];
		char name[16];

		snprintf(name, sizeof name, "h%u", i + 1);
		*h = host(name, caps[below(s, N(caps))], 0, vcaps[below(s, N(vcaps))], 0,
		          below(s, 5) != 0);
		h->mem_used_mib = h->mem_cap_mib / 1024 * below(s, load + 1) / 100 * 1024;
		if (below(s, 20) == 0)
			h->mem_used_mib = h->mem_cap_mib + below(s, 4096);
		if (h->vcpus_cap != 0)
			h->vcpus_used = below(s, h->vcpus_cap + 4);
	}
	for (unsigned i = 0; i < ng; i++) {
		struct hv_place_guest *g = &sh->guests[i];
		char name[16];

		snprintf(name, sizeof name, "g%02u", i);
		*g = guest(name, sizes[below(s, N(sizes))], 1 + below(s, 8),
		           (int)below(s, 3));
		g->running = below(s, 7) != 0;
		if (below(s, g->level == HV_LEVEL_DEV ? 5 : 150) == 0)
			snprintf(g->hostdev, sizeof g->hostdev, "0000:%02x:00.0",
			         below(s, 256));
	}
}

static uint64_t mem_free(const struct hv_place_host *h)
{
	return h->mem_cap_mib > h->mem_used_mib ? h->mem_cap_mib - h->mem_used_mib : 0;
}

static unsigned vcpus_free(const struct hv_place_host *h)
{
	return h->vcpus_cap > h->vcpus_used ? h->vcpus_cap - h->vcpus_used : 0;
}

struct slot {
	uint64_t mem;
	unsigned vcpus;
	bool capped, eligible;
};

static bool slot_fits(const struct slot *sl, const struct hv_place_guest *g)
{
	return sl->eligible && g->mem_mib <= sl->mem &&
	       (!sl->capped || g->vcpus <= sl->vcpus);
}

static void slot_take(struct slot *sl, const struct hv_place_guest *g)
{
	sl->mem -= g->mem_mib;
	if (sl->capped)
		sl->vcpus -= g->vcpus;
}

static void slots_init(const struct shape *sh, struct slot *sl)
{
	for (unsigned h = 0; h < sh->nh; h++)
		sl[h] = (struct slot){mem_free(&sh->hosts[h]), vcpus_free(&sh->hosts[h]),
		                      sh->hosts[h].vcpus_cap != 0, sh->hosts[h].eligible};
}

/* The rule's best host, written from the rule, not from placement.c. */
static int rule_best(const struct shape *sh, const struct slot *sl,
                     const struct hv_place_guest *g)
{
	int best = -1;

	for (unsigned h = 0; h < sh->nh; h++) {
		uint64_t vh, vb;

		if (!slot_fits(&sl[h], g))
			continue;
		if (best < 0) {
			best = (int)h;
			continue;
		}
		vh = sl[h].capped ? sl[h].vcpus : UINT64_MAX;
		vb = sl[best].capped ? sl[best].vcpus : UINT64_MAX;
		if (sl[h].mem > sl[best].mem ||
		    (sl[h].mem == sl[best].mem &&
		     (vh > vb ||
		      (vh == vb && strcmp(sh->hosts[h].name, sh->hosts[best].name) < 0))))
			best = (int)h;
	}
	return best;
}

/* Whether guests g[0..n), needing `need` MiB in all, fit by some assignment:
 * a backtracking search that skips hosts left in the same state. */
static bool fits_somehow(const struct hv_place_guest **g, unsigned n, uint64_t need,
                         struct slot *sl, unsigned nh)
{
	uint64_t room = 0;

	if (n == 0)
		return true;
	for (unsigned h = 0; h < nh; h++)
		room += sl[h].eligible ? sl[h].mem : 0;
	if (need > room)
		return false;
	for (unsigned h = 0; h < nh; h++) {
		bool same = false, ok;

		if (!slot_fits(&sl[h], g[0]))
			continue;
		for (unsigned k = 0; k < h && !same; k++)
			same = sl[k].eligible && sl[k].mem == sl[h].mem &&
			       sl[k].capped == sl[h].capped &&
			       (!sl[k].capped || sl[k].vcpus == sl[h].vcpus);
		if (same)
			continue;
		slot_take(&sl[h], g[0]);
		ok = fits_somehow(g + 1, n - 1, need - g[0]->mem_mib, sl, nh);
		sl[h].mem += g[0]->mem_mib;
		if (sl[h].capped)
			sl[h].vcpus += g[0]->vcpus;
		if (ok)
			return true;
	}
	return false;
}

/* The refusal the rules call for when guest g fits nowhere in state sl. */
static const char *full_reason(const struct shape *sh, const struct slot *sl,
                               const struct hv_place_guest *g, uint64_t prod_mib,
                               uint64_t free_mib)
{
	static char why[512];
	int most = -1, vcpus = -1;
	size_t len;

	len = (size_t)snprintf(why, sizeof why,
	                       "cannot place guest %s (%llu MiB, %u vCPU): ", g->name,
	                       (unsigned long long)g->mem_mib, g->vcpus);
	/* A guest of no size fits every eligible host: the rule's best host
	 * for it is the one with the most free memory. */
	most = rule_best(sh, sl, &(struct hv_place_guest){.name = "-"});
	for (unsigned h = 0; h < sh->nh; h++) {
		if (!sl[h].eligible || sl[h].mem < g->mem_mib)
			continue;
		if (vcpus < 0 || sl[h].vcpus > sl[vcpus].vcpus ||
		    (sl[h].vcpus == sl[vcpus].vcpus &&
		     (sl[h].mem > sl[vcpus].mem ||
		      (sl[h].mem == sl[vcpus].mem &&
		       strcmp(sh->hosts[h].name, sh->hosts[vcpus].name) < 0))))
			vcpus = (int)h;
	}
	if (most < 0)
		snprintf(why + len, sizeof why - len,
		         "no eligible host (all are in "
		         "maintenance, draining, offline or the source)");
	else if (vcpus >= 0)
		snprintf(why + len, sizeof why - len,
		         "the eligible hosts with room for "
		         "%llu MiB have at most %u vCPU free (%s)",
		         (unsigned long long)g->mem_mib, sl[vcpus].vcpus,
		         sh->hosts[vcpus].name);
	else if (prod_mib > free_mib)
		snprintf(why + len, sizeof why - len,
		         "the most free memory on an eligible "
		         "host is %llu MiB (%s); the cluster lacks %llu MiB",
		         (unsigned long long)sl[most].mem, sh->hosts[most].name,
		         (unsigned long long)(prod_mib - free_mib));
	else
		snprintf(
		    why + len, sizeof why - len,
		    "the most free memory on an eligible "
		    "host is %llu MiB (%s); the eligible hosts have %llu MiB free for "
		    "%llu MiB of production guests, but too little on any one host",
		    (unsigned long long)sl[most].mem, sh->hosts[most].name,
		    (unsigned long long)free_mib, (unsigned long long)prod_mib);
	return why;
}

static bool runs_before(const struct hv_place_guest *a, const struct hv_place_guest *b)
{
	if (a->mem_mib != b->mem_mib)
		return a->mem_mib > b->mem_mib;
	if (a->vcpus != b->vcpus)
		return a->vcpus > b->vcpus;
	return strcmp(a->name, b->name) < 0;
}

static char problem[256];

__attribute__((format(printf, 1, 2))) static bool bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof problem, fmt, ap);
	va_end(ap);
	return false;
}

/* Whether the shape lies inside the documented guarantee: no vCPU cap on an
 * eligible host, twice the production memory free, and every production
 * guest fits the least free eligible host. */
static bool guaranteed(const struct shape *sh)
{
	uint64_t free_mib = 0, prod = 0, least = UINT64_MAX, largest = 0;
	bool any = false;

	for (unsigned h = 0; h < sh->nh; h++) {
		const struct hv_place_host *ho = &sh->hosts[h];

		if (!ho->eligible)
			continue;
		if (ho->vcpus_cap != 0)
			return false;
		any = true;
		free_mib += mem_free(ho);
		if (mem_free(ho) < least)
			least = mem_free(ho);
	}
	for (unsigned i = 0; i < sh->ng; i++) {
		const struct hv_place_guest *g = &sh->guests[i];

		if (!g->running || g->level != HV_LEVEL_PRODUCTION)
			continue;
		prod += g->mem_mib;
		if (g->mem_mib > largest)
			largest = g->mem_mib;
	}
	return prod == 0 || (any && free_mib >= 2 * prod && largest <= least);
}

/* Every property of a plan; false with `problem` set on the first broken. */
static bool check_run(const struct shape *sh, const struct run *r, struct stats *st)
{
	const struct hv_place_guest *g = sh->guests, *hostdev = NULL, *prod[SHAPE_GUESTS];
	struct slot sl[SHAPE_HOSTS], cap[SHAPE_HOSTS];
	unsigned running = 0, n_prod = 0, seen[SHAPE_GUESTS] = {0};
	uint64_t prod_mib = 0, free_mib = 0;
	char want[256];

	for (unsigned i = 0; i < sh->ng; i++) {
		if (!g[i].running)
			continue;
		running++;
		if (hostdev == NULL && g[i].hostdev[0] != '\0' &&
		    g[i].level != HV_LEVEL_DEV)
			hostdev = &g[i];
		if (g[i].level == HV_LEVEL_PRODUCTION) {
			prod_mib += g[i].mem_mib;
			prod[n_prod++] = &g[i];
		}
	}
	for (unsigned h = 0; h < sh->nh; h++)
		if (sh->hosts[h].eligible)
			free_mib += mem_free(&sh->hosts[h]);
	if (hostdev != NULL) {
		snprintf(want, sizeof want,
		         "guest %s holds hostdev %s (Device or resource busy); detach "
		         "it or set its level to dev",
		         hostdev->name, hostdev->hostdev);
		if (r->rc != HV_INVAL || strcmp(r->why, want) != 0)
			return bad("want the hostdev refusal, got %d: %s", r->rc, r->why);
		st->inval++;
		return true;
	}
	if (guaranteed(sh)) {
		st->guaranteed++;
		if (r->rc != HV_OK)
			return bad("inside the guarantee but refused: %s", r->why);
	}
	if (r->rc == HV_FULL) {
		/* Replay the production pass: the refusal names the first guest
		 * the rule finds no host for. */
		const struct hv_place_guest *order[SHAPE_GUESTS], *stuck = NULL;
		unsigned n = 0;

		st->full++;
		for (unsigned i = 0; i < n_prod; i++) {
			unsigned j;

			for (j = n++; j > 0 && runs_before(prod[i], order[j - 1]); j--)
				order[j] = order[j - 1];
			order[j] = prod[i];
		}
		slots_init(sh, sl);
		for (unsigned i = 0; i < n && stuck == NULL; i++) {
			int h = rule_best(sh, sl, order[i]);

			if (h >= 0)
				slot_take(&sl[h], order[i]);
			else
				stuck = order[i];
		}
		if (stuck == NULL)
			return bad("refused, but every production guest fits: %s",
			           r->why);
		if (strcmp(r->why, full_reason(sh, sl, stuck, prod_mib, free_mib)) != 0)
			return bad("want \"%s\", got: %s",
			           full_reason(sh, sl, stuck, prod_mib, free_mib),
			           r->why);
		if (n <= 12) {
			slots_init(sh, sl);
			if (fits_somehow(order, n, prod_mib, sl, sh->nh))
				st->greedy_miss++;
			else
				st->full_proven++;
		}
		return true;
	}
	if (r->rc != HV_OK)
		return bad("unexpected %s: %s", hv_errname(r->rc), r->why);
	st->ok++;
	if (r->n != running)
		return bad("%u moves for %u running guests", r->n, running);
	for (unsigned i = 0; i < r->n; i++) {
		const struct hv_place_move *m = &r->moves[i];

		if (m->guest >= sh->ng || !g[m->guest].running || seen[m->guest]++)
			return bad("move %u: guest %u not running or twice", i, m->guest);
		if (i > 0 && !runs_before(&g[r->moves[i - 1].guest], &g[m->guest]))
			return bad("move %u (%s) out of run order", i, g[m->guest].name);
		if (m->action == HV_ACT_MIGRATE
		        ? m->target < 0 || (unsigned)m->target >= sh->nh ||
		              !sh->hosts[m->target].eligible
		        : m->target != -1)
			return bad("move %u: bad target %d", i, m->target);
	}

	/* Replay pass by pass: each move is the rule's decision at its turn. */
	slots_init(sh, sl);
	slots_init(sh, cap);
	for (int level = HV_LEVEL_PRODUCTION; level <= HV_LEVEL_DEV; level++) {
		for (unsigned i = 0; i < r->n; i++) {
			const struct hv_place_move *m = &r->moves[i];
			const struct hv_place_guest *gu = &g[m->guest];
			int best;

			if (gu->level != level)
				continue;
			best = gu->hostdev[0] != '\0' ? -1 : rule_best(sh, sl, gu);
			if (m->action == HV_ACT_MIGRATE) {
				st->migrate++;
				if (m->target != best)
					return bad("%s went to %s, the rule says %d",
					           gu->name, sh->hosts[m->target].name,
					           best);
				slot_take(&sl[best], gu);
				if (cap[best].mem < gu->mem_mib ||
				    (cap[best].capped && cap[best].vcpus < gu->vcpus))
					return bad("%s overfills %s", gu->name,
					           sh->hosts[best].name);
				slot_take(&cap[best], gu);
				continue;
			}
			if (level == HV_LEVEL_PRODUCTION)
				return bad("production %s is %s", gu->name,
				           hv_action_name(m->action));
			if (m->action !=
			    (level == HV_LEVEL_LEGACY ? HV_ACT_SAVE : HV_ACT_SHUTDOWN))
				return bad("%s %s is %s", hv_level_name(level), gu->name,
				           hv_action_name(m->action));
			if (best >= 0)
				return bad("%s could have gone to %s", gu->name,
				           sh->hosts[best].name);
			if (m->action == HV_ACT_SAVE)
				st->save++;
			else
				st->shutdown++;
		}
	}
	return true;
}

static void shuffle(struct shape *sh, uint64_t *s)
{
	for (unsigned i = sh->nh; i > 1; i--) {
		unsigned j = below(s, i);
		struct hv_place_host t = sh->hosts[i - 1];

		sh->hosts[i - 1] = sh->hosts[j];
		sh->hosts[j] = t;
	}
	for (unsigned i = sh->ng; i > 1; i--) {
		unsigned j = below(s, i);
		struct hv_place_guest t = sh->guests[i - 1];

		sh->guests[i - 1] = sh->guests[j];
		sh->guests[j] = t;
	}
}

static void dump(const struct shape *sh)
{
	for (unsigned h = 0; h < sh->nh; h++) {
		const struct hv_place_host *ho = &sh->hosts[h];

		print_message("  host %s cap %llu used %llu vcpus %u/%u%s\n", ho->name,
		              (unsigned long long)ho->mem_cap_mib,
		              (unsigned long long)ho->mem_used_mib, ho->vcpus_used,
		              ho->vcpus_cap, ho->eligible ? "" : " ineligible");
	}
	for (unsigned i = 0; i < sh->ng; i++) {
		const struct hv_place_guest *g = &sh->guests[i];

		print_message("  guest %s %llu MiB %u vCPU %s%s%s %s\n", g->name,
		              (unsigned long long)g->mem_mib, g->vcpus,
		              hv_level_name(g->level), g->hostdev[0] ? " hostdev " : "",
		              g->hostdev, g->running ? "running" : "shut off");
	}
}

/* Check one shape, and that shuffling both arrays changes nothing. */
static void check_shape(struct shape *sh, uint64_t *s, unsigned id, struct stats *st)
{
	struct run *r = place(sh->hosts, sh->nh, sh->guests, sh->ng), *p;

	if (!check_run(sh, r, st)) {
		dump(sh);
		fail_msg("shape %u: %s (plan: %s)", id, problem, r->plan);
	}
	if (r->rc != HV_INVAL) {
		shuffle(sh, s);
		p = place(sh->hosts, sh->nh, sh->guests, sh->ng);
		if (p->rc != r->rc || strcmp(p->why, r->why) != 0 ||
		    strcmp(p->plan, r->plan) != 0) {
			dump(sh);
			fail_msg(
			    "shape %u: shuffled input changes the answer: %s%s / %s%s",
			    id, r->plan, r->why, p->plan, p->why);
		}
		free(p);
	}
	free(r);
}

static void test_every_shape(void **state)
{
	struct shape *sh = malloc(sizeof *sh);
	struct stats st = {0};
	unsigned id = 0;

	(void)state;
	assert_non_null(sh);
	for (unsigned nh = 1; nh <= SHAPE_HOSTS; nh++) {
		for (unsigned ng = 0; ng <= SHAPE_GUESTS; ng++) {
			for (unsigned k = 0; k < 5; k++, id++) {
				uint64_t s = 1000003ull * id + 17;

				random_shape(sh, &s, nh, ng);
				check_shape(sh, &s, id, &st);
			}
		}
	}
	print_message("%u shapes of 1-8 hosts and 0-40 guests: %u planned, %u full, "
	              "%u hostdev refusals\n",
	              id, st.ok, st.full, st.inval);
	assert_int_equal(st.ok + st.full + st.inval, id);
	assert_true(st.ok > id / 5 && st.full > id / 10);
	free(sh);
}

static void test_random_shapes(void **state)
{
	struct shape *sh = malloc(sizeof *sh);
	struct stats st = {0};
	uint64_t s = 0x6876706565720001ull; /* fixed: failures reproduce */

	(void)state;
	assert_non_null(sh);
	for (unsigned id = 0; id < 5000; id++) {
		unsigned nh = 1 + below(&s, SHAPE_HOSTS);
		unsigned ng = below(&s, SHAPE_GUESTS + 1);

		random_shape(sh, &s, nh, ng);
		check_shape(sh, &s, id, &st);
	}
	print_message("5000 random shapes: %u planned (%u migrate, %u save, %u "
	              "shutdown), %u full (%u proven by search, %u greedy misses), %u "
	              "hostdev refusals, %u inside the guarantee\n",
	              st.ok, st.migrate, st.save, st.shutdown, st.full, st.full_proven,
	              st.greedy_miss, st.inval, st.guaranteed);
	/* Every kind of outcome must have been exercised. */
	assert_true(st.ok >= 1000 && st.full >= 500 && st.inval >= 50);
	assert_true(st.save >= 500 && st.shutdown >= 500 && st.full_proven >= 50);
	assert_true(st.guaranteed >= 200);
	free(sh);
}

/* Shapes built inside the guarantee, with legacy and dev guests of any size
 * and tight margins: the planner must never refuse them. */
static void test_guarantee(void **state)
{
	struct shape *sh = malloc(sizeof *sh);
	struct stats st = {0};
	uint64_t s = 0x6775617261006e74ull;
	unsigned tight = 0;

	(void)state;
	assert_non_null(sh);
	for (unsigned id = 0; id < 5000; id++) {
		uint64_t free_mib = 0, least = UINT64_MAX, prod = 0;
		unsigned nh = 1 + below(&s, SHAPE_HOSTS);
		unsigned ng = below(&s, SHAPE_GUESTS + 1);

		random_shape(sh, &s, nh, ng);
		sh->hosts[below(&s, nh)].eligible = true;
		for (unsigned h = 0; h < nh; h++) {
			struct hv_place_host *ho = &sh->hosts[h];

			if (!ho->eligible)
				continue;
			ho->vcpus_cap = 0;
			if (mem_free(ho) == 0)
				ho->mem_used_mib = ho->mem_cap_mib - 1 - below(&s, 4096);
			free_mib += mem_free(ho);
			if (mem_free(ho) < least)
				least = mem_free(ho);
		}
		/* Keep the legacy and dev guests, add production ones up to
		 * half the free memory, each at most the least free host. */
		ng = 0;
		for (unsigned i = 0; i < sh->ng; i++)
			if (sh->guests[i].level != HV_LEVEL_PRODUCTION)
				sh->guests[ng++] = sh->guests[i];
		while (ng < SHAPE_GUESTS) {
			uint64_t mem = 1 + next(&s) % least;
			char name[16];

			if (2 * (prod + mem) > free_mib)
				break;
			prod += mem;
			snprintf(name, sizeof name, "p%02u", ng);
			sh->guests[ng++] =
			    guest(name, mem, 1 + below(&s, 16), HV_LEVEL_PRODUCTION);
		}
		sh->ng = ng;
		if (4 * prod > free_mib)
			tight++;
		assert_true(guaranteed(sh));
		check_shape(sh, &s, id, &st);
	}
	print_message("5000 shapes inside the guarantee: %u planned, %u with over "
	              "a quarter of the free memory in production guests\n",
	              st.ok, tight);
	assert_int_equal(st.ok + st.inval, 5000);
	assert_int_equal(st.guaranteed, st.ok);
	assert_true(tight >= 1000);
	free(sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_nothing_to_move),
	    cmocka_unit_test(test_spread_largest_first),
	    cmocka_unit_test(test_most_free_memory_wins),
	    cmocka_unit_test(test_tie_more_free_vcpus),
	    cmocka_unit_test(test_tie_name_order),
	    cmocka_unit_test(test_guest_ties),
	    cmocka_unit_test(test_vcpu_cap),
	    cmocka_unit_test(test_vcpus_used_above_cap),
	    cmocka_unit_test(test_ineligible_never_targeted),
	    cmocka_unit_test(test_reserved_memory),
	    cmocka_unit_test(test_plan_reserves_as_it_goes),
	    cmocka_unit_test(test_huge_numbers),
	    cmocka_unit_test(test_legacy_saved_when_no_room),
	    cmocka_unit_test(test_production_before_larger_legacy),
	    cmocka_unit_test(test_dev_after_legacy),
	    cmocka_unit_test(test_dev_with_hostdev_shut_down),
	    cmocka_unit_test(test_no_eligible_host_without_production),
	    cmocka_unit_test(test_hostdev_refused),
	    cmocka_unit_test(test_full_example),
	    cmocka_unit_test(test_full_shortfall_counts_every_guest),
	    cmocka_unit_test(test_full_vcpus),
	    cmocka_unit_test(test_full_no_eligible_host),
	    cmocka_unit_test(test_greedy_is_not_optimal),
	    cmocka_unit_test(test_invalid_arguments),
	    cmocka_unit_test(test_local_disk),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_bad_names_and_levels),
	    cmocka_unit_test(test_every_shape),
	    cmocka_unit_test(test_random_shapes),
	    cmocka_unit_test(test_guarantee),
	};

	return cmocka_run_group_tests_name("placement", tests, NULL, NULL);
}
