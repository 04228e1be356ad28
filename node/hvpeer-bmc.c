/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * hvpeer-bmc: drive one BMC through bmc/bmc.h. hvpeerd runs it for
 * `hvpeer bmc ...` (so libfreeipmi, libgcrypt and libcurl stay out of the
 * daemon); tests/bmc/ipmi-sim.sh, tests/bmc/redfish.sh and
 * tests/bmc/bmcsim.sh use it, and so can people.
 *
 *   hvpeer-bmc -c CREDS [-k ipmi|redfish|none] [-C SUITE] [-t MS] [-W LIST]
 *             [--ca FILE] [--pin sha256//BASE64] [-j] [-r N] ADDRESS CMD
 *
 * CMD: status, on, off, cycle, reset, soft, sensors; -r runs it N times on
 * one handle (the ipmi driver fetches the SDR once, the redfish driver
 * finds the system and chassis once). -C and -W are ipmi's; --ca (a PEM
 * file of the CAs that sign the BMC's certificate, instead of the
 * system's) and --pin (the SHA-256 of the BMC's public key, which alone
 * trusts a self-signed certificate) are redfish's (bmc.h: struct
 * hv_bmc_opts). Every option has a long name. Credentials come from the
 * file CREDS only (bmc.h: hv_bmc_creds_load), never from the command
 * line. Output is text, or one JSON object with -j. Exit status: 0 done,
 * 1 the BMC call or the credentials failed (the message on stderr, and in
 * the JSON as "error"/"message"), 2 usage.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bmc/bmc.h"
#include "../lib/err.h"

#define SENSORS_MAX 256

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: hvpeer-bmc -c CREDS [-k ipmi|redfish|none] [-C CIPHER-SUITE] "
	        "[-t TIMEOUT-MS]\n"
	        "                  [-W WORKAROUNDS] [--ca FILE] [--pin sha256//BASE64] "
	        "[-j] [-r REPEAT]\n"
	        "                  ADDRESS status|on|off|cycle|reset|soft|sensors\n"
	        "  -c, --creds FILE         root-only credentials file (user, "
	        "password)\n"
	        "  -k, --kind KIND          ipmi (default), redfish or none\n"
	        "  -C, --cipher-suite N     ipmi: RMCP+ cipher suite (default: the "
	        "file's, else 17)\n"
	        "  -t, --timeout MS         each exchange with the BMC (default "
	        "5000)\n"
	        "  -W, --workarounds LIST   ipmi: FreeIPMI workarounds, e.g. "
	        "opensesspriv\n"
	        "      --ca FILE            redfish: PEM CA file the BMC's certificate "
	        "must chain to\n"
	        "                           (instead of the system's CAs)\n"
	        "      --pin sha256//BASE64 redfish: the SHA-256 of the BMC's public "
	        "key; alone it\n"
	        "                           trusts a self-signed certificate\n"
	        "  -j, --json               one JSON object on stdout\n"
	        "  -r, --repeat N           run CMD N times on one handle (1-1000)\n"
	        "  -h, --help               this help\n"
	        "ADDRESS is host[:port]: UDP 623 (ipmi) or TCP 443 (redfish) by "
	        "default.\n");
}

enum { OPT_CA = 256, OPT_PIN };

