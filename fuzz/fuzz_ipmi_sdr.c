/*
 * The IPMI SDR record decoder (bmc/ipmi.c: hv_bmc_ipmi_sdr_sensor): the
 * records of the BMC's sensor repository, as it sent them, through
 * libfreeipmi's record parsers and the driver's choices (which sensors it
 * reports, their names, units and thresholds).
 */
#include <string.h>

#include "../bmc/ipmi.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ipmi_sdr_ctx_t sdr; /* one for the process, as the driver's call */
	struct hv_bmc_sensor s;
	uint8_t *rec;

	if (size > IPMI_SDR_MAX_RECORD_LENGTH)
		return 0; /* what ipmi_sdr_cache_record_read can return */
	if (sdr == NULL)
		sdr = ipmi_sdr_ctx_create();
	FUZZ_CHECK(sdr != NULL);
	/* An exact-size copy, so that ASan sees a read past the record. */
	rec = malloc(size > 0 ? size : 1);
	FUZZ_CHECK(rec != NULL);
	memcpy(rec, data, size);
	if (hv_bmc_ipmi_sdr_sensor(sdr, rec, (unsigned)size, &s) == 1) {
		FUZZ_CHECK(strnlen(s.name, sizeof s.name) < sizeof s.name);
		FUZZ_CHECK(strnlen(s.type, sizeof s.type) < sizeof s.type);
		FUZZ_CHECK(strnlen(s.unit, sizeof s.unit) < sizeof s.unit);
		FUZZ_CHECK((s.thresholds & ~0x3fu) == 0);
	}
	free(rec);
	return 0;
}
