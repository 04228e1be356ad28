#!/usr/bin/env bash
# Network, clock and disk faults during rolling patches in the lab (3 real
# hvpeerds on 3 real libvirt hosts, dirbank boot banks), the rest of the
# fault suite (tests/lab/faults.sh has the crashes). Each scenario ends with
# the invariants (tests/lab/invariants.sh) and a verdict line.
#   rollout 1.1.0, partitions (a host's veth on the lab bridge set down):
#   1. partition-holder: h1, the lease holder and the Raft leader, cut off
#      from the other hosts in apply, drained, for longer than elections
#      take: the others elect a leader and keep h1's lease (no second
#      holder, nobody else moves); healed, h1 finishes its cycle under the
#      same token;
#   2. partition-leader: the Raft leader, not the holder (h2, held in
#      stage), cut off: the others elect a new leader, h2 stages and applies
#      under it; the old leader holds nothing; healed, it follows again and
#      h2 finishes;
#   3. flapping-link: h3's link down 1 s and up 1.5 s, 6 times, from its
#      pre-check on: the line goes on or stops cleanly (then the operator
#      resumes, as the operations guide says); the rollout ends with every
#      host on 1.1.0;
#   rollout 1.2.0, every hvpeerd under libfaketime (lab hvpeerd.env):
#   4. clock-jump: a host that is neither holder nor leader has its wall
#      clock jump 40 minutes ahead, then 40 minutes back: h1's pre-check
#      refuses each time with the clock-skew message, gives the lease back
#      and stops the line; the host keeps reporting; 2 minutes ahead (within
#      max-clock-skew) h1's pre-check passes;
#   5. disk-full-data: h3's data dir (Raft log) on a 16 MiB tmpfs, filled up
#      while h1 patches: h1's cycle goes on (h2 and h3 still commit), h3's
#      log says its data dir is full, a restart of h3's hvpeerd is refused
#      with "not enough space"; space freed, h3 starts again and catches up
#      with the same state as the others;
#   6. disk-full-staging: h2's staging dir (DATA_DIR/staging) full when h2
#      stages: the line stops with the reason, h2 keeps its phase and lease,
#      nothing reaches its boot bank, the patch is not quarantined; space
#      freed and resumed (operations guide, section 5), the rollout ends
#      with every host on 1.2.0;
#   rollout 1.3.0, a canary and a 40 s soak:
#   7. leader-clock-jump: once the canary is done, the leader's wall clock
#      jumps an hour ahead: the soak is not cut short (no host is let go
#      before it ends; the leader logs the jump), and with the clock back
#      the rollout ends with every host on 1.3.0.
# Output: "ok N - ..." lines, "# verdict: ..." lines, then "N passed, M
# failed". Exit 77 when it cannot run here (not root, lab packages or
# libfaketime missing, a lab already up).
set -u
FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ "$(id -u)" = 0 ] && [ ! -e "$FAKETIME_LIB" ]; then
	echo "1..0 # SKIP missing faketime (libfaketime; scripts/setup.sh installs it)"
	exit 77
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/invariants.sh"
T=$(mktemp -d /tmp/hvpeer-faults-net.XXXXXX)
chmod 755 "$T"
finish_extra() {
	inv_stop
	for n in 1 2 3; do ip link set "hvlabv$n" up 2>/dev/null; done
	rm -rf "$T" "$INV_DIR"
}

holders() { state "[h['name'] for h in d['lease']['holders']]"; }
# cut HOST / heal HOST: its veth on the lab bridge down / up (every peer,
# the BMCs and the migration network are behind it)
cut() { ip link set "hvlabv${1#h}" down; }
heal() { ip link set "hvlabv${1#h}" up; }
# in_host HOST CMD...: CMD in HOST's mount namespace (its private mounts)
in_host() { local h=$1; shift; nsenter -t "$(lab pid "$h" init)" -m "$@"; }
# make_leader HOST: kill -9 the leader's hvpeerd until HOST leads (bounded)
make_leader() {
	local l
	for _ in 1 2 3 4 5 6 7 8; do
		l=$(leader) || return 1
		[ "$l" = "$1" ] && return 0
		kill -9 "$(hvpeerd_pid "$l")" 2>/dev/null
		sleep 1
		wait_for 20 answers "$l"
	done
	test "$(leader)" = "$1"
}
# away_from HOST: kill -9 HOST's hvpeerd until another host leads (bounded)
away_from() {
	for _ in 1 2 3 4; do
		leader_not "$1" && return 0
		kill -9 "$(hvpeerd_pid "$1")" 2>/dev/null
		sleep 1
		wait_for 20 answers "$1"
	done
	leader_not "$1"
}

