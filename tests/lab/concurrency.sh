#!/usr/bin/env bash
# Concurrency and failure thresholds in the lab (5 real hvpeerds on 5 real
# libvirt hosts, all voters):
#   1. max-concurrent 2 with the quorum guard on: with 5 voters, two hosts
#      down would leave 3, one failure from losing quorum: the leader keeps
#      the second host waiting and says why;
#   2. guard off: a second host starts beside the first once the leader's
#      capacity plan admits it (the first host's evacuation is planned, it
#      put no guest on the second, whose guests fit on hosts holding no
#      lease); two hosts hold the lease at once, a guest keeps running, the
#      rollout ends with every host patched;
#   3. max-failed-hosts 1: a host whose pre-check fails (its
#      pre-maintenance hook) is left failed and the line goes on; the
#      rollout ends "4 patched, 1 failed", never paused;
#   4. a hardware compatibility list without the hosts' RAID controller for
#      the version: the first host's pre-check stops the line, naming the
#      part; with the part added, resumed, the rollout ends;
#   5. a peer down (h5's hvpeerd stopped), with max-failed-hosts 1: h1
#      (precheck-peers all, the default) fails its pre-check naming h5, and
#      the line goes on; h2-h4 (precheck-peers up, from their reboots in
#      section 4) patch without h5; h5's own turn comes while it is down:
#      the leader fails its pre-check for it (a lease is not held for ever),
#      the second failure stops the line; back and resumed, h5 patches.
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 77 when it
# cannot run here (not root, lab packages missing, a lab already up).
set -u
. "$(dirname "$0")/lib.sh"
HVPEER=$HVPEER_BUILDDIR/hvpeer
T=$(mktemp -d /tmp/hvpeer-conc.XXXXXX)
FINISH_HOSTS="h1 h2 h3 h4 h5"
finish_extra() { rm -f "$LAB"/h*/hvpeerd.flags "$LAB"/h*/hvpeerd.stop 2>/dev/null; rm -rf "$T"; }
mkbundle() { signed_bundle "$T/ops.key" "$@"; } # VERSION OUT PAYLOAD
# hva ARGS...: hvpeer on the first host that answers (one may be rebooting).
hva() {
	local h out
	for h in h5 h4 h3 h2 h1; do
		out=$(hv $h "$@" 2>&1) && { echo "$out"; return 0; }
	done
	echo "$out"
	return 1
}
two_holders() { test "$(state "len(d['lease']['holders'])")" = 2; }

# The pre-maintenance hook fails on h4 while $T/fail-h4 exists.
cat >"$T/hook.sh" <<HOOK
#!/bin/sh
[ "\$HVPEER_HOST" = h4 ] && [ -e "$T/fail-h4" ] && { echo "h4: RAID controller degraded"; exit 1; }
exit 0
HOOK
chmod +x "$T/hook.sh"
# Every host sees the same PCI tree: a RAID controller and a NIC; the HCL
# lists everything until section 4.
for d in 0000:3b:00.0:0x1000:0x005f:0x010400 0000:18:00.0:0x8086:0x1572:0x020000; do
	IFS=: read -r dom bus slot vendor device class <<<"$d"
	mkdir -p "$T/pci/$dom:$bus:$slot"
	echo "$vendor" >"$T/pci/$dom:$bus:$slot/vendor"
	echo "$device" >"$T/pci/$dom:$bus:$slot/device"
	echo "$class" >"$T/pci/$dom:$bus:$slot/class"
done
echo "* *:*  anything" >"$T/hcl"
export HVPEERD_FLAGS="--pre-maintenance-hook $T/hook.sh --hcl $T/hcl --hcl-sysfs $T/pci"
echo "# lab up: 5 hosts, all voters"
if ! lab up 5 --guest-memory 512 >"$T/up.log" 2>&1; then
	nok "lab up" "$(tail -n 5 "$T/up.log")"
	exit 1
fi
ok "lab up with 5 hosts"
"$HVPEER" bundle keygen "$T/ops.key" >/dev/null && cp "$T/ops.key.pub" "$LAB/keys/ops.pub"
echo "kernel and userland" >"$T/os.img"
mkbundle 1.1.0 "$T/os-1.1.0.tar" "$T/os.img" && mkbundle 1.2.0 "$T/os-1.2.0.tar" "$T/os.img" &&
	mkbundle 1.3.0 "$T/os-1.3.0.tar" "$T/os.img" && mkbundle 1.4.0 "$T/os-1.4.0.tar" "$T/os.img"
