/* hvpeer: the operator's command line. See hvpeer(1). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../patchfsm/cli.h"
#include "access.h"
#include "ca.h"
#include "config.h"
#include "rpc.h"

enum {
	EXIT_OK = 0,
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_NOQUORUM = 3,
	EXIT_UNREACHABLE = 4,
	EXIT_INTERNAL = 5,
};

static const char *socket_path = "/run/hvpeer/hvpeer.sock";
static int timeout_ms = 5000;
static bool timeout_set;
static bool want_json;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: hvpeer [--socket PATH] [--timeout MS] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "Commands:\n"
	    "  status                         members, leader, term, lease, pause state\n"
	    "  pause --reason TEXT            stop the line: no host may enter "
	    "maintenance\n"
	    "  resume                         lift the pause\n"
	    "  lease show                     who holds the maintenance lease\n"
	    "  lease acquire [HOST]           take the lease for HOST (default: this "
	    "host)\n"
	    "  lease release [HOST] [--token N]\n"
	    "                                 give it back; without --token only this "
	    "host's\n"
	    "                                 own lease, with the token its replica "
	    "knows\n"
	    "  lease break --force --reason TEXT [HOST]\n"
	    "                                 take it from HOST (default: every holder)\n"
	    "  maintenance enter [HOST]       move HOST's guests away (live migration) "
	    "and put\n"
	    "                                 it in maintenance; shows progress "
	    "(default: this host)\n"
	    "  maintenance exit [HOST] [--rebalance]\n"
	    "                                 bring its guests back (or, with "
	    "--rebalance, spread\n"
	    "                                 them where there is most room), leave "
	    "maintenance,\n"
	    "                                 release the lease\n"
	    "  report                         per-guest downtime and elapsed time of the "
	    "moves,\n"
	    "                                 per-host time in maintenance, totals\n"
	    "  patch submit BUNDLE            roll a signed patch out, one host at a "
	    "time\n"
	    "  patch status                   the rollout: each host's phase and "
	    "version\n"
	    "  patch abort --reason TEXT      no further host starts\n"
	    "  plan [VERSION]                 dry run of a rollout: order, moves, "
	    "estimates,\n"
	    "                                 windows, pre-checks; nothing moves\n"
	    "  policy show | set KEY VALUE    rollout policies: window, zone, "
	    "blackouts,\n"
	    "                                 canary, soak, downtime budgets "
	    "('hvpeer policy\n"
	    "                                 --help')\n"
	    "  bmc status|sensors [HOST]      HOST's BMC: power state, sensors and "
	    "thresholds\n"
	    "  bmc power on|off|cycle|reset|soft [HOST] [--force]\n"
	    "                                 power HOST through its BMC\n"
	    "  bundle create|sign|verify|keygen|show ...\n"
	    "                                 make, sign and check signed patch bundles "
	    "(local\n"
	    "                                 files; 'hvpeer bundle --help')\n"
	    "  bootbank status|apply|set-next|mark-good|rollback|boot ...\n"
	    "                                 the A/B boot banks of this host (local; "
	    "'hvpeer\n"
	    "                                 bootbank --help')\n"
	    "  ca init|issue|revoke|show ...  the cluster CA and node certificates "
	    "(local\n"
	    "                                 files; 'hvpeer ca --help')\n"
	    "  token create [--ttl SECONDS]   a one-time join token (default 1 h): on "
	    "the new\n"
	    "                                 host, hvpeerd --join THIS-HOST --token "
	    "TOKEN\n"
	    "                                 gets its certificate signed by this "
	    "host\n"
	    "  help [COMMAND]                 this text\n"
	    "\n"
	    "Options:\n"
	    "  -s, --socket PATH   hvpeerd control socket (default "
	    "/run/hvpeer/hvpeer.sock,\n"
	    "                      or $HVPEER_SOCKET)\n"
	    "  -t, --timeout MS    give up after MS milliseconds (default 5000)\n"
	    "  -j, --json          print the daemon's answer as JSON\n"
	    "  -h, --help          this help\n"
	    "  -V, --version       print the version\n"
	    "\n"
	    "Exit status: 0 done; 1 refused by the cluster's rules; 2 usage error;\n"
	    "3 no quorum (no leader: nothing changed; after a timeout: check status;\n"
	    "  for status: the answer is from one node's replica);\n"
	    "4 hvpeerd not reachable, or no permission (not root nor in the socket's\n"
	    "  group; a write sent to the read-only socket); 5 internal or protocol "
	    "error.\n"
	    "\n"
	    "A user who may not open the control socket but is in hvpeerd's\n"
	    "readonly-group reads through the read-only socket next to it: status,\n"
	    "report, plan, lease show, policy show, patch status, bmc status and\n"
	    "bmc sensors.\n");
}

/* ---- transport --------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, char *buf, size_t len, struct timespec *deadline)
{
	while (len > 0) {
		struct timespec now;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (deadline->tv_sec - now.tv_sec) * 1000 +
		       (deadline->tv_nsec - now.tv_nsec) / 1000000;
		if (left <= 0)
			return -2;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A connected socket, or -1 (errno). */
static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The group that owns the file at path: "group NAME", in buf. */
static const char *group_of(const char *path, char *buf, size_t len)
{
	struct stat st;
	struct group *g;

	if (stat(path, &st) != 0)
		snprintf(buf, len, "its group");
	else if ((g = getgrgid(st.st_gid)) != NULL)
		snprintf(buf, len, "group %s", g->gr_name);
	else
		snprintf(buf, len, "group %u", (unsigned)st.st_gid);
	return buf;
}

/*
 * Connect to hvpeerd for req, or -1 with the reason printed and *code set.
 * The sockets' modes (0660) are the access control: a user who may not
 * open the control socket (not root, not in socket-group) is sent to the
 * read-only socket next to it (readonly-group) for a request that only
 * reads (access.h), and told which socket a write needs.
 */
