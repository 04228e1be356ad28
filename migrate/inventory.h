/*
 * Inventory of the local hypervisor through libvirt: capacity and guests,
 * with each guest's service level (from the domain's <metadata> in the
 * hvpeer XML namespace, default production) and its first passthrough
 * device (<hostdev>), read from the persistent definition when there is one
 * so that an optional device that is absent right now still counts.
 *
 * hv_inventory_read() blocks on libvirt: call it off the event loop.
 */
#ifndef HV_INVENTORY_H
#define HV_INVENTORY_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../consensus/codec.h"

#define HV_XMLNS_GUEST "https://hvpeer.org/xmlns/guest/1"

struct hv_inventory {
	uint32_t mem_cap_mib; /* memory for guests */
	uint32_t vcpus_cap;   /* host CPUs */
	unsigned n_guests;
	struct hv_cmd_guest guests[HV_MAX_GUESTS];
	bool truncated; /* more guests than HV_MAX_GUESTS */
};

/*
 * Read conn's guests. guest_mem_mib, when not 0, is the memory available for
 * guests (the configured figure); otherwise the host's memory less 1 GiB.
 * The vCPUs available are the host's CPUs times vcpu_ratio (overcommit).
 * Returns an HV_* code; on failure err says what libvirt said.
 */
int hv_inventory_read(virConnectPtr conn, uint32_t guest_mem_mib, unsigned vcpu_ratio,
                      const char *shared, struct hv_inventory *inv, char *err,
                      size_t errlen);

/*
 * Fill g->level, g->hostdev and g->local_disk from a domain XML (pure; for
 * tests). A disk is local unless it is a network disk or its file or device
 * lies under one of the comma-separated directories in `shared` (the
 * shared-storage setting); CD-ROMs and floppies do not count.
 */
int hv_inventory_parse_xml(const char *xml, const char *shared, struct hv_cmd_guest *g);

/* libvirt's last error message, or "unknown libvirt error". */
const char *hv_virt_error(void);

#endif
