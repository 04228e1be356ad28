#!/usr/bin/env bash
# Rollout policies in the lab (real hvpeerds on real libvirt hosts):
#   1. a maintenance window that is open, but not long enough for a host's
#      estimated cycle: hvpeer plan (the dry run) says so, nobody starts,
#      and the leader says why; with a shorter estimate the rollout goes;
#   2. a canary (h3) patches alone first, then a soak: the others wait for
#      it, then follow in name order, each let go by the leader's gate;
#   3. a downtime budget: a guest stunned longer than it by its live
#      migration stops the line, with the reason;
#   4. pre-checks: a peer whose clock is 400 s ahead, then a host without
#      the disk space to stage the bundle: each stops the line before
#      anything moves, with the reason; fixed and resumed, the rollout ends;
#   5. hooks: the rollout's start and end hooks once, each host's pre- and
#      post-maintenance hooks around its cycle, in order; a failing
#      pre-maintenance hook stops the line before anything moves;
#   6. the quorum guard: with 3 voters no host may go down (the 2 left would
#      be one failure from losing quorum); off, the rollout goes;
#   7. max-retries: a pre-check that fails (a skewed clock) is tried again
#      after retry-delay instead of stopping the line; fixed in time, the
#      rollout ends;
#   8. migration-mtu 9000 on links of 1500: the pre-check says that jumbo
#      frames do not reach the peers while 1500-byte packets do;
#   9. a guest whose CPU requires a feature no target has: the pre-check
#      (libvirt's CPU comparison) stops the line before anything moves.
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it
# cannot run here (not root, lab packages missing, a lab already up).
set -u
. "$(dirname "$0")/lib.sh"
HVPEER=$HVPEER_BUILDDIR/hvpeer
T=$(mktemp -d /tmp/hvpeer-policy.XXXXXX)
mkbundle() { signed_bundle "$T/ops.key" "$@"; } # VERSION OUT PAYLOAD
finish_extra() {
	lab down >/dev/null 2>&1
	umount "$T/small" 2>/dev/null
	rm -rf "$T"
}
# A small file system for h3's bundles, mounted before the lab hosts start
# (their mount namespaces copy it); a remount resizes it for them too.
mkdir -p "$T/small" && mount -t tmpfs -o size=4m hvpeer-test "$T/small" ||
	{ echo "Bail out! cannot mount a tmpfs"; exit 99; }

holders() { state "' '.join(h['name'] for h in d['lease']['holders'])"; }

# Every hook appends what it was run for; the pre-maintenance hook fails
# while $T/fail-pre exists, as a storage cluster that refuses noout would.
cat >"$T/hook.sh" <<EOF
#!/bin/sh
[ "\$HVPEER_HOOK" = pre-maintenance-hook ] && [ -e "$T/fail-pre" ] &&
	{ echo "storage: cannot set noout (cluster degraded)"; exit 1; }
echo "\$HVPEER_HOOK \$HVPEER_HOST \$HVPEER_VERSION" >>"$T/hooks.log"
EOF
chmod +x "$T/hook.sh"
export HVPEERD_FLAGS="--pre-maintenance-hook $T/hook.sh --post-maintenance-hook $T/hook.sh --rollout-start-hook $T/hook.sh --rollout-end-hook $T/hook.sh"
echo "# lab up: 3 hosts, every hook set"
if ! lab up 3 --guest-memory 512 >"$T/up.log" 2>&1; then
	nok "lab up" "$(tail -n 5 "$T/up.log")"
	exit 1
fi
ok "lab up with 3 hosts"
"$HVPEER" bundle keygen "$T/ops.key" >/dev/null && cp "$T/ops.key.pub" "$LAB/keys/ops.pub"
echo "kernel and userland" >"$T/os.img"
mkbundle 1.1.0 "$T/os.tar" "$T/os.img"
check "a signed bundle" test -s "$T/os.tar"

