#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The redfish BMC driver (bmc/redfish.c) against the project's own Redfish
# endpoint over TLS (tests/bmc/redfish-sim.py on a free port of 127.0.0.1),
# whose power actions run the IPMI simulator's chassis command
# (tests/bmc/bmcsim.sh chassis DIR: a host process that power off stops
# and power on starts), driven through hvpeer-bmc -k redfish. The test
# makes its own CA, a server certificate it signs (subjectAltName
# IP:127.0.0.1), and a second CA that signs nothing, with openssl.
#
#   HVPEER_BUILDDIR=BUILD HVPEER_SRCDIR=SRC bash tests/bmc/redfish.sh
#
# Checks: power status (text and JSON) found through the Systems
# collection; on, off, cycle (off then on seen by polling, a new host
# process), reset, soft; a failing power controller reported with the BMC's
# message; sensors from Thermal and Power with names, types, units, values
# and thresholds (an absent sensor left out, unreadable before the host
# boots), the collections read once for three calls on one handle, values
# past the thresholds read as warning and critical; refusals: a wrong
# password (401), a missing system and a missing Thermal (404, the path
# named), a BMC that stops answering (timeout), malformed JSON, a BMC error
# (500), a CA that did not sign the certificate, no CA at all, a name that
# does not match, a wrong pin (a right pin alone is enough), a refused
# connection, bad --pin and --ca values; and no output ever holds the
# password (nor a sanitizer's report, in an ASan build).
#
# Output: "ok N - ..." / "not ok N - ..." per check, then "N passed, M
# failed". Exit 0 when all passed, 1 otherwise, 77 (skip) when python3,
# openssl, ps or setsid is missing, 99 when hvpeer-bmc is not built. Every
# wait is bounded; everything started is stopped on exit.
set -u

