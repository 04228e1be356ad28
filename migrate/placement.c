/*
 * Placement of the running guests of a host about to be patched.
 *
 * Rules, by the guest's level:
 *  - production: live-migrate, or refuse the whole plan (HV_FULL);
 *  - legacy: live-migrate if it fits, else save to disk and restore after;
 *  - dev: live-migrate if it fits once every production and legacy guest is
 *    placed, else shut down and start after.
 * A running production or legacy guest with a passthrough device (hostdev)
 * cannot move and refuses the plan (HV_INVAL); a dev guest with one is shut
 * down. A guest with a disk that is not on shared storage cannot be
 * live-migrated either: production refuses the plan, legacy is saved, dev is
 * shut down. Shut-off guests need no move.
 *
 * Guests are placed in three passes, production, then legacy, then dev, so a
 * lower level never takes the room a higher one needs. Within a pass the
 * largest guest goes first, onto the eligible host with the most free memory
 * where it fits (memory and, when capped, vCPUs); ties go to the host with
 * more free vCPUs, then to the lower name (strcmp), so the plan does not
 * depend on the order of the arrays. Free memory is mem_cap - mem_used, less
 * what this plan has already reserved on the host.
 *
 * This is greedy worst-fit-decreasing, not an optimal packing: it spreads the
 * load, but it may refuse a set of guests that some other assignment would
 * fit. It never fails when the eligible hosts have at least twice the
 * production memory free and each guest fits the least free eligible host,
 * vCPUs aside (tests/unit/test_placement.c checks both facts).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/err.h"
#include "placement.h"

/* What is left on a host as the plan reserves room on it. */
struct room {
	uint64_t mem;
	unsigned vcpus; /* meaningless when the host has no vCPU cap */
};

static const char *const level_names[] = {"production", "legacy", "dev"};
static const char *const action_names[] = {"migrate", "save", "shutdown"};

const char *hv_level_name(int level)
{
	if (level < 0 || level > HV_LEVEL_DEV)
		return "unknown";
	return level_names[level];
}