static int open_socket(struct json_object *req, int *code)
{
	const char *op = json_object_get_string(json_object_object_get(req, "op"));
	struct json_object *a = json_object_object_get(req, "action");
	const char *action = a != NULL ? json_object_get_string(a) : NULL;
	size_t n = strlen(socket_path);
	char cmd[96], ro[sizeof((struct sockaddr_un *)0)->sun_path], g[96], rog[96];
	int fd = connect_to(socket_path), e = errno;

	*code = EXIT_UNREACHABLE;
	if (fd >= 0)
		return fd;
	if (e != EACCES) {
		fprintf(stderr,
		        "hvpeer: cannot reach hvpeerd at %s: %s\n"
		        "  is hvpeerd running on this host? (--socket PATH or "
		        "HVPEER_SOCKET pick another socket)\n",
		        socket_path, strerror(e));
		return -1;
	}
	if (op == NULL)
		op = "";
	hv_access_command(op, action, cmd, sizeof cmd);
	group_of(socket_path, g, sizeof g);
	if (!hv_access_readonly(op, action)) {
		fprintf(stderr,
		        "hvpeer: no access to %s: you are not root nor in %s; "
		        "'%s' needs it\n",
		        socket_path, g, cmd);
		return -1;
	}
	/* Not from a read-only socket to its own "-ro" neighbour. */
	if ((n > 8 && strcmp(socket_path + n - 8, "-ro.sock") == 0) ||
	    hv_readonly_socket_path(socket_path, ro, sizeof ro) != 0) {
		fprintf(stderr, "hvpeer: no access to %s: you are not root nor in %s\n",
		        socket_path, g);
		return -1;
	}
	fd = connect_to(ro);
	e = errno;
	if (fd >= 0) {
		char *p = strdup(ro);
		if (p == NULL) {
			fprintf(stderr, "hvpeer: out of memory\n");
			exit(EXIT_INTERNAL);
		}
		socket_path = p; /* for the messages that follow */
		return fd;
	}
	if (e == EACCES)
		fprintf(stderr,
		        "hvpeer: no access to %s nor to the read-only socket %s: you "
		        "are not root nor in %s or %s\n",
		        socket_path, ro, g, group_of(ro, rog, sizeof rog));
	else
		fprintf(stderr,
		        "hvpeer: no access to %s: you are not root nor in %s, and there "
		        "is no read-only socket at %s (%s; hvpeerd's readonly-group "
		        "opens one)\n",
		        socket_path, g, ro, strerror(e));
	return -1;
}

/* Send req, return the answer or NULL (and exit code in *code). */
static struct json_object *call(struct json_object *req, int *code)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timespec deadline;
	const char *text;
	size_t len;
	uint32_t be;
	char *body = NULL;
	int fd, rv;
	struct json_object *resp;

	if (strlen(socket_path) >= sizeof sa.sun_path) {
		fprintf(stderr, "hvpeer: socket path too long: %s\n", socket_path);
		*code = EXIT_USAGE;
		return NULL;
	}
	fd = open_socket(req, code);
	if (fd < 0)
		return NULL;
	text = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	be = htonl((uint32_t)len);
	if (write_all(fd, (char *)&be, 4) != 0 || write_all(fd, text, len) != 0) {
		fprintf(stderr, "hvpeer: %s: write: %s\n", socket_path, strerror(errno));
		close(fd);
		*code = EXIT_UNREACHABLE;
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	rv = read_all(fd, (char *)&be, 4, &deadline);
	if (rv == 0) {
		len = ntohl(be);
		if (len == 0 || len > HV_RPC_MAX) {
			fprintf(stderr, "hvpeer: bad answer from hvpeerd\n");
			close(fd);
			*code = EXIT_INTERNAL;
			return NULL;
		}
		body = malloc(len + 1);
		if (body == NULL) {
			fprintf(stderr, "hvpeer: out of memory\n");
			exit(EXIT_INTERNAL);
		}
		rv = read_all(fd, body, len, &deadline);
		body[len] = '\0';
	}
	close(fd);
	if (rv != 0) {
		if (rv == -2)
			fprintf(stderr, "hvpeer: no answer from hvpeerd within %d ms\n",
			        timeout_ms);
		else
			fprintf(
			    stderr,
			    "hvpeer: hvpeerd closed the connection without an answer\n");
		*code = rv == -2 ? EXIT_NOQUORUM : EXIT_UNREACHABLE;
		if (rv != -2)
			free(body);
		return NULL;
	}
	resp = json_tokener_parse(body);
	free(body);
	if (resp == NULL) {
		fprintf(stderr, "hvpeer: unparsable answer from hvpeerd\n");
		*code = EXIT_INTERNAL;
	}
	return resp;
}

/* ---- output ------------------------------------------------------------ */

static const char *s_of(struct json_object *o, const char *key, const char *dflt)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL)
		return dflt;
	return json_object_get_string(v);
}

static uint64_t u_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	return json_object_get_uint64(v);
}

static bool b_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o != NULL && json_object_object_get_ex(o, key, &v) && v != NULL &&
	       json_object_get_boolean(v);
}

static struct json_object *o_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *when(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == 0 || gmtime_r(&t, &tm) == NULL)
		return "-";
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

static const char *ago(uint64_t ms, char *buf, size_t len)
{
	struct timespec ts;
	uint64_t now;

	if (ms == 0)
		return "never";
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (now < ms)
		snprintf(buf, len, "now");
	else if (now - ms < 120000)
		snprintf(buf, len, "%llus ago", (unsigned long long)((now - ms) / 1000));
	else
		snprintf(buf, len, "%llum ago", (unsigned long long)((now - ms) / 60000));
	return buf;
}

static void print_lease(struct json_object *st)
{
	struct json_object *lease = o_of(st, "lease");
	struct json_object *holders = o_of(lease, "holders");
	size_t n = holders != NULL ? json_object_array_length(holders) : 0;
	char b[40];

	printf("lease:   %zu of %llu held", n,
	       (unsigned long long)u_of(lease, "max_concurrent"));
	if (n == 0)
		printf(" (free)");
	printf("\n");
	for (size_t i = 0; i < n; i++) {
		struct json_object *h = json_object_array_get_idx(holders, i);
		printf("         %s holds it, token %llu, since %s\n",
		       s_of(h, "name", "?"), (unsigned long long)u_of(h, "token"),
		       when(u_of(h, "granted_ms"), b, sizeof b));
	}
}

