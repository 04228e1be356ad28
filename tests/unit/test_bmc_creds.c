/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * BMC credentials files (bmc/bmc.c: hv_bmc_creds_load) and the pure helpers
 * of bmc.h: which section an address picks, every refusal of a bad key or
 * value, the permission and owner checks (chmod 600, root or the caller),
 * and that no message ever carries a password. Plus address splitting,
 * action names, sensor states, and hv_bmc_open's driver selection (none,
 * ipmi and redfish without talking to a BMC, their settings checked).
 *
 * Every test works in a fresh directory under $TMPDIR (or /tmp), removed at
 * the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../bmc/bmc.h"
#include "../../lib/err.h"

/* A password that no message may ever show. */
#define SECRET "Zq7-secret-Zq7"

struct fixture {
	char dir[PATH_MAX];      /* $TMPDIR (or /tmp)/hvbmc-XXXXXX */
	char path[PATH_MAX + 8]; /* dir/creds */
	struct hv_bmc_creds c;
	char err[1024];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "%s/hvbmc-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/creds", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Write the credentials file anew (a 0400 one cannot be rewritten by a
 * non-root owner) with the given mode. */
static void put(struct fixture *f, mode_t mode, const char *text)
{
	int fd;

	unlink(f->path);
	fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static int load(struct fixture *f, const char *address)
{
	f->err[0] = '\0';
	return hv_bmc_creds_load(f->path, address, &f->c, f->err, sizeof f->err);
}

/* Refused with HV_INVAL, a message holding want, no password, and *out
 * cleared. */
static void refused(struct fixture *f, const char *address, const char *want)
{
	assert_int_equal(load(f, address), HV_INVAL);
	if (strstr(f->err, want) == NULL)
		fail_msg("message '%s' lacks '%s'", f->err, want);
	assert_null(strstr(f->err, SECRET));
	assert_string_equal(f->c.password, "");
	assert_string_equal(f->c.user, "");
}

/* ---- sections ----------------------------------------------------------- */

static const char *const three = "# BMCs of the rack\n"
                                 "[default]\n"
                                 "user = dflt\n"
                                 "password = " SECRET "\n"
                                 "\n"
                                 "[10.0.0.21]\n"
                                 "user = host21\n"
                                 "password = pw21\n"
                                 "cipher-suite = 3\n"
                                 "privilege = operator\n"
                                 "\n"
                                 "[10.0.0.21:6230]\n"
                                 "user = port6230\n"
                                 "password = pw6230 ; a comment\n"
                                 "\n"
                                 "[BMC-B.example]\n"
                                 "user=b\n"
                                 "password=  spaced out  \n";

static void test_section_choice(void **state)
{
	struct fixture *f = *state;

	put(f, 0600, three);
	/* host:port beats host beats default. */
	assert_int_equal(load(f, "10.0.0.21:6230"), HV_OK);
	assert_string_equal(f->c.user, "port6230");
	assert_string_equal(f->c.password, "pw6230");
	assert_string_equal(f->c.section, "10.0.0.21:6230");
	assert_int_equal(f->c.cipher_suite, 0);
	assert_string_equal(f->c.privilege, "");

	assert_int_equal(load(f, "10.0.0.21"), HV_OK);
	assert_string_equal(f->c.user, "host21");
	assert_string_equal(f->c.password, "pw21");
	assert_int_equal(f->c.cipher_suite, 3);
	assert_string_equal(f->c.privilege, "operator");

	/* Another port of the same host: [host]. */
	assert_int_equal(load(f, "10.0.0.21:623"), HV_OK);
	assert_string_equal(f->c.user, "host21");

	/* Unknown host: [default], whole (nothing of [10.0.0.21]). */
	assert_int_equal(load(f, "10.0.0.99"), HV_OK);
	assert_string_equal(f->c.user, "dflt");
	assert_string_equal(f->c.password, SECRET);
	assert_string_equal(f->c.section, "default");
	assert_int_equal(f->c.cipher_suite, 0);

	/* Host names are case-blind; inih trims around values. */
	assert_int_equal(load(f, "bmc-b.EXAMPLE:623"), HV_OK);
	assert_string_equal(f->c.user, "b");
	assert_string_equal(f->c.password, "spaced out");

	hv_bmc_creds_clear(&f->c);
	assert_string_equal(f->c.password, "");
}

static void test_ipv6_sections(void **state)
{
	struct fixture *f = *state;

	/* [host] only: [fd00::22:6230] is the address fd00::22:6230, not
	 * fd00::22 port 6230. */
	put(f, 0600,
	    "[fd00::21]\nuser = v6\npassword = pw\n"
	    "[fd00::22:6230]\nuser = other\npassword = pw\n"
	    "[default]\nuser = dflt\npassword = pw\n");
	assert_int_equal(load(f, "[fd00::21]:623"), HV_OK);
	assert_string_equal(f->c.user, "v6");
	assert_int_equal(load(f, "fd00::21"), HV_OK);
	assert_string_equal(f->c.user, "v6");
	assert_int_equal(load(f, "[fd00::22]:6230"), HV_OK);
	assert_string_equal(f->c.user, "dflt");
	assert_int_equal(load(f, "fd00::22:6230"), HV_OK);
	assert_string_equal(f->c.user, "other");
}

static void test_null_user(void **state)
{
	struct fixture *f = *state;

	/* IPMI's anonymous user: allowed, but the key must be there. */
	put(f, 0600, "[default]\nuser =\npassword = x\n");
	assert_int_equal(load(f, "h"), HV_OK);
	assert_string_equal(f->c.user, "");
	assert_string_equal(f->c.password, "x");
}

static void test_no_section(void **state)
{
	struct fixture *f = *state;

	put(f, 0600, "[other]\nuser = u\npassword = " SECRET "\n");
	refused(f, "10.1.1.1:623", "no section [10.1.1.1:623], [10.1.1.1] nor [default]");
	refused(f, "10.1.1.1", "no section [10.1.1.1] nor [default]");
	put(f, 0600, "");
	refused(f, "h", "nor [default]");
}

static void test_incomplete_section(void **state)
{
	struct fixture *f = *state;

	/* A section is used whole: no password from [default]. */
	put(f, 0600, "[default]\nuser = u\npassword = " SECRET "\n[h]\nuser = x\n");
	refused(f, "h", "[h] has no password");
	put(f, 0600, "[h]\npassword = " SECRET "\n");
	refused(f, "h", "[h] has no user");
}

/* ---- keys and values ---------------------------------------------------- */

static void test_bad_keys(void **state)
{
	struct fixture *f = *state;

	put(f, 0600, "[default]\nuser = u\npasswd = " SECRET "\n");
	refused(f, "h", "creds:3: unknown key 'passwd' in [default]");
	put(f, 0600, "user = u\n[default]\npassword = " SECRET "\n");
	refused(f, "h", ":1: 'user' outside any section");
	put(f, 0600,
	    "[default]\nuser = u\npassword = " SECRET "\npassword = " SECRET "\n");
	refused(f, "h", ":4: 'password' given twice in [default]");
	/* A continuation line (inih multi-line) counts as a second value. */
	put(f, 0600, "[default]\nuser = u\npassword = " SECRET "\n  more\n");
	refused(f, "h", "given twice");
	/* The same section twice. */
	put(f, 0600, "[h]\nuser = u\npassword = a\n[x]\nuser = y\n[h]\nuser = v\n");
	refused(f, "h", ":7: 'user' given twice in [h]");
	put(f, 0600, "[default]\nthis is not ini\n");
	refused(f, "h", ":2: syntax error");
}

static void test_other_sections_checked(void **state)
{
	struct fixture *f = *state;

	/* A typo in another BMC's section fails every host, at once. */
	put(f, 0600,
	    "[h]\nuser = u\npassword = p\n[g]\nuser = u\npassword = " SECRET
	    "\ncipher = 3\n");
	refused(f, "h", "unknown key 'cipher' in [g]");
	put(f, 0600, "[g]\ncipher-suite = 0\n[h]\nuser = u\npassword = p\n");
	refused(f, "h", "cipher-suite 0 in [g]");
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;
	char text[512], longpw[200];

	put(f, 0600, "[h]\nuser = u\npassword =\n");
	refused(f, "h", "empty password in [h]");
	put(f, 0600, "[h]\nuser = u\npassword = p\ncipher-suite = 0\n");
	refused(f, "h", "cipher-suite 0 in [h] authenticates nobody");
	put(f, 0600, "[h]\nuser = u\npassword = p\ncipher-suite = 4\n");
	refused(f, "h", "cipher-suite 4 in [h] is not an IPMI cipher suite");
	put(f, 0600, "[h]\nuser = u\npassword = p\ncipher-suite = 17x\n");
	refused(f, "h", "cipher-suite in [h] is not a number");
	put(f, 0600, "[h]\nuser = u\npassword = p\ncipher-suite = -3\n");
	refused(f, "h", "not a number");
	put(f, 0600, "[h]\nuser = u\npassword = p\nprivilege = user\n");
	refused(f, "h", "privilege in [h] must be admin or operator");
	/* Every cipher suite libfreeipmi speaks is taken. */
	for (unsigned cs = 1; cs <= 17; cs++) {
		bool ok =
		    (cs <= 3) || (cs >= 6 && cs <= 8) || cs == 11 || cs == 12 || cs >= 15;
		snprintf(text, sizeof text,
		         "[h]\nuser = u\npassword = p\ncipher-suite = %u\n", cs);
		put(f, 0600, text);
		assert_int_equal(load(f, "h"), ok ? HV_OK : HV_INVAL);
		if (ok)
			assert_int_equal(f->c.cipher_suite, cs);
	}
	/* Too long: refused without the value. */
	memset(longpw, 'p', sizeof longpw - 1);
	longpw[sizeof longpw - 1] = '\0';
	snprintf(text, sizeof text, "[h]\nuser = u\npassword = %.150s\n", longpw);
	put(f, 0600, text);
	refused(f, "h", "password in [h] is longer than 127 bytes");
	assert_null(strstr(f->err, "pppppppp"));
	snprintf(text, sizeof text, "[h]\nuser = %.70s\npassword = p\n", longpw);
	put(f, 0600, text);
	refused(f, "h", "user in [h] is longer than 63 bytes");
}

/* ---- the file ----------------------------------------------------------- */

static void test_permissions(void **state)
{
	struct fixture *f = *state;
	static const mode_t bad[] = {0644, 0640, 0604, 0660, 0606,
	                             0620, 0602, 0610, 0601};
	char want[PATH_MAX + 64];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		put(f, bad[i], three);
		snprintf(want, sizeof want, "mode %04o lets group or others",
		         (unsigned)bad[i]);
		refused(f, "10.0.0.21", want);
		snprintf(want, sizeof want, "run chmod 600 %s", f->path);
		refused(f, "10.0.0.21", want);
	}
	put(f, 0644, three);
	refused(f, "h", "lets group or others read it");
	put(f, 0602, three);
	refused(f, "h", "lets group or others change it");
	/* Owner-only modes are fine. */
	put(f, 0400, three);
	assert_int_equal(load(f, "10.0.0.21"), HV_OK);
	put(f, 0600, three);
	assert_int_equal(load(f, "10.0.0.21"), HV_OK);
}

static void test_owner(void **state)
{
	struct fixture *f = *state;

	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	put(f, 0600, three);
	assert_int_equal(chown(f->path, 4242, 4242), 0);
	refused(f, "10.0.0.21", "owned by uid 4242, not by root");
	refused(f, "10.0.0.21", "chown root");
	assert_int_equal(chown(f->path, 0, 0), 0);
	assert_int_equal(load(f, "10.0.0.21"), HV_OK);
}

static void test_not_a_file(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "h"), HV_IO); /* missing */
	assert_non_null(strstr(f->err, "cannot open"));
	assert_int_equal(mkdir(f->path, 0700), 0);
	refused(f, "h", "not a regular file");
	assert_int_equal(rmdir(f->path), 0);
	assert_int_equal(hv_bmc_creds_load("", "h", &f->c, f->err, sizeof f->err),
	                 HV_INVAL);
	assert_non_null(strstr(f->err, "no BMC credentials file given"));
	assert_int_equal(hv_bmc_creds_load(NULL, "h", &f->c, f->err, sizeof f->err),
	                 HV_INVAL);
	put(f, 0600, three);
	refused(f, "", "no BMC address");
	refused(f, "h:0", "the port must be a number");
}