# ---- 1. a window too short for the estimated cycle ----------------------------
# Open from a minute ago to ten minutes from now (UTC), every day.
from=$(date -u -d '-1 min' +%H:%M) to=$(date -u -d '+10 min' +%H:%M)
out=$(hv h1 policy set window "daily $from-$to" 2>&1) || nok "policy set window" "$out"
out=$(hv h1 policy set cycle-estimate 3600 2>&1) || nok "policy set cycle-estimate" "$out"
out=$(hv h2 policy set canary h3 2>&1) && out=$(hv h2 policy set soak 5 2>&1) || nok "policy set canary, soak" "$out"
out=$(hv h1 policy show 2>&1)
check "policy show: window, canary, soak" grep -q "daily $from-$to (UTC)" <<<"$out"
# The dry run first: the order, and that no window is long enough.
plan() { hv "$1" --json plan "$2" | python3 -c "import json,sys; d=json.load(sys.stdin); print($3)"; }
check "hvpeer plan 1.1.0: the canary h3 first, then h1, h2" test "$(plan h2 1.1.0 "' '.join(h['name'] for h in d['hosts'])")" = "h3 h1 h2"
check "hvpeer plan: a 60 min cycle fits no window of 11 min" test "$(plan h2 1.1.0 "[h['start_ms'] for h in d['hosts']]")" = "[0, 0, 0]"
out=$(hv h1 plan 1.1.0 2>&1)
echo "$out" | sed 's/^/#   /'
check "hvpeer plan prints the table, saying that no window fits" grep -q "no window fits" <<<"$out"
out=$(hv h1 patch submit "$T/os.tar" 2>&1) || nok "patch submit" "$out"
if wait_for 10 logged "h3 waits for a maintenance window of 60 min"; then
	ok "the leader holds h3 back: the window closes before a 60 min cycle could end"
else
	nok "the leader says why h3 waits" "$(grep -h rollout: "$LAB"/h*/hvpeerd.log | tail -n 3)"
fi
sleep 2
check "nobody holds the lease, every host waits" test "$(holders)/$(phase_of h1)$(phase_of h2)$(phase_of h3)" = "/wait-leasewait-leasewait-lease"

# ---- 2. the canary, its soak, the others --------------------------------------
out=$(hv h3 policy set cycle-estimate 60 2>&1) || nok "policy set cycle-estimate 60" "$out"
if wait_for 60 phase_is h3 done; then ok "the canary h3 went first, alone, and is done"; else nok "the canary h3 is done" "$(hv h2 patch status 2>&1)"; fi
soaking() { test "$(state "d['rollout']['soak_until_ms'] > 0 and len(d['lease']['holders']) == 0")" = True; }
check "the others wait for the canary's soak" soaking
check "h1 and h2 still wait" test "$(phase_of h1)$(phase_of h2)" = wait-leasewait-lease
if wait_for 90 rollout_over; then ok "after the soak h1 and h2 followed: the rollout finished"; else nok "the rollout finished" "$(hv h2 patch status 2>&1)"; fi
order=$(state "' '.join(h['name'] for h in sorted(d['rollout']['hosts'], key=lambda h: h['start_ms']))")
check "the order was h3 (canary), h1, h2: $order" test "$order" = "h3 h1 h2"
starts=$(state "[h['start_ms'] for h in sorted(d['rollout']['hosts'], key=lambda h: h['start_ms'])]")
ends=$(state "{h['name']: h['end_ms'] for h in d['rollout']['hosts']}")
gap=$(python3 -c "s=$starts; e=$ends; print((s[1] - e['h3']) // 1000)")
check "h1 started at least the 5 s soak after the canary ended (${gap} s)" test "$gap" -ge 5
check "each was let go by the leader's gate" sh -c 'grep -h "rollout: letting h[123] go" "$1"/h*/hvpeerd.log | grep -c . | grep -qx 3' _ "$LAB"
check "every host runs 1.1.0" test "$(state "sorted(set(m['version'] for m in d['members']))")" = "['1.1.0']"
hooks=$(tr '\n' ';' <"$T/hooks.log")
check "the hooks ran in order, the rollout's once: $hooks" test "$hooks" = "rollout-start-hook h3 1.1.0;pre-maintenance-hook h3 1.1.0;post-maintenance-hook h3 1.1.0;pre-maintenance-hook h1 1.1.0;post-maintenance-hook h1 1.1.0;pre-maintenance-hook h2 1.1.0;post-maintenance-hook h2 1.1.0;rollout-end-hook h2 1.1.0;"

# ---- 3. a downtime budget -----------------------------------------------------------
out=$(hv h1 policy set window "" 2>&1) || nok "policy set window ''" "$out"
out=$(hv h1 policy set downtime-budget 1 2>&1) || nok "policy set downtime-budget 1" "$out"
lab guest add h1 --name web1 --mem 96 >/dev/null || nok "guest web1 boots on h1"
guests_on_h1() { test "$(state "[len(m['guests']) for m in d['members'] if m['name']=='h1'][0]")" = 1; }
wait_for 20 guests_on_h1
moves=$(plan h3 9.9.9 "[(m['guest'], m['action'], m['target'] in ('h2', 'h3')) for h in d['hosts'] if h['name']=='h1' for m in h['moves']]")
check "hvpeer plan: h1's evacuation would live-migrate web1 to h2 or h3: $moves" test "$moves" = "[('web1', 'migrate', True)]"
out=$(hv h1 maintenance enter 2>&1)
reason=$(state "d['pause']['reason']")
check "a guest stunned over the 1 ms budget stopped the line: $reason" \
	grep -q "guest web1 was stunned [0-9]* ms by its live migration, over the downtime budget of 1 ms" <<<"$reason"
