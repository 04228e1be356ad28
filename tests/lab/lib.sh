# Shared by the lab tests (sourced): the checks that decide whether a lab
# test can run here, the lab lock, TAP-like output and bounded waits.
#
# After sourcing: TOP, LABT (the lab tool), HVPEER_BUILDDIR (exported), LAB
# (the lab dir), N/PASS/FAIL and ok, nok, check, lab, hv, wait_for, state,
# the cluster questions below (phase_of, paused, leader ...). The test
# sets FINISH_HOSTS (hosts whose hvpeerd log tails are shown on a failure)
# and may define finish_extra (run before the lab goes down). Exits 77 when
# the test cannot run here (not root, lab packages missing, a lab already
# up), 99 when another lab test held the lab for 15 minutes.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LABT=${HVPEER_LAB_TOOL:-$TOP/lab/hvpeer-lab}
export HVPEER_BUILDDIR=${HVPEER_BUILDDIR:-$TOP/build}

[[ $(id -u) == 0 ]] || { echo "1..0 # SKIP not root"; exit 77; }
for p in libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 busybox-static; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		{ echo "1..0 # SKIP missing $p (scripts/setup.sh installs it)"; exit 77; }
done
# the lab's BMCs (ipmi_sim)
dpkg-query -W -f='${Status}' openipmi 2>/dev/null | grep -q 'ok installed' ||
	{ echo "1..0 # SKIP missing openipmi (the lab's BMCs; scripts/setup.sh installs it)"; exit 77; }
# One lab at a time on a machine: lab tests run one after the other even
# under make -j (bounded wait).
exec 9>/tmp/hvpeer-lab-tests.lock
flock -w 900 9 || { echo "Bail out! another lab test held the lab for 15 minutes"; exit 99; }
ip link show hvlab0 >/dev/null 2>&1 && { echo "1..0 # SKIP a lab is already up"; exit 77; }

if [ -n "${HVPEER_LAB_DIR:-}" ]; then LAB=$HVPEER_LAB_DIR
elif [ -w /run ]; then LAB=/run/hvpeer-lab
else LAB=/tmp/hvpeer-lab; fi