/* ---- helpers ------------------------------------------------------------ */

static void test_address_split(void **state)
{
	static const struct {
		const char *in, *host;
		unsigned port;
	} ok[] = {
	    {"10.0.0.1", "10.0.0.1", 0},
	    {"10.0.0.1:623", "10.0.0.1", 623},
	    {"bmc.example:6230", "bmc.example", 6230},
	    {"fd00::1", "fd00::1", 0},
	    {"[fd00::1]", "fd00::1", 0},
	    {"[fd00::1]:65535", "fd00::1", 65535},
	};
	static const char *const bad[] = {
	    "",     ":623",     "h:",     "h:0",        "h:65536", "h:12x",
	    "h:+1", "[fd00::1", "[]:623", "[fd00::1]x", "h: 1",
	};
	char host[HV_BMC_ADDRESS_MAX], err[256], big[HV_BMC_ADDRESS_MAX + 2];
	unsigned port;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(hv_bmc_address_split(ok[i].in, host, sizeof host, &port,
		                                      err, sizeof err),
		                 HV_OK);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (hv_bmc_address_split(bad[i], host, sizeof host, &port, err,
		                         sizeof err) != HV_INVAL)
			fail_msg("address '%s' accepted", bad[i]);
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(
	    hv_bmc_address_split(big, host, sizeof host, &port, err, sizeof err),
	    HV_INVAL);
}

