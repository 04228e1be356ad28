#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "mp.h"
#include "state.h"

void hv_state_init(struct hv_state *s)
{
	memset(s, 0, sizeof *s);
	s->max_concurrent = 1;
}

struct hv_member *hv_state_member(struct hv_state *s, const char *name)
{
	for (unsigned i = 0; i < s->n_members; i++)
		if (strcmp(s->members[i].name, name) == 0)
			return &s->members[i];
	return NULL;
}

struct hv_member *hv_state_member_by_id(struct hv_state *s, uint64_t id)
{
	for (unsigned i = 0; i < s->n_members; i++)
		if (s->members[i].id == id)
			return &s->members[i];
	return NULL;
}

const struct hv_holder *hv_state_holder(const struct hv_state *s, const char *name)
{
	for (unsigned i = 0; i < s->n_holders; i++)
		if (strcmp(s->holders[i].name, name) == 0)
			return &s->holders[i];
	return NULL;
}

const struct hv_event *hv_state_event(const struct hv_state *s, unsigned i)
{
	if (i >= s->ev_count)
		return NULL;
	return &s->events[(s->ev_next + HV_EVENTS - 1 - i) % HV_EVENTS];
}

void hv_state_event_add(struct hv_state *s, uint64_t index, uint64_t time_ms,
                        const char *fmt, ...)
{
	struct hv_event *e = &s->events[s->ev_next];
	va_list ap;

	e->index = index;
	e->time_ms = time_ms;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof e->text, fmt, ap);
	va_end(ap);
	s->ev_next = (s->ev_next + 1) % HV_EVENTS;
	if (s->ev_count < HV_EVENTS)
		s->ev_count++;
}

void hv_state_grant(struct hv_state *s, const char *name, uint64_t index,
                    uint64_t time_ms)
{
	struct hv_holder *h = &s->holders[s->n_holders++];

	snprintf(h->name, sizeof h->name, "%s", name);
	h->token = index;
	h->granted_ms = time_ms;
	s->last_token = index;
}

void hv_state_holder_remove(struct hv_state *s, unsigned i)
{
	memmove(&s->holders[i], &s->holders[i + 1],
	        (s->n_holders - i - 1) * sizeof s->holders[0]);
	s->n_holders--;
}

static int member_add(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *m = hv_state_member(s, c->name);
	struct hv_member *other = hv_state_member_by_id(s, c->id);

	if (c->id == 0)
		return HV_INVAL;
	if (other != NULL && other != m)
		return HV_EXISTS;
	if (m == NULL) {
		if (s->n_members == HV_MAX_MEMBERS) {
			/* Make room by forgetting the oldest removed member. */
			unsigned i;
			for (i = 0; i < s->n_members; i++)
				if (s->members[i].removed)
					break;
			if (i == s->n_members)
				return HV_FULL;
			memmove(&s->members[i], &s->members[i + 1],
			        (s->n_members - i - 1) * sizeof s->members[0]);
			s->n_members--;
		}
		m = &s->members[s->n_members++];
		memset(m, 0, sizeof *m);
		snprintf(m->name, sizeof m->name, "%s", c->name);
		snprintf(m->phase, sizeof m->phase, "idle");
		hv_state_event_add(
		    s, index, c->time_ms, "member %s joined (id %llu, %s, %s)", c->name,
		    (unsigned long long)c->id, c->address, hv_role_name(c->role));
	} else if (m->id != c->id) {
		hv_state_event_add(s, index, c->time_ms,
		                   "member %s rejoined under new id %llu (was %llu)",
		                   c->name, (unsigned long long)c->id,
		                   (unsigned long long)m->id);
	}
	m->id = c->id;
	snprintf(m->address, sizeof m->address, "%s", c->address);
	m->role = c->role;
	m->removed = false;
	return HV_OK;
}

static int member_role(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *m = hv_state_member_by_id(s, c->id);

	if (m == NULL || m->removed)
		return HV_NOMEMBER;
	if (m->role != c->role)
		hv_state_event_add(s, index, c->time_ms, "member %s is now %s", m->name,
		                   hv_role_name(c->role));
	m->role = c->role;
	return HV_OK;
}

static int member_remove(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *m = hv_state_member_by_id(s, c->id);

	if (m == NULL || m->removed)
		return HV_NOMEMBER;
	m->removed = true;
	hv_state_event_add(s, index, c->time_ms, "member %s removed (id %llu)", m->name,
	                   (unsigned long long)m->id);
	return HV_OK;
}

static int report(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *m = hv_state_member(s, c->name);

	if (m == NULL)
		return HV_NOMEMBER;
	if (m->removed)
		return HV_REMOVED;
	if (strcmp(m->phase, c->phase) != 0)
		hv_state_event_add(s, index, c->time_ms, "%s: phase %s -> %s", m->name,
		                   m->phase, c->phase);
	if (strcmp(m->version, c->version) != 0 && m->version[0] != '\0')
		hv_state_event_add(s, index, c->time_ms, "%s: version %s -> %s", m->name,
		                   m->version, c->version);
	if (c->bmc[0] != '\0' && (strcmp(m->bmc, c->bmc) != 0 ||
	                          strcmp(m->bmc_address, c->bmc_address) != 0)) {
		hv_state_event_add(s, index, c->time_ms, "%s: BMC %s%s%s", m->name,
		                   c->bmc, c->bmc_address[0] ? " at " : "",
		                   c->bmc_address);
		snprintf(m->bmc, sizeof m->bmc, "%s", c->bmc);
		snprintf(m->bmc_address, sizeof m->bmc_address, "%s", c->bmc_address);
	}
	snprintf(m->phase, sizeof m->phase, "%s", c->phase);
	snprintf(m->version, sizeof m->version, "%s", c->version);
	m->report_ms = c->time_ms;
	return HV_OK;
}

static int lease_acquire(struct hv_state *s, uint64_t index, const struct hv_cmd *c,
                         uint64_t *token)
{
	struct hv_member *m = hv_state_member(s, c->name);
	const struct hv_holder *held = hv_state_holder(s, c->name);

	if (m == NULL)
		return HV_NOMEMBER;
	if (m->removed)
		return HV_REMOVED;
	if (held != NULL) {
		/* A retried acquire: the holder keeps its grant and token. */
		*token = held->token;
		return HV_OK;
	}
	if (s->paused)
		return HV_PAUSED;
	if (s->n_holders >= s->max_concurrent)
		return HV_LEASEFULL;
	if (index <= s->last_token)
		return HV_BADTOKEN; /* tokens must strictly increase */
	hv_state_grant(s, c->name, index, c->time_ms);
	*token = index;
	hv_state_event_add(s, index, c->time_ms, "lease granted to %s (token %llu)",
	                   c->name, (unsigned long long)index);
	return HV_OK;
}

