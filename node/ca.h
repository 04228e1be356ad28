/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The cluster's certificate authority (OpenSSL): `hvpeer ca`.
 *
 * A cluster CA (an ECDSA P-256 key and a self-signed CA certificate) signs
 * one certificate per node. A node's identity, its name and its Raft id, is
 * bound to its certificate: the subject's CN is the name, and a URI subject
 * alternative name reads "hvpeer:node/NAME/ID". Peers check it on every Raft
 * and RPC connection (tls.h, transport.h): a valid certificate that claims another
 * node's identity is refused.
 *
 *   hvpeer ca init --dir DIR [--days N]
 *   hvpeer ca issue --dir DIR --name NAME [--id ID] [--days N] --out PREFIX
 *   hvpeer [--json] ca show CERT
 *
 *   hvpeer ca revoke --dir DIR CERT [--days N]
 *
 * Keys are written 0600; keys and certificates are never overwritten (revoke
 * replaces DIR/ca.crl, atomically).
 */
#ifndef HV_CA_H
#define HV_CA_H

#include <stdbool.h>
#include <stdint.h>

/* `hvpeer ca ARGS` (argv[0] is "ca"); returns the exit status. */
int hv_ca_main(int argc, char **argv, bool json);

#endif