echo "# lab up: 3 hosts, 512 MiB for guests each"
if ! lab up 3 --guest-memory 512 >"$T/up.log" 2>&1; then
	nok "lab up" "$(tail -n 5 "$T/up.log")"
	exit 1
fi
ok "lab up with 3 hosts"
# Breakpoints (--test-hold-dir) and a wall clock of its own (libfaketime,
# an offset in $T/clock-hN read again every second; monotonic time is left
# alone) for every host.
for h in h1 h2 h3; do
	mkdir -p "$T/hold-$h"
	echo "--test-hold-dir $T/hold-$h" >"$LAB/$h/hvpeerd.flags"
	echo "+0" >"$T/clock-$h"
	printf '%s\n' "LD_PRELOAD=$FAKETIME_LIB" "FAKETIME_TIMESTAMP_FILE=$T/clock-$h" \
		FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0 \
		ASAN_OPTIONS=verify_asan_link_order=0 >"$LAB/$h/hvpeerd.env"
done
for h in h1 h2 h3; do kill -9 "$(hvpeerd_pid $h)" 2>/dev/null; done
sleep 1
for h in h1 h2 h3; do wait_for 30 answers $h || nok "hvpeerd on $h came back with its flags"; done
faked() { local h; for h in h1 h2 h3; do tr '\0' '\n' <"/proc/$(hvpeerd_pid $h)/environ" | grep -q "^LD_PRELOAD=.*faketime" || return 1; done; }
check "hvpeerd runs under libfaketime on every host" faked

"$HVPEER_BUILDDIR/hvpeer" bundle keygen "$T/ops.key" >/dev/null && cp "$T/ops.key.pub" "$LAB/keys/ops.pub"
echo "kernel and userland" >"$T/os.img"
signed_bundle "$T/ops.key" 1.1.0 "$T/os-1.1.0.tar" "$T/os.img" && signed_bundle "$T/ops.key" 1.2.0 "$T/os-1.2.0.tar" "$T/os.img" &&
	signed_bundle "$T/ops.key" 1.3.0 "$T/os-1.3.0.tar" "$T/os.img"
check "bundles 1.1.0, 1.2.0 and 1.3.0 made and signed" test -s "$T/os-1.3.0.tar"
lab guest add h1 --name web1 --mem 96 >/dev/null && lab guest add h2 --name db1 --mem 96 >/dev/null
check "two guests boot: web1 on h1, db1 on h2" wait_for 30 guests_reported "['db1', 'web1']"
if make_leader h1; then ok "h1 leads the cluster"; else nok "h1 leads the cluster" "the leader is $(leader)"; fi
inv_start

# ---- 1. the lease holder (also the leader) cut off mid-cycle ----------------------
scenario partition-holder
t0=$(date +%s)
: >"$T/hold-h1/apply"
: >"$T/hold-h2/stage"
: >"$T/hold-h2/reboot"
: >"$T/hold-h3/precheck"
out=$(hv h2 patch submit "$T/os-1.1.0.tar" 2>&1) || nok "patch submit 1.1.0" "$out"
if wait_for 90 phase_or_stop h1 apply && phase_is h1 apply; then ok "h1 reached apply (held), drained"; else nok "h1 reached apply" "phase $(phase_of h1)"; fi
tok=$(token_of h1)
was=$(leader)
cut h1
echo "# h1 cut off in apply with token $tok; the leader was $was"
rm -f "$T/hold-h1/apply"
if wait_for 15 leader_not h1; then ok "h2 and h3 elected a leader without h1: $(leader)"; else nok "a leader without h1" "$(leader)"; fi
check "h1 sees no quorum" wait_for 15 no_quorum h1
sleep 4 # longer than elections and the silent holder's grace
check "h1 keeps its lease (token $tok), nobody else holds one or moved: $(holders)" \
	test "$(state "[(h['name'], h['token']) for h in d['lease']['holders']], sorted(h['phase'] for h in d['rollout']['hosts'] if h['name'] != 'h1')")" = "[('h1', $tok)] ['wait-lease', 'wait-lease']"