static int lease_release(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	for (unsigned i = 0; i < s->n_holders; i++) {
		if (strcmp(s->holders[i].name, c->name) != 0)
			continue;
		if (s->holders[i].token != c->token)
			return HV_BADTOKEN;
		{
			const struct hv_member *m = hv_state_member(s, c->name);
			if (m != NULL && m->maint != HV_MAINT_NONE)
				return HV_INMAINT; /* exit maintenance first */
		}
		hv_state_holder_remove(s, i);
		hv_state_event_add(s, index, c->time_ms,
		                   "lease released by %s (token %llu)", c->name,
		                   (unsigned long long)c->token);
		return HV_OK;
	}
	return HV_NOTHOLDER;
}

const char *hv_maint_name(int maint)
{
	static const char *const names[] = {"none", "entering", "evacuating", "in",
	                                    "exiting"};

	return maint >= 0 && maint < HV__MAINT_N ? names[maint] : "unknown";
}

static int maint_parse(const char *s)
{
	for (int i = 0; i < HV__MAINT_N; i++)
		if (strcmp(hv_maint_name(i), s) == 0)
			return i;
	return -1;
}

/* Allowed maintenance transitions (a phase may also be re-committed). */
static const bool maint_next[HV__MAINT_N][HV__MAINT_N] = {
    [HV_MAINT_NONE] = {[HV_MAINT_ENTERING] = true},
    [HV_MAINT_ENTERING] = {[HV_MAINT_EVACUATING] = true, [HV_MAINT_NONE] = true},
    [HV_MAINT_EVACUATING] = {[HV_MAINT_IN] = true, [HV_MAINT_EXITING] = true},
    [HV_MAINT_IN] = {[HV_MAINT_EXITING] = true},
    [HV_MAINT_EXITING] = {[HV_MAINT_NONE] = true},
};

/* Drop a holder's moves (finished ones are in the history already). */
static void moves_drop(struct hv_state *s, const char *holder)
{
	unsigned j = 0;

	for (unsigned i = 0; i < s->n_moves; i++)
		if (strcmp(s->moves[i].holder, holder) != 0)
			s->moves[j++] = s->moves[i];
	s->n_moves = j;
}

static void maint_leave(struct hv_state *s, struct hv_member *m, uint64_t now)
{
	if (now > m->maint_since_ms)
		m->maint_total_ms += now - m->maint_since_ms;
	m->maint_count++;
	m->maint = HV_MAINT_NONE;
	moves_drop(s, m->name);
}

static int lease_break(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	bool any = false;

	if (c->reason[0] == '\0' || c->by[0] == '\0')
		return HV_INVAL;
	for (unsigned i = s->n_holders; i-- > 0;) {
		struct hv_holder *h = &s->holders[i];
		if (c->name[0] != '\0' && strcmp(h->name, c->name) != 0)
			continue;
		struct hv_member *m = hv_state_member(s, h->name);
		char why[HV_REASON_MAX + 1];
		hv_state_event_add(s, index, c->time_ms,
		                   "lease of %s (token %llu) broken by %s: %s", h->name,
		                   (unsigned long long)h->token, c->by, c->reason);
		/* The operator's way out: the host leaves maintenance in the
		 * state, and what its plan reserved is released. */
		if (m != NULL && m->maint != HV_MAINT_NONE)
			maint_leave(s, m, c->time_ms);
		hv_state_holder_remove(s, i);
		/* and a patch cycle it was in the middle of failed */
		snprintf(why, sizeof why, "lease broken by %.60s: %.120s", c->by,
		         c->reason);
		if (m != NULL)
			hv_rollout_lease_broken(s, index, m, why, c->time_ms);
		any = true;
	}
	if (any)
		hv_rollout_advance(s, index, c->time_ms);
	return any ? HV_OK : HV_NOTHOLDER;
}

static int pause_cmd(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	if (c->reason[0] == '\0' || c->by[0] == '\0')
		return HV_INVAL;
	if (s->paused)
		return HV_EXISTS;
	s->paused = true;
	snprintf(s->paused_by, sizeof s->paused_by, "%s", c->by);
	snprintf(s->pause_reason, sizeof s->pause_reason, "%s", c->reason);
	s->paused_ms = c->time_ms;
	hv_state_event_add(s, index, c->time_ms, "paused by %s: %s", c->by, c->reason);
	return HV_OK;
}

static int resume_cmd(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	if (c->by[0] == '\0')
		return HV_INVAL;
	if (!s->paused)
		return HV_NOTPAUSED;
	s->paused = false;
	hv_state_event_add(s, index, c->time_ms, "resumed by %s (paused by %s: %s)",
	                   c->by, s->paused_by, s->pause_reason);
	s->paused_by[0] = '\0';
	s->pause_reason[0] = '\0';
	s->paused_ms = 0;
	return HV_OK;
}

static int settings(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	if (c->max_concurrent < 1 || c->max_concurrent > HV_MAX_HOLDERS)
		return HV_INVAL;
	if (c->max_concurrent < s->n_holders)
		return HV_LEASEFULL; /* would leave more holders than allowed */
	if (s->max_concurrent != c->max_concurrent)
		hv_state_event_add(s, index, c->time_ms, "max_concurrent %u -> %u",
		                   s->max_concurrent, c->max_concurrent);
	s->max_concurrent = c->max_concurrent;
	return HV_OK;
}

/* The fencing check: name holds the lease, with exactly this token. */
int hv_state_fenced(const struct hv_state *s, const char *name, uint64_t token)
{
	const struct hv_holder *h = hv_state_holder(s, name);

	if (h == NULL)
		return HV_NOTHOLDER;
	return h->token == token ? HV_OK : HV_BADTOKEN;
}

void hv_state_load(const struct hv_state *s, const struct hv_member *m, uint64_t *mem_mib,
                   unsigned *vcpus)
{
	uint64_t mem = 0;
	unsigned cpu = 0;

	for (unsigned i = 0; i < m->n_guests; i++)
		if (m->guests[i].running) {
			mem += m->guests[i].mem_mib;
			cpu += m->guests[i].vcpus;
		}
	for (unsigned i = 0; i < s->n_moves; i++) {
		const struct hv_move *mv = &s->moves[i];
		if (mv->status == HV_MOVE_PENDING && mv->m.action == 0 &&
		    strcmp(mv->m.target, m->name) == 0) {
			mem += mv->m.mem_mib;
			cpu += mv->m.vcpus;
		}
	}
	*mem_mib = mem;
	*vcpus = cpu;
}

