/*
 * libraft glue: a struct raft_fsm over the cluster state machine.
 *
 * The fencing token of a grant is the log index of its entry. libraft does
 * not pass the index to fsm->apply, but it applies entries strictly in order
 * and advances raft_last_applied() right after each one, so the entry being
 * applied is raft_last_applied() + 1. The fixture tests check this against
 * the index that raft_apply() assigned.
 *
 * apply() never fails towards libraft (a failing apply would stall the log):
 * a refused command is a result, not an error. The result pointer carries
 * the HV_* code and the token packed into an integer, because libraft fires
 * apply callbacks later, after other entries may have been applied.
 */
#ifndef HV_FSM_H
#define HV_FSM_H

#include <raft.h>
#include <stdint.h>

#include "state.h"

struct hv_fsm;

/* Called after every applied command, on every replica (for watchers). */
typedef void (*hv_fsm_applied_cb)(struct hv_fsm *f, uint64_t index,
                                  const struct hv_cmd *cmd, int rc);

struct hv_fsm {
	struct raft_fsm fsm;
	struct raft *raft;
	struct hv_state *state;
	hv_fsm_applied_cb applied;
	void *data;
};

/* Wire f->fsm to the state. raft may be set later (before raft_start). */
void hv_fsm_init(struct hv_fsm *f, struct hv_state *state);

/* Unpack an apply result. */
static inline int hv_fsm_result_code(void *result)
{
	return (int)((uintptr_t)result & 0xff);
}

static inline uint64_t hv_fsm_result_token(void *result)
{
	return (uint64_t)((uintptr_t)result >> 8);
}

#endif
