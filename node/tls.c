/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <stdbool.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../consensus/codec.h"
#include "tls.h"

#define URI_PREFIX "hvpeer:node/"

int hv_tls_x509_identity(X509 *c, char *name, size_t nlen, uint64_t *id)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
	int found = -1;

	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && found < 0; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		const char *uri, *slash;
		char *end;
		size_t len;
		if (g->type != GEN_URI)
			continue;
		uri = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (strlen(uri) != len ||
		    strncmp(uri, URI_PREFIX, strlen(URI_PREFIX)) != 0)
			continue;
		uri += strlen(URI_PREFIX);
		if ((slash = strchr(uri, '/')) == NULL || (size_t)(slash - uri) >= nlen)
			continue;
		memcpy(name, uri, (size_t)(slash - uri));
		name[slash - uri] = '\0';
		errno = 0;
		*id = strtoull(slash + 1, &end, 10);
		if (errno == 0 && *end == '\0' && *id != 0 && slash[1] != '-' &&
		    hv_name_valid(name))
			found = 0;
	}
	GENERAL_NAMES_free(sans);
	return found;
}

EVP_PKEY *hv_tls_new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	if (X509_add_ext(cert, ext, -1) != 1) {
		X509_EXTENSION_free(ext);
		return -1;
	}
	X509_EXTENSION_free(ext);
	return 0;
}

X509 *hv_tls_make_cert(EVP_PKEY *key, const char *cn, long days, X509 *ca,
                       EVP_PKEY *ca_key, const char *san)
{
	X509 *c = X509_new();
	BIGNUM *bn = BN_new();
	X509_NAME *name;
	bool is_ca = ca == NULL;

	if (c == NULL || bn == NULL)
		goto fail;
	if (X509_set_version(c, 2) != 1 ||
	    BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) == NULL)
		goto fail;
	/* an hour back: a peer whose clock is a little behind accepts it */
	if (X509_gmtime_adj(X509_getm_notBefore(c), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(c), (int)days, 0, NULL) == NULL)
		goto fail;
	name = X509_get_subject_name(c);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	                               (const unsigned char *)"hvpeer", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                               (const unsigned char *)cn, -1, -1, 0) != 1)
		goto fail;
	if (X509_set_issuer_name(c, is_ca ? name : X509_get_subject_name(ca)) != 1 ||
	    X509_set_pubkey(c, key) != 1)
		goto fail;
	if (add_ext(c, is_ca ? c : ca, NID_basic_constraints,
	            is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") != 0 ||
	    add_ext(c, is_ca ? c : ca, NID_key_usage,
	            is_ca ? "critical,keyCertSign,cRLSign"
	                  : "critical,digitalSignature") != 0 ||
	    add_ext(c, is_ca ? c : ca, NID_subject_key_identifier, "hash") != 0 ||
	    (!is_ca &&
	     (add_ext(c, ca, NID_authority_key_identifier, "keyid:always") != 0 ||
	      add_ext(c, ca, NID_ext_key_usage, "serverAuth,clientAuth") != 0 ||
	      add_ext(c, ca, NID_subject_alt_name, san) != 0)))
		goto fail;
	if (X509_sign(c, ca_key, EVP_sha256()) == 0)
		goto fail;
	BN_free(bn);
	return c;
fail:
	BN_free(bn);
	X509_free(c);
	return NULL;
}

int hv_tls_node_san(char *out, size_t len, const char *name, uint64_t id)
{
	int n = snprintf(out, len, "DNS:%s,URI:" URI_PREFIX "%s/%llu", name, name,
	                 (unsigned long long)id);

	return n > 0 && (size_t)n < len ? 0 : -1;
}

X509 *hv_tls_read_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	X509 *c;

	if (f == NULL)
		return NULL;
	c = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return c;
}

int hv_tls_file_identity(const char *path, char *name, size_t nlen, uint64_t *id,
                         char *why, size_t whylen)
{
	X509 *c = hv_tls_read_cert(path);
	int rc;

	if (c == NULL) {
		snprintf(why, whylen, "%s: %s", path,
		         errno == ENOENT ? strerror(errno) : "not a PEM certificate");
		ERR_clear_error();
		return -1;
	}
	rc = hv_tls_x509_identity(c, name, nlen, id);
	if (rc != 0)
		snprintf(why, whylen, "%s: no hvpeer node identity (URI:%sNAME/ID)", path,
		         URI_PREFIX);
	X509_free(c);
	return rc;
}

/* OpenSSL's first queued error as text, the queue emptied; "" when none. */
static void queued_error(char *out, size_t len)
{
	unsigned long e = ERR_get_error();

	out[0] = '\0';
	if (e != 0) {
		const char *reason = ERR_reason_error_string(e);
		snprintf(out, len, "%s", reason != NULL ? reason : "TLS error");
	}
	ERR_clear_error();
}

