/*
 * The hardware compatibility list (patchfsm/hcl.c): scanning a sysfs-like
 * PCI tree for storage and network controllers, and checking them against
 * the list for a target version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../patchfsm/hcl.h"

static char root[] = "/tmp/hvpeer-hcl.XXXXXX";

static void put(const char *slot, const char *file, const char *value)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, slot);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", root, slot, file);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n", value);
	fclose(f);
}

static void device(const char *slot, const char *vendor, const char *dev,
                   const char *klass)
{
	put(slot, "vendor", vendor);
	put(slot, "device", dev);
	put(slot, "class", klass);
}

static int setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/hvpeer-hcl.XXXXXX");
	if (mkdtemp(root) == NULL)
		return -1;
	device("0000:3b:00.0", "0x1000", "0x005f", "0x010400"); /* RAID */
	device("0000:18:00.0", "0x8086", "0x1572", "0x020000"); /* NIC */
	device("0000:00:02.0", "0x8086", "0x3e92", "0x030000"); /* VGA: not checked */
	device("0000:00:14.0", "0x8086", "0xa36d", "0x0c0330"); /* USB: not checked */
	put("0000:00:1f.0", "class", "0x020000");               /* no vendor: skipped */
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_scan(void **state)
{
	struct hv_hcl_part parts[8];
	unsigned n = 99;
	char why[256] = "";

	(void)state;
	assert_int_equal(hv_hcl_scan(root, parts, 8, &n, why, sizeof why), HV_OK);
	assert_int_equal(n, 2);
	assert_string_equal(parts[0].slot, "0000:18:00.0"); /* by slot */
	assert_string_equal(parts[0].id, "8086:1572");
	assert_int_equal(parts[0].klass, 0x020000);
	assert_string_equal(parts[1].id, "1000:005f");
	assert_string_equal(hv_hcl_kind(parts[1].klass), "RAID controller");
	assert_string_equal(hv_hcl_kind(parts[0].klass), "Ethernet controller");
	/* too many for the room given */
	assert_int_equal(hv_hcl_scan(root, parts, 1, &n, why, sizeof why), HV_IO);
	/* no PCI bus: nothing to check */
	assert_int_equal(hv_hcl_scan("/nonexistent/pci", parts, 8, &n, why, sizeof why),
	                 HV_OK);
	assert_int_equal(n, 0);
}

static void test_check(void **state)
{
	struct hv_hcl_part parts[8];
	unsigned n;
	char why[256] = "";
	const char *list = "# versions  vendor:device  what\n"
	                   "1.*    8086:1572   Intel X710\n"
	                   "*      1000:005F   MegaRAID (upper case matches)\n"
	                   "\n"
	                   "2.0.*  15b3:*      any Mellanox\n";

	(void)state;
	assert_int_equal(hv_hcl_scan(root, parts, 8, &n, why, sizeof why), HV_OK);
	assert_int_equal(hv_hcl_check(list, "1.4.2", parts, n, why, sizeof why), HV_OK);
	/* 2.0.1: the X710 is listed for 1.* only */
	assert_int_equal(hv_hcl_check(list, "2.0.1", parts, n, why, sizeof why),
	                 HV_INVAL);
	assert_string_equal(why, "Ethernet controller 0000:18:00.0 (8086:1572, class "
	                         "020000) is not on the hardware compatibility list "
	                         "for 2.0.1");
	/* a wildcard device */
	assert_int_equal(
	    hv_hcl_check("* 8086:*\n* 1000:005f\n", "9", parts, n, why, sizeof why),
	    HV_OK);
	/* an empty list admits no part; no part passes any list */
	assert_int_equal(hv_hcl_check("", "1.0", parts, n, why, sizeof why), HV_INVAL);
	assert_int_equal(hv_hcl_check("", "1.0", parts, 0, why, sizeof why), HV_OK);
	/* a bad line is named */
	assert_int_equal(
	    hv_hcl_check("* 8086:1572\nbogus\n", "1.0", parts, n, why, sizeof why),
	    HV_INVAL);
	assert_string_equal(why, "line 2 does not parse: want VERSIONS VENDOR:DEVICE "
	                         "[what]");
	assert_int_equal(hv_hcl_check("* 80861572\n", "1.0", parts, n, why, sizeof why),
	                 HV_INVAL);
	assert_non_null(strstr(why, "line 1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
