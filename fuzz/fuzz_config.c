/*
 * The hvpeerd configuration parser (node/config.c: hv_config_load_file,
 * inih calling hv_config_set for each key), then hv_config_check, on a
 * file in memory. A config file is root's, but it is still input: a typo
 * must give a message, never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "../node/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hv_config *c = malloc(sizeof *c);
	char *copy = malloc(size > 0 ? size : 1), err[512];
	FILE *f;

	FUZZ_CHECK(c != NULL && copy != NULL);
	if (size > 0)
		memcpy(copy, data, size);
	hv_config_defaults(c);
	f = fmemopen(copy, size, "r");
	FUZZ_CHECK(f != NULL);
	err[0] = '\0';
	if (hv_config_load_file(c, f, "fuzz.conf", err, sizeof err) == 0) {
		(void)hv_config_check(c, err, sizeof err);
		FUZZ_CHECK(c->n_join <= HV_MAX_JOIN);
		FUZZ_CHECK(strnlen(c->name, sizeof c->name) < sizeof c->name);
	} else {
		FUZZ_CHECK(err[0] != '\0'); /* a failure always says why */
	}
	fclose(f);
	free(copy);
	free(c);
	return 0;
}