/* A fresh context from the files. NULL with why. */
static SSL_CTX *ctx_new(const struct hv_tls *tls, X509 **cert_out, char *why,
                        size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	X509_STORE *store;
	char err[256];

	if (ctx == NULL) {
		snprintf(why, whylen, "TLS: out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	/* Peers never resume sessions: no tickets to send or keep. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert) != 1) {
		queued_error(err, sizeof err);
		snprintf(why, whylen, "certificate %s: %s", tls->cert, err);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, tls->key, SSL_FILETYPE_PEM) != 1) {
		queued_error(err, sizeof err);
		if (strcmp(err, "key values mismatch") == 0)
			snprintf(why, whylen, "key %s does not match certificate %s",
			         tls->key, tls->cert);
		else
			snprintf(why, whylen, "key %s: %s", tls->key, err);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(why, whylen, "key %s does not match certificate %s", tls->key,
		         tls->cert);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, tls->ca, NULL) != 1) {
		queued_error(err, sizeof err);
		snprintf(why, whylen, "CA certificate %s: %s", tls->ca, err);
		goto fail;
	}
	store = SSL_CTX_get_cert_store(ctx);
	if (tls->crl[0] != '\0') {
		X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
		if (lookup == NULL ||
		    X509_load_crl_file(lookup, tls->crl, X509_FILETYPE_PEM) < 1) {
			queued_error(err, sizeof err);
			snprintf(why, whylen, "CRL %s: %s", tls->crl,
			         err[0] != '\0' ? err : "no CRL in it");
			goto fail;
		}
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	*cert_out = SSL_CTX_get0_certificate(ctx);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int load(struct hv_tls *tls, char *why, size_t whylen)
{
	char name[HV_NAME_MAX + 1];
	uint64_t id;
	X509 *cert = NULL;
	SSL_CTX *ctx = ctx_new(tls, &cert, why, whylen);
	struct tm tm;

	if (ctx == NULL)
		return -1;
	if (cert == NULL || hv_tls_x509_identity(cert, name, sizeof name, &id) != 0) {
		snprintf(why, whylen,
		         "certificate %s carries no node identity: make it with "
		         "'hvpeer ca issue'",
		         tls->cert);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (tls->id != 0 && (id != tls->id || strcmp(name, tls->name) != 0)) {
		snprintf(
		    why, whylen,
		    "certificate %s is for %s (id %llu), not this node, %s (id %llu)",
		    tls->cert, name, (unsigned long long)id, tls->name,
		    (unsigned long long)tls->id);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
		tls->not_after = timegm(&tm);
	SSL_CTX_free(tls->ctx);
	tls->ctx = ctx;
	snprintf(tls->name, sizeof tls->name, "%s", name);
	tls->id = id;
	return 0;
}

int hv_tls_init(struct hv_tls *tls, const char *cert, const char *key, const char *ca,
                const char *crl, char *why, size_t whylen)
{
	memset(tls, 0, sizeof *tls);
	if (snprintf(tls->cert, sizeof tls->cert, "%s", cert) >= (int)sizeof tls->cert ||
	    snprintf(tls->key, sizeof tls->key, "%s", key) >= (int)sizeof tls->key ||
	    snprintf(tls->ca, sizeof tls->ca, "%s", ca) >= (int)sizeof tls->ca ||
	    snprintf(tls->crl, sizeof tls->crl, "%s", crl) >= (int)sizeof tls->crl) {
		snprintf(why, whylen, "TLS: a file name is too long");
		return -1;
	}
	return load(tls, why, whylen);
}

int hv_tls_reload(struct hv_tls *tls, char *why, size_t whylen)
{
	return load(tls, why, whylen);
}

void hv_tls_close(struct hv_tls *tls)
{
	SSL_CTX_free(tls->ctx);
	tls->ctx = NULL;
}

int hv_tls_peer(SSL *ssl, char *name, size_t nlen, uint64_t *id, char *why, size_t whylen)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	long v = SSL_get_verify_result(ssl);

	if (peer == NULL) {
		snprintf(why, whylen, "no certificate presented");
		return -1;
	}
	if (v != X509_V_OK) {
		snprintf(why, whylen, "certificate refused: %s",
		         X509_verify_cert_error_string(v));
		return -1;
	}
	if (hv_tls_x509_identity(peer, name, nlen, id) != 0) {
		snprintf(why, whylen, "certificate carries no hvpeer node identity");
		return -1;
	}
	return 0;
}

int hv_tls_recheck(const struct hv_tls *tls, SSL *ssl, char *why, size_t whylen)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	X509_STORE_CTX *vc;
	int rv = -1;

	if (peer == NULL || tls->ctx == NULL)
		return 0; /* not past a handshake: it is checked then */
	vc = X509_STORE_CTX_new();
	if (vc == NULL || X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(tls->ctx), peer,
	                                      SSL_get_peer_cert_chain(ssl)) != 1) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	X509_STORE_CTX_set_purpose(vc, SSL_is_server(ssl) ? X509_PURPOSE_SSL_CLIENT
	                                                  : X509_PURPOSE_SSL_SERVER);
	if (X509_verify_cert(vc) == 1)
		rv = 0;
	else
		snprintf(why, whylen, "certificate refused: %s",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
out:
	X509_STORE_CTX_free(vc);
	ERR_clear_error();
	return rv;
}

void hv_tls_error(SSL *ssl, int ssl_error, char *why, size_t whylen)
{
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	char err[256];

	queued_error(err, sizeof err);
	if (v != X509_V_OK)
		snprintf(why, whylen, "certificate refused: %s",
		         X509_verify_cert_error_string(v));
	else if (strncmp(err, "sslv3 alert ", 12) == 0 ||
	         strncmp(err, "tlsv1 alert ", 12) == 0)
		/* An alert received: the other end refused the handshake. */
		snprintf(why, whylen, "the peer refused the TLS handshake: %s", err + 12);
	else if (err[0] != '\0')
		snprintf(why, whylen, "TLS: %s", err);
	else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
		snprintf(why, whylen, "connection closed");
	else
		snprintf(why, whylen, "TLS error %d", ssl_error);
}
