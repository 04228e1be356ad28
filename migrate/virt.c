/*
 * The libvirt hypervisor: the module hvpeerd opens when --libvirt-uri is set
 * (see hypervisor.h). Each call opens its own connection, so calls from
 * several threads (parallel migrations, the inventory refresh) never share
 * one.
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/err.h"
#include "hypervisor.h"
#include "inventory.h"
#include "placement.h"

/* libvirt's last error message on this thread. */
static const char *virt_error(void)
{
	virErrorPtr e = virGetLastError();

	return e != NULL && e->message != NULL ? e->message : "unknown libvirt error";
}

static void silent(void *data, virErrorPtr e)
{
	(void)data;
	(void)e;
}

static int virt_init(void)
{
	if (virInitialize() != 0)
		return HV_IO;
	virSetErrorFunc(NULL, silent);
	return HV_OK;
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static void fail(struct hv_outcome *o, const char *what)
{
	o->rc = HV_IO;
	snprintf(o->error, sizeof o->error, "%s: %s", what, virt_error());
}

static int virt_inventory(const char *uri, uint32_t guest_mem_mib, unsigned vcpu_ratio,
                          const char *shared, struct hv_inventory *inv, char *err,
                          size_t errlen)
{
	virConnectPtr c;
	virNodeInfo node;
	virDomainPtr *doms = NULL;
	int n, rv = HV_IO;

	memset(inv, 0, sizeof *inv);
	c = virConnectOpen(uri);
	if (c == NULL) {
		snprintf(err, errlen, "cannot reach the hypervisor (%s): %s", uri,
		         virt_error());
		return HV_IO;
	}
	if (virNodeGetInfo(c, &node) != 0) {
		snprintf(err, errlen, "libvirt: node info: %s", virt_error());
		goto out;
	}
	inv->vcpus_cap = node.cpus * (vcpu_ratio > 0 ? vcpu_ratio : 1);
	if (guest_mem_mib != 0)
		inv->mem_cap_mib = guest_mem_mib;
	else
		inv->mem_cap_mib =
		    node.memory / 1024 > 1024 ? (uint32_t)(node.memory / 1024 - 1024) : 0;

	n = virConnectListAllDomains(c, &doms, 0);
	if (n < 0) {
		snprintf(err, errlen, "libvirt: list domains: %s", virt_error());
		goto out;
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
	rv = HV_OK;
out:
	virConnectClose(c);
	return rv;
}

/* A watchdog for one migration: past the timeout it aborts the job (on its
 * own connection), and libvirt leaves the guest running on the source. */
struct watchdog {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, fired;
	unsigned timeout_s;
	const char *uri, *guest;
};

static void *watchdog_run(void *arg)
{
	struct watchdog *w = arg;
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += w->timeout_s;
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &until) != 0)
			break;
	if (!w->done) {
		virConnectPtr c = virConnectOpen(w->uri);
		virDomainPtr dom = c != NULL ? virDomainLookupByName(c, w->guest) : NULL;
		w->fired = true;
		if (dom != NULL) {
			virDomainAbortJob(dom);
			virDomainFree(dom);
		}
		if (c != NULL)
			virConnectClose(c);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The completed job's figures are on the destination. */
static void job_figures(const char *dst_uri, const char *guest, struct hv_outcome *o)
{
	virConnectPtr dst = virConnectOpen(dst_uri);
	virDomainPtr dom = dst != NULL ? virDomainLookupByName(dst, guest) : NULL;
	virTypedParameterPtr params = NULL;
	int nparams = 0, type;
	unsigned long long v;

	if (dom != NULL && virDomainGetJobStats(dom, &type, &params, &nparams,
	                                        VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
		if (virTypedParamsGetULLong(params, nparams, VIR_DOMAIN_JOB_DOWNTIME,
		                            &v) == 1)
			o->downtime_ms = v;
		if (virTypedParamsGetULLong(params, nparams, VIR_DOMAIN_JOB_TIME_ELAPSED,
		                            &v) == 1)
			o->elapsed_ms = v;
		if (virTypedParamsGetULLong(params, nparams,
		                            VIR_DOMAIN_JOB_DATA_PROCESSED, &v) == 1)
			o->bytes = v;
		virTypedParamsFree(params, nparams);
	}
	if (dom != NULL)
		virDomainFree(dom);
	if (dst != NULL)
		virConnectClose(dst);
}

static void virt_migrate(const struct hv_migration *m, struct hv_outcome *o)
{
	unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER |
	                 VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
	                 VIR_MIGRATE_AUTO_CONVERGE;
	struct watchdog w = {
	    .timeout_s = m->timeout_s, .uri = m->src_uri, .guest = m->guest};
	virConnectPtr src;
	virDomainPtr dom = NULL;
	pthread_condattr_t attr;
	pthread_t t;
	bool watching;
	int rv;

	memset(o, 0, sizeof *o);
	src = virConnectOpen(m->src_uri);
	if (src == NULL) {
		fail(o, "connecting to the source");
		return;
	}
	dom = virDomainLookupByName(src, m->guest);
	if (dom == NULL) {
		fail(o, "finding the guest");
		virConnectClose(src);
		return;
	}
	virDomainMigrateSetMaxDowntime(dom, m->downtime_ms, 0);
	pthread_mutex_init(&w.lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &attr);
	pthread_condattr_destroy(&attr);
	watching = pthread_create(&t, NULL, watchdog_run, &w) == 0;
	rv = virDomainMigrateToURI3(dom, m->dst_uri, NULL, 0, flags);
	if (rv != 0)
		fail(o, "live migration");
	pthread_mutex_lock(&w.lock);
	w.done = true;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	if (watching)
		pthread_join(t, NULL);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	if (rv != 0 && w.fired) {
		o->timed_out = true;
		snprintf(o->error, sizeof o->error,
		         "live migration: aborted after %u s (migrate-timeout): %s",
		         m->timeout_s, virt_error());
	}
	virDomainFree(dom);
	virConnectClose(src);
	if (rv == 0)
		job_figures(m->dst_uri, m->guest, o);
}

static void virt_park(const char *uri, const char *guest, int action, unsigned grace_s,
                      struct hv_outcome *o)
{
	virConnectPtr c = virConnectOpen(uri);
	virDomainPtr dom = c != NULL ? virDomainLookupByName(c, guest) : NULL;

	memset(o, 0, sizeof *o);
	if (dom == NULL) {
		fail(o, "finding the guest");
	} else if (action == HV_ACT_SAVE) {
		if (virDomainManagedSave(dom, 0) != 0)
			fail(o, "saving the guest");
	} else {
		int state = 0, reason;
		virDomainShutdown(dom);
		for (unsigned i = 0; i < grace_s * 10; i++) {
			if (virDomainGetState(dom, &state, &reason, 0) == 0 &&
			    state == VIR_DOMAIN_SHUTOFF)
				break;
			nap_ms(100);
		}
		if (state != VIR_DOMAIN_SHUTOFF && virDomainDestroy(dom) != 0)
			fail(o, "stopping the guest");
	}
	if (dom != NULL)
		virDomainFree(dom);
	if (c != NULL)
		virConnectClose(c);
}

static int virt_start(const char *uri, const char *guest, char *err, size_t errlen)
{
	virConnectPtr c = virConnectOpen(uri);
	virDomainPtr dom = c != NULL ? virDomainLookupByName(c, guest) : NULL;
	int rv = HV_OK;

	if (dom == NULL || virDomainCreate(dom) != 0) {
		snprintf(err, errlen, "%s", virt_error());
		rv = HV_IO;
	}
	if (dom != NULL)
		virDomainFree(dom);
	if (c != NULL)
		virConnectClose(c);
	return rv;
}

static int virt_ping(const char *uri, char *err, size_t errlen)
{
	virConnectPtr c = virConnectOpen(uri);
	int alive;

	if (c == NULL) {
		snprintf(err, errlen, "cannot reach the hypervisor (%s): %s", uri,
		         virt_error());
		return HV_IO;
	}
	alive = virConnectIsAlive(c);
	if (alive != 1)
		snprintf(err, errlen, "the hypervisor (%s) does not answer: %s", uri,
		         virt_error());
	virConnectClose(c);
	return alive == 1 ? HV_OK : HV_IO;
}

static int virt_guest_state(const char *uri, const char *guest, bool *present,
                            bool *running, char *err, size_t errlen)
{
	virConnectPtr c = virConnectOpen(uri);
	virDomainPtr dom;
	int state = 0, reason;

	*present = *running = false;
	if (c == NULL) {
		snprintf(err, errlen, "cannot reach the hypervisor (%s): %s", uri,
		         virt_error());
		return HV_IO;
	}
	dom = virDomainLookupByName(c, guest);
	if (dom != NULL) {
		*present = true;
		if (virDomainGetState(dom, &state, &reason, 0) == 0)
			*running = state == VIR_DOMAIN_RUNNING ||
			           state == VIR_DOMAIN_PAUSED ||
			           state == VIR_DOMAIN_BLOCKED;
		virDomainFree(dom);
	}
	virConnectClose(c);
	return HV_OK;
}

/* Compare one definition of the guest's CPU (flags 0: the running one,
 * VIR_DOMAIN_XML_INACTIVE: the one it boots with) with target t. */
static int cpu_compare(virDomainPtr dom, virConnectPtr t, unsigned flags, char *err,
                       size_t errlen)
{
	char *xml = virDomainGetXMLDesc(dom, flags), *cpu = NULL, type[16], arch[32];
	int r, rv = HV_IO;

	if (xml == NULL) {
		snprintf(err, errlen, "%s", virt_error());
		return HV_IO;
	}
	if (hv_inventory_cpu_xml(xml, &cpu, type, sizeof type, arch, sizeof arch) !=
	    HV_OK) {
		snprintf(err, errlen, "its domain XML does not parse");
	} else if (cpu == NULL) {
		rv = HV_OK; /* no model to compare: the hypervisor's default */
	} else {
		r = virConnectCompareHypervisorCPU(
		    t, NULL, arch[0] ? arch : NULL, NULL, type[0] ? type : NULL, cpu,
		    VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE);
		if (r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET) {
			rv = HV_OK;
		} else {
			virErrorPtr e = virGetLastError();
			rv = r == VIR_CPU_COMPARE_INCOMPATIBLE ||
			             (e != NULL && e->code == VIR_ERR_CPU_INCOMPATIBLE)
			         ? HV_INVAL
			         : HV_IO;
			snprintf(err, errlen, "%s", virt_error());
		}
	}
	free(cpu);
	free(xml);
	return rv;
}

static int virt_cpu_check(const char *uri, const char *guest, const char *target_uri,
                          char *err, size_t errlen)
{
	virConnectPtr c = NULL, t = NULL;
	virDomainPtr dom = NULL;
	char why[300];
	int rv = HV_IO;

	if ((c = virConnectOpen(uri)) == NULL) {
		snprintf(err, errlen, "cannot reach the hypervisor (%s): %s", uri,
		         virt_error());
		goto out;
	}
	if ((dom = virDomainLookupByName(c, guest)) == NULL) {
		snprintf(err, errlen, "guest %s: %s", guest, virt_error());
		goto out;
	}
	if ((t = virConnectOpen(target_uri)) == NULL) {
		snprintf(err, errlen, "cannot reach the hypervisor %s: %s", target_uri,
		         virt_error());
		goto out;
	}
	/* The CPU it runs with (the live migration), then the one it is
	 * defined with (a start there, should the target restart it). */
	rv = cpu_compare(dom, t, 0, why, sizeof why);
	if (rv != HV_OK) {
		snprintf(err, errlen, "its running CPU: %s", why);
		goto out;
	}
	rv = cpu_compare(dom, t, VIR_DOMAIN_XML_INACTIVE, why, sizeof why);
	if (rv != HV_OK)
		snprintf(err, errlen,
		         "the CPU it is defined with (it could not start there): %s",
		         why);
out:
	if (dom != NULL)
		virDomainFree(dom);
	if (t != NULL)
		virConnectClose(t);
	if (c != NULL)
		virConnectClose(c);
	return rv;
}

/* The one symbol hvpeerd looks up. */
const struct hv_hypervisor hv_virt_module = {
    .abi = HV_HYPERVISOR_ABI,
    .name = "libvirt",
    .init = virt_init,
    .inventory = virt_inventory,
    .migrate = virt_migrate,
    .park = virt_park,
    .start = virt_start,
    .ping = virt_ping,
    .guest_state = virt_guest_state,
    .cpu_check = virt_cpu_check,
};