check "four signed bundles" test -s "$T/os-1.4.0.tar"
lab guest add h1 --name web1 --mem 96 >/dev/null || nok "guest web1 boots on h1"
has_guest() { test "$(state "[len(m['guests']) for m in d['members'] if m['name']=='h1'][0]")" = 1; }
wait_for 30 has_guest || nok "h1 reports web1"

# ---- 1. the quorum guard keeps a second host from going down -----------------------
out=$(hv h2 policy set max-concurrent 2 2>&1) && out=$(hv h2 policy set quorum-guard on 2>&1) ||
	nok "policy set max-concurrent 2, quorum-guard on" "$out"
out=$(hv h3 policy set max-concurrent 0 2>&1)
check "max-concurrent 0 is refused, saying why: $out" grep -q "max-concurrent: '0' is not 1-16" <<<"$out"
out=$(hv h1 policy show 2>&1)
check "policy show: 2 hosts at once" grep -q "concurrency: *2 hosts at once" <<<"$out"
out=$(hv h1 plan 1.1.0 2>&1)
check "hvpeer plan says up to 2 at a time" grep -q "up to 2 at a time" <<<"$out"
out=$(hv h1 patch submit "$T/os-1.1.0.tar" 2>&1) || nok "patch submit 1.1.0" "$out"
if wait_for 60 logged "waits: with it and the holders down, 3 of 5 voters would be up, one failure from losing quorum"; then
	ok "the leader keeps a second host waiting: 3 of 5 voters up would be one failure from losing quorum"
else
	nok "the quorum guard held a second host back" "$(grep -h 'rollout:' "$LAB"/h*/hvpeerd.log | tail -n 5)"
fi
check "one holder at a time meanwhile" test "$(state "len(d['lease']['holders']) <= 1")" = True

# ---- 2. guard off: two at once, admitted by the capacity plan --------------------
out=$(hva policy set quorum-guard off) || nok "policy set quorum-guard off" "$out"
if wait_for 120 two_holders; then
	ok "two hosts hold the lease at once: $(state "' '.join(h['name'] for h in d['lease']['holders'])")"
	check "the grant says so in the history" test "$(state "any('beside another holder' in e['text'] for e in d['events'])")" = True
else
	nok "two hosts held the lease at once" "$(grep -h 'rollout:' "$LAB"/h*/hvpeerd.log | tail -n 5)"
fi
check "the leader let it go on its capacity plan" logged "the capacity plan admits it beside"
check "before that, h2 waited: h1's plan put web1 on it (they would need each other)" logged "h1's guest web1 was placed on h2"
if wait_for 240 rollout_over; then ok "the rollout of 1.1.0 finished"; else nok "the rollout of 1.1.0 finished" "$(hv h2 patch status 2>&1)"; fi
check "every host runs 1.1.0" test "$(state "sorted(set(m['version'] for m in d['members']))")" = "['1.1.0']"
v=$(state "d['pause']['paused'], d['rollout']['failed']")
check "not paused, nobody failed: $v" test "$v" = "False 0"
check "web1 still runs (a heartbeat)" lab guest heartbeat web1

