#!/usr/bin/env bash
# The lab's BMCs (lab/hvpeer-lab): every host hN has an ipmi_sim BMC on
# 10.77.0.1:(6230+N) whose chassis command plays the host's power, and the
# host's hvpeerd drives it (--bmc ipmi, one credentials file for all).
#   1. up 3: status shows each host's BMC port and power on; the
#      credentials file is root-only with a section per BMC; every hvpeerd
#      runs with its BMC's flags;
#   2. hvpeer bmc status through each host's hvpeerd (and one forwarded):
#      power on;
#   3. hvpeer bmc power cycle h2 --force, asked on h1: answered, h2 loses
#      power (its init dies) and boots again (a new boot_id), its hvpeerd
#      rejoins: 3 voters with quorum;
#   4. hvpeer-lab bmc h3 sensor cpu_temp 95 is critical in hvpeer bmc
#      sensors h3 within seconds, and ok again at 45;
#   5. power soft h3 through its hvpeerd: an orderly shutdown, the BMC says
#      off and 12 V at 0 (critical); power on from inside h1 (hvpeer-bmc
#      with the shared credentials file): h3 boots, its hvpeerd is back;
#   6. down leaves no ipmi_sim and frees the BMC ports.
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it
# cannot run here (not root, lab packages or openipmi missing, a lab already
# up), 99 when hvpeer or hvpeer-bmc is not built. About 30 s.
set -u
for t in ipmi_sim sdrcomp python3; do
	command -v "$t" >/dev/null 2>&1 || { echo "1..0 # SKIP $t missing (packages openipmi, python3)"; exit 77; }
