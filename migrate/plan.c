#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "placement.h"
#include "plan.h"

/* A member as placement sees it: capacity and load, less what the moves in
 * `leaving` (when not NULL) take away from it; eligibility is the caller's. */
static void place_host(const struct hv_state *s, const struct hv_member *m,
                       const struct hv_cmd *leaving, struct hv_place_host *h)
{
	uint64_t mem;
	unsigned cpu;

	memset(h, 0, sizeof *h);
	snprintf(h->name, sizeof h->name, "%s", m->name);
	hv_state_load(s, m, &mem, &cpu);
	for (unsigned g = 0; leaving != NULL && g < leaving->n_moves; g++)
		if (strcmp(leaving->moves[g].source, m->name) == 0) {
			mem -= mem >= leaving->moves[g].mem_mib
			           ? leaving->moves[g].mem_mib
			           : mem;
			cpu -= cpu >= leaving->moves[g].vcpus ? leaving->moves[g].vcpus
			                                      : cpu;
		}
	h->mem_cap_mib = m->mem_cap_mib;
	h->mem_used_mib = mem;
	h->vcpus_cap = m->vcpus_cap;
	h->vcpus_used = cpu;
}

int hv_plan_evacuation(const struct hv_state *s, const char *holder, uint64_t now_ms,
                       uint64_t stale_ms, const char *exclude, const char *only_guest,
                       struct hv_cmd *cmd, char *why, size_t whylen)
{
	struct hv_place_host hosts[HV_MAX_MEMBERS];
	struct hv_place_guest guests[HV_MAX_GUESTS];
	struct hv_place_move moves[HV_MAX_GUESTS];
	const struct hv_member *src = NULL;
	unsigned nh = 0, ng = 0, nm = 0;
	int rv;

	memset(cmd, 0, sizeof *cmd);
	cmd->type = HV_CMD_PLAN;
	snprintf(cmd->name, sizeof cmd->name, "%s", holder);
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	for (unsigned i = 0; i < s->n_members; i++)
		if (strcmp(s->members[i].name, holder) == 0)
			src = &s->members[i];
	if (src == NULL) {
		snprintf(why, whylen, "%s is not a member", holder);
		return HV_NOMEMBER;
	}
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		struct hv_place_host *h = &hosts[nh++];

		place_host(s, m, NULL, h);
		h->eligible = m != src && !m->removed && m->maint == HV_MAINT_NONE &&
		              hv_state_holder(s, m->name) == NULL && m->mem_cap_mib > 0 &&
		              m->inventory_ms + stale_ms >= now_ms &&
		              (exclude == NULL || strcmp(m->name, exclude) != 0);
	}
	for (unsigned i = 0; i < src->n_guests; i++) {
		const struct hv_cmd_guest *g = &src->guests[i];
		struct hv_place_guest *p;

		if (!g->running ||
		    (only_guest != NULL && strcmp(g->name, only_guest) != 0))
			continue;
		p = &guests[ng++];
		memset(p, 0, sizeof *p);
		snprintf(p->name, sizeof p->name, "%s", g->name);
		p->mem_mib = g->mem_mib;
		p->vcpus = g->vcpus;
		p->level = g->level;
		p->running = true;
		snprintf(p->hostdev, sizeof p->hostdev, "%s", g->hostdev);
		snprintf(p->local_disk, sizeof p->local_disk, "%s", g->local_disk);
	}
	if (ng == 0)
		return HV_OK;
	rv = hv_place(hosts, nh, guests, ng, moves, &nm, why, whylen);
	if (rv != HV_OK)
		return rv;
	for (unsigned i = 0; i < nm && i < HV_MAX_PLAN; i++) {
		const struct hv_place_guest *g = &guests[moves[i].guest];
		struct hv_cmd_move *mv = &cmd->moves[cmd->n_moves++];

		snprintf(mv->guest, sizeof mv->guest, "%s", g->name);
		snprintf(mv->source, sizeof mv->source, "%s", holder);
		if (moves[i].target >= 0)
			snprintf(mv->target, sizeof mv->target, "%s",
			         hosts[moves[i].target].name);
		mv->mem_mib = (uint32_t)g->mem_mib;
		mv->vcpus = g->vcpus;
		mv->action = moves[i].action;
	}
	return HV_OK;
}

