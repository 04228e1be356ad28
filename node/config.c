#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/path.h"
#include "config.h"
#include "transport.h"

void hv_config_defaults(struct hv_config *c)
{
	char host[256] = "";

	memset(c, 0, sizeof *c);
	if (gethostname(host, sizeof host - 1) == 0) {
		host[strcspn(host, ".")] = '\0';
		if (hv_name_valid(host))
			snprintf(c->name, sizeof c->name, "%s", host);
	}
	snprintf(c->data_dir, sizeof c->data_dir, "/var/lib/hvpeer");
	snprintf(c->listen, sizeof c->listen, "127.0.0.1:7440");
	snprintf(c->socket, sizeof c->socket, "/run/hvpeer/hvpeer.sock");
	c->log_level = HV_LOG_INFO;
	c->election_timeout_ms = 300;
	c->heartbeat_timeout_ms = 50;
	c->max_voters = 5;
	c->snapshot_threshold = 1024;
	c->snapshot_trailing = 128;
	c->max_concurrent = 1;
	c->report_interval_ms = 5000;
	c->rpc_timeout_ms = 2000;
	snprintf(c->migrate_uri, sizeof c->migrate_uri, "qemu+tcp://%%h/system");
	c->migrate_downtime_ms = 300;
	c->migrate_timeout_s = 600;
	c->migrate_parallel = 1;
	c->shutdown_timeout_s = 30;
	c->vcpu_ratio = 4;
	snprintf(c->reboot_command, sizeof c->reboot_command, "systemctl reboot");
	c->reboot_timeout_s = 900;
	c->max_clock_skew_s = 300;
	c->precheck_all_peers = true;
	snprintf(c->hcl_sysfs, sizeof c->hcl_sysfs, "/sys/bus/pci/devices");
	snprintf(c->reboot, sizeof c->reboot, "command");
	c->boot_timeout_s = 1200;
	c->watchdog_cycles = 2;
	snprintf(c->bmc_sensor_check, sizeof c->bmc_sensor_check, "any");
	snprintf(c->boot_id_file, sizeof c->boot_id_file,
	         "/proc/sys/kernel/random/boot_id");
	snprintf(c->trusted_keys, sizeof c->trusted_keys, "/etc/hvpeer/keys");
	snprintf(c->host_class, sizeof c->host_class, "default");
	c->hook_timeout_s = 300;
	snprintf(c->bmc, sizeof c->bmc, "none");
	c->bmc_timeout_ms = 5000;
}

static int set_uint(unsigned *dst, const char *v, unsigned lo, unsigned hi,
                    const char *key, char *err, int errlen)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n < lo || n > hi) {
		snprintf(err, (size_t)errlen, "%s: '%s' is not a number in %u..%u", key,
		         v, lo, hi);
		return -1;
	}
	*dst = (unsigned)n;
	return 0;
}

static int set_bool(bool *dst, const char *v, const char *key, char *err, int errlen)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") ||
	    !strcmp(v, "on"))
		*dst = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0") ||
	         !strcmp(v, "off"))
		*dst = false;
	else {
		snprintf(err, (size_t)errlen, "%s: '%s' is not a boolean (true/false)",
		         key, v);
		return -1;
	}
	return 0;
}

static int set_str(char *dst, size_t n, const char *v, const char *key, char *err,
                   int errlen)
{
	if (hv_text_copy(dst, n, v) != 0) {
		snprintf(err, (size_t)errlen,
		         "%s: value too long (max %zu) or has control characters", key,
		         n - 1);
		return -1;
	}
	return 0;
}

static int set_addr(char *dst, const char *v, const char *key, char *err, int errlen)
{
	char host[HV_ADDR_MAX + 1];
	int port;

	unsigned char bin[16];

	if (hv_addr_split(v, host, sizeof host, &port) != 0 ||
	    (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1)) {
		snprintf(err, (size_t)errlen,
		         "%s: '%s' is not a numeric ADDRESS:PORT (e.g. 10.0.0.1:7440 or "
		         "[fd00::1]:7440)",
		         key, v);
		return -1;
	}
	return set_str(dst, HV_ADDR_MAX + 1, v, key, err, errlen);
}

