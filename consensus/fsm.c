#include <string.h>

#include "../lib/err.h"
#include "fsm.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct hv_fsm *f = fsm->data;
	uint64_t index = raft_last_applied(f->raft) + 1;
	uint64_t token = 0;
	struct hv_cmd cmd;
	int rc;

	rc = hv_cmd_decode(buf->base, buf->len, &cmd);
	if (rc == HV_OK) {
		rc = hv_state_apply_cmd(f->state, index, &cmd, &token);
	} else {
		/* Same effect as hv_state_apply on bad input: counted, skipped. */
		if (index > f->state->last_index)
			f->state->last_index = index;
		f->state->rejected++;
	}
	*result = (void *)(uintptr_t)((token << 8) | (uint64_t)(rc & 0xff));
	if (f->applied != NULL)
		f->applied(f, index, rc == HV_MALFORMED ? NULL : &cmd, rc);
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
	struct hv_fsm *f = fsm->data;
	void *base;
	size_t len;
	int rv;

	*bufs = raft_malloc(sizeof **bufs);
	if (*bufs == NULL)
		return RAFT_NOMEM;
	rv = hv_state_encode(f->state, raft_malloc, &base, &len);
	if (rv != HV_OK) {
		raft_free(*bufs);
		*bufs = NULL;
		return RAFT_NOMEM;
	}
	(*bufs)[0].base = base;
	(*bufs)[0].len = len;
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct hv_fsm *f = fsm->data;
	int rv = hv_state_decode(f->state, buf->base, buf->len);

	raft_free(buf->base); /* restore owns the buffer */
	return rv == HV_OK ? 0 : RAFT_MALFORMED;
}

void hv_fsm_init(struct hv_fsm *f, struct hv_state *state)
{
	memset(f, 0, sizeof *f);
	f->state = state;
	f->fsm.version = 1;
	f->fsm.data = f;
	f->fsm.apply = fsm_apply;
	f->fsm.snapshot = fsm_snapshot;
	f->fsm.restore = fsm_restore;
}
