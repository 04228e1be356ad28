/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Joining with a one-time token: the new host's certificate is signed
 * through the join.
 *
 * On a member that holds the CA key (tls-ca-key), `hvpeer token create`
 * makes a token "hvt1.ID.SECRET" that expires (default 1 h) and works once.
 * The member keeps ID, SHA-256(SECRET) and the expiry in DATA_DIR/join-tokens
 * (0600). The new host runs `hvpeerd --join MEMBER --token T` with tls-cert,
 * tls-key and tls-ca naming files that do not exist yet:
 *
 *   1. it makes a key (tls-key, 0600) and a certificate request for its
 *      name, and chooses a Raft id;
 *   2. it connects to MEMBER's peer port and sends, after the 8-byte magic
 *      "HVJOIN01" (accepted in plaintext even when the port speaks TLS),
 *      one RPC frame: {"op":"enroll","token":ID,"name","id","csr","mac"},
 *      mac = HMAC-SHA256(K, ID|name|id|csr), K = SHA-256(SECRET);
 *   3. the member checks the MAC, that the token is known, unexpired and
 *      unused, marks it used, signs a certificate binding name and id, and
 *      answers {"cert","ca","mac"}, mac = HMAC-SHA256(K, cert|ca);
 *   4. the host checks that MAC (so it trusts the CA certificate it got),
 *      writes tls-cert and tls-ca, and starts: the join proper then runs
 *      over mutual TLS.
 *
 * The secret never crosses the network; someone who sees the exchange
 * learns a certificate request and a certificate, both public. A token
 * guessed, replayed or used twice is refused and logged.
 */
#ifndef HV_ENROLL_H
#define HV_ENROLL_H

#include <json-c/json.h>
#include <stdint.h>

#include "config.h"

#define HV_MAGIC_JOIN "HVJOIN01"
#define HV_TOKEN_TTL_DEFAULT_S 3600
#define HV_TOKEN_TTL_MAX_S (7 * 86400)

struct hv_node;
struct hv_rpc_conn;

/* `token-create` on the control socket: a new token valid ttl_s seconds.
 * Replies with {"token", "expires_ms"} or an error. */
void hv_enroll_token_create(struct hv_node *n, struct hv_rpc_conn *c, uint64_t ttl_s);

/* `enroll` from a new host (HVJOIN01). */
void hv_enroll_serve(struct hv_node *n, struct hv_rpc_conn *c, struct json_object *req);

/*
 * The new host's side, before it starts (blocking, at most timeout_ms):
 * when cfg has a token and its tls-cert file does not exist, get the
 * certificate through cfg's first join address. 0 (done, or nothing to do),
 * or -1 with why. Files written here are removed again on failure.
 */
int hv_enroll_client(const struct hv_config *cfg, unsigned timeout_ms, char *why,
                     size_t whylen);

#endif