# ---- 3. max-failed-hosts: a failure the line goes on after -----------------------
out=$(hva policy set max-failed-hosts 1) || nok "policy set max-failed-hosts 1" "$out"
touch "$T/fail-h4"
out=$(hva patch submit "$T/os-1.2.0.tar") || nok "patch submit 1.2.0" "$out"
if wait_for 240 rollout_over; then ok "the rollout of 1.2.0 finished"; else nok "the rollout of 1.2.0 finished" "$(hv h2 patch status 2>&1)"; fi
check "never paused" test "$(state "d['pause']['paused']")" = False
check "h4 failed, the others run 1.2.0" test "$(state "sorted((m['name'], m['version']) for m in d['members'])")" = "[('h1', '1.2.0'), ('h2', '1.2.0'), ('h3', '1.2.0'), ('h4', '1.1.0'), ('h5', '1.2.0')]"
v=$(state "[(h['phase'], h['error']) for h in d['rollout']['hosts'] if h['name'] == 'h4'][0]")
check "h4 is failed, with its hook's words: $v" grep -q "'failed'.*RAID controller degraded" <<<"$v"
v=$(state "d['rollout']['done'], d['rollout']['failed']")
check "the rollout counts 4 patched, 1 failed: $v" test "$v" = "4 1"
# ---- 4. the hardware compatibility list --------------------------------------
rm -f "$T/fail-h4"
# h2-h4 start with precheck-peers up after their reboots in this section.
for h in h2 h3 h4; do echo "--precheck-peers up" >"$LAB/$h/hvpeerd.flags"; done
printf '%s\n' "# versions  vendor:device  what" "1.*  8086:1572  Intel X710" "1.2.*  1000:005f  MegaRAID (not yet for 1.3)" >"$T/hcl"
out=$(hva policy set max-failed-hosts 0) || nok "policy set max-failed-hosts 0" "$out"
out=$(hva patch submit "$T/os-1.3.0.tar") || nok "patch submit 1.3.0" "$out"
if wait_for 60 paused; then ok "a RAID controller not on the HCL for 1.3.0 stopped the line"; else nok "the HCL stopped the line" "$(hva patch status)"; fi
reason=$(state "d['pause']['reason']")
check "the reason names the part and the list: $reason" grep -q "RAID controller 0000:3b:00.0 (1000:005f, class 010400) is not on the hardware compatibility list for 1.3.0 ($T/hcl)" <<<"$reason"
check "nothing moved: h1 holds no lease, web1 still on h1" test "$(state "len(d['lease']['holders'])")/$(lab guest heartbeat web1 | awk '{print $2}')" = 0/h1
echo "1.3.*  1000:005f  MegaRAID, certified for 1.3" >>"$T/hcl"
out=$(hva resume) || nok "resume" "$out"
if wait_for 120 rollout_over; then ok "the part added, resumed: the rollout of 1.3.0 finished"; else nok "the rollout of 1.3.0 finished" "$(hva patch status)"; fi
check "every host runs 1.3.0" test "$(state "sorted(set(m['version'] for m in d['members']))")" = "['1.3.0']"

# ---- 5. a peer down: precheck-peers, a silent holder ------------------------
echo "* *:*  anything" >"$T/hcl"
out=$(hva policy set max-failed-hosts 1) || nok "policy set max-failed-hosts 1" "$out"
: >"$LAB/h5/hvpeerd.stop"
lab crash h5 >/dev/null 2>&1 && lab boot h5 >/dev/null 2>&1 # the host, without hvpeerd
sleep 9 # h5 silent longer than a pre-check's 3 report intervals + 5 s: down
out=$(hva patch submit "$T/os-1.4.0.tar") || nok "patch submit 1.4.0" "$out"
h4_done() { test "$(state "[h['phase'] for h in d['rollout']['hosts'] if h['name'] == 'h4'][0]")" = done; }
if wait_for 120 h4_done; then ok "h2-h4 (precheck-peers up) patched while h5 is down"; else nok "h2-h4 patched with h5 down" "$(hva patch status)"; fi
v=$(state "[h['error'] for h in d['rollout']['hosts'] if h['name'] == 'h1'][0]")
check "h1 (precheck-peers all) failed its pre-check, naming h5: $v" grep -q "pre-check: peer h5 \(has not reported\|does not answer\)" <<<"$v"
if wait_for 60 paused; then ok "h5's turn while it is down: the line stopped"; else nok "the line stopped on h5" "$(hva patch status)"; fi
reason=$(state "d['pause']['reason']")
check "the leader failed h5's pre-check for it: $reason" grep -q "h5 did not start it: it has not reported for" <<<"$reason"
check "h5 holds no lease" test "$(state "len(d['lease']['holders'])")" = 0
rm -f "$LAB/h5/hvpeerd.stop"
lab crash h5 >/dev/null 2>&1 && lab boot h5 >/dev/null 2>&1
wait_for 30 answers h5 || nok "hvpeerd on h5 is back"
out=$(hva resume) || nok "resume" "$out"
if wait_for 120 rollout_over; then ok "h5 back, resumed: it patched too, the rollout of 1.4.0 finished"; else nok "the rollout of 1.4.0 finished" "$(hva patch status)"; fi
check "h1 stays on 1.3.0, the others run 1.4.0" test "$(state "sorted((m['name'], m['version']) for m in d['members'])")" = "[('h1', '1.3.0'), ('h2', '1.4.0'), ('h3', '1.4.0'), ('h4', '1.4.0'), ('h5', '1.4.0')]"
no_sanitizer_reports
