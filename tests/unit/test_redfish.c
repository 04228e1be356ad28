/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The redfish driver's decoders (bmc/redfish.h), fed answers no simulator
 * gives: Thermal and Power resources with every threshold, null and
 * missing readings, absent sensors, the BMC's Health, hostile names,
 * arrays that are not arrays; PowerState values; Redfish error bodies and
 * other bodies, with the password scrubbed and UTF-8 cut cleanly; the
 * resource paths the driver follows and the pins it takes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../bmc/redfish.h"
#include "../../lib/err.h"

#define SECRET "Zq7-secret-Zq7"

static struct json_object *parse(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

static void test_thermal(void **state)
{
	struct json_object *o = parse(
	    "{\"Temperatures\": ["
	    " {\"Name\": \"CPU Temp\", \"ReadingCelsius\": 45,"
	    "  \"UpperThresholdNonCritical\": 80, \"UpperThresholdCritical\": 90,"
	    "  \"UpperThresholdFatal\": 100, \"LowerThresholdNonCritical\": null,"
	    "  \"LowerThresholdCritical\": 5, \"LowerThresholdFatal\": \"0\","
	    "  \"Status\": {\"State\": \"Enabled\", \"Health\": \"OK\"}},"
	    " {\"Name\": \"CPU2 Temp\", \"ReadingCelsius\": null,"
	    "  \"Status\": {\"State\": \"Absent\"}},"
	    " 17,"
	    " {\"MemberId\": \"inlet\", \"ReadingCelsius\": 85.5,"
	    "  \"UpperThresholdNonCritical\": 80},"
	    " {\"Name\": \"\", \"ReadingCelsius\": null, \"UpperThresholdCritical\": 70},"
	    " {\"Name\": \"evil\\u001b[2J\", \"ReadingCelsius\": 20,"
	    "  \"Status\": {\"Health\": \"Critical\"}}"
	    "]}");
	struct hv_bmc_sensor s[8];
	char err[256];
	unsigned n = 0;

	(void)state;
	assert_int_equal(hv_bmc_redfish_sensors_decode(o, HV_REDFISH_THERMAL, s, 8, &n,
	                                               err, sizeof err),
	                 HV_OK);
	assert_int_equal(n, 4); /* the absent one and the number left out */

	assert_string_equal(s[0].name, "CPU Temp");
	assert_string_equal(s[0].type, "Temperature");
	assert_string_equal(s[0].unit, "C");
	assert_true(s[0].value == 45);
	/* null and a string are no thresholds. */
	assert_int_equal(s[0].thresholds, HV_BMC_TH_UPPER_NONCRIT | HV_BMC_TH_UPPER_CRIT |
	                                      HV_BMC_TH_UPPER_NONREC |
	                                      HV_BMC_TH_LOWER_CRIT);
	assert_true(s[0].upper_noncrit == 80 && s[0].upper_crit == 90 &&
	            s[0].upper_nonrec == 100 && s[0].lower_crit == 5);
	assert_int_equal(s[0].state, HV_BMC_SENSOR_OK);

	assert_string_equal(s[1].name, "inlet"); /* no Name: its MemberId */
	assert_true(s[1].value == 85.5);
	assert_int_equal(s[1].state, HV_BMC_SENSOR_WARNING);

	assert_string_equal(s[2].name, "Temperatures 4"); /* neither */
	assert_int_equal(s[2].state, HV_BMC_SENSOR_UNREADABLE);
	assert_int_equal(s[2].thresholds, HV_BMC_TH_UPPER_CRIT);

	/* The BMC's Health is worse than the (absent) thresholds say. */
	assert_int_equal(s[3].state, HV_BMC_SENSOR_CRITICAL);
	assert_string_equal(s[3].name, "evil?[2J"); /* no escape reaches a tty */
	json_object_put(o);
}

static void test_power(void **state)
{
	struct json_object *o = parse(
	    "{\"Voltages\": [{\"Name\": \"12V\", \"ReadingVolts\": 10.8,"
	    " \"LowerThresholdCritical\": 10.8, \"LowerThresholdNonCritical\": 11.4,"
	    " \"UpperThresholdNonCritical\": 12.6, \"UpperThresholdCritical\": 13.2},"
	    " {\"Name\": \"3.3V\", \"ReadingVolts\": 3.3}],"
	    " \"Temperatures\": [{\"Name\": \"not read from Power\"}]}");
	struct hv_bmc_sensor s[4];
	char err[256];
	unsigned n = 1; /* appended after what is there */

	(void)state;
	assert_int_equal(
	    hv_bmc_redfish_sensors_decode(o, HV_REDFISH_POWER, s, 4, &n, err, sizeof err),
	    HV_OK);
	assert_int_equal(n, 3);
	assert_string_equal(s[1].name, "12V");
	assert_string_equal(s[1].type, "Voltage");
	assert_string_equal(s[1].unit, "V");
	assert_int_equal(s[1].state, HV_BMC_SENSOR_CRITICAL); /* at the threshold */
	assert_int_equal(s[2].thresholds, 0);
	assert_int_equal(s[2].state, HV_BMC_SENSOR_OK);

	/* Clipped at max. */
	n = 3;
	assert_int_equal(
	    hv_bmc_redfish_sensors_decode(o, HV_REDFISH_POWER, s, 4, &n, err, sizeof err),
	    HV_OK);
	assert_int_equal(n, 4);
	json_object_put(o);

	/* No Voltages: none, not an error. A Voltages that is not an array:
	 * an error. */
	o = parse("{\"Voltages\": null}");
	n = 0;
	assert_int_equal(
	    hv_bmc_redfish_sensors_decode(o, HV_REDFISH_POWER, s, 4, &n, err, sizeof err),
	    HV_OK);
	assert_int_equal(n, 0);
	json_object_put(o);
	o = parse("{\"Voltages\": {\"Name\": \"12V\"}}");
	assert_int_equal(
	    hv_bmc_redfish_sensors_decode(o, HV_REDFISH_POWER, s, 4, &n, err, sizeof err),
	    HV_PROTO);
	assert_string_equal(err, "Voltages is not an array");
	json_object_put(o);
}

static void test_power_state(void **state)
{
	static const struct {
		const char *json;
		int rv, on;
	} cases[] = {
	    {"{\"PowerState\": \"On\"}", HV_OK, 1},
	    {"{\"PowerState\": \"PoweringOff\"}", HV_OK, 1},
	    {"{\"PowerState\": \"Paused\"}", HV_OK, 1},
	    {"{\"PowerState\": \"Off\"}", HV_OK, 0},
	    {"{\"PowerState\": \"PoweringOn\"}", HV_OK, 0},
	    {"{\"PowerState\": \"on\"}", HV_PROTO, -1},
	    {"{\"PowerState\": 1}", HV_PROTO, -1},
	    {"{\"PowerState\": null}", HV_PROTO, -1},
	    {"{}", HV_PROTO, -1},
	};
	struct json_object *o;
	int on;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		o = parse(cases[i].json);
		on = -1;
		assert_int_equal(hv_bmc_redfish_power_state(o, &on), cases[i].rv);
		assert_int_equal(on, cases[i].on);
		json_object_put(o);
	}
}

