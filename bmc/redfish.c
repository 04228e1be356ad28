/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The redfish BMC driver: Redfish (DMTF DSP0266) over HTTPS with libcurl and
 * json-c. The interface is in bmc.h, the decoders of the BMC's answers in
 * redfish.h.
 *
 * Happy path of every call: one curl handle, so one TLS connection that its
 * requests share and that is closed when the call returns, and HTTP Basic
 * authentication on each request:
 *   power_status  GET /redfish/v1/Systems (its first member, found once per
 *                 handle), GET the system: PowerState;
 *   power         GET the system (its Actions name the Reset target and may
 *                 list the ResetTypes it takes), POST {"ResetType": T};
 *   sensors       GET /redfish/v1/Chassis (first member, once per handle),
 *                 GET the chassis (its Thermal and Power links), GET both.
 * No Redfish session (X-Auth-Token) is made: nothing is left on the BMC to
 * time out or to linger when the process dies. A request is never sent
 * twice: a power cycle replayed would cycle the host twice.
 *
 * TLS is always verified, against one of: opts->ca_file (that file only,
 * not the system's CAs), opts->pin (the SHA-256 of the BMC's public key;
 * the chain and the name are then not checked, since BMCs mostly have
 * self-signed certificates), both when both are given, else the system's
 * CAs. Only https:// is spoken and redirects are not followed, so the
 * password goes nowhere but to the verified BMC.
 *
 * Failure modes: connection refused, or no answer to the connection within
 * timeout_ms -> HV_UNREACHABLE; a request unanswered within timeout_ms
 * once connected -> HV_TIMEOUT; a certificate or key that does not verify,
 * HTTP 401, 403, 400 or 405 -> HV_INVAL; HTTP 404, an answer that is not
 * JSON or lacks what Redfish promises -> HV_PROTO; HTTP 5xx or 409, a
 * broken connection -> HV_IO. Messages carry the BMC's own words (its
 * Redfish error body), never the password.
 */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/err.h"
#include "bmc.h"
#include "redfish.h"

#ifndef HVPEER_VERSION
#define HVPEER_VERSION "0"
#endif

#define HTTPS_PORT 443
#define BODY_MAX (1024 * 1024) /* the largest answer read */
#define PIN_MAX 512            /* a few pins, ';'-separated */
#define JSON_DEPTH 32
#define TIMEOUT_MIN_MS 100

struct rf_drv {
	char base[HV_BMC_ADDRESS_MAX + 16]; /* "https://host:port" */
	char user[HV_BMC_USER_MAX];
	char password[HV_BMC_PASSWORD_MAX];
	char ca_file[PATH_MAX]; /* "" = none */
	char pin[PIN_MAX];      /* "" = none */
	unsigned timeout_ms;
	/* The first member of each collection, found on first use and kept
	 * (forgotten when it answers 404). */
	char system[HV_REDFISH_PATH_MAX];
	char chassis[HV_REDFISH_PATH_MAX];
};

/* The HTTP exchanges of one call. */
struct rf_call {
	struct hv_bmc *b;
	struct rf_drv *d;
	const char *what; /* "power status", for messages */
	CURL *curl;
	struct curl_slist *hdr_get, *hdr_post;
	char cerr[CURL_ERROR_SIZE];
	char *body; /* the last answer's body, '\0'-terminated */
	size_t len, cap;
	int overflow; /* the body passed BODY_MAX */
	int nomem;
	int answered; /* a request of this call got an HTTP answer */
	long status;  /* the last request's HTTP status, 0 without an answer */
};

static const char *string_at(struct json_object *o, const char *key);
static void text_copy(char *out, size_t outlen, const char *src, size_t len, char repl);
static int blank(const char *s, size_t len);

/* ---- the exchanges -------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct rf_call *c = user;
	size_t n = size * nmemb, cap;
	char *p;

	if (n > BODY_MAX - c->len) {
		c->overflow = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (c->len + n + 1 > c->cap) {
		cap = c->cap ? c->cap : 16384;
		while (cap < c->len + n + 1)
			cap *= 2;
		p = realloc(c->body, cap);
		if (p == NULL) {
			c->nomem = 1;
			return 0;
		}
		c->body = p;
		c->cap = cap;
	}
	memcpy(c->body + c->len, data, n);
	c->len += n;
	c->body[c->len] = '\0';
	return n;
}

static void call_end(struct rf_call *c)
{
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdr_get);
	curl_slist_free_all(c->hdr_post);
	free(c->body);
	memset(c, 0, sizeof *c);
}

static struct curl_slist *headers(int post)
{
	struct curl_slist *h = NULL, *t;
	const char *const lines[] = {"Accept: application/json", "OData-Version: 4.0",
	                             post ? "Content-Type: application/json" : NULL};

	for (size_t i = 0; i < sizeof lines / sizeof lines[0] && lines[i] != NULL; i++) {
		t = curl_slist_append(h, lines[i]);
		if (t == NULL) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = t;
	}
	return h;
}

/* A curl handle with what every request of the call shares: TLS
 * verification, authentication, timeouts, the body sink. */