N=0 PASS=0 FAIL=0
FINISH_HOSTS="h1 h2 h3"
ok() { N=$((N + 1)); PASS=$((PASS + 1)); echo "ok $N - $1"; }
nok() { N=$((N + 1)); FAIL=$((FAIL + 1)); echo "not ok $N - $1"; [ $# -gt 1 ] && printf '#   %s\n' "${@:2}"; }
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else nok "$d"; fi; }
lab() { "$LABT" "$@"; }
hv() { local h=$1; shift; "$LABT" hvpeer "$h" "$@"; }
# wait_for SECONDS CMD...: run CMD every 0.2 s until it succeeds (bounded).
# CMD runs each time: pass a function, not "test $(...)", whose $(...)
# would be expanded once, before the wait.
wait_for() {
	local t=$1; shift
	for _ in $(seq $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	return 1
}
# signed_bundle KEY VERSION OUT PAYLOAD: a lab bundle (name labos, host class
# lab) holding PAYLOAD, signed by the private key KEY.
signed_bundle() {
	"$HVPEER_BUILDDIR/hvpeer" bundle create --name labos --version "$2" --host-class lab -o "$3" "$4" >/dev/null &&
		"$HVPEER_BUILDDIR/hvpeer" bundle sign --key "$1" "$3" >/dev/null
}
# state PYTHON-EXPRESSION over d (hvpeer --json status), asked on h2, h3,
# then h1 (a host may be rebooting). Only an answer with quorum counts: one
# given from a replica that has no leader may be behind; no quorum anywhere
# is asked again, 10 rounds 0.5 s apart. The expression's own failure is
# returned at once.
state() {
	local h out rc
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		for h in h2 h3 h1; do
			out=$(hv $h --timeout 3000 --json status 2>/dev/null) || continue
			echo "$out" | python3 -c "import json,sys; d=json.load(sys.stdin); d['quorum'] or sys.exit(3); print($1)" 2>/dev/null
			rc=$?
			[ $rc = 3 ] || return $rc
		done
		sleep 0.5
	done
	return 1
}
# Questions about the cluster, for checks and wait_for (each answers with
# its exit status, or prints):
#   phase_of HOST            HOST's phase in the rollout
#   phase_is HOST PHASE      phase_not HOST PHASE (and the rollout has HOST)
#   phase_or_stop HOST PHASE HOST reached PHASE, or the line stopped
#   rollout_over, paused     the rollout is not active; the cluster is paused
#   token_of HOST            HOST's lease token (0: none)
#   leader, leader_not HOST  the leader's name; a leader that is not HOST
#   own HOST EXPR            EXPR over HOST's own status (quorum or not)
#   answers HOST, no_quorum HOST   HOST answers with quorum, or without
#   hvpeerd_pid HOST, no_hvpeerd HOST
#   guests_reported LIST     the running guests' names reported, sorted
#   loglines HOST, logged_since HOST LINES TEXT   HOST's hvpeerd log: its
#                            length; TEXT past line LINES
#   logged TEXT              TEXT in any host's hvpeerd log
#   elapsed T0               seconds since T0 (date +%s)
phase_of() { state "[h['phase'] for h in d['rollout']['hosts'] if h['name']=='$1'][0]"; }
phase_is() { test "$(phase_of "$1")" = "$2"; }
phase_not() { local p; p=$(phase_of "$1") && test -n "$p" && test "$p" != "$2"; }
phase_or_stop() { phase_is "$1" "$2" || paused; }
rollout_over() { test "$(state "d['rollout']['active']")" = False; }
paused() { test "$(state "d['pause']['paused']")" = True; }
token_of() { state "([h['token'] for h in d['lease']['holders'] if h['name']=='$1'] or [0])[0]"; }
leader() { state "d['leader']['name']"; }
leader_not() { local l; l=$(leader) && test -n "$l" && test "$l" != None && test "$l" != "$1"; }
own() { hv "$1" --timeout 2000 --json status 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" 2>/dev/null; }
answers() { test "$(own "$1" "d['quorum']")" = True; }
no_quorum() { test "$(own "$1" "d['quorum']")" = False; }
hvpeerd_pid() { lab pid "$1" hvpeerd 2>/dev/null; }
no_hvpeerd() { test -z "$(hvpeerd_pid "$1")"; }
guests_reported() { test "$(state "sorted(g['name'] for m in d['members'] for g in m['guests'] if g['running'])")" = "$1"; }
loglines() { wc -l <"$LAB/$1/hvpeerd.log"; }
logged_since() { tail -n +"$(($2 + 1))" "$LAB/$1/hvpeerd.log" | grep -q -- "$3"; }
logged() { grep -q "$1" "$LAB"/h*/hvpeerd.log; }
elapsed() { echo $(($(date +%s) - $1)); }
# no_sanitizer_reports: one check that no hvpeerd log holds an ASan, LSan or
# UBSan report; a report found is printed whole (with its stacks), since a
# leak shows only when a daemon exits, possibly long before the check.
no_sanitizer_reports() {
	local logs
	logs=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$LAB"/h*/hvpeerd.log 2>/dev/null)
	if [ -z "$logs" ]; then
		ok "no sanitizer report in any hvpeerd log"
		return
	fi
	nok "no sanitizer report in any hvpeerd log"
	for f in $logs; do
		echo "# --- $f"
		awk '/ERROR: (Address|Leak)Sanitizer|runtime error:/ { on = 1; n = 0 }
		     on && n++ < 120 { print "#   " $0 }
		     /^SUMMARY: / { on = 0 }' "$f" | head -n 400
	done
}
finish() {
	# The logs first: finish_extra may take the lab down.
	if [ "$FAIL" -gt 0 ]; then
		for h in $FINISH_HOSTS; do
			echo "# --- $h hvpeerd.log (tail)"
			tail -n 30 "$LAB/$h/hvpeerd.log" 2>/dev/null | sed 's/^/#   /'
		done
	fi
	declare -F finish_extra >/dev/null && finish_extra
	lab down >/dev/null 2>&1
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" = 0 ]
}
trap 'finish; exit $?' EXIT
trap 'exit 1' INT TERM