static int inventory(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *m = hv_state_member(s, c->name);

	(void)index;
	if (m == NULL)
		return HV_NOMEMBER;
	if (m->removed)
		return HV_REMOVED;
	/* Read before a guest moved in or out: it would undo the move. */
	if (c->seen_index < m->moved_index)
		return HV_TIMEOUT;
	m->mem_cap_mib = c->mem_cap_mib;
	m->vcpus_cap = c->vcpus_cap;
	m->n_guests = c->n_guests;
	memcpy(m->guests, c->guests, c->n_guests * sizeof c->guests[0]);
	m->inventory_ms = c->time_ms;
	return HV_OK;
}

/* True when a move of holder's maintenance took guest off it: migrated,
 * saved or shut down (a done move). */
static bool moved_out(const struct hv_state *s, const char *holder, const char *guest)
{
	for (unsigned i = 0; i < s->n_moves; i++) {
		const struct hv_move *mv = &s->moves[i];
		if (mv->status == HV_MOVE_DONE && strcmp(mv->holder, holder) == 0 &&
		    strcmp(mv->m.source, holder) == 0 && strcmp(mv->m.guest, guest) == 0)
			return true;
	}
	return false;
}

static int maint(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *m = hv_state_member(s, c->name);
	int next = maint_parse(c->phase);
	int rv = hv_state_fenced(s, c->name, c->token);

	if (rv != HV_OK)
		return rv;
	if (m == NULL || next < 0)
		return m == NULL ? HV_NOMEMBER : HV_INVAL;
	if (next == m->maint)
		return HV_OK;
	if (!maint_next[m->maint][next])
		return HV_INVAL;
	/* In maintenance means empty: not while a move of its plan is pending,
	 * nor while its inventory lists a running guest that no move of this
	 * maintenance took care of (its move failed, or it was never planned):
	 * the reboot that follows would kill it. */
	if (next == HV_MAINT_IN) {
		for (unsigned i = 0; i < s->n_moves; i++)
			if (s->moves[i].status == HV_MOVE_PENDING &&
			    strcmp(s->moves[i].holder, m->name) == 0)
				return HV_INVAL;
		for (unsigned g = 0; g < m->n_guests; g++)
			if (m->guests[g].running &&
			    !moved_out(s, m->name, m->guests[g].name))
				return HV_INVAL;
	}
	if (m->maint == HV_MAINT_NONE)
		m->maint_since_ms = c->time_ms;
	hv_state_event_add(s, index, c->time_ms, "%s: maintenance %s -> %s", m->name,
	                   hv_maint_name(m->maint), hv_maint_name(next));
	if (next == HV_MAINT_NONE)
		maint_leave(s, m, c->time_ms);
	else
		m->maint = next;
	return HV_OK;
}

static struct hv_move *move_pending(struct hv_state *s, const char *holder,
                                    const char *guest)
{
	for (unsigned i = 0; i < s->n_moves; i++)
		if (s->moves[i].status == HV_MOVE_PENDING &&
		    strcmp(s->moves[i].holder, holder) == 0 &&
		    strcmp(s->moves[i].m.guest, guest) == 0)
			return &s->moves[i];
	return NULL;
}

/* True when holder's evacuation moved guest away (a done migration). */
static bool evacuated(const struct hv_state *s, const char *holder, const char *guest)
{
	for (unsigned i = 0; i < s->n_moves; i++) {
		const struct hv_move *mv = &s->moves[i];
		if (mv->status == HV_MOVE_DONE && mv->m.action == 0 &&
		    strcmp(mv->holder, holder) == 0 &&
		    strcmp(mv->m.source, holder) == 0 && strcmp(mv->m.guest, guest) == 0)
			return true;
	}
	return false;
}

static int plan(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_member *holder = hv_state_member(s, c->name);
	int rv = hv_state_fenced(s, c->name, c->token);

	if (rv != HV_OK)
		return rv;
	if (s->paused)
		return HV_PAUSED;
	if (holder == NULL || c->n_moves == 0)
		return HV_INVAL;
	if (holder->maint != HV_MAINT_ENTERING && holder->maint != HV_MAINT_EVACUATING &&
	    holder->maint != HV_MAINT_EXITING)
		return HV_INVAL;
	if (s->n_moves + c->n_moves > HV_MAX_MOVES)
		return HV_FULL;
	for (unsigned i = 0; i < c->n_moves; i++) {
		const struct hv_cmd_move *mv = &c->moves[i];
		struct hv_member *src = hv_state_member(s, mv->source);
		struct hv_member *dst;
		uint64_t mem;
		unsigned cpu;

		if (src == NULL || src->removed || move_pending(s, c->name, mv->guest))
			return HV_INVAL;
		for (unsigned j = 0; j < i; j++)
			if (strcmp(c->moves[j].guest, mv->guest) == 0)
				return HV_INVAL; /* one move per guest */
		/* Evacuation moves leave the holder. When it exits, only guests
		 * its evacuation moved away move: home, or elsewhere (rebalance). */
		if (holder->maint == HV_MAINT_EXITING ? !evacuated(s, c->name, mv->guest)
		                                      : src != holder)
			return HV_INVAL;
		if (mv->action != 0)
			continue; /* save or shutdown: no target */
		dst = hv_state_member(s, mv->target);
		if (dst == NULL || dst->removed || dst == src)
			return HV_INVAL;
		if (dst->maint != HV_MAINT_NONE && dst != holder)
			return HV_INMAINT; /* never a placement target */
		hv_state_load(s, dst, &mem, &cpu);
		{
			/* The target's guest list must have room too. */
			unsigned incoming = 1;
			for (unsigned j = 0; j < s->n_moves; j++)
				if (s->moves[j].status == HV_MOVE_PENDING &&
				    s->moves[j].m.action == 0 &&
				    strcmp(s->moves[j].m.target, mv->target) == 0)
					incoming++;
			for (unsigned j = 0; j < i; j++)
				if (c->moves[j].action == 0 &&
				    strcmp(c->moves[j].target, mv->target) == 0) {
					mem += c->moves[j].mem_mib;
					incoming++;
				}
			if (dst->n_guests + incoming > HV_MAX_GUESTS)
				return HV_FULL;
		}
		if (dst->mem_cap_mib != 0 && mem + mv->mem_mib > dst->mem_cap_mib)
			return HV_FULL;
	}
	for (unsigned i = 0; i < c->n_moves; i++) {
		struct hv_move *mv = &s->moves[s->n_moves++];
		memset(mv, 0, sizeof *mv);
		mv->m = c->moves[i];
		snprintf(mv->holder, sizeof mv->holder, "%s", c->name);
		mv->token = c->token;
		mv->status = HV_MOVE_PENDING;
		mv->planned_ms = c->time_ms;
	}
	hv_state_event_add(s, index, c->time_ms, "%s: plan of %u move%s committed",
	                   c->name, c->n_moves, c->n_moves == 1 ? "" : "s");
	return HV_OK;
}

