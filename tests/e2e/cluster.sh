#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called through wait_for and traps
# Black-box test of hvpeerd/hvpeer: real daemons on 127.0.0.1, driven only
# through the hvpeer CLI (and, for one check, a raw control-socket client).
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/cluster.sh
#
# HVPEER_BUILDDIR holds the hvpeerd and hvpeer binaries (default: the
# current directory). Output is TAP-like: one "ok N - ..." / "not ok N - ..."
# line per check, then "N passed, M failed". Exit status: 0 when every check
# passed, 1 otherwise, 77 (skip) when neither jq nor python3 is available,
# 99 when the binaries are missing. HVPEER_E2E_JSON=jq parses with jq even
# when python3 is present.
#
# Check groups: 1. three peers form a cluster (bootstrap + 2 joins, promotion
# to voters); 2. status agrees from every node; 3. pause commits, blocks the
# lease and survives a full restart, then resume and acquire; 4. lease rules
# (holder, tokens, release, break); 5. kill -9 of the leader: new leader, lease
# kept, the node comes back; 6. two of three killed: status still answers
# (exit 3, from the replica), writes refused with "no quorum", nothing changed
# after the restart; 7. a wiped data dir rejoins under a new Raft id; 8. bad
# input (flags, CLI usage, garbage on the control socket); 9. clean shutdown
# and no sanitizer reports (for --enable-sanitize builds).
#
# Needs: bash >= 4.4, coreutils (timeout, mktemp), Linux /proc, jq or python3;
# ss (iproute2) or bash's /dev/tcp to find free ports; python3 for the
# raw-socket check (skipped without it).
set -euo pipefail

BUILDDIR=${HVPEER_BUILDDIR:-.}
HVPEERD=$BUILDDIR/hvpeerd
HVPEER=$BUILDDIR/hvpeer

if [[ ! -x $HVPEERD || ! -x $HVPEER ]]; then
	echo "Bail out! no hvpeerd/hvpeer in '$BUILDDIR' (set HVPEER_BUILDDIR)"
	exit 99
fi

# JSON: python3 is exact with 64-bit ids; jq is faster. Use python3 when
# present (resolved once to the real interpreter, which skips wrappers such
# as pyenv shims), jq otherwise.
PY=
if command -v python3 >/dev/null 2>&1; then
	PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PY=
fi
HAVE_JQ=0
command -v jq >/dev/null 2>&1 && HAVE_JQ=1
# HVPEER_E2E_JSON=jq forces jq (to test that path).
PYSOCK=$PY # the raw control-socket check needs python3 in any case
if [[ ${HVPEER_E2E_JSON:-} == jq && $HAVE_JQ == 1 ]]; then
	PY=
fi
if [[ -z $PY && $HAVE_JQ == 0 ]]; then
	echo "1..0 # SKIP neither python3 nor jq is installed"
	exit 77
fi

# ---- bookkeeping ---------------------------------------------------------

NCHECK=0
NPASS=0
NFAIL=0
T=
declare -A PID=()     # node name -> pid of its running hvpeerd
declare -A PORT=()    # node name -> Raft/RPC port
declare -A LIVE=()    # pid -> 1 for every hvpeerd started and not reaped yet
NODES=(h1 h2 h3)

# Last CLI call, for diagnostics.
RC=0
OUT=
ERR=
LASTCMD=

pass() {
	NCHECK=$((NCHECK + 1))
	NPASS=$((NPASS + 1))
	echo "ok $NCHECK - $1"
}

