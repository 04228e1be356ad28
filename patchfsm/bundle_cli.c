/*
 * hvpeer bundle: make, sign and check patch bundles (patchfsm/bundle.h).
 * Local files only; no daemon. Exit status as patchfsm/cli.h says: a bundle
 * that fails verification is 1, a bad command line 2, an I/O error 5.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/err.h"
#include "bundle.h"
#include "cli.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 5 };

#define ERR_LEN 1024

static const char *const usage_main =
    "usage: hvpeer [--json] bundle COMMAND [ARGS]\n"
    "\n"
    "Make, sign and check signed patch bundles (local files, no daemon needed).\n"
    "\n"
    "Commands:\n"
    "  keygen KEYFILE                 make an Ed25519 signing key pair\n"
    "  create --name N --version V --host-class C -o OUT FILE...\n"
    "                                 make an unsigned bundle\n"
    "  sign --key KEYFILE BUNDLE      sign a bundle (replaces an old signature)\n"
    "  verify --keys DIR BUNDLE       check a bundle before applying it\n"
    "  show BUNDLE                    print a manifest WITHOUT checking it\n"
    "\n"
    "'hvpeer bundle COMMAND --help' describes each command.\n"
    "Exit status: 0 done; 1 refused (the bundle failed a check); 2 usage error;\n"
    "5 internal or I/O error.\n";

static const char *const usage_keygen =
    "usage: hvpeer bundle keygen KEYFILE\n"
    "\n"
    "Make an Ed25519 key pair: the private key in KEYFILE (mode 0600; keep it\n"
    "on the signing machine) and the public key in KEYFILE.pub, to copy into\n"
    "the trusted keys directory of every host. Prints the key id. Never\n"
    "overwrites an existing file.\n";

static const char *const usage_create =
    "usage: hvpeer bundle create --name NAME --version V [--min-version V]\n"
    "           --host-class CLASS [--expires TIME | --valid-days N]\n"
    "           [--hook pre-apply|post-apply|validate=FILE]... -o OUT FILE...\n"
    "\n"
    "Make an unsigned bundle OUT. Each FILE goes in as payload/<its name>, each\n"
    "hook as hooks/<its name>; the manifest records their sizes and SHA-256.\n"
    "\n"
    "  --name NAME          1..63 of [A-Za-z0-9._-]\n"
    "  --version V          the version the bundle installs (e.g. 1.2.0)\n"
    "  --min-version V      the lowest installed version it applies on\n"
    "  --host-class CLASS   the class of hosts it is for (e.g. lab-x86_64)\n"
    "  --expires TIME       refuse it after TIME (UTC, 2024-05-01T12:00:00Z)\n"
    "  --valid-days N       refuse it N days from now\n"
    "  --hook KIND=FILE     a script run at that step (repeat for each kind)\n"
    "  -o, --output OUT     the bundle to write (replaced if it exists)\n";

static const char *const usage_sign =
    "usage: hvpeer bundle sign --key KEYFILE BUNDLE\n"
    "\n"
    "Sign BUNDLE with the private key KEYFILE (from 'hvpeer bundle keygen'),\n"
    "replacing any earlier signature. Checks the payload against the manifest\n"
    "first: it refuses to sign a bundle whose files do not match.\n";

static const char *const usage_verify =
    "usage: hvpeer bundle verify --keys DIR [--installed V] [--floor V]\n"
    "           [--host-class CLASS] [--extract DIR] [--max-payload BYTES] BUNDLE\n"
    "\n"
    "Check BUNDLE: signed by a key in DIR (*.pub, *.pem), every file as the\n"
    "manifest says and nothing else, not expired, and, when given, for this\n"
    "host class, not older than the installed version or the cluster's floor,\n"
    "and applicable on the installed version. Exit 1 when refused.\n"
    "\n"
    "  --keys DIR           the trusted public keys\n"
    "  --installed V        the version installed on this host\n"
    "  --floor V            the highest version the cluster has committed\n"
    "  --host-class CLASS   this host's class\n"
    "  --extract DIR        also unpack the checked files under DIR (created if\n"
    "                       missing; nothing is left there when a check fails)\n"
    "  --max-payload BYTES  refuse a larger payload (default 8 GiB)\n";

static const char *const usage_show =
    "usage: hvpeer bundle show BUNDLE\n"
    "\n"
    "Print BUNDLE's manifest and digest WITHOUT checking its signature or its\n"
    "files: for a look only. Use 'hvpeer bundle verify' before trusting it.\n";

__attribute__((format(printf, 2, 3))) static int usage_error(const char *cmd,
                                                             const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hvpeer bundle%s%s: ", cmd[0] ? " " : "", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'hvpeer bundle%s%s --help')\n", cmd[0] ? " " : "", cmd);
	return EXIT_USAGE;
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(
	                   o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int exit_code(int rv)
{
	switch (rv) {
	case HV_OK:
		return EXIT_OK;
	case HV_INVAL:
		return EXIT_USAGE;
	case HV_IO:
	case HV_NOMEM:
		return EXIT_INTERNAL;
	default:
		return EXIT_REFUSED;
	}
}

/* Report a library failure: on stderr, or as {"ok":false,...} on stdout. */
static int failed(bool json, int rv, const char *msg)
{
	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "error",
		                       json_object_new_string(hv_errname(rv)));
		json_object_object_add(o, "message", json_object_new_string(msg));
		print_json(o);
		json_object_put(o);
	} else {
		fprintf(stderr, "hvpeer: %s\n", msg);
	}
	return exit_code(rv);
}