static void error_text(const char *body, const char *secret, char *out, size_t outlen)
{
	hv_bmc_redfish_error_text(body, strlen(body), secret, out, outlen);
}

static void test_error_text(void **state)
{
	char out[128];

	(void)state;
	error_text("{\"error\": {\"code\": \"Base.1.8.GeneralError\", \"message\": \"A "
	           "general error.\", \"@Message.ExtendedInfo\": [{\"Message\": \"A "
	           "general error.\"}, {\"MessageId\": \"x\"}, {\"Message\": \"Bad "
	           "ResetType.\"}, {\"Message\": \"Try On.\"}]}}",
	           NULL, out, sizeof out);
	assert_string_equal(out, "A general error.; Bad ResetType.; Try On.");

	/* Only extended info; a Redfish body without "error": nothing. */
	error_text("{\"error\": {\"@Message.ExtendedInfo\": [{\"Message\": \"x\"}]}}",
	           NULL, out, sizeof out);
	assert_string_equal(out, "x");
	error_text("{\"@odata.id\": \"/redfish/v1\"}", NULL, out, sizeof out);
	assert_string_equal(out, "");
	error_text("", NULL, out, sizeof out);
	assert_string_equal(out, "");

	/* Not JSON: its first bytes, control characters as spaces. */
	error_text("Service Unavailable\r\n", NULL, out, sizeof out);
	assert_string_equal(out, "Service Unavailable  ");
	/* json-c would read the number and stop: text all the same. */
	error_text("404 Not Found", NULL, out, sizeof out);
	assert_string_equal(out, "404 Not Found");
	error_text("{\"error\": {\"message\": \"m\"}} trailing", NULL, out, sizeof out);
	assert_string_equal(out, "{\"error\": {\"message\": \"m\"}} trailing");

	/* The password never comes through, wherever the BMC echoes it. */
	error_text("{\"error\": {\"message\": \"login " SECRET " refused\", "
	           "\"@Message.ExtendedInfo\": [{\"Message\": \"" SECRET SECRET "\"}]}}",
	           SECRET, out, sizeof out);
	assert_string_equal(out, "login *** refused; ******");
	error_text("bad password " SECRET, SECRET, out, sizeof out);
	assert_string_equal(out, "bad password ***");

	/* Cut to fit, not through the password nor through a character. */
	error_text("0123456789" SECRET, SECRET, out, 12);
	assert_string_equal(out, "0123456789*");
	error_text("abcdefgh\xc3\xa9\xc3\xa9", NULL, out, 10); /* "abcdefghéé" */
	assert_string_equal(out, "abcdefgh");
	error_text("abcdefg\xc3\xa9\xc3\xa9", NULL, out, 10);
	assert_string_equal(out, "abcdefg\xc3\xa9");
}