static int call_begin(struct hv_bmc *b, const char *what, struct rf_call *c, char *err,
                      size_t errlen)
{
	struct rf_drv *d = b->drv;
	CURLcode rc;

	memset(c, 0, sizeof *c);
	c->b = b;
	c->d = d;
	c->what = what;
	c->curl = curl_easy_init();
	c->hdr_get = headers(0);
	c->hdr_post = headers(1);
	if (c->curl == NULL || c->hdr_get == NULL || c->hdr_post == NULL) {
		call_end(c);
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		               b->address, what);
	}
#define SET(opt, val)                                                       \
	do {                                                                \
		if ((rc = curl_easy_setopt(c->curl, opt, val)) != CURLE_OK) \
			goto fail;                                          \
	} while (0)
	SET(CURLOPT_ERRORBUFFER, c->cerr);
	SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "https");
#else
	SET(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	SET(CURLOPT_USERNAME, d->user);
	SET(CURLOPT_PASSWORD, d->password);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)d->timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long)d->timeout_ms);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, c);
	SET(CURLOPT_USERAGENT, "hvpeer-bmc/" HVPEER_VERSION);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (d->ca_file[0] != '\0') {
		SET(CURLOPT_CAINFO, d->ca_file);
		SET(CURLOPT_CAPATH, (char *)NULL); /* that file only */
	}
	if (d->pin[0] != '\0') {
		SET(CURLOPT_PINNEDPUBLICKEY, d->pin);
		/* Checked whatever VERIFYPEER says (curl's documentation). */
		if (d->ca_file[0] == '\0') {
			SET(CURLOPT_SSL_VERIFYPEER, 0L);
			SET(CURLOPT_SSL_VERIFYHOST, 0L);
		}
	}
	if (d->pin[0] == '\0' || d->ca_file[0] != '\0') {
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_SSL_VERIFYHOST, 2L);
	}
#undef SET
	return HV_OK;
fail:
	call_end(c);
	return hv_errf(err, errlen, rc == CURLE_OUT_OF_MEMORY ? HV_NOMEM : HV_INVAL,
	               "BMC %s: %s: this libcurl refuses a setting (%s): use a "
	               "libcurl built with OpenSSL (Debian package "
	               "libcurl4-openssl-dev)",
	               b->address, what, curl_easy_strerror(rc));
}

/* A transport failure (no HTTP answer) as an HV_* code and message. */
static int curl_error(struct rf_call *c, const char *method, const char *path,
                      CURLcode rc, char *err, size_t errlen)
{
	struct hv_bmc *b = c->b;
	struct rf_drv *d = c->d;
	const char *why = c->cerr[0] != '\0' ? c->cerr : curl_easy_strerror(rc);
	curl_off_t connected = 0;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: cannot resolve the host name (%s): check "
		               "the BMC address",
		               b->address, c->what, why);
	case CURLE_COULDNT_CONNECT:
		return hv_errf(err, errlen, HV_UNREACHABLE,
		               "BMC %s: %s: cannot connect (%s): check the address and "
		               "port (HTTPS, 443 by default), that Redfish is enabled "
		               "on the BMC, and the network to it",
		               b->address, c->what, why);
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connected);
		if (!c->answered && connected == 0)
			return hv_errf(err, errlen, HV_UNREACHABLE,
			               "BMC %s: %s: no answer within %u ms: check the "
			               "address and port (HTTPS, 443 by default), that "
			               "Redfish is enabled on the BMC, and the network "
			               "to it",
			               b->address, c->what, d->timeout_ms);
		return hv_errf(err, errlen, HV_TIMEOUT,
		               "BMC %s: %s: %s %s: the BMC stopped answering (nothing "
		               "within %u ms): retry; if it lasts, the BMC may need a "
		               "reset",
		               b->address, c->what, method, path, d->timeout_ms);
	case CURLE_PEER_FAILED_VERIFICATION:
		if (d->ca_file[0] != '\0')
			return hv_errf(err, errlen, HV_INVAL,
			               "BMC %s: %s: the BMC's certificate did not verify "
			               "against the CA file %s (%s): give the CA that "
			               "signed it (bmc-ca, --ca) or pin the BMC's key "
			               "(bmc-pin, --pin)",
			               b->address, c->what, d->ca_file, why);
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC's certificate did not verify "
		               "against the system's CAs (%s): give the CA that signed "
		               "it (bmc-ca, --ca) or pin the BMC's key (bmc-pin, --pin)",
		               b->address, c->what, why);
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC's public key does not match the pin "
		               "%s: it has a new key or it is not the BMC; check which, "
		               "then update the pin (bmc-pin, --pin)",
		               b->address, c->what, d->pin);
	case CURLE_SSL_CACERT_BADFILE:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: cannot use the CA file %s (%s): give a PEM "
		               "file of CA certificates",
		               b->address, c->what, d->ca_file, why);
	case CURLE_SSL_CONNECT_ERROR:
		return hv_errf(err, errlen, HV_PROTO,
		               "BMC %s: %s: the TLS handshake failed (%s): check that "
		               "the port is the BMC's HTTPS port",
		               b->address, c->what, why);
	case CURLE_WRITE_ERROR:
		if (c->overflow)
			return hv_errf(err, errlen, HV_PROTO,
			               "BMC %s: %s: %s %s: the answer is larger than "
			               "the %d bytes hvpeer reads",
			               b->address, c->what, method, path, BODY_MAX);
		if (c->nomem)
			return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
			               b->address, c->what);
		break;
	case CURLE_OUT_OF_MEMORY:
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		               b->address, c->what);
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return hv_errf(err, errlen, HV_IO,
		               "BMC %s: %s: %s %s: the connection broke (%s): retry; if "
		               "it lasts, the BMC may need a reset",
		               b->address, c->what, method, path, why);
	default:
		break;
	}
	return hv_errf(err, errlen, HV_IO, "BMC %s: %s: %s %s: %s", b->address, c->what,
	               method, path, why);
}