static void oom(void)
{
	fprintf(stderr, "hvpeer: out of memory\n");
	exit(EXIT_INTERNAL);
}

/* A JSON answer with "ok": true. */
static struct json_object *answer(void)
{
	struct json_object *o = json_object_new_object();

	if (o == NULL)
		oom();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

/* Options every subcommand takes (--json, --help; each table ends with
 * them). Returns -1 to go on, else an exit code. */
static int common_opt(int c, const char *cmd, const char *usage, char **argv, bool *json)
{
	switch (c) {
	case 'j':
		*json = true;
		return -1;
	case 'h':
		fputs(usage, stdout);
		return EXIT_OK;
	default:
		return usage_error(cmd, "unknown option or missing argument in '%s'",
		                   argv[optind - 1]);
	}
}

/* Exactly one operand after the options; NULL after a usage error. */
static const char *one_operand(int argc, char **argv, const char *cmd, const char *what,
                               int *code)
{
	if (optind >= argc) {
		*code = usage_error(cmd, "%s is missing", what);
		return NULL;
	}
	if (optind + 1 < argc) {
		*code =
		    usage_error(cmd, "one %s only, got '%s' too", what, argv[optind + 1]);
		return NULL;
	}
	return argv[optind];
}

static int cmd_keygen(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char id[HV_KEY_ID_LEN + 1], err[ERR_LEN];
	const char *path;
	int c, rv;

	optind = 0;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1)
		if ((rv = common_opt(c, "keygen", usage_keygen, argv, &json)) >= 0)
			return rv;
	path = one_operand(argc, argv, "keygen", "KEYFILE", &rv);
	if (path == NULL)
		return rv;
	rv = hv_bundle_keygen(path, id, err, sizeof err);
	if (rv != HV_OK)
		return failed(json, rv, err);
	if (json) {
		struct json_object *o = answer();
		char pub[ERR_LEN];

		snprintf(pub, sizeof pub, "%s.pub", path);
		json_object_object_add(o, "key-id", json_object_new_string(id));
		json_object_object_add(o, "private", json_object_new_string(path));
		json_object_object_add(o, "public", json_object_new_string(pub));
		print_json(o);
		json_object_put(o);
	} else {
		printf(
		    "key %s\n"
		    "  private key: %s (keep it secret, on the signing machine)\n"
		    "  public key:  %s.pub (copy it into the trusted keys directory of "
		    "every host)\n",
		    id, path, path);
	}
	return EXIT_OK;
}

/* "payload/" or "hooks/" + the file's own name. */
static int archive_path(const char *prefix, const char *file, char *out, size_t n)
{
	const char *slash = strrchr(file, '/');
	const char *base = slash != NULL ? slash + 1 : file;

	if (base[0] == '\0')
		return usage_error("create", "'%s' names a directory, not a file", file);
	if ((size_t)snprintf(out, n, "%s%s", prefix, base) >= n)
		return usage_error("create", "the name of '%s' is too long", file);
	return EXIT_OK;
}

struct create_args {
	struct hv_bundle_spec spec;
	struct hv_bundle_input in[HV_BUNDLE_MAX_FILES];
	char paths[HV_BUNDLE_MAX_FILES][HV_BUNDLE_PATH_MAX + 1];
	unsigned n;
};