static void test_path_ok(void **state)
{
	(void)state;
	assert_true(hv_bmc_redfish_path_ok("/redfish/v1/Systems/1"));
	assert_true(hv_bmc_redfish_path_ok("/redfish/v1/Systems/sys-a/Actions/"
	                                   "ComputerSystem.Reset"));
	assert_true(hv_bmc_redfish_path_ok("/redfish/v1/Chassis/System.Embedded.1"));
	assert_true(hv_bmc_redfish_path_ok("/redfish/v1/Chassis/a%20b"));
	assert_false(hv_bmc_redfish_path_ok(NULL));
	assert_false(hv_bmc_redfish_path_ok(""));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1"));
	assert_false(hv_bmc_redfish_path_ok("https://evil/redfish/v1/Systems/1"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v2/Systems/1"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1/Systems/1?$expand=*"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1/Chassis/1/Thermal#/Fans/0"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1/Systems/a b"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1/Systems/a\r\nX-Evil: 1"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1/../../etc"));
	assert_false(hv_bmc_redfish_path_ok("/redfish/v1/Systems/.."));
	{
		char long_path[HV_REDFISH_PATH_MAX + 8];

		memset(long_path, 'a', sizeof long_path - 1);
		long_path[sizeof long_path - 1] = '\0';
		memcpy(long_path, "/redfish/v1/", 12);
		assert_false(hv_bmc_redfish_path_ok(long_path));
		long_path[HV_REDFISH_PATH_MAX - 1] = '\0';
		assert_true(hv_bmc_redfish_path_ok(long_path));
	}
}

static void test_pin_ok(void **state)
{
	const char *one = "sha256//FT7EWxPG9XphNBjSf0oHcF8dBu/xcqf73BH3EsVPaFQ=";

	(void)state;
	assert_true(hv_bmc_redfish_pin_ok(one));
	assert_true(hv_bmc_redfish_pin_ok(
	    "sha256//FT7EWxPG9XphNBjSf0oHcF8dBu/xcqf73BH3EsVPaFQ=;"
	    "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	assert_false(hv_bmc_redfish_pin_ok(NULL));
	assert_false(hv_bmc_redfish_pin_ok(""));
	assert_false(hv_bmc_redfish_pin_ok(one + 8)); /* no sha256// */
	assert_false(hv_bmc_redfish_pin_ok("sha256//short="));
	assert_false(hv_bmc_redfish_pin_ok(
	    "sha256//FT7EWxPG9XphNBjSf0oHcF8dBu/xcqf73BH3EsVPaFQ")); /* no '=' */
	assert_false(hv_bmc_redfish_pin_ok(
	    "sha256//FT7EWxPG9XphNBjSf0oHcF8dBu/xcqf73BH3EsVPaFQ=;")); /* trailing ; */
	assert_false(hv_bmc_redfish_pin_ok(
	    "sha256//FT7EWxPG9XphNBjSf0oHcF8dBu-xcqf73BH3EsVPaFQ=")); /* base64url */
	assert_false(hv_bmc_redfish_pin_ok("/etc/hvpeer/bmc.pem"));   /* curl would */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_thermal),     cmocka_unit_test(test_power),
	    cmocka_unit_test(test_power_state), cmocka_unit_test(test_error_text),
	    cmocka_unit_test(test_path_ok),     cmocka_unit_test(test_pin_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