static int set_join(struct hv_config *c, const char *v, char *err, int errlen)
{
	char buf[512], *save = NULL, *tok;

	if (strlen(v) >= sizeof buf) {
		snprintf(err, (size_t)errlen, "join: list too long");
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", v);
	for (tok = strtok_r(buf, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (c->n_join == HV_MAX_JOIN) {
			snprintf(err, (size_t)errlen, "join: at most %d addresses",
			         HV_MAX_JOIN);
			return -1;
		}
		if (set_addr(c->join[c->n_join], tok, "join", err, errlen) != 0)
			return -1;
		c->n_join++;
	}
	return 0;
}

int hv_config_set(struct hv_config *c, const char *key, const char *v, char *err,
                  int errlen)
{
	if (!strcmp(key, "name")) {
		if (!hv_name_valid(v)) {
			snprintf(
			    err, (size_t)errlen,
			    "name: '%s' must be 1-%d characters of A-Z a-z 0-9 . _ -", v,
			    HV_NAME_MAX);
			return -1;
		}
		snprintf(c->name, sizeof c->name, "%s", v);
		return 0;
	}
	if (!strcmp(key, "data-dir"))
		return set_str(c->data_dir, sizeof c->data_dir, v, key, err, errlen);
	if (!strcmp(key, "listen"))
		return set_addr(c->listen, v, key, err, errlen);
	if (!strcmp(key, "socket"))
		return set_str(c->socket, sizeof c->socket, v, key, err, errlen);
	if (!strcmp(key, "socket-group"))
		return set_str(c->socket_group, sizeof c->socket_group, v, key, err,
		               errlen);
	if (!strcmp(key, "notify-command"))
		return set_str(c->notify_command, sizeof c->notify_command, v, key, err,
		               errlen);
	if (!strcmp(key, "metrics-listen"))
		return set_str(c->metrics_listen, sizeof c->metrics_listen, v, key, err,
		               errlen);
	if (!strcmp(key, "readonly-socket"))
		return set_str(c->readonly_socket, sizeof c->readonly_socket, v, key, err,
		               errlen);
	if (!strcmp(key, "readonly-group"))
		return set_str(c->readonly_group, sizeof c->readonly_group, v, key, err,
		               errlen);
	if (!strcmp(key, "allow-peers")) {
		struct hv_cidr nets[32];
		char why[200];
		if (hv_cidr_parse(v, nets, 32, why, sizeof why) < 0) {
			snprintf(err, (size_t)errlen, "allow-peers: %s", why);
			return -1;
		}
		return set_str(c->allow_peers, sizeof c->allow_peers, v, key, err,
		               errlen);
	}
	if (!strcmp(key, "tls-cert"))
		return set_str(c->tls_cert, sizeof c->tls_cert, v, key, err, errlen);
	if (!strcmp(key, "tls-key"))
		return set_str(c->tls_key, sizeof c->tls_key, v, key, err, errlen);
	if (!strcmp(key, "tls-ca"))
		return set_str(c->tls_ca, sizeof c->tls_ca, v, key, err, errlen);
	if (!strcmp(key, "tls-crl"))
		return set_str(c->tls_crl, sizeof c->tls_crl, v, key, err, errlen);
	if (!strcmp(key, "tls-ca-key"))
		return set_str(c->tls_ca_key, sizeof c->tls_ca_key, v, key, err, errlen);
	if (!strcmp(key, "token"))
		return set_str(c->join_token, sizeof c->join_token, v, key, err, errlen);
	if (!strcmp(key, "bootstrap"))
		return set_bool(&c->bootstrap, v, key, err, errlen);
	if (!strcmp(key, "join"))
		return set_join(c, v, err, errlen);
	if (!strcmp(key, "host-version"))
		return set_str(c->host_version, sizeof c->host_version, v, key, err,
		               errlen);
	if (!strcmp(key, "log-level")) {
		int l = hv_log_parse_level(v);
		if (l < 0) {
			snprintf(err, (size_t)errlen,
			         "log-level: '%s' is not error, warn, info or debug", v);
			return -1;
		}
		c->log_level = l;
		return 0;
	}
	if (!strcmp(key, "election-timeout"))
		return set_uint(&c->election_timeout_ms, v, 50, 60000, key, err, errlen);
	if (!strcmp(key, "heartbeat-timeout"))
		return set_uint(&c->heartbeat_timeout_ms, v, 10, 10000, key, err, errlen);
	if (!strcmp(key, "max-voters"))
		return set_uint(&c->max_voters, v, 1, 15, key, err, errlen);
	if (!strcmp(key, "snapshot-threshold"))
		return set_uint(&c->snapshot_threshold, v, 16, 1u << 20, key, err,
		                errlen);
	if (!strcmp(key, "snapshot-trailing"))
		return set_uint(&c->snapshot_trailing, v, 8, 1u << 20, key, err, errlen);
	if (!strcmp(key, "max-concurrent"))
		return set_uint(&c->max_concurrent, v, 1, 16, key, err, errlen);
	if (!strcmp(key, "report-interval"))
		return set_uint(&c->report_interval_ms, v, 100, 3600000, key, err,
		                errlen);
	if (!strcmp(key, "rpc-timeout"))
		return set_uint(&c->rpc_timeout_ms, v, 100, 60000, key, err, errlen);
	if (!strcmp(key, "libvirt-uri"))
		return set_str(c->libvirt_uri, sizeof c->libvirt_uri, v, key, err,
		               errlen);
	if (!strcmp(key, "migrate-uri")) {
		if (strstr(v, "%h") == NULL) {
			snprintf(
			    err, (size_t)errlen,
			    "migrate-uri: '%s' must contain %%h (the peer's address)", v);
			return -1;
		}
		return set_str(c->migrate_uri, sizeof c->migrate_uri, v, key, err,
		               errlen);
	}
	if (!strcmp(key, "guest-memory"))
		return set_uint(&c->guest_memory_mib, v, 0, 1u << 30, key, err, errlen);
	if (!strcmp(key, "migrate-downtime"))
		return set_uint(&c->migrate_downtime_ms, v, 10, 60000, key, err, errlen);
	if (!strcmp(key, "migrate-timeout"))
		return set_uint(&c->migrate_timeout_s, v, 10, 86400, key, err, errlen);
	if (!strcmp(key, "shared-storage"))
		return set_str(c->shared_storage, sizeof c->shared_storage, v, key, err,
		               errlen);
	if (!strcmp(key, "vcpu-ratio"))
		return set_uint(&c->vcpu_ratio, v, 1, 64, key, err, errlen);
	if (!strcmp(key, "shutdown-timeout"))
		return set_uint(&c->shutdown_timeout_s, v, 1, 3600, key, err, errlen);
	if (!strcmp(key, "migrate-parallel"))
		return set_uint(&c->migrate_parallel, v, 1, 16, key, err, errlen);
	if (!strcmp(key, "bootbank")) {
		if (v[0] != '\0' && strncmp(v, "dir:/", 5) != 0 &&
		    strcmp(v, "exec") != 0) {
			snprintf(err, (size_t)errlen,
			         "bootbank: '%s' is not dir:/ABSOLUTE/PATH or exec", v);
			return -1;
		}
		return set_str(c->bootbank, sizeof c->bootbank, v, key, err, errlen);
	}
	{
		static const struct {
			const char *key;
			size_t off;
		} strs[] = {
		    {"bootbank-apply", offsetof(struct hv_config, bootbank_apply)},
		    {"bootbank-set-next", offsetof(struct hv_config, bootbank_set_next)},
		    {"bootbank-mark-good",
		     offsetof(struct hv_config, bootbank_mark_good)},
		    {"bootbank-rollback", offsetof(struct hv_config, bootbank_rollback)},
		    {"bootbank-status", offsetof(struct hv_config, bootbank_status)},
		    {"reboot-command", offsetof(struct hv_config, reboot_command)},
		    {"boot-id-file", offsetof(struct hv_config, boot_id_file)},
		    {"trusted-keys", offsetof(struct hv_config, trusted_keys)},
		    {"bundle-dir", offsetof(struct hv_config, bundle_dir)},
		    {"health-hook", offsetof(struct hv_config, health_hook)},
		    {"pre-maintenance-hook", offsetof(struct hv_config, pre_maint_hook)},
		    {"post-maintenance-hook",
		     offsetof(struct hv_config, post_maint_hook)},
		    {"rollout-start-hook",
		     offsetof(struct hv_config, rollout_start_hook)},
		    {"rollout-end-hook", offsetof(struct hv_config, rollout_end_hook)},
		    {"test-hold-dir", offsetof(struct hv_config, test_hold_dir)},
		    {"hcl", offsetof(struct hv_config, hcl)},
		    {"hcl-sysfs", offsetof(struct hv_config, hcl_sysfs)},
		};
		for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
			if (!strcmp(key, strs[i].key))
				return set_str((char *)c + strs[i].off, HV_PATH_MAX, v,
				               key, err, errlen);
	}
	if (!strcmp(key, "host-class")) {
		if (!hv_name_valid(v)) {
			snprintf(err, (size_t)errlen,
			         "host-class: '%s' is not 1-63 of [A-Za-z0-9._-]", v);
			return -1;
		}
		return set_str(c->host_class, sizeof c->host_class, v, key, err, errlen);
	}
	if (!strcmp(key, "bmc")) {
		if (strcmp(v, "none") != 0 && strcmp(v, "ipmi") != 0 &&
		    strcmp(v, "redfish") != 0) {
			snprintf(err, (size_t)errlen,
			         "bmc: '%s' is not none, ipmi or redfish", v);
			return -1;
		}
		return set_str(c->bmc, sizeof c->bmc, v, key, err, errlen);
	}
	if (!strcmp(key, "reboot")) {
		if (strcmp(v, "command") != 0 && strcmp(v, "bmc") != 0) {
			snprintf(err, (size_t)errlen,
			         "reboot: '%s' is not command or bmc", v);
			return -1;
		}
		return set_str(c->reboot, sizeof c->reboot, v, key, err, errlen);
	}
	if (!strcmp(key, "precheck-peers")) {
		if (strcmp(v, "all") != 0 && strcmp(v, "up") != 0) {
			snprintf(err, (size_t)errlen,
			         "precheck-peers: '%s' is not all or up", v);
			return -1;
		}
		c->precheck_all_peers = strcmp(v, "all") == 0;
		return 0;
	}
	if (!strcmp(key, "bmc-sensor-check")) {
		if (strcmp(v, "any") != 0 && strcmp(v, "critical") != 0 &&
		    strcmp(v, "off") != 0) {
			snprintf(err, (size_t)errlen,
			         "bmc-sensor-check: '%s' is not any, critical or off", v);
			return -1;
		}
		return set_str(c->bmc_sensor_check, sizeof c->bmc_sensor_check, v, key,
		               err, errlen);
	}
	if (!strcmp(key, "bmc-ca"))
		return set_str(c->bmc_ca, sizeof c->bmc_ca, v, key, err, errlen);
	if (!strcmp(key, "bmc-pin")) {
		if (strncmp(v, "sha256//", 8) != 0 || v[8] == '\0') {
			snprintf(
			    err, (size_t)errlen,
			    "bmc-pin: '%s' is not sha256//BASE64 (the SHA-256 of the "
			    "BMC's public key)",
			    v);
			return -1;
		}
		return set_str(c->bmc_pin, sizeof c->bmc_pin, v, key, err, errlen);
	}
	if (!strcmp(key, "migration-mtu")) {
		if (set_uint(&c->migration_mtu, v, 0, 65535, key, err, errlen) != 0)
			return -1;
		if (c->migration_mtu != 0 && c->migration_mtu < 576) {
			snprintf(err, (size_t)errlen,
			         "migration-mtu: %u is below 576 (0: not checked)",
			         c->migration_mtu);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "max-clock-skew"))
		return set_uint(&c->max_clock_skew_s, v, 0, 86400, key, err, errlen);
	if (!strcmp(key, "test-clock-skew"))
		return set_uint(&c->test_clock_skew_s, v, 0, 86400 * 365, key, err,
		                errlen);
	if (!strcmp(key, "boot-timeout"))
		return set_uint(&c->boot_timeout_s, v, 10, 86400, key, err, errlen);
	if (!strcmp(key, "watchdog-cycles"))
		return set_uint(&c->watchdog_cycles, v, 0, 10, key, err, errlen);
	if (!strcmp(key, "bmc-address"))
		return set_str(c->bmc_address, sizeof c->bmc_address, v, key, err,
		               errlen);
	if (!strcmp(key, "bmc-credentials"))
		return set_str(c->bmc_credentials, sizeof c->bmc_credentials, v, key, err,
		               errlen);
	if (!strcmp(key, "bmc-workarounds"))
		return set_str(c->bmc_workarounds, sizeof c->bmc_workarounds, v, key, err,
		               errlen);
	if (!strcmp(key, "bmc-cipher-suite"))
		return set_uint(&c->bmc_cipher_suite, v, 0, 17, key, err, errlen);
	if (!strcmp(key, "bmc-timeout"))
		return set_uint(&c->bmc_timeout_ms, v, 100, 120000, key, err, errlen);
	if (!strcmp(key, "reboot-timeout"))
		return set_uint(&c->reboot_timeout_s, v, 10, 86400, key, err, errlen);
	if (!strcmp(key, "hook-timeout"))
		return set_uint(&c->hook_timeout_s, v, 1, 86400, key, err, errlen);
	snprintf(err, (size_t)errlen, "unknown setting '%s'", key);
	return -1;
}

struct load_ctx {
	struct hv_config *c;
	char *err;
	int errlen;
	int failed;
};

/* Sections only group keys for the reader; each key belongs to one. */
static const struct {
	const char *section;
	const char *key;
} known[] = {
    {"node", "name"},
    {"node", "data-dir"},
    {"node", "listen"},
    {"node", "socket"},
    {"node", "socket-group"},
    {"node", "allow-peers"},
    {"node", "readonly-socket"},
    {"node", "metrics-listen"},
    {"node", "readonly-group"},
    {"tls", "tls-cert"},
    {"tls", "tls-key"},
    {"tls", "tls-ca"},
    {"tls", "tls-crl"},
    {"tls", "tls-ca-key"},
    {"node", "token"},
    {"node", "bootstrap"},
    {"node", "join"},
    {"node", "host-version"},
    {"node", "log-level"},
    {"raft", "election-timeout"},
    {"raft", "heartbeat-timeout"},
    {"raft", "max-voters"},
    {"raft", "snapshot-threshold"},
    {"raft", "snapshot-trailing"},
    {"cluster", "max-concurrent"},
    {"cluster", "report-interval"},
    {"cluster", "rpc-timeout"},
    {"migrate", "libvirt-uri"},
    {"migrate", "migrate-uri"},
    {"migrate", "guest-memory"},
    {"migrate", "migrate-downtime"},
    {"migrate", "migrate-timeout"},
    {"migrate", "migrate-parallel"},
    {"migrate", "shared-storage"},
    {"migrate", "shutdown-timeout"},
    {"migrate", "vcpu-ratio"},
    {"patch", "bootbank"},
    {"patch", "bootbank-apply"},
    {"patch", "bootbank-set-next"},
    {"patch", "bootbank-mark-good"},
    {"patch", "bootbank-rollback"},
    {"patch", "bootbank-status"},
    {"patch", "reboot"},
    {"patch", "reboot-command"},
    {"patch", "boot-timeout"},
    {"patch", "watchdog-cycles"},
    {"patch", "reboot-timeout"},
    {"patch", "boot-id-file"},
    {"patch", "trusted-keys"},
    {"patch", "host-class"},
    {"patch", "bundle-dir"},
    {"patch", "health-hook"},
    {"patch", "pre-maintenance-hook"},
    {"patch", "post-maintenance-hook"},
    {"patch", "rollout-start-hook"},
    {"patch", "rollout-end-hook"},
    {"patch", "hook-timeout"},
    {"patch", "notify-command"},
    {"patch", "test-hold-dir"},
    {"patch", "max-clock-skew"},
    {"patch", "precheck-peers"},
    {"patch", "hcl"},
    {"patch", "hcl-sysfs"},
    {"migrate", "migration-mtu"},
    {"patch", "test-clock-skew"},
    {"bmc", "bmc"},
    {"bmc", "bmc-address"},
    {"bmc", "bmc-credentials"},
    {"bmc", "bmc-cipher-suite"},
    {"bmc", "bmc-workarounds"},
    {"bmc", "bmc-timeout"},
    {"bmc", "bmc-ca"},
    {"bmc", "bmc-pin"},
    {"bmc", "bmc-sensor-check"},
};

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
	struct load_ctx *l = user;
	char msg[256];
	size_t i;

	if (l->failed)
		return 0;
	for (i = 0; i < sizeof known / sizeof known[0]; i++)
		if (!strcmp(known[i].key, key))
			break;
	if (i == sizeof known / sizeof known[0]) {
		snprintf(l->err, (size_t)l->errlen, "unknown key '%s' in [%s]", key,
		         section);
		l->failed = 1;
		return 0;
	}
	if (strcmp(known[i].section, section) != 0) {
		snprintf(l->err, (size_t)l->errlen, "key '%s' belongs in [%s], not [%s]",
		         key, known[i].section, section);
		l->failed = 1;
		return 0;
	}
	if (hv_config_set(l->c, key, value, msg, sizeof msg) != 0) {
		snprintf(l->err, (size_t)l->errlen, "%s", msg);
		l->failed = 1;
		return 0;
	}
	return 1;
}

int hv_config_load(struct hv_config *c, const char *path, char *err, int errlen)
{
	FILE *f = fopen(path, "r");
	int rv;

	if (f == NULL) {
		snprintf(err, (size_t)errlen, "%s: cannot open: %s", path,
		         strerror(errno));
		return -1;
	}
	rv = hv_config_load_file(c, f, path, err, errlen);
	fclose(f);
	return rv;
}

int hv_config_load_file(struct hv_config *c, FILE *f, const char *name, char *err,
                        int errlen)
{
	struct load_ctx l = {c, err, errlen, 0};
	char msg[256] = "";
	int rv;

	l.err = msg;
	l.errlen = sizeof msg;
	rv = ini_parse_file(f, on_ini, &l);
	if (rv == -2) {
		snprintf(err, (size_t)errlen, "%s: out of memory", name);
		return -1;
	}
	if (rv > 0) {
		snprintf(err, (size_t)errlen, "%s:%d: %s", name, rv,
		         msg[0] ? msg : "syntax error");
		return -1;
	}
	return 0;
}

int hv_readonly_socket_path(const char *socket, char *out, size_t len)
{
	size_t n = strlen(socket);
	int w;

	if (n > 5 && strcmp(socket + n - 5, ".sock") == 0)
		w = snprintf(out, len, "%.*s-ro.sock", (int)(n - 5), socket);
	else
		w = snprintf(out, len, "%s-ro", socket);
	return w > 0 && (size_t)w < len ? 0 : -1;
}

int hv_config_check(const struct hv_config *c, char *err, int errlen)
{
	if (c->name[0] == '\0') {
		snprintf(err, (size_t)errlen,
		         "no node name: set --name or name= in [node]");
		return -1;
	}
	if (c->bootstrap && c->n_join > 0) {
		snprintf(err, (size_t)errlen,
		         "--bootstrap and --join exclude each other: bootstrap the first "
		         "node only, join the others");
		return -1;
	}
	if (strcmp(c->reboot, "bmc") == 0 &&
	    (strcmp(c->bmc, "none") == 0 || c->bmc_address[0] == '\0' ||
	     c->bmc_credentials[0] == '\0')) {
		snprintf(err, (size_t)errlen,
		         "reboot = bmc needs this host's BMC: set bmc (ipmi or redfish), "
		         "bmc-address and bmc-credentials in [bmc]");
		return -1;
	}
	if ((c->tls_cert[0] != '\0' || c->tls_key[0] != '\0' || c->tls_ca[0] != '\0' ||
	     c->tls_crl[0] != '\0') &&
	    (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0' || c->tls_ca[0] == '\0')) {
		snprintf(err, (size_t)errlen,
		         "TLS needs tls-cert, tls-key and tls-ca together (and tls-crl "
		         "optionally): set all three in [tls]");
		return -1;
	}
	if (c->readonly_socket[0] != '\0' && strcmp(c->readonly_socket, c->socket) == 0) {
		snprintf(err, (size_t)errlen,
		         "readonly-socket must be another path than socket (%s)",
		         c->socket);
		return -1;
	}
	if (c->join_token[0] != '\0' && (c->n_join == 0 || c->tls_cert[0] == '\0')) {
		snprintf(err, (size_t)errlen,
		         "--token needs --join (the member that made it) and tls-cert, "
		         "tls-key and tls-ca (the files it writes)");
		return -1;
	}
	if (c->tls_ca_key[0] != '\0' && c->tls_cert[0] == '\0') {
		snprintf(err, (size_t)errlen,
		         "tls-ca-key needs TLS: set tls-cert, tls-key and tls-ca");
		return -1;
	}
	if (c->heartbeat_timeout_ms * 2 > c->election_timeout_ms) {
		snprintf(err, (size_t)errlen,
		         "heartbeat-timeout (%u ms) must be at most half of "
		         "election-timeout (%u ms)",
		         c->heartbeat_timeout_ms, c->election_timeout_ms);
		return -1;
	}
	return 0;
}

int hv_addr_split(const char *addr, char *host, int hostlen, int *port)
{
	const char *colon;
	char *end;
	long p;
	size_t hl;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		colon = rb + 1;
		hl = (size_t)(rb - addr - 1);
		addr++;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= (size_t)hostlen)
		return -1;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

#ifndef HV_BINDIR
#define HV_BINDIR "/usr/local/bin"
#endif

void hv_program_path(const char *name, char *out, size_t len)
{
	if (hv_exe_sibling(name, X_OK, out, len) != 0)
		snprintf(out, len, "%s/%s", HV_BINDIR, name);
}

int hv_program_run(const char *const argv[], size_t cap, char **out, int *status)
{
	char *buf = malloc(cap + 1);
	size_t got = 0;
	int fds[2];
	pid_t pid;

	*out = NULL;
	*status = 0;
	if (buf == NULL)
		return -1;
	if (pipe(fds) != 0) {
		free(buf);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(fds[1], 1);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		free(buf);
		return -1;
	}
	for (;;) { /* to the end, or cap (what follows is cut) */
		ssize_t r = read(fds[0], buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == cap)
			break;
	}
	close(fds[0]);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	buf[got] = '\0';
	*out = buf;
	return 0;
}