/* The member's patch phase while a rollout concerns it, else its report. */
static const char *patch_phase_of(struct json_object *st, const char *name,
                                  const char *dflt)
{
	struct json_object *hosts = o_of(o_of(st, "rollout"), "hosts");
	size_t n = hosts != NULL ? json_object_array_length(hosts) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *h = json_object_array_get_idx(hosts, i);
		if (!strcmp(s_of(h, "name", ""), name) &&
		    strcmp(s_of(h, "phase", ""), "idle"))
			return s_of(h, "phase", dflt);
	}
	return dflt;
}

static void print_status(struct json_object *st)
{
	struct json_object *leader = o_of(st, "leader");
	struct json_object *pause = o_of(st, "pause");
	struct json_object *members = o_of(st, "members");
	struct json_object *events = o_of(st, "events");
	size_t n = members != NULL ? json_object_array_length(members) : 0;
	char b[40], b2[40];

	if (!b_of(st, "quorum"))
		printf("WARNING: %s\n\n", s_of(st, "message", "no quorum"));
	printf("cluster: %zu member%s; leader %s; term %llu; commit index %llu; answered "
	       "by %s%s%s\n",
	       n, n == 1 ? "" : "s", leader != NULL ? s_of(leader, "name", "?") : "none",
	       (unsigned long long)u_of(st, "term"),
	       (unsigned long long)u_of(st, "commit_index"), s_of(st, "node", "?"),
	       o_of(st, "via") != NULL ? " via " : "",
	       o_of(st, "via") != NULL ? s_of(st, "via", "") : "");
	if (b_of(pause, "paused"))
		printf("paused:  YES, by %s since %s: %s\n", s_of(pause, "by", "?"),
		       when(u_of(pause, "since_ms"), b, sizeof b),
		       s_of(pause, "reason", ""));
	else
		printf("paused:  no\n");
	print_lease(st);
	{
		struct json_object *r = o_of(st, "rollout");
		if (r != NULL && u_of(r, "id") != 0)
			printf(
			    "patch:   %s %s: %s (%llu done, %llu failed; 'hvpeer patch "
			    "status')\n",
			    s_of(r, "bundle", "?"), s_of(r, "version", "?"),
			    b_of(r, "active")    ? "rolling out"
			    : b_of(r, "aborted") ? "aborted"
			                         : "finished",
			    (unsigned long long)u_of(r, "done"),
			    (unsigned long long)u_of(r, "failed"));
	}
	printf("\n%-16s %-8s %-3s %-11s %-24s %-22s %s\n", "MEMBER", "ROLE", "LDR",
	       "PHASE", "ADDRESS", "VERSION", "LAST REPORT");
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(members, i);
		printf("%-16s %-8s %-3s %-11s %-24s %-22.22s %s\n", s_of(m, "name", "?"),
		       s_of(m, "role", "?"), b_of(m, "leader") ? "*" : "",
		       patch_phase_of(st, s_of(m, "name", "?"), s_of(m, "phase", "?")),
		       s_of(m, "address", "?"), s_of(m, "version", ""),
		       ago(u_of(m, "last_report_ms"), b2, sizeof b2));
	}
	n = events != NULL ? json_object_array_length(events) : 0;
	if (n > 0)
		printf("\nrecent events (newest first):\n");
	for (size_t i = 0; i < n && i < 8; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		printf("  %6llu  %s  %s\n", (unsigned long long)u_of(e, "index"),
		       when(u_of(e, "time_ms"), b, sizeof b), s_of(e, "text", ""));
	}
}

/* Map an answer to an exit code, printing its message. */
static int outcome(struct json_object *resp)
{
	const char *err = s_of(resp, "error", NULL);
	int code;

	if (b_of(resp, "ok")) {
		if (!want_json && s_of(resp, "message", NULL) != NULL)
			printf("%s\n", s_of(resp, "message", ""));
		return EXIT_OK;
	}
	code = hv_errcode(err != NULL ? err : "");
	if (!want_json)
		fprintf(stderr, "hvpeer: %s\n",
		        s_of(resp, "message", err != NULL ? err : "failed"));
	switch (code) {
	case HV_NOQUORUM:
	case HV_NOTLEADER:
	case HV_TIMEOUT:
	case HV_SHUTDOWN:
		return EXIT_NOQUORUM;
	case HV_INVAL:
		return EXIT_USAGE;
	case HV_READONLY: /* a write sent to the read-only socket */
		return EXIT_UNREACHABLE;
	case HV_PROTO:
	case HV_NOMEM:
	case HV_IO:
	case HV_RAFT:
		return EXIT_INTERNAL;
	}
	return EXIT_REFUSED;
}

static int run(struct json_object *req, void (*print)(struct json_object *))
{
	int code = EXIT_INTERNAL;
	struct json_object *resp = call(req, &code);

	json_object_put(req);
	if (resp == NULL)
		return code;
	if (want_json)
		printf("%s\n", json_object_to_json_string_ext(
		                   resp, JSON_C_TO_STRING_PRETTY |
		                             JSON_C_TO_STRING_NOSLASHESCAPE));
	if (print != NULL && b_of(resp, "ok")) {
		if (!want_json)
			print(resp);
		/* a status answer says whether it had quorum; others are done */
		code = o_of(resp, "quorum") == NULL || b_of(resp, "quorum")
		           ? EXIT_OK
		           : EXIT_NOQUORUM;
	} else {
		code = outcome(resp);
	}
	json_object_put(resp);
	return code;
}

static struct json_object *request(const char *op)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "op", json_object_new_string(op));
	return req;
}

/* ---- commands ---------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hvpeer: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'hvpeer --help'.\n");
	return EXIT_USAGE;
}

/* Parse the options common to subcommands: --json, --reason, --token,
 * --force; returns the index of the first operand or -1. */
struct subopts {
	const char *reason;
	const char *token;
	bool force;
	bool rebalance;
};