check "paused by the policy" test "$(state "d['pause']['by']")" = policy

# ---- 4. pre-checks: clock skew, disk space ----------------------------------------
restart_hvpeerd() { kill "$(lab pid "$1" hvpeerd)" 2>/dev/null; sleep 1; wait_for 20 hv "$1" status; }
out=$(hv h1 policy set downtime-budget "" 2>&1) && out=$(hv h1 policy set canary "" 2>&1) &&
	out=$(hv h1 policy set soak "" 2>&1) || nok "policies reset" "$out"
hv h1 resume >/dev/null 2>&1
out=$(hv h1 maintenance exit 2>&1) || nok "maintenance exit h1" "$out"
echo "--test-clock-skew 400" >"$LAB/h2/hvpeerd.flags"
echo "--bundle-dir $T/small" >"$LAB/h3/hvpeerd.flags"
restart_hvpeerd h2 && restart_hvpeerd h3
head -c 8388608 /dev/urandom >"$T/big.img"
mkbundle 1.2.0 "$T/os2.tar" "$T/big.img"
out=$(hv h1 patch submit "$T/os2.tar" 2>&1) || nok "patch submit 1.2.0 (8 MiB)" "$out"
if wait_for 60 paused; then ok "a skewed clock stopped the line"; else nok "a skewed clock stopped the line" "$(hv h1 patch status 2>&1)"; fi
reason=$(state "d['pause']['reason']")
check "the reason names the peer, the skew and the limit: $reason" grep -q "the clock of h2 is \(39[0-9]\|4[0-9][0-9]\) s ahead of this host's, over the 300 s limit" <<<"$reason"
check "nothing moved: h1 never entered maintenance" test "$(state "[m['maintenance'] for m in d['members'] if m['name']=='h1'][0]")" = none
rm -f "$LAB/h2/hvpeerd.flags"
restart_hvpeerd h2
hv h1 resume >/dev/null 2>&1
if wait_for 90 phase_is h3 paused; then ok "clock fixed, resumed: h1 and h2 patched, h3 stopped"; else nok "h3 stopped at its pre-check" "$(hv h1 patch status 2>&1)"; fi
reason=$(state "d['pause']['reason']")
check "the reason is the disk space to stage, before anything moved: $reason" grep -q "not enough disk space to stage the patch: $T/small has [0-9]* MiB free" <<<"$reason"
mount -o remount,size=64m "$T/small"
hv h1 resume >/dev/null 2>&1
if wait_for 90 rollout_over; then ok "space made, resumed: the rollout of 1.2.0 finished"; else nok "the rollout of 1.2.0 finished" "$(hv h1 patch status 2>&1)"; fi
check "every host runs 1.2.0" test "$(state "sorted(set(m['version'] for m in d['members']))")" = "['1.2.0']"

# ---- 5. a failing hook --------------------------------------------------------------
: >"$T/fail-pre"
mkbundle 1.3.0 "$T/os3.tar" "$T/os.img"
out=$(hv h2 patch submit "$T/os3.tar" 2>&1) || nok "patch submit 1.3.0" "$out"
if wait_for 60 paused; then ok "a failing pre-maintenance hook stopped the line"; else nok "a failing hook stopped the line" "$(hv h1 patch status 2>&1)"; fi
reason=$(state "d['pause']['reason']")
check "the reason carries the hook's words: $reason" grep -q "pre-maintenance-hook exited 1: storage: cannot set noout" <<<"$reason"
check "nothing moved: h1 is not in maintenance, does not hold the lease" test "$(state "[m['maintenance'] for m in d['members'] if m['name']=='h1'][0]")/$(holders)" = none/
rm -f "$T/fail-pre"
hv h1 resume >/dev/null 2>&1
if wait_for 90 rollout_over; then ok "hook fixed, resumed: the rollout of 1.3.0 finished"; else nok "the rollout of 1.3.0 finished" "$(hv h1 patch status 2>&1)"; fi

# ---- 6. the quorum guard: 3 voters cannot spare one ---------------------------------
out=$(hv h1 policy set quorum-guard on 2>&1) || nok "policy set quorum-guard on" "$out"
mkbundle 1.4.0 "$T/os4.tar" "$T/os.img"
out=$(hv h3 patch submit "$T/os4.tar" 2>&1) || nok "patch submit 1.4.0" "$out"
if wait_for 10 logged "h1 waits: with it down, 2 of 3 voters would be up, one failure from losing quorum"; then
	ok "the quorum guard holds h1 back: 2 of 3 voters left would be one failure from losing quorum"
else
	nok "the quorum guard holds h1 back" "$(grep -h rollout: "$LAB"/h*/hvpeerd.log | tail -n 3)"