done
B=${HVPEER_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
for p in hvpeerd hvpeer hvpeer-bmc; do
	[ -x "$B/$p" ] || { echo "Bail out! no $B/$p (build first or set HVPEER_BUILDDIR)"; exit 99; }
done
. "$(dirname "$0")/lib.sh"
HV=$HVPEER_BUILDDIR/hvpeer
PORT_BASE=6230

T0=$(date +%s%N)
secs() { # seconds since $1 (date +%s%N), one decimal
	local d=$((($(date +%s%N) - $1) / 100000000))
	echo "$((d / 10)).$((d % 10))"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
hvs() { local h=$1; shift; timeout 60 "$HV" --socket "$LAB/$h/hvpeer.sock" "$@"; }
# pyc CODE: exit 0 when CODE holds for the JSON on stdin (in d)
pyc() { python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" 2>/dev/null; }
live() { [ -e "/proc/$1" ] && ! grep -qs '^State:.*Z' "/proc/$1/status"; }
init_of() { cat "$LAB/$1/init.pid" 2>/dev/null; }

# ---- 1. up, status, credentials, hvpeerd's flags ----------------------------------

t=$(date +%s%N)
if out=$(timeout 180 "$LABT" up 3 2>&1); then
	ok "up 3 (hosts, BMCs, cluster) in $(secs "$t") s"
	echo "$out" | grep 'BMCs:' | sed 's/^/# /'
else
	nok "up 3" "$out"
	exit 1
fi

st=$(lab status 2>&1)
good=0
for n in 1 2 3; do
	grep -qE "^h$n +up +10\.77\.0\.1$n +ok +$((PORT_BASE + n)) +on " <<<"$st" && good=$((good + 1))
done
if [ $good = 3 ]; then
	ok "status: h1..h3 with BMC ports $((PORT_BASE + 1))..$((PORT_BASE + 3)), power on (asked over IPMI)"
else
	nok "status: h1..h3 with their BMC ports, power on" "$st"
fi

info=$(lab bmc h2 info 2>&1)
creds=$(awk '$1 == "credentials" { print $2 }' <<<"$info")
if grep -qx "address 10.77.0.1" <<<"$info" && grep -qx "port $((PORT_BASE + 2))" <<<"$info" &&
	[ "$creds" = "$LAB/bmc/creds" ]; then
	ok "bmc h2 info: 10.77.0.1 port $((PORT_BASE + 2)), credentials $creds"
else
	nok "bmc h2 info: address, port, credentials" "$info"
fi
secs_ok=0
for n in 1 2 3; do
	awk -v s="[10.77.0.1:$((PORT_BASE + n))]" '$0 == s { on = 1; next } /^\[/ { on = 0 }
		on && $1 == "password" && $3 != "" { found = 1 } END { exit !found }' "$creds" 2>/dev/null &&
		secs_ok=$((secs_ok + 1))
done
if [ "$(stat -c '%a %U' "$creds" 2>&1)" = "600 root" ] && [ $secs_ok = 3 ]; then
	ok "credentials file: mode 600, root, a section with a password per BMC"
else
	nok "credentials file: mode 600, root, a section per BMC" "$(stat -c '%a %U' "$creds" 2>&1); sections with a password: $secs_ok"
fi
flags_ok=0
for n in 1 2 3; do
	grep -a 'init: start: ' "$LAB/h$n/init.log" | tail -n 1 | grep -qF -- "--bmc ipmi --bmc-address 10.77.0.1:$((PORT_BASE + n)) --bmc-credentials $creds --bmc-cipher-suite 3 --bmc-workarounds opensesspriv" &&
		flags_ok=$((flags_ok + 1))
done
if [ $flags_ok = 3 ]; then
	ok "every hvpeerd runs with --bmc ipmi, its BMC's address and the shared credentials"
else
	nok "every hvpeerd runs with its BMC flags" "$(grep -a 'init: start: ' "$LAB/h1/init.log" | tail -n 1)"
fi

# ---- 2. hvpeer bmc status through the daemons ---------------------------------------

good=0 bad=
for n in 1 2 3; do
	j=$(hvs "h$n" --json bmc status "h$n" 2>&1)
	if pyc "d['ok'] and d['power'] == 'on' and d['host'] == 'h$n' and d['address'] == '10.77.0.1:$((PORT_BASE + n))'" <<<"$j"; then
		good=$((good + 1))
	else
		bad="$bad h$n: $j;"
	fi
done
if [ $good = 3 ]; then ok "hvpeer bmc status hN on each host's hvpeerd: power on"; else nok "hvpeer bmc status hN on each host" "$bad"; fi
j=$(hvs h1 --json bmc status h3 2>&1)
if pyc "d['power'] == 'on' and d['host'] == 'h3'" <<<"$j"; then
	ok "hvpeer bmc status h3 asked on h1: answered by h3's hvpeerd"
else
	nok "hvpeer bmc status h3 asked on h1" "$j"
fi

# ---- 3. a power cycle of h2 through the daemons ----------------------------------------

id0=$(cat "$LAB/h2/boot_id" 2>/dev/null)
ip0=$(init_of h2)
nl0=$(wc -l <"$LAB/bmc/h2/chassis.log")
tb=$(now_ms)
t=$(date +%s%N)
out=$(hvs h1 bmc power cycle h2 --force 2>&1)
rc=$?
if [ $rc = 0 ] && [[ $out == *"power cycle done"* ]]; then
	ok "hvpeer bmc power cycle h2 --force asked on h1: '$out'"
else
	nok "hvpeer bmc power cycle h2 --force asked on h1 (exit $rc)" "$out"
fi
h2_off() { [ -n "$ip0" ] && ! live "$ip0"; }
if wait_for 10 h2_off; then ok "h2 lost power: its init (pid $ip0) and every process with it are gone"; else nok "h2 lost power (init $ip0 still there)"; fi
h2_booted() {
	local id p
	id=$(cat "$LAB/h2/boot_id" 2>/dev/null) && p=$(init_of h2) &&
		[ -n "$id" ] && [ "$id" != "$id0" ] && [ -n "$p" ] && [ "$p" != "$ip0" ] && live "$p"
}
if wait_for 30 h2_booted; then
	ok "h2 booted again $(secs "$t") s after the command: boot_id ${id0:0:8}... -> $(cut -c1-8 "$LAB/h2/boot_id")..."
else
	nok "h2 booted again (a new boot_id)" "boot_id $(cat "$LAB/h2/boot_id" 2>&1), init $(init_of h2)"
fi
ops=$(tail -n +"$((nl0 + 1))" "$LAB/bmc/h2/chassis.log" | grep -o 'set power [01]' | tr '\n' ' ')
if [[ $ops == "set power 0 set power 1 " ]]; then
	ok "h2's BMC ran its chassis command: set power 0, then set power 1"
else
	nok "h2's BMC ran set power 0 then set power 1" "chassis commands: $ops"
fi
h2_rejoined() {
	hvs h2 status >/dev/null 2>&1 &&
		hvs h1 --json status 2>/dev/null | pyc "d['quorum'] and sum(1 for m in d['members'] if m['role'] == 'voter') == 3 and [m for m in d['members'] if m['name'] == 'h2' and m['role'] == 'voter' and m.get('last_report_ms', 0) >= $tb]"
}
if wait_for 30 h2_rejoined; then
	ok "h2's hvpeerd rejoined: 3 voters with quorum, h2 reporting again ($(secs "$t") s after the command)"
else
	nok "h2's hvpeerd rejoined with quorum and 3 voters" "$(hvs h1 status 2>&1 | head -5)"
fi

# ---- 4. a sensor past its critical threshold ---------------------------------------------

sensor_is() { # HOST NAME VALUE STATE, through the host's hvpeerd
	hvs "$1" --json bmc sensors "$1" 2>/dev/null |
		pyc "[s for s in d['sensors'] if s['name'] == '$2' and s['value'] == $3 and s['state'] == '$4']"
}
t=$(date +%s%N)
lab bmc h3 sensor cpu_temp 95 2>/dev/null
if wait_for 10 sensor_is h3 "CPU Temp" 95 critical; then
	ok "bmc h3 sensor cpu_temp 95: critical in hvpeer bmc sensors h3 after $(secs "$t") s"
else
	nok "bmc h3 sensor cpu_temp 95: critical in hvpeer bmc sensors h3" "$(hvs h3 --json bmc sensors h3 2>&1 | tr -d '\n ' | cut -c1-300)"
fi
t=$(date +%s%N)
lab bmc h3 sensor cpu_temp 45 2>/dev/null
if wait_for 10 sensor_is h3 "CPU Temp" 45 ok; then
	ok "bmc h3 sensor cpu_temp 45: ok again after $(secs "$t") s"
else
	nok "bmc h3 sensor cpu_temp 45: ok again" "$(hvs h3 --json bmc sensors h3 2>&1 | tr -d '\n ' | cut -c1-300)"
fi

# ---- 5. soft off, then power on from another host -------------------------------------------

ip3=$(init_of h3)
out=$(hvs h3 bmc power soft h3 --force 2>&1)
rc=$?
h3_off() { [ -n "$ip3" ] && ! live "$ip3"; }
if [ $rc = 0 ] && wait_for 20 h3_off && grep -aq 'init: power button: shutting down' "$LAB/h3/init.log" &&
	grep -aq 'init: power off' "$LAB/h3/init.log"; then
	ok "hvpeer bmc power soft h3 --force: '$out'; h3 shut down in order (init.log)"
else
	nok "power soft h3: an orderly shutdown (exit $rc)" "$out" "$(tail -n 3 "$LAB/h3/init.log" 2>&1)"
fi
ipmi3() { lab bmc h3 ipmi "$@" 2>&1; }
v12_off() { ipmi3 -j sensors | pyc "[s for s in d['sensors'] if s['name'] == '12V' and s['value'] == 0 and s['state'] == 'critical']"; }
if [ "$(ipmi3 status)" = "power off" ] && wait_for 10 v12_off; then
	ok "h3's BMC: power off, 12 V at 0 (critical)"
else
	nok "h3's BMC: power off, 12 V at 0" "$(ipmi3 status); $(ipmi3 -j sensors)"
fi
t=$(date +%s%N)
out=$(lab exec h1 "$HVPEER_BUILDDIR/hvpeer-bmc" -c "$creds" -C 3 -W opensesspriv -t 2000 \
	"10.77.0.1:$((PORT_BASE + 3))" on 2>&1)
rc=$?
h3_back() {
	local p
	p=$(init_of h3) && [ "$p" != "$ip3" ] && live "$p" && hvs h3 status >/dev/null 2>&1 &&
		sensor_is h3 12V 12.1 ok
}
if [ $rc = 0 ] && wait_for 30 h3_back; then
	ok "power on h3 from inside h1 (hvpeer-bmc, shared credentials): h3 boots, hvpeerd and 12.1 V back after $(secs "$t") s"
else
	nok "power on h3 from inside h1 (exit $rc)" "$out" "$(tail -n 3 "$LAB/bmc/h3/power.log" 2>&1)"
fi

# ---- 6. down ---------------------------------------------------------------------------------

t=$(date +%s%N)
if out=$(lab down 2>&1); then ok "down in $(secs "$t") s"; else nok "down" "$out"; fi
lab_sims() { # live ipmi_sim processes of this lab
	local p
	for p in $(pgrep -x ipmi_sim); do
		live "$p" || continue
		grep -qsz "^HVPEER_LAB_HOST=$LAB/bmc/" "/proc/$p/environ" && echo "$p"
		case $(readlink "/proc/$p/cwd" 2>/dev/null) in "$LAB"/*) echo "$p" ;; esac
	done
	return 0
}
no_sims() { [ -z "$(lab_sims)" ]; }
ports_free() {
	local n
	for n in 1 2 3; do [ -z "$(ss -Hlun "sport = :$((PORT_BASE + n))" 2>/dev/null)" ] || return 1; done
}
if wait_for 5 no_sims && ports_free && [ -z "$(pgrep -f 'hvpeer-lab bmc-power')" ]; then
	ok "nothing of the BMCs left: no ipmi_sim, ports $((PORT_BASE + 1))..$((PORT_BASE + 3)) free, no power worker"
else
	nok "nothing of the BMCs left" "ipmi_sim: $(lab_sims | tr '\n' ' '); $(ss -Hlunp | grep ":623[1-3] ")"
fi
echo "# whole test $(secs "$T0") s"