fail() {
	NCHECK=$((NCHECK + 1))
	NFAIL=$((NFAIL + 1))
	echo "not ok $NCHECK - $1"
	if [[ $# -gt 1 ]]; then
		printf '#   %s\n' "${@:2}"
	fi
	if [[ -n $LASTCMD ]]; then
		echo "#   last command: $LASTCMD -> exit $RC"
		[[ -n $OUT ]] && printf '#   stdout: %s\n' "$(head -c 1500 <<<"$OUT" | tr '\n' ' ')"
		[[ -n $ERR ]] && printf '#   stderr: %s\n' "$(head -c 1500 <<<"$ERR" | tr '\n' ' ')"
	fi
	return 0
}

now_ms() {
	local t=${EPOCHREALTIME:-}
	if [[ -n $t ]]; then
		t=${t/./}
		NOW=$((10#$t / 1000))
	else
		NOW=$(date +%s%3N)
	fi
}

# wait_for TIMEOUT_S CMD...: run CMD every 0.1 s until it succeeds; bounded
# by TIMEOUT_S seconds (wall clock) and TIMEOUT_S*10+1 attempts.
wait_for() {
	local timeout_s=$1 deadline i=0 max
	shift
	max=$((timeout_s * 10 + 1))
	now_ms
	deadline=$((NOW + timeout_s * 1000))
	while true; do
		if "$@"; then
			return 0
		fi
		i=$((i + 1))
		now_ms
		if ((i >= max || NOW >= deadline)); then
			return 1
		fi
		sleep 0.1
	done
}

# ---- processes -----------------------------------------------------------

# proc_gone PID: true once the hvpeerd child PID has exited (a zombie, or
# already reaped by bash, in which case the pid may even be another
# process's by now: it must still be an hvpeerd to count as running).
DAEMON_COMM=$(basename "$HVPEERD")
DAEMON_COMM=${DAEMON_COMM:0:15}
proc_gone() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
	[[ $stat == "$1 ($DAEMON_COMM) "* ]] || return 0
	stat=${stat##*) } # the state letter follows "pid (comm) "
	[[ ${stat:0:1} == [ZX] ]]
}

# reap PID TIMEOUT_S: wait (bounded) for a child to exit; sets EXIT_STATUS
# (its status, or "timeout").
reap() {
	local pid=$1 timeout_s=$2
	EXIT_STATUS=timeout
	if ! wait_for "$timeout_s" proc_gone "$pid"; then
		return 1
	fi
	EXIT_STATUS=0
	wait "$pid" 2>/dev/null || EXIT_STATUS=$?
	unset "LIVE[$pid]"
	return 0
}

# start_node NAME [EXTRA ARGS...]: start hvpeerd NAME in the background.
start_node() {
	local n=$1
	shift
	echo "=== $(date +%T) start $n $*" >>"$T/$n.log"
	"$HVPEERD" --name "$n" --data-dir "$T/$n" --listen "127.0.0.1:${PORT[$n]}" \
		--socket "$T/$n.sock" --report-interval 500 --log-level info "$@" \
		</dev/null >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
	LIVE[$!]=1
}

# stop_node NAME [signalled]: TERM (once: a second TERM during the shutdown
# would kill the daemon with the default action), bounded wait; sets
# EXIT_STATUS.
stop_node() {
	local n=$1 pid=${PID[$1]}
	[[ ${2:-} == signalled ]] || kill -TERM "$pid" 2>/dev/null || true
	if ! reap "$pid" 10; then
		kill -KILL "$pid" 2>/dev/null || true
		reap "$pid" 5 || true
		EXIT_STATUS="no exit within 10 s of TERM"
	fi
	echo "=== $(date +%T) $n stopped: $EXIT_STATUS" >>"$T/$n.log"
	unset "PID[$n]"
}

# kill9_node NAME: SIGKILL and reap.
kill9_node() {
	local n=$1 pid=${PID[$1]}
	# (stderr: bash's own "Killed" job notice is noise here)
	{
		kill -KILL "$pid" || true
		reap "$pid" 5 || true
	} 2>/dev/null
	echo "=== $(date +%T) $n killed (-9)" >>"$T/$n.log"
	unset "PID[$n]"
}

# On exit, whatever the reason: stop every daemon still running (TERM, then
# KILL after 5 s), show the logs' tails if anything failed, print the closing
# line and remove the temp dir.
FINISHED=0
cleanup() {
	local rc=$? pid i alive f
	set +eu
	trap - EXIT ERR
	if ((!FINISHED)); then
		fail "the test script ran to its end (stopped early with exit status $rc)"
	fi
	for pid in "${!LIVE[@]}"; do
		proc_gone "$pid" || kill -TERM "$pid" 2>/dev/null
	done
	for ((i = 0; i < 50; i++)); do
		alive=0
		for pid in "${!LIVE[@]}"; do
			proc_gone "$pid" || alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	for pid in "${!LIVE[@]}"; do
		proc_gone "$pid" || kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [[ -n $T && -d $T ]]; then
		if ((NFAIL > 0)); then
			for f in "$T"/*.log; do
				[[ -e $f ]] || continue
				echo "# ---- tail of $(basename "$f") ----"
				tail -n 40 "$f" | sed 's/^/#   /'
			done
		fi
		rm -rf "$T"
	fi
	echo "$NPASS passed, $NFAIL failed"
	((rc != 99)) || exit 99 # no usable environment: a hard error for automake
	((NFAIL == 0)) || exit 1
	exit 0
}
trap cleanup EXIT
trap 'echo "# line $LINENO: command failed: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- CLI and status ------------------------------------------------------

# cli NODE ARGS...: run hvpeer against NODE's control socket; sets RC, OUT,
# ERR. Bounded by hvpeer's own --timeout and by timeout(1).
cli() {
	local n=$1
	shift
	LASTCMD="hvpeer --socket $n.sock $*"
	RC=0
	timeout -k 2 20 "$HVPEER" --socket "$T/$n.sock" "$@" >"$T/cli.out" 2>"$T/cli.err" || RC=$?
	OUT=$(<"$T/cli.out")
	ERR=$(<"$T/cli.err")
}

# Normalise a JSON answer into key=value lines (both implementations print
# the same keys).
SUMMARY_PY='
import json, sys
try:
    d = json.load(sys.stdin)
    assert isinstance(d, dict)
except Exception:
    print("parse=error"); sys.exit(0)
def s(v):
    if v is None: return ""
    if v is True: return "true"
    if v is False: return "false"
    return str(v).replace("\n", " ")
def o(v): return v if isinstance(v, dict) else {}
def a(v): return v if isinstance(v, list) else []
ms = [o(m) for m in a(d.get("members"))]
ld = o(d.get("leader")); ls = o(d.get("lease")); ps = o(d.get("pause"))
print("parse=ok")
print("ok=" + s(d.get("ok") is True))
print("quorum=" + s(d.get("quorum") is True))
print("node=" + s(d.get("node")))
print("via=" + s(d.get("via")))
print("leader=" + (s(ld.get("name")) if d.get("leader") else "none"))
print("leader_id=" + s(ld.get("id")))
print("term=" + s(d.get("term")))
print("nmembers=" + str(len(ms)))
print("members=" + " ".join(sorted("%s:%s:%s" % (s(m.get("name")), s(m.get("role")), s(m.get("id"))) for m in ms)))
print("voters=" + str(sum(1 for m in ms if m.get("role") == "voter")))
print("holders=" + " ".join(sorted("%s:%s" % (s(h.get("name")), s(h.get("token"))) for h in map(o, a(ls.get("holders"))))))
print("last_token=" + s(ls.get("last_token")))
print("paused=" + s(ps.get("paused") is True))
print("pause_by=" + s(ps.get("by")))
print("pause_reason=" + s(ps.get("reason")))
print("pause_since=" + s(ps.get("since_ms")))
print("token=" + s(d.get("token")))
print("error=" + s(d.get("error")))
print("message=" + s(d.get("message")))
'
SUMMARY_JQ='
def s: if . == null then "" else tostring | gsub("\n"; " ") end;
"parse=ok",
"ok=\(.ok == true)",
"quorum=\(.quorum == true)",
"node=\(.node | s)",
"via=\(.via | s)",
"leader=\(if .leader then (.leader.name | s) else "none" end)",
"leader_id=\(.leader.id | s)",
"term=\(.term | s)",
"nmembers=\(.members // [] | length)",
"members=\([.members // [] | .[] | "\(.name | s):\(.role | s):\(.id | s)"] | sort | join(" "))",
"voters=\([.members // [] | .[] | select(.role == "voter")] | length)",
"holders=\([.lease.holders // [] | .[] | "\(.name | s):\(.token | s)"] | sort | join(" "))",
"last_token=\(.lease.last_token | s)",
"paused=\(.pause.paused == true)",
"pause_by=\(.pause.by | s)",
"pause_reason=\(.pause.reason | s)",
"pause_since=\(.pause.since_ms | s)",
"token=\(.token | s)",
"error=\(.error | s)",
"message=\(.message | s)"
'

declare -A S=()
# summarize FILE: parse a JSON answer into S[key].
summarize() {
	local line text
	S=()
	if [[ -n $PY ]]; then
		text=$("$PY" -c "$SUMMARY_PY" <"$1" 2>/dev/null) || text="parse=error"
	else
		# jq < 1.7 rounds integers beyond 2^53 (member ids): quote them.
		text=$(sed -E 's/^([[:space:]]*"[a-z_]+": *)([0-9]{16,})(,?)$/\1"\2"\3/' "$1" |
			jq -r "$SUMMARY_JQ" 2>/dev/null) || text="parse=error"
	fi
	[[ -n $text ]] || text="parse=error"
	while IFS= read -r line; do
		S[${line%%=*}]=${line#*=}
	done <<<"$text"
}

# st NODE: "hvpeer --json status" on NODE; RC and S[] hold the result.
st() {
	cli "$1" --timeout 4000 --json status
	summarize "$T/cli.out"
}

# A consistent view: what every node must agree on.
view() {
	echo "leader=${S[leader]:-} members=${S[members]:-} holders=${S[holders]:-} last_token=${S[last_token]:-} paused=${S[paused]:-} by=${S[pause_by]:-} reason=${S[pause_reason]:-} since=${S[pause_since]:-}"
}

# healthy NODE [LEADER_NOT]: NODE answers status with quorum, a leader, 3
# members, all voters (and a leader other than LEADER_NOT).
healthy() {
	st "$1"
	[[ $RC == 0 && ${S[parse]} == ok && ${S[quorum]} == true && ${S[leader]} != none &&
		${S[nmembers]} == 3 && ${S[voters]} == 3 ]] || return 1
	[[ -z ${2:-} || ${S[leader]} != "$2" ]]
}

all_healthy() {
	local n
	for n in "$@"; do
		healthy "$n" || return 1
	done
}

# The id of member NAME in S[members] ("name:role:id ...").
member_field() { # NAME FIELD(2=role,3=id)
	local m
	for m in ${S[members]:-}; do
		if [[ ${m%%:*} == "$1" ]]; then
			cut -d: -f"$2" <<<"$m"
			return 0
		fi
	done
	echo ""
}

leader_now() { # NODE: sets LEADER from NODE's status (empty if none)
	LEADER=
	if healthy "$1"; then LEADER=${S[leader]}; fi
	[[ -n $LEADER ]]
}

# new_leader_seen OLD NODES...: every NODE is healthy with a leader != OLD.
new_leader_seen() {
	local old=$1 n
	shift
	for n in "$@"; do
		healthy "$n" "$old" || return 1
	done
}

# ---- temp dir and ports --------------------------------------------------

T=$(mktemp -d "${TMPDIR:-/tmp}/hvpe2e.XXXXXX")
if ((${#T} > 60)); then # keep socket paths well under sun_path's 108
	rm -rf "$T"
	T=$(mktemp -d /tmp/hvpe2e.XXXXXX)
fi

port_in_use() {
	local p=$1
	if command -v ss >/dev/null 2>&1; then
		ss -Htan 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$p\$" && return 0
		return 1
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

NPORTS=5 # h1 h2 h3, a spare node for the bad-input checks, one never used
# Stay below the kernel's ephemeral range when it leaves room: an outgoing
# connection could take a port there while a node is down between restarts.
PORT_LO=20000
PORT_HI=50000
if read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
	[[ $eph_lo =~ ^[0-9]+$ ]] && ((eph_lo > PORT_LO + 1000 && eph_lo < PORT_HI)); then
	PORT_HI=$eph_lo
fi
BASE=
for ((try = 0; try < 50; try++)); do
	cand=$((PORT_LO + (RANDOM * 32768 + RANDOM) % (PORT_HI - PORT_LO - NPORTS)))
	free=1
	for ((k = 0; k < NPORTS; k++)); do
		if port_in_use $((cand + k)); then
			free=0
			break
		fi
	done
	if ((free)); then
		BASE=$cand
		break
	fi
done
if [[ -z $BASE ]]; then
	echo "Bail out! no free port range found in 20000-50000"
	FINISHED=1
	exit 99
fi
PORT[h1]=$BASE
PORT[h2]=$((BASE + 1))
PORT[h3]=$((BASE + 2))
PORT[h9]=$((BASE + 3))
H1ADDR=127.0.0.1:${PORT[h1]}

echo "# hvpeerd: $HVPEERD; temp dir $T; ports $BASE-$((BASE + NPORTS - 1)); json: ${PY:-jq}"
SECONDS=0

# =========================================================================
echo "# 1. three peers form a cluster"
start_node h1 --bootstrap
start_node h2 --join "$H1ADDR"
start_node h3 --join "$H1ADDR"
if wait_for 20 all_healthy h1 h2 h3; then
	pass "cluster formed: every node sees 3 voters, a leader and quorum (${SECONDS}s)"
else
	fail "cluster formed: every node sees 3 voters, a leader and quorum"
	echo "Bail out! no cluster, the other checks cannot run"
	FINISHED=1
	exit 1
fi
for n in "${NODES[@]}"; do
	if healthy "$n" && [[ ${S[members]} == *"h1:voter:"*"h2:voter:"*"h3:voter:"* ]]; then
		pass "status from $n lists h1 h2 h3 as voters (leader ${S[leader]})"
	else
		fail "status from $n lists h1 h2 h3 as voters" "members=${S[members]:-}"
	fi
done

# =========================================================================
echo "# 2. status agrees from every node"
declare -A VIEW=()
for n in "${NODES[@]}"; do
	st "$n"
	VIEW[$n]=$(view)
	if [[ $RC == 0 && ${S[quorum]} == true ]]; then
		pass "status from $n: exit 0, quorum true"
	else
		fail "status from $n: exit 0, quorum true"
	fi
done
if [[ ${VIEW[h1]} == "${VIEW[h2]}" && ${VIEW[h2]} == "${VIEW[h3]}" ]]; then
	pass "h1, h2, h3 agree on leader, members and roles and ids, lease, pause"
else
	fail "h1, h2, h3 agree on leader, members and roles and ids, lease, pause" \
		"h1: ${VIEW[h1]}" "h2: ${VIEW[h2]}" "h3: ${VIEW[h3]}"
fi
cli h2 status
if [[ $RC == 0 && $OUT == *"cluster: 3 members; leader "* && $OUT == *"paused:  no"* ]]; then
	pass "plain 'hvpeer status' prints the cluster summary"
else
	fail "plain 'hvpeer status' prints the cluster summary"
fi

# =========================================================================
echo "# 3. pause: commits, blocks the lease, survives a full restart"
REASON='firmware rollout: rack A/B "phase 2"'
cli h2 pause --reason "$REASON"
if [[ $RC == 0 && $OUT == *"cluster paused by "*"@h2: $REASON"* ]]; then
	pass "hvpeer pause --reason on h2: exit 0"
else
	fail "hvpeer pause --reason on h2: exit 0"
fi
PAUSE_BY=
PAUSE_SINCE=
for n in "${NODES[@]}"; do
	st "$n"
	if [[ $RC == 0 && ${S[paused]} == true && ${S[pause_by]} == *@h2 && ${S[pause_reason]} == "$REASON" ]]; then
		pass "$n sees the pause, by ${S[pause_by]}, with its reason"
		PAUSE_BY=${S[pause_by]}
		PAUSE_SINCE=${S[pause_since]}
	else
		fail "$n sees the pause with by and reason" "$(view)"
	fi
done
cli h1 lease acquire
if [[ $RC == 1 && $ERR == *paused* ]]; then
	pass "lease acquire while paused: exit 1, message says paused"
else
	fail "lease acquire while paused: exit 1, message says paused"
fi
cli h1 pause --reason "second pause"
PRC=$RC
POUT=$OUT
st h1
if [[ $PRC == 0 && $POUT == *"already paused by"* && ${S[pause_reason]} == "$REASON" ]]; then
	pass "a second pause: exit 0, 'already paused', keeps the first one's reason"
else
	fail "a second pause: exit 0, 'already paused', keeps the first one's reason" "pause: exit $PRC: $POUT" "$(view)"
fi

# Rollout policies: checked before they are proposed, committed, kept.
cli h1 policy set window "Mon-Fry 22:00-04:00"
if [[ $RC == 2 && $ERR == *"Fry"* ]]; then
	pass "policy set window with a bad day: exit 2 (invalid), names it: $ERR"
else
	fail "policy set window with a bad day: exit 2, names it" "exit $RC: $OUT $ERR"
fi
cli h1 policy set window "Mon-Fri 22:00-04:00"
PRC=$RC
cli h2 policy set zone Europe/Berlin
if [[ $PRC == 0 && $RC == 0 ]]; then
	pass "policy set window and zone (on h1, h2): exit 0"
else
	fail "policy set window and zone: exit 0" "exit $PRC, $RC: $OUT $ERR"
fi
cli h1 policy set zone Mars/Olympus_Mons
if [[ $RC == 2 && $ERR == *"Mars/Olympus_Mons"* ]]; then
	pass "an unknown time zone is refused: $ERR"
else
	fail "an unknown time zone is refused" "exit $RC: $OUT $ERR"
fi
cli h3 policy set canary nosuchhost
if [[ $RC == 2 && $ERR == *"not a member"* ]]; then
	pass "a canary that is not a member is refused"
else
	fail "a canary that is not a member is refused" "exit $RC: $OUT $ERR"
fi
cli h3 policy set soak 600
cli h3 policy set colour blue
if [[ $RC == 2 && $ERR == *"unknown policy 'colour'"* ]]; then
	pass "an unknown policy is refused, the known ones listed"
else
	fail "an unknown policy is refused" "exit $RC: $OUT $ERR"
fi

for n in "${NODES[@]}"; do
	kill -TERM "${PID[$n]}" 2>/dev/null || true
done
for n in "${NODES[@]}"; do
	stop_node "$n" signalled
	if [[ $EXIT_STATUS == 0 ]]; then
		pass "$n stops on TERM with exit 0"
	else
		fail "$n stops on TERM with exit 0" "exit status: $EXIT_STATUS"
	fi
done
for n in "${NODES[@]}"; do
	start_node "$n"
done
if wait_for 20 all_healthy h1 h2 h3; then
	pass "restarted with the same data dirs (no --bootstrap/--join): leader and quorum again"
else
	fail "restarted with the same data dirs (no --bootstrap/--join): leader and quorum again"
fi
for n in "${NODES[@]}"; do
	st "$n"
	if [[ ${S[paused]} == true && ${S[pause_reason]} == "$REASON" && ${S[pause_by]} == "$PAUSE_BY" &&
		${S[pause_since]} == "$PAUSE_SINCE" ]]; then
		pass "$n: still paused after the restart, same by/reason/since"
	else
		fail "$n: still paused after the restart, same by/reason/since" "$(view)"
	fi
done
cli h3 --json status
POL=$(printf '%s' "$OUT" | python3 -c 'import json,sys; p=json.load(sys.stdin)["policy"]; print(p["window"], p["zone"], p["soak_s"], sep="|")' 2>/dev/null)
if [[ $POL == "Mon-Fri 22:00-04:00|Europe/Berlin|600" ]]; then
	pass "the policies survived the restart (seen on h3): $POL"
else
	fail "the policies survived the restart" "got '$POL'"
fi
cli h1 policy show
if [[ $RC == 0 && $OUT == *"Mon-Fri 22:00-04:00 (Europe/Berlin)"* && $OUT == *"soak:            600 s"* ]]; then
	pass "hvpeer policy show prints them"
else
	fail "hvpeer policy show prints them" "$OUT"
fi
cli h3 resume
if [[ $RC == 0 && $OUT == *resumed* ]]; then
	pass "resume: exit 0"
else
	fail "resume: exit 0"
fi
st h2
if [[ ${S[paused]} == false ]]; then pass "h2 sees the cluster resumed"; else fail "h2 sees the cluster resumed" "$(view)"; fi
cli h1 lease acquire
TOKEN1=
if [[ $RC == 0 && $OUT =~ lease\ granted\ to\ h1\ \(token\ ([0-9]+)\) ]]; then
	TOKEN1=${BASH_REMATCH[1]}
	pass "lease acquire on h1 after resume: exit 0, token $TOKEN1 printed"
else
	fail "lease acquire on h1 after resume: exit 0, token printed"
fi
cli h1 --json lease acquire
summarize "$T/cli.out"
if [[ $RC == 0 && ${S[ok]} == true && -n ${S[token]} && ${S[token]} == "$TOKEN1" ]]; then
	pass "lease acquire --json (retried): JSON has \"token\": ${S[token]}, the same grant"
else
	fail "lease acquire --json (retried): JSON has the same \"token\"" "token=${S[token]:-}"
fi
st h3
if [[ ${S[holders]} == "h1:$TOKEN1" ]]; then pass "h3 sees h1 holding token $TOKEN1"; else fail "h3 sees h1 holding token $TOKEN1" "$(view)"; fi

# =========================================================================
echo "# 4. lease rules"
cli h2 lease acquire
if [[ $RC == 1 && $ERR == *"held by h1"* && $ERR == *"token $TOKEN1"* ]]; then
	pass "lease acquire on h2 while h1 holds it: exit 1, names h1 and token $TOKEN1"
else
	fail "lease acquire on h2 while h1 holds it: exit 1, names h1 and token $TOKEN1"
fi
cli h1 lease release --token $((TOKEN1 + 1000))
if [[ $RC == 1 ]]; then
	pass "lease release --token WRONG ($((TOKEN1 + 1000))): exit 1"
else
	fail "lease release --token WRONG: exit 1"
fi
cli h1 lease release --token notanumber
if [[ $RC == 2 ]]; then pass "lease release --token notanumber: usage error, exit 2"; else fail "lease release --token notanumber: usage error, exit 2"; fi
cli h2 lease release
if [[ $RC == 1 ]]; then pass "lease release by h2, not the holder: exit 1"; else fail "lease release by h2, not the holder: exit 1"; fi
cli h2 lease release h1
if [[ $RC == 2 ]]; then pass "lease release h1 from h2 without h1's token: exit 2"; else fail "lease release h1 from h2 without h1's token: exit 2"; fi
st h2
if [[ ${S[holders]} == "h1:$TOKEN1" ]]; then pass "refused releases changed nothing"; else fail "refused releases changed nothing" "$(view)"; fi
cli h1 lease release
if [[ $RC == 0 && $OUT == *"released by h1 (token $TOKEN1)"* ]]; then
	pass "lease release by the holder h1: exit 0"
else
	fail "lease release by the holder h1: exit 0"
fi
st h3
if [[ -z ${S[holders]} ]]; then pass "the lease is free after the release"; else fail "the lease is free after the release" "$(view)"; fi
cli h2 lease acquire
TOKEN2=
if [[ $RC == 0 && $OUT =~ token\ ([0-9]+) ]]; then
	TOKEN2=${BASH_REMATCH[1]}
fi
if [[ -n $TOKEN2 && $TOKEN2 -gt $TOKEN1 ]]; then
	pass "h2 takes the free lease: exit 0, token $TOKEN2 > $TOKEN1"
else
	fail "h2 takes the free lease: exit 0, a larger token"
fi
cli h1 lease break --reason r
if [[ $RC == 2 && $ERR == *--force* ]]; then
	pass "lease break without --force: usage error, exit 2"
else
	fail "lease break without --force: usage error, exit 2"
fi
st h1
if [[ ${S[holders]} == "h2:$TOKEN2" ]]; then pass "h2 still holds the lease after the refused break"; else fail "h2 still holds the lease after the refused break" "$(view)"; fi
cli h1 lease break --force --reason r
if [[ $RC == 0 && $OUT == *"broken by"*": r"* ]]; then
	pass "lease break --force --reason r: exit 0"
else
	fail "lease break --force --reason r: exit 0"
fi
st h2
if [[ $RC == 0 && -z ${S[holders]} ]]; then pass "the lease is free after the break"; else fail "the lease is free after the break" "$(view)"; fi

# =========================================================================
echo "# 5. kill -9 of the leader"
cli h3 lease acquire
TOKEN3=
if [[ $RC == 0 && $OUT =~ token\ ([0-9]+) ]]; then TOKEN3=${BASH_REMATCH[1]}; fi
if [[ -n $TOKEN3 ]]; then pass "h3 acquires the lease (token $TOKEN3)"; else fail "h3 acquires the lease"; fi
st h3
HOLD5=${S[holders]:-}
LAST5=${S[last_token]:-}
LEADER=
wait_for 5 leader_now h1 || true
OLD=$LEADER
if [[ -n $OLD && -n ${PID[$OLD]:-} ]]; then
	pass "leader before the kill: $OLD (pid ${PID[$OLD]})"
	SURV=()
	for n in "${NODES[@]}"; do [[ $n == "$OLD" ]] || SURV+=("$n"); done
	now_ms
	T0=$NOW
	kill9_node "$OLD"
	if wait_for 5 new_leader_seen "$OLD" "${SURV[@]}"; then
		now_ms
		pass "new leader ${S[leader]} seen from ${SURV[*]} $((NOW - T0)) ms after kill -9 of $OLD"
	else
		fail "a new leader seen from ${SURV[*]} within 5 s of kill -9 of $OLD" "$(view)"
	fi
	for n in "${SURV[@]}"; do
		st "$n"
		if [[ $RC == 0 && ${S[holders]} == "h3:$TOKEN3" && ${S[holders]} == "$HOLD5" && ${S[last_token]} == "$LAST5" ]]; then
			pass "$n: lease holder and token unchanged (${S[holders]})"
		else
			fail "$n: lease holder and token unchanged (h3:$TOKEN3)" "$(view)"
		fi
	done
	start_node "$OLD"
	if wait_for 15 all_healthy "$OLD" "${SURV[@]}"; then
		pass "$OLD restarted on its data dir: back in status, quorum from every node"
	else
		fail "$OLD restarted on its data dir: back in status, quorum from every node" "$(view)"
	fi
	st "$OLD"
	if [[ $(member_field "$OLD" 2) == voter && ${S[holders]} == "h3:$TOKEN3" ]]; then
		pass "$OLD is a voter again and sees the same lease"
	else
		fail "$OLD is a voter again and sees the same lease" "$(view)"
	fi
else
	fail "a leader to kill" "leader=$OLD"
fi

# =========================================================================
echo "# 6. two of three killed: no quorum, nothing changes"
wait_for 15 all_healthy h1 h2 h3 || true
st h1
PRE6="holders=${S[holders]:-} last_token=${S[last_token]:-} paused=${S[paused]:-} by=${S[pause_by]:-} reason=${S[pause_reason]:-} members=${S[members]:-}"
SURV6=${S[leader]:-none}
if [[ $RC == 0 && $SURV6 != none && -n ${PID[$SURV6]:-} ]]; then
	pass "before: leader $SURV6 (it survives), state: holders=${S[holders]} paused=${S[paused]}"
	KILLED6=()
	for n in "${NODES[@]}"; do [[ $n == "$SURV6" ]] || KILLED6+=("$n"); done
	for n in "${KILLED6[@]}"; do kill9_node "$n"; done
	now_ms
	T0=$NOW
	st "$SURV6"
	now_ms
	DT=$((NOW - T0))
	if [[ $RC == 3 && ${S[parse]} == ok && ${S[quorum]} == false && ${S[message]} == *"no quorum"* && $DT -lt 5000 ]]; then
		pass "status on $SURV6 with ${KILLED6[*]} dead: exit 3, quorum false, 'no quorum', in $DT ms (< 5000)"
	else
		fail "status on $SURV6 with ${KILLED6[*]} dead: exit 3, quorum false, 'no quorum', in < 5000 ms" "took $DT ms, quorum=${S[quorum]:-} message=${S[message]:-}"
	fi
	if [[ ${S[holders]} == "h3:$TOKEN3" ]]; then
		pass "$SURV6's own replica still shows h3's lease (token $TOKEN3)"
	else
		fail "$SURV6's own replica still shows h3's lease (token $TOKEN3)" "$(view)"
	fi
	# The writes go in once the survivor knows there is no leader: just
	# after the kills a follower still forwards to the dead leader (and a
	# leader still accepts proposals that may commit later), which is the
	# "may or may not have been committed" case, not "no quorum".
	no_leader() {
		st "$1"
		[[ $RC == 3 && ${S[leader]} == none ]]
	}
	if wait_for 5 no_leader "$SURV6"; then
		pass "$SURV6 steps down: no leader"
	else
		fail "$SURV6 steps down: no leader" "$(view)"
	fi
	now_ms
	T0=$NOW
	cli "$SURV6" status
	now_ms
	if [[ $RC == 3 && $OUT == *"WARNING: no quorum"* && $((NOW - T0)) -lt 5000 ]]; then
		pass "plain status without quorum: exit 3 within 5 s, prints the no-quorum warning"
	else
		fail "plain status without quorum: exit 3 within 5 s, prints the no-quorum warning"
	fi
	cli "$SURV6" pause --reason x
	if [[ $RC == 3 && $ERR == *"no quorum"* ]]; then
		pass "pause without quorum: exit 3, 'no quorum'"
	else
		fail "pause without quorum: exit 3, 'no quorum'"
	fi
	cli "$SURV6" lease acquire
	if [[ $RC == 3 && $ERR == *"no quorum"* ]]; then
		pass "lease acquire without quorum: exit 3, 'no quorum'"
	else
		fail "lease acquire without quorum: exit 3, 'no quorum'"
	fi
	cli "$SURV6" resume
	if [[ $RC == 3 ]]; then pass "resume without quorum: exit 3"; else fail "resume without quorum: exit 3"; fi
	cli "$SURV6" lease show
	if [[ $RC == 3 && $OUT == *"h3 holds it, token $TOKEN3"* ]]; then
		pass "lease show without quorum: exit 3, the replica's holder"
	else
		fail "lease show without quorum: exit 3, the replica's holder"
	fi
	for n in "${KILLED6[@]}"; do start_node "$n"; done
	if wait_for 20 all_healthy h1 h2 h3; then
		pass "${KILLED6[*]} restarted: quorum again"
	else
		fail "${KILLED6[*]} restarted: quorum again" "$(view)"
	fi
	for n in "${NODES[@]}"; do
		st "$n"
		POST="holders=${S[holders]:-} last_token=${S[last_token]:-} paused=${S[paused]:-} by=${S[pause_by]:-} reason=${S[pause_reason]:-} members=${S[members]:-}"
		if [[ $POST == "$PRE6" ]]; then
			pass "$n: lease, pause and members as before the kills"
		else
			fail "$n: lease, pause and members as before the kills" "before: $PRE6" "after:  $POST"
		fi
	done
	if [[ ${S[paused]} == false && ${S[pause_reason]} != x ]]; then
		pass "the refused pause did not happen"
	else
		fail "the refused pause did not happen" "$(view)"
	fi
else
	fail "before: a healthy cluster with a leader" "$(view)"
fi

# =========================================================================
echo "# 7. a wiped data dir rejoins under a new id"
wait_for 15 all_healthy h1 h2 h3 || true
st h1
OLDID3=$(member_field h3 3)
if [[ -n $OLDID3 ]]; then pass "h3's id before: $OLDID3"; else fail "h3's id before" "$(view)"; fi
stop_node h3
if [[ $EXIT_STATUS == 0 ]]; then pass "h3 stops on TERM with exit 0"; else fail "h3 stops on TERM with exit 0" "exit status: $EXIT_STATUS"; fi
rm -rf "$T/h3"
start_node h3 --join "$H1ADDR"
rejoined_new_id() {
	local n id
	for n in h1 h2 h3; do
		healthy "$n" || return 1
		id=$(member_field h3 3)
		[[ -n $id && $id != "$OLDID3" && $(member_field h3 2) == voter ]] || return 1
	done
}
if wait_for 20 rejoined_new_id; then
	pass "h3 is back as a voter under a new id ($(member_field h3 3)), seen from h1 h2 h3"
else
	fail "h3 is back as a voter under a new id, seen from h1 h2 h3" "old id $OLDID3" "$(view)"
fi
st h2
if [[ ${S[nmembers]} == 3 && ${S[voters]} == 3 && ${S[quorum]} == true ]]; then
	pass "still 3 members, 3 voters (not 4)"
else
	fail "still 3 members, 3 voters (not 4)" "$(view)"
fi

# =========================================================================
echo "# 8. bad input"
# daemon_once ARGS...: hvpeerd h9 in the foreground (bounded); sets RC, OUT,
# ERR; its output also goes to h9.log (for the sanitizer check).
daemon_once() {
	LASTCMD="hvpeerd --name h9 ... $*"
	RC=0
	timeout -k 2 15 "$HVPEERD" --name h9 --data-dir "$T/h9" --listen "127.0.0.1:${PORT[h9]}" \
		--socket "$T/h9.sock" --log-level info "$@" </dev/null >"$T/cli.out" 2>"$T/cli.err" || RC=$?
	OUT=$(<"$T/cli.out")
	ERR=$(<"$T/cli.err")
	{
		echo "=== $(date +%T) hvpeerd h9 $*: exit $RC"
		cat "$T/cli.out" "$T/cli.err"
	} >>"$T/h9.log"
}
daemon_once
if [[ $RC != 0 && $RC != 124 && $RC != 137 && $ERR == *--bootstrap* && $ERR == *--join* ]]; then
	pass "hvpeerd on an empty data dir without --bootstrap/--join: exit $RC, names --bootstrap and --join"
else
	fail "hvpeerd on an empty data dir without --bootstrap/--join: non-zero exit naming --bootstrap/--join"
fi
daemon_once --bootstrap --election-timeout abc
if [[ $RC == 2 && $ERR == *election-timeout* ]]; then
	pass "hvpeerd --election-timeout abc: exit 2"
else
	fail "hvpeerd --election-timeout abc: exit 2"
fi
if [[ ! -e $T/h9/node.id && ! -e $T/h9.sock ]]; then
	pass "the refused starts left no identity and no socket behind"
else
	fail "the refused starts left no identity and no socket behind" "$(find "$T/h9" "$T/h9.sock" 2>&1 | tr '\n' ' ')"
fi
cli nosuch status
if [[ $RC == 4 && $ERR == *"cannot reach hvpeerd"* ]]; then pass "hvpeer against a missing socket: exit 4"; else fail "hvpeer against a missing socket: exit 4"; fi
cli h1 frobnicate
if [[ $RC == 2 ]]; then pass "hvpeer frobnicate: exit 2"; else fail "hvpeer frobnicate: exit 2"; fi
cli h1 pause
if [[ $RC == 2 ]]; then pass "hvpeer pause without --reason: exit 2"; else fail "hvpeer pause without --reason: exit 2"; fi
cli h1 lease frob
if [[ $RC == 2 ]]; then pass "hvpeer lease frob: exit 2"; else fail "hvpeer lease frob: exit 2"; fi
cli h1 lease acquire '../x'
if [[ $RC == 2 ]]; then pass "hvpeer lease acquire ../x (invalid host name): exit 2"; else fail "hvpeer lease acquire ../x (invalid host name): exit 2"; fi

GARBAGE_PY='
import socket, struct, sys
path = sys.argv[1]
def hdr(n): return struct.pack(">I", n)
def frame(body): return hdr(len(body)) + body
HANGUP = 1  # close right after sending, without reading the answer
cases = [
    ("text", b"garbage", 0),
    ("zero-length", hdr(0), 0),
    ("huge-length", hdr(0xFFFFFFFF) + b"{}", 0),
    ("not-json", frame(b"hello"), 0),
    ("truncated", hdr(100) + b"{\"op\"", 0),
    ("json-array", frame(b"[1,2]"), 0),
    ("trailing", frame(b"{\"op\":\"status\"}xyz"), 0),
    ("nul-bytes", frame(b"{\"op\":\"st\x00atus\"}"), 0),
    ("no-op", frame(b"{\"x\":1}"), 0),
    ("op-number", frame(b"{\"op\":1}"), 0),
    ("report", frame(b"{\"op\":\"report\"}"), 0),
    ("bad-name", frame(b"{\"op\":\"lease-acquire\",\"name\":\"../x/y\"}"), 0),
    ("deep", frame(b"[" * 5000 + b"]" * 5000), 0),
    ("status-hangup", frame(b"{\"op\":\"status\"}"), HANGUP),
    ("resume-hangup", frame(b"{\"op\":\"resume\"}"), HANGUP),
    ("two-frames", frame(b"{\"op\":\"ping\"}") + frame(b"{\"op\":\"ping\"}"), 0),
]
for name, data, flags in cases:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
        s.sendall(data)
        if flags & HANGUP:
            print("%s: sent, hung up" % name)
            continue
        if name == "truncated":
            s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                got += b"<timeout>"
                break
            except ConnectionResetError:
                got += b"<reset>"
                break
            if not b:
                break
            got += b
        if got.endswith(b"<timeout>"):
            print("%s: timeout (no answer, not closed within 3 s)" % name)
        elif len(got) > 4 and got[4:5] == b"{":
            print("%s: answer %s" % (name, got[4:300].decode("utf-8", "replace")))
        else:
            print("%s: closed %r" % (name, got[:40]))
    except ConnectionResetError:
        print("%s: closed (reset)" % name)
    except Exception as e:
        print("%s: error %s" % (name, e))
    finally:
        s.close()
'
if [[ -n $PYSOCK ]]; then
	# The leader and a follower (which forwards to the leader).
	st h1
	GNODES=("${S[leader]:-h1}")
	for n in "${NODES[@]}"; do
		if [[ $n != "${GNODES[0]}" ]]; then
			GNODES+=("$n")
			break
		fi
	done
	for g in "${GNODES[@]}"; do
		LASTCMD="python3 garbage frames -> $g.sock"
		RC=0
		timeout -k 2 60 "$PYSOCK" -c "$GARBAGE_PY" "$T/$g.sock" >"$T/cli.out" 2>"$T/cli.err" || RC=$?
		OUT=$(<"$T/cli.out")
		ERR=$(<"$T/cli.err")
		GOUT=$OUT
		if [[ $RC == 0 && $GOUT != *": timeout"* && $GOUT != *": error"* &&
			$GOUT == *'no-op: answer {"ok":false'* && $GOUT == *'bad-name: answer {"ok":false'* ]]; then
			pass "garbage frames to $g's control socket: dropped or answered with an error"
		else
			fail "garbage frames to $g's control socket: dropped or answered with an error"
			printf '#   %s\n' "${GOUT//$'\n'/$'\n'#   }"
		fi
		if ! proc_gone "${PID[$g]}" && wait_for 5 healthy "$g"; then
			pass "$g is still running and answers status after the garbage"
		else
			fail "$g is still running and answers status after the garbage" "$GOUT"
		fi
	done
else
	pass "garbage frames to a control socket # SKIP no python3"
fi

# =========================================================================
echo "# 9. clean shutdown"
for n in "${NODES[@]}"; do
	kill -TERM "${PID[$n]}" 2>/dev/null || true
done
for n in "${NODES[@]}"; do
	stop_node "$n" signalled
	if [[ $EXIT_STATUS == 0 ]]; then
		pass "$n stops on TERM with exit 0"
	else
		fail "$n stops on TERM with exit 0" "exit status: $EXIT_STATUS"
	fi
done
LASTCMD=
mapfile -t SAN < <(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log 2>/dev/null || true)
if ((${#SAN[@]} == 0)); then
	pass "no sanitizer report in any daemon log"
else
	fail "no sanitizer report in any daemon log" "in: ${SAN[*]}" \
		"$(grep -hE -A3 'ERROR: (Address|Leak)Sanitizer|runtime error:' "${SAN[@]}" | head -40)"
fi

echo "# ran in ${SECONDS}s"
FINISHED=1
exit 0 # cleanup prints the closing line and sets the exit status
