#!/usr/bin/env bash
# Mutual TLS between peers, with real hvpeerd processes on 127.0.0.1, and
# joining with a one-time token.
#
# A cluster CA (hvpeer ca) and three node certificates: three TLS peers
# form a cluster, forward writes and elect a new leader after a kill -9.
# Then every refusal, each seen in the refusing daemon's log and in the
# outcome (the newcomer never becomes a member): a plaintext peer, a
# certificate from another CA, an expired certificate, a valid certificate
# that claims another node's Raft id (openssl s_client), a revoked one (the
# CRL reloaded with SIGHUP, which also closes its open connections), a
# reload of a broken CRL (the old one stays),
# a peer outside allow-peers, and the start-up refusals. A host joins with
# a token (its certificate signed by the member through the join); a token
# used twice, with a wrong secret, expired or malformed is refused (a certificate for
# another node, an incomplete [tls], a key that is not the certificate's).
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/tls.sh
#
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 99 when the
# binaries are missing, 77 without python3 or the openssl tool.
set -u
command -v openssl >/dev/null || { echo "1..0 # SKIP no openssl tool"; exit 77; }
. "$(dirname "$0")/lib.sh" # binaries, TAP, PID, PORT, e2e_dir, e2e_ports
declare -A SIGNER=([h1]=1) # the hosts that hold the CA key (tls-ca-key)
e2e_dir hvptls
e2e_ports h1 h2 h3 p1 x1 e1 r1 s1 j1 j2
H1=127.0.0.1:${PORT[h1]}

# ---- certificates ----------------------------------------------------------
ca() { "$HVPEER" ca "$@" >>"$T/ca.out" 2>&1; }
ca init --dir "$T/ca"
ca init --dir "$T/other"
for h in h1 h2 h3 e1; do ca issue --dir "$T/ca" --name $h --out "$T/$h"; done
ca issue --dir "$T/other" --name x1 --out "$T/x1"
# An expired certificate from the cluster CA, made with the openssl tool.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r1.key" \
	-subj /CN=r1 -out "$T/r1.csr" 2>/dev/null
printf 'subjectAltName=DNS:r1,URI:hvpeer:node/r1/4242\nextendedKeyUsage=serverAuth,clientAuth\n' >"$T/ext"
openssl x509 -req -in "$T/r1.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" -days -1 \
	-extfile "$T/ext" -out "$T/r1.crt" 2>/dev/null