static void test_names(void **state)
{
	static const char *const names[] = {"on", "off", "cycle", "reset", "soft"};

	(void)state;
	for (int i = 0; i < HV__BMC_NACTION; i++) {
		assert_int_equal(hv_bmc_action_parse(names[i]), i);
		assert_string_equal(hv_bmc_action_name(i), names[i]);
	}
	assert_int_equal(hv_bmc_action_parse("reboot"), -1);
	assert_int_equal(hv_bmc_action_parse(NULL), -1);
	assert_string_equal(hv_bmc_action_name(HV__BMC_NACTION), "?");
	assert_string_equal(hv_bmc_sensor_state_name(HV_BMC_SENSOR_OK), "ok");
	assert_string_equal(hv_bmc_sensor_state_name(HV_BMC_SENSOR_WARNING), "warning");
	assert_string_equal(hv_bmc_sensor_state_name(HV_BMC_SENSOR_CRITICAL), "critical");
	assert_string_equal(hv_bmc_sensor_state_name(HV_BMC_SENSOR_UNREADABLE),
	                    "unreadable");
}

static void test_sensor_eval(void **state)
{
	struct hv_bmc_sensor s = {.thresholds =
	                              HV_BMC_TH_UPPER_NONCRIT | HV_BMC_TH_UPPER_CRIT,
	                          .upper_noncrit = 80,
	                          .upper_crit = 90};

	(void)state;
	s.value = 45;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_OK);
	s.value = 80; /* at the threshold: asserted */
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_WARNING);
	s.value = 90;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_CRITICAL);
	s.value = -1000; /* no lower thresholds */
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_OK);

	s.thresholds = HV_BMC_TH_LOWER_NONCRIT | HV_BMC_TH_LOWER_CRIT |
	               HV_BMC_TH_UPPER_NONCRIT | HV_BMC_TH_UPPER_CRIT;
	s.lower_noncrit = 11.4;
	s.lower_crit = 10.8;
	s.upper_noncrit = 12.6;
	s.upper_crit = 13.2;
	s.value = 12.1;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_OK);
	s.value = 11.0;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_WARNING);
	s.value = 0;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_CRITICAL);
	s.value = 12.7;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_WARNING);

	/* Non-recoverable alone is critical. */
	s.thresholds = HV_BMC_TH_UPPER_NONREC | HV_BMC_TH_LOWER_NONREC;
	s.upper_nonrec = 100;
	s.lower_nonrec = 1;
	s.value = 100;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_CRITICAL);
	s.value = 1;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_CRITICAL);
	s.value = 50;
	assert_int_equal(hv_bmc_sensor_eval(&s), HV_BMC_SENSOR_OK);
}

