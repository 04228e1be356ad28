#!/usr/bin/env bash
# The patch cycle through the lab hosts' BMCs (ipmi_sim, one per host, whose
# power control kills and boots the lab host):
#   1. a rolling patch of 3 hosts with reboot = bmc: every host is power-cycled
#      through its own BMC, the leader follows the power (off, then on) and
#      records it, every host boots the new version;
#   2. a sensor out of range after the reboot (the CPU at 95 C) fails
#      validation, naming the sensor: the host rolls back (through its BMC
#      again), the cycle ends failed, the cluster pauses, the patch is
#      quarantined;
#   3. a hung host: its hvpeerd never comes back after the reboot; the
#      leader's watchdog power-cycles it through its BMC after boot-timeout,
#      and when it stays hung the line stops with the reason and the lease
#      held; once the host is fixed and the operator resumes, it comes back on
#      its previous bank (the hang spent its trial boot): failed, quarantined.
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it
# cannot run here (not root, lab packages missing, a lab already up).
set -u
. "$(dirname "$0")/lib.sh"
HVPEER=$HVPEER_BUILDDIR/hvpeer
T=$(mktemp -d /tmp/hvpeer-bmcpatch.XXXXXX)
finish_extra() { rm -rf "$T"; }

version_of() { state "[m['version'] for m in d['members'] if m['name']=='$1'][0]"; }
events() { state "'\n'.join(e['text'] for e in d['events'])"; }
boot_id() { cat "$LAB/$1/boot_id" 2>/dev/null; }

echo "# lab up: 3 hosts with BMCs; hvpeerd reboots through the BMC, boot-timeout 15 s, 1 watchdog cycle"
export HVPEERD_FLAGS="--reboot bmc --boot-timeout 15 --watchdog-cycles 1"
if ! lab up 3 >"$T/up.log" 2>&1; then
	nok "lab up" "$(tail -n 5 "$T/up.log")"
	exit 1
fi
ok "lab up with 3 hosts"
bmc_known() { test "$(state "sorted(m['bmc'] for m in d['members'])")" = "['ipmi', 'ipmi', 'ipmi']"; }
if wait_for 20 bmc_known; then ok "every host reported its BMC into the replicated state"; else nok "every host reported its BMC" "$(state "[(m['name'], m['bmc'], m['bmc_address']) for m in d['members']]")"; fi

"$HVPEER" bundle keygen "$T/ops.key" >/dev/null && cp "$T/ops.key.pub" "$LAB/keys/ops.pub"
echo "kernel and userland" >"$T/os.img"
mkbundle() { signed_bundle "$T/ops.key" "$1" "$2" "$T/os.img"; } # VERSION OUT
mkbundle 1.1.0 "$T/os-1.1.0.tar" && mkbundle 1.2.0 "$T/os-1.2.0.tar" && mkbundle 1.3.0 "$T/os-1.3.0.tar"
check "bundles made and signed" test -s "$T/os-1.3.0.tar"

# ---- 1. a rolling patch, rebooting through the BMCs -----------------------------
ids0="$(boot_id h1) $(boot_id h2) $(boot_id h3)"
t0=$(date +%s.%N)
out=$(hv h1 patch submit "$T/os-1.1.0.tar" 2>&1) || nok "patch submit 1.1.0" "$out"
if wait_for 240 rollout_over; then
	ok "the rollout finished in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
else
	nok "the rollout finished within 240 s" "$(hv h2 patch status 2>&1)"
fi
check "every host is done and runs 1.1.0" test "$(state "sorted(set((h['phase'], h['version']) for h in d['rollout']['hosts']))")" = "[('done', '1.1.0')]"
ids1="$(boot_id h1) $(boot_id h2) $(boot_id h3)"
set -- $ids0
b1=$1 b2=$2 b3=$3
set -- $ids1
check "every host booted again (new boot ids)" test "$1" != "$b1" -a "$2" != "$b2" -a "$3" != "$b3"
n=0
for h in h1 h2 h3; do grep -q "power-cycling this host through its BMC" "$LAB/$h/hvpeerd.log" && n=$((n + 1)); done
check "each host power-cycled itself through its BMC ($n of 3)" test $n = 3
# The leaders' logs (the event history is a bounded ring).
followed=$(grep -h "watchdog: h[0-9]: power \(off\|on\) (its BMC" "$LAB"/h*/hvpeerd.log)
echo "$followed" | sed 's/^/#   /'
check "the leader followed the hosts' power through their BMCs: off, then on" \
	sh -c 'echo "$1" | grep -q "power off (its BMC" && echo "$1" | grep -q "power on (its BMC"' _ "$followed"
check "no watchdog power cycle was needed" test "$(grep -c "power cycle 1 of" "$LAB"/h*/hvpeerd.log | awk -F: '{s += $2} END {print s}')" = 0

