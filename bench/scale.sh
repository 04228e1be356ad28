#!/bin/bash
# hvpeer at scale (make bench-scale): for each cluster size N, N real
# hvpeerd on 127.0.0.1 (one bootstraps, the N-1 others join it, started in
# parallel), --max-voters voters and the rest standbys; then figures per N
# and one table at the end, with each figure's ratio to the first size's
# row (N=3 by default: the baseline, measured in the same run).
#
# Per N:
#   formation  from starting the first daemon until the leader's
#              `hvpeer --json status` has quorum and lists N members, of
#              them min(N, max-voters) voters and the rest standbys (the
#              role counts are printed; a wrong count is a failure);
#   memory     VmRSS of every daemon (/proc/PID/status): min/median/max MiB,
#              and the sum;
#   idle CPU   utime+stime (/proc/PID/stat) over an idle window after a 3 s
#              settle: the leader, the median and max of the others; and
#              how busy the rest of the machine was meanwhile (/proc/stat
#              less these daemons: the "other load" column; other
#              processes on the machine make every figure noisier);
#   status     `hvpeer status` latency (the CLI end to end: exec, connect,
#              barrier on the leader, answer) through the leader's control
#              socket and through a standby's (forwarded to the leader; with
#              no standby, N <= max-voters, a follower's);
#   commit     bench/hvpeer-bench -c: lease grants (lease-acquire committed,
#              release untimed) on the leader's socket and on the standby's,
#              next to "ping" on the same socket (a request with no Raft:
#              the baseline of the socket round trip), one request at a time.
# Once per run, before the clusters: bench/hvpeer-bench's in-process 3-node
# series (raw raft_apply() next to a lease grant), the raw Raft baseline.
#
# Usage: scale.sh ABS_BUILDDIR. Environment knobs (defaults in brackets):
#   HVPEER_SCALE_SIZES ["3 5 16 32 64"]  cluster sizes, each 1..99, in order
#   HVPEER_SCALE_MAX_VOTERS [5]         hvpeerd --max-voters
#   HVPEER_SCALE_STATUS_RUNS [100]      `hvpeer status` runs per socket
#   HVPEER_SCALE_OPS [300]              timed grants and pings per socket
#                                       (hvpeer-bench -c -n; 30 warm-up each)
#   HVPEER_SCALE_BASELINE_OPS [500]     hvpeer-bench -n of the in-process
#                                       baseline (0: skip it)
#   HVPEER_SCALE_IDLE_SECONDS [10]      idle CPU window
#   HVPEER_SCALE_FORM_TIMEOUT [180]     seconds for a cluster to form
#   HVPEER_SCALE_PORT_BASE [27000]      size number k (0, 1, ...) listens on
#                                       PORT_BASE + 100 k + i, i = 1..N; a
#                                       block with a port in use is skipped
#                                       (the next free one, below 65000)
#   HVPEER_SCALE_STAGGER_MS [15]        delay between starting two joiners,
#                                       so that their join retries (every
#                                       500 ms, one membership change at a
#                                       time) do not arrive all at once
# Every daemon runs with --election-timeout 300 --heartbeat-timeout 50 and
# the default report interval (5 s; a report is a commit).
#
# Nothing passes or fails on a figure: the exit status is 1 only when a
# cluster does not form with the expected roles, or a measurement fails.
# Every wait is bounded; a trap kills every daemon this script started (by
# PID, nothing else) and removes the temp dir.

if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
export LC_ALL=C

B=${1:-}
if [ -z "$B" ] || [ ! -d "$B" ]; then
	echo "usage: scale.sh ABS_BUILDDIR" >&2
	exit 2
fi
HVPEERD=$B/hvpeerd
HVPEER=$B/hvpeer
BENCH=$B/bench/hvpeer-bench
for f in "$HVPEERD" "$HVPEER" "$BENCH"; do
	if [ ! -x "$f" ]; then
		echo "scale.sh: $f is missing: run 'make hvpeerd hvpeer bench/hvpeer-bench' first" >&2
		exit 2
	fi
done
command -v python3 >/dev/null || { echo "scale.sh: needs python3 (to read the status JSON)" >&2; exit 2; }