/* Move a guest's entry from one member's inventory to another's. */
static void guest_relocate(struct hv_state *s, const struct hv_cmd_move *mv)
{
	struct hv_member *src = hv_state_member(s, mv->source);
	struct hv_member *dst = hv_state_member(s, mv->target);
	struct hv_cmd_guest g = {0};
	bool found = false;

	if (src != NULL)
		for (unsigned i = 0; i < src->n_guests; i++)
			if (strcmp(src->guests[i].name, mv->guest) == 0) {
				g = src->guests[i];
				memmove(&src->guests[i], &src->guests[i + 1],
				        (src->n_guests - i - 1) * sizeof g);
				src->n_guests--;
				found = true;
				break;
			}
	if (!found) {
		snprintf(g.name, sizeof g.name, "%s", mv->guest);
		g.mem_mib = mv->mem_mib;
		g.vcpus = mv->vcpus;
		g.running = true;
	}
	if (dst != NULL && dst->n_guests < HV_MAX_GUESTS)
		dst->guests[dst->n_guests++] = g;
}

static int moved(struct hv_state *s, uint64_t index, const struct hv_cmd *c)
{
	struct hv_move *mv;
	int rv = hv_state_fenced(s, c->name, c->token);

	if (rv != HV_OK)
		return rv;
	mv = move_pending(s, c->name, c->move.guest);
	if (mv == NULL || c->result < 0 || c->result >= HV__NERR)
		return HV_INVAL;
	/* A report about another move of the guest than the pending one: a
	 * driver that read its plan from a replica that had not applied the
	 * failure of a move and its retry elsewhere, and ran the old move.
	 * Done, it is where the guest now runs: recorded as it happened (the
	 * state would otherwise place the guest on the planned target, and
	 * the way home would start from a host it never reached). Failed, it
	 * changes nothing. */
	if (mv->m.action == 0 && c->move.action == 0 && /* migrations */
	    (strcmp(mv->m.target, c->move.target) != 0 ||
	     strcmp(mv->m.source, c->move.source) != 0)) {
		const struct hv_member *dst = hv_state_member(s, c->move.target);
		if (c->result != HV_OK || dst == NULL || dst->removed ||
		    hv_state_member(s, c->move.source) == NULL ||
		    strcmp(c->move.source, c->move.target) == 0)
			return HV_INVAL;
		snprintf(mv->m.source, sizeof mv->m.source, "%s", c->move.source);
		snprintf(mv->m.target, sizeof mv->m.target, "%s", c->move.target);
	}
	mv->result = c->result;
	mv->status = c->result == HV_OK ? HV_MOVE_DONE : HV_MOVE_FAILED;
	mv->done_ms = c->time_ms;
	mv->downtime_ms = c->downtime_ms;
	mv->elapsed_ms = c->elapsed_ms;
	mv->bytes = c->bytes;
	snprintf(mv->error, sizeof mv->error, "%s", c->error);
	if (mv->status == HV_MOVE_DONE && mv->m.action == 0) {
		struct hv_member *src = hv_state_member(s, mv->m.source);
		struct hv_member *dst = hv_state_member(s, mv->m.target);
		hv_policy_downtime(s, index, c->time_ms, c->name, c->move.guest,
		                   c->downtime_ms);
		guest_relocate(s, &mv->m);
		if (src != NULL)
			src->moved_index = index;
		if (dst != NULL)
			dst->moved_index = index;
	}
	s->history[s->hist_next] = *mv;
	s->hist_next = (s->hist_next + 1) % HV_HISTORY;
	if (s->hist_count < HV_HISTORY)
		s->hist_count++;
	if (mv->status == HV_MOVE_DONE)
		if (mv->m.action == 0)
			hv_state_event_add(s, index, c->time_ms,
			                   "%s: %s moved %s -> %s (downtime %llu ms)",
			                   c->name, c->move.guest, mv->m.source,
			                   mv->m.target,
			                   (unsigned long long)c->downtime_ms);
		else
			hv_state_event_add(s, index, c->time_ms, "%s: %s %s", c->name,
			                   c->move.guest,
			                   mv->m.action == 1 ? "saved" : "shut down");
	else
		hv_state_event_add(s, index, c->time_ms, "%s: moving %s to %s failed: %s",
		                   c->name, c->move.guest, mv->m.target, c->error);
	return HV_OK;
}

const struct hv_move *hv_state_history(const struct hv_state *s, unsigned i)
{
	if (i >= s->hist_count)
		return NULL;
	return &s->history[(s->hist_next + HV_HISTORY - 1 - i) % HV_HISTORY];
}

int hv_state_apply_cmd(struct hv_state *s, uint64_t index, const struct hv_cmd *c,
                       uint64_t *token)
{
	uint64_t tok = 0;
	int rv;

	switch (c->type) {
	case HV_CMD_MEMBER_ADD:
		rv = member_add(s, index, c);
		break;
	case HV_CMD_MEMBER_ROLE:
		rv = member_role(s, index, c);
		break;
	case HV_CMD_MEMBER_REMOVE:
		rv = member_remove(s, index, c);
		break;
	case HV_CMD_REPORT:
		rv = report(s, index, c);
		break;
	case HV_CMD_LEASE_ACQUIRE:
		rv = lease_acquire(s, index, c, &tok);
		break;
	case HV_CMD_LEASE_RELEASE:
		rv = lease_release(s, index, c);
		break;
	case HV_CMD_LEASE_BREAK:
		rv = lease_break(s, index, c);
		break;
	case HV_CMD_PAUSE:
		rv = pause_cmd(s, index, c);
		break;
	case HV_CMD_RESUME:
		rv = resume_cmd(s, index, c);
		break;
	case HV_CMD_SETTINGS:
		rv = settings(s, index, c);
		break;
	case HV_CMD_INVENTORY:
		rv = inventory(s, index, c);
		break;
	case HV_CMD_MAINT:
		rv = maint(s, index, c);
		break;
	case HV_CMD_PLAN:
		rv = plan(s, index, c);
		break;
	case HV_CMD_MOVED:
		rv = moved(s, index, c);
		break;
	case HV_CMD_PATCH_SUBMIT:
		rv = hv_rollout_submit(s, index, c);
		break;
	case HV_CMD_PATCH_STEP:
		rv = hv_rollout_step(s, index, c);
		break;
	case HV_CMD_PATCH_ABORT:
		rv = hv_rollout_abort(s, index, c);
		break;
	case HV_CMD_PATCH_WATCHDOG:
		rv = hv_rollout_watchdog(s, index, c);
		break;
	case HV_CMD_POLICY_SET:
		rv = hv_policy_set(s, index, c);
		break;
	case HV_CMD_PATCH_GATE:
		rv = hv_policy_gate(s, index, c);
		break;
	default:
		rv = HV_UNKNOWNCMD;
		break;
	}
	if (rv == HV_OK) {
		/* What may unblock the line lets the next host in. */
		if (c->type == HV_CMD_RESUME)
			hv_rollout_resume(s, index, c->time_ms);
		if (c->type == HV_CMD_LEASE_RELEASE || c->type == HV_CMD_LEASE_BREAK ||
		    c->type == HV_CMD_RESUME || c->type == HV_CMD_SETTINGS ||
		    c->type == HV_CMD_MEMBER_REMOVE || c->type == HV_CMD_MAINT ||
		    c->type == HV_CMD_POLICY_SET)
			hv_rollout_advance(s, index, c->time_ms);
	}
	if (index > s->last_index)
		s->last_index = index;
	if (rv != HV_OK)
		s->rejected++;
	if (token != NULL)
		*token = tok;
	return rv;
}