fi
check "nobody holds the lease" test -z "$(holders)"
out=$(hv h3 policy set quorum-guard off 2>&1) || nok "policy set quorum-guard off" "$out"
if wait_for 90 rollout_over; then ok "guard off: the rollout of 1.4.0 finished"; else nok "the rollout of 1.4.0 finished" "$(hv h1 patch status 2>&1)"; fi

# ---- 7. a failed pre-check retried, not stopping the line ----------------------------
out=$(hv h1 policy set max-retries 2 2>&1) && out=$(hv h1 policy set retry-delay 3 2>&1) || nok "policy set max-retries, retry-delay" "$out"
echo "--test-clock-skew 400" >"$LAB/h2/hvpeerd.flags"
restart_hvpeerd h2
mkbundle 1.5.0 "$T/os5.tar" "$T/os.img"
out=$(hv h3 patch submit "$T/os5.tar" 2>&1) || nok "patch submit 1.5.0" "$out"
if wait_for 30 logged "h1 retries its pre-check at"; then ok "h1's pre-check failed (h2's clock): retried after the delay, the line not stopped"; else nok "h1's pre-check is retried" "$(grep -h rollout: "$LAB"/h*/hvpeerd.log | tail -n 3)"; fi
check "not paused while a retry is due" test "$(state "d['pause']['paused']")" = False
rm -f "$LAB/h2/hvpeerd.flags"
restart_hvpeerd h2
if wait_for 90 rollout_over; then ok "clock fixed before the retries ran out: the rollout of 1.5.0 finished"; else nok "the rollout of 1.5.0 finished" "$(hv h1 patch status 2>&1)"; fi
check "never paused; h1 needed a retry or two" test "$(state "d['pause']['paused'], [h['retries'] > 0 for h in d['rollout']['hosts'] if h['name']=='h1'][0]")" = "False True"

# ---- 8. jumbo frames that do not pass (the lab's links have MTU 1500) ----------------
if command -v ping >/dev/null; then
	echo "--migration-mtu 9000" >"$LAB/h1/hvpeerd.flags"
	restart_hvpeerd h1
	mkbundle 1.6.0 "$T/os6.tar" "$T/os.img"
	out=$(hv h3 patch submit "$T/os6.tar" 2>&1) || nok "patch submit 1.6.0" "$out"
	if wait_for 60 paused; then ok "a too-small MTU on the path stopped the line"; else nok "a too-small MTU stopped the line" "$(hv h1 patch status 2>&1)"; fi
	reason=$(state "d['pause']['reason']")
	check "the reason: 9000-byte packets do not reach, 1500-byte ones do: $reason" \
		grep -q "packets of 9000 bytes (migration-mtu) do not reach h[23] (10.77.0.1[23]) unfragmented, 1500-byte ones do" <<<"$reason"
	rm -f "$LAB/h1/hvpeerd.flags"
	restart_hvpeerd h1
	hv h1 resume >/dev/null 2>&1
	if wait_for 90 rollout_over; then ok "MTU check off, resumed: the rollout of 1.6.0 finished"; else nok "the rollout of 1.6.0 finished" "$(hv h1 patch status 2>&1)"; fi
else
	ok "# SKIP no ping here (package iputils-ping): the MTU pre-check is not tried"
fi

# ---- 9. a guest whose CPU no other host can run ---------------------------------------
out=$(hv h1 policy set max-retries "" 2>&1) || nok "policy set max-retries ''" "$out"
lab guest add h1 --name cpuhog --mem 96 --cpu-feature avx512f >/dev/null || nok "guest cpuhog boots on h1"
cpuhog_known() { test "$(state "[g['name'] for m in d['members'] if m['name']=='h1' for g in m['guests']]")" = "['cpuhog']"; }
wait_for 20 cpuhog_known
mkbundle 1.7.0 "$T/os7.tar" "$T/os.img"
out=$(hv h3 patch submit "$T/os7.tar" 2>&1) || nok "patch submit 1.7.0" "$out"
if wait_for 60 paused; then ok "a guest CPU the targets cannot run stopped the line"; else nok "an incompatible guest CPU stopped the line" "$(hv h1 patch status 2>&1)"; fi
reason=$(state "d['pause']['reason']")
check "the reason: Incompatible CPU flags, the guest, the target, libvirt's words: $reason" \
	grep -q "Incompatible CPU flags: guest cpuhog cannot run on h[23]: .*avx512f" <<<"$reason"
check "nothing moved: cpuhog still runs on h1" test "$(lab guest heartbeat cpuhog | awk '{print $2}')" = h1

# ---- the daemons stayed clean (sanitizer builds report here) ---------------------
no_sanitizer_reports