SIZES=${HVPEER_SCALE_SIZES:-3 5 16 32 64}
MAXV=${HVPEER_SCALE_MAX_VOTERS:-5}
STATUS_RUNS=${HVPEER_SCALE_STATUS_RUNS:-100}
OPS=${HVPEER_SCALE_OPS:-300}
BASE_OPS=${HVPEER_SCALE_BASELINE_OPS:-500}
IDLE_S=${HVPEER_SCALE_IDLE_SECONDS:-10}
FORM_S=${HVPEER_SCALE_FORM_TIMEOUT:-180}
PORT_BASE=${HVPEER_SCALE_PORT_BASE:-27000}
STAGGER_MS=${HVPEER_SCALE_STAGGER_MS:-15}
for v in "$MAXV" "$STATUS_RUNS" "$OPS" "$IDLE_S" "$FORM_S" "$PORT_BASE"; do
	if ! [[ $v =~ ^[1-9][0-9]{0,5}$ ]]; then
		echo "scale.sh: '$v': the HVPEER_SCALE_* knobs are whole numbers from 1 to 999999" >&2
		exit 2
	fi
done
if ! [[ $BASE_OPS =~ ^[0-9]{1,6}$ ]] || ! [[ $STAGGER_MS =~ ^[0-9]{1,4}$ ]]; then
	echo "scale.sh: HVPEER_SCALE_BASELINE_OPS and HVPEER_SCALE_STAGGER_MS are whole numbers" >&2
	exit 2
fi
for n in $SIZES; do
	if ! [[ $n =~ ^[1-9][0-9]?$ ]]; then
		echo "scale.sh: HVPEER_SCALE_SIZES: '$n' is not a size from 1 to 99" >&2
		exit 2
	fi
done
[ -n "${SIZES// /}" ] || { echo "scale.sh: HVPEER_SCALE_SIZES is empty" >&2; exit 2; }

tmpbase=${TMPDIR:-/tmp}
if [ "${#tmpbase}" -gt 60 ] || [ ! -d "$tmpbase" ]; then
	tmpbase=/tmp # control socket paths must fit in sun_path
fi
T=$(mktemp -d "$tmpbase/hvpeer-scale.XXXXXX") || exit 1

declare -a PID=() PORT=()
N=0

stop_all() { # SIGTERM, at most 5 s, then SIGKILL; only the PIDs in PID
	local i w alive
	for i in "${!PID[@]}"; do kill -TERM "${PID[i]}" 2>/dev/null; done
	for ((w = 0; w < 100; w++)); do
		alive=0
		for i in "${!PID[@]}"; do kill -0 "${PID[i]}" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.05
	done
	BADEXIT=0
	for i in "${!PID[@]}"; do
		kill -KILL "${PID[i]}" 2>/dev/null
		wait "${PID[i]}" 2>/dev/null || BADEXIT=$((BADEXIT + 1))
	done
	PID=()
}
cleanup() {
	stop_all
	rm -rf "$T"
}
trap 'cleanup 2>/dev/null' EXIT
trap 'echo "scale.sh: interrupted" >&2; exit 130' INT TERM HUP

. "$(dirname "$0")/lib.sh" # nap, now_us, stats, ticks, kib
# minmedmax: "min median max sum" of the numbers on stdin
minmedmax() {
	sort -g | awk '{ v[NR] = $1; s += $1 }
		END { if (NR == 0) { print "- - - -"; exit }
		      printf "%.2f %.2f %.2f %.2f\n", v[1], v[int((NR + 1) / 2)], v[NR], s }'
}

sock() { echo "$T/s$N/p$1.sock"; }

# ports_for K: PORT[1..N] in a block of 100 that nothing listens on.
ports_for() {
	local base=$((PORT_BASE + 100 * $1)) used
	used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
	while [ $base -lt 65000 ]; do
		if ! awk -v b=$base -v n="$N" '$1 > b && $1 <= b + n { f = 1 } END { exit !f }' <<<"$used"; then
			break
		fi
		base=$((base + 100))
	done
	[ $base -lt 65000 ] || return 1
	for ((i = 1; i <= N; i++)); do PORT[i]=$((base + i)); done
}

