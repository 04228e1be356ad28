/* The pure part of the libvirt inventory: what a domain XML says about a
 * guest's service level, passthrough devices and local disks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../migrate/inventory.h"
#include "../../migrate/placement.h"

#define HEAD "<domain type='qemu'><name>g</name>"
#define META(level)                                                                      \
	"<metadata><hvpeer:guest xmlns:hvpeer='" HV_XMLNS_GUEST "'><hvpeer:level>" level \
	"</hvpeer:level></hvpeer:guest></metadata>"

static struct hv_cmd_guest parse(const char *xml, const char *shared, int want)
{
	struct hv_cmd_guest g;

	memset(&g, 0x55, sizeof g); /* every field must be set by the parser */
	assert_int_equal(hv_inventory_parse_xml(xml, shared, &g), want);
	return g;
}

static void test_level(void **state)
{
	struct hv_cmd_guest g;

	(void)state;
	g = parse(HEAD "<devices/></domain>", "", HV_OK);
	assert_int_equal(g.level, HV_LEVEL_PRODUCTION);
	assert_string_equal(g.hostdev, "");
	assert_string_equal(g.local_disk, "");
	g = parse(HEAD META("legacy") "</domain>", "", HV_OK);
	assert_int_equal(g.level, HV_LEVEL_LEGACY);
	g = parse(HEAD META("dev") "</domain>", "", HV_OK);
	assert_int_equal(g.level, HV_LEVEL_DEV);
	/* An unknown level is an error, and the guest counts as production. */
	g = parse(HEAD META("gold") "</domain>", "", HV_INVAL);
	assert_int_equal(g.level, HV_LEVEL_PRODUCTION);
	/* Another namespace's <level> is not ours. */
	g = parse(
	    HEAD "<metadata><x:guest xmlns:x='urn:other'><x:level>dev</x:level></x:guest>"
	         "</metadata></domain>",
	    "", HV_OK);
	assert_int_equal(g.level, HV_LEVEL_PRODUCTION);
}

static void test_hostdev(void **state)
{
	struct hv_cmd_guest g;

	(void)state;
	g = parse(HEAD
	          "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
	          "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>"
	          "</source></hostdev></devices></domain>",
	          "", HV_OK);
	assert_string_equal(g.hostdev, "0000:3b:00.0");
	g = parse(HEAD "<devices><hostdev mode='subsystem' type='usb'><source "
	               "startupPolicy='optional'>"
	               "<vendor id='0x1d6b'/><product "
	               "id='0x0002'/></source></hostdev></devices></domain>",
	          "", HV_OK);
	assert_string_equal(g.hostdev, "usb 1d6b:0002");
	g = parse(HEAD
	          "<devices><hostdev mode='subsystem' type='scsi'><source/></hostdev>"
	          "</devices></domain>",
	          "", HV_OK);
	assert_string_equal(g.hostdev, "scsi device");
}

static void test_local_disk(void **state)
{
	const char *disks =
	    HEAD "<devices>"
	         "<disk type='file' device='cdrom'><source file='/iso/d.iso'/></disk>"
	         "<disk type='network' device='disk'><source protocol='rbd' "
	         "name='p/x'/></disk>"
	         "<disk type='file' device='disk'><source "
	         "file='/srv/shared/vm/a.qcow2'/></disk>"
	         "<disk type='block' device='disk'><source dev='/dev/vg0/b'/></disk>"
	         "</devices></domain>";
	struct hv_cmd_guest g;

	(void)state;
	g = parse(disks, "", HV_OK);
	assert_string_equal(g.local_disk, "/srv/shared/vm/a.qcow2");
	g = parse(disks, "/srv/shared/", HV_OK);
	assert_string_equal(g.local_disk, "/dev/vg0/b");
	g = parse(disks, "/mnt/x,/srv/shared,/dev/vg0", HV_OK);
	assert_string_equal(g.local_disk, "");
	/* A prefix must end at a path component. */
	g = parse(disks, "/srv/sha,/dev/vg0", HV_OK);
	assert_string_equal(g.local_disk, "/srv/shared/vm/a.qcow2");
}

/* The CPU a guest asks for, to compare with a target's. */
static void test_cpu_xml(void **state)
{
	char *cpu = NULL, type[16], arch[32];

	(void)state;
	assert_int_equal(hv_inventory_cpu_xml(
	                     "<domain type='kvm'><os><type arch='x86_64'>hvm</type></os>"
	                     "<cpu mode='custom' match='exact'><model>Haswell</model>"
	                     "<feature policy='require' name='avx2'/></cpu></domain>",
	                     &cpu, type, sizeof type, arch, sizeof arch),
	                 HV_OK);
	assert_non_null(cpu);
	assert_non_null(strstr(cpu, "<cpu mode=\"custom\" match=\"exact\">"));
	assert_non_null(strstr(cpu, "name=\"avx2\""));
	assert_string_equal(type, "kvm");
	assert_string_equal(arch, "x86_64");
	free(cpu);
	/* host-passthrough and no <cpu> name no model to compare */
	assert_int_equal(hv_inventory_cpu_xml("<domain type='kvm'><cpu "
	                                      "mode='host-passthrough'/></domain>",
	                                      &cpu, type, sizeof type, arch, sizeof arch),
	                 HV_OK);
	assert_null(cpu);
	assert_int_equal(hv_inventory_cpu_xml("<domain type='qemu'/>", &cpu, type,
	                                      sizeof type, arch, sizeof arch),
	                 HV_OK);
	assert_null(cpu);
	assert_string_equal(type, "qemu");
	assert_int_equal(
	    hv_inventory_cpu_xml("<domain", &cpu, type, sizeof type, arch, sizeof arch),
	    HV_MALFORMED);
}

static void test_bad_xml(void **state)
{
	struct hv_cmd_guest g;

	(void)state;
	assert_int_equal(hv_inventory_parse_xml("<domain><unclosed>", "", &g),
	                 HV_MALFORMED);
	assert_int_equal(hv_inventory_parse_xml("", "", &g), HV_MALFORMED);
	/* No network access for external entities. */
	assert_int_equal(
	    hv_inventory_parse_xml("<!DOCTYPE d SYSTEM 'http://127.0.0.1:1/x.dtd'>"
	                           "<domain><devices/></domain>",
	                           "", &g),
	    HV_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_level),      cmocka_unit_test(test_hostdev),
	    cmocka_unit_test(test_local_disk), cmocka_unit_test(test_cpu_xml),
	    cmocka_unit_test(test_bad_xml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
