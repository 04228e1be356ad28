/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "enroll.h"
#include "node.h"
#include "transport.h"

#define TOKENS_FILE "join-tokens"
#define MAX_TOKENS 64
#define TOKEN_PREFIX "hvt1."
#define CERT_DAYS 825
#define MAC_HEX (2 * 32)

struct token {
	char id[9];          /* 8 hex digits */
	unsigned char k[32]; /* SHA-256 of the secret */
	uint64_t expires_ms;
	int used;
};

/* ---- helpers ------------------------------------------------------------- */

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static int unhex(const char *in, unsigned char *out, size_t n)
{
	if (in == NULL || strlen(in) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(in + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* K = SHA-256(secret text). */
static void derive(const char *secret, unsigned char k[32])
{
	unsigned int len = 32;

	EVP_Digest(secret, strlen(secret), k, &len, EVP_sha256(), NULL);
}

/* HMAC-SHA256(k, a "\n" b "\n" c "\n" d), as hex. */
static void mac4(const unsigned char k[32], const char *a, const char *b, const char *c,
                 const char *d, char out[MAC_HEX + 1])
{
	unsigned char md[32];
	unsigned int mdlen = sizeof md;
	size_t len = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 4;
	char *msg = malloc(len + 1);

	out[0] = '\0';
	if (msg == NULL)
		return;
	snprintf(msg, len + 1, "%s\n%s\n%s\n%s\n", a, b, c, d);
	if (HMAC(EVP_sha256(), k, 32, (unsigned char *)msg, len, md, &mdlen) != NULL)
		hex(md, sizeof md, out);
	free(msg);
}

/* The text written to b (freed here), as a new string; NULL on error. */
static char *bio_text(BIO *b, int written)
{
	char *data, *out = NULL;
	long len;

	if (b != NULL && written == 1 && (len = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)len + 1)) != NULL) {
		memcpy(out, data, (size_t)len);
		out[len] = '\0';
	}
	BIO_free(b);
	return out;
}

static char *pem_of_cert(X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());

	return bio_text(b, b != NULL ? PEM_write_bio_X509(b, c) : 0);
}

static X509 *cert_of_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *c = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	ERR_clear_error();
	return c;
}