/* An HTTP answer that is not a success, as an HV_* code and message with
 * the BMC's own words. noun names what was asked for ("the system"). */
static int status_error(struct rf_call *c, const char *method, const char *path,
                        const char *noun, long status, char *err, size_t errlen)
{
	struct hv_bmc *b = c->b;
	struct rf_drv *d = c->d;
	char says[400], text[440];

	hv_bmc_redfish_error_text(c->body, c->len, d->password, says, sizeof says);
	snprintf(text, sizeof text, "%s%s", says[0] ? "; the BMC says: " : "", says);
	switch (status) {
	case 401:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC refused user '%s' or its password "
		               "(HTTP 401 on %s %s%s): check user and password in the "
		               "credentials file, and that the user may log in to "
		               "Redfish",
		               b->address, c->what, d->user, method, path, text);
	case 403:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC does not let user '%s' do this "
		               "(HTTP 403 on %s %s%s): give the user a role that may "
		               "(Operator or Administrator for power control)",
		               b->address, c->what, d->user, method, path, text);
	case 404:
		return hv_errf(err, errlen, HV_PROTO,
		               "BMC %s: %s: the BMC has no %s at %s (HTTP 404 on %s%s): "
		               "check that the address is the BMC's Redfish service and "
		               "that its firmware offers it",
		               b->address, c->what, noun, path, method, text);
	case 400:
	case 405:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC refused the request (HTTP %ld on %s "
		               "%s%s): check that it offers this action",
		               b->address, c->what, status, method, path, text);
	case 409:
	case 503:
		return hv_errf(err, errlen, HV_IO,
		               "BMC %s: %s: the BMC is busy (HTTP %ld on %s %s%s): "
		               "retry later",
		               b->address, c->what, status, method, path, text);
	}
	if (status >= 300 && status < 400)
		return hv_errf(err, errlen, HV_PROTO,
		               "BMC %s: %s: the BMC redirects %s %s elsewhere (HTTP "
		               "%ld), which hvpeer does not follow: give the address "
		               "of its Redfish service",
		               b->address, c->what, method, path, status);
	if (status >= 500 && status < 600)
		return hv_errf(err, errlen, HV_IO,
		               "BMC %s: %s: the BMC failed (HTTP %ld on %s %s%s): retry; "
		               "if it lasts, see the BMC's log",
		               b->address, c->what, status, method, path, text);
	return hv_errf(err, errlen, HV_PROTO,
	               "BMC %s: %s: unexpected answer HTTP %ld on %s %s%s", b->address,
	               c->what, status, method, path, text);
}

/* One request; *status the HTTP status once there is an answer. payload
 * NULL = GET, else POST it as JSON. */
static int exchange(struct rf_call *c, const char *method, const char *path,
                    const char *payload, long *status, char *err, size_t errlen)
{
	char url[sizeof c->d->base + HV_REDFISH_PATH_MAX];
	CURLcode rc;

	*status = c->status = 0;
	snprintf(url, sizeof url, "%s%s", c->d->base, path);
	c->len = 0;
	if (c->body != NULL)
		c->body[0] = '\0';
	c->overflow = c->nomem = 0;
	c->cerr[0] = '\0';
	rc = curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (rc == CURLE_OK && payload != NULL) {
		rc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE,
		                      (long)strlen(payload));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdr_post);
	} else if (rc == CURLE_OK) {
		rc = curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdr_get);
	}
	if (rc == CURLE_OK)
		rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK)
		return curl_error(c, method, path, rc, err, errlen);
	c->answered = 1;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	c->status = *status;
	return HV_OK;
}

int hv_bmc_redfish_parse(const char *body, size_t len, struct json_object **out,
                         char *why, size_t whylen)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t end;

	*out = NULL;
	tok = len <= INT_MAX ? json_tokener_new_ex(JSON_DEPTH) : NULL;
	if (tok == NULL)
		return hv_errf(why, whylen, HV_NOMEM, "out of memory");
	o = json_tokener_parse_ex(tok, body != NULL ? body : "", (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (o == NULL || jerr != json_tokener_success) {
		json_object_put(o);
		return hv_errf(why, whylen, HV_PROTO,
		               "the answer is not JSON (%s at byte %zu of %zu)",
		               jerr == json_tokener_continue
		                   ? "it ends midway"
		                   : json_tokener_error_desc(jerr),
		               end, len);
	}
	if (!blank(body + end, len - end) || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return hv_errf(why, whylen, HV_PROTO,
		               "the answer is not one JSON object");
	}
	*out = o;
	return HV_OK;
}

/* GET path and parse the answer, a JSON object, into *out (the caller
 * puts it). */
static int get_json(struct rf_call *c, const char *path, const char *noun,
                    struct json_object **out, char *err, size_t errlen)
{
	char why[256];
	long status;
	int rv;

	*out = NULL;
	rv = exchange(c, "GET", path, NULL, &status, err, errlen);
	if (rv != HV_OK)
		return rv;
	if (status < 200 || status > 299)
		return status_error(c, "GET", path, noun, status, err, errlen);
	rv = hv_bmc_redfish_parse(c->body, c->len, out, why, sizeof why);
	if (rv == HV_NOMEM)
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		               c->b->address, c->what);
	if (rv != HV_OK)
		return hv_errf(err, errlen, rv,
		               "BMC %s: %s: GET %s: %s: the BMC's Redfish service is "
		               "broken; retry, or update its firmware",
		               c->b->address, c->what, path, why);
	return HV_OK;
}

