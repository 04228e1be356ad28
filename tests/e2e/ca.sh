#!/usr/bin/env bash
# hvpeer ca: the cluster CA and node certificates (issue 7's first part).
# Makes a CA, issues node certificates and checks them with the openssl
# tool (chain, key usage, the node identity in the subject alternative
# name), and every refusal: a file that exists, a bad name or id, a missing
# or mismatched CA key, a bad --days. Local files only.
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/ca.sh
set -u
BUILDDIR=${HVPEER_BUILDDIR:-.}
HVPEER=$BUILDDIR/hvpeer
[ -x "$HVPEER" ] || { echo "Bail out! no hvpeer in '$BUILDDIR'"; exit 99; }
command -v openssl >/dev/null || { echo "1..0 # SKIP no openssl tool"; exit 77; }
. "$(dirname "$0")/../bmc/tap.sh" # check, tap_done
T=$(mktemp -d /tmp/hvpca.XXXXXX)
trap 'rm -rf "$T"; tap_done; exit $?' EXIT
ca() { "$HVPEER" ca "$@" >"$T/out" 2>"$T/err"; }
err_has() { grep -q "$1" "$T/err"; }

check "ca init makes the CA" ca init --dir "$T/ca"
check "the CA key is 0600" test "$(stat -c %a "$T/ca/ca.key")" = 600
check "the CA certificate is a CA (basic constraints)" sh -c "openssl x509 -in '$T/ca/ca.crt' -noout -ext basicConstraints | grep -q 'CA:TRUE'"
ca init --dir "$T/ca"
check "ca init refuses to overwrite a CA (exit 1)" test $? = 1
check "  saying so" err_has "already holds a CA"

check "ca issue: h1 with its Raft id" ca issue --dir "$T/ca" --name h1 --id 18446744073709551615 --out "$T/h1"
check "the node key is 0600" test "$(stat -c %a "$T/h1.key")" = 600
check "openssl verifies the chain" sh -c "openssl verify -CAfile '$T/ca/ca.crt' '$T/h1.crt' >/dev/null"
check "the key matches the certificate" sh -c "test \"\$(openssl pkey -in '$T/h1.key' -pubout)\" = \"\$(openssl x509 -in '$T/h1.crt' -noout -pubkey)\""
check "the identity is in the SAN: URI:hvpeer:node/h1/ID" sh -c "openssl x509 -in '$T/h1.crt' -noout -ext subjectAltName | grep -q 'URI:hvpeer:node/h1/18446744073709551615'"
check "server and client authentication" sh -c "openssl x509 -in '$T/h1.crt' -noout -ext extendedKeyUsage | grep -q 'Server Authentication, TLS Web Client Authentication'"
check "the subject's CN is the name" sh -c "openssl x509 -in '$T/h1.crt' -noout -subject | grep -q 'CN *= *h1'"
"$HVPEER" --json ca show "$T/h1.crt" >"$T/show.json"
check "ca show --json: the name and id" test "$(python3 -c "import json; d=json.load(open('$T/show.json')); print(d['name'], d['id'], d['ca'], d['expired'])")" = "h1 18446744073709551615 False False"
check "ca show: the text form names the node" sh -c "'$HVPEER' ca show '$T/h1.crt' | grep -q 'node: *h1 (Raft id 18446744073709551615)'"
check "ca show of the CA: no node identity" sh -c "'$HVPEER' ca show '$T/ca/ca.crt' | grep -q 'none (a CA certificate)'"

ca issue --dir "$T/ca" --name h1 --id 7 --out "$T/h1"
check "ca issue refuses to overwrite (exit 1)" test $? = 1
ca issue --dir "$T/ca" --name "h1/../x" --id 7 --out "$T/x"
check "a bad name is a usage error (exit 2)" test $? = 2
ca issue --dir "$T/ca" --name h2 --id 0 --out "$T/h2"
check "Raft id 0 is refused (exit 2)" test $? = 2
ca issue --dir "$T/ca" --name h2 --id -5 --out "$T/h2"
check "a negative id is refused (exit 2)" test $? = 2
ca issue --dir "$T/ca" --name h2 --id 5 --days 0 --out "$T/h2"
check "--days 0 is refused (exit 2)" test $? = 2
ca issue --dir "$T/nowhere" --name h2 --id 5 --out "$T/h2"
check "no CA there (exit 1)" test $? = 1
check "  saying how to make one" err_has "hvpeer ca init"
ca init --dir "$T/other"
cp "$T/other/ca.key" "$T/mixed.key"
mkdir -p "$T/mixed" && cp "$T/ca/ca.crt" "$T/mixed/ca.crt" && cp "$T/mixed.key" "$T/mixed/ca.key"
ca issue --dir "$T/mixed" --name h2 --id 5 --out "$T/h2"
check "a CA key that is not the certificate's is refused (exit 1)" test $? = 1
check "no file was left by the refusals" test ! -e "$T/h2.key" -a ! -e "$T/h2.crt" -a ! -e "$T/x.key"
check "a certificate from another CA does not verify" sh -c "! openssl verify -CAfile '$T/other/ca.crt' '$T/h1.crt' >/dev/null 2>&1"
check "ca show of a file that is not a certificate (exit 1)" sh -c "! '$HVPEER' ca show '$T/h1.key' 2>/dev/null"
check "ca with no command is a usage error (exit 2)" sh -c "'$HVPEER' ca >/dev/null 2>&1; test \$? = 2"
check "ca --help (exit 0)" sh -c "'$HVPEER' ca --help | grep -q 'certificate authority'"