int hv_state_apply(struct hv_state *s, uint64_t index, const void *buf, size_t len,
                   uint64_t *token)
{
	struct hv_cmd cmd;
	int rv = hv_cmd_decode(buf, len, &cmd);

	if (token != NULL)
		*token = 0;
	if (rv != HV_OK) {
		if (index > s->last_index)
			s->last_index = index;
		s->rejected++;
		return rv;
	}
	return hv_state_apply_cmd(s, index, &cmd, token);
}

/* ---- snapshot ---------------------------------------------------------- */

static void pack_move(msgpack_packer *pk, const struct hv_move *mv)
{
	msgpack_pack_array(pk, 11);
	hv_cmd_pack_move(pk, &mv->m);
	hv_mp_pack_str(pk, mv->holder);
	msgpack_pack_uint64(pk, mv->token);
	msgpack_pack_uint64(pk, (uint64_t)mv->status);
	msgpack_pack_uint64(pk, (uint64_t)mv->result);
	msgpack_pack_uint64(pk, mv->planned_ms);
	msgpack_pack_uint64(pk, mv->done_ms);
	msgpack_pack_uint64(pk, mv->downtime_ms);
	msgpack_pack_uint64(pk, mv->elapsed_ms);
	msgpack_pack_uint64(pk, mv->bytes);
	hv_mp_pack_str(pk, mv->error);
}

static void pack_rollout(msgpack_packer *pk, const struct hv_state *s)
{
	const struct hv_rollout *r = &s->rollout;

	msgpack_pack_array(pk, 17);
	msgpack_pack_uint64(pk, r->id);
	hv_mp_pack_bool(pk, r->active);
	hv_mp_pack_bool(pk, r->aborted);
	hv_mp_pack_str(pk, r->bundle);
	hv_mp_pack_str(pk, r->version);
	hv_mp_pack_str(pk, r->digest);
	hv_mp_pack_str(pk, r->key_id);
	hv_mp_pack_str(pk, r->source);
	hv_mp_pack_str(pk, r->by);
	msgpack_pack_uint64(pk, r->submitted_ms);
	msgpack_pack_uint64(pk, r->finished_ms);
	msgpack_pack_uint64(pk, r->done);
	msgpack_pack_uint64(pk, r->failed);
	hv_mp_pack_str(pk, s->floor_version);
	hv_mp_pack_str(pk, s->floor_digest);
	msgpack_pack_array(pk, s->n_quarantine);
	for (unsigned i = 0; i < s->n_quarantine; i++) {
		msgpack_pack_array(pk, 4);
		msgpack_pack_uint64(pk, s->quarantine[i].index);
		hv_mp_pack_str(pk, s->quarantine[i].digest);
		hv_mp_pack_str(pk, s->quarantine[i].version);
		hv_mp_pack_str(pk, s->quarantine[i].reason);
	}
	/* Each member's cycle, in the order of "members". */
	msgpack_pack_array(pk, s->n_members);
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		msgpack_pack_array(pk, 6);
		msgpack_pack_uint64(pk, (uint64_t)m->cycle);
		msgpack_pack_uint64(pk, m->cycle_since_ms);
		msgpack_pack_uint64(pk, m->cycle_start_ms);
		msgpack_pack_uint64(pk, m->cycle_end_ms);
		hv_mp_pack_str(pk, m->cycle_error);
		msgpack_pack_array(pk, HV__PH_N);
		for (unsigned p = 0; p < HV__PH_N; p++)
			msgpack_pack_uint64(pk, m->phase_ms[p]);
	}
}

static void pack_policy(msgpack_packer *pk, const struct hv_state *s)
{
	const struct hv_policy *p = &s->policy;
	const struct hv_rollout *r = &s->rollout;

	msgpack_pack_array(pk, 16);
	hv_mp_pack_str(pk, p->window);
	hv_mp_pack_str(pk, p->zone);
	hv_mp_pack_str(pk, p->blackouts);
	hv_mp_pack_str(pk, p->canary);
	msgpack_pack_uint64(pk, p->soak_ms);
	msgpack_pack_uint64(pk, p->cycle_estimate_ms);
	msgpack_pack_uint64(pk, p->downtime_budget_ms);
	msgpack_pack_uint64(pk, p->rollout_downtime_ms);
	hv_mp_pack_str(pk, r->canary);
	msgpack_pack_uint64(pk, r->soak_until_ms);
	hv_mp_pack_str(pk, r->gate);
	msgpack_pack_uint64(pk, r->downtime_ms);
	hv_mp_pack_bool(pk, p->quorum_guard);
	msgpack_pack_uint64(pk, p->max_retries);
	msgpack_pack_uint64(pk, p->retry_delay_ms);
	msgpack_pack_uint64(pk, p->max_failed);
}