/* ---- resources ------------------------------------------------------------ */

/* The path a link {"@odata.id": "/redfish/v1/..."} at key of o holds: 1
 * (copied to out), 0 there is no such link, -1 it is not a path the driver
 * follows. */
static int link_path(struct json_object *o, const char *key, char *out, size_t outlen)
{
	struct json_object *l, *id;
	const char *p;

	if (!json_object_object_get_ex(o, key, &l) ||
	    !json_object_is_type(l, json_type_object))
		return 0;
	if (!json_object_object_get_ex(l, "@odata.id", &id) ||
	    !json_object_is_type(id, json_type_string))
		return 0;
	p = json_object_get_string(id);
	if (!hv_bmc_redfish_path_ok(p) || strlen(p) >= outlen)
		return -1;
	snprintf(out, outlen, "%s", p);
	return 1;
}

/* out = base + tail ("/Thermal"), for resources the BMC does not link. */
static int path_join(char *out, size_t outlen, const char *base, const char *tail)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if ((size_t)snprintf(out, outlen, "%.*s%s", (int)n, base, tail) >= outlen)
		return -1;
	return 0;
}

/* The first member of a collection ("/redfish/v1/Systems") into out,
 * unless out already holds one. */
static int first_member(struct rf_call *c, const char *collection, const char *noun,
                        char *out, size_t outlen, char *err, size_t errlen)
{
	struct json_object *o, *members, *m;
	const char *p;
	char what[64];
	int rv;

	if (out[0] != '\0')
		return HV_OK;
	snprintf(what, sizeof what, "%s collection", noun);
	rv = get_json(c, collection, what, &o, err, errlen);
	if (rv != HV_OK)
		return rv;
	if (!json_object_object_get_ex(o, "Members", &members) ||
	    !json_object_is_type(members, json_type_array)) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: %s: GET %s: the answer has no Members array: it "
		             "is not a Redfish collection",
		             c->b->address, c->what, collection);
		goto out;
	}
	if (json_object_array_length(members) == 0) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: %s: the BMC lists no %s in %s: it does not manage "
		             "this host over Redfish",
		             c->b->address, c->what, noun, collection);
		goto out;
	}
	m = json_object_array_get_idx(members, 0);
	if (m == NULL || !json_object_is_type(m, json_type_object) ||
	    (p = string_at(m, "@odata.id")) == NULL || !hv_bmc_redfish_path_ok(p) ||
	    strlen(p) >= outlen) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: %s: GET %s: the first member has no @odata.id "
		             "that is a /redfish/v1/ path",
		             c->b->address, c->what, collection);
		goto out;
	}
	snprintf(out, outlen, "%s", p);
	rv = HV_OK;
out:
	json_object_put(o);
	return rv;
}

/* GET a resource found by first_member (*path); forget it on a 404, so
 * the next call looks for it again. */
static int get_member(struct rf_call *c, char *path, const char *noun,
                      struct json_object **out, char *err, size_t errlen)
{
	int rv = get_json(c, path, noun, out, err, errlen);

	if (rv != HV_OK && c->status == 404)
		path[0] = '\0';
	return rv;
}

static int get_system(struct rf_call *c, struct json_object **sys, char *err,
                      size_t errlen)
{
	struct rf_drv *d = c->d;
	int rv;

	rv = first_member(c, "/redfish/v1/Systems", "system", d->system, sizeof d->system,
	                  err, errlen);
	if (rv != HV_OK)
		return rv;
	return get_member(c, d->system, "system", sys, err, errlen);
}

/* ---- power ---------------------------------------------------------------- */

static int rf_power_status(struct hv_bmc *b, int *on, char *err, size_t errlen)
{
	struct rf_call c;
	struct json_object *sys = NULL, *v;
	int rv;

	rv = call_begin(b, "power status", &c, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = get_system(&c, &sys, err, errlen);
	if (rv != HV_OK)
		goto out;
	rv = hv_bmc_redfish_power_state(sys, on);
	if (rv != HV_OK) {
		char state[64] = "none";

		if (json_object_object_get_ex(sys, "PowerState", &v) && v != NULL)
			text_copy(state, sizeof state, json_object_get_string(v),
			          strlen(json_object_get_string(v)), '?');
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: power status: the system %s reports PowerState "
		             "'%s', not On, Off, PoweringOn, PoweringOff or Paused",
		             b->address, c.d->system, state);
	}
out:
	json_object_put(sys);
	call_end(&c);
	return rv;
}

