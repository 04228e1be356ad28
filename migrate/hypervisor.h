/*
 * The local hypervisor, as the daemon sees it: a small table of blocking
 * calls. The libvirt implementation lives in a loadable module
 * (hvpeer-virt.so, migrate/virt.c) that hvpeerd opens only when a hypervisor
 * is configured (--libvirt-uri): a daemon without one never maps libvirt and
 * the libraries it pulls in (glib, gnutls, icu, ...), and tests can give the
 * node a table of their own.
 *
 * Every call blocks (a migration takes seconds): call them off the event
 * loop. Errors come back as HV_* codes with a message in the caller's
 * buffer, in the hypervisor's own words.
 */
#ifndef HV_HYPERVISOR_H
#define HV_HYPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../consensus/codec.h"

/* The interface version a module must carry (bumped on any change). */
#define HV_HYPERVISOR_ABI 3

/* The module's file name and the symbol it exports. */
#define HV_VIRT_MODULE "hvpeer-virt.so"
#define HV_VIRT_SYMBOL "hv_virt_module"

struct hv_inventory {
	uint32_t mem_cap_mib; /* memory for guests */
	uint32_t vcpus_cap;   /* host CPUs */
	unsigned n_guests;
	struct hv_cmd_guest guests[HV_MAX_GUESTS];
	bool truncated; /* more guests than HV_MAX_GUESTS */
};

/* One live migration (peer to peer, persistent on the destination,
 * undefined on the source, auto-converge). */
struct hv_migration {
	const char *guest;
	const char *src_uri, *dst_uri;
	unsigned downtime_ms; /* the stun-time limit given to QEMU */
	unsigned timeout_s;   /* past it the job is aborted; the guest stays */
};

/* What a side effect did: rc HV_OK or an error, libvirt's figures. */
struct hv_outcome {
	int rc;
	bool timed_out; /* a migration aborted by its timeout */
	uint64_t downtime_ms, elapsed_ms, bytes;
	char error[HV_ERROR_MAX + 1];
};

struct hv_hypervisor {
	unsigned abi; /* HV_HYPERVISOR_ABI */
	const char *name;

	/* Once per process, before any other call. */
	int (*init)(void);

	/* Capacity and guests of the hypervisor at uri. guest_mem_mib, when
	 * not 0, is the memory for guests; otherwise the host's less 1 GiB.
	 * vCPUs available = host CPUs x vcpu_ratio. shared: comma-separated
	 * directories on shared storage (disks elsewhere are local). */
	int (*inventory)(const char *uri, uint32_t guest_mem_mib, unsigned vcpu_ratio,
	                 const char *shared, struct hv_inventory *inv, char *err,
	                 size_t errlen);

	/* Live-migrate; on failure the guest keeps running on the source. */
	void (*migrate)(const struct hv_migration *m, struct hv_outcome *o);

	/* Park a guest that does not migrate: HV_ACT_SAVE saves it (managed
	 * save), HV_ACT_SHUTDOWN shuts it down (grace_s, then destroy). */
	void (*park)(const char *uri, const char *guest, int action, unsigned grace_s,
	             struct hv_outcome *o);

	/* Start a parked guest (restores a managed save). */
	int (*start)(const char *uri, const char *guest, char *err, size_t errlen);

	/* Does the hypervisor answer? (validation after a reboot) */
	int (*ping)(const char *uri, char *err, size_t errlen);

	/* Is the guest defined or running there? *present false when libvirt
	 * does not know it; *running true when it runs (or is paused). */
	int (*guest_state)(const char *uri, const char *guest, bool *present,
	                   bool *running, char *err, size_t errlen);

	/* Can the hypervisor at target_uri run guest's CPU as it is defined
	 * at uri (libvirt's CPU comparison)? HV_OK when it can (or when the
	 * guest names no CPU model to compare), HV_INVAL when it cannot, with
	 * the features it lacks in err, HV_IO when either does not answer.
	 * May be NULL (not checked). */
	int (*cpu_check)(const char *uri, const char *guest, const char *target_uri,
	                 char *err, size_t errlen);
};

/*
 * Open the libvirt module: $HVPEER_MODULE_DIR/hvpeer-virt.so when that is
 * set, else .libs/hvpeer-virt.so next to the running program (a build tree),
 * else the installed one in HV_MODULE_DIR. Returns NULL with the reason in
 * err. The module stays loaded for the life of the process.
 */
const struct hv_hypervisor *hv_hypervisor_load(char *err, size_t errlen);

#endif