static int parse_sub(int argc, char **argv, struct subopts *o)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"reason", required_argument, NULL, 'r'},
	    {"token", required_argument, NULL, 'T'},
	    {"force", no_argument, NULL, 'f'},
	    {"rebalance", no_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 0; /* full reinitialisation of GNU getopt for a new argv */
	while ((c = getopt_long(argc, argv, "jr:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			want_json = true;
			break;
		case 'r':
			o->reason = optarg;
			break;
		case 'T':
			o->token = optarg;
			break;
		case 'f':
			o->force = true;
			break;
		case 'B':
			o->rebalance = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			return -1;
		}
	}
	return optind;
}

static void print_token(struct json_object *o)
{
	time_t exp = (time_t)(u_of(o, "expires_ms") / 1000);
	char when[64];
	struct tm tm;

	if (localtime_r(&exp, &tm) == NULL ||
	    strftime(when, sizeof when, "%F %T %Z", &tm) == 0)
		snprintf(when, sizeof when, "?");
	printf("%s\n", s_of(o, "token", "?"));
	fprintf(stderr,
	        "One use, until %s. On the new host (an empty data dir):\n"
	        "  hvpeerd --name NAME --join %s --token TOKEN \\\n"
	        "      --tls-cert CERT --tls-key KEY --tls-ca CA ...\n"
	        "It makes KEY, gets CERT and CA signed by %s, then joins over TLS.\n",
	        when, s_of(o, "address", "?"), s_of(o, "node", "?"));
}

static int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ttl", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *usage = "usage: hvpeer token create [--ttl SECONDS] [--json]";
	struct json_object *req;
	unsigned long long ttl = 3600;
	char *end;
	int c;

	if (argc < 2 || strcmp(argv[1], "create") != 0)
		return usage_error("%s", usage);
	argc--;
	argv++;
	optind = 0;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			errno = 0;
			ttl = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || ttl < 60 || ttl > 7 * 86400)
				return usage_error("--ttl '%s': 60 to 604800 seconds",
				                   optarg);
			break;
		case 'j':
			want_json = true;
			break;
		case 'h':
			printf("%s\n\nA one-time token to join this cluster, valid --ttl "
			       "seconds (default 3600).\nThis host signs the new host's "
			       "certificate: it needs tls-ca-key.\n",
			       usage);
			return EXIT_OK;
		default:
			return usage_error("%s", usage);
		}
	}
	if (optind != argc)
		return usage_error("%s", usage);
	req = request("token-create");
	json_object_object_add(req, "ttl", json_object_new_uint64(ttl));
	return run(req, print_token);
}

static int cmd_status(int argc, char **argv)
{
	struct subopts o = {0};
	int i = parse_sub(argc, argv, &o);

	if (i < 0 || i != argc)
		return usage_error("status takes no operand");
	return run(request("status"), print_status);
}

static int cmd_pause(int argc, char **argv)
{
	struct subopts o = {0};
	int i = parse_sub(argc, argv, &o);
	struct json_object *req;

	if (i < 0 || i != argc)
		return usage_error("usage: hvpeer pause --reason TEXT");
	if (o.reason == NULL || o.reason[0] == '\0')
		return usage_error("pause needs --reason TEXT: say why the line stops");
	req = request("pause");
	json_object_object_add(req, "reason", json_object_new_string(o.reason));
	return run(req, NULL);
}

static int cmd_resume(int argc, char **argv)
{
	struct subopts o = {0};
	int i = parse_sub(argc, argv, &o);

	if (i < 0 || i != argc)
		return usage_error("resume takes no operand");
	return run(request("resume"), NULL);
}

static void print_lease_only(struct json_object *st)
{
	if (!b_of(st, "quorum"))
		printf("WARNING: %s\n", s_of(st, "message", "no quorum"));
	print_lease(st);
}

static int cmd_lease(int argc, char **argv)
{
	struct subopts o = {0};
	struct json_object *req;
	const char *sub;
	int i;

	if (argc < 2)
		return usage_error("usage: hvpeer lease show|acquire|release|break");
	sub = argv[1];
	i = parse_sub(argc - 1, argv + 1, &o);
	if (i < 0)
		return EXIT_USAGE;
	i += 1; /* index into argv */
	if (argc - i > 1)
		return usage_error("too many operands for lease %s", sub);
	if (!strcmp(sub, "show")) {
		if (argc - i != 0)
			return usage_error("lease show takes no operand");
		return run(request("status"), print_lease_only);
	}
	if (!strcmp(sub, "acquire")) {
		req = request("lease-acquire");
	} else if (!strcmp(sub, "release")) {
		req = request("lease-release");
		if (o.token != NULL) {
			char *end;
			unsigned long long t;
			errno = 0;
			t = strtoull(o.token, &end, 10);
			if (errno != 0 || *end != '\0' || t == 0) {
				json_object_put(req);
				return usage_error("--token: '%s' is not a token number",
				                   o.token);
			}
			json_object_object_add(req, "token", json_object_new_uint64(t));
		}
	} else if (!strcmp(sub, "break")) {
		if (!o.force)
			return usage_error(
			    "lease break needs --force: it takes the lease from a host "
			    "that may still be in maintenance");
		if (o.reason == NULL || o.reason[0] == '\0')
			return usage_error("lease break needs --reason TEXT");
		req = request("lease-break");
		json_object_object_add(req, "force", json_object_new_boolean(1));
		json_object_object_add(req, "reason", json_object_new_string(o.reason));
		json_object_object_add(
		    req, "name", json_object_new_string(argc - i == 1 ? argv[i] : ""));
	} else {
		return usage_error(
		    "unknown lease command '%s' (show, acquire, release, break)", sub);
	}
	if (argc - i == 1 && strcmp(sub, "break") != 0)
		json_object_object_add(req, "name", json_object_new_string(argv[i]));
	return run(req, NULL);
}

/* ---- maintenance and report ------------------------------------------- */

