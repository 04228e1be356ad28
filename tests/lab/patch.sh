#!/usr/bin/env bash
# The self-patch cycle in the lab: real libvirtd + QEMU (TCG) hosts in
# namespaces, each with its own hvpeerd and A/B boot banks (dirbank); a lab
# reboot restarts the host's daemons through the bootloader.
#   1. refused before anything moves: an unsigned bundle, one signed by an
#      untrusted key;
#   2. a rolling patch of 3 hosts: one host at a time, each fetching the
#      bundle from the host it was submitted to; guests keep running
#      (heartbeat, uptime), every host boots the new version, banks marked
#      good, guests back home;
#   3. a rollback attack (an older version) is refused;
#   4. hvpeerd killed (-9) in every phase of h1's cycle, and h1 powered off
#      (lab crash + boot) in two of them: the cycle resumes from the
#      committed phase; never two hosts in maintenance; no guest lost;
#   5. a bundle whose validate hook fails: h1 rolls back to the previous
#      bank, the cycle ends FAILED, the cluster pauses, the patch is
#      quarantined, no other host tried it.
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it cannot
# run here (not root, lab packages missing, a lab already up).
set -u
. "$(dirname "$0")/lib.sh"
HVPEER=$HVPEER_BUILDDIR/hvpeer
T=$(mktemp -d /tmp/hvpeer-patch.XXXXXX)
SAMPLER=
finish_extra() {
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
	rm -rf "$T"
}

guests_total_is() { test "$(state "sum(len(m['guests']) for m in d['members'])")" = "$1"; }
version_of() { state "[m['version'] for m in d['members'] if m['name']=='$1'][0]"; }
beat() { lab guest heartbeat "$1" | awk '{print $1}'; }
where() { lab guest heartbeat "$1" | awk '{print $2}'; }
uptime_of() { lab guest heartbeat "$1" | awk '{print $3}'; }
bank_of() { awk '$1 == "active" { print $2 }' "$LAB/$1/bootbank/state"; }
# Sample, in the background, how many hosts are in maintenance at once.
sampler_start() {
	(
		while :; do
			state "sum(1 for m in d['members'] if m['maintenance'] != 'none')" 2>/dev/null
			sleep 0.3
		done
	) >"$T/in-maint" &
	SAMPLER=$!
}
sampler_stop() { kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=; }
max_in_maint() { sort -n "$T/in-maint" | tail -1; }

echo "# lab up: 3 hosts, 512 MiB for guests each, boot banks at 1.0.0"
if ! lab up 3 --guest-memory 512 >"$T/up.log" 2>&1; then
	nok "lab up" "$(tail -n 5 "$T/up.log")"
	exit 1
fi
ok "lab up with 3 hosts"
check "every host booted bank a with version 1.0.0" test "$(version_of h1)$(version_of h2)$(version_of h3)" = 1.0.01.0.01.0.0

# Keys and bundles.
"$HVPEER" bundle keygen "$T/ops.key" >/dev/null && cp "$T/ops.key.pub" "$LAB/keys/ops.pub"
"$HVPEER" bundle keygen "$T/rogue.key" >/dev/null
echo "kernel and userland 1.1.0" >"$T/os.img"
printf '#!/bin/sh\nexit 0\n' >"$T/health-ok.sh"
printf '#!/bin/sh\necho "service check failed: kvm module missing" >&2\nexit 1\n' >"$T/health-bad.sh"
mkbundle() { # VERSION OUT [validate hook] [key]: a signed bundle
	local v=$1 out=$2 hook=${3:-} key=${4:-$T/ops.key} args=()
	[ -n "$hook" ] && args=(--hook "validate=$hook")
	"$HVPEER" bundle create --name labos --version "$v" --host-class lab "${args[@]}" \
		-o "$out" "$T/os.img" >/dev/null &&
		{ [ "$key" = none ] || "$HVPEER" bundle sign --key "$key" "$out" >/dev/null; }
}
mkbundle 1.1.0 "$T/unsigned.tar" "" none
mkbundle 1.1.0 "$T/rogue.tar" "" "$T/rogue.key"
mkbundle 1.1.0 "$T/os-1.1.0.tar" "$T/health-ok.sh"
check "bundles made and signed with hvpeer bundle" test -s "$T/os-1.1.0.tar"

lab guest add h1 --name web1 --mem 128 >/dev/null && lab guest add h2 --name db1 --mem 128 >/dev/null &&
	lab guest add h3 --name app1 --mem 96 >/dev/null
check "three guests boot, one per host" test "$(where web1)$(where db1)$(where app1)" = h1h2h3
wait_for 20 guests_total_is 3

