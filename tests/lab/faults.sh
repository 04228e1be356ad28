#!/usr/bin/env bash
# Real-process faults during rolling patches in the lab (3 real hvpeerds on
# 3 real libvirt hosts, dirbank boot banks; h3 reboots through its BMC).
# Each scenario ends with the invariants (tests/lab/invariants.sh) and a
# verdict line.
#   rollout 1.1.0:
#   1. kill-9-at-PHASE: hvpeerd of the lease holder killed (-9) at every
#      phase of its cycle, h1 in precheck, enter-maint, evacuate (in the
#      middle of a live migration), stage, apply, h2 in reboot, validate,
#      exit-maint, rebalance: each time the host resumes from its committed
#      phase;
#   2. bmc-unreachable: h3's BMC (ipmi_sim) stopped when h3 reaches its
#      reboot: the line stops with the reason, no reboot, h3 keeps the lease
#      in maintenance; the BMC back, the operator resumes and takes h3 out of
#      maintenance (operations guide, section 5): the rollout ends, h3 failed;
#   rollout 1.2.0:
#   3. sigstop-holder: h1's hvpeerd stopped (SIGSTOP) while it holds the
#      lease in precheck, longer than the election timeout and the silent
#      holder's grace: the cluster moves on without it (the leader fails its
#      pre-check, the lease goes back); SIGCONT: whatever h1 tries under its
#      old token is refused, nothing is done with it (no move, no bank
#      write, no reboot, no hook: every host's pre-maintenance hook writes
#      down the HVPEER_TOKEN it ran under); resumed, h1 patches under a new
#      token;
#   4. dest-crash-mid-migration: the host h2's guest is live-migrating to
#      crashes (power loss) mid-migration: the guest keeps running on exactly
#      one host (the evacuation goes to the other host, or the line stops
#      cleanly); the crashed host booted (and the line resumed if it
#      stopped), the rollout ends with every host on 1.2.0.
# Output: "ok N - ..." lines, "# verdict: ..." lines, then "N passed, M
# failed". Exit 77 when it cannot run here (not root, lab packages missing,
# a lab already up).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/invariants.sh"
T=$(mktemp -d /tmp/hvpeer-faults.XXXXXX)
BMCSTOPPED=
finish_extra() {
	inv_stop
	[ -n "$BMCSTOPPED" ] && kill -CONT "$BMCSTOPPED" 2>/dev/null
	for h in h1 h2 h3; do
		p=$(lab pid "$h" hvpeerd 2>/dev/null) && kill -CONT "$p" 2>/dev/null
	done
	rm -rf "$T" "$INV_DIR"
}

echo "# lab up: 3 hosts, 512 MiB for guests each; h3 reboots through its BMC"
if ! lab up 3 --guest-memory 512 >"$T/up.log" 2>&1; then
	nok "lab up" "$(tail -n 5 "$T/up.log")"
	exit 1
fi
ok "lab up with 3 hosts"
# Each host gets its own breakpoints (--test-hold-dir), h3 reboots by BMC.
# Every host's pre-maintenance hook writes down the token it ran under.
printf '#!/bin/sh\necho "$HVPEER_HOOK $HVPEER_HOST $HVPEER_TOKEN" >>%s/hooks.log\n' "$T" >"$T/hook.sh"
chmod +x "$T/hook.sh"
for h in h1 h2 h3; do mkdir -p "$T/hold-$h"; echo "--test-hold-dir $T/hold-$h --pre-maintenance-hook $T/hook.sh" >"$LAB/$h/hvpeerd.flags"; done
echo "--reboot bmc" >>"$LAB/h3/hvpeerd.flags"
for h in h1 h2 h3; do kill -9 "$(hvpeerd_pid $h)" 2>/dev/null; done
sleep 1
for h in h1 h2 h3; do wait_for 30 answers $h || nok "hvpeerd on $h came back with its flags"; done

"$HVPEER_BUILDDIR/hvpeer" bundle keygen "$T/ops.key" >/dev/null && cp "$T/ops.key.pub" "$LAB/keys/ops.pub"
echo "kernel and userland" >"$T/os.img"
signed_bundle "$T/ops.key" 1.1.0 "$T/os-1.1.0.tar" "$T/os.img" && signed_bundle "$T/ops.key" 1.2.0 "$T/os-1.2.0.tar" "$T/os.img"
check "bundles 1.1.0 and 1.2.0 made and signed" test -s "$T/os-1.2.0.tar"
lab guest add h1 --name web1 --mem 96 >/dev/null && lab guest add h2 --name db1 --mem 96 >/dev/null
check "two guests boot: web1 on h1, db1 on h2" wait_for 30 guests_reported "['db1', 'web1']"
inv_start