/* Add a file to the bundle; the same file may serve as several hooks. */
static int add_input(struct create_args *a, const char *prefix, const char *file,
                     const char **path)
{
	char p[HV_BUNDLE_PATH_MAX + 1];
	int rv = archive_path(prefix, file, p, sizeof p);

	if (rv != EXIT_OK)
		return rv;
	for (unsigned i = 0; i < a->n; i++)
		if (strcmp(a->paths[i], p) == 0) {
			if (strcmp(a->in[i].src, file) != 0)
				return usage_error(
				    "create",
				    "'%s' and '%s' would both be %s in the "
				    "bundle: rename one",
				    a->in[i].src, file, p);
			*path = a->paths[i];
			return EXIT_OK;
		}
	if (a->n == HV_BUNDLE_MAX_FILES)
		return usage_error("create", "a bundle holds at most %d files",
		                   HV_BUNDLE_MAX_FILES);
	memcpy(a->paths[a->n], p, sizeof p);
	a->in[a->n].path = a->paths[a->n];
	a->in[a->n].src = file;
	*path = a->paths[a->n++];
	return EXIT_OK;
}

static int parse_hook(struct create_args *a, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char kind[16];
	int h;

	if (eq == NULL || eq == arg || (size_t)(eq - arg) >= sizeof kind || eq[1] == '\0')
		return usage_error("create", "--hook wants KIND=FILE, not '%s'", arg);
	memcpy(kind, arg, (size_t)(eq - arg));
	kind[eq - arg] = '\0';
	h = hv_hook_parse(kind);
	if (h < 0)
		return usage_error("create",
		                   "unknown hook '%s': pre-apply, post-apply or validate",
		                   kind);
	if (a->spec.hooks[h] != NULL)
		return usage_error("create", "the %s hook is given twice", kind);
	return add_input(a, "hooks/", eq + 1, &a->spec.hooks[h]);
}