/* Does the Reset action list ResetTypes (AllowableValues) without rt?
 * Then say which it takes. */
static int reset_refused(struct hv_bmc *b, const char *what, struct json_object *act,
                         const char *rt, char *err, size_t errlen)
{
	struct json_object *allow, *v;
	char list[256] = "", one[48];
	size_t n, i, used = 0;

	if (act == NULL ||
	    !json_object_object_get_ex(act, "ResetType@Redfish.AllowableValues",
	                               &allow) ||
	    !json_object_is_type(allow, json_type_array))
		return HV_OK; /* it does not say: try */
	n = json_object_array_length(allow);
	for (i = 0; i < n; i++) {
		v = json_object_array_get_idx(allow, i);
		if (v != NULL && json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), rt) == 0)
			return HV_OK;
	}
	for (i = 0; i < n && used < sizeof list - 1; i++) {
		v = json_object_array_get_idx(allow, i);
		if (v == NULL || !json_object_is_type(v, json_type_string))
			continue;
		text_copy(one, sizeof one, json_object_get_string(v),
		          strlen(json_object_get_string(v)), '?');
		used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
		                         used ? ", " : "", one);
	}
	return hv_errf(err, errlen, HV_INVAL,
	               "BMC %s: %s: the BMC does not take ResetType %s (it takes: "
	               "%s): use an action it takes",
	               b->address, what, rt, list[0] ? list : "none");
}

