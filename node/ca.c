/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../consensus/codec.h"
#include "ca.h"
#include "tls.h"

#define MAX_DAYS 36500

static const char *const usage_text =
    "usage: hvpeer [--json] ca COMMAND [ARGS]\n"
    "\n"
    "The cluster's certificate authority: it signs one certificate per node,\n"
    "which binds the node's name and Raft id (CN=NAME, and the subject\n"
    "alternative name URI:hvpeer:node/NAME/ID).\n"
    "\n"
    "  init --dir DIR [--days N]\n"
    "        make the CA: DIR/ca.key (0600) and DIR/ca.crt (default 3650 days)\n"
    "  issue --dir DIR --name NAME [--id ID] --out PREFIX [--days N]\n"
    "        a node's key and certificate, PREFIX.key (0600) and PREFIX.crt,\n"
    "        signed by the CA in DIR (default 825 days). ID is the node's Raft\n"
    "        id: for a node that has run before, the first number of its data\n"
    "        dir's node.id; without --id a new random one, which a node\n"
    "        started on an empty data dir with this certificate takes\n"
    "  revoke --dir DIR CERT [--days N]\n"
    "        add CERT (issued by the CA in DIR) to DIR/ca.crl, signed anew and\n"
    "        valid for N days (default 3650); give that file to every node\n"
    "        (tls-crl) and reload them (SIGHUP)\n"
    "  show CERT\n"
    "        a certificate's node identity, issuer, validity and SHA-256\n"
    "        fingerprint\n"
    "\n"
    "No key or certificate is overwritten: one that exists is an error\n"
    "(revoke replaces DIR/ca.crl).\n"
    "Exit status: 0 done; 1 refused (a file exists, a bad certificate);\n"
    "2 usage error; 5 internal error.\n";

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	unsigned long e = ERR_get_error();

	fputs("hvpeer: ca: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (e != 0) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof buf);
		fprintf(stderr, " (%s)", buf);
	}
	fputc('\n', stderr);
	ERR_clear_error();
	return code;
}

/* Write a PEM object to a new file (mode), never over an existing one. */
static int write_new(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return fail(1, "%s: %s", path, strerror(errno));
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		return fail(5, "%s: %s", path, strerror(errno));
	}
	ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
	                 : PEM_write_X509(f, cert);
	if (fclose(f) != 0 || ok != 1) {
		unlink(path);
		return fail(5, "%s: cannot write", path);
	}
	return 0;
}

static int parse_days(const char *v, long def, long *out)
{
	char *end;
	long d;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	errno = 0;
	d = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || d < 1 || d > MAX_DAYS)
		return -1;
	*out = d;
	return 0;
}

static int ca_init(const char *dir, long days)
{
	char kpath[4096], cpath[4096];
	EVP_PKEY *key;
	X509 *cert;
	int rc;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail(1, "%s: %s", dir, strerror(errno));
	snprintf(kpath, sizeof kpath, "%s/ca.key", dir);
	snprintf(cpath, sizeof cpath, "%s/ca.crt", dir);
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0)
		return fail(
		    1, "%s already holds a CA (ca.key or ca.crt): not overwritten", dir);
	if ((key = hv_tls_new_key()) == NULL)
		return fail(5, "cannot make a key");
	if ((cert = hv_tls_make_cert(key, "hvpeer cluster CA", days, NULL, key, NULL)) ==
	    NULL) {
		EVP_PKEY_free(key);
		return fail(5, "cannot make the CA certificate");
	}
	rc = write_new(kpath, 0600, key, NULL);
	if (rc == 0 && (rc = write_new(cpath, 0644, NULL, cert)) != 0)
		unlink(kpath);
	if (rc == 0)
		printf("CA made: %s (keep it secret) and %s (give it to every node)\n",
		       kpath, cpath);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* The CA in dir: its certificate and key. 0, or the exit status (said). */
static int load_ca(const char *dir, X509 **ca, EVP_PKEY **ca_key)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/ca.crt", dir);
	if ((*ca = hv_tls_read_cert(path)) == NULL)
		return fail(
		    1, "%s: not a certificate (make the CA with 'hvpeer ca init')", path);
	snprintf(path, sizeof path, "%s/ca.key", dir);
	if ((f = fopen(path, "re")) == NULL)
		return fail(1, "%s: %s", path, strerror(errno));
	*ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (*ca_key == NULL || X509_check_private_key(*ca, *ca_key) != 1)
		return fail(1, "%s: not the key of %s/ca.crt", path, dir);
	return 0;
}