static void print_report(struct json_object *st)
{
	struct json_object *moves = o_of(st, "moves"), *members = o_of(st, "members");
	size_t n = moves != NULL ? json_object_array_length(moves) : 0;
	uint64_t down_total = 0, down_max = 0, el_total = 0;
	unsigned done = 0, failed = 0;
	char b[40];

	printf("%-16s %-10s %-10s %-9s %-8s %12s %12s %10s  %s\n", "GUEST", "FROM", "TO",
	       "ACTION", "STATUS", "DOWNTIME ms", "ELAPSED ms", "MiB sent", "WHEN");
	for (size_t i = n; i-- > 0;) { /* oldest first */
		struct json_object *m = json_object_array_get_idx(moves, i);
		const char *status = s_of(m, "status", "?");
		uint64_t dt = u_of(m, "downtime_ms"), el = u_of(m, "elapsed_ms");
		printf("%-16s %-10s %-10s %-9s %-8s %12llu %12llu %10llu  %s%s%s\n",
		       s_of(m, "guest", "?"), s_of(m, "source", "?"),
		       s_of(m, "target", "-"), s_of(m, "action", "?"), status,
		       (unsigned long long)dt, (unsigned long long)el,
		       (unsigned long long)(u_of(m, "bytes") >> 20),
		       when(u_of(m, "done_ms"), b, sizeof b),
		       o_of(m, "error") ? "  error: " : "", s_of(m, "error", ""));
		if (!strcmp(status, "done")) {
			done++;
			down_total += dt;
			el_total += el;
			if (dt > down_max)
				down_max = dt;
		} else if (!strcmp(status, "failed")) {
			failed++;
		}
	}
	n = members != NULL ? json_object_array_length(members) : 0;
	printf("\n%-16s %-12s %-22s %6s %14s\n", "HOST", "MAINTENANCE", "SINCE", "TIMES",
	       "TOTAL s");
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(members, i);
		uint64_t since = u_of(m, "maintenance_since_ms");
		printf("%-16s %-12s %-22s %6llu %14.1f\n", s_of(m, "name", "?"),
		       s_of(m, "maintenance", "?"),
		       since ? when(since, b, sizeof b) : "-",
		       (unsigned long long)u_of(m, "maintenance_count"),
		       (double)u_of(m, "maintenance_total_ms") / 1000.0);
	}
	printf("\ntotals: %u move%s done, %u failed; guest downtime %llu ms in all, %llu "
	       "ms at most, %.1f ms on average; migration time %llu ms in all\n",
	       done, done == 1 ? "" : "s", failed, (unsigned long long)down_total,
	       (unsigned long long)down_max, done ? (double)down_total / done : 0.0,
	       (unsigned long long)el_total);
}

static int cmd_report(int argc, char **argv)
{
	struct subopts o = {0};
	int i = parse_sub(argc, argv, &o);

	if (i < 0 || i != argc)
		return usage_error("report takes no operand");
	return run(request("status"), print_report);
}

static void print_patch(struct json_object *resp)
{
	struct json_object *r = o_of(resp, "rollout");
	struct json_object *hosts = o_of(r, "hosts"), *q = o_of(r, "quarantine");
	size_t n = hosts != NULL ? json_object_array_length(hosts) : 0;
	char b[40];

	if (r == NULL || u_of(r, "id") == 0) {
		printf("no patch has been submitted (hvpeer patch submit BUNDLE)\n");
		return;
	}
	printf("patch:   %s %s (digest %.16s..., key %s), submitted by %s at %s\n",
	       s_of(r, "bundle", "?"), s_of(r, "version", "?"), s_of(r, "digest", ""),
	       s_of(r, "key_id", "?"), s_of(r, "by", "?"),
	       when(u_of(r, "submitted_ms"), b, sizeof b));
	printf("state:   %s; %llu done, %llu failed\n",
	       b_of(r, "active")    ? (b_of(r, "aborted") ? "aborting" : "rolling out")
	       : b_of(r, "aborted") ? "aborted"
	                            : "finished",
	       (unsigned long long)u_of(r, "done"),
	       (unsigned long long)u_of(r, "failed"));
	if (s_of(r, "canary", "")[0] != '\0') {
		printf("canary:  %s", s_of(r, "canary", ""));
		if (u_of(r, "soak_until_ms") != 0)
			printf(", soaking until %s",
			       when(u_of(r, "soak_until_ms"), b, sizeof b));
		printf("\n");
	}
	if (u_of(r, "downtime_ms") != 0)
		printf("stun:    %llu ms of live-migration downtime so far\n",
		       (unsigned long long)u_of(r, "downtime_ms"));
	printf("\n%-16s %-12s %-20s %-22s %s\n", "HOST", "PHASE", "VERSION", "SINCE",
	       "LAST ERROR");
	for (size_t i = 0; i < n; i++) {
		struct json_object *h = json_object_array_get_idx(hosts, i);
		printf("%-16s %-12s %-20.20s %-22s %s\n", s_of(h, "name", "?"),
		       s_of(h, "phase", "?"), s_of(h, "version", ""),
		       when(u_of(h, "since_ms"), b, sizeof b), s_of(h, "error", ""));
	}
	n = q != NULL ? json_object_array_length(q) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(q, i);
		printf("%squarantined: %s (digest %.16s...): %s\n", i ? "" : "\n",
		       s_of(e, "version", "?"), s_of(e, "digest", ""),
		       s_of(e, "reason", ""));
	}
	if (b_of(resp, "paused") ||
	    (o_of(resp, "pause") != NULL && b_of(o_of(resp, "pause"), "paused")))
		printf("\nthe cluster is paused: see 'hvpeer status'\n");
}

/*
 * "hvpeer COMMAND SUB [ARGS]": with no SUB or with --help, print help (to
 * stdout) and return its exit code in *code; else set *sub and parse the
 * options after it, returning the index of the first operand in (*argv)
 * shifted past SUB, or -1 with *code set.
 */
static int subcommand(int *argc, char ***argv, const char *help, const char **sub,
                      struct subopts *o, int *code)
{
	int i;

	if (*argc < 2 || !strcmp((*argv)[1], "--help") || !strcmp((*argv)[1], "-h")) {
		fputs(help, stdout);
		*code = *argc < 2 ? EXIT_USAGE : EXIT_OK;
		return -1;
	}
	*sub = (*argv)[1];
	(*argc)--;
	(*argv)++;
	i = parse_sub(*argc, *argv, o);
	if (i < 0)
		*code = EXIT_USAGE;
	return i;
}