static int cmd_create(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"version", required_argument, NULL, 'v'},
	    {"min-version", required_argument, NULL, 'm'},
	    {"host-class", required_argument, NULL, 'c'},
	    {"expires", required_argument, NULL, 'e'},
	    {"valid-days", required_argument, NULL, 'd'},
	    {"hook", required_argument, NULL, 'H'},
	    {"output", required_argument, NULL, 'o'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct create_args *a = calloc(1, sizeof *a);
	const char *out = NULL, *expires = NULL, *days = NULL, *ignored;
	char err[ERR_LEN];
	int c, rv = EXIT_OK;

	if (a == NULL)
		oom();
	optind = 0;
	while (rv == EXIT_OK && (c = getopt_long(argc, argv, "o:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			a->spec.name = optarg;
			break;
		case 'v':
			a->spec.version = optarg;
			break;
		case 'm':
			a->spec.min_version = optarg;
			break;
		case 'c':
			a->spec.host_class = optarg;
			break;
		case 'e':
			expires = optarg;
			break;
		case 'd':
			days = optarg;
			break;
		case 'H':
			rv = parse_hook(a, optarg);
			break;
		case 'o':
			out = optarg;
			break;
		default:
			if ((c = common_opt(c, "create", usage_create, argv, &json)) >= 0)
				rv = c == EXIT_OK ? -2 : c;
		}
	}
	if (rv != EXIT_OK)
		goto out;
	rv = EXIT_USAGE;
	if (a->spec.name == NULL)
		rv = usage_error("create", "--name is required");
	else if (a->spec.version == NULL)
		rv = usage_error("create", "--version is required");
	else if (a->spec.host_class == NULL)
		rv = usage_error("create", "--host-class is required");
	else if (out == NULL)
		rv = usage_error("create", "-o OUT is required");
	else if (expires != NULL && days != NULL)
		rv = usage_error("create", "give --expires or --valid-days, not both");
	else if (optind >= argc && a->n == 0)
		rv = usage_error("create", "no FILE to put in the bundle");
	else
		rv = EXIT_OK;
	if (rv != EXIT_OK)
		goto out;
	a->spec.created = time(NULL);
	if (expires != NULL && hv_rfc3339_parse(expires, &a->spec.expires) != HV_OK) {
		rv = usage_error("create",
		                 "--expires '%s' is not a UTC time like "
		                 "2024-05-01T12:00:00Z",
		                 expires);
		goto out;
	}
	if (days != NULL) {
		char *end;
		long d = strtol(days, &end, 10);

		if (*end != '\0' || end == days || d < 1 || d > 36500) {
			rv = usage_error("create",
			                 "--valid-days '%s' is not a number of days "
			                 "in 1..36500",
			                 days);
			goto out;
		}
		a->spec.expires = a->spec.created + (time_t)d * 86400;
	}
	for (int i = optind; i < argc && rv == EXIT_OK; i++)
		rv = add_input(a, "payload/", argv[i], &ignored);
	if (rv != EXIT_OK)
		goto out;
	a->spec.files = a->in;
	a->spec.n_files = a->n;
	rv = hv_bundle_create(out, &a->spec, err, sizeof err);
	if (rv != HV_OK) {
		rv = failed(json, rv, err);
		goto out;
	}
	if (json) {
		struct json_object *o = answer();

		json_object_object_add(o, "bundle", json_object_new_string(out));
		json_object_object_add(o, "signed", json_object_new_boolean(0));
		print_json(o);
		json_object_put(o);
	} else {
		printf("made unsigned bundle %s: %s %s for %s, %u files; sign it with "
		       "'hvpeer bundle sign --key KEY %s'\n",
		       out, a->spec.name, a->spec.version, a->spec.host_class, a->n, out);
	}
	rv = EXIT_OK;
out:
	free(a);
	return rv == -2 ? EXIT_OK : rv;
}

static int cmd_sign(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char id[HV_KEY_ID_LEN + 1], digest[HV_DIGEST_LEN + 1], err[ERR_LEN];
	const char *key = NULL, *path;
	int c, rv;

	optind = 0;
	while ((c = getopt_long(argc, argv, "k:jh", opts, NULL)) != -1) {
		if (c == 'k')
			key = optarg;
		else if ((rv = common_opt(c, "sign", usage_sign, argv, &json)) >= 0)
			return rv;
	}
	if (key == NULL)
		return usage_error("sign", "--key KEYFILE is required");
	path = one_operand(argc, argv, "sign", "BUNDLE", &rv);
	if (path == NULL)
		return rv;
	rv = hv_bundle_sign(path, key, id, err, sizeof err);
	if (rv == HV_OK)
		rv = hv_bundle_digest(path, digest, err, sizeof err);
	if (rv != HV_OK)
		return failed(json, rv, err);
	if (json) {
		struct json_object *o = answer();

		json_object_object_add(o, "bundle", json_object_new_string(path));
		json_object_object_add(o, "key-id", json_object_new_string(id));
		json_object_object_add(o, "digest", json_object_new_string(digest));
		print_json(o);
		json_object_put(o);
	} else {
		printf("signed bundle %s with key %s; digest %s\n", path, id, digest);
	}
	return EXIT_OK;
}

static int cmd_verify(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"keys", required_argument, NULL, 'k'},
	    {"installed", required_argument, NULL, 'i'},
	    {"floor", required_argument, NULL, 'f'},
	    {"host-class", required_argument, NULL, 'c'},
	    {"extract", required_argument, NULL, 'x'},
	    {"max-payload", required_argument, NULL, 'M'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct hv_verify_opts o = {0};
	struct hv_manifest *m;
	char err[ERR_LEN];
	const char *path;
	int c, rv;

	optind = 0;
	while ((c = getopt_long(argc, argv, "k:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o.trusted_dir = optarg;
			break;
		case 'i':
			o.installed_version = optarg;
			break;
		case 'f':
			o.floor_version = optarg;
			break;
		case 'c':
			o.host_class = optarg;
			break;
		case 'x':
			o.extract_dir = optarg;
			break;
		case 'M': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);

			if (*end != '\0' || end == optarg || optarg[0] == '-' || v == 0)
				return usage_error(
				    "verify",
				    "--max-payload '%s' is not a number of bytes",
				    optarg);
			o.max_payload = v;
			break;
		}
		default:
			if ((rv = common_opt(c, "verify", usage_verify, argv, &json)) >=
			    0)
				return rv;
		}
	}
	if (o.trusted_dir == NULL)
		return usage_error("verify", "--keys DIR is required");
	if (o.installed_version != NULL && !hv_version_valid(o.installed_version))
		return usage_error("verify", "--installed '%s' is not a version",
		                   o.installed_version);
	if (o.floor_version != NULL && !hv_version_valid(o.floor_version))
		return usage_error("verify", "--floor '%s' is not a version",
		                   o.floor_version);
	path = one_operand(argc, argv, "verify", "BUNDLE", &rv);
	if (path == NULL)
		return rv;
	o.now = time(NULL);
	m = malloc(sizeof *m);
	if (m == NULL)
		oom();
	rv = hv_bundle_verify(path, &o, m, err, sizeof err);
	if (rv != HV_OK) {
		free(m);
		return failed(json, rv, err);
	}
	if (json) {
		struct json_object *a = answer(), *j = hv_manifest_to_json(m);

		if (j == NULL)
			oom();
		json_object_object_add(a, "verified", json_object_new_boolean(1));
		json_object_object_add(a, "bundle", json_object_new_string(path));
		if (o.extract_dir != NULL)
			json_object_object_add(a, "extracted-to",
			                       json_object_new_string(o.extract_dir));
		json_object_object_add(a, "manifest", j);
		print_json(a);
		json_object_put(a);
	} else {
		printf("bundle %s %s: signature good (key %s), %u files, digest %s: OK\n",
		       m->name, m->version, m->key_id, m->n_files, m->digest);
		if (o.extract_dir != NULL)
			printf("extracted to %s\n", o.extract_dir);
	}
	free(m);
	return EXIT_OK;
}

