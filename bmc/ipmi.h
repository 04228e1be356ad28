/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The ipmi driver's SDR decoder (bmc/ipmi.c), apart from the sessions so
 * that a fuzzer (fuzz/fuzz_ipmi_sdr.c) can feed it any record. Private to
 * bmc/: callers use struct hv_bmc (bmc.h).
 */
#ifndef HV_BMC_IPMI_H
#define HV_BMC_IPMI_H

#include <stdint.h>

#include <freeipmi/freeipmi.h>

#include "bmc.h"

/*
 * Decode one SDR record (rec, len bytes, as the BMC's repository holds it)
 * with sdr, a context made only to parse records in memory: 0 when it is
 * not a sensor the driver reports (not a full sensor record, not a
 * threshold sensor, or one of another controller), else 1 with s's name
 * (its ID string, else "sensor@RECORD-ID"), type, unit and the thresholds
 * the record declares readable. The reading and the state are left to the
 * caller (they need the BMC).
 */
int hv_bmc_ipmi_sdr_sensor(ipmi_sdr_ctx_t sdr, const uint8_t *rec, unsigned len,
                           struct hv_bmc_sensor *s);

#endif