# ---- 2. a sensor out of range fails validation ----------------------------------
mkdir -p "$T/hold"
echo "--test-hold-dir $T/hold" >"$LAB/h1/hvpeerd.flags"
: >"$T/hold/validate"
out=$(hv h2 patch submit "$T/os-1.2.0.tar" 2>&1) || nok "patch submit 1.2.0" "$out"
if wait_for 120 phase_is h1 validate; then ok "h1 rebooted into 1.2.0 and holds before validation"; else nok "h1 reached validate" "phase $(phase_of h1)"; fi
lab bmc h1 sensor cpu_temp 95 >/dev/null
sleep 2 # ipmi_sim reads the value each second
rm -f "$T/hold/validate"
if wait_for 120 phase_is h1 failed; then ok "h1's cycle ended failed"; else nok "h1's cycle ended failed" "phase $(phase_of h1)"; fi
reason=$(state "d['pause']['reason']")
check "the cluster is paused: $reason" paused
check "the reason names the sensor and its reading" grep -q "CPU Temp 95" <<<"$reason"
check "h1 rolled back through its BMC: it runs 1.1.0 on its previous bank" test "$(version_of h1)" = 1.1.0
check "the patch is quarantined" test "$(state "[q['version'] for q in d['rollout']['quarantine']]")" = "['1.2.0']"
check "no other host tried it" test "$(version_of h2)$(version_of h3)" = 1.1.01.1.0
lab bmc h1 sensor cpu_temp 45 >/dev/null
rm -f "$LAB/h1/hvpeerd.flags"
out=$(hv h2 patch abort --reason "hot CPU" 2>&1) || nok "patch abort" "$out"
hv h2 resume >/dev/null 2>&1
out=$(hv h1 maintenance exit 2>&1) || nok "maintenance exit h1 after the failure" "$out"
free_lease() { test "$(state "len(d['lease']['holders']), d['pause']['paused']")" = "0 False"; }
check "after abort, resume and exit: lease free, not paused" wait_for 20 free_lease

# ---- 3. a hung host --------------------------------------------------------------
# h1 goes first; hold it before its reboot, then keep its hvpeerd from
# starting again (the host boots, its hvpeerd never comes back).
echo "--test-hold-dir $T/hold" >"$LAB/h1/hvpeerd.flags"
lab crash h1 >/dev/null 2>&1 && lab boot h1 >/dev/null 2>&1 # pick the flags up
: >"$T/hold/reboot"
h1_back() { test "$(state "[m['version'] for m in d['members'] if m['name']=='h1'][0]")" = 1.1.0; }
wait_for 30 h1_back
out=$(hv h2 patch submit "$T/os-1.3.0.tar" 2>&1) || nok "patch submit 1.3.0" "$out"
if wait_for 120 phase_is h1 reboot; then ok "h1 reached its reboot"; else nok "h1 reached its reboot" "phase $(phase_of h1)"; fi
: >"$LAB/h1/hvpeerd.stop"
rm -f "$T/hold/reboot"
t0=$(date +%s)
cycled() { events | grep -q "h1: not back 15 s after it began to reboot; power cycle 1 through its BMC"; }
if wait_for 90 cycled; then ok "the watchdog power-cycled h1 through its BMC after $(($(date +%s) - t0)) s"; else nok "the watchdog power-cycled h1" "$(events | tail -n 8)"; fi
if wait_for 90 paused; then ok "h1 stayed hung: the line stopped after $(($(date +%s) - t0)) s"; else nok "the line stopped" "$(events | tail -n 8)"; fi
reason=$(state "d['pause']['reason']")
check "the reason says h1 did not come back after a power cycle: $reason" grep -q "h1 has not come back after 1 power cycle through its BMC" <<<"$reason"
check "h1 keeps the lease (never handed on while it is down)" test "$(state "[h['name'] for h in d['lease']['holders']]")" = "['h1']"
check "h1 is still in its reboot phase, no other host moved" test "$(phase_of h1)$(phase_of h2)$(phase_of h3)" = rebootwait-leasewait-lease
ev=$(events)
check "the watchdog's cycle shows in the events: power off, then on" \
	sh -c 'echo "$1" | grep -q "h1: power off (its BMC" && echo "$1" | grep -q "h1: power on (its BMC"' _ "$ev"
sleep 3
check "no further power cycle once the line stopped" test "$(events | grep -c "through its BMC$")" = "$(echo "$ev" | grep -c "through its BMC$")"
# The operator fixes h1 and resumes. Its trial boot of 1.3.0 was spent by the
# hang (the watchdog's power cycle booted it a second time, and a trial never
# marked good falls back to the previous bank): h1 comes back on 1.1.0, and
# its cycle ends failed with the patch quarantined.
rm -f "$LAB/h1/hvpeerd.stop" "$LAB/h1/hvpeerd.flags"
hv h2 resume >/dev/null 2>&1
if wait_for 60 phase_is h1 failed; then ok "after the fix and resume h1 came back and its cycle ended"; else nok "h1 came back after the fix" "phase $(phase_of h1)"; fi
reason=$(state "d['pause']['reason']")
check "h1 fell back to its previous bank: it runs 1.1.0" test "$(version_of h1)" = 1.1.0
check "the reason says the new bank did not come up: $reason" grep -q "the new bank did not come up" <<<"$reason"
check "the line stopped again, the patch is quarantined" test "$(state "d['pause']['paused'], [q['version'] for q in d['rollout']['quarantine']]")" = "True ['1.2.0', '1.3.0']"
check "no other host tried it" test "$(version_of h2)$(version_of h3)" = 1.1.01.1.0

# ---- the daemons stayed clean (sanitizer builds report here) ---------------------
no_sanitizer_reports