int hv_plan_rebalance(const struct hv_state *s, const char *holder, struct hv_cmd *cmd,
                      char *why, size_t whylen)
{
	struct hv_cmd away;
	struct hv_place_host hosts[HV_MAX_MEMBERS];
	struct hv_place_guest guests[HV_MAX_PLAN];
	struct hv_place_move moves[HV_MAX_PLAN];
	unsigned nh = 0, nm = 0;
	int rv;

	memset(cmd, 0, sizeof *cmd);
	cmd->type = HV_CMD_PLAN;
	snprintf(cmd->name, sizeof cmd->name, "%s", holder);
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	/* The guests to place: what a return would bring home. */
	hv_plan_return(s, holder, &away);
	if (away.n_moves == 0)
		return HV_OK;
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		struct hv_place_host *h = &hosts[nh++];

		/* The guests being placed free their room where they are. */
		place_host(s, m, &away, h);
		h->eligible =
		    !m->removed && m->mem_cap_mib > 0 &&
		    ((m->maint == HV_MAINT_NONE && hv_state_holder(s, m->name) == NULL) ||
		     strcmp(m->name, holder) == 0);
	}
	for (unsigned g = 0; g < away.n_moves; g++) {
		memset(&guests[g], 0, sizeof guests[g]);
		snprintf(guests[g].name, sizeof guests[g].name, "%s",
		         away.moves[g].guest);
		guests[g].mem_mib = away.moves[g].mem_mib;
		guests[g].vcpus = away.moves[g].vcpus;
		guests[g].level = HV_LEVEL_PRODUCTION; /* it moved before: it can move */
		guests[g].running = true;
	}
	rv = hv_place(hosts, nh, guests, away.n_moves, moves, &nm, why, whylen);
	if (rv != HV_OK)
		return rv;
	for (unsigned i = 0; i < nm; i++) {
		const struct hv_cmd_move *from = &away.moves[moves[i].guest];
		struct hv_cmd_move *mv;

		if (moves[i].target < 0 ||
		    strcmp(hosts[moves[i].target].name, from->source) == 0)
			continue; /* stays where it is */
		mv = &cmd->moves[cmd->n_moves++];
		*mv = *from;
		snprintf(mv->target, sizeof mv->target, "%s",
		         hosts[moves[i].target].name);
	}
	return HV_OK;
}

int hv_plan_return(const struct hv_state *s, const char *holder, struct hv_cmd *cmd)
{
	memset(cmd, 0, sizeof *cmd);
	cmd->type = HV_CMD_PLAN;
	snprintf(cmd->name, sizeof cmd->name, "%s", holder);
	for (unsigned i = 0; i < s->n_moves && cmd->n_moves < HV_MAX_PLAN; i++) {
		const struct hv_move *mv = &s->moves[i];
		struct hv_cmd_move *ret;

		bool back = false;

		if (strcmp(mv->holder, holder) != 0 || mv->status != HV_MOVE_DONE ||
		    mv->m.action != HV_ACT_MIGRATE || strcmp(mv->m.source, holder) != 0)
			continue;
		/* Already home, or on its way: a return move done or pending. */
		for (unsigned j = 0; j < s->n_moves; j++)
			if (strcmp(s->moves[j].holder, holder) == 0 &&
			    strcmp(s->moves[j].m.guest, mv->m.guest) == 0 &&
			    strcmp(s->moves[j].m.target, holder) == 0 &&
			    s->moves[j].status != HV_MOVE_FAILED)
				back = true;
		if (back)
			continue;
		ret = &cmd->moves[cmd->n_moves++];
		*ret = mv->m;
		snprintf(ret->source, sizeof ret->source, "%s", mv->m.target);
		snprintf(ret->target, sizeof ret->target, "%s", holder);
	}
	return HV_OK;
}

int hv_plan_admit(const struct hv_state *s, const char *cand, uint64_t now_ms,
                  uint64_t stale_ms, struct hv_cmd *scratch, char *why, size_t whylen)
{
	int rv;

	for (unsigned i = 0; i < s->n_holders; i++) {
		const struct hv_member *m =
		    hv_state_member((struct hv_state *)s, s->holders[i].name);

		if (m == NULL || m->removed)
			continue;
		if (m->maint != HV_MAINT_EVACUATING && m->maint != HV_MAINT_IN &&
		    m->maint != HV_MAINT_EXITING && m->cycle != HV_PH_REBALANCE &&
		    m->cycle != HV_PH_FAILED) {
			snprintf(
			    why, whylen,
			    "%s's evacuation is not planned yet: its guests' room is "
			    "not reserved",
			    m->name);
			return HV_LEASEFULL;
		}
	}
	for (unsigned i = 0; i < s->n_moves; i++) {
		const struct hv_move *mv = &s->moves[i];
		if (mv->status != HV_MOVE_FAILED && strcmp(mv->m.target, cand) == 0 &&
		    strcmp(mv->holder, cand) != 0) {
			snprintf(why, whylen,
			         "%s's guest %s was placed on %s: they would need each "
			         "other as targets",
			         mv->holder, mv->m.guest, cand);
			return HV_LEASEFULL;
		}
	}
	rv = hv_plan_evacuation(s, cand, now_ms, stale_ms, NULL, NULL, scratch, why,
	                        whylen);
	if (rv != HV_OK)
		return rv;
	for (unsigned i = 0; i < scratch->n_moves; i++)
		if (scratch->moves[i].action != HV_ACT_MIGRATE) {
			snprintf(why, whylen,
			         "%s's guest %s would be %s, not moved: one host at a "
			         "time for it",
			         cand, scratch->moves[i].guest,
			         scratch->moves[i].action == HV_ACT_SAVE ? "saved"
			                                                 : "shut down");
			return HV_LEASEFULL;
		}
	return HV_OK;
}