# A CRL from the start (it lists e1, which never runs), so that every node
# has tls-crl set and a reload can pick up a later revocation.
ca revoke --dir "$T/ca" "$T/e1.crt"
idof() { "$HVPEER" --json ca show "$T/$1.crt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
check "the CA, four node certificates, a foreign and an expired one, a CRL" \
	test -s "$T/h3.crt" -a -s "$T/x1.crt" -a -s "$T/r1.crt" -a -s "$T/ca/ca.crl"

start() { # NAME CERT ARGS...
	local n=$1 c=$2
	shift 2
	echo "=== $(date +%T) start $n $*" >>"$T/$n.log"
	"$HVPEERD" --name "$n" --data-dir "$T/$n.d" --listen "127.0.0.1:${PORT[$n]}" \
		--socket "$T/$n.sock" --report-interval 300 --log-level "${HVPEER_E2E_LOG:-info}" \
		${c:+--tls-cert "$T/$c.crt" --tls-key "$T/$c.key" --tls-ca "$T/ca/ca.crt" --tls-crl "$T/ca/ca.crl"} \
		${c:+${SIGNER[$n]:+--tls-ca-key "$T/ca/ca.key"}} \
		"$@" </dev/null >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
}
stop() { kill -TERM "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; }
kill9() { kill -KILL "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; }
status() { "$HVPEER" --socket "$T/$1.sock" --timeout 3000 --json status 2>/dev/null; }
# members NODE: "name:id:role ..." sorted, from NODE's status with quorum.
members() {
	status "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); d['quorum'] or sys.exit(3); print(' '.join(sorted('%s:%s:%s' % (m['name'], m['id'], m['role']) for m in d['members'])))" 2>/dev/null
}
members_are() { test "$(members "$1")" = "$2"; }
leader_of() {
	status "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print([m['name'] for m in d['members'] if m['leader']][0] if d['quorum'] else '')" 2>/dev/null
}
logged() { grep -q -- "$2" "$T/$1.log"; } # NODE TEXT
expect_log() { # NODE TENTHS TEXT WHAT: TEXT shows in NODE's log in time
	if wait_for "$2" logged "$1" "$3"; then
		ok "$4"
	else
		nok "$4" "$(grep -h 'refused\|warn' "$T/$1.log" | tail -3)"
	fi
}
not_member() { ! members h1 | grep -q "$1:"; }
ID1=$(idof h1) ID2=$(idof h2) ID3=$(idof h3)

echo "# three TLS peers form a cluster"
start h1 h1 --bootstrap
start h2 h2 --join "$H1"
start h3 h3 --join "$H1"
want="h1:$ID1:voter h2:$ID2:voter h3:$ID3:voter"
if wait_for 300 members_are h1 "$want"; then
	ok "three voters, each under its certificate's Raft id"
else
	nok "three voters, each under its certificate's Raft id" "want $want" "got $(members h1)"
fi
check "the daemons say they run mutual TLS" logged h2 "(mutual TLS)"
check "status agrees on h3" members_are h3 "$want"
out=$("$HVPEER" --socket "$T/h3.sock" --timeout 5000 pause --reason "tls check" 2>&1)
check "a pause given on a follower commits (RPC forwarded over TLS)" \
	sh -c "'$HVPEER' --socket '$T/h1.sock' --json status | grep -q 'tls check'"
"$HVPEER" --socket "$T/h2.sock" --timeout 5000 resume >/dev/null 2>&1

echo "# kill -9 of the leader: a new leader over TLS"
leader=$(leader_of h1)
[ -n "$leader" ] || leader=h1
kill9 "$leader"
ask=h1
[ "$leader" = h1 ] && ask=h2
new_leader() { l=$(leader_of $ask) && [ -n "$l" ] && [ "$l" != "$leader" ]; }
if wait_for 100 new_leader; then ok "a new leader after $leader was killed: $(leader_of $ask)"; else nok "a new leader after $leader was killed"; fi
start "$leader" "$leader"
wait_for 200 members_are h1 "$want" || nok "$leader back" "$(members h1)"

echo "# refusals"
# A plaintext peer.
start p1 "" --join "$H1"
expect_log h1 100 "plaintext hvpeer connection, but this node requires TLS" "plaintext: refused, and the reason logged"
check "  the plaintext peer is not a member" not_member p1
stop p1
# A certificate from another CA.
start x1 x1 --join "$H1"
expect_log h1 100 "certificate refused: unable to get local issuer certificate" "another CA's certificate: refused, and the reason logged"
check "  that peer is not a member" not_member x1
stop x1
# An expired certificate: the daemon says so at start, its peers refuse it.
start r1 r1 --join "$H1"
check "expired: the daemon itself says so" wait_for 50 logged r1 "expired on"
expect_log h1 100 "certificate refused: certificate has expired" "expired: refused by the peer, and the reason logged"
check "  that peer is not a member" not_member r1
stop r1
# A valid certificate (h3's) claiming h2's Raft id.
python3 - "$ID2" >"$T/preamble" <<'EOF'
import struct, sys
addr = b"127.0.0.1:1"
sys.stdout.buffer.write(b"HVRAFT01" + struct.pack(">Q", int(sys.argv[1])) + bytes([len(addr)]) + addr.ljust(63, b"\0"))
EOF
(cat "$T/preamble"; sleep 1) | timeout 10 openssl s_client -quiet -connect "$H1" -cert "$T/h3.crt" \
	-key "$T/h3.key" -CAfile "$T/ca/ca.crt" >/dev/null 2>&1
expect_log h1 50 "claims Raft id $ID2 but its certificate is for h3 (id $ID3)" "another node's identity on a valid certificate: refused, and logged"
# RPC with a valid certificate (h3's) speaking for another host.
rpc_as_h3() { # JSON: the answer on stdout
	python3 -c '
import json, struct, sys
body = sys.argv[1].encode()
sys.stdout.buffer.write(b"HVRPC001" + struct.pack(">I", len(body)) + body)' "$1" >"$T/rpc.req"
	(cat "$T/rpc.req"; sleep 1) | timeout 10 openssl s_client -quiet -connect "$H1" -cert "$T/h3.crt" \
		-key "$T/h3.key" -CAfile "$T/ca/ca.crt" 2>/dev/null | tail -c +5
}
out=$(rpc_as_h3 '{"op":"pause","reason":"spoofed","by":"root@h1","forwarded":true}')
if grep -q "refused: h3 forwarded a write done by 'root@h1'" <<<"$out"; then
	ok "a write forwarded by h3 in h1's name: refused"
else
	nok "a write forwarded by h3 in h1's name: refused" "$out"
fi
out=$(rpc_as_h3 '{"op":"join","name":"h9","id":99,"address":"127.0.0.1:1"}')
if grep -q "join: refused: the certificate is for h3" <<<"$out"; then
	ok "a join as h9 with h3's certificate: refused"
else
	nok "a join as h9 with h3's certificate: refused" "$out"
fi
check "  h9 is not a member" not_member h9
# The same client without a certificate.
(cat "$T/preamble"; sleep 1) | timeout 10 openssl s_client -quiet -connect "$H1" \
	-CAfile "$T/ca/ca.crt" >/dev/null 2>&1
check "no client certificate: refused, and logged" wait_for 50 logged h1 "connection from.*peer did not return a certificate"

echo "# joining with a one-time token"
out=$("$HVPEER" --socket "$T/h2.sock" token create 2>&1)
check "token create on a member without the CA key: refused" grep -q "h2 cannot sign certificates: set tls-ca-key" <<<"$out"
TOKEN=$("$HVPEER" --socket "$T/h1.sock" token create --ttl 600 2>"$T/token.err")
check "token create on h1 (it holds the CA key): a token" grep -qE '^hvt1\.[0-9a-f]{8}\.[0-9a-f]{32}$' <<<"$TOKEN"
check "  and how to use it" grep -q -- "--join 127.0.0.1:${PORT[h1]} --token TOKEN" "$T/token.err"
jstart() { # NAME TOKEN: a host with no certificate yet
	echo "=== $(date +%T) start $1 with a token" >>"$T/$1.log"
	"$HVPEERD" --name "$1" --data-dir "$T/$1.d" --listen "127.0.0.1:${PORT[$1]}" \
		--socket "$T/$1.sock" --report-interval 300 --join "$H1" --token "$2" \
		--tls-cert "$T/$1/n.crt" --tls-key "$T/$1/n.key" --tls-ca "$T/$1/ca.crt" \
		--tls-crl "$T/ca/ca.crl" </dev/null >>"$T/$1.log" 2>&1 &
	PID[$1]=$!
}
mkdir -p "$T/j1" "$T/j2"
jstart j1 "$TOKEN"
is_member() { members h1 | grep -q "$1:"; }
if wait_for 150 is_member j1; then ok "a new host joins with the token: $(members h1 | grep -o 'j1:[^ ]*')"; else nok "a new host joins with the token" "$(members h1)"; fi
check "  its key was made here, mode 0600" test "$(stat -c %a "$T/j1/n.key" 2>/dev/null)" = 600
check "  its certificate names it, under the Raft id it joined with" \
	sh -c "'$HVPEER' --json ca show '$T/j1/n.crt' | grep -q '\"name\": *\"j1\"' && '$HVPEER' ca show '$T/j1/n.crt' | grep -q \"\$(members h1 | grep -o 'j1:[0-9]*' | cut -d: -f2)\""
check "  h1 logged the signature" logged h1 "enroll: signed a certificate for j1"
jfail() { # NAME TOKEN TEXT: the host exits 1 saying TEXT, leaving no key
	timeout 20 "$HVPEERD" --name "$1" --data-dir "$T/$1.d" --listen "127.0.0.1:${PORT[$1]}" \
		--socket "$T/$1.sock" --join "$H1" --token "$2" \
		--tls-cert "$T/$1/n.crt" --tls-key "$T/$1/n.key" --tls-ca "$T/$1/ca.crt" >"$T/$1.out" 2>&1
	local rc=$?
	[ $rc = 1 ] && grep -q -- "$3" "$T/$1.out" && [ ! -e "$T/$1/n.key" ] || { echo "# exit $rc: $(cat "$T/$1.out")"; return 1; }
}
check "the same token again: refused (one use), no key left" jfail j2 "$TOKEN" "token [0-9a-f]* was used already"
check "  h1 logged the refusal" logged h1 "enroll: refused a join from 127.0.0.1: token"
T2=$("$HVPEER" --socket "$T/h1.sock" token create 2>/dev/null)
check "a token with another secret: refused" jfail j2 "${T2%.*}.00000000000000000000000000000000" "no such token, or not its secret"
T3=$("$HVPEER" --socket "$T/h1.sock" token create 2>/dev/null)
id3=$(cut -d. -f2 <<<"$T3")
sed -i "s/^\($id3 [0-9a-f]*\) [0-9]* /\1 1000 /" "$T/h1.d/join-tokens"
check "an expired token: refused" jfail j2 "$T3" "token $id3 has expired"
check "a malformed token: refused before anything is made" jfail j2 "hvt1.nonsense" "not a join token"
check "  none of them became a member" not_member j2
check "the token file is 0600" test "$(stat -c %a "$T/h1.d/join-tokens")" = 600

echo "# revocation, picked up with SIGHUP"
ca revoke --dir "$T/ca" "$T/h3.crt"
for h in h1 h2 j1; do kill -HUP "${PID[$h]}"; done # every voter but h3
check "the reload is logged" wait_for 50 logged h1 "reload: TLS certificate, key, CA and CRL read again"
expect_log h1 100 "closed after a reload: certificate refused: certificate revoked" "a revoked peer's open connections: closed by the reload, and logged"
check "  the reload says how many it closed" wait_for 50 logged h1 "reload: closed [0-9]* connection"
no_quorum() { status h3 | python3 -c "import json,sys; sys.exit(0 if not json.load(sys.stdin)['quorum'] else 1)"; }
check "  the revoked node, still running, loses quorum" wait_for 100 no_quorum
kill9 h3
start h3 h3
expect_log h1 100 "from [^:]*: certificate refused: certificate revoked" "a revoked certificate: refused at the handshake after a restart, and logged"
sleep 2
check "  the revoked node has no quorum to talk to" no_quorum
kill9 h3
# A CRL that no longer parses: the reload fails, the old one stays.
cp "$T/ca/ca.crl" "$T/crl.good"
echo garbage >"$T/ca/ca.crl"
kill -HUP "${PID[h1]}"
check "a broken CRL: the reload fails and says the old files stay" wait_for 50 logged h1 "the certificates in use stay"
cp "$T/crl.good" "$T/ca/ca.crl"
check "  and h1 still serves with quorum" wait_for 50 sh -c "'$HVPEER' --socket '$T/h1.sock' --json status | grep -q '\"quorum\": *true'"

echo "# allow-peers"
stop h2
start h2 h2 --allow-peers 10.0.0.0/8
expect_log h2 100 "its address is not in allow-peers" "a peer outside allow-peers: refused, and logged"
stop h2
start h2 h2 --allow-peers "10.0.0.0/8, 127.0.0.1/32"
check "  inside it: h2 serves again" wait_for 100 sh -c "'$HVPEER' --socket '$T/h2.sock' --json status | grep -q '\"quorum\": *true'"
"$HVPEERD" --name s1 --data-dir "$T/s1.d" --listen "127.0.0.1:${PORT[s1]}" --socket "$T/s1.sock" \
	--bootstrap --allow-peers 10.0.0.0/33 >"$T/s1.out" 2>&1
check "a bad network in allow-peers is a usage error (exit 2)" test $? = 2
check "  naming it" grep -q "prefix length must be 0-32" "$T/s1.out"

echo "# start-up refusals"
startup() { # EXPECTED_EXIT TEXT ARGS...
	local want=$1 text=$2
	shift 2
	timeout 10 "$HVPEERD" --name s1 --data-dir "$T/s1.d" --listen "127.0.0.1:${PORT[s1]}" \
		--socket "$T/s1.sock" --bootstrap "$@" >"$T/s1.out" 2>&1
	local rc=$?
	[ $rc = "$want" ] && grep -q -- "$text" "$T/s1.out" || { echo "# exit $rc: $(cat "$T/s1.out")"; return 1; }
}
check "another node's certificate: refused at start" \
	startup 1 "is for node h1" --tls-cert "$T/h1.crt" --tls-key "$T/h1.key" --tls-ca "$T/ca/ca.crt"
check "tls-cert without tls-key and tls-ca: a usage error" \
	startup 2 "TLS needs tls-cert, tls-key and tls-ca together" --tls-cert "$T/h1.crt"
cp "$T/h2.key" "$T/mix.key"
check "a key that is not the certificate's: refused at start" \
	startup 1 "does not match certificate" --name h1 --tls-cert "$T/h1.crt" --tls-key "$T/mix.key" --tls-ca "$T/ca/ca.crt"
check "a missing CA file: refused at start" \
	startup 1 "CA certificate" --name h1 --tls-cert "$T/h1.crt" --tls-key "$T/h1.key" --tls-ca "$T/nothere.crt"
check "no data dir was made by the refusals" test ! -e "$T/s1.d/node.id"