static int rf_power(struct hv_bmc *b, int action, char *err, size_t errlen)
{
	/* Redfish's ResetType for each action (DSP0266, Resource.ResetType). */
	static const char *const reset_type[HV__BMC_NACTION] = {
	    [HV_BMC_ON] = "On",
	    [HV_BMC_OFF] = "ForceOff",
	    [HV_BMC_CYCLE] = "PowerCycle",
	    [HV_BMC_RESET] = "ForceRestart",
	    [HV_BMC_SOFT] = "GracefulShutdown",
	};
	struct rf_call c;
	struct json_object *sys = NULL, *actions, *act = NULL, *t;
	char what[32], target[HV_REDFISH_PATH_MAX], payload[64];
	const char *p;
	long status;
	int rv;

	rv = hv_bmc_action_what(b, action, what, sizeof what, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = call_begin(b, what, &c, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = get_system(&c, &sys, err, errlen);
	if (rv != HV_OK)
		goto out;
	if (json_object_object_get_ex(sys, "Actions", &actions) &&
	    json_object_is_type(actions, json_type_object) &&
	    json_object_object_get_ex(actions, "#ComputerSystem.Reset", &act) &&
	    !json_object_is_type(act, json_type_object))
		act = NULL;
	if (act != NULL && json_object_object_get_ex(act, "target", &t) &&
	    json_object_is_type(t, json_type_string)) {
		p = json_object_get_string(t);
		if (!hv_bmc_redfish_path_ok(p)) {
			rv =
			    hv_errf(err, errlen, HV_PROTO,
			            "BMC %s: %s: the system %s names a Reset target that "
			            "is not a /redfish/v1/ path",
			            b->address, what, c.d->system);
			goto out;
		}
		snprintf(target, sizeof target, "%s", p);
	} else if (path_join(target, sizeof target, c.d->system,
	                     "/Actions/ComputerSystem.Reset") != 0) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: %s: the system path is too long", b->address, what);
		goto out;
	}
	rv = reset_refused(b, what, act, reset_type[action], err, errlen);
	if (rv != HV_OK)
		goto out;
	snprintf(payload, sizeof payload, "{\"ResetType\": \"%s\"}", reset_type[action]);
	rv = exchange(&c, "POST", target, payload, &status, err, errlen);
	if (rv != HV_OK)
		goto out;
	if (status != 200 && status != 202 && status != 204)
		rv =
		    status_error(&c, "POST", target, "Reset action", status, err, errlen);
out:
	json_object_put(sys);
	call_end(&c);
	return rv;
}

/* ---- sensors -------------------------------------------------------------- */

/* GET the resource the chassis links at key (else chassis + tail) and
 * decode its sensors of kind which into out[*n..max). */
static int sensors_of(struct rf_call *c, struct json_object *chassis, const char *key,
                      const char *tail, int which, struct hv_bmc_sensor *out,
                      unsigned max, unsigned *n, char *err, size_t errlen)
{
	char path[HV_REDFISH_PATH_MAX], noun[64], why[256];
	struct json_object *res;
	int rv, l;

	l = link_path(chassis, key, path, sizeof path);
	if (l < 0)
		return hv_errf(err, errlen, HV_PROTO,
		               "BMC %s: %s: the chassis %s links a %s that is not a "
		               "/redfish/v1/ path",
		               c->b->address, c->what, c->d->chassis, key);
	if (l == 0 && path_join(path, sizeof path, c->d->chassis, tail) != 0)
		return hv_errf(err, errlen, HV_PROTO,
		               "BMC %s: %s: the chassis path is too long", c->b->address,
		               c->what);
	snprintf(noun, sizeof noun, "%s resource", key);
	rv = get_json(c, path, noun, &res, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = hv_bmc_redfish_sensors_decode(res, which, out, max, n, why, sizeof why);
	if (rv != HV_OK)
		rv = hv_errf(err, errlen, rv, "BMC %s: %s: GET %s: %s", c->b->address,
		             c->what, path, why);
	json_object_put(res);
	return rv;
}

static int rf_sensors(struct hv_bmc *b, struct hv_bmc_sensor *out, unsigned max,
                      unsigned *n, char *err, size_t errlen)
{
	struct rf_drv *d = b->drv;
	struct rf_call c;
	struct json_object *chassis = NULL;
	int rv;

	*n = 0;
	rv = call_begin(b, "sensors", &c, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = first_member(&c, "/redfish/v1/Chassis", "chassis", d->chassis,
	                  sizeof d->chassis, err, errlen);
	if (rv != HV_OK)
		goto out;
	rv = get_member(&c, d->chassis, "chassis", &chassis, err, errlen);
	if (rv != HV_OK)
		goto out;
	rv = sensors_of(&c, chassis, "Thermal", "/Thermal", HV_REDFISH_THERMAL, out, max,
	                n, err, errlen);
	if (rv != HV_OK)
		goto out;
	rv = sensors_of(&c, chassis, "Power", "/Power", HV_REDFISH_POWER, out, max, n,
	                err, errlen);
out:
	if (rv != HV_OK)
		*n = 0;
	json_object_put(chassis);
	call_end(&c);
	return rv;
}

/* ---- open and close ------------------------------------------------------- */

static void rf_close(struct hv_bmc *b)
{
	struct rf_drv *d = b->drv;

	if (d == NULL)
		return;
	explicit_bzero(d, sizeof *d);
	free(d);
	b->drv = NULL;
}

/* A host name or an IP address, nothing that would change the URL. */
static int host_ok(const char *host)
{
	if (strchr(host, ':') != NULL) /* IPv6, without a zone */
		return strspn(host, "0123456789abcdefABCDEF:.") == strlen(host);
	return strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                    "0123456789.-_") == strlen(host);
}

int hv_bmc_redfish_init(char *err, size_t errlen)
{
	static int done;
	CURLcode rc;

	if (done)
		return HV_OK;
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		return hv_errf(err, errlen, HV_IO,
		               "cannot initialise libcurl for Redfish (%s): check the "
		               "libcurl4 package",
		               curl_easy_strerror(rc));
	done = 1;
	return HV_OK;
}

int hv_bmc_redfish_open(struct hv_bmc *b, const struct hv_bmc_creds *creds,
                        const struct hv_bmc_opts *opts, char *err, size_t errlen)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	struct rf_drv *d;
	char host[HV_BMC_ADDRESS_MAX];
	unsigned port, timeout;
	int rv;

	rv = hv_bmc_address_split(b->address, host, sizeof host, &port, err, errlen);
	if (rv != HV_OK)
		return rv;
	if (!host_ok(host))
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC address '%s': '%s' is neither a host name nor an IP "
		               "address",
		               b->address, host);
	if (creds->user[0] == '\0')
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: no user: Redfish needs a user name; set user in "
		               "the credentials file",
		               b->address);
	if (creds->password[0] == '\0')
		return hv_errf(err, errlen, HV_INVAL, "BMC %s: no password", b->address);
	if (opts->pin != NULL && opts->pin[0] != '\0' &&
	    (strlen(opts->pin) >= PIN_MAX || !hv_bmc_redfish_pin_ok(opts->pin)))
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: pin '%.80s' is not sha256//BASE64 (the base64 "
		               "SHA-256 of the BMC's public key, 44 characters; several "
		               "separated by ';')",
		               b->address, opts->pin);
	if (opts->ca_file != NULL && opts->ca_file[0] != '\0') {
		if (strlen(opts->ca_file) >= PATH_MAX)
			return hv_errf(err, errlen, HV_INVAL,
			               "BMC %s: CA file name too long", b->address);
		if (access(opts->ca_file, R_OK) != 0)
			return hv_errf(err, errlen, HV_INVAL,
			               "BMC %s: CA file %s: %s: give a readable PEM file "
			               "of the CA certificates that sign the BMC's",
			               b->address, opts->ca_file, strerror(errno));
	}
	timeout = opts->timeout_ms ? opts->timeout_ms : HV_BMC_TIMEOUT_MS;
	if (timeout < TIMEOUT_MIN_MS)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: timeout %u ms is too short for Redfish (at least "
		               "%d ms)",
		               b->address, timeout, TIMEOUT_MIN_MS);
	if (cv == NULL || !(cv->features & CURL_VERSION_SSL))
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: this libcurl has no TLS: install one that has "
		               "(Debian package libcurl4)",
		               b->address);

	d = calloc(1, sizeof *d);
	if (d == NULL)
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: out of memory",
		               b->address);
	b->drv = d;
	b->close = rf_close;
	snprintf(d->base, sizeof d->base,
	         strchr(host, ':') != NULL ? "https://[%s]:%u" : "https://%s:%u", host,
	         port ? port : HTTPS_PORT);
	snprintf(d->user, sizeof d->user, "%s", creds->user);
	snprintf(d->password, sizeof d->password, "%s", creds->password);
	if (opts->ca_file != NULL)
		snprintf(d->ca_file, sizeof d->ca_file, "%s", opts->ca_file);
	if (opts->pin != NULL)
		snprintf(d->pin, sizeof d->pin, "%s", opts->pin);
	d->timeout_ms = timeout;

	b->power_status = rf_power_status;
	b->power = rf_power;
	b->sensors = rf_sensors;
	return HV_OK;
}