static const struct option longopts[] = {
    {"creds", required_argument, NULL, 'c'},
    {"kind", required_argument, NULL, 'k'},
    {"cipher-suite", required_argument, NULL, 'C'},
    {"timeout", required_argument, NULL, 't'},
    {"workarounds", required_argument, NULL, 'W'},
    {"ca", required_argument, NULL, OPT_CA},
    {"pin", required_argument, NULL, OPT_PIN},
    {"json", no_argument, NULL, 'j'},
    {"repeat", required_argument, NULL, 'r'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(
	                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int fail(int json, int code, const char *msg)
{
	struct json_object *o;

	fprintf(stderr, "hvpeer-bmc: %s: %s\n", hv_errname(code), msg);
	if (json) {
		o = json_object_new_object();
		json_object_object_add(o, "error",
		                       json_object_new_string(hv_errname(code)));
		json_object_object_add(o, "message", json_object_new_string(msg));
		print_json(o);
		json_object_put(o);
	}
	return 1;
}

/* A number as people write it (12.6, not 12.600000000000001). */
static struct json_object *number(double v)
{
	char text[32];

	snprintf(text, sizeof text, "%.10g", v);
	return json_object_new_double_s(v, text);
}

static struct json_object *sensor_json(const struct hv_bmc_sensor *s)
{
	static const struct {
		unsigned bit;
		const char *name;
		size_t off;
	} th[] = {
	    {HV_BMC_TH_LOWER_NONREC, "lower_nonrec",
	     offsetof(struct hv_bmc_sensor, lower_nonrec)},
	    {HV_BMC_TH_LOWER_CRIT, "lower_crit",
	     offsetof(struct hv_bmc_sensor, lower_crit)},
	    {HV_BMC_TH_LOWER_NONCRIT, "lower_noncrit",
	     offsetof(struct hv_bmc_sensor, lower_noncrit)},
	    {HV_BMC_TH_UPPER_NONCRIT, "upper_noncrit",
	     offsetof(struct hv_bmc_sensor, upper_noncrit)},
	    {HV_BMC_TH_UPPER_CRIT, "upper_crit",
	     offsetof(struct hv_bmc_sensor, upper_crit)},
	    {HV_BMC_TH_UPPER_NONREC, "upper_nonrec",
	     offsetof(struct hv_bmc_sensor, upper_nonrec)},
	};
	struct json_object *o = json_object_new_object(), *t = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "type", json_object_new_string(s->type));
	json_object_object_add(o, "unit", json_object_new_string(s->unit));
	json_object_object_add(
	    o, "state", json_object_new_string(hv_bmc_sensor_state_name(s->state)));
	json_object_object_add(
	    o, "value", s->state == HV_BMC_SENSOR_UNREADABLE ? NULL : number(s->value));
	for (size_t i = 0; i < sizeof th / sizeof th[0]; i++)
		if (s->thresholds & th[i].bit)
			json_object_object_add(
			    t, th[i].name,
			    number(*(const double *)(const void *)((const char *)s +
			                                           th[i].off)));
	json_object_object_add(o, "thresholds", t);
	return o;
}

static int run(struct hv_bmc *b, const char *cmd, int json)
{
	struct hv_bmc_sensor *sv;
	struct json_object *o, *a;
	char err[1024] = "";
	unsigned n;
	int on, action, rv;

	if (strcmp(cmd, "status") == 0) {
		rv = b->power_status(b, &on, err, sizeof err);
		if (rv != HV_OK)
			return fail(json, rv, err);
		if (json) {
			o = json_object_new_object();
			json_object_object_add(o, "address",
			                       json_object_new_string(b->address));
			json_object_object_add(o, "power",
			                       json_object_new_string(on ? "on" : "off"));
			print_json(o);
			json_object_put(o);
		} else {
			printf("power %s\n", on ? "on" : "off");
		}
		return 0;
	}
	if (strcmp(cmd, "sensors") == 0) {
		sv = calloc(SENSORS_MAX, sizeof *sv);
		if (sv == NULL)
			return fail(json, HV_NOMEM, "out of memory");
		rv = b->sensors(b, sv, SENSORS_MAX, &n, err, sizeof err);
		if (rv != HV_OK) {
			free(sv);
			return fail(json, rv, err);
		}
		if (json) {
			o = json_object_new_object();
			a = json_object_new_array();
			for (unsigned i = 0; i < n; i++)
				json_object_array_add(a, sensor_json(&sv[i]));
			json_object_object_add(o, "address",
			                       json_object_new_string(b->address));
			json_object_object_add(o, "sensors", a);
			print_json(o);
			json_object_put(o);
		} else {
			for (unsigned i = 0; i < n; i++) {
				if (sv[i].state == HV_BMC_SENSOR_UNREADABLE)
					printf("%-16s %-12s %10s %-4s %s\n", sv[i].name,
					       sv[i].type, "-", sv[i].unit,
					       hv_bmc_sensor_state_name(sv[i].state));
				else
					printf("%-16s %-12s %10.2f %-4s %s\n", sv[i].name,
					       sv[i].type, sv[i].value, sv[i].unit,
					       hv_bmc_sensor_state_name(sv[i].state));
			}
		}
		free(sv);
		return 0;
	}
	action = hv_bmc_action_parse(cmd);
	if (action < 0) {
		usage(stderr);
		return 2;
	}
	rv = b->power(b, action, err, sizeof err);
	if (rv != HV_OK)
		return fail(json, rv, err);
	if (json) {
		o = json_object_new_object();
		json_object_object_add(o, "address", json_object_new_string(b->address));
		json_object_object_add(o, "action", json_object_new_string(cmd));
		json_object_object_add(o, "result", json_object_new_string("ok"));
		print_json(o);
		json_object_put(o);
	} else {
		printf("power %s: done\n", cmd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct hv_bmc_opts opts = {0};
	struct hv_bmc_creds creds;
	struct hv_bmc b;
	const char *credsfile = NULL, *kind = "ipmi";
	char err[1024] = "";
	int c, json = 0, rv;
	unsigned long repeat = 1;
	char *end;

	while ((c = getopt_long(argc, argv, "c:k:C:t:W:jr:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			credsfile = optarg;
			break;
		case 'k':
			kind = optarg;
			break;
		case 'C':
			opts.cipher_suite = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0') {
				usage(stderr);
				return 2;
			}
			break;
		case 't':
			opts.timeout_ms = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0') {
				usage(stderr);
				return 2;
			}
			break;
		case 'W':
			opts.workarounds = optarg;
			break;
		case OPT_CA:
			opts.ca_file = optarg;
			break;
		case OPT_PIN:
			opts.pin = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'r':
			repeat = strtoul(optarg, &end, 10);
			if (*end != '\0' || repeat == 0 || repeat > 1000) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || (credsfile == NULL && strcmp(kind, "none") != 0)) {
		usage(stderr);
		return 2;
	}
	rv = hv_bmc_init(err, sizeof err);
	if (rv != HV_OK)
		return fail(json, rv, err);
	memset(&creds, 0, sizeof creds);
	if (credsfile != NULL) {
		rv = hv_bmc_creds_load(credsfile, argv[optind], &creds, err, sizeof err);
		if (rv != HV_OK)
			return fail(json, rv, err);
	}
	rv = hv_bmc_open(&b, kind, argv[optind], &creds, &opts, err, sizeof err);
	hv_bmc_creds_clear(&creds); /* the handle keeps its own copy */
	if (rv != HV_OK) {
		hv_bmc_close(&b);
		return fail(json, rv, err);
	}
	do
		rv = run(&b, argv[optind + 1], json);
	while (rv == 0 && --repeat > 0);
	hv_bmc_close(&b);
	return rv;
}