check "h1 is still in apply, the line not stopped" test "$(phase_of h1)/$(state "d['pause']['paused']")" = apply/False
l=$(loglines h1)
heal h1
echo "# healed after $(elapsed "$t0") s"
check "h1 sees quorum again" wait_for 20 answers h1
if wait_for 90 phase_is h1 "done"; then ok "h1 finished its cycle on 1.1.0"; else nok "h1 finished its cycle" "phase $(phase_of h1); $(tail -n 5 "$LAB/h1/hvpeerd.log")"; fi
check "h1 finished under the token it had before the partition ($tok)" \
	test "$(state "any('lease released by h1 (token $tok)' in e['text'] for e in d['events'])")" = True
invariants_check --no-heal
inv_refusals | sed "s/^/#   fence refused: /"
echo "#   ($(elapsed "$t0") s)"
verdict partition-holder

# ---- 2. the leader cut off, not the holder ---------------------------------------
scenario partition-leader
t0=$(date +%s)
if wait_for 60 phase_is h2 stage; then ok "h2 reached stage (held)"; else nok "h2 reached stage" "phase $(phase_of h2)"; fi
away_from h2 || nok "a leader other than h2" "$(leader)"
L=$(leader)
tok=$(token_of h2)
cut "$L"
echo "# the leader $L cut off; h2 holds token $tok in stage"
if wait_for 15 leader_not "$L"; then ok "a new leader without $L: $(leader)"; else nok "a new leader without $L" "$(leader)"; fi
rm -f "$T/hold-h2/stage"
if wait_for 60 phase_is h2 reboot; then ok "h2 staged and applied under the new leader (now in reboot, held)"; else nok "h2 went on under the new leader" "phase $(phase_of h2)"; fi
check "the old leader $L sees no quorum: $(own "$L" "d['quorum'], d['leader']")" no_quorum "$L"
check "h2 keeps token $tok, the only holder" test "$(state "[(h['name'], h['token']) for h in d['lease']['holders']]")" = "[('h2', $tok)]"
heal "$L"
echo "# healed after $(elapsed "$t0") s"
caught_up() { local a c; a=$(own "$L" "d['applied_index'] if d['quorum'] else -1") && c=$(state "d['commit_index']") && test "$a" -ge "$((c - 5))"; }
check "$L follows again and caught up with the log" wait_for 30 caught_up
rm -f "$T/hold-h2/reboot"
if wait_for 90 phase_is h2 "done"; then ok "h2 finished its cycle on 1.1.0"; else nok "h2 finished its cycle" "phase $(phase_of h2)"; fi
invariants_check --no-heal
inv_refusals | sed "s/^/#   fence refused: /"
echo "#   ($(elapsed "$t0") s)"
verdict partition-leader

# ---- 3. a flapping link during h3's cycle ------------------------------------------
scenario flapping-link
t0=$(date +%s)
if wait_for 60 phase_or_stop h3 precheck && phase_is h3 precheck; then ok "h3 holds the lease in precheck"; else nok "h3 reached precheck" "phase $(phase_of h3)"; fi
term0=$(state "d['term'], d['leader']['name']")
for _ in 1 2 3 4 5 6; do
	cut h3
	rm -f "$T/hold-h3/precheck"
	sleep 1
	heal h3
	sleep 1.5
done
echo "# h3's link went down 6 times ($(elapsed "$t0") s); (term, leader): ($term0) -> ($(state "d['term'], d['leader']['name']"))"
check "h3 answers with quorum after the flapping" wait_for 20 answers h3
over_or_stop() { rollout_over || paused; }
wait_for 120 over_or_stop
if paused; then
	ok "the line stopped cleanly: $(state "d['pause']['reason']")"
	out=$(hv h1 resume 2>&1) || nok "resume" "$out"
else
	ok "the line went on through the flapping"