/* ---- decoders (redfish.h) ------------------------------------------------- */

/* Cut s (len bytes) to at most max bytes without splitting a UTF-8
 * character; returns the new length. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t j, need;
	unsigned char lead;

	if (len <= max)
		return len;
	j = max;
	while (j > 0 && ((unsigned char)s[j - 1] & 0xc0) == 0x80)
		j--;
	if (j == 0)
		return 0;
	lead = (unsigned char)s[j - 1];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return j - 1 + need <= max ? max : j - 1;
}

/* Copy src (len bytes) into out, control characters as repl, cut to fit. */
static void text_copy(char *out, size_t outlen, const char *src, size_t len, char repl)
{
	size_t n;

	if (outlen == 0)
		return;
	n = utf8_cut(src, len, outlen - 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];

		out[i] = ch < 0x20 || ch == 0x7f ? repl : (char)ch;
	}
	out[n] = '\0';
}

/* Is s (len bytes) only JSON whitespace? */
static int blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

/* Append s to the stream m, every occurrence of secret as "***". */
static void put_scrubbed(FILE *m, const char *s, const char *secret)
{
	size_t sl = secret != NULL ? strlen(secret) : 0;
	const char *hit;

	while (sl > 0 && (hit = strstr(s, secret)) != NULL) {
		fwrite(s, 1, (size_t)(hit - s), m);
		fputs("***", m);
		s = hit + sl;
	}
	fputs(s, m);
}

void hv_bmc_redfish_error_text(const char *body, size_t len, const char *secret,
                               char *out, size_t outlen)
{
	struct json_tokener *tok;
	struct json_object *o = NULL, *e, *v, *ext, *x;
	const char *msg = NULL, *s;
	char *text = NULL, *raw;
	size_t tlen = 0, n;
	FILE *m;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (body == NULL || len == 0)
		return;
	m = open_memstream(&text, &tlen);
	if (m == NULL)
		return;
	tok = len <= INT_MAX ? json_tokener_new_ex(JSON_DEPTH) : NULL;
	if (tok != NULL) {
		o = json_tokener_parse_ex(tok, body, (int)len);
		/* One whole object, else text ("404 Not Found" starts with a
		 * number json-c would stop after). */
		if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
		                  !json_object_is_type(o, json_type_object) ||
		                  !blank(body + json_tokener_get_parse_end(tok),
		                         len - json_tokener_get_parse_end(tok)))) {
			json_object_put(o);
			o = NULL;
		}
		json_tokener_free(tok);
	}
	if (o != NULL) {
		if (json_object_object_get_ex(o, "error", &e) &&
		    json_object_is_type(e, json_type_object)) {
			if (json_object_object_get_ex(e, "message", &v) &&
			    json_object_is_type(v, json_type_string)) {
				msg = json_object_get_string(v);
				put_scrubbed(m, msg, secret);
			}
			if (json_object_object_get_ex(e, "@Message.ExtendedInfo", &ext) &&
			    json_object_is_type(ext, json_type_array)) {
				n = json_object_array_length(ext);
				for (size_t i = 0; i < n && i < 8; i++) {
					x = json_object_array_get_idx(ext, i);
					if (x == NULL ||
					    !json_object_is_type(x, json_type_object) ||
					    !json_object_object_get_ex(x, "Message",
					                               &v) ||
					    !json_object_is_type(v, json_type_string))
						continue;
					s = json_object_get_string(v);
					if (msg != NULL && strcmp(s, msg) == 0)
						continue;
					if (ftell(m) > 0)
						fputs("; ", m);
					put_scrubbed(m, s, secret);
				}
			}
		}
		json_object_put(o);
	} else {
		/* Not JSON (a proxy's page, plain text): its first bytes. */
		raw = strndup(body, len < 4096 ? len : 4096);
		if (raw != NULL) {
			put_scrubbed(m, raw, secret);
			free(raw);
		}
	}
	if (fclose(m) != 0 || text == NULL) {
		free(text);
		return;
	}
	text_copy(out, outlen, text, strlen(text), ' ');
	explicit_bzero(text, tlen);
	free(text);
}

int hv_bmc_redfish_path_ok(const char *path)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                         "0123456789-._~%!$&'()*+,;=:@/";
	size_t n;

	if (path == NULL || strncmp(path, "/redfish/v1/", 12) != 0)
		return 0;
	n = strlen(path);
	if (n >= HV_REDFISH_PATH_MAX || strspn(path, ok) != n)
		return 0;
	if (strstr(path, "/../") != NULL || (n >= 3 && strcmp(path + n - 3, "/..") == 0))
		return 0;
	return 1;
}