# ---- 1. kill -9 of the holder's hvpeerd at every phase -------------------------
KILLS="h1:precheck h1:enter-maint h1:evacuate h1:stage h1:apply h2:reboot h2:validate h2:exit-maint h2:rebalance"
for k in $KILLS; do : >"$T/hold-${k%%:*}/${k#*:}"; done
: >"$T/hold-h3/reboot"
out=$(hv h2 patch submit "$T/os-1.1.0.tar" 2>&1) || nok "patch submit 1.1.0" "$out"
for k in $KILLS; do
	h=${k%%:*} p=${k#*:}
	scenario "kill-9-at-$p"
	t0=$(date +%s)
	if paused; then
		nok "$h reaches $p" "the line stopped before: $(state "d['pause']['reason']")"
		rm -f "$T/hold-$h/$p"
		verdict "kill-9-at-$p"
		continue
	fi
	if ! wait_for 90 phase_or_stop "$h" "$p" || ! phase_is "$h" "$p"; then
		nok "$h reaches $p" "phase $(phase_of "$h")"
		rm -f "$T/hold-$h/$p"
		verdict "kill-9-at-$p"
		continue
	fi
	tok=$(token_of "$h")
	if [ "$p" = evacuate ]; then
		# In the middle of the live migration: hvpeerd dies once it has
		# asked libvirt to move web1 (libvirt goes on without it).
		l=$(loglines "$h")
		rm -f "$T/hold-$h/$p"
		if wait_for 30 logged_since "$h" "$l" "moving web1: $h -> "; then
			kill -9 "$(hvpeerd_pid "$h")" 2>/dev/null
			ok "$h: hvpeerd killed (-9) while web1 migrates away ($(tail -n +"$((l + 1))" "$LAB/$h/hvpeerd.log" | grep -o "moving web1: .*" | head -n 1))"
		else
			nok "$h started to move web1" "$(tail -n 5 "$LAB/$h/hvpeerd.log")"
		fi
	else
		kill -9 "$(hvpeerd_pid "$h")" 2>/dev/null
	fi
	wait_for 30 answers "$h" || nok "hvpeerd on $h came back after kill -9"
	rm -f "$T/hold-$h/$p"
	if wait_for 90 phase_not "$h" "$p" && ! phase_is "$h" failed && ! paused; then
		ok "kill -9 of $h's hvpeerd in $p: it resumed from the committed phase (now $(phase_of "$h"))"
	else
		nok "kill -9 of $h's hvpeerd in $p: it resumed" "still $(phase_of "$h"); $(tail -n 5 "$LAB/$h/hvpeerd.log")"
	fi
	check "$h kept its lease and token $tok across the crash (or gave it back at done)" \
		sh -c 'test "$1" = "$2" -o "$1" = 0' _ "$(token_of "$h")" "$tok"
	invariants_check --no-heal
	echo "#   ($(elapsed "$t0") s)"
	verdict "kill-9-at-$p"
done

# ---- 2. h3's BMC unreachable when it reboots -------------------------------------
scenario bmc-unreachable
t0=$(date +%s)
if wait_for 90 phase_is h3 reboot; then ok "h3 reached its reboot (held)"; else nok "h3 reached its reboot" "phase $(phase_of h3)"; fi
BMCSTOPPED=$(cat "$LAB/bmc/h3/sim.pid" 2>/dev/null)
boot0=$(cat "$LAB/h3/boot_id" 2>/dev/null)
if [ -n "$BMCSTOPPED" ] && kill -STOP "$BMCSTOPPED"; then ok "h3's BMC (ipmi_sim, pid $BMCSTOPPED) stopped: it answers nothing"; else nok "stop h3's BMC" "no pid in $LAB/bmc/h3/sim.pid"; fi
tok=$(token_of h3)
rm -f "$T/hold-h3/reboot"
if wait_for 120 paused; then ok "the line stopped after $(elapsed "$t0") s"; else nok "the line stopped" "$(hv h1 patch status 2>&1 | tail -n 5)"; fi
reason=$(state "d['pause']['reason']")
check "the reason says the power cycle through the BMC failed: $reason" grep -q "reboot: power cycle through the BMC" <<<"$reason"
check "h3 did not reboot (same boot id)" test "$(cat "$LAB/h3/boot_id" 2>/dev/null)" = "$boot0"
check "h3 keeps the lease (token $tok) and stays in maintenance" \
	test "$(state "[(h['name'], h['token']) for h in d['lease']['holders']], [m['maintenance'] for m in d['members'] if m['name']=='h3'][0]")" = "[('h3', $tok)] in"
check "h3's cycle failed, on 1.0.0" test "$(phase_of h3)/$(state "[m['version'] for m in d['members'] if m['name']=='h3'][0]")" = failed/1.0.0
kill -CONT "$BMCSTOPPED" 2>/dev/null && BMCSTOPPED=
bmc_answers() { hv h1 --timeout 5000 bmc status h3 >/dev/null 2>&1; }
check "h3's BMC answers again" wait_for 30 bmc_answers
# The operator (operations guide, section 5): resume, then take the failed
# host out of maintenance, which brings its guests back and frees the lease.
out=$(hv h1 resume 2>&1) || nok "resume" "$out"
out=$(hv h3 maintenance exit 2>&1) || nok "maintenance exit h3" "$out"
if wait_for 60 rollout_over; then ok "the rollout of 1.1.0 ended: $(state "d['rollout']['done'], d['rollout']['failed']") (done, failed)"; else nok "the rollout of 1.1.0 ended" "$(hv h1 patch status 2>&1 | tail -n 5)"; fi
v=$(state "sorted((m['name'], m['version']) for m in d['members']), d['pause']['paused'], len(d['lease']['holders'])")
check "h1 and h2 run 1.1.0, h3 failed on 1.0.0; not paused, lease free: $v" \
	test "$v" = "[('h1', '1.1.0'), ('h2', '1.1.0'), ('h3', '1.0.0')] False 0"
invariants_check --no-heal
echo "#   ($(elapsed "$t0") s)"
verdict bmc-unreachable

# ---- 3. SIGSTOP of the lease holder ----------------------------------------------
# web1 leaves: the guests that are left run where no crash reaches them.
lab exec h1 virsh -q destroy web1 >/dev/null 2>&1
lab exec h1 virsh -q undefine web1 >/dev/null 2>&1
wait_for 20 guests_reported "['db1']"
scenario sigstop-holder
t0=$(date +%s)
: >"$T/hold-h1/precheck"
: >"$T/hold-h2/evacuate"
: >"$T/hold-h2/stage"
out=$(hv h2 patch submit "$T/os-1.2.0.tar" 2>&1) || nok "patch submit 1.2.0" "$out"
if wait_for 60 phase_is h1 precheck; then ok "h1 holds the lease in precheck"; else nok "h1 reached precheck" "phase $(phase_of h1)"; fi
tok1=$(token_of h1)
leader0=$(state "d['leader']['name']")
P1=$(hvpeerd_pid h1)
kill -STOP "$P1"
stopped_at=$(date +%s%3N)
echo "# h1's hvpeerd (pid $P1) stopped, holding token $tok1; the leader was $leader0"
rm -f "$T/hold-h1/precheck"
moved_on() { test "$(state "d['pause']['paused'], [h['name'] for h in d['lease']['holders']], [h['phase'] for h in d['rollout']['hosts'] if h['name']=='h1'][0]")" = "True [] paused"; }
if wait_for 60 moved_on; then
	ok "without h1 the cluster moved on after $(elapsed "$t0") s: its pre-check failed for it, the lease went back, the line stopped"
else
	nok "the cluster moved on without h1" "$(state "d['pause'], d['lease']")"
fi
check "a leader other than h1 did it: $(state "d['leader']['name']")" test "$(state "d['leader']['name']")" != h1
check "the history says the lease of token $tok1 ended: $(state "[e['text'] for e in d['events'] if 'token $tok1)' in e['text']]")" \
	test "$(state "any('lease released by h1 (token $tok1)' in e['text'] for e in d['events'])")" = True
reason=$(state "d['pause']['reason']")
echo "#   pause reason: $reason"
sleep 1
l=$(loglines h1)
kill -CONT "$P1"
echo "# h1's hvpeerd continued after $(($(date +%s%3N) - stopped_at)) ms"
wait_for 30 answers h1 || nok "h1 answers again after SIGCONT"
sleep 3 # whatever h1 starts under its old token, it does now
tail -n +"$((l + 1))" "$LAB/h1/hvpeerd.log" | sed 's/^/#   h1: /' | head -n 20
after=$(tail -n +"$((l + 1))" "$LAB/h1/hvpeerd.log")
if grep -q "fence: token $tok1 of h1 is current" <<<"$after"; then
	nok "after SIGCONT no fence passed with the old token $tok1"
elif grep -q "fence: token $tok1 of h1 refused\|committing .* of precheck: " <<<"$after"; then
	ok "after SIGCONT h1 acted under its old token $tok1 and was refused: $(grep -o "fence: token $tok1 of h1 refused.*\|committing .* of precheck: .*" <<<"$after" | head -n 1)"
else
	ok "after SIGCONT h1 caught up before acting: nothing tried under the old token $tok1"
fi
check "no side effect on h1 after SIGCONT (no move, no bank write, no reboot)" \
	sh -c '! printf "%s\n" "$1" | grep -q "moving \|apply: ok\|rebooting with\|power-cycling"' _ "$after"
check "no hook ran under the old token $tok1: $(grep -c " h1 $tok1\$" "$T/hooks.log" 2>/dev/null) line(s)" \
	sh -c '! grep -q " h1 $1\$" "$2"' _ "$tok1" "$T/hooks.log"
check "h1's replica agrees it holds no lease" test "$(hv h1 --json status 2>/dev/null | python3 -c "import json,sys; print(len(json.load(sys.stdin)['lease']['holders']))")" = 0
invariants_check --no-heal
# The operator: resume; h1 goes again, under a new token.
out=$(hv h2 resume 2>&1) || nok "resume" "$out"
newtok() { t=$(token_of h1) && test "$t" -gt "$tok1"; }
if wait_for 60 newtok; then ok "resumed: h1 holds the lease again with a new token $(token_of h1) > $tok1"; else nok "h1 got a new token" "$(state "d['lease']")"; fi
tok2=$(token_of h1)
if wait_for 120 phase_is h1 done; then ok "h1 patched to 1.2.0"; else nok "h1 patched" "phase $(phase_of h1)"; fi
check "h1's pre-maintenance hook ran under its new token $tok2" grep -q "^pre-maintenance-hook h1 $tok2\$" "$T/hooks.log"
echo "#   ($(elapsed "$t0") s)"
verdict sigstop-holder

# ---- 4. the migration's destination crashes mid-migration --------------------------
scenario dest-crash-mid-migration
t0=$(date +%s)
if wait_for 90 phase_is h2 evacuate; then ok "h2 reached evacuate (held)"; else nok "h2 reached evacuate" "phase $(phase_of h2)"; fi
declare -A INIT=()
for h in h1 h3; do INIT[$h]=$(lab pid $h init 2>/dev/null); done
l=$(loglines h2)
rm -f "$T/hold-h2/evacuate"
X=
if wait_for 60 logged_since h2 "$l" "moving db1: h2 -> "; then
	X=$(tail -n +"$((l + 1))" "$LAB/h2/hvpeerd.log" | grep -o "moving db1: h2 -> h[0-9]*" | head -n 1 | awk '{print $NF}')
	# A power loss, as `lab crash` does, at once: SIGKILL of its init.
	kill -KILL "${INIT[$X]}" 2>/dev/null && ok "$X (db1's destination) lost its power while db1 migrates to it"
else
	nok "h2 started to move db1" "$(tail -n 5 "$LAB/h2/hvpeerd.log")"
fi
Y=h1
[ "$X" = h1 ] && Y=h3
evac_ended() { phase_is h2 stage || paused; }
wait_for 120 evac_ended # (h2 holds before its stage)
if paused; then
	ok "the line stopped cleanly: $(state "d['pause']['reason']")"
	check "db1 keeps running on h2" test "$(lab guest heartbeat db1 | awk '{print $2}')" = h2
else
	check "the evacuation completed to the other host: db1 runs on $Y" test "$(lab guest heartbeat db1 | awk '{print $2}')" = "$Y"
	check "h2's log shows the failed move to $X and the retry on $Y" \
		sh -c 'tail -n +"$1" "$2" | grep -q "moving db1 to $3 failed" && tail -n +"$1" "$2" | grep -q "retrying db1 on $4"' _ "$((l + 1))" "$LAB/h2/hvpeerd.log" "$X" "$Y"
fi
check "no guest lost or twice while $X is down" inv_guests_ok db1
lab boot "$X" >/dev/null 2>&1 || nok "boot $X"
wait_for 30 answers "$X" || nok "hvpeerd on $X is back"
rm -f "$T/hold-h2/stage"
paused && { out=$(hv h2 resume 2>&1) || nok "resume" "$out"; }
if wait_for 240 rollout_over; then ok "the rollout of 1.2.0 finished"; else nok "the rollout of 1.2.0 finished" "$(hv h2 patch status 2>&1 | tail -n 5)"; fi
inv_stop
invariants_check --version 1.2.0 --guests db1
echo "#   ($(elapsed "$t0") s)"
verdict dest-crash-mid-migration

no_sanitizer_reports