fi
if wait_for 120 rollout_over; then ok "the rollout of 1.1.0 finished"; else nok "the rollout of 1.1.0 finished" "$(hv h1 patch status 2>&1 | tail -n 5)"; fi
invariants_check --version 1.1.0 --guests "web1 db1"
inv_refusals | sed "s/^/#   fence refused: /"
echo "#   ($(elapsed "$t0") s)"
verdict flapping-link

# ---- 4. a host's wall clock jumps ---------------------------------------------------
scenario clock-jump
t0=$(date +%s)
: >"$T/hold-h1/precheck"
: >"$T/hold-h1/evacuate"
: >"$T/hold-h2/precheck" # (until h3's disk is sorted out)
: >"$T/hold-h2/stage"
out=$(hv h2 patch submit "$T/os-1.2.0.tar" 2>&1) || nok "patch submit 1.2.0" "$out"
if wait_for 60 phase_is h1 precheck; then ok "h1 holds the lease in precheck (held)"; else nok "h1 reached precheck" "phase $(phase_of h1)"; fi
S=h3
[ "$(leader)" = h3 ] && S=h2
[ "$(leader)" = "$S" ] && nok "a host neither holder nor leader" "$(leader)"
reports_since() { # HOST T_MS: HOST reported after T_MS (its report's time, by the leader's clock)
	test "$(state "[m['last_report_ms'] for m in d['members'] if m['name']=='$1'][0] > $2")" = True
}
# pre-check, h1 holding, SKEW: the line stops with the clock message
skewed_precheck() { # OFFSET WORD
	local reason now
	echo "$1" >"$T/clock-$S"
	sleep 2 # libfaketime reads the offset again every second
	rm -f "$T/hold-h1/precheck"
	if wait_for 60 paused; then
		reason=$(state "d['pause']['reason']")
		check "$S's clock $1: h1's pre-check refused it: $reason" \
			grep -Eq "the clock of $S is 2[34][0-9][0-9] s $2 this host's, over the 300 s limit \(max-clock-skew\)" <<<"$reason"
	else
		nok "$S's clock $1: the line stopped" "phase $(phase_of h1); $(state "d['pause']")"
	fi
	check "h1 gave the lease back, nothing moved: $(state "d['lease']['holders'], [m['maintenance'] for m in d['members']]")" \
		test "$(state "len(d['lease']['holders']), sorted(set(m['maintenance'] for m in d['members']))")" = "0 ['none']"
	now=$(date +%s%3N)
	check "$S's clock $1: it keeps reporting" wait_for 10 reports_since "$S" "$now"
	: >"$T/hold-h1/precheck"
	out=$(hv h2 resume 2>&1) || nok "resume" "$out"
	wait_for 30 phase_is h1 precheck || nok "h1 back in precheck" "phase $(phase_of h1)"
}
skewed_precheck +40m "ahead of"
skewed_precheck -40m "behind"
echo "+2m" >"$T/clock-$S"
sleep 2
rm -f "$T/hold-h1/precheck"
if wait_for 60 phase_or_stop h1 evacuate && phase_is h1 evacuate; then ok "$S's clock 2 minutes ahead (within max-clock-skew): h1's pre-check passed"; else nok "h1's pre-check passed with $S 2 minutes ahead" "$(state "d['pause']")"; fi
echo "+0" >"$T/clock-$S"
sleep 2
invariants_check --no-heal
echo "#   ($(elapsed "$t0") s)"
verdict clock-jump

# ---- 5. h3's data dir full ------------------------------------------------------------
scenario disk-full-data
t0=$(date +%s)
D=$LAB/h3/hvpeer
# h3's data dir moves to a 16 MiB tmpfs in h3's own mount namespace (the
# daemon stopped meanwhile), with a Raft snapshot every 16 entries: the
# write that meets the full disk first
: >"$LAB/h3/hvpeerd.stop"
kill -9 "$(hvpeerd_pid h3)" 2>/dev/null
wait_for 10 no_hvpeerd h3 || nok "h3's hvpeerd stopped"
echo "--snapshot-threshold 16" >>"$LAB/h3/hvpeerd.flags"
in_host h3 sh -c "mkdir -p /run/hvfull && mount -t tmpfs -o size=16m hvfull /run/hvfull && cp -a '$D/.' /run/hvfull/ && mount --bind /run/hvfull '$D'" ||
	nok "h3's data dir on a tmpfs"
