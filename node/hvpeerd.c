/* hvpeerd: the hvpeer daemon. See hvpeerd(8). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../migrate/hypervisor.h"
#include "config.h"
#include "enroll.h"
#include "node.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: hvpeerd [--config FILE] [--name NAME] [--data-dir DIR] [--listen "
	    "ADDR:PORT]\n"
	    "               [--socket PATH] [--bootstrap | --join "
	    "ADDR:PORT[,ADDR:PORT...]] [options]\n"
	    "\n"
	    "The first start of a node needs --bootstrap (the first node of a new "
	    "cluster)\n"
	    "or --join (every other node); later starts resume from the data dir.\n"
	    "\n"
	    "Run one hvpeer peer: a member of the Raft group that agrees on which host\n"
	    "holds the maintenance lease.\n"
	    "\n"
	    "  -c, --config FILE           read settings from an INI file "
	    "(hvpeerd.conf(5));\n"
	    "                              flags given on the command line override it\n"
	    "  -n, --name NAME             this host's member name (default: short "
	    "hostname)\n"
	    "  -d, --data-dir DIR          Raft log and identity (default "
	    "/var/lib/hvpeer)\n"
	    "  -l, --listen ADDR:PORT      Raft and peer RPC address, numeric (default "
	    "127.0.0.1:7440)\n"
	    "  -s, --socket PATH           control socket for hvpeer (default "
	    "/run/hvpeer/hvpeer.sock)\n"
	    "      --socket-group GROUP    group owning the control socket (mode "
	    "0660)\n");
	fprintf(
	    f,
	    "      --notify-command CMD    run on every phase change of this host's "
	    "patch cycle\n"
	    "                              (HVPEER_PHASE, HVPEER_PREV_PHASE, "
	    "HVPEER_REASON...)\n"
	    "      --metrics-listen [ADDR:]PORT  Prometheus metrics at "
	    "http://ADDR:PORT/metrics\n"
	    "                              (ADDR defaults to 127.0.0.1; default: off)\n"
	    "      --readonly-group GROUP  a second control socket, mode 0660, for "
	    "this group:\n"
	    "                              status, plan and bmc status|sensors only\n"
	    "      --readonly-socket PATH  where (default: the control socket's path "
	    "with\n"
	    "                              -ro.sock for .sock)\n"
	    "      --allow-peers CIDRS     accept peer connections only from these "
	    "networks\n"
	    "                              (comma-separated, e.g. "
	    "10.0.0.0/24,fd00::/64)\n"
	    "      --tls-cert FILE, --tls-key FILE, --tls-ca FILE   mutual TLS 1.3 "
	    "between\n"
	    "                              peers: this node's certificate and key "
	    "('hvpeer ca\n"
	    "                              issue') and the cluster CA; plaintext peers "
	    "are\n"
	    "                              refused\n"
	    "      --tls-crl FILE          refuse peer certificates this CA revoked\n"
	    "      --tls-ca-key FILE       the CA's key: this member signs the "
	    "certificates of\n"
	    "                              hosts that join with a token ('hvpeer token "
	    "create')\n"
	    "      --token TOKEN           join with a token: make tls-key, get tls-cert "
	    "and\n"
	    "                              tls-ca signed through --join first\n"
	    "  -b, --bootstrap             start a new cluster (first node, empty data "
	    "dir only)\n"
	    "  -j, --join ADDR:PORT,...    join an existing cluster through any of these "
	    "peers\n"
	    "                              (repeatable; replaces the config file's "
	    "list)\n"
	    "      --election-timeout MS   Raft election timeout (default 300)\n"
	    "      --heartbeat-timeout MS  Raft heartbeat interval (default 50)\n"
	    "      --max-voters N          voters kept in the Raft group; later peers "
	    "are\n"
	    "                              standbys (default 5)\n"
	    "      --snapshot-threshold N  entries between snapshots (default 1024)\n"
	    "      --snapshot-trailing N   entries kept after a snapshot (default 128)\n"
	    "      --max-concurrent N      hosts in maintenance at once, set when a "
	    "cluster is\n"
	    "                              bootstrapped (default 1)\n"
	    "      --report-interval MS    how often this node reports into the state "
	    "(default 5000)\n"
	    "      --rpc-timeout MS        peer RPC timeout (default 2000)\n"
	    "      --host-version TEXT     the host software version this node reports\n"
	    "      --libvirt-uri URI       the local hypervisor (e.g. qemu:///system); "
	    "without it\n"
	    "                              this node has no guests and cannot enter "
	    "maintenance\n"
	    "      --migrate-uri TEMPLATE  libvirt URI of a peer, %%h = its address\n"
	    "                              (default qemu+tcp://%%h/system)\n"
	    "      --guest-memory MIB      memory available for guests (default: host "
	    "memory\n"
	    "                              less 1 GiB)\n"
	    "      --vcpu-ratio N          vCPUs available for guests per host CPU "
	    "(default 4)\n"
	    "      --migrate-downtime MS   downtime limit of a live migration (default "
	    "300)\n"
	    "      --migrate-timeout S     abort a migration after S seconds (default "
	    "600)\n"
	    "      --migrate-parallel N    migrations at once during an evacuation "
	    "(default 1)\n"
	    "      --shared-storage DIRS   comma-separated directories on storage every "
	    "host\n"
	    "                              sees; a guest disk elsewhere is local and "
	    "cannot be\n"
	    "                              live-migrated (default: none)\n"
	    "      --shutdown-timeout S    a dev guest that does not shut down within S "
	    "seconds\n"
	    "                              is stopped hard (default 30)\n");
	fprintf(
	    f,
	    "Patching (see hvpeerd.conf(5), section [patch]):\n"
	    "      --bootbank dir:PATH|exec  the A/B boot banks (default: none; no "
	    "patching)\n"
	    "      --bootbank-apply CMD, --bootbank-set-next CMD, --bootbank-mark-good "
	    "CMD,\n"
	    "      --bootbank-rollback CMD, --bootbank-status CMD   exec banks: the "
	    "commands\n"
	    "      --reboot command|bmc    reboot with reboot-command (default) or a "
	    "power\n"
	    "                              cycle through this host's BMC\n"
	    "      --reboot-command CMD    how this host reboots (default 'systemctl "
	    "reboot')\n"
	    "      --reboot-timeout S      fail the cycle when no reboot happened "
	    "within S (900)\n"
	    "      --boot-id-file PATH     tells one boot from the next (default\n"
	    "                              /proc/sys/kernel/random/boot_id)\n"
	    "      --trusted-keys DIR      public keys that may sign bundles "
	    "(/etc/hvpeer/keys)\n"
	    "      --host-class NAME       the class bundles must name (default "
	    "'default')\n"
	    "      --bundle-dir DIR        where bundles are kept (default "
	    "DATA_DIR/bundles); a\n"
	    "                              host fetches a missing one from its peers\n"
	    "      --boot-timeout S        leader's watchdog: a holder that has not come "
	    "back\n"
	    "                              S after its reboot is power-cycled (1200)\n"
	    "      --watchdog-cycles N     power cycles before the line stops (2)\n"
	    "      --health-hook CMD       run after a reboot; non-zero fails "
	    "validation\n"
	    "      --pre-maintenance-hook CMD   before this host's cycle moves "
	    "anything;\n"
	    "                              non-zero fails the pre-check (nothing "
	    "moved)\n"
	    "      --post-maintenance-hook CMD  after its guests came back; non-zero "
	    "fails\n"
	    "                              the cycle (the line stops)\n"
	    "      --rollout-start-hook CMD, --rollout-end-hook CMD   once per rollout: "
	    "on its\n"
	    "                              first host before it starts, on its last "
	    "host at\n"
	    "                              the end (e.g. storage noout on and off)\n"
	    "      --hook-timeout S        limit for each hook (default 300)\n"
	    "      --max-clock-skew S      pre-check: every peer's clock within S of "
	    "ours (300;\n"
	    "                              0: not checked)\n"
	    "      --test-clock-skew S     for tests: show peers a clock S ahead\n"
	    "      --migration-mtu N       pre-check: N-byte packets reach every peer\n"
	    "                              unfragmented (ping -M do; 0: not checked)\n"
	    "      --precheck-peers all|up   pre-check: every peer reports and "
	    "answers (all,\n"
	    "                              the default), or only those reporting "
	    "(up)\n"
	    "      --hcl FILE              pre-check: the host's storage and network "
	    "controllers\n"
	    "                              are on this hardware compatibility list "
	    "for the\n"
	    "                              target version (none by default)\n"
	    "      --hcl-sysfs DIR         the PCI devices it reads "
	    "(/sys/bus/pci/devices)\n"
	    "      --test-hold-dir DIR     for tests: a phase whose name is a file in "
	    "DIR waits\n"
	    "                              (a breakpoint before the phase's work)\n"
	    "BMC (hvpeerd.conf(5), section [bmc]; driven through hvpeer-bmc):\n"
	    "      --bmc none|ipmi|redfish this host's BMC (default none)\n"
	    "      --bmc-address HOST[:PORT]  its address (IPMI: UDP port 623; "
	    "Redfish: 443)\n"
	    "      --bmc-credentials FILE  root-only INI file with user and password\n"
	    "                              (never on a command line)\n"
	    "      --bmc-cipher-suite N    RMCP+ cipher suite (default: the file's, else "
	    "17)\n"
	    "      --bmc-workarounds LIST  FreeIPMI workaround flags, e.g. opensesspriv\n"
	    "      --bmc-timeout MS        per BMC exchange (default 5000)\n"
	    "      --bmc-ca FILE           Redfish: CA certificate(s) to verify the BMC\n"
	    "      --bmc-pin sha256//B64   Redfish: pin the BMC's public key instead\n"
	    "      --bmc-sensor-check any|critical|off  validation fails on a sensor "
	    "past\n"
	    "                              any threshold (default), a critical one, or "
	    "never\n"
	    "      --log-level LEVEL       error, warn, info (default) or debug\n"
	    "  -h, --help                  this help\n"
	    "  -V, --version               print the version\n");
}

static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"name", required_argument, NULL, 'n'},
    {"data-dir", required_argument, NULL, 'd'},
    {"listen", required_argument, NULL, 'l'},
    {"socket", required_argument, NULL, 's'},
    {"socket-group", required_argument, NULL, 1},
    {"allow-peers", required_argument, NULL, 1},
    {"readonly-socket", required_argument, NULL, 1},
    {"metrics-listen", required_argument, NULL, 1},
    {"readonly-group", required_argument, NULL, 1},
    {"tls-cert", required_argument, NULL, 1},
    {"tls-key", required_argument, NULL, 1},
    {"tls-ca", required_argument, NULL, 1},
    {"tls-crl", required_argument, NULL, 1},
    {"tls-ca-key", required_argument, NULL, 1},
    {"token", required_argument, NULL, 1},
    {"bootstrap", no_argument, NULL, 'b'},
    {"join", required_argument, NULL, 'j'},
    {"election-timeout", required_argument, NULL, 1},
    {"heartbeat-timeout", required_argument, NULL, 1},
    {"max-voters", required_argument, NULL, 1},
    {"snapshot-threshold", required_argument, NULL, 1},
    {"snapshot-trailing", required_argument, NULL, 1},
    {"max-concurrent", required_argument, NULL, 1},
    {"report-interval", required_argument, NULL, 1},
    {"rpc-timeout", required_argument, NULL, 1},
    {"host-version", required_argument, NULL, 1},
    {"log-level", required_argument, NULL, 1},
    {"libvirt-uri", required_argument, NULL, 1},
    {"migrate-uri", required_argument, NULL, 1},
    {"guest-memory", required_argument, NULL, 1},
    {"migrate-downtime", required_argument, NULL, 1},
    {"migrate-timeout", required_argument, NULL, 1},
    {"migrate-parallel", required_argument, NULL, 1},
    {"shared-storage", required_argument, NULL, 1},
    {"shutdown-timeout", required_argument, NULL, 1},
    {"vcpu-ratio", required_argument, NULL, 1},
    {"bootbank", required_argument, NULL, 1},
    {"bootbank-apply", required_argument, NULL, 1},
    {"bootbank-set-next", required_argument, NULL, 1},
    {"bootbank-mark-good", required_argument, NULL, 1},
    {"bootbank-rollback", required_argument, NULL, 1},
    {"bootbank-status", required_argument, NULL, 1},
    {"max-clock-skew", required_argument, NULL, 1},
    {"migration-mtu", required_argument, NULL, 1},
    {"precheck-peers", required_argument, NULL, 1},
    {"hcl", required_argument, NULL, 1},
    {"hcl-sysfs", required_argument, NULL, 1},
    {"test-clock-skew", required_argument, NULL, 1},
    {"reboot", required_argument, NULL, 1},
    {"reboot-command", required_argument, NULL, 1},
    {"boot-timeout", required_argument, NULL, 1},
    {"watchdog-cycles", required_argument, NULL, 1},
    {"reboot-timeout", required_argument, NULL, 1},
    {"boot-id-file", required_argument, NULL, 1},
    {"trusted-keys", required_argument, NULL, 1},
    {"host-class", required_argument, NULL, 1},
    {"bundle-dir", required_argument, NULL, 1},
    {"health-hook", required_argument, NULL, 1},
    {"pre-maintenance-hook", required_argument, NULL, 1},
    {"post-maintenance-hook", required_argument, NULL, 1},
    {"rollout-start-hook", required_argument, NULL, 1},
    {"rollout-end-hook", required_argument, NULL, 1},
    {"hook-timeout", required_argument, NULL, 1},
    {"notify-command", required_argument, NULL, 1},
    {"test-hold-dir", required_argument, NULL, 1},
    {"bmc", required_argument, NULL, 1},
    {"bmc-address", required_argument, NULL, 1},
    {"bmc-credentials", required_argument, NULL, 1},
    {"bmc-cipher-suite", required_argument, NULL, 1},
    {"bmc-workarounds", required_argument, NULL, 1},
    {"bmc-timeout", required_argument, NULL, 1},
    {"bmc-ca", required_argument, NULL, 1},
    {"bmc-pin", required_argument, NULL, 1},
    {"bmc-sensor-check", required_argument, NULL, 1},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char *shortkey(int c)
{
	switch (c) {
	case 'n':
		return "name";
	case 'd':
		return "data-dir";
	case 'l':
		return "listen";
	case 's':
		return "socket";
	case 'j':
		return "join";
	}
	return NULL;
}

static struct hv_node node;
static uv_signal_t sigterm, sigint, sighup;
static int exit_code;

static void stopped(struct hv_node *n)
{
	(void)n;
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	uv_close((uv_handle_t *)&sighup, NULL);
}

static void on_sighup(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	hv_node_reload(&node);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	hv_info("signal %d: stopping", signum);
	hv_node_stop(&node, stopped);
}

static void default_host_version(struct hv_config *cfg)
{
	FILE *f;
	char line[256];

	if (cfg->host_version[0] != '\0')
		return;
	snprintf(cfg->host_version, sizeof cfg->host_version, "unknown");
	f = fopen("/etc/os-release", "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		char *v;
		if (strncmp(line, "PRETTY_NAME=", 12) != 0)
			continue;
		v = line + 12;
		v[strcspn(v, "\n")] = '\0';
		if (*v == '"') {
			v++;
			v[strcspn(v, "\"")] = '\0';
		}
		hv_text_copy(cfg->host_version, sizeof cfg->host_version, v);
		break;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	struct hv_config cfg;
	char err[512];
	const struct hv_hypervisor *hyp = NULL;
	const char *config_path = NULL;
	int c, idx;
	uv_loop_t *loop = uv_default_loop();

	hv_config_defaults(&cfg);
	/* First pass: find --config, so that flags can override the file. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:n:d:l:s:bj:hV", longopts, &idx)) != -1) {
		if (c == 'c')
			config_path = optarg;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (c == 'V') {
			printf("hvpeerd %s\n", HVPEER_VERSION);
			return 0;
		}
	}
	if (config_path != NULL &&
	    hv_config_load(&cfg, config_path, err, sizeof err) != 0) {
		fprintf(stderr, "hvpeerd: %s\n", err);
		return 2;
	}
	optind = 1;
	opterr = 1;
	bool join_flag = false;
	while ((c = getopt_long(argc, argv, "c:n:d:l:s:bj:hV", longopts, &idx)) != -1) {
		const char *key = NULL;
		switch (c) {
		case 'c':
			continue;
		case 'b':
			cfg.bootstrap = true;
			continue;
		case 1:
			key = longopts[idx].name;
			break;
		case '?':
			fprintf(stderr, "Try 'hvpeerd --help'.\n");
			return 2;
		default:
			key = shortkey(c);
			break;
		}
		if (key == NULL)
			continue;
		if (!strcmp(key, "join") && !join_flag) {
			cfg.n_join = 0; /* the flags replace the file's list */
			join_flag = true;
		}
		if (hv_config_set(&cfg, key, optarg, err, sizeof err) != 0) {
			fprintf(stderr, "hvpeerd: --%s\n", err);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
		        "hvpeerd: unexpected argument '%s'\nTry 'hvpeerd --help'.\n",
		        argv[optind]);
		return 2;
	}
	if (hv_config_check(&cfg, err, sizeof err) != 0) {
		fprintf(stderr, "hvpeerd: %s\n", err);
		return 2;
	}
	default_host_version(&cfg);
	hv_log_level = cfg.log_level;
	{
		char prefix[80];
		snprintf(prefix, sizeof prefix, "hvpeerd[%s]", cfg.name);
		hv_log_set_prefix(prefix);
	}
	signal(SIGPIPE, SIG_IGN);
	/* libvirt (and what it pulls in) is mapped only when it is used. */
	if (cfg.libvirt_uri[0] != '\0' &&
	    (hyp = hv_hypervisor_load(err, sizeof err)) == NULL) {
		fprintf(stderr, "hvpeerd: %s\n", err);
		return 1;
	}
	if (hv_enroll_client(&cfg, cfg.rpc_timeout_ms * 5, err, sizeof err) != 0) {
		fprintf(stderr, "hvpeerd: join with a token: %s\n", err);
		return 1;
	}
	if (hv_node_start(&node, loop, &cfg, hyp) != 0) {
		fprintf(stderr, "hvpeerd: %s\n", node.errmsg);
		return 1;
	}
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_init(loop, &sighup);
	uv_signal_start(&sighup, on_sighup, SIGHUP);
	uv_run(loop, UV_RUN_DEFAULT);
	if (uv_loop_close(loop) != 0) {
		hv_error("event loop closed with handles still open");
		exit_code = 1;
	}
	hv_info("stopped");
	return exit_code;
}