static int ca_issue(const char *dir, const char *node, const char *id_text, long days,
                    const char *out)
{
	char kpath[4096], cpath[4096], san[HV_NAME_MAX + 64];
	EVP_PKEY *ca_key = NULL, *key = NULL;
	X509 *ca = NULL, *cert = NULL;
	unsigned long long id;
	char *end;
	int rc = 5;

	if (!hv_name_valid(node))
		return fail(2, "--name '%s' is not 1-63 of [A-Za-z0-9._-]", node);
	if (id_text == NULL) {
		/* A new node: a random id, as hvpeerd would choose (below 2^63). */
		id = 0;
		while (id == 0)
			if (RAND_bytes((unsigned char *)&id, sizeof id) != 1)
				return fail(5, "no randomness for an id");
			else
				id &= UINT64_MAX >> 1;
	} else {
		errno = 0;
		id = strtoull(id_text, &end, 10);
		if (errno != 0 || *end != '\0' || id == 0 || id_text[0] == '-')
			return fail(
			    2, "--id '%s' is not a Raft id (a positive 64-bit number)",
			    id_text);
	}
	if ((rc = load_ca(dir, &ca, &ca_key)) != 0)
		goto out;
	rc = 5;
	snprintf(kpath, sizeof kpath, "%s.key", out);
	snprintf(cpath, sizeof cpath, "%s.crt", out);
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0) {
		rc = fail(1, "%s or %s exists: not overwritten", kpath, cpath);
		goto out;
	}
	hv_tls_node_san(san, sizeof san, node, id);
	if ((key = hv_tls_new_key()) == NULL ||
	    (cert = hv_tls_make_cert(key, node, days, ca, ca_key, san)) == NULL) {
		rc = fail(5, "cannot make the certificate");
		goto out;
	}
	rc = write_new(kpath, 0600, key, NULL);
	if (rc == 0 && (rc = write_new(cpath, 0644, NULL, cert)) != 0)
		unlink(kpath);
	if (rc == 0)
		printf("certificate for %s (Raft id %llu): %s, key %s\n", node, id, cpath,
		       kpath);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

/* Write crl to path through a temporary file and rename(). */
static int write_crl(const char *path, X509_CRL *crl)
{
	char tmp[4200];
	FILE *f;
	int ok, fd;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(1, "%s: %s", tmp, strerror(errno));
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(tmp);
		return fail(5, "%s: %s", tmp, strerror(errno));
	}
	ok = PEM_write_X509_CRL(f, crl);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || ok != 1 ||
	    rename(tmp, path) != 0) {
		unlink(tmp);
		return fail(5, "%s: cannot write", path);
	}
	return 0;
}

/*
 * Add cert (issued by the CA in dir) to DIR/ca.crl, made anew and signed,
 * valid for days. The entries of the CRL there are kept.
 */
static int ca_revoke(const char *dir, const char *cert_path, long days)
{
	char path[4096], name[HV_NAME_MAX + 1] = "?";
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL, *cert = NULL;
	X509_CRL *old = NULL, *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_TIME *now = NULL, *next = NULL;
	uint64_t id = 0;
	bool listed = false;
	FILE *f;
	int rc;

	if ((rc = load_ca(dir, &ca, &ca_key)) != 0)
		goto out;
	rc = 5;
	if ((cert = hv_tls_read_cert(cert_path)) == NULL) {
		rc = fail(1, "%s: not a PEM certificate", cert_path);
		goto out;
	}
	if (X509_check_issued(ca, cert) != X509_V_OK) {
		rc = fail(1, "%s was not issued by the CA in %s", cert_path, dir);
		goto out;
	}
	hv_tls_x509_identity(cert, name, sizeof name, &id);
	snprintf(path, sizeof path, "%s/ca.crl", dir);
	if ((f = fopen(path, "re")) != NULL) {
		old = PEM_read_X509_CRL(f, NULL, NULL, NULL);
		fclose(f);
		if (old == NULL || X509_CRL_verify(old, X509_get0_pubkey(ca)) != 1) {
			rc = fail(1, "%s: not a CRL of this CA (move it away)", path);
			goto out;
		}
	}
	if ((crl = X509_CRL_new()) == NULL || X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
	    (now = X509_gmtime_adj(NULL, 0)) == NULL ||
	    (next = X509_time_adj_ex(NULL, (int)days, 0, NULL)) == NULL ||
	    X509_CRL_set1_lastUpdate(crl, now) != 1 ||
	    X509_CRL_set1_nextUpdate(crl, next) != 1)
		goto fail;
	for (int i = 0; old != NULL && i < sk_X509_REVOKED_num(X509_CRL_get_REVOKED(old));
	     i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(X509_CRL_get_REVOKED(old), i);
		X509_REVOKED *dup = X509_REVOKED_dup(r);
		if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(r),
		                     X509_get0_serialNumber(cert)) == 0)
			listed = true;
		if (dup == NULL || X509_CRL_add0_revoked(crl, dup) != 1) {
			X509_REVOKED_free(dup);
			goto fail;
		}
	}
	if (!listed) {
		if ((rev = X509_REVOKED_new()) == NULL ||
		    X509_REVOKED_set_serialNumber(
		        rev, (ASN1_INTEGER *)X509_get0_serialNumber(cert)) != 1 ||
		    X509_REVOKED_set_revocationDate(rev, now) != 1 ||
		    X509_CRL_add0_revoked(crl, rev) != 1)
			goto fail;
		rev = NULL;
	}
	X509_CRL_sort(crl);
	if (X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0)
		goto fail;
	if ((rc = write_crl(path, crl)) != 0)
		goto out;
	printf("%s %s (Raft id %llu): %s lists %d certificate%s, valid until %ld days "
	       "from now.\nGive it to every node (tls-crl) and reload them: "
	       "kill -HUP hvpeerd.\n",
	       listed ? "already revoked:" : "revoked", name, (unsigned long long)id,
	       path, sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)),
	       sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 1 ? "" : "s", days);
	goto out;
