/*
 * The BMC credentials file parser (bmc/bmc.c: hv_bmc_creds_load, inih
 * with its own checks), on a private temporary file (it must be a regular
 * file with mode 0600, as mkstemp makes it), for three addresses that pick
 * different sections. A message never holds the password.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bmc/bmc.h"
#include "../lib/err.h"
#include "fuzz.h"

static char path[4096];

static void remove_file(void)
{
	unlink(path);
}

static const char *file_path(void)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	if (path[0] != '\0')
		return path;
	snprintf(path, sizeof path, "%s/hvpeer-fuzz-creds.XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0);
	close(fd);
	atexit(remove_file);
	return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const addresses[] = {"10.0.0.21:623", "bmc1.example",
	                                        "[fd00::21]:623"};
	const char *p = file_path();
	struct hv_bmc_creds c;
	char err[1024];
	FILE *f = fopen(p, "w");

	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	FUZZ_CHECK(fclose(f) == 0);
	for (size_t i = 0; i < sizeof addresses / sizeof addresses[0]; i++) {
		err[0] = '\0';
		if (hv_bmc_creds_load(p, addresses[i], &c, err, sizeof err) == HV_OK) {
			FUZZ_CHECK(c.password[0] != '\0');
			FUZZ_CHECK(strnlen(c.user, sizeof c.user) < sizeof c.user);
		} else {
			FUZZ_CHECK(err[0] != '\0');
		}
		hv_bmc_creds_clear(&c);
	}
	return 0;
}
