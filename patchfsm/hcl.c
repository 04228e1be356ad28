/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "hcl.h"

const char *hv_hcl_kind(unsigned klass)
{
	switch (klass >> 8) {
	case 0x0100:
		return "SCSI controller";
	case 0x0101:
		return "IDE controller";
	case 0x0104:
		return "RAID controller";
	case 0x0106:
		return "SATA controller";
	case 0x0107:
		return "SAS controller";
	case 0x0108:
		return "NVMe controller";
	case 0x0200:
		return "Ethernet controller";
	case 0x0207:
		return "InfiniBand controller";
	}
	return (klass >> 16) == 0x01 ? "storage controller" : "network controller";
}

/* The first line of dir/name/file as a number (sysfs: "0x1000\n"). */
static int read_hex(const char *dir, const char *name, const char *file, unsigned *out)
{
	char path[1024], buf[32], *end;
	FILE *f;
	unsigned long v;

	snprintf(path, sizeof path, "%s/%s/%s", dir, name, file);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fgets(buf, sizeof buf, f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	errno = 0;
	v = strtoul(buf, &end, 16);
	if (errno != 0 || end == buf || v > 0xffffff)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int by_slot(const void *a, const void *b)
{
	return strcmp(((const struct hv_hcl_part *)a)->slot,
	              ((const struct hv_hcl_part *)b)->slot);
}

int hv_hcl_scan(const char *dir, struct hv_hcl_part *parts, unsigned max, unsigned *n,
                char *why, size_t len)
{
	DIR *d;
	struct dirent *e;

	*n = 0;
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return HV_OK; /* no PCI bus here: nothing to check */
		return hv_errf(why, len, HV_IO, "cannot read %s: %s", dir,
		               strerror(errno));
	}
	while ((e = readdir(d)) != NULL) {
		unsigned vendor, device, klass;
		struct hv_hcl_part *p;
		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof parts[0].slot)
			continue;
		if (read_hex(dir, e->d_name, "class", &klass) != 0 ||
		    ((klass >> 16) != 0x01 && (klass >> 16) != 0x02))
			continue;
		if (read_hex(dir, e->d_name, "vendor", &vendor) != 0 ||
		    read_hex(dir, e->d_name, "device", &device) != 0)
			continue;
		if (*n == max) {
			closedir(d);
			return hv_errf(why, len, HV_IO,
			               "more than %u controllers under %s", max, dir);
		}
		p = &parts[(*n)++];
		snprintf(p->slot, sizeof p->slot, "%s", e->d_name);
		snprintf(p->id, sizeof p->id, "%04x:%04x", vendor & 0xffff,
		         device & 0xffff);
		p->klass = klass;
	}
	closedir(d);
	qsort(parts, *n, sizeof parts[0], by_slot);
	return HV_OK;
}

int hv_hcl_check(const char *text, const char *version, const struct hv_hcl_part *parts,
                 unsigned n, char *why, size_t len)
{
	char *copy = strdup(text), *save = NULL, *line;
	unsigned lineno = 0;
	/* each part: matched yet? */
	unsigned char *ok = calloc(n ? n : 1, 1);
	int rv = HV_OK;

	if (copy == NULL || ok == NULL) {
		free(copy);
		free(ok);
		return hv_errf(why, len, HV_NOMEM, "out of memory");
	}
	for (line = strtok_r(copy, "\n", &save); line != NULL && rv == HV_OK;
	     line = strtok_r(NULL, "\n", &save)) {
		char vers[128], id[64];
		char *hash = strchr(line, '#');
		lineno++;
		if (hash != NULL)
			*hash = '\0';
		if (line[strspn(line, " \t\r")] == '\0')
			continue;
		if (sscanf(line, "%127s %63s", vers, id) != 2 ||
		    strchr(id, ':') == NULL) {
			rv =
			    hv_errf(why, len, HV_INVAL,
			            "line %u does not parse: want VERSIONS VENDOR:DEVICE "
			            "[what]",
			            lineno);
			break;
		}
		if (fnmatch(vers, version, 0) != 0)
			continue;
		for (unsigned i = 0; i < n; i++)
			if (!ok[i] && fnmatch(id, parts[i].id, FNM_CASEFOLD) == 0)
				ok[i] = 1;
	}
	for (unsigned i = 0; i < n && rv == HV_OK; i++)
		if (!ok[i])
			rv = hv_errf(why, len, HV_INVAL,
			             "%s %s (%s, class %06x) is not on the hardware "
			             "compatibility list for %s",
			             hv_hcl_kind(parts[i].klass), parts[i].slot,
			             parts[i].id, parts[i].klass, version);
	free(copy);
	free(ok);
	return rv;
}

int hv_hcl_read(const char *path, char **text, char *why, size_t len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	*text = NULL;
	if (f == NULL)
		return hv_errf(why, len, HV_IO, "cannot read %s: %s", path,
		               strerror(errno));
	if ((buf = malloc(HV_HCL_MAX_BYTES + 1)) == NULL) {
		fclose(f);
		return hv_errf(why, len, HV_NOMEM, "out of memory");
	}
	n = fread(buf, 1, HV_HCL_MAX_BYTES + 1, f);
	if (ferror(f) || n > HV_HCL_MAX_BYTES) {
		int rv = ferror(f) ? hv_errf(why, len, HV_IO, "cannot read %s", path)
		                   : hv_errf(why, len, HV_TOOBIG, "%s is over %u bytes",
		                             path, HV_HCL_MAX_BYTES);
		fclose(f);
		free(buf);
		return rv;
	}
	fclose(f);
	buf[n] = '\0';
	*text = buf;
	return HV_OK;
}