fail:
	rc = fail(5, "cannot make the CRL");
out:
	X509_REVOKED_free(rev);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
	X509_CRL_free(old);
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

static void asn1_time_text(const ASN1_TIME *t, char *out, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(out, len, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "?");
}

static int ca_show(const char *path, bool json)
{
	X509 *c = hv_tls_read_cert(path);
	char name[HV_NAME_MAX + 1] = "", from[32], until[32],
	                        fp[3 * EVP_MAX_MD_SIZE + 1] = "";
	char subject[256], issuer[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t id = 0;
	bool has_id, expired;

	if (c == NULL)
		return fail(1, "%s: not a PEM certificate", path);
	has_id = hv_tls_x509_identity(c, name, sizeof name, &id) == 0;
	X509_NAME_oneline(X509_get_subject_name(c), subject, sizeof subject);
	X509_NAME_oneline(X509_get_issuer_name(c), issuer, sizeof issuer);
	asn1_time_text(X509_get0_notBefore(c), from, sizeof from);
	asn1_time_text(X509_get0_notAfter(c), until, sizeof until);
	expired = X509_cmp_current_time(X509_get0_notAfter(c)) < 0;
	if (X509_digest(c, EVP_sha256(), md, &mdlen) == 1)
		for (unsigned i = 0; i < mdlen; i++)
			snprintf(fp + 3 * i, sizeof fp - 3 * i, "%02X%s", md[i],
			         i + 1 < mdlen ? ":" : "");
	if (json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(name));
		json_object_object_add(o, "id", json_object_new_uint64(id));
		json_object_object_add(o, "ca",
		                       json_object_new_boolean(X509_check_ca(c) != 0));
		json_object_object_add(o, "subject", json_object_new_string(subject));
		json_object_object_add(o, "issuer", json_object_new_string(issuer));
		json_object_object_add(o, "not_before", json_object_new_string(from));
		json_object_object_add(o, "not_after", json_object_new_string(until));
		json_object_object_add(o, "expired", json_object_new_boolean(expired));
		json_object_object_add(o, "sha256", json_object_new_string(fp));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		if (has_id)
			printf("node:     %s (Raft id %" PRIu64 ")\n", name, id);
		else
			printf("node:     none (%s)\n", X509_check_ca(c) != 0
			                                    ? "a CA certificate"
			                                    : "no hvpeer identity");
		printf("subject:  %s\nissuer:   %s\nvalid:    %s to %s%s\nsha256:   %s\n",
		       subject, issuer, from, until, expired ? " (EXPIRED)" : "", fp);
	}
	X509_free(c);
	return 0;
}

int hv_ca_main(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"days", required_argument, NULL, 'D'},
	    {"name", required_argument, NULL, 'n'},
	    {"id", required_argument, NULL, 'i'},
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *days_text = NULL, *node = NULL, *id = NULL, *out = NULL,
	           *sub;
	long days;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'D':
			days_text = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!strcmp(sub, "init")) {
		if (dir == NULL || optind != argc)
			return fail(2, "usage: hvpeer ca init --dir DIR [--days N]");
		if (parse_days(days_text, 3650, &days) != 0)
			return fail(2, "--days '%s' is not 1-%d", days_text, MAX_DAYS);
		return ca_init(dir, days);
	}
	if (!strcmp(sub, "issue")) {
		if (dir == NULL || node == NULL || out == NULL || optind != argc)
			return fail(
			    2, "usage: hvpeer ca issue --dir DIR --name NAME [--id ID] "
			       "--out PREFIX [--days N]");
		if (parse_days(days_text, 825, &days) != 0)
			return fail(2, "--days '%s' is not 1-%d", days_text, MAX_DAYS);
		return ca_issue(dir, node, id, days, out);
	}
	if (!strcmp(sub, "revoke")) {
		if (dir == NULL || optind != argc - 1)
			return fail(2,
			            "usage: hvpeer ca revoke --dir DIR CERT [--days N]");
		if (parse_days(days_text, 3650, &days) != 0)
			return fail(2, "--days '%s' is not 1-%d", days_text, MAX_DAYS);
		return ca_revoke(dir, argv[optind], days);
	}
	if (!strcmp(sub, "show")) {
		if (optind != argc - 1)
			return fail(2, "usage: hvpeer [--json] ca show CERT");
		return ca_show(argv[optind], json);
	}
	return fail(2, "unknown command '%s' (init, issue, revoke, show)", sub);
}