int hv_state_encode(const struct hv_state *s, void *(*alloc)(size_t), void **buf,
                    size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rv = HV_OK;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 14);

	hv_mp_pack_str(&pk, "v");
	msgpack_pack_uint64(&pk, HV_SNAPSHOT_FORMAT);

	hv_mp_pack_str(&pk, "members");
	msgpack_pack_array(&pk, s->n_members);
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		msgpack_pack_array(&pk, 17);
		msgpack_pack_uint64(&pk, m->id);
		hv_mp_pack_str(&pk, m->name);
		hv_mp_pack_str(&pk, m->address);
		msgpack_pack_uint64(&pk, (uint64_t)m->role);
		if (m->removed)
			msgpack_pack_true(&pk);
		else
			msgpack_pack_false(&pk);
		hv_mp_pack_str(&pk, m->phase);
		hv_mp_pack_str(&pk, m->version);
		msgpack_pack_uint64(&pk, m->report_ms);
		msgpack_pack_uint64(&pk, m->mem_cap_mib);
		msgpack_pack_uint64(&pk, m->vcpus_cap);
		msgpack_pack_uint64(&pk, m->inventory_ms);
		msgpack_pack_array(&pk, m->n_guests);
		for (unsigned g = 0; g < m->n_guests; g++)
			hv_cmd_pack_guest(&pk, &m->guests[g]);
		msgpack_pack_uint64(&pk, (uint64_t)m->maint);
		msgpack_pack_uint64(&pk, m->maint_since_ms);
		msgpack_pack_uint64(&pk, m->maint_total_ms);
		msgpack_pack_uint64(&pk, m->maint_count);
		msgpack_pack_uint64(&pk, m->moved_index);
	}

	hv_mp_pack_str(&pk, "moves");
	msgpack_pack_array(&pk, s->n_moves);
	for (unsigned i = 0; i < s->n_moves; i++)
		pack_move(&pk, &s->moves[i]);
	hv_mp_pack_str(&pk, "history"); /* oldest first */
	msgpack_pack_array(&pk, s->hist_count);
	for (unsigned i = s->hist_count; i-- > 0;)
		pack_move(&pk, hv_state_history(s, i));

	hv_mp_pack_str(&pk, "max_concurrent");
	msgpack_pack_uint64(&pk, s->max_concurrent);

	hv_mp_pack_str(&pk, "holders");
	msgpack_pack_array(&pk, s->n_holders);
	for (unsigned i = 0; i < s->n_holders; i++) {
		msgpack_pack_array(&pk, 3);
		hv_mp_pack_str(&pk, s->holders[i].name);
		msgpack_pack_uint64(&pk, s->holders[i].token);
		msgpack_pack_uint64(&pk, s->holders[i].granted_ms);
	}

	hv_mp_pack_str(&pk, "last_token");
	msgpack_pack_uint64(&pk, s->last_token);

	hv_mp_pack_str(&pk, "paused");
	msgpack_pack_array(&pk, 4);
	if (s->paused)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	hv_mp_pack_str(&pk, s->paused_by);
	hv_mp_pack_str(&pk, s->pause_reason);
	msgpack_pack_uint64(&pk, s->paused_ms);

	hv_mp_pack_str(&pk, "events"); /* oldest first */
	msgpack_pack_array(&pk, s->ev_count);
	for (unsigned i = s->ev_count; i-- > 0;) {
		const struct hv_event *e = hv_state_event(s, i);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint64(&pk, e->index);
		msgpack_pack_uint64(&pk, e->time_ms);
		hv_mp_pack_str(&pk, e->text);
	}

	hv_mp_pack_str(&pk, "last_index");
	msgpack_pack_uint64(&pk, s->last_index);
	hv_mp_pack_str(&pk, "rejected");
	msgpack_pack_uint64(&pk, s->rejected);
	hv_mp_pack_str(&pk, "rollout");
	pack_rollout(&pk, s);
	hv_mp_pack_str(&pk, "policy");
	pack_policy(&pk, s);
	hv_mp_pack_str(&pk, "bmc"); /* each member's BMC and watchdog */
	msgpack_pack_array(&pk, s->n_members);
	for (unsigned i = 0; i < s->n_members; i++) {
		const struct hv_member *m = &s->members[i];
		msgpack_pack_array(&pk, 5);
		hv_mp_pack_str(&pk, m->bmc);
		hv_mp_pack_str(&pk, m->bmc_address);
		msgpack_pack_uint64(&pk, m->wd_cycles);
		msgpack_pack_uint64(&pk, m->wd_last_ms);
		msgpack_pack_uint64(&pk, m->retries);
	}

	rv = hv_mp_finish(&sb, alloc, 1, buf, len);
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

static const msgpack_object *d_tuple(const msgpack_object *o, uint32_t n)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
		return NULL;
	return o->via.array.ptr;
}

#define TRY(x)                           \
	do {                             \
		if ((rv = (x)) != HV_OK) \
			return rv;       \
	} while (0)

static int decode_members(struct hv_state *s, const msgpack_object *v)
{
	int rv;
	uint64_t u;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > HV_MAX_MEMBERS)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *t = d_tuple(&v->via.array.ptr[i], 17);
		struct hv_member *m = &s->members[i];
		if (t == NULL)
			return HV_MALFORMED;
		TRY(hv_mp_u64(&t[0], &m->id));
		TRY(hv_mp_str(&t[1], m->name, sizeof m->name));
		TRY(hv_mp_str(&t[2], m->address, sizeof m->address));
		TRY(hv_mp_u64(&t[3], &u));
		if (u > HV_ROLE_SPARE || !hv_name_valid(m->name))
			return HV_MALFORMED;
		m->role = (int)u;
		TRY(hv_mp_bool(&t[4], &m->removed));
		TRY(hv_mp_str(&t[5], m->phase, sizeof m->phase));
		TRY(hv_mp_str(&t[6], m->version, sizeof m->version));
		TRY(hv_mp_u64(&t[7], &m->report_ms));
		TRY(hv_mp_u64(&t[8], &u));
		m->mem_cap_mib = (uint32_t)u;
		TRY(hv_mp_u64(&t[9], &u));
		m->vcpus_cap = (uint32_t)u;
		TRY(hv_mp_u64(&t[10], &m->inventory_ms));
		if (t[11].type != MSGPACK_OBJECT_ARRAY ||
		    t[11].via.array.size > HV_MAX_GUESTS)
			return HV_MALFORMED;
		m->n_guests = t[11].via.array.size;
		for (unsigned g = 0; g < m->n_guests; g++)
			TRY(hv_cmd_unpack_guest(&t[11].via.array.ptr[g], &m->guests[g]));
		TRY(hv_mp_u64(&t[12], &u));
		if (u >= HV__MAINT_N)
			return HV_MALFORMED;
		m->maint = (int)u;
		TRY(hv_mp_u64(&t[13], &m->maint_since_ms));
		TRY(hv_mp_u64(&t[14], &m->maint_total_ms));
		TRY(hv_mp_u64(&t[15], &u));
		m->maint_count = (unsigned)u;
		TRY(hv_mp_u64(&t[16], &m->moved_index));
	}
	s->n_members = v->via.array.size;
	return HV_OK;
}

static int decode_move(const msgpack_object *o, struct hv_move *mv)
{
	const msgpack_object *t = d_tuple(o, 11);
	uint64_t u;
	int rv;

	if (t == NULL)
		return HV_MALFORMED;
	TRY(hv_cmd_unpack_move(&t[0], &mv->m));
	TRY(hv_mp_str(&t[1], mv->holder, sizeof mv->holder));
	TRY(hv_mp_u64(&t[2], &mv->token));
	TRY(hv_mp_u64(&t[3], &u));
	if (u > HV_MOVE_FAILED)
		return HV_MALFORMED;
	mv->status = (int)u;
	TRY(hv_mp_u64(&t[4], &u));
	if (u >= HV__NERR)
		return HV_MALFORMED;
	mv->result = (int)u;
	TRY(hv_mp_u64(&t[5], &mv->planned_ms));
	TRY(hv_mp_u64(&t[6], &mv->done_ms));
	TRY(hv_mp_u64(&t[7], &mv->downtime_ms));
	TRY(hv_mp_u64(&t[8], &mv->elapsed_ms));
	TRY(hv_mp_u64(&t[9], &mv->bytes));
	return hv_mp_str(&t[10], mv->error, sizeof mv->error);
}