rm -f "$LAB/h3/hvpeerd.stop"
check "h3's hvpeerd runs on its tmpfs data dir" wait_for 30 answers h3
P3=$(hvpeerd_pid h3)
l=$(loglines h3)
if in_host h3 sh -c "dd if=/dev/zero of='$D/fill' bs=64k 2>/dev/null; test \$(stat -f -c %a '$D') = 0"; then
	ok "h3's data dir filled up"
else
	nok "h3's data dir filled up"
fi
rm -f "$T/hold-h1/evacuate"
if wait_for 120 phase_is h1 "done"; then ok "h1 patched while h3's data dir was full"; else nok "h1 patched while h3's data dir was full" "phase $(phase_of h1)"; fi
check "h3's hvpeerd kept running (pid $P3)" test "$(hvpeerd_pid h3)" = "$P3"
if wait_for 10 logged_since h3 "$l" "data dir .* is full"; then
	ok "h3's log says it: $(tail -n +"$((l + 1))" "$LAB/h3/hvpeerd.log" | grep -o "data dir .* is full.*" | head -n 1)"
else
	nok "h3's log says its data dir is full" "$(tail -n +"$((l + 1))" "$LAB/h3/hvpeerd.log" | tail -n 5)"
fi
l=$(loglines h3)
kill -9 "$P3"
if wait_for 15 logged_since h3 "$l" "not enough space"; then
	ok "restarted on the full disk, h3's hvpeerd refuses to start: $(tail -n +"$((l + 1))" "$LAB/h3/hvpeerd.log" | grep -m 1 "not enough space")"
else
	nok "h3's hvpeerd refuses to start on the full disk" "$(tail -n +"$((l + 1))" "$LAB/h3/hvpeerd.log" | tail -n 3)"
fi
c0=$(state "d['commit_index']")
commits_go_on() { local c; c=$(state "d['commit_index']") && test "$c" -gt "$c0"; }
check "h1 and h2 keep the cluster going (leader $(leader), commit index past $c0)" wait_for 10 commits_go_on
in_host h3 rm -f "$D/fill"
check "space freed: h3's hvpeerd is back with quorum" wait_for 30 answers h3
h3_caught_up() { local a c; a=$(own h3 "d['applied_index']") && c=$(state "d['commit_index']") && test "$a" -ge $((c - 5)); }
check "h3 caught up with the log" wait_for 30 h3_caught_up
same_state() { test "$(own h3 "[(m['name'], m['version']) for m in d['members']], [(h['name'], h['phase']) for h in d['rollout']['hosts']], d['lease']['last_token']")" = "$(state "[(m['name'], m['version']) for m in d['members']], [(h['name'], h['phase']) for h in d['rollout']['hosts']], d['lease']['last_token']")"; }
check "h3's replica holds the same state as the others" wait_for 10 same_state
# back to its disk
: >"$LAB/h3/hvpeerd.stop"
kill -9 "$(hvpeerd_pid h3)" 2>/dev/null
wait_for 10 no_hvpeerd h3
sed -i '/--snapshot-threshold/d' "$LAB/h3/hvpeerd.flags"
in_host h3 sh -c "umount '$D' && find '$D' -mindepth 1 -delete && cp -a /run/hvfull/. '$D/' && umount /run/hvfull" || nok "h3's data dir back on disk"
rm -f "$LAB/h3/hvpeerd.stop"
check "h3's hvpeerd is back on its disk" wait_for 30 answers h3
invariants_check --no-heal
echo "#   ($(elapsed "$t0") s)"
verdict disk-full-data

# ---- 6. h2's staging dir full ----------------------------------------------------------
scenario disk-full-staging
t0=$(date +%s)
rm -f "$T/hold-h2/precheck"
if wait_for 60 phase_is h2 stage; then ok "h2 reached stage (held)"; else nok "h2 reached stage" "phase $(phase_of h2)"; fi
S2=$LAB/h2/hvpeer/staging
if in_host h2 sh -c "mkdir -p '$S2' && mount -t tmpfs -o size=64k hvstage '$S2' && dd if=/dev/zero of='$S2/fill' bs=4k 2>/dev/null; test \$(stat -f -c %a '$S2') = 0"; then
	ok "h2's staging dir full (a 64 KiB tmpfs)"
