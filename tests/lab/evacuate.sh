#!/usr/bin/env bash
# Evacuation by live migration in the lab: real libvirtd + QEMU (TCG) hosts in
# namespaces, each with its own hvpeerd.
#   1. `maintenance enter h1` moves all of h1's guests to h2/h3 while they keep
#      running (their heartbeat goes on, uptime not reset), within capacity;
#      `report` shows each guest's measured downtime; `exit` brings them home.
#   2. a guest with a passthrough device refuses maintenance, with the reason;
#   3. not enough capacity: refused, naming the shortfall; nothing moved;
#   4. the destination's QEMU killed mid-migration, twice: the guest keeps
#      running on the source, the error is clear, the line stops (paused).
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it cannot
# run here (not root, lab packages missing, a lab already up).
set -u
. "$(dirname "$0")/lib.sh"

# Host state from the replicated state (lib.sh: state).
guests_on() { state "' '.join(sorted(g['name'] for m in d['members'] if m['name']=='$1' for g in m['guests'] if g['running']))"; }
maint_of() { state "[m['maintenance'] for m in d['members'] if m['name']=='$1'][0]"; }
beat() { lab guest heartbeat "$1" | awk '{print $1}'; }
guests_are() { test "$(guests_on "$1")" = "$2"; }   # HOST "G1 G2 ..."
beat_above() { test "$(beat "$1")" -gt "$2"; }
hostdev_known() { test -n "$(state "[g.get('hostdev','') for m in d['members'] for g in m['guests'] if g['name']=='$1'][0]")"; }
where() { lab guest heartbeat "$1" | awk '{print $2}'; }
uptime_of() { lab guest heartbeat "$1" | awk '{print $3}'; }

echo "# lab up: 3 hosts, 640 MiB for guests each"
# Two migrations at once exercise the parallel movers.
export HVPEERD_FLAGS="--migrate-parallel 2 --shutdown-timeout 3"
if ! lab up 3 --guest-memory 640 >/tmp/hvpeer-evacuate-up.log 2>&1; then
	nok "lab up" "$(tail -n 5 /tmp/hvpeer-evacuate-up.log)"
	exit 1
fi
ok "lab up with 3 hosts"

# ---- 1. evacuation and return ---------------------------------------------
lab guest add h1 --name web1 --mem 128 >/dev/null && lab guest add h1 --name web2 --mem 128 >/dev/null &&
	lab guest add h1 --name devbox --mem 96 --level dev >/dev/null &&
	lab guest add h2 --name db1 --mem 256 >/dev/null
check "four guests boot (three on h1, one on h2)" test "$(where web1)$(where web2)$(where devbox)$(where db1)" = "h1h1h1h2"
wait_for 20 guests_are h1 "devbox web1 web2"
check "inventories reach the replicated state" test "$(guests_on h1)" = "devbox web1 web2"

b1=$(beat web1) u1=$(uptime_of web1)
out=$(hv h1 maintenance enter 2>&1)
rc=$?
if [ $rc = 0 ]; then ok "maintenance enter h1 succeeds"; else nok "maintenance enter h1 succeeds (exit $rc)" "$out"; fi
check "h1 is in maintenance" test "$(maint_of h1)" = in
check "h1 runs no guest any more (libvirt)" test -z "$(lab exec h1 virsh -q list --name 2>/dev/null | tr -d '[:space:]')"
for g in web1 web2 devbox; do
	check "$g now runs on h2 or h3" test "$(where "$g")" = h2 -o "$(where "$g")" = h3
done
wait_for 10 beat_above web1 "$((b1 + 2))"
b2=$(beat web1) u2=$(uptime_of web1)
if [ "$b2" -gt "$b1" ] && awk "BEGIN{exit !($u2 > $u1)}"; then
	ok "web1 kept running across the move (heartbeat $b1 -> $b2, uptime $u1 -> $u2 s)"
else
	nok "web1 kept running across the move" "heartbeat $b1 -> $b2, uptime $u1 -> $u2"