static int decode_moves(struct hv_move *arr, unsigned cap, unsigned *n,
                        const msgpack_object *v)
{
	int rv;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > cap)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < v->via.array.size; i++)
		TRY(decode_move(&v->via.array.ptr[i], &arr[i]));
	*n = v->via.array.size;
	return HV_OK;
}

static int decode_holders(struct hv_state *s, const msgpack_object *v)
{
	int rv;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > HV_MAX_HOLDERS)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *t = d_tuple(&v->via.array.ptr[i], 3);
		struct hv_holder *h = &s->holders[i];
		if (t == NULL)
			return HV_MALFORMED;
		TRY(hv_mp_str(&t[0], h->name, sizeof h->name));
		if (!hv_name_valid(h->name))
			return HV_MALFORMED;
		TRY(hv_mp_u64(&t[1], &h->token));
		TRY(hv_mp_u64(&t[2], &h->granted_ms));
	}
	s->n_holders = v->via.array.size;
	return HV_OK;
}

static int decode_events(struct hv_state *s, const msgpack_object *v)
{
	int rv;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > HV_EVENTS)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *t = d_tuple(&v->via.array.ptr[i], 3);
		struct hv_event *e = &s->events[i];
		if (t == NULL)
			return HV_MALFORMED;
		TRY(hv_mp_u64(&t[0], &e->index));
		TRY(hv_mp_u64(&t[1], &e->time_ms));
		TRY(hv_mp_str(&t[2], e->text, sizeof e->text));
	}
	s->ev_count = v->via.array.size;
	s->ev_next = s->ev_count % HV_EVENTS;
	return HV_OK;
}

static int decode_rollout(struct hv_state *s, const msgpack_object *v)
{
	struct hv_rollout *r = &s->rollout;
	const msgpack_object *t = d_tuple(v, 17), *q, *c;
	uint64_t u;
	int rv;

	if (t == NULL)
		return HV_MALFORMED;
	TRY(hv_mp_u64(&t[0], &r->id));
	TRY(hv_mp_bool(&t[1], &r->active));
	TRY(hv_mp_bool(&t[2], &r->aborted));
	TRY(hv_mp_str(&t[3], r->bundle, sizeof r->bundle));
	TRY(hv_mp_str(&t[4], r->version, sizeof r->version));
	TRY(hv_mp_str(&t[5], r->digest, sizeof r->digest));
	TRY(hv_mp_str(&t[6], r->key_id, sizeof r->key_id));
	TRY(hv_mp_str(&t[7], r->source, sizeof r->source));
	TRY(hv_mp_str(&t[8], r->by, sizeof r->by));
	TRY(hv_mp_u64(&t[9], &r->submitted_ms));
	TRY(hv_mp_u64(&t[10], &r->finished_ms));
	TRY(hv_mp_u64(&t[11], &u));
	r->done = (unsigned)u;
	TRY(hv_mp_u64(&t[12], &u));
	r->failed = (unsigned)u;
	TRY(hv_mp_str(&t[13], s->floor_version, sizeof s->floor_version));
	TRY(hv_mp_str(&t[14], s->floor_digest, sizeof s->floor_digest));
	q = &t[15];
	if (q->type != MSGPACK_OBJECT_ARRAY || q->via.array.size > HV_QUARANTINE_MAX)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < q->via.array.size; i++) {
		const msgpack_object *e = d_tuple(&q->via.array.ptr[i], 4);
		struct hv_quarantine *x = &s->quarantine[i];
		if (e == NULL)
			return HV_MALFORMED;
		TRY(hv_mp_u64(&e[0], &x->index));
		TRY(hv_mp_str(&e[1], x->digest, sizeof x->digest));
		TRY(hv_mp_str(&e[2], x->version, sizeof x->version));
		TRY(hv_mp_str(&e[3], x->reason, sizeof x->reason));
	}
	s->n_quarantine = q->via.array.size;
	c = &t[16];
	if (c->type != MSGPACK_OBJECT_ARRAY || c->via.array.size != s->n_members)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < c->via.array.size; i++) {
		const msgpack_object *e = d_tuple(&c->via.array.ptr[i], 6);
		struct hv_member *m = &s->members[i];
		if (e == NULL)
			return HV_MALFORMED;
		TRY(hv_mp_u64(&e[0], &u));
		if (u >= HV__PH_N)
			return HV_MALFORMED;
		m->cycle = (int)u;
		TRY(hv_mp_u64(&e[1], &m->cycle_since_ms));
		TRY(hv_mp_u64(&e[2], &m->cycle_start_ms));
		TRY(hv_mp_u64(&e[3], &m->cycle_end_ms));
		TRY(hv_mp_str(&e[4], m->cycle_error, sizeof m->cycle_error));
		if (d_tuple(&e[5], HV__PH_N) == NULL)
			return HV_MALFORMED;
		for (unsigned p = 0; p < HV__PH_N; p++)
			TRY(hv_mp_u64(&e[5].via.array.ptr[p], &m->phase_ms[p]));
	}
	return HV_OK;
}

static int decode_bmc(struct hv_state *s, const msgpack_object *v)
{
	uint64_t u;
	int rv;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != s->n_members)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *e = d_tuple(&v->via.array.ptr[i], 5);
		struct hv_member *m = &s->members[i];
		if (e == NULL)
			return HV_MALFORMED;
		TRY(hv_mp_str(&e[0], m->bmc, sizeof m->bmc));
		TRY(hv_mp_str(&e[1], m->bmc_address, sizeof m->bmc_address));
		TRY(hv_mp_u64(&e[2], &u));
		if (u > 1000)
			return HV_MALFORMED;
		m->wd_cycles = (unsigned)u;
		TRY(hv_mp_u64(&e[3], &m->wd_last_ms));
		TRY(hv_mp_u64(&e[4], &u));
		if (u > 10)
			return HV_MALFORMED;
		m->retries = (unsigned)u;
	}
	return HV_OK;
}