/* Write text to path, a new file of mode. 0, or -1 (errno). */
static int write_new(const char *path, mode_t mode, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	size_t len = strlen(text), off = 0;

	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w <= 0) {
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* ---- the token store (the signing member) ----------------------------------- */

static int tokens_load(const struct hv_node *n, struct token *t)
{
	char path[HV_PATH_MAX + 32], line[256], khex[65];
	FILE *f;
	int count = 0;

	snprintf(path, sizeof path, "%s/" TOKENS_FILE, n->cfg.data_dir);
	if ((f = fopen(path, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (count < MAX_TOKENS && fgets(line, sizeof line, f) != NULL) {
		struct token *x = &t[count];
		unsigned long long exp;
		if (sscanf(line, "%8s %64s %llu %d", x->id, khex, &exp, &x->used) != 4 ||
		    unhex(khex, x->k, 32) != 0)
			continue;
		x->expires_ms = exp;
		count++;
	}
	fclose(f);
	return count;
}

/* Keep the tokens that have not expired. 0, or -1. */
static int tokens_save(const struct hv_node *n, const struct token *t, int count)
{
	char path[HV_PATH_MAX + 32], tmp[HV_PATH_MAX + 40], khex[65];
	uint64_t now = hv_now_ms();
	FILE *f;
	int fd, ok = 1;

	snprintf(path, sizeof path, "%s/" TOKENS_FILE, n->cfg.data_dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (int i = 0; i < count; i++) {
		if (t[i].expires_ms <= now)
			continue;
		hex(t[i].k, 32, khex);
		if (fprintf(f, "%s %s %llu %d\n", t[i].id, khex,
		            (unsigned long long)t[i].expires_ms, t[i].used) < 0)
			ok = 0;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The CA certificate (of tls-ca) whose key is tls-ca-key. 0, or -1 with why. */
static int load_signer(const struct hv_node *n, X509 **ca, EVP_PKEY **key, char *why,
                       size_t whylen)
{
	FILE *f;

	*ca = NULL;
	*key = NULL;
	if (n->tls.ctx == NULL || n->cfg.tls_ca_key[0] == '\0') {
		snprintf(why, whylen,
		         "%s cannot sign certificates: set tls-ca-key (the CA's key) in "
		         "[tls] on a member that may admit new hosts",
		         n->cfg.name);
		return -1;
	}
	if ((f = fopen(n->cfg.tls_ca_key, "re")) == NULL) {
		snprintf(why, whylen, "tls-ca-key %s: %s", n->cfg.tls_ca_key,
		         strerror(errno));
		return -1;
	}
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (*key == NULL) {
		ERR_clear_error();
		snprintf(why, whylen, "tls-ca-key %s: not a PEM private key",
		         n->cfg.tls_ca_key);
		return -1;
	}
	if ((f = fopen(n->cfg.tls_ca, "re")) == NULL) {
		snprintf(why, whylen, "tls-ca %s: %s", n->cfg.tls_ca, strerror(errno));
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	/* The file may hold several CA certificates: take the key's. */
	while ((*ca = PEM_read_X509(f, NULL, NULL, NULL)) != NULL &&
	       X509_check_private_key(*ca, *key) != 1) {
		X509_free(*ca);
		*ca = NULL;
	}
	fclose(f);
	ERR_clear_error();
	if (*ca == NULL) {
		snprintf(why, whylen, "tls-ca-key %s is not the key of a CA in %s",
		         n->cfg.tls_ca_key, n->cfg.tls_ca);
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	return 0;
}

void hv_enroll_token_create(struct hv_node *n, struct hv_rpc_conn *c, uint64_t ttl_s)
{
	struct token t[MAX_TOKENS + 1];
	unsigned char raw_id[4], raw_secret[16];
	char secret[33], token[64], why[1024];
	struct json_object *o;
	EVP_PKEY *key;
	X509 *ca;
	int count;

	if (load_signer(n, &ca, &key, why, sizeof why) != 0) {
		hv_rpc_reply(c, hv_rpc_error(HV_INVAL, "%s", why));
		return;
	}
	X509_free(ca);
	EVP_PKEY_free(key);
	if ((count = tokens_load(n, t)) < 0) {
		hv_rpc_reply(c, hv_rpc_error(HV_IO, "%s/" TOKENS_FILE ": %s",
		                             n->cfg.data_dir, strerror(errno)));
		return;
	}
	if (count == MAX_TOKENS) {
		hv_rpc_reply(c, hv_rpc_error(HV_FULL,
		                             "%d join tokens are waiting: let some "
		                             "expire first",
		                             MAX_TOKENS));
		return;
	}
	if (RAND_bytes(raw_id, sizeof raw_id) != 1 ||
	    RAND_bytes(raw_secret, sizeof raw_secret) != 1) {
		hv_rpc_reply(c, hv_rpc_error(HV_IO, "no randomness"));
		return;
	}
	hex(raw_id, sizeof raw_id, t[count].id);
	hex(raw_secret, sizeof raw_secret, secret);
	derive(secret, t[count].k);
	t[count].expires_ms = hv_now_ms() + ttl_s * 1000;
	t[count].used = 0;
	if (tokens_save(n, t, count + 1) != 0) {
		hv_rpc_reply(c, hv_rpc_error(HV_IO, "%s/" TOKENS_FILE ": cannot write",
		                             n->cfg.data_dir));
		return;
	}
	snprintf(token, sizeof token, TOKEN_PREFIX "%s.%s", t[count].id, secret);
	hv_info("token: join token %s made, valid %llu s, one use", t[count].id,
	        (unsigned long long)ttl_s);
	o = hv_rpc_ok();
	json_object_object_add(o, "token", json_object_new_string(token));
	json_object_object_add(o, "id", json_object_new_string(t[count].id));
	json_object_object_add(o, "expires_ms",
	                       json_object_new_uint64(t[count].expires_ms));
	json_object_object_add(o, "node", json_object_new_string(n->cfg.name));
	json_object_object_add(o, "address", json_object_new_string(n->cfg.listen));
	OPENSSL_cleanse(secret, sizeof secret);
	hv_rpc_reply(c, o);
}

/* ---- signing (the member) ------------------------------------------------- */

static struct json_object *refuse(struct hv_rpc_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct json_object *refuse(struct hv_rpc_conn *c, const char *fmt, ...)
{
	const struct hv_rpc_peer *p = hv_rpc_conn_peer(c);
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	hv_warn("enroll: refused a join from %s: %s", p->addr, msg);
	return hv_rpc_error(HV_INVAL, "join refused: %s", msg);
}

void hv_enroll_serve(struct hv_node *n, struct hv_rpc_conn *c, struct json_object *req)
{
	const char *tid = hv_json_str(req, "token"), *name = hv_json_str(req, "name"),
	           *csr_pem = hv_json_str(req, "csr"), *mac = hv_json_str(req, "mac");
	struct token t[MAX_TOKENS];
	char idtext[24], want[MAC_HEX + 1], san[HV_NAME_MAX + 64], why[1024];
	struct token *tok = NULL;
	X509_REQ *csr = NULL;
	EVP_PKEY *ca_key = NULL, *pub = NULL;
	X509 *ca = NULL, *cert = NULL;
	char *cert_pem = NULL, *ca_pem = NULL;
	struct json_object *o;
	uint64_t id = 0;
	BIO *b;
	int count;

	if (tid == NULL || name == NULL || csr_pem == NULL || mac == NULL ||
	    !hv_json_uint(req, "id", &id) || id == 0 || id > (UINT64_MAX >> 1) ||
	    !hv_name_valid(name)) {
		hv_rpc_reply(c, refuse(c, "a malformed request"));
		return;
	}
	if (load_signer(n, &ca, &ca_key, why, sizeof why) != 0) {
		hv_rpc_reply(c, refuse(c, "%s", why));
		return;
	}
	count = tokens_load(n, t);
	for (int i = 0; i < count; i++)
		if (strcmp(t[i].id, tid) == 0)
			tok = &t[i];
	snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)id);
	if (tok != NULL)
		mac4(tok->k, tid, name, idtext, csr_pem, want);
	if (tok == NULL || strlen(mac) != MAC_HEX ||
	    CRYPTO_memcmp(want, mac, MAC_HEX) != 0) {
		o = refuse(c, "no such token, or not its secret (%s wants to join as %s)",
		           tid, name);
		goto out;
	}
	if (tok->used) {
		o = refuse(c, "token %s was used already (by %s's request now)", tid,
		           name);
		goto out;
	}
	if (tok->expires_ms <= hv_now_ms()) {
		o = refuse(c, "token %s has expired (%s asked)", tid, name);
		goto out;
	}
	/* Used from here on, whatever comes next. */
	tok->used = 1;
	if (tokens_save(n, t, count) != 0) {
		o = hv_rpc_error(HV_IO, "cannot record the token as used");
		goto out;
	}
	if ((b = BIO_new_mem_buf(csr_pem, -1)) != NULL)
		csr = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	if (csr == NULL || (pub = X509_REQ_get_pubkey(csr)) == NULL ||
	    X509_REQ_verify(csr, pub) != 1) {
		ERR_clear_error();
		o = refuse(c, "the certificate request of %s does not verify%s", name,
		           "");
		goto out;
	}
	if (hv_tls_node_san(san, sizeof san, name, id) != 0 ||
	    (cert = hv_tls_make_cert(pub, name, CERT_DAYS, ca, ca_key, san)) == NULL ||
	    (cert_pem = pem_of_cert(cert)) == NULL ||
	    (ca_pem = pem_of_cert(ca)) == NULL) {
		ERR_clear_error();
		o = hv_rpc_error(HV_IO, "cannot make the certificate");
		goto out;
	}
	mac4(tok->k, "certificate", cert_pem, ca_pem, "", want);
	hv_info("enroll: signed a certificate for %s (Raft id %s) with join token %s",
	        name, idtext, tid);
	o = hv_rpc_ok();
	json_object_object_add(o, "cert", json_object_new_string(cert_pem));
	json_object_object_add(o, "ca", json_object_new_string(ca_pem));
	json_object_object_add(o, "mac", json_object_new_string(want));
out:
	OPENSSL_cleanse(t, sizeof t);
	free(cert_pem);
	free(ca_pem);
	X509_free(cert);
	X509_REQ_free(csr);
	EVP_PKEY_free(pub);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	hv_rpc_reply(c, o);
}

/* ---- the new host ----------------------------------------------------------- */

/* One request and its answer on a blocking socket. NULL with why. */
static struct json_object *exchange(const char *address, struct json_object *req,
                                    unsigned timeout_ms, char *why, size_t whylen)
{
	struct sockaddr_storage sa;
	struct timeval tv = {.tv_sec = timeout_ms / 1000,
	                     .tv_usec = (timeout_ms % 1000) * 1000};
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t blen = strlen(body), off = 0;
	unsigned char hdr[4];
	uint32_t be, len;
	char *msg, *in = NULL;
	struct json_object *resp = NULL;
	int fd;

	if (hv_sockaddr(address, &sa) != 0) {
		snprintf(why, whylen, "%s: not an address", address);
		return NULL;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, (struct sockaddr *)&sa,
	            sa.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                    : sizeof(struct sockaddr_in6)) != 0) {
		snprintf(why, whylen, "%s: %s", address, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if ((msg = malloc(HV_MAGIC_LEN + 4 + blen)) == NULL) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	memcpy(msg, HV_MAGIC_JOIN, HV_MAGIC_LEN);
	be = htonl((uint32_t)blen);
	memcpy(msg + HV_MAGIC_LEN, &be, 4);
	memcpy(msg + HV_MAGIC_LEN + 4, body, blen);
	while (off < HV_MAGIC_LEN + 4 + blen) {
		ssize_t w =
		    send(fd, msg + off, HV_MAGIC_LEN + 4 + blen - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(msg);
	if (off < HV_MAGIC_LEN + 4 + blen || recv(fd, hdr, 4, MSG_WAITALL) != 4) {
		snprintf(why, whylen,
		         "%s: no answer (is it an hvpeerd that runs TLS and holds the CA "
		         "key?)",
		         address);
		close(fd);
		return NULL;
	}
	memcpy(&be, hdr, 4);
	len = ntohl(be);
	if (len == 0 || len > (1u << 20) || (in = malloc(len + 1)) == NULL ||
	    recv(fd, in, len, MSG_WAITALL) != (ssize_t)len) {
		snprintf(why, whylen, "%s: a truncated answer", address);
		free(in);
		close(fd);
		return NULL;
	}
	close(fd);
	in[len] = '\0';
	resp = json_tokener_parse(in);
	free(in);
	if (resp == NULL)
		snprintf(why, whylen, "%s: an answer that does not parse", address);
	return resp;
}

static X509_REQ *make_csr(EVP_PKEY *key, const char *name)
{
	X509_REQ *r = X509_REQ_new();

	if (r == NULL || X509_REQ_set_version(r, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
	                               (const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(r, key) != 1 ||
	    X509_REQ_sign(r, key, EVP_sha256()) <= 0) {
		X509_REQ_free(r);
		return NULL;
	}
	return r;
}

static char *pem_of_req(X509_REQ *r)
{
	BIO *b = BIO_new(BIO_s_mem());

	return bio_text(b, b != NULL ? PEM_write_bio_X509_REQ(b, r) : 0);
}

static char *pem_of_key(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());

	return bio_text(
	    b, b != NULL ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) : 0);
}

/* Check what the member answered and write the certificate and the CA. */
static int accept_answer(const struct hv_config *cfg, struct json_object *resp,
                         const unsigned char k[32], EVP_PKEY *key, uint64_t id, char *why,
                         size_t whylen)
{
	const char *cert_pem = hv_json_str(resp, "cert"),
	           *ca_pem = hv_json_str(resp, "ca"), *mac = hv_json_str(resp, "mac");
	char want[MAC_HEX + 1], name[HV_NAME_MAX + 1];
	X509 *cert = NULL, *ca = NULL;
	uint64_t got = 0;
	int rc = -1;

	if (cert_pem == NULL || ca_pem == NULL || mac == NULL) {
		snprintf(why, whylen, "the member's answer lacks the certificate");
		return -1;
	}
	mac4(k, "certificate", cert_pem, ca_pem, "", want);
	if (strlen(mac) != MAC_HEX || CRYPTO_memcmp(want, mac, MAC_HEX) != 0) {
		snprintf(why, whylen,
		         "the answer is not signed with the token: not the "
		         "member that made it?");
		return -1;
	}
	if ((cert = cert_of_pem(cert_pem)) == NULL ||
	    (ca = cert_of_pem(ca_pem)) == NULL ||
	    X509_verify(cert, X509_get0_pubkey(ca)) != 1 ||
	    X509_check_private_key(cert, key) != 1 ||
	    hv_tls_x509_identity(cert, name, sizeof name, &got) != 0 ||
	    strcmp(name, cfg->name) != 0 || got != id) {
		ERR_clear_error();
		snprintf(why, whylen,
		         "the certificate the member sent is not this node's");
		goto out;
	}
	if (write_new(cfg->tls_cert, 0644, cert_pem) != 0) {
		snprintf(why, whylen, "%s: %s", cfg->tls_cert, strerror(errno));
		goto out;
	}
	if (access(cfg->tls_ca, F_OK) != 0 && write_new(cfg->tls_ca, 0644, ca_pem) != 0) {
		snprintf(why, whylen, "%s: %s", cfg->tls_ca, strerror(errno));
		unlink(cfg->tls_cert);
		goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	X509_free(ca);
	return rc;
}

int hv_enroll_client(const struct hv_config *cfg, unsigned timeout_ms, char *why,
                     size_t whylen)
{
	char tid[16], secret[64], idtext[24], mac[MAC_HEX + 1];
	unsigned char k[32];
	const char *p = cfg->join_token, *dot;
	struct json_object *req = NULL, *resp = NULL;
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	char *csr_pem = NULL, *key_pem = NULL;
	bool wrote_key = false;
	uint64_t id = 0;
	int rc = -1;

	if (p[0] == '\0' || access(cfg->tls_cert, F_OK) == 0)
		return 0;
	if (strncmp(p, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0 ||
	    (dot = strchr(p + strlen(TOKEN_PREFIX), '.')) == NULL ||
	    (size_t)(dot - p - strlen(TOKEN_PREFIX)) >= sizeof tid ||
	    strlen(dot + 1) >= sizeof secret || dot[1] == '\0') {
		snprintf(why, whylen,
		         "--token: not a join token (hvt1.ID.SECRET, from "
		         "'hvpeer token create')");
		return -1;
	}
	snprintf(tid, sizeof tid, "%.*s", (int)(dot - p - strlen(TOKEN_PREFIX)),
	         p + strlen(TOKEN_PREFIX));
	snprintf(secret, sizeof secret, "%s", dot + 1);
	derive(secret, k);
	OPENSSL_cleanse(secret, sizeof secret);
	if (access(cfg->tls_key, F_OK) == 0) {
		snprintf(why, whylen,
		         "%s exists but %s does not: remove the key, or give the "
		         "certificate",
		         cfg->tls_key, cfg->tls_cert);
		return -1;
	}
	while (id == 0)
		if (RAND_bytes((unsigned char *)&id, sizeof id) != 1)
			return snprintf(why, whylen, "no randomness"), -1;
		else
			id &= UINT64_MAX >> 1;
	if ((key = hv_tls_new_key()) == NULL ||
	    (csr = make_csr(key, cfg->name)) == NULL ||
	    (csr_pem = pem_of_req(csr)) == NULL || (key_pem = pem_of_key(key)) == NULL) {
		snprintf(why, whylen, "cannot make a key and a certificate request");
		goto out;
	}
	if (write_new(cfg->tls_key, 0600, key_pem) != 0) {
		snprintf(why, whylen, "%s: %s", cfg->tls_key, strerror(errno));
		goto out;
	}
	wrote_key = true;
	snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)id);
	mac4(k, tid, cfg->name, idtext, csr_pem, mac);
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("enroll"));
	json_object_object_add(req, "token", json_object_new_string(tid));
	json_object_object_add(req, "name", json_object_new_string(cfg->name));
	json_object_object_add(req, "id", json_object_new_uint64(id));
	json_object_object_add(req, "csr", json_object_new_string(csr_pem));
	json_object_object_add(req, "mac", json_object_new_string(mac));
	for (unsigned i = 0; i < cfg->n_join && resp == NULL; i++)
		resp = exchange(cfg->join[i], req, timeout_ms, why, whylen);
	if (resp == NULL)
		goto out;
	if (!hv_json_bool(resp, "ok")) {
		const char *m = hv_json_str(resp, "message");
		snprintf(why, whylen, "%s",
		         m != NULL ? m : "the member refused the token");
		goto out;
	}
	rc = accept_answer(cfg, resp, k, key, id, why, whylen);
out:
	if (rc != 0 && wrote_key)
		unlink(cfg->tls_key);
	OPENSSL_cleanse(k, sizeof k);
	json_object_put(req);
	json_object_put(resp);
	if (key_pem != NULL)
		OPENSSL_cleanse(key_pem, strlen(key_pem));
	free(key_pem);
	free(csr_pem);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rc;
}
