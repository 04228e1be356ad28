/*
 * The Redfish reply decoders (bmc/redfish.c): a BMC's answer body through
 * hv_bmc_redfish_parse, then what the driver reads from the object: the
 * PowerState, the Thermal and Power sensors, a collection's first member
 * and the links it follows; and the error text made from a refused
 * request's body (hv_bmc_redfish_error_text), which must never show the
 * password. A BMC is another computer on the network: trust nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../bmc/redfish.h"
#include "../lib/err.h"
#include "fuzz.h"

#define SECRET "Zq7-secret"

static void check_sensor(const struct hv_bmc_sensor *s)
{
	FUZZ_CHECK(strnlen(s->name, sizeof s->name) < sizeof s->name);
	FUZZ_CHECK(strnlen(s->type, sizeof s->type) < sizeof s->type);
	FUZZ_CHECK(strnlen(s->unit, sizeof s->unit) < sizeof s->unit);
	FUZZ_CHECK(s->state >= HV_BMC_SENSOR_OK && s->state <= HV_BMC_SENSOR_UNREADABLE);
	FUZZ_CHECK(s->state == HV_BMC_SENSOR_UNREADABLE || isfinite(s->value));
	for (const char *p = s->name; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

/* A link the driver may follow: the string at key of o. */
static void path_at(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		(void)hv_bmc_redfish_path_ok(json_object_get_string(v));
}

static void decode(struct json_object *o)
{
	struct hv_bmc_sensor s[8];
	struct json_object *m;
	unsigned n = 0;
	char why[256];
	int on = -1;

	if (hv_bmc_redfish_power_state(o, &on) == HV_OK)
		FUZZ_CHECK(on == 0 || on == 1);
	if (hv_bmc_redfish_sensors_decode(o, HV_REDFISH_THERMAL, s, 8, &n, why,
	                                  sizeof why) == HV_OK)
		(void)hv_bmc_redfish_sensors_decode(o, HV_REDFISH_POWER, s, 8, &n, why,
		                                    sizeof why);
	FUZZ_CHECK(n <= 8);
	for (unsigned i = 0; i < n; i++)
		check_sensor(&s[i]);
	path_at(o, "@odata.id");
	if (json_object_object_get_ex(o, "Members", &m) &&
	    json_object_is_type(m, json_type_array) && json_object_array_length(m) > 0 &&
	    json_object_is_type(json_object_array_get_idx(m, 0), json_type_object))
		path_at(json_object_array_get_idx(m, 0), "@odata.id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;
	char why[256], text[512], *str;

	if (hv_bmc_redfish_parse((const char *)data, size, &o, why, sizeof why) ==
	    HV_OK) {
		FUZZ_CHECK(o != NULL);
		decode(o);
		json_object_put(o);
	} else {
		FUZZ_CHECK(o == NULL && why[0] != '\0');
	}
	hv_bmc_redfish_error_text((const char *)data, size, SECRET, text, sizeof text);
	FUZZ_CHECK(strnlen(text, sizeof text) < sizeof text);
	FUZZ_CHECK(strstr(text, SECRET) == NULL);
	/* The same bytes as a path and as a pin, as options give them. */
	str = malloc(size + 1);
	FUZZ_CHECK(str != NULL);
	memcpy(str, data, size);
	str[size] = '\0';
	(void)hv_bmc_redfish_path_ok(str);
	(void)hv_bmc_redfish_pin_ok(str);
	free(str);
	return 0;
}