BUILDDIR=${HVPEER_BUILDDIR:-.}
SRCDIR=${HVPEER_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PROBE=$BUILDDIR/hvpeer-bmc
SIM=$SRCDIR/tests/bmc/bmcsim.sh
RFSIM=$SRCDIR/tests/bmc/redfish-sim.py

skip() { echo "SKIP: $*"; exit 77; }
command -v python3 >/dev/null || skip "python3 not found (Debian package python3)"
command -v openssl >/dev/null || skip "openssl not found (Debian package openssl)"
command -v ps >/dev/null || skip "ps not found (Debian package procps)"
command -v setsid >/dev/null || skip "setsid not found (Debian package util-linux)"
[ -x "$PROBE" ] || { echo "ERROR: $PROBE not built (make)"; exit 99; }

T=$(mktemp -d /tmp/hvbmc-rf.XXXXXX)
D=$T/bmc
SIM_PID=
cleanup() {
	local i=0
	if [ -n "$SIM_PID" ]; then
		kill -TERM "$SIM_PID" 2>/dev/null
		while kill -0 "$SIM_PID" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$SIM_PID" 2>/dev/null
		wait "$SIM_PID" 2>/dev/null
	fi
	# The host is a detached process: power it off.
	[ -d "$D" ] && BMCSIM_DIR=$D timeout 20 "$SIM" chassis "$D" set power 0 >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. "$(dirname "$0")/tap.sh"

# hvpeer-bmc -k redfish [OPTION...] ADDRESS CMD, bounded in time; all it
# prints is also kept in $T/all.out (no password may ever show there).
rf_raw() {
	local rc
	timeout 30 "$PROBE" -k redfish "$@" >"$T/out" 2>"$T/err"
	rc=$?
	cat "$T/out" "$T/err" >>"$T/all.out"
	return $rc
}
# The same against our BMC with its credentials and CA: OPTION... CMD.
rf() {
	local cmd=${!#}
	rf_raw -c "$D/creds" --ca "$T/ca.crt" -t 3000 "${@:1:$#-1}" "127.0.0.1:$PORT" "$cmd"
}
pcmd() { rf "$@"; }
power_is() { rf status && [ "$(cat "$T/out")" = "power $1" ]; }

running() {
	local s
	s=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$s" ] && [ "${s#Z}" = "$s" ]
}
host_pid() { cat "$D/host.pid" 2>/dev/null; }
host_up() { local p; p=$(host_pid) && [ -n "$p" ] && running "$p"; }
gone() { ! running "$1"; }
host_other_than() { local p; p=$(host_pid) && [ -n "$p" ] && [ "$p" != "$1" ] && running "$p"; }

# python3 -c CODE < JSON: exit 0 when CODE (with the JSON in j) holds.
jcheck() { python3 -c "import json,sys; j=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" 2>/dev/null; }
out_json() { jcheck "$1" <"$T/out"; }
err_has() { grep -q -- "$1" "$T/err"; }
failed_with() { # rc, then a pattern the message must match
	[ "$1" != 0 ] && err_has "$2"
}

# ---- certificates and credentials ------------------------------------------

mkcerts() {
	local ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
	# shellcheck disable=SC2086
	openssl req -x509 $ec -keyout "$T/ca.key" -out "$T/ca.crt" -days 2 \
		-subj /CN=hvpeer-test-CA -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign &&
		openssl req -x509 $ec -keyout "$T/other-ca.key" -out "$T/other-ca.crt" -days 2 \
			-subj /CN=hvpeer-other-CA -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign &&
		openssl req $ec -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=127.0.0.1 &&
		printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
			>"$T/srv.ext" &&
		openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" \
			-CAcreateserial -out "$T/srv.crt" -days 2 -extfile "$T/srv.ext"
} >"$T/openssl.log" 2>&1
# curl's pin of a certificate's public key: sha256//BASE64.
pin_of() {
	echo "sha256//$(openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64)"
}

check "openssl makes a CA, a server certificate it signs, and another CA" mkcerts
PIN=$(pin_of "$T/srv.crt")
WRONG_PIN=$(pin_of "$T/other-ca.crt")
mkdir -p "$D"
PW=rf-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
(
	umask 077
	printf '%s\n' "$PW" >"$T/password"
	printf '[default]\nuser = admin\npassword = %s\n' "$PW" >"$D/creds"
)

# ---- start ------------------------------------------------------------------

python3 "$RFSIM" --dir "$D" --cert "$T/srv.crt" --key "$T/srv.key" --user admin \
	--password-file "$T/password" --pid-file "$T/sim.pid" --cycle-delay 1 \
	>"$T/sim.port" 2>"$T/sim.err" &
SIM_PID=$!
listening() { [ -s "$T/sim.port" ]; }
check "the Redfish endpoint starts and prints its port" wait_for 100 listening
PORT=$(head -n 1 "$T/sim.port")
if [ -z "$PORT" ]; then
	cat "$T/sim.err" "$T/openssl.log" >&2
	echo "$passed passed, $failed failed (cannot go on without the endpoint)"
	exit 1
fi
check "its pid file names it" [ "$(cat "$T/sim.pid" 2>/dev/null)" = "$SIM_PID" ]

# ---- power ------------------------------------------------------------------

check "status: power off before any command" power_is off
rf -j status
check "status: JSON output" out_json 'j["power"]=="off" and j["address"]=="127.0.0.1:'"$PORT"'"'
check "status: the system found through the collection (Systems/sys-a)" \
	grep -q '^GET /redfish/v1/Systems/sys-a 200$' "$D/requests.log"

check "on: accepted" pcmd on
check "on: status on" wait_for 30 power_is on
check "on: the host process runs" wait_for 30 host_up
pid1=$(host_pid)

check "off: accepted" pcmd off
check "off: status off" wait_for 30 power_is off
check "off: the host process is gone" wait_for 30 gone "$pid1"

check "on again: accepted" pcmd on
check "on again: the host process is back" wait_for 30 host_other_than "$pid1"
check "on again: status on" power_is on
pid2=$(host_pid)

# A cycle is off, about a second, on: poll and see both.
saw_off=0 saw_on_after=0
check "cycle: accepted" pcmd -j cycle
check "cycle: JSON result ok" out_json 'j["action"]=="cycle" and j["result"]=="ok"'
for _ in $(seq 1 60); do
	s=$(rf status && cat "$T/out")
	if [ "$s" = "power off" ]; then
		saw_off=1
	elif [ "$s" = "power on" ] && [ $saw_off = 1 ]; then
		saw_on_after=1
		break
	fi
	sleep 0.1
done
check "cycle: power off seen" [ $saw_off = 1 ]
check "cycle: then power on seen" [ $saw_on_after = 1 ]
check "cycle: the old host process is gone" gone "$pid2"
check "cycle: a new host process runs" wait_for 30 host_other_than "$pid2"
check "cycle: POSTed ResetType PowerCycle to the system's Reset target" \
	grep -q '^POST /redfish/v1/Systems/sys-a/Actions/ComputerSystem.Reset 204$' "$D/requests.log"
pid3=$(host_pid)

check "reset: accepted" pcmd reset
check "reset: the host restarted (new process)" wait_for 30 host_other_than "$pid3"
check "reset: the old host process is gone" wait_for 30 gone "$pid3"
check "reset: status on" power_is on

touch "$D/chassis.fail"
rf off
rc=$?
rm -f "$D/chassis.fail"
check "failing power control: IO with the BMC's message (HTTP 500)" \
	failed_with $rc 'IO: .*power off: the BMC failed (HTTP 500 on POST .*simulated power controller failure'
check "failing power control: the host still runs" host_up

# ---- sensors ----------------------------------------------------------------

S_OK='len(j["sensors"])==2
 and [s["name"] for s in j["sensors"]]==["CPU Temp","12V"]
 and j["sensors"][0]["type"]=="Temperature" and j["sensors"][0]["unit"]=="C"
 and j["sensors"][0]["value"]==45
 and j["sensors"][0]["thresholds"]=={"upper_noncrit":80,"upper_crit":90,"upper_nonrec":100}
 and j["sensors"][1]["type"]=="Voltage" and j["sensors"][1]["unit"]=="V"
 and abs(j["sensors"][1]["value"]-12.1)<1e-6
 and j["sensors"][1]["thresholds"]=={"lower_crit":10.8,"lower_noncrit":11.4,"upper_noncrit":12.6,"upper_crit":13.2}
 and all(s["state"]=="ok" for s in j["sensors"])'
S_OK=${S_OK//$'\n'/}
sensors_are() { rf -j sensors && out_json "$1"; }
check "sensors: Thermal and Power with names, types, units, values and thresholds, all ok (the absent one left out)" \
	sensors_are "$S_OK"
rf sensors
check "sensors: text output names them" grep -q '^CPU Temp .* 45.00 C *ok$' "$T/out"

before=$(grep -c '^GET /redfish/v1/Chassis 200$' "$D/requests.log")
rf -j -r 3 sensors
rc=$?
after=$(grep -c '^GET /redfish/v1/Chassis 200$' "$D/requests.log")
three_same() { [ $rc = 0 ] && [ "$(wc -l <"$T/out")" = 3 ] && [ "$(sort -u "$T/out" | wc -l)" = 1 ]; }
check "sensors three times on one handle: same answer each time" three_same
check "sensors three times on one handle: the Chassis collection read once" [ $((after - before)) = 1 ]

echo 85 >"$D/cpu_temp.val"
check "sensors: CPU Temp 85 (past upper non-critical 80) is warning" \
	sensors_are 'j["sensors"][0]["value"]==85 and j["sensors"][0]["state"]=="warning"'
echo 95 >"$D/cpu_temp.val"
check "sensors: CPU Temp 95 (past upper critical 90) is critical" \
	sensors_are 'j["sensors"][0]["value"]==95 and j["sensors"][0]["state"]=="critical"'
rf sensors
check "sensors: text output says critical" grep -q '^CPU Temp .* 95.00 C *critical$' "$T/out"
echo 45 >"$D/cpu_temp.val"
echo 112 >"$D/p12v.val"
check "sensors: 12V at 11.2 V (below lower non-critical 11.4) is warning" \
	sensors_are 'abs(j["sensors"][1]["value"]-11.2)<1e-6 and j["sensors"][1]["state"]=="warning" and j["sensors"][0]["state"]=="ok"'
echo 121 >"$D/p12v.val"

check "soft: accepted" pcmd soft
check "soft: status off" wait_for 30 power_is off
check "sensors: 12V at 0 V with the host off is critical (below 10.8)" \
	sensors_are 'j["sensors"][1]["value"]==0 and j["sensors"][1]["state"]=="critical"'
rm -f "$D/cpu_temp.val"
check "sensors: no reading is unreadable, thresholds kept" \
	sensors_are 'j["sensors"][0]["state"]=="unreadable" and j["sensors"][0]["value"] is None and j["sensors"][0]["thresholds"]["upper_crit"]==90'

# ---- refusals ---------------------------------------------------------------

BAD_PW=wrong-pw-$$
sed "s/^password = .*/password = $BAD_PW/" "$D/creds" >"$T/wrong-pw"
chmod 600 "$T/wrong-pw"
rf_raw -c "$T/wrong-pw" --ca "$T/ca.crt" 127.0.0.1:"$PORT" status
rc=$?
check "wrong password: INVAL naming the user, HTTP 401" \
	failed_with $rc "INVAL: .*the BMC refused user 'admin' or its password (HTTP 401"
check "wrong password: with the BMC's own message" \
	err_has 'credentials included with this request are missing or invalid'
check "wrong password: the wrong password not printed" sh -c "! grep -qF -e '$BAD_PW' '$T/out' '$T/err'"
rf_raw -j -c "$T/wrong-pw" --ca "$T/ca.crt" 127.0.0.1:"$PORT" status
check "wrong password: JSON error INVAL" out_json 'j["error"]=="INVAL" and "HTTP 401" in j["message"]'

echo /redfish/v1/Systems/sys-a >"$D/fault.404"
rf status
rc=$?
rm -f "$D/fault.404"
check "missing system (404): PROTO naming its path" \
	failed_with $rc 'PROTO: .*no system at /redfish/v1/Systems/sys-a (HTTP 404'
check "missing system (404): with the BMC's message" err_has 'The resource at the URI /redfish/v1/Systems/sys-a was not found'

echo /redfish/v1/Chassis/chassis-a/Thermal >"$D/fault.404"
rf sensors
rc=$?
rm -f "$D/fault.404"
check "missing Thermal (404): PROTO naming its path" \
	failed_with $rc 'PROTO: .*no Thermal resource at /redfish/v1/Chassis/chassis-a/Thermal (HTTP 404'

echo '3 /redfish/v1/Systems/sys-a' >"$D/fault.delay"
t0=$(date +%s%N)
rf_raw -c "$D/creds" --ca "$T/ca.crt" -t 1000 127.0.0.1:"$PORT" status
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
rm -f "$D/fault.delay"
check "BMC stops answering: TIMEOUT naming the request" \
	failed_with $rc 'TIMEOUT: .*GET /redfish/v1/Systems/sys-a: the BMC stopped answering (nothing within 1000 ms)'
check "BMC stops answering: failed within the timeout (${ms} ms for 1000 + slack)" [ "$ms" -lt 2500 ]

echo /redfish/v1/Systems/sys-a >"$D/fault.badjson"
rf status
rc=$?
rm -f "$D/fault.badjson"
check "malformed JSON: PROTO 'not JSON'" \
	failed_with $rc 'PROTO: .*GET /redfish/v1/Systems/sys-a: the answer is not JSON'

echo '*' >"$D/fault.500"
rf -j sensors
rc=$?
rm -f "$D/fault.500"
check "BMC error (500): IO with the BMC's message" \
	failed_with $rc 'IO: .*the BMC failed (HTTP 500 on GET .*simulated BMC failure (fault.500)'
check "BMC error (500): JSON error IO" out_json 'j["error"]=="IO"'

rf_raw -c "$D/creds" --ca "$T/other-ca.crt" 127.0.0.1:"$PORT" status
check "a CA that did not sign the certificate: INVAL, did not verify against it" \
	failed_with $? "INVAL: .*certificate did not verify against the CA file $T/other-ca.crt"
rf_raw -c "$D/creds" 127.0.0.1:"$PORT" status
check "no CA and no pin: INVAL, did not verify against the system's CAs" \
	failed_with $? "INVAL: .*certificate did not verify against the system's CAs"
if getent hosts localhost | grep -q '^127\.0\.0\.1'; then
	rf_raw -c "$D/creds" --ca "$T/ca.crt" localhost:"$PORT" status
	check "the right CA but another name (localhost): INVAL" \
		failed_with $? "INVAL: .*did not verify .*localhost"
fi
rf_raw -c "$D/creds" --pin "$PIN" 127.0.0.1:"$PORT" status
check "the right pin alone: the self-signed chain is trusted by its key" \
	sh -c "[ $? = 0 ] && [ \"\$(cat '$T/out')\" = 'power off' ]"
rf_raw -c "$D/creds" --pin "$WRONG_PIN" 127.0.0.1:"$PORT" status
check "a wrong pin: INVAL, the key does not match the pin" \
	failed_with $? "INVAL: .*public key does not match the pin $WRONG_PIN"
rf_raw -c "$D/creds" --ca "$T/ca.crt" --pin "$WRONG_PIN;$PIN" 127.0.0.1:"$PORT" status
check "the CA and two pins, one right: accepted" [ $? = 0 ]
rf_raw -c "$D/creds" --ca "$T/ca.crt" --pin "$WRONG_PIN" 127.0.0.1:"$PORT" status
check "the right CA with a wrong pin: refused (both must hold)" \
	failed_with $? "does not match the pin"

free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t0=$(date +%s%N)
rf_raw -c "$D/creds" --ca "$T/ca.crt" -t 1000 127.0.0.1:"$free_port" status
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "connection refused: UNREACHABLE 'cannot connect'" \
	failed_with $rc 'UNREACHABLE: .*cannot connect.*check the address and port'
check "connection refused: failed at once (${ms} ms)" [ "$ms" -lt 1500 ]

rf_raw -c "$D/creds" --pin sha256//not-a-pin 127.0.0.1:"$PORT" status
check "a malformed --pin: INVAL, says sha256//BASE64" failed_with $? "INVAL: .*is not sha256//BASE64"
rf_raw -c "$D/creds" --ca "$T/missing.crt" 127.0.0.1:"$PORT" status
check "a missing --ca file: INVAL naming it" failed_with $? "INVAL: .*CA file $T/missing.crt: No such file"

# ---- the password -----------------------------------------------------------

check "the password was sent (some answers were 200)" grep -q ' 200$' "$D/requests.log"
check "no output of hvpeer-bmc ever held the password" sh -c "! grep -qF -e '$PW' '$T/all.out'"
# In an ASan build a leak on an error path would hide behind the exit status
# the check expects.
check "no sanitizer report in any output (error paths included)" \
	sh -c "! grep -qE 'Sanitizer|runtime error' '$T/all.out'"

tap_done
