/*
 * hvpeerd settings: defaults, then the INI file given with --config, then
 * command-line flags (flags override the file). The file is parsed with
 * inih; see hvpeerd.conf(5) for the keys.
 */
#ifndef HV_CONFIG_H
#define HV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../consensus/codec.h"

#define HV_PATH_MAX 256
#define HV_MAX_JOIN 8

struct hv_config {
	char name[HV_NAME_MAX + 1];
	char data_dir[HV_PATH_MAX];
	char listen[HV_ADDR_MAX + 1];
	char socket[HV_PATH_MAX];
	char socket_group[64];
	char readonly_socket[HV_PATH_MAX]; /* "" = none, or SOCKET-ro with a group */
	char readonly_group[64];           /* may use readonly_socket */
	char allow_peers[1024]; /* CIDRs peer connections may come from; "" = any */
	char metrics_listen[HV_ADDR_MAX + 1]; /* PORT or ADDR:PORT; "" = none */

	/* [tls]: mutual TLS between peers when tls_cert is set */
	char tls_cert[HV_PATH_MAX];
	char tls_key[HV_PATH_MAX];
	char tls_ca[HV_PATH_MAX];
	char tls_crl[HV_PATH_MAX];    /* "" = no revocation list */
	char tls_ca_key[HV_PATH_MAX]; /* the CA's key: this member signs joins */
	char join_token[128];         /* hvt1.ID.SECRET: get a certificate first */
	bool bootstrap;
	unsigned n_join;
	char join[HV_MAX_JOIN][HV_ADDR_MAX + 1];
	char host_version[HV_VERSION_MAX + 1];
	int log_level;

	unsigned election_timeout_ms;
	unsigned heartbeat_timeout_ms;
	unsigned max_voters;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;

	unsigned max_concurrent;
	unsigned report_interval_ms;
	unsigned rpc_timeout_ms;

	/* [migrate] */
	char libvirt_uri[HV_PATH_MAX]; /* "" = no hypervisor here */
	char migrate_uri[HV_PATH_MAX]; /* template, %h = a peer's address */
	unsigned guest_memory_mib;     /* 0 = host memory less 1 GiB */
	unsigned migrate_downtime_ms;
	unsigned migrate_timeout_s;
	unsigned migrate_parallel;
	unsigned shutdown_timeout_s;
	unsigned vcpu_ratio;
	char shared_storage[HV_PATH_MAX * 2]; /* comma-separated directories */

	/* [patch] */
	char bootbank[HV_PATH_MAX];       /* "dir:PATH", "exec" or "" (none) */
	char bootbank_apply[HV_PATH_MAX]; /* exec: operator commands */
	char bootbank_set_next[HV_PATH_MAX];
	char bootbank_mark_good[HV_PATH_MAX];
	char bootbank_rollback[HV_PATH_MAX];
	char bootbank_status[HV_PATH_MAX];
	char reboot[16]; /* "command" (default) or "bmc" */
	char reboot_command[HV_PATH_MAX];
	unsigned reboot_timeout_s;
	unsigned boot_timeout_s;  /* leader's watchdog: a holder down this long */
	unsigned watchdog_cycles; /* power cycles before the line stops */
	char boot_id_file[HV_PATH_MAX];
	char trusted_keys[HV_PATH_MAX];
	char host_class[HV_NAME_MAX + 1];
	char bundle_dir[HV_PATH_MAX]; /* "" = DATA_DIR/bundles */
	char health_hook[HV_PATH_MAX];
	bool precheck_all_peers;           /* every peer up (else those that report) */
	char hcl[HV_PATH_MAX];             /* hardware compatibility list; "" = none */
	char hcl_sysfs[HV_PATH_MAX];       /* PCI devices to check against it */
	char pre_maint_hook[HV_PATH_MAX];  /* before this host's cycle moves anything */
	char post_maint_hook[HV_PATH_MAX]; /* after its guests came back */
	char rollout_start_hook[HV_PATH_MAX]; /* on the rollout's first host */
	char rollout_end_hook[HV_PATH_MAX];   /* on its last host */
	unsigned hook_timeout_s;
	char notify_command[HV_PATH_MAX]; /* run on each phase change of this host */
	char test_hold_dir[HV_PATH_MAX];  /* tests: DIR/PHASE holds that phase */
	unsigned max_clock_skew_s;        /* pre-check; 0 = not checked */
	unsigned migration_mtu;           /* pre-check; 0 = not checked */
	unsigned test_clock_skew_s;       /* tests: the clock shown to peers, ahead */

	/* [bmc] this host's BMC, driven through hvpeer-bmc */
	char bmc[16]; /* "none" (default), "ipmi" or "redfish" */
	char bmc_address[HV_ADDR_MAX + 1];
	char bmc_credentials[HV_PATH_MAX]; /* root-only INI file */
	unsigned bmc_cipher_suite;         /* 0: the file's, else 17 */
	char bmc_workarounds[64];
	unsigned bmc_timeout_ms;
	char bmc_ca[HV_PATH_MAX];  /* redfish: CA file */
	char bmc_pin[128];         /* redfish: "sha256//BASE64" */
	char bmc_sensor_check[16]; /* "any" (default), "critical", "off" */
};

void hv_config_defaults(struct hv_config *c);

/* Set one setting by its key ("election-timeout"); the same keys serve the
 * INI file and the long flags. Returns 0, or -1 with a message in err. */
int hv_config_set(struct hv_config *c, const char *key, const char *value, char *err,
                  int errlen);

/* Load an INI file; unknown keys and bad values are errors naming the
 * file and line. Returns 0, or -1 with a message in err. */
int hv_config_load(struct hv_config *c, const char *path, char *err, int errlen);

/* The same from an open stream (name for messages): what hv_config_load
 * does once the file is open, and what fuzz/fuzz_config.c feeds. */
int hv_config_load_file(struct hv_config *c, FILE *f, const char *name, char *err,
                        int errlen);

/* Check the settings as a whole (required values, ranges). */
int hv_config_check(const struct hv_config *c, char *err, int errlen);

/* The read-only socket next to a control socket: "X.sock" -> "X-ro.sock",
 * else "X-ro". 0, or -1 when out is too small. */
int hv_readonly_socket_path(const char *socket, char *out, size_t len);

/* The path of another hvpeer program (e.g. "hvpeer-bundle"): next to the
 * running one when it is there (a build tree, or installed side by side),
 * else in HV_BINDIR. */
void hv_program_path(const char *name, char *out, size_t len);

/* Run argv[0] (one of ours) with stdin and stderr on /dev/null and return
 * its stdout, NUL-terminated, at most cap bytes, in *out (malloc()ed, the
 * caller frees it), its wait status in *status. Blocks: call it off the
 * event loop. Returns 0, or -1 with errno (nothing ran, *out NULL). */
int hv_program_run(const char *const argv[], size_t cap, char **out, int *status);

/* Split "host:port" (IPv4 or [IPv6]). Returns 0 or -1. */
int hv_addr_split(const char *addr, char *host, int hostlen, int *port);

#endif
