/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The hardware compatibility list (HCL): the storage controllers and NICs a
 * hypervisor version supports. A host whose RAID controller or NIC is not
 * on the list for the version it is about to boot does not start its cycle
 * (the runbook: every such part "must appear on the current HCL for the
 * specific hypervisor version").
 *
 * The list is a text file, one entry a line:
 *
 *     # VERSIONS  VENDOR:DEVICE  what it is (free text)
 *     1.*         8086:1572      Intel X710 10GbE
 *     *           1000:005f      Broadcom MegaRAID 9460
 *     2.0.*       15b3:*         any Mellanox NIC
 *
 * VERSIONS and VENDOR:DEVICE are shell patterns (fnmatch), hex digits in
 * lower case; '#' starts a comment. A part passes when one entry matches
 * both the target version and its vendor:device.
 *
 * Parts are read from sysfs (a PCI device directory's vendor, device and
 * class files); only mass-storage (class 01) and network (class 02)
 * controllers are checked.
 */
#ifndef HV_HCL_H
#define HV_HCL_H

#include <stddef.h>

#define HV_HCL_MAX_PARTS 256
#define HV_HCL_MAX_BYTES (1u << 20)

struct hv_hcl_part {
	char slot[32];  /* "0000:3b:00.0" */
	char id[16];    /* "1000:005f" */
	unsigned klass; /* 0x010400 */
};

/*
 * The storage and network controllers under dir (a sysfs
 * bus/pci/devices directory), sorted by slot, into parts[0..*n). HV_OK (an
 * empty or missing directory gives none), HV_IO with why.
 */
int hv_hcl_scan(const char *dir, struct hv_hcl_part *parts, unsigned max, unsigned *n,
                char *why, size_t len);

/*
 * Check parts against the list in text (the file's contents) for version.
 * HV_OK when every part has an entry; HV_INVAL naming the first that has
 * none (its slot, kind, id and class) or a line that does not parse (its
 * number).
 */
int hv_hcl_check(const char *text, const char *version, const struct hv_hcl_part *parts,
                 unsigned n, char *why, size_t len);

/* The list at path into *text (free it); HV_IO or HV_TOOBIG with why. */
int hv_hcl_read(const char *path, char **text, char *why, size_t len);

/* "RAID controller", "NVMe controller", "network controller", ... */
const char *hv_hcl_kind(unsigned klass);

#endif