start_node() { # I ARGS...
	local i=$1
	shift
	"$HVPEERD" --name "p$i" --data-dir "$T/s$N/p$i" --listen "127.0.0.1:${PORT[i]}" \
		--socket "$(sock "$i")" --election-timeout 300 --heartbeat-timeout 50 \
		--max-voters "$MAXV" --log-level info "$@" </dev/null >>"$T/s$N/p$i.log" 2>&1 &
	PID[i]=$!
}

# q I: status through node I; sets RC, QUORUM (0/1), LNAME, NMEM, NVOT, NSTB,
# NOTHER (members with another role), STBY (a standby's name).
q() {
	local out
	out=$("$HVPEER" --socket "$(sock "$1")" --timeout 3000 --json status 2>/dev/null)
	RC=$?
	read -r QUORUM LNAME NMEM NVOT NSTB NOTHER STBY < <(python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
except Exception:
    print("0 - 0 0 0 0 -"); sys.exit()
ms = [m for m in d.get("members", [])]
lead = [m["name"] for m in ms if m.get("leader")]
roles = [m.get("role") for m in ms]
stb = sorted((m["name"] for m in ms if m.get("role") == "standby"), key=lambda s: int(s[1:]) if s[1:].isdigit() else 0)
print(1 if d.get("quorum") else 0, lead[0] if lead else "-", len(ms), roles.count("voter"),
      roles.count("standby"), len(ms) - roles.count("voter") - roles.count("standby"),
      stb[-1] if stb else "-")' <<<"$out")
}

# cpu_busy: non-idle ticks of the whole machine so far (/proc/stat), in BUSY
cpu_busy() {
	local c u ni sy id io rest
	read -r c u ni sy id io rest </proc/stat
	read -r -a r <<<"$rest"
	BUSY=$((u + ni + sy + r[0] + r[1] + r[2]))
}

# running I: node I's process is alive (not gone, not a zombie).
running() {
	local s
	s=$(<"/proc/${PID[$1]}/stat") 2>/dev/null || return 1
	s=${s##*) }
	[ "${s:0:1}" != Z ]
}
# deaths WHEN: every daemon of this size that exited: its exit status and
# the end of its log. Sets DEAD (their count); a death fails the run.
deaths() {
	local i rc
	DEAD=0
	for ((i = 1; i <= N; i++)); do
		running "$i" && continue
		DEAD=$((DEAD + 1))
		wait "${PID[i]}" 2>/dev/null
		rc=$?
		echo "  FAILED: p$i exited $1 (exit status $rc); the end of its log:"
		tail -n 15 "$T/s$N/p$i.log" | sed 's/^/    /'
		unset "PID[$i]"
	done
	[ $DEAD -gt 0 ] && failed=1
	return 0
}

status_lat() { # I FILE: STATUS_RUNS `hvpeer status` through node I; BAD
	local i=$1 r a rc
	: >"$2"
	BAD=0
	for ((r = 0; r < STATUS_RUNS; r++)); do
		now_us
		a=$NOW
		"$HVPEER" --socket "$(sock "$i")" --timeout 3000 status >/dev/null 2>&1
		rc=$?
		now_us
		[ $rc -ne 0 ] && BAD=$((BAD + 1))
		awk -v d=$((NOW - a)) 'BEGIN { print d / 1000 }' >>"$2"
	done
}

fig() { sed -n "s/.*figures:.* $2=\([0-9.]*\).*/\1/p" "$1"; }

failed=0
hz=$(getconf CLK_TCK)
t_run0=$SECONDS
echo "hvpeer scale benchmark: sizes $SIZES, max-voters $MAXV, $(nproc) CPUs, $(uname -r)"
echo "  data and sockets in $T"
echo

# ---- the in-process baseline -------------------------------------------------
if [ "$BASE_OPS" -gt 0 ]; then
	echo "=== baseline: bench/hvpeer-bench -n $BASE_OPS (3 in-process nodes, raw raft_apply next to a lease grant) ==="
	if timeout 600 "$BENCH" -n "$BASE_OPS" >"$T/baseline.out" 2>&1; then
		grep -E 'figures|grant p50' "$T/baseline.out" | sed 's/^ */  /'
		RAW50=$(fig "$T/baseline.out" raw_p50_ms)
		RAWG50=$(fig "$T/baseline.out" grant_p50_ms)
	else
		cat "$T/baseline.out"
		echo "  hvpeer-bench FAILED"
		failed=1
	fi
	echo
fi

# ---- each size ---------------------------------------------------------------
declare -a ROWS=()
k=0
for N in $SIZES; do
	echo "=== N=$N: $N hvpeerd on 127.0.0.1, --max-voters $MAXV ==="
	mkdir -p "$T/s$N"
	PORT=()
	if ! ports_for $k; then
		echo "  no free block of $N ports from $PORT_BASE"
		failed=1
		break
	fi
	k=$((k + 1))
	want_v=$((N < MAXV ? N : MAXV))
	want_s=$((N - want_v))
	echo "  ports ${PORT[1]}-${PORT[N]}; expecting $want_v voters and $want_s standbys"

	# Formation: bootstrap p1, wait until it leads (bounded), then start the
	# joiners in parallel, STAGGER_MS apart.
	now_us
	t0=$NOW
	deadline=$((t0 + FORM_S * 1000000))
	start_node 1 --bootstrap
	while :; do
		q 1
		[ $QUORUM = 1 ] && [ "$LNAME" = p1 ] && break
		now_us
		[ $NOW -ge $deadline ] && break
		nap 0.05
	done
	stagger=$(awk -v m="$STAGGER_MS" 'BEGIN { printf "%.3f", m / 1000 }')
	for ((i = 2; i <= N; i++)); do
		start_node "$i" --join "127.0.0.1:${PORT[1]}"
		[ "$STAGGER_MS" -gt 0 ] && sleep "$stagger"
	done
	formed=0
	polls=0
	last=
	while :; do
		polls=$((polls + 1))
		q 1
		if [ $QUORUM = 1 ] && [ "$NMEM" = "$N" ] && [ "$NVOT" = "$want_v" ] &&
			[ "$NSTB" = "$want_s" ] && [ "$NOTHER" = 0 ]; then
			formed=1
			break
		fi
		now_us
		if [ $NOW -ge $deadline ]; then
			last="quorum $QUORUM, $NMEM members, $NVOT voters, $NSTB standbys, $NOTHER other"
			break
		fi
		nap 0.1
	done
	now_us
	form_ms=$(((NOW - t0) / 1000))
	if [ $formed != 1 ]; then
		echo "  FAILED: not formed within $FORM_S s (the leader's view: $last)"
		for f in "$T/s$N"/p1.log "$T/s$N/p$N.log"; do
			echo "  --- $f (last 10 lines)"
			tail -n 10 "$f" | sed 's/^/    /'
		done
		failed=1
		stop_all
		break
	fi
	full=$(cat "$T/s$N"/p*.log | grep -c 'another membership change is in progress')
	printf '  formed in %.1f s (%d polls): leader %s, %s members: %s voters, %s standbys (%d joins were told to retry)\n' \
		"$(awk -v m=$form_ms 'BEGIN { print m / 1000 }')" $polls "$LNAME" "$NMEM" "$NVOT" "$NSTB" "$full"
	LEAD=${LNAME#p}
	deaths "while the cluster formed"

	# Idle: settle, then the window.
	nap 3
	q 1
	LEAD=${LNAME#p}
	OTHER=$STBY
	[ "$OTHER" = - ] && OTHER=p$((LEAD == 1 ? 2 : 1))
	OTHER=${OTHER#p}
	otherkind=standby
	[ "$STBY" = - ] && otherkind=follower
	declare -a T0=()
	for ((i = 1; i <= N; i++)); do [ -n "${PID[i]:-}" ] && ticks "${PID[i]}" && T0[i]=$TICKS; done
	cpu_busy
	b0=$BUSY
	now_us
	w0=$NOW
	nap "$IDLE_S"
	now_us
	w1=$NOW
	cpu_busy
	b1=$BUSY
	: >"$T/s$N/cpu.others"
	: >"$T/s$N/rss"
	cpu_lead=-
	ok=1
	deaths "before the idle window"
	for ((i = 1; i <= N; i++)); do
		[ -n "${PID[i]:-}" ] || continue
		if ! running "$i" || ! ticks "${PID[i]}"; then
			ok=0
			continue
		fi
		pct=$(awk -v d=$((TICKS - T0[i])) -v hz="$hz" -v us=$((w1 - w0)) 'BEGIN { printf "%.2f", d / hz / (us / 1e6) * 100 }')
		if [ "$i" = "$LEAD" ]; then cpu_lead=$pct; else echo "$pct" >>"$T/s$N/cpu.others"; fi
		kb=$(kib VmRSS "${PID[i]}")
		if [ -z "$kb" ]; then
			ok=0
			continue
		fi
		awk -v k="$kb" 'BEGIN { printf "%.2f\n", k / 1024 }' >>"$T/s$N/rss"
	done
	[ $ok != 1 ] && deaths "during the idle window"
	sum_ticks=0
	for ((i = 1; i <= N; i++)); do
		[ -n "${PID[i]:-}" ] && [ -n "${T0[i]:-}" ] && ticks "${PID[i]}" && sum_ticks=$((sum_ticks + TICKS - T0[i]))
	done
	read -r rss_min rss_med rss_max rss_sum < <(minmedmax <"$T/s$N/rss")
	read -r co_min co_med co_max co_sum < <(minmedmax <"$T/s$N/cpu.others")
	echo "  RSS per daemon: min $rss_min  median $rss_med  max $rss_max MiB (all $N: $rss_sum MiB)"
	echo "  idle CPU over $(awk -v us=$((w1 - w0)) 'BEGIN { printf "%.1f", us / 1e6 }') s (one tick of 1/$hz s = $(awk -v h="$hz" -v s="$IDLE_S" 'BEGIN { printf "%.2f", 100 / h / s }') %): leader p$LEAD $cpu_lead %, the $((N - 1)) others: min $co_min  median $co_med  max $co_max % (sum of all: $(awk -v a="$cpu_lead" -v b="$co_sum" 'BEGIN { printf "%.2f", a + b }') %)"
	other_busy=$(awk -v d=$((b1 - b0 - sum_ticks)) -v hz="$hz" -v us=$((w1 - w0)) 'BEGIN { printf "%.0f", d / hz / (us / 1e6) * 100 }')
	echo "  the rest of the machine meanwhile: $(awk -v d=$((b1 - b0 - sum_ticks)) -v hz="$hz" -v us=$((w1 - w0)) 'BEGIN { printf "%.0f", d / hz / (us / 1e6) * 100 }') % of one core busy (other processes: figures are noisier when high); load average $(cut -d' ' -f1-3 /proc/loadavg)"

	# hvpeer status
	status_lat "$LEAD" "$T/s$N/st.leader"
	bad_l=$BAD
	status_lat "$OTHER" "$T/s$N/st.other"
	bad_o=$BAD
	read -r sl50 sl99 slmax _ _ < <(stats "$T/s$N/st.leader")
	read -r so50 so99 somax _ _ < <(stats "$T/s$N/st.other")
	echo "  hvpeer status, $STATUS_RUNS runs: via the leader p$LEAD p50 $sl50 p99 $sl99 max $slmax ms; via $otherkind p$OTHER p50 $so50 p99 $so99 max $somax ms"
	if [ $((bad_l + bad_o)) -gt 0 ]; then
		echo "  FAILED: $bad_l + $bad_o status runs exited non-zero"
		failed=1
	fi

	# commit latency: lease grants next to ping, on the leader's socket and
	# on the other's (forwarded); the lease is for the leader's host.
	g50=- g99=- p50=- go50=- go99=-
	for which in leader other; do
		if [ $which = leader ]; then i=$LEAD; else i=$OTHER; fi
		if timeout 300 "$BENCH" -c "$(sock "$i")" -H "p$LEAD" -n "$OPS" -w 30 >"$T/s$N/bench.$which" 2>&1; then
			if [ $which = leader ]; then
				g50=$(fig "$T/s$N/bench.$which" grant_p50_ms)
				g99=$(fig "$T/s$N/bench.$which" grant_p99_ms)
				p50=$(fig "$T/s$N/bench.$which" ping_p50_ms)
			else
				go50=$(fig "$T/s$N/bench.$which" grant_p50_ms)
				go99=$(fig "$T/s$N/bench.$which" grant_p99_ms)
				po50=$(fig "$T/s$N/bench.$which" ping_p50_ms)
			fi
		else
			echo "  FAILED: hvpeer-bench -c on p$i:"
			sed 's/^/    /' "$T/s$N/bench.$which"
			failed=1
		fi
	done
	echo "  lease grant (hvpeer-bench -c, $OPS): via the leader p50 $g50 p99 $g99 ms (ping $p50 ms); via $otherkind p$OTHER p50 $go50 p99 $go99 ms (ping ${po50:--} ms)"

	deaths "during the latency runs"
	errs=$(cat "$T/s$N"/p*.log | grep -cE ' (error|warn): ')
	stop_all
	echo "  daemon log lines at warn or error level: $errs; after SIGTERM, $BADEXIT of $N did not exit 0 within 5 s"
	[ "$errs" -gt 0 ] && cat "$T/s$N"/p*.log | grep -E ' (error|warn): ' | sed -E 's/^[0-9:.]+ //; s/[0-9]+/N/g' |
		sort | uniq -c | sort -rn | head -n 5 | sed 's/^/    /'
	ROWS+=("$N $NVOT $NSTB $(awk -v m=$form_ms 'BEGIN { printf "%.1f", m / 1000 }') $sl50 $sl99 $so50 $so99 $g50 $g99 $go50 $p50 $rss_min $rss_med $rss_max $cpu_lead $co_med $co_max $other_busy")
	rm -rf "$T/s$N"/p[0-9]* # data dirs; logs are gone with $T at exit
	echo
done

# ---- the table ---------------------------------------------------------------
if [ ${#ROWS[@]} -gt 0 ]; then
	echo "=== summary: one row per N (latencies in ms, RSS in MiB, CPU in % of one core;"
	echo "    other load: the rest of the machine during the idle window, % of one core) ==="
	[ -n "${RAW50:-}" ] && echo "  raw Raft baseline (in-process, 3 nodes, this run): raft_apply p50 $RAW50 ms, lease grant p50 $RAWG50 ms"
	printf '%s\n' "${ROWS[@]}" | awk '
	BEGIN {
		printf "%4s %6s %6s | %13s %13s | %13s %8s %5s | %17s | %6s %9s %6s | %5s\n",
			"N", "vot/sb", "form s", "status leader", "status stby", "grant leader",
			"grant sb", "ping", "RSS min/med/max", "CPU L", "others md", "max", "other"
		printf "%4s %6s %6s | %6s %6s %6s %6s | %6s %6s %8s %5s | %17s | %6s %9s %6s | %5s\n",
			"", "", "", "p50", "p99", "p50", "p99", "p50", "p99", "p50", "p50", "", "", "", "", "load"
	}
	{
		row[NR] = $0
		printf "%4s %6s %6s | %6s %6s %6s %6s | %6s %6s %8s %5s | %5s %5s %5s | %6s %9s %6s | %4s%%\n",
			$1, $2 "/" $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19
		for (i = 1; i <= NF; i++) v[NR, i] = $i
	}
	END {
		if (NR < 2) exit
		printf "ratios to the N=%s row:\n", v[1, 1]
		for (r = 2; r <= NR; r++) {
			line = sprintf("%4s %6s", v[r, 1], "")
			for (i = 4; i <= 18; i++) {
				if (i == 12) continue
				if (v[1, i] + 0 > 0 && v[r, i] != "-")
					s = sprintf("%.2fx", v[r, i] / v[1, i])
				else
					s = "-"
				w = (i == 4) ? 6 : (i == 11) ? 8 : (i >= 13 && i <= 15) ? 5 : (i == 17) ? 9 : 6
				line = line sprintf(" %*s", w, s)
				if (i == 4 || i == 8 || i == 15) line = line " |"
				if (i == 11) line = line sprintf(" %5s |", "")
			}
			print line
		}
	}'
fi
echo "scale.sh: $(( SECONDS - t_run0 )) s in all"
exit $failed
