/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Mutual TLS 1.3 between peers (OpenSSL): the context a node uses for every
 * Raft and RPC connection, and the node identity a certificate carries.
 *
 * A node's certificate (made by `hvpeer ca issue`) binds its name and Raft
 * id: the URI subject alternative name "hvpeer:node/NAME/ID". Both ends of a
 * connection present one, signed by the cluster CA, and check the other's:
 * the chain, the validity dates and, when a CRL file is configured, that it
 * is not revoked. The transport then compares the identity with the one the
 * connection claims (transport.h).
 *
 * The files are read by hv_tls_init() and again by hv_tls_reload() (SIGHUP):
 * a reload that fails keeps the context in use. Connections made before a
 * reload keep the context they were made with, but their peers are checked
 * again against the new one (hv_transport_recheck): a revoked or expired
 * peer's connections are closed.
 */
#ifndef HV_TLS_H
#define HV_TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct hv_tls {
	SSL_CTX *ctx;
	char name[HV_NAME_MAX + 1]; /* this node's identity, from its certificate */
	uint64_t id;
	time_t not_after; /* its certificate's expiry */
	char cert[HV_PATH_MAX], key[HV_PATH_MAX], ca[HV_PATH_MAX], crl[HV_PATH_MAX];
};

/* Read the files (crl may be ""). 0, or -1 with why. */
int hv_tls_init(struct hv_tls *tls, const char *cert, const char *key, const char *ca,
                const char *crl, char *why, size_t whylen);

/* Read the same files again into a new context. 0, or -1 with why (the old
 * context stays). The identity may not change. */
int hv_tls_reload(struct hv_tls *tls, char *why, size_t whylen);

void hv_tls_close(struct hv_tls *tls);

/* A new ECDSA P-256 key, or NULL. */
EVP_PKEY *hv_tls_new_key(void);

/* A certificate for key (its public half) with subject O=hvpeer, CN=cn,
 * valid days (from an hour back), signed by ca_key: a node certificate
 * (server and client authentication, subject alternative names san) issued
 * by ca, or, when ca is NULL, a self-signed CA certificate. NULL on error. */
X509 *hv_tls_make_cert(EVP_PKEY *key, const char *cn, long days, X509 *ca,
                       EVP_PKEY *ca_key, const char *san);

/* The subject alternative names of node name with Raft id id. 0, or -1
 * when out is too small. */
int hv_tls_node_san(char *out, size_t len, const char *name, uint64_t id);

/* The node identity in a certificate. 0, or -1 when it carries none. */
int hv_tls_x509_identity(X509 *cert, char *name, size_t nlen, uint64_t *id);

/* The first certificate of a PEM file, or NULL. */
X509 *hv_tls_read_cert(const char *path);

/* The identity a PEM certificate file carries. 0, or -1 with why. */
int hv_tls_file_identity(const char *path, char *name, size_t nlen, uint64_t *id,
                         char *why, size_t whylen);

/* After a handshake: the peer certificate's identity. 0, or -1 with why
 * (the verification error, or a certificate without an identity). */
int hv_tls_peer(SSL *ssl, char *name, size_t nlen, uint64_t *id, char *why,
                size_t whylen);

/* After a reload: whether the peer of an established connection still
 * passes the checks of tls's current context (CA, dates, CRL). 0 (also when
 * ssl has no peer certificate yet), or -1 with why. */
int hv_tls_recheck(const struct hv_tls *tls, SSL *ssl, char *why, size_t whylen);

/* Why a handshake failed: the verification error when there is one, else
 * OpenSSL's error queue (emptied), else "connection closed". */
void hv_tls_error(SSL *ssl, int ssl_error, char *why, size_t whylen);

#endif