int hv_bmc_redfish_pin_ok(const char *pin)
{
	static const char b64[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "0123456789+/";
	const char *p = pin;

	if (p == NULL || *p == '\0')
		return 0;
	for (;;) {
		if (strncmp(p, "sha256//", 8) != 0)
			return 0;
		p += 8;
		/* 32 bytes: 43 characters and one '=' of padding. */
		if (strspn(p, b64) != 43 || p[43] != '=')
			return 0;
		p += 44;
		if (*p == '\0')
			return 1;
		if (*p++ != ';')
			return 0;
	}
}

int hv_bmc_redfish_power_state(struct json_object *system, int *on)
{
	struct json_object *v;
	const char *s;

	if (system == NULL || !json_object_object_get_ex(system, "PowerState", &v) ||
	    !json_object_is_type(v, json_type_string))
		return HV_PROTO;
	s = json_object_get_string(v);
	if (strcmp(s, "On") == 0 || strcmp(s, "PoweringOff") == 0 ||
	    strcmp(s, "Paused") == 0)
		*on = 1;
	else if (strcmp(s, "Off") == 0 || strcmp(s, "PoweringOn") == 0)
		*on = 0;
	else
		return HV_PROTO;
	return HV_OK;
}

/* A finite number at key of o. */
static int number_at(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;
	double x;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) ||
	      json_object_is_type(v, json_type_int)))
		return 0;
	x = json_object_get_double(v);
	if (!isfinite(x))
		return 0;
	*out = x;
	return 1;
}

static const char *string_at(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int hv_bmc_redfish_sensors_decode(struct json_object *res, int which,
                                  struct hv_bmc_sensor *out, unsigned max, unsigned *n,
                                  char *err, size_t errlen)
{
	static const struct {
		const char *key;
		unsigned bit;
		size_t off;
	} th[] = {
	    {"LowerThresholdNonCritical", HV_BMC_TH_LOWER_NONCRIT,
	     offsetof(struct hv_bmc_sensor, lower_noncrit)},
	    {"LowerThresholdCritical", HV_BMC_TH_LOWER_CRIT,
	     offsetof(struct hv_bmc_sensor, lower_crit)},
	    {"LowerThresholdFatal", HV_BMC_TH_LOWER_NONREC,
	     offsetof(struct hv_bmc_sensor, lower_nonrec)},
	    {"UpperThresholdNonCritical", HV_BMC_TH_UPPER_NONCRIT,
	     offsetof(struct hv_bmc_sensor, upper_noncrit)},
	    {"UpperThresholdCritical", HV_BMC_TH_UPPER_CRIT,
	     offsetof(struct hv_bmc_sensor, upper_crit)},
	    {"UpperThresholdFatal", HV_BMC_TH_UPPER_NONREC,
	     offsetof(struct hv_bmc_sensor, upper_nonrec)},
	};
	const int thermal = which == HV_REDFISH_THERMAL;
	const char *array = thermal ? "Temperatures" : "Voltages";
	const char *reading = thermal ? "ReadingCelsius" : "ReadingVolts";
	struct json_object *a, *e, *st;
	struct hv_bmc_sensor *s;
	const char *name, *state, *health;
	size_t len;
	int h;

	if (res == NULL || !json_object_object_get_ex(res, array, &a) || a == NULL)
		return HV_OK; /* none of this kind */
	if (!json_object_is_type(a, json_type_array))
		return hv_errf(err, errlen, HV_PROTO, "%s is not an array", array);
	len = json_object_array_length(a);
	for (size_t i = 0; i < len && *n < max; i++) {
		e = json_object_array_get_idx(a, i);
		if (e == NULL || !json_object_is_type(e, json_type_object))
			continue;
		state = health = NULL;
		if (json_object_object_get_ex(e, "Status", &st) &&
		    json_object_is_type(st, json_type_object)) {
			state = string_at(st, "State");
			health = string_at(st, "Health");
		}
		if (state != NULL && strcmp(state, "Absent") == 0)
			continue;
		s = &out[*n];
		memset(s, 0, sizeof *s);
		if ((name = string_at(e, "Name")) != NULL && name[0] != '\0')
			text_copy(s->name, sizeof s->name, name, strlen(name), '?');
		else if ((name = string_at(e, "MemberId")) != NULL && name[0] != '\0')
			text_copy(s->name, sizeof s->name, name, strlen(name), '?');
		else
			snprintf(s->name, sizeof s->name, "%s %zu", array, i);
		snprintf(s->type, sizeof s->type, "%s",
		         thermal ? "Temperature" : "Voltage");
		snprintf(s->unit, sizeof s->unit, "%s", thermal ? "C" : "V");
		for (size_t k = 0; k < sizeof th / sizeof th[0]; k++)
			if (number_at(e, th[k].key,
			              (double *)(void *)((char *)s + th[k].off)))
				s->thresholds |= th[k].bit;
		if (number_at(e, reading, &s->value)) {
			/* The worse of our verdict and the BMC's. */
			s->state = hv_bmc_sensor_eval(s);
			h = health == NULL                    ? HV_BMC_SENSOR_OK
			    : strcmp(health, "Critical") == 0 ? HV_BMC_SENSOR_CRITICAL
			    : strcmp(health, "Warning") == 0  ? HV_BMC_SENSOR_WARNING
			                                      : HV_BMC_SENSOR_OK;
			if (h > s->state)
				s->state = h;
		} else {
			s->value = 0;
			s->state = HV_BMC_SENSOR_UNREADABLE;
		}
		(*n)++;
	}
	return HV_OK;
}