static int cmd_patch(int argc, char **argv)
{
	struct subopts o = {0};
	struct json_object *req;
	const char *sub;
	int i, code = EXIT_OK;

	if ((i = subcommand(
	         &argc, &argv,
	         "usage: hvpeer patch submit BUNDLE | status | abort --reason TEXT\n"
	         "  submit BUNDLE   verify the signed bundle on this host, keep it in "
	         "its\n"
	         "                  bundle-dir and start the rollout: hosts patch in "
	         "name\n"
	         "                  order, one at a time (policy max-concurrent: "
	         "more)\n"
	         "  status          the patch, each host's phase and version, "
	         "quarantines\n"
	         "  abort           no further host starts (a host mid-cycle "
	         "finishes)\n",
	         &sub, &o, &code)) < 0)
		return code;
	if (!strcmp(sub, "submit")) {
		char abs[4096];
		if (i != argc - 1)
			return usage_error("usage: hvpeer patch submit BUNDLE");
		if (realpath(argv[i], abs) == NULL)
			return usage_error("%s: %s", argv[i], strerror(errno));
		req = request("patch-submit");
		json_object_object_add(req, "path", json_object_new_string(abs));
		if (!timeout_set)
			timeout_ms = 120000; /* hashing a large bundle */
		return run(req, NULL);
	}
	if (!strcmp(sub, "status")) {
		if (i != argc)
			return usage_error("patch status takes no operand");
		return run(request("status"), print_patch);
	}
	if (!strcmp(sub, "abort")) {
		if (i != argc)
			return usage_error("patch abort takes no operand");
		if (o.reason == NULL || o.reason[0] == '\0')
			return usage_error("patch abort needs --reason TEXT");
		req = request("patch-abort");
		json_object_object_add(req, "reason", json_object_new_string(o.reason));
		return run(req, NULL);
	}
	return usage_error("unknown patch command '%s' (submit, status, abort)", sub);
}

static void print_policy(struct json_object *resp)
{
	struct json_object *p = o_of(resp, "policy");
	const char *w = s_of(p, "window", "");

	if (p == NULL) {
		printf("this hvpeerd knows no policies\n");
		return;
	}
	printf("window:          %s", w[0] ? w : "any time (no window)");
	if (w[0])
		printf(" (%s)", s_of(p, "zone", "")[0] ? s_of(p, "zone", "") : "UTC");
	printf("\n");
	if (s_of(p, "blackouts", "")[0])
		printf("blackouts:       %s\n", s_of(p, "blackouts", ""));
	printf("canary:          %s\n",
	       s_of(p, "canary", "")[0] ? s_of(p, "canary", "") : "none");
	printf("soak:            %llu s\n", (unsigned long long)u_of(p, "soak_s"));
	printf("cycle estimate:  %llu s%s\n",
	       (unsigned long long)u_of(p, "cycle_estimate_s"),
	       u_of(p, "cycle_estimate_s")
	           ? ""
	           : " (default: 1800 until a cycle is measured)");
	printf("concurrency:     %llu host%s at once%s\n",
	       (unsigned long long)(u_of(p, "max_concurrent") ? u_of(p, "max_concurrent")
	                                                      : 1),
	       u_of(p, "max_concurrent") > 1 ? "s" : "",
	       u_of(p, "max_concurrent") > 1 ? " (each one the capacity plan admits)"
	                                     : "");
	printf("quorum guard:    %s\n", b_of(p, "quorum_guard") ? "on" : "off");
	printf("failed hosts:    %llu tolerated per rollout before the line stops\n",
	       (unsigned long long)u_of(p, "max_failed_hosts"));
	printf("retries:         %llu failed pre-check%s retried, %llu s apart\n",
	       (unsigned long long)u_of(p, "max_retries"),
	       u_of(p, "max_retries") == 1 ? "" : "s",
	       (unsigned long long)(u_of(p, "retry_delay_s") ? u_of(p, "retry_delay_s")
	                                                     : 60));
	printf("downtime budget: %llu ms per guest, %llu ms per rollout (0: none)\n",
	       (unsigned long long)u_of(p, "downtime_budget_ms"),
	       (unsigned long long)u_of(p, "rollout_downtime_budget_ms"));
}

static void print_plan(struct json_object *resp)
{
	struct json_object *hosts = o_of(resp, "hosts"), *p = o_of(resp, "policy");
	size_t n = hosts != NULL ? json_object_array_length(hosts) : 0;
	char a[40], b[40];

	if (n == 0) {
		printf("nothing to patch: every host runs %s\n",
		       s_of(resp, "version", "")[0] ? s_of(resp, "version", "")
		                                    : "its version");
		return;
	}
	if (u_of(p, "max_concurrent") > 1)
		snprintf(a, sizeof a, "up to %llu at a time",
		         (unsigned long long)u_of(p, "max_concurrent"));
	else
		snprintf(a, sizeof a, "one at a time");
	printf("plan:    %s%s, %zu host%s, %s (dry run: nothing moves)\n",
	       s_of(resp, "version", "")[0] ? "patch to " : "patch every host",
	       s_of(resp, "version", ""), n, n == 1 ? "" : "s", a);
	if (s_of(p, "window", "")[0])
		printf("window:  %s (%s)%s%s\n", s_of(p, "window", ""),
		       s_of(p, "zone", "")[0] ? s_of(p, "zone", "") : "UTC",
		       s_of(p, "blackouts", "")[0] ? " except " : "",
		       s_of(p, "blackouts", ""));
	if (s_of(resp, "window_error", NULL) != NULL)
		printf("window:  does not parse here: %s\n",
		       s_of(resp, "window_error", ""));
	if (s_of(resp, "canary", "")[0])
		printf("canary:  %s first, then a soak of %llu s\n",
		       s_of(resp, "canary", ""), (unsigned long long)u_of(p, "soak_s"));
	printf("\n%-3s %-16s %-10s %-8s %-21s %-21s %s\n", "#", "HOST", "VERSION", "EST.",
	       "START", "END", "PRE-CHECK");
	for (size_t i = 0; i < n; i++) {
		struct json_object *h = json_object_array_get_idx(hosts, i);
		struct json_object *mv = o_of(h, "moves");
		size_t k = mv != NULL ? json_object_array_length(mv) : 0;
		char est[32];
		snprintf(est, sizeof est, "%llu min",
		         (unsigned long long)((u_of(h, "estimate_ms") + 59999) / 60000));
		printf("%-3zu %-16s %-10.10s %-8s %-21s %-21s %s\n", i + 1,
		       s_of(h, "name", "?"), s_of(h, "version", ""), est,
		       u_of(h, "start_ms") ? when(u_of(h, "start_ms"), a, sizeof a)
		                           : "no window fits",
		       when(u_of(h, "end_ms"), b, sizeof b), s_of(h, "precheck", "?"));
		for (size_t g = 0; g < k; g++) {
			struct json_object *x = json_object_array_get_idx(mv, g);
			const char *tg = s_of(x, "target", "");
			printf("      %s (%llu MiB): %s%s%s\n", s_of(x, "guest", "?"),
			       (unsigned long long)u_of(x, "mem_mib"),
			       s_of(x, "action", "?"), tg[0] ? " to " : "", tg);
		}
	}
	if (u_of(resp, "downtime_samples") > 0)
		printf(
		    "\nexpected stun per live-migrated guest: %llu ms (the mean of %llu "
		    "recorded migrations)\n",
		    (unsigned long long)u_of(resp, "downtime_ms_expected"),
		    (unsigned long long)u_of(resp, "downtime_samples"));
	if (u_of(resp, "end_ms"))
		printf("%sthe last host should be done by %s\n",
		       u_of(resp, "downtime_samples") > 0 ? "" : "\n",
		       when(u_of(resp, "end_ms"), a, sizeof a));
}

