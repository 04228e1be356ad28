#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The ipmi BMC driver (bmc/ipmi.c) against real RMCP+ BMCs: two ipmi_sim
# processes on free UDP ports of 127.0.0.1 (tests/bmc/bmcsim.sh), each with
# a chassis command that plays a host (a detached process that power off
# stops and power on starts), driven through hvpeer-bmc.
#
#   HVPEER_BUILDDIR=BUILD HVPEER_SRCDIR=SRC bash tests/bmc/ipmi-sim.sh
#
# Checks: power status (text and JSON); on, off, cycle (off then on seen by
# polling, a new host process), reset, soft; the second BMC's host untouched
# by the first's commands; a failing power controller reported with its
# completion code; sensors with the SDR's names, types, units, values and
# thresholds, three calls on one handle alike, no temporary file left; a
# sensor value past its thresholds read as warning, then critical, and the
# 12 V rail critical with the host off; a wrong password, a wrong user,
# cipher suite 17 (ipmi_sim lacks it) and a missing workaround refused with
# clear messages and no password; an unreachable port fails within the
# timeout; a credentials file with mode 644 refused.
#
# Output: "ok N - ..." / "not ok N - ..." per check, then "N passed, M
# failed". Exit 0 when all passed, 1 otherwise, 77 (skip) when not root or
# ipmi_sim, sdrcomp, ss or python3 is missing, 99 when hvpeer-bmc is not
# built. Every wait is bounded; everything started is stopped on exit.
set -u