else
	nok "h2's staging dir full"
fi
tok=$(token_of h2)
bank0=$("$HVPEER_BUILDDIR/hvpeer" bootbank --dir "$LAB/h2/bootbank" status 2>&1)
rm -f "$T/hold-h2/stage"
if wait_for 60 paused; then ok "the line stopped"; else nok "the line stopped" "phase $(phase_of h2)"; fi
reason=$(state "d['pause']['reason']")
check "the reason names h2's stage and the full disk: $reason" grep -q "h2: patch 1.2.0: stage: .*No space left on device" <<<"$reason"
check "h2 keeps its phase (stage) and its lease (token $tok)" \
	test "$(phase_of h2) $(state "[(h['name'], h['token']) for h in d['lease']['holders']]")" = "stage [('h2', $tok)]"
check "the patch is not quarantined" test "$(state "any('quarantined' in e['text'] for e in d['events'])")" = False
check "nothing reached h2's boot banks" test "$("$HVPEER_BUILDDIR/hvpeer" bootbank --dir "$LAB/h2/bootbank" status 2>&1)" = "$bank0"
in_host h2 umount "$S2" || nok "h2's staging dir freed"
out=$(hv h1 resume 2>&1) || nok "resume" "$out"
if wait_for 150 rollout_over; then ok "space freed and resumed: the rollout of 1.2.0 finished"; else nok "the rollout of 1.2.0 finished" "$(hv h1 patch status 2>&1 | tail -n 5)"; fi
invariants_check --version 1.2.0 --guests "web1 db1"
echo "#   ($(elapsed "$t0") s)"
verdict disk-full-staging

# ---- 7. the leader's wall clock jumps during the canary's soak -----------------------
scenario leader-clock-jump
t0=$(date +%s)
L=$(leader)
C=h1
[ "$L" = h1 ] && C=h2
out=$(hv h1 policy set canary "$C" 2>&1) && out=$(hv h1 policy set soak 40 2>&1) || nok "policy canary $C, soak 40 s" "$out"
out=$(hv h1 patch submit "$T/os-1.3.0.tar" 2>&1) || nok "patch submit 1.3.0" "$out"
canary_done() { phase_is "$C" "done"; }
if wait_for 120 canary_done; then ok "the canary $C is done: its soak began"; else nok "the canary $C is done" "phase $(phase_of "$C"); $(state "d['pause']")"; fi
L=$(leader)
l=$(loglines "$L")
echo "+1h" >"$T/clock-$L"
sleep 2 # libfaketime reads the offset again every second
# (judged by the jumped clock, the soak would be over and the canary's
# reports an hour old: the others let go, or the line stopped for a canary
# "not healthy")
held_back() { test "$(state "[h['name'] for h in d['lease']['holders']], sorted(h['phase'] for h in d['rollout']['hosts']), d['pause']['paused']")" = "[] ['done', 'wait-lease', 'wait-lease'] False"; }
still=0
for _ in $(seq 12); do held_back && still=$((still + 1)); sleep 1; done
check "the leader $L's clock an hour ahead: for 12 s nobody else was let go and the line did not stop ($still of 12 looks), the soak goes on" test "$still" = 12
if wait_for 5 logged_since "$L" "$l" "the wall clock jumped"; then
	ok "$L's log says it: $(tail -n +"$((l + 1))" "$LAB/$L/hvpeerd.log" | grep -o "the wall clock jumped.*" | head -n 1)"
else
	nok "$L's log says its clock jumped" "$(tail -n +"$((l + 1))" "$LAB/$L/hvpeerd.log" | tail -n 3)"
fi
echo "+0" >"$T/clock-$L"
sleep 2
if wait_for 150 rollout_over; then ok "the clock back, the soak over: the rollout of 1.3.0 finished"; else nok "the rollout of 1.3.0 finished" "$(hv h1 patch status 2>&1 | tail -n 5)"; fi
inv_stop
invariants_check --version 1.3.0 --guests "web1 db1"
echo "#   ($(elapsed "$t0") s)"
verdict leader-clock-jump

no_sanitizer_reports