/* hvpeer plan [VERSION] */
static int cmd_plan(int argc, char **argv)
{
	struct subopts o = {0};
	struct json_object *req;
	int i = parse_sub(argc, argv, &o);

	if (i < 0 || i < argc - 1)
		return usage_error("usage: hvpeer plan [VERSION]");
	req = request("plan");
	if (i == argc - 1)
		json_object_object_add(req, "version", json_object_new_string(argv[i]));
	return run(req, print_plan);
}

/* hvpeer policy show | set KEY VALUE */
static int cmd_policy(int argc, char **argv)
{
	struct subopts o = {0};
	struct json_object *req;
	const char *sub;
	int i, code = EXIT_OK;

	if ((i = subcommand(
	         &argc, &argv,
	         "usage: hvpeer policy show | set KEY VALUE\n"
	         "  show                 the rollout policies every host agrees on\n"
	         "  set KEY VALUE        change one, committed through Raft (\"\" "
	         "resets it):\n"
	         "    window SPEC        when hosts may patch, e.g. \"Mon-Fri "
	         "22:00-04:00; Sat,Sun\n"
	         "                       00:00-24:00\"; a host starts only when "
	         "its cycle fits\n"
	         "    zone NAME          the window's IANA time zone (default "
	         "UTC)\n"
	         "    blackouts DATES    \"2026-12-24..2026-12-26, 2027-01-01\": no "
	         "window\n"
	         "    canary HOST|auto   patches alone first; its failure "
	         "quarantines the patch\n"
	         "    soak SECONDS       after the canary, before the others\n"
	         "    cycle-estimate S   a cycle's length until one is measured\n"
	         "    downtime-budget MS a guest stunned longer stops the line\n"
	         "    rollout-downtime-budget MS   all stuns of one rollout\n"
	         "    max-retries N      a failed pre-check is tried again N times "
	         "first\n"
	         "    retry-delay S      seconds between the tries (default 60)\n"
	         "    quorum-guard on|off  a host goes only if, with it down, the "
	         "voters left\n"
	         "                       could lose one more and keep quorum\n",
	         &sub, &o, &code)) < 0)
		return code;
	if (!strcmp(sub, "show")) {
		if (i != argc)
			return usage_error("policy show takes no operand");
		return run(request("status"), print_policy);
	}
	if (!strcmp(sub, "set")) {
		if (i != argc - 2)
			return usage_error("usage: hvpeer policy set KEY VALUE");
		req = request("policy-set");
		json_object_object_add(req, "key", json_object_new_string(argv[i]));
		json_object_object_add(req, "value", json_object_new_string(argv[i + 1]));
		return run(req, NULL);
	}
	return usage_error("unknown policy command '%s' (show, set)", sub);
}

static void print_bmc(struct json_object *resp)
{
	struct json_object *sv = o_of(resp, "sensors");
	size_t n = sv != NULL ? json_object_array_length(sv) : 0;
	const char *action = s_of(resp, "action", "status");

	if (!strcmp(action, "status")) {
		printf("%s: BMC %s: power %s\n", s_of(resp, "host", "?"),
		       s_of(resp, "address", "?"), s_of(resp, "power", "?"));
		return;
	}
	if (strcmp(action, "sensors") != 0) {
		printf("%s: BMC %s: power %s done\n", s_of(resp, "host", "?"),
		       s_of(resp, "address", "?"), action);
		return;
	}
	printf("%s: BMC %s\n%-20s %-12s %12s %-8s %s\n", s_of(resp, "host", "?"),
	       s_of(resp, "address", "?"), "SENSOR", "STATE", "VALUE", "UNIT",
	       "THRESHOLDS");
	for (size_t i = 0; i < n; i++) {
		struct json_object *x = json_object_array_get_idx(sv, i), *v, *t;
		char val[32] = "-";
		if (json_object_object_get_ex(x, "value", &v) && v != NULL)
			snprintf(val, sizeof val, "%g", json_object_get_double(v));
		t = o_of(x, "thresholds");
		printf("%-20s %-12s %12s %-8s %s\n", s_of(x, "name", "?"),
		       s_of(x, "state", "?"), val, s_of(x, "unit", ""),
		       t != NULL
		           ? json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN)
		           : "");
	}
}

/* hvpeer bmc status|sensors [HOST], hvpeer bmc power ACTION [HOST] [--force] */
static int cmd_bmc(int argc, char **argv)
{
	struct subopts o = {0};
	struct json_object *req;
	const char *sub, *action, *host = NULL;
	int i, code = EXIT_OK;

	if ((i = subcommand(
	         &argc, &argv,
	         "usage: hvpeer bmc status [HOST] | sensors [HOST] |\n"
	         "                  power on|off|cycle|reset|soft [HOST] [--force]\n"
	         "  HOST's BMC, through HOST's hvpeerd (its [bmc] settings and\n"
	         "  credentials; default: this host). off, cycle, reset and soft are\n"
	         "  refused while the host runs guests outside maintenance, unless\n"
	         "  --force.\n",
	         &sub, &o, &code)) < 0)
		return code;
	if (!strcmp(sub, "status") || !strcmp(sub, "sensors")) {
		action = sub;
	} else if (!strcmp(sub, "power")) {
		if (i >= argc)
			return usage_error(
			    "usage: hvpeer bmc power on|off|cycle|reset|soft "
			    "[HOST]");
		action = argv[i++];
	} else {
		return usage_error("unknown bmc command '%s' (status, sensors, power)",
		                   sub);
	}
	if (i < argc)
		host = argv[i++];
	if (i != argc)
		return usage_error("too many operands for bmc %s", sub);
	req = request("bmc");
	json_object_object_add(req, "action", json_object_new_string(action));
	if (host != NULL)
		json_object_object_add(req, "name", json_object_new_string(host));
	if (o.force)
		json_object_object_add(req, "force", json_object_new_boolean(1));
	if (!timeout_set)
		timeout_ms = 60000; /* a power cycle and a slow BMC */
	return run(req, print_bmc);
}

