/* Opening the libvirt module (see hypervisor.h). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/err.h"
#include "hypervisor.h"

#ifndef HV_MODULE_DIR
#define HV_MODULE_DIR "/usr/local/lib/hvpeer"
#endif

/* .libs/ next to the running program, when it is there (a build tree). */
static int build_tree_path(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(out, len, "%s/.libs/%s", exe, HV_VIRT_MODULE) >= len)
		return -1;
	return access(out, R_OK) == 0 ? 0 : -1;
}

const struct hv_hypervisor *hv_hypervisor_load(char *err, size_t errlen)
{
	char path[PATH_MAX];
	const char *dir = getenv("HVPEER_MODULE_DIR");
	const struct hv_hypervisor *h;
	void *mod;

	if (dir != NULL && dir[0] != '\0')
		snprintf(path, sizeof path, "%s/%s", dir, HV_VIRT_MODULE);
	else if (build_tree_path(path, sizeof path) != 0)
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