fi
cap_ok=$(state "all(m['mem_used_mib'] <= m['mem_cap_mib'] for m in d['members'] if m['mem_cap_mib'])")
check "placement respects capacity (used <= capacity everywhere)" test "$cap_ok" = True
rep=$(hv h3 report 2>&1)
echo "$rep" | sed 's/^/#   /'
n_done=$(state "sum(1 for m in d['moves'] if m['status']=='done' and m['holder']=='h1' and m['action']=='migrate')")
check "report: three guests migrated with libvirt's figures" test "$n_done" = 3
dt=$(state "[m['downtime_ms'] for m in d['moves'] if m['guest']=='web1' and m['status']=='done'][0]")
el=$(state "[m['elapsed_ms'] for m in d['moves'] if m['guest']=='web1' and m['status']=='done'][0]")
check "report: web1's downtime (${dt} ms) and migration time (${el} ms) were measured" test "$el" -gt 0
check "the lease is held by h1 while it is in maintenance" test "$(state "[h['name'] for h in d['lease']['holders']]")" = "['h1']"

out=$(hv h1 maintenance exit 2>&1)
rc=$?
if [ $rc = 0 ]; then ok "maintenance exit h1 succeeds"; else nok "maintenance exit h1 succeeds (exit $rc)" "$out"; fi
for g in web1 web2 devbox; do
	check "$g is back home on h1" test "$(where "$g")" = h1
done
check "h1 left maintenance" test "$(maint_of h1)" = none
check "the lease is free again" test "$(state "len(d['lease']['holders'])")" = 0
# ---- 1b. the same, leaving with --rebalance ----------------------------------
out=$(hv h1 maintenance enter 2>&1) || nok "maintenance enter h1 (again)" "$out"
out=$(hv h1 maintenance exit --rebalance 2>&1)
rc=$?
if [ $rc = 0 ] && echo "$out" | grep -q "moved to rebalance"; then ok "maintenance exit --rebalance h1 succeeds"; else nok "maintenance exit --rebalance h1 succeeds (exit $rc)" "$out"; fi
all_run=1
for g in web1 web2 devbox db1; do case "$(where "$g")" in h1 | h2 | h3) ;; *) all_run=0 ;; esac; done
check "after the rebalance every guest runs somewhere" test $all_run = 1
check "h1 got guests back from the rebalance" test -n "$(guests_on h1)"
check "the rebalance respects capacity" test "$(state "all(m['mem_used_mib'] <= m['mem_cap_mib'] for m in d['members'] if m['mem_cap_mib'])")" = True
check "h1 left maintenance and the lease is free" test "$(maint_of h1)/$(state "len(d['lease']['holders'])")" = "none/0"
for g in web1 web2 devbox; do # spare the two cores for what follows
	h=$(where "$g")
	lab exec "$h" virsh -q destroy "$g" >/dev/null 2>&1
	lab exec "$h" virsh -q undefine "$g" >/dev/null 2>&1
done
wait_for 20 eval 'guests_are h1 "" && guests_are h3 ""'

# ---- 2. a passthrough device refuses maintenance ------------------------------
lab guest add h3 --name pci1 --mem 96 --usb-passthrough >/dev/null
wait_for 20 hostdev_known pci1
out=$(hv h3 maintenance enter 2>&1)
rc=$?
if [ $rc != 0 ] && echo "$out" | grep -q "pci1 holds hostdev" && echo "$out" | grep -q "Device or resource busy"; then
	ok "a guest with a passthrough device refuses maintenance: $(echo "$out" | tail -n 1)"
else
	nok "a guest with a passthrough device refuses maintenance" "exit $rc: $out"
fi
check "after the refusal h3 is not in maintenance and the lease is free" \
	test "$(maint_of h3)/$(state "len(d['lease']['holders'])")" = "none/0"
check "pci1 still runs on h3" test "$(where pci1)" = h3
lab exec h3 virsh -q destroy pci1 >/dev/null 2>&1
lab exec h3 virsh -q undefine pci1 >/dev/null 2>&1

# ---- 3. not enough capacity -------------------------------------------------
lab guest add h2 --name big1 --mem 700 >/dev/null # more than any peer has
wait_for 20 guests_are h2 "big1 db1"
out=$(hv h2 maintenance enter 2>&1)
rc=$?
if [ $rc != 0 ] && echo "$out" | grep -q "cannot place guest" && echo "$out" | grep -q "MiB"; then
	ok "not enough capacity: refused, naming the shortfall: $(echo "$out" | tail -n 1)"
else
	nok "not enough capacity: refused, naming the shortfall" "exit $rc: $out"