int hv_level_parse(const char *s)
{
	for (int i = 0; s != NULL && i <= HV_LEVEL_DEV; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *hv_action_name(int action)
{
	if (action < 0 || action > HV_ACT_SHUTDOWN)
		return "unknown";
	return action_names[action];
}

__attribute__((format(printf, 4, 5))) static int refuse(char *why, size_t whylen,
                                                        int code, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return code;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return code;
}

static bool name_ok(const char *name)
{
	return name[0] != '\0' && memchr(name, '\0', HV_PLACE_NAME) != NULL;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Bad input, checked before any placement. */
static int check_input(const struct hv_place_host *hosts, unsigned n_hosts,
                       const struct hv_place_guest *guests, unsigned n_guests, char *why,
                       size_t whylen)
{
	if (n_hosts > HV_PLACE_MAX_HOSTS)
		return refuse(why, whylen, HV_INVAL, "too many hosts: %u (at most %u)",
		              n_hosts, HV_PLACE_MAX_HOSTS);
	if (n_guests > HV_PLACE_MAX_GUESTS)
		return refuse(why, whylen, HV_INVAL, "too many guests: %u (at most %u)",
		              n_guests, HV_PLACE_MAX_GUESTS);
	for (unsigned i = 0; i < n_hosts; i++) {
		if (!name_ok(hosts[i].name))
			return refuse(why, whylen, HV_INVAL,
			              "host #%u has an empty or unterminated name", i);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(hosts[i].name, hosts[j].name) == 0)
				return refuse(why, whylen, HV_INVAL,
				              "host %s is listed twice", hosts[i].name);
	}
	for (unsigned i = 0; i < n_guests; i++) {
		const struct hv_place_guest *g = &guests[i];

		if (!name_ok(g->name))
			return refuse(why, whylen, HV_INVAL,
			              "guest #%u has an empty or unterminated name", i);
		if (memchr(g->local_disk, '\0', sizeof g->local_disk) == NULL)
			return refuse(why, whylen, HV_INVAL,
			              "guest %s has an unterminated local disk", g->name);
		if (memchr(g->hostdev, '\0', sizeof g->hostdev) == NULL)
			return refuse(why, whylen, HV_INVAL,
			              "guest %s has an unterminated hostdev", g->name);
		if (g->level < HV_LEVEL_PRODUCTION || g->level > HV_LEVEL_DEV)
			return refuse(why, whylen, HV_INVAL,
			              "guest %s has unknown level %d (not production, "
			              "legacy or dev)",
			              g->name, g->level);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(g->name, guests[j].name) == 0)
				return refuse(why, whylen, HV_INVAL,
				              "guest %s is listed twice", g->name);
	}
	return HV_OK;
}

/* Whether guest a runs (and is placed) before guest b within a pass. */
static bool guest_before(const struct hv_place_guest *a, const struct hv_place_guest *b)
{
	if (a->mem_mib != b->mem_mib)
		return a->mem_mib > b->mem_mib;
	if (a->vcpus != b->vcpus)
		return a->vcpus > b->vcpus;
	return strcmp(a->name, b->name) < 0;
}

/* Free vCPUs for tie-breaks: an uncapped host beats every capped one. */
static uint64_t free_vcpus(const struct hv_place_host *h, const struct room *r)
{
	return h->vcpus_cap == 0 ? UINT64_MAX : r->vcpus;
}

/* Whether host a is a better target than host b (-1: none yet). */
static bool host_better(const struct hv_place_host *hosts, const struct room *room,
                        unsigned a, int b)
{
	if (b < 0)
		return true;
	if (room[a].mem != room[b].mem)
		return room[a].mem > room[b].mem;
	if (free_vcpus(&hosts[a], &room[a]) != free_vcpus(&hosts[b], &room[b]))
		return free_vcpus(&hosts[a], &room[a]) > free_vcpus(&hosts[b], &room[b]);
	return strcmp(hosts[a].name, hosts[b].name) < 0;
}

static bool fits(const struct hv_place_host *h, const struct room *r,
                 const struct hv_place_guest *g)
{
	return h->eligible && g->mem_mib <= r->mem &&
	       (h->vcpus_cap == 0 || g->vcpus <= r->vcpus);
}

/* The best host for g, or -1 when it fits nowhere. */
static int pick(const struct hv_place_host *hosts, unsigned n_hosts,
                const struct room *room, const struct hv_place_guest *g)
{
	int best = -1;

	for (unsigned h = 0; h < n_hosts; h++)
		if (fits(&hosts[h], &room[h], g) && host_better(hosts, room, h, best))
			best = (int)h;
	return best;
}

/*
 * Say why production guest g fits nowhere. The shortfall is the production
 * memory less the eligible hosts' free memory: what the guests left over by a
 * greedy pass need, less what that pass leaves free.
 */
static int explain_full(const struct hv_place_host *hosts, unsigned n_hosts,
                        const struct room *room, const struct hv_place_guest *g,
                        uint64_t prod_mib, uint64_t free_mib, char *why, size_t whylen)
{
	int most = -1, vcpus = -1;

	for (unsigned h = 0; h < n_hosts; h++) {
		if (!hosts[h].eligible)
			continue;
		if (host_better(hosts, room, h, most))
			most = (int)h;
		if (g->mem_mib <= room[h].mem &&
		    (vcpus < 0 || room[h].vcpus > room[vcpus].vcpus ||
		     (room[h].vcpus == room[vcpus].vcpus &&
		      host_better(hosts, room, h, vcpus))))
			vcpus = (int)h;
	}
	if (most < 0)
		return refuse(why, whylen, HV_FULL,
		              "cannot place guest %s (%llu MiB, %u vCPU): no eligible "
		              "host (all are in maintenance, draining, offline or the "
		              "source)",
		              g->name, (unsigned long long)g->mem_mib, g->vcpus);
	if (vcpus >= 0)
		return refuse(why, whylen, HV_FULL,
		              "cannot place guest %s (%llu MiB, %u vCPU): the eligible "
		              "hosts with room for %llu MiB have at most %u vCPU free "
		              "(%s)",
		              g->name, (unsigned long long)g->mem_mib, g->vcpus,
		              (unsigned long long)g->mem_mib, room[vcpus].vcpus,
		              hosts[vcpus].name);
	if (prod_mib > free_mib)
		return refuse(why, whylen, HV_FULL,
		              "cannot place guest %s (%llu MiB, %u vCPU): the most free "
		              "memory on an eligible host is %llu MiB (%s); the cluster "
		              "lacks %llu MiB",
		              g->name, (unsigned long long)g->mem_mib, g->vcpus,
		              (unsigned long long)room[most].mem, hosts[most].name,
		              (unsigned long long)(prod_mib - free_mib));
	return refuse(why, whylen, HV_FULL,
	              "cannot place guest %s (%llu MiB, %u vCPU): the most free memory "
	              "on an eligible host is %llu MiB (%s); the eligible hosts have "
	              "%llu MiB free for %llu MiB of production guests, but too little "
	              "on any one host",
	              g->name, (unsigned long long)g->mem_mib, g->vcpus,
	              (unsigned long long)room[most].mem, hosts[most].name,
	              (unsigned long long)free_mib, (unsigned long long)prod_mib);
}

int hv_place(const struct hv_place_host *hosts, unsigned n_hosts,
             const struct hv_place_guest *guests, unsigned n_guests,
             struct hv_place_move *moves, unsigned *n_moves, char *why, size_t whylen)
{
	struct room room[HV_PLACE_MAX_HOSTS];
	uint64_t prod_mib = 0, free_mib = 0;
	unsigned n = 0;
	int rc;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (n_moves != NULL)
		*n_moves = 0;
	if (n_moves == NULL || (hosts == NULL && n_hosts > 0) ||
	    (guests == NULL && n_guests > 0) || (moves == NULL && n_guests > 0))
		return refuse(why, whylen, HV_INVAL, "a NULL array or count pointer");
	rc = check_input(hosts, n_hosts, guests, n_guests, why, whylen);
	if (rc != HV_OK)
		return rc;

	for (unsigned i = 0; i < n_guests; i++) {
		const struct hv_place_guest *g = &guests[i];
		unsigned j;

		if (!g->running)
			continue;
		if (g->hostdev[0] != '\0' && g->level != HV_LEVEL_DEV)
			return refuse(why, whylen, HV_INVAL,
			              "guest %s holds hostdev %s (Device or resource "
			              "busy); detach it or set its level to dev",
			              g->name, g->hostdev);
		if (g->local_disk[0] != '\0' && g->level == HV_LEVEL_PRODUCTION)
			return refuse(
			    why, whylen, HV_INVAL,
			    "guest %s has a disk on local storage (%s) and cannot be "
			    "live-migrated; move the disk to shared storage or set "
			    "its level to legacy or dev",
			    g->name, g->local_disk);
		if (g->level == HV_LEVEL_PRODUCTION)
			prod_mib = add_sat(prod_mib, g->mem_mib);
		/* Insertion sort into run order; moves[] is the only buffer. */
		for (j = n++; j > 0 && guest_before(g, &guests[moves[j - 1].guest]); j--)
			moves[j] = moves[j - 1];
		moves[j] = (struct hv_place_move){.guest = i, .action = -1, .target = -1};
	}

	for (unsigned h = 0; h < n_hosts; h++) {
		const struct hv_place_host *host = &hosts[h];

		room[h].mem = host->mem_cap_mib > host->mem_used_mib
		                  ? host->mem_cap_mib - host->mem_used_mib
		                  : 0;
		room[h].vcpus = host->vcpus_cap > host->vcpus_used
		                    ? host->vcpus_cap - host->vcpus_used
		                    : 0;
		if (host->eligible)
			free_mib = add_sat(free_mib, room[h].mem);
	}

	for (int level = HV_LEVEL_PRODUCTION; level <= HV_LEVEL_DEV; level++) {
		for (unsigned i = 0; i < n; i++) {
			struct hv_place_move *m = &moves[i];
			const struct hv_place_guest *g = &guests[m->guest];
			int h;

			if (g->level != level)
				continue;
			h = g->hostdev[0] != '\0' || g->local_disk[0] != '\0'
			        ? -1
			        : pick(hosts, n_hosts, room, g);
			if (h >= 0) {
				room[h].mem -= g->mem_mib;
				if (hosts[h].vcpus_cap != 0)
					room[h].vcpus -= g->vcpus;
				m->action = HV_ACT_MIGRATE;
				m->target = h;
			} else if (level == HV_LEVEL_PRODUCTION) {
				return explain_full(hosts, n_hosts, room, g, prod_mib,
				                    free_mib, why, whylen);
			} else {
				m->action = level == HV_LEVEL_LEGACY ? HV_ACT_SAVE
				                                     : HV_ACT_SHUTDOWN;
			}
		}
	}
	*n_moves = n;
	return HV_OK;
}
