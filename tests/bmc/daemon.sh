#!/usr/bin/env bash
# `hvpeer bmc` through real hvpeerd processes, against a real ipmi_sim BMC:
# two peers on 127.0.0.1; p1 has a BMC (tests/bmc/bmcsim.sh, its chassis
# command plays a host process), p2 has none. Status, sensors and power
# round trips asked on either peer (forwarded to the BMC's host), a host
# without a BMC, an unknown host, a credentials file others can read.
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it
# cannot run here (not root, ipmi_sim or sdrcomp missing).
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${HVPEER_BUILDDIR:-$TOP/build}
export HVPEER_BUILDDIR=$B
SIM=$TOP/tests/bmc/bmcsim.sh
[[ $(id -u) == 0 ]] || { echo "1..0 # SKIP not root"; exit 77; }
for t in ipmi_sim sdrcomp python3; do
	command -v "$t" >/dev/null 2>&1 || { echo "1..0 # SKIP $t missing (package openipmi)"; exit 77; }
done

N=0 PASS=0 FAIL=0
ok() { N=$((N + 1)); PASS=$((PASS + 1)); echo "ok $N - $1"; }
nok() { N=$((N + 1)); FAIL=$((FAIL + 1)); echo "not ok $N - $1"; [ $# -gt 1 ] && printf '#   %s\n' "${@:2}"; }
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else nok "$d"; fi; }
T=$(mktemp -d /tmp/hvpeer-bmcd.XXXXXX)
declare -a PID
finish() {
	for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	"$SIM" stop "$T/bmc1" >/dev/null 2>&1
	[ "$FAIL" -gt 0 ] && tail -n 20 "$T"/p?.log | sed 's/^/#   /'
	rm -rf "$T"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" = 0 ]
}
trap 'finish; exit $?' EXIT
trap 'exit 1' INT TERM
hv() { local s=$1; shift; "$B/hvpeer" --socket "$T/$s.sock" "$@"; }
host_pid() { cat "$T/bmc1/host.pid" 2>/dev/null; }
alive() { local p; p=$(host_pid) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; }
power_is() { hv p2 bmc status p1 2>/dev/null | grep -q "power $1"; }
wait_for() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }

port=$("$SIM" start "$T/bmc1" "$SIM chassis $T/bmc1" 2>"$T/sim.err") ||
	{ nok "ipmi_sim BMC starts" "$(tail -3 "$T/sim.err")"; exit 1; }
ok "ipmi_sim BMC on 127.0.0.1:$port"
"$SIM" chassis "$T/bmc1" set power 1 >/dev/null 2>&1
read -r P1 P2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
"$B/hvpeerd" --name p1 --data-dir "$T/p1" --listen "127.0.0.1:$P1" --socket "$T/p1.sock" --bootstrap \
	--bmc ipmi --bmc-address "127.0.0.1:$port" --bmc-credentials "$T/bmc1/creds" \
	--bmc-workarounds opensesspriv --bmc-timeout 2000 >"$T/p1.log" 2>&1 &
PID+=($!)
wait_for 20 hv p1 status >/dev/null 2>&1
"$B/hvpeerd" --name p2 --data-dir "$T/p2" --listen "127.0.0.1:$P2" --socket "$T/p2.sock" \
	--join "127.0.0.1:$P1" >"$T/p2.log" 2>&1 &
PID+=($!)
members2() { hv p1 --json status 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d["members"])==2 and d["quorum"] else 1)'; }
check "two peers form a cluster" wait_for 30 members2

out=$(hv p1 bmc status 2>&1)
if [ $? = 0 ] && [[ $out == *"power on"* ]]; then ok "bmc status on p1: $out"; else nok "bmc status on p1" "$out"; fi
out=$(hv p2 bmc status p1 2>&1)
if [ $? = 0 ] && [[ $out == *"p1: BMC 127.0.0.1:$port: power on"* ]]; then ok "asked on p2, answered by p1's hvpeerd"; else nok "bmc status p1 asked on p2" "$out"; fi
j=$(hv p2 --json bmc sensors p1 2>&1)
check "sensors (JSON): CPU Temp with its thresholds and state" python3 -c "import json,sys; d=json.loads(sys.argv[1]); s=[x for x in d['sensors'] if x['name']=='CPU Temp'][0]; sys.exit(0 if s['state'] in ('ok','warning','critical') and s['thresholds'] else 1)" "$j"
check "sensors (text) list the 12 V rail" sh -c "'$B/hvpeer' --socket '$T/p1.sock' bmc sensors | grep -q '12V'"
h0=$(host_pid)
out=$(hv p2 bmc power off p1 2>&1)
if [ $? = 0 ] && wait_for 10 power_is off && ! alive; then ok "power off p1 (no guests): the host process is gone"; else nok "power off p1" "$out"; fi
out=$(hv p1 bmc power on 2>&1)
if [ $? = 0 ] && wait_for 10 power_is on && wait_for 5 alive; then ok "power on: the host is back"; else nok "power on" "$out"; fi
h1=$(host_pid)
out=$(hv p1 bmc power cycle 2>&1)
if [ $? = 0 ] && wait_for 10 alive && [ "$(host_pid)" != "$h1" ]; then ok "power cycle: a new host process ($h1 -> $(host_pid))"; else nok "power cycle" "$out"; fi
out=$(hv p1 bmc power sideways 2>&1)
rc=$?
if [ $rc = 2 ] && [[ $out == *"unknown action"* ]]; then ok "an unknown power action is a usage error"; else nok "unknown power action (exit $rc)" "$out"; fi
out=$(hv p1 bmc status p2 2>&1)
rc=$?
if [ $rc != 0 ] && [[ $out == *"p2 has no BMC configured"* ]]; then ok "a host without a BMC says so: $out"; else nok "host without BMC (exit $rc)" "$out"; fi
out=$(hv p1 bmc status nosuch 2>&1)
if [ $? != 0 ] && [[ $out == *"not a member"* ]]; then ok "an unknown host is refused"; else nok "unknown host" "$out"; fi
chmod 644 "$T/bmc1/creds"
out=$(hv p1 bmc status 2>&1)
rc=$?
if [ $rc != 0 ] && [[ $out == *"chmod 600"* ]] && ! grep -q "$(awk -F' = ' '/password/{print $2}' "$T/bmc1/creds")" <<<"$out"; then
	ok "a credentials file others can read is refused, the password not shown"
else
	nok "credentials mode 644 refused (exit $rc)" "$out"
fi
chmod 600 "$T/bmc1/creds"
check "no password in either daemon's log" sh -c "! grep -q '$(awk -F' = ' '/password/{print $2}' "$T/bmc1/creds")' '$T/p1.log' '$T/p2.log'"
[ -n "$h0" ] || nok "host pid was known"
