/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The redfish driver's decoders (bmc/redfish.c): pure functions from what a
 * BMC answered (parsed JSON, or an error body) to bmc.h's types, kept apart
 * from the HTTP exchanges so that unit tests can feed them any answer.
 * Private to bmc/: callers use struct hv_bmc (bmc.h).
 *
 * Everything decoded here is untrusted: strings are bounded and stripped of
 * control characters, numbers must be finite, unknown fields are ignored.
 */
#ifndef HV_BMC_REDFISH_H
#define HV_BMC_REDFISH_H

#include <json-c/json.h>
#include <stddef.h>

#include "bmc.h"

/* The longest resource path ("/redfish/v1/...") the driver follows, with
 * the '\0'. */
#define HV_REDFISH_PATH_MAX 512

/* Which array of which resource hv_bmc_redfish_sensors_decode reads. */
enum hv_redfish_sensors {
	HV_REDFISH_THERMAL, /* Thermal: Temperatures[], ReadingCelsius */
	HV_REDFISH_POWER,   /* Power: Voltages[], ReadingVolts */
};

/*
 * Parse a BMC's answer (body, len bytes, not '\0'-terminated; NULL when
 * len is 0): one JSON object, then nothing but white space. HV_OK with
 * *out (the caller puts it); else *out is NULL and why says what is wrong
 * (HV_PROTO: not JSON, with where it broke, or not one object; HV_NOMEM).
 */
int hv_bmc_redfish_parse(const char *body, size_t len, struct json_object **out,
                         char *why, size_t whylen);

/*
 * Append the sensors of a Thermal or Power resource (res, a JSON object) to
 * out[*n..max), in the BMC's order, each with its thresholds
 * (Upper/LowerThreshold NonCritical, Critical, Fatal -> noncrit, crit,
 * nonrec) and its state: UNREADABLE without a reading, else the worse of
 * hv_bmc_sensor_eval and the BMC's own Status.Health. Sensors whose
 * Status.State is "Absent" are left out (not fitted); so are entries that
 * are not objects. A resource without the array has no sensors of that
 * kind. HV_PROTO (with the reason in err) when the array is not an array.
 */
int hv_bmc_redfish_sensors_decode(struct json_object *res, int which,
                                  struct hv_bmc_sensor *out, unsigned max, unsigned *n,
                                  char *err, size_t errlen);

/*
 * A ComputerSystem's PowerState: *on 1 for "On", "PoweringOff" (power is
 * still applied) and "Paused", 0 for "Off" and "PoweringOn" (not up yet).
 * HV_PROTO when it is missing or another value.
 */
int hv_bmc_redfish_power_state(struct json_object *system, int *on);

/*
 * The BMC's own words from an error answer (body, len bytes, not
 * '\0'-terminated): a Redfish error {"error": {"message": M,
 * "@Message.ExtendedInfo": [{"Message": E1}, ...]}} gives "M; E1; ...",
 * anything else its first bytes as text. Control characters become
 * spaces, the text is cut to fit out, and every occurrence of secret
 * (the password; may be NULL or "") is replaced by "***". out is "" when
 * the body says nothing.
 */
void hv_bmc_redfish_error_text(const char *body, size_t len, const char *secret,
                               char *out, size_t outlen);

/* Is path a resource path the driver may follow: "/redfish/v1/...",
 * shorter than HV_REDFISH_PATH_MAX, of URL path characters only (no
 * query, fragment, space, quote, backslash or control character), without
 * a ".." segment? */
int hv_bmc_redfish_path_ok(const char *path);

/* Is pin one or more "sha256//BASE64" (the base64 of 32 bytes, 44
 * characters) separated by ';', as curl's CURLOPT_PINNEDPUBLICKEY takes
 * them? */
int hv_bmc_redfish_pin_ok(const char *pin);

#endif
