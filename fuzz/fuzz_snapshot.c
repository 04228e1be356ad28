/*
 * The snapshot decoder (consensus/state.c: hv_state_decode): a node
 * restores the cluster state from a snapshot its leader sent (libraft's
 * InstallSnapshot) or from its own disk.
 *
 * Beyond not crashing: a state the decoder accepts encodes again and
 * decodes to an equal state (hv_state_equal), so a follower restored from
 * it snapshots the same bytes its leader would.
 */
#include <stdlib.h>
#include <string.h>

#include "../consensus/state.h"
#include "../lib/err.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hv_state *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	void *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;

	FUZZ_CHECK(a != NULL && b != NULL);
	hv_state_init(a);
	hv_state_init(b);
	if (hv_state_decode(a, data, size) == HV_OK) {
		FUZZ_CHECK(a->n_members <= HV_MAX_MEMBERS);
		FUZZ_CHECK(hv_state_encode(a, NULL, &buf, &len) == HV_OK);
		FUZZ_CHECK(hv_state_decode(b, buf, len) == HV_OK);
		FUZZ_CHECK(hv_state_equal(a, b));
		FUZZ_CHECK(hv_state_encode(b, NULL, &buf2, &len2) == HV_OK);
		FUZZ_CHECK(len == len2 && memcmp(buf, buf2, len) == 0);
	}
	free(buf);
	free(buf2);
	free(a);
	free(b);
	return 0;
}