static void test_open(void **state)
{
	struct hv_bmc b;
	struct hv_bmc_creds c = {.user = "admin", .password = SECRET};
	struct hv_bmc_opts o = {0};
	struct hv_bmc_sensor s[2];
	char err[512];
	unsigned n = 99;
	int on;

	(void)state;
	assert_int_equal(hv_bmc_init(err, sizeof err), HV_OK);
	/* none: no power control, no sensors, no error for sensors. */
	assert_int_equal(hv_bmc_open(&b, "none", "", NULL, NULL, err, sizeof err), HV_OK);
	assert_string_equal(b.kind, "none");
	assert_int_equal(b.power_status(&b, &on, err, sizeof err), HV_INVAL);
	assert_non_null(strstr(err, "no BMC configured"));
	assert_int_equal(b.power(&b, HV_BMC_CYCLE, err, sizeof err), HV_INVAL);
	assert_non_null(strstr(err, "cannot power cycle"));
	assert_int_equal(b.sensors(&b, s, 2, &n, err, sizeof err), HV_OK);
	assert_int_equal(n, 0);
	hv_bmc_close(&b);

	/* Unknown kinds. */
	assert_int_equal(hv_bmc_open(&b, "ilo", "h", &c, NULL, err, sizeof err),
	                 HV_INVAL);
	assert_non_null(strstr(err, "unknown BMC kind 'ilo': use ipmi, redfish or none"));
	hv_bmc_close(&b);

	/* redfish: settings checked at open, no request sent. */
	assert_int_equal(
	    hv_bmc_open(&b, "redfish", "127.0.0.1:8443", &c, NULL, err, sizeof err),
	    HV_OK);
	assert_string_equal(b.kind, "redfish");
	assert_string_equal(b.address, "127.0.0.1:8443");
	assert_non_null(b.power_status);
	assert_non_null(b.power);
	assert_non_null(b.sensors);
	hv_bmc_close(&b);
	assert_int_equal(
	    hv_bmc_open(&b, "redfish", "[fd00::21]", &c, &o, err, sizeof err), HV_OK);
	hv_bmc_close(&b);
	assert_int_equal(hv_bmc_open(&b, "redfish", "h", NULL, &o, err, sizeof err),
	                 HV_INVAL);
	assert_non_null(strstr(err, "no credentials"));
	hv_bmc_close(&b);
	assert_int_equal(
	    hv_bmc_open(&b, "redfish", "bmc/x@evil", &c, &o, err, sizeof err), HV_INVAL);
	assert_non_null(strstr(err, "neither a host name nor an IP address"));
	hv_bmc_close(&b);
	o.pin = "sha256//short=";
	assert_int_equal(hv_bmc_open(&b, "redfish", "h", &c, &o, err, sizeof err),
	                 HV_INVAL);
	assert_non_null(strstr(err, "is not sha256//BASE64"));
	hv_bmc_close(&b);
	o.pin = "sha256//FT7EWxPG9XphNBjSf0oHcF8dBu/xcqf73BH3EsVPaFQ=";
	assert_int_equal(hv_bmc_open(&b, "redfish", "h", &c, &o, err, sizeof err), HV_OK);
	hv_bmc_close(&b);
	o.pin = NULL;
	o.ca_file = "/nonexistent/hvpeer-ca.pem";
	assert_int_equal(hv_bmc_open(&b, "redfish", "h", &c, &o, err, sizeof err),
	                 HV_INVAL);
	assert_non_null(strstr(err, "CA file /nonexistent/hvpeer-ca.pem: No such file"));
	hv_bmc_close(&b);
	o.ca_file = NULL;
	o.timeout_ms = 50;
	assert_int_equal(hv_bmc_open(&b, "redfish", "h", &c, &o, err, sizeof err),
	                 HV_INVAL);
	assert_non_null(strstr(err, "timeout 50 ms is too short"));
	hv_bmc_close(&b);
	o.timeout_ms = 0;
	{
		struct hv_bmc_creds nouser = {.password = SECRET};

		assert_int_equal(
		    hv_bmc_open(&b, "redfish", "h", &nouser, &o, err, sizeof err),
		    HV_INVAL);
		assert_non_null(strstr(err, "no user"));
		assert_null(strstr(err, SECRET));
		hv_bmc_close(&b);
	}

	/* ipmi: settings checked at open, no packet sent. */
	assert_int_equal(
	    hv_bmc_open(&b, "ipmi", "127.0.0.1:6230", &c, &o, err, sizeof err), HV_OK);
	assert_string_equal(b.kind, "ipmi");
	assert_string_equal(b.address, "127.0.0.1:6230");
	hv_bmc_close(&b);
	assert_int_equal(hv_bmc_open(&b, "ipmi", "", &c, &o, err, sizeof err), HV_INVAL);
	hv_bmc_close(&b);
	assert_int_equal(hv_bmc_open(&b, "ipmi", "h", NULL, &o, err, sizeof err),
	                 HV_INVAL);
	assert_non_null(strstr(err, "no credentials"));
	hv_bmc_close(&b);
	o.workarounds = "opensesspriv, bogus";
	assert_int_equal(hv_bmc_open(&b, "ipmi", "h", &c, &o, err, sizeof err), HV_INVAL);
	assert_non_null(strstr(err, "unknown IPMI workaround 'bogus'"));
	hv_bmc_close(&b);
	o.workarounds = "opensesspriv,authcap";
	o.cipher_suite = 5;
	assert_int_equal(hv_bmc_open(&b, "ipmi", "h", &c, &o, err, sizeof err), HV_INVAL);
	assert_non_null(strstr(err, "cipher suite 5"));
	hv_bmc_close(&b);
	o.cipher_suite = 0;
	snprintf(c.password, sizeof c.password, "%s", "012345678901234567890"); /* 21 */
	assert_int_equal(hv_bmc_open(&b, "ipmi", "h", &c, &o, err, sizeof err), HV_INVAL);
	assert_non_null(strstr(err, "longer than IPMI 2.0's 20 bytes"));
	assert_null(strstr(err, "0123456789"));
	hv_bmc_close(&b);
	hv_bmc_close(&b); /* twice is harmless */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_section_choice),
	    T(test_ipv6_sections),
	    T(test_null_user),
	    T(test_no_section),
	    T(test_incomplete_section),
	    T(test_bad_keys),
	    T(test_other_sections_checked),
	    T(test_bad_values),
	    T(test_permissions),
	    T(test_owner),
	    T(test_not_a_file),
	    cmocka_unit_test(test_address_split),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_sensor_eval),
	    cmocka_unit_test(test_open),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