static void print_manifest(const char *path, const struct hv_manifest *m)
{
	char t[21];

	printf("bundle %s: %s %s -- UNVERIFIED: nothing below is checked; run "
	       "'hvpeer bundle verify' before trusting it\n",
	       path, m->name, m->version);
	printf("  host class:     %s\n", m->host_class);
	printf("  min version:    %s\n", m->min_version[0] ? m->min_version : "(none)");
	hv_rfc3339_format(m->created, t);
	printf("  created:        %s\n", t);
	hv_rfc3339_format(m->expires, t);
	printf("  expires:        %s\n", m->expires != 0 ? t : "never");
	if (m->key_id[0] != '\0')
		printf("  signed by:      key %s (claimed, not checked)\n", m->key_id);
	else
		printf("  signed by:      nobody (no readable manifest.sig)\n");
	printf("  digest:         %s\n", m->digest);
	printf("  files:          %u, %llu bytes\n", m->n_files,
	       (unsigned long long)m->total_size);
	for (unsigned i = 0; i < m->n_files; i++)
		printf("    %12llu  %s  %s\n", (unsigned long long)m->files[i].size,
		       m->files[i].sha256, m->files[i].path);
	for (int h = 0; h < HV__HOOK_N; h++) {
		char label[32];

		if (m->hooks[h][0] == '\0')
			continue;
		snprintf(label, sizeof label, "%s hook:", hv_hook_name(h));
		printf("  %-16s%s\n", label, m->hooks[h]);
	}
}

static int cmd_show(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct hv_manifest *m;
	char err[ERR_LEN];
	const char *path;
	int c, rv;

	optind = 0;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1)
		if ((rv = common_opt(c, "show", usage_show, argv, &json)) >= 0)
			return rv;
	path = one_operand(argc, argv, "show", "BUNDLE", &rv);
	if (path == NULL)
		return rv;
	m = malloc(sizeof *m);
	if (m == NULL)
		oom();
	rv = hv_bundle_inspect(path, m, err, sizeof err);
	if (rv == HV_OK)
		rv = hv_bundle_digest(path, m->digest, err, sizeof err);
	if (rv != HV_OK) {
		free(m);
		return failed(json, rv, err);
	}
	if (json) {
		struct json_object *a = answer(), *j = hv_manifest_to_json(m);

		if (j == NULL)
			oom();
		json_object_object_add(a, "verified", json_object_new_boolean(0));
		json_object_object_add(a, "bundle", json_object_new_string(path));
		json_object_object_add(a, "manifest", j);
		print_json(a);
		json_object_put(a);
	} else {
		print_manifest(path, m);
	}
	free(m);
	return EXIT_OK;
}

int hv_bundle_main(int argc, char **argv, bool json)
{
	const char *cmd;

	/* getopt's own messages would name argv[0], "bundle"; ours say more. */
	opterr = 0;
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	argc--;
	argv++;
	if (!strcmp(cmd, "keygen"))
		return cmd_keygen(argc, argv, json);
	if (!strcmp(cmd, "create"))
		return cmd_create(argc, argv, json);
	if (!strcmp(cmd, "sign"))
		return cmd_sign(argc, argv, json);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc, argv, json);
	if (!strcmp(cmd, "show"))
		return cmd_show(argc, argv, json);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_main, stdout);
		return EXIT_OK;
	}
	return usage_error("", "unknown command '%s'", cmd);
}