BUILDDIR=${HVPEER_BUILDDIR:-.}
SRCDIR=${HVPEER_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PROBE=$BUILDDIR/hvpeer-bmc
SIM=$SRCDIR/tests/bmc/bmcsim.sh

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
for t in ipmi_sim sdrcomp; do
	command -v $t >/dev/null || skip "$t not found (Debian package openipmi)"
done
command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"
command -v python3 >/dev/null || skip "python3 not found"
[ -x "$PROBE" ] || { echo "ERROR: $PROBE not built (make)"; exit 99; }
export BMCSIM_PROBE=$PROBE

T=$(mktemp -d /tmp/hvbmc-sim.XXXXXX)
B1=$T/bmc1 B2=$T/bmc2
cleanup() {
	# Both at once: ipmi_sim takes about a second to stop.
	"$SIM" stop "$B1" >/dev/null 2>&1 &
	"$SIM" stop "$B2" >/dev/null 2>&1 &
	wait
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. "$(dirname "$0")/tap.sh"

# hvpeer-bmc DIR [OPTION...] CMD against the BMC in DIR (its port and
# credentials file).
probe() {
	local d=$1 cmd=${!#}
	shift
	"$PROBE" -c "$d/creds" -W opensesspriv -t 2000 "${@:1:$#-1}" \
		"127.0.0.1:$(cat "$d/port")" "$cmd"
}
pcmd() { probe "$@" >/dev/null; }

power_is() { [ "$(probe "$1" status 2>/dev/null)" = "power $2" ]; }

# A live (not zombie) process: the host is reparented to PID 1, which may
# reap it late.
running() {
	local s
	s=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$s" ] && [ "${s#Z}" = "$s" ]
}
host_pid() { cat "$1/host.pid" 2>/dev/null; }
host_up() { local p; p=$(host_pid "$1") && [ -n "$p" ] && running "$p"; }
gone() { ! running "$1"; }
host_other_than() { local p; p=$(host_pid "$1") && [ -n "$p" ] && [ "$p" != "$2" ] && running "$p"; }

# python3 -c CODE < JSON: exit 0 when CODE (with the JSON in j) holds.
jcheck() { python3 -c "import json,sys; j=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" 2>/dev/null; }

# ---- start ------------------------------------------------------------------

start_bmc() {
	"$SIM" start "$1" "$SIM chassis $1" >"$T/start.out" 2>&1 || {
		cat "$T/start.out" >&2
		return 1
	}
}
mkdir -p "$T"
check "first ipmi_sim BMC starts and answers a session" start_bmc "$B1"
check "second ipmi_sim BMC starts on another port" start_bmc "$B2"
if [ ! -f "$B1/port" ] || [ ! -f "$B2/port" ]; then
	echo "$passed passed, $failed failed (cannot go on without BMCs)"
	exit 1
fi
check "the two BMCs have different ports" [ "$(cat "$B1/port")" != "$(cat "$B2/port")" ]
check "credentials file written with mode 600" [ "$(stat -c %a "$B1/creds")" = 600 ]

# ---- power ------------------------------------------------------------------

check "status: power off before any command" power_is "$B1" off
check "status: JSON output" sh -c "'$PROBE' -j -c '$B1/creds' -W opensesspriv \
	127.0.0.1:$(cat "$B1/port") status | python3 -c \
	'import json,sys; j=json.load(sys.stdin); sys.exit(0 if j[\"power\"]==\"off\" else 1)'"

check "on: accepted" pcmd "$B1" on
check "on: status on" wait_for 30 power_is "$B1" on
check "on: the host process runs" wait_for 30 host_up "$B1"
pid1=$(host_pid "$B1")

check "off: accepted" pcmd "$B1" off
check "off: status off" wait_for 30 power_is "$B1" off
check "off: the host process is gone" wait_for 30 gone "$pid1"

check "on again: accepted" pcmd "$B1" on
check "on again: the host process is back" wait_for 30 host_other_than "$B1" "$pid1"
check "on again: status on" power_is "$B1" on
pid2=$(host_pid "$B1")
b2_pid_before=$(host_pid "$B2")

# A cycle is off, about a second, on: poll and see both.
saw_off=0 saw_on_after=0
check "cycle: accepted" pcmd "$B1" cycle
for _ in $(seq 1 60); do
	s=$(probe "$B1" status 2>/dev/null)
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
check "cycle: a new host process runs" wait_for 30 host_other_than "$B1" "$pid2"
pid3=$(host_pid "$B1")

check "reset: accepted" pcmd "$B1" reset
check "reset: the host restarted (new process)" wait_for 30 host_other_than "$B1" "$pid3"
check "reset: the old host process is gone" wait_for 30 gone "$pid3"
check "reset: status on" power_is "$B1" on
check "the other BMC's host was not touched" [ "$(host_pid "$B2")" = "$b2_pid_before" ]
check "the other BMC still reports power off" power_is "$B2" off
check "the other BMC powers its own host on" pcmd "$B2" on
check "... and its host runs" wait_for 30 host_up "$B2"

# The power controller fails: ipmi_sim answers completion code 0xff.
touch "$B2/chassis.fail"
probe "$B2" off >/dev/null 2>"$T/err"
rc=$?
rm -f "$B2/chassis.fail"
check "failing power control: exit status non-zero" [ $rc != 0 ]
check "failing power control: IO with the completion code and its meaning" \
	grep -q 'IO: .*power off: the BMC refused it (completion code 0xff: Unspecified error' "$T/err"
check "failing power control: the host still runs" host_up "$B2"

# ---- sensors ----------------------------------------------------------------

sensors_json() { probe "$1" -j sensors 2>/dev/null; }
# The host publishes its readings at boot; ipmi_sim polls them each second.
sensors_are() { sensors_json "$1" | jcheck "$2"; }
S_OK='len(j["sensors"])==2
 and [s["name"] for s in j["sensors"]]==["CPU Temp","12V"]
 and j["sensors"][0]["type"]=="Temperature" and j["sensors"][0]["unit"]=="C"
 and j["sensors"][0]["value"]==45
 and j["sensors"][0]["thresholds"]=={"upper_noncrit":80,"upper_crit":90}
 and j["sensors"][1]["type"]=="Voltage" and j["sensors"][1]["unit"]=="V"
 and abs(j["sensors"][1]["value"]-12.1)<1e-6
 and j["sensors"][1]["thresholds"]=={"lower_crit":10.8,"lower_noncrit":11.4,"upper_noncrit":12.6,"upper_crit":13.2}
 and all(s["state"]=="ok" for s in j["sensors"])'
S_OK=${S_OK//$'\n'/}
check "sensors: names, types, units, values and thresholds from the SDR, all ok" \
	wait_for 40 sensors_are "$B1" "$S_OK"
check "sensors: text output names them" sh -c "'$PROBE' -c '$B1/creds' -W opensesspriv \
	127.0.0.1:$(cat "$B1/port") sensors | grep -q '^CPU Temp .* 45.00 C *ok$'"

# One handle, three calls: the SDR is fetched into a private temporary
# directory that is gone when each call returns.
mkdir -p "$T/tmp"
TMPDIR=$T/tmp probe "$B1" -j -r 3 sensors >"$T/out" 2>"$T/err"
rc=$?
three_same() { [ $rc = 0 ] && [ "$(wc -l <"$T/out")" = 3 ] && [ "$(sort -u "$T/out" | wc -l)" = 1 ]; }
check "sensors three times on one handle: same answer each time" three_same
check "sensors: nothing left in the temporary directory" [ -z "$(ls -A "$T/tmp")" ]
TMPDIR=$T/missing probe "$B1" sensors >/dev/null 2>"$T/err"
check "sensors: a missing temporary directory is named in the error" \
	grep -q "IO: .*cannot make a directory in $T/missing for the SDR" "$T/err"

echo 85 >"$B1/cpu_temp.val"
check "sensors: CPU Temp 85 (past upper non-critical 80) is warning" \
	wait_for 40 sensors_are "$B1" 'j["sensors"][0]["value"]==85 and j["sensors"][0]["state"]=="warning"'
echo 95 >"$B1/cpu_temp.val"
check "sensors: CPU Temp 95 (past upper critical 90) is critical" \
	wait_for 40 sensors_are "$B1" 'j["sensors"][0]["value"]==95 and j["sensors"][0]["state"]=="critical"'
echo 45 >"$B1/cpu_temp.val"
check "sensors: back to ok at 45" \
	wait_for 40 sensors_are "$B1" 'j["sensors"][0]["state"]=="ok"'

check "soft: accepted" pcmd "$B1" soft
check "soft: status off" wait_for 30 power_is "$B1" off
check "sensors: 12V at 0 V with the host off is critical (below 10.8)" \
	wait_for 40 sensors_are "$B1" 'j["sensors"][1]["value"]==0 and j["sensors"][1]["state"]=="critical"'

# ---- refusals ---------------------------------------------------------------

port1=$(cat "$B1/port")
good_pw=$(sed -n 's/^password = //p' "$B1/creds")
bad_pw=wrong-pw-$$
sed "s/^password = .*/password = $bad_pw/" "$B1/creds" >"$T/wrong-pw"
chmod 600 "$T/wrong-pw"
"$PROBE" -c "$T/wrong-pw" -W opensesspriv -t 2000 127.0.0.1:"$port1" status \
	>"$T/out" 2>"$T/err"
rc=$?
check "wrong password: exit status non-zero" [ $rc != 0 ]
check "wrong password: 'the BMC refused the user or password'" \
	grep -q 'INVAL: .*the BMC refused the user or password' "$T/err"
check "wrong password: neither password printed" \
	sh -c "! grep -q -e '$bad_pw' -e '$good_pw' '$T/out' '$T/err'"
"$PROBE" -j -c "$T/wrong-pw" -W opensesspriv 127.0.0.1:"$port1" status >"$T/out" 2>/dev/null
check "wrong password: JSON error INVAL" jcheck 'j["error"]=="INVAL"' <"$T/out"

sed "s/^user = .*/user = nobody/" "$B1/creds" >"$T/wrong-user"
chmod 600 "$T/wrong-user"
"$PROBE" -c "$T/wrong-user" -W opensesspriv 127.0.0.1:"$port1" status >"$T/out" 2>"$T/err"
rc=$?
check "wrong user: exit status non-zero" [ $rc != 0 ]
check "wrong user: 'the BMC refused the user or password', naming the user" \
	grep -q "refused the user or password (user 'nobody'" "$T/err"
check "wrong user: password not printed" sh -c "! grep -q -e '$good_pw' '$T/out' '$T/err'"

"$PROBE" -c "$B1/creds" -W opensesspriv -C 17 127.0.0.1:"$port1" status >/dev/null 2>"$T/err"
check "cipher suite 17 (ipmi_sim lacks it): refused, naming the cipher suite" \
	grep -q 'cipher suite 17.*set cipher-suite' "$T/err"
"$PROBE" -c "$B1/creds" 127.0.0.1:"$port1" status >/dev/null 2>"$T/err"
check "no opensesspriv workaround: the message suggests it" grep -q 'opensesspriv' "$T/err"

# A port nobody listens on: no answer at all.
free_port=
for _ in $(seq 1 100); do
	p=$((20000 + RANDOM % 10000))
	[ -z "$(ss -Hlun "sport = :$p")" ] && { free_port=$p; break; }
done
t0=$(date +%s%N)
"$PROBE" -c "$B1/creds" -W opensesspriv -t 1000 127.0.0.1:"$free_port" status \
	>/dev/null 2>"$T/err"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "unreachable port: exit status non-zero" [ $rc != 0 ]
check "unreachable port: UNREACHABLE 'no answer within 1000 ms'" \
	grep -q 'UNREACHABLE: .*no answer within 1000 ms' "$T/err"
check "unreachable port: failed within the timeout (${ms} ms for 1000 + slack)" [ "$ms" -lt 2500 ]

cp "$B1/creds" "$T/open-creds"
chmod 644 "$T/open-creds"
"$PROBE" -c "$T/open-creds" -W opensesspriv 127.0.0.1:"$port1" status >"$T/out" 2>"$T/err"
rc=$?
check "credentials file mode 644: refused" [ $rc != 0 ]
check "credentials file mode 644: says chmod 600" grep -q "run chmod 600 $T/open-creds" "$T/err"
check "credentials file mode 644: password not printed" \
	sh -c "! grep -q -e '$good_pw' '$T/out' '$T/err'"

tap_done