# ---- 1. refused before anything moves ----------------------------------------
out=$(hv h1 patch submit "$T/unsigned.tar" 2>&1)
rc=$?
if [ $rc = 1 ] && echo "$out" | grep -q "Signature Validation Failed: .*not signed"; then ok "an unsigned bundle is refused: $out"; else nok "an unsigned bundle is refused (exit $rc)" "$out"; fi
out=$(hv h1 patch submit "$T/rogue.tar" 2>&1)
rc=$?
if [ $rc = 1 ] && echo "$out" | grep -qi "Signature Validation Failed: .*not among the .* trusted keys"; then ok "a bundle signed by an untrusted key is refused: $out"; else nok "a bundle signed by an untrusted key is refused (exit $rc)" "$out"; fi
check "nothing moved: no rollout, no lease, guests where they were" test "$(state "d['rollout']['id'], len(d['lease']['holders'])")/$(where web1)" = "0 0/h1"

# ---- 2. a rolling patch -------------------------------------------------------
# h2 reports every phase change of its cycle through notify-command.
printf '#!/bin/sh\necho "$HVPEER_HOST $HVPEER_VERSION $HVPEER_PREV_PHASE $HVPEER_PHASE" >>%s\n' "$T/notify.log" >"$T/notify.sh"
chmod +x "$T/notify.sh"
echo "--notify-command $T/notify.sh" >"$LAB/h2/hvpeerd.flags"
kill "$(hvpeerd_pid h2)" 2>/dev/null
sleep 1
wait_for 20 hv h2 status >/dev/null
b1=$(beat web1) u1=$(uptime_of web1)
sampler_start
t0=$(date +%s.%N)
out=$(hv h1 patch submit "$T/os-1.1.0.tar" 2>&1)
rc=$?
if [ $rc = 0 ]; then ok "patch submit 1.1.0: $out"; else nok "patch submit 1.1.0 (exit $rc)" "$out"; fi
if wait_for 240 rollout_over; then
	ok "the rollout finished in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
else
	nok "the rollout finished within 240 s" "$(hv h2 patch status 2>&1)"
fi
sampler_stop
hv h2 patch status 2>&1 | sed 's/^/#   /'
check "every host is done" test "$(state "sorted(h['phase'] for h in d['rollout']['hosts'])")" = "['done', 'done', 'done']"
check "every host runs 1.1.0" test "$(version_of h1)$(version_of h2)$(version_of h3)" = 1.1.01.1.01.1.0
fetched_from() { grep -q "patch $2: bundle fetched from $3" "$LAB/$1/hvpeerd.log"; }
check "h2 and h3 fetched the bundle from h1, where it was submitted" \
	eval 'fetched_from h2 1.1.0 h1 && fetched_from h3 1.1.0 h1'
rm -f "$LAB/h2/hvpeerd.flags"
notified() { grep -q "^h2 1.1.0 [a-z-]* $1\$" "$T/notify.log" 2>/dev/null; }
check "notify-command ran on h2's phase changes, with its version (precheck ... validate ... done)" \
	eval 'notified precheck && notified evacuate && notified validate && notified done'
check "every host's new bank (b) is marked good" test "$(bank_of h1)$(bank_of h2)$(bank_of h3)" = bbb
check "never more than one host in maintenance (max $(max_in_maint) over $(wc -l <"$T/in-maint") samples)" test "$(max_in_maint)" -le 1
check "hosts went in name order (h1, h2, h3)" test "$(state "' '.join(h['name'] for h in sorted(d['rollout']['hosts'], key=lambda h: h['end_ms']))")" = "h1 h2 h3"
check "guests are back home" test "$(where web1)$(where db1)$(where app1)" = h1h2h3
beat_above() { test "$(beat "$1")" -gt "$2"; }
wait_for 10 beat_above web1 "$((b1 + 2))"
b2=$(beat web1) u2=$(uptime_of web1)
if [ "$b2" -gt "$b1" ] && awk "BEGIN{exit !($u2 > $u1)}"; then
	ok "web1 kept running through h1's reboot (heartbeat $b1 -> $b2, uptime $u1 -> $u2 s)"
else
	nok "web1 kept running through h1's reboot" "heartbeat $b1 -> $b2, uptime $u1 -> $u2"
fi
check "the lease is free, the cluster not paused" test "$(state "len(d['lease']['holders']), d['pause']['paused']")" = "0 False"

# ---- 3. rollback attack -------------------------------------------------------
mkbundle 1.0.5 "$T/old.tar" "$T/health-ok.sh"
out=$(hv h1 patch submit "$T/old.tar" 2>&1)
rc=$?
if [ $rc = 1 ] && echo "$out" | grep -qi "rollback\|older"; then ok "an older version is refused (anti-rollback): $out"; else nok "an older version is refused (exit $rc)" "$out"; fi