fi
check "nothing moved: big1 and db1 still run on h2" test "$(where big1)$(where db1)" = h2h2
check "h2 is not in maintenance, the lease is free" test "$(maint_of h2)/$(state "len(d['lease']['holders'])")" = "none/0"
lab exec h2 virsh -q destroy big1 >/dev/null 2>&1
lab exec h2 virsh -q undefine big1 >/dev/null 2>&1

# ---- 3b. levels: legacy saved, dev shut down when no peer has room --------------
lab guest add h3 --name leg --mem 700 --level legacy >/dev/null
lab guest add h3 --name dv --mem 700 --level dev >/dev/null
wait_for 20 guests_are h3 "dv leg"
out=$(hv h3 maintenance enter 2>&1)
rc=$?
if [ $rc = 0 ]; then ok "maintenance enter h3 with a legacy and a dev guest that fit nowhere"; else nok "maintenance enter h3 with a legacy and a dev guest that fit nowhere (exit $rc)" "$out"; fi
check "the legacy guest was saved (libvirt managed save)" \
	sh -c "'$LABT' exec h3 virsh -q dominfo leg | grep -q 'Managed save: *yes'"
check "the dev guest was shut down" sh -c "'$LABT' exec h3 virsh -q domstate dv | grep -q 'shut off'"
check "report: leg saved, dv shut down" test "$(state "sorted(m['guest']+':'+m['action'] for m in d['moves'] if m['holder']=='h3' and m['status']=='done')")" = "['dv:shutdown', 'leg:save']"
out=$(hv h3 maintenance exit 2>&1)
rc=$?
if [ $rc = 0 ]; then ok "maintenance exit h3"; else nok "maintenance exit h3 (exit $rc)" "$out"; fi
check "leg was restored and runs on h3 again" sh -c "'$LABT' exec h3 virsh -q domstate leg | grep -q running"
check "dv was started again on h3" sh -c "'$LABT' exec h3 virsh -q domstate dv | grep -q running"
for g in leg dv; do
	lab exec h3 virsh -q destroy "$g" >/dev/null 2>&1
	lab exec h3 virsh -q managedsave-remove "$g" >/dev/null 2>&1
	lab exec h3 virsh -q undefine "$g" >/dev/null 2>&1
done

# ---- 4. the destination's QEMU dies mid-migration ---------------------------------
# Kill every incoming QEMU for db1 (the first attempt and the retry elsewhere).
killer() { # poll every 10 ms; each incoming QEMU is killed at once, once
	local end=$((SECONDS + 60)) killed=0 pid seen=" "
	while [ $SECONDS -lt $end ] && [ $killed -lt 2 ]; do
		for pid in $(pgrep -f 'guest=db1,.*-incoming'); do
			case "$seen" in *" $pid "*) continue ;; esac
			seen="$seen$pid "
			kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
		done
		sleep 0.01
	done
	echo "$killed"
}
wait_for 20 guests_are h2 db1
b1=$(beat db1)
killer >/tmp/hvpeer-evacuate-killed &
kpid=$!
out=$(hv h2 maintenance enter 2>&1)
rc=$?
wait "$kpid"
killed=$(cat /tmp/hvpeer-evacuate-killed)
echo "# destination QEMU processes killed: $killed"
echo "$out" | sed 's/^/#   /'
if [ $rc != 0 ] && echo "$out" | grep -q "could not be moved"; then
	ok "the failed migration is reported clearly"
else
	nok "the failed migration is reported clearly" "exit $rc: $out"
fi
check "db1 keeps running on the source h2" test "$(where db1)" = h2
wait_for 10 beat_above db1 "$((b1 + 1))"
check "db1's heartbeat goes on" test "$(beat db1)" -gt "$b1"
check "the line stopped: the cluster is paused with the reason" \
	test "$(state "d['pause']['paused'] and 'db1' in d['pause']['reason']")" = True
check "h2 keeps the lease (never handed on after a failure)" test "$(state "[h['name'] for h in d['lease']['holders']]")" = "['h2']"
check "the failures are in the report" test "$(state "sum(1 for m in d['moves'] if m['guest']=='db1' and m['status']=='failed')")" -ge 1

# ---- the daemons stayed clean (sanitizer builds report here) ---------------------
no_sanitizer_reports
