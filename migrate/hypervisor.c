/* Opening the libvirt module (see hypervisor.h). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/path.h"
#include "hypervisor.h"

#ifndef HV_MODULE_DIR
#define HV_MODULE_DIR "/usr/local/lib/hvpeer"
#endif

const struct hv_hypervisor *hv_hypervisor_load(char *err, size_t errlen)
{
	char path[PATH_MAX];
	const char *dir = getenv("HVPEER_MODULE_DIR");
	const struct hv_hypervisor *h;
	void *mod;

	if (dir != NULL && dir[0] != '\0')
		snprintf(path, sizeof path, "%s/%s", dir, HV_VIRT_MODULE);
	else if (hv_exe_sibling(".libs/" HV_VIRT_MODULE, R_OK, path, sizeof path) != 0)
		snprintf(path, sizeof path, "%s/%s", HV_MODULE_DIR, HV_VIRT_MODULE);
	mod = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (mod == NULL) {
		snprintf(err, errlen, "cannot load the libvirt module: %s", dlerror());
		return NULL;
	}
	h = dlsym(mod, HV_VIRT_SYMBOL);
	if (h == NULL) {
		snprintf(err, errlen, "%s: no symbol %s", path, HV_VIRT_SYMBOL);
		dlclose(mod);
		return NULL;
	}
	if (h->abi != HV_HYPERVISOR_ABI) {
		snprintf(err, errlen, "%s: interface version %u, hvpeerd needs %u", path,
		         h->abi, HV_HYPERVISOR_ABI);
		dlclose(mod);
		return NULL;
	}
	if (h->init() != HV_OK) {
		snprintf(err, errlen, "%s: libvirt failed to initialise", path);
		dlclose(mod);
		return NULL;
	}
	return h;
}