# ---- 4. crashes in every phase of h1's cycle -----------------------------------
PHASES="precheck enter-maint evacuate stage apply reboot validate exit-maint rebalance"
mkdir -p "$T/hold"
echo "--test-hold-dir $T/hold" >"$LAB/h1/hvpeerd.flags"
for p in $PHASES; do : >"$T/hold/$p"; done
kill -9 "$(hvpeerd_pid h1)" 2>/dev/null
wait_for 20 hv h1 status
echo "kernel and userland 1.2.0" >"$T/os.img"
mkbundle 1.2.0 "$T/os-1.2.0.tar" "$T/health-ok.sh"
sampler_start
out=$(hv h2 patch submit "$T/os-1.2.0.tar" 2>&1) || nok "patch submit 1.2.0" "$out"
for p in $PHASES; do
	if ! wait_for 60 phase_is h1 "$p"; then
		nok "h1 reaches $p" "phase $(phase_of h1)"
		rm -f "$T/hold/$p"
		continue
	fi
	case $p in
	apply | reboot)
		lab crash h1 >/dev/null 2>&1 && lab boot h1 >/dev/null 2>&1
		what="power loss"
		;;
	*)
		kill -9 "$(hvpeerd_pid h1)" 2>/dev/null
		what="kill -9 of hvpeerd"
		;;
	esac
	wait_for 30 hv h1 status
	rm -f "$T/hold/$p"
	if wait_for 90 phase_not h1 "$p"; then
		ok "$what in $p: h1 resumed from the committed phase (now $(phase_of h1))"
	else
		nok "$what in $p: h1 resumed" "still $(phase_of h1)"
	fi
done
if wait_for 240 rollout_over; then ok "the rollout of 1.2.0 finished"; else nok "the rollout of 1.2.0 finished" "$(hv h2 patch status 2>&1)"; fi
sampler_stop
check "every host runs 1.2.0 and is done" test "$(state "sorted(set((h['phase'], h['version']) for h in d['rollout']['hosts']))")" = "[('done', '1.2.0')]"
check "never more than one host in maintenance (max $(max_in_maint))" test "$(max_in_maint)" -le 1
check "no guest lost: all three run, at home" test "$(where web1)$(where db1)$(where app1)" = h1h2h3
rm -f "$LAB/h1/hvpeerd.flags"

# ---- 5. a failed validation -----------------------------------------------------
mkbundle 1.3.0 "$T/bad.tar" "$T/health-bad.sh"
out=$(hv h3 patch submit "$T/bad.tar" 2>&1) || nok "patch submit 1.3.0" "$out"
if wait_for 120 phase_is h1 failed; then ok "h1's cycle ended failed"; else nok "h1's cycle ended failed" "phase $(phase_of h1)"; fi
reason=$(state "d['pause']['reason']")
check "the cluster is paused with the reason: $reason" test "$(state "d['pause']['paused']")" = True
check "the reason names the failed hook" grep -q "kvm module missing" <<<"$reason"
check "h1 rolled back: it runs 1.2.0 on its previous bank" test "$(version_of h1)/$(bank_of h1)" = "1.2.0/a"
check "the patch is quarantined" test "$(state "[q['version'] for q in d['rollout']['quarantine']]")" = "['1.3.0']"
check "no other host tried it (h2, h3 waiting on 1.2.0)" test "$(phase_of h2)$(phase_of h3)$(version_of h2)$(version_of h3)" = wait-leasewait-lease1.2.01.2.0
check "h1 keeps the lease (the line is stopped)" test "$(state "[h['name'] for h in d['lease']['holders']]")" = "['h1']"
out=$(hv h1 patch abort --reason "bad build" 2>&1) || nok "patch abort" "$out"
out=$(hv h1 patch submit "$T/bad.tar" 2>&1)
rc=$?
if [ $rc = 1 ] && echo "$out" | grep -q quarantined; then ok "the quarantined patch cannot be submitted again"; else nok "the quarantined patch cannot be submitted again (exit $rc)" "$out"; fi
# The operator's way out: resume (moves wait while paused), then bring h1's
# guests back, which ends its maintenance and releases the lease.
hv h1 resume >/dev/null 2>&1
out=$(hv h1 maintenance exit 2>&1) || nok "maintenance exit h1 after the failure" "$out"
check "after the operator's exit and resume: web1 home, lease free, not paused" test "$(where web1)/$(state "len(d['lease']['holders']), d['pause']['paused']")" = "h1/0 False"
