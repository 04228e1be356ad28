#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "../lib/err.h"
#include "inventory.h"
#include "placement.h"

const char *hv_virt_error(void)
{
	virErrorPtr e = virGetLastError();

	return e != NULL && e->message != NULL ? e->message : "unknown libvirt error";
}

static char *xpath_str(xmlXPathContextPtr ctx, const char *expr)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	char *s = NULL;

	if (o != NULL && o->type == XPATH_STRING && o->stringval != NULL &&
	    o->stringval[0] != '\0')
		s = strdup((const char *)o->stringval);
	xmlXPathFreeObject(o);
	return s;
}

/* True when path lies under one of the comma-separated directories. */
static bool under_shared(const char *path, const char *shared)
{
	const char *p = shared;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		while (n > 0 && p[n - 1] == '/')
			n--;
		if (n > 0 && strncmp(path, p, n) == 0 &&
		    (path[n] == '/' || path[n] == '\0'))
			return true;
		p = end != NULL ? end + 1 : NULL;
	}
	return false;
}

static void find_local_disk(xmlXPathContextPtr ctx, const char *shared,
                            struct hv_cmd_guest *g)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression(
	    (const xmlChar *)"/domain/devices/disk[@device='disk' or "
	                     "not(@device)][@type!='network']/source/@file|"
	                     "/domain/devices/disk[@device='disk' or "
	                     "not(@device)][@type!='network']/source/@dev",
	    ctx);

	if (o != NULL && o->nodesetval != NULL)
		for (int i = 0; i < o->nodesetval->nodeNr; i++) {
			xmlChar *path = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
			if (path != NULL && path[0] != '\0' &&
			    !under_shared((const char *)path,
			                  shared != NULL ? shared : "")) {
				snprintf(g->local_disk, sizeof g->local_disk, "%s",
				         (const char *)path);
				xmlFree(path);
				break;
			}
			xmlFree(path);
		}
	xmlXPathFreeObject(o);
}

int hv_inventory_parse_xml(const char *xml, const char *shared, struct hv_cmd_guest *g)
{
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;
	char *level, *v;
	int rv = HV_OK;

	g->level = HV_LEVEL_PRODUCTION;
	g->hostdev[0] = '\0';
	g->local_disk[0] = '\0';
	doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
	                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL)
		return HV_MALFORMED;
	ctx = xmlXPathNewContext(doc);
	if (ctx == NULL) {
		xmlFreeDoc(doc);
		return HV_NOMEM;
	}
	xmlXPathRegisterNs(ctx, (const xmlChar *)"hv", (const xmlChar *)HV_XMLNS_GUEST);
	level = xpath_str(ctx, "string(/domain/metadata/hv:guest/hv:level)");
	if (level != NULL) {
		int l = hv_level_parse(level);
		if (l < 0)
			rv = HV_INVAL;
		else
			g->level = l;
		free(level);
	}
	v = xpath_str(ctx,
	              "string(/domain/devices/hostdev[@type='pci']/source/address/@bus)");
	if (v != NULL) {
		char *dom = xpath_str(ctx, "string(/domain/devices/hostdev[@type='pci']/"
		                           "source/address/@domain)");
		char *slot = xpath_str(
		    ctx,
		    "string(/domain/devices/hostdev[@type='pci']/source/address/@slot)");
		char *fn = xpath_str(ctx, "string(/domain/devices/hostdev[@type='pci']/"
		                          "source/address/@function)");
		snprintf(g->hostdev, sizeof g->hostdev, "%04lx:%02lx:%02lx.%lx",
		         dom ? strtoul(dom, NULL, 0) : 0ul, strtoul(v, NULL, 0),
		         slot ? strtoul(slot, NULL, 0) : 0ul,
		         fn ? strtoul(fn, NULL, 0) : 0ul);
		free(dom);
		free(slot);
		free(fn);
		free(v);
	} else if ((v = xpath_str(ctx, "string(/domain/devices/hostdev[@type='usb']/"
	                               "source/vendor/@id)")) != NULL) {
		char *prod = xpath_str(
		    ctx,
		    "string(/domain/devices/hostdev[@type='usb']/source/product/@id)");
		snprintf(g->hostdev, sizeof g->hostdev, "usb %04lx:%04lx",
		         strtoul(v, NULL, 16), prod ? strtoul(prod, NULL, 16) : 0ul);
		free(prod);
		free(v);
	} else if ((v = xpath_str(ctx, "string(/domain/devices/hostdev/@type)")) !=
	           NULL) {
		snprintf(g->hostdev, sizeof g->hostdev, "%s device", v);
		free(v);
	}
	find_local_disk(ctx, shared, g);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return rv;
}

int hv_inventory_read(virConnectPtr conn, uint32_t guest_mem_mib, unsigned vcpu_ratio,
                      const char *shared, struct hv_inventory *inv, char *err,
                      size_t errlen)
{
	virNodeInfo node;
	virDomainPtr *doms = NULL;
	int n;

	memset(inv, 0, sizeof *inv);
	if (virNodeGetInfo(conn, &node) != 0) {
		snprintf(err, errlen, "libvirt: node info: %s", hv_virt_error());
		return HV_IO;
	}
	inv->vcpus_cap = node.cpus * (vcpu_ratio > 0 ? vcpu_ratio : 1);
	if (guest_mem_mib != 0)
		inv->mem_cap_mib = guest_mem_mib;
	else
		inv->mem_cap_mib =
		    node.memory / 1024 > 1024 ? (uint32_t)(node.memory / 1024 - 1024) : 0;

	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0) {
		snprintf(err, errlen, "libvirt: list domains: %s", hv_virt_error());
		return HV_IO;
	}
	for (int i = 0; i < n; i++) {
		struct hv_cmd_guest *g;
		virDomainInfo info;
		const char *name = virDomainGetName(doms[i]);
		char *xml;
		int persistent = virDomainIsPersistent(doms[i]);

		if (inv->n_guests == HV_MAX_GUESTS || name == NULL ||
		    !hv_name_valid(name) || virDomainGetInfo(doms[i], &info) != 0) {
			if (inv->n_guests == HV_MAX_GUESTS)
				inv->truncated = true;
			continue;
		}
		g = &inv->guests[inv->n_guests++];
		snprintf(g->name, sizeof g->name, "%s", name);
		g->mem_mib = (uint32_t)(info.maxMem / 1024);
		g->vcpus = info.nrVirtCpu;
		g->running = info.state == VIR_DOMAIN_RUNNING ||
		             info.state == VIR_DOMAIN_PAUSED ||
		             info.state == VIR_DOMAIN_BLOCKED;
		g->persistent = persistent == 1;
		xml = virDomainGetXMLDesc(doms[i],
		                          persistent == 1 ? VIR_DOMAIN_XML_INACTIVE : 0);
		if (xml != NULL) {
			hv_inventory_parse_xml(xml, shared, g);
			free(xml);
		}
	}
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
	return HV_OK;
}
