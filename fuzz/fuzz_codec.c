/*
 * The replicated log's command decoder (consensus/codec.c: hv_cmd_decode,
 * with hv_msgpack_check in front of msgpack-c). Every replica runs it on
 * every entry, and a peer's forwarded commit reaches it from the network.
 *
 * Beyond not crashing: a command the decoder accepts encodes again, and
 * the encoding is a fixed point (decode(encode(x)) encodes to the same
 * bytes), so a leader re-proposing what it read proposes the same thing.
 */
#include <stdlib.h>
#include <string.h>

#include "../consensus/codec.h"
#include "../lib/err.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hv_cmd *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	void *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;

	FUZZ_CHECK(a != NULL && b != NULL);
	if (hv_cmd_decode(data, size, a) == HV_OK) {
		FUZZ_CHECK(a->type >= 1 && a->type <= HV__CMD_LAST);
		FUZZ_CHECK(hv_cmd_encode(a, NULL, &buf, &len) == HV_OK);
		FUZZ_CHECK(len % 8 == 0 && len <= HV_CMD_MAX);
		FUZZ_CHECK(hv_cmd_decode(buf, len, b) == HV_OK);
		FUZZ_CHECK(hv_cmd_encode(b, NULL, &buf2, &len2) == HV_OK);
		FUZZ_CHECK(len == len2 && memcmp(buf, buf2, len) == 0);
		FUZZ_CHECK(strcmp(hv_cmd_name(a->type), "unknown") != 0);
	}
	free(buf);
	free(buf2);
	free(a);
	free(b);
	return 0;
}
