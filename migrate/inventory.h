/*
 * Inventory of the local hypervisor through libvirt: capacity and guests,
 * with each guest's service level (from the domain's <metadata> in the
 * hvpeer XML namespace, default production) and its first passthrough
 * device (<hostdev>), read from the persistent definition when there is one
 * so that an optional device that is absent right now still counts.
 *
 * The libvirt calls are in virt.c (the hvpeer-virt module); this part is
 * pure and the unit tests use it directly.
 */
#ifndef HV_INVENTORY_H
#define HV_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../consensus/codec.h"

#define HV_XMLNS_GUEST "https://hvpeer.org/xmlns/guest/1"

/*
 * Fill g->level, g->hostdev and g->local_disk from a domain XML (pure; for
 * tests). A disk is local unless it is a network disk or its file or device
 * lies under one of the comma-separated directories in `shared` (the
 * shared-storage setting); CD-ROMs and floppies do not count.
 */
int hv_inventory_parse_xml(const char *xml, const char *shared, struct hv_cmd_guest *g);

/*
 * The guest CPU a domain XML asks for, to compare with another host's
 * (pure; for tests): its <cpu> element as XML in *cpu (malloc()ed; NULL
 * when there is none, or for host-passthrough and maximum, which name no
 * model to compare), the domain type ("kvm", "qemu") and the arch.
 * HV_OK, HV_MALFORMED, HV_NOMEM.
 */
int hv_inventory_cpu_xml(const char *xml, char **cpu, char *virttype, size_t vlen,
                         char *arch, size_t alen);

#endif