/* `hvpeer bundle ...` runs hvpeer-bundle (node/hvpeer-bundle.c): the
 * archive code stays out of this program, which every status call starts. */
static int run_bundle_tool(int argc, char **argv)
{
	char path[4096];
	char **args = calloc((size_t)argc + 3, sizeof *args);
	int n = 0;

	if (args == NULL) {
		fprintf(stderr, "hvpeer: out of memory\n");
		return EXIT_INTERNAL;
	}
	hv_program_path("hvpeer-bundle", path, sizeof path);
	args[n++] = path;
	if (want_json)
		args[n++] = "--json";
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execv(path, args);
	fprintf(stderr, "hvpeer: cannot run %s: %s\n", path, strerror(errno));
	free(args);
	return EXIT_INTERNAL;
}

static volatile sig_atomic_t progress_last_round;

static void progress_term(int sig)
{
	(void)sig;
	progress_last_round = 1;
}

/* While a maintenance runs, a child process prints the host's new events;
 * on SIGTERM it prints what arrived since its last look, then exits. */
static pid_t progress_start(const char *host)
{
	pid_t pid = fork();
	uint64_t last = 0;
	bool first = true;

	if (pid != 0)
		return pid;
	signal(SIGTERM, progress_term);
	for (int round = 0; round < 7200 && getppid() != 1; round++) {
		bool final = progress_last_round != 0;
		int code;
		struct json_object *st = call(request("status"), &code);
		struct json_object *ev = o_of(st, "events");
		size_t n = ev != NULL ? json_object_array_length(ev) : 0;
		uint64_t top = last;
		for (size_t i = n; i-- > 0;) {
			struct json_object *e = json_object_array_get_idx(ev, i);
			uint64_t idx = u_of(e, "index");
			const char *text = s_of(e, "text", "");
			if (idx > top)
				top = idx;
			if (first || idx <= last)
				continue;
			if (host[0] == '\0' || strncmp(text, host, strlen(host)) == 0 ||
			    strstr(text, "lease") != NULL ||
			    strstr(text, "paused") != NULL) {
				char b[40];
				printf("  %s  %s\n",
				       when(u_of(e, "time_ms"), b, sizeof b), text);
				fflush(stdout);
			}
		}
		last = top;
		first = false;
		json_object_put(st);
		if (final)
			break;
		usleep(500000);
	}
	_exit(0);
}

static int cmd_maintenance(int argc, char **argv)
{
	struct subopts o = {0};
	struct json_object *req;
	const char *sub, *host;
	pid_t child;
	int i, code;

	if (argc < 2)
		return usage_error("usage: hvpeer maintenance enter|exit [HOST]");
	sub = argv[1];
	i = parse_sub(argc - 1, argv + 1, &o);
	if (i < 0)
		return EXIT_USAGE;
	i += 1;
	if (argc - i > 1)
		return usage_error("too many operands for maintenance %s", sub);
	if (strcmp(sub, "enter") != 0 && strcmp(sub, "exit") != 0)
		return usage_error("unknown maintenance command '%s' (enter, exit)", sub);
	host = argc - i == 1 ? argv[i] : "";
	req = request(!strcmp(sub, "enter") ? "maint-enter" : "maint-exit");
	if (host[0] != '\0')
		json_object_object_add(req, "name", json_object_new_string(host));
	if (o.rebalance) {
		if (strcmp(sub, "exit") != 0) {
			json_object_put(req);
			return usage_error("--rebalance goes with maintenance exit");
		}
		json_object_object_add(req, "rebalance", json_object_new_boolean(1));
	}
	if (!timeout_set)
		timeout_ms = 3600 * 1000;
	fflush(stdout);
	child = want_json ? -1 : progress_start(host[0] ? host : "");
	code = run(req, NULL);
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *env = getenv("HVPEER_SOCKET");
	const char *cmd;
	int c;

	if (env != NULL && env[0] != '\0')
		socket_path = env;
	while ((c = getopt_long(argc, argv, "+s:t:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < 100 || v > 86400000)
				return usage_error("--timeout: '%s' is not a number of "
				                   "ms in 100..86400000",
				                   optarg);
			timeout_ms = (int)v;
			timeout_set = true;
			break;
		}
		case 'j':
			want_json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("hvpeer %s\n", HVPEER_VERSION);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'hvpeer --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "token"))
		return cmd_token(argc, argv);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc, argv);
	if (!strcmp(cmd, "pause"))
		return cmd_pause(argc, argv);
	if (!strcmp(cmd, "resume"))
		return cmd_resume(argc, argv);
	if (!strcmp(cmd, "lease"))
		return cmd_lease(argc, argv);
	if (!strcmp(cmd, "maintenance"))
		return cmd_maintenance(argc, argv);
	if (!strcmp(cmd, "report"))
		return cmd_report(argc, argv);
	if (!strcmp(cmd, "patch"))
		return cmd_patch(argc, argv);
	if (!strcmp(cmd, "bmc"))
		return cmd_bmc(argc, argv);
	if (!strcmp(cmd, "policy"))
		return cmd_policy(argc, argv);
	if (!strcmp(cmd, "plan"))
		return cmd_plan(argc, argv);
	if (!strcmp(cmd, "bundle"))
		return run_bundle_tool(argc, argv);
	if (!strcmp(cmd, "ca"))
		return hv_ca_main(argc, argv, want_json);
	if (!strcmp(cmd, "bootbank"))
		return hv_bootbank_main(argc, argv, want_json);
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	return usage_error("unknown command '%s'", cmd);
}
