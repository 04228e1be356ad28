#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "inventory.h"
#include "placement.h"

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

/* Parse a domain XML (no network, no messages) and make its XPath context. */
static int open_xml(const char *xml, xmlDocPtr *doc, xmlXPathContextPtr *ctx)
{
	*doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (*doc == NULL)
		return HV_MALFORMED;
	*ctx = xmlXPathNewContext(*doc);
	if (*ctx == NULL) {
		xmlFreeDoc(*doc);
		return HV_NOMEM;
	}
	return HV_OK;
}

int hv_inventory_cpu_xml(const char *xml, char **cpu, char *virttype, size_t vlen,
                         char *arch, size_t alen)
{
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;
	xmlXPathObjectPtr o;
	char *v;
	int rv = HV_OK;

	*cpu = NULL;
	virttype[0] = arch[0] = '\0';
	if ((rv = open_xml(xml, &doc, &ctx)) != HV_OK)
		return rv;
	if ((v = xpath_str(ctx, "string(/domain/@type)")) != NULL) {
		snprintf(virttype, vlen, "%s", v);
		free(v);
	}
	if ((v = xpath_str(ctx, "string(/domain/os/type/@arch)")) != NULL) {
		snprintf(arch, alen, "%s", v);
		free(v);
	}
	v = xpath_str(ctx, "string(/domain/cpu/@mode)");
	o = xmlXPathEvalExpression((const xmlChar *)"/domain/cpu", ctx);
	if (o != NULL && o->nodesetval != NULL && o->nodesetval->nodeNr > 0 &&
	    (v == NULL ||
	     (strcmp(v, "host-passthrough") != 0 && strcmp(v, "maximum") != 0))) {
		xmlBufferPtr b = xmlBufferCreate();
		if (b == NULL ||
		    xmlNodeDump(b, doc, o->nodesetval->nodeTab[0], 0, 0) < 0 ||
		    (*cpu = strdup((const char *)xmlBufferContent(b))) == NULL)
			rv = HV_NOMEM;
		if (b != NULL)
			xmlBufferFree(b);
	}
	free(v);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return rv;
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
	if ((rv = open_xml(xml, &doc, &ctx)) != HV_OK)
		return rv;
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