static int decode_policy(struct hv_state *s, const msgpack_object *v)
{
	struct hv_policy *p = &s->policy;
	struct hv_rollout *r = &s->rollout;
	const msgpack_object *t = d_tuple(v, 16);
	uint64_t u;
	int rv;

	if (t == NULL)
		t = d_tuple(v, 15); /* before max-failed-hosts */
	if (t == NULL)
		return HV_MALFORMED;
	TRY(hv_mp_str(&t[0], p->window, sizeof p->window));
	TRY(hv_mp_str(&t[1], p->zone, sizeof p->zone));
	TRY(hv_mp_str(&t[2], p->blackouts, sizeof p->blackouts));
	TRY(hv_mp_str(&t[3], p->canary, sizeof p->canary));
	TRY(hv_mp_u64(&t[4], &p->soak_ms));
	TRY(hv_mp_u64(&t[5], &p->cycle_estimate_ms));
	TRY(hv_mp_u64(&t[6], &p->downtime_budget_ms));
	TRY(hv_mp_u64(&t[7], &p->rollout_downtime_ms));
	TRY(hv_mp_str(&t[8], r->canary, sizeof r->canary));
	TRY(hv_mp_u64(&t[9], &r->soak_until_ms));
	TRY(hv_mp_str(&t[10], r->gate, sizeof r->gate));
	TRY(hv_mp_u64(&t[11], &r->downtime_ms));
	TRY(hv_mp_bool(&t[12], &p->quorum_guard));
	TRY(hv_mp_u64(&t[13], &u));
	if (u > 10)
		return HV_MALFORMED;
	p->max_retries = (unsigned)u;
	TRY(hv_mp_u64(&t[14], &p->retry_delay_ms));
	p->max_failed = 0;
	if (v->via.array.size > 15) {
		TRY(hv_mp_u64(&t[15], &u));
		if (u > HV_MAX_MEMBERS)
			return HV_MALFORMED;
		p->max_failed = (unsigned)u;
	}
	return HV_OK;
}

static int decode_state(struct hv_state *s, const msgpack_object *root)
{
	const msgpack_object *rollout = NULL, *bmc = NULL, *policy = NULL;
	const msgpack_object *t;
	uint64_t u, version = 0;
	unsigned seen = 0;
	int rv;

	if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size > 64)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < root->via.map.size; i++) {
		const msgpack_object *k = &root->via.map.ptr[i].key;
		const msgpack_object *v = &root->via.map.ptr[i].val;
		if (hv_mp_key_is(k, "v")) {
			TRY(hv_mp_u64(v, &version));
			seen |= 1;
		} else if (hv_mp_key_is(k, "members")) {
			TRY(decode_members(s, v));
			seen |= 2;
		} else if (hv_mp_key_is(k, "max_concurrent")) {
			TRY(hv_mp_u64(v, &u));
			if (u < 1 || u > HV_MAX_HOLDERS)
				return HV_MALFORMED;
			s->max_concurrent = (unsigned)u;
			seen |= 4;
		} else if (hv_mp_key_is(k, "holders")) {
			TRY(decode_holders(s, v));
			seen |= 8;
		} else if (hv_mp_key_is(k, "last_token")) {
			TRY(hv_mp_u64(v, &s->last_token));
			seen |= 16;
		} else if (hv_mp_key_is(k, "paused")) {
			if ((t = d_tuple(v, 4)) == NULL)
				return HV_MALFORMED;
			TRY(hv_mp_bool(&t[0], &s->paused));
			TRY(hv_mp_str(&t[1], s->paused_by, sizeof s->paused_by));
			TRY(hv_mp_str(&t[2], s->pause_reason, sizeof s->pause_reason));
			TRY(hv_mp_u64(&t[3], &s->paused_ms));
			seen |= 32;
		} else if (hv_mp_key_is(k, "events")) {
			TRY(decode_events(s, v));
			seen |= 64;
		} else if (hv_mp_key_is(k, "last_index")) {
			TRY(hv_mp_u64(v, &s->last_index));
			seen |= 128;
		} else if (hv_mp_key_is(k, "rejected")) {
			TRY(hv_mp_u64(v, &s->rejected));
			seen |= 256;
		} else if (hv_mp_key_is(k, "moves")) {
			TRY(decode_moves(s->moves, HV_MAX_MOVES, &s->n_moves, v));
			seen |= 512;
		} else if (hv_mp_key_is(k, "history")) {
			TRY(decode_moves(s->history, HV_HISTORY, &s->hist_count, v));
			s->hist_next = s->hist_count % HV_HISTORY;
			seen |= 1024;
		} else if (hv_mp_key_is(k, "rollout")) {
			rollout = v; /* after the members, whatever the key order */
		} else if (hv_mp_key_is(k, "bmc")) {
			bmc = v;
		} else if (hv_mp_key_is(k, "policy")) {
			policy = v; /* after the rollout, which resets its part */
		}
	}
	if (rollout != NULL && (seen & 2) && rollout->type != MSGPACK_OBJECT_NIL)
		TRY(decode_rollout(s, rollout));
	if (bmc != NULL && (seen & 2) && bmc->type != MSGPACK_OBJECT_NIL)
		TRY(decode_bmc(s, bmc));
	if (policy != NULL)
		TRY(decode_policy(s, policy));
	if (seen != 2047)
		return HV_MALFORMED;
	if (version != HV_SNAPSHOT_FORMAT)
		return HV_VERSION;
	if (s->n_holders > s->max_concurrent)
		return HV_MALFORMED;
	return HV_OK;
}

int hv_state_decode(struct hv_state *s, const void *buf, size_t len)
{
	struct hv_state *tmp;
	msgpack_unpacked up;
	size_t off = 0;
	int rv;

	if (buf == NULL || len == 0 || len > (64u << 20) ||
	    hv_msgpack_check(buf, len) != len)
		return HV_MALFORMED;
	tmp = malloc(sizeof *tmp);
	if (tmp == NULL)
		return HV_NOMEM;
	hv_state_init(tmp);
	msgpack_unpacked_init(&up);
	switch (msgpack_unpack_next(&up, buf, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		rv = off == len ? decode_state(tmp, &up.data) : HV_MALFORMED;
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		rv = HV_NOMEM;
		break;
	default:
		rv = HV_MALFORMED;
	}
	msgpack_unpacked_destroy(&up);
	if (rv == HV_TOOBIG)
		rv = HV_MALFORMED; /* a field longer than it may be */
	if (rv == HV_OK)
		*s = *tmp;
	free(tmp);
	return rv;
}

bool hv_state_equal(const struct hv_state *a, const struct hv_state *b)
{
	void *ba = NULL, *bb = NULL;
	size_t la = 0, lb = 0;
	bool eq;

	if (hv_state_encode(a, NULL, &ba, &la) != HV_OK ||
	    hv_state_encode(b, NULL, &bb, &lb) != HV_OK) {
		free(ba);
		free(bb);
		return false;
	}
	eq = la == lb && memcmp(ba, bb, la) == 0;
	free(ba);
	free(bb);
	return eq;
}
